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

// ---------------------------------------------------------------------------------------
// helpers

/// Waits until the cluster is settled: a leader is known and every member answers a
/// linearizable read within [`SETTLE_READ_TIMEOUT`] (a follower's read needs the leader's
/// ReadIndex, so this also shows every member reaches the leader). Returns the leader.
pub async fn settle(cluster: &dyn Cluster, prefix: &str) -> Result<usize, String> {
    let key = format!("{prefix}/settle");
    let start = Instant::now();
    let mut last = String::from("not tried");
    // Bounded twice: by time, and by a count no wait of SETTLE_LIMIT can exceed.
    for _ in 0..10_000u32 {
        if start.elapsed() >= SETTLE_LIMIT {
            break;
        }
        match settled_once(cluster, &key).await {
            Ok(leader) => return Ok(leader),
            Err(e) => last = e,
        }
        sleep(Duration::from_millis(100)).await;
    }
    Err(format!("cluster not settled in {SETTLE_LIMIT:?}: {last}"))
}

async fn settled_once(cluster: &dyn Cluster, key: &str) -> Result<usize, String> {
    let leader = match deadline::timeout(WRITE_TIMEOUT, cluster.leader()).await {
        Ok(l) => l?,
        Err(_) => return Err(format!("no leader answer in {WRITE_TIMEOUT:?}")),
    };
    for i in 0..cluster.members() {
        let m = cluster.member(i);
        match deadline::timeout(SETTLE_READ_TIMEOUT, m.get(Keys::Exact(key.to_string()))).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => return Err(format!("member {i} read: {e}")),
            Err(_) => {
                return Err(format!(
                    "member {i} read: no answer in {SETTLE_READ_TIMEOUT:?}"
                ))
            }
        }
    }
    // The leader may have changed while the members were read: ask again.
    match deadline::timeout(WRITE_TIMEOUT, cluster.leader()).await {
        Ok(Ok(again)) if again == leader => Ok(leader),
        Ok(Ok(again)) => Err(format!("leader moved from {leader} to {again}")),
        Ok(Err(e)) => Err(e),
        Err(_) => Err(format!("no leader answer in {WRITE_TIMEOUT:?}")),
    }
}

/// A follower of `leader`: the next member.
fn follower_of(cluster: &dyn Cluster, leader: usize) -> usize {
    (leader + 1) % cluster.members()
}

/// Starts a stall: polls it once, which stalls the members ([`Cluster`]'s contract), and
/// returns the instant right after with the rest of the stall to await.
async fn start_stall<'a>(
    cluster: &'a dyn Cluster,
    members: &[usize],
    duration: Duration,
) -> Result<(Instant, BoxFuture<'a, Result<(), String>>), String> {
    let mut stall = cluster.stall(members, duration);
    let first = std::future::poll_fn(|cx| Poll::Ready(stall.as_mut().poll(cx))).await;
    match first {
        Poll::Pending => Ok((Instant::now(), stall)),
        Poll::Ready(Err(e)) => Err(e),
        Poll::Ready(Ok(())) => Err(format!("a stall of {duration:?} ended at its first poll")),
    }
}

/// A lease of [`CLUSTER_TTL_S`] granted and kept alive through `through` (each keepalive
/// bounded by `bound`), a key under it, `stalled` stalled for [`CLUSTER_STALL`] one second
/// after the keepalives start, the key read [`READ_AFTER_RESUME`] after the resume. The lease is revoked at the end whatever happened.
/// Also returns, for the keepalive-failover figure, ms from the stall's start to the answer of
/// the first keepalive sent after it that answered a positive TTL.
async fn lease_through_stall(
    cluster: &dyn Cluster,
    through: Arc<dyn Etcd>,
    through_member: Option<usize>,
    stalled: &[usize],
    bound: Duration,
    key: &str,
) -> Result<(LeaseThroughStall, Option<u64>), String> {
    let g = call("grant", through.grant(CLUSTER_TTL_S)).await?;
    let result = async {
        call("put", through.put(key, "", g.id)).await?;
        let period = Duration::from_millis(g.ttl_s as u64 * 1000 / 3);
        let origin = Instant::now();
        let stop = Arc::new(AtomicBool::new(false));
        let renewals = renew_every(through.clone(), g.id, period, bound, origin, stop.clone());
        sleep(Duration::from_secs(1)).await;
        let stalled_result = match start_stall(cluster, stalled, CLUSTER_STALL).await {
            Ok((at, rest)) => rest.await.map(|()| at - origin),
            Err(e) => Err(e),
        };
        let resumed = origin.elapsed();
        sleep(READ_AFTER_RESUME).await;
        let present = key_present(&*through, key).await;
        stop.store(true, Ordering::Relaxed);
        let records = renewals.await.map_err(|e| format!("keepalives: {e}"))?;
        let stall_start = stalled_result?;
        let first_answer_ms = records
            .iter()
            .filter(|r| r.sent >= stall_start && matches!(r.answer, Ok(t) if t > 0))
            .map(|r| ms(r.answered - stall_start))
            .min();
        Ok((
            LeaseThroughStall {
                stalled: stalled.to_vec(),
                through: through_member,
                stall_ms: ms(CLUSTER_STALL),
                ttl_s: g.ttl_s,
                keepalive_every_ms: ms(period),
                keepalive_timeout_ms: ms(bound),
                kept: present?,
                failed: records.iter().filter(|r| r.answer.is_err()).count(),
                first_failure: records.iter().find_map(|r| r.answer.clone().err()),
                answers_after_resume: records
                    .iter()
                    .filter(|r| r.answered >= resumed)
                    .filter_map(|r| r.answer.as_ref().ok().copied())
                    .collect(),
                keepalives: {
                    let at = |d: Duration| d.as_millis() as i64 - stall_start.as_millis() as i64;
                    let mut k: Vec<(Duration, KeepaliveAt)> = records
                        .iter()
                        .map(|r| {
                            let k = KeepaliveAt {
                                sent_ms: at(r.sent),
                                answered_ms: at(r.answered),
                                ttl_s: r.answer.as_ref().ok().copied(),
                            };
                            (r.sent, k)
                        })
                        .collect();
                    k.sort_by_key(|(sent, _)| *sent);
                    k.into_iter().map(|(_, k)| k).collect()
                },
            },
            first_answer_ms,
        ))
    }
    .await;
    // Clean up: a lease that expired answers "not found", which is fine.
    let _ = call("revoke", through.revoke(g.id)).await;
    result
}

