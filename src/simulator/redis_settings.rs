//! A scenario's `[redis]` table: the Redis nodes of a Redlock world and how its clients lock.

use crate::lock::redlock::{RETRY_DELAY_MS, RETRY_DELAY_MS_MAX};
use crate::lock::{ClientClock, Redlock, RedlockToken};
use crate::ms::MsRange;
use crate::redis::Persistence;
use crate::redis::NODES_MAX;
use serde::{Deserialize, Serialize};

/// The Redis nodes and the Redlock client, for `service = "redlock"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RedisSettings {
    /// How many independent Redis masters (`redis1` … `redisN`): 1 to 9, default 5 (the
    /// Redlock doc's example).
    pub nodes: u32,
    /// What a node keeps across a crash: `none`, `aof-everysec`, `aof-always` or `rdb`.
    pub persistence: Persistence,
    /// antirez's "delayed restarts": a crashed node stays down at least this long after its
    /// crash, ms (the doc: "a bit more than the max TTL"); 0 for none.
    pub restart_delay_ms: u64,
    /// Which clock the client measures the lock's validity on: `monotonic` or `wall`.
    pub clock: ClientClock,
    /// Which number the holder offers the storage: the lock's `random` value, or `incr` of a
    /// counter on `redis1`.
    pub token: RedlockToken,
    /// The random delay between two acquisition attempts, MIN..MAX ms (default node-redlock's
    /// 200 ± 100; redlock-rb's is 0..200, redsync's 50..250).
    pub retry_delay_ms: MsRange,
    /// How many nodes must say OK, 1..=`nodes`; absent: a majority, `nodes/2 + 1`. Below a
    /// majority two clients can hold the lock at once without any fault.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub quorum: Option<u32>,
    /// A holder extends its lock (compare-and-`PEXPIRE` to a full TTL on every node, a quorum
    /// needed) before a write when less validity than this is left, ms; absent: never.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub extend_below_ms: Option<u64>,
}

impl Default for RedisSettings {
    fn default() -> Self {
        RedisSettings {
            nodes: 5,
            persistence: Persistence::None,
            restart_delay_ms: 0,
            clock: ClientClock::Monotonic,
            token: RedlockToken::Random,
            retry_delay_ms: RETRY_DELAY_MS,
            quorum: None,
            extend_below_ms: None,
        }
    }
}

/// Largest extension threshold, ms: a minute, longer than any TTL a scenario takes.
pub const EXTEND_BELOW_MS_MAX: u64 = 60_000;

/// Longest delayed restart, ms: an hour, a limit on everything.
pub const RESTART_DELAY_MS_MAX: u64 = 3_600_000;

impl RedisSettings {
    /// The node names, `redis1` to `redisN`.
    pub fn node_names(&self) -> Vec<String> {
        // Redlock needs a node; the world addresses at most NODES_MAX.
        debug_assert!((1..=NODES_MAX as u32).contains(&self.nodes));
        (1..=self.nodes).map(|i| format!("redis{i}")).collect()
    }

    /// Checks every limit; the message names the key.
    pub fn validate(&self) -> Result<(), String> {
        if !(1..=NODES_MAX as u32).contains(&self.nodes) {
            return Err(format!(
                "redis.nodes: {} is outside 1..={NODES_MAX}",
                self.nodes
            ));
        }
        if self.restart_delay_ms > RESTART_DELAY_MS_MAX {
            return Err(format!(
                "redis.restart_delay_ms: {} is above {RESTART_DELAY_MS_MAX}",
                self.restart_delay_ms
            ));
        }
        self.retry_delay_ms
            .validate("redis.retry_delay_ms", RETRY_DELAY_MS_MAX)?;
        if let Some(quorum) = self.quorum {
            if !(1..=self.nodes).contains(&quorum) {
                return Err(format!(
                    "redis.quorum: {quorum} is outside 1..={} (redis.nodes); leave it out for a \
                     majority, {}",
                    self.nodes,
                    Redlock::majority(self.nodes as usize)
                ));
            }
        }
        if let Some(below_ms) = self.extend_below_ms {
            if !(1..=EXTEND_BELOW_MS_MAX).contains(&below_ms) {
                return Err(format!(
                    "redis.extend_below_ms: {below_ms} is outside 1..={EXTEND_BELOW_MS_MAX}"
                ));
            }
        }
        Ok(())
    }

    /// The scenario's Redlock recipe (`single`: the single-instance lock).
    pub fn recipe(&self, single: bool) -> Redlock {
        // A validated table's quorum: the recipe counts that many of `nodes` answers.
        debug_assert!(self.quorum.is_none_or(|q| (1..=self.nodes).contains(&q)));
        Redlock {
            clock: self.clock,
            token: self.token,
            single,
            retry_delay_ms: self.retry_delay_ms,
            quorum: self.quorum.map(|q| q as usize),
            extend_below_ms: self.extend_below_ms,
        }
    }
}
