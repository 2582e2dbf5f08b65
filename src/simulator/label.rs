//! Labels: whether a fault stays inside what the lock protocol assumes.
//!
//! A fault labelled *inside* must never break even unfenced storage (the seeds suite checks
//! it over thousands of seeds of the standard nemesis, on the calibrated etcd model); one
//! labelled *outside* may. Faults are labelled one by one ([`label`]), then together
//! ([`label_plan`]): silences that follow each other closely add up.

use crate::clock::Skew;
use crate::fault::{is_etcd, Fault, Trigger, ETCD_OTHERS, STORAGE};
use crate::scenario::Scenario;
use serde::{Deserialize, Serialize};

/// Whether a fault stays within what the lock protocol assumes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Assumption {
    Inside,
    Outside,
}

/// A fault with its label and the reason for it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct LabelledFault {
    pub fault: Fault,
    pub assumption: Assumption,
    pub why: String,
}

/// Realistic drift bound of a quartz clock with NTP: within it, skew is "inside".
pub const REALISTIC_DRIFT_PPM: i64 = 500;

/// The silence a lease survives: etcd's deadline is the last renewal's arrival plus the TTL,
/// and the client sends the next renewal a renewal period (TTL/3, fencelab's keepalive loop) after the
/// answer, so a renewal can be late by up to `TTL - period - round trip` before the lease
/// ends. Round trip at the scenario's slowest latency.
/// Realistic drift of etcd's and the client's clocks shortens it by up to `2 × 500 ppm × TTL`.
///
/// A Redlock world has no renewal: a holder's lock lasts its validity, at best the TTL less
/// the drift margin (⌊0.01·TTL⌋ + 2 ms) and the round trips of one acquisition (one per node,
/// in turn), and the holder's own work (the longest critical section, a read's and a write's
/// round trips) spends it wherever a pause falls. What is left is the silence a holder
/// survives ([`slack_name`] says which bound it is).
pub fn renewal_slack_ms(scenario: &Scenario) -> u64 {
    if scenario.service == crate::lock::ServiceKind::Zk {
        // A ZooKeeper session: touched by a ping at least every T/3 while connected
        // (`ClientCnxn`), expired no sooner than T after its last touch (`ExpiryQueue`).
        let t_ms = scenario.zk.session_timeout_ms;
        let slack_ms = t_ms.saturating_sub(t_ms / 3 + 2 * scenario.latency_ms.max);
        debug_assert!(slack_ms < t_ms);
        return slack_ms;
    }
    let ttl_ms = scenario.ttl_s as u64 * 1000;
    if scenario.service == crate::lock::ServiceKind::Redlock {
        let drift_ms = crate::lock::Redlock::drift_ms(ttl_ms as i64) as u64;
        let acquire_ms = 2 * scenario.latency_ms.max * scenario.redis.nodes as u64;
        let work_ms = scenario.critical_ms.max + 4 * scenario.latency_ms.max;
        let slack_ms = ttl_ms.saturating_sub(drift_ms + acquire_ms + work_ms);
        debug_assert!(slack_ms < ttl_ms);
        return slack_ms;
    }
    let period_ms = ttl_ms / 3;
    let drift_ms = (ttl_ms * 2 * REALISTIC_DRIFT_PPM as u64).div_ceil(1_000_000);
    let slack_ms = ttl_ms.saturating_sub(period_ms + 2 * scenario.latency_ms.max + drift_ms);
    // A lease survives less than its TTL less a renewal period.
    debug_assert!(slack_ms <= ttl_ms - period_ms);
    slack_ms
}

/// The silence of etcd a lease survives. One member: the renewal slack (a keepalive sent into
/// a stall is answered when it ends). Several: the client gives up on a keepalive after its
/// request timeout and moves to another member, a renewal period later, so a member silent
/// for a request timeout may already cost the lease: the shorter of the two.
pub fn etcd_slack_ms(scenario: &Scenario) -> u64 {
    let slack_ms = renewal_slack_ms(scenario);
    let etcd_ms = match scenario.etcd_members {
        1 => slack_ms,
        _ => slack_ms.min(scenario.request_timeout_ms),
    };
    // Several members never lengthen the silence a lease survives.
    debug_assert!(etcd_ms <= slack_ms);
    etcd_ms
}

