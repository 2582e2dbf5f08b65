//! What must hold, checked over a [`History`]: Jepsen's *checker*.
//!
//! Five counts, three of them safety violations:
//! - **lost updates**: acknowledged counter increments that a later accepted write overwrote
//!   without having seen them, directly or through writes nobody acknowledged (safety; the
//!   [`Counter`](crate::workload::Counter) workload's rule,
//!   [`workload::lost_updates`](crate::workload::lost_updates), which the checker only counts);
//! - **token-order breaks**: the storage accepted an operation on a key after it had accepted
//!   one with a higher token on that key (safety: exactly what fencing exists to prevent);
//! - **stale acceptances**: the storage accepted an operation after the lock had passed to
//!   another client (harmless exactly when token order still holds);
//! - **false rejections**: the storage refused the current holder (liveness);
//! - **invariant breaks**: a workload's own invariant broke (safety).
//!
//! "The lock had passed" means, in true time, another client had been told it holds the lock
//! with a higher token. The checker never panics: a history it cannot make sense of yields
//! anomalies in the verdict.
//!
//! The checker's own rules are the workload-independent ones (token order, stale acceptances,
//! false rejections). A workload's rules ([`Workload::check`](crate::workload::Workload::check))
//! return their [`Findings`]; [`check_with`] runs both and [`Verdict::apply`] counts the
//! workload's.

use crate::history::{Event, EventKind, History};
pub use crate::workload::FindingKind;
use crate::workload::{At, Findings, Operations, Workload};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// One finding, pointing at the event that shows it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Finding {
    pub kind: FindingKind,
    /// Index into `History::events`.
    pub event: usize,
    pub true_us: u64,
    pub node: String,
    pub detail: String,
}

/// The checker's answer.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Verdict {
    pub lost_updates: u64,
    pub token_order_breaks: u64,
    pub stale_acceptances: u64,
    pub false_rejections: u64,
    /// Stale operations (token below the highest granted) the storage refused.
    #[serde(default)]
    pub fenced_refusals: u64,
    /// Counter increments the clients saw acknowledged.
    pub acked_increments: u64,
    /// The counter's value at the end (0 when absent).
    pub final_counter: u64,
    /// Workload invariants broken ([`Workload::check`](crate::workload::Workload::check)); absent from the JSON when 0.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub invariant_breaks: u64,
    /// A workload's own counts, by name (the set's acknowledged and lost adds); absent from the
    /// JSON when empty.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tallies: BTreeMap<String, u64>,
    pub findings: Vec<Finding>,
    /// Things in the history that should not be there (never expected; reported, not panicked).
    pub anomalies: Vec<String>,
}

impl Verdict {
    /// A safety violation: a lost update, a token-order break or a broken workload invariant.
    pub fn violates(&self) -> bool {
        self.lost_updates > 0 || self.token_order_breaks > 0 || self.invariant_breaks > 0
    }

    /// Records a finding at `event` (an index into the history's events) and counts it.
    pub fn add(
        &mut self,
        kind: FindingKind,
        event: usize,
        true_us: u64,
        node: &str,
        detail: String,
    ) {
        match kind {
            FindingKind::LostUpdate => self.lost_updates += 1,
            FindingKind::TokenOrderBreak => self.token_order_breaks += 1,
            FindingKind::StaleAcceptance => self.stale_acceptances += 1,
            FindingKind::FalseRejection => self.false_rejections += 1,
            FindingKind::InvariantBreak => self.invariant_breaks += 1,
        }
        self.findings.push(Finding {
            kind,
            event,
            true_us,
            node: node.to_string(),
            detail,
        });
        // Every finding is counted once, under its kind.
        debug_assert_eq!(self.counted(), self.findings.len() as u64);
    }

    /// The findings the counts add up to.
    fn counted(&self) -> u64 {
        self.lost_updates
            + self.token_order_breaks
            + self.stale_acceptances
            + self.false_rejections
            + self.invariant_breaks
    }

