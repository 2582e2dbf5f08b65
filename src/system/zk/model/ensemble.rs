//! Who leads an ensemble of 3 or 5 servers, and what the leader gathers from its followers:
//! the pure part of the ensemble (the node part is `node_ensemble.rs`).
//!
//! **What is abstracted, and why a client cannot tell.** Zab's messages (`PROPOSAL`, `ACK`,
//! `COMMIT`, the `NEWLEADER` sync) are not sent: the ensemble keeps one committed [`Server`]
//! (tree and session table) that every server reads, and a write through any server commits
//! at once when it reaches the leader and the leader runs and reaches a majority of servers
//! (`Leader.propose`, `SyncedLearnerTracker.hasAllQuorums`), else it is not answered. A
//! partition between servers cuts a pair ([`Quorum::set_link`]): a follower cut from its
//! leader serves on a view of its own (`node_cut.rs`). A client sees a write
//! answered or not answered, the committed tree on every read, and zxids that rise, as from
//! a real ensemble whose followers are caught up: the real ones are within a millisecond on
//! one machine. What it *could* tell, and the model does not give: a follower that lags
//! behind the leader in applying commits (CURATOR-604's window opens without it, through the
//! leader's late touch: docs/zookeeper-model.md), and the stale reads of a cut follower (it
//! answers from the committed tree).
//!
//! [`Server`]: super::Server

use super::session::SessionId;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::BTreeSet;

/// Most servers in an ensemble: the scenario allows 1, 3 or 5.
pub const SERVERS_MAX: usize = 5;
/// `syncLimit` (`conf/zoo_sample.cfg`, Debian's `zoo.cfg` and `.ci/zk-servers`): a follower
/// that reads nothing from its leader for `syncLimit × tickTime` gives it up
/// (`Learner.connectToLeader` → `sock.setSoTimeout(self.tickTime * self.syncLimit)`;
/// `Follower.followLeader` → `readPacket` throws, the follower shuts down and goes LOOKING).
pub const SYNC_LIMIT_TICKS: u64 = 5;
/// The shortest election, ms: `FastLeaderElection.finalizeWait` (200 ms) and the new leader's
/// sync with a majority. The span is the real one measured from the kill of a leader to the
/// new leader serving (379–654 ms over twelve trials, `sims/calibration/zk-real.json`).
pub const ELECTION_MS_MIN: u64 = 380;
/// The longest election, ms (see [`ELECTION_MS_MIN`]).
pub const ELECTION_MS_MAX: u64 = 650;
/// How long a follower's answer to the leader's ping takes to reach it, ms: one round trip
/// on one machine, rounded up to the model's millisecond. Why it is not 0: on resume from a
/// pause the leader's `SessionTracker` thread, whose sleep has run out, expires before any
/// answer to the leader's first new ping can arrive; answers applied at the instant of the
/// ping would race it.
pub const PING_ANSWER_MS: u64 = 1;
/// Most touches one follower keeps between two pings of the leader: a limit on everything.
pub const TOUCHES_MAX: usize = 100_000;

/// The ensemble's roles: who leads, who is up, the followers' touch tables.
#[derive(Debug, Clone)]
pub struct Quorum {
    /// Up: running and not paused (the world tells).
    up: Vec<bool>,
    leader: Option<usize>,
    /// Elections won so far (the epoch, `QuorumPeer.getAcceptedEpoch`).
    epoch: u64,
    /// The leader's pings that reached each server so far: a follower that sees no new one
    /// for `syncLimit` ticks gives the leader up. A ping reaches a follower linked to the
    /// leader, running or not (a paused one reads it from its socket on resume).
    beats: Vec<u64>,
    /// Which servers can reach each other (`links[i][j]`, symmetric): a partition between
    /// servers cuts a pair.
    links: Vec<Vec<bool>>,
    /// Servers that gave their leader up alone (cut from it for `syncLimit` ticks while it
    /// still led others): LOOKING, serving nobody, until they join a leader again.
    looking: Vec<bool>,
    /// Since when the leader has not reached a majority, ms on its clock (`None` while it
    /// does).
    quorum_lost_ms: Option<u64>,
    /// Each follower's `LearnerSessionTracker.touchTable`: the sessions its clients touched
    /// since the leader's last ping.
    touches: Vec<BTreeSet<SessionId>>,
    /// The followers' answers to the leader's last ping, in flight for [`PING_ANSWER_MS`]:
    /// `None` when no ping waits for its answers.
    in_flight: Option<BTreeSet<SessionId>>,
    /// Each server's own stream for its election's length, seeded from the run's seed.
    rngs: Vec<ChaCha8Rng>,
}

