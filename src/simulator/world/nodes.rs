//! The world's nodes: etcd, the storage, the operator and the clients, each with its name and
//! address, started in that order.

use super::builder::Parts;
use crate::clock::NodeClock;
use crate::etcd::{model, Backend, Keys};
use crate::fault::{Fault, FaultPlan, ETCD, STORAGE};
use crate::history::{EventKind, Probe, Recorder};
use crate::keys::ETCD_KEY_PREFIX;
use crate::lock::{LockConfig, ServiceKind};
use crate::scenario::{client_name, Scenario};
use crate::storage::http::Server;
use crate::storage::Store;
use crate::workload::Point;
use crate::workload::{ClientRun, ClientSpec, PointHit, Points};
use madsim::runtime::{Handle, NodeHandle};
use madsim::task::NodeId;
use std::collections::BTreeMap;
use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc::UnboundedReceiver;
use tokio::time::Instant;

/// One member's address (a cluster's members are at 10.0.0.11 and up).
const ETCD_IP: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1));
const STORAGE_IP: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2));
const OPERATOR_IP: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 3));
/// The node from which the nemesis talks to etcd like an operator with `etcdctl`.
pub(super) const OPERATOR: &str = "operator";
const ETCD_PORT: u16 = 2379;
const STORAGE_PORT: u16 = 8080;
const STORAGE_ADDR: SocketAddr = SocketAddr::new(STORAGE_IP, STORAGE_PORT);

/// Member `i`'s (0-based) address in a cluster of `members`.
fn member_addr(members: u32, i: usize) -> SocketAddr {
    assert!(
        i < members as usize && i < 245,
        "no address for member {i} of {members}"
    );
    let ip = match members {
        1 => ETCD_IP,
        _ => IpAddr::V4(Ipv4Addr::new(10, 0, 0, 11 + i as u8)),
    };
    SocketAddr::new(ip, ETCD_PORT)
}

/// Every member's client endpoint, in member order.
pub(super) fn etcd_endpoints(members: u32) -> Vec<String> {
    (0..members as usize)
        .map(|i| member_addr(members, i).to_string())
        .collect()
}

/// The endpoints as client `n` (1-based) knows them: spread over the members, client `n`
/// first talks to member `(n - 1) mod N`, as each of Jepsen's clients talks to its own node.
fn endpoints_of_client(members: u32, n: u32) -> Vec<String> {
    assert!(
        n >= 1 && members >= 1,
        "client {n} of a cluster of {members}"
    );
    let mut endpoints = etcd_endpoints(members);
    endpoints.rotate_left(((n - 1) % members) as usize);
    endpoints
}

fn client_ip(n: u32) -> IpAddr {
    // Clients are numbered from 1, and each needs an address of its own.
    assert!((1..=254).contains(&n), "client {n} has no address");
    IpAddr::V4(Ipv4Addr::new(10, 0, 1, n as u8))
}

/// Every node of the world, by name, and etcd's members.
#[derive(Default)]
pub(super) struct Nodes {
    by_name: BTreeMap<String, NodeHandle>,
    /// The members' node names, in member order.
    pub(super) members: Vec<String>,
    /// Their endpoints, in the same order.
    pub(super) endpoints: Vec<String>,
    /// The model's cluster (none with SimServer).
    pub(super) cluster: Option<Arc<model::Cluster>>,
    /// The Redis nodes' names, in node order (a Redlock world).
    pub(super) redis: Vec<String>,
    /// The ZooKeeper servers' names, in server order (a ZooKeeper world).
    pub(super) zk: Vec<String>,
    /// Their models, in the same order.
    pub(super) zk_servers: Vec<Arc<crate::zk::model::ZkNode>>,
}

impl Nodes {
    fn insert(&mut self, name: impl Into<String>, node: NodeHandle) {
        let name = name.into();
        assert!(!self.by_name.contains_key(&name), "two nodes named {name}");
        self.by_name.insert(name, node);
    }

