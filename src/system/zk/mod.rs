//! ZooKeeper, fencelab's third lock service (issue 20), with Curator's `InterProcessMutex` as
//! its lock: the seam between lock recipes and one ZooKeeper session.
//!
//! A ZooKeeper client is a session, not a connection: it connects to one server of the ensemble,
//! negotiates a timeout, pings, moves to another server when its server stops answering, and
//! learns that its session expired only when a server tells it so on reconnect
//! (`ClientCnxn.java`, `SendThread.run` and `onConnected`). A [`Zk`] is one such session. Only
//! what a lock client calls is on the seam: `create` (ephemeral, sequential, container),
//! `getChildren`, `exists` and `getData` with a watch, `setData`, `delete`, `multi` with
//! `check`, and the session's state changes. Two implementations:
//!
//! | backend | build | what it is |
//! |---|---|---|
//! | `model` | simulation | fencelab's model of a ZooKeeper 3.8.0 ensemble ([`model`]) and of `ClientCnxn` |
//! | `real` | real | the `zookeeper-client` crate against a real ZooKeeper |
//!
//! Errors are classified the way a lock client must treat them ([`ZkError`]): a lost connection
//! with a request outstanding is *indeterminate* (the request may have been applied), an expired
//! session is not.
//!
//! **States** ([`SessionState`]), as Curator names them (`ConnectionState.java`) beside
//! ZooKeeper's (`Watcher.Event.KeeperState`):
//! - `Connected`: the session answers (`SyncConnected`);
//! - `Suspended`: nothing heard for 2/3 of the timeout, or the connection broke
//!   (`Disconnected`); the session may still be alive on the servers;
//! - `Lost`: Curator's own verdict, one session timeout after `Suspended` on the client's clock,
//!   whether or not the servers expired the session (Curator 5's `ConnectionStateManager`,
//!   `checkSessionExpiration`);
//! - `Expired`: a server answered the reconnect with "session expired" (`Expired`); the
//!   session's ephemerals are gone;
//! - `Closed`: the client closed the session itself.

use crate::BoxFuture;
use serde::{Deserialize, Serialize};

pub mod model;

pub use model::{CreateMode, MultiError, Op, OpResult, Stat, ZkError, ZkResult};

/// The session a [`Zk`] is: its ID and the timeout the server negotiated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct SessionInfo {
    pub session_id: u64,
    /// What the server granted (`ConnectResponse.timeOut`), not what was asked: clamped to
    /// [2, 20] × tickTime (`ZooKeeperServer.processConnectRequest`).
    pub timeout_ms: u64,
}

/// What a session looks like from its client (see the module doc).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SessionState {
    Connected,
    Suspended,
    Lost,
    Expired,
    Closed,
}

impl SessionState {
    /// Whether the session can never answer again: a lock held under it is gone.
    pub fn is_terminal(self) -> bool {
        matches!(self, SessionState::Expired | SessionState::Closed)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            SessionState::Connected => "connected",
            SessionState::Suspended => "suspended",
            SessionState::Lost => "lost",
            SessionState::Expired => "expired",
            SessionState::Closed => "closed",
        }
    }
}

/// What fired a one-shot watch: the node changed, or the session's state did first (a watch of
/// an expired or closed session fires with that state, `ZKWatchManager.materialize`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Fired {
    NodeCreated,
    NodeDeleted,
    NodeDataChanged,
    Session(SessionState),
}

/// A watch registered by [`Zk::exists_watch`] or [`Zk::get_data_watch`]: resolves once, when it
/// fires. Dropping it forgets it (client side only, as `zookeeper-client`'s `OneshotWatcher`).
pub type Watch = BoxFuture<'static, Fired>;

/// A created node: its full path (with the sequential suffix) and its stat.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Created {
    pub path: String,
    pub stat: Stat,
}

/// Longest session timeout a scenario may ask for, ms: a limit on everything (ZooKeeper's own
/// upper bound is `maxSessionTimeout`, 20 ticks by default).
pub const SESSION_TIMEOUT_MS_MAX: u64 = 600_000;
/// Most children one `get_children` answer may carry into a recipe: a limit on everything.
pub const CHILDREN_MAX: usize = 10_000;
/// Most ops in one `multi`: a limit on everything (ZooKeeper's is `jute.maxbuffer`).
pub const MULTI_OPS_MAX: usize = 64;

