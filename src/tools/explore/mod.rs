//! Property-based exploration of fault schedules (proptest), shrunk to the smallest plan
//! that still breaks.
//!
//! An [`Case`] is a scenario's knobs plus a fault plan in abstract form (client numbers taken
//! modulo the client count), so every shrink step stays a valid world: proptest shrinks toward
//! fewer faults, shorter pauses and holds, smaller skew and fewer clients. After proptest's
//! shrinking a last greedy pass removes any fault whose removal still breaks, so the result is
//! 1-minimal: removing any one of its faults makes the run pass.

use crate::clock::{ClockStep, Skew};
use crate::fault::{Fault, FaultPlan, Trigger, ETCD, STORAGE};
use crate::ms::MsRange;
use crate::nemesis::NemesisConfig;
use crate::scenario::{client_name, Scenario};
use crate::storage::Fencing;
use crate::workload::Point;
use crate::world::{self, Run};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestError, TestRunner};
use serde::{Deserialize, Serialize};
use std::cell::Cell;

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

/// What an exploration found.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Exploration {
    /// The fence's name.
    pub fencing: String,
    pub found: bool,
    /// Cases run, shrinking included.
    pub cases: u64,
    /// Faults in the first breaking case found.
    pub faults_before: usize,
    /// Faults in the minimal case.
    pub faults_after: usize,
    pub case: Option<Case>,
    pub plan: Option<FaultPlan>,
    pub wall_s: f64,
}

/// Searches for a case whose run violates under `fencing`, and shrinks it.
pub fn explore(base: &Scenario, fencing: Fencing, config: Config, space: &Space) -> Exploration {
    let builder = world::Builder::new(base.clone()).fencing(fencing);
    explore_with(&builder, config, space)
}

/// [`explore`] with any builder: its scenario is the base the cases vary, and its fence,
/// recipe and workload run every case.
pub fn explore_with(builder: &world::Builder, config: Config, space: &Space) -> Exploration {
    let base = builder.scenario();
    let started = std::time::Instant::now();
    let cases = Cell::new(0u64);
    let first_failure = Cell::new(None::<usize>);
    let mut runner = TestRunner::new(config);
    let strategy = case_strategy(base.duration_ms, space);
    let outcome = runner.run(&strategy, |case| {
        cases.set(cases.get() + 1);
        let run = case.run_with(builder);
        if run.verdict.violates() {
            if first_failure.get().is_none() {
                first_failure.set(Some(case.faults.len()));
            }
            return Err(TestCaseError::fail(format!(
                "violation: {} lost updates, {} token-order breaks",
                run.verdict.lost_updates, run.verdict.token_order_breaks
            )));
        }
        Ok(())
    });
    let minimal = match outcome {
        Err(TestError::Fail(_, case)) => Some(one_minimal(builder, case, &cases)),
        Ok(()) | Err(TestError::Abort(_)) => None,
    };
    Exploration {
        fencing: builder.fence_name().to_string(),
        found: minimal.is_some(),
        cases: cases.get(),
        faults_before: first_failure.get().unwrap_or(0),
        faults_after: minimal.as_ref().map_or(0, |c| c.faults.len()),
        plan: minimal.as_ref().map(Case::plan),
        case: minimal,
        wall_s: started.elapsed().as_secs_f64(),
    }
}

/// Removes faults one at a time while the case still breaks, until none can go.
fn one_minimal(builder: &world::Builder, mut case: Case, cases: &Cell<u64>) -> Case {
    // Bounded: each successful pass removes a fault.
    'outer: for _ in 0..=CASE_FAULTS_MAX {
        for i in 0..case.faults.len() {
            let smaller = case.without(i);
            cases.set(cases.get() + 1);
            if smaller.run_with(builder).verdict.violates() {
                case = smaller;
                continue 'outer;
            }
        }
        break;
    }
    case
}

/// A proptest configuration: `cases` to try, a fixed search seed (so an exploration is
/// reproducible), and optionally a regression file that remembers failures forever.
pub fn config(cases: u32, search_seed: u64, regressions: Option<&'static str>) -> Config {
    use proptest::test_runner::{FileFailurePersistence, RngAlgorithm, RngSeed};
    Config {
        cases,
        max_shrink_iters: 2_000,
        failure_persistence: Some(Box::new(match regressions {
            Some(path) => FileFailurePersistence::Direct(path),
            None => FileFailurePersistence::Off,
        })),
        rng_algorithm: RngAlgorithm::ChaCha,
        rng_seed: RngSeed::Fixed(search_seed),
        ..Config::default()
    }
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
