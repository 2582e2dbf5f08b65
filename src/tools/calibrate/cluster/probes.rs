//! The cluster probes themselves, each over [`Cluster`], and [`run_cluster`] that runs them all.

use super::*;

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
