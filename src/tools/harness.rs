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
//! On a failure the panic (at the caller's line: `#[track_caller]`) tells one story, the
//! shrunk plan's: the seed, the fence, recipe and workload, why the seed failed, the plan as
//! JSON, shrunk on robustness as `explore` shrinks ([`crate::robust::explain`]): over K noise
//! seeds from the failing seed on (20 by default, [`Harness::noise_seeds`]), no-ops are
//! dropped, faults removed, timed pauses aimed at protocol points and durations cut, each step
//! kept only while the plan still fails the same way (a finding of the kind that failed first,
//! or the user's property) in half as many noise seeds as the drawn plan did. Then the shrunk
//! plan's robustness and each fault's robustness without it, the shrunk run's own counts and
//! first finding and its story ([`report::story_excerpt`]), at the failing seed when the shrunk
//! plan still fails there, else at its most typical failing noise seed, and two one-line
//! replays:
//!
//! - `FENCELAB_SEED=<seed> cargo test … <test>` re-runs exactly that seed, as madsim's
//!   `MADSIM_TEST_SEED` does;
//! - adding `FENCELAB_PLAN=<file>` (the shrunk plan, written under
//!   `$CARGO_TARGET_DIR/fencelab-failures/`, by default `target/`, with its story beside it)
//!   runs that seed (the one the story is of) under the shrunk plan instead of the one the
//!   nemesis draws.
//!
//! A seed replays byte for byte: same seed, scenario, plan, fence, recipe and workload, same
//! history.

use crate::checker::FindingKind;
use crate::fault::FaultPlan;
use crate::report;
use crate::robust::{self, Explanation, Hit, Noise, Robustness, NOISE_SEEDS_DEFAULT};
use crate::sweep;
use crate::world::{Builder, Run};
use std::ops::Range;
use std::path::PathBuf;
use std::sync::Arc;

/// The environment variable that narrows a harness to one seed.
pub const SEED_VAR: &str = "FENCELAB_SEED";
/// The environment variable that gives that seed a plan from a JSON file.
pub const PLAN_VAR: &str = "FENCELAB_PLAN";
/// The folder, inside cargo's target directory, shrunk plans are written to
/// ([`failures_dir`]).
pub const FAILURES_DIR: &str = "fencelab-failures";
/// Most seeds one harness runs: a limit on everything.
pub const SEEDS_MAX: u64 = 10_000_000;

/// What must hold of every run: `Err(why)` fails it.
pub type Property = Arc<dyn Fn(&Run) -> Result<(), String> + Send + Sync>;

/// The default property: the checker finds no safety violation.
pub fn no_violation(run: &Run) -> Result<(), String> {
    let v = &run.verdict;
    if !v.violates() {
        return Ok(());
    }
    let mut why = counts(v);
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

/// A verdict's counts in words: lost updates only for a workload that counts increments,
/// invariant breaks only for one that has invariants, then the workload's own tallies.
pub fn counts(v: &crate::checker::Verdict) -> String {
    let mut parts = Vec::new();
    if v.lost_updates > 0 || v.acked_increments > 0 {
        parts.push(plural(v.lost_updates, "lost update"));
    }
    parts.push(plural(v.token_order_breaks, "token-order break"));
    if v.invariant_breaks > 0 || !v.tallies.is_empty() {
        parts.push(plural(v.invariant_breaks, "invariant break"));
    }
    parts.extend(v.tallies.iter().map(|(name, n)| format!("{name} {n}")));
    parts.join(", ")
}

/// `a token-order break`, `an invariant break`: a finding's kind with its article.
pub fn a(what: &str) -> String {
    let vowel = what.starts_with(['a', 'e', 'i', 'o', 'u']);
    format!("{} {what}", if vowel { "an" } else { "a" })
}

/// `1 fault`, `2 faults`.
pub fn plural(n: u64, what: &str) -> String {
    match n {
        1 => format!("1 {what}"),
        n => format!("{n} {what}s"),
    }
}

/// What a shrunk plan must keep failing: the finding kind that failed first (by default),
/// the user's property, or a panic inside the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Target {
    Kind(FindingKind),
    Property,
    Panic,
}

