//! The `fencelab` command as a user meets it: JSON shapes, shards that merge into the whole,
//! replays that reproduce, and bad input refused with one clear line.
#![cfg(madsim)]

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

fn json_lines(text: &str) -> Vec<serde_json::Value> {
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

fn tmp(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("fencelab-cli-{}", std::process::id()));
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
    let strip = |v: &serde_json::Value| {
        let keys = [
            "seeds",
            "violating_seeds",
            "lost_updates",
            "token_order_breaks",
            "stale_acceptances",
            "false_rejections",
            "rate",
            "rate_low",
            "rate_high",
            "violating_examples",
            "messages",
        ];
        keys.map(|k| v[k].clone())
    };
    let env_lines = json_lines(&String::from_utf8(via_env.stdout).unwrap());
    let flag_lines = json_lines(&std::fs::read_to_string(&files[1]).unwrap());
    for (a, b) in env_lines.iter().zip(&flag_lines) {
        assert_eq!(strip(a), strip(b));
    }
    let mut args = vec!["merge", "--json"];
    let names: Vec<String> = files.iter().map(|p| p.display().to_string()).collect();
    args.extend(names.iter().map(String::as_str));
    let merged = json_lines(&ok(&args));
    let whole = json_lines(&whole);
    assert_eq!(merged.len(), 4);
    for (m, w) in merged.iter().zip(&whole) {
        assert_eq!(m["fencing"], w["fencing"]);
        assert_eq!(strip(m), strip(w), "merged {m}\nwhole {w}");
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
    ] {
        assert!(v.get(key).is_some(), "{key} missing in {v}");
    }
    assert_eq!(v["found"], true);
    assert!(
        v["plan"]["faults"].as_array().unwrap().len() as u64 == v["faults_after"].as_u64().unwrap()
    );
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
        (vec!["sweep", "--shard", "3/3"], "shard"),
        (vec!["sweep", "--critical-ms", "9..x"], "critical-ms"),
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
