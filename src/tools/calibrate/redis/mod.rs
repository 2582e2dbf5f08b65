//! Calibration of the Redis model: what a lock client can observe of one Redis node, measured
//! by probes written once over the [`Redis`] seam.
//!
//! The same probes run against real `redis-server`s (`sims/real_redis.rs`, which writes the
//! figures to `sims/calibration/redis-real.json` with `FENCELAB_CALIBRATION_WRITE=1`) and, in
//! the simulation, against fencelab's model (`sims/redis_calibration.rs`, which asserts the
//! model within [`REDIS_TOLERANCES`] of the committed real figures). Time is `tokio::time`:
//! real in the real build, simulated under madsim. What differs between a real server and a
//! model node goes through small traits:
//!
//! | trait | real | simulation |
//! |---|---|---|
//! | [`Stall`] | `SIGSTOP`, `SIGCONT` | madsim's pause of the node ([`PauseNode`](super::PauseNode)) |
//! | [`WallStep`] | the realtime-offset shim's offset file | [`NodeWallStep`]: [`Node::set_wall_offset_ms`](crate::redis::model::Node::set_wall_offset_ms) |
//! | [`Restart`] | a redis-server of the probe's own, `SIGKILL`ed and started again on its `--dir` | madsim's kill and restart of a model node |
//!
//! The probes (the design's P1, P3, P4 and P6), each returning plain serde figures:
//! - **TTL precision** ([`ttl_precision`]): [`TTL_TRIALS`] keys `SET NX PX 2000`, trial `i`
//!   started `i ×` [`TTL_STAGGER`] (80.37 ms: a fraction of a ms, so that the trials' phases
//!   against Redis's ms clock differ), each polled by a second client every [`POLL`] (1 ms of
//!   sleep between an answer and the next call) from [`SPIN_LEAD`] before its deadline: first
//!   with `PTTL` until it answers -2, then, on fresh keys, with the second client's own
//!   `SET NX` until it wins. The figure: ms from the `SET`'s reply to the reply that found the
//!   key gone.
//! - **a stall longer than the TTL** ([`sigstop`]): a `PX 2000` key, the server stalled 3 s,
//!   a second client's `SET NX` sent during the stall; on resume the key is gone at once and the
//!   queued `SET NX` wins.
//! - **wall steps** ([`wall_steps`]): +5000 ms drops `PTTL` by 5000, back to 0 raises it by
//!   5000; +11000 ms expires a `PX 10000` key and a second client takes it; -5000 ms right
//!   after a `PX 1000` key's `SET` keeps it ~6000 ms.
//! - **restarts** ([`restarts`]): a key set, the server killed at once and started again on
//!   its disk, per persistence mode, and once kept down longer than the key's TTL.

use crate::deadline;
use crate::redis::{Persistence, Redis, RedisError, RedisResult};
use crate::BoxFuture;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::{sleep, sleep_until, Instant};

pub use super::Stall;

mod compare;
mod probes;
mod redlock;
mod restart;
mod seams;
mod steps;
mod table;

pub use compare::{
    expiry_after_set, redis_compare, RedisTolerances, REDIS_TOLERANCES, RESTART_EVERYSEC,
    SET_ROUND_TRIP,
};
pub use probes::{sigstop, spread, ttl_precision};
pub use redlock::{
    redlock_story, story_differences, story_table, StoryCell, StoryFigures, STORY_STEPS_MS,
    STORY_TTL_S,
};
pub use restart::{restart_trial, restarts, RESTART_TRIALS};
#[cfg(madsim)]
pub use seams::NodeWallStep;
pub use seams::{Restart, WallStep};
pub use steps::wall_steps;
pub use table::redis_table;

/// Trials of the TTL-precision probe, per way of polling.
pub const TTL_TRIALS: u32 = 20;
/// The TTL-precision probe's `PX`.
pub const TTL_PX_MS: i64 = 2_000;
/// Delay between the starts of two successive TTL trials: longer than a trial's polling
/// (about [`SPIN_LEAD`]), and not a whole number of ms, so that the trials' `SET`s land at
/// different phases of Redis's ms clock (the real ones do anyway; the simulated ones would not).
pub const TTL_STAGGER: Duration = Duration::from_micros(80_370);
/// Sleep between a poll's answer and the next poll.
pub const POLL: Duration = Duration::from_millis(1);
/// How long before a key's deadline the polling starts.
pub const SPIN_LEAD: Duration = Duration::from_millis(30);
/// How late past its expected end a key may still be seen before a probe gives up.
pub const LATE_MAX: Duration = Duration::from_secs(1);
/// Every call of a probe is bounded by this (a call queued behind a 3 s stall included).
pub const CALL_TIMEOUT: Duration = Duration::from_secs(20);

