//! The probes, written once over the `Etcd` seam.

use super::*;

pub(super) async fn call<T>(what: &str, fut: BoxFuture<'_, EtcdResult<T>>) -> Result<T, String> {
    match deadline::timeout(CALL_TIMEOUT, fut).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(format!("{what}: {e}")),
        Err(_) => Err(format!("{what}: no answer in {CALL_TIMEOUT:?}")),
    }
}

pub(super) fn ms(d: Duration) -> u64 {
    d.as_millis() as u64
}

/// Min, median (the mean of the two middle ones for an even count) and max.
pub fn spread(samples: &[u64]) -> (u64, u64, u64) {
    let mut s = samples.to_vec();
    s.sort_unstable();
    match s.len() {
        0 => (0, 0, 0),
        n if n % 2 == 1 => (s[0], s[n / 2], s[n - 1]),
        n => (s[0], (s[n / 2 - 1] + s[n / 2]) / 2, s[n - 1]),
    }
}

pub(super) async fn key_present(etcd: &dyn Etcd, key: &str) -> Result<bool, String> {
    let r = call("range", etcd.get(Keys::Exact(key.to_string()))).await?;
    Ok(!r.kvs.is_empty())
}

/// Reads `key` every [`POLL`] until it is gone; the instant of the answer that found it gone.
pub(super) async fn wait_key_gone(
    etcd: &dyn Etcd,
    key: &str,
    limit: Duration,
) -> Result<Instant, String> {
    let end = Instant::now() + limit;
    while Instant::now() < end {
        if !key_present(etcd, key).await? {
            return Ok(Instant::now());
        }
        sleep(POLL).await;
    }
    Err(format!("{key} still present after {limit:?}"))
}

/// Asks TimeToLive every 50 ms until the lease is gone (-1).
pub(super) async fn wait_lease_gone(
    etcd: &dyn Etcd,
    id: LeaseId,
    limit: Duration,
) -> Result<(), String> {
    let end = Instant::now() + limit;
    while Instant::now() < end {
        if call("time-to-live", etcd.time_to_live(id)).await? < 0 {
            return Ok(());
        }
        sleep(Duration::from_millis(50)).await;
    }
    Err(format!("lease {id:x} still alive after {limit:?}"))
}

/// One keepalive: when it was sent and answered (since the loop's origin), and what.
#[derive(Debug, Clone)]
pub(super) struct Renewal {
    pub(super) sent: Duration,
    pub(super) answered: Duration,
    pub(super) answer: Result<i64, String>,
}

/// Renews `id` every `period` through `etcd`, each keepalive its own call bounded by `bound`
/// and sent whether or not the previous one was answered (as etcd's Go client sends its
/// keepalives on schedule), until `stop`; returns every keepalive once all have finished, in
/// the order of their answers.
pub(super) fn renew_every(
    etcd: Arc<dyn Etcd>,
    id: LeaseId,
    period: Duration,
    bound: Duration,
    origin: Instant,
    stop: Arc<AtomicBool>,
) -> tokio::task::JoinHandle<Vec<Renewal>> {
    tokio::spawn(async move {
        let records = Arc::new(Mutex::new(Vec::new()));
        let mut calls = Vec::new();
        // Bounded: a probe lasts seconds (10,000 periods of 667 ms are nearly two hours).
        for _ in 0..10_000u32 {
            if stop.load(Ordering::Relaxed) {
                break;
            }
            let (etcd, records) = (etcd.clone(), records.clone());
            calls.push(tokio::spawn(async move {
                let sent = origin.elapsed();
                let answer = match deadline::timeout(bound, etcd.keep_alive(id)).await {
                    Ok(Ok(ttl)) => Ok(ttl),
                    Ok(Err(e)) => Err(format!("keepalive: {e}")),
                    Err(_) => Err(format!("keepalive: no answer in {bound:?}")),
                };
                let r = Renewal {
                    sent,
                    answered: origin.elapsed(),
                    answer,
                };
                records.lock().expect("records").push(r);
            }));
            sleep(period).await;
        }
        for c in calls {
            let _ = c.await;
        }
        let mut v = records.lock().expect("records").clone();
        v.sort_by_key(|r| r.answered);
        v
    })
}

// ---------------------------------------------------------------------------------------
// probes

/// What a grant of `ttl_s` answers (the lease is revoked again).
pub async fn granted_ttl(etcd: &dyn Etcd, ttl_s: i64) -> Result<i64, String> {
    let g = call("grant", etcd.grant(ttl_s)).await?;
    let _ = call("revoke", etcd.revoke(g.id)).await;
    Ok(g.ttl_s)
}

