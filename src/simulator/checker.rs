//! What must hold, checked over a [`History`]: Jepsen's *checker*.
//!
//! Four counts, two of them safety violations:
//! - **lost updates**: acknowledged counter increments that a later accepted write overwrote
//!   without having seen them, directly or through writes nobody acknowledged (safety; the
//!   [`Counter`](crate::workload::Counter) workload's rule, [`lost_updates`]);
//! - **token-order breaks**: the storage accepted an operation on a key after it had accepted
//!   one with a higher token on that key (safety: exactly what fencing exists to prevent);
//! - **stale acceptances**: the storage accepted an operation after the lock had passed to
//!   another client (harmless exactly when token order still holds);
//! - **false rejections**: the storage refused the current holder (liveness).
//!
//! "The lock had passed" means, in true time, another client had been told it holds the lock
//! with a higher token. The checker never panics: a history it cannot make sense of yields
//! anomalies in the verdict.
//!
//! Workloads add invariants of their own ([`Workload::check`](crate::workload::Workload::check)), counted as invariant breaks;
//! [`check_with`] runs the checker's rules and the workload's.

use crate::history::{EventKind, History, OpResult};
use crate::keys::COUNTER_KEY;
use crate::protocol::Op;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// What kind of finding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FindingKind {
    LostUpdate,
    TokenOrderBreak,
    StaleAcceptance,
    FalseRejection,
    /// A workload's own invariant broke (a violation): see [`Workload::check`](crate::workload::Workload::check).
    InvariantBreak,
}

impl FindingKind {
    pub fn is_violation(self) -> bool {
        matches!(
            self,
            FindingKind::LostUpdate | FindingKind::TokenOrderBreak | FindingKind::InvariantBreak
        )
    }

    pub fn as_str(self) -> &'static str {
        match self {
            FindingKind::LostUpdate => "lost update",
            FindingKind::TokenOrderBreak => "token-order break",
            FindingKind::StaleAcceptance => "stale acceptance",
            FindingKind::FalseRejection => "false rejection",
            FindingKind::InvariantBreak => "invariant break",
        }
    }
}

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
    }
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// What the checker knows of an invoked operation.
#[derive(Debug, Clone)]
struct Invoked<'a> {
    node: &'a str,
    token: i64,
    acked: bool,
}

/// An accepted write to the counter, in storage order.
#[derive(Debug, Clone)]
struct CounterWrite<'a> {
    event: usize,
    true_us: u64,
    node: &'a str,
    value: Option<u64>,
    acked: bool,
}

/// Every invoked operation by id (node, token, acknowledged), with what in the history cannot
/// be tied together.
fn invoked(history: &History) -> (BTreeMap<u64, Invoked<'_>>, Vec<String>) {
    let mut anomalies = Vec::new();
    let mut invoked: BTreeMap<u64, Invoked<'_>> = BTreeMap::new();
    for e in &history.events {
        match &e.kind {
            EventKind::Invoke { op_id, token, .. } => {
                let op = Invoked {
                    node: &e.node,
                    token: *token,
                    acked: false,
                };
                if invoked.insert(*op_id, op).is_some() {
                    anomalies.push(format!("op {op_id} invoked twice"));
                }
            }
            EventKind::Complete { op_id, outcome } => match invoked.get_mut(op_id) {
                Some(op) => op.acked = matches!(outcome, OpResult::Ok { .. }),
                None => anomalies.push(format!("op {op_id} completed, never invoked")),
            },
            _ => {}
        }
    }
    (invoked, anomalies)
}

/// Checks a history with the checker's rules and the counter's lost-update rule: what a
/// history alone, without its workload, can be judged by (other workloads' rules need
/// [`check_with`]).
pub fn check(history: &History) -> Verdict {
    let mut v = core(history);
    lost_updates(history, COUNTER_KEY, &mut v);
    finish(history, v)
}

/// Checks a history with the checker's rules and a workload's own (its
/// [`Workload::check`](crate::workload::Workload::check): `|h, v| workload.check(h, v)`).
pub fn check_with(
    history: &History,
    workload_rules: impl FnOnce(&History, &mut Verdict),
) -> Verdict {
    let mut v = core(history);
    workload_rules(history, &mut v);
    finish(history, v)
}

fn finish(history: &History, mut v: Verdict) -> Verdict {
    if history.dropped_events > 0 {
        v.anomalies
            .push(format!("{} events were dropped", history.dropped_events));
    }
    v
}

