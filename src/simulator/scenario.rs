//! The knobs of one experiment. A plain value: print it, save it, compare it.

use crate::lock::{TTL_S_MAX, TTL_S_MIN};
use serde::{Deserialize, Serialize};

use crate::ms::{MsRange, DURATION_MS_MAX};
// The nemesis' knobs sit beside the nemesis that draws from them; this path stays.
use crate::nemesis::NemesisConfig;
use crate::redis_settings::RedisSettings;
use crate::zk_settings::ZkSettings;

/// Most clients in one world.
pub const CLIENTS_MAX: u32 = 64;
/// Longest critical section or think time, in ms.
pub const SECTION_MS_MAX: u64 = 60_000;

/// Safety margin of the client-side lease check in the presets, ms.
pub const LOCAL_CHECK_MARGIN_MS: u64 = 300;

/// What clients do with the lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum WorkloadKind {
    /// As etcd's example (`contrib/lock`): take the lock once, write `key0`, stop.
    Single,
    /// Each cycle: take the lock, read `counter`, add one, write it back, release.
    Counter,
    /// Each cycle: take the lock, read two accounts, move one unit between them (two writes).
    Transfer,
    /// Jepsen's lock-set: each cycle reads a set, and half the time adds a unique element.
    Set,
    /// Jepsen's lock-etcd-set: the same with the set in etcd, each write a Txn guarded by the
    /// lock key.
    EtcdSet,
}

impl WorkloadKind {
    /// The built-in workload of that name.
    pub fn workload(self) -> std::sync::Arc<dyn crate::workload::Workload> {
        match self {
            WorkloadKind::Single => std::sync::Arc::new(crate::workload::Single),
            WorkloadKind::Counter => std::sync::Arc::new(crate::workload::Counter),
            WorkloadKind::Transfer => std::sync::Arc::new(crate::workload::Transfer),
            WorkloadKind::Set => std::sync::Arc::new(crate::workload::Set),
            WorkloadKind::EtcdSet => std::sync::Arc::new(crate::workload::EtcdSet),
        }
    }
}

impl WorkloadKind {
    /// Every workload by its name: the parser, its error and the command's help all read this
    /// one table, so that a new workload cannot be left out of one of them.
    pub const NAMED: [(&'static str, WorkloadKind); 5] = [
        ("single", WorkloadKind::Single),
        ("counter", WorkloadKind::Counter),
        ("transfer", WorkloadKind::Transfer),
        ("set", WorkloadKind::Set),
        ("etcd-set", WorkloadKind::EtcdSet),
    ];

    /// The names as a sentence: "single, counter, transfer, set or etcd-set".
    pub fn names() -> String {
        let names: Vec<&str> = Self::NAMED.iter().map(|(name, _)| *name).collect();
        let (last, rest) = names.split_last().expect("at least one workload");
        format!("{} or {last}", rest.join(", "))
    }
}

impl std::str::FromStr for WorkloadKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match Self::NAMED.iter().find(|(name, _)| *name == s) {
            Some(&(_, kind)) => Ok(kind),
            None => Err(format!(
                "unknown workload '{s}' (expected {})",
                Self::names()
            )),
        }
    }
}

