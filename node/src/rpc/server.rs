//! The JSON-RPC server: a runtime of its own at low CPU priority, and an accept loop of our
//! own so that every call knows its peer's address (jsonrpsee's built-in loop does not pass
//! it on), which the per-peer limits ([`super::limits`]) need.

use super::limits::{CallBuckets, Connections, Peer, RpcLimits};
use super::{err, module, RpcContext, MAX_BATCH, MAX_CONNECTIONS, MAX_REQUEST_BYTES, RPC_BLOCKING_THREADS, RPC_THREADS};
use futures::FutureExt;
use jsonrpsee::server::middleware::http::ProxyGetRequestLayer;
use jsonrpsee::server::middleware::rpc::{Batch, MethodResponse, Notification, Request, RpcServiceBuilder, RpcServiceT};
use jsonrpsee::server::{serve_with_graceful_shutdown, stop_channel, Methods, ServerConfig, ServerHandle, StopHandle};
use jsonrpsee::types::Id;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The plain-HTTP health check: `GET /health` on the RPC port.
pub const HEALTH_PATH: &str = "/health";

/// JSON-RPC error: this peer is over its call rate; retry after a pause.
pub const RATE_LIMITED: i32 = -32029;
/// Nice value of the RPC threads (Linux; higher is lower priority).
const RPC_NICE: i32 = 10;

thread_local! {
    /// An RPC worker thread's CPU counts toward `Part::Rpc` while it is not parked.
    static RPC_CPU: std::cell::RefCell<Option<aivm_runtime::cpu::InPart>> = const { std::cell::RefCell::new(None) };
}

/// The RPC server on a runtime of its own. Dropping it stops the server.
pub struct RpcServer {
    pub handle: ServerHandle,
    _runtime: tokio::runtime::Runtime,
}

/// Serve `ctx` on `addr` (HTTP and WebSocket on one port) under `limits`, on a new runtime of
/// [`RPC_THREADS`] low-priority threads. Call it outside any async runtime.
pub fn serve(addr: SocketAddr, ctx: RpcContext, limits: RpcLimits) -> Result<RpcServer, String> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(RPC_THREADS)
        .max_blocking_threads(RPC_BLOCKING_THREADS)
        .thread_name("rpc")
        .on_thread_start(lower_priority)
        .on_thread_unpark(|| RPC_CPU.with(|g| *g.borrow_mut() = Some(aivm_runtime::cpu::enter(aivm_runtime::cpu::Part::Rpc))))
        .on_thread_park(|| RPC_CPU.with(|g| drop(g.borrow_mut().take())))
        .enable_all()
        .build()
        .map_err(|e| format!("rpc runtime: {e}"))?;
    let methods: Methods = module(ctx).map_err(|e| e.to_string())?.into();
    let listener = runtime.block_on(tokio::net::TcpListener::bind(addr)).map_err(|e| format!("rpc listen {addr}: {e}"))?;
    // `GET /health` answers `aivm_health`'s result (200) or its error (500), for load
    // balancers and supervisors that speak plain HTTP.
    let health = ProxyGetRequestLayer::new([(HEALTH_PATH, "aivm_health")]).map_err(|e| format!("rpc health route: {e}"))?;
    let (stop, handle) = stop_channel();
    runtime.spawn(accept_loop(listener, methods, stop, limits, health));
    Ok(RpcServer { handle, _runtime: runtime })
}

fn config() -> ServerConfig {
    ServerConfig::builder()
        .max_request_body_size(MAX_REQUEST_BYTES)
        .max_response_body_size(64 << 20)
        .max_connections(MAX_CONNECTIONS)
        .max_subscriptions_per_connection(16)
        .set_batch_request_config(jsonrpsee::server::BatchRequestConfig::Limit(MAX_BATCH))
        .build()
}

/// Accept connections until stopped; refuse (close at once) one over the total or per-peer
/// connection limit; serve each on its own task, tagging its calls with the peer.
async fn accept_loop(listener: tokio::net::TcpListener, methods: Methods, stop: StopHandle, limits: RpcLimits, health: ProxyGetRequestLayer) {
    let connections = Connections::new(MAX_CONNECTIONS, &limits);
    let buckets = Arc::new(CallBuckets::new(&limits));
    let rpc_middleware = RpcServiceBuilder::new().layer_fn(move |inner| RateLimit { inner, buckets: Arc::clone(&buckets) });
    let services = jsonrpsee::server::Server::builder()
        .set_config(config())
        .set_http_middleware(tower::ServiceBuilder::new().layer(health))
        .set_rpc_middleware(rpc_middleware)
        .to_service_builder();
    let stopped = stop.clone().shutdown();
    tokio::pin!(stopped);
    loop {
        let (socket, remote) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors and the like: back off rather than spin.
                    tracing::debug!(error = %e, "rpc accept");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = &mut stopped => return,
        };
        let peer = Peer::of(remote.ip());
        let Some(slot) = connections.open(peer) else {
            tracing::debug!(%remote, "rpc connection refused: at the connection limit");
            continue;
        };
        let _ = socket.set_nodelay(true);
        let service = services.clone().build(methods.clone(), stop.clone());
        let tagged = tower::service_fn(move |mut req: jsonrpsee::server::HttpRequest<hyper::body::Incoming>| {
            req.extensions_mut().insert(peer);
            let mut service = service.clone();
            // The error becomes an `anyhow::Error`: hyper's bounds cannot take jsonrpsee's boxed
            // error through a closure (the trait solver asks for it at every lifetime).
            async move { tower::Service::call(&mut service, req).await.map_err(|e| anyhow::anyhow!("{e}")) }.boxed()
        });
        let stop = stop.clone();
        tokio::spawn(async move {
            let _ = serve_with_graceful_shutdown(socket, tagged, stop.shutdown()).await;
            drop(slot);
        });
    }
}

