//! Faults as data: a [`FaultPlan`] is a list of timed faults on named nodes.
//!
//! A plan is a plain serde value: print it, save it as JSON, load it, diff it, shrink it,
//! replay it. The world applies it; nothing else decides what goes wrong. Which faults a seed
//! gets is the [`nemesis`](crate::nemesis)' business (it re-exports all of this); a
//! [`Scenario`](crate::scenario::Scenario) holds scripted faults. This module imports neither.

use crate::clock::Skew;
use crate::ms::{MsRange, DURATION_MS_MAX};
/// Where aimed faults strike: the client's own labels, named here for the plans.
use crate::workload::Point;
use serde::{Deserialize, Serialize};

/// Most faults in one plan: a limit on everything.
pub const FAULTS_MAX: usize = 256;
/// Longest single fault, in ms.
pub const FAULT_MS_MAX: u64 = 120_000;

/// Latest start of a fault, in ms: the longest run plus its drain.
pub const START_MS_MAX: u64 = 2 * DURATION_MS_MAX;

/// The etcd node's name.
pub const ETCD: &str = "etcd";
/// A fault on the etcd member that leads when the fault strikes (resolved then, and
/// recorded). With one member, the member.
pub const ETCD_LEADER: &str = "etcd:leader";
/// A fault on every etcd member (the same as `etcd`).
pub const ETCD_ALL: &str = "etcd:all";
/// In a partition, every etcd member not on the other side: `a = "etcd:leader", b =
/// "etcd:others"` cuts the leader off from the rest of the cluster.
pub const ETCD_OTHERS: &str = "etcd:others";
/// Every Redis node of a Redlock world (also `redis:all`); `redisN` (or `redis:N`) names one.
pub const REDIS: &str = "redis";
/// A fault on every Redis node.
pub const REDIS_ALL: &str = "redis:all";
/// Every ZooKeeper server of a ZooKeeper world, as `zk` or `zk:all`; `zkN` (or `zk:N`) names one.
pub const ZK: &str = "zk";
pub const ZK_ALL: &str = "zk:all";
/// A fault on the ZooKeeper server that leads when the fault strikes (resolved then, and
/// recorded with who led); with one server, the server.
pub const ZK_LEADER: &str = "zk:leader";

/// `redis:N` as the node name `redisN`, `zk:N` as `zkN`; any other name as it is.
pub fn redis_node(node: &str) -> std::borrow::Cow<'_, str> {
    match node.split_once(':') {
        Some((s @ ("redis" | "zk"), n))
            if !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) =>
        {
            format!("{s}{n}").into()
        }
        _ => node.into(),
    }
}

/// The member nodes of a cluster of `members`: `etcd` alone, or `etcd1` to `etcdN`.
pub fn etcd_member_names(members: u32) -> Vec<String> {
    // A cluster has a member: with none, `etcd` would name no node and its faults nothing.
    assert!(members >= 1, "an etcd cluster of {members} members");
    match members {
        1 => vec![ETCD.to_string()],
        n => (1..=n).map(|i| format!("{ETCD}{i}")).collect(),
    }
}

/// Whether a fault's node names etcd: `etcd`, a role (`etcd:leader`, ...), or a member
/// (`etcd2`).
pub fn is_etcd(node: &str) -> bool {
    node == ETCD
        || node.starts_with("etcd:")
        || node
            .strip_prefix(ETCD)
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

/// The storage node's name.
pub const STORAGE: &str = "storage";
/// What network-wide faults name as their node (every link, not a node of the world).
pub const NETWORK: &str = "network";
/// Slowest one-way latency a network fault may set, ms.
pub const NETWORK_LATENCY_MS_MAX: u64 = 10_000;
/// Highest loss a network fault may set, per mille (lost messages are retransmitted).
pub const NETWORK_LOSS_PERMILLE_MAX: u32 = 500;

/// When a fault starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Trigger {
    /// At a true time, ms since the world started.
    AtMs(u64),
    /// The `nth` (1-based) time the node reaches `point`.
    Point { point: Point, nth: u32 },
}

