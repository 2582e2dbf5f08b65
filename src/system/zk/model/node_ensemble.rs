//! A server of an ensemble of 3 or 5 as a madsim node: what it answers, how its clients'
//! touches reach the leader, and its role task (the leader's pings, a follower noticing a
//! silent leader, the election). The roles themselves are [`Quorum`]'s; what is abstracted is
//! said in `ensemble.rs`.
//!
//! ZooKeeper 3.8.0 (`zookeeper-server/src/main/java/org/apache/zookeeper/server/`):
//! - a follower accepts client connections and answers reads and pings itself
//!   (`quorum/FollowerZooKeeperServer`, `FollowerRequestProcessor`); it forwards writes to the
//!   leader (`Learner.request`), and touches go into its `LearnerSessionTracker` touch table;
//! - the leader pings every learner each tick/2 (`quorum/Leader.lead`, `LearnerHandler.ping`);
//!   the learner answers with its touch table (`Learner.ping`), and the leader touches those
//!   sessions in its `SessionTrackerImpl`, the only tracker that expires;
//! - a follower that reads nothing from its leader for `syncLimit` ticks, or whose socket to it
//!   closes, goes LOOKING (`Follower.followLeader`); a server without a leader answers nothing
//!   (its `ZooKeeperServer` is not running);
//! - `FastLeaderElection.lookForLeader` elects the highest (epoch, zxid, `myid`) among a
//!   majority; the new leader's `SessionTrackerImpl` is built from the snapshot's sessions and
//!   gives each a full timeout (`Server::leader_change`).

use super::ensemble::{Quorum, PING_ANSWER_MS, SYNC_LIMIT_TICKS};
use super::node::{clock_ms, State, ZkNode};
use super::server::Server;
use super::session::SessionId;
use super::wire::{Request, ToServer};
use std::time::Duration;

impl ZkNode {
    /// Whether this server is one of an ensemble.
    pub fn in_ensemble(&self) -> bool {
        self.state().quorum.is_some()
    }

    /// Whether this server leads now (a standalone server always does).
    pub fn leads(&self) -> bool {
        super::node::leads(&self.state(), self.index)
    }

    /// The ensemble's leader now (`None` during an election, or for a standalone server).
    pub fn leader(&self) -> Option<usize> {
        self.state().quorum.as_ref().and_then(Quorum::leader)
    }

    /// The ensemble's epoch (elections won so far), 0 for a standalone server.
    pub fn epoch(&self) -> u64 {
        self.state().quorum.as_ref().map_or(0, Quorum::epoch)
    }

    /// The world stopped (paused or crashed) or restarted this server.
    pub fn set_up(&self, up: bool, crashed: bool) {
        let mut s = self.state();
        if let Some(q) = s.quorum.as_mut() {
            q.set_up(self.index, up, crashed);
            q.check_invariants();
            super::node_cut::refresh_cuts(&mut s);
            drop(s);
            self.shared.changed.notify_waiters();
        }
    }

    /// Whether this server answers `packet` now: reads, pings and reconnects while it has a
    /// leader; writes (a new session's `createSession` too) only while they can commit.
    pub(super) fn answers(&self, packet: &ToServer) -> bool {
        let s = self.state();
        let Some(q) = s.quorum.as_ref() else {
            return true;
        };
        match packet {
            ToServer::Connect { session_id: 0, .. } => q.commits(self.index),
            // A reconnect is revalidated with the leader (`Learner.validateSession`).
            ToServer::Connect { .. } => q.serving(self.index) && !q.cut(self.index),
            ToServer::Request { body, .. } if is_write(body) => q.commits(self.index),
            _ => q.serving(self.index),
        }
    }

    /// A packet's touch of `session`: the leader's (or a standalone server's) tracker touches
    /// it; a follower puts it in its touch table for the leader's next ping
    /// (`LearnerSessionTracker.touchSession`), if the session is committed and not closing.
    pub(super) fn touch_in(&self, s: &mut State, session: SessionId, now_ms: u64) -> bool {
        match s.quorum.as_mut() {
            Some(q) if q.leader() != Some(self.index) => {
                // A follower cut from its leader judges by the sessions it knew when cut: no
                // `closeSession` committed since has reached it.
                let live = match s.cuts.get(&self.index) {
                    Some(cut) => cut.sessions.contains(&session),
                    None => s
                        .server
                        .tracker()
                        .session(session)
                        .is_some_and(|x| !x.closing),
                };
                if live {
                    q.touch(self.index, session);
                }
                live
            }
            _ => s.server.ping(session, now_ms),
        }
    }

