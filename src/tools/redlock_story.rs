//! Redlock in the history's words: what each Redis node granted to whom and when, what each
//! client believed, and where the two disagree, a *double grant*: a node gives the lock key to
//! a client while another client, granted the same key on that node earlier, still believes it
//! holds the lock. Kleppmann's clock jump, restart and GC pause each end in one.
//!
//! Read from a [`History`] only (the Redis nodes' `Redis*` events and the clients' `Acquired`
//! and `Released`), so the timeline and `demo` tell the same thing, with or without
//! `--cfg madsim`.

use crate::history::{Event, EventKind, History};
use std::collections::BTreeMap;

/// A Redlock value's client and acquisition: `client1:00c0ffee…` is client1's, and the
/// acquisition whose `Acquired` event carries the nonce's half as its `lease_id` (the recipe
/// hands `nonce >> 1` to the fence). `None` for a value of another shape.
pub fn value_owner(value: &str) -> Option<(&str, i64)> {
    let (client, nonce) = value.rsplit_once(':')?;
    let nonce = u64::from_str_radix(nonce, 16).ok()?;
    Some((client, (nonce >> 1) as i64))
}

/// One holding of a key on one Redis node: from the grant to what ended it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeGrant {
    pub node: String,
    pub key: String,
    pub value: String,
    /// The client the value names, or the whole value.
    pub client: String,
    pub start_us: u64,
    pub end_us: u64,
    /// The grant's deadline on the node's wall clock, ms (the last, if it was extended).
    pub deadline_ms: i64,
    /// What ended it: `deleted`, `expired` (passive expiry seen), `lost in a restart`, or
    /// `held to the end`.
    pub end_why: &'static str,
}

/// What a client believed: it holds the lock from `Acquired` until it released it, lost it
/// or crashed (or the run ended).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Belief {
    pub client: String,
    /// The acquisition's `lease_id` (under Redlock, half its nonce).
    pub lease_id: i64,
    pub start_us: u64,
    pub end_us: u64,
}

/// A node that granted the key to `later` while `earlier`, granted it there before, still
/// believed it held the lock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DoubleGrant {
    pub node: String,
    pub earlier: NodeGrant,
    pub later: NodeGrant,
    /// Until when the earlier client believed it held the lock.
    pub believed_until_us: u64,
}

/// Every grant of every key on every Redis node, in grant order.
pub fn node_grants(history: &History) -> Vec<NodeGrant> {
    let end_us = history.events.last().map_or(0, |e| e.true_us);
    let mut open: BTreeMap<(&str, &str), NodeGrant> = BTreeMap::new();
    let mut done = Vec::new();
    let mut close = |open: &mut BTreeMap<_, NodeGrant>, k, at_us, why| {
        if let Some(mut g) = open.remove(&k) {
            g.end_us = at_us;
            g.end_why = why;
            done.push(g);
        }
    };
    for e in &history.events {
        let node = e.node.as_str();
        match &e.kind {
            EventKind::RedisGranted {
                key,
                value,
                deadline_ms,
            } => {
                // A grant finds its key absent: anything open there ended unseen.
                close(&mut open, (node, key), e.true_us, "gone");
                let client = value_owner(value).map_or(value.as_str(), |(c, _)| c);
                let g = NodeGrant {
                    node: node.to_string(),
                    key: key.clone(),
                    value: value.clone(),
                    client: client.to_string(),
                    start_us: e.true_us,
                    end_us,
                    deadline_ms: *deadline_ms,
                    end_why: "held to the end",
                };
                open.insert((node, key), g);
            }
            EventKind::RedisExtended {
                key, deadline_ms, ..
            } => {
                if let Some(g) = open.get_mut(&(node, key.as_str())) {
                    g.deadline_ms = *deadline_ms;
                }
            }
            EventKind::RedisDeleted { key, .. } => {
                close(&mut open, (node, key), e.true_us, "deleted")
            }
            EventKind::RedisExpired { key, .. } => {
                close(&mut open, (node, key), e.true_us, "expired")
            }
            EventKind::RedisBooted { lost, .. } => {
                for key in lost.keys() {
                    close(&mut open, (node, key), e.true_us, "lost in a restart");
                }
            }
            _ => {}
        }
    }
    done.extend(open.into_values());
    done.sort_by(|a, b| (a.start_us, &a.node).cmp(&(b.start_us, &b.node)));
    done
}

