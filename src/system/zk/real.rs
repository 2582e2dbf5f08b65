//! [`Zk`] against a real ZooKeeper, over the `zookeeper-client` crate (0.11, tokio): one
//! session per [`RealZk`], its requests pipelined on one connection as `ClientCnxn` does.
//!
//! **States.** The crate reports `SyncConnected`, `Disconnected`, `Expired`, `Closed` (and
//! `ConnectedReadOnly`, `AuthFailed`); they map to the seam's [`SessionState`]:
//!
//! | crate | seam | why |
//! |---|---|---|
//! | `SyncConnected`, `ConnectedReadOnly` | `Connected` | the session answers |
//! | `Disconnected` | `Suspended` | Curator's SUSPENDED is ZooKeeper's `Disconnected` (`ConnectionStateManager`) |
//! | (none) | `Lost` | computed here: one session timeout after `Suspended`, on this process's monotonic clock, unless the session reconnected first (Curator 5's `ConnectionStateManager.checkSessionExpiration`) |
//! | `Expired` | `Expired` | see below |
//! | `Closed`, `AuthFailed` | `Closed` | terminal, by the client's own doing |
//!
//! **How this client differs from Java's `ClientCnxn`** (the model follows `ClientCnxn`), from
//! the crate's `session/mod.rs`, `Session::reset_timeout`, with negotiated timeout T and no
//! connection timeout configured (tick = T/20):
//! - it pings after 3T/20 without sending (`ClientCnxn.SendThread.run`: T/3 without sending);
//! - it calls itself `Disconnected` after 2T/5 with nothing received (`ClientCnxn`: the read
//!   timeout, 2T/3);
//! - it gives the session up on its own after 7T/5 with nothing received while it reconnects
//!   (`Session::start`, `Error::Timeout`), and reports that as `Expired` too
//!   (`Session::resolve_start_error`), where `ClientCnxn` hears of expiry only from a server
//!   (`SendThread.onConnected`). The crate does not tell the two apart, so neither can this
//!   client: `Expired` here is "a server said so, or the crate gave up 7T/5 after its last
//!   receive". The calibration's server-side figures never rest on it: they watch a node
//!   from another session.
//!
//! **Errors** map to [`ZkError`] by what a lock client may conclude: the crate's
//! `ConnectionLoss` and `Timeout` are `ConnectionLoss` (indeterminate: the request may have
//! been applied); a call after [`Zk::close`] or after the crate's `ClientClosed` is
//! `SessionExpired` (the session can never answer again, and nothing was sent); any error the
//! seam has no code for (`NoAuth`, `SessionMoved`, an unexpected reply, ...) is
//! `ConnectionLoss`, the conservative class.

use super::{CreateMode, MultiError, Op, OpResult, Stat, ZkError, ZkResult};
use super::{
    Created, Fired, MultiFailed, SessionInfo, SessionState, Watch, Zk, CHILDREN_MAX, MULTI_OPS_MAX,
    SESSION_TIMEOUT_MS_MAX,
};
use crate::zk::model::Owner;
use crate::BoxFuture;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::{sleep_until, Instant};
use zookeeper_client as zkc;

/// ZooKeeper's container owner marker (`EphemeralType.CONTAINER_EPHEMERAL_OWNER`,
/// `Long.MIN_VALUE`), as it is stored. A 3.8.0 server never sends it: `DataNode.copyStat`
/// hands out 0 for every owner type but NORMAL (`getClientEphemeralOwner`), so a real
/// container reads as [`Owner::None`] (`sims/real_zk.rs` asserts it); mapped all the same.
const CONTAINER_OWNER: i64 = i64::MIN;

/// One real ZooKeeper session.
pub struct RealZk {
    /// The crate's client, `None` once [`Zk::close`] dropped it (dropping the last clone is
    /// how the crate sends `closeSession`: `Session::serve_session`).
    client: Mutex<Option<zkc::Client>>,
    info: SessionInfo,
    state: watch::Receiver<SessionState>,
    /// The task that maps the crate's states to the seam's; aborted on drop.
    states: tokio::task::JoinHandle<()>,
}

impl Drop for RealZk {
    fn drop(&mut self) {
        self.states.abort();
    }
}

