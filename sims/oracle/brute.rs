//! A brute-force judge of a history, written apart from `fencelab::checker` on purpose: it
//! shares no code with it and reasons by search, not by a single pass.
//!
//! # What "legal" means
//!
//! A history is **legal** when some sequential execution under the lock explains it: a total
//! order π of every operation the storage accepted such that
//!
//! 1. *the lock*: tokens never decrease along π. Holders follow one another in token order and
//!    each holder's operations are contiguous (equal tokens are one holder);
//! 2. *the storage*: for every key, π visits that key's operations in exactly the order the
//!    storage accepted them. The storage's order is what happened; π may only interleave keys;
//! 3. *the counter*: replaying π's writes to the counter, every acknowledged increment
//!    survives. No accepted counter write after an acknowledged one of value `v` stores a value
//!    at or below `v`: a serial read-modify-write only ever raises the counter, so a writer that
//!    stores `<= v` never saw `v`, whether it overwrote it directly or overwrote a later value
//!    that carried it.
//!
//! The oracle enumerates the candidate orders (every interleaving of the per-key sequences)
//! depth first and says whether one satisfies all three. Alone, (1) and (2) make a history
//! **order-legal**: the oracle's counterpart of "no token-order break"; (3) alone, counted over
//! the storage's counter order, is its counterpart of "no lost update".
//!
//! Conventions, the same ones a reader of the history format must pick: an operation's token is
//! the lock token its client invoked it with; an operation the storage cannot tie to an
//! invocation carries its wire version and was acknowledged to nobody; an operation is
//! acknowledged when its last completion says `Ok`; counter values that are not numbers carry
//! no increments.

use fencelab::history::{EventKind, History, OpResult};
use fencelab::protocol::Op;
use std::collections::HashMap;

/// Most search steps for one history: the oracle is for small histories only.
pub const SEARCH_STEPS_MAX: u64 = 5_000_000;

/// One operation the storage accepted, as the oracle sees it.
#[derive(Debug, Clone, Copy)]
struct Accepted {
    token: i64,
    /// The value stored, for a counter write that stores a number.
    counter_value: Option<u64>,
    acked: bool,
}

/// The oracle's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Judgement {
    /// Some order satisfies (1), (2) and (3).
    pub legal: bool,
    /// Some order satisfies (1) and (2).
    pub order_legal: bool,
    /// Acknowledged counter writes that a later accepted counter write did not see.
    pub lost_increments: u64,
    /// Search steps spent (for the record).
    pub steps: u64,
}

/// Judges a history.
pub fn judge(history: &History) -> Judgement {
    // What the clients said and heard, by operation id.
    let mut token_of: HashMap<u64, i64> = HashMap::new();
    let mut acked_ids: HashMap<u64, bool> = HashMap::new();
    for event in &history.events {
        match &event.kind {
            EventKind::Invoke { op_id, token, .. } => {
                token_of.insert(*op_id, *token);
            }
            EventKind::Complete { op_id, outcome } => {
                acked_ids.insert(*op_id, matches!(outcome, OpResult::Ok { .. }));
            }
            _ => {}
        }
    }
    // What the storage accepted, per key, in its order. Keys in first-seen order.
    let mut keys: Vec<&str> = Vec::new();
    let mut per_key: Vec<Vec<Accepted>> = Vec::new();
    for event in &history.events {
        let EventKind::StorageApplied {
            op_id,
            op,
            key,
            val,
            version,
            accepted: true,
            ..
        } = &event.kind
        else {
            continue;
        };
        let invoked = op_id.and_then(|id| token_of.get(&id).map(|t| (id, *t)));
        let (token, acked) = match invoked {
            Some((id, token)) => (token, acked_ids.get(&id).copied().unwrap_or(false)),
            None => (*version, false),
        };
        let counter_value = if *op == Op::Write && key == "counter" {
            val.parse::<u64>().ok()
        } else {
            None
        };
        let slot = match keys.iter().position(|k| k == key) {
            Some(slot) => slot,
            None => {
                keys.push(key);
                per_key.push(Vec::new());
                per_key.len() - 1
            }
        };
        per_key[slot].push(Accepted {
            token,
            counter_value,
            acked,
        });
    }

    let mut search = Search {
        per_key: &per_key,
        steps: 0,
    };
    let mut cursors = vec![0usize; per_key.len()];
    let legal = search.exists(&mut cursors, i64::MIN, &mut Vec::new(), true);
    let order_legal = search.exists(&mut cursors, i64::MIN, &mut Vec::new(), false);

    // (3) counted: the counter's order is fixed by (2), so every order counts the same.
    let mut lost_increments = 0;
    let mut live: Vec<u64> = Vec::new();
    for slot in 0..keys.len() {
        if keys[slot] != "counter" {
            continue;
        }
        for op in &per_key[slot] {
            let Some(value) = op.counter_value else {
                continue;
            };
            let before = live.len();
            live.retain(|&acked_value| acked_value < value);
            lost_increments += (before - live.len()) as u64;
            if op.acked {
                live.push(value);
            }
        }
    }
    Judgement {
        legal,
        order_legal,
        lost_increments,
        steps: search.steps,
    }
}

struct Search<'a> {
    per_key: &'a [Vec<Accepted>],
    steps: u64,
}

impl Search<'_> {
    /// Whether the operations not yet placed (from `cursors` on) can follow an order that
    /// ends with `last_token` and holds the acknowledged counter values `live`.
    fn exists(
        &mut self,
        cursors: &mut Vec<usize>,
        last_token: i64,
        live: &mut Vec<u64>,
        survival: bool,
    ) -> bool {
        self.steps += 1;
        assert!(
            self.steps <= SEARCH_STEPS_MAX,
            "history too large for the brute-force oracle"
        );
        let mut all_placed = true;
        for slot in 0..self.per_key.len() {
            let Some(next) = self.per_key[slot].get(cursors[slot]).copied() else {
                continue;
            };
            all_placed = false;
            // (1) the lock: no going back to an older holder.
            if next.token < last_token {
                continue;
            }
            // (3) the counter: a write must have seen every acknowledged value still live.
            let saved = live.clone();
            if let Some(value) = next.counter_value {
                if survival && live.iter().any(|&acked_value| acked_value >= value) {
                    continue;
                }
                if next.acked {
                    live.push(value);
                }
            }
            // (2) the storage: take this key's next operation, and only that one.
            cursors[slot] += 1;
            let found = self.exists(cursors, next.token, live, survival);
            cursors[slot] -= 1;
            *live = saved;
            if found {
                return true;
            }
        }
        all_placed
    }
}