/// What each client believed, in the order of acquisition.
pub fn beliefs(history: &History) -> Vec<Belief> {
    let end_us = history.events.last().map_or(0, |e| e.true_us);
    let mut open: BTreeMap<&str, Belief> = BTreeMap::new();
    let mut done = Vec::new();
    for e in &history.events {
        let node = e.node.as_str();
        let ends = match &e.kind {
            EventKind::Acquired { lease_id, .. } => {
                let b = Belief {
                    client: node.to_string(),
                    lease_id: *lease_id,
                    start_us: e.true_us,
                    end_us,
                };
                if let Some(mut old) = open.insert(node, b) {
                    old.end_us = e.true_us;
                    done.push(old);
                }
                false
            }
            EventKind::Released { .. } | EventKind::LeaseLost { .. } => true,
            EventKind::Fault { what } => what.starts_with("crashed"),
            EventKind::NodeStarted { .. } => true,
            _ => false,
        };
        if ends {
            if let Some(mut b) = open.remove(node) {
                b.end_us = e.true_us;
                done.push(b);
            }
        }
    }
    done.extend(open.into_values());
    done.sort_by_key(|b| b.start_us);
    done
}

/// The beliefs by their client and `lease_id`: what a grant's value names.
pub type BeliefIndex<'a> = BTreeMap<(&'a str, i64), &'a Belief>;

/// Indexes `beliefs` by client and `lease_id` (each acquisition's is unique: a nonce per
/// campaign).
pub fn index(beliefs: &[Belief]) -> BeliefIndex<'_> {
    beliefs
        .iter()
        .map(|b| ((b.client.as_str(), b.lease_id), b))
        .collect()
}

/// The belief a grant's value was taken in, if its client acquired the lock with it.
pub fn belief_of<'a>(grant: &NodeGrant, index: &BeliefIndex<'a>) -> Option<&'a Belief> {
    let (client, lease_id) = value_owner(&grant.value)?;
    index.get(&(client, lease_id)).copied()
}

/// Whether the acquisition of `b` stood on grant `g`: taken before it, alive at it.
pub fn stood_on(g: &NodeGrant, b: &Belief) -> bool {
    g.start_us <= b.start_us && b.start_us < g.end_us
}

/// Every double grant: a grant on a node that starts while an earlier grant's client (on the
/// same node and key, to another client) still believes it holds the lock, the earlier grant
/// having been part of that client's acquisition and freed by the node itself (expired, or
/// lost in a restart), not deleted by its owner's unlock.
///
/// One pass in grant order, keeping per node and key only the earlier grants whose client
/// still believes: a run of many grants costs a few comparisons each.
pub fn double_grants(history: &History) -> Vec<DoubleGrant> {
    let grants = node_grants(history);
    let beliefs = beliefs(history);
    let index = index(&beliefs);
    // Per node and key: earlier grants freed by the node under a belief, with its end.
    let mut live: BTreeMap<(&str, &str), Vec<(&NodeGrant, u64)>> = BTreeMap::new();
    let mut found = Vec::new();
    for later in &grants {
        let earlier = live.entry((&later.node, &later.key)).or_default();
        // A belief that ended before this grant can make no double grant again.
        earlier.retain(|(_, until_us)| later.start_us < *until_us);
        for (e, until_us) in earlier.iter() {
            if e.client != later.client && e.end_us <= later.start_us {
                found.push(DoubleGrant {
                    node: later.node.clone(),
                    earlier: (*e).clone(),
                    later: later.clone(),
                    believed_until_us: *until_us,
                });
            }
        }
        // The node freed it on its own (not the owner's unlock) while its client believed.
        if let Some(b) = belief_of(later, &index) {
            if stood_on(later, b) && later.end_why != "deleted" && later.end_us < b.end_us {
                earlier.push((later, b.end_us));
            }
        }
        assert!(earlier.len() <= grants.len());
    }
    found
}

/// When each belief stood on fewer than `quorum` nodes, by client and start: the end of the
/// grant under its acquisition whose loss left fewer than `quorum` nodes holding its key (a
/// deletion by its own unlock does not count). A belief that kept a quorum is absent.
pub fn quorum_losses(history: &History, quorum: usize) -> BTreeMap<(String, u64), u64> {
    let grants = node_grants(history);
    let beliefs = beliefs(history);
    let index = index(&beliefs);
    let mut ends: BTreeMap<(&str, u64), (u64, Vec<u64>)> = BTreeMap::new();
    for g in &grants {
        let Some(b) = belief_of(g, &index).filter(|b| stood_on(g, b)) else {
            continue;
        };
        let end_us = match g.end_why {
            "deleted" => b.end_us,
            _ => g.end_us,
        };
        let entry = ends
            .entry((&b.client, b.start_us))
            .or_insert((b.end_us, Vec::new()));
        entry.1.push(end_us);
    }
    ends.into_iter()
        .filter_map(|((client, start_us), (belief_end_us, mut ends))| {
            ends.sort_unstable();
            // With k nodes holding, the (k - quorum + 1)-th loss leaves quorum - 1.
            let lost_us = ends.len().checked_sub(quorum).map(|i| ends[i])?;
            (lost_us < belief_end_us).then(|| ((client.to_string(), start_us), lost_us))
        })
        .collect()
}

