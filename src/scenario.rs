//! The knobs of one experiment. A plain value: print it, save it, compare it.

use crate::lock::{TTL_S_MAX, TTL_S_MIN};
use serde::{Deserialize, Serialize};

/// Most clients in one world.
pub const CLIENTS_MAX: u32 = 64;
/// Longest simulated run, in ms (10 minutes): a limit on everything.
pub const DURATION_MS_MAX: u64 = 600_000;
/// Longest critical section or think time, in ms.
pub const SECTION_MS_MAX: u64 = 60_000;

/// What clients do with the lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Workload {
    /// The seed's: take the lock once, write `key0`, stop.
    Single,
    /// Each cycle: take the lock, read `counter`, add one, write it back, release.
    Counter,
}

impl std::str::FromStr for Workload {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "single" => Ok(Workload::Single),
            "counter" => Ok(Workload::Counter),
            _ => Err(format!(
                "unknown workload '{s}' (expected single or counter)"
            )),
        }
    }
}

/// An inclusive range of milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct MsRange {
    pub min: u64,
    pub max: u64,
}

impl MsRange {
    pub const fn new(min: u64, max: u64) -> Self {
        MsRange { min, max }
    }

    pub const fn exactly(ms: u64) -> Self {
        MsRange { min: ms, max: ms }
    }

    fn validate(&self, name: &str, limit: u64) -> Result<(), String> {
        if self.min > self.max {
            return Err(format!(
                "{name}: min {} is above max {}",
                self.min, self.max
            ));
        }
        if self.max > limit {
            return Err(format!(
                "{name}: max {} is above the limit {limit}",
                self.max
            ));
        }
        Ok(())
    }
}

/// Per-client overrides, for scripted stories.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientScript {
    /// 1-based client number.
    pub client: u32,
    /// True time at which the client starts, ms.
    #[serde(default)]
    pub start_ms: u64,
    /// Overrides the scenario's critical section for this client.
    #[serde(default)]
    pub critical_ms: Option<MsRange>,
}

/// One experiment's setup, apart from the fencing policy and the fault plan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    pub clients: u32,
    pub ttl_s: i64,
    /// Clients start no new lock cycle after this true time, ms.
    pub duration_ms: u64,
    /// Extra time for cycles under way to finish after `duration_ms`.
    pub drain_ms: u64,
    pub workload: Workload,
    /// Time a holder spends between its read and its write (by its own clock).
    pub critical_ms: MsRange,
    /// Time between two lock cycles of one client.
    pub think_ms: MsRange,
    pub campaign_timeout_ms: u64,
    pub request_timeout_ms: u64,
    /// Client-side variant: before each write, check the lease deadline by the client's own
    /// clock with this safety margin and skip the write if it has passed.
    pub lease_check_margin_ms: Option<u64>,
    /// One-way network latency of every message.
    pub latency_ms: MsRange,
    /// Probability that a message is lost (madsim's TCP then retransmits it later).
    pub loss_rate: f64,
    #[serde(default)]
    pub scripts: Vec<ClientScript>,
}

impl Scenario {
    /// The standard scenario: 3 clients, counter workload, TTL 2 s, 20 simulated seconds.
    pub fn standard() -> Self {
        Scenario {
            clients: 3,
            ttl_s: 2,
            duration_ms: 20_000,
            drain_ms: 10_000,
            workload: Workload::Counter,
            critical_ms: MsRange::new(0, 300),
            think_ms: MsRange::new(0, 200),
            campaign_timeout_ms: 10_000,
            request_timeout_ms: 1_000,
            lease_check_margin_ms: None,
            latency_ms: MsRange::new(1, 10),
            loss_rate: 0.0,
            scripts: Vec::new(),
        }
    }

    /// The seed's walkthrough: single writes to `key0`.
    pub fn seed_story(clients: u32) -> Self {
        Scenario {
            clients,
            workload: Workload::Single,
            duration_ms: 30_000,
            critical_ms: MsRange::exactly(0),
            ..Scenario::standard()
        }
    }

    pub fn script(&self, client: u32) -> Option<&ClientScript> {
        self.scripts.iter().find(|s| s.client == client)
    }

    pub fn client_names(&self) -> Vec<String> {
        (1..=self.clients).map(client_name).collect()
    }

    /// Checks every limit; the message names the field.
    pub fn validate(&self) -> Result<(), String> {
        if !(1..=CLIENTS_MAX).contains(&self.clients) {
            return Err(format!(
                "clients: {} is outside 1..={CLIENTS_MAX}",
                self.clients
            ));
        }
        if !(TTL_S_MIN..=TTL_S_MAX).contains(&self.ttl_s) {
            return Err(format!(
                "ttl_s: {} is outside {TTL_S_MIN}..={TTL_S_MAX} (the simulated etcd's 1 s tick always expires a 1 s lease)",
                self.ttl_s
            ));
        }
        if self.duration_ms == 0 || self.duration_ms > DURATION_MS_MAX {
            return Err(format!(
                "duration_ms: {} is outside 1..={DURATION_MS_MAX}",
                self.duration_ms
            ));
        }
        if self.drain_ms > DURATION_MS_MAX {
            return Err(format!(
                "drain_ms: {} is above {DURATION_MS_MAX}",
                self.drain_ms
            ));
        }
        self.critical_ms.validate("critical_ms", SECTION_MS_MAX)?;
        self.think_ms.validate("think_ms", SECTION_MS_MAX)?;
        self.latency_ms.validate("latency_ms", 10_000)?;
        if self.latency_ms.min == 0 {
            return Err("latency_ms: min must be at least 1".into());
        }
        for (name, v) in [
            ("campaign_timeout_ms", self.campaign_timeout_ms),
            ("request_timeout_ms", self.request_timeout_ms),
        ] {
            if !(1..=SECTION_MS_MAX).contains(&v) {
                return Err(format!("{name}: {v} is outside 1..={SECTION_MS_MAX}"));
            }
        }
        if !(0.0..=0.5).contains(&self.loss_rate) {
            return Err(format!("loss_rate: {} is outside 0..=0.5", self.loss_rate));
        }
        for s in &self.scripts {
            if !(1..=self.clients).contains(&s.client) {
                return Err(format!("scripts: client {} does not exist", s.client));
            }
            if let Some(r) = &s.critical_ms {
                r.validate("scripts.critical_ms", SECTION_MS_MAX)?;
            }
        }
        Ok(())
    }
}

/// The node name of client `n` (1-based).
pub fn client_name(n: u32) -> String {
    format!("client{n}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn standard_is_valid() {
        Scenario::standard().validate().unwrap();
        Scenario::seed_story(3).validate().unwrap();
    }

    #[test]
    fn bad_values_name_the_field() {
        let mut s = Scenario::standard();
        s.ttl_s = 1;
        assert!(s.validate().unwrap_err().starts_with("ttl_s"));
        let mut s = Scenario::standard();
        s.critical_ms = MsRange::new(5, 1);
        assert!(s.validate().unwrap_err().starts_with("critical_ms"));
        let mut s = Scenario::standard();
        s.clients = 0;
        assert!(s.validate().unwrap_err().starts_with("clients"));
    }
}
