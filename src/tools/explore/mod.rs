//! Property-based exploration of fault schedules (proptest), shrunk on robustness to the
//! smallest plan that still breaks under most noise.
//!
//! A [`Case`] is a scenario's knobs plus a fault plan in abstract form (client numbers taken
//! modulo the client count), so every case is a valid world. proptest draws cases; each that
//! violates at its own seed is measured over K noise seeds ([`crate::robust`]), and the most
//! robust of the first few is shrunk (`search.rs`): no-ops out, faults removed, timed pauses
//! aimed at protocol points, durations cut, each step kept only while the plan still violates
//! in a set share of the K noise seeds.

use crate::clock::{ClockStep, Skew};
use crate::fault::{Fault, FaultPlan, Trigger, ETCD, STORAGE};
use crate::ms::MsRange;
use crate::nemesis::NemesisConfig;
use crate::scenario::{client_name, Scenario};
use crate::storage::Fencing;
use crate::workload::Point;
use crate::world::{self, Run};

mod search;
use proptest::prelude::*;
pub use search::{config, explore, explore_with, Exploration, Settings};
use serde::{Deserialize, Serialize};

/// Most faults in an explored plan.
pub const CASE_FAULTS_MAX: usize = 6;
/// Most clients in an explored scenario.
pub const CASE_CLIENTS_MAX: u32 = crate::lock::ELECTION_CLIENTS_MAX;

/// What the search may choose for the scenario's knobs. [`Space::new`] is the full space; a
/// knob the user fixed (on the command line) is pinned to one value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Space {
    pub clients: std::ops::RangeInclusive<u32>,
    pub ttl_s: std::ops::RangeInclusive<i64>,
    /// The longest critical section of a case (its shortest is the scenario's).
    pub critical_ms_max: std::ops::RangeInclusive<u64>,
}

impl Space {
    /// Clients 2 to 3, TTL 2 to 4 s, critical sections up to `critical_ms_top` ms.
    pub fn new(critical_ms_top: u64) -> Space {
        Space {
            clients: 2..=CASE_CLIENTS_MAX,
            ttl_s: 2..=4,
            critical_ms_max: 0..=critical_ms_top,
        }
    }

    /// Checks the space against the limits of a case.
    pub fn validate(&self) -> Result<(), String> {
        if self.clients.is_empty() || *self.clients.start() == 0 {
            return Err(format!("explore: clients {:?} is empty", self.clients));
        }
        if self.ttl_s.is_empty() || self.critical_ms_max.is_empty() {
            return Err("explore: an empty range of TTLs or critical sections".into());
        }
        Ok(())
    }
}

/// A fault in abstract form: `client` is taken modulo the case's client count.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum FaultSpec {
    /// A GC pause at a true time.
    Pause {
        client: u32,
        at_ms: u64,
        duration_ms: u64,
    },
    /// A pause in Kleppmann's window, at the client's `nth` before-write point.
    AimedPause {
        client: u32,
        nth: u32,
        duration_ms: u64,
    },
    /// The client's storage request held in the network at its `nth` before-write point.
    Hold {
        client: u32,
        nth: u32,
        duration_ms: u64,
    },
    /// A client partitioned from etcd (its keepalives stop).
    EtcdPartition {
        client: u32,
        at_ms: u64,
        duration_ms: u64,
    },
    /// A skewed client clock.
    Skew {
        client: u32,
        drift_ppm: i64,
        step_at_ms: u64,
        step_ms: i64,
    },
    /// A client crash and restart.
    Crash {
        client: u32,
        at_ms: u64,
        restart_after_ms: u64,
    },
    /// etcd paused.
    EtcdStall { at_ms: u64, duration_ms: u64 },
}

/// One explored case: knobs and faults.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Case {
    pub seed: u64,
    pub clients: u32,
    pub ttl_s: i64,
    pub critical_ms_max: u64,
    pub faults: Vec<FaultSpec>,
}

fn client(n: u32, clients: u32) -> String {
    client_name(n % clients + 1)
}

impl Case {
    /// The concrete scenario (the base with this case's knobs, no random nemesis: the case's
    /// faults are the plan).
    pub fn scenario(&self, base: &Scenario) -> Scenario {
        Scenario {
            clients: self.clients,
            ttl_s: self.ttl_s,
            critical_ms: MsRange::new(
                base.critical_ms.min.min(self.critical_ms_max),
                self.critical_ms_max,
            ),
            nemesis: NemesisConfig::none(),
            ..base.clone()
        }
    }

    /// The concrete fault plan.
    pub fn plan(&self) -> FaultPlan {
        let c = self.clients;
        let faults = self.faults.iter().map(|f| fault(f, c)).collect();
        let plan = FaultPlan { faults };
        // Two skews on one client: the first wins (skew_of); harmless but worth knowing.
        debug_assert!(!plan.faults.iter().any(|f| f.node() == STORAGE));
        plan
    }

    /// The case without its `i`th fault.
    pub fn without(&self, i: usize) -> Case {
        let mut c = self.clone();
        c.faults.remove(i);
        c
    }