    pub(super) fn get(&self, name: &str) -> &NodeHandle {
        &self.by_name[name]
    }

    pub(super) fn id(&self, name: &str) -> NodeId {
        self.by_name[name].id()
    }

    /// Kills every node, in name order.
    pub(super) fn kill_all(&self, handle: &Handle) {
        for node in self.by_name.values() {
            handle.kill(node.id());
        }
    }
}

/// Starts every node, in the order that keeps histories as they were (madsim numbers nodes as
/// they are built): etcd, the storage (serving the store, returned for the supervisor to read
/// at the end), the operator, the clients.
pub(super) fn start(
    handle: &Handle,
    scenario: &Scenario,
    plan: &FaultPlan,
    parts: &Parts,
    seed: u64,
    origin: Instant,
    recorder: &Recorder,
) -> (Nodes, Clients, Arc<Mutex<Store>>) {
    let mut nodes = Nodes::default();
    match scenario.service {
        ServiceKind::Etcd => {
            let (members, cluster) = start_etcd(handle, scenario, plan, seed, origin, recorder);
            for (name, node) in members {
                nodes.members.push(name.clone());
                nodes.insert(name, node);
            }
            nodes.endpoints = etcd_endpoints(scenario.etcd_members);
            nodes.cluster = cluster;
        }
        ServiceKind::Redlock => {
            for (name, node) in super::redis::start(handle, scenario, plan, origin, recorder) {
                nodes.redis.push(name.clone());
                nodes.insert(name, node);
            }
        }
        ServiceKind::Zk => {
            for (name, node, server) in super::zk::start(handle, scenario, plan, seed, origin) {
                nodes.zk.push(name.clone());
                nodes.zk_servers.push(server);
                nodes.insert(name, node);
            }
        }
    }
    let store = Arc::new(Mutex::new(Store::with_fence(parts.fence.clone())));
    nodes.insert(
        STORAGE,
        start_storage(handle, store.clone(), recorder, scenario, seed),
    );
    nodes.insert(OPERATOR, start_operator(handle));
    let mut clients = start_clients(handle, scenario, plan, parts, seed, origin, recorder);
    for (name, node) in clients.nodes.drain(..) {
        nodes.insert(name, node);
    }
    // Every member has its endpoint, in the same order; no client has stopped yet.
    assert!(
        nodes.endpoints.len() == scenario.etcd_members as usize
            || scenario.service != ServiceKind::Etcd
    );
    assert_eq!(nodes.members.len(), nodes.endpoints.len());
    assert!(nodes
        .cluster
        .as_ref()
        .is_none_or(|c| c.members() == nodes.members.len()));
    // Every member or Redis node, the storage, the operator and every client: each a node of
    // its own.
    assert_eq!(
        nodes.by_name.len(),
        nodes.members.len() + nodes.redis.len() + nodes.zk.len() + 2 + scenario.clients as usize
    );
    assert_eq!(clients.count(), scenario.clients as usize);
    assert!(
        !clients.stop.load(Ordering::Relaxed),
        "a client stopped before the run began"
    );
    (nodes, clients, store)
}