fn secs(us: u64) -> String {
    format!("{:.3} s", us as f64 / 1e6)
}

/// The words of a Redis node's event in a story, `None` for any other event.
pub fn redis_words(kind: &EventKind) -> Option<String> {
    let who = |v: &str| value_owner(v).map_or(v.to_string(), |(c, _)| format!("{c} ({v})"));
    let words = match kind {
        EventKind::RedisGranted {
            key,
            value,
            deadline_ms,
        } => format!("GRANTS {key} to {} until {deadline_ms} ms on its wall clock", who(value)),
        EventKind::RedisRefused {
            key, value, holder, ..
        } => format!(
            "refuses {key} to {}: held by {}",
            value_owner(value).map_or(value.as_str(), |(c, _)| c),
            value_owner(holder).map_or(holder.as_str(), |(c, _)| c)
        ),
        EventKind::RedisDeleted { key, value } => format!("deletes {key} of {}", who(value)),
        EventKind::RedisExtended {
            key,
            value,
            deadline_ms,
        } => format!("extends {key} of {} to {deadline_ms} ms", who(value)),
        EventKind::RedisExpired {
            key,
            value,
            deadline_ms,
            now_ms,
        } => format!(
            "EXPIRES {key} of {}: its wall clock reads {now_ms} ms, past the deadline {deadline_ms} ms",
            who(value)
        ),
        EventKind::RedisCounted { key, value } => format!("counts {key} up to {value}"),
        EventKind::RedisClockStepped { at_ms, delta_ms } => format!(
            "** wall clock stepped {delta_ms:+} ms at {} (seen at its next command)",
            secs(at_ms.saturating_mul(1000))
        ),
        EventKind::RedisBooted {
            boot: 1,
            persistence,
            ..
        } => format!("starts (persistence {persistence})"),
        EventKind::RedisBooted {
            boot,
            persistence,
            loaded,
            kept,
            lost,
        } => {
            let names = |m: &BTreeMap<String, String>| {
                m.iter()
                    .map(|(k, v)| format!("{k} of {}", value_owner(v).map_or(v.as_str(), |(c, _)| c)))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            let mut w = format!("boots again (boot {boot}, persistence {persistence}): loads {loaded} key(s)");
            if !kept.is_empty() {
                w.push_str(&format!("; kept {}", names(kept)));
            }
            if !lost.is_empty() {
                w.push_str(&format!("; LOST {}", names(lost)));
            }
            w
        }
        _ => return None,
    };
    Some(words)
}

/// A Redlock run in a few lines: each acquisition with the nodes that granted it, then each
/// double grant. Empty for a history without Redis events.
pub fn summary(history: &History) -> String {
    let grants = node_grants(history);
    let beliefs = beliefs(history);
    let index = index(&beliefs);
    let mut out = String::new();
    for b in &beliefs {
        let nodes: Vec<&str> = grants
            .iter()
            .filter(|g| belief_of(g, &index) == Some(b) && stood_on(g, b))
            .map(|g| g.node.as_str())
            .collect();
        if nodes.is_empty() {
            continue;
        }
        out.push_str(&format!(
            "  {} holds the lock from {} to {}, granted by {} ({} node(s))\n",
            b.client,
            secs(b.start_us),
            secs(b.end_us),
            nodes.join(", "),
            nodes.len()
        ));
    }
    let doubles = double_grants(history);
    for d in &doubles {
        out.push_str(&format!(
            "  DOUBLE GRANT on {}: it granted {} to {} at {} ({}), while {}, granted it there at {}, believed it held the lock until {}\n",
            d.node,
            d.later.key,
            d.later.client,
            secs(d.later.start_us),
            why_free(&d.earlier),
            d.earlier.client,
            secs(d.earlier.start_us),
            secs(d.believed_until_us)
        ));
    }
    if !grants.is_empty() && doubles.is_empty() {
        out.push_str("  no double grant: no node granted the lock to a client while another still held it there\n");
    }
    out
}

/// Why a grant's key was free again, in words.
fn why_free(g: &NodeGrant) -> String {
    match g.end_why {
        "expired" => format!("{}'s key had expired there at {}", g.client, secs(g.end_us)),
        "lost in a restart" => format!(
            "{}'s key was lost in a restart at {}",
            g.client,
            secs(g.end_us)
        ),
        why => format!("{}'s key was {why} at {}", g.client, secs(g.end_us)),
    }
}

/// The storage's verdict on every write, in the order it applied them: "client2 accepted,
/// client1 REJECTED (why)". What a fence did, in the history's words.
pub fn writes_in_words(history: &History) -> String {
    let mut client_of: BTreeMap<u64, &str> = BTreeMap::new();
    let mut words = Vec::new();
    for e in &history.events {
        match &e.kind {
            EventKind::Invoke { op_id, op, .. } if *op == crate::protocol::Op::Write => {
                client_of.insert(*op_id, e.node.as_str());
            }
            EventKind::StorageApplied {
                op_id: Some(id),
                op: crate::protocol::Op::Write,
                accepted,
                err,
                ..
            } => {
                let who = client_of.get(id).copied().unwrap_or("?");
                words.push(match accepted {
                    true => format!("{who}'s write accepted"),
                    false => format!("{who}'s write REJECTED ({err})"),
                });
            }
            _ => {}
        }
    }
    match words.is_empty() {
        true => "no write reached the storage".to_string(),
        false => words.join(", "),
    }
}

/// The events of a history that are Redis nodes' own.
pub fn is_redis_event(e: &Event) -> bool {
    redis_words(&e.kind).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(true_us: u64, node: &str, kind: EventKind) -> Event {
        Event {
            true_us,
            perceived_us: None,
            node: node.into(),
            kind,
        }
    }

    fn granted(us: u64, node: &str, value: &str) -> Event {
        let (key, value) = ("k".to_string(), value.to_string());
        at(
            us,
            node,
            EventKind::RedisGranted {
                key,
                value,
                deadline_ms: 0,
            },
        )
    }

    fn acquired(us: u64, client: &str, nonce: u64) -> Event {
        let lease_id = (nonce >> 1) as i64;
        at(
            us,
            client,
            EventKind::Acquired {
                lease_id,
                token: lease_id,
            },
        )
    }

    fn released(us: u64, client: &str, nonce: u64) -> Event {
        let lease_id = (nonce >> 1) as i64;
        at(
            us,
            client,
            EventKind::Released {
                lease_id,
                token: lease_id,
            },
        )
    }

    #[test]
    fn a_value_names_its_client_and_acquisition() {
        assert_eq!(
            value_owner("client1:000000000000000a"),
            Some(("client1", 5))
        );
        assert_eq!(value_owner("no-colon"), None);
        assert_eq!(value_owner("client1:zz"), None);
    }

    #[test]
    fn every_grant_inside_a_stale_belief_is_a_double_grant_and_an_unlock_is_not() {
        let (key, value) = ("k".to_string(), "client1:2".to_string());
        let expired = EventKind::RedisExpired {
            key,
            value,
            deadline_ms: 0,
            now_ms: 1,
        };
        let deleted = |v: &str| EventKind::RedisDeleted {
            key: "k".into(),
            value: v.into(),
        };
        let history = History {
            events: vec![
                granted(10, "redis1", "client1:2"),
                acquired(20, "client1", 2),
                at(30, "redis1", expired),
                granted(30, "redis1", "client2:4"),
                acquired(35, "client2", 4),
                at(40, "redis1", deleted("client2:4")),
                released(41, "client2", 4),
                // client 3 takes the key after client 2's unlock: client 1 still believes.
                granted(50, "redis1", "client3:6"),
                acquired(55, "client3", 6),
                at(60, "redis1", deleted("client3:6")),
                released(61, "client3", 6),
                released(70, "client1", 2),
                // After client 1's belief: nothing more.
                granted(80, "redis1", "client2:8"),
            ],
            ..History::default()
        };
        let doubles = double_grants(&history);
        let pairs: Vec<(&str, &str, u64)> = doubles
            .iter()
            .map(|d| {
                (
                    d.earlier.client.as_str(),
                    d.later.client.as_str(),
                    d.later.start_us,
                )
            })
            .collect();
        assert_eq!(
            pairs,
            [("client1", "client2", 30), ("client1", "client3", 50)]
        );
        assert!(doubles.iter().all(|d| d.believed_until_us == 70));
        // Client 1 held one node of one: a quorum of 1 lost at the expiry.
        let losses = quorum_losses(&history, 1);
        assert_eq!(losses.get(&("client1".to_string(), 20)), Some(&30));
        assert_eq!(losses.len(), 1, "{losses:?}");
    }
}
