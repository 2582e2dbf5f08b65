//! Cluster figures checked: a candidate (the model) against the reference (the real cluster),
//! and the real cluster against its own committed figures.

use super::*;

/// How far a candidate's failover range may reach past the reference's, each side.
pub const FAILOVER_RANGE_MS: u64 = 200;
/// How far the candidate's first keepalive answer through a failover client may be from the
/// reference's. Wide on purpose: the figure is the wait for the keepalive *schedule*, not for
/// etcd. Keepalives go every TTL/3 (667 ms); the first one sent after the stall's start leaves
/// anywhere from 0 to 667 ms after it, depending on where in the period the stall falls, and it
/// and the next one (sent before the first has timed out) both meet the stalled member and time
/// out after 1 s; the one after goes to the member the pin moved to. One run is one sample of
/// that phase, so two correct runs differ by up to a period, plus a period more when the pin
/// moves just after a send; ±1,500 ms covers both without accepting a client that never moves.
pub const KEEPALIVE_FAILOVER_MS: u64 = 1_500;
/// The real cluster against itself: a fresh failover median must lie in the committed
/// min..max widened by this, each side.
pub const SELF_FAILOVER_MS: u64 = 300;

pub(super) fn word(kept: bool) -> &'static str {
    if kept {
        "kept"
    } else {
        "gone"
    }
}

/// Which lease probe, read off a figure set.
type LeaseOf = fn(&ClusterFigures) -> Option<&LeaseThroughStall>;

/// The lease probes: check id, what, and where the figure is.
const LEASES: [(&str, &str, LeaseOf); 4] = [
    (
        "cluster-lease-leader-paused",
        "lease kept alive through a follower, leader stalled 5 s",
        |f| f.lease_leader_paused.as_ref(),
    ),
    (
        "cluster-lease-all-paused",
        "lease kept alive through one member, every member stalled 5 s",
        |f| f.lease_all_paused.as_ref(),
    ),
    (
        "cluster-keepalive-failover-kept",
        "lease kept alive through a failover client pinned to a follower stalled 5 s",
        |f| f.keepalive_failover.as_ref().map(|k| &k.lease),
    ),
    (
        "cluster-keepalive-failover-short-kept",
        "the same, each keepalive bounded by 500 ms",
        |f| f.keepalive_failover_short.as_ref().map(|k| &k.lease),
    ),
];

/// The probe whose outcome a few milliseconds of client timer slack decide (the 1 s bound of
/// [`keepalive_failover`]): a model is not compared on it, the real cluster with itself is.
const KNIFE_EDGE: [&str; 2] = [
    "cluster-keepalive-failover-kept",
    "cluster-keepalive-failover-ms",
];

/// One check per lease outcome: kept or gone, as the reference. The short-bound failover
/// probe is checked only when the reference has it (it came after the first figures); the
/// knife-edge one only if `knife_edge`.
fn lease_checks(
    reference: &ClusterFigures,
    candidate: &ClusterFigures,
    knife_edge: bool,
    checks: &mut Vec<Check>,
) {
    for (id, what, get) in LEASES {
        if !knife_edge && KNIFE_EDGE.contains(&id) {
            continue;
        }
        let (r, c) = (
            get(reference).map(|l| l.kept),
            get(candidate).map(|l| l.kept),
        );
        if r.is_none() && id == "cluster-keepalive-failover-short-kept" {
            continue;
        }
        let show = |v: Option<bool>| v.map_or("no figure".to_string(), |k| word(k).to_string());
        // The real cluster against itself only: a lease kept alive through a live member, read
        // gone after the resume by one of the real server's races, agrees with "kept" (the
        // model, which has neither race, is held to "kept").
        let race = (knife_edge && id == "cluster-lease-leader-paused" && r == Some(true))
            .then(|| get(candidate).and_then(LeaseThroughStall::gone_by_a_race))
            .flatten();
        checks.push(Check {
            id: id.into(),
            what: what.into(),
            reference: show(r),
            candidate: match race {
                Some(why) => format!("{}: {why}", show(c)),
                None => show(c),
            },
            ok: r.is_some() && (r == c || race.is_some()),
        });
    }
}