/// Starts the etcd members (fencelab's model, the default) or SimServer's one node, with
/// the model's cluster.
fn start_etcd(
    handle: &Handle,
    scenario: &Scenario,
    plan: &FaultPlan,
    seed: u64,
    origin: Instant,
    recorder: &Recorder,
) -> (Vec<(String, NodeHandle)>, Option<Arc<model::Cluster>>) {
    let names = scenario.etcd_member_names();
    if scenario.etcd == Backend::Madsim {
        let addr = member_addr(1, 0);
        let timeout_rate = plan.etcd_timeout_permille() as f32 / 1000.0;
        let node = handle.create_node().name(ETCD).ip(addr.ip());
        let node = node
            .init(move || async move {
                let _ = etcd_client::SimServer::builder()
                    .timeout_rate(timeout_rate)
                    .serve(addr)
                    .await;
            })
            .build();
        return (vec![(ETCD.to_string(), node)], None);
    }
    let mut cfg = model::Config::defaults(scenario.etcd_version);
    cfg.timeout_permille = plan.etcd_timeout_permille();
    cfg.ambiguous_permille = plan.etcd_ambiguous_permille();
    cfg.stale_leader_ms = plan.etcd_stale_leader_ms();
    // Lease IDs differ from seed to seed, as they do from one etcd to the next.
    cfg.member_id = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 16;
    cfg.start_ms += seed % 1_000_000_000;
    // The members' own random streams (election timers, request faults) derive from the seed.
    cfg.seed = seed;
    // A member's clock: its own skew, else the plan's skew of `etcd` (all of them).
    let clocks = names
        .iter()
        .map(|name| NodeClock::new(origin, plan.skew_of_member(name, ETCD)))
        .collect();
    // Built outside the nodes' init: a restarted member keeps its data (`model::node`).
    let cluster = model::Cluster::new(cfg, clocks);
    observe(&cluster, &names, recorder);
    let mut members = Vec::with_capacity(names.len());
    for (i, name) in names.iter().enumerate() {
        let addr = member_addr(scenario.etcd_members, i);
        let member = Arc::new(model::Member::of(&cluster, i));
        members.push((name.clone(), model::node(handle, name, addr, member)));
    }
    (members, Some(cluster))
}

/// Records the cluster's leadership changes on the members concerned.
fn observe(cluster: &model::Cluster, names: &[String], recorder: &Recorder) {
    let (names, recorder) = (names.to_vec(), recorder.clone());
    cluster.observe(move |event| {
        let (m, kind) = match event {
            model::RoleEvent::Elected {
                member,
                term,
                promoted,
            } => (
                *member,
                EventKind::Leadership {
                    leader: Some(names[*member].clone()),
                    what: format!(
                        "elected leader of term {term}; Promote extended {promoted} lease(s)"
                    ),
                },
            ),
            model::RoleEvent::SteppedDown { member, why } => (
                *member,
                EventKind::Leadership {
                    leader: None,
                    what: format!("stepped down: {why}"),
                },
            ),
            model::RoleEvent::StaleLeader { member, for_ms } => (
                *member,
                EventKind::Fault {
                    what: format!(
                        "acts on its stale lessor for {for_ms} ms before it notices it was replaced (etcd issue 15247)"
                    ),
                },
            ),
            model::RoleEvent::StaleRevoke { member, lease } => (
                *member,
                EventKind::Fault {
                    what: format!(
                        "revoked lease {lease:x}, expired in its stale view, through the real leader (etcd issue 15247)"
                    ),
                },
            ),
        };
        recorder.record(&names[m], None, kind);
    });
}

/// Starts the storage node, serving `store`, which the supervisor reads at the end.
fn start_storage(
    handle: &Handle,
    store: Arc<Mutex<Store>>,
    recorder: &Recorder,
    scenario: &Scenario,
    seed: u64,
) -> NodeHandle {
    let storage_addr = STORAGE_ADDR;
    let etcd = scenario.etcd;
    let endpoints = etcd_endpoints(scenario.etcd_members);
    let server = Server::new(store, Some(recorder.clone()), STORAGE)
        .with_work(scenario.storage_work_ms, seed ^ STORAGE_WORK_SEED);
    // Only a fence that asks the lock service makes the storage connect to etcd: every other
    // run keeps its messages, and so its history, as it was.
    let asks = server.asks_lock_service();
    handle
        .create_node()
        .name(STORAGE)
        .ip(STORAGE_IP)
        .init(move || {
            let (server, endpoints) = (server.clone(), endpoints.clone());
            async move {
                let server = match asks {
                    true => server.with_lock_service(lock_service(etcd, &endpoints).await),
                    false => server,
                };
                match tokio::net::TcpListener::bind(storage_addr).await {
                    Ok(listener) => {
                        let _ = server.serve(listener).await;
                    }
                    Err(e) => panic!("storage cannot bind {storage_addr}: {e}"),
                }
            }
        })
        .build()
}

