//! Many seeds, on every core: each seed is one world with the plan its nemesis draws.
//!
//! Worlds are independent madsim runtimes, one at a time per OS thread; threads exist only
//! outside the simulations. Results are ordered by seed, so a summary does not depend on how
//! seeds were spread over threads.

use crate::label;
use crate::scenario::Scenario;
use crate::storage::Fencing;
use crate::world;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Instant;

/// Violating seeds kept as examples per summary.
const EXAMPLES_MAX: usize = 10;

/// The 95% Wilson score interval of `k` successes in `n` trials (0..1 both ends).
///
/// The interval always holds the observed rate `k / n`: at 0 of n its lower end is exactly
/// 0.0 and at n of n its upper end exactly 1.0. Why by hand: in floating point
/// `centre - half` at k = 0 comes out as a few 1e-18 instead of 0 (the formula cancels
/// exactly only on paper), which put the lower bound above a rate of 0.0.
pub fn wilson(k: u64, n: u64) -> (f64, f64) {
    if n == 0 {
        return (0.0, 1.0);
    }
    let z = 1.959_963_984_540_054_f64;
    let (kf, nf) = (k as f64, n as f64);
    let p = kf / nf;
    let denom = 1.0 + z * z / nf;
    let centre = (p + z * z / (2.0 * nf)) / denom;
    let half = z * (p * (1.0 - p) / nf + z * z / (4.0 * nf * nf)).sqrt() / denom;
    let low = if k == 0 {
        0.0
    } else {
        (centre - half).clamp(0.0, p)
    };
    let high = if k >= n {
        1.0
    } else {
        (centre + half).clamp(p, 1.0)
    };
    (low, high)
}

/// The seeds of shard `index` (0-based) of `count` over `seeds`: contiguous blocks.
pub fn shard(seeds: Range<u64>, index: u64, count: u64) -> Result<Range<u64>, String> {
    if count == 0 || index >= count {
        return Err(format!("shard {index}/{count}: need 0 <= I < N"));
    }
    let n = seeds.end - seeds.start;
    let at = |i: u64| seeds.start + (n as u128 * i as u128 / count as u128) as u64;
    Ok(at(index)..at(index + 1))
}

/// Most seeds one sweep runs: a limit on everything.
pub const SEEDS_MAX: u64 = 100_000_000;

/// What a sweep keeps of one seed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeedResult {
    pub seed: u64,
    pub violates: bool,
    pub lost_updates: u64,
    pub token_order_breaks: u64,
    pub stale_acceptances: u64,
    pub false_rejections: u64,
    pub fenced_refusals: u64,
    pub anomalies: u64,
    pub history_hash: u64,
    pub messages: u64,
    pub simulated_ms: u64,
    pub faults: usize,
    pub faults_outside: usize,
    /// The workload's own counts (the set's acknowledged and lost adds); absent when empty.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tallies: BTreeMap<String, u64>,
}

/// Runs one seed under one of fencelab's policies: draws its plan, runs the world, keeps the
/// counts.
pub fn run_seed(scenario: &Scenario, fencing: Fencing, seed: u64) -> SeedResult {
    let builder = world::Builder::new(scenario.clone()).fencing(fencing);
    seed_result(&builder.run_seed(seed))
}

/// What a sweep keeps of a run.
pub fn seed_result(run: &world::Run) -> SeedResult {
    let seed = run.seed;
    let v = &run.verdict;
    SeedResult {
        seed,
        violates: v.violates(),
        lost_updates: v.lost_updates,
        token_order_breaks: v.token_order_breaks,
        stale_acceptances: v.stale_acceptances,
        false_rejections: v.false_rejections,
        fenced_refusals: v.fenced_refusals,
        anomalies: v.anomalies.len() as u64,
        history_hash: run.history_hash(),
        messages: run.messages,
        simulated_ms: run.simulated_ms,
        faults: run.faults.len(),
        faults_outside: run
            .faults
            .iter()
            .filter(|f| f.assumption == label::Assumption::Outside)
            .count(),
        tallies: v.tallies.clone(),
    }
}