/// Runs seeds of a builder and judges each run.
#[derive(Clone)]
pub struct Harness {
    builder: Builder,
    seeds: Range<u64>,
    jobs: usize,
    shrink: bool,
    property: Property,
    /// Whether the property is the user's (then shrinking keeps it failing, whatever the
    /// findings), not [`no_violation`].
    custom: bool,
    /// K: the noise seeds, from the failing seed on, robustness is measured over.
    noise_seeds: u64,
    /// The share of them a shrunk plan must keep failing in; `None`: half the drawn plan's.
    share: Option<f64>,
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
    /// The seed the shrunk run, its story and the shrunk plan's replay line are of: `seed`
    /// when the shrunk plan still fails there, else its most typical failing noise seed (a
    /// plan shrunk on robustness fails in most noise seeds, not necessarily in this one).
    pub story_seed: u64,
    /// Why the run under the shrunk plan at `story_seed` fails (its own counts and first
    /// finding).
    pub shrunk_why: String,
    /// In how many noise seeds (the plan fixed, from `seed` on) the drawn plan fails the same
    /// way.
    pub original: Robustness,
    /// The same of the shrunk plan.
    pub robustness: Robustness,
    /// One per fault of the shrunk plan: its robustness without that fault (the evidence
    /// that the fault is needed).
    pub without: Vec<Robustness>,
    /// The story of the shrunk run around its finding ([`report::story_excerpt`]).
    pub story: String,
    /// Where the shrunk plan was written, if it could be; its story is beside it
    /// (`.story.txt`).
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
            custom: false,
            noise_seeds: NOISE_SEEDS_DEFAULT,
            share: None,
        }
    }

    /// K, the noise seeds robustness is measured and shrunk over (default 20). Shrinking
    /// costs a few hundred measurements of K runs at most; a small K is cheaper and noisier.
    pub fn noise_seeds(mut self, k: u64) -> Harness {
        assert!(
            (1..=robust::NOISE_SEEDS_MAX).contains(&k),
            "noise seeds {k} outside 1..={}",
            robust::NOISE_SEEDS_MAX
        );
        self.noise_seeds = k;
        self
    }

    /// The share of the noise seeds a shrunk plan must keep failing in (default: half the
    /// drawn plan's own rate, as `explore`'s).
    pub fn robust_share(mut self, share: f64) -> Harness {
        assert!((0.0..=1.0).contains(&share), "share {share} outside 0..=1");
        self.share = Some(share);
        self
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
        self.custom = true;
        self
    }

    /// Runs the seeds (or only `FENCELAB_SEED`, under `FENCELAB_PLAN` if set) and panics with
    /// the replay report at the first failing seed. The panic names the caller's line.
    #[track_caller]
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
        let target = self.target(&builder, seed);
        let judge = |b: &Builder, s: u64| self.hit(target, b, s);
        let explained = self.explain(&builder, seed, &plan, &judge);
        let shrunk = explained.evidence.plan.clone();
        let story_seed = match self.hit(target, &builder.clone().plan(shrunk.clone()), seed) {
            Some(_) => seed,
            None => explained.evidence.typical_seed.unwrap_or(seed),
        };
        let b = builder.clone().plan(shrunk.clone());
        let (shrunk_why, story) = match run_caught(&b, story_seed) {
            Ok(run) => (self.why_of(&run), story_of(&run)),
            Err(panic) => (format!("the run panicked: {panic}"), String::new()),
        };
        let plan_file = write_plan(&test, story_seed, &shrunk, &story);
        let mut failure = Failure {
            seed,
            why,
            plan,
            shrunk,
            story_seed,
            shrunk_why,
            original: explained.original,
            robustness: explained.evidence.robustness,
            without: explained.evidence.without,
            story,
            plan_file,
            report: String::new(),
        };
        failure.report = self.report(&test, &failure, target);
        Err(Box::new(failure))
    }

    /// Why a run fails, in the property's words (its counts and first finding, by default).
    fn why_of(&self, run: &Run) -> String {
        match (self.property)(run) {
            Err(why) => why,
            Ok(()) => format!("passes ({})", counts(&run.verdict)),
        }
    }

    /// What the seed's failure is, for shrinking to keep: the user's property, a panic, or
    /// the kind of the first violating finding.
    fn target(&self, builder: &Builder, seed: u64) -> Target {
        if self.custom {
            return Target::Property;
        }
        match run_caught(builder, seed) {
            Err(_) => Target::Panic,
            Ok(run) => run
                .verdict
                .findings
                .iter()
                .find(|f| f.kind.is_violation())
                .map_or(Target::Property, |f| Target::Kind(f.kind)),
        }
    }

    /// Whether a run fails the way `target` says.
    fn hit(&self, target: Target, builder: &Builder, seed: u64) -> Option<Hit> {
        let as_property = |true_us| Hit {
            seed,
            kind: robust::PROPERTY_KIND.to_string(),
            true_us,
        };
        match (run_caught(builder, seed), target) {
            (Err(_), Target::Panic) => Some(as_property(0)),
            (Err(_), _) | (Ok(_), Target::Panic) => None,
            (Ok(run), Target::Kind(kind)) => Hit::of_run(&run, Some(kind)),
            (Ok(run), Target::Property) => (self.property)(&run).err().map(|_| as_property(0)),
        }
    }

    /// Runs one seed and judges it. A panic inside the run (a user's fence, recipe or
    /// workload, or one of fencelab's own assertions) fails the seed like a broken property,
    /// so that it too is reported with its replay lines.
    fn judge(&self, builder: &Builder, seed: u64) -> Result<(), String> {
        match run_caught(builder, seed) {
            Ok(run) => (self.property)(&run),
            Err(what) => Err(format!("the run panicked: {what}")),
        }
    }

    /// The drawn plan's robustness over K noise seeds from `seed` on, then (shrinking on) the
    /// plan shrunk on it, with each fault's robustness without it ([`robust::explain`]).
    fn explain(
        &self,
        builder: &Builder,
        seed: u64,
        plan: &FaultPlan,
        judge: &robust::Judge,
    ) -> Explanation {
        let noise = Noise::new(seed, self.noise_seeds.min(u64::MAX - seed))
            .expect("a seed below u64::MAX and K in range");
        let (original, _) = robust::measure(builder, plan, noise, self.jobs, judge);
        if self.shrink {
            return robust::explain(builder, plan, original, self.share, self.jobs, judge).0;
        }
        let evidence = robust::Evidence::measure(builder, plan, noise, self.jobs, judge);
        let (share, need) = robust::need(self.share, &original);
        Explanation {
            original,
            faults_before: plan.len(),
            share,
            need,
            evidence,
        }
    }

    fn report(&self, test: &str, f: &Failure, target: Target) -> String {
        let b = &self.builder;
        let json = serde_json::to_string(&f.shrunk).unwrap_or_else(|e| format!("<{e}>"));
        let seed = f.seed;
        let mut out = format!(
            "fencelab: seed {seed} fails under fence `{}`, lock recipe `{}`, workload `{}`: {}\n",
            b.fence_name(),
            b.recipe_name(),
            b.workload_name(),
            f.why
        );
        let (toward, how) = match target {
            Target::Kind(kind) => (
                format!("kept failing with {}", a(kind.as_str())),
                format!("fails with {}", a(kind.as_str())),
            ),
            Target::Property => (
                "kept failing the property".into(),
                "fails the property".into(),
            ),
            Target::Panic => ("kept panicking".into(), "panics".into()),
        };
        out.push_str(&format!(
            "  plan ({}, shrunk from {} on robustness, {toward}): {json}\n",
            plural(f.shrunk.len() as u64, "fault"),
            f.plan.len()
        ));
        let n = f.robustness.noise;
        out.push_str(&format!(
            "  robustness: the shrunk plan {how} in {} (noise seeds {}..{}; the drawn plan in {})\n",
            f.robustness.text(),
            n.first,
            n.first + n.count - 1,
            f.original.text()
        ));
        for (fault, r) in f.shrunk.faults.iter().zip(&f.without) {
            out.push_str(&format!(
                "    {}\n      without it: {}\n",
                fault.describe(),
                r.text()
            ));
        }
        let at = f.story_seed;
        out.push_str(&format!(
            "  the shrunk plan's run (seed {at}): {}\n",
            f.shrunk_why
        ));
        match f.plan_file.as_ref().map(|p| story_path(p)) {
            Some(p) => out.push_str(&format!(
                "  story of the shrunk run (also in {}):\n",
                p.display()
            )),
            None => out.push_str("  story of the shrunk run:\n"),
        }
        for line in f.story.lines() {
            out.push_str(&format!("    {line}\n"));
        }
        let cmd = format!("cargo test --release -- --exact {test}");
        out.push_str(&format!("  replay: {SEED_VAR}={seed} {cmd}\n"));
        if let Some(file) = &f.plan_file {
            out.push_str(&format!(
                "  replay the shrunk plan: {SEED_VAR}={at} {PLAN_VAR}={} {cmd}\n",
                file.display()
            ));
        }
        out
    }
}

