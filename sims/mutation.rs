//! Mutation tests: the checker catches one injected violation in an otherwise good history.
//!
//! Real histories come from simulated runs with token fencing under random fault plans; the
//! checker must find every one of them clean. Each then gets mutated three ways, one at a time:
//! - a **stale write**: an accepted counter write carrying a token below one the storage had
//!   already accepted on the counter (with its invocation and acknowledgement): a token-order
//!   break the checker must report;
//! - a **lost increment**: right after the next holder's read, an accepted, acknowledged write
//!   of the value an acknowledged write just stored, so that increment is overwritten by a
//!   write not derived from it. Tokens stay in order: only the lost-update rule can see it;
//! - a **benign** extra: a read by the current holder, accepted in token order, which the
//!   checker must not flag (negative space: injecting events is not in itself a violation).
//!
//! With `--nocapture` it prints the detection rates.
#![cfg(madsim)]

// mimalloc, as in every binary of the package (the library sets no allocator).
#[path = "../src/global_alloc.rs"]
mod global_alloc;

use fencelab::checker;
use fencelab::history::{Event, EventKind, History, OpResult};
use fencelab::nemesis;
use fencelab::protocol::Op;
use fencelab::scenario::Scenario;
use fencelab::storage::Fencing;
use fencelab::workload::COUNTER_KEY;
use fencelab::world;
use std::collections::{BTreeMap, BTreeSet};

const SEEDS: u64 = 300;

/// An accepted counter operation as the storage applied it, with what the client knew.
#[derive(Debug, Clone)]
struct Applied {
    /// Index of the `StorageApplied` event.
    event: usize,
    op: Op,
    node: String,
    token: i64,
    val: String,
    acked: bool,
}

fn accepted_counter_ops(history: &History) -> Vec<Applied> {
    let mut invoked: BTreeMap<u64, (String, i64)> = BTreeMap::new();
    let mut acked: BTreeSet<u64> = BTreeSet::new();
    for e in &history.events {
        match &e.kind {
            EventKind::Invoke { op_id, token, .. } => {
                invoked.insert(*op_id, (e.node.clone(), *token));
            }
            EventKind::Complete {
                op_id,
                outcome: OpResult::Ok { .. },
            } => {
                acked.insert(*op_id);
            }
            _ => {}
        }
    }
    let mut ops = Vec::new();
    for (i, e) in history.events.iter().enumerate() {
        let EventKind::StorageApplied {
            op_id: Some(op_id),
            op,
            key,
            val,
            accepted: true,
            ..
        } = &e.kind
        else {
            continue;
        };
        let Some((node, token)) = invoked.get(op_id) else {
            continue;
        };
        if key == COUNTER_KEY {
            ops.push(Applied {
                event: i,
                op: *op,
                node: node.clone(),
                token: *token,
                val: val.clone(),
                acked: acked.contains(op_id),
            });
        }
    }
    ops
}

/// Inserts one complete, accepted, acknowledged counter operation right after event `after`.
fn inject(history: &History, after: usize, node: &str, op: Op, token: i64, val: &str) -> History {
    let op_id = history
        .events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::Invoke { op_id, .. } => Some(*op_id),
            _ => None,
        })
        .max()
        .unwrap_or(0)
        + 1;
    // The same true time as the event it follows: true time never goes back.
    let true_us = history.events[after].true_us;
    let at = |node: &str, kind| Event {
        true_us,
        perceived_us: None,
        node: node.to_string(),
        kind,
    };
    let answer = match op {
        Op::Write => val.to_string(),
        Op::Read => String::new(),
    };
    let injected = [
        at(
            node,
            EventKind::Invoke {
                op_id,
                op,
                key: COUNTER_KEY.into(),
                val: answer.clone(),
                version: token,
                lease_id: 0,
                token,
            },
        ),
        at(
            "storage",
            EventKind::StorageApplied {
                op_id: Some(op_id),
                op,
                key: COUNTER_KEY.into(),
                val: answer,
                version: token,
                accepted: true,
                err: String::new(),
            },
        ),
        at(
            node,
            EventKind::Complete {
                op_id,
                outcome: OpResult::Ok {
                    val: val.to_string(),
                    version: token,
                },
            },
        ),
    ];
    let mut mutant = history.clone();
    mutant
        .events
        .splice(after + 1..after + 1, injected.iter().cloned());
    mutant
}

