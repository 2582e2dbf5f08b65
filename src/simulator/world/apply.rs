//! The appliers: one per kind of fault, each applying it to the world's nodes or network,
//! noting it in the history and scheduling what ends it; and the faults aimed at code points,
//! which strike when a client reaches the point.

use super::latency_range;
use super::nodes::{Nodes, OPERATOR};
use super::schedule::{Action, Schedule};
use crate::etcd::model::Cluster;
use crate::etcd::Backend;
use crate::fault::{redis_node, ETCD_ALL, ETCD_OTHERS, REDIS, REDIS_ALL, ZK, ZK_ALL, ZK_LEADER};
use crate::fault::{Fault, ETCD, ETCD_LEADER, NETWORK, STORAGE};
use crate::history::{EventKind, Recorder};
use crate::ms::MsRange;
use crate::scenario::Scenario;
use crate::workload::PointHit;
use madsim::net::NetSim;
use madsim::runtime::{Handle, NodeHandle};
use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

/// The node pairs one partition cut.
type Pairs = Vec<(String, String)>;

/// Applies faults to the world, as the supervisor's schedule and the clients' point hits say.
pub(super) struct Faults {
    handle: Handle,
    net: Arc<NetSim>,
    nodes: Nodes,
    nest: Nesting,
    /// Whether a node is down: a crashed client is not paused until it restarts.
    crashed: BTreeMap<String, bool>,
    recorder: Recorder,
    /// Where revocations are sent from.
    operator: NodeHandle,
    etcd: Backend,
    /// antirez's delayed restart: a crashed Redis node stays down at least this long, ms.
    redis_restart_delay_ms: u64,
    /// The scenario's network, which comes back when a network fault ends.
    latency_ms: MsRange,
    loss_rate: f64,
    /// The node pairs each partition named by a role cut, resolved when it struck, in the
    /// order they struck: its heal unclogs the same pairs.
    partitions: BTreeMap<(String, String), VecDeque<Pairs>>,
}

impl Faults {
    pub(super) fn new(nodes: Nodes, recorder: Recorder, scenario: &Scenario) -> Faults {
        Faults {
            handle: Handle::current(),
            net: NetSim::current(),
            operator: nodes.get(OPERATOR).clone(),
            nodes,
            nest: Nesting::default(),
            crashed: BTreeMap::new(),
            recorder,
            etcd: scenario.etcd,
            redis_restart_delay_ms: scenario.redis.restart_delay_ms,
            latency_ms: scenario.latency_ms,
            loss_rate: scenario.loss_rate,
            partitions: BTreeMap::new(),
        }
    }

    fn cluster(&self) -> Option<&Cluster> {
        self.nodes.cluster.as_deref()
    }

    fn member_index(&self, node: &str) -> Option<usize> {
        self.nodes.members.iter().position(|m| m == node)
    }

    /// Tells the cluster that a member stopped or runs again.
    fn member_up(&self, node: &str, up: bool, crashed: bool) {
        if let (Some(c), Some(m)) = (self.cluster(), self.member_index(node)) {
            c.set_up(m, up, crashed);
        }
        if let Some(i) = self.nodes.zk.iter().position(|n| n == node) {
            self.nodes.zk_servers[i].set_up(up, crashed);
        }
    }

    /// Tells the cluster, or the ZooKeeper ensemble, that two members can, or cannot, reach
    /// each other.
    fn member_link(&self, a: &str, b: &str, connected: bool) {
        if let (Some(c), Some(i), Some(j)) =
            (self.cluster(), self.member_index(a), self.member_index(b))
        {
            c.set_link(i, j, connected);
        }
        let zk = |n: &str| self.nodes.zk.iter().position(|z| z == n);
        if let (Some(i), Some(j)) = (zk(a), zk(b)) {
            self.nodes.zk_servers[i].set_link(j, connected);
        }
    }

