//! fencelab's model of a ZooKeeper 3.8.0 server: sessions and the data tree, the pure rules a
//! lock client can observe, each citing where ZooKeeper does it. The core is deterministic and
//! not yet wired into the simulated world (issue 20): time comes in as the server's monotonic ms,
//! nothing reads a clock or draws a random number, every output is in `BTreeMap` order.
//!
//! | file | what |
//! |---|---|
//! | `expiry.rs` | [`ExpiryQueue`]: tick-sized buckets (`ExpiryQueue.java`) |
//! | `session.rs` | [`SessionTracker`]: negotiation, touch, expiry, close, a new leader (`SessionTrackerImpl.java`) |
//! | `tree.rs` | [`DataTree`]: znodes, zxids, ephemerals, sequential and container nodes, `multi` (`DataTree.java`) |
//! | `path.rs` | path validation (`PathUtils.java`), the version check, Curator's order of lock nodes |
//! | `watch.rs` | one-shot data watches (`WatchManager.java`) |
//! | `server.rs` | [`Server`]: the two together, as the leader runs them (`ZooKeeperServer.java`) |
//! | `ensemble.rs`, `node_ensemble.rs` | [`Quorum`](ensemble::Quorum): who leads, the followers' touch tables, elections |
//! | `node.rs`, `node_apply.rs` | [`ZkNode`]: a server as a madsim node: connections, the tracker's thread, the container manager |
//! | `client.rs` | [`ModelZk`]: one session as `ClientCnxn` keeps it, with Curator's connection states |
//! | `wire.rs` | the packets between them |
//! | `error.rs` | [`ZkError`]: ZooKeeper's error codes (`KeeperException.java`) |
//!
//! **What is abstracted away.** These are not modelled yet, so unlike Redis's and etcd's models
//! this core makes no claim that a client cannot tell the difference:
//! - ZooKeeper's request pipeline (`PrepRequestProcessor` → `SyncRequestProcessor` →
//!   `FinalRequestProcessor`): a write is checked and applied in one call, and an expired
//!   session's `closeSession` lands in the tick that expired it;
//! - Zab's messages: an ensemble (`ensemble.rs`) shares one committed server, and a write
//!   commits at once when a majority is up (what a client can and cannot tell is said there);
//! - ACLs, quotas, TTL nodes, child and persistent watches.
//!
//! `docs/zookeeper-model.md` lists every rule with its source and what is not yet done.

#[cfg(madsim)]
pub(crate) mod client;
#[cfg(madsim)]
mod client_calls;
pub mod ensemble;
pub mod error;
pub mod expiry;
#[cfg(madsim)]
pub mod node;
#[cfg(madsim)]
mod node_apply;
#[cfg(madsim)]
mod node_ensemble;
// A follower cut from its leader by a partition between servers: its view, its held events.
#[cfg(madsim)]
mod node_cut;
pub mod path;
pub mod server;
pub mod session;
pub mod tree;
pub mod watch;
pub mod wire;

#[cfg(test)]
mod tests;

#[cfg(madsim)]
pub use client::ModelZk;
pub use error::{ZkError, ZkResult};
pub use expiry::ExpiryQueue;
#[cfg(madsim)]
pub use node::{node, serve, Config, ZkNode};
pub use path::sort_by_sequence;
pub use server::{Closed, Server};
pub use session::{SessionConfig, SessionId, SessionTracker};
pub use tree::{CreateMode, DataTree, MultiError, Op, OpResult, Owner, Stat, TreeLimits};
pub use watch::{EventKind, WatchEvent};