/// Labels a fault inside or outside the protocol's assumptions for this scenario.
///
/// A lease survives a silence shorter than the renewal slack ([`renewal_slack_ms`]): a client
/// pause or an etcd stall shorter than it is inside. A partition holds messages, which madsim
/// retransmits with doubling backoff, so they arrive up to twice its length late: one that
/// cuts etcd off is inside when twice its length fits in the slack; one that cuts a client off
/// the storage is inside when twice its length fits in the client's request timeout (after
/// which the client gives up, releases the lock, and a late write could land under the next
/// holder: Kleppmann's delayed packet). A held request likewise. Clock skew is inside when
/// the drift is realistic and every step fits in the client's safety margin (etcd reads a
/// monotonic clock, so its steps never matter). A crash that restarts from scratch and etcd
/// timeouts (clean or ambiguous) are inside.
pub fn label(fault: &Fault, scenario: &Scenario) -> LabelledFault {
    let (assumption, why) =
        late_without_bound(fault, scenario).unwrap_or_else(|| label_alone(fault, scenario));
    // Every label says why in words: the story and the reports print it beside the fault.
    debug_assert!(!why.is_empty(), "{fault:?} labelled without a reason");
    LabelledFault {
        fault: fault.clone(),
        assumption,
        why,
    }
}

/// Whether a fault's node names a Redis node (`redis`, `redis:all`, `redis3`, `redis:3`).
fn is_redis(node: &str) -> bool {
    node.starts_with("redis")
}

/// A ZooKeeper server, a role of one (`zk:leader`) or all of them.
fn is_zk(node: &str) -> bool {
    node.starts_with("zk")
}

/// The bound named in a label's reason: the renewal slack (etcd), or the lock's validity
/// (Redlock, which renews nothing).
pub fn slack_name(scenario: &Scenario) -> &'static str {
    match scenario.service {
        crate::lock::ServiceKind::Etcd => "renewal slack",
        crate::lock::ServiceKind::Redlock => "lock's validity",
        crate::lock::ServiceKind::Zk => "session's slack",
    }
}
/// The bound named in a label's reason: the client's request timeout.
const REQUEST_TIMEOUT: &str = "request timeout";

/// Inside when `ms` is shorter than `bound_ms`, with the reason in words.
fn within(ms: u64, bound_ms: u64, what: &str, bound: &str) -> (Assumption, String) {
    if ms < bound_ms {
        (
            Assumption::Inside,
            format!("{what} of {ms} ms is shorter than the {bound} of {bound_ms} ms"),
        )
    } else {
        (
            Assumption::Outside,
            format!("{what} of {ms} ms reaches the {bound} of {bound_ms} ms"),
        )
    }
}

/// Outside for every timing fault when the scenario loses messages: with loss on every link, a
/// message lost again and again is late without bound, so no bound on silence or delay holds.
fn late_without_bound(fault: &Fault, scenario: &Scenario) -> Option<(Assumption, String)> {
    let timing = matches!(
        fault,
        Fault::Pause { .. }
            | Fault::Partition { .. }
            | Fault::HoldRequest { .. }
            | Fault::Network { .. }
    );
    (timing && scenario.loss_rate > 0.0).then(|| {
        (
            Assumption::Outside,
            format!(
                "the scenario loses {} of messages: a message lost again and again is late without bound",
                scenario.loss_rate
            ),
        )
    })
}

