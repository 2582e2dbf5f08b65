//! fencelab's model of a Redis 7.0.15 node: what a lock client can observe of one Redis
//! master, rule by rule, each rule citing where Redis does it. One file per part:
//!
//! | file | what |
//! |---|---|
//! | `store.rs` | the keyspace: values, absolute expiries, passive expiry, the commands and the two scripts |
//! | `persist.rs` | what survives a crash: none, AOF always, AOF everysec, RDB save points; loading |
//! | `config.rs` | how one node behaves: its persistence and its limits |
//! | `node.rs` | a node's state (live keys and disk) behind one lock, its clock, its boot |
//! | `observe.rs` | what a node tells the world for the history: key changes, clock steps, boots |
//! | `server.rs` | the node as a madsim node: boot, connections, the fsync or cron task |
//! | `client.rs` | [`ModelRedis`]: one persistent connection per client, calls multiplexed on it |
//! | `wire.rs` | the messages between them |
//!
//! **What is abstracted away, and why a client cannot tell.**
//!
//! - *Active expiry* (`src/expire.c`, `activeExpireCycle`, run from `serverCron` and
//!   `beforeSleep`), off by default ([`Config::active_expire`] turns on a simplified one). It
//!   changes no lock outcome: every access to a key expires it passively first (`src/db.c`,
//!   `expireIfNeeded`, from `lookupKeyRead`/`lookupKeyWrite`, and in `DEL`), so `GET`,
//!   `PTTL`, `SET NX` and the scripts see an expired key as missing whether or not the cycle
//!   reached it. Active expiry matters for memory and keyspace notifications, which the seam
//!   has not, and in one corner: a wall clock stepped *back* past the deadline of a key that
//!   expired while nothing touched it. Redis has then usually deleted it actively (within a
//!   cron tick or so), while the model without active expiry finds it alive again
//!   (`sims/redis.rs` shows both). An expired key also counts toward the model's key limit
//!   until something touches it.
//! - *Replication.* Redlock's masters are independent, without replicas.
//! - *RESP framing and the event loop's I/O*: a request and its answer are typed messages; a
//!   client sees the same commands and answers, and madsim's network supplies the latency.
//! - *Memory*: `maxmemory` is a count of keys ([`Config::keys_max`]); over it a write is
//!   answered with Redis's `OOM` error. Keys and values are strings only (no `WRONGTYPE`).
//! - *Lua*: the two scripts of "Distributed Locks with Redis" are built in, atomic, with the
//!   time frozen at their start, as Redis runs them.
//!
//! **Time.** Expiry is judged by the node's *wall* clock ([`crate::clock::NodeClock::now_us`],
//! with offset, steps and drift), as Redis's `mstime()` reads `gettimeofday`: a step forward
//! expires keys early, a step back extends them. The model draws nothing from madsim's random
//! generator.

pub(crate) mod client;
pub(crate) mod config;
pub(crate) mod node;
pub(crate) mod observe;
pub(crate) mod persist;
pub(crate) mod server;
pub(crate) mod store;
pub(crate) mod wire;

pub use client::ModelRedis;
pub use config::Config;
pub use node::Node;
pub use observe::{Tell, BOOT_KEYS_MAX};
pub use server::{node, serve};