    /// The nodes a fault's node names now: `etcd` and `etcd:all` every member, `etcd:leader`
    /// the member that leads (none while nobody does), any other name itself.
    fn resolve(&self, node: &str) -> Vec<String> {
        match node {
            ETCD | ETCD_ALL => self.nodes.members.clone(),
            REDIS | REDIS_ALL => self.nodes.redis.clone(),
            ZK | ZK_ALL => self.nodes.zk.clone(),
            // The server that leads now; a standalone server leads itself; nobody while an
            // election runs.
            ZK_LEADER => self
                .nodes
                .zk_servers
                .iter()
                .position(|z| z.leads())
                .map(|i| vec![self.nodes.zk[i].clone()])
                .unwrap_or_default(),
            ETCD_LEADER => match self.cluster() {
                None => self.nodes.members.clone(),
                Some(c) => c
                    .leader()
                    .map(|l| vec![self.nodes.members[l].clone()])
                    .unwrap_or_default(),
            },
            other => vec![redis_node(other).into_owned()],
        }
    }

    /// Who leads, in words, for the notes of faults aimed at members or ZooKeeper servers.
    fn leadership(&self) -> String {
        if self.nodes.zk.len() > 1 {
            let servers = &self.nodes.zk_servers;
            return match servers.iter().position(|z| z.leads()) {
                Some(l) => format!("leader {} (epoch {})", self.nodes.zk[l], servers[l].epoch()),
                None => "no leader".into(),
            };
        }
        match self
            .cluster()
            .and_then(|c| c.leader().map(|l| (l, c.term())))
        {
            Some((l, term)) => format!("leader {} (term {term})", self.nodes.members[l]),
            None => "no leader".into(),
        }
    }

    /// How a note names the target when it was a role or the whole cluster: empty otherwise
    /// (and for one member, whose notes read as they always did).
    fn aimed(&self, node: &str, resolved: &str) -> String {
        if node == resolved || (self.nodes.members.len() < 2 && self.nodes.zk.len() < 2) {
            return String::new();
        }
        format!(" ({node}; {})", self.leadership())
    }

    /// The world's nodes, for the supervisor to kill at the end.
    pub(super) fn into_nodes(self) -> Nodes {
        self.nodes
    }

    fn note(&self, node: &str, what: String) {
        self.recorder.record(node, None, EventKind::Fault { what });
    }

    /// Applies a timed fault action (not Stop or End: those are the supervisor's own).
    pub(super) fn apply(&mut self, now_ms: u64, action: Action, schedule: &mut Schedule) {
        match action {
            Action::Pause(node, ms) => {
                let targets = self.resolve(&node);
                if targets.is_empty() {
                    self.note(&node, format!("no {node} to pause ({})", self.leadership()));
                }
                for target in targets {
                    let what = format!("paused for {ms} ms{}", self.aimed(&node, &target));
                    self.pause(&target, what, now_ms + ms, schedule);
                }
            }
            Action::Resume(node) => self.resume(&node),
            Action::Clog(a, b) => self.clog(&a, &b),
            Action::Unclog(a, b) => self.unclog(&a, &b),
            Action::Release(node) => self.release(&node),
            Action::Crash(node, ms) => {
                if node == ZK_LEADER && self.resolve(&node).is_empty() {
                    self.note(&node, format!("no {node} to crash ({})", self.leadership()));
                }
                for target in self.resolve(&node) {
                    // Only a ZooKeeper role's crash says who held it: etcd's notes stay as
                    // they were.
                    let aimed = match node == ZK_LEADER {
                        true => self.aimed(&node, &target),
                        false => String::new(),
                    };
                    self.crash(target, ms, now_ms, schedule, aimed);
                }
            }
            Action::Restart(node) => self.restart(node),
            Action::Revoke(node) => {
                // Not awaited: the supervisor must go on (etcd may be stalled).
                let _ = self.revoke(&node);
            }
            Action::Network(latency_ms, loss_permille) => self.degrade(latency_ms, loss_permille),
            Action::NetworkRestored => self.restore(),
            Action::Stop | Action::End => unreachable!("{action:?} is the supervisor's"),
        }
    }