/// The first keepalive answered after the pinned member stalled, within
/// [`KEEPALIVE_FAILOVER_MS`] of the reference's (both with no answer also agree), for the 1 s
/// bound and, when the reference has it, the short one.
fn keepalive_failover_checks(
    reference: &ClusterFigures,
    candidate: &ClusterFigures,
    knife_edge: bool,
    checks: &mut Vec<Check>,
) {
    type FailoverOf = fn(&ClusterFigures) -> Option<&KeepaliveFailover>;
    let probes: [(&str, &str, FailoverOf); 2] = [
        (
            "cluster-keepalive-failover-ms",
            "first keepalive answered after the pinned member stalled",
            |f| f.keepalive_failover.as_ref(),
        ),
        (
            "cluster-keepalive-failover-short-ms",
            "the same, each keepalive bounded by 500 ms",
            |f| f.keepalive_failover_short.as_ref(),
        ),
    ];
    for (id, what, get) in probes {
        if !knife_edge && KNIFE_EDGE.contains(&id) {
            continue;
        }
        let (r, c) = (
            get(reference).map(|k| k.first_answer_ms),
            get(candidate).map(|k| k.first_answer_ms),
        );
        if r.is_none() && id == "cluster-keepalive-failover-short-ms" {
            continue;
        }
        let show = |v: Option<Option<u64>>| match v {
            None => "no figure".to_string(),
            Some(None) => "no keepalive answered".to_string(),
            Some(Some(ms)) => format!("{ms} ms"),
        };
        checks.push(Check {
            id: id.into(),
            what: what.into(),
            reference: match r {
                Some(Some(ms)) => format!("{ms} ms ± {KEEPALIVE_FAILOVER_MS}"),
                other => show(other),
            },
            candidate: show(c),
            ok: match (r, c) {
                (Some(Some(r)), Some(Some(c))) => c.abs_diff(r) <= KEEPALIVE_FAILOVER_MS,
                (Some(None), Some(None)) => true,
                _ => false,
            },
        });
    }
}

/// Checks a candidate cluster (the model) against the reference (the real cluster): the
/// candidate's failover min and max inside the reference's min..max widened by
/// [`FAILOVER_RANGE_MS`] each side, each lease outcome equal, and the first keepalive through
/// the failover client within [`KEEPALIVE_FAILOVER_MS`]; the 1 s keepalive bound, whose
/// outcome the client's timer slack decides, is left out (see [`keepalive_failover`]).
pub fn compare_cluster(reference: &ClusterFigures, candidate: &ClusterFigures) -> Vec<Check> {
    let mut checks = Vec::new();
    match &reference.failover {
        Some(r) => {
            let c = candidate.failover.as_ref();
            let (lo, hi) = (
                r.min_ms.saturating_sub(FAILOVER_RANGE_MS),
                r.max_ms + FAILOVER_RANGE_MS,
            );
            let range = format!("{}..{} ms widened to {lo}..{hi}", r.min_ms, r.max_ms);
            for (name, get) in [
                (
                    "min",
                    (|f: &LeaderFailover| f.min_ms) as fn(&LeaderFailover) -> u64,
                ),
                ("max", |f: &LeaderFailover| f.max_ms),
            ] {
                checks.push(Check {
                    id: format!("cluster-failover-{name}"),
                    what: format!("write through a follower after the leader stalled, {name}"),
                    reference: range.clone(),
                    candidate: c.map_or("no figure".into(), |c| format!("{} ms", get(c))),
                    ok: c.is_some_and(|c| (lo..=hi).contains(&get(c))),
                });
            }
        }
        None => checks.push(Check {
            id: "cluster-failover-min".into(),
            what: "write through a follower after the leader stalled".into(),
            reference: "no figure".into(),
            candidate: opt(&candidate.failover.as_ref().map(|f| f.median_ms)),
            ok: false,
        }),
    }
    lease_checks(reference, candidate, false, &mut checks);
    keepalive_failover_checks(reference, candidate, false, &mut checks);
    checks
}

/// Checks a fresh run of the real cluster against its committed figures: the same lease
/// outcomes, the fresh failover median inside the committed min..max widened by
/// [`SELF_FAILOVER_MS`] each side (a fresh run's extremes are new samples of the election's
/// randomized timeout; its median should not leave the committed spread), and the first
/// keepalive through the failover client within [`KEEPALIVE_FAILOVER_MS`].
pub fn agree_cluster(committed: &ClusterFigures, fresh: &ClusterFigures) -> Vec<Check> {
    let mut checks = Vec::new();
    let r = committed.failover.as_ref();
    let c = fresh.failover.as_ref();
    checks.push(Check {
        id: "cluster-failover-median".into(),
        what: "write through a follower after the leader stalled, median".into(),
        reference: r.map_or("no figure".into(), |r| {
            format!(
                "{}..{} ms widened to {}..{}",
                r.min_ms,
                r.max_ms,
                r.min_ms.saturating_sub(SELF_FAILOVER_MS),
                r.max_ms + SELF_FAILOVER_MS
            )
        }),
        candidate: c.map_or("no figure".into(), |c| format!("{} ms", c.median_ms)),
        ok: match (r, c) {
            (Some(r), Some(c)) => (r.min_ms.saturating_sub(SELF_FAILOVER_MS)
                ..=r.max_ms + SELF_FAILOVER_MS)
                .contains(&c.median_ms),
            _ => false,
        },
    });
    lease_checks(committed, fresh, true, &mut checks);
    keepalive_failover_checks(committed, fresh, true, &mut checks);
    checks
}
