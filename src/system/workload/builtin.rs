//! fencelab's built-in workloads.

use super::{Critical, CycleEnd, Workload, COUNTER_KEY, SINGLE_KEY};
use super::{FindingKind, Findings, Operations};
use crate::history::{History, OpResult};
use crate::BoxFuture;

/// As etcd's example (`contrib/lock`): take the lock once, write `key0`, stop.
#[derive(Debug, Clone, Copy, Default)]
pub struct Single;

impl Workload for Single {
    fn name(&self) -> &str {
        "single"
    }

    fn once(&self) -> bool {
        true
    }

    fn critical<'a>(&'a self, cs: &'a mut Critical<'_>) -> BoxFuture<'a, CycleEnd> {
        Box::pin(async move {
            let val = format!("value from {}", cs.node());
            if let Err(end) = cs.prepare_write().await {
                return end;
            }
            cs.write(SINGLE_KEY, val).await;
            CycleEnd::Done
        })
    }
}

/// Each cycle: read `counter`, add one, write it back. An acknowledged increment that a later
/// write overwrites without having seen it is a lost update ([`lost_updates`]).
#[derive(Debug, Clone, Copy, Default)]
pub struct Counter;

impl Workload for Counter {
    fn name(&self) -> &str {
        "counter"
    }

    fn critical<'a>(&'a self, cs: &'a mut Critical<'_>) -> BoxFuture<'a, CycleEnd> {
        Box::pin(async move {
            let current = match cs.read(COUNTER_KEY).await {
                OpResult::Ok { val, .. } if val.is_empty() => 0,
                OpResult::Ok { val, .. } => match val.parse::<u64>() {
                    Ok(v) => v,
                    Err(_) => return CycleEnd::Abandoned(format!("counter holds '{val}'")),
                },
                other => return CycleEnd::Abandoned(format!("read: {other:?}")),
            };
            if let Err(end) = cs.prepare_write().await {
                return end;
            }
            cs.write(COUNTER_KEY, (current + 1).to_string()).await;
            CycleEnd::Done
        })
    }

    fn check(&self, history: &History) -> Findings {
        let mut findings = Findings::default();
        lost_updates(history, COUNTER_KEY, &mut findings);
        findings
    }
}

/// The counter's rule: acknowledged increments of the number stored at `key` that a later
/// accepted write lost (counted as lost updates), the acknowledged increments and the final
/// value. The transfer workload applies it to its second account.
pub fn lost_updates(history: &History, key: &str, findings: &mut Findings) {
    let ops = Operations::of(history);
    let writes = ops.accepted_writes(history, key);
    let values: Vec<Option<u64>> = writes.iter().map(|w| w.val.parse().ok()).collect();
    // Lost updates: an acknowledged increment is lost when a later accepted write to the
    // counter stores a value no higher than it: that writer never saw it. "A later" write, not
    // only the next one: a write nobody acknowledged (its answer timed out, say) may carry the
    // increment for a while, and the increment is lost all the same when a writer that saw
    // neither overwrites that one.
    // The lowest value written from each position on finds those in one backward pass.
    let mut lowest_from: Vec<Option<u64>> = vec![None; writes.len() + 1];
    for k in (0..writes.len()).rev() {
        lowest_from[k] = match (values[k], lowest_from[k + 1]) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
    }
    debug_assert!(lowest_from
        .windows(2)
        .all(|w| w[1].is_none() || w[0].is_some()));
    for (k, w) in writes.iter().enumerate() {
        if w.acked() {
            findings.acked_increments += 1;
        }
        let Some(value) = values[k] else {
            findings.anomalies.push(format!(
                "counter write at event {} is not a number",
                w.index
            ));
            continue;
        };
        if !w.acked() || lowest_from[k + 1].is_none_or(|n| n > value) {
            continue;
        }
        // Point at the first write that did not see it: the overwrite that lost it.
        let Some(over) = (k + 1..writes.len()).find(|&n| values[n].is_some_and(|n| n <= value))
        else {
            continue;
        };
        findings.at_event(
            FindingKind::LostUpdate,
            writes[over].index,
            writes[over].true_us,
            writes[over].node(),
            format!(
                "{}'s acknowledged write of {value} was overwritten with {}",
                w.node(),
                values[over].unwrap_or_default()
            ),
        );
    }
    findings.final_counter = history
        .final_entries
        .get(key)
        .and_then(|e| e.val.parse().ok())
        .unwrap_or(0);
}
