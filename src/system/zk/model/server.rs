//! One ZooKeeper server (the leader, or a standalone server) as the sessions and the tree
//! together: a request touches its session first, expiry closes a session in the tree, and the
//! invariants that span both are checked here.
//!
//! As ZooKeeper 3.8.0's `ZooKeeperServer.java` (`processConnectRequest`, `submitRequestNow`,
//! `touch`, `expire`, `killSession`), `SessionTrackerImpl.java` (`checkSession`) and
//! `FinalRequestProcessor.java` (a `closeSession` applied, then the session removed).

use super::error::{ZkError, ZkResult};
use super::session::{SessionConfig, SessionId, SessionTracker};
use super::tree::{DataTree, TreeLimits};
use super::watch::WatchEvent;

/// One expired session, closed: the ephemerals its `closeSession` deleted (one transaction) and
/// the watches that fired.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Closed {
    pub session: SessionId,
    pub deleted: Vec<String>,
    pub events: Vec<WatchEvent>,
}

/// A server: its session tracker and its data tree.
#[derive(Debug, Clone)]
pub struct Server {
    tracker: SessionTracker,
    tree: DataTree,
}

impl Server {
    pub fn new(sessions: SessionConfig, limits: TreeLimits, now_ms: u64) -> Self {
        Self {
            tracker: SessionTracker::new(sessions, now_ms),
            tree: DataTree::new(limits),
        }
    }

    pub fn tracker(&self) -> &SessionTracker {
        &self.tracker
    }

    pub fn tree(&self) -> &DataTree {
        &self.tree
    }

    /// A connect request without a session (`processConnectRequest` → `createSession`): the
    /// timeout negotiated, a session created. `createSession` is a transaction, so it takes a
    /// zxid ([`DataTree::session_txn`]).
    pub fn connect(
        &mut self,
        requested_timeout_ms: u64,
        now_ms: u64,
    ) -> ZkResult<(SessionId, u64)> {
        let created = self.tracker.create(requested_timeout_ms, now_ms);
        let (id, timeout_ms) = created.map_err(|_| ZkError::ModelLimit { what: "sessions" })?;
        self.tree.session_txn();
        assert!(
            self.tracker.session(id).is_some_and(|s| !s.closing),
            "a new session is live"
        );
        Ok((id, timeout_ms))
    }

    /// A ping (`OpCode.ping`): it touches the session like any packet. False for a closing or
    /// unknown session, whose connection ZooKeeper closes.
    pub fn ping(&mut self, session: SessionId, now_ms: u64) -> bool {
        self.tracker.touch(session, now_ms)
    }

    /// Any other request: touched first (`submitRequestNow` → `touch`), then checked
    /// (`checkSession`: a closing or unknown session answers `SessionExpired`), then handed the
    /// tree to read or write.
    pub fn request(&mut self, session: SessionId, now_ms: u64) -> ZkResult<&mut DataTree> {
        if !self.tracker.touch(session, now_ms) {
            return Err(ZkError::SessionExpired);
        }
        Ok(&mut self.tree)
    }

    /// The tree, for a request whose session was touched and checked by the caller (a
    /// follower's `LearnerSessionTracker` touch, then the committed tree).
    pub fn tree_mut(&mut self) -> &mut DataTree {
        &mut self.tree
    }

    /// The client's own `close()`: `closeSession` marks it closing, deletes its ephemerals in
    /// one transaction, and the tracker forgets it (`killSession` → `removeSession`).
    pub fn close(&mut self, session: SessionId) -> Option<Closed> {
        self.tracker.session(session)?;
        self.tracker.set_closing(session);
        Some(self.kill(session))
    }

    fn kill(&mut self, session: SessionId) -> Closed {
        let (deleted, events) = self.tree.close_session(session);
        assert!(
            self.tracker.remove(session),
            "the closed session was tracked"
        );
        assert!(
            events.iter().all(|e| e.session != session),
            "no event to the closed session"
        );
        Closed {
            session,
            deleted,
            events,
        }
    }

    /// The tracker's thread caught up to `now_ms` (see [`SessionTracker::tick`]): every expired
    /// session closed, in order. A server that is stalled is simply not ticked.
    pub fn tick(&mut self, now_ms: u64) -> Vec<Closed> {
        let expired = self.tracker.tick(now_ms);
        let closed: Vec<Closed> = expired
            .into_iter()
            .map(|session| self.kill(session))
            .collect();
        assert!(
            closed
                .iter()
                .all(|c| self.tracker.session(c.session).is_none()),
            "the expired are gone"
        );
        closed
    }

    /// One run of the leader's container check (its own timer, every
    /// `znode.container.checkIntervalMs`; it touches no session): see
    /// [`DataTree::check_containers`].
    pub fn check_containers(&mut self, deletes_max: usize) -> (Vec<String>, Vec<WatchEvent>) {
        self.tree.check_containers(deletes_max)
    }

    /// This server becomes the leader after an election: a new epoch of zxids and a new tracker
    /// that gives every session a full timeout from `now_ms` (see
    /// [`SessionTracker::leader_change`]). The tree is the committed one.
    pub fn leader_change(&mut self, now_ms: u64) {
        self.tracker = self.tracker.leader_change(now_ms);
        self.tree.new_epoch();
    }

    /// A standalone server restarted: it reloads its snapshot and log (the tree and the
    /// session table) and its new tracker gives every session a full timeout from `now_ms`
    /// (`ZooKeeperServer.startdata` → `loadData`, then `createSessionTracker`: the
    /// `SessionTrackerImpl` constructor → `trackSession`). Unlike a new leader, no new epoch.
    pub fn restart(&mut self, now_ms: u64) {
        self.tracker = self.tracker.leader_change(now_ms);
    }

    /// Both sides' invariants, and the one between them: every ephemeral's owner is a tracked
    /// session.
    pub fn check_invariants(&self) {
        self.tracker.check_invariants();
        self.tree.check_invariants();
        for owner in self.tree.ephemeral_owners() {
            assert!(
                self.tracker.session(owner).is_some(),
                "ephemerals of dead session {owner:#x}"
            );
        }
    }
}
