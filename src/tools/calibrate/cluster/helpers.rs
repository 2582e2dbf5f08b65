//! What the cluster probes share: settling the cluster, picking a follower, starting a
//! stall, keeping a lease alive through one and reading it back.

use super::*;

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

pub(super) async fn settled_once(cluster: &dyn Cluster, key: &str) -> Result<usize, String> {
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
pub(super) fn follower_of(cluster: &dyn Cluster, leader: usize) -> usize {
    (leader + 1) % cluster.members()
}

/// Starts a stall: polls it once, which stalls the members ([`Cluster`]'s contract), and
/// returns the instant right after with the rest of the stall to await.
pub(super) async fn start_stall<'a>(
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
pub(super) async fn lease_through_stall(
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
