//! The search: proptest draws cases, the most robust violating one is shrunk on robustness.

use super::{case_strategy, Case, Space};
use crate::fault::FaultPlan;
use crate::robust::{self, Evidence, Noise, Robustness};
use crate::scenario::Scenario;
use crate::storage::Fencing;
use crate::world;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use serde::{Deserialize, Serialize};
use std::cell::RefCell;

/// Violating cases measured before the most robust is shrunk: each costs K runs.
pub const CANDIDATES_MAX: usize = 16;
/// A candidate that violates in this share of its noise seeds ends the search at once: with
/// the default share (half the original's rate) the shrunk plan then violates in at least
/// 47.5% of the noise seeds, 50% of 20.
const ROBUST_ENOUGH: f64 = 0.95;

/// How robust the shrunk plan must stay, and over which noise.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// K: noise seeds per measurement (from the case's own seed on).
    pub noise_seeds: u64,
    /// The share of the K seeds a shrunk plan must still violate in; `None`: half the
    /// original plan's own rate.
    pub share: Option<f64>,
    /// Threads a measurement runs its seeds on.
    pub jobs: usize,
}

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            noise_seeds: robust::NOISE_SEEDS_DEFAULT,
            share: None,
            jobs: crate::sweep::default_jobs(),
        }
    }
}

impl Settings {
    /// Checks K and the share; the message names the flag.
    pub fn validate(&self) -> Result<(), String> {
        Noise::new(0, self.noise_seeds).map_err(|e| format!("--noise-seeds: {e}"))?;
        match self.share {
            Some(s) if !(0.0..=1.0).contains(&s) => {
                Err(format!("--robust-share {s} is outside 0..=1"))
            }
            _ => Ok(()),
        }
    }

    /// The violating seeds a plan needs, of `noise.count`, given the original's robustness
    /// ([`robust::need`]).
    pub fn need(&self, original: &Robustness) -> (f64, u64) {
        robust::need(self.share, original)
    }
}

/// What an exploration found.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Exploration {
    /// The fence's name.
    pub fencing: String,
    pub found: bool,
    /// Cases proptest drew.
    pub cases: u64,
    /// Runs in all: the cases, their measurements and the shrinking.
    pub runs: u64,
    /// Faults in the case that was shrunk (the most robust violating case drawn).
    pub faults_before: usize,
    /// Faults in the shrunk plan.
    pub faults_after: usize,
    /// The case that was shrunk.
    pub case: Option<Case>,
    /// Its scenario (the base with the case's knobs), which the shrunk plan runs on.
    pub scenario: Option<Scenario>,
    /// Its robustness, over the noise seeds from its own seed on.
    pub original: Option<Robustness>,
    /// The share of noise seeds a shrunk plan had to keep violating in, and that as seeds.
    pub share: f64,
    pub need: u64,
    /// The shrunk plan.
    pub plan: Option<FaultPlan>,
    /// The shrunk plan's robustness, each fault's robustness without it, the typical seed.
    pub evidence: Option<Evidence>,
    pub wall_s: f64,
}

/// Searches for a case whose run violates under `fencing`, and shrinks it on robustness with
/// the default [`Settings`].
pub fn explore(base: &Scenario, fencing: Fencing, config: Config, space: &Space) -> Exploration {
    let builder = world::Builder::new(base.clone()).fencing(fencing);
    explore_with(&builder, config, space, &Settings::default())
}

