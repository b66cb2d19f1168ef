//! The exit codes of `aivm node run`, for operators and supervisors (README, "Operating a
//! validator"). Every abnormal stop is non-zero and says why on stderr; SIGTERM and SIGINT
//! stop cleanly with 0 (`consensus::run`).

/// Bad configuration, keys or genesis, or a port that cannot be bound: fix and restart.
pub const CONFIG: u8 = 2;
/// A finalized block does not reproduce its header here: this node's state is not the
/// network's. Restarting replays the same blocks; resync the state from a healthy peer.
pub const DIVERGED: u8 = 3;
/// The committer thread died: the node would vote without committing. Restart it.
pub const COMMITTER_DIED: u8 = 4;
/// The consensus engine stopped on its own (a storage failure in its journal). Restart it.
pub const ENGINE_STOPPED: u8 = 5;

/// Log `why` and end the process with `code`.
pub fn stop(code: u8, why: &str) -> ! {
    tracing::error!(code, "stopping: {why}");
    eprintln!("aivm node: {why} (exit {code})");
    std::process::exit(code as i32)
}
