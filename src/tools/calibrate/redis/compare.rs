//! The tolerances, and the comparison of the model's figures with the real server's.

use super::super::Check;
use super::*;

/// How far the model's figures may be from a real Redis's, each with why.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RedisTolerances {
    /// TTL precision: the model's median (when a key expired after its `SET` ran, estimated
    /// from the polls around it: [`expiry_after_set`]) within this of the real median.
    pub expiry_median_ms: f64,
    /// TTL precision: the model's min and max within the real [min, max] widened by this.
    pub expiry_range_ms: f64,
    /// A single expiry (the backward step's) within this of the real one.
    pub expiry_single_ms: f64,
    /// The model's `SET` round trip (median) within the real one's times or divided by this.
    pub round_trip_ratio: f64,
    /// A wall step's effect on `PTTL` (drop, rise) within this of the real one.
    pub step_ms: f64,
    /// A `PTTL` read after a clock step or a restart within this of the real one.
    pub pttl_ms: i64,
    /// The queued `SET NX`'s reply after a resume within this of the real one.
    pub resume_ms: f64,
}

/// The calibration's tolerances.
pub const REDIS_TOLERANCES: RedisTolerances = RedisTolerances {
    // Redis's expiry resolution: a key goes at the first ms past its deadline (`now > when`,
    // `mstime()` in whole ms), so where in its ms a `SET` lands moves its expiry by up to 1 ms;
    // 20 trials spread over those phases give medians that agree within one ms.
    expiry_median_ms: 1.0,
    // An estimate lies within half its bracket of the expiry: half a poll period, which is a
    // round trip plus a 1 ms sleep (real: ~0.3 ms plus tokio's rounding of the sleep up to its
    // next ms tick, up to ~2.3 ms; model: madsim's 2 ms round trip plus 1 ms, 3 ms): 1.5 ms.
    expiry_range_ms: 1.5,
    // One sample: its phase in Redis's ms (0..1 ms) and its poll's phase (0..1 poll period)
    // may each fall at either end in two runs.
    expiry_single_ms: 2.0,
    // The model's latency is set (madsim's send latency), not measured: a factor of two
    // catches a latency set for another network (a LAN's is 4 to 10 times loopback's).
    round_trip_ratio: 2.0,
    // Each PTTL is in whole ms (±1 each); the client time subtracted is taken around answers.
    step_ms: 2.0,
    // The real offset file is verified by polling the server's TIME (ms), a real restart
    // takes ~12 ms to exec and load, a real reconnect a round trip or two; the model steps and
    // restarts at once. Far below what a wrong rule moves (a step: 5000; a reset expiry: PX).
    pttl_ms: 50,
    // A resumed process runs when the scheduler next gives it a CPU (the real reply came a few
    // ms after `kill -CONT` returned); the model's node runs at once. The claim is "at once",
    // against the 1000 ms the key outlived its TTL during the stall.
    resume_ms: 10.0,
};

/// The id of the `SET` round-trip check, which the calibration reports without asserting:
/// madsim delivers no message sooner than 1 ms after it was sent (its `sleep_until` has a floor
/// of 1 ms, and a connection's messages go through it), so the simulated round trip is 2 ms
/// whatever latency is configured, against loopback's ~0.3 ms. The figures measured from a
/// reply at the client are compared minus each side's own round trip (see [`redis_compare`]).
pub const SET_ROUND_TRIP: &str = "set-round-trip-median";

/// The start of the ids of the restart checks the calibration reports without asserting: the
/// model's crash is a machine's (the unsynced second of `aof-everysec` is lost, see
/// `model/persist.rs`), while a `SIGKILL` of a real process loses nothing the kernel already
/// has; the probe cannot cut a real machine's power.
pub const RESTART_EVERYSEC: &str = "restart-aof-everysec-";

/// Collects checks.
struct Checks(Vec<Check>);

impl Checks {
    fn add(&mut self, id: String, what: String, reference: String, candidate: String, ok: bool) {
        self.0.push(Check {
            id,
            what,
            reference,
            candidate,
            ok,
        });
    }

    /// `c` equals `r`.
    fn same<T: PartialEq + std::fmt::Debug>(&mut self, id: &str, what: &str, r: &T, c: Option<&T>) {
        let shown = c.map_or("no figure".into(), |c| format!("{c:?}"));
        self.add(
            id.into(),
            what.into(),
            format!("{r:?}"),
            shown,
            c == Some(r),
        );
    }

