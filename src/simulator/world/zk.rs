//! The world's ZooKeeper servers, for `service = "zk"`: `zk1` to `zkN`, each fencelab's model
//! of one ZooKeeper 3.8.0 server on a node of its own, with its own clock.

use crate::clock::NodeClock;
use crate::fault::{FaultPlan, ZK};
use crate::scenario::Scenario;
use crate::zk::model;
use madsim::runtime::{Handle, NodeHandle};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use tokio::time::Instant;

/// ZooKeeper's client port (`clientPort=2181`).
const ZK_PORT: u16 = 2181;
/// Most servers a world may address: a limit on everything.
const SERVERS_MAX: usize = 9;

/// Server `i`'s (0-based) address: 10.0.0.41 and up.
fn server_addr(i: usize) -> SocketAddr {
    assert!(i < SERVERS_MAX, "no address for zookeeper server {i}");
    SocketAddr::new(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 41 + i as u8)), ZK_PORT)
}

/// What a client needs to connect: every server's endpoint, in server order, and the
/// session timeout it asks for. Empty outside a ZooKeeper world.
pub(super) fn connect_spec(scenario: &Scenario) -> crate::zk::ConnectSpec {
    if scenario.service != crate::lock::ServiceKind::Zk {
        return crate::zk::ConnectSpec::default();
    }
    crate::zk::ConnectSpec {
        endpoints: (0..scenario.zk.servers as usize)
            .map(|i| server_addr(i).to_string())
            .collect(),
        session_timeout_ms: scenario.zk.session_timeout_ms,
    }
}

/// The model's configuration of one server: the scenario's tick and container interval,
/// and the server's ID (the top byte of its session IDs).
fn config(scenario: &Scenario, i: usize) -> model::Config {
    let mut cfg = model::Config::default();
    cfg.sessions.tick_ms = scenario.zk.tick_ms;
    cfg.sessions.server_id = (i + 1) as u8;
    cfg.container_check_ms = scenario.zk.container_check_ms;
    cfg
}

/// Starts the servers, each with its own clock (its skew, else the plan's skew of `zk`, all
/// of them): one standalone server, or an ensemble whose election draws come from `seed`.
/// Returns each server's node and its model, which outlives a crash of the node (the
/// snapshot and log a restarted server reloads).
pub(super) fn start(
    handle: &Handle,
    scenario: &Scenario,
    plan: &FaultPlan,
    seed: u64,
    origin: Instant,
) -> Vec<(String, NodeHandle, Arc<model::ZkNode>)> {
    let names = scenario.zk.server_names();
    let clocks: Vec<NodeClock> = names
        .iter()
        .map(|name| NodeClock::new(origin, plan.skew_of_member(name, ZK)))
        .collect();
    let models: Vec<model::ZkNode> = match names.len() {
        1 => vec![model::ZkNode::new(config(scenario, 0), clocks[0].clone())],
        n => model::ZkNode::ensemble((0..n).map(|i| config(scenario, i)).collect(), clocks, seed),
    };
    let servers: Vec<_> = names
        .iter()
        .zip(models)
        .enumerate()
        .map(|(i, (name, state))| {
            let state = Arc::new(state);
            let node = model::node(handle, name, server_addr(i), state.clone());
            (name.clone(), node, state)
        })
        .collect();
    assert_eq!(servers.len(), scenario.zk.servers as usize);
    servers
}
