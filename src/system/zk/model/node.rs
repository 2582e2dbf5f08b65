//! One ZooKeeper server as a node of the simulated world: the model [`Server`] behind one lock,
//! its connections, its session tracker's thread and its container manager.
//!
//! - **Time.** ZooKeeper's session tracker and `ExpiryQueue` run on `Time.currentElapsedTime()`
//!   (`System.nanoTime`, `zookeeper-server/src/main/java/org/apache/zookeeper/common/Time.java`),
//!   a monotonic clock: the node reads [`NodeClock::monotonic_us`] (drift applies, steps of the
//!   wall clock do not) and its timers sleep on the node's clock.
//! - **A paused node** (madsim `Handle::pause`, like `kill -STOP`) runs nothing: its tracker's
//!   thread sleeps through the pause and expires nothing. On resume the sleep is over, and
//!   [`Server::tick`] catches up bucket by bucket (`SessionTrackerImpl.run`), while the queued
//!   packets of the connections touch their sessions in whatever order madsim resumes the tasks:
//!   the same race as the JVM's threads.
//! - **Connections.** A session has at most one connection; a reconnect moves it
//!   (`NIOServerCnxnFactory.addSession` replaces the old `ServerCnxn`; the old one is closed).
//!   Watches belong to the session, not the connection: a reconnecting ZooKeeper client re-sends
//!   them with `SetWatches` and the server fires at once what changed since the zxid it last saw
//!   (`ClientCnxn.SendThread.primeConnection`, `DataTree.setWatches`), which the model gives by
//!   keeping a disconnected session's events until it reconnects.
//! - **No panic on bad input**: a message that is not a packet is dropped; a request on a
//!   connection that has not connected is dropped; a bad request is answered with ZooKeeper's
//!   error.

use super::ensemble::Quorum;
use super::server::{Closed, Server};
use super::session::{SessionConfig, SessionId};
use super::tree::TreeLimits;
use super::watch::{EventKind, WatchEvent};
use super::wire::{Request, Response, ToClient, ToServer};
use crate::clock::NodeClock;
use madsim::net::{Endpoint, Receiver, Sender};
use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::mpsc::{unbounded_channel, UnboundedSender};

/// Most events kept for one disconnected session until it reconnects: a limit on everything.
const UNDELIVERED_MAX: usize = 1024;
/// Most ticks of the tracker's thread or container checks in one life of a node (a year of
/// 100 ms ticks): a limit on everything.
const TICKS_MAX: u64 = 315_360_000;
/// Most connections one node serves at once (ZooKeeper's `maxClientCnxns` is per client
/// address, 60 by default): a limit on everything.
pub const CONNECTIONS_MAX: usize = 4096;

/// How one server behaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Config {
    pub sessions: SessionConfig,
    pub limits: TreeLimits,
    /// `znode.container.checkIntervalMs` (`ContainerManager`; default 60000 in
    /// `ZooKeeperServerMain.runFromConfig`).
    pub container_check_ms: u64,
    /// `znode.container.maxPerMinute` (default 10000): the model's bound per check.
    pub container_deletes_max: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            sessions: SessionConfig::default(),
            limits: TreeLimits::default(),
            container_check_ms: 60_000,
            container_deletes_max: 10_000,
        }
    }
}

/// One connection's place in the node: its number and where its packets go.
pub(super) struct Link {
    /// The server the connection is on (0 for a standalone server).
    pub(super) node: usize,
    pub(super) conn: u64,
    pub(super) out: UnboundedSender<ToClient>,
}

/// What the servers of one ensemble share (a standalone server shares it with nobody): the
/// committed server, the connections, the roles. See `ensemble.rs` for what is abstracted.
pub(super) struct State {
    pub(super) server: Server,
    /// Who leads and the followers' touch tables; `None` for a standalone server.
    pub(super) quorum: Option<Quorum>,
    /// The connection each connected session is on.
    pub(super) links: BTreeMap<SessionId, Link>,
    /// Fired watches of sessions without a connection, delivered when they reconnect.
    pub(super) undelivered: BTreeMap<SessionId, Vec<(String, EventKind)>>,
    /// Each follower cut from its leader by a partition between servers: its view of the
    /// sessions, and the events held for its clients (`node_cut.rs`).
    pub(super) cuts: BTreeMap<usize, Cut>,
    next_conn: u64,
    /// Expired sessions so far (for probes and tests).
    pub(super) expired: u64,
    /// How many times the node started serving.
    boots: u64,
}

