//! What a timeline draws, as plain data built from a [`History`] (and the [`Scenario`]'s
//! clients): one lane per node, and spans of time on the lanes (lease sessions, lock
//! holdings, faults, windows of a degraded network). No SVG here.

use super::layout::{AXIS_PX, CLIENT_LANE_PX, ETCD_LANE_PX, STORAGE_LANE_PX, TITLE_PX};
use crate::fault::{ETCD, NETWORK, STORAGE};
use crate::history::{EventKind, History};
use crate::scenario::Scenario;
use std::collections::{BTreeMap, BTreeSet};

/// Most lanes: clients are limited to 64, plus etcd and storage and a few strays.
const LANES_MAX: usize = 80;

/// One colour per client, cycling; chosen to be told apart on white and in print.
const CLIENT_COLOURS: [&str; 8] = [
    "#1f77b4", "#9467bd", "#17becf", "#8c564b", "#e377c2", "#bcbd22", "#7f7f7f", "#2ca02c",
];

/// What a lane is of: it decides the lane's height and what is drawn on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum LaneKind {
    Client,
    Etcd,
    Storage,
}

/// One node's lane: its place down the page and its colour.
#[derive(Debug, Clone)]
pub(super) struct Lane {
    pub(super) node: String,
    pub(super) kind: LaneKind,
    pub(super) top_px: f64,
    pub(super) height_px: f64,
    pub(super) colour: &'static str,
}

/// A span of time on one node's lane, with what kind of thing it is.
#[derive(Debug, Clone)]
pub(super) struct Block {
    pub(super) node: String,
    pub(super) kind: BlockKind,
    pub(super) start_us: u64,
    pub(super) end_us: u64,
    pub(super) label: String,
}

/// What a [`Block`] is (each drawn with its own pattern).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum BlockKind {
    Partition,
    Hold,
    Pause,
    Crash,
}

/// A lock holding of one client: believed from `start_us` to `end_us`, held by etcd from
/// `start_us` to `etcd_end_us`.
#[derive(Debug, Clone)]
pub(super) struct Holding {
    pub(super) node: String,
    pub(super) token: i64,
    pub(super) start_us: u64,
    pub(super) end_us: u64,
    pub(super) etcd_end_us: u64,
    /// Why the belief ended.
    pub(super) end_why: &'static str,
    /// The client's last operation (send, answer or refusal) under this holding.
    pub(super) last_op_us: Option<u64>,
}

/// A lease session as the client knows it.
#[derive(Debug, Clone)]
pub(super) struct Session {
    pub(super) node: String,
    pub(super) lease_id: i64,
    pub(super) start_us: u64,
    pub(super) end_us: u64,
}

/// One lane per node: the scenario's clients, any other client seen in the history, etcd,
/// storage.
pub(super) fn lanes(history: &History, scenario: &Scenario) -> Vec<Lane> {
    let mut clients: Vec<String> = scenario.client_names();
    let known: BTreeSet<String> = clients.iter().cloned().collect();
    let strays: BTreeSet<&str> = history
        .events
        .iter()
        .map(|e| e.node.as_str())
        // Network-wide faults are notes about every link, not a node with a lane.
        .filter(|n| *n != ETCD && *n != STORAGE && *n != NETWORK && !known.contains(*n))
        .collect();
    clients.extend(strays.into_iter().map(str::to_string));
    clients.truncate(LANES_MAX - 2);
    let mut lanes = Vec::with_capacity(clients.len() + 2);
    let mut top_px = TITLE_PX + AXIS_PX;
    for (i, node) in clients.into_iter().enumerate() {
        lanes.push(Lane {
            node,
            kind: LaneKind::Client,
            top_px,
            height_px: CLIENT_LANE_PX,
            colour: CLIENT_COLOURS[i % CLIENT_COLOURS.len()],
        });
        top_px += CLIENT_LANE_PX;
    }
    for (node, kind, height_px) in [
        (ETCD, LaneKind::Etcd, ETCD_LANE_PX),
        (STORAGE, LaneKind::Storage, STORAGE_LANE_PX),
    ] {
        lanes.push(Lane {
            node: node.to_string(),
            kind,
            top_px,
            height_px,
            colour: "#444",
        });
        top_px += height_px;
    }
    lanes
}