    /// `c` within `tol` of `r`.
    fn near(&mut self, id: &str, what: &str, r: f64, c: Option<f64>, tol: f64) {
        let shown = c.map_or("no figure".into(), |c| format!("{c:.3} ms"));
        let ok = c.is_some_and(|c| (c - r).abs() <= tol);
        self.add(
            id.into(),
            what.into(),
            format!("{r:.3} ms ± {tol}"),
            shown,
            ok,
        );
    }
}

/// A side's median `SET` round trip, ms (0 without a TTL figure, whose checks then fail).
fn round_trip_ms(f: &RedisFigures) -> f64 {
    f.ttl_precision
        .as_ref()
        .map_or(0.0, |t| t.gone.set_round_trip.median_ms)
}

/// Checks the model's figures against the real server's within `tol`: every figure the
/// reference has, the candidate must have. Those of [`SET_ROUND_TRIP`] and
/// [`RESTART_EVERYSEC`] are among them.
///
/// A time measured at the client from one reply to another (a `PTTL` drop across a step, whose
/// two readings are a round trip apart at the server; the backward-stepped key found gone after
/// its `SET`'s reply) holds one round trip of the network besides what Redis did; each side's
/// is taken off with its own median `SET` round trip. The TTL trials are compared by
/// [`expiry_after_set`], which needs no such correction. So the checks compare Redis's rules,
/// and the network is compared by [`SET_ROUND_TRIP`] alone.
pub fn redis_compare(
    reference: &RedisFigures,
    candidate: &RedisFigures,
    tol: RedisTolerances,
) -> Vec<Check> {
    let mut checks = Checks(Vec::new());
    let rtt = (round_trip_ms(reference), round_trip_ms(candidate));
    if let Some(r) = &reference.ttl_precision {
        ttl_checks(&mut checks, r, candidate.ttl_precision.as_ref(), tol);
    }
    if let Some(r) = &reference.sigstop {
        sigstop_checks(&mut checks, r, candidate.sigstop.as_ref(), tol);
    }
    if let Some(r) = &reference.wall_steps {
        step_checks(&mut checks, r, candidate.wall_steps.as_ref(), tol, rtt);
    }
    if let Some(r) = &reference.restarts {
        restart_checks(&mut checks, r, candidate.restarts.as_deref(), tol);
    }
    checks.0
}

/// When each trial's key expired after its `SET` ran, ms: the midpoint between the send of
/// the last poll that found the key and the reply of the first that did not (the expiry lies
/// between them, give or take half a round trip at each end), plus half the `SET`'s round
/// trip (it ran about then before its reply). Redis's rule gives PX plus 0 to 1 ms. Unlike the
/// time after the reply, it depends neither on the network's latency nor on how the polls
/// fall against the expiry (on madsim's 1 ms grid they fall at one phase only). `None`
/// unless every trial has both polls.
pub fn expiry_after_set(e: &Expiry) -> Option<Spread> {
    let (gone, seen, rtt) = (
        &e.after_reply.samples_ms,
        &e.last_seen.samples_ms,
        &e.set_round_trip.samples_ms,
    );
    if gone.is_empty() || seen.len() != gone.len() || rtt.len() != gone.len() {
        return None;
    }
    let estimates = (0..gone.len())
        .map(|i| round3((seen[i] + gone[i]) / 2.0 + rtt[i] / 2.0))
        .collect();
    Some(super::spread(estimates))
}

