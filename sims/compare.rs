//! `compare`: every scheme against every fault family on the same plans. Token fencing holds
//! in every column and no fence breaks where it must; every row runs the same plans, and the
//! `all` column is the sweep of the standard scenario; the JSON and the grid have their
//! documented shape; a shrunk seed replays; bad flags get one line.

#![cfg(madsim)]

#[path = "../src/global_alloc.rs"]
mod global_alloc;

use fencelab::compare::{self, Comparison};
use fencelab::scenario::Scenario;
use fencelab::schemes;
use fencelab::storage::Fencing;
use fencelab::sweep;
use fencelab::world::Builder;
use std::process::{Command, Output};

fn fencelab(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_fencelab"))
        .args(args)
        .output()
        .expect("fencelab runs")
}

/// A file of this run's own under cargo's `target/tmp` (not the system's /tmp, which the
/// suite would litter; `cargo clean` removes it).
fn tmp(name: &str) -> std::path::PathBuf {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("fencelab-compare-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

fn cell<'a>(cmp: &'a Comparison, scheme: &str, family: &str) -> &'a compare::Cell {
    cmp.cell(scheme, family)
        .unwrap_or_else(|| panic!("no cell {scheme} x {family}"))
}

#[test]
fn token_never_violates_and_no_fence_breaks_under_pauses_and_all() {
    let picked = ["none", "token"].map(|n| schemes::by_name(n).unwrap());
    let families = compare::families();
    let cmp =
        compare::compare(&Scenario::standard(), &picked, &families, 0..40, 2, &|| {}).unwrap();
    assert_eq!(cmp.cells.len(), 2 * families.len());
    for f in &families {
        let c = cell(&cmp, "token", f.name);
        assert_eq!(c.k, 0, "token violates under {}: {c:?}", f.name);
        assert_eq!(c.n, 40);
        assert_eq!(c.first_violating_seed, None);
    }
    for family in ["client-pause", "all"] {
        let c = cell(&cmp, "none", family);
        assert!(c.k > 0, "no fence holds under {family}: {c:?}");
        let first = c.first_violating_seed.expect("a first violating seed");
        assert!(first < 40);
    }
    assert_eq!(cmp.to_shrink("none").map(|(f, _)| f), Some("all"));
    assert_eq!(cmp.to_shrink("token"), None);
}

#[test]
fn every_row_runs_the_same_plans() {
    let base = Scenario::standard();
    let catalogue = schemes::catalogue();
    for (i, family) in compare::families().iter().enumerate() {
        let seed = 5 + i as u64;
        let scenario = family.scenario(&base);
        let faults: Vec<_> = catalogue
            .iter()
            .map(|s| {
                Builder::new(scenario.clone())
                    .scheme(s)
                    .run_seed(seed)
                    .faults
            })
            .collect();
        for (s, f) in catalogue.iter().zip(&faults) {
            assert_eq!(
                f, &faults[0],
                "{} under {} ran another plan",
                s.name, family.name
            );
        }
    }
}

#[test]
fn the_all_column_is_the_sweep_of_the_standard_scenario() {
    let picked = ["none", "token-writes"].map(|n| schemes::by_name(n).unwrap());
    let all = compare::families_named("all").unwrap();
    let base = Scenario::standard();
    let cmp = compare::compare(&base, &picked, &all, 0..12, 2, &|| {}).unwrap();
    for policy in [Fencing::None, Fencing::TokenWrites] {
        let results = sweep::sweep(&base, policy, 0..12, 2, &|_| {});
        let violating: Vec<u64> = results
            .iter()
            .filter(|r| r.violates)
            .map(|r| r.seed)
            .collect();
        let c = cell(&cmp, policy.as_str(), "all");
        assert_eq!(c.k, violating.len() as u64, "{policy}");
        assert_eq!(
            c.first_violating_seed,
            violating.first().copied(),
            "{policy}"
        );
    }
}

#[test]
fn a_comparison_does_not_depend_on_the_threads() {
    let picked = [schemes::by_name("none").unwrap()];
    let families = compare::families_named("delayed-packet,etcd-stall").unwrap();
    let run = |jobs| {
        compare::compare(
            &Scenario::standard(),
            &picked,
            &families,
            3..11,
            jobs,
            &|| {},
        )
        .unwrap()
    };
    assert_eq!(run(1), run(2));
}

/// K for the shrinking tests: small, to keep the suite quick; the command's default is 20.
const TEST_NOISE_SEEDS: u64 = 8;

