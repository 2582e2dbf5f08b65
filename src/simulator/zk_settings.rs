//! A scenario's `[zk]` table: the ZooKeeper servers of a ZooKeeper world and how its clients
//! lock (Curator's `InterProcessMutex`).

use crate::lock::{Curator, StopAt, ZkToken};
use serde::{Deserialize, Serialize};

/// Shortest tick a scenario may ask for, ms: a shorter one wakes the tracker too often.
pub const TICK_MS_MIN: u64 = 10;
/// Longest tick, ms: a minute, a limit on everything.
pub const TICK_MS_MAX: u64 = 60_000;
/// Shortest container check interval, ms.
pub const CONTAINER_CHECK_MS_MIN: u64 = 100;
/// Longest container check interval, ms: an hour, a limit on everything.
pub const CONTAINER_CHECK_MS_MAX: u64 = 3_600_000;

/// The ZooKeeper servers and the Curator client, for `service = "zk"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ZkSettings {
    /// How many servers (`zk1` … `zkN`): 1 (standalone), 3 or 5 (an ensemble: one leader,
    /// followers, elections). The default is 3, the smallest ensemble that survives a server's
    /// loss, as ZooKeeper is run in production.
    pub servers: u32,
    /// The session timeout the client asks for, ms. It must lie where the server grants it
    /// unchanged, within [2, 20] × `tick_ms` (`ZooKeeperServer.processConnectRequest` clamps
    /// to that range; the scenario refuses instead of clamping silently).
    pub session_timeout_ms: u64,
    /// `tickTime`, ms: the expiry buckets' width (`ExpiryQueue`). ZooKeeper's sample config
    /// and Debian's say 2000.
    pub tick_ms: u64,
    /// Where a holder stops treating the lock as its own: `suspended` (Curator's advice) or
    /// `lost`.
    pub stop_at: StopAt,
    /// The open double-lock bug CURATOR-604: after an expiry, the protected-mode search of
    /// the new session takes the old session's node, not yet deleted.
    pub curator_604: bool,
    /// Which number the holder offers the storage: the lock node's `czxid` or its `sequence`.
    pub token: ZkToken,
    /// `znode.container.checkIntervalMs`: how often empty container parents are deleted, ms.
    pub container_check_ms: u64,
}

impl Default for ZkSettings {
    fn default() -> Self {
        ZkSettings {
            servers: 3,
            session_timeout_ms: 4_000,
            tick_ms: crate::zk::model::session::TICK_MS_DEFAULT,
            stop_at: StopAt::Suspended,
            curator_604: false,
            token: ZkToken::Czxid,
            container_check_ms: 60_000,
        }
    }
}

impl ZkSettings {
    /// The server names, `zk1` to `zkN`.
    pub fn server_names(&self) -> Vec<String> {
        (1..=self.servers).map(|i| format!("zk{i}")).collect()
    }

    pub fn is_default(&self) -> bool {
        *self == ZkSettings::default()
    }

    /// Checks every limit; the message names the key.
    pub fn validate(&self) -> Result<(), String> {
        match self.servers {
            1 | 3 | 5 => {}
            n if n % 2 == 0 && n > 0 => {
                return Err(format!(
                    "zk.servers: {n}: an even ensemble is refused: it tolerates no more failures than one server fewer; use 1, 3 or 5"
                ))
            }
            n => {
                return Err(format!(
                    "zk.servers: {n}: an ensemble has 1, 3 or 5 servers (the model's bound; an odd number, so that a majority is unique)"
                ))
            }
        }
        if !(TICK_MS_MIN..=TICK_MS_MAX).contains(&self.tick_ms) {
            return Err(format!(
                "zk.tick_ms: {} is outside {TICK_MS_MIN}..={TICK_MS_MAX}",
                self.tick_ms
            ));
        }
        let (min_ms, max_ms) = (2 * self.tick_ms, 20 * self.tick_ms);
        let max_ms = max_ms.min(crate::zk::SESSION_TIMEOUT_MS_MAX);
        if !(min_ms..=max_ms).contains(&self.session_timeout_ms) {
            return Err(format!(
                "zk.session_timeout_ms: {} is outside {min_ms}..={max_ms} (2 to 20 times zk.tick_ms, what the server grants)",
                self.session_timeout_ms
            ));
        }
        if !(CONTAINER_CHECK_MS_MIN..=CONTAINER_CHECK_MS_MAX).contains(&self.container_check_ms) {
            return Err(format!(
                "zk.container_check_ms: {} is outside {CONTAINER_CHECK_MS_MIN}..={CONTAINER_CHECK_MS_MAX}",
                self.container_check_ms
            ));
        }
        Ok(())
    }

    /// The scenario's Curator recipe.
    pub fn recipe(&self) -> Curator {
        Curator {
            token: self.token,
            stop_at: self.stop_at,
            curator_604: self.curator_604,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_keys_name_themselves() {
        let ok = ZkSettings::default();
        assert!(ok.validate().is_ok());
        for (bad, key) in [
            (ZkSettings { servers: 0, ..ok }, "zk.servers: 0"),
            (ZkSettings { servers: 4, ..ok }, "zk.servers: 4: an even"),
            (ZkSettings { servers: 7, ..ok }, "zk.servers: 7"),
            (ZkSettings { servers: 2, ..ok }, "zk.servers: 2: an even"),
            (
                ZkSettings {
                    session_timeout_ms: 1000,
                    ..ok
                },
                "zk.session_timeout_ms: 1000",
            ),
            (
                ZkSettings {
                    session_timeout_ms: 40_001,
                    ..ok
                },
                "zk.session_timeout_ms",
            ),
            (ZkSettings { tick_ms: 0, ..ok }, "zk.tick_ms: 0"),
            (
                ZkSettings {
                    container_check_ms: 1,
                    ..ok
                },
                "zk.container_check_ms",
            ),
        ] {
            let e = bad.validate().unwrap_err();
            assert!(e.starts_with(key), "{e}");
        }
    }
}