fn ttl_checks(
    checks: &mut Checks,
    r: &TtlPrecision,
    c: Option<&TtlPrecision>,
    tol: RedisTolerances,
) {
    type Way = fn(&TtlPrecision) -> &Expiry;
    for (name, way) in [
        ("gone", (|t| &t.gone) as Way),
        ("second-client-wins", |t| &t.second_client_wins),
    ] {
        let what = format!("PX 2000, {name}: the key's expiry after its SET ran (estimated)");
        let Some(r) = expiry_after_set(way(r)) else {
            checks.add(
                format!("ttl-{name}"),
                what,
                "no estimate".into(),
                "—".into(),
                false,
            );
            continue;
        };
        let c = c.and_then(|c| expiry_after_set(way(c)));
        let (lo, hi) = (
            r.min_ms - tol.expiry_range_ms,
            r.max_ms + tol.expiry_range_ms,
        );
        for (end, get) in [
            ("min", (|s| s.min_ms) as fn(&Spread) -> f64),
            ("max", |s| s.max_ms),
        ] {
            let v = c.as_ref().map(get);
            checks.add(
                format!("ttl-{name}-{end}"),
                format!("{what}, {end}"),
                format!(
                    "{:.3}..{:.3} ms widened to {lo:.3}..{hi:.3}",
                    r.min_ms, r.max_ms
                ),
                v.map_or("no figure".into(), |v| format!("{v:.3} ms")),
                v.is_some_and(|v| (lo..=hi).contains(&v)),
            );
        }
        checks.near(
            &format!("ttl-{name}-median"),
            &format!("{what}, median"),
            r.median_ms,
            c.map(|c| c.median_ms),
            tol.expiry_median_ms,
        );
    }
    let (r, c) = (
        r.gone.set_round_trip.median_ms,
        c.map(|c| c.gone.set_round_trip.median_ms),
    );
    let (lo, hi) = (r / tol.round_trip_ratio, r * tol.round_trip_ratio);
    checks.add(
        SET_ROUND_TRIP.into(),
        "SET NX PX round trip, median (the model's latency)".into(),
        format!("{r:.3} ms, ×/÷ {}", tol.round_trip_ratio),
        c.map_or("no figure".into(), |c| format!("{c:.3} ms")),
        c.is_some_and(|c| (lo..=hi).contains(&c)),
    );
}

fn sigstop_checks(checks: &mut Checks, r: &Sigstop, c: Option<&Sigstop>, tol: RedisTolerances) {
    let what = "stalled 3 s with a PX 2000 key";
    checks.same(
        "sigstop-queued-set-nx-won",
        &format!("{what}: the SET NX queued during the stall wins"),
        &r.queued_set_nx_won,
        c.map(|c| &c.queued_set_nx_won),
    );
    checks.near(
        "sigstop-cont-to-reply",
        &format!("{what}: its reply after the resume"),
        r.cont_to_reply_ms,
        c.map(|c| c.cont_to_reply_ms),
        tol.resume_ms,
    );
    checks.same(
        "sigstop-holder",
        &format!("{what}: GET after the resume"),
        &r.holder_after_resume,
        c.map(|c| &c.holder_after_resume),
    );
    checks.same(
        "sigstop-first-unlock",
        &format!("{what}: the first holder's unlock deletes"),
        &r.first_unlock_deleted,
        c.map(|c| &c.first_unlock_deleted),
    );
}

fn step_checks(
    checks: &mut Checks,
    r: &WallSteps,
    c: Option<&WallSteps>,
    tol: RedisTolerances,
    (r_rtt, c_rtt): (f64, f64),
) {
    let (rf, cf) = (&r.forward, c.map(|c| &c.forward));
    // The second PTTL reads the server's clock a round trip after the first's reply: the drop
    // holds one round trip more, the rise one less.
    checks.near(
        "step-forward-pttl-drop",
        "+5000: PTTL drop, minus a round trip",
        rf.pttl_drop_ms - r_rtt,
        cf.map(|c| c.pttl_drop_ms - c_rtt),
        tol.step_ms,
    );
    checks.near(
        "step-back-pttl-rise",
        "back to 0: PTTL rise, plus a round trip",
        rf.pttl_rise_back_ms + r_rtt,
        cf.map(|c| c.pttl_rise_back_ms + c_rtt),
        tol.step_ms,
    );
    checks.same(
        "step-jump-pttl",
        "+11000 on a PX 10000 key: PTTL",
        &rf.pttl_after_jump,
        cf.map(|c| &c.pttl_after_jump),
    );
    checks.same(
        "step-jump-second-client-won",
        "+11000: a second client's SET NX wins",
        &rf.second_client_won,
        cf.map(|c| &c.second_client_won),
    );
    checks.same(
        "step-jump-holder",
        "+11000: GET",
        &rf.holder_after_jump,
        cf.map(|c| &c.holder_after_jump),
    );
    checks.same(
        "step-jump-first-unlock",
        "+11000: the first holder's unlock deletes",
        &rf.first_unlock_deleted,
        cf.map(|c| &c.first_unlock_deleted),
    );
    let pttl = |v: i64| v as f64;
    checks.near(
        "step-jump-second-key-pttl",
        "back to 0 after +11000: the second client's PX 10000 key's PTTL",
        pttl(rf.second_key_pttl_after_back_ms),
        cf.map(|c| pttl(c.second_key_pttl_after_back_ms)),
        tol.pttl_ms as f64,
    );
    let (rb, cb) = (&r.backward, c.map(|c| &c.backward));
    checks.near(
        "step-backward-pttl",
        "-5000 after a PX 1000 SET: PTTL 1100 ms after",
        pttl(rb.pttl_past_deadline_ms),
        cb.map(|c| pttl(c.pttl_past_deadline_ms)),
        tol.pttl_ms as f64,
    );
    checks.same(
        "step-backward-second-client-refused",
        "-5000: a second client's SET NX then loses",
        &rb.second_client_refused,
        cb.map(|c| &c.second_client_refused),
    );
    checks.near(
        "step-backward-gone",
        "-5000: the key gone after the SET's reply, minus a round trip",
        rb.gone_after_reply_ms - r_rtt,
        cb.map(|c| c.gone_after_reply_ms - c_rtt),
        tol.expiry_single_ms,
    );
}

