//! One seeded madsim world: etcd, storage and clients as nodes, the fault plan applied by a
//! supervisor, everything recorded, every node killed before the runtime returns.

mod schedule;

use crate::checker::{self, Verdict};
use crate::clock::NodeClock;
use crate::etcd::{model, Backend};
use crate::history::{EventKind, History, Probe, Recorder};
use crate::lock::LockConfig;
use crate::nemesis::{self, Fault, FaultPlan, LabelledFault, Point, ETCD, NETWORK, STORAGE};
use crate::scenario::{client_name, MsRange, Scenario};
use crate::storage::http::Server;
use crate::storage::{Fencing, Store};
use crate::workload::{ClientRun, ClientSpec, PointHit, Points};
use madsim::runtime::{Handle, NodeHandle, Runtime};
use madsim::task::NodeId;
use schedule::{Action, Schedule};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

const ETCD_IP: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1));
const STORAGE_IP: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2));
const OPERATOR_IP: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 3));
/// The node from which the nemesis talks to etcd like an operator with `etcdctl`.
const OPERATOR: &str = "operator";
const ETCD_PORT: u16 = 2379;
const STORAGE_PORT: u16 = 8080;
/// Margin beyond `duration + drain` after which madsim aborts a run that failed to end.
const TIME_LIMIT_SLACK: Duration = Duration::from_secs(300);

fn client_ip(n: u32) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(10, 0, 1, n as u8))
}

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

struct Nodes {
    by_name: BTreeMap<String, NodeHandle>,
}

