//! fencelab's model of an etcd cluster: what a lock client can observe of etcd, rule by rule,
//! each rule citing where etcd does it. One file per part, like TigerBeetle's `src/testing/`:
//!
//! | file | what |
//! |---|---|
//! | `kv.rs` | keys, revisions, transactions and their compares |
//! | `lessor.rs` | leases: deadlines, minimum TTL, renewal, expiry, TimeToLive, IDs |
//! | `watch.rs` | watches from a revision |
//! | `member.rs` | the three together: how each request applies to the committed state |
//! | `cluster.rs` | members, who leads, elections, Promote, CheckQuorum, issue 15247 |
//! | `config.rs` | how one member behaves: etcd's flags, the request faults |
//! | `draws.rs` | each member's own random streams: election timeouts, request faults |
//! | `handle.rs` | a member as the server and the recipes hold it |
//! | `recipes.rs` | the v3 Lock and election services (3.4 and 3.5) |
//! | `server.rs` | the member as a node: connections, its clock, the lessor scan, stalls, faults |
//! | `client.rs` | a persistent connection per client, calls multiplexed on it |
//! | `wire.rs` | the messages between them |
//!
//! **What is abstracted away, and why a client cannot tell.** Raft's messages: the cluster
//! keeps one committed state and decides by leadership when a request through a member may
//! commit (`cluster.rs` says how and what it leaves out); a commit applies at once (a real
//! cluster on one machine spends about a millisecond on its log, fsync and peers, inside the
//! calibration's tolerance). Storage (bbolt, the WAL, compaction): a client sees only the
//! present keys, revisions and recent watch events. Authentication, TLS, gRPC framing and
//! flow control.
//!
//! Calibration: `fencelab::calibrate` runs the same probes against a real etcd (the real
//! suite) and against this model (`sims/calibration.rs`), and the model must land within the
//! tolerances recorded there.

pub(crate) mod client;
pub(crate) mod cluster;
pub(crate) mod config;
pub(crate) mod draws;
pub(crate) mod handle;
pub(crate) mod kv;
pub(crate) mod lessor;
pub(crate) mod member;
pub(crate) mod recipes;
pub(crate) mod server;
pub(crate) mod watch;
pub(crate) mod wire;

pub use client::ModelEtcd;
pub use cluster::{Cluster, RoleEvent};
pub use config::Config;
pub use handle::Member;
pub use server::{node, serve};
