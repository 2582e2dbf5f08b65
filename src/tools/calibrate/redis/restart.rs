//! The restart probe: what a lock key set just before a crash is after the restart, per
//! persistence mode.

use super::*;

/// The trials, `(mode, px_ms, down_planned_ms)`: each mode with a key far from its expiry and
/// no downtime, then `aof-always` kept down longer than the key's TTL (the Redlock page's
/// "delayed restarts": the absolute expiry passes while the server is down).
pub const RESTART_TRIALS: [(Persistence, i64, u64); 5] = [
    (Persistence::None, 60_000, 0),
    (Persistence::Rdb, 60_000, 0),
    (Persistence::AofAlways, 60_000, 0),
    (Persistence::AofEverysec, 60_000, 0),
    (Persistence::AofAlways, 1_000, 1_500),
];

/// How long each call to a killed server may take before the probe notes "no answer".
const DOWN_CALL_TIMEOUT: Duration = Duration::from_millis(500);

/// A `PX px_ms` key set on a fresh server under `mode`, the server killed right after the
/// reply, kept down `down_planned_ms`, started again: what clients see meanwhile and after.
pub async fn restart_trial(
    servers: &dyn Restart,
    mode: Persistence,
    px_ms: i64,
    down_planned_ms: u64,
    key: &str,
) -> Result<RestartTrial, String> {
    let r = servers.start(mode).await?;
    timed_set(&*r, key, "holder", px_ms).await?;
    servers.kill().await?;
    let killed = Instant::now();
    let mut after_kill = Vec::new();
    for _ in 0..2 {
        after_kill.push(
            match deadline::timeout(DOWN_CALL_TIMEOUT, r.get(key)).await {
                Ok(Ok(_)) => "answered".to_string(),
                Ok(Err(e)) => kind(&e).to_string(),
                Err(_) => format!("no answer in {} ms", DOWN_CALL_TIMEOUT.as_millis()),
            },
        );
    }
    sleep_until(killed + Duration::from_millis(down_planned_ms)).await;
    servers.restart().await?;
    let down_ms = killed.elapsed().as_millis() as u64;
    let kept = call("GET after the restart", r.get(key)).await?.is_some();
    let pttl_after_restart_ms = call("PTTL after the restart", r.pttl(key)).await?;
    if kept != (pttl_after_restart_ms != crate::redis::PTTL_MISSING) {
        return Err(format!(
            "GET found the key {}, PTTL answered {pttl_after_restart_ms}",
            if kept { "present" } else { "absent" }
        ));
    }
    Ok(RestartTrial {
        mode,
        px_ms,
        down_planned_ms,
        down_ms,
        after_kill,
        kept,
        pttl_after_restart_ms,
    })
}

/// Every trial of [`RESTART_TRIALS`] in order.
pub async fn restarts(servers: &dyn Restart, prefix: &str) -> Result<Vec<RestartTrial>, String> {
    let mut trials = Vec::with_capacity(RESTART_TRIALS.len());
    for (i, (mode, px_ms, down_ms)) in RESTART_TRIALS.into_iter().enumerate() {
        let key = format!("{prefix}/{i}-{}", mode.as_str());
        let t = restart_trial(servers, mode, px_ms, down_ms, &key).await;
        trials.push(t.map_err(|e| format!("{} PX {px_ms} down {down_ms} ms: {e}", mode.as_str()))?);
    }
    Ok(trials)
}