    /// Pauses the node, unless it is down, until `resume_ms`.
    fn pause(&mut self, node: &str, what: String, resume_ms: u64, schedule: &mut Schedule) {
        if !self.crashed.get(node).copied().unwrap_or(false) {
            self.nest.pause(&self.handle, &self.nodes, node);
            self.member_up(node, false, false);
            self.note(node, what);
            schedule.push(resume_ms, Action::Resume(node.to_string()));
        }
    }

    fn resume(&mut self, node: &str) {
        if self.nest.resume(&self.handle, &self.nodes, node) {
            // A node resumes only when its last pause ends, and a crashed node is not paused.
            debug_assert!(self.nest.pauses.get(node).is_some_and(|n| *n == 0));
            debug_assert!(!self.crashed.get(node).copied().unwrap_or(false));
            self.member_up(node, true, false);
            let ensemble = self.nodes.zk.len() > 1 && self.nodes.zk.iter().any(|n| n == node);
            let what = match ensemble
                || (self.member_index(node).is_some() && self.nodes.members.len() > 1)
            {
                true => format!("resumed ({})", self.leadership()),
                false => "resumed".into(),
            };
            self.note(node, what);
        }
    }

    /// The node pairs a partition of `a` from `b` cuts: roles resolved now, `etcd:others`
    /// every member not on `a`'s side.
    fn pairs(&self, a: &str, b: &str) -> Pairs {
        let left = self.resolve(a);
        let right = match b {
            ETCD_OTHERS => self
                .nodes
                .members
                .iter()
                .filter(|m| !left.contains(m))
                .cloned()
                .collect(),
            _ => self.resolve(b),
        };
        let mut pairs = Vec::new();
        for x in &left {
            for y in right.iter().filter(|y| *y != x) {
                pairs.push((x.clone(), y.clone()));
            }
        }
        pairs
    }

    fn clog(&mut self, a: &str, b: &str) {
        let pairs = self.pairs(a, b);
        // Negative space: a partition never cuts a node from itself.
        assert!(
            pairs.iter().all(|(x, y)| x != y),
            "{a} | {b} cuts a node from itself"
        );
        for (x, y) in &pairs {
            self.nest.clog(&self.net, &self.nodes, x, y);
            self.nest.clog(&self.net, &self.nodes, y, x);
            self.member_link(x, y, false);
            self.note(x, format!("partitioned from {y}{}", self.aimed(a, x)));
        }
        self.partitions
            .entry((a.to_string(), b.to_string()))
            .or_default()
            .push_back(pairs);
    }

    fn unclog(&mut self, a: &str, b: &str) {
        let key = (a.to_string(), b.to_string());
        let pairs = self.partitions.get_mut(&key).and_then(VecDeque::pop_front);
        // Positive space: every heal follows its partition.
        let pairs = pairs.unwrap_or_else(|| panic!("heal of {a} | {b} without a partition"));
        // Partitions nest: the pairs it cut are still cut until this heal.
        debug_assert!(pairs
            .iter()
            .all(|(x, y)| self.nest.clogged(x, y) && self.nest.clogged(y, x)));
        for (x, y) in pairs {
            let healed = self.nest.unclog(&self.net, &self.nodes, &x, &y);
            if self.nest.unclog(&self.net, &self.nodes, &y, &x) && healed {
                self.member_link(&x, &y, true);
                self.note(&x, format!("partition from {y} healed"));
            }
        }
    }

    /// Holds the node's storage requests in the network until `release_ms`.
    fn hold(&mut self, node: &str, what: String, release_ms: u64, schedule: &mut Schedule) {
        self.nest.clog(&self.net, &self.nodes, node, STORAGE);
        self.note(node, what);
        schedule.push(release_ms, Action::Release(node.to_string()));
    }

