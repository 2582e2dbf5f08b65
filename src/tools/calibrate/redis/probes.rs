//! The TTL-precision and stall probes.

use super::*;

/// Min, median (the upper middle one for an even count) and max of `samples`, kept in order.
pub fn spread(samples: Vec<f64>) -> Spread {
    let mut sorted = samples.clone();
    sorted.sort_by(f64::total_cmp);
    let at = |i: usize| sorted.get(i).copied().unwrap_or(f64::NAN);
    Spread {
        min_ms: at(0),
        median_ms: at(sorted.len() / 2),
        max_ms: at(sorted.len().saturating_sub(1)),
        samples_ms: samples,
    }
}

/// One expiry trial, ms after the `SET`'s reply.
struct Trial {
    set_rtt_ms: f64,
    last_seen_ms: Option<f64>,
    after_ms: f64,
}

async fn expiry_trial(
    setter: Arc<dyn Redis>,
    poller: Arc<dyn Redis>,
    key: String,
    start: Instant,
    i: u32,
    way: Poll,
) -> Result<Trial, String> {
    sleep_until(start + TTL_STAGGER * i).await;
    let (t0, set_rtt_ms) = timed_set(&*setter, &key, "holder", TTL_PX_MS).await?;
    let expected = Duration::from_millis(TTL_PX_MS as u64);
    let (last_seen_ms, after_ms) = poll_until_gone(&*poller, &key, t0, expected, way).await?;
    // The SET NX poller's own key, or nothing: the key is not needed again.
    let _ = call("DEL", poller.del(&key)).await;
    Ok(Trial {
        set_rtt_ms,
        last_seen_ms,
        after_ms,
    })
}

/// [`TTL_TRIALS`] concurrent trials started [`TTL_STAGGER`] apart, polled `way`.
async fn expiry(
    setter: Arc<dyn Redis>,
    poller: Arc<dyn Redis>,
    base: &str,
    way: Poll,
) -> Result<Expiry, String> {
    let start = Instant::now();
    let tasks: Vec<_> = (0..TTL_TRIALS)
        .map(|i| {
            let key = format!("{base}/{i}");
            let (s, p) = (setter.clone(), poller.clone());
            tokio::spawn(expiry_trial(s, p, key, start, i, way))
        })
        .collect();
    let mut trials = Vec::with_capacity(tasks.len());
    for t in tasks {
        trials.push(t.await.map_err(|e| format!("trial: {e}"))??);
    }
    Ok(Expiry {
        after_reply: spread(trials.iter().map(|t| t.after_ms).collect()),
        last_seen: spread(trials.iter().filter_map(|t| t.last_seen_ms).collect()),
        set_round_trip: spread(trials.iter().map(|t| t.set_rtt_ms).collect()),
    })
}

/// TTL precision: keys `PX 2000` set by `setter`, polled by `poller` (another client of the
/// same server) with `PTTL`, then with its own `SET NX`.
pub async fn ttl_precision(
    setter: Arc<dyn Redis>,
    poller: Arc<dyn Redis>,
    prefix: &str,
) -> Result<TtlPrecision, String> {
    let gone = expiry(
        setter.clone(),
        poller.clone(),
        &format!("{prefix}/gone"),
        Poll::Pttl,
    )
    .await?;
    let second_client_wins = expiry(setter, poller, &format!("{prefix}/nx"), Poll::SetNx).await?;
    Ok(TtlPrecision {
        px_ms: TTL_PX_MS,
        trials: TTL_TRIALS,
        poll_ms: POLL.as_millis() as u64,
        gone,
        second_client_wins,
    })
}

/// A stall longer than the TTL: `a` sets a `PX 2000` key, the server is stalled [`STALL`],
/// `b` sends `SET NX` [`STALL_SEND_AFTER`] into the stall; on resume, when `b`'s reply comes,
/// who holds the key, and whether `a`'s unlock still deletes it.
pub async fn sigstop(
    a: &dyn Redis,
    b: Arc<dyn Redis>,
    stall: &dyn Stall,
    key: &str,
) -> Result<Sigstop, String> {
    timed_set(a, key, "client1", STALL_PX_MS).await?;
    let stalled = async {
        let began = Instant::now();
        let r = stall.stall(STALL).await;
        (r, began, Instant::now())
    };
    let queued = async {
        sleep(STALL_SEND_AFTER).await;
        let r = call("queued SET NX", b.set_nx_px(key, "client2", QUEUED_PX_MS)).await;
        (r, Instant::now())
    };
    let ((stalled, began, resumed), (won, replied)) = tokio::join!(stalled, queued);
    stalled?;
    let won = won?;
    // Signed: a reply before the resume would be a server that answered while stalled.
    let cont_to_reply_ms = if replied >= resumed {
        ms(replied - resumed)
    } else {
        -ms(resumed - replied)
    };
    let holder_after_resume = call("GET", a.get(key)).await?;
    let first_unlock_deleted = call("unlock", a.del_if_eq(key, "client1")).await?;
    Ok(Sigstop {
        px_ms: STALL_PX_MS,
        stall_ms: ms(resumed - began),
        queued_set_nx_won: won,
        cont_to_reply_ms,
        holder_after_resume,
        first_unlock_deleted,
    })
}