impl Nodes {
    fn id(&self, name: &str) -> NodeId {
        self.by_name[name].id()
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
    let etcd_addr = SocketAddr::new(ETCD_IP, ETCD_PORT);
    let storage_addr = SocketAddr::new(STORAGE_IP, STORAGE_PORT);
    let mut nodes = Nodes {
        by_name: BTreeMap::new(),
    };

    let etcd = start_etcd(&handle, &scenario, &plan, seed, origin, etcd_addr);
    nodes.by_name.insert(ETCD.into(), etcd);

    let store = Arc::new(Mutex::new(Store::new(fencing)));
    let server = Server::new(store.clone(), Some(recorder.clone()), STORAGE);
    let storage = handle
        .create_node()
        .name(STORAGE)
        .ip(STORAGE_IP)
        .init(move || {
            let server = server.clone();
            async move {
                match tokio::net::TcpListener::bind(storage_addr).await {
                    Ok(listener) => {
                        let _ = server.serve(listener).await;
                    }
                    Err(e) => panic!("storage cannot bind {storage_addr}: {e}"),
                }
            }
        })
        .build();
    nodes.by_name.insert(STORAGE.into(), storage);
    let operator = handle.create_node().name(OPERATOR).ip(OPERATOR_IP).build();
    nodes.by_name.insert(OPERATOR.into(), operator.clone());

    // Aimed faults, by node and point.
    let mut aimed: BTreeMap<String, BTreeMap<Point, Vec<u32>>> = BTreeMap::new();
    for (node, point, nth) in plan.faults.iter().filter_map(Fault::aim) {
        aimed
            .entry(node.to_string())
            .or_default()
            .entry(point)
            .or_default()
            .push(nth);
    }
    let (hit_tx, mut hit_rx) = tokio::sync::mpsc::unbounded_channel::<PointHit>();
    let stop = Arc::new(AtomicBool::new(false));
    // One flag per client: a restarted client that runs again is not finished.
    let finished: Arc<Vec<AtomicBool>> = Arc::new(
        (0..scenario.clients)
            .map(|_| AtomicBool::new(false))
            .collect(),
    );

    for n in 1..=scenario.clients {
        let name = client_name(n);
        let script = scenario.script(n).cloned();
        let spec = ClientSpec {
            index: n,
            etcd_backend: scenario.etcd,
            etcd_addr: etcd_addr.to_string(),
            storage_addr: storage_addr.to_string(),
            fencing,
            workload: scenario.workload,
            lock: LockConfig {
                method: scenario.lock_method,
                ttl_s: scenario.ttl_s,
                campaign_timeout: Duration::from_millis(scenario.campaign_timeout_ms),
                request_timeout: Duration::from_millis(scenario.request_timeout_ms),
            },
            critical_ms: script
                .as_ref()
                .and_then(|s| s.critical_ms)
                .unwrap_or(scenario.critical_ms),
            think_ms: scenario.think_ms,
            request_timeout: Duration::from_millis(scenario.request_timeout_ms),
            lease_check_margin_ms: scenario.lease_check_margin_ms,
            seed,
        };
        let start = Duration::from_millis(script.map_or(0, |s| s.start_ms));
        let clock = NodeClock::new(origin, plan.skew_of(&name));
        let probe = Probe::new(Some(recorder.clone()), &name, clock.clone());
        let points = Points::new(
            aimed.get(&name).cloned().unwrap_or_default(),
            hit_tx.clone(),
        );
        let incarnation = Arc::new(AtomicU32::new(0));
        let (stop, finished) = (stop.clone(), finished.clone());
        let node = handle
            .create_node()
            .name(&name)
            .ip(client_ip(n))
            .init(move || {
                let inc = incarnation.fetch_add(1, Ordering::Relaxed);
                let run = ClientRun::new(
                    spec.clone(),
                    clock.clone(),
                    probe.clone(),
                    points.clone(),
                    stop.clone(),
                    inc,
                );
                let (probe, finished) = (probe.clone(), finished.clone());
                async move {
                    if inc == 0 {
                        tokio::time::sleep(start).await;
                    }
                    finished[n as usize - 1].store(false, Ordering::Relaxed);
                    probe.record(EventKind::NodeStarted { incarnation: inc });
                    run.run().await;
                    finished[n as usize - 1].store(true, Ordering::Relaxed);
                    // Stay up: an exited node loses its address, and with it any request
                    // still in flight, which a real network would still deliver.
                    std::future::pending::<()>().await;
                }
            })
            .build();
        nodes.by_name.insert(name, node);
    }
    drop(hit_tx);

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
        let stopping = stop.load(Ordering::Relaxed);
        if stopping && finished.iter().all(|f| f.load(Ordering::Relaxed)) {
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
                        let _ = revoke(&operator, &recorder, scenario.etcd, etcd_addr, &node);
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
                    Action::Stop => stop.store(true, Ordering::Relaxed),
                    Action::End => break,
                }
            }
            Some(hit) = hit_rx.recv() => {
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
                            &operator, &recorder, scenario.etcd, etcd_addr, node,
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
    for node in nodes.by_name.values() {
        handle.kill(node.id());
    }
    tokio::time::sleep(Duration::from_millis(1)).await;
    (recorder.take(), messages, simulated_ms)
}

/// Starts the etcd node: fencelab's model (the default) or SimServer.
fn start_etcd(
    handle: &Handle,
    scenario: &Scenario,
    plan: &FaultPlan,
    seed: u64,
    origin: Instant,
    addr: SocketAddr,
) -> NodeHandle {
    let node = handle.create_node().name(ETCD).ip(ETCD_IP);
    match scenario.etcd {
        Backend::Model => {
            let mut cfg = model::Config::defaults(scenario.etcd_version);
            cfg.timeout_permille = plan.etcd_timeout_permille();
            cfg.ambiguous_permille = plan.etcd_ambiguous_permille();
            // Lease IDs differ from seed to seed, as they do from one etcd to the next.
            cfg.member_id = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 16;
            cfg.start_ms += seed % 1_000_000_000;
            // Built outside the node's init: a restarted member keeps its data, as etcd's
            // WAL does.
            let member = Arc::new(model::Member::new(
                cfg,
                NodeClock::new(origin, plan.skew_of(ETCD)),
            ));
            node.init(move || {
                let member = member.clone();
                async move {
                    let _ = model::serve(addr, member).await;
                }
            })
            .build()
        }
        Backend::Madsim => {
            let timeout_rate = plan.etcd_timeout_permille() as f32 / 1000.0;
            node.init(move || async move {
                let _ = etcd_client::SimServer::builder()
                    .timeout_rate(timeout_rate)
                    .serve(addr)
                    .await;
            })
            .build()
        }
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
