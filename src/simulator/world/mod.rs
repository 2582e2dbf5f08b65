//! One seeded madsim world: etcd, storage and clients as nodes, the fault plan applied by a
//! supervisor, everything recorded, every node killed before the runtime returns.

mod nodes;
mod schedule;

use crate::checker::{self, Verdict};
use crate::etcd::Backend;
use crate::history::{EventKind, History, Recorder};
use crate::nemesis::{self, Fault, FaultPlan, LabelledFault, ETCD, NETWORK, STORAGE};
use crate::scenario::{MsRange, Scenario};
use crate::storage::{Fencing, Store};
use madsim::runtime::{Handle, NodeHandle, Runtime};
use nodes::{start_clients, start_etcd, start_operator, start_storage, Nodes, ETCD_ADDR, OPERATOR};
use schedule::{Action, Schedule};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

/// Margin beyond `duration + drain` after which madsim aborts a run that failed to end.
const TIME_LIMIT_SLACK: Duration = Duration::from_secs(300);

/// Everything one run produced.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Run {
    pub seed: u64,
    pub fencing: Fencing,
    pub history: History,
    pub verdict: Verdict,
    /// Messages the simulated network carried.
    pub messages: u64,
    /// Simulated time the run took, ms.
    pub simulated_ms: u64,
    /// The plan's faults, each labelled inside or outside the protocol's assumptions.
    pub faults: Vec<LabelledFault>,
}

impl Run {
    pub fn history_hash(&self) -> u64 {
        self.history.hash()
    }
}

/// madsim's latency range for an inclusive range of milliseconds.
fn latency_range(ms: MsRange) -> std::ops::Range<Duration> {
    Duration::from_millis(ms.min)..Duration::from_millis(ms.max + 1)
}