/// Runs one seed, a panic inside it (a user's fence, recipe or workload, or one of
/// fencelab's own assertions) caught and said in words.
fn run_caught(builder: &Builder, seed: u64) -> Result<Run, String> {
    let ran = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| builder.run_seed(seed)));
    ran.map_err(|panic| {
        panic
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_else(|| "a panic".to_string())
    })
}

/// The story around a run's first violation; for a run with none (a property of the user's),
/// the story's last lines.
fn story_of(run: &Run) -> String {
    let excerpt = report::story_excerpt(run);
    if !excerpt.is_empty() {
        return excerpt;
    }
    let story = report::story(&run.history);
    let lines: Vec<&str> = story.lines().collect();
    let from = lines.len().saturating_sub(report::EXCERPT_LINES_MAX);
    lines[from..].iter().map(|l| format!("{l}\n")).collect()
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

/// Where failures are written: `fencelab-failures` in cargo's target directory
/// (`CARGO_TARGET_DIR` when set, else `target`, relative to where `cargo test` runs).
pub fn failures_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .filter(|d| !d.is_empty())
        .map_or_else(|| PathBuf::from("target"), PathBuf::from);
    target.join(FAILURES_DIR)
}

/// The story file beside a plan file.
fn story_path(plan_file: &std::path::Path) -> PathBuf {
    plan_file.with_extension("story.txt")
}