/// The lock-delay: 1.5 times the standard 2 s TTL (Chubby lets clients choose one up to a
/// one-minute bound, three times a run).
fn default_lock_delay_ms() -> u64 {
    3_000
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
///
/// In a scenario file (TOML) every key is optional: keys left out keep the standard
/// scenario's values; unknown keys are refused.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Scenario {
    pub clients: u32,
    pub ttl_s: i64,
    /// Clients start no new lock cycle after this true time, ms.
    pub duration_ms: u64,
    /// Extra time for cycles under way to finish after `duration_ms`.
    pub drain_ms: u64,
    pub workload: WorkloadKind,
    /// Which lock service the world hosts: `etcd` (the default) or `redlock` (the `[redis]`
    /// table's nodes; then `lock_method` is `redlock` or `redis-single`).
    #[serde(default)]
    pub service: crate::lock::ServiceKind,
    /// The Redis nodes and the Redlock client, for `service = "redlock"`.
    #[serde(default)]
    pub redis: RedisSettings,
    /// The ZooKeeper servers and the Curator client, for `service = "zk"`. Left out of a
    /// saved scenario when it is the default, so that every other scenario saves as before.
    #[serde(default, skip_serializing_if = "ZkSettings::is_default")]
    pub zk: ZkSettings,
    /// How clients take the lock.
    pub lock_method: crate::lock::LockMethod,
    /// Which simulated etcd: fencelab's calibrated model (default) or madsim's SimServer.
    pub etcd: crate::etcd::Backend,
    /// Which etcd release the model reproduces where they differ (the Lock API).
    pub etcd_version: crate::etcd::Version,
    /// How many etcd members (the model; SimServer is one node): 1 to 7, default 3, etcd's
    /// smallest cluster that survives a member's failure. One member is the node `etcd`;
    /// several are `etcd1`, `etcd2`, ..., and `etcd` in a fault then names them all.
    #[serde(default = "default_etcd_members")]
    pub etcd_members: u32,
    /// Time a holder spends between its read and its write (by its own clock).
    pub critical_ms: MsRange,
    /// Time between two lock cycles of one client.
    pub think_ms: MsRange,
    pub campaign_timeout_ms: u64,
    pub request_timeout_ms: u64,
    /// Chubby's lock-delay, for the `lock-delay` recipe only: after a holder's lease ends
    /// without a release, the next holder waits this long before it uses the lock. That scheme
    /// needs it below `campaign_timeout_ms` (the wait is part of taking the lock).
    #[serde(default = "default_lock_delay_ms")]
    pub lock_delay_ms: u64,
    /// The storage server's own work on each request, between receiving it (and asking the
    /// lock service, under a fence that does) and applying it: a time drawn per request.
    /// Exactly 0 (the default): it applies at once.
    pub storage_work_ms: MsRange,
    /// Client-side variant: before each write, check the lease deadline by the client's own
    /// clock with this safety margin and skip the write if it has passed.
    pub lease_check_margin_ms: Option<u64>,
    /// One-way network latency of every message.
    pub latency_ms: MsRange,
    /// Probability that a message is lost (madsim's TCP then retransmits it later).
    pub loss_rate: f64,
    #[serde(default)]
    pub scripts: Vec<ClientScript>,
    /// Scripted faults, in every run's plan before whatever the random nemesis draws.
    #[serde(default)]
    pub faults: Vec<crate::fault::Fault>,
    /// What the random nemesis may draw for a seed.
    pub nemesis: NemesisConfig,
}

impl Default for Scenario {
    fn default() -> Self {
        Scenario::standard()
    }
}

impl Scenario {
    /// Reads a scenario file: TOML, keys as in [`Scenario`], validated.
    pub fn from_toml(text: &str) -> Result<Scenario, String> {
        let scenario: Scenario = toml::from_str(text).map_err(|e| {
            // One line: where, then what (toml's own rendering spans several lines).
            let at = e.span().map_or(String::new(), |span| {
                let start = span.start.min(text.len());
                let line = text[..start].matches('\n').count() + 1;
                let source = text.lines().nth(line - 1).unwrap_or("").trim();
                format!("line {line} `{source}`: ")
            });
            format!("{at}{}", e.message().trim().replace('\n', " "))
        })?;
        scenario.validate()?;
        Ok(scenario)
    }

    /// The standard scenario: 3 clients, counter workload, TTL 2 s, 20 simulated seconds.
    pub fn standard() -> Self {
        Scenario {
            clients: 3,
            ttl_s: 2,
            duration_ms: 20_000,
            drain_ms: 10_000,
            workload: WorkloadKind::Counter,
            service: crate::lock::ServiceKind::Etcd,
            redis: RedisSettings::default(),
            zk: ZkSettings::default(),
            lock_method: crate::lock::LockMethod::Election,
            etcd: crate::etcd::Backend::Model,
            etcd_version: crate::etcd::Version::V3_5,
            etcd_members: default_etcd_members(),
            critical_ms: MsRange::new(0, 300),
            think_ms: MsRange::new(0, 200),
            campaign_timeout_ms: 10_000,
            request_timeout_ms: 1_000,
            lock_delay_ms: default_lock_delay_ms(),
            storage_work_ms: MsRange::exactly(0),
            lease_check_margin_ms: None,
            latency_ms: MsRange::new(1, 10),
            loss_rate: 0.0,
            scripts: Vec::new(),
            faults: Vec::new(),
            nemesis: NemesisConfig::standard(),
        }
    }

    /// The walkthrough of etcd's example: single writes to `key0`, on one etcd member, as etcd's
    /// `contrib/lock` example runs against one local etcd.
    pub fn contrib_lock_story(clients: u32) -> Self {
        Scenario {
            clients,
            etcd_members: 1,
            workload: WorkloadKind::Single,
            duration_ms: 30_000,
            critical_ms: MsRange::exactly(0),
            nemesis: NemesisConfig::off(),
            ..Scenario::standard()
        }
    }

