//! Redlock over N independent Redis nodes, and the single-instance lock over one: recipes over
//! the [`Redis`](crate::redis::Redis) seam.
//!
//! The algorithm is redis.io's "Distributed Locks with Redis" (redis/redis-doc,
//! `docs/manual/patterns/distributed-locks.md`) as antirez's reference client implements it
//! (antirez/redlock-rb, `lib/redlock.rb`, `lock` and `lock_instance`):
//! 1. note the time; 2. `SET key value NX PX ttl` on every node in turn, each bounded by a
//!    per-node timeout small against the TTL; 3. the lock is held when a quorum (N/2 + 1) said
//!    OK and the validity, `ttl − elapsed − drift` with `drift = ⌊0.01·ttl⌋ + 2 ms`, is
//!    positive; 4. otherwise unlock every node (even those that did not answer OK: a lost
//!    answer may hide a success) and retry after a random delay.
//!
//! The time is the client's own, on the clock a [`ClientClock`] names: monotonic, as redsync
//! (Go's `time.Now` carries a monotonic reading) and rslock (`Instant`) measure, or wall, as
//! node-redlock (`Date.now()`) and redlock-rb (`Time.now`) do.
//!
//! **No fencing token.** Redlock's value is random: [`RedlockToken::Random`] hands it to the
//! fence as the token, in no order. [`RedlockToken::Incr`] adds the counter Kleppmann
//! discusses: `INCR` on the first node after the lock is taken, which rises only while that
//! node keeps its data (a restart without persistence starts it again at 1).

use super::{
    ClientClock, Holding, LockConfig, LockContext, LockError, LockRecipe, RedisHandle, ServiceKind,
    Validity,
};
use crate::deadline::Alarm;
use crate::ms::MsRange;
use crate::BoxFuture;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// The key every client locks.
pub const REDLOCK_KEY: &str = "fencelab:lock";
/// The counter [`RedlockToken::Incr`] increments on the first node.
pub const TOKEN_KEY: &str = "fencelab:token";
/// Most acquisition attempts of one campaign (redsync's default `tries`, 32); the campaign
/// timeout usually ends it first.
pub const ATTEMPTS_MAX: u32 = 32;
/// The random delay between attempts, by default node-redlock's: `retryDelay` 200 ms with
/// `retryJitter` 100 ms either way (mike-marcacci/node-redlock, `settings`). redlock-rb draws
/// `rand(200)` ms and redsync `[50, 250)`: the scenario's `[redis] retry_delay_ms` chooses.
pub const RETRY_DELAY_MS: MsRange = MsRange::new(100, 300);
/// Longest retry delay a scenario may ask for, ms.
pub const RETRY_DELAY_MS_MAX: u64 = 10_000;

/// Which number a Redlock holder offers the storage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
#[serde(rename_all = "kebab-case")]
pub enum RedlockToken {
    /// The lock's random value: unique, in no order.
    #[default]
    Random,
    /// `INCR` of a counter on the first node once the lock is taken.
    Incr,
}

impl RedlockToken {
    pub const ALL: [RedlockToken; 2] = [RedlockToken::Random, RedlockToken::Incr];

    pub fn as_str(self) -> &'static str {
        match self {
            RedlockToken::Random => "random",
            RedlockToken::Incr => "incr",
        }
    }
}

impl std::str::FromStr for RedlockToken {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        crate::named::parse(&RedlockToken::ALL, RedlockToken::as_str, "token", s)
    }
}

/// Redlock (`nodes` ≥ 1; with one node, the single-instance lock `SET NX PX`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Redlock {
    pub clock: ClientClock,
    pub token: RedlockToken,
    /// Only the first node: redis.io's single-instance lock, quorum 1.
    pub single: bool,
    /// The random delay between two attempts, drawn uniformly.
    pub retry_delay_ms: MsRange,
    /// How many nodes must say OK, 1..=N; None: a majority, `N/2 + 1` (the algorithm's). A
    /// smaller quorum lets two clients hold at once with no fault at all; the setting is for
    /// showing it.
    pub quorum: Option<usize>,
    /// Extend the lock when less validity than this is left, ms (node-redlock's `using`
    /// extends at its `automaticExtensionThreshold`, 500 ms by default); None: never.
    pub extend_below_ms: Option<u64>,
}

impl Default for Redlock {
    fn default() -> Self {
        Redlock {
            clock: ClientClock::default(),
            token: RedlockToken::default(),
            single: false,
            retry_delay_ms: RETRY_DELAY_MS,
            quorum: None,
            extend_below_ms: None,
        }
    }
}

impl Redlock {
    /// The lock's validity drift, ms: `⌊0.01·ttl⌋ + 2` (redlock-rb, `lock`: "add 2 milliseconds
    /// to the drift to account for Redis expires precision, which is 1 millisecond, plus 1
    /// millisecond min drift for small TTLs").
    pub fn drift_ms(ttl_ms: i64) -> i64 {
        ttl_ms / 100 + 2
    }

