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
use crate::etcd::{BoxFuture, Etcd, EtcdError, EtcdResult, Keys, LeaderKey, LeaseId};
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
const CALL_TIMEOUT: Duration = Duration::from_secs(20);
/// The lease-gone probe's TTLs.
pub const GONE_TTLS_S: [i64; 2] = [2, 5];
/// The stall probe's stalls, ms, with the TTL of its lease.
pub const STALLS_MS: [u64; 2] = [5_000, 1_000];
const STALL_TTL_S: i64 = 2;
/// How far past the lease's deadline the past-deadline keepalive is sent.
pub const PAST_DEADLINE: Duration = Duration::from_millis(20);
/// A lease ID no etcd granted in the probes (etcd's IDs are drawn from a member ID and a clock).
const UNKNOWN_LEASE: LeaseId = 0x0bad_1ea5_e000_0001;
/// Holders of the token probes.
const HOLDERS: usize = 3;

/// Stalls etcd: while stalled it runs nothing and answers nothing.
pub trait Stall: Send + Sync {
    /// Stalls etcd for `duration`, then resumes it.
    fn stall(&self, duration: Duration) -> BoxFuture<'_, Result<(), String>>;
}

/// Stalls a real etcd process with `SIGSTOP`, resumes it with `SIGCONT` (also if the stall is
/// dropped half-way).
#[cfg(not(madsim))]
pub struct SigStop {
    pub pid: u32,
}

#[cfg(not(madsim))]
fn signal(pid: u32, sig: &str) -> Result<(), String> {
    let status = std::process::Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .status()
        .map_err(|e| format!("kill -{sig} {pid}: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("kill -{sig} {pid}: {status}"))
    }
}

#[cfg(not(madsim))]
struct ContOnDrop(u32);

#[cfg(not(madsim))]
impl Drop for ContOnDrop {
    fn drop(&mut self) {
        let _ = signal(self.0, "CONT");
    }
}

#[cfg(not(madsim))]
impl Stall for SigStop {
    fn stall(&self, duration: Duration) -> BoxFuture<'_, Result<(), String>> {
        Box::pin(async move {
            signal(self.pid, "STOP")?;
            let cont = ContOnDrop(self.pid);
            sleep(duration).await;
            std::mem::forget(cont);
            signal(self.pid, "CONT")
        })
    }
}

/// Stalls a simulated etcd node with madsim's pause.
#[cfg(madsim)]
pub struct PauseNode {
    pub node: madsim::task::NodeId,
}

#[cfg(madsim)]
impl Stall for PauseNode {
    fn stall(&self, duration: Duration) -> BoxFuture<'_, Result<(), String>> {
        Box::pin(async move {
            let handle = madsim::runtime::Handle::current();
            handle.pause(self.node);
            sleep(duration).await;
            handle.resume(self.node);
            Ok(())
        })
    }
}

// ---------------------------------------------------------------------------------------
// figures

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

/// Figures with where they come from, as committed for a real etcd.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// etcd's version as it reports it (`Status`).
    pub etcd_version: String,
    /// When it was measured (UTC).
    pub date: String,
    /// Where: CPU, cores, kernel.
    pub machine: String,
    /// How the figures were measured.
    pub method: String,
    pub figures: Figures,
}

/// How the figures are measured, in one line (stored with them).
pub const METHOD: &str = "calibrate.rs: lease gone = keepalive answer -> answer of the first Range of the lease's key (10 ms apart) that finds it gone, 20 trials per TTL started 37 ms apart; stalls: keepalive every TTL/3, key read 1.5 s after resume";

// ---------------------------------------------------------------------------------------
// helpers

async fn call<T>(what: &str, fut: BoxFuture<'_, EtcdResult<T>>) -> Result<T, String> {
    match deadline::timeout(CALL_TIMEOUT, fut).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(format!("{what}: {e}")),
        Err(_) => Err(format!("{what}: no answer in {CALL_TIMEOUT:?}")),
    }
}