    /// Counts a workload's findings into the verdict. A finding at the end of the run points
    /// at the history's last event.
    pub fn apply(&mut self, findings: Findings, history: &History) {
        let found_count = findings.found.len();
        let before = self.findings.len();
        for f in findings.found {
            let (event, true_us) = match f.at {
                At::Event { index, true_us } => (index, true_us),
                At::End => (
                    history.events.len().saturating_sub(1),
                    history.events.last().map_or(0, |e| e.true_us),
                ),
            };
            debug_assert!(
                event < history.events.len().max(1),
                "a finding points into the history"
            );
            self.add(f.kind, event, true_us, &f.node, f.detail);
        }
        assert_eq!(self.findings.len(), before + found_count);
        self.tallies.extend(findings.tallies);
        self.anomalies.extend(findings.anomalies);
        self.acked_increments += findings.acked_increments;
        self.final_counter = findings.final_counter;
    }
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// Checks a history with the checker's rules and the default workload's, the
/// [`Counter`](crate::workload::Counter)'s (other workloads' rules need [`check_with`]).
pub fn check(history: &History) -> Verdict {
    check_with(history, |h| crate::workload::Counter.check(h))
}

/// Checks a history with the checker's rules and a workload's own (its
/// [`Workload::check`](crate::workload::Workload::check): `|h| workload.check(h)`).
pub fn check_with(history: &History, workload_rules: impl FnOnce(&History) -> Findings) -> Verdict {
    let mut v = core(history);
    v.apply(workload_rules(history), history);
    finish(history, v)
}

/// The history with every token replaced by its grant's rank in true time (1 for the first
/// `Acquired`, 2 for the next, ...), for recipes whose tokens do not rise from holder to holder
/// ([`LockRecipe::tokens_rise`](crate::lock::LockRecipe::tokens_rise): Redlock's random value,
/// an `INCR` counter that a restart resets). The checker's rules then judge holders by the
/// order the lock was granted in, which is what "the lock had passed" means when the service
/// keeps no order of its own; the wire's `version` (what the fence saw) stays as it was. Only
/// tokens change, so every finding's event index points into the recorded history.
pub fn by_grant_order(history: &History) -> History {
    let mut ranked = history.clone();
    let mut grants: i64 = 0;
    // Each node's current grant: its operations and its release carry it.
    let mut current: BTreeMap<String, i64> = BTreeMap::new();
    for e in ranked.events.iter_mut() {
        match &mut e.kind {
            EventKind::Acquired { token, .. } => {
                grants += 1;
                *token = grants;
                current.insert(e.node.clone(), grants);
            }
            EventKind::Invoke { token, .. } | EventKind::Released { token, .. } => {
                // An operation before any grant of its node is an anomaly the checker reports;
                // rank 0 keeps it below every grant.
                *token = current.get(&e.node).copied().unwrap_or(0);
            }
            _ => {}
        }
    }
    assert_eq!(ranked.events.len(), history.events.len());
    ranked
}

fn finish(history: &History, mut v: Verdict) -> Verdict {
    if history.dropped_events > 0 {
        v.anomalies
            .push(format!("{} events were dropped", history.dropped_events));
    }
    // Every finding is counted once, under its kind, and points into the history.
    assert_eq!(v.counted(), v.findings.len() as u64);
    assert!(v
        .findings
        .iter()
        .all(|f| f.event < history.events.len().max(1)));
    v
}

/// The workload-independent rules: token order, stale acceptances, false rejections.
fn core(history: &History) -> Verdict {
    let ops = Operations::of(history);
    let mut lock = Lock {
        v: Verdict {
            anomalies: ops.anomalies.clone(),
            ..Verdict::default()
        },
        ops,
        highest_granted: None,
        holder_lease: 0,
        holder_holds: false,
        highest_accepted: BTreeMap::new(),
    };
    // In true (= recording) order, follow the lock and the storage.
    let mut last_true_us = 0;
    for (i, e) in history.events.iter().enumerate() {
        if e.true_us < last_true_us {
            lock.v
                .anomalies
                .push(format!("event {i} goes back in true time"));
        }
        last_true_us = e.true_us;
        lock.follow(i, e);
    }
    let v = lock.v;
    // Each storage answer yields at most one finding of the storage's side: a refusal is a
    // fenced refusal or a false rejection, an acceptance may break token order and be stale.
    let (accepted, refused) = storage_answers(history);
    assert!(v.false_rejections + v.fenced_refusals <= refused);
    assert!(v.token_order_breaks <= accepted && v.stale_acceptances <= accepted);
    assert_eq!(
        v.lost_updates + v.invariant_breaks,
        0,
        "the workload's rules come later"
    );
    // The checker's own findings come in history order.
    debug_assert!(v.findings.windows(2).all(|w| w[0].event <= w[1].event));
    v
}

/// How many requests the storage accepted, and how many it refused.
fn storage_answers(history: &History) -> (u64, u64) {
    let mut counts = (0, 0);
    for e in &history.events {
        if let EventKind::StorageApplied { accepted, .. } = &e.kind {
            match accepted {
                true => counts.0 += 1,
                false => counts.1 += 1,
            }
        }
    }
    counts
}

/// What the checker follows through a history: the lock's highest holder and the storage's
/// highest accepted token per key.
struct Lock<'a> {
    v: Verdict,
    ops: Operations<'a>,
    /// A client may learn of its lock late (paused, or the answer delayed) after a newer
    /// holder already has it: "the lock has passed" follows the highest token.
    highest_granted: Option<(i64, &'a str)>,
    /// Whether the highest holder still holds: not released, lease not known lost. Only a
    /// refusal of a holder that still holds is a false rejection.
    holder_lease: i64,
    holder_holds: bool,
    highest_accepted: BTreeMap<&'a str, i64>,
}

impl<'a> Lock<'a> {
    fn follow(&mut self, i: usize, e: &'a Event) {
        match &e.kind {
            EventKind::Acquired { token, lease_id }
                if self.highest_granted.is_none_or(|(t, _)| *token > t) =>
            {
                let before = self.highest_granted.map(|(t, _)| t);
                self.highest_granted = Some((*token, &e.node));
                (self.holder_lease, self.holder_holds) = (*lease_id, true);
                // The highest granted token only rises.
                debug_assert!(before.is_none_or(|t| t < *token));
            }
            EventKind::Released { lease_id, .. } | EventKind::LeaseLost { lease_id, .. }
                if *lease_id == self.holder_lease =>
            {
                self.holder_holds = false;
            }
            EventKind::StorageApplied { .. } => self.applied(i, e),
            _ => {}
        }
    }

