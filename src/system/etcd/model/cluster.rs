//! The cluster: 1 to 7 members, one committed state, and who leads.
//!
//! fencelab models *leadership*, not Raft's messages: there is one linearizable state (what
//! has committed, [`State`]), and the rules below decide when a request through a member may
//! change or read it and whose clock its leases run on. Each rule says where etcd (3.4/3.5)
//! does it.
//!
//! - **Commit** (`etcdserver/v3_server.go`, `processInternalRaftRequestOnce`; raft's
//!   `stepFollower` forwards a proposal to the leader): a write, a linearizable read (ReadIndex,
//!   `linearizableReadLoop`) or a lease grant or revoke through member M completes when M can
//!   reach the leader and the leader reaches a majority of members (itself included). Until
//!   then it waits; past etcd's request timeout it fails with `ErrTimeout` (the server's rule).
//! - **Keepalives and TimeToLive** do not go through the log: the leader's lessor answers them,
//!   and a follower forwards them to the leader (`v3_server.go`, `LeaseRenew` and
//!   `LeaseTimeToLive`: `waitLeader`, then `leasehttp.RenewHTTP`), retrying until the request
//!   timeout. So a renewal needs M to reach a live leader, not a majority.
//! - **Expiry**: only the leader's lessor expires leases (`lease/lessor.go`: `runLoop` finds
//!   expired leases only while `isPrimary`); its revocation commits like any write. Lease
//!   deadlines are the leader's monotonic clock's.
//! - **Elections**: when the leader is paused, crashed or cut off from a majority, the other
//!   members' election timers run out after a randomized election timeout, between 1× and 2×
//!   `--election-timeout` (raft's `resetRandomizedElectionTimeout`), counted from the moment the
//!   leader stopped reaching them. The member whose timer runs out first, among those that
//!   reach a majority, campaigns and becomes leader; a timer that runs out without a majority
//!   is drawn again. (With two followers the first of two timers fires: a failover takes
//!   1.33 s on average, as the real cluster's calibration shows.) Raft's timers count *ticks*: a paused member's timer
//!   does not run, so when every member is paused and resumed together, the old leader simply
//!   goes on (no election), and its lessor expires what ran out meanwhile.
//! - **Promote**: a new leader extends every lease to its now + election timeout + TTL, when
//!   it applies its term's first (empty) entry (`etcdserver/server.go`, `applyEntryNormal` →
//!   `lessor.Promote(s.Cfg.ElectionTimeout())`; `lessor.go`, `Promote`: `l.refresh(extend)`).
//!   etcd also spreads the new deadlines when more than `leaseRevokeRate` (1,000) leases would
//!   expire in one second; the model's runs hold far fewer.
//! - **CheckQuorum**: a leader that is up but has not reached a majority for an election
//!   timeout steps down (etcd runs raft with `CheckQuorum: true`, `etcdserver/raft.go`); until
//!   then it goes on renewing leases in its own lessor, which a new leader's Promote covers
//!   (why Promote extends by an election timeout: etcd PR 4778).
//! - **Demote**: a leader that was replaced while paused or crashed steps down as soon as it
//!   runs again (it hears the higher term within a heartbeat, `updateLeadership` →
//!   `lessor.Demote()`), without expiring anything.
//! - **The hazard of etcd issue 15247** (a fault option, `stale_leader_ms`): a former leader
//!   whose raft loop is stuck does not notice it lost leadership for a while. During that time
//!   it answers keepalives from its own lessor (the renewals do not reach the real leader) and
//!   its lessor revokes the leases that expire in *its* view; the revocations are forwarded to
//!   the real leader and commit. Fixed by etcd PR 16822 (a revoking member first confirms its
//!   leadership, `ensureLeadership`), backported to 3.4 and 3.5.
//!
//! **Abstracted away, and why a lock client cannot tell.** Raft's messages, logs, terms and
//! votes: a client sees only whether a request commits, when, and at which revision, and the
//! one committed state gives every member the same answers. Peer latency and fsync: on the
//! calibration machine (127.0.0.1) a 3-member commit costs about a millisecond more than one
//! member's, inside the calibration's tolerance. Followers' apply lag: a follower's watches and
//! serializable reads can trail the leader by a few milliseconds; the lock recipes use
//! linearizable reads and wait on watches only for deletions, which a lag delays but does not
//! reorder. Pre-vote and leader transfer; split votes (two timers within a round trip of each
//! other), which would add a round of timers.

