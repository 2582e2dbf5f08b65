//! The `fencelab` command as a user meets it: JSON shapes, shards that merge into the whole,
//! replays that reproduce, and bad input refused with one clear line.
#![cfg(madsim)]

// mimalloc, as in every binary of the package (the library sets no allocator).
#[path = "../src/global_alloc.rs"]
mod global_alloc;

#[path = "shared/summary.rs"]
mod summary;
use summary::{figures, json_lines};

use std::process::{Command, Output};

fn fencelab(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_fencelab"))
        .args(args)
        .output()
        .expect("fencelab runs")
}

fn ok(args: &[&str]) -> String {
    let out = fencelab(args);
    assert!(
        out.status.success(),
        "fencelab {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// A file of this run's own under cargo's `target/tmp` (not the system's /tmp, which the
/// suite would litter; `cargo clean` removes it).
fn tmp(name: &str) -> std::path::PathBuf {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("fencelab-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

#[test]
fn sweep_json_has_one_object_per_policy_with_the_documented_keys() {
    let lines = json_lines(&ok(&[
        "sweep",
        "--seeds",
        "40",
        "--fencing",
        "all",
        "--json",
    ]));
    assert_eq!(lines.len(), 4);
    for (line, policy) in lines
        .iter()
        .zip(["none", "lease-id", "token-writes", "token"])
    {
        assert_eq!(line["fencing"], policy);
        for key in [
            "seeds",
            "violating_seeds",
            "rate",
            "rate_low",
            "rate_high",
            "lost_updates",
            "token_order_breaks",
            "stale_acceptances",
            "false_rejections",
            "seeds_per_sec",
        ] {
            assert!(line[key].is_number(), "{policy}: {key} missing in {line}");
        }
        assert_eq!(line["seeds"], 40);
        let (lo, r, hi) = (
            line["rate_low"].as_f64().unwrap(),
            line["rate"].as_f64().unwrap(),
            line["rate_high"].as_f64().unwrap(),
        );
        assert!(lo <= r && r <= hi, "{lo} {r} {hi}");
    }
    assert_eq!(lines[3]["violating_seeds"], 0, "token never violates");
}

#[test]
fn merged_shards_equal_the_unsharded_sweep() {
    let whole = ok(&["sweep", "--seeds", "45", "--start", "7", "--json"]);
    let mut files = vec![];
    for i in 0..3 {
        let path = tmp(&format!("shard{i}.jsonl"));
        let shard = format!("{i}/3");
        std::fs::write(
            &path,
            ok(&[
                "sweep", "--seeds", "45", "--start", "7", "--json", "--shard", &shard,
            ]),
        )
        .unwrap();
        files.push(path);
    }
    // The Kubernetes way gives the same shard.
    let via_env = Command::new(env!("CARGO_BIN_EXE_fencelab"))
        .args(["sweep", "--seeds", "45", "--start", "7", "--json"])
        .env("JOB_COMPLETION_INDEX", "1")
        .env("JOB_COMPLETION_COUNT", "3")
        .output()
        .unwrap();
    let env_lines = json_lines(&String::from_utf8(via_env.stdout).unwrap());
    let flag_lines = json_lines(&std::fs::read_to_string(&files[1]).unwrap());
    for (a, b) in env_lines.iter().zip(&flag_lines) {
        assert_eq!(figures(a), figures(b));
    }
    let mut args = vec!["merge", "--json"];
    let names: Vec<String> = files.iter().map(|p| p.display().to_string()).collect();
    args.extend(names.iter().map(String::as_str));
    let merged = json_lines(&ok(&args));
    let whole = json_lines(&whole);
    assert_eq!(merged.len(), 4);
    for (m, w) in merged.iter().zip(&whole) {
        assert_eq!(m["fencing"], w["fencing"]);
        assert_eq!(figures(m), figures(w), "merged {m}\nwhole {w}");
    }
}

#[test]
fn a_saved_run_replays_to_the_same_history() {
    let path = tmp("run.json");
    let first = ok(&[
        "run",
        "--seed",
        "3",
        "--fencing",
        "none",
        "--save",
        path.to_str().unwrap(),
    ]);
    let again = ok(&["replay", path.to_str().unwrap()]);
    let hash = |s: &str| {
        s.lines()
            .find_map(|l| l.split("history=").nth(1).map(str::to_string))
            .expect("history hash printed")
    };
    assert_eq!(hash(&first), hash(&again));
}

#[test]
fn explore_json_has_the_documented_shape() {
    let lines = json_lines(&ok(&[
        "explore",
        "--fencing",
        "none",
        "--json",
        "--cases",
        "64",
    ]));
    assert_eq!(lines.len(), 1);
    let v = &lines[0];
    for key in [
        "fencing",
        "found",
        "cases",
        "faults_before",
        "faults_after",
        "plan",
        "runs",
        "original",
        "share",
        "need",
        "evidence",
    ] {
        assert!(v.get(key).is_some(), "{key} missing in {v}");
    }
    assert_eq!(v["found"], true);
    assert!(
        v["plan"]["faults"].as_array().unwrap().len() as u64 == v["faults_after"].as_u64().unwrap()
    );
}

#[test]
fn explore_saves_its_evidence_and_replay_measures_it_again() {
    let saved = tmp("explore-evidence.json");
    let said = ok(&[
        "explore",
        "--fencing",
        "none",
        "--cases",
        "64",
        "--noise-seeds",
        "10",
        "--save",
        saved.to_str().unwrap(),
    ]);
    for line in [
        "robustness: violates in ",
        "without it: ",
        "story of noise seed ",
        "=> ",
    ] {
        assert!(said.contains(line), "{line:?} missing in {said}");
    }
    let exp: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&saved).unwrap()).unwrap();
    let evidence = &exp["explanation"]["evidence"];
    assert_eq!(evidence["robustness"]["noise"]["count"], 10, "{exp}");
    assert_eq!(exp["seed"], evidence["typical_seed"], "{exp}");
    // Replay runs the typical seed and measures the same noise seeds again: the same figure.
    let again = ok(&["replay", saved.to_str().unwrap()]);
    let violating = evidence["robustness"]["violating"].as_u64().unwrap();
    let figure = format!("robustness: violates in {violating} of 10 noise seeds");
    assert!(again.contains(&figure), "{figure:?} missing in {again}");
    assert!(again.contains("saved by explore: violates in "), "{again}");
}

#[test]
fn run_noise_seeds_reports_the_plans_robustness() {
    let said = ok(&[
        "run",
        "--seed",
        "3",
        "--fencing",
        "none",
        "--noise-seeds",
        "4",
    ]);
    assert!(
        said.contains("noise seeds 3..6 (the plan fixed):"),
        "{said}"
    );
    assert!(said.contains(" of 4 noise seeds ("), "{said}");
    let json = ok(&[
        "run",
        "--seed",
        "3",
        "--fencing",
        "none",
        "--noise-seeds",
        "4",
        "--json",
    ]);
    let lines = json_lines(&json);
    assert_eq!(lines.len(), 2, "{json}");
    assert_eq!(lines[1]["robustness"]["robustness"]["noise"]["count"], 4);
}

#[test]
fn explore_keeps_the_knobs_a_flag_pins() {
    let saved = tmp("explore-pinned.json");
    ok(&[
        "explore",
        "--fencing",
        "none",
        "--cases",
        "64",
        "--ttl-s",
        "10",
        "--clients",
        "3",
        "--critical-ms",
        "0..0",
        "--latency-ms",
        "2..3",
        "--save",
        saved.to_str().unwrap(),
    ]);
    let exp: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&saved).unwrap()).unwrap();
    let s = &exp["scenario"];
    assert_eq!(s["ttl_s"], 10, "{s}");
    assert_eq!(s["clients"], 3, "{s}");
    assert_eq!(
        s["critical_ms"],
        serde_json::json!({"min": 0, "max": 0}),
        "{s}"
    );
    assert_eq!(
        s["latency_ms"],
        serde_json::json!({"min": 2, "max": 3}),
        "{s}"
    );
}

