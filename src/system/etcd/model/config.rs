//! How one member behaves: etcd's flags that a lock client can observe, and the faults the
//! nemesis dials in. Its own file so that the cluster and the server both read it and neither
//! imports the other for it.

use crate::etcd::Version;
use std::time::Duration;

/// How one member behaves.
#[derive(Debug, Clone)]
pub struct Config {
    pub version: Version,
    /// etcd's `--election-timeout`, ms (default 1,000): sets the minimum TTL and the request
    /// timeout.
    pub election_timeout_ms: u64,
    /// etcd's `--heartbeat-interval`, ms (default 100): the tick the minimum TTL counts in.
    pub heartbeat_ms: u64,
    /// How often the lessor looks for expired leases, ms (etcd: 500).
    pub scan_ms: u64,
    /// Per mille of log-bound requests that time out without committing.
    pub timeout_permille: u32,
    /// Per mille of log-bound requests that commit and then time out.
    pub ambiguous_permille: u32,
    /// Seeds lease IDs (etcd: the member ID and its start time).
    pub member_id: u64,
    pub start_ms: u64,
    /// The hazard of etcd issue 15247: how long a replaced leader goes on acting on its own
    /// lessor's view before it notices (see the model's `cluster.rs`); `None`: it notices at once.
    pub stale_leader_ms: Option<u64>,
    /// The run's seed: each member's election timers and request faults draw from streams of
    /// their own derived from it (`draws.rs`), not from madsim's global RNG.
    pub seed: u64,
}

impl Config {
    /// etcd's defaults (`embed/config.go`: election timeout 1,000 ms).
    pub fn defaults(version: Version) -> Self {
        Config {
            version,
            election_timeout_ms: 1000,
            heartbeat_ms: 100,
            scan_ms: 500,
            timeout_permille: 0,
            ambiguous_permille: 0,
            member_id: 0x8e9e_05c5_2164_694d,
            start_ms: 1_700_000_000_000,
            stale_leader_ms: None,
            seed: 0,
        }
    }

    /// etcd's minimum TTL, computed as etcd does, in heartbeat ticks: `minTTL :=
    /// time.Duration((3*cfg.ElectionTicks)/2) * heartbeat` (`etcdserver/server.go`), rounded up
    /// to whole seconds (`lease/lessor.go`, `NewLessor`): 2 s at the defaults.
    pub fn min_ttl_s(&self) -> i64 {
        let ticks = self.election_timeout_ms / self.heartbeat_ms.max(1);
        let min_ttl_ms = (3 * ticks) / 2 * self.heartbeat_ms;
        min_ttl_ms.div_ceil(1000).max(1) as i64
    }

    /// `ReqTimeout`: 5 s + 2 × election timeout.
    pub fn request_timeout(&self) -> Duration {
        Duration::from_millis(5000 + 2 * self.election_timeout_ms)
    }
}