impl RealZk {
    /// Opens a session on `endpoints` (`host:port,host:port,...`, ZooKeeper's connect
    /// string) asking for `timeout_ms`; fails if no session is established within
    /// `timeout_ms` (the crate's own bound, `Connector::connect`).
    pub async fn connect(endpoints: &str, timeout_ms: u64) -> ZkResult<RealZk> {
        if timeout_ms == 0 || timeout_ms > SESSION_TIMEOUT_MS_MAX {
            return Err(ZkError::BadArguments);
        }
        let client = zkc::Client::connector()
            .with_session_timeout(Duration::from_millis(timeout_ms))
            .connect(endpoints)
            .await
            .map_err(map_error)?;
        let info = SessionInfo {
            session_id: client.session_id().0 as u64,
            timeout_ms: client.session_timeout().as_millis() as u64,
        };
        let (tx, rx) = watch::channel(map_state(client.state()));
        let states = tokio::spawn(track_states(client.state_watcher(), tx, info.timeout_ms));
        Ok(RealZk {
            client: Mutex::new(Some(client)),
            info,
            state: rx,
            states,
        })
    }

    /// The crate's client, or `SessionExpired` after [`Zk::close`].
    fn client(&self) -> ZkResult<zkc::Client> {
        // The slot holds no invariant a panicking holder could break.
        let slot = self.client.lock().unwrap_or_else(|e| e.into_inner());
        slot.clone().ok_or(ZkError::SessionExpired)
    }
}