#[test]
fn bad_input_gets_one_clear_line_and_a_nonzero_exit() {
    let bad_toml = tmp("bad.toml");
    std::fs::write(&bad_toml, "clients = 3\nttl_seconds = 2\n").unwrap();
    let range_toml = tmp("range.toml");
    std::fs::write(&range_toml, "ttl_s = 1\n").unwrap();
    let bad_plan = tmp("plan.json");
    std::fs::write(
        &bad_plan,
        r#"{"faults":[{"fault":"crash","node":"ghost","at_ms":1,"restart_after_ms":1}]}"#,
    )
    .unwrap();
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec!["sweep", "--fencing", "tokens"],
            "unknown fencing policy",
        ),
        (vec!["sweep", "--seeds", "0"], "--seeds"),
        (
            vec!["run", "--seed", "1", "--noise-seeds", "0"],
            "--noise-seeds",
        ),
        (
            vec![
                "run",
                "--seed",
                "18446744073709551615",
                "--noise-seeds",
                "2",
            ],
            "--noise-seeds",
        ),
        (vec!["explore", "--noise-seeds", "0"], "--noise-seeds"),
        (vec!["explore", "--robust-share", "1.5"], "--robust-share"),
        (vec!["explore", "--robust-share=-0.1"], "--robust-share"),
        (vec!["sweep", "--shard", "3/3"], "shard"),
        (vec!["sweep", "--critical-ms", "9..x"], "critical-ms"),
        (vec!["sweep", "--restart-ms", "9..x"], "restart-ms"),
        (
            vec!["sweep", "--network-latency-ms", "0..5"],
            "network_latency_ms",
        ),
        (
            vec!["run", "--seed", "1", "--scenario", "/nonexistent.toml"],
            "cannot read",
        ),
        (
            vec![
                "run",
                "--seed",
                "1",
                "--scenario",
                bad_toml.to_str().unwrap(),
            ],
            "ttl_seconds",
        ),
        (
            vec![
                "run",
                "--seed",
                "1",
                "--scenario",
                range_toml.to_str().unwrap(),
            ],
            "ttl_s",
        ),
        (
            vec!["run", "--seed", "1", "--plan", bad_plan.to_str().unwrap()],
            "unknown node",
        ),
        // SimServer's election stops at 3 clients; the model's does not.
        (
            vec!["run", "--seed", "1", "--clients", "9", "--etcd", "madsim"],
            "kv-mutex",
        ),
        (
            vec!["run", "--seed", "1", "--etcd", "etcd3"],
            "unknown etcd",
        ),
        (
            vec!["run", "--seed", "1", "--etcd-version", "3.6"],
            "unknown etcd version",
        ),
        (
            vec![
                "run",
                "--seed",
                "1",
                "--etcd",
                "madsim",
                "--lock-method",
                "lock-api",
            ],
            "Lock API",
        ),
        (vec!["merge", "/nonexistent.jsonl"], "cannot read"),
    ];
    for (args, needle) in cases {
        let out = fencelab(&args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} should fail");
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(
            err.contains(needle),
            "{args:?}: '{err}' should mention {needle}"
        );
        assert_eq!(
            err.trim().lines().count(),
            1,
            "{args:?}: one line, got '{err}'"
        );
        assert!(!err.contains("panicked"), "{args:?}: {err}");
    }
    // clap's own errors (unknown flag, missing or bad value): one line too, exit 2.
    for (args, needle) in [
        (vec!["sweep", "--frobnicate"], "--frobnicate"),
        (vec!["sweep", "--seeds"], "--seeds"),
        (vec!["sweep", "--seeds", "many"], "many"),
        (vec!["sweep", "--nemesis", "maybe"], "maybe"),
        (vec!["frobnicate"], "frobnicate"),
        (vec!["run"], "--seed"),
    ] {
        let out = fencelab(&args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert_eq!(
            err.trim().lines().count(),
            1,
            "{args:?}: one line, got '{err}'"
        );
        assert!(
            err.starts_with("error: ") && err.contains(needle),
            "{args:?}: {err}"
        );
        assert!(!err.contains("panicked"), "{args:?}: {err}");
    }
}