impl Quorum {
    /// An ensemble of `servers`, led by the highest `myid` as `FastLeaderElection` elects it
    /// when every log is equal (`totalOrderPredicate`: epoch, then zxid, then `myid`).
    pub fn new(servers: usize, seed: u64) -> Self {
        assert!(
            (3..=SERVERS_MAX).contains(&servers) && servers % 2 == 1,
            "an ensemble of {servers}"
        );
        let rngs = (0..servers)
            .map(|i| ChaCha8Rng::seed_from_u64(seed ^ 0x7a6b_0000_0000_0000 ^ i as u64))
            .collect();
        Quorum {
            up: vec![true; servers],
            leader: Some(servers - 1),
            epoch: 1,
            beats: vec![0; servers],
            links: vec![vec![true; servers]; servers],
            looking: vec![false; servers],
            quorum_lost_ms: None,
            touches: vec![BTreeSet::new(); servers],
            in_flight: None,
            rngs,
        }
    }

    pub fn servers(&self) -> usize {
        self.up.len()
    }

    pub fn leader(&self) -> Option<usize> {
        self.leader
    }

    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// The leader's pings that reached server `i` so far.
    pub fn beats_of(&self, i: usize) -> u64 {
        self.beats[i]
    }

    /// Whether servers `i` and `j` can reach each other.
    pub fn linked(&self, i: usize, j: usize) -> bool {
        self.links[i][j]
    }

    /// A partition between servers `i` and `j` began (`connected` false) or healed.
    pub fn set_link(&mut self, i: usize, j: usize, connected: bool) {
        assert!(i < self.servers() && j < self.servers() && i != j);
        self.links[i][j] = connected;
        self.links[j][i] = connected;
    }

    /// Whether server `i` gave its leader up alone and looks for one.
    pub fn is_looking(&self, i: usize) -> bool {
        self.looking[i]
    }

    /// How many servers are up and linked to server `l`, `l` included.
    pub fn reach(&self, l: usize) -> usize {
        (0..self.servers())
            .filter(|i| self.up[*i] && self.linked(*i, l))
            .count()
    }

    /// Whether server `l` reaches a majority (`SyncedLearnerTracker.hasAllQuorums` over the
    /// learners that keep acking).
    pub fn has_quorum(&self, l: usize) -> bool {
        2 * self.reach(l) > self.servers()
    }

    /// Whether follower `i` still follows a leader it cannot reach: it answers its clients'
    /// pings and reads as before, but nothing it forwards reaches the leader, and nothing the
    /// leader commits reaches it.
    pub fn cut(&self, i: usize) -> bool {
        !self.looking[i] && self.leader.is_some_and(|l| l != i && !self.linked(i, l))
    }

    /// The leader's own check each round (`Leader.lead`: `!syncedAckSet.hasAllQuorums()`
    /// once no majority acked within `syncLimit` ticks → `shutdown("Not sufficient followers
    /// synced")`): whether it stepped down now, `limit_ms` after it last reached a majority.
    pub fn leader_check(&mut self, now_ms: u64, limit_ms: u64) -> bool {
        let Some(l) = self.leader else { return false };
        if self.has_quorum(l) {
            self.quorum_lost_ms = None;
            return false;
        }
        let since_ms = *self.quorum_lost_ms.get_or_insert(now_ms);
        if now_ms.saturating_sub(since_ms) < limit_ms {
            return false;
        }
        let epoch = self.epoch;
        self.step_down(epoch);
        true
    }