// ---------------------------------------------------------------------------------------
// probes

/// What one failover trial saw.
struct FailoverTrial {
    /// ms from the stall's start to the first write that succeeded.
    at_ms: u64,
    attempts: u32,
    timed_out: u32,
    first_failure: Option<String>,
    /// The leader before the stall, and once the cluster settled after it.
    leaders: (usize, usize),
}

/// One failover trial: the leader stalled [`CLUSTER_STALL`], a put through a follower's own
/// client every [`POLL`] until one succeeds.
async fn failover_trial(
    cluster: &dyn Cluster,
    prefix: &str,
    trial: usize,
) -> Result<FailoverTrial, String> {
    let leader = settle(cluster, prefix).await?;
    let follower = follower_of(cluster, leader);
    let client = cluster.member(follower);
    let key = format!("{prefix}/failover/{trial}");
    let (origin, rest) = start_stall(cluster, &[leader], CLUSTER_STALL).await?;
    let writes = async {
        let mut t = FailoverTrial {
            at_ms: 0,
            attempts: 0,
            timed_out: 0,
            first_failure: None,
            leaders: (leader, leader),
        };
        // Bounded by time and by count (a write takes at least POLL between sends).
        while origin.elapsed() < FAILOVER_LIMIT && t.attempts < 10_000 {
            t.attempts += 1;
            let failure = match deadline::timeout(WRITE_TIMEOUT, client.put(&key, "", 0)).await {
                Ok(Ok(_)) => {
                    t.at_ms = ms(origin.elapsed());
                    return Ok(t);
                }
                Ok(Err(e)) => e.to_string(),
                Err(_) => {
                    t.timed_out += 1;
                    format!("no answer in {WRITE_TIMEOUT:?}")
                }
            };
            t.first_failure.get_or_insert(failure);
            sleep(POLL).await;
        }
        Err(format!(
            "no write through member {follower} succeeded in {FAILOVER_LIMIT:?} ({} sent)",
            t.attempts
        ))
    };
    let (stalled, written) = tokio::join!(rest, writes);
    stalled?;
    let mut t = written?;
    t.leaders.1 = settle(cluster, prefix).await?;
    let _ = call("delete", client.delete(Keys::Exact(key))).await;
    Ok(t)
}

/// The leader stalled, writes through a follower until one succeeds: [`FAILOVER_TRIALS`]
/// trials, the cluster settled before each.
pub async fn failover(
    cluster: &dyn Cluster,
    trials: usize,
    prefix: &str,
) -> Result<LeaderFailover, String> {
    let mut f = LeaderFailover {
        stall_ms: ms(CLUSTER_STALL),
        write_timeout_ms: ms(WRITE_TIMEOUT),
        trials,
        min_ms: 0,
        median_ms: 0,
        max_ms: 0,
        samples_ms: vec![],
        attempts: vec![],
        timed_out: vec![],
        first_failure: vec![],
        leaders: vec![],
    };
    for trial in 0..trials {
        let t = failover_trial(cluster, prefix, trial)
            .await
            .map_err(|e| format!("trial {trial}: {e}"))?;
        f.samples_ms.push(t.at_ms);
        f.attempts.push(t.attempts);
        f.timed_out.push(t.timed_out);
        f.first_failure.push(t.first_failure);
        f.leaders.push(t.leaders);
    }
    (f.min_ms, f.median_ms, f.max_ms) = spread(&f.samples_ms);
    Ok(f)
}

