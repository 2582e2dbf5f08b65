//! Seeds in your own `cargo test`: run many seeds of a [`Builder`] on every core, and on a
//! failure panic with everything needed to replay it.
//!
//! ```no_run
//! # #[cfg(madsim)] {
//! use fencelab::{harness::Harness, scenario::Scenario, storage::Fencing, world::Builder};
//!
//! // In a #[test]: 200 seeds of the standard nemesis must not break token fencing.
//! Harness::new(Builder::new(Scenario::standard()).fencing(Fencing::Token))
//!     .seeds(0..200)
//!     .run();
//! # }
//! ```
//!
//! On a failure the panic names the seed, the fence, recipe and workload, the verdict's counts
//! and first finding, the fault plan as JSON (shrunk: faults removed one at a time while the
//! run still fails), and two one-line replays:
//!
//! - `FENCELAB_SEED=<seed> cargo test … <test>` re-runs exactly that seed, as madsim's
//!   `MADSIM_TEST_SEED` does;
//! - adding `FENCELAB_PLAN=<file>` (the shrunk plan, written under `target/fencelab-failures/`)
//!   runs that seed under the shrunk plan instead of the one the nemesis draws.
//!
//! A seed replays byte for byte: same seed, scenario, plan, fence, recipe and workload, same
//! history.

use crate::fault::FaultPlan;
use crate::sweep;
use crate::world::{Builder, Run};
use std::ops::Range;
use std::path::PathBuf;
use std::sync::Arc;

/// The environment variable that narrows a harness to one seed.
pub const SEED_VAR: &str = "FENCELAB_SEED";
/// The environment variable that gives that seed a plan from a JSON file.
pub const PLAN_VAR: &str = "FENCELAB_PLAN";
/// Where shrunk plans are written, relative to the directory `cargo test` runs in.
pub const FAILURES_DIR: &str = "target/fencelab-failures";
/// Most seeds one harness runs: a limit on everything.
pub const SEEDS_MAX: u64 = 10_000_000;
/// Most runs one shrink makes.
const SHRINK_RUNS_MAX: usize = 500;

/// What must hold of every run: `Err(why)` fails it.
pub type Property = Arc<dyn Fn(&Run) -> Result<(), String> + Send + Sync>;

/// The default property: the checker finds no safety violation.
pub fn no_violation(run: &Run) -> Result<(), String> {
    let v = &run.verdict;
    if !v.violates() {
        return Ok(());
    }
    let mut why = format!(
        "{} lost updates, {} token-order breaks, {} invariant breaks",
        v.lost_updates, v.token_order_breaks, v.invariant_breaks
    );
    if let Some(f) = v.findings.iter().find(|f| f.kind.is_violation()) {
        why.push_str(&format!(
            "; first: {} at {:.3} s on {}: {}",
            f.kind.as_str(),
            f.true_us as f64 / 1e6,
            f.node,
            f.detail
        ));
    }
    Err(why)
}

/// Runs seeds of a builder and judges each run.
#[derive(Clone)]
pub struct Harness {
    builder: Builder,
    seeds: Range<u64>,
    jobs: usize,
    shrink: bool,
    property: Property,
}

/// A failing seed, as the harness reports it.
#[derive(Debug, Clone)]
pub struct Failure {
    pub seed: u64,
    /// Why the property failed.
    pub why: String,
    /// The plan the failing run had (drawn from the seed, or given).
    pub plan: FaultPlan,
    /// The plan after shrinking (the same when shrinking is off or removed nothing).
    pub shrunk: FaultPlan,
    /// Where the shrunk plan was written, if it could be.
    pub plan_file: Option<PathBuf>,
    /// The report the harness panics with.
    pub report: String,
}

impl Harness {
    /// Seeds `0..100` on every core, shrinking on, the property [`no_violation`].
    pub fn new(builder: Builder) -> Harness {
        Harness {
            builder,
            seeds: 0..100,
            jobs: sweep::default_jobs(),
            shrink: true,
            property: Arc::new(no_violation),
        }
    }

    pub fn seeds(mut self, seeds: Range<u64>) -> Harness {
        assert!(seeds.end - seeds.start <= SEEDS_MAX, "too many seeds");
        self.seeds = seeds;
        self
    }