/// Windows of a degraded network (start, end, what), from the nemesis' notes.
pub(super) fn network_windows(
    events: &[crate::history::Event],
    end_us: u64,
) -> Vec<(u64, u64, String)> {
    let mut windows = Vec::new();
    let mut open: Option<(u64, String)> = None;
    for e in events.iter().filter(|e| e.node == NETWORK) {
        let EventKind::Fault { what } = &e.kind else {
            continue;
        };
        if what.starts_with("network degraded") {
            open.get_or_insert((e.true_us, what.clone()));
        } else if let Some((start_us, label)) = open.take() {
            windows.push((start_us, e.true_us, label));
        }
    }
    if let Some((start_us, label)) = open {
        windows.push((start_us, end_us, format!("{label} (to the end)")));
    }
    windows
}

/// Pauses, crashes, partitions and held requests as spans, from the nemesis' notes.
///
/// A node is paused or running (madsim keeps no count of pauses), so a second "paused"
/// while paused changes nothing and the first "resumed" ends the span.
pub(super) fn blocks(events: &[crate::history::Event], end_us: u64) -> Vec<Block> {
    let mut open: BTreeMap<(String, BlockKind, String), (u64, String)> = BTreeMap::new();
    let mut done = Vec::new();
    for e in events {
        let EventKind::Fault { what } = &e.kind else {
            continue;
        };
        let node = e.node.clone();
        let (kind, peer, opens) = if what.starts_with("paused") {
            (BlockKind::Pause, String::new(), true)
        } else if what == "resumed" {
            (BlockKind::Pause, String::new(), false)
        } else if what.starts_with("crashed") {
            (BlockKind::Crash, String::new(), true)
        } else if what == "restarted" {
            (BlockKind::Crash, String::new(), false)
        } else if let Some(peer) = what.strip_prefix("partitioned from ") {
            (BlockKind::Partition, peer.to_string(), true)
        } else if let Some(rest) = what.strip_prefix("partition from ") {
            let peer = rest.strip_suffix(" healed").unwrap_or(rest);
            (BlockKind::Partition, peer.to_string(), false)
        } else if what.starts_with("storage request held") {
            (BlockKind::Hold, String::new(), true)
        } else if what == "held storage request released" {
            (BlockKind::Hold, String::new(), false)
        } else {
            continue;
        };
        let key = (node.clone(), kind, peer.clone());
        if opens {
            let label = match kind {
                BlockKind::Pause => what.clone(),
                BlockKind::Crash => "crashed".to_string(),
                BlockKind::Partition => format!("partitioned from {peer}"),
                BlockKind::Hold => "storage request held".to_string(),
            };
            open.entry(key).or_insert((e.true_us, label));
        } else if let Some((start_us, label)) = open.remove(&key) {
            close_block(&mut done, node, kind, peer, start_us, e.true_us, label);
        }
    }
    for ((node, kind, peer), (start_us, label)) in open {
        let label = format!("{label} (to the end)");
        close_block(&mut done, node, kind, peer, start_us, end_us, label);
    }
    // Drawn wide ones first would hide nothing (they are translucent), but a fixed order
    // keeps the bytes the same whatever the map did.
    done.sort_by(|a, b| (a.start_us, &a.node, a.kind).cmp(&(b.start_us, &b.node, b.kind)));
    done
}

fn close_block(
    done: &mut Vec<Block>,
    node: String,
    kind: BlockKind,
    peer: String,
    start_us: u64,
    end_us: u64,
    label: String,
) {
    // A partition is a fact about two nodes: show it on the other one's lane too.
    if kind == BlockKind::Partition {
        done.push(Block {
            node: peer,
            kind,
            start_us,
            end_us,
            label: format!("partitioned from {node}"),
        });
    }
    done.push(Block {
        node,
        kind,
        start_us,
        end_us,
        label,
    });
}

