//! fencelab's built-in workloads.

use super::{Critical, CycleEnd, Workload, COUNTER_KEY, SINGLE_KEY};
use crate::checker::{self, Verdict};
use crate::etcd::BoxFuture;
use crate::history::{History, OpResult};

/// The seed's: take the lock once, write `key0`, stop.
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
/// write overwrites without having seen it is a lost update ([`checker::lost_updates`]).
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

    fn check(&self, history: &History, verdict: &mut Verdict) {
        checker::lost_updates(history, COUNTER_KEY, verdict);
    }
}