    /// Named scenarios, so that a command line can name exactly what a suite ran.
    pub const PRESETS: [&'static str; 6] = [
        "standard",
        "long-critical",
        "local-check-pauses",
        "local-check-skew",
        "redlock",
        "zk",
    ];

    /// A named scenario (see [`Scenario::PRESETS`]).
    pub fn preset(name: &str) -> Result<Scenario, String> {
        let standard = Scenario::standard();
        let preset = match name {
            "standard" => Ok(standard),
            // Holders linger between read and write: room for a stale write in between.
            "long-critical" => Ok(Scenario {
                critical_ms: MsRange::new(500, 3_000),
                ..standard
            }),
            // No fencing help expected: the client checks its own lease before writing.
            "local-check-pauses" => Ok(Scenario {
                lease_check_margin_ms: Some(LOCAL_CHECK_MARGIN_MS),
                nemesis: NemesisConfig::pauses(),
                ..standard
            }),
            "local-check-skew" => Ok(Scenario {
                lease_check_margin_ms: Some(LOCAL_CHECK_MARGIN_MS),
                nemesis: NemesisConfig::skew(),
                ..standard
            }),
            // The standard clients and workload on Redlock's five Redis nodes, under the
            // Redlock nemesis (wall-clock steps and crashes of Redis nodes besides the rest).
            "redlock" => Ok(Scenario {
                nemesis: NemesisConfig::redlock(),
                ..Scenario::redlock()
            }),
            // The standard clients and workload on one ZooKeeper server with Curator's mutex,
            // under the ZooKeeper nemesis (client pauses past the session, server stalls).
            "zk" => Ok(Scenario {
                nemesis: NemesisConfig::zk(),
                ..Scenario::zk()
            }),
            other => Err(format!(
                "unknown scenario preset '{other}' (expected one of: {})",
                Scenario::PRESETS.join(", ")
            )),
        };
        // A preset is a valid scenario, as a command line that names it expects.
        debug_assert!(preset.as_ref().map_or(true, |s| s.validate().is_ok()));
        preset
    }

    pub fn script(&self, client: u32) -> Option<&ClientScript> {
        self.scripts.iter().find(|s| s.client == client)
    }

    pub fn client_names(&self) -> Vec<String> {
        let names: Vec<String> = (1..=self.clients).map(client_name).collect();
        debug_assert_eq!(names.len(), self.clients as usize);
        names
    }

    /// The etcd members' node names: `etcd` alone, or `etcd1` to `etcdN`.
    pub fn etcd_member_names(&self) -> Vec<String> {
        crate::fault::etcd_member_names(self.etcd_members)
    }

    /// The lock service's node names: etcd's members, or the Redis nodes.
    pub fn service_node_names(&self) -> Vec<String> {
        match self.service {
            crate::lock::ServiceKind::Etcd => self.etcd_member_names(),
            crate::lock::ServiceKind::Redlock => self.redis.node_names(),
            crate::lock::ServiceKind::Zk => self.zk.server_names(),
        }
    }

    /// Every node a fault may name besides `etcd` and `storage`: the clients and the lock
    /// service's nodes.
    pub fn node_names(&self) -> Vec<String> {
        let mut names = self.client_names();
        names.extend(self.service_node_names());
        names
    }

    /// The lock recipe the scenario names (`lock_method`, with the `[redis]` table's client
    /// settings for Redlock).
    pub fn recipe(&self) -> std::sync::Arc<dyn crate::lock::LockRecipe> {
        use crate::lock::LockMethod;
        match self.lock_method {
            LockMethod::Redlock | LockMethod::RedisSingle => std::sync::Arc::new(
                self.redis
                    .recipe(self.lock_method == LockMethod::RedisSingle),
            ),
            LockMethod::Curator => std::sync::Arc::new(self.zk.recipe()),
            other => other.recipe_on(self.etcd_version),
        }
    }

    /// A ZooKeeper world: one server, Curator's mutex, the standard clients and workload.
    pub fn zk() -> Scenario {
        Scenario {
            service: crate::lock::ServiceKind::Zk,
            lock_method: crate::lock::LockMethod::Curator,
            nemesis: NemesisConfig::off(),
            ..Scenario::standard()
        }
    }