/// The label of a fault taken alone, on a network that loses nothing.
fn label_alone(fault: &Fault, scenario: &Scenario) -> (Assumption, String) {
    match fault {
        Fault::Pause {
            duration_ms, node, ..
        } => pause_label(node, *duration_ms, scenario),
        Fault::Partition {
            a, b, duration_ms, ..
        } => partition_label(a, b, *duration_ms, scenario),
        Fault::HoldRequest { duration_ms, .. } => within(
            2 * duration_ms,
            scenario.request_timeout_ms,
            "a held storage request's delay",
            REQUEST_TIMEOUT,
        ),
        Fault::Skew { node, skew } if is_etcd(node) => etcd_skew_label(skew),
        Fault::Skew { node, skew } if is_redis(node) => redis_skew_label(skew, scenario),
        Fault::Skew { skew, .. } => client_skew_label(skew, scenario),
        Fault::Crash { node, .. } if is_etcd(node) => (
            Assumption::Outside,
            "a crashed member's clients time out and move; fencelab bounds none of it".into(),
        ),
        Fault::Crash { .. } => (
            Assumption::Inside,
            "crash-restart starts a new session".into(),
        ),
        Fault::RevokeLease { .. } => (
            Assumption::Outside,
            "the lock service ends a lease its holder still believes valid".into(),
        ),
        Fault::EtcdTimeouts { .. } => (Assumption::Inside, "timeouts never commit".into()),
        Fault::EtcdStaleLeader { .. } => (
            Assumption::Outside,
            "etcd issue 15247: a stale leader's renewals and revocations break the lease's promise"
                .into(),
        ),
        Fault::EtcdAmbiguousTimeouts { .. } => (
            Assumption::Inside,
            "etcd documents timeouts as indeterminate; a client that treats them so stays safe"
                .into(),
        ),
        Fault::Network {
            latency_ms,
            loss_permille,
            ..
        } => network_label(
            latency_ms.max,
            *loss_permille,
            renewal_slack_ms(scenario),
            scenario.request_timeout_ms,
        ),
    }
}

/// A pause is inside while shorter than the renewal slack; an etcd stall while shorter than
/// etcd's slack ([`etcd_slack_ms`]).
fn pause_label(node: &str, duration_ms: u64, scenario: &Scenario) -> (Assumption, String) {
    if is_etcd(node) {
        within(
            duration_ms,
            etcd_slack_ms(scenario),
            "etcd stall",
            slack_name(scenario),
        )
    } else {
        let slack = slack_name(scenario);
        within(duration_ms, renewal_slack_ms(scenario), "pause", slack)
    }
}

/// A partition by the pair it cuts: between clients or between etcd and the storage it cuts
/// nothing used; inside the cluster it moves leadership; between etcd and a client, twice its
/// length (retransmission) must fit in etcd's slack; between a client and the storage, in the
/// request timeout. On ZooKeeper: between a client and a server, twice its length must fit in
/// the session's slack; between two servers, its length (a follower's touches wait in it).
fn partition_label(
    a: &str,
    b: &str,
    duration_ms: u64,
    scenario: &Scenario,
) -> (Assumption, String) {
    let touches_etcd = is_etcd(a) || is_etcd(b);
    if a.starts_with("client") && b.starts_with("client") {
        (
            Assumption::Inside,
            "clients do not talk to each other".into(),
        )
    } else if is_etcd(a) && (is_etcd(b) || b == ETCD_OTHERS) {
        (
            Assumption::Outside,
            "a partition inside the cluster moves leadership; fencelab bounds none of it".into(),
        )
    } else if touches_etcd && (a == STORAGE || b == STORAGE) {
        (
            Assumption::Inside,
            "etcd and the storage do not talk".into(),
        )
    } else if touches_etcd {
        within(
            2 * duration_ms,
            etcd_slack_ms(scenario),
            "a retransmitted etcd message's delay",
            slack_name(scenario),
        )
    } else if is_zk(a) && is_zk(b) {
        // A follower cut from its leader keeps answering its clients' pings while their
        // touches wait in its table: past the session's slack the leader expires sessions the
        // follower still calls live (`node_cut.rs`).
        within(
            duration_ms,
            renewal_slack_ms(scenario),
            "a follower's touches held from its leader",
            slack_name(scenario),
        )
    } else if is_zk(a) || is_zk(b) {
        within(
            2 * duration_ms,
            renewal_slack_ms(scenario),
            "a retransmitted ZooKeeper message's delay",
            slack_name(scenario),
        )
    } else if is_redis(a) || is_redis(b) {
        // Redlock is built for unreachable nodes: a minority cut off costs no quorum, and a SET
        // that lands late holds a value nobody holds the lock with, undone by the unlock of
        // every node or by its TTL (availability, not safety).
        (
            Assumption::Inside,
            "Redlock tolerates unreachable Redis nodes; a late SET only delays the next holder"
                .into(),
        )
    } else {
        within(
            2 * duration_ms,
            scenario.request_timeout_ms,
            "a retransmitted storage request's delay",
            REQUEST_TIMEOUT,
        )
    }
}

