//! Tolerances, and the comparison of a candidate's figures with the reference's.

use super::*;

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

/// The checks that do not hold, each in words.
pub fn failures(checks: &[Check]) -> Vec<String> {
    checks
        .iter()
        .filter(|c| !c.ok)
        .map(|c| c.to_string())
        .collect()
}

pub(super) fn opt<T: std::fmt::Debug>(v: &Option<T>) -> String {
    v.as_ref()
        .map_or_else(|| "no figure".into(), |v| format!("{v:?}"))
}

/// Checks `candidate` against `reference` within `tol`: the lease-gone spreads per TTL, the
/// stalls' outcomes, keepalive answers of 0, the past-deadline keepalive's latency spread (same
/// tolerances as lease gone), the minimum TTL, tokens rising, and the Lock API's answer after
/// an expired wait (id [`LOCK_AFTER_EXPIRED_WAIT`]).
pub fn compare(reference: &Figures, candidate: &Figures, tol: Tolerances) -> Vec<Check> {
    let mut checks = Vec::new();
    lease_gone_checks(&mut checks, reference, candidate, tol);
    stall_and_keepalive_checks(&mut checks, reference, candidate);
    past_deadline_checks(&mut checks, reference, candidate, tol);
    ttl_token_and_lock_checks(&mut checks, reference, candidate);
    checks
}

/// Adds one check to `checks`: the closure every check function starts with.
fn adder(checks: &mut Vec<Check>) -> impl FnMut(String, String, String, String, bool) + '_ {
    |id, what, reference, candidate, ok| {
        checks.push(Check {
            id,
            what,
            reference,
            candidate,
            ok,
        })
    }
}

/// The lease-gone spreads per TTL: min and max within the widened range, the median within its tolerance.
fn lease_gone_checks(
    checks: &mut Vec<Check>,
    reference: &Figures,
    candidate: &Figures,
    tol: Tolerances,
) {
    let mut check = adder(checks);
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
}

/// The stalls' outcomes and the keepalives that must answer 0.
fn stall_and_keepalive_checks(checks: &mut Vec<Check>, reference: &Figures, candidate: &Figures) {
    let mut check = adder(checks);
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
}

/// The keepalive 20 ms past the deadline: its answers, and its latency spread with the lease-gone tolerances.
fn past_deadline_checks(
    checks: &mut Vec<Check>,
    reference: &Figures,
    candidate: &Figures,
    tol: Tolerances,
) {
    let mut check = adder(checks);
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
}

/// The minimum TTL, tokens rising, and the Lock API's answer after an expired wait.
fn ttl_token_and_lock_checks(checks: &mut Vec<Check>, reference: &Figures, candidate: &Figures) {
    let mut check = adder(checks);
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
}

// ---------------------------------------------------------------------------------------
// the table
