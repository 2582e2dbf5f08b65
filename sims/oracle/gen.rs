//! Small random histories of the counter workload, clean and broken in good proportion.
//!
//! A [`Plan`] is what proptest draws and shrinks; [`build`] plays it against a model storage
//! and writes the history the real world would have recorded. Each holder reads the counter,
//! writes what it read plus one, and may write a second key. The plan injects the faults the
//! checker must see through: storage that does not fence (or fences writes only), a holder the
//! storage accepts whatever its token (an injected stale write), holders that run interleaved
//! and learn of their lock out of token order (reordered tokens), writes not derived from the
//! read (lost increments), and answers that are lost, never sent, or never heard.

use fencelab::history::{Event, EventKind, History, OpResult};
use fencelab::protocol::Op;
use proptest::prelude::*;

pub const COUNTER_KEY: &str = "counter";
pub const OTHER_KEY: &str = "other";
/// Most holders in one history: keeps the oracle's search small.
pub const HOLDERS_MAX: usize = 4;
/// Most interleaving choices drawn; past them the remaining holders run one after another.
pub const SCHEDULE_MAX: usize = 12;

/// What became of one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// Applied, and the client heard the answer.
    Answered,
    /// Applied, the answer was lost: the client records `Unknown`.
    AnswerLost,
    /// Never left the client: `Failed`, nothing applied.
    NotSent,
    /// Applied, and the client died before the answer: no completion at all.
    ClientDied,
}

/// How the model storage fences.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    None,
    TokenWrites,
    Token,
}

#[derive(Debug, Clone)]
pub struct HolderPlan {
    /// Added to the previous holder's token (0: the same token, allowed and harmless).
    pub token_gap: i64,
    /// Added to `read + 1`: 0 is an honest increment, below 0 a write not derived from the read.
    pub write_skew: i64,
    pub writes_other: bool,
    pub read: Delivery,
    pub write: Delivery,
    pub other: Delivery,
    /// The storage accepts this holder whatever its token: an injected stale acceptance.
    pub forced: bool,
    /// The client sends its lease ID on the wire instead of the token (`contrib/lock`'s protocol).
    pub sends_lease_id: bool,
}

#[derive(Debug, Clone)]
pub struct Plan {
    pub holders: Vec<HolderPlan>,
    pub policy: Policy,
    /// Holders run one after another (in `order`), else interleaved by `schedule`.
    pub serial: bool,
    /// The order holders start in (a permutation of holder indexes): not always token order.
    pub order: Vec<usize>,
    pub schedule: Vec<usize>,
}

fn delivery() -> impl Strategy<Value = Delivery> {
    prop_oneof![
        8 => Just(Delivery::Answered),
        1 => Just(Delivery::AnswerLost),
        1 => Just(Delivery::NotSent),
        1 => Just(Delivery::ClientDied),
    ]
}

fn holder() -> impl Strategy<Value = HolderPlan> {
    (
        prop_oneof![1 => Just(0i64), 6 => 1i64..=3],
        prop_oneof![2 => Just(0i64), 1 => -2i64..=-1],
        any::<bool>(),
        (delivery(), delivery(), delivery()),
        prop::bool::weighted(0.15),
        prop::bool::weighted(0.15),
    )
        .prop_map(
            |(
                token_gap,
                write_skew,
                writes_other,
                (read, write, other),
                forced,
                sends_lease_id,
            )| {
                HolderPlan {
                    token_gap,
                    write_skew,
                    writes_other,
                    read,
                    write,
                    other,
                    forced,
                    sends_lease_id,
                }
            },
        )
}

pub fn plan() -> impl Strategy<Value = Plan> {
    prop::collection::vec(holder(), 1..=HOLDERS_MAX)
        .prop_flat_map(|holders| {
            let n = holders.len();
            let order = Just((0..n).collect::<Vec<usize>>()).prop_shuffle();
            // Mostly token order: a shuffled start order is one of the injected faults.
            let order = prop_oneof![2 => Just((0..n).collect::<Vec<usize>>()), 1 => order];
            (
                Just(holders),
                prop_oneof![
                    1 => Just(Policy::None),
                    1 => Just(Policy::TokenWrites),
                    2 => Just(Policy::Token),
                ],
                prop::bool::weighted(0.3),
                order,
                prop::collection::vec(0usize..HOLDERS_MAX, 0..=SCHEDULE_MAX),
            )
        })
        .prop_map(|(holders, policy, serial, order, schedule)| Plan {
            holders,
            policy,
            serial,
            order,
            schedule,
        })
}

/// Where a holder is in its program.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    NotStarted,
    Read,
    Write { read_value: u64 },
    Other,
    Done,
}

struct Model {
    policy: Policy,
    /// Per key: (stored value, highest token seen).
    keys: Vec<(&'static str, Option<String>, Option<i64>)>,
    events: Vec<Event>,
    next_op_id: u64,
}

impl Model {
    fn push(&mut self, node: &str, kind: EventKind) {
        // One microsecond per event: true time never goes back.
        let true_us = self.events.len() as u64;
        self.events.push(Event {
            true_us,
            perceived_us: None,
            node: node.to_string(),
            kind,
        });
    }

