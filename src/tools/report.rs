//! Words for people: the story of a run and the checker's verdict.

use crate::checker::Verdict;
use crate::history::{EventKind, History, OpResult};
use crate::world::Run;
use std::fmt::Write;

/// A version as people know it: lease IDs (huge, random) in hex as etcd prints them, fencing
/// tokens (revisions, small) in decimal.
fn shown(v: i64) -> String {
    if v > u32::MAX as i64 {
        format!("{v:x}")
    } else {
        v.to_string()
    }
}

fn secs(us: u64) -> String {
    format!("{:>8.3} s", us as f64 / 1e6)
}

/// One line per event, in true time.
pub fn story(history: &History) -> String {
    let mut out = String::new();
    for e in &history.events {
        let what = event_words(&e.kind);
        let _ = writeln!(out, "{}  {:<8} {}", secs(e.true_us), e.node, what);
    }
    out
}

/// What one event says in the story, after its time and node.
fn event_words(kind: &EventKind) -> String {
    match kind {
        EventKind::NodeStarted { incarnation: 0 } => "starts".to_string(),
        EventKind::NodeStarted { incarnation } => {
            format!("starts again (incarnation {incarnation}), with no session")
        }
        EventKind::LeaseGranted { lease_id, ttl_s } => {
            format!("gets lease {lease_id:x} (TTL {ttl_s} s)")
        }
        EventKind::LeaseLost { lease_id, why } => format!("loses lease {lease_id:x}: {why}"),
        EventKind::Acquired { lease_id, token } => {
            format!("acquires the lock: lease {lease_id:x}, token {token}")
        }
        EventKind::CampaignTimedOut { lease_id } => {
            format!("gives up waiting for the lock, revokes lease {lease_id:x}")
        }
        EventKind::EtcdIndeterminate { what } => {
            format!("etcd {what}: no answer, it may or may not have taken effect")
        }
        EventKind::Released { token, .. } => format!("releases the lock (token {token})"),
        EventKind::LocalCheckRefused { token, deadline_us } => format!(
            "local lease check: deadline {:.3} s has passed, does not write (token {token})",
            *deadline_us as f64 / 1e6
        ),
        EventKind::Invoke {
            op,
            key,
            val,
            version,
            token,
            ..
        } => match op {
            crate::protocol::Op::Read => {
                format!(
                    "sends read {key} (version {}, token {token})",
                    shown(*version)
                )
            }
            crate::protocol::Op::Write => {
                format!(
                    "sends write {key}={val:?} (version {}, token {token})",
                    shown(*version)
                )
            }
        },
        EventKind::Complete { outcome, .. } => match outcome {
            OpResult::Ok { val, version: v } => {
                format!("gets ok: val {val:?}, version {}", shown(*v))
            }
            OpResult::Rejected { err } => format!("is refused: {err}"),
            OpResult::Failed { err } => format!("fails: {err}"),
            OpResult::Unknown { err } => format!("gets no answer: {err}"),
        },
        EventKind::StorageApplied {
            op,
            key,
            val,
            version,
            accepted,
            err,
            ..
        } => {
            let what = match op {
                crate::protocol::Op::Read => format!("read {key}"),
                crate::protocol::Op::Write => format!("write {key}={val:?}"),
            };
            if *accepted {
                format!("ACCEPTS {what} with version {}", shown(*version))
            } else {
                format!("REJECTS {what} with version {}: {err}", shown(*version))
            }
        }
        EventKind::Fault { what } => format!("** {what}"),
        EventKind::Leadership { what, .. } => format!("== {what}"),
        kind => crate::redlock_story::redis_words(kind).unwrap_or_default(),
    }
}

/// The verdict in words.
pub fn verdict(v: &Verdict) -> String {
    let mut out = String::new();
    // Invariant breaks only when a workload has broken one: the built-ins' lines stay as
    // they were.
    let mut invariants = match v.invariant_breaks {
        0 => String::new(),
        n => format!(", invariant breaks {n}"),
    };
    for (name, n) in &v.tallies {
        invariants.push_str(&format!(", {name} {n}"));
    }
    let _ = writeln!(
        out,
        "verdict: {} (lost updates {}, token-order breaks {}, stale acceptances {}, false rejections {}{invariants})",
        if v.violates() { "VIOLATED" } else { "safe" },
        v.lost_updates,
        v.token_order_breaks,
        v.stale_acceptances,
        v.false_rejections
    );
    for f in &v.findings {
        let _ = writeln!(
            out,
            "  {}  {:<8} {}: {}",
            secs(f.true_us),
            f.node,
            f.kind.as_str(),
            f.detail
        );
    }
    for a in &v.anomalies {
        let _ = writeln!(out, "  anomaly: {a}");
    }
    out
}

/// Story and verdict of a run, with its identity.
pub fn run_report(title: &str, run: &Run) -> String {
    format!(
        "== {title}: fencing={} seed={} history={:016x}\n{}{}",
        run.fencing,
        run.seed,
        run.history_hash(),
        story(&run.history),
        verdict(&run.verdict)
    )
}

/// A Redlock story: the run under its fence in the history's words (the Redis nodes' grants,
/// refusals, expiries, clock steps and restarts among the clients' events), the verdict, and
/// what Redlock did in a few lines (each holder's granting nodes, each double grant).
pub fn redlock_report(title: &str, run: &Run) -> String {
    format!(
        "{}what Redlock did:\n{}",
        run_report(title, run),
        crate::redlock_story::summary(&run.history)
    )
}

/// One line of what a fence did on a run: its name, the verdict, the storage's answers.
pub fn fence_line(name: &str, run: &Run) -> String {
    format!(
        "  {name:<18} {:<8} {}\n",
        if run.verdict.violates() {
            "VIOLATED"
        } else {
            "safe"
        },
        crate::redlock_story::writes_in_words(&run.history)
    )
}