/// Every flag that bounds how many faults the random nemesis draws, at 0.
const NO_FAULT_KINDS: [&str; 28] = [
    "--etcd-skew-permille",
    "0",
    "--etcd-ambiguous-permille",
    "0",
    "--etcd-ambiguous-rate-permille",
    "0",
    "--pauses-max",
    "0",
    "--aimed-pauses-max",
    "0",
    "--skew-permille",
    "0",
    "--partitions-max",
    "0",
    "--etcd-partitions-max",
    "0",
    "--holds-max",
    "0",
    "--crashes-max",
    "0",
    "--etcd-stalls-max",
    "0",
    "--etcd-timeouts-permille",
    "0",
    "--network-faults-max",
    "0",
    "--etcd-timeout-rate-permille",
    "0",
];

/// [`NO_FAULT_KINDS`] but for the flags `flags` sets (clap refuses a flag given twice).
fn no_faults_but(flags: &[&str]) -> Vec<&'static str> {
    NO_FAULT_KINDS
        .chunks(2)
        .filter(|f| !flags.contains(&f[0]))
        .flatten()
        .copied()
        .collect()
}

/// The fault plan `run --json` ran for `args`.
fn plan_of(args: &[&str]) -> Vec<serde_json::Value> {
    let lines = json_lines(&ok(&[&["run", "--json"], args].concat()));
    assert_eq!(lines.len(), 1);
    let run = &lines[0];
    let plan = run["experiment"]["plan"]["faults"].as_array().unwrap();
    // The run's labelled faults are the plan's, one for one.
    assert_eq!(
        run["run"]["faults"].as_array().unwrap().len(),
        plan.len(),
        "{args:?}"
    );
    plan.clone()
}