/// Writes the plan where a replay line can point at it, and its story beside it; `None` if
/// the plan cannot be written.
fn write_plan(test: &str, seed: u64, plan: &FaultPlan, story: &str) -> Option<PathBuf> {
    let safe: String = test
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    let dir = failures_dir();
    std::fs::create_dir_all(&dir).ok()?;
    let path = dir.join(format!("{safe}-seed{seed}.json"));
    let json = serde_json::to_string_pretty(plan).ok()?;
    std::fs::write(&path, json + "\n").ok()?;
    // The story is a help, not the replay: a failure to write it loses only the file.
    let _ = std::fs::write(story_path(&path), story);
    Some(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_name_only_what_the_workload_has() {
        let mut v = crate::checker::Verdict::default();
        v.tallies.insert("adds-lost".into(), 2);
        v.invariant_breaks = 1;
        let said = counts(&v);
        assert!(!said.contains("lost update"), "{said}");
        assert!(said.contains("1 invariant break, adds-lost 2"), "{said}");
        v.acked_increments = 5;
        assert!(counts(&v).starts_with("0 lost updates"), "{}", counts(&v));
    }

    #[test]
    fn one_fault_is_one_fault() {
        assert_eq!(plural(1, "fault"), "1 fault");
        assert_eq!(plural(3, "fault"), "3 faults");
        assert_eq!(a("invariant break"), "an invariant break");
        assert_eq!(a("lost update"), "a lost update");
    }
}
