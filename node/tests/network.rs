//! End-to-end: real `aivm node run` processes on loopback. Four validators agree on every
//! state root; one is SIGKILLed and the others keep finalizing; restarted, it catches up
//! from its write-ahead log and block sync; a late one state-syncs from a snapshot and votes. Bad RPC input gets JSON-RPC errors and the node
//! keeps running; per-peer limits hold; a byzantine leader under an RPC flood stalls
//! nothing; a dead committer or a stopped engine ends the process with its exit code. Every
//! wait is bounded.
//!
//! One file of over 500 lines on purpose: these tests share one harness ([`Net`]) and one lock
//! that runs them one at a time (several validator networks at once on two cores would only
//! measure CPU starvation).

mod common;

use aivm_node::hexbytes::to_hex;
use aivm_node::rpc_client::{ClientError, RpcClient};
use aivm_node::testnet::{self, TestnetParams};
use aivm_runtime::workload::P2p;
use aivm_runtime::Payload;
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const CHAIN_ID: u64 = 7;
// Port bases are 100 apart: a network at P uses P.., P+1000.. (RPC) and P+2000.. (metrics).

/// The network tests run one at a time: each starts several validators, and on two cores
/// overlapping networks would only measure CPU starvation.
static SERIAL: parking_lot::Mutex<()> = parking_lot::Mutex::new(());

fn serial() -> parking_lot::MutexGuard<'static, ()> {
    SERIAL.lock()
}

/// How a test network's genesis threshold key is made.
#[derive(Clone, Copy)]
enum Key {
    /// Dealt by the test process (`testnet::create`).
    Dealer,
    /// By the validators' DKG (`aivm node dkg` in every home).
    Dkg,
}

struct Net {
    dir: PathBuf,
    homes: Vec<PathBuf>,
    rpcs: Vec<SocketAddr>,
    procs: Vec<Option<Child>>,
    load: P2p,
    extra: Vec<(usize, String)>,
}

impl Net {
    fn new(tag: &str, validators: usize, port: u16) -> Net {
        Self::with_args(tag, validators, port, &[])
    }

    /// `extra[i]` are more `aivm node run` arguments for validator `i`.
    fn with_args(tag: &str, validators: usize, port: u16, extra: &[(usize, &str)]) -> Net {
        Self::with_epochs(tag, validators, port, extra, 1000, None)
    }

    /// With `epoch_length` and an `active_set_size` (default: every genesis validator).
    fn with_epochs(tag: &str, validators: usize, port: u16, extra: &[(usize, &str)], epoch_length: u64, active: Option<u32>) -> Net {
        Self::keyed(tag, validators, port, extra, epoch_length, active, Key::Dealer)
    }

