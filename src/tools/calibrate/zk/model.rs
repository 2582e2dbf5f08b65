//! The probes' seams against fencelab's ZooKeeper model in a madsim world: sessions of
//! [`zk::connect`](crate::zk::connect) (the model's `ClientCnxn`), silenced by a partition of a
//! client node of their own; the server stalled by madsim's pause of its node
//! ([`PauseNode`](crate::calibrate::PauseNode), as the world's pause faults do); the failover
//! probe's ensemble is the model's 3 servers, each a node whose leader is killed and restarted
//! as the world's crash faults do ([`ModelEnsemble`]).

use super::*;
use crate::clock::NodeClock;
use crate::zk::ConnectSpec;
use madsim::net::NetSim;
use madsim::runtime::Handle;
use madsim::task::NodeId;
use std::sync::atomic::{AtomicU64, Ordering};

/// Most silenceable sessions one [`ModelSessions`] opens: each is a node of its own, with an
/// address of its own in 10.0.2.0/23 (a limit on everything; the probes open 20).
pub const SILENCEABLE_MAX: u64 = 500;

/// Sessions on the model's server(s) at `endpoints`: [`Sessions::open`] connects from the
/// calling node, [`Sessions::open_silenceable`] from a fresh client node, which a partition can
/// then cut off alone.
pub struct ModelSessions {
    /// The servers' endpoints, in the order the clients try them.
    pub endpoints: Vec<String>,
    /// The world's origin: every client's clock is perfect from it (the probes measure the
    /// servers, not the clients' clocks).
    pub origin: Instant,
    /// Seeds each session's own stream (its reconnect delays), mixed with its number.
    pub seed: u64,
    opened: AtomicU64,
    nodes: AtomicU64,
}

impl ModelSessions {
    pub fn new(endpoints: Vec<String>, origin: Instant, seed: u64) -> Self {
        ModelSessions {
            endpoints,
            origin,
            seed,
            opened: AtomicU64::new(0),
            nodes: AtomicU64::new(0),
        }
    }

    /// The next session's connect spec, clock and seed.
    fn next(&self, timeout_ms: u64) -> (ConnectSpec, NodeClock, u64) {
        let n = self.opened.fetch_add(1, Ordering::Relaxed) + 1;
        let spec = ConnectSpec {
            endpoints: self.endpoints.clone(),
            session_timeout_ms: timeout_ms,
        };
        let seed = self.seed ^ n.rotate_left(32);
        (spec, NodeClock::perfect(self.origin), seed)
    }
}

impl Sessions for ModelSessions {
    fn open(&self, timeout_ms: u64) -> BoxFuture<'_, ZkResult<Arc<dyn Zk>>> {
        Box::pin(async move {
            let (spec, clock, seed) = self.next(timeout_ms);
            crate::zk::connect(&spec, &clock, seed, None).await
        })
    }

    fn open_silenceable(&self, timeout_ms: u64) -> BoxFuture<'_, Result<Silenceable, String>> {
        Box::pin(async move {
            let n = self.nodes.fetch_add(1, Ordering::Relaxed);
            if n >= SILENCEABLE_MAX {
                return Err(format!("more than {SILENCEABLE_MAX} silenceable sessions"));
            }
            let ip = std::net::Ipv4Addr::new(10, 0, 2 + (n / 250) as u8, 1 + (n % 250) as u8);
            let node = Handle::current()
                .create_node()
                .name(format!("client{n}"))
                .ip(ip.into())
                .build();
            let (spec, clock, seed) = self.next(timeout_ms);
            // Connected from its own node, the session's connection and its session thread
            // (which reconnects) are that node's: a partition of the node silences it alone.
            let zk = node
                .spawn(async move { crate::zk::connect(&spec, &clock, seed, None).await })
                .await
                .map_err(|e| format!("client{n}: {e}"))?
                .map_err(|e| format!("connect client{n}: {e}"))?;
            Ok((
                zk,
                Box::new(Partition { node: node.id() }) as Box<dyn Silence>,
            ))
        })
    }
}