    /// Threads to run seeds on (default: every core).
    pub fn jobs(mut self, jobs: usize) -> Harness {
        self.jobs = jobs.max(1);
        self
    }

    /// Whether to shrink a failing plan before reporting it (default on).
    pub fn shrink(mut self, on: bool) -> Harness {
        self.shrink = on;
        self
    }

    /// What must hold of every run, instead of [`no_violation`].
    pub fn property(
        mut self,
        property: impl Fn(&Run) -> Result<(), String> + Send + Sync + 'static,
    ) -> Harness {
        self.property = Arc::new(property);
        self
    }

    /// Runs the seeds (or only `FENCELAB_SEED`, under `FENCELAB_PLAN` if set) and panics with
    /// the replay report at the first failing seed.
    pub fn run(self) {
        if let Err(failure) = self.outcome() {
            panic!("{}", failure.report);
        }
    }

    /// As [`Harness::run`], without panicking: the lowest failing seed, if any.
    pub fn outcome(&self) -> Result<(), Box<Failure>> {
        // Bad input is the user's to fix: say what, rather than fail inside a run.
        let scenario = self.builder.scenario();
        if let Err(e) = scenario.validate() {
            panic!("fencelab: the builder's scenario is not valid: {e}");
        }
        match replay_from_env() {
            Ok(Some((seed, plan))) => self.replay(seed, plan),
            Ok(None) => self.check_seeds(self.seeds.clone(), None),
            Err(e) => panic!("{e}"),
        }
    }

    /// What `FENCELAB_SEED` (and `FENCELAB_PLAN`) do: one seed, under `plan` if given, else
    /// the builder's.
    pub fn replay(&self, seed: u64, plan: Option<FaultPlan>) -> Result<(), Box<Failure>> {
        assert!(
            seed < u64::MAX,
            "seed {seed}: the highest seed is u64::MAX - 1"
        );
        self.check_seeds(seed..seed + 1, plan)
    }

    fn check_seeds(
        &self,
        seeds: Range<u64>,
        given_plan: Option<FaultPlan>,
    ) -> Result<(), Box<Failure>> {
        if let Some(plan) = &given_plan {
            if let Err(e) = plan.validate(&self.builder.scenario().node_names()) {
                panic!("fencelab: {PLAN_VAR} does not fit the scenario: {e}");
            }
        }
        let test = test_name();
        let builder = match &given_plan {
            Some(plan) => self.builder.clone().plan(plan.clone()),
            None => self.builder.clone(),
        };
        let failures = sweep::map_seeds(seeds, self.jobs, |seed| {
            self.judge(&builder, seed).err().map(|why| (seed, why))
        });
        let Some((seed, why)) = failures.into_iter().flatten().next() else {
            return Ok(());
        };
        let plan = builder.plan_for(seed);
        let shrunk = if self.shrink {
            self.shrunk(&builder, seed, plan.clone())
        } else {
            plan.clone()
        };
        let plan_file = write_plan(&test, seed, &shrunk);
        let report = self.report(&test, seed, &why, &plan, &shrunk, plan_file.as_deref());
        Err(Box::new(Failure {
            seed,
            why,
            plan,
            shrunk,
            plan_file,
            report,
        }))
    }