    /// Sends one request; returns what the client heard.
    fn send(
        &mut self,
        node: &str,
        holder: (&HolderPlan, i64, i64),
        op: Op,
        key: &'static str,
        val: String,
        delivery: Delivery,
    ) -> Option<OpResult> {
        let (plan, token, lease_id) = holder;
        let version = if plan.sends_lease_id { lease_id } else { token };
        let op_id = self.next_op_id;
        self.next_op_id += 1;
        self.push(
            node,
            EventKind::Invoke {
                op_id,
                op,
                key: key.to_string(),
                val: val.clone(),
                version,
                lease_id,
                token,
            },
        );
        if delivery == Delivery::NotSent {
            let outcome = OpResult::Failed {
                err: "connection refused".into(),
            };
            self.push(
                node,
                EventKind::Complete {
                    op_id,
                    outcome: outcome.clone(),
                },
            );
            return Some(outcome);
        }
        let policy = self.policy;
        let slot = self
            .keys
            .iter()
            .position(|(k, _, _)| *k == key)
            .expect("model keys");
        let (_, stored, highest) = &mut self.keys[slot];
        let fenced = match policy {
            Policy::None => false,
            Policy::TokenWrites => op == Op::Write,
            Policy::Token => true,
        };
        let refused = fenced && !plan.forced && highest.is_some_and(|h| version < h);
        let answer = if refused {
            OpResult::Rejected {
                err: format!("given token ({version}) is lower than the highest token seen"),
            }
        } else {
            if fenced {
                *highest = Some(highest.map_or(version, |h| h.max(version)));
            }
            match op {
                Op::Read => OpResult::Ok {
                    val: stored.clone().unwrap_or_default(),
                    version,
                },
                Op::Write => {
                    *stored = Some(val.clone());
                    OpResult::Ok {
                        val: val.clone(),
                        version,
                    }
                }
            }
        };
        let err = match &answer {
            OpResult::Rejected { err } => err.clone(),
            _ => String::new(),
        };
        self.push(
            "storage",
            EventKind::StorageApplied {
                op_id: Some(op_id),
                op,
                key: key.to_string(),
                val,
                version,
                accepted: !refused,
                err,
            },
        );
        let outcome = match delivery {
            Delivery::Answered => answer,
            Delivery::AnswerLost => OpResult::Unknown {
                err: "timed out".into(),
            },
            Delivery::NotSent | Delivery::ClientDied => return None,
        };
        self.push(
            node,
            EventKind::Complete {
                op_id,
                outcome: outcome.clone(),
            },
        );
        Some(outcome)
    }
}

/// Plays a plan: the history the world would have recorded.
pub fn build(plan: &Plan) -> History {
    let n = plan.holders.len();
    let mut tokens = Vec::with_capacity(n);
    let mut token = 100i64;
    for h in &plan.holders {
        token += h.token_gap;
        tokens.push(token);
    }
    let mut model = Model {
        policy: plan.policy,
        keys: vec![(COUNTER_KEY, None, None), (OTHER_KEY, None, None)],
        events: Vec::new(),
        next_op_id: 1,
    };
    let mut stages = vec![Stage::NotStarted; n];
    // Who moves next: serial runs each holder to the end in `order`; interleaved runs pick
    // from the unfinished ones by the schedule, then finish in `order`.
    let mut picks = plan.schedule.iter();
    // Each holder takes at most four steps (start, read, write, other).
    for _ in 0..4 * n + SCHEDULE_MAX {
        let unfinished: Vec<usize> = plan
            .order
            .iter()
            .copied()
            .filter(|&i| stages[i] != Stage::Done)
            .collect();
        let Some(&first) = unfinished.first() else {
            break;
        };
        let who = match (plan.serial, picks.next()) {
            (false, Some(&p)) => unfinished[p % unfinished.len()],
            _ => first,
        };
        step(&mut model, plan, &tokens, &mut stages, who);
    }
    assert!(
        stages.iter().all(|s| *s == Stage::Done),
        "every holder finishes"
    );
    History {
        events: model.events,
        ..History::default()
    }
}

fn step(model: &mut Model, plan: &Plan, tokens: &[i64], stages: &mut [Stage], who: usize) {
    let h = &plan.holders[who];
    let node = format!("client{}", who + 1);
    let lease_id = 7_000 + who as i64;
    let holder = (h, tokens[who], lease_id);
    stages[who] = match stages[who] {
        Stage::NotStarted => {
            model.push(
                &node,
                EventKind::Acquired {
                    lease_id,
                    token: tokens[who],
                },
            );
            Stage::Read
        }
        Stage::Read => {
            match model.send(&node, holder, Op::Read, COUNTER_KEY, String::new(), h.read) {
                // As the workload: an empty counter reads as 0, anything else abandons.
                Some(OpResult::Ok { val, .. }) => match val.parse::<u64>() {
                    Ok(v) => Stage::Write { read_value: v },
                    Err(_) if val.is_empty() => Stage::Write { read_value: 0 },
                    Err(_) => Stage::Done,
                },
                _ => Stage::Done,
            }
        }
        Stage::Write { read_value } => {
            let value = (read_value as i64 + 1 + h.write_skew).max(0);
            let heard = model.send(
                &node,
                holder,
                Op::Write,
                COUNTER_KEY,
                value.to_string(),
                h.write,
            );
            match heard {
                Some(_) if h.writes_other => Stage::Other,
                _ => Stage::Done,
            }
        }
        Stage::Other => {
            let val = format!("from {node}");
            model.send(&node, holder, Op::Write, OTHER_KEY, val, h.other);
            Stage::Done
        }
        Stage::Done => Stage::Done,
    };
    if stages[who] == Stage::Done {
        model.push(
            &node,
            EventKind::Released {
                lease_id,
                token: tokens[who],
            },
        );
    }
}
