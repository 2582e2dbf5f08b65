//! What a timeline draws, as plain data built from a [`History`] (and the [`Scenario`]'s
//! clients and etcd members): one lane per node, and spans of time on the lanes (lease
//! sessions, lock holdings, faults, windows of a degraded network). No SVG here.

use super::layout::{
    AXIS_PX, CLIENT_LANE_PX, ETCD_LANE_PX, MEMBER_LANE_PX, REDIS_LANE_PX, STORAGE_LANE_PX, TITLE_PX,
};
use crate::fault::{is_etcd, ETCD, NETWORK, STORAGE};
use crate::history::{EventKind, History};
use crate::lock::ServiceKind;
use crate::scenario::Scenario;
use std::collections::{BTreeMap, BTreeSet};

/// Most lanes: clients are limited to 64, plus etcd, its members (at most 7) or the Redis
/// nodes, storage and a few strays.
const LANES_MAX: usize = 80;
/// Most member lanes, strays included.
const MEMBERS_MAX: usize = 9;

/// One colour per client, cycling; chosen to be told apart on white and in print.
const CLIENT_COLOURS: [&str; 8] = [
    "#1f77b4", "#9467bd", "#17becf", "#8c564b", "#e377c2", "#bcbd22", "#7f7f7f", "#2ca02c",
];