/// Runs one world. Panics only on a broken invariant of fencelab itself.
pub fn run(scenario: &Scenario, plan: &FaultPlan, fencing: Fencing, seed: u64) -> Run {
    let mut config = madsim::Config::default();
    config.net.send_latency = latency_range(scenario.latency_ms);
    config.net.packet_loss_rate = scenario.loss_rate;
    let mut rt = Runtime::with_seed_and_config(seed, config);
    rt.set_time_limit(
        Duration::from_millis(scenario.duration_ms + scenario.drain_ms) + TIME_LIMIT_SLACK,
    );
    let plan_labels = nemesis::label_plan(&plan.faults, scenario);
    let scenario = scenario.clone();
    let plan = plan.clone();
    let (history, messages, simulated_ms) =
        rt.block_on(async move { supervise(scenario, plan, fencing, seed).await });
    let verdict = checker::check(&history);
    Run {
        faults: plan_labels,
        seed,
        fencing,
        history,
        verdict,
        messages,
        simulated_ms,
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

    fn clog(&mut self, net: &madsim::net::NetSim, nodes: &Nodes, src: &str, dst: &str) {
        let n = self
            .clogs
            .entry((src.to_string(), dst.to_string()))
            .or_insert(0);
        if *n == 0 {
            net.clog_link(nodes.id(src), nodes.id(dst));
        }
        *n += 1;
    }

    /// Whether the link really healed (its last fault ended).
    fn unclog(&mut self, net: &madsim::net::NetSim, nodes: &Nodes, src: &str, dst: &str) -> bool {
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

async fn supervise(
    scenario: Scenario,
    plan: FaultPlan,
    fencing: Fencing,
    seed: u64,
) -> (History, u64, u64) {
    let handle = Handle::current();
    let origin = Instant::now();
    let recorder = Recorder::new(origin);
    let mut nodes = Nodes::default();
    nodes.insert(ETCD, start_etcd(&handle, &scenario, &plan, seed, origin));
    let store = Arc::new(Mutex::new(Store::new(fencing)));
    nodes.insert(STORAGE, start_storage(&handle, store.clone(), &recorder));
    nodes.insert(OPERATOR, start_operator(&handle));
    let operator = nodes.get(OPERATOR).clone();
    let mut clients = start_clients(&handle, &scenario, &plan, fencing, seed, origin, &recorder);
    for (name, node) in clients.nodes.drain(..) {
        nodes.insert(name, node);
    }

    let mut schedule = Schedule::new(&plan, &scenario);

    let net = madsim::net::NetSim::current();
    let fault_note = |node: &str, what: String| {
        recorder.record(node, None, EventKind::Fault { what });
    };
    let mut crashed: BTreeMap<String, bool> = BTreeMap::new();
    let mut nest = Nesting::default();
    // Bounded: every iteration consumes a timeline entry or a point hit, both finite.
    loop {
        let due = origin + Duration::from_millis(schedule.first_ms());
        let stopping = clients.stop.load(Ordering::Relaxed);
        if stopping && clients.all_finished() {
            break;
        }
        // After Stop, wake every 100 ms to see whether all clients finished.
        let wake = if stopping {
            due.min(Instant::now() + Duration::from_millis(100))
        } else {
            due
        };
        // Biased: tokio's unbiased `select!` draws from a thread-local RNG outside madsim's,
        // so the branch order would depend on earlier runs on the same thread.
        tokio::select! {
            biased;
            _ = tokio::time::sleep_until(wake) => {
                let elapsed_ms = (Instant::now() - origin).as_millis() as u64;
                let Some((now_ms, action)) = schedule.pop_due(elapsed_ms) else {
                    continue;
                };
                match action {
                    Action::Pause(node, ms) => {
                        if !crashed.get(&node).copied().unwrap_or(false) {
                            nest.pause(&handle, &nodes, &node);
                            fault_note(&node, format!("paused for {ms} ms"));
                            schedule.push(now_ms + ms, Action::Resume(node));
                        }
                    }
                    Action::Resume(node) => {
                        if nest.resume(&handle, &nodes, &node) {
                            fault_note(&node, "resumed".into());
                        }
                    }
                    Action::Clog(a, b) => {
                        nest.clog(&net, &nodes, &a, &b);
                        nest.clog(&net, &nodes, &b, &a);
                        fault_note(&a, format!("partitioned from {b}"));
                    }
                    Action::Unclog(a, b) => {
                        let healed = nest.unclog(&net, &nodes, &a, &b);
                        if nest.unclog(&net, &nodes, &b, &a) && healed {
                            fault_note(&a, format!("partition from {b} healed"));
                        }
                    }
                    Action::Release(node) => {
                        if nest.unclog(&net, &nodes, &node, STORAGE) {
                            fault_note(&node, "held storage request released".into());
                        }
                    }
                    Action::Crash(node, ms) => {
                        handle.kill(nodes.id(&node));
                        // A crash ends the node's pauses: it restarts unpaused.
                        nest.forget_pauses(&node);
                        crashed.insert(node.clone(), true);
                        fault_note(&node, format!("crashed, restart in {ms} ms"));
                        schedule.push(now_ms + ms, Action::Restart(node));
                    }
                    Action::Restart(node) => {
                        crashed.insert(node.clone(), false);
                        handle.restart(nodes.id(&node));
                        fault_note(&node, "restarted".into());
                    }
                    Action::Revoke(node) => {
                        // Not awaited: the supervisor must go on (etcd may be stalled).
                        let _ = revoke(&operator, &recorder, scenario.etcd, ETCD_ADDR, &node);
                    }
                    Action::Network(latency_ms, loss_permille) => {
                        net.update_config(|c| {
                            c.send_latency = latency_range(latency_ms);
                            c.packet_loss_rate = loss_permille as f64 / 1000.0;
                        });
                        fault_note(NETWORK, format!(
                            "network degraded: latency {}..{} ms, loss {loss_permille}‰",
                            latency_ms.min, latency_ms.max
                        ));
                    }
                    Action::NetworkRestored => {
                        net.update_config(|c| {
                            c.send_latency = latency_range(scenario.latency_ms);
                            c.packet_loss_rate = scenario.loss_rate;
                        });
                        fault_note(NETWORK, "network restored".into());
                    }
                    Action::Stop => clients.stop.store(true, Ordering::Relaxed),
                    Action::End => break,
                }
            }
            Some(hit) = clients.hits.recv() => {
                let now_ms = recorder.true_us() / 1000;
                let struck = plan
                    .faults
                    .iter()
                    .filter(|f| f.aim() == Some((hit.node.as_str(), hit.point, hit.nth)));
                let mut revocations = Vec::new();
                for f in struck {
                    match f {
                        Fault::Pause { node, duration_ms, .. }
                            if !crashed.get(node).copied().unwrap_or(false) =>
                        {
                            nest.pause(&handle, &nodes, node);
                            fault_note(node, format!(
                                "paused at {} #{} for {duration_ms} ms", hit.point.as_str(), hit.nth
                            ));
                            schedule.push(now_ms + duration_ms, Action::Resume(node.clone()));
                        }
                        Fault::HoldRequest { node, duration_ms, .. } => {
                            nest.clog(&net, &nodes, node, STORAGE);
                            fault_note(node, format!(
                                "storage request held in the network for {duration_ms} ms"
                            ));
                            schedule.push(now_ms + duration_ms, Action::Release(node.clone()));
                        }
                        Fault::RevokeLease { node, .. } => revocations.extend(revoke(
                            &operator, &recorder, scenario.etcd, ETCD_ADDR, node,
                        )),
                        _ => {}
                    }
                }
                // The client goes on once its revocations are answered (or given up on),
                // without holding up the supervisor.
                let done = hit.done;
                if revocations.is_empty() {
                    let _ = done.send(());
                } else {
                    operator.spawn(async move {
                        for r in revocations {
                            let _ = r.await;
                        }
                        let _ = done.send(());
                    });
                }
            }
        }
    }

    recorder.set_final_entries(store.lock().expect("store lock").entries().clone());
    let messages = net.stat().msg_count;
    let simulated_ms = recorder.true_us() / 1000;
    // madsim keeps every pending future alive unless its node is killed and the runtime
    // gets one more tick: without this, memory grows by ~160 KB per seed.
    nodes.kill_all(&handle);
    tokio::time::sleep(Duration::from_millis(1)).await;
    (recorder.take(), messages, simulated_ms)
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
    etcd_addr: SocketAddr,
    node: &str,
) -> Option<madsim::task::JoinHandle<()>> {
    let lease_id = recorder.last_lease_of(node)?;
    let (recorder, node) = (recorder.clone(), node.to_string());
    Some(operator.spawn(async move {
        let asked = crate::deadline::timeout(REVOKE_TIMEOUT, async {
            match crate::etcd::connect(backend, &[etcd_addr.to_string()]).await {
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

/// Everything that determines a run: save it, and `replay` gives the same history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Experiment {
    pub seed: u64,
    pub fencing: Fencing,
    pub scenario: Scenario,
    pub plan: FaultPlan,
}

impl Experiment {
    /// Checks the scenario and the plan against each other.
    pub fn validate(&self) -> Result<(), String> {
        self.scenario.validate()?;
        self.plan.validate(&self.scenario.client_names())
    }

    pub fn run(&self) -> Run {
        run(&self.scenario, &self.plan, self.fencing, self.seed)
    }
}