    /// Follower `i` gives its leader up alone (`Follower.followLeader`: the read times out
    /// after `syncLimit` ticks): LOOKING, its touch table gone with its `LearnerSessionTracker`.
    pub fn detach(&mut self, i: usize) {
        assert!(
            self.leader != Some(i),
            "a leader steps down, it does not detach"
        );
        self.looking[i] = true;
        self.touches[i].clear();
    }

    /// Server `i`, LOOKING, joins the leader if it is up and reachable (the election's
    /// notifications reach it and it syncs): whether it did.
    pub fn rejoin(&mut self, i: usize) -> bool {
        let joins = self.looking[i]
            && self.up[i]
            && self.leader.is_some_and(|l| self.up[l] && self.linked(i, l));
        if joins {
            self.looking[i] = false;
        }
        joins
    }

    pub fn is_up(&self, i: usize) -> bool {
        self.up[i]
    }

    /// Whether a majority of servers is up (`QuorumMaj.containsQuorum`).
    pub fn majority_up(&self) -> bool {
        2 * self.up.iter().filter(|u| **u).count() > self.servers()
    }

    /// Whether server `i` follows or leads: it answers reads and pings (a follower cut from
    /// its leader too, until it gives the leader up).
    pub fn serving(&self, i: usize) -> bool {
        self.leader.is_some() && self.up[i] && !self.looking[i]
    }

    /// Whether a write through server `i` commits now: it reaches its leader, which runs and
    /// reaches a majority.
    pub fn commits(&self, i: usize) -> bool {
        self.serving(i)
            && self.majority_up()
            && self
                .leader
                .is_some_and(|l| self.up[l] && self.linked(i, l) && self.has_quorum(l))
    }

    /// The world stopped or restarted server `i`. A crashed leader is given up at once: its
    /// followers' sockets to it close (`Follower.followLeader` → `readPacket` throws). A
    /// paused one is given up only after `syncLimit` ticks without a ping.
    pub fn set_up(&mut self, i: usize, up: bool, crashed: bool) {
        assert!(i < self.servers());
        self.up[i] = up;
        if crashed && self.leader == Some(i) {
            self.leader = None;
            // The answers to its last ping reach a server that is gone.
            self.in_flight = None;
        }
        if !up {
            self.touches[i].clear();
        }
    }

    /// A follower's client touched `session` (`LearnerSessionTracker.touchSession`).
    pub fn touch(&mut self, i: usize, session: SessionId) {
        if self.touches[i].len() < TOUCHES_MAX {
            self.touches[i].insert(session);
        }
    }

    /// The leader's ping (`Leader.lead` pings every learner each tick/2): each follower that
    /// is up answers with its touch table (`Learner.ping`), which reaches the leader
    /// [`PING_ANSWER_MS`] later ([`Quorum::answers`]). A follower that is not up cannot answer
    /// and keeps its table.
    pub fn ping(&mut self) {
        let leader = self.leader.expect("only a leader pings");
        assert!(self.in_flight.is_none(), "one ping at a time");
        let mut touched = BTreeSet::new();
        let reached: Vec<usize> = (0..self.servers())
            .filter(|f| *f != leader && self.linked(*f, leader))
            .collect();
        for f in reached {
            self.beats[f] += 1;
            if self.up[f] && !self.looking[f] {
                touched.append(&mut self.touches[f]);
            }
        }
        self.in_flight = Some(touched);
    }

    /// The answers to the last ping, if one is in flight: the sessions the leader touches now
    /// (`LearnerHandler` → `ZooKeeperServer.touch`).
    pub fn answers(&mut self) -> Option<Vec<SessionId>> {
        self.in_flight.take().map(|t| t.into_iter().collect())
    }

    /// The leader gives up: it lost its majority (`Leader.lead`: `!tickSkip &&
    /// !syncedAckSet.hasAllQuorums()` → `shutdown("Not sufficient followers synced")`), or its
    /// followers noticed it silent for `syncLimit` ticks.
    pub fn step_down(&mut self, epoch: u64) {
        if self.epoch == epoch {
            self.leader = None;
            // Answers in flight reach a server that no longer leads: they are lost.
            self.in_flight = None;
            self.quorum_lost_ms = None;
        }
    }

