//! A committed scenario file by name, and the lock grants a history records. Included with
//! `#[path]` by `sims/zk.rs`, `sims/zk_ensemble.rs` and `sims/redlock.rs`.
#![allow(dead_code)]

use fencelab::history::{EventKind, History};
use fencelab::scenario::Scenario;

/// `sims/scenarios/<name>.toml`, parsed; a bad file fails the test with its name.
pub fn load(name: &str) -> Scenario {
    let path = format!("{}/sims/scenarios/{name}.toml", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap();
    Scenario::from_toml(&text).unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// A client's grants of the lock, in order: (true µs, lease ID, token).
pub fn grants(h: &History, node: &str) -> Vec<(u64, i64, i64)> {
    h.events
        .iter()
        .filter(|e| e.node == node)
        .filter_map(|e| match e.kind {
            EventKind::Acquired { lease_id, token } => Some((e.true_us, lease_id, token)),
            _ => None,
        })
        .collect()
}