/// A lease kept alive through a follower alone while the leader stalls: the follower forwards
/// each keepalive to whoever leads (`LeaseRenew`), and the new leader extends the lease when
/// it takes over (`Promote`).
pub async fn lease_leader_paused(
    cluster: &dyn Cluster,
    prefix: &str,
) -> Result<LeaseThroughStall, String> {
    let leader = settle(cluster, prefix).await?;
    let follower = follower_of(cluster, leader);
    let key = format!("{prefix}/lease-leader-paused");
    let (l, _) = lease_through_stall(
        cluster,
        cluster.member(follower),
        Some(follower),
        &[leader],
        KEEPALIVE_TIMEOUT,
        &key,
    )
    .await?;
    settle(cluster, prefix).await?;
    Ok(l)
}

/// A lease kept alive through the leader's client while every member stalls together.
pub async fn lease_all_paused(
    cluster: &dyn Cluster,
    prefix: &str,
) -> Result<LeaseThroughStall, String> {
    let leader = settle(cluster, prefix).await?;
    let key = format!("{prefix}/lease-all-paused");
    let all: Vec<usize> = (0..cluster.members()).collect();
    let (l, _) = lease_through_stall(
        cluster,
        cluster.member(leader),
        Some(leader),
        &all,
        KEEPALIVE_TIMEOUT,
        &key,
    )
    .await?;
    settle(cluster, prefix).await?;
    Ok(l)
}

/// A lease kept alive through a failover client pinned to a follower that stalls, each
/// keepalive bounded by `bound`: a keepalive that times out moves the pin, and a later one
/// reaches another member.
///
/// With keepalives every TTL/3 and a bound of 1 s (longer than the period), the first keepalive
/// after the stall's start *and* the next one, sent before the first has timed out, both meet
/// the stalled member; the first to reach another member leaves three periods after the last
/// one answered, that is 3 × 666 ms = 1,998 ms after it, against a lease that ends 2,000 ms
/// after the leader renewed it. Whether the lease survives is decided by those 2 ms less the
/// client's timer slack and the difference of two forwarding latencies; etcd's lessor answers
/// a keepalive that comes after the deadline with "not found" once the lease is revoked
/// (`lease/lessor.go`, `Renew` waits on the expired lease's `revokec`). A bound shorter than
/// the period ([`SHORT_KEEPALIVE_TIMEOUT`]) loses one keepalive only, and the lease by a
/// margin of a period.
pub async fn keepalive_failover(
    cluster: &dyn Cluster,
    bound: Duration,
    prefix: &str,
) -> Result<KeepaliveFailover, String> {
    let leader = settle(cluster, prefix).await?;
    let follower = follower_of(cluster, leader);
    let key = format!("{prefix}/keepalive-failover-{}ms", ms(bound));
    let (lease, first_answer_ms) = lease_through_stall(
        cluster,
        cluster.failover_from(follower),
        None,
        &[follower],
        bound,
        &key,
    )
    .await?;
    settle(cluster, prefix).await?;
    Ok(KeepaliveFailover {
        lease,
        first_answer_ms,
    })
}

/// Every cluster probe in sequence, each alone on the cluster. `prefix` keeps the keys of one
/// run apart from another's.
pub async fn run_cluster(cluster: Arc<dyn Cluster>, prefix: &str) -> ClusterFigures {
    let c = &*cluster;
    let mut f = ClusterFigures {
        members: c.members(),
        ..ClusterFigures::default()
    };
    let mut errors = BTreeMap::new();
    match failover(c, FAILOVER_TRIALS, &format!("{prefix}/failover")).await {
        Ok(v) => f.failover = Some(v),
        Err(e) => note(&mut errors, "failover", e),
    }
    match lease_leader_paused(c, &format!("{prefix}/leader-paused")).await {
        Ok(v) => f.lease_leader_paused = Some(v),
        Err(e) => note(&mut errors, "lease-leader-paused", e),
    }
    match lease_all_paused(c, &format!("{prefix}/all-paused")).await {
        Ok(v) => f.lease_all_paused = Some(v),
        Err(e) => note(&mut errors, "lease-all-paused", e),
    }
    let failover_prefix = format!("{prefix}/keepalive-failover");
    match keepalive_failover(c, KEEPALIVE_TIMEOUT, &failover_prefix).await {
        Ok(v) => f.keepalive_failover = Some(v),
        Err(e) => note(&mut errors, "keepalive-failover", e),
    }
    match keepalive_failover(c, SHORT_KEEPALIVE_TIMEOUT, &failover_prefix).await {
        Ok(v) => f.keepalive_failover_short = Some(v),
        Err(e) => note(&mut errors, "keepalive-failover-short", e),
    }
    f.errors = errors;
    f
}

