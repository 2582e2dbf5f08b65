//! [`Redis`] against a real `redis-server`, over the `redis` crate's
//! [`MultiplexedConnection`]: one persistent TCP connection per node, requests pipelined on
//! it, as the model has it (a request costs two messages).
//!
//! Errors are classified by what the caller may conclude (see [`RedisError`]):
//!
//! | what happened | classified as | why |
//! |---|---|---|
//! | no connection could be made (refused, connect timeout) | `Unavailable` | the command was never written |
//! | no answer within the response timeout | `Timeout` | it may have run |
//! | the connection broke (I/O error, EOF) while the command was out | `Timeout` | it may have run |
//! | `WRONGTYPE ...` | `WrongType` | |
//! | `INCR` of a value that is not an integer (`ERR value is not an integer or out of range`) | `Other` with that text | as the model answers |
//! | any other error reply | `Other` with the server's text | |
//!
//! A broken connection is dropped; the next call connects afresh, and answers `Unavailable`
//! if that fails. The `redis` crate cannot tell whether a command was written before the
//! connection broke, so the first call to meet a dead connection is `Timeout`, the
//! conservative answer.

use super::{Redis, RedisError, RedisResult, PX_MS_MAX};
use crate::BoxFuture;
use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, Client, FromRedisValue, Script};
use std::sync::Mutex;
use std::time::Duration;

/// How long a connection attempt may take, ms (loopback answers in well under a ms; a
/// stopped server accepts in the kernel but never answers the handshake's `HELLO`/`PING`).
pub const CONNECT_TIMEOUT_MS: u64 = 2_000;
/// How long one command may wait for its answer, ms: longer than the stalls the real suite
/// puts a server through (3 s), so that a command queued behind a stall still gets its
/// answer; callers bound calls with their own, shorter deadlines.
pub const RESPONSE_TIMEOUT_MS: u64 = 10_000;

/// redis.io's unlock script ("Distributed Locks with Redis").
const DEL_IF_EQ: &str = r#"if redis.call("get",KEYS[1]) == ARGV[1] then return redis.call("del",KEYS[1]) else return 0 end"#;
/// The extend script, the same compare with `pexpire`.
const PEXPIRE_IF_EQ: &str = r#"if redis.call("get",KEYS[1]) == ARGV[1] then return redis.call("pexpire",KEYS[1],ARGV[2]) else return 0 end"#;

/// A client of one real Redis node.
pub struct RealRedis {
    endpoint: String,
    client: Client,
    config: AsyncConnectionConfig,
    /// The connection, `None` after it broke (until the next call connects again). A clone
    /// of a `MultiplexedConnection` is a handle to the same connection.
    conn: Mutex<Option<MultiplexedConnection>>,
    del_if_eq: Script,
    pexpire_if_eq: Script,
}

impl RealRedis {
    /// Connects to `endpoint` (`host:port` or a `redis://` URL) with [`CONNECT_TIMEOUT_MS`]
    /// and [`RESPONSE_TIMEOUT_MS`].
    pub async fn connect(endpoint: &str) -> RedisResult<RealRedis> {
        RealRedis::connect_with_timeouts(endpoint, CONNECT_TIMEOUT_MS, RESPONSE_TIMEOUT_MS).await
    }

    /// Connects to `endpoint` with the given timeouts, ms.
    pub async fn connect_with_timeouts(
        endpoint: &str,
        connect_timeout_ms: u64,
        response_timeout_ms: u64,
    ) -> RedisResult<RealRedis> {
        let url = if endpoint.contains("://") {
            endpoint.to_string()
        } else {
            format!("redis://{endpoint}/")
        };
        let client = Client::open(url.as_str()).map_err(|e| RedisError::Unavailable {
            why: format!("{endpoint}: {e}"),
        })?;
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(Duration::from_millis(connect_timeout_ms)))
            .set_response_timeout(Some(Duration::from_millis(response_timeout_ms)));
        let redis = RealRedis {
            endpoint: endpoint.to_string(),
            client,
            config,
            conn: Mutex::new(None),
            del_if_eq: Script::new(DEL_IF_EQ),
            pexpire_if_eq: Script::new(PEXPIRE_IF_EQ),
        };
        // Connect now, so that a wrong endpoint shows at once.
        redis.connection().await?;
        Ok(redis)
    }

    /// The endpoint this client was given.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// The live connection, or a new one. Every failure here happened before a command was
    /// written: `Unavailable`.
    async fn connection(&self) -> RedisResult<MultiplexedConnection> {
        if let Some(c) = self.slot().as_ref() {
            return Ok(c.clone());
        }
        let c = self
            .client
            .get_multiplexed_async_connection_with_config(&self.config)
            .await
            .map_err(|e| RedisError::Unavailable {
                why: format!("{}: {e}", self.endpoint),
            })?;
        // Two calls may have connected at once; either connection serves.
        *self.slot() = Some(c.clone());
        Ok(c)
    }

    fn slot(&self) -> std::sync::MutexGuard<'_, Option<MultiplexedConnection>> {
        // The slot holds no invariant a panicking holder could break.
        self.conn.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Classifies `e`, forgetting the connection when it broke.
    fn fail(&self, e: redis::RedisError) -> RedisError {
        let class = classify(&e);
        if class == RedisError::Timeout && !e.is_timeout() {
            *self.slot() = None;
        }
        class
    }

    /// Sends `cmd` and reads its answer as `T`.
    async fn query<T: FromRedisValue>(&self, cmd: &redis::Cmd) -> RedisResult<T> {
        let mut c = self.connection().await?;
        cmd.query_async(&mut c).await.map_err(|e| self.fail(e))
    }

    /// Runs `script` (EVALSHA, EVAL after a `NOSCRIPT`) on one key with `args`.
    async fn run_script(&self, script: &Script, key: &str, args: &[&str]) -> RedisResult<i64> {
        let mut c = self.connection().await?;
        let mut invocation = script.key(key);
        for a in args {
            invocation.arg(*a);
        }
        invocation
            .invoke_async(&mut c)
            .await
            .map_err(|e| self.fail(e))
    }
}