impl State {
    /// A server's state (an ensemble's, with its `quorum`) before its first boot.
    fn new(server: Server, quorum: Option<Quorum>) -> Self {
        State {
            server,
            quorum,
            links: BTreeMap::new(),
            undelivered: BTreeMap::new(),
            cuts: BTreeMap::new(),
            next_conn: 0,
            expired: 0,
            boots: 0,
        }
    }
}

/// The state and wake-up of one ensemble's servers, with every server's clock (a new leader
/// re-tracks sessions on its own clock).
pub(super) struct Shared {
    pub(super) state: Mutex<State>,
    /// Wakes every server's ensemble task when a server stops or starts.
    pub(super) changed: tokio::sync::Notify,
    pub(super) clocks: Vec<NodeClock>,
}

/// One server: the model's sessions and tree, with its clock.
pub struct ZkNode {
    pub(super) cfg: Config,
    pub(super) clock: NodeClock,
    /// This server's place in the ensemble (0 for a standalone server).
    pub(super) index: usize,
    pub(super) shared: Arc<Shared>,
}

impl ZkNode {
    pub fn new(cfg: Config, clock: NodeClock) -> Self {
        assert!(cfg.sessions.tick_ms > 0, "a tick of 0 ms never expires");
        assert!(cfg.container_check_ms > 0 && cfg.container_deletes_max > 0);
        let now_ms = clock_ms(&clock);
        let state = State::new(Server::new(cfg.sessions, cfg.limits, now_ms), None);
        let shared = Shared {
            state: Mutex::new(state),
            changed: tokio::sync::Notify::new(),
            clocks: vec![clock.clone()],
        };
        ZkNode {
            cfg,
            clock,
            index: 0,
            shared: Arc::new(shared),
        }
    }

    /// The servers of an ensemble of `clocks.len()` (3 or 5), each with its own config and
    /// clock, sharing one committed server led by the highest `myid` ([`Quorum::new`]).
    pub fn ensemble(cfgs: Vec<Config>, clocks: Vec<NodeClock>, seed: u64) -> Vec<ZkNode> {
        assert_eq!(cfgs.len(), clocks.len());
        let n = clocks.len();
        let quorum = Quorum::new(n, seed);
        let leader = quorum.leader().expect("an ensemble starts with a leader");
        let now_ms = clock_ms(&clocks[leader]);
        let cfg = cfgs[leader];
        let state = State::new(Server::new(cfg.sessions, cfg.limits, now_ms), Some(quorum));
        let shared = Arc::new(Shared {
            state: Mutex::new(state),
            changed: tokio::sync::Notify::new(),
            clocks: clocks.clone(),
        });
        let nodes: Vec<ZkNode> = cfgs
            .into_iter()
            .zip(clocks)
            .enumerate()
            .map(|(index, (cfg, clock))| ZkNode {
                cfg,
                clock,
                index,
                shared: shared.clone(),
            })
            .collect();
        assert!(nodes.len() == n && n >= 3);
        nodes
    }

    pub fn config(&self) -> &Config {
        &self.cfg
    }

    pub fn clock(&self) -> &NodeClock {
        &self.clock
    }

    /// The server's monotonic time, ms (`Time.currentElapsedTime`).
    pub fn now_ms(&self) -> u64 {
        clock_ms(&self.clock)
    }

    pub(super) fn state(&self) -> MutexGuard<'_, State> {
        // Every change under this lock leaves the model whole (the model asserts it), so a
        // poisoned lock is taken as it is: the run has already failed.
        self.shared.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs `f` on the model server, for probes and tests.
    pub fn with_server<T>(&self, f: impl FnOnce(&Server) -> T) -> T {
        f(&self.state().server)
    }

    /// How many sessions this node expired.
    pub fn expired(&self) -> u64 {
        self.state().expired
    }

    /// A start of the server process: the first, or a restart after a crash, which reloads
    /// the tree and the sessions and gives each a full timeout ([`Server::restart`]); the
    /// old connections died with the process.
    pub fn boot(&self) {
        let now_ms = self.now_ms();
        let mut s = self.state();
        // In an ensemble a restarted server rejoins as a follower: the committed state lives
        // on in the others.
        if s.boots > 0 && s.quorum.is_none() {
            s.server.restart(now_ms);
        }
        let me = self.index;
        s.links.retain(|_, l| l.node != me);
        s.boots += 1;
        assert!(s.links.values().all(|l| l.node != me) && s.boots > 0);
    }