#[test]
fn nemesis_off_draws_no_fault_and_keeps_scripted_ones() {
    let with_faults = |extra: &[&str]| {
        let line = json_lines(&ok(&[
            &["sweep", "--seeds", "50", "--fencing", "token", "--json"],
            extra,
        ]
        .concat()))
        .remove(0);
        assert_eq!(line["seeds"], 50, "{line}");
        (
            line["seeds_with_faults"].as_u64().unwrap(),
            line["faults"].as_u64().unwrap(),
        )
    };
    // Every policy, no fault in any of 50 plans.
    let lines = json_lines(&ok(&[
        "sweep",
        "--nemesis",
        "off",
        "--seeds",
        "50",
        "--json",
    ]));
    assert_eq!(lines.len(), 4);
    for line in &lines {
        assert_eq!(line["seeds"], 50, "{line}");
        assert_eq!(line["seeds_with_faults"], 0, "{line}");
        assert_eq!(line["faults"], 0, "{line}");
    }
    // Negative space: the standard nemesis strikes in most seeds...
    assert!(with_faults(&[]).0 > 40);
    // ...and the old `*-max` flags alone left client-etcd partitions and etcd timeouts on.
    let old_flags = no_faults_but(&[
        "--etcd-partitions-max",
        "--etcd-timeouts-permille",
        "--etcd-timeout-rate-permille",
    ]);
    assert!(with_faults(&old_flags).0 > 10);
    // Every kind at 0, with the nemesis on, draws nothing either.
    assert_eq!(with_faults(&NO_FAULT_KINDS), (0, 0));

    // One run: an empty plan, no fault in the history.
    for seed in ["1", "2", "3"] {
        let run = json_lines(&ok(&["run", "--seed", seed, "--nemesis", "off", "--json"])).remove(0);
        assert_eq!(run["experiment"]["plan"]["faults"], serde_json::json!([]));
        assert_eq!(run["run"]["faults"], serde_json::json!([]));
        assert_eq!(run["experiment"]["scenario"]["nemesis"]["enabled"], false);
        let events = run["run"]["history"]["events"].as_array().unwrap();
        assert!(!events.is_empty());
        assert!(events.iter().all(|e| e["kind"] != "fault"), "seed {seed}");
        assert!(
            !plan_of(&["--seed", seed]).is_empty(),
            "seed {seed} draws faults"
        );
    }

    // Scripted faults stay: the GC-pause story keeps its one pause with the nemesis off, and
    // `--nemesis on` draws more after it.
    let story = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/sims/scenarios/kleppmann-gc-pause.toml"
    );
    let scripted = plan_of(&["--seed", "1", "--scenario", story, "--nemesis", "off"]);
    assert_eq!(scripted.len(), 1, "{scripted:?}");
    assert_eq!(scripted[0]["fault"], "pause");
    assert_eq!(scripted[0]["duration_ms"], 5000);
    let drawn = plan_of(&["--seed", "1", "--scenario", story, "--nemesis", "on"]);
    assert!(drawn.len() > 1, "{drawn:?}");
    assert_eq!(drawn[0], scripted[0]);
}

