//! Robustness: a fault plan's violations measured over many noise seeds, not one.
//!
//! A run is (plan, noise seed). With the plan fixed, the seed changes only noise: madsim's
//! seed (message latencies, the order it polls ready tasks), the models' draws and the
//! workload's timings. The nemesis's own stream is not used when a plan is given. A plan's
//! **robustness** is the share of K noise seeds under which it violates, with its 95% Wilson
//! score interval: a counterexample that holds only under one noise pattern explains
//! nothing, since any extra wake-up (even a 0 ms pause) shifts every later draw of madsim's
//! one global RNG.
//!
//! [`Shrinker`] shrinks a plan while it stays robust; [`Evidence`] is what a reader needs to
//! trust it: the plan's robustness, each fault's robustness without it, and the story of the
//! most typical noise seed.

mod shrink;

pub use shrink::{without_noops, Shrinker};

use crate::checker::FindingKind;
use crate::fault::FaultPlan;
use crate::sweep;
use crate::world::{Builder, Run};
use serde::{Deserialize, Serialize};
use std::ops::Range;

/// K, the noise seeds a robustness is measured over unless told otherwise: 20 seeds cost
/// about 0.2 s on the standard scenario and tell 50% from 10% apart (Wilson intervals
/// [30, 70] and [3, 30]).
pub const NOISE_SEEDS_DEFAULT: u64 = 20;
/// Most noise seeds one measurement runs: a limit on everything.
pub const NOISE_SEEDS_MAX: u64 = 10_000;
/// The kind a custom property's failure is reported under.
pub const PROPERTY_KIND: &str = "property";

/// The noise seeds `first..first + count`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Noise {
    pub first: u64,
    pub count: u64,
}

impl Noise {
    /// `count` seeds from `first`; an error names a count of 0, too many seeds, or an overflow.
    pub fn new(first: u64, count: u64) -> Result<Noise, String> {
        if !(1..=NOISE_SEEDS_MAX).contains(&count) {
            return Err(format!("{count} is outside 1..={NOISE_SEEDS_MAX}"));
        }
        first
            .checked_add(count)
            .ok_or_else(|| format!("{count} seeds from {first} on overflow"))?;
        Ok(Noise { first, count })
    }

    pub fn seeds(&self) -> Range<u64> {
        self.first..self.first + self.count
    }
}

/// One violating run, as shrinking and the story need it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hit {
    pub seed: u64,
    /// The first violation's kind (`lost update`, ...), or [`PROPERTY_KIND`].
    pub kind: String,
    /// When it was found, µs of true time (0 for a property without a finding).
    pub true_us: u64,
}

impl Hit {
    /// The run's first finding that violates, if any (of `kind` only, when given).
    pub fn of_run(run: &Run, kind: Option<FindingKind>) -> Option<Hit> {
        let f = run
            .verdict
            .findings
            .iter()
            .filter(|f| f.kind.is_violation())
            .find(|f| kind.is_none_or(|k| f.kind == k))?;
        Some(Hit {
            seed: run.seed,
            kind: f.kind.as_str().to_string(),
            true_us: f.true_us,
        })
    }
}

/// Whether a run under a builder and a noise seed breaks what was asked: `Some(hit)` when it
/// does. Shared across threads: one measurement runs its seeds in parallel.
pub type Judge<'a> = dyn Fn(&Builder, u64) -> Option<Hit> + Sync + 'a;

/// A judge for the checker's verdict: any violation, or only violations of `kind`.
pub fn violation_judge(kind: Option<FindingKind>) -> impl Fn(&Builder, u64) -> Option<Hit> + Sync {
    move |b: &Builder, seed: u64| Hit::of_run(&b.run_seed(seed), kind)
}

/// In how many of K noise seeds a plan violates.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Robustness {
    pub noise: Noise,
    pub violating: u64,
    /// The 95% Wilson score interval of the share, 0 to 1.
    pub low: f64,
    pub high: f64,
}

impl Robustness {
    pub fn of(noise: Noise, violating: u64) -> Robustness {
        assert!(violating <= noise.count, "more violating seeds than seeds");
        let (low, high) = sweep::wilson(violating, noise.count);
        Robustness {
            noise,
            violating,
            low,
            high,
        }
    }