    /// A Redlock world: five Redis nodes, the standard clients and workload, no etcd.
    pub fn redlock() -> Scenario {
        Scenario {
            service: crate::lock::ServiceKind::Redlock,
            lock_method: crate::lock::LockMethod::Redlock,
            nemesis: NemesisConfig::off(),
            ..Scenario::standard()
        }
    }

    /// The plan of the scenario's scripted faults alone (`[[faults]]`, as written): a story's
    /// whole plan, or the start of a drawn one.
    pub fn scripted_plan(&self) -> crate::fault::FaultPlan {
        crate::fault::FaultPlan {
            faults: self.faults.clone(),
        }
    }

    /// Checks every limit; the message names the field.
    pub fn validate(&self) -> Result<(), String> {
        self.validate_nodes()?;
        self.validate_service()?;
        self.validate_times()?;
        self.nemesis.validate()?;
        crate::fault::FaultPlan {
            faults: self.faults.clone(),
        }
        .validate(&self.node_names())
        .map_err(|e| format!("faults: {e}"))?;
        self.validate_scripts()?;
        // What a valid scenario promises the world: a node name for every client and every
        // node of the lock service, no two alike, and a lease that outlives its renewal period.
        let names = self.node_names();
        let service_nodes = match self.service {
            crate::lock::ServiceKind::Etcd => self.etcd_members,
            crate::lock::ServiceKind::Redlock => self.redis.nodes,
            crate::lock::ServiceKind::Zk => self.zk.servers,
        };
        assert_eq!(names.len(), (self.clients + service_nodes) as usize);
        debug_assert!(names
            .iter()
            .enumerate()
            .all(|(i, n)| !names[..i].contains(n)));
        assert!(self.ttl_s >= TTL_S_MIN && self.ttl_s as u64 * 1000 / 3 > 0);
        Ok(())
    }

    /// The clients, the etcd members and the lock method, and what SimServer cannot do.
    fn validate_nodes(&self) -> Result<(), String> {
        if !(1..=CLIENTS_MAX).contains(&self.clients) {
            return Err(format!(
                "clients: {} is outside 1..={CLIENTS_MAX}",
                self.clients
            ));
        }
        use crate::{etcd::Backend, lock::LockMethod};
        if self.etcd == Backend::Madsim
            && self.lock_method == LockMethod::Election
            && self.clients > crate::lock::ELECTION_CLIENTS_MAX
        {
            return Err(format!(
                "lock_method: election supports at most {} clients on etcd = \"madsim\" (SimServer's campaign waiters overflow); use the model or kv-mutex for {}",
                crate::lock::ELECTION_CLIENTS_MAX,
                self.clients
            ));
        }
        if !(1..=ETCD_MEMBERS_MAX).contains(&self.etcd_members) {
            return Err(format!(
                "etcd_members: {} is outside 1..={ETCD_MEMBERS_MAX}",
                self.etcd_members
            ));
        }
        if self.etcd == Backend::Madsim && self.etcd_members != 1 {
            return Err(format!(
                "etcd_members: {} with etcd = \"madsim\": SimServer is one node (set etcd_members = 1)",
                self.etcd_members
            ));
        }
        if self.etcd == Backend::Madsim && self.lock_method == LockMethod::LockApi {
            return Err(
                "lock_method: lock-api needs the Lock API, which etcd = \"madsim\" (SimServer) lacks"
                    .into(),
            );
        }
        Ok(())
    }

    /// The service and the lock method agree, and the service's own settings hold.
    fn validate_service(&self) -> Result<(), String> {
        use crate::lock::{LockMethod, ServiceKind};
        self.redis.validate()?;
        self.zk.validate()?;
        if self.lock_method.service() != self.service {
            // The service's methods, from the one table of methods: "a, b or c".
            let methods: Vec<&str> = LockMethod::ALL
                .iter()
                .filter(|m| m.service() == self.service)
                .map(|m| m.as_str())
                .collect();
            let methods = match methods.split_last() {
                Some((last, rest)) if !rest.is_empty() => format!("{} or {last}", rest.join(", ")),
                _ => methods.concat(),
            };
            return Err(format!(
                "lock_method: {} locks on {}, and service is {}: use {methods}",
                self.lock_method.as_str(),
                self.lock_method.service().as_str(),
                self.service.as_str()
            ));
        }
        if self.service != ServiceKind::Etcd && self.workload == WorkloadKind::EtcdSet {
            return Err(format!(
                "workload: etcd-set keeps its set in etcd, and service is {}",
                self.service.as_str()
            ));
        }
        Ok(())
    }