#[test]
fn each_nemesis_flag_shapes_the_plan() {
    use serde_json::Value;
    type Check = fn(&Value) -> bool;
    let cases: [(&[&str], Check); 9] = [
        (
            &["--etcd-partitions-max", "3", "--partition-ms", "1234..1234"],
            |f| f["fault"] == "partition" && f["b"] == "etcd" && f["duration_ms"] == 1234,
        ),
        (&["--partitions-max", "3", "--partition-ms", "1500"], |f| {
            f["fault"] == "partition" && f["duration_ms"] == 1500
        }),
        (&["--crashes-max", "3", "--restart-ms", "555..555"], |f| {
            f["fault"] == "crash" && f["restart_after_ms"] == 555
        }),
        (
            &["--etcd-stalls-max", "3", "--etcd-stall-ms", "999..999"],
            // Three members: the leader alone or every member, as Jepsen's nemesis chose.
            |f| {
                f["fault"] == "pause"
                    && (f["node"] == "etcd" || f["node"] == "etcd:leader")
                    && f["duration_ms"] == 999
            },
        ),
        (
            &[
                "--etcd-timeouts-permille",
                "1000",
                "--etcd-timeout-rate-permille",
                "7",
            ],
            |f| {
                f["fault"] == "etcd-timeouts"
                    && (1..=7).contains(&f["rate_permille"].as_u64().unwrap())
            },
        ),
        (&["--aimed-pauses-max", "3", "--aim-nth-max", "1"], |f| {
            f["fault"] == "pause" && f["at"]["point"]["nth"] == 1
        }),
        (&["--skew-permille", "1000", "--offset-ms-max", "0"], |f| {
            f["fault"] == "skew" && f["skew"]["offset_ms"] == 0
        }),
        (
            &[
                "--network-faults-max",
                "2",
                "--network-ms",
                "800..800",
                "--network-latency-ms",
                "40..40",
            ],
            |f| {
                f["fault"] == "network"
                    && f["duration_ms"] == 800
                    && f["latency_ms"] == serde_json::json!({"min": 10, "max": 40})
            },
        ),
        (&["--holds-max", "3", "--hold-ms", "321..321"], |f| {
            f["fault"] == "hold-request" && f["duration_ms"] == 321
        }),
    ];
    for (flags, check) in cases {
        let mut drawn = 0;
        for seed in ["1", "2", "3", "4", "5", "6"] {
            let args = [&["--seed", seed], &no_faults_but(flags)[..], flags].concat();
            let plan = plan_of(&args);
            assert!(plan.iter().all(check), "{flags:?} seed {seed}: {plan:?}");
            drawn += plan.len();
            // `--nemesis off` wins over every range.
            let off = plan_of(&[&args[..], &["--nemesis", "off"]].concat());
            assert!(off.is_empty(), "{flags:?} seed {seed}: {off:?}");
        }
        assert!(drawn > 0, "{flags:?} drew no fault in 6 seeds");
    }
    // Without the new flags those sizes are drawn from the standard ranges: not all equal.
    let standard: Vec<Value> = ["1", "2", "3", "4", "5", "6"]
        .iter()
        .flat_map(|seed| plan_of(&["--seed", seed, "--etcd-partitions-max", "3"]))
        .filter(|f| f["fault"] == "partition")
        .collect();
    assert!(
        standard.iter().any(|f| f["duration_ms"] != 1234),
        "{standard:?}"
    );
}

