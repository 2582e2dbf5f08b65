//! How one model node behaves: its persistence and its limits. Its own file so that the node
//! and the server both read it and neither imports the other for it.

use crate::redis::Persistence;

/// Most keys a node may be configured to hold.
pub const KEYS_MAX_LIMIT: usize = 10_000_000;
/// Most clients a node may be configured to serve.
pub const CLIENTS_MAX_LIMIT: usize = 100_000;

/// How one model node behaves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// What survives a crash (`appendonly`, `appendfsync`, `save`).
    pub persistence: Persistence,
    /// Most keys the node holds; a write that would add one more is answered with Redis's
    /// `OOM` error (the model's `maxmemory`, counted in keys).
    pub keys_max: usize,
    /// Most connected clients (`maxclients`, default 10,000 in `src/config.c`); one more is
    /// answered "ERR max number of clients reached" and closed (`src/networking.c`,
    /// `acceptCommonHandler`).
    pub clients_max: usize,
    /// Period of the `appendfsync everysec` fsync, ms, by the node's monotonic timer (Redis
    /// fsyncs at most once a second: `src/aof.c`, `flushAppendOnlyFile`).
    pub fsync_every_ms: u64,
    /// Period of `serverCron`, which checks the RDB save points and runs active expiry, ms
    /// (`hz 10`: 100 ms).
    pub cron_every_ms: u64,
    /// Whether `serverCron` also runs active expiry (`src/expire.c`, `activeExpireCycle`),
    /// simplified: every expired key is deleted at each tick (what Redis's slow cycle does
    /// when few keys are volatile). Off by default: it changes nothing a client sees, as
    /// every access expires passively, except when the wall clock steps back past the
    /// deadline of an expired key nothing touched (see the model's `mod.rs`). On, it costs a
    /// wake-up per tick.
    pub active_expire: bool,
}

impl Config {
    /// Redis 7.0.15's defaults, with persistence off (`--save "" --appendonly no`, as the
    /// calibration probes run the real server).
    pub fn defaults() -> Self {
        let cfg = Config {
            persistence: Persistence::None,
            keys_max: 100_000,
            clients_max: 10_000,
            fsync_every_ms: 1000,
            cron_every_ms: 100,
            active_expire: false,
        };
        debug_assert_eq!(cfg.validate(), Ok(()));
        cfg
    }

    /// The defaults with another persistence mode.
    pub fn with_persistence(persistence: Persistence) -> Self {
        Config {
            persistence,
            ..Config::defaults()
        }
    }

    /// Checks the limits; the message names the field.
    pub fn validate(&self) -> Result<(), String> {
        if self.keys_max == 0 || self.keys_max > KEYS_MAX_LIMIT {
            return Err(format!(
                "keys_max {} is outside 1..={KEYS_MAX_LIMIT}",
                self.keys_max
            ));
        }
        if self.clients_max == 0 || self.clients_max > CLIENTS_MAX_LIMIT {
            return Err(format!(
                "clients_max {} is outside 1..={CLIENTS_MAX_LIMIT}",
                self.clients_max
            ));
        }
        // A period of zero would spin; one past an hour is no longer everysec or hz.
        for (name, ms) in [
            ("fsync_every_ms", self.fsync_every_ms),
            ("cron_every_ms", self.cron_every_ms),
        ] {
            if ms == 0 || ms > 3_600_000 {
                return Err(format!("{name} {ms} is outside 1..=3600000"));
            }
        }
        Ok(())
    }
}

impl Default for Config {
    fn default() -> Self {
        Config::defaults()
    }
}
