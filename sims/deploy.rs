//! The Kubernetes Indexed Job in `deploy/`: its own command, run here for every index of a
//! small job, merges into exactly what one unsharded sweep prints.
#![cfg(madsim)]

// mimalloc, as in every binary of the package (the library sets no allocator).
#[path = "../src/global_alloc.rs"]
mod global_alloc;

#[path = "shared/summary.rs"]
mod summary;
use summary::{figures, json_lines};

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_fencelab");

fn manifest() -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/sweep-job.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).expect("the manifest is JSON")
}

#[test]
fn the_indexed_job_merges_into_the_unsharded_sweep() {
    let job = manifest();
    assert_eq!(job["kind"], "Job");
    let spec = &job["spec"];
    assert_eq!(spec["completionMode"], "Indexed");
    let completions = spec["completions"].as_u64().unwrap();
    let container = &spec["template"]["spec"]["containers"][0];
    let env: Vec<(String, String)> = container["env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            let (k, v) = (e["name"].as_str().unwrap(), e["value"].as_str().unwrap());
            (k.to_string(), v.to_string())
        })
        .collect();
    let var = |name: &str| env.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
    // Kubernetes sets JOB_COMPLETION_INDEX, not the count: the manifest must, and agree.
    assert_eq!(var("JOB_COMPLETION_COUNT"), Some(completions.to_string()));
    assert_eq!(spec["parallelism"].as_u64(), Some(completions));
    let mount = container["volumeMounts"][0]["mountPath"].as_str().unwrap();
    assert_eq!(var("RESULTS_DIR").as_deref(), Some(mount));
    let argv: Vec<String> = container["command"]
        .as_array()
        .unwrap()
        .iter()
        .chain(container["args"].as_array().unwrap())
        .map(|a| a.as_str().unwrap().to_string())
        .collect();

    // A small job: 4 indexes, 120 seeds, the results volume a temporary directory, the
    // image's `fencelab` this build's.
    const INDEXES: u64 = 4;
    const SEEDS: u64 = 120;
    let results: PathBuf =
        std::env::temp_dir().join(format!("fencelab-job-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&results);
    std::fs::create_dir_all(&results).unwrap();
    let bin_dir = Path::new(BIN).parent().unwrap();
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    for index in 0..INDEXES {
        let out = Command::new(&argv[0])
            .args(&argv[1..])
            .envs(env.iter().cloned())
            .env("SEEDS", SEEDS.to_string())
            .env("JOB_COMPLETION_COUNT", INDEXES.to_string())
            .env("JOB_COMPLETION_INDEX", index.to_string())
            .env("RESULTS_DIR", &results)
            .env("PATH", &path)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "index {index}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let shards: Vec<_> = std::fs::read_dir(&results)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(shards.len() as u64, INDEXES, "{shards:?}");
    assert!(shards.iter().all(|s| s.ends_with(".jsonl")), "{shards:?}");

    let merged = Command::new(BIN)
        .args(["merge", "--json"])
        .arg(&results)
        .output()
        .unwrap();
    assert!(
        merged.status.success(),
        "{}",
        String::from_utf8_lossy(&merged.stderr)
    );
    let whole = Command::new(BIN)
        .args(["sweep", "--seeds", &SEEDS.to_string(), "--json"])
        .env_remove("JOB_COMPLETION_INDEX")
        .env_remove("JOB_COMPLETION_COUNT")
        .output()
        .unwrap();
    assert!(whole.status.success());
    let merged = json_lines(&String::from_utf8(merged.stdout).unwrap());
    let whole = json_lines(&String::from_utf8(whole.stdout).unwrap());
    assert_eq!(merged.len(), 4, "one line per policy");
    assert_eq!(merged.len(), whole.len());
    for (m, w) in merged.iter().zip(&whole) {
        assert_eq!(figures(m), figures(w), "merged {m}\nwhole {w}");
    }
    // Each shard ran its own part: the seeds add up, none counted twice.
    assert_eq!(merged[0]["seeds"], SEEDS);
    std::fs::remove_dir_all(&results).unwrap();
}

#[test]
fn merge_refuses_a_directory_without_shards() {
    let empty = std::env::temp_dir().join(format!("fencelab-empty-{}", std::process::id()));
    std::fs::create_dir_all(&empty).unwrap();
    let out = Command::new(BIN).arg("merge").arg(&empty).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no *.jsonl file"), "{err}");
    std::fs::remove_dir_all(&empty).unwrap();
}