/// Classifies an error of the `redis` crate by what a lock client may conclude.
fn classify(e: &redis::RedisError) -> RedisError {
    if e.code() == Some("WRONGTYPE") {
        return RedisError::WrongType;
    }
    if e.is_timeout() {
        return RedisError::Timeout;
    }
    if e.is_connection_refusal() {
        return RedisError::Unavailable { why: e.to_string() };
    }
    if e.is_io_error() || e.is_connection_dropped() || e.is_unrecoverable_error() {
        // The command may have been written before the connection broke.
        return RedisError::Timeout;
    }
    RedisError::Other {
        why: server_text(e),
    }
}

/// The error as the server wrote it (`ERR value is not an integer or out of range`), where
/// it came from the server; the crate's description otherwise.
fn server_text(e: &redis::RedisError) -> String {
    match (e.code(), e.detail()) {
        (Some(code), Some(detail)) => format!("{code} {detail}"),
        (Some(code), None) => code.to_string(),
        _ => e.to_string(),
    }
}

/// The seam's limit on expiries, checked before anything is sent: Redis itself takes any
/// positive 64-bit ms (and `PEXPIRE` with 0 or less deletes the key), which no lock client
/// means to ask for.
fn check_px(px_ms: i64) -> RedisResult<()> {
    if (1..=PX_MS_MAX).contains(&px_ms) {
        Ok(())
    } else {
        Err(RedisError::Other {
            why: format!("px_ms {px_ms} out of range 1..={PX_MS_MAX}"),
        })
    }
}

impl Redis for RealRedis {
    fn set_nx_px(&self, key: &str, value: &str, px_ms: i64) -> BoxFuture<'_, RedisResult<bool>> {
        let mut cmd = redis::cmd("SET");
        cmd.arg(key).arg(value).arg("NX").arg("PX").arg(px_ms);
        Box::pin(async move {
            check_px(px_ms)?;
            // `+OK` when set, a nil reply when another value holds the key.
            let reply: Option<String> = self.query(&cmd).await?;
            Ok(reply.is_some())
        })
    }

    fn get(&self, key: &str) -> BoxFuture<'_, RedisResult<Option<String>>> {
        let mut cmd = redis::cmd("GET");
        cmd.arg(key);
        Box::pin(async move { self.query(&cmd).await })
    }

    fn del(&self, key: &str) -> BoxFuture<'_, RedisResult<bool>> {
        let mut cmd = redis::cmd("DEL");
        cmd.arg(key);
        Box::pin(async move { Ok(self.query::<i64>(&cmd).await? > 0) })
    }

    fn pttl(&self, key: &str) -> BoxFuture<'_, RedisResult<i64>> {
        let mut cmd = redis::cmd("PTTL");
        cmd.arg(key);
        Box::pin(async move { self.query(&cmd).await })
    }

    fn pexpire(&self, key: &str, px_ms: i64) -> BoxFuture<'_, RedisResult<bool>> {
        let mut cmd = redis::cmd("PEXPIRE");
        cmd.arg(key).arg(px_ms);
        Box::pin(async move {
            check_px(px_ms)?;
            Ok(self.query::<i64>(&cmd).await? == 1)
        })
    }

    fn incr(&self, key: &str) -> BoxFuture<'_, RedisResult<i64>> {
        let mut cmd = redis::cmd("INCR");
        cmd.arg(key);
        Box::pin(async move {
            // A lock key's random value: Redis answers `ERR value is not an integer or out of
            // range` (t_string.c, incrDecrCommand), which the seam passes on as `Other`, as the
            // model does; `WRONGTYPE` stays for a key of another type.
            self.query(&cmd).await
        })
    }

    fn del_if_eq(&self, key: &str, value: &str) -> BoxFuture<'_, RedisResult<bool>> {
        let (key, value) = (key.to_string(), value.to_string());
        Box::pin(async move { Ok(self.run_script(&self.del_if_eq, &key, &[&value]).await? == 1) })
    }

    fn pexpire_if_eq(
        &self,
        key: &str,
        value: &str,
        px_ms: i64,
    ) -> BoxFuture<'_, RedisResult<bool>> {
        let (key, value) = (key.to_string(), value.to_string());
        Box::pin(async move {
            check_px(px_ms)?;
            let px = px_ms.to_string();
            Ok(self
                .run_script(&self.pexpire_if_eq, &key, &[&value, &px])
                .await?
                == 1)
        })
    }
}
