//! The model's client: one ZooKeeper session, as ZooKeeper 3.8.0's `ClientCnxn`
//! (`zookeeper-server/src/main/java/org/apache/zookeeper/ClientCnxn.java`) keeps it, with
//! Curator's `ConnectionStateManager` on top (apache/curator, `curator-framework`,
//! `org/apache/curator/framework/state/ConnectionStateManager.java`).
//!
//! - **Connect** (`SendThread.startConnect`, `primeConnection`): to one server of the ensemble,
//!   round-robin (`StaticHostProvider.next`, without its shuffle), each attempt bounded by
//!   `connectTimeout = T / servers`; a reconnect first sleeps a random 0..1000 ms
//!   (`startConnect`: `Thread.sleep(r.nextInt(1000))`), drawn from the client's own stream.
//! - **Ping** (`SendThread.run`): after `readTimeout / 2 = T/3` without sending.
//! - **Suspended** (`Disconnected`): nothing received for `readTimeout = 2T/3`
//!   (`SessionTimeoutException`), or the connection broke. Every request outstanding fails with
//!   `ConnectionLoss` (`cleanAndNotifyState` → `cleanup`), indeterminate: it may have been
//!   applied. Every watch fires with the state (`ZKWatchManager.materialize`, `None` type).
//! - **Expired** only when a server answers the reconnect so (`onConnected` with a timeout of
//!   0); never by the client's own reckoning.
//! - **Lost**: Curator's verdict one negotiated timeout after `Suspended`, on the client's wall
//!   clock (`System.currentTimeMillis`; `ConnectionStateManager.processEvents` and
//!   `checkSessionExpiration`, which injects a session expiration into the handle: the session
//!   is given up, whatever the servers think).
//! - After `Expired`, `Lost` or `Closed` every call answers `SessionExpired`
//!   (`ClientCnxn.conLossPacket`, state `CLOSED`).

use super::error::ZkError;
use super::wire::{Response, ToClient, ToServer};
use crate::clock::NodeClock;
use crate::history::{EventKind, Probe};
use crate::zk::{Fired, SessionInfo, SessionState, ZkResult};
use madsim::net::{Endpoint, Receiver, Sender};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::{oneshot, Notify};

/// Most connection attempts in a session's life: a limit on everything.
const ATTEMPTS_MAX: u64 = 1_000_000;
/// Most state changes one wait sees: a limit on everything.
const WAITS_MAX: u64 = 1_000_000;
/// Most packets one connection handles: a limit on everything.
const PACKETS_MAX: u64 = 100_000_000;
/// `startConnect`'s random sleep before a reconnect, ms (`r.nextInt(1000)`).
const RECONNECT_SLEEP_MS_MAX: u64 = 999;

pub(super) struct Shared {
    pub(super) session: SessionInfo,
    pub(super) link: Option<(Arc<Sender>, u64)>,
    pub(super) generation: u64,
    pub(super) next_xid: u64,
    pub(super) pending: BTreeMap<u64, (u64, oneshot::Sender<Response>)>,
    pub(super) watches: BTreeMap<String, Vec<oneshot::Sender<Fired>>>,
    pub(super) watch_count: usize,
    /// The client's monotonic µs of its last packet received and sent (`ClientCnxnSocket`'s
    /// `lastHeard`, `lastSend`).
    last_recv_us: i64,
    last_send_us: i64,
}

pub(super) struct Inner {
    servers: Vec<SocketAddr>,
    pub(super) clock: NodeClock,
    requested_timeout_ms: u64,
    /// The session's state and its waiters. Not a `tokio::sync::watch`: its `changed` picks
    /// one of several notifiers with tokio's thread-local RNG (`BigNotify`), outside
    /// madsim's, and a run would depend on more than its seed.
    state: Mutex<SessionState>,
    changed: Notify,
    shared: Mutex<Shared>,
    probe: Option<Probe>,
}

/// One ZooKeeper session of the model (see the module doc).
pub struct ModelZk {
    pub(super) inner: Arc<Inner>,
}

impl Inner {
    pub(super) fn shared(&self) -> MutexGuard<'_, Shared> {
        // Every change under this lock is one map operation: a poisoned lock is still whole.
        self.shared.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn now_us(&self) -> i64 {
        self.clock.monotonic_us()
    }

