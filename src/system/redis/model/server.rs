//! A [`Node`] as a node of the simulated world: its boot, its connections, and the
//! background task its persistence needs.
//!
//! - A madsim `kill` + `restart` is a crash and a recovery: the node's init boots it from
//!   its durable copy ([`Node::boot`]) before it serves.
//! - Redis runs one command at a time (one event loop), so each command applies atomically
//!   under the node's lock and the answer goes out in the order of the connection's
//!   requests.
//! - A paused node (madsim `Handle::pause`, like `kill -STOP`) runs nothing and answers
//!   nothing while its wall clock runs on; on resume the queued commands apply at the new
//!   now, so a key whose deadline passed during the pause is gone at once.
//! - Only `aof-everysec` (fsync every second), and `rdb` or active expiry (`serverCron` at
//!   `hz`), get a background task: a world without them gets no extra wake-ups, and none of
//!   these draws from madsim's random generator.

use super::node::Node;
use super::wire::{Envelope, Request, Response};
use crate::redis::{Persistence, RedisError};
use madsim::net::{Endpoint, Receiver, Sender};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Most background ticks in one boot's life (a year of 100 ms cron ticks): a limit on
/// everything.
const TICKS_MAX: u64 = 315_360_000;

/// A node of its own, named `name` at `addr`'s IP, that boots `node` and serves it on
/// `addr`. A restarted madsim node boots the same [`Node`] again: its disk outlives the crash.
pub fn node(
    handle: &madsim::runtime::Handle,
    name: &str,
    addr: SocketAddr,
    node: Arc<Node>,
) -> madsim::runtime::NodeHandle {
    crate::system::sim_node::serving(handle, name, addr, node, serve)
}

/// Boots `node` from its durable copy, then serves it on `addr` until the madsim node is
/// killed.
pub async fn serve(addr: SocketAddr, node: Arc<Node>) -> std::io::Result<()> {
    let boots = node.boots();
    node.boot();
    assert_eq!(node.boots(), boots + 1, "serving starts with a boot");
    let ep = Endpoint::bind(addr).await?;
    let _fsync = (node.config().persistence == Persistence::AofEverysec)
        .then(|| tokio::spawn(fsync_every_second(node.clone())));
    let _cron = (node.config().persistence == Persistence::Rdb || node.config().active_expire)
        .then(|| tokio::spawn(cron(node.clone())));
    let clients = Arc::new(AtomicUsize::new(0));
    loop {
        let (tx, rx, _) = ep.accept1().await?;
        let slot = Slot::take(&clients, node.config().clients_max);
        tokio::spawn(connection(node.clone(), tx, rx, slot));
    }
}

/// `appendfsync everysec`: an fsync every second of the node's timer.
async fn fsync_every_second(node: Arc<Node>) {
    let period = Duration::from_millis(node.config().fsync_every_ms);
    for _ in 0..TICKS_MAX {
        node.clock().sleep(period).await;
        node.fsync();
    }
}

/// `serverCron` at `hz`: active expiry (if configured), the RDB save points.
async fn cron(node: Arc<Node>) {
    let period = Duration::from_millis(node.config().cron_every_ms);
    for _ in 0..TICKS_MAX {
        node.clock().sleep(period).await;
        node.cron();
    }
}

/// A connected client's place under `maxclients`; `None` when the node is full. Given back
/// when the connection ends.
struct Slot(Option<Arc<AtomicUsize>>);

impl Slot {
    fn take(clients: &Arc<AtomicUsize>, clients_max: usize) -> Slot {
        let taken = clients
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                (n < clients_max).then_some(n + 1)
            })
            .is_ok();
        debug_assert!(clients.load(Ordering::Relaxed) <= clients_max);
        Slot(taken.then(|| clients.clone()))
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        if let Some(clients) = &self.0 {
            let before = clients.fetch_sub(1, Ordering::Relaxed);
            assert!(before > 0, "a slot given back that was never taken");
        }
    }
}

async fn connection(node: Arc<Node>, tx: Sender, mut rx: Receiver, slot: Slot) {
    while let Ok(msg) = rx.recv().await {
        // No panic in a server: a message that is not a request is dropped.
        let Ok(env) = msg.downcast::<Envelope<Request>>() else {
            continue;
        };
        let Envelope { id, body } = *env;
        if slot.0.is_none() {
            // Redis answers the first command of a client past `maxclients` with this
            // error and closes the connection (`src/networking.c`, `acceptCommonHandler`).
            let why = "ERR max number of clients reached".to_string();
            let body = Response::Error(RedisError::Other { why });
            let _ = tx.send(Box::new(Envelope { id, body })).await;
            return;
        }
        let body = node.apply(&body);
        // A closed connection loses the answer, as a reset TCP connection does.
        if tx.send(Box::new(Envelope { id, body })).await.is_err() {
            return;
        }
    }
}