#[test]
fn every_nemesis_key_has_a_flag() {
    let help = ok(&["run", "--help"]);
    let config = serde_json::to_value(fencelab::nemesis::NemesisConfig::standard()).unwrap();
    let keys = config.as_object().unwrap().keys();
    assert!(keys.len() > 20);
    for key in keys {
        let flag = match key.as_str() {
            "enabled" => "--nemesis <off|on>".to_string(),
            k => format!("--{} ", k.replace('_', "-")),
        };
        assert!(help.contains(&flag), "no {flag} for nemesis.{key}");
    }
}

#[test]
fn an_atlas_varies_two_parameters_and_draws_one_map_per_policy() {
    let plot = tmp("atlas.svg");
    let csv = ok(&[
        "sweep",
        "--vary",
        "pause-ms",
        "--vary",
        "ttl-s",
        "--steps",
        "2",
        "--seeds",
        "6",
        "--fencing",
        "none,token",
        "--plot",
        plot.to_str().unwrap(),
    ]);
    let lines: Vec<&str> = csv.lines().collect();
    assert!(
        lines[0].starts_with("pause-ms,ttl-s,fencing,seeds,"),
        "{csv}"
    );
    // 2 x 2 cells for each of 2 policies.
    assert_eq!(lines.len(), 1 + 8, "{csv}");
    assert!(
        lines.iter().any(|l| l.starts_with("6000,10,token,6,0,")),
        "{csv}"
    );
    for policy in ["none", "token"] {
        let svg = std::fs::read_to_string(tmp(&format!("atlas-{policy}.svg"))).unwrap();
        roxmltree::Document::parse(&svg).expect("well-formed SVG");
        assert!(
            svg.contains("renewal slack"),
            "the pause x TTL map draws the slack"
        );
    }
    let out = fencelab(&["sweep", "--vary", "pause-ms", "--vary", "stall-ms"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("one fault"));
}

/// The help names every value the parsers take, because it is built from their tables
/// (`WorkloadKind::NAMED`, `compare::families()`): the help said "single or counter" and left
/// out leader-failover while both were typed by hand.
#[test]
fn the_help_lists_every_workload_and_family() {
    let run_help = ok(&["run", "--help"]);
    for (name, _) in fencelab::scenario::WorkloadKind::NAMED {
        assert!(
            run_help.contains(name),
            "run --help leaves out workload {name}"
        );
    }
    let compare_help = ok(&["compare", "--help"]);
    for family in fencelab::compare::families() {
        assert!(
            compare_help.contains(family.name),
            "compare --help leaves out family {}",
            family.name
        );
    }
    assert!(compare_help.contains("leader-failover"));
}

/// The help lists every value of each enum's list, because clap takes them from the enum
/// (`clap::ValueEnum`, its names held equal to `ALL`'s by a unit test) or from the table
/// (`schemes::catalogue()`), never from a hand-typed string.
#[test]
fn the_help_lists_every_value_of_each_list() {
    use fencelab::{etcd, lock, redis, schemes, storage};
    // A `ValueEnum` flag's long help lists its values one a line: "- name: what it does".
    let listed = |help: &str, what: &str, name: &str| {
        assert!(
            help.contains(&format!("- {name}:")),
            "{what} does not list {name}"
        );
    };
    let run_help = ok(&["run", "--help"]);
    let explore_help = ok(&["explore", "--help"]);
    for f in storage::Fencing::ALL {
        listed(&run_help, "run --help's --fencing", f.as_str());
        listed(&explore_help, "explore --help's --fencing", f.as_str());
    }
    for m in lock::LockMethod::ALL {
        listed(&run_help, "run --help's --lock-method", m.as_str());
    }
    for b in etcd::Backend::ALL {
        listed(&run_help, "run --help's --etcd", b.as_str());
    }
    for v in etcd::Version::ALL {
        listed(&run_help, "run --help's --etcd-version", v.as_str());
    }
    for s in lock::ServiceKind::ALL {
        listed(&run_help, "run --help's --service", s.as_str());
    }
    for p in redis::Persistence::ALL {
        listed(&run_help, "run --help's --redis-persistence", p.as_str());
    }
    for c in lock::ClientClock::ALL {
        listed(&run_help, "run --help's --redlock-clock", c.as_str());
    }
    for t in lock::RedlockToken::ALL {
        listed(&run_help, "run --help's --redlock-token", t.as_str());
    }
    // The short help says the same in one line.
    let short = ok(&["run", "-h"]);
    let methods: Vec<&str> = lock::LockMethod::ALL.iter().map(|m| m.as_str()).collect();
    let methods = format!("[possible values: {}]", methods.join(", "));
    assert!(short.contains(&methods), "{methods}");
    assert!(short.contains("[possible values: model, madsim]"));
    assert!(short.contains("[possible values: 3.4, 3.5]"));
    // Lists that take several values name them from the table.
    assert!(ok(&["sweep", "--help"]).contains(&storage::Fencing::names()));
    let names: Vec<&str> = schemes::catalogue().iter().map(|s| s.name).collect();
    let names = names.join(", ");
    assert!(run_help.contains(&names), "run --help's --scheme");
    assert!(
        ok(&["compare", "--help"]).contains(&names),
        "compare --help's --scheme"
    );
}

/// `demo --service redlock` tells Kleppmann's three Redlock stories (their details are
/// asserted in `sims/story.rs`); `demo` alone stays etcd's.
#[test]
fn demo_tells_the_three_redlock_stories_and_etcds_demo_is_unchanged() {
    let text = ok(&["demo", "--service", "redlock"]);
    for name in ["clock-jump", "restart", "gc-pause"] {
        assert!(
            text.contains(&format!(
                "(sims/scenarios/kleppmann-redlock-{name}.toml): fencing=none seed=1"
            )),
            "{name}"
        );
    }
    assert_eq!(text.matches("DOUBLE GRANT on redis3").count(), 3, "{text}");
    assert!(text.contains("redis3   ** wall clock stepped +2500 ms at 0.300 s"));
    assert!(text.contains("LOST fencelab:lock of client1"));
    assert!(text.contains(
        "  none               VIOLATED client2's write accepted, client1's write accepted"
    ));
    // etcd's demo tells no Redis word.
    let etcd = ok(&["demo"]);
    assert!(etcd.starts_with("== etcd's example: fencing=none seed=1"));
    assert!(!etcd.contains("redis") && !etcd.contains("DOUBLE GRANT"));
}

/// The docs' `[redis]` table lists every value of its three lists: a value added to an enum's
/// table and left out of the docs fails here.
#[test]
fn the_docs_redis_table_lists_every_value() {
    use fencelab::{lock, redis};
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/scenarios-and-faults.md");
    let doc = std::fs::read_to_string(path).unwrap();
    let lists: [(&str, Vec<&str>); 3] = [
        (
            "persistence",
            redis::Persistence::ALL.iter().map(|p| p.as_str()).collect(),
        ),
        (
            "clock",
            lock::ClientClock::ALL.iter().map(|c| c.as_str()).collect(),
        ),
        (
            "token",
            lock::RedlockToken::ALL.iter().map(|t| t.as_str()).collect(),
        ),
    ];
    for (key, names) in lists {
        let head = format!("| `{key}` |");
        let row = doc.lines().find(|l| l.starts_with(&head));
        let row = row.unwrap_or_else(|| panic!("the docs have no row for {key}"));
        for name in names {
            assert!(
                row.contains(&format!("`{name}`")),
                "the docs' {key} row leaves out {name}"
            );
        }
    }
}
