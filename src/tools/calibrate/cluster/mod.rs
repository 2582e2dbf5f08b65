//! Calibration of a *cluster* of etcd members: what a lock client sees when members stall.
//!
//! The probes are written once over [`Cluster`], a cluster the probes can look at (which member
//! leads) and stall member by member. The real side is `SigStopCluster` (three real etcd
//! processes stalled with `SIGSTOP`, `sims/real.rs`, which commits the figures to
//! `sims/calibration/real-cluster.json`); the simulated side implements the same trait over
//! fencelab's cluster model and madsim's pause. Time is `tokio::time` and every wait is bounded,
//! so the same probes run deterministically under madsim.
//!
//! The probes ([`ClusterFigures`]):
//! - **failover** ([`failover`]): the leader stalled 5 s; a linearizable write through a
//!   follower's own client every 10 ms (each call bounded by 100 ms) until one succeeds; the time
//!   from the stall's start to that success, [`FAILOVER_TRIALS`] trials.
//! - **lease through a leader pause** ([`lease_leader_paused`]): a lease of TTL 2 s kept alive
//!   through a follower alone while the leader stalls 5 s. A follower forwards a keepalive to
//!   the leader (etcd `etcdserver/v3_server.go`, `LeaseRenew`: renewals do not go through
//!   raft, the follower posts them to the leader's `leasehttp` handler), and a new leader
//!   extends every lease by its election timeout when it takes over (`lease/lessor.go`,
//!   `Promote`), so the lease should outlive the pause.
//! - **lease after every member paused** ([`lease_all_paused`]): the same lease while all
//!   members stall 5 s together: no member runs, nothing renews, and on the resume the leader's
//!   lessor finds the lease past its deadline (`lessor.revokeExpiredLeases`).
//! - **keepalives through a paused member fail over** ([`keepalive_failover`]): a
//!   [`Failover`] client pinned to a follower that stalls 5 s; each keepalive bounded by 1 s,
//!   so a keepalive that times out moves the pin and a later one reaches another member; and
//!   again with each keepalive bounded by 500 ms, shorter than the keepalive period (with 1 s
//!   the lease's fate is a matter of milliseconds: see [`keepalive_failover`]).

use super::*;
use crate::etcd::failover::Failover;
use std::task::Poll;

/// A cluster the probes can look at and stall member by member.
///
/// Contract for [`Cluster::stall`]: the members are stalled by the time the returned future
/// first returns from `poll` (a `SIGSTOP` sent, a madsim node paused), so a probe can poll it
/// once, take the instant, and only then start sending requests that must meet a stalled
/// member.
pub trait Cluster: Send + Sync {
    /// How many members.
    fn members(&self) -> usize;
    /// A client of member `i` alone.
    fn member(&self, i: usize) -> Arc<dyn Etcd>;
    /// A client of every member that fails over, pinned first to member `first`
    /// (build it with `fencelab::etcd::failover::Failover::new(vec)` with the members rotated so `first` is first).
    fn failover_from(&self, first: usize) -> Arc<dyn Etcd>;
    /// Which member leads now.
    fn leader(&self) -> BoxFuture<'_, Result<usize, String>>;
    /// Stalls (SIGSTOP / madsim pause) the given members together for `duration`, then resumes them.
    fn stall(&self, members: &[usize], duration: Duration) -> BoxFuture<'_, Result<(), String>>;
}

/// The members of `cluster` rotated so that `first` comes first: what
/// [`Cluster::failover_from`] hands to [`Failover::new`].
pub fn rotated(cluster: &dyn Cluster, first: usize) -> Vec<Arc<dyn Etcd>> {
    let n = cluster.members();
    (0..n).map(|k| cluster.member((first + k) % n)).collect()
}

/// A [`Failover`] client of `cluster` pinned first to `first`.
pub fn failover_client(cluster: &dyn Cluster, first: usize) -> Arc<dyn Etcd> {
    Arc::new(Failover::new(rotated(cluster, first)))
}

/// Trials of the failover probe.
pub const FAILOVER_TRIALS: usize = 20;
/// How long the cluster probes stall members.
pub const CLUSTER_STALL: Duration = Duration::from_secs(5);
/// The failover probe's bound on each write: a write that reached a stalled leader (forwarded
/// by the follower as a raft proposal) gets no answer until etcd's own 7 s request timeout,
/// even after a new leader is elected, so the caller's deadline ends it. Short, so that the
/// figure is the election's, to within a bound: with 2 s, every real trial measured the
/// bound (2,013–2,022 ms over 12 trials).
pub const WRITE_TIMEOUT: Duration = Duration::from_millis(100);
/// The bound on each keepalive of the cluster probes (what a lock client would set well
/// below the TTL).
pub const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(1);
/// The keepalive-failover probe's second bound, shorter than the keepalive period: see
/// [`keepalive_failover`] for why a bound of 1 s decides the lease by milliseconds.
pub const SHORT_KEEPALIVE_TIMEOUT: Duration = Duration::from_millis(500);
/// A member that does not answer a read in this long is not settled.
pub const SETTLE_READ_TIMEOUT: Duration = Duration::from_secs(1);
/// Longest wait for the cluster to settle.
pub const SETTLE_LIMIT: Duration = Duration::from_secs(30);
/// TTL of the cluster probes' leases.
pub const CLUSTER_TTL_S: i64 = 2;
/// Keys are read this long after a stall's resume (as in the single-member stall probe).
pub const READ_AFTER_RESUME: Duration = Duration::from_millis(1500);
/// Longest a failover trial writes before giving up.
const FAILOVER_LIMIT: Duration = Duration::from_secs(30);

/// How the cluster figures are measured, in one line (stored with them).
pub const CLUSTER_METHOD: &str = "calibrate/cluster.rs: failover = leader SIGSTOPped 5 s, a put through a follower's own client every 10 ms (sleep between answer and next send, each bounded by 100 ms) until one succeeds, ms from the stall's start (after the STOP was sent) to that success, 20 trials, cluster settled between them; leases TTL 2 s kept alive every TTL/3, each keepalive bounded by 1 s, stall 5 s starting 1 s after the keepalives, key read 1.5 s after the resume: through a follower while the leader stalls; through one member while all stall; through a failover client pinned to the stalled follower (keepalives bounded by 1 s, then by 500 ms)";

mod checks;
mod figures;
mod helpers;
mod probes;
#[cfg(not(madsim))]
mod sigstop;
mod table;
#[cfg(test)]
mod tests;

// What the cluster's files share with each other (`use super::*`), and what they borrow from
// the single-member probes.
use super::compare::opt;
use super::probes::{call, key_present, ms, note, renew_every};
use checks::word;
use helpers::{follower_of, lease_through_stall, start_stall};

pub use checks::{
    agree_cluster, compare_cluster, FAILOVER_RANGE_MS, KEEPALIVE_FAILOVER_MS, SELF_FAILOVER_MS,
};
pub use figures::{
    ClusterFigures, ClusterRecord, KeepaliveAt, KeepaliveFailover, LeaderFailover,
    LeaseThroughStall,
};
pub use helpers::settle;
pub use probes::{
    failover, keepalive_failover, lease_all_paused, lease_leader_paused, run_cluster,
};
#[cfg(not(madsim))]
pub use sigstop::SigStopCluster;
pub use table::cluster_table;