use super::config::Config;
use super::draws::Draws;
use super::lessor::IdGen;
use super::member::State;
use crate::clock::NodeClock;
use crate::etcd::LeaseId;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::Notify;
use tokio::time::Instant;

/// Most members: etcd recommends at most 7 (`Documentation/faq.md`).
pub const MEMBERS_MAX: usize = crate::etcd::failover::MEMBERS_MAX;
/// Most elections in one cluster's life: a limit on everything.
const ELECTIONS_MAX: u64 = 1_000_000;

/// What happened to leadership, for the history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RoleEvent {
    /// `member` became leader of `term` and extended `promoted` leases (Promote).
    Elected {
        member: usize,
        term: u64,
        promoted: usize,
    },
    /// `member` stopped leading.
    SteppedDown { member: usize, why: &'static str },
    /// A replaced leader acts on its stale view until `for_ms` from now (issue 15247).
    StaleLeader { member: usize, for_ms: u64 },
    /// A stale leader's lessor revoked a lease through the real leader (issue 15247).
    StaleRevoke { member: usize, lease: LeaseId },
}

/// A former leader that has not noticed it lost leadership (issue 15247).
struct Stale {
    /// Its lessor's deadlines when it last led, in its monotonic µs; renewals sent to it move
    /// them, nothing else sees them.
    deadlines: BTreeMap<LeaseId, (i64, i64)>,
    /// Until when (its monotonic µs) it acts so; `None` while it is down.
    until_us: Option<i64>,
}

/// The members' election timers for one quiet period.
struct Timers {
    /// When the period began (the timers ran from then).
    start: Instant,
    /// When each member's timer runs out.
    due: Vec<Instant>,
}

/// What the first election timer says.
enum First {
    /// This member's timer ran out and it can win: it is elected.
    Elect(usize),
    /// The first timer of a member that could win runs out then.
    At(Instant),
    /// No member could win now.
    None,
}

/// Who is up, who reaches whom, who leads.
struct Roles {
    up: Vec<bool>,
    /// Member pairs (low, high) that cannot reach each other.
    cut: BTreeSet<(usize, usize)>,
    leader: Option<usize>,
    term: u64,
    /// Since when the leader has been up without a majority: CheckQuorum's timer, which runs
    /// only while the leader runs (Raft's timers count ticks, and a paused process ticks not).
    alone_since: Option<Instant>,
    /// Since when there has been no working leader while some member could win an election:
    /// the followers' election timers, which likewise run only while they run.
    quiet_since: Option<Instant>,
    stale: Vec<Option<Stale>>,
    /// Revocations the leader's lessor proposed while it had no majority: they are in its log
    /// ahead of anything proposed later, so they commit first when the majority returns, and
    /// are lost with its leadership.
    proposed: Vec<LeaseId>,
}

impl Roles {
    fn reaches(&self, a: usize, b: usize) -> bool {
        debug_assert!(
            a < self.up.len() && b < self.up.len(),
            "no member {a} or {b}"
        );
        a == b || !self.cut.contains(&(a.min(b), a.max(b)))
    }

    /// Whether `m` is up and reaches a majority of members (itself included).
    fn has_quorum(&self, m: usize) -> bool {
        let n = self.up.len();
        assert!(m < n, "quorum asked of member {m} of {n}");
        let reached = (0..n).filter(|&o| self.up[o] && self.reaches(m, o)).count();
        self.up[m] && reached > n / 2
    }

    /// The leader, when it is up and reaches a majority.
    fn working_leader(&self) -> Option<usize> {
        let leader = self.leader.filter(|&l| self.has_quorum(l));
        // The leader is not paused when it answers: a working leader is up.
        assert!(leader.is_none_or(|l| self.up[l]));
        leader
    }

    /// `m`'s stale view while it acts on it at `now_us` (its clock); a view whose time is up
    /// is dropped.
    fn stale_now(&mut self, m: usize, now_us: i64) -> Option<&mut Stale> {
        if self.stale[m]
            .as_ref()
            .is_some_and(|s| s.until_us.is_none_or(|u| u <= now_us))
        {
            self.stale[m] = None;
        }
        // Negative space: no view acts past its time.
        debug_assert!(self.stale[m]
            .as_ref()
            .is_none_or(|s| s.until_us.is_some_and(|u| u > now_us)));
        self.stale[m].as_mut()
    }
}