    /// How long one node may take to answer, ms: 5 % of the TTL (redsync's `timeoutFactor`
    /// 0.05), at least 5 ms (redis.io: "5-50 milliseconds" for a 10 s TTL).
    pub fn node_timeout_ms(ttl_ms: i64) -> u64 {
        (ttl_ms / 20).max(5) as u64
    }

    /// [`Redlock::node_timeout_ms`] of the lock's TTL.
    fn node_timeout(cfg: &LockConfig) -> Duration {
        Duration::from_millis(Redlock::node_timeout_ms(cfg.ttl_s * 1000))
    }

    /// The majority of `n` nodes: `n/2 + 1` (redlock-rb, `@quorum`).
    pub fn majority(n: usize) -> usize {
        n / 2 + 1
    }

    /// How many of `n` nodes must say OK: the configured quorum, or a majority. The single
    /// instance lock has one node, so its quorum is 1 either way.
    pub fn quorum_of(&self, n: usize) -> usize {
        let quorum = self.quorum.unwrap_or(Redlock::majority(n)).min(n);
        assert!((1..=n).contains(&quorum), "quorum {quorum} of {n} nodes");
        quorum
    }

    fn nodes<'a>(&self, cx: &LockContext<'a>) -> Result<&'a [RedisHandle], LockError> {
        let nodes = cx.redis()?;
        assert!(!nodes.is_empty() && nodes.len() <= crate::redis::NODES_MAX);
        Ok(if self.single { &nodes[..1] } else { nodes })
    }

    /// The lock's value: the client's name and the acquisition's nonce, unique per attempt
    /// campaign (redis.io: "a random value, unique across all clients and all lock requests").
    fn value(cx: &LockContext<'_>) -> String {
        format!("{}:{:016x}", cx.value, cx.nonce)
    }

    /// One attempt: `SET NX PX` on each node in turn; the validity left, if a quorum said OK.
    /// Each node's bound is on `alarm`, the campaign's one timer (see [`Alarm`]).
    async fn attempt(
        &self,
        cx: LockContext<'_>,
        nodes: &[RedisHandle],
        value: &str,
        alarm: &Alarm,
    ) -> Option<Validity> {
        let ttl_ms = cx.cfg.ttl_s * 1000;
        self.on_quorum(cx, nodes, alarm, |node| {
            node.set_nx_px(REDLOCK_KEY, value, ttl_ms)
        })
        .await
    }

    /// `call` on each node in turn, each bounded by the per-node timeout on `alarm`; the
    /// validity left from the start of the first call, if a quorum answered `true`
    /// (redlock-rb's `lock`, which its `extend` reuses with another script).
    async fn on_quorum<'n, F>(
        &self,
        cx: LockContext<'_>,
        nodes: &'n [RedisHandle],
        alarm: &Alarm,
        call: F,
    ) -> Option<Validity>
    where
        F: Fn(&'n RedisHandle) -> BoxFuture<'n, crate::redis::RedisResult<bool>>,
    {
        let ttl_ms = cx.cfg.ttl_s * 1000;
        let per_node = Redlock::node_timeout(cx.cfg);
        let start_us = self.clock.now_us(cx.clock);
        let mut said_yes = 0;
        for node in nodes {
            let answer = cx.clock.timeout_on(alarm, per_node, call(node)).await;
            if matches!(answer, Ok(Ok(true))) {
                said_yes += 1;
            }
        }
        let end_us = self.clock.now_us(cx.clock);
        let elapsed_ms = (end_us - start_us) / 1000;
        let validity_ms = ttl_ms - elapsed_ms - Redlock::drift_ms(ttl_ms);
        debug_assert!(said_yes <= nodes.len());
        // The validity runs from the end of the calls (redlock-rb returns it as "valid for
        // this long from now"): the first key set expires at start + TTL, and the drift keeps
        // the client short of it.
        (said_yes >= self.quorum_of(nodes.len()) && validity_ms > 0).then_some(Validity {
            clock: self.clock,
            until_us: end_us + validity_ms * 1000,
        })
    }

    /// Extends the lock: compare-and-`PEXPIRE` of the holder's value to a full TTL on every
    /// node, held again when a quorum did and validity is left (redlock-rb's `extend`;
    /// node-redlock's `extend`, which first refuses a lock already expired by the holder's
    /// clock, as this does).
    async fn extend_redlock(
        &self,
        cx: LockContext<'_>,
        holding: &Holding,
    ) -> Result<Validity, LockError> {
        let nodes = self.nodes(&cx)?;
        let valid = holding.validity.is_some_and(|v| v.holds(cx.clock, 0));
        if !valid {
            return Err(LockError::Redis(
                "the lock expired before its extension".into(),
            ));
        }
        let value = Redlock::value(&cx);
        let ttl_ms = cx.cfg.ttl_s * 1000;
        let extended = self
            .on_quorum(cx, nodes, &Alarm::new(), |node| {
                node.pexpire_if_eq(REDLOCK_KEY, &value, ttl_ms)
            })
            .await;
        extended.ok_or_else(|| LockError::Redis("no quorum extended the lock".into()))
    }

    /// Unlocks every node, bounded per node on `alarm`; how many deleted the key.
    async fn unlock_all(
        cx: LockContext<'_>,
        nodes: &[RedisHandle],
        value: &str,
        alarm: &Alarm,
    ) -> usize {
        let per_node = Redlock::node_timeout(cx.cfg);
        let mut deleted = 0;
        for node in nodes {
            let del = cx
                .clock
                .timeout_on(alarm, per_node, node.del_if_eq(REDLOCK_KEY, value))
                .await;
            if matches!(del, Ok(Ok(true))) {
                deleted += 1;
            }
        }
        deleted
    }

    async fn acquire_redlock(&self, cx: LockContext<'_>) -> Result<Holding, LockError> {
        let nodes = self.nodes(&cx)?;
        let value = Redlock::value(&cx);
        // The retry delays come from the nonce: the client's own stream, never madsim's RNG.
        let mut delays = ChaCha8Rng::seed_from_u64(cx.nonce);
        // One timer at a time for the campaign's per-node bounds and retry delays: ten calls of
        // a few ms each per attempt would otherwise leave ten timers to wake the client later
        // for nothing. Every bound still ends at its own deadline.
        let alarm = Alarm::new();
        for _ in 0..ATTEMPTS_MAX {
            if let Some(validity) = self.attempt(cx, nodes, &value, &alarm).await {
                let token = self.token(cx, nodes, &value, &alarm).await?;
                return Ok(Holding {
                    key: REDLOCK_KEY.to_string(),
                    // The random value's number, as etcd's lease ID: what contrib/lock's check
                    // would send.
                    lease_id: (cx.nonce >> 1) as i64,
                    token,
                    validity: Some(validity),
                });
            }
            Redlock::unlock_all(cx, nodes, &value, &alarm).await;
            let r = self.retry_delay_ms;
            let delay_ms = delays.gen_range(r.min..=r.max);
            cx.clock
                .sleep_on(&alarm, Duration::from_millis(delay_ms))
                .await;
        }
        Err(LockError::CampaignTimeout)
    }

    /// The token the holder offers: the random value's number, or `INCR` on the first node
    /// (refused: the lock is given back, since the holder has no token to offer).
    async fn token(
        &self,
        cx: LockContext<'_>,
        nodes: &[RedisHandle],
        value: &str,
        alarm: &Alarm,
    ) -> Result<i64, LockError> {
        match self.token {
            RedlockToken::Random => Ok((cx.nonce >> 1) as i64),
            RedlockToken::Incr => {
                let incr = cx
                    .bounded_redis("redis INCR", nodes[0].incr(TOKEN_KEY))
                    .await;
                if incr.is_err() {
                    Redlock::unlock_all(cx, nodes, value, alarm).await;
                }
                incr
            }
        }
    }
}