impl std::fmt::Display for Trigger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Trigger::AtMs(ms) => write!(f, "at {ms} ms"),
            Trigger::Point { point, nth } => write!(f, "at {} #{nth}", point.as_str()),
        }
    }
}

/// One fault.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "fault", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Fault {
    /// Stop the world on a node (GC pause; on `etcd`, an etcd stall).
    Pause {
        node: String,
        at: Trigger,
        duration_ms: u64,
    },
    /// The node's clock for the whole run.
    Skew { node: String, skew: Skew },
    /// Messages between `a` and `b`, both ways, are held until the partition heals. Held
    /// messages are retransmitted with doubling backoff (madsim's TCP, capped at 10 s, like a
    /// real RTO), so they arrive at the first retry after the heal: up to about twice the
    /// partition's length after they were sent. A new connection across the partition is
    /// refused at once (etcd requests, which each open a connection, fail fast).
    Partition {
        a: String,
        b: String,
        at_ms: u64,
        duration_ms: u64,
    },
    /// The client's next storage request is held in the network for `duration_ms`
    /// (Kleppmann's delayed packet); as for a partition, it arrives at the first
    /// retransmission after the hold ends.
    HoldRequest {
        node: String,
        at: Trigger,
        duration_ms: u64,
    },
    /// Kill the node; it restarts from scratch (a new session) after `restart_after_ms`.
    Crash {
        node: String,
        at_ms: u64,
        restart_after_ms: u64,
    },
    /// etcd ends the client's current lease early, without telling it: `contrib/lock`'s manual
    /// `etcdctl lease revoke`, or Kleppmann's clock jump on the lock server.
    RevokeLease { node: String, at: Trigger },
    /// etcd answers this fraction (per mille) of the requests that go through its log with
    /// "request timed out", without committing them (the model answers after etcd's request
    /// timeout of 7 s; SimServer after 5-15 s).
    EtcdTimeouts { rate_permille: u32 },
    /// etcd commits this fraction (per mille) of the requests that go through its log and
    /// then answers "request timed out": real etcd's timeouts are indeterminate. Model only.
    EtcdAmbiguousTimeouts { rate_permille: u32 },
    /// The hazard of etcd issue 15247 (fixed by PR 16822): a replaced etcd leader does not
    /// notice for `notice_ms` after it runs again. Meanwhile it answers keepalives from its
    /// own lessor (renewals the real leader never sees) and revokes, through the real leader,
    /// the leases that expire in its view. A cluster of the model only.
    EtcdStaleLeader { notice_ms: u64 },
    /// Every link degrades for a while: each message takes `latency_ms` one way and is lost
    /// with `loss_permille` (madsim's TCP retransmits it with doubling backoff; a new
    /// connection, which each etcd request opens, is refused). Then the scenario's network
    /// returns. Network faults do not overlap.
    Network {
        at_ms: u64,
        duration_ms: u64,
        latency_ms: MsRange,
        loss_permille: u32,
    },
}

impl Fault {
    /// The node the fault is about (`etcd` for etcd-wide faults).
    pub fn node(&self) -> &str {
        match self {
            Fault::Pause { node, .. }
            | Fault::Skew { node, .. }
            | Fault::HoldRequest { node, .. }
            | Fault::RevokeLease { node, .. }
            | Fault::Crash { node, .. } => node,
            Fault::Partition { a, .. } => a,
            Fault::EtcdTimeouts { .. }
            | Fault::EtcdAmbiguousTimeouts { .. }
            | Fault::EtcdStaleLeader { .. } => ETCD,
            Fault::Network { .. } => NETWORK,
        }
    }

    /// Where the fault is aimed, when it strikes at a code point: (node, point, nth).
    pub fn aim(&self) -> Option<(&str, Point, u32)> {
        match self {
            Fault::Pause {
                node,
                at: Trigger::Point { point, nth },
                ..
            }
            | Fault::HoldRequest {
                node,
                at: Trigger::Point { point, nth },
                ..
            }
            | Fault::RevokeLease {
                node,
                at: Trigger::Point { point, nth },
            } => Some((node.as_str(), *point, *nth)),
            _ => None,
        }
    }