/// [`explore`] with any builder and settings: the builder's scenario is the base the cases
/// vary, and its fence, recipe and workload run every case.
pub fn explore_with(
    builder: &world::Builder,
    config: Config,
    space: &Space,
    settings: &Settings,
) -> Exploration {
    let started = std::time::Instant::now();
    let judge = robust::violation_judge(None);
    let (cases, candidates) = candidates(builder, config, space, settings, &judge);
    let mut runs = cases + candidates.len() as u64 * settings.noise_seeds;
    // The most robust; the first drawn wins a tie.
    let best = candidates
        .into_iter()
        .fold(None::<(Case, Robustness)>, |best, c| match &best {
            Some((_, r)) if r.violating >= c.1.violating => best,
            _ => Some(c),
        });
    let mut found = Exploration {
        fencing: builder.fence_name().to_string(),
        found: best.is_some(),
        cases,
        runs,
        faults_before: 0,
        faults_after: 0,
        case: None,
        scenario: None,
        original: None,
        share: settings.share.unwrap_or(0.0),
        need: 0,
        plan: None,
        evidence: None,
        wall_s: 0.0,
    };
    if let Some((case, original)) = best {
        let scenario = case.scenario(builder.scenario());
        let b = builder.clone().with_scenario(scenario.clone());
        let (explained, shrink_runs) = robust::explain(
            &b,
            &case.plan(),
            original,
            settings.share,
            settings.jobs,
            &judge,
        );
        runs += shrink_runs;
        let plan = explained.evidence.plan.clone();
        let (share, need, evidence) = (explained.share, explained.need, explained.evidence);
        found = Exploration {
            runs,
            faults_before: case.faults.len(),
            faults_after: plan.len(),
            case: Some(case),
            scenario: Some(scenario),
            original: Some(explained.original),
            share,
            need,
            plan: Some(plan),
            evidence: Some(evidence),
            ..found
        };
    }
    found.wall_s = started.elapsed().as_secs_f64();
    found
}

/// Draws cases until one violates in [`ROBUST_ENOUGH`] of its noise seeds, [`CANDIDATES_MAX`]
/// violate, or the cases run out: the cases drawn, and each violating one with its robustness.
fn candidates(
    builder: &world::Builder,
    config: Config,
    space: &Space,
    settings: &Settings,
    judge: &robust::Judge,
) -> (u64, Vec<(Case, Robustness)>) {
    let cases = std::cell::Cell::new(0u64);
    let found = RefCell::new(Vec::new());
    let mut runner = TestRunner::new(config);
    let strategy = case_strategy(builder.scenario().duration_ms, space);
    // The outcome is in `found`: a failure only stops the search (and, with a regression
    // file, remembers the case).
    let _ = runner.run(&strategy, |case| {
        cases.set(cases.get() + 1);
        if !case.run_with(builder).verdict.violates() {
            return Ok(());
        }
        let noise = Noise::new(case.seed, settings.noise_seeds).expect("validated settings");
        let b = builder
            .clone()
            .with_scenario(case.scenario(builder.scenario()));
        let (r, _) = robust::measure(&b, &case.plan(), noise, settings.jobs, judge);
        let rate = r.rate();
        found.borrow_mut().push((case, r));
        if rate >= ROBUST_ENOUGH || found.borrow().len() >= CANDIDATES_MAX {
            return Err(TestCaseError::fail(format!(
                "violates in {:.0}% of noise",
                rate * 100.0
            )));
        }
        Ok(())
    });
    (cases.get(), found.into_inner())
}

/// A proptest configuration: `cases` to try, a fixed search seed (so an exploration is
/// reproducible), and optionally a regression file that remembers failures forever.
/// proptest's own shrinking is off: it shrinks on one seed, which is chaos; the shrinking
/// that counts is on robustness ([`crate::robust::Shrinker`]).
pub fn config(cases: u32, search_seed: u64, regressions: Option<&'static str>) -> Config {
    use proptest::test_runner::{FileFailurePersistence, RngAlgorithm, RngSeed};
    Config {
        cases,
        max_shrink_iters: 0,
        failure_persistence: Some(Box::new(match regressions {
            Some(path) => FileFailurePersistence::Direct(path),
            None => FileFailurePersistence::Off,
        })),
        rng_algorithm: RngAlgorithm::ChaCha,
        rng_seed: RngSeed::Fixed(search_seed),
        ..Config::default()
    }
}