/// Lease sessions as each client knows them: granted until lost, released, given up, or the
/// node crashed.
pub(super) fn sessions(events: &[crate::history::Event], end_us: u64) -> Vec<Session> {
    let mut open: BTreeMap<&str, Session> = BTreeMap::new();
    let mut done = Vec::new();
    for e in events {
        let node = e.node.as_str();
        let closes = match &e.kind {
            EventKind::LeaseGranted { lease_id, .. } => {
                if let Some(mut s) = open.remove(node) {
                    s.end_us = e.true_us;
                    done.push(s);
                }
                open.insert(
                    node,
                    Session {
                        node: node.to_string(),
                        lease_id: *lease_id,
                        start_us: e.true_us,
                        end_us,
                    },
                );
                false
            }
            EventKind::LeaseLost { lease_id, .. }
            | EventKind::Released { lease_id, .. }
            | EventKind::CampaignTimedOut { lease_id } => {
                open.get(node).is_some_and(|s| s.lease_id == *lease_id)
            }
            EventKind::Fault { what } => what.starts_with("crashed"),
            EventKind::NodeStarted { .. } => true,
            _ => false,
        };
        if closes {
            if let Some(mut s) = open.remove(node) {
                s.end_us = e.true_us;
                done.push(s);
            }
        }
    }
    done.extend(open.into_values());
    done.sort_by(|a, b| (a.start_us, &a.node).cmp(&(b.start_us, &b.node)));
    done
}

/// Lock holdings: believed from `Acquired` to release, lease loss or crash; held by etcd until
/// then or until another client acquires a higher token, whichever is first. A client that
/// learns of its lock after a higher token was already handed out never held it at etcd.
pub(super) fn holdings(events: &[crate::history::Event], end_us: u64) -> Vec<Holding> {
    let mut open: BTreeMap<&str, Holding> = BTreeMap::new();
    let mut done: Vec<Holding> = Vec::new();
    let mut highest_token = i64::MIN;
    for e in events {
        let node = e.node.as_str();
        match &e.kind {
            EventKind::Acquired { token, .. } => {
                // etcd has moved on from every holding of a lower token by someone else.
                for h in open.values_mut() {
                    if h.node != node && h.token < *token && h.etcd_end_us > e.true_us {
                        h.etcd_end_us = e.true_us;
                    }
                }
                if let Some(mut h) = open.remove(node) {
                    h.end_us = e.true_us;
                    h.etcd_end_us = h.etcd_end_us.min(e.true_us);
                    done.push(h);
                }
                let late = *token < highest_token;
                highest_token = highest_token.max(*token);
                open.insert(
                    node,
                    Holding {
                        node: node.to_string(),
                        token: *token,
                        start_us: e.true_us,
                        end_us,
                        etcd_end_us: if late { e.true_us } else { end_us },
                        end_why: "held to the end",
                        last_op_us: None,
                    },
                );
            }
            EventKind::Invoke { .. }
            | EventKind::Complete { .. }
            | EventKind::LocalCheckRefused { .. } => {
                if let Some(h) = open.get_mut(node) {
                    h.last_op_us = Some(e.true_us);
                }
            }
            EventKind::Released { token, .. } => {
                // `Released` is recorded after resign and revoke have been answered, while
                // the next holder may already have the lock: the client stopped relying on
                // it when its work ended, at its last operation.
                let last_op_us = open.get(node).and_then(|h| h.last_op_us);
                let end_us = last_op_us.unwrap_or(e.true_us);
                close_holding(&mut open, &mut done, node, end_us, "released", |h| {
                    h.token == *token
                });
            }
            EventKind::LeaseLost { .. } => {
                close_holding(&mut open, &mut done, node, e.true_us, "lease lost", |_| {
                    true
                });
            }
            EventKind::Fault { what } if what.starts_with("crashed") => {
                close_holding(&mut open, &mut done, node, e.true_us, "crashed", |_| true);
            }
            _ => {}
        }
    }
    done.extend(open.into_values());
    done.sort_by(|a, b| (a.start_us, &a.node).cmp(&(b.start_us, &b.node)));
    done
}

fn close_holding(
    open: &mut BTreeMap<&str, Holding>,
    done: &mut Vec<Holding>,
    node: &str,
    true_us: u64,
    why: &'static str,
    matches: impl Fn(&Holding) -> bool,
) {
    if open.get(node).is_some_and(matches) {
        let mut h = open.remove(node).expect("checked above");
        h.end_us = true_us.max(h.start_us);
        h.etcd_end_us = h.etcd_end_us.min(true_us);
        h.end_why = why;
        done.push(h);
    }
}