// ---------------------------------------------------------------------------------------
// comparison

/// How far a candidate's failover range may reach past the reference's, each side.
pub const FAILOVER_RANGE_MS: u64 = 200;
/// How far the candidate's first keepalive answer through a failover client may be from the
/// reference's. Wide on purpose: the figure is the wait for the keepalive *schedule*, not for
/// etcd. Keepalives go every TTL/3 (667 ms); the first one sent after the stall's start leaves
/// anywhere from 0 to 667 ms after it, depending on where in the period the stall falls, and it
/// and the next one (sent before the first has timed out) both meet the stalled member and time
/// out after 1 s; the one after goes to the member the pin moved to. One run is one sample of
/// that phase, so two correct runs differ by up to a period, plus a period more when the pin
/// moves just after a send; ±1,500 ms covers both without accepting a client that never moves.
pub const KEEPALIVE_FAILOVER_MS: u64 = 1_500;
/// The real cluster against itself: a fresh failover median must lie in the committed
/// min..max widened by this, each side.
pub const SELF_FAILOVER_MS: u64 = 300;

fn word(kept: bool) -> &'static str {
    if kept {
        "kept"
    } else {
        "gone"
    }
}

/// Which lease probe, read off a figure set.
type LeaseOf = fn(&ClusterFigures) -> Option<&LeaseThroughStall>;

/// The lease probes: check id, what, and where the figure is.
const LEASES: [(&str, &str, LeaseOf); 4] = [
    (
        "cluster-lease-leader-paused",
        "lease kept alive through a follower, leader stalled 5 s",
        |f| f.lease_leader_paused.as_ref(),
    ),
    (
        "cluster-lease-all-paused",
        "lease kept alive through one member, every member stalled 5 s",
        |f| f.lease_all_paused.as_ref(),
    ),
    (
        "cluster-keepalive-failover-kept",
        "lease kept alive through a failover client pinned to a follower stalled 5 s",
        |f| f.keepalive_failover.as_ref().map(|k| &k.lease),
    ),
    (
        "cluster-keepalive-failover-short-kept",
        "the same, each keepalive bounded by 500 ms",
        |f| f.keepalive_failover_short.as_ref().map(|k| &k.lease),
    ),
];

/// The probe whose outcome a few milliseconds of client timer slack decide (the 1 s bound of
/// [`keepalive_failover`]): a model is not compared on it, the real cluster with itself is.
const KNIFE_EDGE: [&str; 2] = [
    "cluster-keepalive-failover-kept",
    "cluster-keepalive-failover-ms",
];

/// One check per lease outcome: kept or gone, as the reference. The short-bound failover
/// probe is checked only when the reference has it (it came after the first figures); the
/// knife-edge one only if `knife_edge`.
fn lease_checks(
    reference: &ClusterFigures,
    candidate: &ClusterFigures,
    knife_edge: bool,
    checks: &mut Vec<Check>,
) {
    for (id, what, get) in LEASES {
        if !knife_edge && KNIFE_EDGE.contains(&id) {
            continue;
        }
        let (r, c) = (
            get(reference).map(|l| l.kept),
            get(candidate).map(|l| l.kept),
        );
        if r.is_none() && id == "cluster-keepalive-failover-short-kept" {
            continue;
        }
        let show = |v: Option<bool>| v.map_or("no figure".to_string(), |k| word(k).to_string());
        checks.push(Check {
            id: id.into(),
            what: what.into(),
            reference: show(r),
            candidate: show(c),
            ok: r.is_some() && r == c,
        });
    }
}

/// The first keepalive answered after the pinned member stalled, within
/// [`KEEPALIVE_FAILOVER_MS`] of the reference's (both with no answer also agree), for the 1 s
/// bound and, when the reference has it, the short one.
fn keepalive_failover_checks(
    reference: &ClusterFigures,
    candidate: &ClusterFigures,
    knife_edge: bool,
    checks: &mut Vec<Check>,
) {
    type FailoverOf = fn(&ClusterFigures) -> Option<&KeepaliveFailover>;
    let probes: [(&str, &str, FailoverOf); 2] = [
        (
            "cluster-keepalive-failover-ms",
            "first keepalive answered after the pinned member stalled",
            |f| f.keepalive_failover.as_ref(),
        ),
        (
            "cluster-keepalive-failover-short-ms",
            "the same, each keepalive bounded by 500 ms",
            |f| f.keepalive_failover_short.as_ref(),
        ),
    ];
    for (id, what, get) in probes {
        if !knife_edge && KNIFE_EDGE.contains(&id) {
            continue;
        }
        let (r, c) = (
            get(reference).map(|k| k.first_answer_ms),
            get(candidate).map(|k| k.first_answer_ms),
        );
        if r.is_none() && id == "cluster-keepalive-failover-short-ms" {
            continue;
        }
        let show = |v: Option<Option<u64>>| match v {
            None => "no figure".to_string(),
            Some(None) => "no keepalive answered".to_string(),
            Some(Some(ms)) => format!("{ms} ms"),
        };
        checks.push(Check {
            id: id.into(),
            what: what.into(),
            reference: match r {
                Some(Some(ms)) => format!("{ms} ms ± {KEEPALIVE_FAILOVER_MS}"),
                other => show(other),
            },
            candidate: show(c),
            ok: match (r, c) {
                (Some(Some(r)), Some(Some(c))) => c.abs_diff(r) <= KEEPALIVE_FAILOVER_MS,
                (Some(None), Some(None)) => true,
                _ => false,
            },
        });
    }
}