/// Follows the crate's states into `tx`, adding Curator's `Lost` one session timeout after
/// `Suspended` (timed from when this task saw `Suspended`). Ends at a terminal state.
async fn track_states(
    mut crate_states: zkc::StateWatcher,
    tx: watch::Sender<SessionState>,
    timeout_ms: u64,
) {
    let timeout = Duration::from_millis(timeout_ms);
    let mut lost_at: Option<Instant> = None;
    loop {
        let lost = async {
            match lost_at {
                Some(at) => sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        let next = tokio::select! {
            s = crate_states.changed() => map_state(s),
            () = lost => {
                lost_at = None;
                SessionState::Lost
            }
        };
        let before = *tx.borrow();
        match next {
            // Suspended after Lost stays Lost: Curator reports LOST once, until RECONNECTED.
            SessionState::Suspended if before == SessionState::Lost => continue,
            SessionState::Suspended => lost_at = Some(Instant::now() + timeout),
            _ => lost_at = None,
        }
        tx.send_replace(next);
        if next.is_terminal() {
            return;
        }
    }
}

fn map_state(s: zkc::SessionState) -> SessionState {
    match s {
        zkc::SessionState::SyncConnected | zkc::SessionState::ConnectedReadOnly => {
            SessionState::Connected
        }
        zkc::SessionState::Disconnected => SessionState::Suspended,
        zkc::SessionState::Expired => SessionState::Expired,
        zkc::SessionState::Closed | zkc::SessionState::AuthFailed => SessionState::Closed,
    }
}

/// The crate's error as the seam's (see the module doc).
fn map_error(e: zkc::Error) -> ZkError {
    use zkc::Error as E;
    match e {
        E::NoNode => ZkError::NoNode,
        E::NodeExists => ZkError::NodeExists,
        E::NotEmpty => ZkError::NotEmpty,
        E::BadVersion => ZkError::BadVersion,
        E::NoChildrenForEphemerals => ZkError::NoChildrenForEphemerals,
        E::BadArguments(_) => ZkError::BadArguments,
        E::SessionExpired | E::ClientClosed => ZkError::SessionExpired,
        E::RuntimeInconsistent => ZkError::RuntimeInconsistency,
        // ConnectionLoss, Timeout and everything the seam has no code for: the request may
        // have been applied.
        _ => ZkError::ConnectionLoss,
    }
}

fn crate_mode(mode: CreateMode) -> zkc::CreateMode {
    match mode {
        CreateMode::Persistent => zkc::CreateMode::Persistent,
        CreateMode::PersistentSequential => zkc::CreateMode::PersistentSequential,
        CreateMode::Ephemeral => zkc::CreateMode::Ephemeral,
        CreateMode::EphemeralSequential => zkc::CreateMode::EphemeralSequential,
        CreateMode::Container => zkc::CreateMode::Container,
    }
}

/// The server's stat as the seam's. The seam keeps the *stored* cversion (child creates, the
/// next sequential suffix) where a client reads `2 × stored − numChildren`
/// (`DataNode.copyStat`): stored = (read + numChildren) / 2.
fn stat(s: &zkc::Stat) -> Stat {
    let num_children = s.num_children.max(0) as usize;
    let owner = match s.ephemeral_owner {
        0 => Owner::None,
        CONTAINER_OWNER => Owner::Container,
        id => Owner::Session(id as u64),
    };
    Stat {
        czxid: s.czxid as u64,
        mzxid: s.mzxid as u64,
        pzxid: s.pzxid as u64,
        version: s.version,
        cversion: ((i64::from(s.cversion) + num_children as i64) / 2) as i32,
        num_children,
        owner,
    }
}

/// A one-shot watch of the crate as the seam's.
fn watch(w: zkc::OneshotWatcher) -> Watch {
    Box::pin(async move {
        let e = w.changed().await;
        match e.event_type {
            zkc::EventType::Session => Fired::Session(map_state(e.session_state)),
            zkc::EventType::NodeCreated => Fired::NodeCreated,
            zkc::EventType::NodeDeleted => Fired::NodeDeleted,
            // A data watch never sees NodeChildrenChanged (`WatchManager.triggerWatch` fires
            // data watches for create, delete and setData only); a change it is, if ever.
            zkc::EventType::NodeDataChanged | zkc::EventType::NodeChildrenChanged => {
                Fired::NodeDataChanged
            }
        }
    })
}

/// A version as the crate takes it: ZooKeeper's -1 (any) is `None`.
fn version(v: i32) -> Option<i32> {
    (v != -1).then_some(v)
}

const ACLS: zkc::Acls<'static> = zkc::Acls::anyone_all();

impl Zk for RealZk {
    fn session(&self) -> SessionInfo {
        self.info
    }

    fn state(&self) -> SessionState {
        *self.state.borrow()
    }

    fn state_changed(&self, seen: SessionState) -> BoxFuture<'_, SessionState> {
        let mut rx = self.state.clone();
        Box::pin(async move {
            // A closed channel (the task ended at a terminal state) keeps its last value.
            let changed = rx.wait_for(|s| *s != seen).await.map(|s| *s);
            changed.unwrap_or_else(|_| *rx.borrow())
        })
    }

    fn create(
        &self,
        path: &str,
        data: &[u8],
        mode: CreateMode,
    ) -> BoxFuture<'_, ZkResult<Created>> {
        let (path, data) = (path.to_string(), data.to_vec());
        Box::pin(async move {
            let client = self.client()?;
            let options = crate_mode(mode).with_acls(ACLS);
            let (s, seq) = client
                .create(&path, &data, &options)
                .await
                .map_err(map_error)?;
            let path = if mode.is_sequential() {
                // `CreateSequence` prints as the server names it, `%010d`.
                format!("{path}{seq}")
            } else {
                path
            };
            Ok(Created {
                path,
                stat: stat(&s),
            })
        })
    }

    fn delete(&self, path: &str, v: i32) -> BoxFuture<'_, ZkResult<()>> {
        let path = path.to_string();
        Box::pin(async move {
            let client = self.client()?;
            client.delete(&path, version(v)).await.map_err(map_error)
        })
    }

    fn get_data(&self, path: &str) -> BoxFuture<'_, ZkResult<(Vec<u8>, Stat)>> {
        let path = path.to_string();
        Box::pin(async move {
            let client = self.client()?;
            let (data, s) = client.get_data(&path).await.map_err(map_error)?;
            Ok((data, stat(&s)))
        })
    }

    fn get_data_watch(&self, path: &str) -> BoxFuture<'_, ZkResult<(Vec<u8>, Stat, Watch)>> {
        let path = path.to_string();
        Box::pin(async move {
            let client = self.client()?;
            let (data, s, w) = client.get_and_watch_data(&path).await.map_err(map_error)?;
            Ok((data, stat(&s), watch(w)))
        })
    }

    fn exists_watch(&self, path: &str) -> BoxFuture<'_, ZkResult<(Option<Stat>, Watch)>> {
        let path = path.to_string();
        Box::pin(async move {
            let client = self.client()?;
            let (s, w) = client
                .check_and_watch_stat(&path)
                .await
                .map_err(map_error)?;
            Ok((s.as_ref().map(stat), watch(w)))
        })
    }

    fn set_data(&self, path: &str, data: &[u8], v: i32) -> BoxFuture<'_, ZkResult<Stat>> {
        let (path, data) = (path.to_string(), data.to_vec());
        Box::pin(async move {
            let client = self.client()?;
            let s = client
                .set_data(&path, &data, version(v))
                .await
                .map_err(map_error)?;
            Ok(stat(&s))
        })
    }

    fn get_children(&self, path: &str) -> BoxFuture<'_, ZkResult<Vec<String>>> {
        let path = path.to_string();
        Box::pin(async move {
            let client = self.client()?;
            let children = client.list_children(&path).await.map_err(map_error)?;
            if children.len() > CHILDREN_MAX {
                return Err(ZkError::ModelLimit {
                    what: "children in one getChildren answer",
                });
            }
            Ok(children)
        })
    }

    fn multi(&self, ops: &[Op]) -> BoxFuture<'_, Result<Vec<OpResult>, MultiFailed>> {
        let ops = ops.to_vec();
        Box::pin(async move {
            if ops.len() > MULTI_OPS_MAX {
                return Err(MultiFailed::Call(ZkError::ModelLimit {
                    what: "ops in one multi",
                }));
            }
            let client = self.client().map_err(MultiFailed::Call)?;
            let mut writer = client.new_multi_writer();
            for op in &ops {
                add_op(&mut writer, op).map_err(|e| MultiFailed::Call(map_error(e)))?;
            }
            let results = writer.commit().await.map_err(|e| match e {
                zkc::MultiWriteError::RequestFailed { source } => {
                    MultiFailed::Call(map_error(source))
                }
                zkc::MultiWriteError::OperationFailed { index, source } => {
                    MultiFailed::Op(MultiError {
                        index,
                        error: map_error(source),
                    })
                }
            })?;
            Ok(results.into_iter().map(op_result).collect())
        })
    }

    fn close(&self) -> BoxFuture<'_, ZkResult<()>> {
        Box::pin(async move {
            let taken = self.client.lock().unwrap_or_else(|e| e.into_inner()).take();
            let Some(client) = taken else {
                return Ok(());
            };
            // Dropping the last clone sends `closeSession`; calls still out hold clones and
            // finish first. The state turns Closed once the server answered it.
            drop(client);
            let mut rx = self.state.clone();
            let done = async {
                let _ = rx.wait_for(|s| s.is_terminal()).await;
            };
            // Bounded: one session timeout, after which the server expires it anyway.
            let limit = Duration::from_millis(self.info.timeout_ms);
            match crate::deadline::timeout(limit, done).await {
                Ok(()) => Ok(()),
                Err(_) => Err(ZkError::ConnectionLoss),
            }
        })
    }
}