/// How long the final read of a workload's etcd keys may take.
const FINAL_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// Reads a workload's etcd keys after the run, from the operator node (Jepsen's final read),
/// as final entries named `etcd:<key>`, each with its value and mod revision. A key etcd does
/// not answer for within the timeout is left out (the checker then sees it absent).
pub(super) async fn final_etcd_read(
    operator: &NodeHandle,
    backend: Backend,
    endpoints: Vec<String>,
    keys: Vec<String>,
) -> Vec<(String, crate::entry::Entry)> {
    let read = operator.spawn(async move {
        let mut out = Vec::new();
        let Ok(etcd) = crate::etcd::connect(backend, &endpoints).await else {
            return out;
        };
        for key in keys {
            let got =
                crate::deadline::timeout(FINAL_READ_TIMEOUT, etcd.get(Keys::Exact(key.clone())));
            if let Ok(Ok(range)) = got.await {
                for kv in range.kvs {
                    let entry = crate::entry::Entry {
                        val: kv.value,
                        version: kv.mod_revision,
                    };
                    out.push((format!("{ETCD_KEY_PREFIX}{key}"), entry));
                }
            }
        }
        out
    });
    read.await.unwrap_or_default()
}

/// Mixed into the run's seed for the storage's work times, so they are not the clients' draws.
const STORAGE_WORK_SEED: u64 = 0x5707_a6e0_u64;