    /// A connection's first packet (`processConnectRequest`): a new session, or the reconnect
    /// of `session_id` (`reopenSession` → `revalidateSession` → `touchSession`). Registers
    /// `out` as the session's connection and answers through it. `None` when the connection
    /// must close (an expired or unknown session, or no room).
    fn connect(
        &self,
        session_id: u64,
        timeout_ms: u64,
        out: UnboundedSender<ToClient>,
    ) -> Option<(SessionId, u64)> {
        let now_ms = self.now_ms();
        let mut s = self.state();
        let answer = match session_id {
            0 => s.server.connect(timeout_ms, now_ms).ok(),
            id => self
                .touch_in(&mut s, id, now_ms)
                .then(|| s.server.tracker().session(id).map(|x| (id, x.timeout_ms)))
                .flatten(),
        };
        let Some((id, granted_ms)) = answer else {
            let _ = out.send(ToClient::Expired);
            return None;
        };
        if s.links.len() >= CONNECTIONS_MAX && !s.links.contains_key(&id) {
            // No room: the connection closes unanswered, as a refused accept does.
            return None;
        }
        let _ = out.send(ToClient::Connected {
            session_id: id,
            timeout_ms: granted_ms,
        });
        for (path, kind) in s.undelivered.remove(&id).unwrap_or_default() {
            let _ = out.send(ToClient::Event { path, kind });
        }
        s.next_conn += 1;
        let conn = s.next_conn;
        // A reconnect replaces the old connection, which closes once its sender is dropped.
        let node = self.index;
        s.links.insert(id, Link { node, conn, out });
        assert!(s.links.len() <= CONNECTIONS_MAX, "links past their bound");
        Some((id, conn))
    }

    /// A connection closed: the session keeps its watches and its expiry, and loses its link
    /// if the link is still this connection.
    fn disconnect(&self, session: SessionId, conn: u64) {
        let mut s = self.state();
        if s.links.get(&session).is_some_and(|l| l.conn == conn) {
            s.links.remove(&session);
        }
    }

    /// Whether `conn` is still `session`'s connection.
    fn linked(&self, session: SessionId, conn: u64) -> bool {
        self.state()
            .links
            .get(&session)
            .is_some_and(|l| l.conn == conn)
    }

    /// A ping (`OpCode.ping`): touches the session and answers. False when the session is
    /// closing or gone: ZooKeeper closes the connection (`MissingSessionException`).
    fn ping(&self, session: SessionId, conn: u64) -> bool {
        let now_ms = self.now_ms();
        let mut s = self.state();
        if !self.touch_in(&mut s, session, now_ms) {
            s.links.remove(&session);
            return false;
        }
        assert!(
            s.cuts.contains_key(&self.index)
                || (s.server.tracker().session(session)).is_some_and(|x| !x.closing),
            "a pong only to a live session, as this server knows it"
        );
        send_on(&s, session, conn, ToClient::Pong);
        true
    }

    /// A request: touched, checked, applied (`submitRequestNow` → `FinalRequestProcessor`),
    /// answered on the connection and its fired watches delivered. False when the session is
    /// closing or gone: the connection closes without an answer (`checkSession` throws
    /// `SessionExpiredException`, and the client learns it on reconnect).
    fn request(&self, session: SessionId, conn: u64, xid: u64, body: Request) -> bool {
        let now_ms = self.now_ms();
        let mut s = self.state();
        if let Request::CloseSession = body {
            let closed = s.server.close(session);
            send_on(&s, session, conn, reply(xid, Response::Closed));
            s.links.remove(&session);
            if let Some(closed) = closed {
                deliver_closed(&mut s, closed);
            }
            return false;
        }
        if !self.touch_in(&mut s, session, now_ms) {
            s.links.remove(&session);
            return false;
        }
        let tree = s.server.tree_mut();
        let (answer, events) = super::node_apply::apply(tree, session, body);
        assert!(
            events.len() <= self.cfg.limits.watches_max,
            "more events than watches"
        );
        send_on(&s, session, conn, reply(xid, answer));
        deliver(&mut s, events);
        true
    }

    /// The tracker's thread caught up to now: every expired session closed, its connection
    /// closed (`NIOServerCnxnFactory.closeSession`), its ephemerals' watches delivered.
    pub fn tick(&self) -> Vec<Closed> {
        let now_ms = self.now_ms();
        let mut s = self.state();
        // Only the leader runs `SessionTrackerImpl` (a follower's is a `LearnerSessionTracker`,
        // which expires nothing).
        if !leads(&s, self.index) {
            return Vec::new();
        }
        let closed = s.server.tick(now_ms);
        for c in &closed {
            // The server a client is on closes its connection when it applies the
            // `closeSession`: a follower cut from the leader does not, until it catches up.
            let on_cut = (s.links.get(&c.session)).is_some_and(|l| s.cuts.contains_key(&l.node));
            if !on_cut {
                s.links.remove(&c.session);
            }
            s.undelivered.remove(&c.session);
            deliver_closed(&mut s, c.clone());
        }
        s.expired += closed.len() as u64;
        assert!(
            (closed.iter().filter_map(|c| s.links.get(&c.session)))
                .all(|l| s.cuts.contains_key(&l.node)),
            "no link to the expired but on a cut follower"
        );
        debug_assert!({
            s.server.check_invariants();
            true
        });
        closed
    }

