//! A follower of an ensemble cut from its leader by a partition between servers, as ZooKeeper
//! 3.8.0 lets it go on (`zookeeper-server/src/main/java/org/apache/zookeeper/server/`):
//! - it keeps serving its clients until its read of the leader times out after `syncLimit`
//!   ticks (`quorum/Follower.followLeader`, `Learner.connectToLeader` → `setSoTimeout`): pings
//!   are answered by the follower itself (`FollowerRequestProcessor` → `FinalRequestProcessor`,
//!   `OpCode.ping`), and a session is live for it while its `LearnerSessionTracker` knows it
//!   as global (`isGlobalSession`), which only a committed `closeSession` changes;
//! - nothing it forwards reaches the leader: its clients' touches stay in its touch table, so
//!   the leader expires their sessions a T after their last touch it saw, and a reconnect
//!   (revalidated with the leader, `Learner.validateSession`) or a write is not answered;
//! - nothing the leader commits reaches it: the `closeSession` of those sessions, and the
//!   watch events of the changes, wait until it catches up (`Learner.syncWithLeader`, then
//!   `FinalRequestProcessor` closes a closed session's connection and `DataTree` fires the
//!   watches);
//! - once it gives the leader up it is LOOKING and drops every client connection
//!   (`Learner.shutdown` → `QuorumPeer.closeAllConnections`); its clients reconnect elsewhere
//!   and learn there that their sessions expired.
//!
//! What is abstracted: the cut follower's *reads* are answered from the committed tree, not
//! from the tree as it was when cut (a real one answers stale reads). Curator's holder reads
//! nothing to decide it holds; its waiters watch, and their events are held as the real
//! follower holds them.

use super::node::{deliver, Cut, State};
use super::session::SessionId;

impl super::node::ZkNode {
    /// A partition between this server and server `other` began (`connected` false) or
    /// healed; nothing for a standalone server.
    pub fn set_link(&self, other: usize, connected: bool) {
        let mut s = self.state();
        let Some(q) = s.quorum.as_mut() else { return };
        q.set_link(self.index, other, connected);
        q.check_invariants();
        refresh_cuts(&mut s);
        drop(s);
        self.shared.changed.notify_waiters();
    }

    /// Whether this server is a follower cut from its leader (it serves on a stale view).
    pub fn is_cut(&self) -> bool {
        self.state().cuts.contains_key(&self.index)
    }
}

/// Brings every follower's view in line with the ensemble's links and roles: a follower just
/// cut from its leader keeps the sessions it knows; one that reaches its leader again catches
/// up (the connections of sessions closed meanwhile close, the held events go out); one that
/// went LOOKING drops every connection, its held events kept for its clients' reconnects.
pub(super) fn refresh_cuts(s: &mut State) {
    let Some(q) = s.quorum.as_ref() else { return };
    let servers = q.servers();
    for node in 0..servers {
        let q = s.quorum.as_ref().expect("an ensemble");
        let (cut, looking) = (q.cut(node), q.is_looking(node));
        match (cut, s.cuts.contains_key(&node)) {
            (true, false) => {
                let sessions = s.server.tracker().live_sessions();
                s.cuts.insert(node, Cut::new(sessions));
            }
            (false, true) => {
                let cut = s.cuts.remove(&node).expect("a cut follower");
                let tracker = s.server.tracker();
                let drop_link = |id: &SessionId, on: usize| {
                    on == node && (looking || tracker.session(*id).is_none_or(|x| x.closing))
                };
                let dropped: Vec<SessionId> = (s.links.iter())
                    .filter(|(id, l)| drop_link(id, l.node))
                    .map(|(id, _)| *id)
                    .collect();
                for id in dropped {
                    s.links.remove(&id);
                }
                deliver(s, cut.held);
            }
            _ => {}
        }
    }
    assert!(s.cuts.len() < servers, "a leader is never cut");
    debug_assert!((s.cuts.keys()).all(|n| s.quorum.as_ref().is_some_and(|q| q.cut(*n))));
}