    /// The TTL, the run's times and the network's latency and loss.
    fn validate_times(&self) -> Result<(), String> {
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
        self.storage_work_ms
            .validate("storage_work_ms", SECTION_MS_MAX)?;
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
        if self.lock_delay_ms > SECTION_MS_MAX {
            return Err(format!(
                "lock_delay_ms: {} is above {SECTION_MS_MAX}",
                self.lock_delay_ms
            ));
        }
        if let Some(margin_ms) = self.lease_check_margin_ms {
            // A margin as long as the lease refuses every write; longer would wrap around.
            let ttl_ms = self.ttl_s as u64 * 1000;
            if margin_ms >= ttl_ms {
                return Err(format!(
                    "lease_check_margin_ms: {margin_ms} is not below the lease TTL ({ttl_ms} ms)"
                ));
            }
        }
        if !(0.0..=0.5).contains(&self.loss_rate) {
            return Err(format!("loss_rate: {} is outside 0..=0.5", self.loss_rate));
        }
        Ok(())
    }

    /// Each client script names a client and stays within the limits.
    fn validate_scripts(&self) -> Result<(), String> {
        for s in &self.scripts {
            if !(1..=self.clients).contains(&s.client) {
                return Err(format!("scripts: client {} does not exist", s.client));
            }
            if let Some(r) = &s.critical_ms {
                r.validate("scripts.critical_ms", SECTION_MS_MAX)?;
            }
            if s.start_ms > DURATION_MS_MAX {
                return Err(format!(
                    "scripts.start_ms: {} is above {DURATION_MS_MAX}",
                    s.start_ms
                ));
            }
        }
        Ok(())
    }
}

/// Most etcd members (etcd recommends at most 7).
pub const ETCD_MEMBERS_MAX: u32 = 7;

/// etcd's smallest cluster that survives the loss of a member.
fn default_etcd_members() -> u32 {
    3
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
        Scenario::contrib_lock_story(3).validate().unwrap();
    }

    #[test]
    fn presets_are_valid_and_unknown_is_refused() {
        for p in Scenario::PRESETS {
            Scenario::preset(p).unwrap().validate().unwrap();
        }
        assert!(Scenario::preset("nope").unwrap_err().contains("standard"));
    }

    #[test]
    fn toml_keeps_defaults_and_refuses_unknown_keys() {
        let s = Scenario::from_toml(
            "clients = 5\nlock_method = \"kv-mutex\"\n[nemesis]\npauses_max = 3\n",
        )
        .unwrap();
        assert_eq!(s.clients, 5);
        assert_eq!(s.nemesis.pauses_max, 3);
        assert_eq!(s.nemesis.crashes_max, NemesisConfig::standard().crashes_max);
        assert_eq!(s.ttl_s, Scenario::standard().ttl_s);
        let e = Scenario::from_toml("clientz = 5").unwrap_err();
        assert!(e.contains("clientz"), "{e}");
        let e = Scenario::from_toml("[nemesis]\npause_msx = 1").unwrap_err();
        assert!(e.contains("pause_msx"), "{e}");
        let e = Scenario::from_toml("ttl_s = 1").unwrap_err();
        assert!(e.contains("ttl_s"), "{e}");
        let e = Scenario::from_toml("clients = \"three\"").unwrap_err();
        assert!(e.contains("clients"), "{e}");
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
        let mut s = Scenario::standard();
        s.lease_check_margin_ms = Some(u64::MAX);
        assert!(s
            .validate()
            .unwrap_err()
            .starts_with("lease_check_margin_ms"));
        s.lease_check_margin_ms = Some(1_999);
        assert_eq!(s.validate(), Ok(()));
    }

    /// A method of the other service is refused with the service's methods, taken from
    /// `LockMethod::ALL` in its order (the text the hand-typed lists gave).
    #[test]
    fn a_method_of_the_other_service_names_this_ones() {
        use crate::lock::{LockMethod, ServiceKind};
        let s = Scenario {
            lock_method: LockMethod::Redlock,
            ..Scenario::standard()
        };
        assert_eq!(
            s.validate().unwrap_err(),
            "lock_method: redlock locks on redlock, and service is etcd: use election, kv-mutex \
             or lock-api"
        );
        let s = Scenario {
            service: ServiceKind::Redlock,
            lock_method: LockMethod::Election,
            ..Scenario::standard()
        };
        assert_eq!(
            s.validate().unwrap_err(),
            "lock_method: election locks on etcd, and service is redlock: use redlock or \
             redis-single"
        );
    }
}