/// Checks a candidate cluster (the model) against the reference (the real cluster): the
/// candidate's failover min and max inside the reference's min..max widened by
/// [`FAILOVER_RANGE_MS`] each side, each lease outcome equal, and the first keepalive through
/// the failover client within [`KEEPALIVE_FAILOVER_MS`]; the 1 s keepalive bound, whose
/// outcome the client's timer slack decides, is left out (see [`keepalive_failover`]).
pub fn compare_cluster(reference: &ClusterFigures, candidate: &ClusterFigures) -> Vec<Check> {
    let mut checks = Vec::new();
    match &reference.failover {
        Some(r) => {
            let c = candidate.failover.as_ref();
            let (lo, hi) = (
                r.min_ms.saturating_sub(FAILOVER_RANGE_MS),
                r.max_ms + FAILOVER_RANGE_MS,
            );
            let range = format!("{}..{} ms widened to {lo}..{hi}", r.min_ms, r.max_ms);
            for (name, get) in [
                (
                    "min",
                    (|f: &LeaderFailover| f.min_ms) as fn(&LeaderFailover) -> u64,
                ),
                ("max", |f: &LeaderFailover| f.max_ms),
            ] {
                checks.push(Check {
                    id: format!("cluster-failover-{name}"),
                    what: format!("write through a follower after the leader stalled, {name}"),
                    reference: range.clone(),
                    candidate: c.map_or("no figure".into(), |c| format!("{} ms", get(c))),
                    ok: c.is_some_and(|c| (lo..=hi).contains(&get(c))),
                });
            }
        }
        None => checks.push(Check {
            id: "cluster-failover-min".into(),
            what: "write through a follower after the leader stalled".into(),
            reference: "no figure".into(),
            candidate: opt(&candidate.failover.as_ref().map(|f| f.median_ms)),
            ok: false,
        }),
    }
    lease_checks(reference, candidate, false, &mut checks);
    keepalive_failover_checks(reference, candidate, false, &mut checks);
    checks
}

/// Checks a fresh run of the real cluster against its committed figures: the same lease
/// outcomes, the fresh failover median inside the committed min..max widened by
/// [`SELF_FAILOVER_MS`] each side (a fresh run's extremes are new samples of the election's
/// randomized timeout; its median should not leave the committed spread), and the first
/// keepalive through the failover client within [`KEEPALIVE_FAILOVER_MS`].
pub fn agree_cluster(committed: &ClusterFigures, fresh: &ClusterFigures) -> Vec<Check> {
    let mut checks = Vec::new();
    let r = committed.failover.as_ref();
    let c = fresh.failover.as_ref();
    checks.push(Check {
        id: "cluster-failover-median".into(),
        what: "write through a follower after the leader stalled, median".into(),
        reference: r.map_or("no figure".into(), |r| {
            format!(
                "{}..{} ms widened to {}..{}",
                r.min_ms,
                r.max_ms,
                r.min_ms.saturating_sub(SELF_FAILOVER_MS),
                r.max_ms + SELF_FAILOVER_MS
            )
        }),
        candidate: c.map_or("no figure".into(), |c| format!("{} ms", c.median_ms)),
        ok: match (r, c) {
            (Some(r), Some(c)) => (r.min_ms.saturating_sub(SELF_FAILOVER_MS)
                ..=r.max_ms + SELF_FAILOVER_MS)
                .contains(&c.median_ms),
            _ => false,
        },
    });
    lease_checks(committed, fresh, true, &mut checks);
    keepalive_failover_checks(committed, fresh, true, &mut checks);
    checks
}

// ---------------------------------------------------------------------------------------
// the table

fn cell_lease(l: &LeaseThroughStall) -> String {
    let answers: Vec<String> = l
        .answers_after_resume
        .iter()
        .map(|a| a.to_string())
        .collect();
    format!(
        "{} (answers after resume {}; {} failed)",
        word(l.kept),
        if answers.is_empty() {
            "none".to_string()
        } else {
            answers.join(",")
        },
        l.failed
    )
}