/// The stall probe: its key's `PX`, the stall, when the second client's `SET NX` is sent after
/// the stall began, and that `SET NX`'s own `PX`.
pub const STALL_PX_MS: i64 = 2_000;
pub const STALL: Duration = Duration::from_millis(3_000);
pub const STALL_SEND_AFTER: Duration = Duration::from_millis(200);
pub const QUEUED_PX_MS: i64 = 10_000;

/// The forward-step probe: a `PX 10000` key, a step of +5000 and back, then a jump of +11000.
pub const FORWARD_PX_MS: i64 = 10_000;
pub const FORWARD_STEP_MS: i64 = 5_000;
pub const JUMP_STEP_MS: i64 = 11_000;
/// The backward-step probe: a `PX 1000` key, the clock stepped -5000 right after its `SET`.
pub const BACKWARD_PX_MS: i64 = 1_000;
pub const BACKWARD_STEP_MS: i64 = -5_000;
/// When the backward-step probe reads the key, after its `SET`'s reply: past its nominal TTL.
pub const BACKWARD_READ_AFTER: Duration = Duration::from_millis(1_100);

/// How the figures are measured, in one line per part (stored with them).
pub const TTL_METHOD: &str = "calibrate/redis: 20 keys SET NX PX 2000 started 80.37 ms apart; a second client polls every 1 ms (sleep between answer and call) from 30 ms before the deadline, with PTTL until -2, then on fresh keys with its own SET NX until it wins; ms from the SET's reply to the reply of the first poll that finds the key gone";
pub const SIGSTOP_METHOD: &str = "calibrate/redis: PX 2000 key; server stalled 3 s (SIGSTOP/SIGCONT; madsim pause/resume); a second client's SET NX PX 10000 sent 200 ms into the stall; its reply's time after the resume";
pub const STEPS_METHOD: &str = "calibrate/redis: PX 10000 key; wall clock stepped +5000 and back to 0, PTTL before and after minus the client time between them; then +11000: PTTL, a second client's SET NX, the first's unlock; back to 0. PX 1000 key, clock stepped -5000 after its SET's reply: PTTL 1100 ms after, then PTTL every 1 ms from 30 ms before 6000 ms until -2";
pub const RESTART_METHOD: &str = "calibrate/redis: a server of the probe's own per trial (real: no shim, its own --dir); SET NX PX, killed right after the reply (SIGKILL; madsim kill), two GETs bounded by 500 ms, kept down down_planned_ms, started again; down_ms from the kill to the restarted server answering; then GET and PTTL";

/// Min, median and max of some samples, and the samples in trial order, ms.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Spread {
    pub min_ms: f64,
    pub median_ms: f64,
    pub max_ms: f64,
    pub samples_ms: Vec<f64>,
}

/// One way of polling a key until it is gone, over every trial: ms after the `SET`'s reply.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Expiry {
    /// The reply of the first poll that found the key gone.
    pub after_reply: Spread,
    /// The send of the last poll that still found it (trials whose first poll found it).
    pub last_seen: Spread,
    /// The `SET`'s round trip.
    pub set_round_trip: Spread,
}

/// TTL precision: a `PX 2000` key polled by `PTTL`, and by a second client's `SET NX`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct TtlPrecision {
    pub px_ms: i64,
    pub trials: u32,
    pub poll_ms: u64,
    /// `PTTL` answers -2.
    pub gone: Expiry,
    /// The second client's `SET NX` wins.
    pub second_client_wins: Expiry,
}

/// A stall longer than the key's TTL.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Sigstop {
    pub px_ms: i64,
    /// How long the server was stalled, measured around the stall.
    pub stall_ms: f64,
    /// The `SET NX` sent during the stall won.
    pub queued_set_nx_won: bool,
    /// Its reply, ms after the resume (the stall's end).
    pub cont_to_reply_ms: f64,
    /// What `GET` answered right after.
    pub holder_after_resume: Option<String>,
    /// The first holder's unlock script deleted the key (it must not: the key is another's).
    pub first_unlock_deleted: bool,
}