    /// Whether the fault cannot act: a pause, hold, partition or network fault of 0 ms, a
    /// perfect clock, a timeout rate of 0. Shrinking removes such faults before a run: they
    /// change no node, though a 0 ms pause still wakes the supervisor once, which moves
    /// madsim's later draws (the noise).
    pub fn is_noop(&self) -> bool {
        match self {
            Fault::Pause { duration_ms, .. }
            | Fault::HoldRequest { duration_ms, .. }
            | Fault::Partition { duration_ms, .. }
            | Fault::Network { duration_ms, .. } => *duration_ms == 0,
            Fault::Skew { skew, .. } => {
                skew.offset_ms == 0
                    && skew.drift_ppm == 0
                    && skew.steps.iter().all(|s| s.delta_ms == 0)
            }
            Fault::EtcdTimeouts { rate_permille }
            | Fault::EtcdAmbiguousTimeouts { rate_permille } => *rate_permille == 0,
            Fault::Crash { .. } | Fault::RevokeLease { .. } | Fault::EtcdStaleLeader { .. } => {
                false
            }
        }
    }

    /// A short description in words.
    pub fn describe(&self) -> String {
        match self {
            Fault::Pause {
                node,
                at,
                duration_ms,
            } => format!("pause {node} {at} for {duration_ms} ms"),
            Fault::Skew { node, skew } => format!(
                "clock of {node}: offset {} ms, drift {} ppm, {} step(s){}",
                skew.offset_ms,
                skew.drift_ppm,
                skew.steps.len(),
                skew.steps
                    .iter()
                    .map(|s| format!(" [{:+} ms at {} ms]", s.delta_ms, s.at_ms))
                    .collect::<String>()
            ),
            Fault::Partition {
                a,
                b,
                at_ms,
                duration_ms,
            } => format!("partition {a} | {b} at {at_ms} ms for {duration_ms} ms"),
            Fault::HoldRequest {
                node,
                at,
                duration_ms,
            } => format!("hold {node}'s storage request {at} for {duration_ms} ms"),
            Fault::Crash {
                node,
                at_ms,
                restart_after_ms,
            } => format!("crash {node} at {at_ms} ms, restart {restart_after_ms} ms later"),
            Fault::RevokeLease { node, at } => format!("etcd revokes {node}'s lease {at}"),
            Fault::EtcdTimeouts { rate_permille } => {
                format!("etcd times out {rate_permille}‰ of requests")
            }
            Fault::EtcdAmbiguousTimeouts { rate_permille } => {
                format!("etcd commits, then times out, {rate_permille}‰ of requests")
            }
            Fault::EtcdStaleLeader { notice_ms } => {
                format!("a replaced etcd leader notices only {notice_ms} ms after it runs again")
            }
            Fault::Network {
                at_ms,
                duration_ms,
                latency_ms,
                loss_permille,
            } => format!(
                "network at {at_ms} ms for {duration_ms} ms: latency {}..{} ms, loss {loss_permille}‰",
                latency_ms.min, latency_ms.max
            ),
        }
    }
}

/// A list of faults: the nemesis' whole intent for one run.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultPlan {
    pub faults: Vec<Fault>,
}

impl FaultPlan {
    pub fn none() -> Self {
        FaultPlan::default()
    }

    pub fn len(&self) -> usize {
        self.faults.len()
    }

    pub fn is_empty(&self) -> bool {
        self.faults.is_empty()
    }

    /// The skew of a node's clock (perfect unless the plan says otherwise).
    pub fn skew_of(&self, node: &str) -> Skew {
        self.faults
            .iter()
            .find_map(|f| match f {
                Fault::Skew { node: n, skew } if n == node => Some(skew.clone()),
                _ => None,
            })
            .unwrap_or_default()
    }

    /// A lock service node's clock: its own skew, else the skew of its whole group (`etcd`,
    /// `redis`), else a perfect clock.
    pub fn skew_of_member(&self, node: &str, group: &str) -> Skew {
        let own = self.skew_of(node);
        match own == Skew::default() {
            true => self.skew_of(group),
            false => own,
        }
    }