/// What the world gives to be told of leadership changes.
type Observer = Box<dyn Fn(&RoleEvent) + Send + Sync>;

/// Every member's view of one cluster; see the module doc.
pub struct Cluster {
    cfg: Config,
    clocks: Vec<NodeClock>,
    state: Mutex<State>,
    roles: Mutex<Roles>,
    /// Wakes requests waiting for a leader, and the election timers, at every change.
    changed: Notify,
    observer: Mutex<Option<Observer>>,
    /// Each member's own random streams (election timeouts, request faults).
    draws: Draws,
}

impl Cluster {
    /// A cluster of one member per clock; member 0 leads the first term, as the first member
    /// of a new cluster usually does (who leads first does not matter: no lease exists yet).
    pub fn new(cfg: Config, clocks: Vec<NodeClock>) -> Arc<Cluster> {
        let n = clocks.len();
        assert!(
            (1..=MEMBERS_MAX).contains(&n),
            "1..={MEMBERS_MAX} members, got {n}"
        );
        let ids = IdGen::new(cfg.member_id, cfg.start_ms);
        let cfg_seed = cfg.seed;
        let state = Mutex::new(State::new(cfg.min_ttl_s(), ids));
        Arc::new(Cluster {
            cfg,
            clocks,
            state,
            roles: Mutex::new(Roles {
                up: vec![true; n],
                cut: BTreeSet::new(),
                leader: Some(0),
                term: 1,
                alone_since: None,
                quiet_since: None,
                stale: (0..n).map(|_| None).collect(),
                proposed: Vec::new(),
            }),
            changed: Notify::new(),
            observer: Mutex::new(None),
            draws: Draws::new(cfg_seed, n),
        })
    }

