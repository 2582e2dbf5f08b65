//! The cluster figures: what each probe saw, as stored and committed.

use super::*;

/// The leader stalled, a follower written to until a write succeeds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaderFailover {
    pub stall_ms: u64,
    pub write_timeout_ms: u64,
    pub trials: usize,
    pub min_ms: u64,
    pub median_ms: u64,
    pub max_ms: u64,
    /// Every trial's figure, in trial order: ms from the stall's start to the first write
    /// that succeeded.
    pub samples_ms: Vec<u64>,
    /// Writes sent per trial, the successful one included.
    pub attempts: Vec<u32>,
    /// Writes per trial that got no answer within the write timeout.
    pub timed_out: Vec<u32>,
    /// The first failed write's error per trial (None when the first write succeeded).
    pub first_failure: Vec<Option<String>>,
    /// Which member led before each trial's stall, and which led once the cluster settled
    /// after it.
    pub leaders: Vec<(usize, usize)>,
}

/// A lease kept alive through one client while members stall.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseThroughStall {
    /// Which members were stalled (indices).
    pub stalled: Vec<usize>,
    /// Which member's client kept the lease alive (None: a failover client).
    pub through: Option<usize>,
    pub stall_ms: u64,
    pub ttl_s: i64,
    pub keepalive_every_ms: u64,
    /// Each keepalive's bound.
    pub keepalive_timeout_ms: u64,
    /// The key was still there 1.5 s after the resume.
    pub kept: bool,
    /// Keepalives that failed or got no answer within their bound.
    pub failed: usize,
    /// The first failure's error.
    pub first_failure: Option<String>,
    /// What the keepalives answered after the resume, in the order of their answers.
    pub answers_after_resume: Vec<i64>,
    /// Every keepalive, in the order they were sent, timed from the stall's start (negative:
    /// before it): whether the lease outlives the stall is decided by these times.
    #[serde(default)]
    pub keepalives: Vec<KeepaliveAt>,
}

impl LeaseThroughStall {
    /// Whether the lease was alive when the stall ended, read off the keepalives answered
    /// during it: the last one answered before the resume answered a positive TTL. None when
    /// no keepalive was answered during the stall (every member stalled, or no keepalives
    /// recorded).
    pub fn alive_at_resume(&self) -> Option<bool> {
        let stall_ms = i64::try_from(self.stall_ms).unwrap_or(i64::MAX);
        self.keepalives
            .iter()
            .filter(|k| (0..stall_ms).contains(&k.answered_ms))
            .filter_map(|k| k.ttl_s.map(|ttl_s| (k.answered_ms, ttl_s)))
            .max_by_key(|(answered_ms, _)| *answered_ms)
            .map(|(_, ttl_s)| ttl_s > 0)
    }

    /// Why a lease read gone after the resume may still have been kept through the stall, or
    /// None when it was kept, or lost during the stall (the last keepalive answered in it said
    /// TTL 0). Two races of the real server decide the read after the resume; neither is
    /// about the stall:
    /// - alive at the resume, then revoked: etcd 3.4.23's stalled old leader still holds its
    ///   lessor's primary role for a moment after SIGCONT; its lessor finds the lease expired
    ///   on its own monotonic clock and proposes `LeaseRevoke`, which its raft node, already a
    ///   follower, forwards to the new leader, who commits it (etcd issues 12528 and 15247;
    ///   fixed by PR 16822: `revokeExpiredLeases` asks raft whether it leads first);
    /// - no keepalive answered during the stall: the follower's `LeaseRenew` forwarded them to
    ///   the stalled leader it still knew (`v3_server.go`, `LeaseRenew`, bounded by the request
    ///   timeout, not by the client's 1 s), so the lease lived on the new leader's `Promote`
    ///   alone, which extends it to the election's end plus TTL plus an election timeout; the
    ///   election's randomized length against the 5 s stall decides the read.
    pub fn gone_by_a_race(&self) -> Option<&'static str> {
        match (self.kept, self.alive_at_resume()) {
            (false, Some(true)) => Some(
                "alive through the stall, revoked by the old leader on its resume (etcd issue 12528)",
            ),
            (false, None) => Some(
                "no keepalive answered during the stall: the new leader's Promote against the resume",
            ),
            _ => None,
        }
    }
}

/// One keepalive of a lease probe, timed from the stall's start.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeepaliveAt {
    pub sent_ms: i64,
    pub answered_ms: i64,
    /// The TTL it answered (0: the lease is gone); None when it failed or got no answer.
    pub ttl_s: Option<i64>,
}

/// Keepalives through a failover client pinned to a member that stalls.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeepaliveFailover {
    pub lease: LeaseThroughStall,
    /// ms from the stall's start to the answer of the first keepalive sent after it that
    /// answered a positive TTL (None: none did).
    pub first_answer_ms: Option<u64>,
}

/// Everything the cluster probes measured; a probe that failed has no figure and an entry in
/// `errors`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ClusterFigures {
    pub members: usize,
    pub failover: Option<LeaderFailover>,
    pub lease_leader_paused: Option<LeaseThroughStall>,
    pub lease_all_paused: Option<LeaseThroughStall>,
    pub keepalive_failover: Option<KeepaliveFailover>,
    /// The same with each keepalive bounded by [`SHORT_KEEPALIVE_TIMEOUT`].
    #[serde(default)]
    pub keepalive_failover_short: Option<KeepaliveFailover>,
    /// Probe name → why it has no figure.
    pub errors: BTreeMap<String, String>,
}

/// Cluster figures with where they come from, as committed for a real cluster.
pub type ClusterRecord = Record<ClusterFigures>;