fn ms(d: Duration) -> u64 {
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

async fn key_present(etcd: &dyn Etcd, key: &str) -> Result<bool, String> {
    let r = call("range", etcd.get(Keys::Exact(key.to_string()))).await?;
    Ok(!r.kvs.is_empty())
}

/// Reads `key` every [`POLL`] until it is gone; the instant of the answer that found it gone.
async fn wait_key_gone(etcd: &dyn Etcd, key: &str, limit: Duration) -> Result<Instant, String> {
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
async fn wait_lease_gone(etcd: &dyn Etcd, id: LeaseId, limit: Duration) -> Result<(), String> {
    let end = Instant::now() + limit;
    while Instant::now() < end {
        if call("time-to-live", etcd.time_to_live(id)).await? < 0 {
            return Ok(());
        }
        sleep(Duration::from_millis(50)).await;
    }
    Err(format!("lease {id:x} still alive after {limit:?}"))
}

/// One keepalive of a loop: when it was sent and answered (since the loop's start), and what.
#[derive(Debug, Clone)]
struct KeepAliveRecord {
    answered: Duration,
    answer: Result<i64, String>,
}

/// Renews `id` every `period`, each keepalive its own call (as etcd's Go client sends its
/// keepalives on schedule whether or not the previous was answered), until `stop`; returns
/// every keepalive's record once all have finished.
fn keep_alive_loop(
    etcd: Arc<dyn Etcd>,
    id: LeaseId,
    period: Duration,
    origin: Instant,
    stop: Arc<AtomicBool>,
) -> tokio::task::JoinHandle<Vec<KeepAliveRecord>> {
    tokio::spawn(async move {
        let records = Arc::new(Mutex::new(Vec::new()));
        let mut calls = Vec::new();
        // Bounded: a probe lasts seconds.
        for _ in 0..10_000u32 {
            if stop.load(Ordering::Relaxed) {
                break;
            }
            let (etcd, records) = (etcd.clone(), records.clone());
            calls.push(tokio::spawn(async move {
                let answer = call("keepalive", etcd.keep_alive(id)).await;
                let r = KeepAliveRecord {
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

async fn one_gone_trial(
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
    let keepalives = keep_alive_loop(etcd.clone(), g.id, period, origin, stop.clone());
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

async fn tokens_with(
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
    let keepalives = keep_alive_loop(etcd.clone(), a.id, period, Instant::now(), stop.clone());
    let result = lock_after_expired_wait_with(etcd.clone(), name, a.id).await;
    stop.store(true, Ordering::Relaxed);
    let _ = keepalives.await;
    let _ = call("revoke", etcd.revoke(a.id)).await;
    result
}

async fn lock_after_expired_wait_with(
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

fn note(errors: &mut BTreeMap<String, String>, probe: &str, e: String) {
    errors.insert(probe.to_string(), e);
}

// ---------------------------------------------------------------------------------------
// tolerances

/// How far a candidate's figures may be from the reference's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tolerances {
    /// Lease gone: the candidate's min and max lie in the reference's [min, max] widened by this.
    pub range_ms: u64,
    /// Lease gone: the candidate's median lies within this of the reference's.
    pub median_ms: u64,
}

/// The calibration's tolerances.
pub const TOLERANCES: Tolerances = Tolerances {
    range_ms: 100,
    median_ms: 150,
};

/// Identifies the Lock-API-after-an-expired-wait check among [`compare`]'s.
pub const LOCK_AFTER_EXPIRED_WAIT: &str = "lock-after-expired-wait";

/// One tolerance checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    pub id: String,
    pub what: String,
    pub reference: String,
    pub candidate: String,
    pub ok: bool,
}

impl std::fmt::Display for Check {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {}: {} (reference {})",
            if self.ok { "ok  " } else { "FAIL" },
            self.what,
            self.candidate,
            self.reference
        )
    }
}

fn opt<T: std::fmt::Debug>(v: &Option<T>) -> String {
    v.as_ref()
        .map_or_else(|| "no figure".into(), |v| format!("{v:?}"))
}

/// Checks `candidate` against `reference` within `tol`: the lease-gone spreads per TTL, the
/// stalls' outcomes, keepalive answers of 0, the past-deadline keepalive's latency spread (same
/// tolerances as lease gone), the minimum TTL, tokens rising, and the Lock API's answer after
/// an expired wait (id [`LOCK_AFTER_EXPIRED_WAIT`]).
pub fn compare(reference: &Figures, candidate: &Figures, tol: Tolerances) -> Vec<Check> {
    let mut checks = Vec::new();
    let mut check = |id: String, what: String, reference: String, candidate: String, ok: bool| {
        checks.push(Check {
            id,
            what,
            reference,
            candidate,
            ok,
        })
    };
    for r in &reference.lease_gone {
        let c = candidate.lease_gone.iter().find(|c| c.ttl_s == r.ttl_s);
        let (lo, hi) = (
            r.min_ms.saturating_sub(tol.range_ms),
            r.max_ms + tol.range_ms,
        );
        let range = format!("{}..{} ms widened to {lo}..{hi}", r.min_ms, r.max_ms);
        for (name, get) in [
            ("min", (|g: &LeaseGone| g.min_ms) as fn(&LeaseGone) -> u64),
            ("max", |g: &LeaseGone| g.max_ms),
        ] {
            check(
                format!("lease-gone-{}s-{name}", r.ttl_s),
                format!("lease gone, TTL {} s, {name}", r.ttl_s),
                range.clone(),
                c.map_or("no figure".into(), |c| format!("{} ms", get(c))),
                c.is_some_and(|c| (lo..=hi).contains(&get(c))),
            );
        }
        check(
            format!("lease-gone-{}s-median", r.ttl_s),
            format!("lease gone, TTL {} s, median", r.ttl_s),
            format!("{} ms ± {}", r.median_ms, tol.median_ms),
            c.map_or("no figure".into(), |c| format!("{} ms", c.median_ms)),
            c.is_some_and(|c| c.median_ms.abs_diff(r.median_ms) <= tol.median_ms),
        );
    }
    for r in &reference.stalled {
        let c = candidate.stalled.iter().find(|c| c.stall_ms == r.stall_ms);
        let word = |gone: bool| if gone { "gone" } else { "kept" };
        check(
            format!("stalled-{}ms", r.stall_ms),
            format!("etcd stalled {} ms, lease after resume", r.stall_ms),
            word(r.gone_after_resume).into(),
            c.map_or("no figure".into(), |c| word(c.gone_after_resume).into()),
            c.is_some_and(|c| c.gone_after_resume == r.gone_after_resume),
        );
    }
    for (id, what, r, c) in [
        (
            "keepalive-unknown-lease",
            "keepalive of an unknown lease answers 0",
            &reference.keepalive_unknown_lease,
            &candidate.keepalive_unknown_lease,
        ),
        (
            "keepalive-after-expiry",
            "keepalive after expiry answers 0",
            &reference.keepalive_after_expiry,
            &candidate.keepalive_after_expiry,
        ),
    ] {
        check(id.into(), what.into(), opt(r), opt(c), *c == Some(0));
    }
    let past = |f: &Figures| f.keepalive_past_deadline.clone();
    if let Some(r) = past(reference) {
        let c = past(candidate);
        check(
            "keepalive-past-deadline-answers".into(),
            "keepalive 20 ms past the deadline answers 0".into(),
            format!("{:?}", r.answers),
            opt(&c.as_ref().map(|c| c.answers.clone())),
            c.as_ref()
                .is_some_and(|c| !c.answers.is_empty() && c.answers.iter().all(|a| *a == 0)),
        );
        let (lo, hi) = (
            r.min_ms.saturating_sub(tol.range_ms),
            r.max_ms + tol.range_ms,
        );
        let range = format!("{}..{} ms widened to {lo}..{hi}", r.min_ms, r.max_ms);
        for (name, get) in [
            (
                "min",
                (|p: &PastDeadline| p.min_ms) as fn(&PastDeadline) -> u64,
            ),
            ("max", |p: &PastDeadline| p.max_ms),
        ] {
            check(
                format!("keepalive-past-deadline-{name}"),
                format!("keepalive 20 ms past the deadline, answer latency {name}"),
                range.clone(),
                c.as_ref()
                    .map_or("no figure".into(), |c| format!("{} ms", get(c))),
                c.as_ref().is_some_and(|c| (lo..=hi).contains(&get(c))),
            );
        }
        check(
            "keepalive-past-deadline-median".into(),
            "keepalive 20 ms past the deadline, answer latency median".into(),
            format!("{} ms ± {}", r.median_ms, tol.median_ms),
            c.as_ref()
                .map_or("no figure".into(), |c| format!("{} ms", c.median_ms)),
            c.as_ref()
                .is_some_and(|c| c.median_ms.abs_diff(r.median_ms) <= tol.median_ms),
        );
    }
    check(
        "granted-ttl-for-1".into(),
        "grant of TTL 1 s answers".into(),
        opt(&reference.granted_ttl_for_1),
        opt(&candidate.granted_ttl_for_1),
        candidate.granted_ttl_for_1.is_some()
            && candidate.granted_ttl_for_1 == reference.granted_ttl_for_1,
    );
    for (id, what, r, c) in [
        (
            "campaign-tokens-rise",
            "campaign tokens rise across holders",
            &reference.campaign_tokens,
            &candidate.campaign_tokens,
        ),
        (
            "lock-tokens-rise",
            "Lock API tokens rise across holders",
            &reference.lock_tokens,
            &candidate.lock_tokens,
        ),
    ] {
        let show = |t: &Option<Tokens>| {
            t.as_ref()
                .map_or("no figure".into(), |t| format!("{:?}", t.tokens))
        };
        check(
            id.into(),
            what.into(),
            show(r),
            show(c),
            c.as_ref().is_some_and(|t| t.rise && t.waited),
        );
    }
    let show = |l: &Option<LockAfterExpiredWait>| {
        l.as_ref().map_or("no figure".into(), |l| l.answer.short())
    };
    check(
        LOCK_AFTER_EXPIRED_WAIT.into(),
        "Lock API after a wait whose lease expired".into(),
        show(&reference.lock_after_expired_wait),
        show(&candidate.lock_after_expired_wait),
        match (
            &reference.lock_after_expired_wait,
            &candidate.lock_after_expired_wait,
        ) {
            (Some(r), Some(c)) => c.answer.same_as(&r.answer),
            _ => false,
        },
    );
    checks
}

// ---------------------------------------------------------------------------------------
// the table

fn cell_gone(f: &Figures, ttl_s: i64) -> String {
    match f.lease_gone.iter().find(|g| g.ttl_s == ttl_s) {
        Some(g) => format!("{} / {} / {}", g.min_ms, g.median_ms, g.max_ms),
        None => "—".into(),
    }
}

fn cell_stall(f: &Figures, stall_ms: u64) -> String {
    match f.stalled.iter().find(|s| s.stall_ms == stall_ms) {
        Some(s) => {
            let answers: Vec<String> = s
                .answers_after_resume
                .iter()
                .map(|a| a.to_string())
                .collect();
            let failed = match s.failed {
                0 => String::new(),
                n => format!("; {n} failed"),
            };
            format!(
                "{} (answers {}{failed})",
                if s.gone_after_resume { "gone" } else { "kept" },
                answers.join(","),
            )
        }
        None => "—".into(),
    }
}

fn cell<T>(v: &Option<T>, show: impl Fn(&T) -> String) -> String {
    v.as_ref().map_or_else(|| "—".into(), show)
}

/// The figures of several etcds side by side, one column each, then every probe's error.
pub fn table(columns: &[(&str, &Figures)]) -> String {
    let mut rows: Vec<(String, Vec<String>)> = Vec::new();
    let mut row = |name: String, f: &dyn Fn(&Figures) -> String| {
        rows.push((name, columns.iter().map(|(_, c)| f(c)).collect()));
    };
    for ttl_s in GONE_TTLS_S {
        row(
            format!("lease gone after last keepalive, TTL {ttl_s} s: min / median / max ms"),
            &|f| cell_gone(f, ttl_s),
        );
    }
    for stall_ms in STALLS_MS {
        row(
            format!(
                "etcd stalled {} s, keepalives every TTL/3 (TTL {STALL_TTL_S} s)",
                stall_ms as f64 / 1000.0
            ),
            &|f| cell_stall(f, stall_ms),
        );
    }
    row("keepalive, unknown lease".into(), &|f| {
        cell(&f.keepalive_unknown_lease, |v| v.to_string())
    });
    row("keepalive after expiry".into(), &|f| {
        cell(&f.keepalive_after_expiry, |v| v.to_string())
    });
    row(
        "keepalive 20 ms past the deadline: answers; latency min / median / max ms".into(),
        &|f| {
            cell(&f.keepalive_past_deadline, |p| {
                let mut a = p.answers.clone();
                a.dedup();
                let a: Vec<String> = a.iter().map(|v| v.to_string()).collect();
                format!(
                    "{}; {} / {} / {}",
                    a.join(","),
                    p.min_ms,
                    p.median_ms,
                    p.max_ms
                )
            })
        },
    );
    row("grant TTL 1 s answers TTL".into(), &|f| {
        cell(&f.granted_ttl_for_1, |v| v.to_string())
    });
    let tokens = |t: &Tokens| {
        format!(
            "{:?}{}{}",
            t.tokens,
            if t.rise { " rise" } else { " DO NOT rise" },
            if t.waited { "" } else { " (no wait)" }
        )
    };
    row("campaign tokens (create revisions)".into(), &|f| {
        cell(&f.campaign_tokens, tokens)
    });
    row("Lock API tokens (create revisions)".into(), &|f| {
        cell(&f.lock_tokens, tokens)
    });
    row("Lock API after a wait whose lease expired".into(), &|f| {
        cell(&f.lock_after_expired_wait, |l| l.answer.short())
    });
    let first = rows
        .iter()
        .map(|(n, _)| n.chars().count())
        .max()
        .unwrap_or(0);
    let widths: Vec<usize> = (0..columns.len())
        .map(|i| {
            rows.iter()
                .map(|(_, cells)| cells[i].chars().count())
                .chain([columns[i].0.chars().count()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let pad = |s: &str, w: usize| format!("{s}{}", " ".repeat(w.saturating_sub(s.chars().count())));
    let mut out = String::new();
    let mut line = |name: &str, cells: Vec<&str>| {
        let mut l = format!("| {} ", pad(name, first));
        for (c, w) in cells.iter().zip(&widths) {
            l.push_str(&format!("| {} ", pad(c, *w)));
        }
        out.push_str(&l);
        out.push_str("|\n");
    };
    line("probe", columns.iter().map(|(n, _)| *n).collect());
    let rule: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
    line(
        &"-".repeat(first),
        rule.iter().map(|s| s.as_str()).collect(),
    );
    for (name, cells) in &rows {
        line(name, cells.iter().map(|s| s.as_str()).collect());
    }
    for (n, f) in columns {
        for (probe, e) in &f.errors {
            out.push_str(&format!("{n}: {probe}: {e}\n"));
        }
    }
    out
}

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