/// +5000 and back on a `PX 10000` key, then a jump past its expiry.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ForwardSteps {
    pub px_ms: i64,
    pub step_ms: i64,
    /// How much `PTTL` fell across the step, beyond the client time between the two `PTTL`s.
    pub pttl_drop_ms: f64,
    /// How much it rose across the step back to 0, the same way.
    pub pttl_rise_back_ms: f64,
    pub jump_ms: i64,
    /// `PTTL` after the jump.
    pub pttl_after_jump: i64,
    pub second_client_won: bool,
    pub holder_after_jump: Option<String>,
    pub first_unlock_deleted: bool,
    /// The second client's `PX 10000` key, once the clock is back at 0.
    pub second_key_pttl_after_back_ms: i64,
}

/// -5000 right after a `PX 1000` key's `SET`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct BackwardStep {
    pub px_ms: i64,
    pub step_ms: i64,
    /// `PTTL` 1100 ms after the `SET`'s reply.
    pub pttl_past_deadline_ms: i64,
    /// A second client's `SET NX` then lost.
    pub second_client_refused: bool,
    pub last_seen_ms: Option<f64>,
    /// The reply of the first `PTTL` that found it gone, after the `SET`'s reply.
    pub gone_after_reply_ms: f64,
}

/// Wall steps on one server.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct WallSteps {
    pub forward: ForwardSteps,
    pub backward: BackwardStep,
}

/// One crash and restart.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RestartTrial {
    pub mode: Persistence,
    pub px_ms: i64,
    /// How long the probe kept the server down before starting it again.
    pub down_planned_ms: u64,
    /// From the kill to the restarted server answering.
    pub down_ms: u64,
    /// What two `GET`s answered while the server was down, in order.
    pub after_kill: Vec<String>,
    pub kept: bool,
    pub pttl_after_restart_ms: i64,
}

/// Everything the probes measured of Redis; a probe that failed has no figure and an entry
/// in `errors`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct RedisFigures {
    pub ttl_precision: Option<TtlPrecision>,
    pub sigstop: Option<Sigstop>,
    pub wall_steps: Option<WallSteps>,
    pub restarts: Option<Vec<RestartTrial>>,
    /// Probe name → why it has no figure.
    pub errors: BTreeMap<String, String>,
}

/// One part of the real record: its figures, when and how they were measured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Part<F> {
    pub date: String,
    pub method: String,
    pub figures: F,
}

/// The parts of the real record, each written by its own test of the real suite.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct RedisParts {
    #[serde(default)]
    pub ttl_precision: Option<Part<TtlPrecision>>,
    #[serde(default)]
    pub sigstop: Option<Part<Sigstop>>,
    #[serde(default)]
    pub wall_steps: Option<Part<WallSteps>>,
    #[serde(default)]
    pub restarts: Option<Part<Vec<RestartTrial>>>,
}

/// The figures of a real Redis as committed (`sims/calibration/redis-real.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RedisRecord {
    /// `redis_version` from `INFO server`.
    pub redis_version: String,
    /// Where: CPU, cores, kernel.
    pub machine: String,
    pub parts: RedisParts,
}

impl RedisRecord {
    /// The parts' figures as one [`RedisFigures`].
    pub fn figures(&self) -> RedisFigures {
        let p = &self.parts;
        RedisFigures {
            ttl_precision: p.ttl_precision.as_ref().map(|x| x.figures.clone()),
            sigstop: p.sigstop.as_ref().map(|x| x.figures.clone()),
            wall_steps: p.wall_steps.as_ref().map(|x| x.figures.clone()),
            restarts: p.restarts.as_ref().map(|x| x.figures.clone()),
            errors: BTreeMap::new(),
        }
    }
}

// ---------------------------------------------------------------------------------------
// helpers the probes share

/// `fut` bounded by [`CALL_TIMEOUT`]; its error in words, naming `what`.
pub(super) async fn call<T>(what: &str, fut: BoxFuture<'_, RedisResult<T>>) -> Result<T, String> {
    match deadline::timeout(CALL_TIMEOUT, fut).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(format!("{what}: {e}")),
        Err(_) => Err(format!("{what}: no answer in {CALL_TIMEOUT:?}")),
    }
}