    /// The share of noise seeds that violate, 0 to 1.
    pub fn rate(&self) -> f64 {
        self.violating as f64 / self.noise.count as f64
    }

    /// `14 of 20 noise seeds (70%, 95% Wilson 48-85%)`.
    pub fn text(&self) -> String {
        format!(
            "{} of {} noise seeds ({:.0}%, 95% Wilson {:.0}-{:.0}%)",
            self.violating,
            self.noise.count,
            self.rate() * 100.0,
            self.low * 100.0,
            self.high * 100.0
        )
    }
}

/// Runs `plan` under every noise seed on `jobs` threads: its robustness and the violating
/// runs' hits, in seed order.
pub fn measure(
    builder: &Builder,
    plan: &FaultPlan,
    noise: Noise,
    jobs: usize,
    judge: &Judge,
) -> (Robustness, Vec<Hit>) {
    let b = builder.clone().plan(plan.clone());
    let hits: Vec<Hit> = sweep::map_seeds(noise.seeds(), jobs, |seed| judge(&b, seed))
        .into_iter()
        .flatten()
        .collect();
    (Robustness::of(noise, hits.len() as u64), hits)
}

/// The most typical violating noise seed: of the most common first-violation kind, the one
/// found nearest that kind's median time (ties: the lower seed). `None` when none violates.
pub fn typical(hits: &[Hit]) -> Option<u64> {
    let mut kinds: Vec<(&str, usize)> = Vec::new();
    for h in hits {
        match kinds.iter_mut().find(|(k, _)| *k == h.kind) {
            Some((_, n)) => *n += 1,
            None => kinds.push((&h.kind, 1)),
        }
    }
    // The first kind seen wins a tie: the order is the seeds'.
    let (kind, _) = kinds
        .iter()
        .fold(None::<(&str, usize)>, |best, &(k, n)| match best {
            Some((_, m)) if m >= n => best,
            _ => Some((k, n)),
        })?;
    let mut times: Vec<u64> = hits
        .iter()
        .filter(|h| h.kind == kind)
        .map(|h| h.true_us)
        .collect();
    times.sort_unstable();
    let median = times[times.len() / 2];
    hits.iter()
        .filter(|h| h.kind == kind)
        .min_by_key(|h| (h.true_us.abs_diff(median), h.seed))
        .map(|h| h.seed)
}

/// Why a plan is believed: its robustness, and each fault's robustness without it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Evidence {
    pub plan: FaultPlan,
    pub robustness: Robustness,
    /// One per fault, in plan order: the plan without that fault.
    pub without: Vec<Robustness>,
    /// The most typical violating noise seed ([`typical`]), if any violates.
    pub typical_seed: Option<u64>,
    /// The first-violation kind of each violating noise seed, with its count.
    pub kinds: Vec<(String, u64)>,
}

impl Evidence {
    /// Measures `plan` and, one by one, the plan without each fault.
    pub fn measure(
        builder: &Builder,
        plan: &FaultPlan,
        noise: Noise,
        jobs: usize,
        judge: &Judge,
    ) -> Evidence {
        let (robustness, hits) = measure(builder, plan, noise, jobs, judge);
        let without = (0..plan.len())
            .map(|i| {
                let mut smaller = plan.clone();
                smaller.faults.remove(i);
                measure(builder, &smaller, noise, jobs, judge).0
            })
            .collect();
        let mut kinds: Vec<(String, u64)> = Vec::new();
        for h in &hits {
            match kinds.iter_mut().find(|(k, _)| *k == h.kind) {
                Some((_, n)) => *n += 1,
                None => kinds.push((h.kind.clone(), 1)),
            }
        }
        Evidence {
            plan: plan.clone(),
            robustness,
            without,
            typical_seed: typical(&hits),
            kinds,
        }
    }