    /// Per mille of etcd requests that time out without committing.
    pub fn etcd_timeout_permille(&self) -> u32 {
        self.faults
            .iter()
            .find_map(|f| match f {
                Fault::EtcdTimeouts { rate_permille } => Some(*rate_permille),
                _ => None,
            })
            .unwrap_or(0)
    }

    /// Per mille of etcd requests that commit and then time out.
    pub fn etcd_ambiguous_permille(&self) -> u32 {
        self.faults
            .iter()
            .find_map(|f| match f {
                Fault::EtcdAmbiguousTimeouts { rate_permille } => Some(*rate_permille),
                _ => None,
            })
            .unwrap_or(0)
    }

    /// How long a replaced leader takes to notice (the issue-15247 hazard), if the plan says.
    pub fn etcd_stale_leader_ms(&self) -> Option<u64> {
        self.faults.iter().find_map(|f| match f {
            Fault::EtcdStaleLeader { notice_ms } => Some(*notice_ms),
            _ => None,
        })
    }

    /// Checks limits and node names; the message names the fault.
    pub fn validate(&self, nodes: &[String]) -> Result<(), String> {
        if self.faults.len() > FAULTS_MAX {
            return Err(format!(
                "{} faults, at most {FAULTS_MAX}",
                self.faults.len()
            ));
        }
        let mut once = Once::default();
        for (i, f) in self.faults.iter().enumerate() {
            let checked = check_start(f)
                .and_then(|()| once.check(f))
                .and_then(|()| check_nodes(f, nodes))
                .and_then(|()| check_sizes(f, &self.faults[..i]));
            if let Err(why) = checked {
                return Err(format!("fault {} ({}): {why}", i + 1, f.describe()));
            }
        }
        // What a valid plan promises the world: each etcd-wide fault at most once (the world
        // reads the first), no start past the longest run (so no `start + duration`
        // overflows), no two network windows at once.
        let kinds = |kind: fn(&Fault) -> bool| self.faults.iter().filter(|f| kind(f)).count();
        assert!(kinds(|f| matches!(f, Fault::EtcdTimeouts { .. })) <= 1);
        assert!(kinds(|f| matches!(f, Fault::EtcdAmbiguousTimeouts { .. })) <= 1);
        assert!(kinds(|f| matches!(f, Fault::EtcdStaleLeader { .. })) <= 1);
        // An aimed fault counts its point's hits from 1, so it can strike (the world matches
        // the nth hit); a node's clock is one skew (the world reads the first).
        assert!(self
            .faults
            .iter()
            .filter_map(Fault::aim)
            .all(|(_, _, nth)| nth >= 1));
        fn skewed(f: &Fault) -> Option<&str> {
            match f {
                Fault::Skew { node, .. } => Some(node),
                _ => None,
            }
        }
        debug_assert!(self.faults.iter().enumerate().all(|(i, f)| skewed(f)
            .is_none_or(|node| !self.faults[..i].iter().any(|g| skewed(g) == Some(node)))));
        debug_assert!(self.faults.iter().all(|f| match f {
            Fault::Partition { at_ms, .. } | Fault::Crash { at_ms, .. } => *at_ms <= START_MS_MAX,
            Fault::Network { at_ms, .. } => *at_ms <= START_MS_MAX,
            _ => true,
        }));
        debug_assert!(self
            .faults
            .iter()
            .enumerate()
            .all(|(i, f)| self.faults[..i].iter().all(|g| !network_overlap(g, f))));
        Ok(())
    }
}

/// Whether two faults are network windows that share a moment (windows are half-open).
pub(crate) fn network_overlap(a: &Fault, b: &Fault) -> bool {
    match (a, b) {
        (
            Fault::Network {
                at_ms: a0,
                duration_ms: ad,
                ..
            },
            Fault::Network {
                at_ms: b0,
                duration_ms: bd,
                ..
            },
        ) => a0 < &(b0 + bd) && b0 < &(a0 + ad),
        _ => false,
    }
}

// The rules of `FaultPlan::validate`, in the order it applies them to each fault; each
// returns why a fault is refused (`validate` names the fault).