    pub(super) fn timeout_ms(&self) -> u64 {
        match self.shared().session.timeout_ms {
            0 => self.requested_timeout_ms,
            t => t,
        }
    }

    pub(super) fn state(&self) -> SessionState {
        *self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Moves to `next`, unless the session already ended; fires the watches with it when the
    /// connection is gone, and records a session's end.
    pub(super) fn set_state(&self, next: SessionState) {
        let prev = self.state();
        if prev.is_terminal() || prev == SessionState::Lost || prev == next {
            return;
        }
        self.store_state(next);
        // Connected only over a connection: the attempt that succeeded set it.
        assert!(next != SessionState::Connected || self.shared().link.is_some());
        if next != SessionState::Connected {
            self.drop_link();
            let watches = std::mem::take(&mut self.shared().watches);
            for w in watches.into_values().flatten() {
                let _ = w.send(Fired::Session(next));
            }
            self.shared().watch_count = 0;
        }
        if matches!(next, SessionState::Lost | SessionState::Expired) {
            if let Some(p) = &self.probe {
                p.record(EventKind::LeaseLost {
                    lease_id: self.shared().session.session_id as i64,
                    why: format!("zookeeper session {}", next.as_str()),
                });
            }
        }
    }

    fn store_state(&self, next: SessionState) {
        *self.state.lock().unwrap_or_else(|p| p.into_inner()) = next;
        self.changed.notify_waiters();
    }

    /// The state once `pred` holds of it (at once if it does now).
    pub(super) async fn wait_for(&self, pred: impl Fn(SessionState) -> bool) -> SessionState {
        for _ in 0..WAITS_MAX {
            let mut notified = std::pin::pin!(self.changed.notified());
            // Registered before the state is read, so no change between them is missed.
            notified.as_mut().enable();
            let now = self.state();
            if pred(now) {
                return now;
            }
            notified.await;
        }
        self.state()
    }

    /// Forgets the connection: every request on it fails with `ConnectionLoss` (its waiter is
    /// dropped).
    fn drop_link(&self) {
        let mut s = self.shared();
        s.link = None;
        s.pending.clear();
        assert!(
            s.link.is_none() && s.pending.is_empty(),
            "nothing left on a lost connection"
        );
    }

    pub(super) fn send(&self, packet: ToServer) -> bool {
        let link = self.shared().link.clone();
        let Some((tx, _)) = link else { return false };
        let sent = send_now(&tx, packet);
        if sent {
            self.shared().last_send_us = self.now_us();
        }
        sent
    }
}

/// Sends without waiting: madsim's connection send completes at its first poll.
fn send_now(tx: &Sender, packet: ToServer) -> bool {
    use std::future::Future;
    let mut fut = std::pin::pin!(tx.send(Box::new(packet)));
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    matches!(fut.as_mut().poll(&mut cx), std::task::Poll::Ready(Ok(())))
}

/// How a connection attempt ended.
enum Attempt {
    Connected(Endpoint, Arc<Sender>, Receiver),
    Expired,
    Failed,
}

impl ModelZk {
    /// A new session with one of `servers` (tried in turn from the first), asking for
    /// `requested_timeout_ms`. Resolves once connected; `ConnectionLoss` when a round of every
    /// server failed. `seed` seeds the client's own reconnect delays. The session's thread runs
    /// on the calling node until the session ends or this is dropped.
    pub async fn connect(
        servers: Vec<SocketAddr>,
        requested_timeout_ms: u64,
        clock: NodeClock,
        seed: u64,
        probe: Option<Probe>,
    ) -> ZkResult<ModelZk> {
        assert!(
            !servers.is_empty() && servers.len() <= 255,
            "1 to 255 servers"
        );
        assert!(
            requested_timeout_ms > 0 && requested_timeout_ms <= crate::zk::SESSION_TIMEOUT_MS_MAX
        );
        let now_us = clock.monotonic_us();
        let inner = Arc::new(Inner {
            servers,
            clock,
            requested_timeout_ms,
            state: Mutex::new(SessionState::Suspended),
            changed: Notify::new(),
            shared: Mutex::new(Shared {
                session: SessionInfo {
                    session_id: 0,
                    timeout_ms: 0,
                },
                link: None,
                generation: 0,
                next_xid: 0,
                pending: BTreeMap::new(),
                watches: BTreeMap::new(),
                watch_count: 0,
                last_recv_us: now_us,
                last_send_us: now_us,
            }),
            probe,
        });
        // The first round: every server once, without the reconnect sleep.
        for i in 0..inner.servers.len() {
            match attempt(&inner, i).await {
                Attempt::Connected(ep, tx, rx) => {
                    inner.store_state(SessionState::Connected);
                    let session = inner.shared().session;
                    assert!(session.session_id != 0, "a connected session has its ID");
                    if let Some(p) = &inner.probe {
                        p.record(EventKind::LeaseGranted {
                            lease_id: session.session_id as i64,
                            ttl_s: (session.timeout_ms / 1000) as i64,
                        });
                    }
                    tokio::spawn(session_thread(inner.clone(), (ep, tx, rx), i, seed));
                    tokio::spawn(curator_state_manager(inner.clone()));
                    return Ok(ModelZk { inner });
                }
                // A new session is refused only when the server is full: try the next.
                Attempt::Expired | Attempt::Failed => continue,
            }
        }
        Err(ZkError::ConnectionLoss)
    }
}

/// One connection attempt to server `i`: connect, `ConnectRequest`, its answer within
/// `connectTimeout = T / servers`.
async fn attempt(inner: &Arc<Inner>, i: usize) -> Attempt {
    let n = inner.servers.len() as u64;
    let connect_timeout = Duration::from_millis((inner.timeout_ms() / n).max(1));
    let addr = inner.servers[i];
    let session_id = inner.shared().session.session_id;
    let timeout_ms = inner.requested_timeout_ms;
    let tried = inner
        .clock
        .timeout(connect_timeout, async move {
            let ep = Endpoint::bind("0.0.0.0:0").await.ok()?;
            let (tx, mut rx) = ep.connect1(addr).await.ok()?;
            let hello = ToServer::Connect {
                session_id,
                timeout_ms,
            };
            tx.send(Box::new(hello)).await.ok()?;
            let answer = rx.recv().await.ok()?.downcast::<ToClient>().ok()?;
            Some((ep, tx, rx, *answer))
        })
        .await;
    match tried {
        Ok(Some((
            ep,
            tx,
            rx,
            ToClient::Connected {
                session_id: id,
                timeout_ms,
            },
        ))) => {
            let now_us = inner.now_us();
            let mut s = inner.shared();
            assert!(
                session_id == 0 || session_id == id,
                "a reconnect keeps its session"
            );
            assert!(
                id != 0 && timeout_ms > 0,
                "a granted session has an ID and a timeout"
            );
            s.session = SessionInfo {
                session_id: id,
                timeout_ms,
            };
            assert!(s.link.is_none(), "one connection at a time");
            s.generation += 1;
            let tx = Arc::new(tx);
            s.link = Some((tx.clone(), s.generation));
            (s.last_recv_us, s.last_send_us) = (now_us, now_us);
            Attempt::Connected(ep, tx, rx)
        }
        Ok(Some((_, _, _, ToClient::Expired))) => Attempt::Expired,
        _ => Attempt::Failed,
    }
}

/// `SendThread.run`: serve the connection until it breaks, then reconnect round-robin until
/// connected again, expired, lost or closed.
async fn session_thread(
    inner: Arc<Inner>,
    first: (Endpoint, Arc<Sender>, Receiver),
    mut server: usize,
    seed: u64,
) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut conn = Some(first);
    for _ in 0..ATTEMPTS_MAX {
        if let Some((_ep, _tx, rx)) = conn.take() {
            serve_connection(&inner, rx).await;
            if inner.state() == SessionState::Connected {
                inner.set_state(SessionState::Suspended);
            }
        }
        if inner.state() != SessionState::Suspended {
            return;
        }
        let sleep_ms = rng.gen_range(0..=RECONNECT_SLEEP_MS_MAX);
        inner.clock.sleep(Duration::from_millis(sleep_ms)).await;
        if inner.state() != SessionState::Suspended {
            return;
        }
        server = (server + 1) % inner.servers.len();
        match attempt(&inner, server).await {
            Attempt::Connected(ep, tx, rx) if inner.state() == SessionState::Suspended => {
                inner.set_state(SessionState::Connected);
                conn = Some((ep, tx, rx));
            }
            Attempt::Expired => inner.set_state(SessionState::Expired),
            _ => inner.drop_link(),
        }
    }
}