fn cell_failover(k: Option<&KeepaliveFailover>) -> String {
    k.map_or_else(
        || "—".to_string(),
        |k| {
            let first = k
                .first_answer_ms
                .map_or_else(|| "none".to_string(), |v| format!("{v} ms"));
            format!(
                "{}; first keepalive answered after the stall's start: {first}",
                cell_lease(&k.lease)
            )
        },
    )
}

/// The cluster figures of several clusters side by side as a markdown table, one column each,
/// then every probe's error.
pub fn cluster_table(columns: &[(&str, &ClusterFigures)]) -> String {
    let none = || "—".to_string();
    type Row<'a> = (&'a str, Box<dyn Fn(&ClusterFigures) -> String + 'a>);
    let rows: Vec<Row> = vec![
        (
            "write through a follower after the leader stalled 5 s: min / median / max ms",
            Box::new(move |f| {
                f.failover.as_ref().map_or_else(none, |v| {
                    format!("{} / {} / {}", v.min_ms, v.median_ms, v.max_ms)
                })
            }),
        ),
        (
            "the same, every trial (ms)",
            Box::new(move |f| {
                f.failover.as_ref().map_or_else(none, |v| {
                    let s: Vec<String> = v.samples_ms.iter().map(|s| s.to_string()).collect();
                    s.join(", ")
                })
            }),
        ),
        (
            "lease TTL 2 s kept alive through a follower, leader stalled 5 s",
            Box::new(move |f| f.lease_leader_paused.as_ref().map_or_else(none, cell_lease)),
        ),
        (
            "lease TTL 2 s kept alive through one member, every member stalled 5 s",
            Box::new(move |f| f.lease_all_paused.as_ref().map_or_else(none, cell_lease)),
        ),
        (
            "lease TTL 2 s kept alive through a failover client pinned to a follower stalled 5 s, keepalives bounded by 1 s",
            Box::new(move |f| cell_failover(f.keepalive_failover.as_ref())),
        ),
        (
            "the same, keepalives bounded by 500 ms",
            Box::new(move |f| cell_failover(f.keepalive_failover_short.as_ref())),
        ),
    ];
    let mut out = String::from("| probe |");
    for (name, _) in columns {
        out.push_str(&format!(" {name} |"));
    }
    out.push_str("\n|---|");
    for _ in columns {
        out.push_str("---|");
    }
    out.push('\n');
    for (name, cell) in &rows {
        out.push_str(&format!("| {name} |"));
        for (_, f) in columns {
            out.push_str(&format!(" {} |", cell(f)));
        }
        out.push('\n');
    }
    for (n, f) in columns {
        for (probe, e) in &f.errors {
            out.push_str(&format!("\n{n}: {probe}: {e}"));
        }
    }
    out
}

// ---------------------------------------------------------------------------------------
// the real cluster

/// Real etcd members, each its own process, stalled with `SIGSTOP`/`SIGCONT`.
#[cfg(not(madsim))]
pub struct SigStopCluster {
    pub endpoints: Vec<String>,
    pub pids: Vec<u32>,
    /// One client per member, connected to that member's endpoint alone.
    pub clients: Vec<Arc<crate::etcd::grpc::GrpcEtcd>>,
    /// Each member's raft ID, as it reported it (`Status` header's `member_id`).
    ids: Vec<u64>,
}

