//! Calibration: what a lock client can observe of an etcd, measured by probes written once
//! over the [`Etcd`] seam.
//!
//! The same probes run against a real etcd (`sims/real.rs`, which commits the figures to
//! `sims/calibration/real-etcd.json`) and, in the simulation, against fencelab's model and
//! madsim's SimServer (`sims/calibration.rs`, which asserts the model within [`TOLERANCES`] of
//! the committed real figures). Time is `tokio::time`: real in the real build, simulated under
//! madsim. Stalling etcd goes through [`Stall`]: `SIGSTOP`/`SIGCONT` of the etcd process
//! (`SigStop`, real build) or madsim's pause of the etcd node (`PauseNode`, simulation).
//!
//! The probes, each returning plain serde values ([`Figures`]):
//! - **lease gone after the last keepalive** ([`lease_gone`]): trials run concurrently, trial
//!   `i` starting `i × 37 ms` after the first so that their phases against etcd's 500 ms expiry
//!   scan differ. Each grants a lease, puts a key under it, sends one keepalive and renews no
//!   more; it then reads the key (a linearizable `Range`) every 10 ms (10 ms of sleep between
//!   the answer of one read and the sending of the next) until the key is gone. The figure is
//!   the time from the keepalive's *answer* to the *answer* of the first read that finds the
//!   key gone.
//! - **etcd stalled while keepalives go on** ([`stalled`]): a lease of TTL 2 s renewed every
//!   TTL/3 as etcd's Go client does (each keepalive its own call, sent whether or not the
//!   previous one was answered), etcd stalled for a while, then the key read 1.5 s after the
//!   resume.
//! - **keepalive answers** ([`keepalive_answers`], [`keepalive_past_deadline`]): for a lease
//!   never granted, after the lease's revocation, and 20 ms past the lease's deadline (20
//!   staggered trials: the answer, and how long it took).
//! - **minimum TTL** ([`granted_ttl`]): what a grant of TTL 1 s answers.
//! - **tokens** ([`tokens`]): three holders in turn through the election's `Campaign` and the
//!   Lock API; the token is the holder key's create revision.
//! - **the Lock API after a wait whose lease expired** ([`lock_after_expired_wait`]): etcd 3.4
//!   tells the waiter it holds the lock without re-checking its key (etcd issue 11456); 3.5
//!   answers "session expired" (PR 11408).

use crate::deadline;
use crate::etcd::{Etcd, EtcdError, EtcdResult, Keys, LeaderKey, LeaseId};
use crate::BoxFuture;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::{sleep, Instant};

/// Trials per TTL of the lease-gone probe.
pub const TRIALS: usize = 20;
/// Delay between the starts of two successive trials.
pub const STAGGER: Duration = Duration::from_millis(37);
/// Sleep between a read's answer and the next read.
pub const POLL: Duration = Duration::from_millis(10);
/// Every etcd call of a probe is bounded by this.
pub(super) const CALL_TIMEOUT: Duration = Duration::from_secs(20);
/// The lease-gone probe's TTLs.
pub const GONE_TTLS_S: [i64; 2] = [2, 5];
/// The stall probe's stalls, ms, with the TTL of its lease.
pub const STALLS_MS: [u64; 2] = [5_000, 1_000];
pub(super) const STALL_TTL_S: i64 = 2;
/// How far past the lease's deadline the past-deadline keepalive is sent.
pub const PAST_DEADLINE: Duration = Duration::from_millis(20);
/// A lease ID no etcd granted in the probes (etcd's IDs are drawn from a member ID and a clock).
pub(super) const UNKNOWN_LEASE: LeaseId = 0x0bad_1ea5_e000_0001;
/// Holders of the token probes.
pub(super) const HOLDERS: usize = 3;

mod cluster;
mod compare;
mod probes;
pub mod redis;
pub(crate) mod stall;
mod table;
pub mod zk;

#[cfg(not(madsim))]
pub use cluster::SigStopCluster;
pub use cluster::{
    agree_cluster, cluster_table, compare_cluster, failover, failover_client, keepalive_failover,
    lease_all_paused, lease_leader_paused, rotated, run_cluster, settle, Cluster, ClusterFigures,
    ClusterRecord, KeepaliveAt, KeepaliveFailover, LeaderFailover, LeaseThroughStall,
    CLUSTER_METHOD, CLUSTER_STALL, CLUSTER_TTL_S, FAILOVER_RANGE_MS, FAILOVER_TRIALS,
    KEEPALIVE_FAILOVER_MS, KEEPALIVE_TIMEOUT, READ_AFTER_RESUME, SELF_FAILOVER_MS, SETTLE_LIMIT,
    SETTLE_READ_TIMEOUT, SHORT_KEEPALIVE_TIMEOUT, WRITE_TIMEOUT,
};
pub use compare::{compare, failures, Check, Tolerances, LOCK_AFTER_EXPIRED_WAIT, TOLERANCES};
pub use probes::{
    granted_ttl, keepalive_answers, keepalive_past_deadline, lease_gone, lock_after_expired_wait,
    run, spread, stalled, tokens,
};
#[cfg(madsim)]
pub use stall::PauseNode;
#[cfg(not(madsim))]
pub use stall::SigStop;
pub use stall::Stall;
pub use table::table;

/// Lease gone after the last keepalive, for one TTL.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseGone {
    pub ttl_s: i64,
    pub trials: usize,
    pub min_ms: u64,
    pub median_ms: u64,
    pub max_ms: u64,
    /// Every trial's figure, in trial order.
    pub samples_ms: Vec<u64>,
}