fn restart_checks(
    checks: &mut Checks,
    r: &[RestartTrial],
    c: Option<&[RestartTrial]>,
    tol: RedisTolerances,
) {
    for rt in r {
        let id = format!(
            "restart-{}-{}ms-down-{}ms",
            rt.mode.as_str(),
            rt.px_ms,
            rt.down_planned_ms
        );
        let what = format!(
            "{}: PX {} key, killed, down {} ms, restarted",
            rt.mode.as_str(),
            rt.px_ms,
            rt.down_planned_ms
        );
        let ct = c.and_then(|c| {
            c.iter().find(|t| {
                (t.mode, t.px_ms, t.down_planned_ms) == (rt.mode, rt.px_ms, rt.down_planned_ms)
            })
        });
        checks.same(
            &format!("{id}-kept"),
            &format!("{what}: key kept"),
            &rt.kept,
            ct.map(|t| &t.kept),
        );
        if rt.kept {
            checks.near(
                &format!("{id}-pttl"),
                &format!("{what}: PTTL after"),
                rt.pttl_after_restart_ms as f64,
                ct.map(|t| t.pttl_after_restart_ms as f64),
                tol.pttl_ms as f64,
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// TTL figures of three trials: the last poll that found the key, the first that did not,
    /// and the SET's round trip, ms.
    fn ttl(seen_ms: [f64; 3], gone_ms: [f64; 3], rtt_ms: f64) -> RedisFigures {
        let e = Expiry {
            after_reply: super::super::spread(gone_ms.to_vec()),
            last_seen: super::super::spread(seen_ms.to_vec()),
            set_round_trip: super::super::spread(vec![rtt_ms; 3]),
        };
        RedisFigures {
            ttl_precision: Some(TtlPrecision {
                gone: e.clone(),
                second_client_wins: e,
                ..TtlPrecision::default()
            }),
            ..RedisFigures::default()
        }
    }

    fn failed(r: &RedisFigures, c: &RedisFigures) -> Vec<String> {
        redis_compare(r, c, REDIS_TOLERANCES)
            .into_iter()
            .filter(|c| !c.ok)
            .map(|c| c.id)
            .collect()
    }

    #[test]
    fn the_expiry_is_estimated_without_the_network() {
        let real = ttl([1999.0, 1999.4, 1999.8], [2001.0, 2001.4, 2001.8], 0.3);
        let e = expiry_after_set(&real.ttl_precision.as_ref().unwrap().gone).unwrap();
        assert_eq!(e.samples_ms, [2000.15, 2000.55, 2000.95]);
        // A slower network and coarser polls around the same expiry: only the round trip differs.
        let slow = ttl([1997.5, 1997.5, 1997.5], [2002.0, 2002.0, 2002.0], 2.0);
        assert_eq!(failed(&real, &slow), [SET_ROUND_TRIP]);
        // The same network, a key that goes 2 ms late: the medians and the max disagree.
        let late = ttl([2001.0, 2001.4, 2001.8], [2003.0, 2003.4, 2003.8], 0.3);
        let f = failed(&real, &late);
        assert!(f.iter().any(|id| id == "ttl-gone-median"), "{f:?}");
        assert!(f.iter().any(|id| id == "ttl-gone-max"), "{f:?}");
        assert!(!f.iter().any(|id| id == SET_ROUND_TRIP), "{f:?}");
        // A missing figure fails every check of it.
        let f = failed(&real, &RedisFigures::default());
        assert!(f.iter().any(|id| id == "ttl-gone-median"), "{f:?}");
    }
}