    /// The evidence in words: the robustness, then each fault with its robustness without it.
    pub fn text(&self) -> String {
        let mut out = format!("robustness: violates in {}", self.robustness.text());
        if !self.kinds.is_empty() {
            let kinds: Vec<String> = self.kinds.iter().map(|(k, n)| format!("{k} {n}")).collect();
            out.push_str(&format!(" (first finding: {})", kinds.join(", ")));
        }
        out.push('\n');
        for (f, r) in self.plan.faults.iter().zip(&self.without) {
            out.push_str(&format!(
                "  {}\n    without it: {}\n",
                f.describe(),
                r.text()
            ));
        }
        out
    }
}

/// The violating seeds of `original.noise` a shrunk plan needs: `share` of them, or half the
/// original plan's own rate when `share` is `None` (the default of `explore`, the harness and
/// `compare --shrink`); at least 1 and at most all. Gives the share used and the seeds.
pub fn need(share: Option<f64>, original: &Robustness) -> (f64, u64) {
    let share = share.unwrap_or(original.rate() / 2.0);
    let need = (share * original.noise.count as f64).ceil() as u64;
    (share, need.clamp(1, original.noise.count))
}

/// Shrinks `plan`, whose robustness over its noise seeds is `original`, while it stays robust
/// ([`Shrinker`], needing [`need`] of the seeds), then measures the shrunk plan's
/// [`Evidence`]: the one path `explore`, the harness and `compare --shrink` share. Gives the
/// explanation and the runs it made. A plan that violates under none of its noise seeds is
/// not shrunk (there is nothing to keep).
pub fn explain(
    builder: &Builder,
    plan: &FaultPlan,
    original: Robustness,
    share: Option<f64>,
    jobs: usize,
    judge: &Judge,
) -> (Explanation, u64) {
    let noise = original.noise;
    let (share, need) = need(share, &original);
    let mut runs = 0;
    let shrunk = if original.violating == 0 {
        plan.clone()
    } else {
        let mut shrinker = Shrinker::new(builder, noise, jobs, need, judge);
        let shrunk = shrinker.shrink(plan);
        runs += shrinker.runs();
        shrunk
    };
    let evidence = Evidence::measure(builder, &shrunk, noise, jobs, judge);
    runs += noise.count * (1 + shrunk.len() as u64);
    let explanation = Explanation {
        original,
        faults_before: plan.len(),
        share,
        need,
        evidence,
    };
    (explanation, runs)
}

/// What `explore --save` keeps beside the experiment, so that `replay` can measure it again.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Explanation {
    /// The robustness of the plan before shrinking, over the same noise seeds.
    pub original: Robustness,
    /// Faults of the plan before shrinking.
    pub faults_before: usize,
    /// The share of noise seeds the shrinking kept the plan violating in, and that as seeds.
    pub share: f64,
    pub need: u64,
    /// The shrunk plan's robustness and each fault's robustness without it.
    pub evidence: Evidence,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hit(seed: u64, kind: &str, true_us: u64) -> Hit {
        Hit {
            seed,
            kind: kind.into(),
            true_us,
        }
    }

    #[test]
    fn noise_rejects_zero_and_overflow() {
        assert!(Noise::new(0, 0).is_err());
        assert!(Noise::new(u64::MAX, 1).is_err());
        assert!(Noise::new(0, NOISE_SEEDS_MAX + 1).is_err());
        assert_eq!(Noise::new(5, 3).unwrap().seeds(), 5..8);
    }

    #[test]
    fn typical_is_the_median_of_the_commonest_kind() {
        let hits = [
            hit(1, "lost update", 9),
            hit(2, "token-order break", 5),
            hit(3, "token-order break", 7),
            hit(4, "token-order break", 100),
        ];
        assert_eq!(typical(&hits), Some(3));
        assert_eq!(typical(&[]), None);
    }

    #[test]
    fn need_is_half_the_rate_by_default_and_at_least_one() {
        let r = Robustness::of(Noise::new(0, 20).unwrap(), 14);
        assert_eq!(need(None, &r), (0.35, 7));
        assert_eq!(need(Some(0.0), &r).1, 1);
        assert_eq!(need(Some(1.0), &r).1, 20);
    }

    #[test]
    fn robustness_text_gives_the_count_and_interval() {
        let r = Robustness::of(Noise::new(0, 20).unwrap(), 14);
        assert!(
            r.text().starts_with("14 of 20 noise seeds (70%"),
            "{}",
            r.text()
        );
    }
}
