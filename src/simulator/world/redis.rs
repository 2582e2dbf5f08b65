//! The world's Redis nodes, for `service = "redlock"`: `redis1` to `redisN`, each fencelab's
//! model of one Redis master on a node of its own, with its own clock.

use crate::clock::NodeClock;
use crate::fault::{FaultPlan, REDIS};
use crate::history::Recorder;
use crate::redis::model;
use crate::scenario::Scenario;
use madsim::runtime::{Handle, NodeHandle};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use tokio::time::Instant;

const REDIS_PORT: u16 = 6379;

/// Node `i`'s (0-based) address: 10.0.0.21 and up.
fn node_addr(i: usize) -> SocketAddr {
    assert!(i < crate::redis::NODES_MAX, "no address for redis node {i}");
    SocketAddr::new(
        IpAddr::V4(Ipv4Addr::new(10, 0, 0, 21 + i as u8)),
        REDIS_PORT,
    )
}

/// Every node's endpoint, in node order.
pub(super) fn endpoints(scenario: &Scenario) -> Vec<String> {
    (0..scenario.redis.nodes as usize)
        .map(|i| node_addr(i).to_string())
        .collect()
}

/// Starts the Redis nodes. A node's clock is its own skew, else the plan's skew of `redis`
/// (all of them). Redis reads its expiries off that clock's wall time (`server.c`, `mstime`),
/// so its steps and drift both move every deadline.
pub(super) fn start(
    handle: &Handle,
    scenario: &Scenario,
    plan: &FaultPlan,
    origin: Instant,
    recorder: &Recorder,
) -> Vec<(String, NodeHandle)> {
    let names = scenario.redis.node_names();
    let cfg = model::Config::with_persistence(scenario.redis.persistence);
    let nodes: Vec<(String, NodeHandle)> = names
        .iter()
        .enumerate()
        .map(|(i, name)| {
            let clock = NodeClock::new(origin, plan.skew_of_member(name, REDIS));
            // Built outside the node's init: a restarted node finds what it persisted.
            let state = Arc::new(model::Node::new(cfg.clone(), clock));
            observe(&state, name, recorder);
            (name.clone(), model::node(handle, name, node_addr(i), state))
        })
        .collect();
    assert_eq!(nodes.len(), scenario.redis.nodes as usize);
    nodes
}

/// Records a node's key changes, clock steps and boots on its lane, stamped with its wall
/// clock (the time it judges expiry by).
fn observe(node: &Arc<model::Node>, name: &str, recorder: &Recorder) {
    let (name, recorder, clock) = (name.to_string(), recorder.clone(), node.clock().clone());
    node.observe(Box::new(move |event| {
        recorder.record(&name, Some(clock.now_us()), event);
    }));
}