    /// How long the tracker's thread sleeps now, ms.
    /// A follower's thread has nothing to expire: it looks again a tick later (without this it
    /// would spin on a bucket that only the leader's thread empties, at one instant).
    fn wait_ms(&self) -> u64 {
        let now_ms = self.now_ms();
        let s = self.state();
        match leads(&s, self.index) {
            true => s.server.tracker().wait_ms(now_ms),
            false => self.cfg.sessions.tick_ms,
        }
    }

    /// One run of the container manager.
    pub fn check_containers(&self) -> Vec<String> {
        let mut s = self.state();
        // `ContainerManager` runs on the leader (`LeaderZooKeeperServer.startupWithServerState`).
        if !leads(&s, self.index) {
            return Vec::new();
        }
        let (deleted, events) = s.server.check_containers(self.cfg.container_deletes_max);
        deliver(&mut s, events);
        deleted
    }
}

/// Whether server `index` leads (a standalone server always does).
pub(super) fn leads(s: &State, index: usize) -> bool {
    s.quorum.as_ref().is_none_or(|q| q.leader() == Some(index))
}

pub(super) fn clock_ms(clock: &NodeClock) -> u64 {
    // The monotonic clock starts at the world's origin and never runs back.
    clock.monotonic_us().max(0) as u64 / 1000
}

fn reply(xid: u64, body: Response) -> ToClient {
    ToClient::Reply { xid, body }
}

/// Sends on `session`'s link if it is still `conn`.
fn send_on(s: &State, session: SessionId, conn: u64, msg: ToClient) {
    if let Some(link) = s.links.get(&session).filter(|l| l.conn == conn) {
        let _ = link.out.send(msg);
    }
}

/// Most watch events one cut follower holds: a limit on everything.
const HELD_MAX: usize = 100_000;

/// A follower's view while it is cut from its leader (`node_cut.rs`).
pub(super) struct Cut {
    /// The sessions live when it was cut: its `LearnerSessionTracker`'s global sessions.
    pub(super) sessions: BTreeSet<SessionId>,
    /// The watch events of its clients, held until it catches up.
    pub(super) held: Vec<WatchEvent>,
}

impl Cut {
    pub(super) fn new(sessions: BTreeSet<SessionId>) -> Self {
        Cut {
            sessions,
            held: Vec::new(),
        }
    }
}

/// Holds `event` for the clients of cut follower `node`.
fn hold(s: &mut State, node: usize, event: WatchEvent) {
    let cut = s.cuts.get_mut(&node).expect("held only for a cut follower");
    if cut.held.len() < HELD_MAX {
        cut.held.push(event);
    }
}

/// Delivers fired watches: on the watcher's connection, or kept until it reconnects.
pub(super) fn deliver(s: &mut State, events: Vec<WatchEvent>) {
    for WatchEvent {
        session,
        path,
        kind,
    } in events
    {
        match s.links.get(&session) {
            // A follower cut from its leader has not applied the change: held until it does.
            Some(link) if s.cuts.contains_key(&link.node) => {
                let node = link.node;
                hold(
                    s,
                    node,
                    WatchEvent {
                        session,
                        path,
                        kind,
                    },
                );
            }
            Some(link) => {
                let _ = link.out.send(ToClient::Event { path, kind });
            }
            None if s.server.tracker().session(session).is_some() => {
                let kept = s.undelivered.entry(session).or_default();
                if kept.len() < UNDELIVERED_MAX {
                    kept.push((path, kind));
                }
            }
            None => {}
        }
    }
}

fn deliver_closed(s: &mut State, closed: Closed) {
    assert!(
        s.server.tracker().session(closed.session).is_none(),
        "a closed session is forgotten"
    );
    deliver(s, closed.events);
}

/// A node of its own, named `name` at `addr`'s IP, serving `node` on `addr`. The model's
/// state outlives a madsim restart of the node only as far as the caller keeps `node`: a
/// ZooKeeper server that restarts reloads its snapshot and log, so its sessions and tree
/// survive (`ZKDatabase.loadDataBase`).
pub fn node(
    handle: &madsim::runtime::Handle,
    name: &str,
    addr: SocketAddr,
    node: Arc<ZkNode>,
) -> madsim::runtime::NodeHandle {
    crate::system::sim_node::serving(handle, name, addr, node, serve)
}

