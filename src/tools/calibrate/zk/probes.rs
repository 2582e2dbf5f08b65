//! The negotiation, expiry-latency and paused-server probes.

use super::*;
use crate::calibrate::redis::spread;
use crate::zk::{CreateMode, Fired, SessionState};
use tokio::time::sleep_until;

/// The timeout granted for each of [`NEGOTIATION_REQUESTS_MS`].
pub async fn negotiation(sessions: &dyn Sessions) -> Result<Vec<Negotiated>, String> {
    let mut out = Vec::with_capacity(NEGOTIATION_REQUESTS_MS.len());
    for requested_ms in NEGOTIATION_REQUESTS_MS {
        let zk = call("connect", sessions.open(requested_ms)).await?;
        out.push(Negotiated {
            requested_ms,
            negotiated_ms: zk.session().timeout_ms,
        });
        let _ = call("close", zk.close()).await;
    }
    Ok(out)
}

/// One expiry trial, ms after the silent client's last packet.
struct Trial {
    deleted_ms: f64,
    suspended_ms: f64,
    gave_up_ms: f64,
    gave_up: SessionState,
}

/// When `zk` first reaches one of `want` (bounded by `limit`), and which.
async fn state_at(
    zk: &dyn Zk,
    want: &[SessionState],
    limit: Instant,
) -> Result<(Instant, SessionState), String> {
    let mut seen = zk.state();
    while !want.contains(&seen) {
        if seen.is_terminal() {
            return Err(format!("session {} before {want:?}", seen.as_str()));
        }
        seen = timeout_at(limit, zk.state_changed(seen))
            .await
            .map_err(|_| format!("none of {want:?} in time (still {})", seen.as_str()))?;
    }
    Ok((Instant::now(), seen))
}

async fn expiry_trial(
    sessions: Arc<dyn Sessions>,
    watcher: Arc<dyn Zk>,
    path: String,
    start: Instant,
) -> Result<Trial, String> {
    sleep_until(start).await;
    let (zk, silence) = sessions.open_silenceable(EXPIRY_TIMEOUT_MS).await?;
    let t = Duration::from_millis(zk.session().timeout_ms);
    call("create", zk.create(&path, b"", CreateMode::Ephemeral)).await?;
    let (stat, watch) = call("exists", watcher.exists_watch(&path)).await?;
    if stat.is_none() {
        return Err(format!("{path} not seen by the watcher"));
    }
    let last = silence.silence().await?;
    let limit = last + t + Duration::from_millis(TICK_MS) + LATE_MAX;
    // The client's own states and the server's verdict, at once.
    let suspended = state_at(&*zk, &[SessionState::Suspended], limit);
    let gave_up = state_at(&*zk, &[SessionState::Lost, SessionState::Expired], limit);
    let deleted = async {
        match timeout_at(limit, watch).await {
            Ok(Fired::NodeDeleted) => Ok(Instant::now()),
            Ok(other) => Err(format!("{path}: the watch fired {other:?}")),
            Err(_) => Err(format!(
                "{path}: not deleted {:?} after the last packet",
                limit - last
            )),
        }
    };
    let (suspended, gave_up, deleted) = tokio::join!(suspended, gave_up, deleted);
    let (gave_up_at, gave_up) = gave_up?;
    Ok(Trial {
        deleted_ms: ms(deleted? - last),
        suspended_ms: ms(suspended?.0 - last),
        gave_up_ms: ms(gave_up_at - last),
        gave_up,
    })
}

