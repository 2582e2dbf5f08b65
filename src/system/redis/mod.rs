//! The seam between lock recipes and one Redis node.
//!
//! Redlock talks to N independent Redis masters; each is one [`Redis`] here, a client of one
//! node over one persistent connection (so a request costs two messages, as a
//! `redis::aio::MultiplexedConnection` costs). Only what a lock client calls is on the
//! seam: `SET NX PX`, `GET`, `DEL`, `PTTL`, `PEXPIRE`, `INCR` and the two scripts of
//! redis.io's "Distributed Locks with Redis" (compare-and-delete to unlock,
//! compare-and-pexpire to extend). Two implementations:
//!
//! | backend | build | what it is |
//! |---|---|---|
//! | `model` | simulation | fencelab's own model of a Redis 7.0.15 node (`model/`), calibrated against the real one |
//! | `real` | real | the `redis` crate against a real `redis-server` |
//!
//! Errors are classified the way a lock client must treat them ([`RedisError`]): a timeout is
//! *indeterminate* (the command may have run), a refused connection is not.

use crate::BoxFuture;
use serde::{Deserialize, Serialize};
#[cfg(madsim)]
pub mod model;

/// What every call of the seam returns.
pub type RedisResult<T> = Result<T, RedisError>;

/// Why a Redis call failed, classified by what the caller may conclude.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "error", rename_all = "kebab-case")]
pub enum RedisError {
    /// No answer in time, or the connection broke after the command was sent: the command
    /// **may have run**.
    Timeout,
    /// No connection: the command was not sent.
    Unavailable { why: String },
    /// The key holds another type (Redis's `WRONGTYPE`, e.g. `INCR` of a lock key).
    WrongType,
    /// Anything else Redis answered (a bad argument, a script error, ...).
    Other { why: String },
}

impl std::fmt::Display for RedisError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RedisError::Timeout => f.write_str("redis: no answer in time"),
            RedisError::Unavailable { why } => write!(f, "redis unavailable: {why}"),
            RedisError::WrongType => {
                f.write_str("WRONGTYPE Operation against a key holding the wrong kind of value")
            }
            RedisError::Other { why } => write!(f, "redis: {why}"),
        }
    }
}

impl std::error::Error for RedisError {}

impl RedisError {
    /// Whether the command may have run although the caller saw no success.
    pub fn is_indeterminate(&self) -> bool {
        matches!(self, RedisError::Timeout)
    }
}

/// `PTTL`'s answer for a missing key (Redis ≥ 2.8: `-2`, `expire.c`, `ttlGenericCommand`).
pub const PTTL_MISSING: i64 = -2;
/// `PTTL`'s answer for a key without an expiry (`-1`).
pub const PTTL_PERSISTENT: i64 = -1;
/// Longest expiry a lock client may ask for, ms (a day): a limit on everything.
pub const PX_MS_MAX: i64 = 86_400_000;