    pub fn run(&self, base: &Scenario, fencing: Fencing) -> Run {
        world::run(&self.scenario(base), &self.plan(), fencing, self.seed)
    }

    /// The case on a builder's scenario, with its fence, recipe and workload.
    pub fn run_with(&self, builder: &world::Builder) -> Run {
        let scenario = self.scenario(builder.scenario());
        builder
            .clone()
            .with_scenario(scenario)
            .plan(self.plan())
            .seed(self.seed)
            .run()
    }
}

/// Strategy for one abstract fault on one of `clients_max` clients; every number shrinks
/// toward the gentlest fault.
pub fn fault_strategy(duration_ms: u64, clients_max: u32) -> impl Strategy<Value = FaultSpec> {
    let at = 0..duration_ms;
    prop_oneof![
        (0..clients_max, at.clone(), 0..8_000u64).prop_map(|(client, at_ms, duration_ms)| {
            FaultSpec::Pause {
                client,
                at_ms,
                duration_ms,
            }
        }),
        (0..clients_max, 1..6u32, 0..8_000u64).prop_map(|(client, nth, duration_ms)| {
            FaultSpec::AimedPause {
                client,
                nth,
                duration_ms,
            }
        }),
        (0..clients_max, 1..6u32, 0..8_000u64).prop_map(|(client, nth, duration_ms)| {
            FaultSpec::Hold {
                client,
                nth,
                duration_ms,
            }
        }),
        (0..clients_max, at.clone(), 0..6_000u64).prop_map(|(client, at_ms, duration_ms)| {
            FaultSpec::EtcdPartition {
                client,
                at_ms,
                duration_ms,
            }
        }),
        (
            0..clients_max,
            -100_000..=100_000i64,
            at.clone(),
            -3_000..=3_000i64
        )
            .prop_map(|(client, drift_ppm, step_at_ms, step_ms)| FaultSpec::Skew {
                client,
                drift_ppm,
                step_at_ms,
                step_ms,
            }),
        (0..clients_max, at.clone(), 0..4_000u64).prop_map(|(client, at_ms, restart_after_ms)| {
            FaultSpec::Crash {
                client,
                at_ms,
                restart_after_ms,
            }
        }),
        (at, 0..4_000u64)
            .prop_map(|(at_ms, duration_ms)| FaultSpec::EtcdStall { at_ms, duration_ms }),
    ]
}

/// Strategy for whole cases drawn from `space`.
pub fn case_strategy(duration_ms: u64, space: &Space) -> impl Strategy<Value = Case> {
    (
        0..1_000u64,
        space.clients.clone(),
        space.ttl_s.clone(),
        space.critical_ms_max.clone(),
        prop::collection::vec(
            fault_strategy(duration_ms, *space.clients.end()),
            0..=CASE_FAULTS_MAX,
        ),
    )
        .prop_map(|(seed, clients, ttl_s, critical_ms_max, faults)| Case {
            seed,
            clients,
            ttl_s,
            critical_ms_max,
            faults,
        })
}

/// A skew's clock steps: none when `step_ms` is 0, else the one step.
fn clock_steps(step_at_ms: u64, step_ms: i64) -> Vec<ClockStep> {
    if step_ms == 0 {
        vec![]
    } else {
        vec![ClockStep {
            at_ms: step_at_ms,
            delta_ms: step_ms,
        }]
    }
}

/// One fault of a case as the fault plan's fault, on the `c` clients' node names.
fn fault(spec: &FaultSpec, c: u32) -> Fault {
    match *spec {
        FaultSpec::Pause {
            client: n,
            at_ms,
            duration_ms,
        } => Fault::Pause {
            node: client(n, c),
            at: Trigger::AtMs(at_ms),
            duration_ms,
        },
        FaultSpec::AimedPause {
            client: n,
            nth,
            duration_ms,
        } => Fault::Pause {
            node: client(n, c),
            at: Trigger::Point {
                point: Point::BeforeWrite,
                nth,
            },
            duration_ms,
        },
        FaultSpec::Hold {
            client: n,
            nth,
            duration_ms,
        } => Fault::HoldRequest {
            node: client(n, c),
            at: Trigger::Point {
                point: Point::BeforeWrite,
                nth,
            },
            duration_ms,
        },
        FaultSpec::EtcdPartition {
            client: n,
            at_ms,
            duration_ms,
        } => Fault::Partition {
            a: client(n, c),
            b: ETCD.into(),
            at_ms,
            duration_ms,
        },
        FaultSpec::Skew {
            client: n,
            drift_ppm,
            step_at_ms,
            step_ms,
        } => Fault::Skew {
            node: client(n, c),
            skew: Skew {
                offset_ms: 0,
                drift_ppm,
                steps: clock_steps(step_at_ms, step_ms),
            },
        },
        FaultSpec::Crash {
            client: n,
            at_ms,
            restart_after_ms,
        } => Fault::Crash {
            node: client(n, c),
            at_ms,
            restart_after_ms,
        },
        FaultSpec::EtcdStall { at_ms, duration_ms } => Fault::Pause {
            node: ETCD.into(),
            at: Trigger::AtMs(at_ms),
            duration_ms,
        },
    }
}