/// etcd's clock: inside while its drift is realistic (its lessor reads a monotonic clock, so
/// steps never matter).
fn etcd_skew_label(skew: &Skew) -> (Assumption, String) {
    if skew.drift_ppm.abs() > REALISTIC_DRIFT_PPM {
        (
            Assumption::Outside,
            format!(
                "etcd's clock drifts {} ppm, beyond ±{REALISTIC_DRIFT_PPM} ppm",
                skew.drift_ppm
            ),
        )
    } else {
        (
            Assumption::Inside,
            "realistic drift; etcd's lessor ignores steps (monotonic clock)".into(),
        )
    }
}

/// A Redis node's wall clock, which its expiries read: inside while every step and the drift
/// over a TTL fit in Redlock's drift margin, ⌊0.01·TTL⌋ + 2 ms (the Redlock doc assumes clocks
/// that count time at about the same rate; a step moves every deadline on the node).
fn redis_skew_label(skew: &Skew, scenario: &Scenario) -> (Assumption, String) {
    let ttl_ms = scenario.ttl_s * 1000;
    let margin_ms = crate::lock::Redlock::drift_ms(ttl_ms);
    let step_ms = largest_step_ms(skew);
    let drift_ms =
        (skew.drift_ppm.unsigned_abs() * ttl_ms.unsigned_abs()).div_ceil(1_000_000) as i64;
    if step_ms > margin_ms || drift_ms > margin_ms {
        (
            Assumption::Outside,
            format!("a wall-clock step of {step_ms} ms, or {drift_ms} ms of drift over a TTL, exceeds Redlock's drift margin of {margin_ms} ms"),
        )
    } else {
        (
            Assumption::Inside,
            format!("steps and drift within Redlock's drift margin of {margin_ms} ms"),
        )
    }
}

/// The largest step of a clock, either way, ms (0 for none).
fn largest_step_ms(skew: &Skew) -> i64 {
    skew.steps
        .iter()
        .map(|s| s.delta_ms.abs())
        .max()
        .unwrap_or(0)
}

/// A client's clock: inside while its drift is realistic and every step fits in the client's
/// safety margin.
fn client_skew_label(skew: &Skew, scenario: &Scenario) -> (Assumption, String) {
    let margin_ms = scenario.lease_check_margin_ms.unwrap_or(0) as i64;
    let step_ms = largest_step_ms(skew);
    if skew.drift_ppm.abs() > REALISTIC_DRIFT_PPM {
        (
            Assumption::Outside,
            format!(
                "drift {} ppm is beyond ±{REALISTIC_DRIFT_PPM} ppm",
                skew.drift_ppm
            ),
        )
    } else if step_ms > margin_ms {
        (
            Assumption::Outside,
            format!("a clock step of {step_ms} ms exceeds the safety margin of {margin_ms} ms"),
        )
    } else {
        (
            Assumption::Inside,
            "realistic drift, steps within the margin".into(),
        )
    }
}

