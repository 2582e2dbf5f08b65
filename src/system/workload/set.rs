//! Jepsen's lock-set workload (jepsen-io/etcd, `src/jepsen/etcd/lock.clj`, the `set` tests):
//! half the operations read a set and half add a unique element to it by read-modify-write
//! under the lock, with a sleep inside the critical section. One difference: Jepsen's reads do
//! not take the lock, fencelab's do (every operation is a lock cycle), which makes more lock
//! handovers per add. An add is **lost** when it was
//! acknowledged and its element is missing from the final set: what Jepsen measured against
//! etcd 3.4's Lock API.

use super::{Critical, CycleEnd, FindingKind, Findings, Operations, Workload};
use crate::history::History;
use crate::keys::{ETCD_KEY_PREFIX, SET_KEY};
use crate::protocol::Op;
use crate::BoxFuture;
use rand::Rng;
use std::collections::BTreeSet;

/// The set workload on the storage. Elements are `client/lease` (a lease is granted once per
/// lock cycle, so every add's element is unique); the set is stored as their comma-separated
/// list.
#[derive(Debug, Clone, Copy, Default)]
pub struct Set;

/// The set workload with the set in etcd, each write guarded by the lock key
/// ([`Critical::etcd_guarded_write`]).
#[derive(Debug, Clone, Copy, Default)]
pub struct EtcdSet;

/// The tallies the set's check adds to a verdict.
pub const ADDS_ACKED: &str = "adds-acked";
pub const ADDS_LOST: &str = "adds-lost";

/// The elements of a stored set.
pub fn elements(val: &str) -> BTreeSet<&str> {
    val.split(',').filter(|e| !e.is_empty()).collect()
}

/// One cycle of either variant: read the set, and half the time add an element.
async fn cycle(cs: &mut Critical<'_>, in_etcd: bool) -> Result<(), CycleEnd> {
    let read = match in_etcd {
        true => cs.etcd_read(SET_KEY).await,
        false => cs.read(SET_KEY).await,
    };
    let Some(current) = read.value().map(str::to_string) else {
        return Err(CycleEnd::Abandoned(format!("read: {read:?}")));
    };
    // Half the operations are reads, as in Jepsen's workload.
    if cs.rng().gen_bool(0.5) {
        return Ok(());
    }
    let element = format!("{}/{:x}", cs.node(), cs.holding().lease_id);
    cs.prepare_write().await?;
    let added = match current.is_empty() {
        true => element,
        false => format!("{current},{element}"),
    };
    match in_etcd {
        true => cs.etcd_guarded_write(SET_KEY, added).await,
        false => cs.write(SET_KEY, added).await,
    };
    Ok(())
}

impl Workload for Set {
    fn name(&self) -> &str {
        "set"
    }

    fn critical<'a>(&'a self, cs: &'a mut Critical<'_>) -> BoxFuture<'a, CycleEnd> {
        Box::pin(async move { cycle(cs, false).await.into() })
    }

    fn check(&self, history: &History) -> Findings {
        lost_adds(history, SET_KEY)
    }
}

impl Workload for EtcdSet {
    fn name(&self) -> &str {
        "etcd-set"
    }

    fn critical<'a>(&'a self, cs: &'a mut Critical<'_>) -> BoxFuture<'a, CycleEnd> {
        Box::pin(async move { cycle(cs, true).await.into() })
    }

    fn check(&self, history: &History) -> Findings {
        lost_adds(history, &format!("{ETCD_KEY_PREFIX}{SET_KEY}"))
    }

    fn etcd_keys(&self) -> Vec<String> {
        vec![SET_KEY.to_string()]
    }
}

/// The set's rule, for the set under `key` in the history (`set`, or `etcd:set`): every
/// acknowledged add whose element is missing from the final set is lost.
fn lost_adds(history: &History, key: &str) -> Findings {
    let final_set = history
        .final_entries
        .get(key)
        .map(|e| elements(&e.val))
        .unwrap_or_default();
    let ops = Operations::of(history);
    // The acknowledged adds, in the order their acknowledgements came.
    let mut acked: Vec<_> = ops
        .ops
        .iter()
        .filter(|o| o.op == Op::Write && o.key == key && o.acked())
        .filter_map(|o| Some((o.complete_index?, o)))
        .collect();
    acked.sort_by_key(|&(complete, _)| complete);
    let mut findings = Findings::default();
    let mut lost = 0u64;
    for &(complete, o) in &acked {
        let element = o.val.rsplit(',').next().unwrap_or_default();
        if !final_set.contains(element) {
            lost += 1;
            let node = o.node;
            findings.at_event(
                FindingKind::InvariantBreak,
                complete,
                history.events[complete].true_us,
                node,
                format!("lost add: {node}'s acknowledged {element} is not in the final set"),
            );
        }
    }
    assert!(
        lost <= acked.len() as u64,
        "only acknowledged adds are lost"
    );
    findings
        .tallies
        .insert(ADDS_ACKED.into(), acked.len() as u64);
    findings.tallies.insert(ADDS_LOST.into(), lost);
    findings
}
