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

use crate::clock::NodeClock;
use crate::history::Probe;
use crate::BoxFuture;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

pub mod model;

pub use model::{
    sort_by_sequence, CreateMode, MultiError, Op, OpResult, Owner, Stat, ZkError, ZkResult,
};

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

/// A shared handle on one session, whichever backend.
pub type ZkHandle = Arc<dyn Zk>;

/// Where a client finds the ensemble and what session timeout it asks for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConnectSpec {
    /// The servers' endpoints, in the order the client tries them.
    pub endpoints: Vec<String>,
    /// The timeout the client asks for; the server clamps it (`processConnectRequest`).
    pub session_timeout_ms: u64,
}

/// Most sessions one client makes in a run: a limit on everything.
pub const SESSIONS_MAX: u64 = 100_000;

/// A client of the ensemble as Curator's `CuratorFramework` is one: one session at a time,
/// and a new one once it ended (`ConnectionState.checkState` → `handleExpiredSession` →
/// `reset`, which makes a new ZooKeeper handle after an expiry, and the same after Curator's
/// own `LOST`, which injects an expiry).
pub struct ZkClient {
    spec: ConnectSpec,
    clock: NodeClock,
    seed: u64,
    probe: Option<Probe>,
    /// The session now and how many were made.
    current: std::sync::Mutex<(Option<ZkHandle>, u64)>,
    /// Serializes making a session, so two calls make one.
    connecting: tokio::sync::Mutex<()>,
}

impl ZkClient {
    /// A client that connects at its first [`ZkClient::session`]. `seed` seeds the sessions'
    /// own random choices (reconnect delays); `probe` records each session's start and end.
    pub fn new(spec: ConnectSpec, clock: NodeClock, seed: u64, probe: Option<Probe>) -> Self {
        assert!(
            !spec.endpoints.is_empty(),
            "a ZooKeeper client needs a server"
        );
        ZkClient {
            spec,
            clock,
            seed,
            probe,
            current: std::sync::Mutex::new((None, 0)),
            connecting: tokio::sync::Mutex::new(()),
        }
    }

    /// The session now, if there is one: it may have ended.
    pub fn current(&self) -> Option<ZkHandle> {
        self.lock().0.clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, (Option<ZkHandle>, u64)> {
        // One assignment at a time under this lock: a poisoned lock is still whole.
        self.current.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Gives the session up without closing it (its thread stops, its connection closes):
    /// the servers expire it after its timeout, and its ephemerals with it. For a node the
    /// client could not delete (Curator's guaranteed delete retries in the background; the
    /// model lets the session go instead).
    pub fn abandon(&self) {
        self.lock().0 = None;
    }

    /// The live session, or a new one when there is none or it ended (expired, lost or
    /// closed). A suspended session is still the session: it may reconnect.
    pub async fn session(&self) -> ZkResult<ZkHandle> {
        let _one = self.connecting.lock().await;
        let made = {
            let current = self.lock();
            if let Some(zk) = current.0.as_ref() {
                let state = zk.state();
                if !state.is_terminal() && state != SessionState::Lost {
                    return Ok(zk.clone());
                }
            }
            current.1
        };
        if made >= SESSIONS_MAX {
            return Err(ZkError::ModelLimit { what: "sessions" });
        }
        let seed = self.seed ^ (made + 1).rotate_left(40);
        let zk = connect(&self.spec, &self.clock, seed, self.probe.clone()).await?;
        assert!(
            zk.state() == SessionState::Connected,
            "a new session is connected"
        );
        let mut current = self.lock();
        current.1 = made + 1;
        current.0 = Some(zk.clone());
        Ok(zk)
    }
}

/// A new session with the ensemble at `spec` (the model's in the simulation).
pub async fn connect(
    spec: &ConnectSpec,
    clock: &NodeClock,
    seed: u64,
    probe: Option<Probe>,
) -> ZkResult<ZkHandle> {
    #[cfg(madsim)]
    {
        let mut servers = Vec::with_capacity(spec.endpoints.len());
        for e in &spec.endpoints {
            servers.push(e.parse().map_err(|_| ZkError::BadArguments)?);
        }
        let zk =
            model::ModelZk::connect(servers, spec.session_timeout_ms, clock.clone(), seed, probe)
                .await?;
        Ok(Arc::new(zk))
    }
    #[cfg(not(madsim))]
    {
        // The real client keeps its own clock and randomness (the `zookeeper-client` crate's),
        // and its session's start and end are not recorded.
        let _ = (clock, seed, probe);
        real::connect(&spec.endpoints.join(","), spec.session_timeout_ms).await
    }
}

#[cfg(not(madsim))]
pub mod real;