    fn release(&mut self, node: &str) {
        // Positive space: a release follows its hold.
        assert!(
            self.nest.clogged(node, STORAGE),
            "{node}'s release without a hold"
        );
        if self.nest.unclog(&self.net, &self.nodes, node, STORAGE) {
            self.note(node, "held storage request released".into());
        }
    }

    fn crash(
        &mut self,
        node: String,
        ms: u64,
        now_ms: u64,
        schedule: &mut Schedule,
        aimed: String,
    ) {
        // A Redis node under the delayed-restart rule stays down longer than any lock's TTL.
        let ms = match self.nodes.redis.contains(&node) {
            true => ms.max(self.redis_restart_delay_ms),
            false => ms,
        };
        self.handle.kill(self.nodes.id(&node));
        self.member_up(&node, false, true);
        // A crash ends the node's pauses: it restarts unpaused.
        self.nest.forget_pauses(&node);
        debug_assert!(!self.nest.pauses.contains_key(&node));
        self.crashed.insert(node.clone(), true);
        self.note(&node, format!("crashed, restart in {ms} ms{aimed}"));
        schedule.push(now_ms + ms, Action::Restart(node));
    }

    fn restart(&mut self, node: String) {
        // Positive space: every restart follows its crash.
        assert!(
            self.crashed.contains_key(&node),
            "{node} restarts without a crash"
        );
        self.crashed.insert(node.clone(), false);
        self.handle.restart(self.nodes.id(&node));
        self.member_up(&node, true, false);
        self.note(&node, "restarted".into());
    }

    fn revoke(&self, node: &str) -> Option<madsim::task::JoinHandle<()>> {
        let endpoints = self.nodes.endpoints.clone();
        revoke(&self.operator, &self.recorder, self.etcd, endpoints, node)
    }

    fn degrade(&mut self, latency_ms: MsRange, loss_permille: u32) {
        self.net.update_config(|c| {
            c.send_latency = latency_range(latency_ms);
            c.packet_loss_rate = loss_permille as f64 / 1000.0;
        });
        self.note(
            NETWORK,
            format!(
                "network degraded: latency {}..{} ms, loss {loss_permille}‰",
                latency_ms.min, latency_ms.max
            ),
        );
    }

    fn restore(&mut self) {
        let (latency_ms, loss_rate) = (self.latency_ms, self.loss_rate);
        self.net.update_config(|c| {
            c.send_latency = latency_range(latency_ms);
            c.packet_loss_rate = loss_rate;
        });
        self.note(NETWORK, "network restored".into());
    }

    /// A client reached a point: the faults aimed at it strike now, in plan order, and the
    /// client is told to go on.
    pub(super) fn strike(&mut self, hit: PointHit, faults: &[Fault], schedule: &mut Schedule) {
        let now_ms = self.recorder.true_us() / 1000;
        let struck = faults
            .iter()
            .filter(|f| f.aim() == Some((hit.node.as_str(), hit.point, hit.nth)));
        let mut revocations = Vec::new();
        for f in struck {
            match f {
                Fault::Pause {
                    node, duration_ms, ..
                } => {
                    let (point, nth) = (hit.point.as_str(), hit.nth);
                    let what = format!("paused at {point} #{nth} for {duration_ms} ms");
                    self.pause(node, what, now_ms + duration_ms, schedule);
                }
                Fault::HoldRequest {
                    node, duration_ms, ..
                } => {
                    let what = format!("storage request held in the network for {duration_ms} ms");
                    self.hold(node, what, now_ms + duration_ms, schedule);
                }
                Fault::RevokeLease { node, .. } => revocations.extend(self.revoke(node)),
                _ => {}
            }
        }
        // The client goes on once its revocations are answered (or given up on),
        // without holding up the supervisor.
        let done = hit.done;
        if revocations.is_empty() {
            let _ = done.send(());
        } else {
            self.operator.spawn(async move {
                for r in revocations {
                    let _ = r.await;
                }
                let _ = done.send(());
            });
        }
    }
}

