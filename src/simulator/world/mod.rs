//! One seeded madsim world: etcd, storage and clients as nodes, the fault plan applied by a
//! supervisor, everything recorded, every node killed before the runtime returns.

mod apply;
mod builder;
mod nodes;
mod redis;
mod schedule;
mod zk;

pub use builder::Builder;
use builder::Parts;

use crate::checker::{self, Verdict};
use crate::fault::{Fault, FaultPlan};
use crate::history::{History, Recorder};
use crate::label::{self, LabelledFault};
use crate::ms::MsRange;
use crate::scenario::Scenario;
use crate::storage::Fencing;
use apply::Faults;
use madsim::runtime::{Handle, Runtime};
use nodes::Clients;
use schedule::{Action, Schedule};
use serde::{Deserialize, Serialize};
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::time::Instant;

/// Margin beyond `duration + drain` after which madsim aborts a run that failed to end.
const TIME_LIMIT_SLACK: Duration = Duration::from_secs(300);

/// Everything one run produced.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Run {
    pub seed: u64,
    /// The fence's name (one of the [`Fencing`] policies', or a user fence's).
    pub fencing: String,
    pub history: History,
    pub verdict: Verdict,
    /// Messages the simulated network carried.
    pub messages: u64,
    /// Simulated time the run took, ms.
    pub simulated_ms: u64,
    /// The plan's faults, each labelled inside or outside the protocol's assumptions.
    pub faults: Vec<LabelledFault>,
}

impl Run {
    pub fn history_hash(&self) -> u64 {
        self.history.hash()
    }
}

/// madsim's latency range for an inclusive range of milliseconds.
fn latency_range(ms: MsRange) -> std::ops::Range<Duration> {
    // A valid scenario's range; an inverted one would leave madsim an empty range to draw from.
    assert!(ms.min <= ms.max, "latency {}..{} ms", ms.min, ms.max);
    Duration::from_millis(ms.min)..Duration::from_millis(ms.max + 1)
}

/// Runs one world under one of fencelab's policies, with the scenario's lock method and
/// workload: `Builder::new(scenario).fencing(fencing).plan(plan).seed(seed).run()`.
pub fn run(scenario: &Scenario, plan: &FaultPlan, fencing: Fencing, seed: u64) -> Run {
    Builder::new(scenario.clone())
        .fencing(fencing)
        .plan(plan.clone())
        .seed(seed)
        .run()
}

/// Runs one world. Panics only on a broken invariant of fencelab itself.
fn run_parts(scenario: &Scenario, plan: &FaultPlan, parts: Parts, seed: u64) -> Run {
    let mut config = madsim::Config::default();
    config.net.send_latency = latency_range(scenario.latency_ms);
    config.net.packet_loss_rate = scenario.loss_rate;
    let mut rt = Runtime::with_seed_and_config(seed, config);
    let time_limit =
        Duration::from_millis(scenario.duration_ms + scenario.drain_ms) + TIME_LIMIT_SLACK;
    rt.set_time_limit(time_limit);
    let plan_labels = label::label_plan(&plan.faults, scenario);
    // One label per fault, in plan order.
    assert_eq!(plan_labels.len(), plan.faults.len());
    debug_assert!(plan_labels
        .iter()
        .zip(&plan.faults)
        .all(|(l, f)| l.fault == *f));
    let scenario = scenario.clone();
    let plan = plan.clone();
    let fencing = parts.fence.name().to_string();
    let workload = parts.workload.clone();
    let tokens_rise = parts.recipe.tokens_rise();
    let (history, messages, simulated_ms) =
        rt.block_on(async move { supervise(scenario, plan, parts, seed).await });
    // The run ended within madsim's time limit (past it, madsim panics first).
    assert!(simulated_ms <= time_limit.as_millis() as u64);
    // A recipe whose tokens do not rise is judged by the order its grants came in.
    let verdict = match tokens_rise {
        true => checker::check_with(&history, |h| workload.check(h)),
        false => checker::check_with(&checker::by_grant_order(&history), |h| workload.check(h)),
    };
    Run {
        faults: plan_labels,
        seed,
        fencing,
        history,
        verdict,
        messages,
        simulated_ms,
    }
}

