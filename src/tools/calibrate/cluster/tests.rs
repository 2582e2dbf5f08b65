use super::*;

fn lease(kept: bool) -> LeaseThroughStall {
    LeaseThroughStall {
        stalled: vec![0],
        through: Some(1),
        stall_ms: 5000,
        ttl_s: 2,
        keepalive_every_ms: 666,
        keepalive_timeout_ms: 1000,
        kept,
        failed: 2,
        first_failure: None,
        answers_after_resume: vec![2],
        keepalives: vec![],
    }
}

/// Figures with the failover samples, the lease outcomes (leader paused, all paused,
/// failover 1 s, failover 500 ms) and the first keepalive answers (1 s, 500 ms).
fn figures(
    samples_ms: &[u64],
    kept: [bool; 4],
    first_answer_ms: [Option<u64>; 2],
) -> ClusterFigures {
    let (min_ms, median_ms, max_ms) = spread(samples_ms);
    ClusterFigures {
        members: 3,
        failover: Some(LeaderFailover {
            stall_ms: 5000,
            write_timeout_ms: 2000,
            trials: samples_ms.len(),
            min_ms,
            median_ms,
            max_ms,
            samples_ms: samples_ms.to_vec(),
            attempts: vec![2; samples_ms.len()],
            timed_out: vec![1; samples_ms.len()],
            first_failure: vec![None; samples_ms.len()],
            leaders: vec![(0, 1); samples_ms.len()],
        }),
        lease_leader_paused: Some(lease(kept[0])),
        lease_all_paused: Some(lease(kept[1])),
        keepalive_failover: Some(KeepaliveFailover {
            lease: lease(kept[2]),
            first_answer_ms: first_answer_ms[0],
        }),
        keepalive_failover_short: Some(KeepaliveFailover {
            lease: lease(kept[3]),
            first_answer_ms: first_answer_ms[1],
        }),
        errors: BTreeMap::new(),
    }
}

fn failed(checks: &[Check]) -> Vec<String> {
    checks
        .iter()
        .filter(|c| !c.ok)
        .map(|c| c.id.clone())
        .collect()
}

const KEPT: [bool; 4] = [true, false, false, true];

#[test]
fn compare_cluster_accepts_a_candidate_within_tolerance() {
    let r = figures(&[2010, 2020, 2400], KEPT, [None, Some(1000)]);
    // 200 ms past each end, and 1,500 ms off the keepalive figure: still in.
    let c = figures(&[1810, 2000, 2600], KEPT, [None, Some(2500)]);
    let checks = compare_cluster(&r, &c);
    assert!(failed(&checks).is_empty(), "{checks:#?}");
    // The 1 s keepalive bound's two checks are left out (a knife edge): 6 of 8.
    assert_eq!(checks.len(), 6, "{checks:#?}");
    assert_eq!(agree_cluster(&r, &r).len(), 7);
    assert!(failed(&compare_cluster(&r, &r)).is_empty());
    // Figures from before the short-bound probe: its checks are left out.
    let old = ClusterFigures {
        keepalive_failover_short: None,
        ..r.clone()
    };
    assert_eq!(compare_cluster(&old, &c).len(), 4);
    assert!(failed(&compare_cluster(&old, &c)).is_empty());
}

#[test]
fn compare_cluster_refuses_a_candidate_outside_it() {
    let r = figures(&[2010, 2020, 2400], KEPT, [Some(1700), Some(1000)]);
    let c = figures(
        &[1809, 2000, 2601],
        [false, true, true, false],
        [Some(3201), None],
    );
    let f = failed(&compare_cluster(&r, &c));
    assert_eq!(
        f,
        [
            "cluster-failover-min",
            "cluster-failover-max",
            "cluster-lease-leader-paused",
            "cluster-lease-all-paused",
            "cluster-keepalive-failover-short-kept",
            "cluster-keepalive-failover-short-ms",
        ]
    );
    // No figure at all is a failure too, and an unanswered keepalive is not a number:
    // the real cluster against itself sees it.
    let empty = ClusterFigures::default();
    assert_eq!(failed(&compare_cluster(&r, &empty)).len(), 6);
    let none = figures(&[2010, 2020, 2400], KEPT, [None, Some(1000)]);
    assert_eq!(
        failed(&agree_cluster(&r, &none)),
        ["cluster-keepalive-failover-ms"]
    );
    assert!(failed(&compare_cluster(&r, &none)).is_empty());
}

#[test]
fn agree_cluster_bounds_the_median_by_the_committed_spread() {
    let r = figures(&[2010, 2020, 2400], KEPT, [None, Some(1000)]);
    let ok = figures(&[1000, 1710, 5000], KEPT, [None, Some(1100)]);
    assert!(failed(&agree_cluster(&r, &ok)).is_empty());
    let slow = figures(&[2701, 2701, 2701], KEPT, [None, Some(1100)]);
    assert_eq!(
        failed(&agree_cluster(&r, &slow)),
        ["cluster-failover-median"]
    );
    let lost = figures(
        &[2010, 2020, 2400],
        [false, false, false, true],
        [None, Some(1100)],
    );
    assert_eq!(
        failed(&agree_cluster(&r, &lost)),
        ["cluster-lease-leader-paused"]
    );
}

#[test]
fn cluster_table_has_a_column_per_cluster() {
    let r = figures(&[2010, 2020, 2400], KEPT, [None, Some(1000)]);
    let t = cluster_table(&[("real", &r), ("model", &ClusterFigures::default())]);
    assert!(
        t.starts_with("| probe | real | model |\n|---|---|---|\n"),
        "{t}"
    );
    assert!(t.contains("| 2010 / 2020 / 2400 | — |"), "{t}");
    assert!(t.contains("kept (answers after resume 2; 2 failed)"), "{t}");
    assert!(
        t.contains("gone (answers after resume 2; 2 failed); first keepalive answered after the stall's start: none | — |"),
        "{t}"
    );
}