    /// Runs one seed and judges it. A panic inside the run (a user's fence, recipe or
    /// workload, or one of fencelab's own assertions) fails the seed like a broken property,
    /// so that it too is reported with its replay lines.
    fn judge(&self, builder: &Builder, seed: u64) -> Result<(), String> {
        let ran = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| builder.run_seed(seed)));
        match ran {
            Ok(run) => (self.property)(&run),
            Err(panic) => {
                let what = panic
                    .downcast_ref::<String>()
                    .map(String::as_str)
                    .or_else(|| panic.downcast_ref::<&str>().copied())
                    .unwrap_or("a panic");
                Err(format!("the run panicked: {what}"))
            }
        }
    }

    /// Removes faults one at a time while the seed still fails, until none can go (bounded by
    /// [`SHRINK_RUNS_MAX`] runs).
    fn shrunk(&self, builder: &Builder, seed: u64, plan: FaultPlan) -> FaultPlan {
        let fails = |smaller: &FaultPlan| {
            let b = builder.clone().plan(smaller.clone());
            self.judge(&b, seed).err().map(|_| ())
        };
        shrink_plan(plan, (), SHRINK_RUNS_MAX, fails).0
    }

    fn report(
        &self,
        test: &str,
        seed: u64,
        why: &str,
        plan: &FaultPlan,
        shrunk: &FaultPlan,
        plan_file: Option<&std::path::Path>,
    ) -> String {
        let b = &self.builder;
        let json = serde_json::to_string(shrunk).unwrap_or_else(|e| format!("<{e}>"));
        let mut out = format!(
            "fencelab: seed {seed} fails under fence `{}`, lock recipe `{}`, workload `{}`: {why}\n",
            b.fence_name(),
            b.recipe_name(),
            b.workload_name()
        );
        out.push_str(&format!(
            "  plan ({} faults, shrunk from {}): {json}\n",
            shrunk.len(),
            plan.len()
        ));
        let cmd = format!("cargo test --release -- --exact {test}");
        out.push_str(&format!("  replay: {SEED_VAR}={seed} {cmd}\n"));
        if let Some(file) = plan_file {
            out.push_str(&format!(
                "  replay the shrunk plan: {SEED_VAR}={seed} {PLAN_VAR}={} {cmd}\n",
                file.display()
            ));
        }
        out
    }
}

/// Shrinks a failing plan by removal: drops one fault at a time, keeping each smaller plan
/// that `fails` (which says why it fails), until no fault can go or `runs_max` runs were
/// made. Gives the smallest failing plan and its reason (`why`, the given plan's, when no
/// fault could go). The harness and `compare` both shrink with it.
pub fn shrink_plan<T>(
    mut plan: FaultPlan,
    mut why: T,
    runs_max: usize,
    mut fails: impl FnMut(&FaultPlan) -> Option<T>,
) -> (FaultPlan, T) {
    let mut runs = 0;
    // Bounded: each pass either removes a fault or ends, and runs are capped.
    'outer: while runs < runs_max {
        for i in 0..plan.faults.len() {
            let mut smaller = plan.clone();
            smaller.faults.remove(i);
            runs += 1;
            if let Some(still) = fails(&smaller) {
                (plan, why) = (smaller, still);
                continue 'outer;
            }
            if runs >= runs_max {
                break 'outer;
            }
        }
        break;
    }
    (plan, why)
}

/// The running test's name: libtest names each test's thread after it.
fn test_name() -> String {
    match std::thread::current().name() {
        Some(name) if name != "main" => name.to_string(),
        _ => "<your test>".to_string(),
    }
}

/// `FENCELAB_SEED` and `FENCELAB_PLAN`, if set; a clear error if they cannot be used.
fn replay_from_env() -> Result<Option<(u64, Option<FaultPlan>)>, String> {
    let Ok(seed) = std::env::var(SEED_VAR) else {
        if std::env::var_os(PLAN_VAR).is_some() {
            return Err(format!("{PLAN_VAR} is set but {SEED_VAR} is not: set both"));
        }
        return Ok(None);
    };
    let seed: u64 = seed
        .trim()
        .parse()
        .ok()
        .filter(|s| *s < u64::MAX)
        .ok_or_else(|| format!("{SEED_VAR}='{seed}' is not a seed (0 to u64::MAX - 1)"))?;
    let Some(path) = std::env::var_os(PLAN_VAR) else {
        return Ok(Some((seed, None)));
    };
    let text = std::fs::read_to_string(&path)
        .map_err(|e| format!("{PLAN_VAR}={}: cannot read: {e}", path.to_string_lossy()))?;
    let plan: FaultPlan = serde_json::from_str(&text)
        .map_err(|e| format!("{PLAN_VAR}={}: not a plan: {e}", path.to_string_lossy()))?;
    Ok(Some((seed, Some(plan))))
}

/// Writes the plan where a replay line can point at it; `None` if the file cannot be written.
fn write_plan(test: &str, seed: u64, plan: &FaultPlan) -> Option<PathBuf> {
    let safe: String = test
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    let dir = PathBuf::from(FAILURES_DIR);
    std::fs::create_dir_all(&dir).ok()?;
    let path = dir.join(format!("{safe}-seed{seed}.json"));
    let json = serde_json::to_string_pretty(plan).ok()?;
    std::fs::write(&path, json + "\n").ok()?;
    Some(path)
}