/// Cuts a client node off from every other node, both ways, for good (madsim's `clog_node`,
/// as a partition fault of the world does). A packet sent before the cut still arrives: it
/// left the node (madsim fixes a packet's arrival when it is sent); later ones never do, and
/// the node's new connections are refused.
///
/// The instant answered is the cut itself, not the last packet's arrival: the model has no
/// proxy to stamp it. In the expiry probe the silent client's last packet is its `create`,
/// answered before the watcher's `exists` (a ping comes only after T/3 idle), so the cut
/// follows it by about two simulated round trips (a few ms: madsim delivers no message sooner
/// than 1 ms), which the model's latencies read short.
pub struct Partition {
    pub node: NodeId,
}

impl Silence for Partition {
    fn silence(&self) -> BoxFuture<'_, Result<Instant, String>> {
        Box::pin(async move {
            NetSim::current().clog_node(self.node);
            Ok(Instant::now())
        })
    }
}

/// How often [`ModelEnsemble::new_leader`] looks for the new leader: the real probe's
/// `srvr` poll (`real.rs`'s `LEADER_POLL`), on the simulated clock.
pub const LEADER_POLL: Duration = Duration::from_millis(20);
/// How often [`ModelEnsemble::restart`] looks whether the restarted server serves, as the
/// real probe does.
pub const RESTART_POLL: Duration = Duration::from_millis(200);
/// How long a restarted server may take to serve again (the real probe's bound).
pub const RESTART_MAX: Duration = Duration::from_secs(60);

/// The model's ensemble of 3 servers in a madsim world, each a node of its own: a kill is
/// madsim's kill of the leader's node and the model told it crashed (`set_up(false, true)`),
/// a restart madsim's restart and `set_up(true, false)`, as the world's crash faults do
/// (`world/apply.rs`). The leader is read from the model (`ZkNode::leader`), which answers
/// what a real server's `srvr` `Mode:` line does: who leads, once its server runs.
pub struct ModelEnsemble {
    /// Each server's model and madsim node, in server order.
    pub servers: Vec<(Arc<crate::zk::model::ZkNode>, NodeId)>,
    /// Sessions on every server (the connect string of all, tried in order, so a silenceable
    /// session lands on server 0 as the real probe's proxy does).
    pub sessions: Arc<ModelSessions>,
}

impl ModelEnsemble {
    /// Who leads now, as every server's shared state says.
    fn leader(&self) -> Option<usize> {
        self.servers.first().and_then(|(z, _)| z.leader())
    }
}

impl Ensemble for ModelEnsemble {
    fn sessions(&self) -> Arc<dyn Sessions> {
        self.sessions.clone()
    }

    fn kill_leader(&self) -> BoxFuture<'_, Result<usize, String>> {
        Box::pin(async move {
            let i = self.leader().ok_or("no server leads")?;
            let (z, node) = &self.servers[i];
            Handle::current().kill(*node);
            z.set_up(false, true);
            Ok(i)
        })
    }

    fn new_leader(&self, killed: usize) -> BoxFuture<'_, Result<Instant, String>> {
        Box::pin(async move {
            let limit = Instant::now() + ELECTION_MAX;
            while Instant::now() < limit {
                if self.leader().is_some_and(|l| l != killed) {
                    return Ok(Instant::now());
                }
                tokio::time::sleep(LEADER_POLL).await;
            }
            Err(format!("no new leader in {ELECTION_MAX:?}"))
        })
    }

    fn restart(&self, killed: usize) -> BoxFuture<'_, Result<(), String>> {
        Box::pin(async move {
            let (z, node) = self.servers.get(killed).ok_or("no such server")?;
            Handle::current().restart(*node);
            z.set_up(true, false);
            let limit = Instant::now() + RESTART_MAX;
            while Instant::now() < limit {
                // Up, it serves while the ensemble has a leader (`Quorum::serving`).
                if self.leader().is_some() {
                    return Ok(());
                }
                tokio::time::sleep(RESTART_POLL).await;
            }
            Err(format!(
                "server {killed} not serving {RESTART_MAX:?} after its restart"
            ))
        })
    }
}