/// The subset of Redis a lock client uses, on one node. Every call may fail with
/// [`RedisError::Timeout`] (indeterminate) or [`RedisError::Unavailable`]; callers bound
/// each call with their own deadline.
pub trait Redis: Send + Sync {
    /// `SET key value NX PX px_ms`: true when the key was set (it was absent or expired),
    /// false when another value holds it.
    fn set_nx_px(&self, key: &str, value: &str, px_ms: i64) -> BoxFuture<'_, RedisResult<bool>>;
    /// `GET key`: `None` when absent or expired.
    fn get(&self, key: &str) -> BoxFuture<'_, RedisResult<Option<String>>>;
    /// `DEL key`: whether a (live) key was deleted.
    fn del(&self, key: &str) -> BoxFuture<'_, RedisResult<bool>>;
    /// `PTTL key`: ms left, [`PTTL_MISSING`] or [`PTTL_PERSISTENT`].
    fn pttl(&self, key: &str) -> BoxFuture<'_, RedisResult<i64>>;
    /// `PEXPIRE key ms`: whether the key existed and got the expiry (a non-positive `px_ms`
    /// deletes the key and answers true: `expire.c`, `expireGenericCommand`).
    fn pexpire(&self, key: &str, px_ms: i64) -> BoxFuture<'_, RedisResult<bool>>;
    /// `INCR key`: the new value (1 for a missing key; a present key keeps its expiry).
    /// A string that is not an integer is answered as Redis answers it, [`RedisError::Other`]
    /// with "ERR value is not an integer or out of range" (`t_string.c`, `incrDecrCommand`);
    /// [`RedisError::WrongType`] is for a key of another type (a list, a hash, ...).
    fn incr(&self, key: &str) -> BoxFuture<'_, RedisResult<i64>>;
    /// The unlock script: `if GET(key) == value then DEL(key)`, atomically. True when deleted.
    fn del_if_eq(&self, key: &str, value: &str) -> BoxFuture<'_, RedisResult<bool>>;
    /// The extend script: `if GET(key) == value then PEXPIRE(key, px_ms)`, atomically. True
    /// when extended.
    fn pexpire_if_eq(&self, key: &str, value: &str, px_ms: i64)
        -> BoxFuture<'_, RedisResult<bool>>;
}

/// Connects to the Redis node at `endpoint`: fencelab's model in the simulation build, a real
/// `redis-server` in the real build.
pub async fn connect(endpoint: &str) -> RedisResult<std::sync::Arc<dyn Redis>> {
    #[cfg(madsim)]
    {
        let addr = endpoint.parse().map_err(|_| RedisError::Unavailable {
            why: format!("not a model endpoint: {endpoint:?}"),
        })?;
        Ok(std::sync::Arc::new(model::ModelRedis::new(addr)))
    }
    #[cfg(not(madsim))]
    {
        Ok(std::sync::Arc::new(
            real::RealRedis::connect(endpoint).await?,
        ))
    }
}

/// One client per node, in order; fails if any node's endpoint is malformed.
pub async fn connect_all(endpoints: &[String]) -> RedisResult<Vec<std::sync::Arc<dyn Redis>>> {
    if endpoints.is_empty() || endpoints.len() > NODES_MAX {
        return Err(RedisError::Other {
            why: format!(
                "{} Redis endpoints, expected 1 to {NODES_MAX}",
                endpoints.len()
            ),
        });
    }
    let mut nodes = Vec::with_capacity(endpoints.len());
    for e in endpoints {
        nodes.push(connect(e).await?);
    }
    Ok(nodes)
}

/// Most Redis nodes one client connects to: a limit on everything (Redlock's doc uses 5).
pub const NODES_MAX: usize = 9;

/// What a Redis node keeps across a crash (`redis.conf`'s `appendonly`, `appendfsync` and
/// `save`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
#[serde(rename_all = "kebab-case")]
pub enum Persistence {
    /// No AOF, no RDB save points (`--save "" --appendonly no`): a restart loses every key.
    #[default]
    None,
    /// `appendonly yes`, `appendfsync everysec`: what was written since the last fsync, up to
    /// a second, is lost.
    AofEverysec,
    /// `appendonly yes`, `appendfsync always`: every acknowledged write survives.
    AofAlways,
    /// The built-in RDB save points (`save 3600 1 300 100 60 10000`, Debian's default
    /// `redis.conf` leaves them on): a snapshot after 3600 s with 1 change, 300 s with 100,
    /// 60 s with 10,000.
    Rdb,
}

impl Persistence {
    /// Every mode, in the order the docs list them.
    pub const ALL: [Persistence; 4] = [
        Persistence::None,
        Persistence::AofEverysec,
        Persistence::AofAlways,
        Persistence::Rdb,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Persistence::None => "none",
            Persistence::AofEverysec => "aof-everysec",
            Persistence::AofAlways => "aof-always",
            Persistence::Rdb => "rdb",
        }
    }
}

impl std::str::FromStr for Persistence {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        crate::named::parse(&Persistence::ALL, Persistence::as_str, "persistence", s)
    }
}

#[cfg(not(madsim))]
pub mod real;
