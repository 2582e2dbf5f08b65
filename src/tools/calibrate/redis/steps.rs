//! The wall-step probes: Redis expires keys by its wall clock, so a step moves every deadline.

use super::*;

/// `PTTL`, the clock set to `offset_ms`, `PTTL` again: how much the second fell short of the
/// first beyond the client time between the two (what the step took off the key), ms.
async fn pttl_step_drop_ms(
    r: &dyn Redis,
    key: &str,
    clock: &dyn WallStep,
    offset_ms: i64,
) -> Result<f64, String> {
    let before = call("PTTL", r.pttl(key)).await?;
    let replied = Instant::now();
    clock.set_offset_ms(offset_ms).await?;
    let sent = Instant::now();
    let after = call("PTTL", r.pttl(key)).await?;
    if before <= 0 || after <= 0 {
        return Err(format!("PTTL {before} then {after} across a step"));
    }
    Ok(round3((before - after) as f64 - ms(sent - replied)))
}

/// +5000 and back on a `PX 10000` key held by `a`; then +11000: the key is gone for the server,
/// `b` takes it, `a`'s unlock no longer matches; back to 0, `b`'s key was set 11 s ahead.
async fn forward(
    a: &dyn Redis,
    b: &dyn Redis,
    clock: &dyn WallStep,
    key: &str,
) -> Result<ForwardSteps, String> {
    timed_set(a, key, "client1", FORWARD_PX_MS).await?;
    let pttl_drop_ms = pttl_step_drop_ms(a, key, clock, FORWARD_STEP_MS).await?;
    let pttl_rise_back_ms = -pttl_step_drop_ms(a, key, clock, 0).await?;
    clock.set_offset_ms(JUMP_STEP_MS).await?;
    let pttl_after_jump = call("PTTL", a.pttl(key)).await?;
    let second_client_won = call("SET NX", b.set_nx_px(key, "client2", FORWARD_PX_MS)).await?;
    let holder_after_jump = call("GET", a.get(key)).await?;
    let first_unlock_deleted = call("unlock", a.del_if_eq(key, "client1")).await?;
    clock.set_offset_ms(0).await?;
    let second_key_pttl_after_back_ms = call("PTTL", b.pttl(key)).await?;
    let _ = call("unlock", b.del_if_eq(key, "client2")).await;
    Ok(ForwardSteps {
        px_ms: FORWARD_PX_MS,
        step_ms: FORWARD_STEP_MS,
        pttl_drop_ms,
        pttl_rise_back_ms,
        jump_ms: JUMP_STEP_MS,
        pttl_after_jump,
        second_client_won,
        holder_after_jump,
        first_unlock_deleted,
        second_key_pttl_after_back_ms,
    })
}

/// -5000 right after a `PX 1000` key's `SET`: past its nominal TTL the key still holds and
/// `b`'s `SET NX` loses; `b` then polls it with `PTTL` until it is gone, ~6000 ms after.
async fn backward(
    a: &dyn Redis,
    b: &dyn Redis,
    clock: &dyn WallStep,
    key: &str,
) -> Result<BackwardStep, String> {
    let (t0, _) = timed_set(a, key, "client1", BACKWARD_PX_MS).await?;
    clock.set_offset_ms(BACKWARD_STEP_MS).await?;
    sleep_until(t0 + BACKWARD_READ_AFTER).await;
    let pttl_past_deadline_ms = call("PTTL", a.pttl(key)).await?;
    let won = call("SET NX", b.set_nx_px(key, "client2", BACKWARD_PX_MS)).await?;
    let expected = Duration::from_millis((BACKWARD_PX_MS - BACKWARD_STEP_MS) as u64);
    let (last_seen_ms, gone_after_reply_ms) =
        poll_until_gone(b, key, t0, expected, Poll::Pttl).await?;
    Ok(BackwardStep {
        px_ms: BACKWARD_PX_MS,
        step_ms: BACKWARD_STEP_MS,
        pttl_past_deadline_ms,
        second_client_refused: !won,
        last_seen_ms,
        gone_after_reply_ms,
    })
}

/// The forward steps, then the backward one, on the server `clock` steps; the clock is set
/// back to 0 after each, whatever happened.
pub async fn wall_steps(
    a: &dyn Redis,
    b: &dyn Redis,
    clock: &dyn WallStep,
    prefix: &str,
) -> Result<WallSteps, String> {
    let fwd = forward(a, b, clock, &format!("{prefix}/forward")).await;
    clock.set_offset_ms(0).await?;
    let back = backward(a, b, clock, &format!("{prefix}/backward")).await;
    clock.set_offset_ms(0).await?;
    Ok(WallSteps {
        forward: fwd?,
        backward: back?,
    })
}