/// One live connection: answers, events and pongs in; a ping after T/3 without sending; the
/// connection given up after 2T/3 without receiving (`readTimeout`).
async fn serve_connection(inner: &Arc<Inner>, mut rx: Receiver) {
    let timeout_us = inner.timeout_ms() as i64 * 1000;
    let read_timeout_us = timeout_us * 2 / 3;
    let ping_after_us = read_timeout_us / 2;
    assert!(
        ping_after_us > 0,
        "a session timeout of {timeout_us} µs pings"
    );
    for _ in 0..PACKETS_MAX {
        if inner.state() != SessionState::Connected {
            return;
        }
        let now_us = inner.now_us();
        let (recv_us, send_us) = {
            let s = inner.shared();
            (s.last_recv_us, s.last_send_us)
        };
        if now_us - recv_us >= read_timeout_us {
            return;
        }
        if now_us - send_us >= ping_after_us {
            if !inner.send(ToServer::Ping) {
                return;
            }
            continue;
        }
        let wait_us =
            (read_timeout_us - (now_us - recv_us)).min(ping_after_us - (now_us - send_us));
        tokio::select! {
            // Biased: tokio's unbiased `select!` draws from a thread-local RNG outside madsim's,
            // which would make a run depend on more than its seed.
            biased;
            msg = rx.recv() => {
                let Ok(msg) = msg else { return };
                inner.shared().last_recv_us = inner.now_us();
                if let Ok(packet) = msg.downcast::<ToClient>() {
                    handle(inner, *packet);
                }
            }
            _ = inner.clock.sleep(Duration::from_micros(wait_us.max(1) as u64)) => {}
            _ = inner.wait_for(|s| s != SessionState::Connected) => {}
        }
    }
}