/// Keepalive for a lease never granted, and for a lease after its key is gone.
pub async fn keepalive_answers(etcd: &dyn Etcd, prefix: &str) -> Result<(i64, i64), String> {
    let unknown = call("keepalive (unknown lease)", etcd.keep_alive(UNKNOWN_LEASE)).await?;
    let g = call("grant", etcd.grant(2)).await?;
    let key = format!("{prefix}/after-expiry");
    call("put", etcd.put(&key, "", g.id)).await?;
    wait_key_gone(etcd, &key, Duration::from_secs(10)).await?;
    let after = call("keepalive (after expiry)", etcd.keep_alive(g.id)).await?;
    Ok((unknown, after))
}

pub(super) async fn one_gone_trial(
    etcd: Arc<dyn Etcd>,
    ttl_s: i64,
    key: String,
    delay: Duration,
) -> Result<u64, String> {
    sleep(delay).await;
    let g = call("grant", etcd.grant(ttl_s)).await?;
    call("put", etcd.put(&key, "", g.id)).await?;
    let ttl = call("keepalive", etcd.keep_alive(g.id)).await?;
    if ttl <= 0 {
        return Err(format!("the keepalive of a fresh lease answered {ttl}"));
    }
    let renewed = Instant::now();
    let limit = Duration::from_secs(2 * ttl_s as u64 + 5);
    let gone = wait_key_gone(&*etcd, &key, limit).await?;
    Ok(ms(gone - renewed))
}

/// Lease gone after the last keepalive: [`TRIALS`] concurrent trials for `ttl_s`.
pub async fn lease_gone(
    etcd: Arc<dyn Etcd>,
    ttl_s: i64,
    trials: usize,
    prefix: &str,
) -> Result<LeaseGone, String> {
    let handles: Vec<_> = (0..trials)
        .map(|i| {
            let key = format!("{prefix}/gone-{ttl_s}s/{i}");
            tokio::spawn(one_gone_trial(etcd.clone(), ttl_s, key, STAGGER * i as u32))
        })
        .collect();
    let mut samples = Vec::with_capacity(trials);
    for h in handles {
        samples.push(h.await.map_err(|e| format!("trial: {e}"))??);
    }
    let (min_ms, median_ms, max_ms) = spread(&samples);
    Ok(LeaseGone {
        ttl_s,
        trials,
        min_ms,
        median_ms,
        max_ms,
        samples_ms: samples,
    })
}

/// A keepalive sent [`PAST_DEADLINE`] after the lease's deadline (its last keepalive's answer
/// plus its TTL), [`TRIALS`] trials started [`STAGGER`] apart: the answers, and how long each
/// took. etcd's `lessor.Renew` of an expired lease waits for its revocation, which the 500 ms
/// expiry scan starts: the latency shows when the lease's keys are deleted.
pub async fn keepalive_past_deadline(etcd: Arc<dyn Etcd>) -> Result<PastDeadline, String> {
    let handles: Vec<_> = (0..TRIALS)
        .map(|i| {
            let etcd = etcd.clone();
            tokio::spawn(async move {
                sleep(STAGGER * i as u32).await;
                let g = call("grant", etcd.grant(2)).await?;
                call("keepalive", etcd.keep_alive(g.id)).await?;
                sleep(Duration::from_secs(g.ttl_s as u64) + PAST_DEADLINE).await;
                let sent = Instant::now();
                let answer = call("keepalive past deadline", etcd.keep_alive(g.id)).await?;
                Ok::<_, String>((answer, ms(sent.elapsed())))
            })
        })
        .collect();
    let (mut answers, mut latencies) = (Vec::new(), Vec::new());
    for h in handles {
        let (answer, latency) = h.await.map_err(|e| format!("trial: {e}"))??;
        answers.push(answer);
        latencies.push(latency);
    }
    let (min_ms, median_ms, max_ms) = spread(&latencies);
    Ok(PastDeadline {
        answers,
        min_ms,
        median_ms,
        max_ms,
    })
}