/// Tokens a call takes from its peer's bucket: one per unit of the work it asks for. Most calls
/// are one; `aivm_sendTransactions` is one per transaction it carries (each costs a signature
/// check), so that method is no way around the limit a batch of `aivm_sendTransaction` calls
/// meets. Its parameters are counted without being decoded; a malformed list counts one (the
/// method refuses it).
fn weight(method: &str, params: Option<&serde_json::value::RawValue>) -> usize {
    if method != "aivm_sendTransactions" {
        return 1;
    }
    params.and_then(|p| serde_json::from_str::<(Vec<serde::de::IgnoredAny>,)>(p.get()).ok()).map_or(1, |(list,)| list.len().max(1))
}

/// RPC middleware: a call costs its peer its [`weight`] in tokens, a batch the sum over its
/// calls, all or nothing.
#[derive(Clone)]
struct RateLimit<S> {
    inner: S,
    buckets: Arc<CallBuckets>,
}

impl<S> RateLimit<S> {
    fn allows(&self, peer: Option<&Peer>, n: usize) -> bool {
        match peer {
            Some(p) => self.buckets.take(*p, u32::try_from(n).unwrap_or(u32::MAX), Instant::now()),
            // Every connection is tagged; an untagged call cannot come from outside.
            None => true,
        }
    }
}

fn limited() -> jsonrpsee::types::ErrorObjectOwned {
    err(RATE_LIMITED, "too many calls from this address; slow down")
}

impl<S> RpcServiceT for RateLimit<S>
where
    S: RpcServiceT<MethodResponse = MethodResponse, BatchResponse = MethodResponse, NotificationResponse = MethodResponse> + Send + Sync + Clone + 'static,
{
    type MethodResponse = MethodResponse;
    type NotificationResponse = MethodResponse;
    type BatchResponse = MethodResponse;

    fn call<'a>(&self, req: Request<'a>) -> impl Future<Output = MethodResponse> + Send + 'a {
        let allowed = self.allows(req.extensions().get::<Peer>(), weight(&req.method, req.params.as_deref()));
        let inner = self.inner.clone();
        async move {
            if allowed {
                inner.call(req).await
            } else {
                MethodResponse::error(req.id, limited())
            }
        }
    }

    fn batch<'a>(&self, mut batch: Batch<'a>) -> impl Future<Output = MethodResponse> + Send + 'a {
        let n = batch
            .iter()
            .map(|e| match e {
                Ok(jsonrpsee::core::middleware::BatchEntry::Call(req)) => weight(&req.method, req.params.as_deref()),
                _ => 1,
            })
            .fold(0usize, usize::saturating_add);
        let allowed = self.allows(batch.extensions().get::<Peer>(), n);
        let inner = self.inner.clone();
        async move {
            if allowed {
                inner.batch(batch).await
            } else {
                MethodResponse::error(Id::Null, limited())
            }
        }
    }

    fn notification<'a>(&self, n: Notification<'a>) -> impl Future<Output = MethodResponse> + Send + 'a {
        let allowed = self.allows(n.extensions().get::<Peer>(), 1);
        let inner = self.inner.clone();
        async move {
            if allowed {
                inner.notification(n).await
            } else {
                MethodResponse::notification()
            }
        }
    }
}

/// Lower the calling thread's CPU priority (Linux: `setpriority` on a thread id affects that
/// thread only). Best effort: consensus stays correct without it, only less insulated.
fn lower_priority() {
    #[cfg(target_os = "linux")]
    // SAFETY: setpriority has no memory-safety preconditions; 0 names the calling thread.
    unsafe {
        libc::setpriority(libc::PRIO_PROCESS, 0, RPC_NICE);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::value::RawValue;

    fn raw(s: &str) -> Box<RawValue> {
        RawValue::from_string(s.to_string()).expect("json")
    }

    /// A call carrying transactions costs one token per transaction, so one call cannot do the
    /// work of many past the per-peer limit.
    #[test]
    fn transaction_lists_weigh_what_they_carry() {
        assert_eq!(weight("aivm_status", None), 1);
        assert_eq!(weight("aivm_sendTransaction", Some(&raw(r#"["00"]"#))), 1);
        let fifty = format!("[[{}]]", vec![r#""00""#; 50].join(","));
        assert_eq!(weight("aivm_sendTransactions", Some(&raw(&fifty))), 50);
        assert_eq!(weight("aivm_sendTransactions", Some(&raw("[[]]"))), 1);
        assert_eq!(weight("aivm_sendTransactions", Some(&raw(r#"{"not": "a list"}"#))), 1);
        assert_eq!(weight("aivm_sendTransactions", None), 1);
        let buckets = CallBuckets::new(&RpcLimits { calls_per_second: 1, burst: 10, connections_per_peer: 1 });
        let peer = Peer::of(std::net::IpAddr::from([127, 0, 0, 1]));
        assert!(!buckets.take(peer, weight("aivm_sendTransactions", Some(&raw(&fifty))) as u32, Instant::now()), "50 transactions past a burst of 10");
    }
}