    /// One round of this server's role; how long until the next.
    pub(super) fn round(
        &self,
        seen: &mut (u64, u64),
        looking_until_ms: &mut Option<u64>,
    ) -> Duration {
        let tick_ms = self.cfg.sessions.tick_ms;
        let period_ms = (tick_ms / 2).max(1);
        let sync_ms = SYNC_LIMIT_TICKS * tick_ms;
        let now_ms = self.now_ms();
        let mut guard = self.state();
        let State { quorum, server, .. } = &mut *guard;
        let me = self.index;
        let q = quorum.as_mut().expect("an ensemble's server");
        let (epoch, before) = (q.epoch(), q.leader());
        let wait_ms = match q.leader() {
            Some(l) if l == me && !q.majority_up() => {
                q.step_down(epoch);
                period_ms
            }
            // Cut from a majority by partitions: it gives up after `syncLimit` ticks.
            Some(l) if l == me && q.leader_check(now_ms, sync_ms) => period_ms,
            Some(l) if l == me => lead(q, server, now_ms, period_ms),
            // LOOKING alone (a leader leads the others): join it once it is reachable, after
            // an election's length.
            Some(_) if q.is_looking(me) => election_wait(q, me, now_ms, looking_until_ms)
                .unwrap_or_else(|| {
                    if q.rejoin(me) {
                        *seen = (u64::MAX, now_ms);
                    }
                    period_ms
                }),
            Some(l) => {
                *looking_until_ms = None;
                follow(q, me, l, now_ms, seen, sync_ms);
                period_ms
            }
            None => election_wait(q, me, now_ms, looking_until_ms).unwrap_or_else(|| {
                if let Some(w) = q.elect() {
                    server.leader_change(clock_ms(&self.shared.clocks[w]));
                    *seen = (u64::MAX, now_ms);
                }
                period_ms
            }),
        };
        assert!(
            wait_ms <= period_ms.max(super::ensemble::ELECTION_MS_MAX),
            "a round waits at most tick/2 or an election"
        );
        super::node_cut::refresh_cuts(&mut guard);
        let q = guard.quorum.as_ref().expect("an ensemble's server");
        // Wake the others only on a change of leader made in this round: waking them on every
        // round without a leader would have them wake each other forever at one instant.
        let changed = q.epoch() != epoch || q.leader() != before;
        q.check_invariants();
        drop(guard);
        if changed {
            self.shared.changed.notify_waiters();
        }
        Duration::from_millis(wait_ms.max(1))
    }
}

/// The leader's round: a ping, then its answers a round trip later (the sessions they touch),
/// then the next ping at tick/2. How long until the next round, ms.
fn lead(q: &mut Quorum, server: &mut Server, now_ms: u64, period_ms: u64) -> u64 {
    match q.answers() {
        Some(sessions) => {
            for session in sessions {
                server.ping(session, now_ms);
            }
            period_ms.saturating_sub(PING_ANSWER_MS).max(1)
        }
        None => {
            q.ping();
            PING_ANSWER_MS
        }
    }
}

/// A follower's round: a new ping from leader `l` is news; none for `sync_ms` and the leader
/// is given up, by every follower alike when it is stopped, by this one alone when it runs
/// but cannot be reached.
fn follow(q: &mut Quorum, me: usize, l: usize, now_ms: u64, seen: &mut (u64, u64), sync_ms: u64) {
    if q.beats_of(me) != seen.0 {
        *seen = (q.beats_of(me), now_ms);
    } else if now_ms.saturating_sub(seen.1) >= sync_ms {
        match q.is_up(l) {
            true => q.detach(me),
            false => q.step_down(q.epoch()),
        }
    }
}

/// A LOOKING server's wait: `Some(ms)` while its election runs (its length drawn from its own
/// stream when it starts), `None` once it is over.
fn election_wait(
    q: &mut Quorum,
    me: usize,
    now_ms: u64,
    looking_until_ms: &mut Option<u64>,
) -> Option<u64> {
    match *looking_until_ms {
        None => {
            let ms = q.election_ms(me);
            *looking_until_ms = Some(now_ms + ms);
            Some(ms)
        }
        Some(until_ms) if now_ms < until_ms => Some(until_ms - now_ms),
        Some(_) => {
            *looking_until_ms = None;
            None
        }
    }
}

fn is_write(body: &Request) -> bool {
    !matches!(
        body,
        Request::GetData { .. } | Request::Exists { .. } | Request::GetChildren { .. }
    )
}