/// Starts the nodes, applies the plan until the end (or until every client finished after
/// Stop), and returns the history, the messages carried and the simulated ms.
async fn supervise(
    scenario: Scenario,
    plan: FaultPlan,
    parts: Parts,
    seed: u64,
) -> (History, u64, u64) {
    let handle = Handle::current();
    let origin = Instant::now();
    let recorder = Recorder::new(origin);
    let (nodes, mut clients, store) =
        nodes::start(&handle, &scenario, &plan, &parts, seed, origin, &recorder);
    if let Some(cluster) = nodes.cluster.clone() {
        // The election timers run on the operator's node, which nothing pauses; it is killed
        // with the others at the end. One member never needs an election, unless it crashes:
        // no task otherwise, so that one member's runs stay as they were.
        let crashes = plan
            .faults
            .iter()
            .any(|f| matches!(f, Fault::Crash { node, .. } if crate::fault::is_etcd(node)));
        if cluster.members() > 1 || crashes {
            nodes.get(nodes::OPERATOR).spawn(cluster.run_elections());
        }
    }
    let mut schedule = Schedule::new(&plan, &scenario);
    let mut faults = Faults::new(nodes, recorder.clone(), &scenario);
    apply_until_end(&mut schedule, &mut faults, &mut clients, &plan, origin).await;

    let nodes = faults.into_nodes();
    let mut finals = store.lock().expect("store lock").entries().clone();
    let etcd_keys = parts.workload.etcd_keys();
    if !etcd_keys.is_empty() {
        let operator = nodes.get(nodes::OPERATOR);
        let endpoints = nodes.endpoints.clone();
        let read = nodes::final_etcd_read(operator, scenario.etcd, endpoints, etcd_keys);
        finals.extend(read.await);
    }
    recorder.set_final_entries(finals);
    let messages = madsim::net::NetSim::current().stat().msg_count;
    let simulated_ms = recorder.true_us() / 1000;
    // madsim keeps every pending future alive unless its node is killed and the runtime
    // gets one more tick: without this, memory grows by ~160 KB per seed.
    nodes.kill_all(&handle);
    tokio::time::sleep(Duration::from_millis(1)).await;
    (recorder.take(), messages, simulated_ms)
}

/// The supervisor's loop: each timed action, and each client reaching a point a fault is
/// aimed at, handed to its applier, until End (or until every client finished after Stop).
async fn apply_until_end(
    schedule: &mut Schedule,
    faults: &mut Faults,
    clients: &mut Clients,
    plan: &FaultPlan,
    origin: Instant,
) {
    // Bounded: every iteration consumes a timeline entry or a point hit, both finite.
    loop {
        let due = origin + Duration::from_millis(schedule.first_ms());
        let stopping = clients.stop.load(Ordering::Relaxed);
        if stopping && clients.all_finished() {
            return;
        }
        // After Stop, wake every 100 ms to see whether all clients finished.
        let wake = if stopping {
            due.min(Instant::now() + Duration::from_millis(100))
        } else {
            due
        };
        // Biased: tokio's unbiased `select!` draws from a thread-local RNG outside madsim's,
        // so the branch order would depend on earlier runs on the same thread.
        tokio::select! {
            biased;
            _ = tokio::time::sleep_until(wake) => {
                let elapsed_ms = (Instant::now() - origin).as_millis() as u64;
                let Some((now_ms, action)) = schedule.pop_due(elapsed_ms) else {
                    continue;
                };
                // An action is due once its time has come.
                debug_assert!(now_ms <= elapsed_ms, "{action:?} at {now_ms} ms, now {elapsed_ms} ms");
                match action {
                    Action::Stop => clients.stop.store(true, Ordering::Relaxed),
                    Action::End => return,
                    fault => faults.apply(now_ms, fault, schedule),
                }
            }
            Some(hit) = clients.hits.recv() => faults.strike(hit, &plan.faults, schedule),
        }
    }
}

/// A scenario says which lock the schemes run under: what [`crate::schemes::Scheme::validate`]
/// needs of it (the system layer names no scenario).
impl From<&Scenario> for crate::schemes::LockSettings {
    fn from(scenario: &Scenario) -> Self {
        crate::schemes::LockSettings {
            lock_method: scenario.lock_method,
            lock_delay_ms: scenario.lock_delay_ms,
            campaign_timeout_ms: scenario.campaign_timeout_ms,
            service: scenario.service,
            redlock: scenario
                .redis
                .recipe(scenario.lock_method == crate::lock::LockMethod::RedisSingle),
            etcd_version: scenario.etcd_version,
            curator: scenario.zk.recipe(),
        }
    }
}

/// Everything that determines a run: save it, and `replay` gives the same history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Experiment {
    pub seed: u64,
    pub fencing: Fencing,
    /// A scheme of the comparison (`schemes::catalogue`) instead of the policy: its fence and
    /// lock recipe. Absent from the JSON when none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheme: Option<String>,
    pub scenario: Scenario,
    pub plan: FaultPlan,
    /// What `explore` measured of the plan (its robustness, each fault's robustness without
    /// it); absent from the JSON when none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub explanation: Option<crate::robust::Explanation>,
}

impl Experiment {
    /// Checks the scenario, the plan and the scheme.
    pub fn validate(&self) -> Result<(), String> {
        self.scenario.validate()?;
        if let Some(name) = &self.scheme {
            crate::schemes::by_name(name)?.validate(&self.scenario)?;
        }
        self.plan.validate(&self.scenario.node_names())
    }

    /// Runs it. Panics on a scheme not in the catalogue: [`Experiment::validate`] first.
    pub fn run(&self) -> Run {
        self.builder().run()
    }

    /// Its world: the scenario, fence (or scheme), plan and seed. Panics on a scheme not in
    /// the catalogue: [`Experiment::validate`] first.
    pub fn builder(&self) -> Builder {
        let builder = Builder::new(self.scenario.clone())
            .fencing(self.fencing)
            .plan(self.plan.clone())
            .seed(self.seed);
        match &self.scheme {
            Some(name) => {
                let scheme = crate::schemes::by_name(name).expect("a validated scheme");
                builder.scheme(&scheme)
            }
            None => builder,
        }
    }
}