    pub fn members(&self) -> usize {
        self.clocks.len()
    }

    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// The committed state.
    pub fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().expect("cluster state")
    }

    fn roles(&self) -> MutexGuard<'_, Roles> {
        self.roles.lock().expect("cluster roles")
    }

    /// Calls `observer` at every leadership change (the world records them).
    pub fn observe(&self, observer: impl Fn(&RoleEvent) + Send + Sync + 'static) {
        *self.observer.lock().expect("observer") = Some(Box::new(observer));
    }

    fn tell(&self, event: RoleEvent) {
        if let Some(o) = self.observer.lock().expect("observer").as_ref() {
            o(&event);
        }
    }

    /// Member `m`'s clock.
    pub fn clock(&self, m: usize) -> NodeClock {
        self.clocks[m].clone()
    }

    /// Member `m`'s monotonic clock, µs.
    pub fn now_us(&self, m: usize) -> i64 {
        self.clocks[m].monotonic_us()
    }

    /// The leader (which may be paused or cut off), if any.
    pub fn leader(&self) -> Option<usize> {
        self.roles().leader
    }

    pub fn term(&self) -> u64 {
        self.roles().term
    }

    /// Whether a request through `m` commits now: `m` reaches a leader that reaches a majority.
    pub fn can_commit(&self, m: usize) -> bool {
        let r = self.roles();
        r.working_leader().is_some_and(|l| r.reaches(m, l))
    }

    /// The leader a renewal through `m` reaches now: up, reachable, not necessarily with a
    /// majority (a leader renews in its own lessor).
    pub fn renewing_leader(&self, m: usize) -> Option<usize> {
        let r = self.roles();
        let leader = r.leader.filter(|&l| r.up[l] && r.reaches(m, l));
        // Negative space: a paused leader renews nothing (its lessor does not run).
        assert!(leader.is_none_or(|l| r.up[l]));
        leader
    }

    /// Whether `m` leads (with a majority or not).
    pub fn leads(&self, m: usize) -> bool {
        self.roles().leader == Some(m)
    }

    /// Whether `m`'s lessor is the one that expires leases now: it leads with a majority.
    pub fn expires_leases(&self, m: usize) -> bool {
        self.roles().working_leader() == Some(m)
    }

    /// Waits until `ready()` holds or `timeout` passes; false on timeout.
    /// Returns at once, without yielding, when it holds already.
    pub async fn wait_until(&self, timeout: Duration, ready: impl Fn() -> bool) -> bool {
        if ready() {
            return true;
        }
        let until = tokio::time::Instant::now() + timeout;
        // Bounded by the timeout.
        loop {
            let changed = self.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            if ready() {
                return true;
            }
            tokio::select! {
                biased;
                _ = &mut changed => {}
                _ = tokio::time::sleep_until(until) => return ready(),
            }
        }
    }

    /// A member was paused, crashed, resumed or restarted. A crashed leader loses leadership:
    /// Raft restarts a member as a follower.
    pub fn set_up(&self, m: usize, up: bool, crashed: bool) {
        if self.members() == 1 && !crashed && self.leader() == Some(0) {
            // One member leads whatever pauses it: no one else could. (A crashed one restarts
            // as a follower and elects itself.)
            return;
        }
        {
            let mut r = self.roles();
            r.up[m] = up;
            if crashed && r.leader == Some(m) {
                r.leader = None;
                r.proposed.clear();
                drop(r);
                self.tell(RoleEvent::SteppedDown {
                    member: m,
                    why: "crashed",
                });
                r = self.roles();
            }
            if crashed {
                // A restarted member rebuilds its lessor from disk, deadlines unset until it
                // is promoted (`lessor.go`, `initAndRecover`): nothing stale survives.
                r.stale[m] = None;
            }
            if up {
                self.wake_stale(&mut r, m);
            }
            Self::reassess(&mut r);
            self.commit_proposed(&mut r);
            // A crashed member restarts as a follower, with no stale view; a paused one is down.
            assert!(
                !crashed || r.leader != Some(m),
                "a crashed member still leads"
            );
            assert!(
                !crashed || r.stale[m].is_none(),
                "a crashed member kept a stale view"
            );
            assert!(r.up[m] == up, "member {m} is not as it was set");
        }
        self.changed.notify_waiters();
    }

    /// Members `a` and `b` can (or cannot) reach each other.
    pub fn set_link(&self, a: usize, b: usize, connected: bool) {
        if a == b || self.members() == 1 {
            return;
        }
        {
            let mut r = self.roles();
            let pair = (a.min(b), a.max(b));
            if connected {
                r.cut.remove(&pair);
            } else {
                r.cut.insert(pair);
            }
            Self::reassess(&mut r);
            self.commit_proposed(&mut r);
            assert!(
                r.reaches(a, b) == connected,
                "link {a}-{b} is not as it was set"
            );
        }
        self.changed.notify_waiters();
    }

    /// Starts or stops the timers: CheckQuorum's on a leader that runs without a majority, the
    /// followers' election timers while no leader works and some member could win.
    fn reassess(r: &mut Roles) {
        let now = Instant::now();
        r.alone_since = match r.leader {
            Some(l) if r.up[l] && !r.has_quorum(l) => r.alone_since.or(Some(now)),
            _ => None,
        };
        let could_win = (0..r.up.len()).any(|m| r.has_quorum(m));
        r.quiet_since = match r.working_leader() {
            None if could_win => r.quiet_since.or(Some(now)),
            _ => None,
        };
        // CheckQuorum's timer runs only on a running leader; election timers only when no
        // leader works.
        assert!(r.alone_since.is_none() || r.leader.is_some_and(|l| r.up[l]));
        assert!(r.quiet_since.is_none() || r.working_leader().is_none());
    }

    /// The leader's lessor scan while it has no majority: it proposes the revocation of what
    /// expired (`revokeExpiredLeases` → `LeaseRevoke`), which waits in its log.
    pub fn propose_expired(&self, m: usize) {
        let now_us = self.now_us(m);
        let mut r = self.roles();
        if r.leader != Some(m) || !r.up[m] {
            return;
        }
        for id in self.state().lessor.expired(now_us) {
            if !r.proposed.contains(&id) {
                r.proposed.push(id);
            }
        }
        // Each expired lease is proposed once.
        debug_assert!(r
            .proposed
            .iter()
            .all(|id| r.proposed.iter().filter(|o| *o == id).count() == 1));
    }

    /// Commits the revocations the leader proposed, once it works again: before anything that
    /// waited for it (they are earlier in its log).
    fn commit_proposed(&self, r: &mut Roles) {
        if r.proposed.is_empty() || r.working_leader().is_none() {
            return;
        }
        let mut state = self.state();
        for id in r.proposed.drain(..) {
            state.revoke(id);
            debug_assert!(
                !state.lessor.exists(id),
                "a committed revocation left lease {id}"
            );
        }
    }

    /// With the issue-15247 hazard on, a leader losing leadership keeps its lessor's view.
    fn make_stale(&self, r: &mut Roles, m: usize) {
        let Some(stale_ms) = self.cfg.stale_leader_ms else {
            return;
        };
        // Only a former leader goes stale.
        assert!(r.leader != Some(m), "member {m} went stale while it leads");
        let deadlines = self.state().lessor.deadlines();
        let until_us = r.up[m].then(|| self.now_us(m) + stale_ms as i64 * 1000);
        r.stale[m] = Some(Stale {
            deadlines,
            until_us,
        });
        if r.up[m] {
            self.tell(RoleEvent::StaleLeader {
                member: m,
                for_ms: stale_ms,
            });
        }
    }

    /// A stale former leader that runs again acts stale for `stale_leader_ms` from now.
    fn wake_stale(&self, r: &mut Roles, m: usize) {
        let (Some(stale_ms), Some(stale)) = (self.cfg.stale_leader_ms, r.stale[m].as_mut()) else {
            return;
        };
        if stale.until_us.is_none() {
            stale.until_us = Some(self.now_us(m) + stale_ms as i64 * 1000);
            self.tell(RoleEvent::StaleLeader {
                member: m,
                for_ms: stale_ms,
            });
        }
    }

    /// Whether `m` is a former leader acting on its stale view now (issue 15247).
    pub fn is_stale(&self, m: usize) -> bool {
        let now_us = self.now_us(m);
        self.roles().stale_now(m, now_us).is_some()
    }

    /// A keepalive answered by `m` from its stale view: the TTL it claims, or `None` when `m`
    /// is not a stale leader now.
    pub fn stale_renew(&self, m: usize, id: LeaseId) -> Option<i64> {
        let now_us = self.now_us(m);
        let mut r = self.roles();
        let stale = r.stale_now(m, now_us)?;
        Some(match stale.deadlines.get_mut(&id) {
            Some((deadline_us, ttl_s)) if *deadline_us > now_us => {
                *deadline_us = now_us + *ttl_s * 1_000_000;
                *ttl_s
            }
            _ => 0,
        })
    }

    /// A stale leader's lessor scan: the leases expired in its view, revoked through the real
    /// leader when `m` reaches one with a majority.
    pub fn stale_scan(&self, m: usize) {
        let now_us = self.now_us(m);
        let expired: Vec<LeaseId> = {
            let mut r = self.roles();
            let forwarded = r.working_leader().is_some_and(|l| r.reaches(m, l));
            let Some(stale) = r.stale_now(m, now_us) else {
                return;
            };
            let expired: Vec<LeaseId> = stale
                .deadlines
                .iter()
                .filter(|(_, (d, _))| *d <= now_us)
                .map(|(id, _)| *id)
                .collect();
            if !forwarded {
                return;
            }
            for id in &expired {
                stale.deadlines.remove(id);
            }
            debug_assert!(expired.iter().all(|id| !stale.deadlines.contains_key(id)));
            expired
        };
        for lease in expired {
            if self.state().revoke(lease) {
                self.tell(RoleEvent::StaleRevoke { member: m, lease });
            }
        }
    }

    /// The election timers and CheckQuorum: runs for the cluster's life (spawn it where
    /// nothing pauses it).
    pub async fn run_elections(self: Arc<Self>) {
        let election_timeout = Duration::from_millis(self.cfg.election_timeout_ms);
        // Each member's randomized election timer for the current quiet period.
        let mut timers: Option<Timers> = None;
        // Bounded: every round waits for a change or a timer, and elections are bounded.
        for _ in 0..ELECTIONS_MAX {
            let changed = self.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            let now = Instant::now();
            let (alone, quiet) = {
                let r = self.roles();
                (r.alone_since, r.quiet_since)
            };
            if alone.is_some_and(|t| now >= t + election_timeout) {
                self.check_quorum();
                continue;
            }
            timers = quiet.map(|q| match timers.take() {
                Some(t) if t.start == q => t,
                _ => Timers {
                    start: q,
                    due: (0..self.members())
                        .map(|m| q + self.draw_timeout(m, election_timeout))
                        .collect(),
                },
            });
            let mut next = None;
            if let Some(t) = timers.as_mut() {
                match self.first_timer(t, now, election_timeout) {
                    First::Elect(m) => {
                        self.elect(m);
                        continue;
                    }
                    First::At(due) => next = Some(due),
                    First::None => {}
                }
            }
            let wake = [alone.map(|t| t + election_timeout), next]
                .into_iter()
                .flatten()
                .min();
            match wake {
                Some(wake) => tokio::select! {
                    biased;
                    _ = &mut changed => {}
                    _ = tokio::time::sleep_until(wake) => {}
                },
                None => changed.await,
            }
        }
    }

    /// The member whose timer runs out first among those that could win now: Raft's follower
    /// whose randomized timeout fires first campaigns, and wins with a majority's votes. A
    /// member whose timer ran out without a majority campaigns in vain and draws again.
    fn first_timer(&self, t: &mut Timers, now: Instant, election_timeout: Duration) -> First {
        let can_win: Vec<bool> = {
            let r = self.roles();
            (0..r.up.len())
                .map(|m| r.has_quorum(m) && r.leader != Some(m))
                .collect()
        };
        for (m, due) in t.due.iter_mut().enumerate() {
            if !can_win[m] && *due <= now {
                *due = now + self.draw_timeout(m, election_timeout);
            }
        }
        let first = (0..t.due.len())
            .filter(|&m| can_win[m])
            .min_by_key(|&m| (t.due[m], m));
        match first {
            Some(m) if t.due[m] <= now => First::Elect(m),
            Some(m) => First::At(t.due[m]),
            None => First::None,
        }
    }

    /// Member `m`'s next randomized election timeout, from its own stream.
    fn draw_timeout(&self, m: usize, election_timeout: Duration) -> Duration {
        self.draws.election_timeout(m, election_timeout)
    }

    /// Member `m`'s next request-fault draw (per mille), from its own stream.
    pub(super) fn draw_fault_permille(&self, m: usize) -> u32 {
        self.draws.fault_permille(m)
    }

    /// CheckQuorum: a leader that is up without a majority for an election timeout steps down
    /// (unless the issue-15247 hazard keeps it from noticing: then it leads on, stale).
    fn check_quorum(&self) {
        let stepped = {
            let mut r = self.roles();
            let Some(l) = r.leader else { return };
            if self.cfg.stale_leader_ms.is_some() {
                r.alone_since = None;
                return;
            }
            r.leader = None;
            r.proposed.clear();
            Self::reassess(&mut r);
            assert!(
                r.alone_since.is_none(),
                "CheckQuorum's timer outlived the leader"
            );
            l
        };
        self.tell(RoleEvent::SteppedDown {
            member: stepped,
            why: "no majority for an election timeout (CheckQuorum)",
        });
        self.changed.notify_waiters();
    }

    /// Elects `winner` if it still reaches a majority; it promotes every lease.
    fn elect(&self, winner: usize) -> bool {
        let (term, old) = {
            let mut r = self.roles();
            if !r.has_quorum(winner) || r.leader == Some(winner) {
                return false;
            }
            let term_before = r.term;
            let old = r.leader.replace(winner);
            if let Some(old) = old {
                self.make_stale(&mut r, old);
            }
            r.term += 1;
            // One leader per term, and terms only rise: a new leader always opens a new term,
            // and `elect` is the only place either changes.
            assert_eq!(r.term, term_before + 1);
            assert!(
                old != Some(winner),
                "a leader is not elected twice in a row"
            );
            r.stale[winner] = None;
            // The old leader's uncommitted proposals are lost with its term.
            r.proposed.clear();
            Self::reassess(&mut r);
            (r.term, old)
        };
        if let Some(old) = old {
            self.tell(RoleEvent::SteppedDown {
                member: old,
                why: "replaced",
            });
        }
        let extend_us = self.cfg.election_timeout_ms as i64 * 1000;
        let promoted = self.state().lessor.promote(self.now_us(winner), extend_us);
        self.tell(RoleEvent::Elected {
            member: winner,
            term,
            promoted,
        });
        self.changed.notify_waiters();
        true
    }
}