/// [`EXPIRY_TRIALS`] silent sessions, concurrently, [`EXPIRY_STAGGER`] apart; `dir` is the
/// parent of their ephemerals (created here).
pub async fn expiry_latency(
    sessions: Arc<dyn Sessions>,
    dir: &str,
) -> Result<ExpiryLatency, String> {
    let watcher = call("watcher", sessions.open(WATCHER_TIMEOUT_MS)).await?;
    mkdirs(&*watcher, dir).await?;
    let start = Instant::now();
    let tasks: Vec<_> = (0..EXPIRY_TRIALS)
        .map(|i| {
            let at = start + EXPIRY_STAGGER * i as u32;
            let path = format!("{dir}/s{i}");
            tokio::spawn(expiry_trial(sessions.clone(), watcher.clone(), path, at))
        })
        .collect();
    let mut trials = Vec::with_capacity(tasks.len());
    for t in tasks {
        trials.push(t.await.map_err(|e| format!("trial: {e}"))??);
    }
    let _ = call("close", watcher.close()).await;
    Ok(ExpiryLatency {
        timeout_ms: EXPIRY_TIMEOUT_MS,
        trials: EXPIRY_TRIALS,
        last_packet_to_deleted: spread(trials.iter().map(|t| t.deleted_ms).collect()),
        last_packet_to_suspended: spread(trials.iter().map(|t| t.suspended_ms).collect()),
        last_packet_to_gave_up: spread(trials.iter().map(|t| t.gave_up_ms).collect()),
        gave_up_as: trials.iter().map(|t| t.gave_up).collect(),
    })
}

/// One pause: [`PAUSE_SESSIONS`] sessions with an ephemeral each under `dir`, the server
/// stalled `factor` × T, the ephemerals left [`PAUSE_READ_AFTER`] after the resume.
async fn pause_once(
    sessions: &dyn Sessions,
    reader: &dyn Zk,
    stall: &dyn Stall,
    dir: &str,
    factor: f64,
) -> Result<Pause, String> {
    mkdirs(reader, dir).await?;
    let mut held = Vec::with_capacity(PAUSE_SESSIONS);
    for i in 0..PAUSE_SESSIONS {
        let zk = call("connect", sessions.open(EXPIRY_TIMEOUT_MS)).await?;
        call(
            "create",
            zk.create(&format!("{dir}/s{i}"), b"", CreateMode::Ephemeral),
        )
        .await?;
        held.push(zk);
    }
    let t = held
        .first()
        .map_or(EXPIRY_TIMEOUT_MS, |zk| zk.session().timeout_ms);
    let pause = Duration::from_secs_f64(t as f64 * factor / 1e3);
    let began = Instant::now();
    stall.stall(pause).await?;
    let resumed = Instant::now();
    sleep_until(resumed + PAUSE_READ_AFTER).await;
    let left = call("getChildren", reader.get_children(dir)).await?;
    let expired = PAUSE_SESSIONS.saturating_sub(left.len());
    for zk in held {
        // Expired sessions answer SessionExpired; either way the session is done.
        let _ = deadline::timeout(CALL_TIMEOUT, zk.close()).await;
    }
    Ok(Pause {
        round: 0,
        factor,
        pause_ms: ms(resumed - began),
        sessions: PAUSE_SESSIONS,
        expired,
        expired_share: expired as f64 / PAUSE_SESSIONS as f64,
    })
}

/// The server stalled for each of [`PAUSE_FACTORS`] × T in turn, [`PAUSE_ROUNDS`] times; `dir`
/// is the probe's own.
pub async fn paused(
    sessions: &dyn Sessions,
    stall: &dyn Stall,
    dir: &str,
) -> Result<Paused, String> {
    let reader = call("reader", sessions.open(WATCHER_TIMEOUT_MS)).await?;
    let mut pauses = Vec::with_capacity(PAUSE_ROUNDS * PAUSE_FACTORS.len());
    for round in 0..PAUSE_ROUNDS {
        for (i, factor) in PAUSE_FACTORS.into_iter().enumerate() {
            let at = format!("{dir}/r{round}p{i}");
            let mut p = pause_once(sessions, &*reader, stall, &at, factor).await?;
            p.round = round;
            pauses.push(p);
        }
    }
    let _ = call("close", reader.close()).await;
    Ok(Paused {
        timeout_ms: EXPIRY_TIMEOUT_MS,
        rounds: PAUSE_ROUNDS,
        pauses,
    })
}
