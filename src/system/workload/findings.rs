//! What a workload's check finds: the system layer's own report, which the simulator's checker
//! counts into its verdict. A workload returns [`Findings`] rather than writing into the
//! verdict, so the system names nothing of the simulator.

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
    /// A workload's own invariant broke (a violation): see [`Workload::check`](super::Workload::check).
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

/// Where a finding shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum At {
    /// At an event: its index into `History::events` and its true time.
    Event { index: usize, true_us: u64 },
    /// At the end of the run (a final state is wrong, no one event shows it): the checker
    /// points it at the history's last event.
    End,
}

/// One finding of a workload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    pub kind: FindingKind,
    pub at: At,
    pub node: String,
    pub detail: String,
}

/// Everything a workload's check reports; the checker adds it to its verdict.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Findings {
    /// In the order found (the verdict keeps it).
    pub found: Vec<Found>,
    /// The workload's own counts, by name (the set's acknowledged and lost adds).
    pub tallies: BTreeMap<String, u64>,
    /// What in the history the check could not make sense of.
    pub anomalies: Vec<String>,
    /// The counter rule's counts ([`lost_updates`](super::lost_updates)): acknowledged
    /// increments, and the counter's final value (0 when absent). The verdict has fields of
    /// these names.
    pub acked_increments: u64,
    pub final_counter: u64,
}

impl Findings {
    /// A finding shown by the event at `index` (into `History::events`), at `true_us`.
    pub fn at_event(
        &mut self,
        kind: FindingKind,
        index: usize,
        true_us: u64,
        node: &str,
        detail: String,
    ) {
        let at = At::Event { index, true_us };
        self.push(kind, at, node, detail);
    }

    /// A finding about the run's end state, which no one event shows.
    pub fn at_end(&mut self, kind: FindingKind, node: &str, detail: String) {
        self.push(kind, At::End, node, detail);
    }

    fn push(&mut self, kind: FindingKind, at: At, node: &str, detail: String) {
        self.found.push(Found {
            kind,
            at,
            node: node.to_string(),
            detail,
        });
    }

    /// Whether any finding is a safety violation.
    pub fn violates(&self) -> bool {
        self.found.iter().any(|f| f.kind.is_violation())
    }
}