/// Start times are bounded like durations, so `start + duration` cannot overflow.
fn check_start(f: &Fault) -> Result<(), String> {
    let starts: Vec<u64> = match f {
        Fault::Pause {
            at: Trigger::AtMs(t),
            ..
        }
        | Fault::RevokeLease {
            at: Trigger::AtMs(t),
            ..
        } => vec![*t],
        Fault::Partition { at_ms, .. }
        | Fault::Crash { at_ms, .. }
        | Fault::Network { at_ms, .. } => {
            vec![*at_ms]
        }
        Fault::Skew { skew, .. } => skew.steps.iter().map(|s| s.at_ms).collect(),
        _ => vec![],
    };
    match starts.iter().find(|t| **t > START_MS_MAX) {
        Some(t) => Err(format!(
            "starts at {t} ms, after the longest run ({START_MS_MAX} ms)"
        )),
        None => Ok(()),
    }
}

/// The faults a plan may hold once: one skew per node, one fault of each etcd-wide kind.
#[derive(Default)]
struct Once<'a> {
    skewed: Vec<&'a str>,
    timeouts: bool,
    ambiguous: bool,
    stale_leader: bool,
}

impl<'a> Once<'a> {
    fn check(&mut self, f: &'a Fault) -> Result<(), String> {
        match f {
            Fault::Skew { node, .. } if self.skewed.contains(&node.as_str()) => {
                Err("a second skew for the same node".into())
            }
            Fault::Skew { node, .. } => {
                self.skewed.push(node);
                Ok(())
            }
            Fault::EtcdTimeouts { .. } if self.timeouts => {
                Err("a second etcd-timeouts fault".into())
            }
            Fault::EtcdTimeouts { .. } => {
                self.timeouts = true;
                Ok(())
            }
            Fault::EtcdAmbiguousTimeouts { .. } if self.ambiguous => {
                Err("a second etcd-ambiguous-timeouts fault".into())
            }
            Fault::EtcdAmbiguousTimeouts { .. } => {
                self.ambiguous = true;
                Ok(())
            }
            Fault::EtcdStaleLeader { .. } if self.stale_leader => {
                Err("a second etcd-stale-leader fault".into())
            }
            Fault::EtcdStaleLeader { notice_ms } if *notice_ms > FAULT_MS_MAX => {
                Err(format!("notice_ms above {FAULT_MS_MAX}"))
            }
            Fault::EtcdStaleLeader { .. } => {
                self.stale_leader = true;
                Ok(())
            }
            _ => Ok(()),
        }
    }
}

/// The fault names nodes that exist, of a kind it applies to.
fn check_nodes(f: &Fault, nodes: &[String]) -> Result<(), String> {
    let role = |n: &str| n == ETCD_LEADER || n == ETCD_ALL || n == REDIS_ALL;
    // `redis` and `zk` (all of them) only in a world that has them: its node 1.
    let one = |n: &str| format!("{}1", n.split(':').next().unwrap_or(n));
    let redis_all =
        |n: &str| [REDIS, REDIS_ALL, ZK, ZK_ALL, ZK_LEADER].contains(&n) && nodes.contains(&one(n));
    let known = |n: &str| {
        n == ETCD
            || n == STORAGE
            || role(n)
            || redis_all(n)
            || nodes.iter().any(|m| *m == redis_node(n))
    };
    let node_ok = match f {
        Fault::Partition { a, b, .. } if b == ETCD_OTHERS => is_etcd(a) && known(a),
        Fault::Partition { a, b, .. } => known(a) && known(b) && a != b,
        Fault::EtcdTimeouts { .. }
        | Fault::EtcdAmbiguousTimeouts { .. }
        | Fault::EtcdStaleLeader { .. }
        | Fault::Network { .. } => true,
        other => known(other.node()),
    };
    if !node_ok {
        return Err("unknown node (or a partition of a node from itself)".into());
    }
    let client_only = matches!(
        f,
        Fault::HoldRequest { .. }
            | Fault::RevokeLease { .. }
            | Fault::Pause {
                at: Trigger::Point { .. },
                ..
            }
    );
    if client_only && (is_etcd(f.node()) || f.node() == STORAGE) {
        return Err("this fault applies to client nodes only".into());
    }
    if matches!(f, Fault::Crash { .. }) && f.node() == STORAGE {
        return Err("the storage does not crash: crash a client or an etcd member".into());
    }
    if matches!(f, Fault::Skew { .. }) && role(f.node()) {
        return Err("a skew lasts the whole run: name a member, not a role".into());
    }
    // etcd's clock matters (its lessor reads it); the storage has no use for one.
    if matches!(f, Fault::Skew { .. }) && f.node() == STORAGE {
        return Err("the storage reads no clock: skew a client or etcd".into());
    }
    Ok(())
}