impl LockRecipe for Redlock {
    fn name(&self) -> &str {
        match (self.single, self.token) {
            (true, _) => "redis-single",
            (false, RedlockToken::Random) => "redlock",
            (false, RedlockToken::Incr) => "redlock-incr",
        }
    }

    fn service(&self) -> ServiceKind {
        ServiceKind::Redlock
    }

    fn tokens_rise(&self) -> bool {
        // Random values are in no order; an INCR counter rises only while its node keeps its
        // data, which a restart without persistence breaks.
        false
    }

    fn acquire<'a>(&'a self, cx: LockContext<'a>) -> BoxFuture<'a, Result<Holding, LockError>> {
        Box::pin(self.acquire_redlock(cx))
    }

    fn extend_below_ms(&self) -> Option<u64> {
        self.extend_below_ms
    }

    fn extend<'a>(
        &'a self,
        cx: LockContext<'a>,
        holding: &'a Holding,
    ) -> BoxFuture<'a, Result<Validity, LockError>> {
        Box::pin(self.extend_redlock(cx, holding))
    }

    fn release<'a>(
        &'a self,
        cx: LockContext<'a>,
        holding: &'a Holding,
    ) -> BoxFuture<'a, Result<(), LockError>> {
        Box::pin(async move {
            let nodes = self.nodes(&cx)?;
            debug_assert_eq!(holding.key, REDLOCK_KEY);
            // The caller gives release the nonce it acquired with, so the value is the same.
            let value = Redlock::value(&cx);
            Redlock::unlock_all(cx, nodes, &value, &Alarm::new()).await;
            Ok(())
        })
    }
}