/// What a lane is of: it decides the lane's height and what is drawn on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum LaneKind {
    Client,
    /// The lock as the cluster holds it for the clients.
    Etcd,
    /// One member of a cluster of several: its faults and when it led.
    Member,
    /// One Redis node (`service = "redlock"`): who holds the lock key there, its clock steps,
    /// its crashes and what its restarts kept.
    Redis,
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
/// the members of a cluster of several (and any member seen in the history), storage.
///
/// A name of etcd's (`etcd`, a member `etcd2`, a role `etcd:leader` that a note could not
/// resolve) is never a client's: roles get no lane.
pub(super) fn lanes(history: &History, scenario: &Scenario) -> Vec<Lane> {
    let mut clients: Vec<String> = scenario.client_names();
    let redlock = scenario.service == ServiceKind::Redlock;
    let mut members: Vec<String> = match scenario.etcd_member_names() {
        _ if redlock => Vec::new(),
        names if names.len() > 1 => names,
        _ => Vec::new(),
    };
    // A Redlock world has Redis nodes instead of etcd: a lane each, and no etcd lane.
    let redis: Vec<String> = match redlock {
        true => scenario.redis.node_names(),
        false => Vec::new(),
    };
    assert!(redis.len() <= crate::redis::NODES_MAX);
    let known: BTreeSet<String> = clients
        .iter()
        .chain(&members)
        .chain(&redis)
        .cloned()
        .collect();
    let strays: BTreeSet<&str> = history
        .events
        .iter()
        .map(|e| e.node.as_str())
        // Network-wide faults are notes about every link, not a node with a lane.
        .filter(|n| *n != STORAGE && *n != NETWORK && !known.contains(*n))
        .collect();
    let (etcd_strays, client_strays): (Vec<&str>, Vec<&str>) =
        strays.into_iter().partition(|n| is_etcd(n));
    clients.extend(client_strays.into_iter().map(str::to_string));
    members.extend(
        etcd_strays
            .into_iter()
            .filter(|n| *n != ETCD && !n.contains(':'))
            .map(str::to_string),
    );
    // Members by number: etcd10 after etcd9.
    members.sort_by_key(|m| (m.len(), m.clone()));
    members.truncate(MEMBERS_MAX);
    clients.truncate(LANES_MAX - 2 - members.len() - redis.len());
    let mut lanes = Vec::with_capacity(clients.len() + members.len() + redis.len() + 2);
    let mut top_px = TITLE_PX + AXIS_PX;
    let mut push = |node: String, kind, height_px, colour| {
        lanes.push(Lane {
            node,
            kind,
            top_px,
            height_px,
            colour,
        });
        top_px += height_px;
    };
    for (i, node) in clients.into_iter().enumerate() {
        let colour = CLIENT_COLOURS[i % CLIENT_COLOURS.len()];
        push(node, LaneKind::Client, CLIENT_LANE_PX, colour);
    }
    if !redlock {
        push(ETCD.to_string(), LaneKind::Etcd, ETCD_LANE_PX, "#444");
    }
    for node in redis {
        push(node, LaneKind::Redis, REDIS_LANE_PX, "#b71c1c");
    }
    for node in members {
        push(node, LaneKind::Member, MEMBER_LANE_PX, "#444");
    }
    push(
        STORAGE.to_string(),
        LaneKind::Storage,
        STORAGE_LANE_PX,
        "#444",
    );
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

/// What a nemesis note does to a span on its node's lane: which kind of span, the peer of a
/// partition, and whether it opens the span or closes it. `None` for any other note.
///
/// Notes on a member of a cluster may say more after the words matched here: `resumed
/// (leader etcd3 (term 2))`, `partitioned from etcd3 (etcd:leader; leader etcd2 (term 1))`.
pub(super) fn block_note(what: &str) -> Option<(BlockKind, &str, bool)> {
    let span = if what.starts_with("paused") {
        (BlockKind::Pause, "", true)
    } else if what == "resumed" || what.starts_with("resumed (") {
        (BlockKind::Pause, "", false)
    } else if what.starts_with("crashed") {
        (BlockKind::Crash, "", true)
    } else if what == "restarted" {
        (BlockKind::Crash, "", false)
    } else if let Some(rest) = what.strip_prefix("partitioned from ") {
        let peer = rest.split(" (").next().unwrap_or(rest);
        (BlockKind::Partition, peer, true)
    } else if let Some(rest) = what.strip_prefix("partition from ") {
        let peer = rest.strip_suffix(" healed").unwrap_or(rest);
        (BlockKind::Partition, peer, false)
    } else if what.starts_with("storage request held") {
        (BlockKind::Hold, "", true)
    } else if what == "held storage request released" {
        (BlockKind::Hold, "", false)
    } else {
        return None;
    };
    Some(span)
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
        let Some((kind, peer, opens)) = block_note(what) else {
            continue;
        };
        let (node, peer) = (e.node.clone(), peer.to_string());
        let key = (node.clone(), kind, peer.clone());
        if opens {
            let label = match kind {
                BlockKind::Pause | BlockKind::Partition => what.clone(),
                BlockKind::Crash => "crashed".to_string(),
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
    merge_partitions(done)
}

/// One block for the partitions of a node from several peers over the same span (a client
/// cut from every member of a cluster): `partitioned from etcd1, etcd2, etcd3`, not three
/// labels drawn over each other.
fn merge_partitions(blocks: Vec<Block>) -> Vec<Block> {
    let mut merged: Vec<Block> = Vec::with_capacity(blocks.len());
    for b in blocks {
        let same_span = |m: &Block| {
            (m.node.as_str(), m.kind, m.start_us, m.end_us)
                == (b.node.as_str(), BlockKind::Partition, b.start_us, b.end_us)
        };
        // Only within the run of blocks that start together on this node (sorted so).
        let twin = merged
            .iter_mut()
            .rev()
            .take_while(|m| m.start_us == b.start_us && m.node == b.node)
            .find(|m| same_span(m));
        let peer = b
            .label
            .strip_prefix("partitioned from ")
            .map(|rest| rest.split(' ').next().unwrap_or(rest));
        match (twin, peer) {
            (Some(m), Some(peer)) if m.label.starts_with("partitioned from ") => {
                let at = m.label.find(" (").unwrap_or(m.label.len());
                m.label.insert_str(at, &format!(", {peer}"));
            }
            _ => merged.push(b),
        }
    }
    merged
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