/// The fault's sizes, by kind; `earlier` are the plan's faults before it.
fn check_sizes(f: &Fault, earlier: &[Fault]) -> Result<(), String> {
    match f {
        Fault::Pause {
            duration_ms, at, ..
        }
        | Fault::HoldRequest {
            duration_ms, at, ..
        } => check_pause_or_hold(f, *duration_ms, at),
        Fault::Partition { duration_ms, .. } if *duration_ms > FAULT_MS_MAX => {
            Err(format!("duration_ms above {FAULT_MS_MAX}"))
        }
        Fault::Crash {
            restart_after_ms, ..
        } if *restart_after_ms > FAULT_MS_MAX => {
            Err(format!("restart_after_ms above {FAULT_MS_MAX}"))
        }
        Fault::Skew { skew, .. } => skew.validate(),
        Fault::EtcdTimeouts { rate_permille } | Fault::EtcdAmbiguousTimeouts { rate_permille }
            if *rate_permille > 500 =>
        {
            Err("rate_permille above 500".into())
        }
        Fault::Network { .. } => check_network(f, earlier),
        // As for a pause or a hold: the world counts a point's hits from 1, so an aim at the
        // 0th would never strike.
        Fault::RevokeLease {
            at: Trigger::Point { nth: 0, .. },
            ..
        } => Err("nth counts from 1".into()),
        _ => Ok(()),
    }
}

/// A pause or a held request: its length, and its aim.
fn check_pause_or_hold(f: &Fault, duration_ms: u64, at: &Trigger) -> Result<(), String> {
    if duration_ms > FAULT_MS_MAX {
        return Err(format!("duration_ms above {FAULT_MS_MAX}"));
    }
    if matches!(at, Trigger::Point { nth: 0, .. }) {
        return Err("nth counts from 1".into());
    }
    if matches!(
        f,
        Fault::HoldRequest {
            at: Trigger::AtMs(_),
            ..
        }
    ) {
        return Err("a held request is aimed at a code point".into());
    }
    Ok(())
}

/// A network window: its length, latency and loss, and no overlap with an earlier one.
fn check_network(f: &Fault, earlier: &[Fault]) -> Result<(), String> {
    let Fault::Network {
        duration_ms,
        latency_ms,
        loss_permille,
        ..
    } = f
    else {
        unreachable!("check_network takes a network fault");
    };
    if *duration_ms > FAULT_MS_MAX {
        return Err(format!("duration_ms above {FAULT_MS_MAX}"));
    }
    latency_ms.validate("latency_ms", NETWORK_LATENCY_MS_MAX)?;
    if latency_ms.min == 0 {
        return Err("latency_ms: min must be at least 1".into());
    }
    if *loss_permille > NETWORK_LOSS_PERMILLE_MAX {
        return Err(format!("loss_permille above {NETWORK_LOSS_PERMILLE_MAX}"));
    }
    // Why no overlap: the world restores the scenario's network when a window ends, which
    // would end an overlapping window early.
    if earlier.iter().any(|g| network_overlap(g, f)) {
        return Err("overlaps an earlier network fault".into());
    }
    Ok(())
}

impl Fault {
    /// A network window whose slowest one-way latency is `max_ms` (the fastest 1 ms): what
    /// the tests of faults and of their labels build.
    #[cfg(test)]
    pub(crate) fn network_window(
        at_ms: u64,
        duration_ms: u64,
        max_ms: u64,
        loss_permille: u32,
    ) -> Fault {
        Fault::Network {
            at_ms,
            duration_ms,
            latency_ms: MsRange::new(1, max_ms),
            loss_permille,
        }
    }
}

#[cfg(test)]
mod tests;