/// Overlapping faults on one node or link nest: madsim's pause and clog are single on/off
/// flags, so a node resumes, and a link heals, only when the last fault on it ends.
#[derive(Default)]
struct Nesting {
    pauses: BTreeMap<String, u32>,
    clogs: BTreeMap<(String, String), u32>,
}

impl Nesting {
    fn pause(&mut self, handle: &Handle, nodes: &Nodes, node: &str) {
        let n = self.pauses.entry(node.to_string()).or_insert(0);
        if *n == 0 {
            handle.pause(nodes.id(node));
        }
        *n += 1;
        assert!(*n >= 1, "a pause nests inside the ones before it");
    }

    /// Whether the node really resumed (its last pause ended).
    fn resume(&mut self, handle: &Handle, nodes: &Nodes, node: &str) -> bool {
        let n = self.pauses.entry(node.to_string()).or_insert(0);
        if *n == 0 {
            return false; // already ended by a crash
        }
        *n -= 1;
        if *n == 0 {
            handle.resume(nodes.id(node));
        }
        *n == 0
    }

    fn forget_pauses(&mut self, node: &str) {
        self.pauses.remove(node);
    }

    fn clog(&mut self, net: &NetSim, nodes: &Nodes, src: &str, dst: &str) {
        let n = self
            .clogs
            .entry((src.to_string(), dst.to_string()))
            .or_insert(0);
        if *n == 0 {
            net.clog_link(nodes.id(src), nodes.id(dst));
        }
        *n += 1;
        // Nested clogs of one link count up; each heal counts one down (`unclog`).
        assert!(*n >= 1);
    }

    /// Whether the link from `src` to `dst` is cut by a fault now.
    fn clogged(&self, src: &str, dst: &str) -> bool {
        self.clogs
            .get(&(src.to_string(), dst.to_string()))
            .is_some_and(|n| *n > 0)
    }

    /// Whether the link really healed (its last fault ended).
    fn unclog(&mut self, net: &NetSim, nodes: &Nodes, src: &str, dst: &str) -> bool {
        let n = self
            .clogs
            .entry((src.to_string(), dst.to_string()))
            .or_insert(0);
        // Positive space: every unclog follows its clog.
        assert!(*n > 0, "unclog of {src}->{dst} without a clog");
        *n -= 1;
        if *n == 0 {
            net.unclog_link(nodes.id(src), nodes.id(dst));
        }
        *n == 0
    }
}

/// How long the operator waits for etcd to answer a revocation (etcd may be stalled).
const REVOKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Revokes the node's newest lease at etcd, as an operator would with `etcdctl lease revoke`,
/// from the operator node (the supervisor has no network address), in a task of its own so
/// that a stalled etcd never holds up the supervisor.
fn revoke(
    operator: &NodeHandle,
    recorder: &Recorder,
    backend: Backend,
    endpoints: Vec<String>,
    node: &str,
) -> Option<madsim::task::JoinHandle<()>> {
    let lease_id = recorder.last_lease_of(node)?;
    let (recorder, node) = (recorder.clone(), node.to_string());
    Some(operator.spawn(async move {
        let asked = crate::deadline::timeout(REVOKE_TIMEOUT, async {
            match crate::etcd::connect(backend, &endpoints).await {
                Ok(etcd) => match etcd.revoke(lease_id).await {
                    Ok(()) => format!("etcd revoked lease {lease_id:x}"),
                    Err(e) => format!("etcd could not revoke lease {lease_id:x}: {e}"),
                },
                Err(e) => format!("could not reach etcd to revoke: {e}"),
            }
        })
        .await;
        let what = asked.unwrap_or_else(|_| {
            format!(
                "etcd did not answer the revocation of lease {lease_id:x} within {} s",
                REVOKE_TIMEOUT.as_secs()
            )
        });
        recorder.record(&node, None, EventKind::Fault { what });
    }))
}
