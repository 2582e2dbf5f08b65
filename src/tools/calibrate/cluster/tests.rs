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
    let mut lost = figures(
        &[2010, 2020, 2400],
        [false, false, false, true],
        [None, Some(1100)],
    );
    // Lost during the stall: a keepalive in it answered TTL 0.
    lost.lease_leader_paused.as_mut().unwrap().keepalives = through_the_stall(Some(0));
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

/// Keepalives of a lease kept alive through a follower, the last one answered during the
/// stall answering `ttl_s` (None: failed).
fn through_the_stall(ttl_s: Option<i64>) -> Vec<KeepaliveAt> {
    let k = |sent_ms, answered_ms, ttl_s| KeepaliveAt {
        sent_ms,
        answered_ms,
        ttl_s,
    };
    vec![
        k(-335, -334, Some(2)),
        k(332, 1333, None),
        k(4336, 4337, ttl_s),
        // After the resume (5,000 ms): not read for the stall.
        k(5004, 5005, Some(2)),
    ]
}

#[test]
fn a_lease_lost_to_a_race_after_the_stall_agrees_with_kept_on_the_real_cluster_only() {
    let r = figures(&[2010, 2020, 2400], KEPT, [None, Some(1000)]);
    let mut raced = figures(
        &[2010, 2020, 2400],
        [false, false, false, true],
        [None, Some(1100)],
    );
    let leader_paused = raced.lease_leader_paused.as_mut().unwrap();
    leader_paused.keepalives = through_the_stall(Some(2));
    assert_eq!(leader_paused.alive_at_resume(), Some(true));
    assert!(leader_paused.gone_by_a_race().is_some());
    let checks = agree_cluster(&r, &raced);
    assert!(failed(&checks).is_empty(), "{checks:#?}");
    assert!(checks
        .iter()
        .any(|c| c.candidate.contains("etcd issue 12528")));
    // No keepalive answered during the stall: the read after it races the resume.
    let mut undecided = raced.clone();
    undecided.lease_leader_paused.as_mut().unwrap().keepalives = through_the_stall(None);
    assert!(failed(&agree_cluster(&r, &undecided)).is_empty());
    // Gone during the stall (the last keepalive in it answered TTL 0) is a real difference.
    let mut lost = raced.clone();
    lost.lease_leader_paused.as_mut().unwrap().keepalives = through_the_stall(Some(0));
    assert_eq!(
        failed(&agree_cluster(&r, &lost)),
        ["cluster-lease-leader-paused"]
    );
    // The model has neither race: it is held to "kept".
    assert_eq!(
        failed(&compare_cluster(&r, &raced)),
        ["cluster-lease-leader-paused"]
    );
    // The rule is for the leader-paused probe only: every member stalled has no live member.
    let mut all = figures(&[2010, 2020, 2400], [true; 4], [None, Some(1000)]);
    all.lease_all_paused.as_mut().unwrap().keepalives = through_the_stall(Some(2));
    let mut all_gone = all.clone();
    let gone = all_gone.lease_all_paused.as_mut().unwrap();
    gone.kept = false;
    assert!(gone.gone_by_a_race().is_some());
    assert_eq!(
        failed(&agree_cluster(&all, &all_gone)),
        ["cluster-lease-all-paused"]
    );
}