fn handle(inner: &Inner, packet: ToClient) {
    match packet {
        ToClient::Reply { xid, body } => {
            if let Some((_, w)) = inner.shared().pending.remove(&xid) {
                let _ = w.send(body);
            }
        }
        ToClient::Event { path, kind } => {
            let fired = {
                let mut s = inner.shared();
                let fired = s.watches.remove(&path).unwrap_or_default();
                assert!(s.watch_count >= fired.len(), "the count covers every watch");
                s.watch_count -= fired.len();
                fired
            };
            let kind = match kind {
                super::watch::EventKind::NodeCreated => Fired::NodeCreated,
                super::watch::EventKind::NodeDeleted => Fired::NodeDeleted,
                super::watch::EventKind::NodeDataChanged => Fired::NodeDataChanged,
            };
            for w in fired {
                let _ = w.send(kind);
            }
        }
        ToClient::Pong | ToClient::Connected { .. } | ToClient::Expired => {}
    }
}

/// Curator's `ConnectionStateManager`: once `Suspended`, `Lost` after a negotiated timeout by
/// the wall clock, unless the session reconnected first. The wait itself is a timed poll on
/// the monotonic clock (`BlockingQueue.poll`), so a wall-clock step moves `Lost` only at the
/// next check.
async fn curator_state_manager(inner: Arc<Inner>) {
    for _ in 0..ATTEMPTS_MAX {
        if inner.wait_for(|s| s != SessionState::Connected).await != SessionState::Suspended {
            return;
        }
        let start_us = inner.clock.now_us();
        let timeout_us = inner.timeout_ms() as i64 * 1000;
        assert!(timeout_us > 0, "Curator's LOST needs a timeout");
        loop {
            let left_us = start_us + timeout_us - inner.clock.now_us();
            if left_us <= 0 {
                inner.set_state(SessionState::Lost);
                break;
            }
            tokio::select! {
                // Biased: tokio's unbiased `select!` draws from a thread-local RNG outside madsim's,
                // which would make a run depend on more than its seed.
                biased;
                _ = inner.wait_for(|s| s != SessionState::Suspended) => break,
                _ = inner.clock.sleep(Duration::from_micros(left_us as u64)) => {}
            }
        }
        if inner.state().is_terminal() || inner.state() == SessionState::Lost {
            return;
        }
    }
}