    /// How long server `i`'s election takes, ms, from its own stream.
    pub fn election_ms(&mut self, i: usize) -> u64 {
        let ms = self.rngs[i].gen_range(ELECTION_MS_MIN..=ELECTION_MS_MAX);
        assert!((ELECTION_MS_MIN..=ELECTION_MS_MAX).contains(&ms));
        ms
    }

    /// An election among the servers that are up and reach each other, if they are a
    /// majority (`FastLeaderElection.lookForLeader` ends on a quorum of votes): the highest
    /// (epoch, zxid, `myid`) wins (`totalOrderPredicate`). The committed log is shared, so
    /// every voter's epoch and zxid are the same and the highest `myid` that is up and reaches
    /// a majority wins; a server it does not reach stays LOOKING.
    pub fn elect(&mut self) -> Option<usize> {
        if self.leader.is_some() || !self.majority_up() {
            return None;
        }
        let winner = (0..self.servers())
            .rev()
            .find(|w| self.up[*w] && self.has_quorum(*w))?;
        self.leader = Some(winner);
        self.epoch += 1;
        for i in 0..self.servers() {
            self.looking[i] = !self.linked(i, winner);
        }
        for t in &mut self.touches {
            t.clear();
        }
        self.in_flight = None;
        self.quorum_lost_ms = None;
        self.check_invariants();
        Some(winner)
    }

    /// One leader at a time, and it is up when it was just elected.
    pub fn check_invariants(&self) {
        assert!(self.leader.is_none_or(|l| l < self.servers()));
        assert!(
            self.leader.is_none_or(|l| !self.looking[l]),
            "a leader is not LOOKING"
        );
        let n = self.servers();
        assert!(
            (0..n)
                .all(|i| self.links[i][i] && (0..n).all(|j| self.links[i][j] == self.links[j][i])),
            "links are symmetric, and a server reaches itself"
        );
        assert!(self.touches.iter().all(|t| t.len() <= TOUCHES_MAX));
        assert!(self.epoch >= 1, "the first leader is epoch 1");
        assert!(
            self.leader.is_some() || self.in_flight.is_none(),
            "answers in flight without a leader"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_highest_up_myid_wins_with_a_majority_and_one_leads() {
        let mut q = Quorum::new(3, 7);
        assert_eq!(q.leader(), Some(2));
        assert_eq!(q.elect(), None, "a leader leads: no election");
        q.ping();
        q.set_up(2, false, true);
        assert_eq!(q.leader(), None, "a crashed leader is given up at once");
        q.check_invariants();
        assert_eq!(q.answers(), None, "its ping's answers are lost with it");
        assert_eq!(q.elect(), Some(1));
        assert_eq!(q.epoch(), 2);
        q.set_up(1, false, false);
        assert_eq!(
            q.leader(),
            Some(1),
            "a paused leader still leads until noticed"
        );
        assert!(!q.commits(0), "no majority: no commit");
        q.step_down(2);
        assert_eq!(q.elect(), None, "one server of three is no majority");
        q.set_up(2, true, false);
        assert_eq!(q.elect(), Some(2));
        q.step_down(2);
        assert_eq!(
            q.leader(),
            Some(2),
            "a step-down of an old epoch changes nothing"
        );
    }

    #[test]
    fn the_leader_gathers_touches_of_up_followers_only() {
        let mut q = Quorum::new(5, 1);
        q.touch(0, 10);
        q.touch(1, 11);
        q.touch(1, 10);
        q.set_up(1, false, false);
        assert_eq!(q.answers(), None, "no ping, no answers");
        q.ping();
        assert_eq!(q.answers(), Some(vec![10]));
        assert_eq!(q.answers(), None, "answers arrive once");
        assert_eq!(
            (q.beats_of(0), q.beats_of(1)),
            (1, 1),
            "a paused follower reads it later"
        );
        for i in 0..5 {
            let ms = q.election_ms(i);
            assert!((ELECTION_MS_MIN..=ELECTION_MS_MAX).contains(&ms));
        }
    }
}