/// etcd stalled for `stall` while a lease of TTL 2 s is renewed every TTL/3.
pub async fn stalled(
    etcd: Arc<dyn Etcd>,
    stall: &dyn Stall,
    stall_for: Duration,
    prefix: &str,
) -> Result<Stalled, String> {
    let g = call("grant", etcd.grant(STALL_TTL_S)).await?;
    let key = format!("{prefix}/stalled-{}ms", ms(stall_for));
    call("put", etcd.put(&key, "", g.id)).await?;
    let period = Duration::from_millis(g.ttl_s as u64 * 1000 / 3);
    let origin = Instant::now();
    let stop = Arc::new(AtomicBool::new(false));
    let keepalives = renew_every(
        etcd.clone(),
        g.id,
        period,
        CALL_TIMEOUT,
        origin,
        stop.clone(),
    );
    sleep(Duration::from_secs(1)).await;
    let stalled = stall.stall(stall_for).await;
    let resumed = origin.elapsed();
    sleep(Duration::from_millis(1500)).await;
    let present = key_present(&*etcd, &key).await;
    stop.store(true, Ordering::Relaxed);
    let records = keepalives.await.map_err(|e| format!("keepalives: {e}"))?;
    stalled?;
    let present = present?;
    if present {
        let _ = call("revoke", etcd.revoke(g.id)).await;
    }
    Ok(Stalled {
        stall_ms: ms(stall_for),
        ttl_s: g.ttl_s,
        keepalive_every_ms: ms(period),
        gone_after_resume: !present,
        answers_after_resume: records
            .iter()
            .filter(|r| r.answered >= resumed)
            .filter_map(|r| r.answer.as_ref().ok().copied())
            .collect(),
        failed: records.iter().filter(|r| r.answer.is_err()).count(),
        first_failure: records.iter().find_map(|r| r.answer.clone().err()),
    })
}

/// What one holder holds, to release it.
enum Held {
    Leader(LeaderKey),
    Lock(String),
}

/// Campaign (`lock` false) or Lock API (`lock` true) under `lease`: the token and the hold.
async fn acquire(
    etcd: &dyn Etcd,
    lock: bool,
    name: &str,
    lease: LeaseId,
) -> Result<(i64, Held), String> {
    if lock {
        let k = call("lock", etcd.lock(name, lease)).await?;
        let r = call("range", etcd.get(Keys::Exact(k.key.clone()))).await?;
        let kv = r
            .kvs
            .first()
            .ok_or_else(|| format!("lock key {} gone", k.key))?;
        Ok((kv.create_revision, Held::Lock(k.key)))
    } else {
        let l = call("campaign", etcd.campaign(name, "", lease)).await?;
        Ok((l.rev, Held::Leader(l)))
    }
}

async fn release(etcd: &dyn Etcd, held: &Held) -> Result<(), String> {
    match held {
        Held::Leader(l) => call("resign", etcd.resign(l)).await,
        Held::Lock(k) => call("unlock", etcd.unlock(k)).await,
    }
}

/// Three holders in turn (the second and third wait while the first holds): their tokens.
pub async fn tokens(etcd: Arc<dyn Etcd>, lock: bool, name: &str) -> Result<Tokens, String> {
    let mut leases = Vec::new();
    for _ in 0..HOLDERS {
        leases.push(call("grant", etcd.grant(10)).await?.id);
    }
    let result = tokens_with(etcd.clone(), lock, name, &leases).await;
    for l in leases {
        let _ = call("revoke", etcd.revoke(l)).await;
    }
    result
}

pub(super) async fn tokens_with(
    etcd: Arc<dyn Etcd>,
    lock: bool,
    name: &str,
    leases: &[LeaseId],
) -> Result<Tokens, String> {
    let (token, held) = acquire(&*etcd, lock, name, leases[0]).await?;
    let mut got = vec![(0, token, held)];
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    for (i, &lease) in leases.iter().enumerate().skip(1) {
        let (etcd, tx, name) = (etcd.clone(), tx.clone(), name.to_string());
        tokio::spawn(async move {
            let r = acquire(&*etcd, lock, &name, lease).await;
            let _ = tx.send((i, r));
        });
        sleep(Duration::from_millis(50)).await;
    }
    sleep(Duration::from_millis(200)).await;
    let waited = rx.try_recv().is_err();
    for _ in 1..leases.len() {
        let (_, _, held) = got.last().expect("a holder");
        release(&*etcd, held).await?;
        match deadline::timeout(CALL_TIMEOUT, rx.recv()).await {
            Ok(Some((i, r))) => {
                let (token, held) = r?;
                got.push((i, token, held));
            }
            _ => return Err(format!("no holder after {} released", got.len())),
        }
    }
    let (_, _, held) = got.last().expect("a holder");
    release(&*etcd, held).await?;
    let tokens: Vec<i64> = got.iter().map(|(_, t, _)| *t).collect();
    Ok(Tokens {
        rise: tokens.windows(2).all(|w| w[0] < w[1]),
        order: got.iter().map(|(i, _, _)| *i).collect(),
        tokens,
        waited,
    })
}

/// Client A holds the lock (lease kept alive); client B waits under a lease it does not renew;
/// B's lease expires; A unlocks: what B's `Lock` answers.
pub async fn lock_after_expired_wait(
    etcd: Arc<dyn Etcd>,
    name: &str,
) -> Result<LockAfterExpiredWait, String> {
    let a = call("grant", etcd.grant(2)).await?;
    let stop = Arc::new(AtomicBool::new(false));
    let period = Duration::from_millis(a.ttl_s as u64 * 1000 / 3);
    let keepalives = renew_every(
        etcd.clone(),
        a.id,
        period,
        CALL_TIMEOUT,
        Instant::now(),
        stop.clone(),
    );
    let result = lock_after_expired_wait_with(etcd.clone(), name, a.id).await;
    stop.store(true, Ordering::Relaxed);
    let _ = keepalives.await;
    let _ = call("revoke", etcd.revoke(a.id)).await;
    result
}