/// Serves `node` on `addr` until the madsim node is killed: the tracker's thread, the
/// container manager and one task per connection.
pub async fn serve(addr: SocketAddr, node: Arc<ZkNode>) -> std::io::Result<()> {
    node.boot();
    let ep = Endpoint::bind(addr).await?;
    let _tracker = tokio::spawn(tracker(node.clone()));
    // Only an ensemble's server has a role task: a standalone server spawns no more tasks
    // than it did, so its runs stay what they were.
    let _roles = node
        .in_ensemble()
        .then(|| tokio::spawn(roles(node.clone())));
    let _containers = tokio::spawn(containers(node.clone()));
    loop {
        let (tx, rx, _) = ep.accept1().await?;
        tokio::spawn(connection(node.clone(), tx, rx));
    }
}

/// `SessionTrackerImpl.run`: sleep until the next bucket, expire it, again.
async fn tracker(node: Arc<ZkNode>) {
    for _ in 0..TICKS_MAX {
        let wait_ms = node.wait_ms();
        if wait_ms > 0 {
            node.clock().sleep(Duration::from_millis(wait_ms)).await;
        }
        node.tick();
    }
}

/// `ContainerManager`'s timer: a check every `checkIntervalMs`.
async fn containers(node: Arc<ZkNode>) {
    let period = Duration::from_millis(node.config().container_check_ms);
    for _ in 0..TICKS_MAX {
        node.clock().sleep(period).await;
        node.check_containers();
    }
}

/// One client connection: its `ConnectRequest` first, then its packets, with its answers and
/// events written back in order.
async fn connection(node: Arc<ZkNode>, tx: Sender, mut rx: Receiver) {
    let (out, mut outgoing) = unbounded_channel();
    let mut out = Some(out);
    let mut linked: Option<(SessionId, u64)> = None;
    loop {
        tokio::select! {
            // Biased: tokio's unbiased `select!` draws from a thread-local RNG outside madsim's,
            // which would make a run depend on more than its seed.
            biased;
            msg = rx.recv() => {
                let Ok(msg) = msg else { break };
                // No panic in a server: a message that is not a packet is dropped.
                let Ok(packet) = msg.downcast::<ToServer>() else { continue };
                // A server without a leader, or a write without a quorum: no answer.
                if !node.answers(&packet) { continue }
                let open = match (*packet, linked, out.take()) {
                    (ToServer::Connect { session_id, timeout_ms }, None, Some(o)) => {
                        linked = node.connect(session_id, timeout_ms, o);
                        linked.is_some()
                    }
                    (ToServer::Ping, Some((session, conn)), _) => node.ping(session, conn),
                    (ToServer::Request { xid, body }, Some((session, conn)), _) => {
                        node.request(session, conn, xid, body)
                    }
                    // A packet before the connect, or a second connect: dropped.
                    (_, _, o) => {
                        out = o;
                        true
                    }
                };
                if !open {
                    // Write what is queued (the answer, or "expired"), then close.
                    while let Ok(m) = outgoing.try_recv() {
                        if tx.send(Box::new(m)).await.is_err() { break; }
                    }
                    break;
                }
            }
            m = outgoing.recv() => {
                match m {
                    Some(m) => if tx.send(Box::new(m)).await.is_err() { break },
                    // The node dropped the link (expiry, or a newer connection of the session).
                    None => break,
                }
            }
        }
        if linked.is_some_and(|(s, c)| !node.linked(s, c)) && outgoing.is_empty() {
            break;
        }
    }
    if let Some((session, conn)) = linked {
        node.disconnect(session, conn);
    }
    debug_assert!(linked.is_none_or(|(s, c)| !node.linked(s, c)));
}

/// Most rounds of one server's role task in one life (a year of 1 ms rounds): a limit on
/// everything.
const ROUNDS_MAX: u64 = 31_536_000_000;

/// The role task of one server of an ensemble; nothing for a standalone server.
async fn roles(node: Arc<ZkNode>) {
    if !node.in_ensemble() {
        return;
    }
    let mut seen = (u64::MAX, node.now_ms());
    let mut looking_until_ms = None;
    for _ in 0..ROUNDS_MAX {
        let notified = node.shared.changed.notified();
        let wait = node.round(&mut seen, &mut looking_until_ms);
        tokio::select! {
            // Biased: tokio's unbiased `select!` draws from its own thread RNG.
            biased;
            _ = notified => {}
            _ = node.clock().sleep(wait) => {}
        }
    }
}