/// The workload-independent rules: token order, stale acceptances, false rejections.
fn core(history: &History) -> Verdict {
    let mut v = Verdict::default();
    let events = &history.events;
    let (invoked, anomalies) = invoked(history);
    v.anomalies = anomalies;

    // Pass 2: in true (= recording) order, follow the lock and the storage.
    let mut highest_granted: Option<(i64, &str)> = None;
    // Whether the highest holder still holds: not released, lease not known lost. Only a
    // refusal of a holder that still holds is a false rejection.
    let (mut holder_lease, mut holder_holds) = (0i64, false);
    let mut highest_accepted: BTreeMap<&str, i64> = BTreeMap::new();
    let mut last_true_us = 0;
    for (i, e) in events.iter().enumerate() {
        if e.true_us < last_true_us {
            v.anomalies
                .push(format!("event {i} goes back in true time"));
        }
        last_true_us = e.true_us;
        match &e.kind {
            // A client may learn of its lock late (paused, or the answer delayed) after a
            // newer holder already has it: "the lock has passed" follows the highest token.
            EventKind::Acquired { token, lease_id }
                if highest_granted.is_none_or(|(t, _)| *token > t) =>
            {
                highest_granted = Some((*token, &e.node));
                (holder_lease, holder_holds) = (*lease_id, true);
            }
            EventKind::Released { lease_id, .. } | EventKind::LeaseLost { lease_id, .. }
                if *lease_id == holder_lease =>
            {
                holder_holds = false;
            }
            EventKind::StorageApplied {
                op_id,
                op,
                key,
                version,
                accepted,
                err,
                ..
            } => {
                let known = op_id.and_then(|id| invoked.get(&id));
                if known.is_none() {
                    v.anomalies.push(format!(
                        "storage applied an op it cannot tie to a client (event {i})"
                    ));
                }
                let (node, token) = known.map_or(("?", *version), |o| (o.node, o.token));
                if *accepted {
                    let highest = highest_accepted.entry(key.as_str()).or_insert(i64::MIN);
                    if token < *highest {
                        v.add(
                            FindingKind::TokenOrderBreak,
                            i,
                            e.true_us,
                            node,
                            format!(
                                "{} {key} with token {token} accepted after token {} was",
                                op.as_str(),
                                *highest
                            ),
                        );
                    }
                    *highest = (*highest).max(token);
                    if let Some((t, holder)) = highest_granted {
                        if token < t {
                            v.add(
                                FindingKind::StaleAcceptance,
                                i,
                                e.true_us,
                                node,
                                format!(
                                    "{} {key} with token {token} accepted while {holder} held token {t}",
                                    op.as_str()
                                ),
                            );
                        }
                    }
                } else if highest_granted.is_some_and(|(t, _)| token < t) {
                    // The storage refused a stale operation: what fencing is for.
                    v.fenced_refusals += 1;
                } else if holder_holds && highest_granted.is_some_and(|(t, _)| t == token) {
                    v.add(
                        FindingKind::FalseRejection,
                        i,
                        e.true_us,
                        node,
                        format!("current holder's {} {key} refused: {err}", op.as_str()),
                    );
                }
            }
            _ => {}
        }
    }

    v
}

/// Accepted writes to `key`, in storage order, with who wrote them and whether they were
/// acknowledged.
fn accepted_writes<'a>(history: &'a History, key: &str) -> Vec<CounterWrite<'a>> {
    let (invoked, _) = invoked(history);
    let mut writes = Vec::new();
    for (i, e) in history.events.iter().enumerate() {
        let EventKind::StorageApplied {
            op_id,
            op: Op::Write,
            key: k,
            val,
            accepted: true,
            ..
        } = &e.kind
        else {
            continue;
        };
        if k != key {
            continue;
        }
        let (node, acked) = op_id
            .and_then(|id| invoked.get(&id))
            .map_or(("?", false), |o| (o.node, o.acked));
        writes.push(CounterWrite {
            event: i,
            true_us: e.true_us,
            node,
            value: val.parse().ok(),
            acked,
        });
    }
    writes
}

/// The counter's rule: acknowledged increments of the number stored at `key` that a later
/// accepted write lost (counted as lost updates), the acknowledged increments and the final
/// value.
pub fn lost_updates(history: &History, key: &str, v: &mut Verdict) {
    let counter_writes = accepted_writes(history, key);
    // Lost updates: an acknowledged increment is lost when a later accepted write to the
    // counter stores a value no higher than it: that writer never saw it. "A later" write, not
    // only the next one: a write nobody acknowledged (its answer timed out, say) may carry the
    // increment for a while, and the increment is lost all the same when a writer that saw
    // neither overwrites that one.
    // The lowest value written from each position on finds those in one backward pass.
    let mut lowest_from: Vec<Option<u64>> = vec![None; counter_writes.len() + 1];
    for (k, w) in counter_writes.iter().enumerate().rev() {
        lowest_from[k] = match (w.value, lowest_from[k + 1]) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
    }
    for (k, w) in counter_writes.iter().enumerate() {
        if w.acked {
            v.acked_increments += 1;
        }
        let Some(value) = w.value else {
            v.anomalies.push(format!(
                "counter write at event {} is not a number",
                w.event
            ));
            continue;
        };
        if !w.acked || lowest_from[k + 1].is_none_or(|n| n > value) {
            continue;
        }
        // Point at the first write that did not see it: the overwrite that lost it.
        let later = &counter_writes[k + 1..];
        let Some(over) = later.iter().find(|n| n.value.is_some_and(|n| n <= value)) else {
            continue;
        };
        v.add(
            FindingKind::LostUpdate,
            over.event,
            over.true_us,
            over.node,
            format!(
                "{}'s acknowledged write of {value} was overwritten with {}",
                w.node,
                over.value.unwrap_or_default()
            ),
        );
    }
    v.final_counter = history
        .final_entries
        .get(key)
        .and_then(|e| e.val.parse().ok())
        .unwrap_or(0);
}