/// A duration in ms, to the µs.
pub(super) fn ms(d: Duration) -> f64 {
    round3(d.as_secs_f64() * 1e3)
}

/// `x` to three decimals (µs in ms: the probes' resolution).
pub(super) fn round3(x: f64) -> f64 {
    (x * 1e3).round() / 1e3
}

/// An error as the kind a lock client tells apart.
pub(super) fn kind(e: &RedisError) -> &'static str {
    match e {
        RedisError::Timeout => "timeout",
        RedisError::Unavailable { .. } => "unavailable",
        RedisError::WrongType => "wrong-type",
        RedisError::Other { .. } => "other",
    }
}

/// `SET key value NX PX px_ms`, which must win: the instant of its reply and its round trip.
pub(super) async fn timed_set(
    r: &dyn Redis,
    key: &str,
    value: &str,
    px_ms: i64,
) -> Result<(Instant, f64), String> {
    let sent = Instant::now();
    if !call("SET NX PX", r.set_nx_px(key, value, px_ms)).await? {
        return Err(format!("SET NX of a fresh key {key} lost"));
    }
    let replied = Instant::now();
    Ok((replied, ms(replied - sent)))
}

/// How a poller finds a key gone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Poll {
    /// `PTTL` answers -2.
    Pttl,
    /// Its own `SET NX` wins (a second client taking the lock).
    SetNx,
}

async fn is_gone(r: &dyn Redis, key: &str, way: Poll) -> Result<bool, String> {
    match way {
        Poll::Pttl => Ok(call("PTTL", r.pttl(key)).await? == crate::redis::PTTL_MISSING),
        Poll::SetNx => call("SET NX", r.set_nx_px(key, "poller", 60_000)).await,
    }
}

/// Polls `key` every [`POLL`] from [`SPIN_LEAD`] before `t0 + expected` until it is gone:
/// ms from `t0` to the send of the last poll that found it (`None` if the first did not) and
/// to the reply of the first that did not. Gives up [`LATE_MAX`] past `t0 + expected`.
pub(super) async fn poll_until_gone(
    r: &dyn Redis,
    key: &str,
    t0: Instant,
    expected: Duration,
    way: Poll,
) -> Result<(Option<f64>, f64), String> {
    sleep_until(t0 + expected.saturating_sub(SPIN_LEAD)).await;
    let limit = t0 + expected + LATE_MAX;
    let mut last_seen_ms = None;
    while Instant::now() < limit {
        let sent = Instant::now();
        if is_gone(r, key, way).await? {
            return Ok((last_seen_ms, ms(Instant::now() - t0)));
        }
        last_seen_ms = Some(ms(sent - t0));
        sleep(POLL).await;
    }
    Err(format!(
        "{key} still there {:?} after its SET, expected gone after {expected:?}",
        t0.elapsed()
    ))
}

/// The figures of `probe`, or its error noted under `name`.
pub(super) fn keep<T>(
    errors: &mut BTreeMap<String, String>,
    name: &str,
    r: Result<T, String>,
) -> Option<T> {
    r.map_err(|e| errors.insert(name.to_string(), e)).ok()
}

/// Every probe in sequence against one server of each kind: `a` and `b` two clients of one
/// server that `stall` stalls and `clock` steps; `restart` its own servers. `prefix` keeps
/// the keys of one run apart from another's.
pub async fn run_redis(
    a: Arc<dyn Redis>,
    b: Arc<dyn Redis>,
    stall: &dyn Stall,
    clock: &dyn WallStep,
    restart: &dyn Restart,
    prefix: &str,
) -> RedisFigures {
    let mut errors = BTreeMap::new();
    let ttl = ttl_precision(a.clone(), b.clone(), &format!("{prefix}/ttl")).await;
    let ttl_precision = keep(&mut errors, "ttl-precision", ttl);
    let steps = wall_steps(&*a, &*b, clock, &format!("{prefix}/steps")).await;
    let wall_steps = keep(&mut errors, "wall-steps", steps);
    let stalled = sigstop(&*a, b.clone(), stall, &format!("{prefix}/sigstop")).await;
    let sigstop = keep(&mut errors, "sigstop", stalled);
    let trials = restarts(restart, &format!("{prefix}/restart")).await;
    let restarts = keep(&mut errors, "restarts", trials);
    RedisFigures {
        ttl_precision,
        sigstop,
        wall_steps,
        restarts,
        errors,
    }
}