/// The subset of ZooKeeper a lock client uses, as one session. Versions are ZooKeeper's: -1
/// means any. Every call may fail with [`ZkError::ConnectionLoss`] (indeterminate) or
/// [`ZkError::SessionExpired`]; callers bound each call with their own deadline.
pub trait Zk: Send + Sync {
    /// The session's ID and negotiated timeout.
    fn session(&self) -> SessionInfo;
    /// The session's state now, as its client sees it.
    fn state(&self) -> SessionState;
    /// The next state change after `seen`: resolves at once if the state is no longer `seen`.
    fn state_changed(&self, seen: SessionState) -> BoxFuture<'_, SessionState>;
    /// `create(path, data, mode)`: the created node's path (the parent's sequence number
    /// appended, `%010d`, for a sequential mode) and stat.
    fn create(&self, path: &str, data: &[u8], mode: CreateMode)
        -> BoxFuture<'_, ZkResult<Created>>;
    /// `delete(path, version)`.
    fn delete(&self, path: &str, version: i32) -> BoxFuture<'_, ZkResult<()>>;
    /// `getData(path)` without a watch.
    fn get_data(&self, path: &str) -> BoxFuture<'_, ZkResult<(Vec<u8>, Stat)>>;
    /// `getData(path, watch)`: the data, and a watch that fires on the node's next change.
    fn get_data_watch(&self, path: &str) -> BoxFuture<'_, ZkResult<(Vec<u8>, Stat, Watch)>>;
    /// `exists(path, watch)`: the stat if the node exists, and a watch that fires when it is
    /// created, changed or deleted.
    fn exists_watch(&self, path: &str) -> BoxFuture<'_, ZkResult<(Option<Stat>, Watch)>>;
    /// `setData(path, data, version)`: the new stat.
    fn set_data(&self, path: &str, data: &[u8], version: i32) -> BoxFuture<'_, ZkResult<Stat>>;
    /// `getChildren(path)`: the children's names (not paths), in the server's order; the
    /// recipe sorts them.
    fn get_children(&self, path: &str) -> BoxFuture<'_, ZkResult<Vec<String>>>;
    /// `multi(ops)`: all or nothing ([`MultiFailed`] tells an op's failed check from a call
    /// that failed as a whole). At most [`MULTI_OPS_MAX`] ops.
    fn multi(&self, ops: &[Op]) -> BoxFuture<'_, Result<Vec<OpResult>, MultiFailed>>;
    /// Closes the session: its ephemerals are deleted at once (`closeSession`).
    fn close(&self) -> BoxFuture<'_, ZkResult<()>>;
}

/// How a whole `multi` failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MultiFailed {
    /// One op failed its check; nothing was applied.
    Op(MultiError),
    /// The call failed as a whole; see [`ZkError::is_indeterminate`].
    Call(ZkError),
}

impl std::fmt::Display for MultiFailed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MultiFailed::Op(e) => write!(f, "multi: op {} failed: {}", e.index, e.error),
            MultiFailed::Call(e) => write!(f, "multi: {e}"),
        }
    }
}

/// Opens one session on `endpoints` (ZooKeeper's connect string, `host:port,host:port,...`)
/// asking for a session timeout of `timeout_ms`: a real ZooKeeper in the real build.
pub async fn connect(endpoints: &str, timeout_ms: u64) -> ZkResult<std::sync::Arc<dyn Zk>> {
    #[cfg(madsim)]
    {
        // TODO(issue 20): the model's client (`ClientCnxn` over the simulated network) comes
        // with the simulated ensemble; until then the simulation build has no session to open.
        let _ = (endpoints, timeout_ms);
        Err(ZkError::ModelLimit {
            what: "no simulated ZooKeeper client yet",
        })
    }
    #[cfg(not(madsim))]
    {
        real::connect(endpoints, timeout_ms).await
    }
}

#[cfg(not(madsim))]
pub mod real;