/// etcd stalled while keepalives go on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stalled {
    pub stall_ms: u64,
    pub ttl_s: i64,
    pub keepalive_every_ms: u64,
    /// The key was gone 1.5 s after the resume.
    pub gone_after_resume: bool,
    /// What the keepalives answered after the resume, in the order of their answers.
    pub answers_after_resume: Vec<i64>,
    /// Keepalives that failed or got no answer.
    pub failed: usize,
    /// The first failure's error.
    #[serde(default)]
    pub first_failure: Option<String>,
}

/// A keepalive sent 20 ms past the lease's deadline (estimated from the last keepalive's
/// answer): what each trial's answered, and how long the answers took.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PastDeadline {
    pub answers: Vec<i64>,
    pub min_ms: u64,
    pub median_ms: u64,
    pub max_ms: u64,
}

/// Tokens of successive holders.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tokens {
    /// Tokens in the order the holders got the lock or leadership.
    pub tokens: Vec<i64>,
    /// Holder indices in that order (0 asked first).
    pub order: Vec<usize>,
    /// The later holders were still waiting while the first held.
    pub waited: bool,
    /// Each token is greater than the one before.
    pub rise: bool,
}

/// What `Lock` answered the waiter whose lease expired while it waited.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "answer", rename_all = "kebab-case")]
pub enum LockAnswer {
    /// Success: the waiter is told it holds the lock (etcd 3.4, issue 11456).
    Granted {
        /// Whether the key it was given exists (it cannot: its lease is gone).
        key_present: bool,
    },
    /// "session expired" (etcd 3.5, PR 11408).
    SessionExpired,
    /// Anything else.
    Error { why: String },
}

impl LockAnswer {
    fn short(&self) -> String {
        match self {
            LockAnswer::Granted { key_present } => {
                format!(
                    "granted (key {})",
                    if *key_present { "present" } else { "gone" }
                )
            }
            LockAnswer::SessionExpired => "session expired".into(),
            LockAnswer::Error { why } => format!("error: {why}"),
        }
    }

    /// Same kind of answer (errors compare by kind only).
    fn same_as(&self, other: &LockAnswer) -> bool {
        match (self, other) {
            (LockAnswer::Error { .. }, LockAnswer::Error { .. }) => true,
            (a, b) => a == b,
        }
    }
}

/// The Lock API after a wait whose lease expired.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockAfterExpiredWait {
    pub answer: LockAnswer,
    /// The waiter's lease was gone (TimeToLive -1) before the holder unlocked.
    pub lease_gone_before_unlock: bool,
    /// The waiter had its answer before the holder unlocked.
    pub answered_before_unlock: bool,
}

/// Everything the probes measured of one etcd; a probe that failed has no figure and an entry
/// in `errors`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Figures {
    pub lease_gone: Vec<LeaseGone>,
    pub stalled: Vec<Stalled>,
    pub keepalive_unknown_lease: Option<i64>,
    pub keepalive_after_expiry: Option<i64>,
    pub keepalive_past_deadline: Option<PastDeadline>,
    /// What a grant of TTL 1 s answered.
    pub granted_ttl_for_1: Option<i64>,
    pub campaign_tokens: Option<Tokens>,
    pub lock_tokens: Option<Tokens>,
    pub lock_after_expired_wait: Option<LockAfterExpiredWait>,
    /// Probe name → why it has no figure.
    pub errors: BTreeMap<String, String>,
}

/// Figures with where they come from, as committed for a real etcd (`Record`) or a real
/// cluster (`Record<ClusterFigures>`, [`ClusterRecord`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record<F = Figures> {
    /// etcd's version as it reports it (`Status`).
    pub etcd_version: String,
    /// When it was measured (UTC).
    pub date: String,
    /// Where: CPU, cores, kernel.
    pub machine: String,
    /// How the figures were measured.
    pub method: String,
    pub figures: F,
}

/// How the figures are measured, in one line (stored with them).
pub const METHOD: &str = "calibrate.rs: lease gone = keepalive answer -> answer of the first Range of the lease's key (10 ms apart) that finds it gone, 20 trials per TTL started 37 ms apart; stalls: keepalive every TTL/3, key read 1.5 s after resume";

// ---------------------------------------------------------------------------------------
// helpers

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spread_takes_the_middle_of_even_counts() {
        assert_eq!(spread(&[5, 1, 3]), (1, 3, 5));
        assert_eq!(spread(&[4, 1, 3, 2]), (1, 2, 4));
        assert_eq!(spread(&[]), (0, 0, 0));
    }

    fn gone(ttl_s: i64, min_ms: u64, median_ms: u64, max_ms: u64) -> LeaseGone {
        LeaseGone {
            ttl_s,
            trials: 1,
            min_ms,
            median_ms,
            max_ms,
            samples_ms: vec![],
        }
    }

    #[test]
    fn compare_widens_the_range_and_bounds_the_median() {
        let r = Figures {
            lease_gone: vec![gone(2, 2050, 2300, 2530)],
            ..Figures::default()
        };
        let ok = Figures {
            lease_gone: vec![gone(2, 1951, 2151, 2630)],
            ..Figures::default()
        };
        let failed: Vec<_> = compare(&r, &ok, TOLERANCES)
            .into_iter()
            .filter(|c| !c.ok && c.id.starts_with("lease-gone"))
            .collect();
        assert!(failed.is_empty(), "{failed:?}");
        let bad = Figures {
            lease_gone: vec![gone(2, 1949, 2149, 2631)],
            ..Figures::default()
        };
        let failed: Vec<_> = compare(&r, &bad, TOLERANCES)
            .into_iter()
            .filter(|c| !c.ok)
            .map(|c| c.id)
            .collect();
        for id in [
            "lease-gone-2s-min",
            "lease-gone-2s-max",
            "lease-gone-2s-median",
        ] {
            assert!(failed.iter().any(|f| f == id), "{failed:?}");
        }
    }
}