fn add_op(w: &mut zkc::MultiWriter<'_>, op: &Op) -> Result<(), zkc::Error> {
    match op {
        Op::Create { path, data, mode } => {
            w.add_create(path, data, &crate_mode(*mode).with_acls(ACLS))
        }
        Op::Delete { path, version: v } => w.add_delete(path, version(*v)),
        Op::SetData {
            path,
            data,
            version: v,
        } => w.add_set_data(path, data, version(*v)),
        Op::Check { path, version: v } => w.add_check_version(path, *v),
    }
}

fn op_result(r: zkc::MultiWriteResult) -> OpResult {
    match r {
        zkc::MultiWriteResult::Check => OpResult::Checked,
        zkc::MultiWriteResult::Delete => OpResult::Deleted,
        zkc::MultiWriteResult::Create { path, .. } => OpResult::Created { path },
        zkc::MultiWriteResult::SetData { stat: s } => OpResult::SetData { stat: stat(&s) },
        // The enum is non-exhaustive; a result the seam does not know is at least applied.
        _ => OpResult::Checked,
    }
}

/// A shared handle, as [`super::connect`] returns it.
pub async fn connect(endpoints: &str, timeout_ms: u64) -> ZkResult<Arc<dyn Zk>> {
    Ok(Arc::new(RealZk::connect(endpoints, timeout_ms).await?))
}