/// The storage's connection to etcd, retried until it holds (the etcd node may be starting).
async fn lock_service(backend: Backend, endpoints: &[String]) -> Arc<dyn crate::etcd::Etcd> {
    // Bounded: a run ends long before this many retries.
    for _ in 0..100_000u32 {
        if let Ok(etcd) = crate::etcd::connect(backend, endpoints).await {
            return etcd;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the storage never reached etcd");
}

/// Starts the operator node: the nemesis' revocations go from there (the supervisor has no
/// network address).
fn start_operator(handle: &Handle) -> NodeHandle {
    handle.create_node().name(OPERATOR).ip(OPERATOR_IP).build()
}

/// The client nodes, and what the supervisor shares with them.
pub(super) struct Clients {
    /// By name, in client order.
    nodes: Vec<(String, NodeHandle)>,
    /// Clients reaching the points that faults are aimed at.
    pub(super) hits: UnboundedReceiver<PointHit>,
    /// Set at Stop: the clients end their lock cycles.
    pub(super) stop: Arc<AtomicBool>,
    /// One flag per client: a restarted client that runs again is not finished.
    finished: Arc<Vec<AtomicBool>>,
}

impl Clients {
    /// No client node yet, none stopped or finished.
    fn new(clients: u32, hits: UnboundedReceiver<PointHit>) -> Clients {
        Clients {
            nodes: Vec::new(),
            hits,
            stop: Arc::new(AtomicBool::new(false)),
            finished: Arc::new((0..clients).map(|_| AtomicBool::new(false)).collect()),
        }
    }

    pub(super) fn all_finished(&self) -> bool {
        self.finished.iter().all(|f| f.load(Ordering::Relaxed))
    }

    /// How many clients the world has.
    pub(super) fn count(&self) -> usize {
        self.finished.len()
    }
}

/// Starts the client nodes, `client1` to `clientN`: each runs the workload from its spec,
/// made of the scenario, the client's script, the run's parts and the seed, reads its own
/// (skewed) clock, and reports reaching the points the plan's faults are aimed at.
fn start_clients(
    handle: &Handle,
    scenario: &Scenario,
    plan: &FaultPlan,
    parts: &Parts,
    seed: u64,
    origin: Instant,
    recorder: &Recorder,
) -> Clients {
    let aimed = aimed_points(plan);
    let (hit_tx, hits) = tokio::sync::mpsc::unbounded_channel();
    let mut clients = Clients::new(scenario.clients, hits);
    for n in 1..=scenario.clients {
        let name = client_name(n);
        let script = scenario.script(n).cloned();
        let spec = ClientSpec {
            index: n,
            service: scenario.service,
            redis_endpoints: super::redis::endpoints(scenario),
            zk: super::zk::connect_spec(scenario),
            etcd_backend: scenario.etcd,
            etcd_endpoints: endpoints_of_client(scenario.etcd_members, n),
            storage_addr: STORAGE_ADDR.to_string(),
            fence: parts.fence.clone(),
            workload: parts.workload.clone(),
            recipe: parts.recipe.clone(),
            lock: LockConfig {
                ttl_s: scenario.ttl_s,
                campaign_timeout: Duration::from_millis(scenario.campaign_timeout_ms),
                request_timeout: Duration::from_millis(scenario.request_timeout_ms),
                lock_delay_ms: scenario.lock_delay_ms,
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
        let clock = NodeClock::new(origin, plan.skew_of(&name));
        let client = Arc::new(ClientNode {
            n,
            start: Duration::from_millis(script.map_or(0, |s| s.start_ms)),
            probe: Probe::new(Some(recorder.clone()), &name, clock.clone()),
            clock,
            points: Points::new(
                aimed.get(&name).cloned().unwrap_or_default(),
                hit_tx.clone(),
            ),
            spec,
            stop: clients.stop.clone(),
            finished: clients.finished.clone(),
            incarnation: AtomicU32::new(0),
        });
        let node = handle
            .create_node()
            .name(&name)
            .ip(client_ip(n))
            .init(move || client.clone().boot())
            .build();
        clients.nodes.push((name, node));
    }
    clients
}

/// Aimed faults, by node and point: the nth arrivals at the point that they strike.
fn aimed_points(plan: &FaultPlan) -> BTreeMap<String, BTreeMap<Point, Vec<u32>>> {
    let mut aimed: BTreeMap<String, BTreeMap<Point, Vec<u32>>> = BTreeMap::new();
    for (node, point, nth) in plan.faults.iter().filter_map(Fault::aim) {
        aimed
            .entry(node.to_string())
            .or_default()
            .entry(point)
            .or_default()
            .push(nth);
    }
    aimed
}

/// One client node: what each of its incarnations starts from.
struct ClientNode {
    /// 1-based.
    n: u32,
    /// When the first incarnation starts (its script's start); a restart starts at once.
    start: Duration,
    spec: ClientSpec,
    clock: NodeClock,
    probe: Probe,
    points: Points,
    stop: Arc<AtomicBool>,
    finished: Arc<Vec<AtomicBool>>,
    incarnation: AtomicU32,
}

impl ClientNode {
    /// The node's init: a new incarnation, run to its end.
    fn boot(self: Arc<Self>) -> impl Future<Output = ()> {
        let inc = self.incarnation.fetch_add(1, Ordering::Relaxed);
        let run = ClientRun::new(
            self.spec.clone(),
            self.clock.clone(),
            self.probe.clone(),
            self.points.clone(),
            self.stop.clone(),
            inc,
        );
        let i = self.n as usize - 1;
        async move {
            if inc == 0 {
                tokio::time::sleep(self.start).await;
            }
            self.finished[i].store(false, Ordering::Relaxed);
            self.probe
                .record(EventKind::NodeStarted { incarnation: inc });
            run.run().await;
            self.finished[i].store(true, Ordering::Relaxed);
            // Stay up: an exited node loses its address, and with it any request
            // still in flight, which a real network would still deliver.
            std::future::pending::<()>().await;
        }
    }
}