    /// The storage applied a request: judge it against the lock and the key's history.
    fn applied(&mut self, i: usize, e: &'a Event) {
        let EventKind::StorageApplied {
            op_id,
            op,
            key,
            version,
            accepted,
            err,
            ..
        } = &e.kind
        else {
            unreachable!("applied is called on StorageApplied events only");
        };
        let known = op_id.and_then(|id| self.ops.get(id));
        if known.is_none() {
            self.v.anomalies.push(format!(
                "storage applied an op it cannot tie to a client (event {i})"
            ));
        }
        let (node, token) = known.map_or(("?", *version), |o| (o.node, o.token));
        let (op, v) = (op.as_str(), &mut self.v);
        if !*accepted {
            if self.highest_granted.is_some_and(|(t, _)| token < t) {
                // The storage refused a stale operation: what fencing is for.
                v.fenced_refusals += 1;
            } else if self.holder_holds && self.highest_granted.is_some_and(|(t, _)| t == token) {
                let detail = format!("current holder's {op} {key} refused: {err}");
                v.add(FindingKind::FalseRejection, i, e.true_us, node, detail);
            }
            return;
        }
        let highest = self
            .highest_accepted
            .entry(key.as_str())
            .or_insert(i64::MIN);
        if token < *highest {
            let detail = format!(
                "{op} {key} with token {token} accepted after token {} was",
                *highest
            );
            v.add(FindingKind::TokenOrderBreak, i, e.true_us, node, detail);
        }
        *highest = (*highest).max(token);
        debug_assert!(*highest >= token, "the highest accepted token only rises");
        if let Some((t, holder)) = self.highest_granted.filter(|&(t, _)| token < t) {
            let detail =
                format!("{op} {key} with token {token} accepted while {holder} held token {t}");
            v.add(FindingKind::StaleAcceptance, i, e.true_us, node, detail);
        }
    }
}