/// A stale write: after the storage accepted a higher token, a write with the lowest token
/// accepted so far, storing the value its holder last wrote. `pick` chooses among the places.
fn stale_write(history: &History, ops: &[Applied], pick: u64) -> Option<History> {
    let mut places = Vec::new();
    let mut lowest: Option<&Applied> = None;
    let mut highest = i64::MIN;
    for op in ops {
        if lowest.is_none_or(|l| op.token < l.token) {
            lowest = Some(op);
        }
        highest = highest.max(op.token);
        if let Some(l) = lowest.filter(|l| l.token < highest) {
            places.push((op.event, l));
        }
    }
    let (after, stale) = *places.get((pick % places.len().max(1) as u64) as usize)?;
    let val = ops
        .iter()
        .rfind(|o| o.op == Op::Write && o.token == stale.token)
        .map_or("1".to_string(), |w| w.val.clone());
    Some(inject(
        history,
        after,
        &stale.node,
        Op::Write,
        stale.token,
        &val,
    ))
}

/// A lost increment: an acknowledged write followed by another holder's read; right after that
/// read, the reader writes the same value again, as if it had read the value before.
fn lost_increment(history: &History, ops: &[Applied], pick: u64) -> Option<History> {
    let places: Vec<(&Applied, &Applied)> = ops
        .windows(2)
        .filter(|w| w[0].op == Op::Write && w[0].acked && w[1].op == Op::Read)
        .filter(|w| w[0].val.parse::<u64>().is_ok())
        .map(|w| (&w[0], &w[1]))
        .collect();
    let (write, read) = *places.get((pick % places.len().max(1) as u64) as usize)?;
    Some(inject(
        history,
        read.event,
        &read.node,
        Op::Write,
        read.token,
        &write.val,
    ))
}

/// A benign extra read by the holder of the last accepted op, right after that op.
fn benign_read(history: &History, ops: &[Applied], pick: u64) -> Option<History> {
    let op = ops.get((pick % ops.len().max(1) as u64) as usize)?;
    Some(inject(history, op.event, &op.node, Op::Read, op.token, ""))
}

#[test]
fn checker_flags_every_mutant_and_no_original() {
    let scenario = Scenario::standard();
    let started = std::time::Instant::now();
    let (mut stale_made, mut stale_caught) = (0u64, 0u64);
    let (mut lost_made, mut lost_caught) = (0u64, 0u64);
    let (mut benign_made, mut benign_quiet) = (0u64, 0u64);
    let mut missed = Vec::new();
    for seed in 0..SEEDS {
        let plan = nemesis::draw(&scenario, seed);
        let run = world::run(&scenario, &plan, Fencing::Token, seed);
        let verdict = checker::check(&run.history);
        assert!(
            !verdict.violates() && verdict.anomalies.is_empty(),
            "seed {seed}: the untouched history is not clean: {verdict:?}"
        );
        let ops = accepted_counter_ops(&run.history);
        if let Some(m) = stale_write(&run.history, &ops, seed) {
            stale_made += 1;
            let v = checker::check(&m);
            if v.token_order_breaks > 0 && v.violates() {
                stale_caught += 1;
            } else {
                missed.push(format!("seed {seed}: stale write missed: {v:?}"));
            }
        }
        if let Some(m) = lost_increment(&run.history, &ops, seed) {
            lost_made += 1;
            let v = checker::check(&m);
            // Tokens stayed in order, so it is the lost-update rule alone that must see it.
            if v.lost_updates == 1 && v.token_order_breaks == 0 && v.violates() {
                lost_caught += 1;
            } else {
                missed.push(format!("seed {seed}: lost increment missed: {v:?}"));
            }
        }
        if let Some(m) = benign_read(&run.history, &ops, seed) {
            benign_made += 1;
            let v = checker::check(&m);
            if !v.violates() && v.anomalies.is_empty() {
                benign_quiet += 1;
            } else {
                missed.push(format!("seed {seed}: benign read flagged: {v:?}"));
            }
        }
    }
    let rate = |caught: u64, made: u64| 100.0 * caught as f64 / made.max(1) as f64;
    println!(
        "mutation: seeds={SEEDS} originals_clean={SEEDS} stale_writes_detected={stale_caught}/{stale_made} ({:.1}%) lost_increments_detected={lost_caught}/{lost_made} ({:.1}%) benign_reads_quiet={benign_quiet}/{benign_made} in {:.1} s",
        rate(stale_caught, stale_made),
        rate(lost_caught, lost_made),
        started.elapsed().as_secs_f64()
    );
    assert!(missed.is_empty(), "{}", missed.join("\n"));
    // Positive space: most seeds gave a place for each mutation, so 100% means something.
    assert!(
        stale_made >= SEEDS * 9 / 10,
        "only {stale_made} stale mutants"
    );
    assert!(lost_made >= SEEDS * 9 / 10, "only {lost_made} lost mutants");
    assert!(
        benign_made >= SEEDS * 9 / 10,
        "only {benign_made} benign mutants"
    );
}
