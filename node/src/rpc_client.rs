//! A small blocking JSON-RPC client over HTTP/1.1 keep-alive (the devnet driver and the
//! end-to-end tests use it; no HTTP client dependency).

use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("connection to {0}: {1}")]
    Io(SocketAddr, std::io::Error),
    #[error("bad HTTP response: {0}")]
    Http(String),
    #[error("rpc error {code}: {message}")]
    Rpc { code: i64, message: String },
}

pub struct RpcClient {
    addr: SocketAddr,
    conn: Option<BufReader<TcpStream>>,
    next_id: u64,
    pub timeout: Duration,
    /// Connect from this local address (tests use several loopback addresses as distinct peers).
    pub source: Option<IpAddr>,
}

impl RpcClient {
    pub fn new(addr: SocketAddr) -> Self {
        RpcClient { addr, conn: None, next_id: 1, timeout: Duration::from_secs(30), source: None }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// POST `body` and return the response body. A request on a kept-alive connection that
    /// fails at the transport is retried once on a new connection (the server may have
    /// closed the idle one); an HTTP error answer is not retried.
    pub fn post(&mut self, body: &[u8]) -> Result<Vec<u8>, ClientError> {
        let reused = self.conn.is_some();
        match self.post_once(body) {
            Err(ClientError::Io(..)) if reused => {
                self.conn = None;
                self.post_once(body)
            }
            Err(e @ ClientError::Io(..)) => {
                self.conn = None;
                Err(e)
            }
            r => r,
        }
    }

    fn post_once(&mut self, body: &[u8]) -> Result<Vec<u8>, ClientError> {
        let addr = self.addr;
        let io = |e| ClientError::Io(addr, e);
        if self.conn.is_none() {
            let s = connect(addr, self.source, self.timeout).map_err(io)?;
            s.set_read_timeout(Some(self.timeout)).map_err(io)?;
            s.set_nodelay(true).map_err(io)?;
            self.conn = Some(BufReader::new(s));
        }
        let conn = self.conn.as_mut().ok_or_else(|| ClientError::Http("no connection".into()))?;
        let head = format!("POST / HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n", body.len());
        let s = conn.get_mut();
        s.write_all(head.as_bytes()).and_then(|_| s.write_all(body)).map_err(io)?;
        let mut line = String::new();
        conn.read_line(&mut line).map_err(io)?;
        if !line.starts_with("HTTP/1.1 ") {
            self.conn = None;
            return Err(ClientError::Http(format!("status line {line:?}")));
        }
        let status = line.get(9..12).unwrap_or("").to_string();
        let (mut len, mut chunked) = (None, false);
        loop {
            line.clear();
            conn.read_line(&mut line).map_err(io)?;
            let l = line.trim_end();
            if l.is_empty() {
                break;
            }
            let lower = l.to_ascii_lowercase();
            if let Some(v) = lower.strip_prefix("content-length:") {
                len = v.trim().parse::<usize>().ok();
            } else if lower.starts_with("transfer-encoding:") && lower.contains("chunked") {
                chunked = true;
            }
        }
        let mut out = Vec::new();
        if chunked {
            loop {
                line.clear();
                conn.read_line(&mut line).map_err(io)?;
                let n = usize::from_str_radix(line.trim(), 16).map_err(|_| ClientError::Http("chunk size".into()))?;
                let mut chunk = vec![0; n + 2];
                conn.read_exact(&mut chunk).map_err(io)?;
                if n == 0 {
                    break;
                }
                out.extend_from_slice(&chunk[..n]);
            }
        } else {
            let n = len.ok_or_else(|| ClientError::Http("no content length".into()))?;
            out.resize(n, 0);
            conn.read_exact(&mut out).map_err(io)?;
        }
        if status != "200" {
            return Err(ClientError::Http(format!("status {status}: {}", String::from_utf8_lossy(&out))));
        }
        Ok(out)
    }

    /// Call `method` and return its result.
    pub fn call(&mut self, method: &str, params: Value) -> Result<Value, ClientError> {
        let id = self.next_id;
        self.next_id += 1;
        let body = serde_json::to_vec(&json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params})).unwrap_or_default();
        let resp: Value = serde_json::from_slice(&self.post(&body)?).map_err(|e| ClientError::Http(e.to_string()))?;
        result_of(resp)
    }

    /// Call `method` once per element of `params`, in one batch request; results in order.
    pub fn batch(&mut self, method: &str, params: Vec<Value>) -> Result<Vec<Result<Value, ClientError>>, ClientError> {
        let first = self.next_id;
        let reqs: Vec<Value> =
            params.into_iter().enumerate().map(|(i, p)| json!({"jsonrpc": "2.0", "id": first + i as u64, "method": method, "params": p})).collect();
        self.next_id += reqs.len() as u64;
        let n = reqs.len();
        let body = serde_json::to_vec(&reqs).unwrap_or_default();
        let resp: Value = serde_json::from_slice(&self.post(&body)?).map_err(|e| ClientError::Http(e.to_string()))?;
        // One error object instead of an array: the batch was refused whole (too large, rate limited).
        let items = match resp {
            Value::Array(items) => items,
            other => return Err(result_of(other).err().unwrap_or_else(|| ClientError::Http("batch answer is not an array".into()))),
        };
        let mut out: Vec<Option<Result<Value, ClientError>>> = (0..n).map(|_| None).collect();
        for item in items {
            let idx = item.get("id").and_then(Value::as_u64).and_then(|id| id.checked_sub(first)).map(|i| i as usize);
            if let Some(slot) = idx.and_then(|i| out.get_mut(i)) {
                *slot = Some(result_of(item));
            }
        }
        Ok(out.into_iter().map(|r| r.unwrap_or_else(|| Err(ClientError::Http("missing batch answer".into())))).collect())
    }
}