/// `f(seed)` for every seed on `jobs` threads, in seed order. Each thread runs whole worlds:
/// no thread ever enters a run another started, so runs stay deterministic.
pub fn map_seeds<T: Send>(seeds: Range<u64>, jobs: usize, f: impl Fn(u64) -> T + Sync) -> Vec<T> {
    assert!(seeds.end - seeds.start <= SEEDS_MAX, "too many seeds");
    let next = AtomicU64::new(seeds.start);
    let results = Mutex::new(Vec::with_capacity((seeds.end - seeds.start) as usize));
    std::thread::scope(|scope| {
        for _ in 0..jobs.max(1) {
            scope.spawn(|| loop {
                let seed = next.fetch_add(1, Ordering::Relaxed);
                if seed >= seeds.end {
                    return;
                }
                let r = f(seed);
                results.lock().expect("results lock").push((seed, r));
            });
        }
    });
    let mut results = results.into_inner().expect("results lock");
    results.sort_by_key(|(seed, _)| *seed);
    results.into_iter().map(|(_, r)| r).collect()
}

/// Runs `seeds` on `jobs` threads; `progress` is called after each seed (from any thread).
pub fn sweep(
    scenario: &Scenario,
    fencing: Fencing,
    seeds: Range<u64>,
    jobs: usize,
    progress: &(dyn Fn(&SeedResult) + Sync),
) -> Vec<SeedResult> {
    let builder = world::Builder::new(scenario.clone()).fencing(fencing);
    sweep_with(&builder, seeds, jobs, progress)
}

/// [`sweep`] of any builder (your fence, recipe or workload): each seed runs under the
/// builder's plan, or the one the nemesis draws for it.
pub fn sweep_with(
    builder: &world::Builder,
    seeds: Range<u64>,
    jobs: usize,
    progress: &(dyn Fn(&SeedResult) + Sync),
) -> Vec<SeedResult> {
    map_seeds(seeds, jobs, |seed| {
        let r = seed_result(&builder.run_seed(seed));
        progress(&r);
        r
    })
}

/// Named counts summed.
fn sum_tallies<'a>(all: impl Iterator<Item = &'a BTreeMap<String, u64>>) -> BTreeMap<String, u64> {
    let mut sum = BTreeMap::new();
    for t in all {
        for (k, v) in t {
            *sum.entry(k.clone()).or_insert(0) += v;
        }
    }
    sum
}

/// The figures of one policy over many seeds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    pub fencing: Fencing,
    pub seeds: u64,
    pub violating_seeds: u64,
    pub lost_updates: u64,
    pub token_order_breaks: u64,
    pub stale_acceptances: u64,
    pub false_rejections: u64,
    pub anomalies: u64,
    /// Seeds whose plan had at least one fault, and the faults of all plans (scripted and
    /// drawn): 0 and 0 with `--nemesis off` and no scripted faults.
    #[serde(default)]
    pub seeds_with_faults: u64,
    #[serde(default)]
    pub faults: u64,
    /// Violating seeds over seeds, with its 95% Wilson score interval.
    pub rate: f64,
    pub rate_low: f64,
    pub rate_high: f64,
    pub seeds_per_sec: f64,
    /// Wall time the sweep took, seconds.
    pub wall_s: f64,
    /// Total simulated seconds of all runs.
    pub simulated_s: f64,
    /// Total network messages of all runs.
    pub messages: u64,
    /// Simulated seconds per wall second, over all threads.
    pub realtime_x: f64,
    pub messages_per_seed: f64,
    /// The first few violating seeds, to replay.
    pub violating_examples: Vec<u64>,
    /// The workload's own counts, summed over the seeds; absent when empty.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tallies: BTreeMap<String, u64>,
}