/// A degraded network is inside while a round trip stays within the renewal slack and the
/// request timeout, and no message is lost. Why any loss is outside: madsim retransmits a
/// lost message with doubling backoff, so a message lost several times in a row is late by
/// an unbounded time.
fn network_label(
    latency_ms_max: u64,
    loss_permille: u32,
    slack_ms: u64,
    request_ms: u64,
) -> (Assumption, String) {
    let round_trip_ms = 2 * latency_ms_max;
    if round_trip_ms >= slack_ms.min(request_ms) {
        (
            Assumption::Outside,
            format!(
                "a round trip of up to {round_trip_ms} ms reaches the renewal slack ({slack_ms} ms) or the request timeout ({request_ms} ms)"
            ),
        )
    } else if loss_permille > 0 {
        (
            Assumption::Outside,
            format!("{loss_permille}‰ loss: a message lost again and again is late without bound"),
        )
    } else {
        (
            Assumption::Inside,
            format!(
                "round trips of up to {round_trip_ms} ms without loss stay within the renewal slack ({slack_ms} ms) and the request timeout ({request_ms} ms)"
            ),
        )
    }
}

/// The plan kept to the faults [`label_plan`] labels inside: what must never break even
/// unfenced storage.
pub fn keep_inside(plan: &crate::fault::FaultPlan, scenario: &Scenario) -> crate::fault::FaultPlan {
    crate::fault::FaultPlan {
        faults: label_plan(&plan.faults, scenario)
            .into_iter()
            .filter(|l| l.assumption == Assumption::Inside)
            .map(|l| l.fault)
            .collect(),
    }
}

/// Labels a whole plan: each fault alone ([`label`]), then the silences of each client's
/// lease renewals together. A client's timed pauses, every etcd stall, and partitions between
/// it and etcd (twice their length, for retransmission) are silences; two that lie less than
/// a renewal period and a round trip apart join into one (the renewal between them may not
/// complete); an aimed pause strikes at a moment not known in advance, so it may join any of
/// them; a degraded-network window adds its round trip to a silence it overlaps. Every fault
/// in a joined silence that reaches the renewal slack is outside.
pub fn label_plan(faults: &[Fault], scenario: &Scenario) -> Vec<LabelledFault> {
    let mut labels: Vec<LabelledFault> = faults.iter().map(|f| label(f, scenario)).collect();
    let windows = network_windows(faults, &labels);
    for client in scenario.client_names() {
        label_client_silences(&mut labels, faults, &windows, &client, scenario);
    }
    // One label per fault, in plan order; together only moves a fault outside, never in.
    assert_eq!(labels.len(), faults.len());
    debug_assert!(labels.iter().zip(faults).all(|(l, f)| l.fault == *f
        && (l.assumption == Assumption::Outside
            || label(f, scenario).assumption == Assumption::Inside)));
    labels
}

/// A degraded-network window labelled inside: its start and end, ms, and the round trip it
/// sets, ms.
type Window = (u64, u64, u64);

/// A client's silence: its start and end, ms, and the indices of the faults in it.
type Silence = (u64, u64, Vec<usize>);

/// The degraded-network windows labelled inside.
fn network_windows(faults: &[Fault], labels: &[LabelledFault]) -> Vec<Window> {
    faults
        .iter()
        .zip(labels)
        .filter_map(|(f, l)| match f {
            Fault::Network {
                at_ms,
                duration_ms,
                latency_ms,
                ..
            } if l.assumption == Assumption::Inside => {
                Some((*at_ms, at_ms + duration_ms, 2 * latency_ms.max))
            }
            _ => None,
        })
        .collect()
}

/// The silences of one client's lease renewals: timed ones as (start, end, fault index), in the
/// plan's order, and the aimed pauses, whose moment is not known: their total length and
/// their indices.
fn client_silences(faults: &[Fault], client: &str) -> (Vec<(u64, u64, usize)>, u64, Vec<usize>) {
    let mut spans: Vec<(u64, u64, usize)> = Vec::new();
    let (mut aimed_ms, mut aimed) = (0u64, Vec::new());
    for (i, f) in faults.iter().enumerate() {
        match f {
            Fault::Pause {
                node,
                at: Trigger::AtMs(t),
                duration_ms,
            } if *node == client || is_etcd(node) => spans.push((*t, t + duration_ms, i)),
            Fault::Pause {
                node, duration_ms, ..
            } if *node == client => {
                aimed_ms += duration_ms;
                aimed.push(i);
            }
            Fault::Partition {
                a,
                b,
                at_ms,
                duration_ms,
            } if (*a == client && is_etcd(b)) || (is_etcd(a) && *b == client) => {
                spans.push((*at_ms, at_ms + 2 * duration_ms, i))
            }
            _ => {}
        }
    }
    (spans, aimed_ms, aimed)
}