    /// With the genesis threshold key made as `key` says.
    fn keyed(tag: &str, validators: usize, port: u16, extra: &[(usize, &str)], epoch_length: u64, active: Option<u32>, key: Key) -> Net {
        let dir = std::env::temp_dir().join(format!("aivm-net-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let load = P2p::new(CHAIN_ID, 8, 3);
        let params = TestnetParams {
            chain_id: CHAIN_ID,
            host: "127.0.0.1".into(),
            port,
            validators,
            stake: 1000,
            balance: 1 << 60,
            active,
            epoch_length,
            accounts: load.addresses().into_iter().map(|a| (a, 1u128 << 60)).collect(),
            max_block_gas: aivm_node::genesis::DEFAULT_MAX_BLOCK_GAS,
            min_gas_price: aivm_node::genesis::DEFAULT_MIN_GAS_PRICE,
            market: None,
        };
        let homes = match key {
            Key::Dealer => testnet::create(&dir, &params).expect("testnet").0,
            Key::Dkg => {
                let (homes, _) = testnet::create_for_dkg(&dir, &params).expect("testnet");
                // Every validator runs the ceremony at once, as processes.
                let ceremonies: Vec<Child> = homes
                    .iter()
                    .map(|h| {
                        Command::new(env!("CARGO_BIN_EXE_aivm"))
                            .args(["node", "dkg", "--timeout-s", "90", "--linger-s", "1", "--home"])
                            .arg(h)
                            .stdout(Stdio::null())
                            .stderr(Stdio::piped())
                            .spawn()
                            .expect("aivm node dkg")
                    })
                    .collect();
                for c in ceremonies {
                    let out = c.wait_with_output().expect("the ceremony ends");
                    assert!(out.status.success(), "aivm node dkg: {}", String::from_utf8_lossy(&out.stderr));
                }
                homes
            }
        };
        let rpcs = (0..validators).map(|i| SocketAddr::from(([127, 0, 0, 1], port + 1000 + i as u16))).collect();
        let mut net = Net { dir, homes, rpcs, procs: Vec::new(), load, extra: extra.iter().map(|(i, a)| (*i, a.to_string())).collect() };
        for i in 0..validators {
            let c = net.spawn(i);
            net.procs.push(Some(c));
        }
        net
    }

    fn spawn(&self, i: usize) -> Child {
        let extra: Vec<&str> = self.extra.iter().filter(|(j, _)| *j == i).map(|(_, a)| a.as_str()).collect();
        let log = std::fs::OpenOptions::new().create(true).append(true).open(self.homes[i].join("node.log")).expect("log");
        Command::new(env!("CARGO_BIN_EXE_aivm"))
            .args(["node", "run", "--log", &std::env::var("AIVM_NET_LOG").unwrap_or_else(|_| "warn".into()), "--home"])
            .arg(&self.homes[i])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("start validator")
    }

    fn client(&self, i: usize) -> RpcClient {
        let mut c = RpcClient::new(self.rpcs[i]);
        c.timeout = Duration::from_secs(5);
        c
    }

    fn height(&self, i: usize) -> Option<u64> {
        self.client(i).call("aivm_status", json!([])).ok().and_then(|s| s["height"].as_u64())
    }

    /// Wait until validator `i` has committed `h`; panics with its log after `secs`.
    fn wait_height(&self, i: usize, h: u64, secs: u64) -> u64 {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            if let Some(got) = self.height(i).filter(|got| *got >= h) {
                return got;
            }
            if Instant::now() > deadline {
                let log = std::fs::read_to_string(self.homes[i].join("node.log")).unwrap_or_default();
                panic!("validator {i} did not reach height {h} in {secs} s (at {:?}); log tail:\n{}", self.height(i), tail(&log));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Wait up to `secs` for validator `i` to exit on its own; panics with `why` otherwise.
    fn wait_exit(&mut self, i: usize, secs: u64, why: &str) -> std::process::ExitStatus {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            if let Some(s) = self.procs[i].as_mut().expect("spawned").try_wait().expect("status") {
                return s;
            }
            assert!(Instant::now() < deadline, "{why}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn kill(&mut self, i: usize) {
        if let Some(mut c) = self.procs[i].take() {
            c.kill().expect("SIGKILL");
            c.wait().expect("reaped");
        }
    }

    fn state_root(&self, i: usize, h: u64) -> Value {
        self.client(i).call("aivm_getBlock", json!([h])).expect("block")["state_root"].clone()
    }

    fn transfer(&mut self, from: usize, to: usize, amount: u128) -> Vec<u8> {
        let to = self.load.addresses()[to];
        self.load.sign(from, Payload::Transfer { to, amount }).encode()
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        for i in 0..self.procs.len() {
            self.kill(i);
        }
        // AIVM_KEEP_NET=1 keeps the homes and logs of a failed run for a look.
        if std::env::var_os("AIVM_KEEP_NET").is_none() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

fn tail(s: &str) -> String {
    s.lines().rev().take(30).collect::<Vec<_>>().into_iter().rev().collect::<Vec<_>>().join("\n")
}

fn wait_receipt(c: &mut RpcClient, hash: &str, secs: u64) -> Value {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let r = c.call("aivm_getReceipt", json!([hash])).expect("getReceipt");
        if !r.is_null() {
            return r;
        }
        assert!(Instant::now() < deadline, "transaction {hash} not committed in {secs} s");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn validators_agree_survive_a_crash_and_catch_up() {
    let _serial = serial();
    let mut net = Net::new("crash", 4, 21000);
    for i in 0..4 {
        net.wait_height(i, 2, 60);
    }

    // Transactions submitted to different validators are all committed, everywhere.
    let mut hashes = Vec::new();
    for i in 0..4 {
        let tx = net.transfer(i, (i + 1) % 4, 1000);
        let h = net.client(i).call("aivm_sendTransaction", json!([to_hex(&tx)])).expect("accepted");
        hashes.push(h.as_str().expect("hash").to_string());
    }
    for (i, h) in hashes.iter().enumerate() {
        let r = wait_receipt(&mut net.client((i + 2) % 4), h, 30);
        assert_eq!(r["status"], "success", "{r}");
    }

    // SIGKILL one validator: the other three (a quorum of 3 of 4) keep finalizing.
    net.kill(3);
    let before = net.height(0).expect("height");
    for i in 0..3 {
        net.wait_height(i, before + 10, 60);
    }
    // Load while it is down, so it has blocks with transactions to catch up on.
    let tx = net.transfer(5, 6, 7);
    let hash = net.client(0).call("aivm_sendTransaction", json!([to_hex(&tx)])).expect("accepted");
    wait_receipt(&mut net.client(1), hash.as_str().expect("hash"), 30);

    // Restarted, it replays its WAL and syncs the blocks it missed.
    let target = net.height(0).expect("height");
    let c = net.spawn(3);
    net.procs[3] = Some(c);
    net.wait_height(3, target, 90);
    let r = net.client(3).call("aivm_getReceipt", json!([hash])).expect("receipt");
    assert_eq!(r["status"], "success", "the restarted validator has the block it missed: {r}");

    // Every block's beacon comes from the threshold seed of its parent's round, except block
    // 1's (genesis has no round): none is the proposer-grindable hash of its parent header.
    let common = (0..4).filter_map(|i| net.height(i)).min().expect("heights");
    for h in 1..=common.min(20) {
        let b = net.client(0).call("aivm_getBlock", json!([h])).expect("block");
        let parent: [u8; 32] = hex::decode(b["parent_hash"].as_str().expect("parent")).expect("hex").try_into().expect("32 bytes");
        let grindable = to_hex(&aivm_runtime::market::jobs::beacon(&parent, None));
        let beacon = b["beacon"].as_str().expect("beacon").to_string();
        assert_eq!(beacon == grindable, h == 1, "block {h}'s beacon");
        assert_eq!(net.client(2).call("aivm_getBlock", json!([h])).expect("block")["beacon"], b["beacon"], "validators agree on block {h}'s beacon");
    }

    // Same state root at every height on every validator.
    assert!(common >= target);
    for h in 0..=common {
        let root = net.state_root(0, h);
        assert!(root.is_string(), "height {h}");
        for i in 1..4 {
            assert_eq!(net.state_root(i, h), root, "validator {i} differs at height {h}");
        }
    }
}

/// Validator 3 unbonds part of its stake, then double-votes (restarted with `--equivocate`):
/// the others turn its votes into evidence, the block carrying it cuts the bonded and the
/// unbonding stake alike (slashable until withdrawn) and tombstones it, and the set recorded
/// next leaves it out, so it stops signing at that set's epoch.
#[test]
fn an_equivocating_validator_is_slashed_on_a_dkg_key() {
    let _serial = serial();
    // Epochs of 10 blocks, so the slashed validator's removal from the signers is seen. The
    // genesis key from the validators' DKG: the reshares that follow start from its output.
    let mut net = Net::keyed("equivocate", 4, 21200, &[], 10, None, Key::Dkg);
    for i in 0..4 {
        net.wait_height(i, 2, 60);
    }
    let genesis: Value = serde_json::from_slice(&std::fs::read(net.homes[0].join("genesis.json")).expect("genesis")).expect("json");
    let identity = |i: usize| genesis["validators"][i]["identity"].as_str().expect("identity").to_string();
    assert_eq!(genesis["validators"][3]["stake"], json!(1000), "staked at genesis");
    let home3 = net.homes[3].to_str().expect("utf8").to_string();
    assert_eq!(to_hex(&aivm_node::keys::NodeKeys::load(&net.homes[3]).expect("keys").identity_public()), identity(3));
    let (code, out, err) = common::aivm(&["validator", "unbond", "--home", &home3, "--rpc", &net.rpcs[0].to_string(), "--amount", "400", "--json"]);
    assert_eq!(code, 0, "{out}{err}");
    // Now it equivocates.
    net.kill(3);
    net.extra.push((3, "--equivocate".into()));
    let c = net.spawn(3);
    net.procs[3] = Some(c);
    let stake = |node: usize, v: usize| net.client(node).call("aivm_getStake", json!([identity(v)])).expect("stake");

    // The double votes are seen, become evidence in a block, and the stake is cut.
    let deadline = Instant::now() + Duration::from_secs(60);
    let cut = loop {
        let s: u128 = stake(0, 3).as_str().expect("stake").parse().expect("number");
        if s < 600 {
            break s;
        }
        assert!(Instant::now() < deadline, "validator 3 was never slashed");
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(cut <= 300, "at least one 50% cut of the 600 left bonded: {cut}");
    let v = net.client(0).call("aivm_getValidator", json!([identity(3)])).expect("validator");
    let unbonding: u128 = v["unbonding"].as_str().expect("unbonding").parse().expect("number");
    assert!(unbonding <= 200, "the unbonding 400 is cut by the same fraction: {v}");
    for honest in 0..3 {
        assert_eq!(stake(0, honest), "1000", "honest validators keep their stake");
    }
    // Tombstoned, and out of the set recorded at the next epoch's first block: the set that
    // signs SET_LAG epochs later, whose shares the reshare before it deals without it.
    let v = net.client(0).call("aivm_getValidator", json!([identity(3)])).expect("validator");
    assert_eq!(v["tombstoned"], json!(true), "{v}");
    let out = v["epoch"].as_u64().expect("epoch") + 1 + aivm_runtime::staking::SET_LAG;
    net.wait_height(0, out * 10 + 1, 120);
    let v = net.client(0).call("aivm_getValidator", json!([identity(3)])).expect("validator");
    assert_eq!((&v["active"], &v["signing"]), (&json!(false), &json!(false)), "removed at the boundary: {v}");
    let honest = net.client(0).call("aivm_getValidator", json!([identity(0)])).expect("validator");
    assert_eq!((&honest["active"], &honest["signing"], &honest["tombstoned"]), (&json!(true), &json!(true), &json!(false)), "{honest}");
    // The network keeps finalizing and agrees on the slashed state.
    let h = net.height(0).expect("height");
    for i in 0..3 {
        net.wait_height(i, h + 3, 60);
    }
    let common = (0..3).filter_map(|i| net.height(i)).min().expect("heights");
    for i in 1..3 {
        assert_eq!(net.state_root(i, common), net.state_root(0, common), "validator {i} at {common}");
    }
}

fn rpc_error(r: Result<Value, ClientError>) -> i64 {
    match r {
        Err(ClientError::Rpc { code, .. }) => code,
        other => panic!("expected a JSON-RPC error, got {other:?}"),
    }
}

#[test]
fn bad_rpc_input_gets_errors_and_the_node_keeps_running() {
    let _serial = serial();
    let mut net = Net::new("badrpc", 1, 21100);
    net.wait_height(0, 1, 60);
    let mut c = net.client(0);

    // Not JSON, not JSON-RPC, unknown method, wrong parameter shapes.
    let garbage = c.post(b"{not json").expect("an HTTP answer");
    assert_eq!(serde_json::from_slice::<Value>(&garbage).expect("json")["error"]["code"], -32700);
    let not_rpc = c.post(b"[1, 2, 3]").expect("an HTTP answer");
    assert!(String::from_utf8_lossy(&not_rpc).contains("-32600"), "{}", String::from_utf8_lossy(&not_rpc));
    assert_eq!(rpc_error(c.call("aivm_noSuchMethod", json!([]))), -32601);
    // Extra trailing parameters are ignored (jsonrpsee's rule, spec/rpc.md): ["zz", "11"] fails on "zz".
    for params in [json!([]), json!([1]), json!(["zz"]), json!(["zz", "11"]), json!({"x": 1})] {
        assert_eq!(rpc_error(c.call("aivm_sendTransaction", params.clone())), -32602, "{params}");
        assert_eq!(rpc_error(c.call("aivm_getReceipt", params.clone())), -32602, "{params}");
    }
    assert_eq!(rpc_error(c.call("aivm_getBlock", json!(["one"]))), -32602);
    assert_eq!(rpc_error(c.call("aivm_getAccount", json!(["12"]))), -32602);
    assert_eq!(rpc_error(c.call("aivm_getHoldings", json!(["12", to_hex(&[1; 32])]))), -32602);
    assert_eq!(rpc_error(c.call("aivm_getHoldings", json!([to_hex(&[1; 32])]))), -32602);
    assert_eq!(rpc_error(c.call("aivm_query", json!([to_hex(&[1; 32]), "x"]))), -32602);
    assert_eq!(rpc_error(c.call("aivm_query", json!([to_hex(&[1; 32]), "balance_of", "00"]))), -32000, "no contract there");

    // Transactions: undecodable, badly signed, wrong chain, unfunded sender, nonce replay.
    assert_eq!(rpc_error(c.call("aivm_sendTransaction", json!([to_hex(&[0xff; 100])]))), -32000);
    let mut tx = net.transfer(0, 1, 5);
    let n = tx.len();
    tx[n - 3] ^= 1; // inside the signature
    assert_eq!(rpc_error(c.call("aivm_sendTransaction", json!([to_hex(&tx)]))), -32000);
    let mut other_chain = P2p::new(CHAIN_ID + 1, 8, 3);
    let to = other_chain.addresses()[1];
    let wrong_chain = other_chain.sign(0, Payload::Transfer { to, amount: 1 }).encode();
    assert_eq!(rpc_error(c.call("aivm_sendTransaction", json!([to_hex(&wrong_chain)]))), -32000);
    let mut stranger = P2p::new(CHAIN_ID, 200, 3);
    let to = stranger.addresses()[0];
    let unfunded = stranger.sign(150, Payload::Transfer { to, amount: 1 }).encode();
    assert_eq!(rpc_error(c.call("aivm_sendTransaction", json!([to_hex(&unfunded)]))), -32000);
    let good = net.transfer(2, 3, 5);
    let hash = c.call("aivm_sendTransaction", json!([to_hex(&good)])).expect("accepted");
    assert_eq!(rpc_error(c.call("aivm_sendTransaction", json!([to_hex(&good)]))), -32000, "duplicate");
    wait_receipt(&mut c, hash.as_str().expect("hash"), 30);
    assert_eq!(rpc_error(c.call("aivm_sendTransaction", json!([to_hex(&good)]))), -32000, "replayed nonce");

    // Oversized: a body over the server's limit is refused at the HTTP layer.
    let huge = vec![b'a'; (aivm_node::rpc::MAX_REQUEST_BYTES as usize) + 10];
    let body = [&b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"aivm_sendTransaction\",\"params\":[\""[..], &huge, b"\"]}"].concat();
    assert!(c.post(&body).is_err(), "an over-limit body is refused");
    // A transaction over the protocol size limit, within the body limit: refused by the mempool.
    let big = net.load.sign(4, Payload::Deploy { code: vec![0; aivm_runtime::tx::MAX_TX_BYTES], args: Vec::new() }).encode();
    assert_eq!(rpc_error(net.client(0).call("aivm_sendTransaction", json!([to_hex(&big)]))), -32000);

    // A batch over the limit is refused whole (JSON-RPC error -32010), none of it run.
    let mut c = net.client(0);
    let calls: Vec<Value> = (0..=aivm_node::rpc::MAX_BATCH as u64).map(|i| json!({"jsonrpc": "2.0", "id": i, "method": "aivm_status", "params": []})).collect();
    let over = c.post(&serde_json::to_vec(&calls).expect("json")).expect("an HTTP answer");
    assert!(String::from_utf8_lossy(&over).contains("-32010"), "{}", String::from_utf8_lossy(&over[..over.len().min(300)]));

    // Spam: a burst of batches of junk; every item gets an error.
    for _ in 0..20 {
        let answers = c.batch("aivm_sendTransaction", (0..200).map(|i| json!([to_hex(&[i as u8; 64])])).collect()).expect("batch answered");
        assert!(answers.iter().all(|a| matches!(a, Err(ClientError::Rpc { code: -32000, .. }))));
    }

    // Per-peer limits (defaults: 32 connections, a burst of 10 000 calls, then 2 000/s). Other
    // loopback addresses are other peers: what one is refused, 127.0.0.1 still gets.
    let limits = aivm_node::rpc::RpcLimits::default();
    let rpc = net.rpcs[0];
    let hog: std::net::IpAddr = "127.0.0.5".parse().expect("ip");
    let held: Vec<_> = (0..limits.connections_per_peer)
        .map(|_| {
            let mut s = aivm_node::rpc_client::connect(rpc, Some(hog), Duration::from_secs(5)).expect("within the limit");
            s.write_all(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n").expect("request");
            s
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    let mut over = aivm_node::rpc_client::connect(rpc, Some(hog), Duration::from_secs(5)).expect("TCP accepts");
    over.set_read_timeout(Some(Duration::from_secs(5))).expect("timeout");
    let _ = over.write_all(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n");
    let mut buf = [0u8; 64];
    assert!(matches!(over.read(&mut buf), Ok(0) | Err(_)), "a connection over the per-peer limit is closed unanswered");
    assert!(net.height(0).is_some(), "another peer is served meanwhile");
    drop(held);
    let mut flooder = net.client(0);
    flooder.source = Some("127.0.0.6".parse().expect("ip"));
    let mut limited = false;
    for _ in 0..(2 * limits.burst / aivm_node::rpc::MAX_BATCH) {
        let calls: Vec<Value> =
            (0..aivm_node::rpc::MAX_BATCH as u64).map(|i| json!({"jsonrpc": "2.0", "id": i, "method": "aivm_status", "params": []})).collect();
        let answer = flooder.post(&serde_json::to_vec(&calls).expect("json")).expect("an HTTP answer");
        if String::from_utf8_lossy(&answer).contains(&aivm_node::rpc::RATE_LIMITED.to_string()) {
            limited = true;
            break;
        }
    }
    assert!(limited, "a peer calling past its burst is refused with {}", aivm_node::rpc::RATE_LIMITED);
    assert!(net.height(0).is_some(), "another peer is served meanwhile");

    // Plain-HTTP health check on the RPC port.
    let health = http_get(net.rpcs[0], aivm_node::rpc::HEALTH_PATH);
    assert!(health.starts_with("HTTP/1.1 200") && health.contains("\"height\"") && health.contains("head_age_ms"), "{health}");

    // The WebSocket subscription delivers finalized blocks; metrics are served.
    let ws = ws_first_notification(net.rpcs[0]);
    assert_eq!(ws["method"], "aivm_finalized", "{ws}");
    assert!(ws["params"]["result"]["height"].as_u64().expect("height") >= 1, "{ws}");
    let metrics = http_get(SocketAddr::from(([127, 0, 0, 1], 21100 + 2000)), "/metrics");
    assert!(metrics.contains("finalized_height"), "metrics: {}", &metrics[..metrics.len().min(500)]);

    // Still serving and still finalizing.
    let h = net.height(0).expect("still answering");
    net.wait_height(0, h + 2, 30);
    let acct = net.client(0).call("aivm_getAccount", json!([to_hex(&net.load.addresses()[3])])).expect("account");
    assert_eq!(acct["balance"], ((1u128 << 60) + 5).to_string());
}

#[test]
fn devnet_reports_load_and_agreement_on_a_dkg_key() {
    let _serial = serial();
    let dir = std::env::temp_dir().join(format!("aivm-devnet-test-{}", std::process::id()));
    let token = aivm_testkit::contracts_dir().join("token.wasm");
    let (code, out, err) = common::aivm(&[
        "devnet",
        "--validators",
        "4",
        "--duration",
        "4",
        "--load",
        "300",
        "--accounts",
        "50",
        "--json",
        "--port",
        "21300",
        "--dir",
        dir.to_str().expect("utf8"),
        "--token",
        token.to_str().expect("utf8"),
        // The threshold key from the validators' DKG, not a dealer: the chain's certificates
        // and seeds verify under it.
        "--dkg",
    ]);
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(code, 0, "stdout: {out}\nstderr: {err}");
    let r: Value = serde_json::from_str(out.trim()).expect("one JSON report");
    assert_eq!(r["threshold_key"]["made_by"], "dkg", "{r}");
    assert_eq!(r["roots_agree"], true, "{r}");
    assert!(r["finalized"].as_u64().expect("finalized") > 500, "{r}");
    assert_eq!(r["failed_receipts"], 0, "{r}");
    assert!(r["finality_ms"]["p99"].as_f64().expect("p99") > 0.0);
    let heights = r["heights"].as_array().expect("heights");
    assert_eq!(heights.len(), 4);
    // Gossip put every transaction in every pool, so every validator verified peers' blocks
    // without checking those transactions' signatures again.
    let reused = r["cpu"]["reused_verified_per_validator"].as_array().expect("reuse counts");
    assert_eq!(reused.len(), 4, "{r}");
    assert!(reused.iter().all(|n| n.as_u64().unwrap_or(0) > 0), "{r}");
    let mean = &r["cpu"]["mean_validator_us_per_tx"];
    assert!(mean["signatures"].as_f64().unwrap_or(0.0) > 0.0 && mean["total"].as_f64().unwrap_or(0.0) > mean["signatures"].as_f64().unwrap_or(0.0), "{r}");
}

fn http_get(addr: SocketAddr, path: &str) -> String {
    let mut s = std::net::TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
    write!(s, "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").expect("request");
    let mut out = String::new();
    s.read_to_string(&mut out).expect("response");
    out
}

/// Subscribe over WebSocket (a minimal client: handshake, one masked text frame) and return
/// the first notification.
fn ws_first_notification(addr: SocketAddr) -> Value {
    use std::io::{BufRead, BufReader};
    let mut s = std::net::TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(20))).expect("timeout");
    write!(s, "GET / HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n").expect("upgrade");
    let mut r = BufReader::new(s.try_clone().expect("clone"));
    let mut line = String::new();
    r.read_line(&mut line).expect("status");
    assert!(line.contains("101"), "upgrade refused: {line}");
    loop {
        line.clear();
        r.read_line(&mut line).expect("header");
        if line.trim().is_empty() {
            break;
        }
    }
    let msg = br#"{"jsonrpc":"2.0","id":1,"method":"aivm_subscribeFinalized","params":[]}"#;
    let mask = [1u8, 2, 3, 4];
    let mut frame = vec![0x81, 0x80 | msg.len() as u8];
    frame.extend_from_slice(&mask);
    frame.extend(msg.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    s.write_all(&frame).expect("send");
    loop {
        let mut head = [0u8; 2];
        r.read_exact(&mut head).expect("frame");
        let mut len = (head[1] & 0x7f) as usize;
        if len == 126 {
            let mut b = [0u8; 2];
            r.read_exact(&mut b).expect("len");
            len = u16::from_be_bytes(b) as usize;
        } else if len == 127 {
            let mut b = [0u8; 8];
            r.read_exact(&mut b).expect("len");
            len = u64::from_be_bytes(b) as usize;
        }
        let mut payload = vec![0; len];
        r.read_exact(&mut payload).expect("payload");
        if head[0] & 0x0f != 1 {
            continue; // not a text frame (ping)
        }
        let v: Value = serde_json::from_slice(&payload).expect("json");
        if v.get("method").is_some() {
            return v;
        }
    }
}

/// Resident memory of a process, from /proc (Linux), in bytes.
fn rss(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kb: u64 = status.lines().find(|l| l.starts_with("VmRSS:"))?.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// A wasm contract whose `spin` entry loops until it runs out of gas.
fn spinner() -> Vec<u8> {
    wat::parse_str(r#"(module (memory (export "memory") 1) (func (export "spin") (loop (br 0))))"#).expect("wat")
}

/// One byzantine leader (every kind of invalid proposal in turn: over the gas limit, huge gas
/// at price 0, a wrong header, duplicates, a replay, a future time, bad evidence, oversized)
/// and an RPC flood (queries that burn their whole gas budget, transaction batches) against
/// one honest validator, at the same time: honest validators refuse every invalid block, none
/// exits, finality continues, and every validator agrees on every state root. Validators
/// start small (resident memory well under the 4.4 GB the old p2p quotas took).
#[test]
fn a_byzantine_leader_and_an_rpc_flood_do_not_stall_the_chain() {
    let _serial = serial();
    let mut net = Net::with_args("byzantine", 4, 21400, &[(3, "--byzantine=all")]);
    for i in 0..4 {
        net.wait_height(i, 1, 60);
    }
    for (i, p) in net.procs.iter().enumerate() {
        let bytes = rss(p.as_ref().expect("running").id()).expect("VmRSS");
        assert!(bytes < 1 << 30, "validator {i} holds {} MiB at start", bytes >> 20);
    }

    // A contract that burns whatever gas a query gives it.
    net.load.gas_limit = 100_000_000; // a deploy pays its compilation (spec/gas.md)
    let deploy = net.load.sign(7, Payload::Deploy { code: spinner(), args: Vec::new() }).encode();
    net.load.gas_limit = 2_000_000;
    let hash = net.client(0).call("aivm_sendTransaction", json!([to_hex(&deploy)])).expect("deploy accepted");
    let r = wait_receipt(&mut net.client(0), hash.as_str().expect("hash"), 60);
    let spin = r["contract_address"].as_str().expect("deployed").to_string();

    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let rpc = net.rpcs[0];
    let mut flood = Vec::new();
    let (busy, answered) = (std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0)), std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0)));
    let limited = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    // Each query thread is a peer of its own (its own loopback address), within the per-peer
    // limits: the node's global query limit is what refuses them.
    for q in 0..12u8 {
        let (stop, spin, busy, answered) = (stop.clone(), spin.clone(), busy.clone(), answered.clone());
        flood.push(std::thread::spawn(move || {
            let mut c = RpcClient::new(rpc);
            c.source = Some(std::net::IpAddr::from([127, 0, 1, q + 1]));
            c.timeout = Duration::from_secs(10);
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                match c.call("aivm_query", json!([spin, "spin", "", u64::MAX])) {
                    Ok(v) => {
                        assert_eq!(v["status"], "error", "{v}");
                        answered.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
                    Err(ClientError::Rpc { code: -32005, .. }) => {
                        busy.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
                    Err(_) => {}
                }
            }
        }));
    }
    // Two batch threads from one address: as fast as they can, so past that peer's call rate.
    for t in 0..2 {
        let (stop, limited) = (stop.clone(), limited.clone());
        flood.push(std::thread::spawn(move || {
            let mut c = RpcClient::new(rpc);
            c.source = Some(std::net::IpAddr::from([127, 0, 2, 1]));
            c.timeout = Duration::from_secs(10);
            let mut i = 0u32;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let junk = (0..500).map(|k| json!([to_hex(&[(t * 7 + i + k) as u8; 120])])).collect();
                if let Err(ClientError::Rpc { code, .. }) = c.batch("aivm_sendTransaction", junk) {
                    if code == i64::from(aivm_node::rpc::RATE_LIMITED) {
                        limited.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
                }
                i += 1;
            }
        }));
    }

    // Real load on every validator, the byzantine one included (its proposals then carry
    // transactions to duplicate and replay).
    let deadline = Instant::now() + Duration::from_secs(120);
    let log3 = net.homes[3].join("node.log");
    let kinds = ["OverGas", "HugeGas", "BadHeader", "Duplicates", "Replay", "FutureTime", "BadEvidence", "Oversized", "BadSeed"];
    let mut sent = 0;
    loop {
        for v in 0..4 {
            let from = sent % 6;
            let tx = net.transfer(from, (from + 1) % 6, 1);
            let _ = net.client(v).call("aivm_sendTransaction", json!([to_hex(&tx)]));
            sent += 1;
        }
        let log = std::fs::read_to_string(&log3).unwrap_or_default();
        // Until every kind was tried and the batch flooder ran past its peer's call rate.
        let flooded = limited.load(std::sync::atomic::Ordering::Relaxed) > 0;
        if flooded && kinds.iter().all(|k| log.contains(&format!("byzantine proposal: {k}"))) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the byzantine leader did not try every kind in time, or the flooder was never limited ({flooded}); log tail:\n{}",
            tail(&log)
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    let h = (0..3).filter_map(|i| net.height(i)).max().expect("height");
    for i in 0..4 {
        net.wait_height(i, h + 3, 60);
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for t in flood {
        t.join().expect("flood thread");
    }
    assert!(busy.load(std::sync::atomic::Ordering::Relaxed) > 0, "queries over the concurrency limit are refused");
    assert!(answered.load(std::sync::atomic::Ordering::Relaxed) > 0, "queries within it are answered");
    assert!(limited.load(std::sync::atomic::Ordering::Relaxed) > 0, "the batch flooder was held to its call rate");

    // Every validator still runs and agrees at every height.
    for (i, p) in net.procs.iter_mut().enumerate() {
        assert!(p.as_mut().expect("spawned").try_wait().expect("status").is_none(), "validator {i} exited");
    }
    let refusals: usize =
        (0..3).map(|i| std::fs::read_to_string(net.homes[i].join("node.log")).unwrap_or_default().matches("refused a proposal").count()).sum();
    assert!(refusals > 0, "honest validators refused the invalid proposals");
    let logs: String = (0..3).map(|i| std::fs::read_to_string(net.homes[i].join("node.log")).unwrap_or_default()).collect();
    let refused: Vec<&str> = logs.lines().filter(|l| l.contains("refused a proposal")).collect();
    assert!(refused.iter().any(|l| l.contains("seed: ")), "a proposal whose seed does not verify is refused: {refused:?}");
    let common = (0..4).filter_map(|i| net.height(i)).min().expect("heights");
    for h in 0..=common {
        let root = net.state_root(0, h);
        for i in 1..4 {
            assert_eq!(net.state_root(i, h), root, "validator {i} differs at height {h}");
        }
    }
}

/// A validator whose committer thread dies stops with exit code 4 instead of voting on
/// without committing (before, the thread died silently and the process kept running).
#[test]
fn a_dead_committer_stops_the_node_with_exit_code_4() {
    let _serial = serial();
    let mut net = Net::with_args("committer", 1, 21500, &[(0, "--panic-commit-at=3")]);
    let status = net.wait_exit(0, 60, "the node kept running after its committer died");
    assert_eq!(status.code(), Some(4), "{status:?}");
    assert!(net.height(0).is_none(), "nothing serves after the stop");
}

/// A validator whose consensus engine stops (in production: its journal's storage failed)
/// exits with code 5 instead of 0 (before, the process ended as if asked to).
#[test]
fn a_stopped_engine_stops_the_node_with_exit_code_5() {
    let _serial = serial();
    let mut net = Net::with_args("engine", 1, 21600, &[(0, "--abort-engine-at=2"), (0, "--log-format=json")]);
    let status = net.wait_exit(0, 60, "the node kept running after its engine stopped");
    assert_eq!(status.code(), Some(5), "{status:?}");
    let log = std::fs::read_to_string(net.homes[0].join("node.log")).unwrap_or_default();
    assert!(log.lines().any(|l| l.starts_with('{') && l.contains("\"level\"")), "--log-format json writes JSON lines:\n{}", tail(&log));
}

/// `aivm devnet --dir` never deletes a directory it did not make.
#[test]
fn devnet_refuses_a_directory_it_did_not_make() {
    let dir = std::env::temp_dir().join(format!("aivm-not-a-devnet-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    std::fs::write(dir.join("keep.txt"), b"precious").expect("file");
    let (code, _, err) = common::aivm(&["devnet", "--dir", dir.to_str().expect("utf-8"), "--validators", "1", "--duration", "1"]);
    assert_ne!(code, 0);
    assert!(err.contains("not made by `aivm devnet`"), "{err}");
    assert_eq!(std::fs::read(dir.join("keep.txt")).expect("still there"), b"precious");
    let _ = std::fs::remove_dir_all(&dir);
}

/// SIGTERM stops a validator cleanly: it finishes the block in hand, flushes its store and
/// exits 0; restarted on the same home, it carries on from where it stopped.
#[test]
fn sigterm_shuts_a_validator_down_cleanly() {
    let _serial = serial();
    let mut net = Net::new("sigterm", 1, 21700);
    let h = net.wait_height(0, 3, 60);
    let pid = net.procs[0].as_ref().expect("running").id();
    // SAFETY: kill has no memory-safety preconditions; pid is our child.
    assert_eq!(unsafe { libc::kill(pid as i32, libc::SIGTERM) }, 0);
    let status = net.wait_exit(0, 30, "SIGTERM did not stop the validator");
    assert_eq!(status.code(), Some(0), "{status:?}");
    let log = std::fs::read_to_string(net.homes[0].join("node.log")).unwrap_or_default();
    assert!(log.contains("shut down cleanly"), "{}", tail(&log));
    let c = net.spawn(0);
    net.procs[0] = Some(c);
    net.wait_height(0, h + 2, 60);
}

/// `aivm devnet --validators 4 --max-tokens 8 --json` with `args`, in a directory of its own;
/// its report (the command must succeed).
fn market_devnet(tag: &str, args: &[&str]) -> Value {
    let dir = std::env::temp_dir().join(format!("aivm-{tag}-devnet-test-{}", std::process::id()));
    let mut all = vec!["devnet", "--validators", "4", "--max-tokens", "8", "--json", "--dir", dir.to_str().expect("utf8")];
    all.extend_from_slice(args);
    let (code, out, err) = common::aivm(&all);
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(code, 0, "stdout: {out}\nstderr: {err}");
    serde_json::from_str(out.trim()).expect("one JSON report")
}

/// [`market_devnet`] with `--serve`: the devnet keeps running after its report, as the README
/// tells a newcomer, while `ask(rpc, client_home)` runs; then SIGINT to its process group (what
/// Ctrl-C does) stops the devnet and every validator and worker it started.
fn serving_market_devnet(tag: &str, args: &[&str], ask: impl FnOnce(&str, &str)) -> Value {
    use std::io::BufRead;
    use std::os::unix::process::CommandExt;
    let dir = std::env::temp_dir().join(format!("aivm-{tag}-devnet-test-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let stderr_path = std::env::temp_dir().join(format!("aivm-{tag}-devnet-test-{}.stderr", std::process::id()));
    let stderr = std::fs::File::create(&stderr_path).expect("stderr file");
    let mut all = vec!["devnet", "--validators", "4", "--max-tokens", "8", "--json", "--serve", "--dir", dir.to_str().expect("utf8")];
    all.extend_from_slice(args);
    let mut child = Command::new(env!("CARGO_BIN_EXE_aivm")).args(&all).process_group(0).stdout(Stdio::piped()).stderr(stderr).spawn().expect("spawn devnet");
    let group = child.id() as i32;
    let stop = |sig| unsafe { libc::kill(-group, sig) };
    let mut lines = std::io::BufReader::new(child.stdout.take().expect("stdout")).lines();
    let mut report = Value::Null;
    let mut asked = false;
    // Its own bounds end the devnet if the market never comes up (the jobs' deadline), which
    // closes stdout.
    for line in lines.by_ref() {
        let line = line.expect("read the devnet's stdout");
        if report.is_null() && line.starts_with('{') {
            report = serde_json::from_str(&line).expect("one JSON report");
        }
        let words: Vec<&str> = line.split_whitespace().collect();
        if let (Some(0), Some(rpc), Some(home)) = (words.iter().position(|w| *w == "aivm"), words.get(4), words.get(6)) {
            if words.get(1) == Some(&"job") && words.get(3) == Some(&"--rpc") && words.get(5) == Some(&"--home") {
                ask(rpc, home);
                asked = true;
                break;
            }
        }
    }
    stop(libc::SIGINT);
    let deadline = Instant::now() + Duration::from_secs(30);
    while child.try_wait().expect("wait").is_none() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    stop(libc::SIGKILL);
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&dir);
    let log = std::fs::read_to_string(&stderr_path).unwrap_or_default();
    let _ = std::fs::remove_file(&stderr_path);
    assert!(asked, "the devnet never said how to ask it (report: {report}); its stderr: {}", tail(&log));
    report
}

/// What the README's newcomer does against a serving devnet: `aivm job submit --wait` until
/// an honest worker answers (the draw may give the cheater the first job, which is slashed and
/// refunded), then `aivm job status`: the answer, the check's gas and the fee's five parts.
fn ask_the_market(rpc: &str, home: &str) {
    for _ in 0..3 {
        let (code, out, err) = common::aivm(&[
            "job",
            "submit",
            "--rpc",
            rpc,
            "--home",
            home,
            "--prompt",
            "What is the capital of France?",
            "--max-tokens",
            "8",
            "--budget",
            "1000000",
            "--wait",
        ]);
        let id = out.split_whitespace().nth(1).map(|w| w.trim_end_matches(':').to_string()).unwrap_or_default();
        assert_eq!(id.len(), 64, "stdout: {out}\nstderr: {err}");
        if code != 0 {
            assert!(out.contains("worker slashed") && out.contains("the client was refunded"), "stdout: {out}\nstderr: {err}");
            continue;
        }
        assert!(out.contains("state: settled") && out.contains("answer: ") && out.contains("paid: worker"), "{out}");
        let (code, out, err) = common::aivm(&["job", "status", &id, "--rpc", rpc, "--json"]);
        assert_eq!(code, 0, "{err}");
        let j: Value = serde_json::from_str(out.trim()).expect("job JSON");
        assert_eq!(j["state"], "settled", "{j}");
        assert!(!j["output"].as_array().expect("output").is_empty(), "{j}");
        assert!(j["ended_by"]["gas_used"].as_u64().is_some_and(|g| g > 0), "{j}");
        let p = &j["payout"];
        let parts: u128 =
            ["worker", "validators", "verifiers", "liquidity", "burned"].iter().map(|k| p[k].as_str().expect("part").parse::<u128>().expect("amount")).sum();
        assert_eq!(parts.to_string(), j["fee"].as_str().expect("fee"), "the five parts are the fee: {j}");
        return;
    }
    panic!("three jobs and none answered by an honest worker");
}

/// An LP's and a worker's round trip on a serving devnet: buy compute units, deposit them
/// with native in the pool's ratio, see the shares, burn them all; a worker's bond seen,
/// partly unbonded, and not withdrawable before its delay.
fn provide_liquidity_and_unbond(rpc: &str, home: &str) {
    let ok = |args: &[&str]| {
        let (code, out, err) = common::aivm(args);
        assert_eq!(code, 0, "{args:?}\nstdout: {out}\nstderr: {err}");
        out
    };
    let holdings = || -> Value { serde_json::from_str(ok(&["pool", "show", "--rpc", rpc, "--home", home, "--json"]).trim()).expect("pool JSON") };
    let before = holdings();
    assert_eq!(before["holdings"]["shares"], "0", "{before}");
    // A swap that would fill below its floor is refused and moves nothing; a deposit of units
    // the account does not hold is refused before it is sent.
    let (code, _, err) = common::aivm(&["pool", "swap", "--rpc", rpc, "--home", home, "--sell", "native", "--amount", "50000", "--min-out", "1000000"]);
    assert!(code == 1 && err.contains("below the minimum"), "{err}");
    let (code, _, err) = common::aivm(&["pool", "add", "--rpc", rpc, "--home", home, "--native", "20000"]);
    assert!(code == 2 && err.contains("buy them first"), "{err}");
    let out = ok(&["pool", "swap", "--rpc", rpc, "--home", home, "--sell", "native", "--amount", "50000"]);
    assert!(out.starts_with("sold 50000 native for "), "{out}");
    let out = ok(&["pool", "add", "--rpc", rpc, "--home", home, "--native", "20000"]);
    assert!(out.starts_with("deposited 20000 native and "), "{out}");
    let lp = holdings();
    assert_ne!(lp["holdings"]["shares"], "0", "{lp}");
    assert!(lp["holdings"]["redeemable"]["native"].as_str().is_some_and(|n| n.parse::<u128>().unwrap() <= 20_000), "rounding favours the pool: {lp}");
    let out = ok(&["pool", "remove", "--rpc", rpc, "--home", home, "--all"]);
    assert!(out.starts_with("burned "), "{out}");
    assert_eq!(holdings()["holdings"]["shares"], "0");

    // The devnet's worker homes are beside the client's; the first ones cheat.
    let worker = std::path::Path::new(home).with_file_name("w1");
    let worker = worker.to_str().expect("utf8");
    let bond = |w: &str| -> Value { serde_json::from_str(ok(&["worker", "status", "--rpc", rpc, "--home", w, "--json"]).trim()).expect("bond JSON") };
    let b = bond(worker);
    let bonded: u128 = b["bonded"].as_str().expect("bonded").parse().expect("amount");
    ok(&["worker", "unbond", "--rpc", rpc, "--home", worker, "--amount", "1000"]);
    let after = bond(worker);
    assert_eq!((after["bonded"].as_str(), after["unbonding"].as_str()), (Some((bonded - 1000).to_string().as_str()), Some("1000")), "{after}");
    let (code, _, err) = common::aivm(&["worker", "withdraw", "--rpc", rpc, "--home", worker]);
    assert!(code == 1 && err.contains("too early"), "withdrawing before the delay: {err}");
}

/// The compute market on the devnet with the real model: honest workers' jobs settle, the
/// cheater (another model claimed as this one) is caught on its jobs and slashed, no honest
/// worker is, and every validator agrees. Then a newcomer's question through `aivm job
/// submit` gets its answer and `aivm job status` shows the payout; an LP and a worker use
/// `aivm pool` and `aivm worker status|unbond|withdraw`.
#[test]
fn market_devnet_pays_honest_workers_and_slashes_a_cheater() {
    if !common::have_model() {
        return;
    }
    let _serial = serial();
    // Workers batch the jobs waiting for them (`aivm worker run --batch`), each committed as
    // its solo run would be: the chain must not tell the difference.
    let r = serving_market_devnet("market", &["--workers", "2", "--cheaters", "1", "--jobs", "4", "--worker-batch", "4", "--port", "21500"], |rpc, home| {
        ask_the_market(rpc, home);
        provide_liquidity_and_unbond(rpc, home);
    });
    assert_eq!(r["roots_agree"], true, "{r}");
    // Stake-weighted selection may give the cheater no job; one that served is caught.
    assert_eq!(r["cheaters_caught"], r["cheaters_with_jobs"], "{r}");
    assert_eq!(r["honest_workers_slashed"], 0, "{r}");
    let jobs = &r["jobs"];
    assert_eq!(jobs["submitted"], 4, "{r}");
    // The draw is by job id (stake-weighted, equal stakes here): the cheater gets all four jobs
    // one run in sixteen, so "some job settled" cannot be asserted; every honest one did.
    let by_cheaters = jobs["by_cheaters"].as_u64().expect("by_cheaters");
    assert_eq!(jobs["settled"].as_u64(), Some(4 - by_cheaters), "every honest worker's job settled: {r}");
    assert_eq!(jobs["settled"].as_u64().unwrap() + jobs["slashed_and_refunded"].as_u64().unwrap(), 4, "every job ended once: {r}");
    assert_eq!(jobs["slashed_and_refunded"], jobs["by_cheaters"], "exactly the cheater's jobs were slashed: {r}");
    // Challenges JSON-RPC showed before their block were the ones the chain drew.
    assert_eq!(r["challenges_shown_early"]["wrong"], 0, "{r}");
}

/// A cheat the per-job sample rarely sees (a changed last token) settles — then a verifier
/// that re-runs every settled job disputes it, the worker has to open the step where the runs
/// part, fails, and is slashed; the honest worker's jobs stand.
#[test]
fn market_devnet_verifiers_dispute_what_the_sample_missed() {
    if !common::have_model() {
        return;
    }
    let _serial = serial();
    let r = market_devnet("dispute", &["--workers", "2", "--cheaters", "1", "--cheat", "wrong-token", "--verifiers", "1", "--jobs", "3", "--port", "21600"]);
    assert_eq!(r["roots_agree"], true, "{r}");
    assert_eq!(r["honest_workers_slashed"], 0, "{r}");
    let jobs = &r["jobs"];
    // Selection is stake-weighted: the cheater may get no job. A cheater job is caught by a
    // dispute, or (when the sample happens to check the last token's step) at once.
    assert_eq!(r["cheaters_caught"], r["cheaters_with_jobs"], "{r}");
    assert!(jobs["disputed"].as_u64().unwrap() <= jobs["by_cheaters"].as_u64().unwrap(), "only the cheater's jobs are disputed: {r}");
    assert_eq!(jobs["slashed_and_refunded"], jobs["by_cheaters"], "exactly the cheater's jobs were slashed: {r}");
    // The verifier re-ran every job (α = 1): the honest ones it attested and proved, and was paid.
    if jobs["settled"].as_u64().unwrap_or(0) > 0 {
        let paid = &r["verifier_attestations_paid"];
        assert!(paid["count"].as_u64().unwrap_or(0) >= 1 && paid["total"] != "0", "{r}");
    }
}

/// The optimistic TEE track on the devnet (devnet attestations: not a TEE): every job is
/// provisional in its commit's block; with ρ = 1 every one is spot-checked, so the cheater (a
/// "compromised enclave" attesting another model's output) is caught, while honest workers'
/// jobs become final after the window and are paid.
#[test]
fn market_devnet_runs_the_optimistic_tee_track() {
    if !common::have_model() {
        return;
    }
    let _serial = serial();
    let r = market_devnet("tee", &["--workers", "3", "--cheaters", "1", "--tee", "--spot-rate", "1", "--jobs", "3", "--port", "21800"]);
    assert_eq!(r["roots_agree"], true, "{r}");
    assert_eq!(r["honest_workers_slashed"], 0, "{r}");
    assert_eq!(r["cheaters_caught"], r["cheaters_with_jobs"], "{r}");
    let jobs = &r["jobs"];
    assert_eq!(jobs["settled"].as_u64().unwrap() + jobs["slashed_and_refunded"].as_u64().unwrap(), 3, "every job ended once: {r}");
    assert_eq!(jobs["slashed_and_refunded"], jobs["by_cheaters"], "exactly the cheater's jobs were slashed: {r}");
    let tee = &r["tee"];
    assert!(tee["blocks_submit_to_provisional"]["p50"].as_f64().is_some(), "{r}");
    assert!(tee["spot_checked"].as_u64().unwrap() >= jobs["settled"].as_u64().unwrap(), "ρ = 1 checks every job: {r}");
    if jobs["settled"].as_u64().unwrap() > 0 {
        assert!(tee["blocks_provisional_to_paid"]["p50"].as_f64().unwrap() > 25.0, "paid only after the window (W = 25): {r}");
    }
}

/// A contract developer's round trip against a running validator: keys, deploy with init
/// args, send, query, receipt, block — each a real `aivm` command over JSON-RPC.
#[test]
fn deploy_send_and_query_over_rpc() {
    let _serial = serial();
    let net = Net::new("client", 1, 21700);
    net.wait_height(0, 1, 60);
    let rpc = net.rpcs[0].to_string();
    let home = net.homes[0].to_str().expect("utf8").to_string();
    // Every client command with --json (the text form is for people).
    let run = |args: &[&str]| -> (i32, Value) {
        let args: Vec<&str> = args.iter().copied().chain(["--json"]).collect();
        let (code, out, err) = common::aivm(&args);
        (code, serde_json::from_str(out.trim()).unwrap_or_else(|_| json!({"stdout": out, "stderr": err})))
    };
    let fresh = net.dir.join("fresh-key");
    let (code, k) = run(&["keys", "new", "--home", fresh.to_str().unwrap()]);
    assert_eq!(code, 0, "{k}");
    assert_eq!(k["address"].as_str().map(str::len), Some(64));
    assert_eq!(run(&["keys", "new", "--home", fresh.to_str().unwrap()]).0, 2, "never overwrites a key");
    let (code, shown) = run(&["keys", "show", "--home", fresh.to_str().unwrap(), "--rpc", &rpc]);
    assert_eq!((code, &shown["address"], &shown["account"]), (0, &k["address"], &Value::Null), "{shown}");
    let (code, listed) = run(&["keys", "list", "--dir", net.dir.to_str().unwrap()]);
    let addrs: Vec<&Value> = listed.as_array().map(|l| l.iter().map(|e| &e["address"]).collect()).unwrap_or_default();
    assert!(code == 0 && addrs.len() == 2 && addrs.contains(&&k["address"]), "the validator's and the new key: {listed}");

    let token = aivm_testkit::contracts_dir().join("token.wasm");
    let (_, me) = run(&["keys", "show", "--home", &home, "--rpc", &rpc]);
    let deployer: [u8; 32] = aivm_node::hexbytes::from_hex(me["address"].as_str().expect("address")).and_then(|v| v.try_into().ok()).expect("32 bytes");
    let nonce = me["account"]["nonce"].as_u64().expect("the validator's account");
    // Arguments are checked against the contract's schema before anything is signed.
    let (code, bad) = run(&["deploy", token.to_str().unwrap(), "--init-args", r#"{"suply": 1000}"#, "--home", &home, "--rpc", &rpc]);
    assert!(code == 2 && bad["stderr"].as_str().is_some_and(|e| e.contains("unknown field `suply`")), "{bad}");
    let (code, d) = run(&["deploy", token.to_str().unwrap(), "--init-args", r#"{"supply": 1000}"#, "--home", &home, "--rpc", &rpc]);
    assert_eq!((code, d["status"].as_str()), (0, Some("success")), "{d}");
    let contract = d["contract_address"].as_str().expect("address").to_string();
    let bob = "b0".repeat(32);
    let (code, bad) = run(&["send", &contract, "transfer", "--args", &format!(r#"{{"to":"{bob}","amount":"120"}}"#), "--home", &home, "--rpc", &rpc]);
    assert!(code == 2 && bad["stderr"].as_str().is_some_and(|e| e.contains("args.amount: expected u64")), "{bad}");
    let (code, bad) = run(&["query", &contract, "balanceof", "--args", &format!(r#""{bob}""#), "--rpc", &rpc]);
    assert!(code == 2 && bad["stderr"].as_str().is_some_and(|e| e.contains("no entry point `balanceof`")), "{bad}");
    let (code, s) = run(&["send", &contract, "transfer", "--args", &format!(r#"{{"to":"{bob}","amount":120}}"#), "--home", &home, "--rpc", &rpc]);
    assert_eq!((code, s["status"].as_str()), (0, Some("success")), "{s}");
    // The testkit charges what the chain charged for the same two transactions, at the same address.
    let wasm = std::fs::read(&token).expect("token.wasm");
    let mut kit = aivm_testkit::TestChain::new();
    kit.chain_id = CHAIN_ID;
    kit.set_nonce(deployer, nonce);
    let t = kit.deploy_by(deployer, &wasm, &json!({"supply": 1000})).expect("deploys in the testkit");
    assert_eq!(to_hex(&t.address), contract);
    assert_eq!(json!(t.deploy_tx.gas_used), d["gas_used"], "deploy gas: testkit {:?}, chain {d}", t.deploy_tx);
    let sent = kit.call::<_, ()>(&t, deployer, "transfer", &json!({"to": bob, "amount": 120})).expect("transfers in the testkit");
    assert_eq!(json!(sent.tx.gas_used), s["gas_used"], "call gas: testkit {:?}, chain {s}", sent.tx);
    assert_eq!(json!(sent.tx.fee.to_string()), s["fee"]);
    let (code, q) = run(&["query", &contract, "balance_of", "--args", &format!(r#""{bob}""#), "--rpc", &rpc]);
    assert_eq!((code, &q["output"]), (0, &json!(120)), "{q}");
    let (code, text, _) = common::aivm(&["receipt", s["tx_hash"].as_str().unwrap(), "--rpc", &rpc]);
    assert!(code == 0 && text.starts_with(&format!("tx {}  success", s["tx_hash"].as_str().unwrap())) && text.contains("\nevent transfer {"), "{text}");
    let (code, r) = run(&["receipt", s["tx_hash"].as_str().unwrap(), "--rpc", &rpc]);
    assert_eq!((code, r["block_height"].as_u64().is_some()), (0, true), "{r}");
    let (code, b) = run(&["block", &r["block_height"].to_string(), "--rpc", &rpc]);
    assert!(code == 0 && b["txs"].as_array().is_some_and(|t| t.iter().any(|h| *h == s["tx_hash"])), "{b}");
    // A transfer beyond the balance fails on chain: exit 1, the receipt says why.
    let (code, f) = run(&["send", &contract, "transfer", "--args", &format!(r#"{{"to":"{bob}","amount":100000}}"#), "--home", &home, "--rpc", &rpc]);
    assert_eq!(code, 1, "{f}");
    assert_eq!(run(&["query", "zz", "balance_of", "--rpc", &rpc]).0, 2, "a bad address is a usage error");
    // Finalized blocks over the WebSocket subscription, one JSON object per line.
    let (code, out, err) = common::aivm(&["watch", "--rpc", &rpc, "--count", "2", "--json"]);
    assert_eq!(code, 0, "{out}{err}");
    let heights: Vec<u64> = out.lines().map(|l| serde_json::from_str::<Value>(l).expect("json")["height"].as_u64().expect("height")).collect();
    assert!(heights.len() == 2 && heights[1] == heights[0] + 1, "{out}");
}

/// The validator lifecycle against a running network (`spec/consensus.md`, "Epochs of the
/// engine"): a fifth validator, funded over RPC, runs a node and bonds (`aivm validator bond`:
/// consensus key, proof of possession and p2p address from its home). The set recorded at the
/// next epoch holds it; the reshare of the epoch before that set signs gives it a share of the
/// threshold key, and from then on the engine's signers include it: with one of the four
/// genesis validators stopped, the chain finalizes only with its votes (four of five). It
/// unbonds, leaves the signers the same way, and the network goes on without it once it
/// stops. Over-unbonding and an early withdrawal are refused with the chain's reason.
#[test]
fn a_validator_bonds_enters_the_next_epoch_and_leaves() {
    // A reshare needs a quorum of its dealers to lead a block in the epoch's second half: with
    // five, half of 20 blocks leaves room for a view that times out (10 did not, here).
    const EPOCH: u64 = 20;
    const LAG: u64 = aivm_runtime::staking::SET_LAG;
    let _serial = serial();
    let mut net = Net::with_epochs("staking", 4, 21800, &[], EPOCH, Some(5));
    for i in 0..4 {
        net.wait_height(i, 1, 60);
    }
    let rpc = net.rpcs[0].to_string();
    let run = |args: &[&str]| -> (i32, Value) {
        let args: Vec<&str> = args.iter().copied().chain(["--json"]).collect();
        let (code, out, err) = common::aivm(&args);
        (code, serde_json::from_str(out.trim()).unwrap_or_else(|_| json!({"stdout": out, "stderr": err})))
    };
    let fresh = net.dir.join("joiner");
    let home = fresh.to_str().expect("utf8").to_string();
    // A new validator's home: its keys and ports, and the network's genesis.
    let (code, out, err) = common::aivm(&["node", "init", "--home", &home, "--port", "21890", "--chain-id", &CHAIN_ID.to_string()]);
    assert_eq!(code, 0, "{out}{err}");
    std::fs::copy(net.homes[0].join("genesis.json"), fresh.join("genesis.json")).expect("genesis");
    let joiner_rpc = SocketAddr::from(([127, 0, 0, 1], 21890 + 1000));
    let (code, k) = run(&["keys", "show", "--home", &home, "--rpc", &rpc]);
    assert_eq!(code, 0, "{k}");
    let joiner: [u8; 32] = aivm_node::hexbytes::from_hex(k["address"].as_str().expect("address")).and_then(|v| v.try_into().ok()).expect("32 bytes");
    // Funded by a transfer from genesis validator 0's account (`aivm transfer`).
    let v0 = net.homes[0].to_str().expect("utf8").to_string();
    let (code, r) = run(&["transfer", &to_hex(&joiner), &(1u128 << 40).to_string(), "--home", &v0, "--rpc", &rpc]);
    assert_eq!((code, r["status"].as_str()), (0, Some("success")), "{r}");
    let (code, _) = run(&["validator", "status", "--home", &home, "--rpc", &rpc]);
    assert_eq!(code, 1, "not a validator yet");
    // Its node follows the chain from genesis.
    net.homes.push(fresh.clone());
    net.rpcs.push(joiner_rpc);
    let c = net.spawn(4);
    net.procs.push(Some(c));
    let (code, r) = run(&["validator", "bond", "--home", &home, "--rpc", &rpc, "--amount", "500"]);
    assert_eq!((code, r["status"].as_str()), (0, Some("success")), "{r}");
    let (code, s) = run(&["validator", "status", "--home", &home, "--rpc", &rpc]);
    assert_eq!((code, s["stake"].as_str(), s["signing"].as_bool()), (0, Some("500"), Some(false)), "{s}");
    assert_eq!(s["p2p"], "127.0.0.1:21890", "{s}");
    // Recorded at the next epoch's first block for the epoch SET_LAG later, when it signs.
    let signs = s["epoch"].as_u64().expect("epoch") + 1 + LAG;
    // Across that epoch's first block, the next block's beacon as JSON-RPC shows it ahead
    // (`aivm_nextBeacon`) is the one the block then carries, on the boundary (no seed) and off
    // it (the seed of the head's round).
    net.wait_height(0, signs * EPOCH - 3, 120);
    let mut ahead = std::collections::BTreeMap::new();
    while net.height(0).is_some_and(|h| h <= signs * EPOCH + 1) {
        if let Ok(v) = net.client(0).call("aivm_nextBeacon", json!([])) {
            if let (Some(h), Some(b)) = (v["height"].as_u64(), v["beacon"].as_str()) {
                ahead.insert(h, b.to_string());
            }
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    // The head can move between the loop's test and the call, so the last sample may be of a
    // block past `signs·EPOCH + 2`: wait for every sampled block.
    let last = ahead.keys().max().copied().unwrap_or(0);
    net.wait_height(0, last.max(signs * EPOCH + 2), 120);
    assert!(ahead.contains_key(&(signs * EPOCH)) && ahead.len() >= 3, "samples: {ahead:?}");
    for (h, b) in &ahead {
        assert_eq!(net.client(0).call("aivm_getBlock", json!([h])).expect("block")["beacon"].as_str(), Some(b.as_str()), "block {h}");
    }
    let (_, s) = run(&["validator", "status", "--home", &home, "--rpc", &rpc]);
    assert_eq!((s["active"].as_bool(), s["signing"].as_bool()), (Some(true), Some(true)), "a signer of epoch {signs}: {s}");
    // An epoch's first block carries no seed: its beacon derives from its parent's hash (the
    // rule JSON-RPC follows to show a challenge before that block exists); the next block's
    // comes from the seed.
    let beacon_from_hash = |h: u64| {
        let b = net.client(0).call("aivm_getBlock", json!([h])).expect("block");
        let parent: [u8; 32] = aivm_node::hexbytes::from_hex(b["parent_hash"].as_str().expect("parent")).and_then(|v| v.try_into().ok()).expect("32 bytes");
        b["beacon"].as_str().expect("beacon kept") == to_hex(&aivm_runtime::market::jobs::beacon(&parent, None))
    };
    assert!(beacon_from_hash(signs * EPOCH), "block {} opens epoch {signs}", signs * EPOCH);
    assert!(!beacon_from_hash(signs * EPOCH + 1), "block {} has a seed", signs * EPOCH + 1);
    // Five signers, quorum four: with validator 0 stopped, blocks finalize only with the
    // joiner's votes.
    net.kill(0);
    let h = net.height(1).expect("height");
    net.wait_height(1, h + 3, 60);
    net.wait_height(4, h + 3, 60);
    assert_eq!(net.state_root(4, h + 3), net.state_root(1, h + 3), "the joiner agrees");
    let c = net.spawn(0);
    net.procs[0] = Some(c);
    net.wait_height(0, h + 3, 60);
    // Over-unbonding and an early withdrawal are refused with the chain's reason.
    let (code, r) = run(&["validator", "unbond", "--home", &home, "--rpc", &rpc, "--amount", "501"]);
    assert!(code == 1 && r.to_string().contains("need 501, have 500"), "{r}");
    let (code, r) = run(&["validator", "unbond", "--home", &home, "--rpc", &rpc, "--amount", "500"]);
    assert_eq!((code, r["status"].as_str()), (0, Some("success")), "{r}");
    let (code, r) = run(&["validator", "withdraw", "--home", &home, "--rpc", &rpc]);
    assert!(code == 1 && r.to_string().contains("unbonding ends at block"), "{r}");
    let (_, s) = run(&["validator", "status", "--home", &home, "--rpc", &rpc]);
    let leaves = s["epoch"].as_u64().expect("epoch") + 1 + LAG;
    net.wait_height(0, leaves * EPOCH + 2, 120);
    let (_, s) = run(&["validator", "status", "--home", &home, "--rpc", &rpc]);
    assert_eq!(
        (s["stake"].as_str(), s["unbonding"].as_str(), s["active"].as_bool(), s["signing"].as_bool()),
        (Some("0"), Some("500"), Some(false), Some(false)),
        "left: {s}"
    );
    // Stopped, it is not missed: the four genesis validators finalize again without it.
    net.kill(4);
    let h = net.height(0).expect("height");
    net.wait_height(0, h + 3, 60);
}

/// A validator that joins late restores a peer's snapshot (`aivm node sync`) instead of
/// replaying the chain: it holds no block below the snapshot, agrees on every root after it,
/// and votes — with another validator stopped, the network of four finalizes only with it.
/// The snapshot is in a later epoch than genesis' (epochs of 10 blocks): the joiner starts
/// from the epoch info the peer served and the restored state authenticated, and signs once
/// a reshare has given it a share. Syncing a home that already holds a chain is refused.
#[test]
fn a_late_validator_state_syncs_and_keeps_the_chain_live() {
    const INTERVAL: u64 = 10;
    let _serial = serial();
    let extra: Vec<(usize, String)> = (0..4).map(|i| (i, format!("--snapshot-interval={INTERVAL}"))).collect();
    let extra: Vec<(usize, &str)> = extra.iter().map(|(i, a)| (*i, a.as_str())).collect();
    let mut net = Net::with_epochs("statesync", 4, 21900, &extra, INTERVAL, None);
    // Validator 3 is late: stopped at once, its data removed (a fresh home).
    net.kill(3);
    let data = net.homes[3].join("data");
    let _ = std::fs::remove_dir_all(&data);
    for i in 0..3 {
        net.wait_height(i, 1, 60);
    }
    // Transactions before the snapshot, so the state it carries is not genesis'.
    for i in 0..3 {
        let tx = net.transfer(i, i + 3, 1000 + i as u128);
        let h = net.client(i).call("aivm_sendTransaction", json!([to_hex(&tx)])).expect("accepted");
        wait_receipt(&mut net.client(i), h.as_str().expect("hash"), 30);
    }
    net.wait_height(0, 2 * INTERVAL + 3, 90);
    let served = net.client(0).call("aivm_getSnapshots", json!([])).expect("snapshots");
    let newest = served[0]["height"].as_u64().expect("a snapshot is served");
    assert!(newest >= 2 * INTERVAL && newest.is_multiple_of(INTERVAL), "{served}");

    let home = net.homes[3].to_str().expect("utf8").to_string();
    let from = net.rpcs[0].to_string();
    let (code, out, err) = common::aivm(&["node", "sync", "--home", &home, "--from", &from]);
    assert_eq!(code, 0, "{out}{err}");
    let synced: Value = serde_json::from_str(out.trim()).expect("json");
    let at = synced["height"].as_u64().expect("height");
    assert!(at >= newest && at / INTERVAL >= 2, "a snapshot past epoch 1: {synced}");
    assert_eq!(synced["state_root"], net.state_root(1, at), "the restored root is the network's");
    let (code, _, err) = common::aivm(&["node", "sync", "--home", &home, "--from", &from]);
    assert!(code == 2 && err.contains("state-synced"), "a second sync is refused: {err}");

    let c = net.spawn(3);
    net.procs[3] = Some(c);
    let target = net.height(0).expect("height") + 3;
    net.wait_height(3, target, 90);
    assert!(net.client(3).call("aivm_getBlock", json!([at - 1])).expect("block").is_null(), "no block below the snapshot was replayed");
    // Transactions after the join reach it, and it sees them committed.
    let tx = net.transfer(6, 7, 77);
    let h = net.client(3).call("aivm_sendTransaction", json!([to_hex(&tx)])).expect("accepted by the joiner");
    let r = wait_receipt(&mut net.client(1), h.as_str().expect("hash"), 30);
    assert_eq!(r["status"], "success", "{r}");

    // Stop validator 0 once a reshare after the joiner's start has given it a share (it is
    // one of the signers throughout, but its genesis share is epoch 0's; it signs from the
    // first epoch whose private dealing it received online): three of four finalize only if
    // the joiner votes.
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let s = net.client(3).call("aivm_status", json!([])).expect("status");
        if s["signer"] == true {
            break;
        }
        assert!(Instant::now() < deadline, "the joiner never got a share: {s}");
        std::thread::sleep(Duration::from_millis(100));
    }
    net.kill(0);
    let before = net.height(1).expect("height");
    for i in 1..4 {
        net.wait_height(i, before + 5, 90);
    }
    let common = (1..4).filter_map(|i| net.height(i)).min().expect("heights");
    for h in at..=common {
        let root = net.state_root(1, h);
        assert!(root.is_string(), "height {h}");
        assert_eq!(net.state_root(3, h), root, "the joiner differs at height {h}");
        assert_eq!(net.state_root(2, h), root, "validator 2 differs at height {h}");
    }
}

/// Jailing for downtime (`spec/consensus.md`): a stopped validator misses its leader slots
/// (the views it leads produce no block) and is jailed at the end of each epoch it sat in
/// the recorded set: out of the next epoch's set, with `jailed_until` set. The others, who
/// led their slots, are never jailed, and the network keeps finalizing.
#[test]
fn a_stopped_validator_is_jailed_for_downtime() {
    // Long enough that three live dealers of four each lead a block in the second half.
    const EPOCH: u64 = 12;
    let _serial = serial();
    let mut net = Net::with_epochs("jail", 4, 22000, &[], EPOCH, None);
    for i in 0..4 {
        net.wait_height(i, 1, 60);
    }
    let ids: Vec<String> = net.homes.iter().map(|h| to_hex(&aivm_node::keys::NodeKeys::load(h).expect("keys").identity_public())).collect();
    net.kill(3);
    let validator = |net: &Net, i: usize| net.client(0).call("aivm_getValidator", json!([ids[i]])).expect("validator");
    // Watch it over eight epochs: jailed at an epoch's start, it is out of the set recorded
    // then, which signs SET_LAG epochs later: out of the engine's signers too (the others
    // then finalize as three of three).
    let (mut seen_out, mut last) = (false, Value::Null);
    let deadline = Instant::now() + Duration::from_secs(180);
    while net.height(0).unwrap_or(0) <= 8 * EPOCH {
        assert!(Instant::now() < deadline, "the network stopped at {:?}", net.height(0));
        last = validator(&net, 3);
        seen_out |= last["active"] == false && last["signing"] == false && last["jailed_until"].as_u64().unwrap_or(0) > 0;
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(seen_out, "the stopped validator was jailed out of a set and the signers: {last}");
    assert!(last["jailed_until"].as_u64().unwrap_or(0) >= 2, "{last}");
    for slots in last["liveness"].as_array().into_iter().flatten() {
        assert_eq!(slots["led"], 0, "it led nothing while stopped: {last}");
    }
    for i in 0..3 {
        let v = validator(&net, i);
        assert_eq!((v["jailed_until"].as_u64(), v["active"].as_bool()), (Some(0), Some(true)), "validator {i} is not jailed: {v}");
        assert!(v["liveness"].as_array().into_iter().flatten().any(|s| s["led"].as_u64().unwrap_or(0) > 0), "{v}");
    }
}