#[test]
fn a_shrunk_seed_stays_robust_with_its_kind_and_each_fault_is_needed() {
    let base = Scenario::standard();
    let none = schemes::by_name("none").unwrap();
    let families = compare::families_named("client-pause").unwrap();
    let family = &families[0];
    let picked = std::slice::from_ref(&none);
    let cmp = compare::compare(&base, picked, &families, 0..8, 2, &|| {}).unwrap();
    let (_, seed) = cmp.to_shrink("none").expect("no fence breaks under pauses");
    let shrunk =
        compare::shrink(&base, &none, family, seed, TEST_NOISE_SEEDS).expect("the seed violates");
    assert!(shrunk.plan.len() <= shrunk.faults_before);
    let builder = Builder::new(family.scenario(&base)).scheme(&none);
    // Toward the kind the seed showed first.
    let drawn = fencelab::nemesis::draw(&family.scenario(&base), seed);
    let first = builder.clone().plan(drawn).run_seed(seed);
    let first = first
        .verdict
        .findings
        .iter()
        .find(|f| f.kind.is_violation());
    let kind = first.expect("the seed violates").kind;
    assert_eq!(shrunk.kind, kind.as_str());
    // Robust: the shrunk plan violates with that kind in at least half as many noise seeds
    // as the drawn plan, and without any one of its faults in fewer.
    let e = shrunk.explanation.as_ref().expect("measured");
    assert_eq!(e.original.noise.first, seed);
    assert_eq!(e.original.noise.count, TEST_NOISE_SEEDS);
    assert_eq!(e.evidence.plan, shrunk.plan);
    assert!(e.evidence.robustness.violating >= e.need && e.need >= 1);
    assert_eq!(e.need, e.original.violating.div_ceil(2).max(1));
    assert_eq!(e.evidence.without.len(), shrunk.plan.len());
    for (i, r) in e.evidence.without.iter().enumerate() {
        assert!(
            r.violating < e.need,
            "fault {i} of {:?} could go",
            shrunk.plan
        );
    }
    // The seed it tells of violates with that kind under the shrunk plan.
    let run = builder
        .plan(shrunk.plan.clone())
        .run_seed(shrunk.story_seed);
    assert!(fencelab::robust::Hit::of_run(&run, Some(kind)).is_some());
    assert!(e.original.noise.seeds().contains(&shrunk.story_seed));
}

/// One run of the command for the JSON, the grid and the replay file of a shrunk seed.
#[test]
fn the_json_and_the_grid_have_their_shape_and_a_shrunk_seed_replays() {
    let (svg, dir) = (tmp("grid.svg"), tmp("shrunk"));
    let out = fencelab(&[
        "compare",
        "--seeds",
        "4",
        "--json",
        "--shrink",
        "--noise-seeds",
        "4",
        "--svg",
        svg.to_str().unwrap(),
        "--shrink-dir",
        dir.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON document");
    let schemes = doc["schemes"].as_array().unwrap();
    let families = doc["families"].as_array().unwrap();
    // By default, what runs on the standard scenario's service (etcd).
    let base = Scenario::standard();
    assert_eq!(schemes.len(), schemes::fitting(&base).len());
    assert_eq!(
        families.len(),
        compare::families_for(fencelab::lock::ServiceKind::Etcd).len()
    );
    assert!(schemes
        .iter()
        .all(|s| s["about"].as_str().is_some_and(|a| !a.is_empty())));
    let cells = doc["cells"].as_array().unwrap();
    assert_eq!(cells.len(), schemes.len() * families.len());
    for c in cells {
        let (k, n) = (c["k"].as_u64().unwrap(), c["n"].as_u64().unwrap());
        let f = |key: &str| c[key].as_f64().unwrap();
        assert!(k <= n && n == 4, "{c}");
        assert!(f("low") <= f("rate") && f("rate") <= f("high"), "{c}");
        for key in ["false_rejections", "stale_acceptances"] {
            assert!(c[key].is_u64(), "{key} in {c}");
        }
        assert!(c["first_violating_seed"].is_null() || c["first_violating_seed"].is_u64());
    }
    let text = std::fs::read_to_string(&svg).unwrap();
    let grid = roxmltree::Document::parse(&text).expect("well-formed SVG");
    let labels: Vec<&str> = grid
        .descendants()
        .filter(|n| n.attribute("class") == Some("row-label"))
        .filter_map(|n| n.last_child().and_then(|t| t.text()))
        .collect();
    let names: Vec<&str> = schemes
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(labels, names);
    replay_the_shrunk_seed_of_none(&doc);
}

fn replay_the_shrunk_seed_of_none(doc: &serde_json::Value) {
    let shrunk = doc["shrunk"].as_array().expect("shrunk seeds");
    let none = shrunk
        .iter()
        .find(|s| s["scheme"] == "none")
        .expect("no fence violates in 4 seeds of all");
    let replay = none["replay"].as_str().unwrap();
    let file = replay
        .strip_prefix("cargo run --release -- replay ")
        .expect("a replay command");
    let out = fencelab(&["replay", file, "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let run: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(run["experiment"]["plan"], none["plan"]);
    let v = &run["run"]["verdict"];
    assert!(
        v["lost_updates"].as_u64().unwrap() + v["token_order_breaks"].as_u64().unwrap() > 0,
        "the replay violates: {v}"
    );
}

#[test]
fn bad_flags_get_one_line() {
    for (args, needle) in [
        (
            vec!["compare", "--family", "meteor"],
            "unknown family 'meteor'",
        ),
        (vec!["compare", "--family", "all,all"], "named twice"),
        (vec!["compare", "--scheme", "hope"], "unknown scheme 'hope'"),
        (vec!["compare", "--seeds", "0"], "--seeds 0"),
        (vec!["compare", "--workload", "juggle"], "unknown workload"),
        (vec!["compare", "--frobnicate"], "--frobnicate"),
    ] {
        let out = fencelab(&args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(
            err.contains(needle),
            "{args:?}: '{err}' should say {needle}"
        );
        assert_eq!(err.trim().lines().count(), 1, "{args:?}: '{err}'");
    }
}