/// Timed silences joined: sorted, each that starts less than `join_ms` after the one before
/// ends joins it (the renewal between them may not complete).
fn join_silences(mut spans: Vec<(u64, u64, usize)>, join_ms: u64) -> Vec<Silence> {
    spans.sort();
    let mut groups: Vec<Silence> = Vec::new();
    for (start, end, i) in spans {
        match groups.last_mut() {
            Some(g) if start < g.1 + join_ms => {
                g.1 = g.1.max(end);
                g.2.push(i);
            }
            _ => groups.push((start, end, vec![i])),
        }
    }
    // Joined silences are in time order, each at least `join_ms` after the one before.
    debug_assert!(groups.windows(2).all(|w| w[0].1 + join_ms <= w[1].0));
    debug_assert!(groups.iter().all(|g| g.0 <= g.1 && !g.2.is_empty()));
    groups
}

/// How long a joined silence may last: its length and the slowest round trip of a network
/// window it overlaps.
fn silence_ms(g: &Silence, windows: &[Window]) -> u64 {
    let rtt_ms = windows
        .iter()
        .filter(|w| w.0 < g.1 && g.0 < w.1)
        .map(|w| w.2)
        .max()
        .unwrap_or(0);
    assert!(g.0 <= g.1, "a silence ends after it starts");
    g.1 - g.0 + rtt_ms
}

/// Labels outside every fault of one client's silences that, joined, reach the slack.
fn label_client_silences(
    labels: &mut [LabelledFault],
    faults: &[Fault],
    windows: &[Window],
    client: &str,
    scenario: &Scenario,
) {
    let join_ms = scenario.ttl_s as u64 * 1000 / 3 + 2 * scenario.latency_ms.max;
    let (spans, aimed_ms, aimed) = client_silences(faults, client);
    let groups = join_silences(spans, join_ms);
    // An aimed pause may land next to the longest silence (or bridge several).
    let timed_ms: u64 = groups.iter().map(|g| silence_ms(g, windows)).sum::<u64>()
        + join_ms * groups.len().saturating_sub(1) as u64;
    let no_aimed = aimed.is_empty();
    for g in &groups {
        let silence = silence_ms(g, windows) + aimed_ms;
        label_silence_outside(labels, faults, &g.2, silence, no_aimed, client, scenario);
    }
    if !no_aimed {
        label_silence_outside(
            labels,
            faults,
            &aimed,
            aimed_ms + timed_ms,
            no_aimed,
            client,
            scenario,
        );
    }
}

/// Labels outside the faults of one joined silence of `client` when it reaches the slack
/// (etcd's slack when an etcd fault is in it), unless it is a single fault that no aimed pause
/// may join (labelled alone already).
fn label_silence_outside(
    labels: &mut [LabelledFault],
    faults: &[Fault],
    members: &[usize],
    silence_ms: u64,
    no_aimed: bool,
    client: &str,
    scenario: &Scenario,
) {
    assert!(!members.is_empty(), "a silence has a fault in it");
    let etcd_in = members.iter().any(|&i| is_etcd(faults[i].node()));
    let slack_ms = if etcd_in {
        etcd_slack_ms(scenario)
    } else {
        renewal_slack_ms(scenario)
    };
    if silence_ms < slack_ms || members.len() < 2 && no_aimed {
        return;
    }
    for &i in members {
        if labels[i].assumption == Assumption::Inside {
            labels[i].assumption = Assumption::Outside;
            labels[i].why = format!(
                "with the faults near it, {client} may go {silence_ms} ms without a lease renewal, reaching the {} of {slack_ms} ms",
                slack_name(scenario)
            );
        }
    }
}

#[cfg(test)]
mod tests;