impl Summary {
    pub fn of(fencing: Fencing, results: &[SeedResult], wall_s: f64) -> Summary {
        let sum = |f: fn(&SeedResult) -> u64| results.iter().map(f).sum::<u64>();
        let mut s = Summary {
            fencing,
            seeds: results.len() as u64,
            violating_seeds: results.iter().filter(|r| r.violates).count() as u64,
            lost_updates: sum(|r| r.lost_updates),
            token_order_breaks: sum(|r| r.token_order_breaks),
            stale_acceptances: sum(|r| r.stale_acceptances),
            false_rejections: sum(|r| r.false_rejections),
            anomalies: sum(|r| r.anomalies),
            seeds_with_faults: results.iter().filter(|r| r.faults > 0).count() as u64,
            faults: sum(|r| r.faults as u64),
            rate: 0.0,
            rate_low: 0.0,
            rate_high: 0.0,
            seeds_per_sec: 0.0,
            wall_s,
            simulated_s: sum(|r| r.simulated_ms) as f64 / 1000.0,
            messages: sum(|r| r.messages),
            realtime_x: 0.0,
            messages_per_seed: 0.0,
            violating_examples: results
                .iter()
                .filter(|r| r.violates)
                .take(EXAMPLES_MAX)
                .map(|r| r.seed)
                .collect(),
            tallies: sum_tallies(results.iter().map(|r| &r.tallies)),
        };
        s.derive();
        s
    }

    /// Recomputes the ratios from the counts.
    fn derive(&mut self) {
        let wall_s = self.wall_s.max(1e-9);
        (self.rate_low, self.rate_high) = wilson(self.violating_seeds, self.seeds);
        self.rate = self.violating_seeds as f64 / self.seeds.max(1) as f64;
        self.seeds_per_sec = self.seeds as f64 / wall_s;
        self.realtime_x = self.simulated_s / wall_s;
        self.messages_per_seed = self.messages as f64 / self.seeds.max(1) as f64;
    }

    /// Combines shards of one policy into the summary of their union. Counts add up exactly;
    /// speed is seeds over the shards' summed wall time (the throughput per machine).
    pub fn merge(parts: &[Summary]) -> Result<Summary, String> {
        let first = parts.first().ok_or("nothing to merge")?;
        if let Some(p) = parts.iter().find(|p| p.fencing != first.fencing) {
            return Err(format!("cannot merge {} with {}", first.fencing, p.fencing));
        }
        let sum = |f: fn(&Summary) -> u64| parts.iter().map(f).sum::<u64>();
        let mut examples: Vec<u64> = parts
            .iter()
            .flat_map(|p| p.violating_examples.iter().copied())
            .collect();
        examples.sort_unstable();
        examples.dedup();
        examples.truncate(EXAMPLES_MAX);
        let mut s = Summary::of(first.fencing, &[], 0.0);
        s.seeds = sum(|p| p.seeds);
        s.violating_seeds = sum(|p| p.violating_seeds);
        s.lost_updates = sum(|p| p.lost_updates);
        s.token_order_breaks = sum(|p| p.token_order_breaks);
        s.stale_acceptances = sum(|p| p.stale_acceptances);
        s.false_rejections = sum(|p| p.false_rejections);
        s.anomalies = sum(|p| p.anomalies);
        s.seeds_with_faults = sum(|p| p.seeds_with_faults);
        s.faults = sum(|p| p.faults);
        s.wall_s = parts.iter().map(|p| p.wall_s).sum();
        s.simulated_s = parts.iter().map(|p| p.simulated_s).sum();
        s.messages = sum(|p| p.messages);
        s.violating_examples = examples;
        s.tallies = sum_tallies(parts.iter().map(|p| &p.tallies));
        s.derive();
        Ok(s)
    }