fn result_of(resp: Value) -> Result<Value, ClientError> {
    if let Some(e) = resp.get("error") {
        return Err(ClientError::Rpc {
            code: e.get("code").and_then(Value::as_i64).unwrap_or(0),
            message: e.get("message").and_then(Value::as_str).unwrap_or("").to_string(),
        });
    }
    Ok(resp.get("result").cloned().unwrap_or(Value::Null))
}

/// A TCP connection to `addr`, from `source` if given.
pub fn connect(addr: SocketAddr, source: Option<IpAddr>, timeout: Duration) -> std::io::Result<TcpStream> {
    let Some(source) = source else { return TcpStream::connect_timeout(&addr, timeout) };
    let socket = socket2::Socket::new(socket2::Domain::for_address(addr), socket2::Type::STREAM, Some(socket2::Protocol::TCP))?;
    socket.bind(&SocketAddr::new(source, 0).into())?;
    socket.connect_timeout(&addr.into(), timeout)?;
    Ok(socket.into())
}

/// The typed client the command line uses: the methods of [`crate::rpc::AivmApiClient`] and
/// [`crate::rpc::MarketApiClient`] (the same traits the server implements) over one WebSocket
/// connection (the node serves HTTP and WebSocket on one port), made blocking on a runtime of
/// its own. The HTTP client above stays for the load generator and for tests that must send
/// malformed requests or choose their source address.
pub struct NodeClient {
    addr: SocketAddr,
    client: jsonrpsee_ws_client::WsClient,
    runtime: tokio::runtime::Runtime,
}

/// Why a typed call failed: connecting, or the call itself (an RPC error carries its code).
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error("connecting to ws://{0}: {1}")]
    Connect(SocketAddr, String),
    #[error("{0}")]
    Runtime(std::io::Error),
    #[error("rpc error {code}: {message}")]
    Rpc { code: i32, message: String },
    #[error("{0}")]
    Client(String),
}

impl From<jsonrpsee::core::client::Error> for NodeError {
    fn from(e: jsonrpsee::core::client::Error) -> Self {
        match e {
            jsonrpsee::core::client::Error::Call(o) => NodeError::Rpc { code: o.code(), message: o.message().to_string() },
            other => NodeError::Client(other.to_string()),
        }
    }
}

impl NodeClient {
    /// Connect to the node's JSON-RPC port (`host:port`).
    pub fn connect(addr: SocketAddr) -> Result<Self, NodeError> {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(NodeError::Runtime)?;
        let client = runtime
            .block_on(
                jsonrpsee_ws_client::WsClientBuilder::default()
                    .max_request_size(crate::rpc::MAX_REQUEST_BYTES)
                    // A state-sync chunk (`aivm_getSnapshotChunk`) is the largest answer.
                    .max_response_size(64 << 20)
                    .request_timeout(Duration::from_secs(60))
                    .build(format!("ws://{addr}")),
            )
            .map_err(|e| NodeError::Connect(addr, e.to_string()))?;
        Ok(NodeClient { addr, client, runtime })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Connect again if the node closed the connection (it restarted, say): a WebSocket client
    /// does not reconnect by itself. Long-running loops (worker, verifier) call this each round.
    pub fn reconnect_if_closed(&mut self) -> Result<(), NodeError> {
        if !self.client.is_connected() {
            *self = NodeClient::connect(self.addr)?;
        }
        Ok(())
    }

    /// Run one typed call: `node.call(|c| c.get_account(addr))`.
    pub fn call<'a, T, F>(&'a self, f: impl FnOnce(&'a jsonrpsee_ws_client::WsClient) -> F) -> Result<T, NodeError>
    where
        F: std::future::Future<Output = Result<T, jsonrpsee::core::client::Error>> + 'a,
    {
        self.runtime.block_on(f(&self.client)).map_err(NodeError::from)
    }

    /// The client for async use (subscriptions), with the runtime to drive it.
    pub fn parts(&self) -> (&jsonrpsee_ws_client::WsClient, &tokio::runtime::Runtime) {
        (&self.client, &self.runtime)
    }
}

/// Finalized-block notifications (`aivm_subscribeFinalized`) for a blocking loop: [`wait`]
/// returns as soon as a block is finalized, or after its timeout, so a worker reacts to the
/// block that draws its challenge at once instead of finding it on its next poll. A closed
/// subscription (the node restarted, or this client fell too far behind) is opened again on
/// the next wait.
///
/// [`wait`]: FinalizedWaiter::wait
#[derive(Default)]
pub struct FinalizedWaiter {
    sub: Option<jsonrpsee::core::client::Subscription<Value>>,
}

impl FinalizedWaiter {
    /// Wait for the next finalized block (up to `timeout`); notifications already queued are
    /// drained, so one wait answers for every block finalized meanwhile. Returns whether a
    /// block came — always `true` when the node takes no subscription, so the caller polls.
    pub fn wait(&mut self, node: &NodeClient, timeout: Duration) -> bool {
        use crate::rpc::AivmApiClient;
        if self.sub.is_none() {
            self.sub = node.call(|c| c.subscribe_finalized()).ok();
        }
        let Some(sub) = self.sub.as_mut() else {
            std::thread::sleep(timeout);
            return true;
        };
        let (_, rt) = node.parts();
        let mut came = false;
        let mut wait = timeout;
        loop {
            // The timer is made inside the runtime (it needs its reactor).
            match rt.block_on(async { tokio::time::timeout(wait, sub.next()).await }) {
                Ok(Some(Ok(_))) => came = true,
                Ok(_) => {
                    self.sub = None;
                    return came;
                }
                Err(_elapsed) => return came,
            }
            wait = Duration::ZERO;
        }
    }
}
