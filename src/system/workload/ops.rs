//! A history's operations, paired for workload checks: each with its invocation, its
//! completion, whether the storage accepted it, and the indices of those events, so that a
//! workload's [`check`](super::Workload::check) never pairs events by hand.

use crate::history::{EventKind, History, OpResult};
use crate::protocol::Op;
use std::collections::BTreeMap;

/// One operation a client invoked.
#[derive(Debug, Clone, Copy)]
pub struct Operation<'a> {
    pub op_id: u64,
    pub node: &'a str,
    pub op: Op,
    pub key: &'a str,
    /// The value the client sent (empty for a read).
    pub val: &'a str,
    pub token: i64,
    /// Index of its `Invoke` event in `History::events`.
    pub invoke_index: usize,
    /// Index of its last `Complete` event, when the client got or gave up on the answer.
    pub complete_index: Option<usize>,
    /// How it ended, as the client saw it.
    pub outcome: Option<&'a OpResult>,
    /// Index of the storage's `StorageApplied` event for it, when the request arrived.
    pub applied_index: Option<usize>,
    /// Whether the storage accepted it (a request that never arrived was not).
    pub accepted: bool,
}

impl Operation<'_> {
    /// Whether the client saw it acknowledged.
    pub fn acked(&self) -> bool {
        matches!(self.outcome, Some(OpResult::Ok { .. }))
    }
}

/// Every operation of a history in invocation order, by op id, with what in the history
/// cannot be tied together.
#[derive(Debug, Clone, Default)]
pub struct Operations<'a> {
    pub ops: Vec<Operation<'a>>,
    by_id: BTreeMap<u64, usize>,
    /// Ops invoked twice, completions of ops never invoked.
    pub anomalies: Vec<String>,
}

impl<'a> Operations<'a> {
    /// Pairs the events of `history`. An op id invoked twice names its later invocation.
    pub fn of(history: &'a History) -> Self {
        let mut all = Operations::default();
        for (i, e) in history.events.iter().enumerate() {
            match &e.kind {
                EventKind::Invoke {
                    op_id,
                    op,
                    key,
                    val,
                    token,
                    ..
                } => all.invoked(i, &e.node, *op_id, *op, key, val, *token),
                EventKind::Complete { op_id, outcome } => match all.by_id.get(op_id).copied() {
                    Some(k) => {
                        // Events are indexed in recording order: a completion follows its invoke.
                        assert!(all.ops[k].invoke_index < i);
                        (all.ops[k].complete_index, all.ops[k].outcome) = (Some(i), Some(outcome));
                    }
                    None => all
                        .anomalies
                        .push(format!("op {op_id} completed, never invoked")),
                },
                EventKind::StorageApplied {
                    op_id: Some(op_id),
                    accepted,
                    ..
                } => {
                    if let Some(&k) = all.by_id.get(op_id) {
                        assert!(all.ops[k].invoke_index < i, "applied before it was invoked");
                        (all.ops[k].applied_index, all.ops[k].accepted) = (Some(i), *accepted);
                    }
                }
                _ => {}
            }
        }
        all
    }

    #[allow(clippy::too_many_arguments)]
    fn invoked(
        &mut self,
        i: usize,
        node: &'a str,
        op_id: u64,
        op: Op,
        key: &'a str,
        val: &'a str,
        token: i64,
    ) {
        let operation = Operation {
            op_id,
            node,
            op,
            key,
            val,
            token,
            invoke_index: i,
            complete_index: None,
            outcome: None,
            applied_index: None,
            accepted: false,
        };
        if self.by_id.insert(op_id, self.ops.len()).is_some() {
            self.anomalies.push(format!("op {op_id} invoked twice"));
        }
        self.ops.push(operation);
    }

    /// The operation with this id.
    pub fn get(&self, op_id: u64) -> Option<&Operation<'a>> {
        self.by_id.get(&op_id).map(|&k| &self.ops[k])
    }

    /// The writes the storage accepted on `key`, in the storage's order, each with its
    /// `StorageApplied` event and the operation when it can be tied to one.
    pub fn accepted_writes(&self, history: &'a History, key: &str) -> Vec<Applied<'a, '_>> {
        let mut writes = Vec::new();
        for (index, e) in history.events.iter().enumerate() {
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
            if k == key {
                let operation = op_id.and_then(|id| self.get(id));
                writes.push(Applied {
                    index,
                    true_us: e.true_us,
                    val,
                    operation,
                });
            }
        }
        writes
    }
}

/// A request the storage applied, seen from the storage.
#[derive(Debug, Clone, Copy)]
pub struct Applied<'a, 'o> {
    /// Index of its `StorageApplied` event.
    pub index: usize,
    pub true_us: u64,
    /// The value it stored.
    pub val: &'a str,
    /// The client's operation, unless the request cannot be tied to one.
    pub operation: Option<&'o Operation<'a>>,
}

impl Applied<'_, '_> {
    /// The node that sent it, `?` when unknown.
    pub fn node(&self) -> &str {
        self.operation.map_or("?", |o| o.node)
    }

    /// Whether its client saw it acknowledged.
    pub fn acked(&self) -> bool {
        self.operation.is_some_and(|o| o.acked())
    }
}