    /// The counts, without timings: what must agree between a sharded and a whole run.
    pub fn counts(&self) -> [u64; 9] {
        [
            self.seeds,
            self.violating_seeds,
            self.lost_updates,
            self.token_order_breaks,
            self.stale_acceptances,
            self.false_rejections,
            self.anomalies,
            self.seeds_with_faults,
            self.faults,
        ]
    }

    /// The one-line form tools read.
    pub fn line(&self) -> String {
        format!(
            "fencing={} seeds={} violating_seeds={} lost_updates={} token_order_breaks={} stale_acceptances={} false_rejections={}",
            self.fencing,
            self.seeds,
            self.violating_seeds,
            self.lost_updates,
            self.token_order_breaks,
            self.stale_acceptances,
            self.false_rejections
        )
    }
}

/// Runs and summarizes, timing the wall clock (outside the simulations).
pub fn sweep_summary(
    scenario: &Scenario,
    fencing: Fencing,
    seeds: Range<u64>,
    jobs: usize,
) -> (Summary, Vec<SeedResult>) {
    let start = Instant::now();
    let results = sweep(scenario, fencing, seeds, jobs, &|_| {});
    let summary = Summary::of(fencing, &results, start.elapsed().as_secs_f64());
    (summary, results)
}

/// Threads to use by default: every core.
pub fn default_jobs() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Peak resident memory of this process so far, in MB (Linux; `None` elsewhere).
pub fn peak_rss_mb() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let kb: f64 = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    Some(kb / 1024.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wilson_matches_reference_values() {
        // Reference: 0 of 10 -> [0, 0.2775]; 5 of 10 -> [0.2366, 0.7634]; 1000 of 1000 -> [0.99617, 1].
        let close = |a: f64, b: f64| (a - b).abs() < 1e-4;
        let (l, h) = wilson(0, 10);
        assert!(close(l, 0.0) && close(h, 0.2775), "{l} {h}");
        let (l, h) = wilson(5, 10);
        assert!(close(l, 0.2366) && close(h, 0.7634), "{l} {h}");
        let (l, h) = wilson(1000, 1000);
        assert!(close(l, 0.99617) && close(h, 1.0), "{l} {h}");
        assert_eq!(wilson(0, 0), (0.0, 1.0));
    }

    #[test]
    fn wilson_is_exact_at_the_ends_and_always_holds_the_rate() {
        for n in [1u64, 7, 1000, 100_000] {
            // Exact, not close: 0 of n starts at 0.0, n of n ends at 1.0.
            let (low, high) = wilson(0, n);
            assert_eq!(low, 0.0, "0 of {n}");
            assert!(high > 0.0 && high < 1.0, "0 of {n}: {high}");
            let (low, high) = wilson(n, n);
            assert_eq!(high, 1.0, "{n} of {n}");
            assert!(low > 0.0 && low < 1.0, "{n} of {n}: {low}");
            // Every k in between (a sample of them for large n): low <= k/n <= high.
            let step = (n / 500).max(1);
            let ks = (0..=n).step_by(step as usize).chain([1, n - 1, n]);
            for k in ks.filter(|&k| k <= n) {
                let (low, high) = wilson(k, n);
                let p = k as f64 / n as f64;
                assert!(
                    0.0 <= low && low <= p && p <= high && high <= 1.0,
                    "{k} of {n}: [{low}, {high}] does not hold {p}"
                );
                if 0 < k && k < n {
                    assert!(low < p && p < high, "{k} of {n}: [{low}, {high}] is empty");
                }
            }
        }
    }

    #[test]
    fn shards_partition_the_range() {
        let mut covered = vec![];
        for i in 0..7 {
            covered.extend(shard(10..1013, i, 7).unwrap());
        }
        assert_eq!(covered, (10..1013).collect::<Vec<_>>());
        assert!(shard(0..10, 3, 3).is_err());
        assert!(shard(0..10, 0, 0).is_err());
    }
}
