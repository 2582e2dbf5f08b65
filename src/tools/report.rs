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
            // Redis's and ZooKeeper's requests name their service; etcd's name only the call.
            let service = match what.starts_with("redis") || what.starts_with("zookeeper") {
                true => "",
                false => "etcd ",
            };
            format!("{service}{what}: no answer, it may or may not have taken effect")
        }
        EventKind::Released { token, .. } => format!("releases the lock (token {token})"),
        EventKind::LocalCheckRefused { token, deadline_us } => format!(
            "local lease check: deadline {:.3} s has passed, does not write (token {token})",
            *deadline_us as f64 / 1e6
        ),
        EventKind::LockExtended { token, until_us } => extension_words(*token, *until_us),
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
        EventKind::Complete { outcome, .. } => outcome_words(outcome),
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

/// A holder's extension of its lock, in the story.
fn extension_words(token: i64, until_us: Option<i64>) -> String {
    match until_us {
        Some(until_us) => format!(
            "extends the lock: valid until {:.3} s by its clock (token {token})",
            until_us as f64 / 1e6
        ),
        None => format!("fails to extend the lock, stops (token {token})"),
    }
}

/// What a client's operation came to, in the story.
fn outcome_words(outcome: &OpResult) -> String {
    match outcome {
        OpResult::Ok { val, version: v } => {
            format!("gets ok: val {val:?}, version {}", shown(*v))
        }
        OpResult::Rejected { err } => format!("is refused: {err}"),
        OpResult::Failed { err } => format!("fails: {err}"),
        OpResult::Unknown { err } => format!("gets no answer: {err}"),
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

/// Most lines of a story excerpt: enough for the faults, the stale client's cycle, the lock
/// passing on, and the finding.
pub const EXCERPT_LINES_MAX: usize = 24;
/// Lines of the others' lock and storage events just before the finding.
const CONTEXT_LINES: usize = 6;

/// The events the excerpt tells, in order: every fault; the finding's node from its last
/// acquisition before the first fault (or before the finding, with no fault) on; and just
/// before the finding, the other clients' acquisitions and the storage's work. At most
/// [`EXCERPT_LINES_MAX`]: the finding node's middle lines go first.
fn excerpt_events(run: &Run, finding: &crate::checker::Finding) -> Vec<usize> {
    let events = &run.history.events;
    let end = (finding.event + 1).min(events.len());
    let is_fault = |i: usize| matches!(events[i].kind, EventKind::Fault { .. });
    let first_fault = (0..end)
        .find(|&i| is_fault(i))
        .unwrap_or(end.saturating_sub(1));
    let acquired = |i: usize| {
        events[i].node == finding.node && matches!(events[i].kind, EventKind::Acquired { .. })
    };
    let start = (0..=first_fault.min(end.saturating_sub(1)))
        .rev()
        .find(|&i| acquired(i))
        .unwrap_or(first_fault);
    let faults: Vec<usize> = (0..end).filter(|&i| is_fault(i)).collect();
    let mut own: Vec<usize> = (start..end)
        .filter(|&i| events[i].node == finding.node && !is_fault(i))
        .collect();
    let context: Vec<usize> = (start..end)
        .rev()
        .filter(|&i| {
            let e = &events[i];
            e.node != finding.node
                && matches!(
                    e.kind,
                    EventKind::Acquired { .. }
                        | EventKind::LeaseLost { .. }
                        | EventKind::StorageApplied { .. }
                )
        })
        .take(CONTEXT_LINES)
        .collect();
    let room = EXCERPT_LINES_MAX.saturating_sub(faults.len() + context.len());
    if own.len() > room {
        // The first lines (the acquisition, what it sent) and the last (what came of it).
        let head = room / 3;
        let tail = own.split_off(own.len() - (room - head));
        own.truncate(head);
        own.extend(tail);
    }
    let mut all: Vec<usize> = faults.into_iter().chain(own).chain(context).collect();
    all.sort_unstable();
    all.dedup();
    all.truncate(EXCERPT_LINES_MAX);
    all
}

/// The story of how a run's first violation came about, in the story's own words
/// (every fault; the finding's node from its last acquisition before the first fault on; the
/// others' acquisitions and the storage's work just before the finding; at most
/// [`EXCERPT_LINES_MAX`] lines, with `...` where events are left out), then the finding. Empty if no
/// finding violates.
pub fn story_excerpt(run: &Run) -> String {
    let Some(finding) = run.verdict.findings.iter().find(|f| f.kind.is_violation()) else {
        return String::new();
    };
    let events = &run.history.events;
    let mut out = String::new();
    let mut next = 0;
    for i in excerpt_events(run, finding) {
        if i > next {
            out.push_str("       ...\n");
        }
        let e = &events[i];
        let _ = writeln!(
            out,
            "{}  {:<8} {}",
            secs(e.true_us),
            e.node,
            event_words(&e.kind)
        );
        next = i + 1;
    }
    let _ = writeln!(
        out,
        "{}  {:<8} => {}: {}",
        secs(finding.true_us),
        finding.node,
        finding.kind.as_str(),
        finding.detail
    );
    out
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