pub(super) async fn lock_after_expired_wait_with(
    etcd: Arc<dyn Etcd>,
    name: &str,
    lease_a: LeaseId,
) -> Result<LockAfterExpiredWait, String> {
    let held = call("lock (A)", etcd.lock(name, lease_a)).await?;
    let b = call("grant", etcd.grant(2)).await?;
    let (tx, mut rx) = tokio::sync::oneshot::channel();
    {
        let (etcd, name) = (etcd.clone(), name.to_string());
        tokio::spawn(async move {
            let r = deadline::timeout(CALL_TIMEOUT * 2, etcd.lock(&name, b.id)).await;
            let _ = tx.send(r);
        });
    }
    let gone = wait_lease_gone(&*etcd, b.id, Duration::from_secs(10)).await;
    sleep(Duration::from_millis(200)).await;
    let answered_before_unlock = !matches!(
        rx.try_recv(),
        Err(tokio::sync::oneshot::error::TryRecvError::Empty)
    );
    call("unlock (A)", etcd.unlock(&held.key)).await?;
    if answered_before_unlock {
        return Err("B's lock answered before A unlocked".into());
    }
    let answer = match deadline::timeout(CALL_TIMEOUT, rx).await {
        Ok(Ok(Ok(Ok(k)))) => LockAnswer::Granted {
            key_present: key_present(&*etcd, &k.key).await?,
        },
        Ok(Ok(Ok(Err(EtcdError::SessionExpired)))) => LockAnswer::SessionExpired,
        Ok(Ok(Ok(Err(e)))) => LockAnswer::Error { why: e.to_string() },
        _ => return Err("B's lock never answered after A unlocked".into()),
    };
    Ok(LockAfterExpiredWait {
        answer,
        lease_gone_before_unlock: gone.is_ok(),
        answered_before_unlock,
    })
}

/// Every probe in sequence (the stalls last, each alone). `prefix` keeps the keys of one run
/// apart from another's.
pub async fn run(etcd: Arc<dyn Etcd>, stall: &dyn Stall, prefix: &str) -> Figures {
    let mut f = Figures::default();
    let mut errors = BTreeMap::new();
    match granted_ttl(&*etcd, 1).await {
        Ok(t) => f.granted_ttl_for_1 = Some(t),
        Err(e) => note(&mut errors, "granted-ttl", e),
    }
    match keepalive_answers(&*etcd, prefix).await {
        Ok((unknown, after)) => {
            f.keepalive_unknown_lease = Some(unknown);
            f.keepalive_after_expiry = Some(after);
        }
        Err(e) => note(&mut errors, "keepalive-answers", e),
    }
    for ttl_s in GONE_TTLS_S {
        match lease_gone(etcd.clone(), ttl_s, TRIALS, prefix).await {
            Ok(g) => f.lease_gone.push(g),
            Err(e) => note(&mut errors, &format!("lease-gone-{ttl_s}s"), e),
        }
    }
    match keepalive_past_deadline(etcd.clone()).await {
        Ok(p) => f.keepalive_past_deadline = Some(p),
        Err(e) => note(&mut errors, "keepalive-past-deadline", e),
    }
    match tokens(etcd.clone(), false, &format!("{prefix}/election")).await {
        Ok(t) => f.campaign_tokens = Some(t),
        Err(e) => note(&mut errors, "campaign-tokens", e),
    }
    match tokens(etcd.clone(), true, &format!("{prefix}/lock")).await {
        Ok(t) => f.lock_tokens = Some(t),
        Err(e) => note(&mut errors, "lock-tokens", e),
    }
    match lock_after_expired_wait(etcd.clone(), &format!("{prefix}/expired-wait")).await {
        Ok(l) => f.lock_after_expired_wait = Some(l),
        Err(e) => note(&mut errors, "lock-after-expired-wait", e),
    }
    for stall_ms in STALLS_MS {
        match stalled(etcd.clone(), stall, Duration::from_millis(stall_ms), prefix).await {
            Ok(s) => f.stalled.push(s),
            Err(e) => note(&mut errors, &format!("stalled-{stall_ms}ms"), e),
        }
    }
    f.errors = errors;
    f
}

pub(super) fn note(errors: &mut BTreeMap<String, String>, probe: &str, e: String) {
    errors.insert(probe.to_string(), e);
}

// ---------------------------------------------------------------------------------------
// tolerances