/// Sends `sig` to every pid with one `kill` so that the members stop (or resume) together.
#[cfg(not(madsim))]
fn signal_all(pids: &[u32], sig: &str) -> Result<(), String> {
    let status = std::process::Command::new("kill")
        .arg(format!("-{sig}"))
        .args(pids.iter().map(|p| p.to_string()))
        .status()
        .map_err(|e| format!("kill -{sig} {pids:?}: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("kill -{sig} {pids:?}: {status}"))
    }
}

/// Resumes stalled members if the stall is dropped half-way, or if its own resume failed.
#[cfg(not(madsim))]
struct ContAllOnDrop {
    pids: Vec<u32>,
    armed: bool,
}

#[cfg(not(madsim))]
impl Drop for ContAllOnDrop {
    fn drop(&mut self) {
        if self.armed {
            let _ = signal_all(&self.pids, "CONT");
        }
    }
}

#[cfg(not(madsim))]
impl SigStopCluster {
    /// Connects one client to each endpoint and asks each member its own ID (to map the
    /// leader ID `Status` reports to a member index). `pids[i]` is the process of
    /// `endpoints[i]`.
    pub async fn connect(endpoints: Vec<String>, pids: Vec<u32>) -> Result<SigStopCluster, String> {
        if endpoints.len() != pids.len() || endpoints.is_empty() {
            return Err(format!(
                "{} endpoints and {} pids: need one pid per endpoint",
                endpoints.len(),
                pids.len()
            ));
        }
        if endpoints.len() > crate::etcd::failover::MEMBERS_MAX {
            return Err(format!(
                "{} members, at most {}",
                endpoints.len(),
                crate::etcd::failover::MEMBERS_MAX
            ));
        }
        let mut clients = Vec::with_capacity(endpoints.len());
        let mut ids = Vec::with_capacity(endpoints.len());
        for e in &endpoints {
            let client = crate::etcd::grpc::GrpcEtcd::connect(std::slice::from_ref(e))
                .await
                .map_err(|err| format!("{e}: {err}"))?;
            let (id, _, _) = status_of(&client)
                .await
                .map_err(|err| format!("{e}: {err}"))?;
            ids.push(id);
            clients.push(Arc::new(client));
        }
        Ok(SigStopCluster {
            endpoints,
            pids,
            clients,
            ids,
        })
    }

    /// The etcd version member 0 reports.
    pub async fn version(&self) -> Result<String, String> {
        Ok(status_of(&self.clients[0]).await?.2)
    }
}

/// A member's own ID, the leader it knows (0: none) and its version, bounded by
/// [`SETTLE_READ_TIMEOUT`].
#[cfg(not(madsim))]
async fn status_of(client: &crate::etcd::grpc::GrpcEtcd) -> Result<(u64, u64, String), String> {
    let mut m = client.client().maintenance_client();
    match deadline::timeout(SETTLE_READ_TIMEOUT, m.status()).await {
        Ok(Ok(s)) => {
            let own = s
                .header()
                .map(|h| h.member_id())
                .ok_or("status answered without a header")?;
            Ok((own, s.leader(), s.version().to_string()))
        }
        Ok(Err(e)) => Err(format!("status: {e}")),
        Err(_) => Err(format!("status: no answer in {SETTLE_READ_TIMEOUT:?}")),
    }
}

#[cfg(not(madsim))]
impl Cluster for SigStopCluster {
    fn members(&self) -> usize {
        self.clients.len()
    }

    fn member(&self, i: usize) -> Arc<dyn Etcd> {
        self.clients[i].clone()
    }

    fn failover_from(&self, first: usize) -> Arc<dyn Etcd> {
        failover_client(self, first)
    }

    /// Asks every member's `Status` at once: the leader is the member that every member
    /// answering names, and a majority must answer (a stalled member does not).
    fn leader(&self) -> BoxFuture<'_, Result<usize, String>> {
        Box::pin(async move {
            let mut asks = Vec::with_capacity(self.clients.len());
            for c in &self.clients {
                let c = c.clone();
                asks.push(tokio::spawn(async move { status_of(&c).await }));
            }
            let mut named = Vec::new();
            for (i, a) in asks.into_iter().enumerate() {
                if let Ok(Ok((_, leader, _))) = a.await {
                    named.push((i, leader));
                }
            }
            if named.len() * 2 <= self.clients.len() {
                return Err(format!("only {} members answered Status", named.len()));
            }
            let (_, first) = named[0];
            if first == 0 || named.iter().any(|(_, l)| *l != first) {
                return Err(format!("members disagree on the leader: {named:x?}"));
            }
            self.ids
                .iter()
                .position(|id| *id == first)
                .ok_or_else(|| format!("leader {first:x} is none of the members {:x?}", self.ids))
        })
    }

    fn stall(&self, members: &[usize], duration: Duration) -> BoxFuture<'_, Result<(), String>> {
        let pids: Result<Vec<u32>, String> = members
            .iter()
            .map(|&i| {
                self.pids
                    .get(i)
                    .copied()
                    .ok_or_else(|| format!("no member {i}"))
            })
            .collect();
        Box::pin(async move {
            let pids = pids?;
            // Stopped before the first poll returns (the trait's contract): no await before.
            signal_all(&pids, "STOP")?;
            let mut cont = ContAllOnDrop { pids, armed: true };
            sleep(duration).await;
            let resumed = signal_all(&cont.pids, "CONT");
            cont.armed = resumed.is_err();
            resumed
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lease(kept: bool) -> LeaseThroughStall {
        LeaseThroughStall {
            stalled: vec![0],
            through: Some(1),
            stall_ms: 5000,
            ttl_s: 2,
            keepalive_every_ms: 666,
            keepalive_timeout_ms: 1000,
            kept,
            failed: 2,
            first_failure: None,
            answers_after_resume: vec![2],
            keepalives: vec![],
        }
    }

    /// Figures with the failover samples, the lease outcomes (leader paused, all paused,
    /// failover 1 s, failover 500 ms) and the first keepalive answers (1 s, 500 ms).
    fn figures(
        samples_ms: &[u64],
        kept: [bool; 4],
        first_answer_ms: [Option<u64>; 2],
    ) -> ClusterFigures {
        let (min_ms, median_ms, max_ms) = spread(samples_ms);
        ClusterFigures {
            members: 3,
            failover: Some(LeaderFailover {
                stall_ms: 5000,
                write_timeout_ms: 2000,
                trials: samples_ms.len(),
                min_ms,
                median_ms,
                max_ms,
                samples_ms: samples_ms.to_vec(),
                attempts: vec![2; samples_ms.len()],
                timed_out: vec![1; samples_ms.len()],
                first_failure: vec![None; samples_ms.len()],
                leaders: vec![(0, 1); samples_ms.len()],
            }),
            lease_leader_paused: Some(lease(kept[0])),
            lease_all_paused: Some(lease(kept[1])),
            keepalive_failover: Some(KeepaliveFailover {
                lease: lease(kept[2]),
                first_answer_ms: first_answer_ms[0],
            }),
            keepalive_failover_short: Some(KeepaliveFailover {
                lease: lease(kept[3]),
                first_answer_ms: first_answer_ms[1],
            }),
            errors: BTreeMap::new(),
        }
    }

    fn failed(checks: &[Check]) -> Vec<String> {
        checks
            .iter()
            .filter(|c| !c.ok)
            .map(|c| c.id.clone())
            .collect()
    }

    const KEPT: [bool; 4] = [true, false, false, true];

    #[test]
    fn compare_cluster_accepts_a_candidate_within_tolerance() {
        let r = figures(&[2010, 2020, 2400], KEPT, [None, Some(1000)]);
        // 200 ms past each end, and 1,500 ms off the keepalive figure: still in.
        let c = figures(&[1810, 2000, 2600], KEPT, [None, Some(2500)]);
        let checks = compare_cluster(&r, &c);
        assert!(failed(&checks).is_empty(), "{checks:#?}");
        // The 1 s keepalive bound's two checks are left out (a knife edge): 6 of 8.
        assert_eq!(checks.len(), 6, "{checks:#?}");
        assert_eq!(agree_cluster(&r, &r).len(), 7);
        assert!(failed(&compare_cluster(&r, &r)).is_empty());
        // Figures from before the short-bound probe: its checks are left out.
        let old = ClusterFigures {
            keepalive_failover_short: None,
            ..r.clone()
        };
        assert_eq!(compare_cluster(&old, &c).len(), 4);
        assert!(failed(&compare_cluster(&old, &c)).is_empty());
    }

    #[test]
    fn compare_cluster_refuses_a_candidate_outside_it() {
        let r = figures(&[2010, 2020, 2400], KEPT, [Some(1700), Some(1000)]);
        let c = figures(
            &[1809, 2000, 2601],
            [false, true, true, false],
            [Some(3201), None],
        );
        let f = failed(&compare_cluster(&r, &c));
        assert_eq!(
            f,
            [
                "cluster-failover-min",
                "cluster-failover-max",
                "cluster-lease-leader-paused",
                "cluster-lease-all-paused",
                "cluster-keepalive-failover-short-kept",
                "cluster-keepalive-failover-short-ms",
            ]
        );
        // No figure at all is a failure too, and an unanswered keepalive is not a number:
        // the real cluster against itself sees it.
        let empty = ClusterFigures::default();
        assert_eq!(failed(&compare_cluster(&r, &empty)).len(), 6);
        let none = figures(&[2010, 2020, 2400], KEPT, [None, Some(1000)]);
        assert_eq!(
            failed(&agree_cluster(&r, &none)),
            ["cluster-keepalive-failover-ms"]
        );
        assert!(failed(&compare_cluster(&r, &none)).is_empty());
    }

    #[test]
    fn agree_cluster_bounds_the_median_by_the_committed_spread() {
        let r = figures(&[2010, 2020, 2400], KEPT, [None, Some(1000)]);
        let ok = figures(&[1000, 1710, 5000], KEPT, [None, Some(1100)]);
        assert!(failed(&agree_cluster(&r, &ok)).is_empty());
        let slow = figures(&[2701, 2701, 2701], KEPT, [None, Some(1100)]);
        assert_eq!(
            failed(&agree_cluster(&r, &slow)),
            ["cluster-failover-median"]
        );
        let lost = figures(
            &[2010, 2020, 2400],
            [false, false, false, true],
            [None, Some(1100)],
        );
        assert_eq!(
            failed(&agree_cluster(&r, &lost)),
            ["cluster-lease-leader-paused"]
        );
    }

    #[test]
    fn cluster_table_has_a_column_per_cluster() {
        let r = figures(&[2010, 2020, 2400], KEPT, [None, Some(1000)]);
        let t = cluster_table(&[("real", &r), ("model", &ClusterFigures::default())]);
        assert!(
            t.starts_with("| probe | real | model |\n|---|---|---|\n"),
            "{t}"
        );
        assert!(t.contains("| 2010 / 2020 / 2400 | — |"), "{t}");
        assert!(t.contains("kept (answers after resume 2; 2 failed)"), "{t}");
        assert!(
            t.contains("gone (answers after resume 2; 2 failed); first keepalive answered after the stall's start: none | — |"),
            "{t}"
        );
    }
}
