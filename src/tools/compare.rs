//! `fencelab compare`: every scheme of the [catalogue](crate::schemes::catalogue) against
//! every fault family, on the same seeds.
//!
//! A family is one kind of fault alone (a [`NemesisConfig`] with only that kind), plus `all`,
//! the standard nemesis. For a family and a seed the nemesis draws one plan, and every scheme
//! runs that plan: rows differ only by their scheme. A cell counts the seeds whose run
//! violates (a lost update, a token-order break or a broken workload invariant), with the 95%
//! Wilson interval, and sums the false rejections and stale acceptances of its runs.
//!
//! Cost: schemes × families × seeds worlds. The four policies × 7 families × 200 seeds are
//! 5,600 worlds: 17 s on 2 shared cores (~330 worlds/s). [`shrink`] adds, per scheme, a few
//! hundred measurements of K runs at most (robust shrinking, [`crate::robust::explain`]).
//!
//! Leader failover has no column yet: the simulated etcd is one member. It comes with the etcd
//! cluster.

use crate::fault::FaultPlan;
use crate::lock::ServiceKind;
use crate::nemesis::NemesisConfig;
use crate::nemesis::{self};
use crate::robust::{self, Explanation, Noise};
use crate::scenario::Scenario;
use crate::schemes::Scheme;
use crate::svg::{svg, text_width_px, xml_escape};
use crate::sweep::{self, SeedResult};
use crate::world::Builder;
use serde::{Deserialize, Serialize};
use std::ops::Range;

/// Most seeds per cell: a limit on everything.
pub const SEEDS_MAX: u64 = 100_000;

/// A column of the comparison: a kind of fault, alone.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Family {
    pub name: &'static str,
    /// One line: what its plans hold.
    pub about: &'static str,
    pub nemesis: NemesisConfig,
    /// The one lock service whose nodes its faults strike, if it is tied to one.
    #[serde(skip)]
    pub service: Option<ServiceKind>,
}

impl Family {
    /// The base scenario under this family's nemesis.
    pub fn scenario(&self, base: &Scenario) -> Scenario {
        Scenario {
            nemesis: self.nemesis.clone(),
            ..base.clone()
        }
    }
}

/// Every family, in the order the comparison shows them. Sizes are the standard nemesis'
/// ([`NemesisConfig::standard`]) unless said otherwise; each `*_max` is drawn from 0 up, so
/// some seeds of a family have no fault at all.
pub fn families() -> Vec<Family> {
    vec![
        client_pause(),
        clock_skew(),
        delayed_packet(),
        partition(),
        client_crash(),
        etcd_stall(),
        leader_failover(),
        all(),
        redis_stall(),
        redis_clock(),
        redis_restart(),
        zk_stall(),
    ]
}

/// The families a comparison on `service` runs by default: those not tied to another service.
/// The client-side families are the same on every service, so their columns compare across
/// services.
pub fn families_for(service: ServiceKind) -> Vec<Family> {
    let mut fitting: Vec<Family> = families()
        .into_iter()
        .filter(|f| f.service.is_none_or(|s| s == service))
        .collect();
    // `all` closes the table, as it always has.
    let all_at = fitting.iter().position(|f| f.name == "all");
    if let Some(i) = all_at {
        let all = fitting.remove(i);
        fitting.push(all);
    }
    fitting
}

/// A Redis node paused (SIGSTOP) 0.5 to 3 s, or every node: its wall clock runs on, so on
/// resume every key whose deadline passed is gone at the first access.
fn redis_stall() -> Family {
    Family {
        name: "redis-stall",
        about: "a Redis node stalls (paused), or all of them",
        nemesis: only(NemesisConfig {
            etcd_stalls_max: 1,
            ..NemesisConfig::none()
        }),
        service: Some(ServiceKind::Redlock),
    }
}

/// Every Redis node's wall clock skewed, with up to two steps of up to 2 s each way and drift:
/// Kleppmann's clock jump, at random. Redis stores expiries as absolute wall-clock times.
fn redis_clock() -> Family {
    Family {
        name: "redis-clock",
        about: "Redis nodes' wall clocks stepped and drifting",
        nemesis: only(NemesisConfig {
            redis_skew_permille: 1_000,
            steps_max: 2,
            step_ms_max: 2_000,
            drift_ppm_max: 500,
            ..NemesisConfig::none()
        }),
        service: Some(ServiceKind::Redlock),
    }
}

/// A Redis node crashes and restarts 0.5 to 3 s later with what its persistence mode kept
/// (the scenario's `[redis] persistence`; none by default).
fn redis_restart() -> Family {
    Family {
        name: "redis-restart",
        about: "a Redis node crashes and restarts with what it persisted",
        nemesis: only(NemesisConfig {
            redis_crashes_max: 1,
            ..NemesisConfig::none()
        }),
        service: Some(ServiceKind::Redlock),
    }
}

/// The ZooKeeper server paused (SIGSTOP) 0.5 to 3 s, or every server: its tracker expires
/// nothing while paused and catches up on resume, so a session whose bucket passed meanwhile
/// expires at once unless one of its packets is read first.
fn zk_stall() -> Family {
    Family {
        name: "zk-stall",
        about: "a ZooKeeper server stalls (paused), or all of them",
        nemesis: only(NemesisConfig {
            etcd_stalls_max: 1,
            ..NemesisConfig::none()
        }),
        service: Some(ServiceKind::Zk),
    }
}

/// The standard nemesis' sizes, only the kinds `n` turns on.
fn only(n: NemesisConfig) -> NemesisConfig {
    NemesisConfig { enabled: true, ..n }
}

/// Timed and aimed GC pauses of a client, 0.5 to 4 s ([`NemesisConfig::pauses`]): a holder
/// stops past its lease, Kleppmann's first story.
fn client_pause() -> Family {
    Family {
        name: "client-pause",
        about: "GC pauses of a client, at a random time and just before a write",
        nemesis: NemesisConfig::pauses(),
        service: None,
    }
}

/// As [`NemesisConfig::skew`]: drift, offsets and steps of every client's clock, with
/// keepalives cut by client–etcd partitions (1 to 5 s). Skew alone changes nothing a scheme
/// judges by etcd's clock (200 seeds of it alone break nothing without a fence): a lease that
/// expires while its holder's clock is wrong is what a scheme reading the client's own clock
/// (a lease check before writing) has to judge. Without such a check, this column's
/// violations come from the partitions.
fn clock_skew() -> Family {
    Family {
        name: "clock-skew",
        about: "skewed client clocks (drift, offset, steps) and client-etcd partitions",
        nemesis: NemesisConfig::skew(),
        service: None,
    }
}

/// A storage request held in the network just before a write, 1 to 5 s: Kleppmann's delayed
/// packet.
fn delayed_packet() -> Family {
    Family {
        name: "delayed-packet",
        about: "a storage request held in the network just before a write",
        nemesis: only(NemesisConfig {
            holds_max: 1,
            ..NemesisConfig::none()
        }),
        service: None,
    }
}

/// A partition between two random nodes, and one of a client from etcd only (its keepalives
/// stop while its storage link works), 0.2 to 3 s.
fn partition() -> Family {
    Family {
        name: "partition",
        about: "partitions between two nodes, and of a client from etcd",
        nemesis: only(NemesisConfig {
            partitions_max: 1,
            etcd_partitions_max: 1,
            ..NemesisConfig::none()
        }),
        service: None,
    }
}

/// A client crash, restarted 0.5 to 3 s later with a new session. A crashed holder sends
/// nothing more and its lease dies with it, so crashes alone break no scheme (up to 16 per run
/// broke none of 200 seeds without a fence): the column is a control, and shows what a scheme
/// refuses when nothing is stale.
fn client_crash() -> Family {
    Family {
        name: "client-crash",
        about: "a client crashes and restarts",
        nemesis: only(NemesisConfig {
            crashes_max: 1,
            ..NemesisConfig::none()
        }),
        service: None,
    }
}

/// The etcd node paused 0.5 to 3 s: it serves and scans nothing while its clock runs on, so
/// on resume a lease whose deadline passed is gone though its holder kept renewing.
fn etcd_stall() -> Family {
    Family {
        name: "etcd-stall",
        about: "etcd stalls (its node paused)",
        nemesis: only(NemesisConfig {
            etcd_stalls_max: 1,
            ..NemesisConfig::none()
        }),
        service: Some(ServiceKind::Etcd),
    }
}

/// The etcd leader alone paused 2 to 6 s: past the 1-2 s election timeout another member is
/// elected and extends every lease (Promote); clients talking to the paused leader time out
/// and move to another member. With one member it is an etcd stall.
fn leader_failover() -> Family {
    Family {
        name: "leader-failover",
        about: "the etcd leader paused past an election: another member takes over",
        nemesis: only(NemesisConfig {
            leader_pauses_max: 1,
            ..NemesisConfig::none()
        }),
        service: Some(ServiceKind::Etcd),
    }
}

/// Every kind at once: the standard scenario's nemesis, as in `fencelab sweep`.
fn all() -> Family {
    Family {
        name: "all",
        about: "the standard nemesis: every kind of fault at once",
        nemesis: NemesisConfig::standard(),
        service: None,
    }
}

/// The families of a comma-separated list, in its order (`all` names the family, not every
/// family).
pub fn families_named(list: &str) -> Result<Vec<Family>, String> {
    let every = families();
    let mut picked: Vec<Family> = Vec::new();
    for name in list.split(',').map(str::trim) {
        let Some(f) = every.iter().find(|f| f.name == name) else {
            let names: Vec<&str> = every.iter().map(|f| f.name).collect();
            return Err(format!(
                "unknown family '{name}' (expected one of: {})",
                names.join(", ")
            ));
        };
        if picked.iter().any(|p| p.name == name) {
            return Err(format!("family '{name}' is named twice"));
        }
        picked.push(f.clone());
    }
    Ok(picked)
}

/// A row or a column, as the JSON names it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Heading {
    pub name: String,
    pub about: String,
}

/// One scheme under one family.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Cell {
    pub scheme: String,
    pub family: String,
    /// Violating seeds.
    pub k: u64,
    /// Seeds.
    pub n: u64,
    /// k / n, with its 95% Wilson interval.
    pub rate: f64,
    pub low: f64,
    pub high: f64,
    pub lost_updates: u64,
    pub token_order_breaks: u64,
    pub false_rejections: u64,
    pub stale_acceptances: u64,
    pub first_violating_seed: Option<u64>,
}

impl Cell {
    fn of(scheme: &str, family: &str, results: &[&SeedResult]) -> Cell {
        let sum = |f: fn(&SeedResult) -> u64| results.iter().map(|r| f(r)).sum::<u64>();
        let k = results.iter().filter(|r| r.violates).count() as u64;
        let n = results.len() as u64;
        let (low, high) = sweep::wilson(k, n);
        Cell {
            scheme: scheme.to_string(),
            family: family.to_string(),
            k,
            n,
            rate: k as f64 / n.max(1) as f64,
            low,
            high,
            lost_updates: sum(|r| r.lost_updates),
            token_order_breaks: sum(|r| r.token_order_breaks),
            false_rejections: sum(|r| r.false_rejections),
            stale_acceptances: sum(|r| r.stale_acceptances),
            first_violating_seed: results.iter().find(|r| r.violates).map(|r| r.seed),
        }
    }
}

/// The whole comparison: what `compare --json` prints.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Comparison {
    /// The first seed and how many: every cell ran `seed_start..seed_start + seeds`.
    pub seed_start: u64,
    pub seeds: u64,
    pub workload: String,
    pub schemes: Vec<Heading>,
    pub families: Vec<Heading>,
    /// Row by row: every family of the first scheme, then of the second, ...
    pub cells: Vec<Cell>,
    /// Filled by [`shrink`] when asked: one per scheme that violated somewhere.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub shrunk: Vec<Shrunk>,
}

impl Comparison {
    pub fn cell(&self, scheme: &str, family: &str) -> Option<&Cell> {
        self.cells
            .iter()
            .find(|c| c.scheme == scheme && c.family == family)
    }

    /// The cell to shrink for a scheme: its first violating seed under `all`, else under the
    /// first family (in column order) with a violation.
    pub fn to_shrink(&self, scheme: &str) -> Option<(&str, u64)> {
        fn first(c: &Cell) -> Option<(&str, u64)> {
            c.first_violating_seed.map(|s| (c.family.as_str(), s))
        }
        let row = || self.cells.iter().filter(move |c| c.scheme == scheme);
        row()
            .find(|c| c.family == "all")
            .and_then(first)
            .or_else(|| row().find_map(first))
    }
}

/// Runs every scheme under every family for `seeds` on `jobs` threads. `progress` is called
/// after each (family, seed), from any thread.
pub fn compare(
    base: &Scenario,
    schemes: &[Scheme],
    families: &[Family],
    seeds: Range<u64>,
    jobs: usize,
    progress: &(dyn Fn() + Sync),
) -> Result<Comparison, String> {
    let n = seeds.end.saturating_sub(seeds.start);
    if !(1..=SEEDS_MAX).contains(&n) {
        return Err(format!("seeds: {n} is outside 1..={SEEDS_MAX}"));
    }
    if schemes.is_empty() || families.is_empty() {
        return Err("nothing to compare: no scheme or no family".into());
    }
    // By family, then seed, then scheme.
    let mut runs: Vec<Vec<Vec<SeedResult>>> = Vec::new();
    for family in families {
        let scenario = family.scenario(base);
        scenario.validate()?;
        for s in schemes {
            s.validate(&scenario)?;
        }
        let builders: Vec<Builder> = schemes
            .iter()
            .map(|s| Builder::new(scenario.clone()).scheme(s))
            .collect();
        runs.push(sweep::map_seeds(seeds.clone(), jobs, |seed| {
            // One plan per (family, seed), run by every scheme.
            let plan = nemesis::draw(&scenario, seed);
            let row = builders
                .iter()
                .map(|b| sweep::seed_result(&b.clone().plan(plan.clone()).run_seed(seed)))
                .collect();
            progress();
            row
        }));
    }
    let mut cells = Vec::new();
    for (i, scheme) in schemes.iter().enumerate() {
        for (family, by_seed) in families.iter().zip(&runs) {
            let results: Vec<&SeedResult> = by_seed.iter().map(|row| &row[i]).collect();
            cells.push(Cell::of(scheme.name, family.name, &results));
        }
    }
    let heading = |name: &str, about: &str| Heading {
        name: name.to_string(),
        about: about.to_string(),
    };
    Ok(Comparison {
        seed_start: seeds.start,
        seeds: n,
        workload: base.workload.workload().name().to_string(),
        schemes: schemes.iter().map(|s| heading(s.name, s.about)).collect(),
        families: families.iter().map(|f| heading(f.name, f.about)).collect(),
        cells,
        shrunk: Vec::new(),
    })
}

/// A violating seed of one scheme, its plan shrunk on robustness.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Shrunk {
    pub scheme: String,
    pub family: String,
    pub seed: u64,
    /// Faults of the plan the seed drew.
    pub faults_before: usize,
    /// The kind of the seed's first violation, which the shrunk plan kept violating with.
    #[serde(default)]
    pub kind: String,
    /// The plan shrunk on robustness: smaller only while it kept violating with `kind` in the
    /// share of the noise seeds that `explanation` records.
    pub plan: FaultPlan,
    /// The seed `why` and the replay are of: `seed` when the shrunk plan still violates
    /// there, else its most typical violating noise seed.
    #[serde(default)]
    pub story_seed: u64,
    /// Why the run under the shrunk plan at `story_seed` violates.
    pub why: String,
    /// A command that replays it, when the caller wrote a file for one (empty otherwise).
    #[serde(default)]
    pub replay: String,
    /// The drawn plan's robustness, the shrunk plan's, and each fault's robustness without
    /// it, over the noise seeds from `seed` on ([`crate::robust`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub explanation: Option<Explanation>,
}

/// Shrinks the plan `family` draws for `seed` under `scheme` on robustness, as `explore`
/// does ([`crate::robust::explain`]): over `noise_seeds` noise seeds from `seed` on, toward
/// a violation of the kind the seed showed first, kept while the plan violates so in half as
/// many noise seeds as the drawn plan. `None` if the seed does not violate.
pub fn shrink(
    base: &Scenario,
    scheme: &Scheme,
    family: &Family,
    seed: u64,
    noise_seeds: u64,
) -> Option<Shrunk> {
    let scenario = family.scenario(base);
    let builder = Builder::new(scenario.clone()).scheme(scheme);
    let drawn = nemesis::draw(&scenario, seed);
    let run = builder.clone().plan(drawn.clone()).run_seed(seed);
    let kind = (run.verdict.findings.iter())
        .find(|f| f.kind.is_violation())?
        .kind;
    let noise = Noise::new(seed, noise_seeds).ok()?;
    let judge = robust::violation_judge(Some(kind));
    let jobs = crate::sweep::default_jobs();
    let (original, _) = robust::measure(&builder, &drawn, noise, jobs, &judge);
    let (explanation, _) = robust::explain(&builder, &drawn, original, None, jobs, &judge);
    let plan = explanation.evidence.plan.clone();
    let shrunk = builder.clone().plan(plan.clone());
    let story_seed = match judge(&shrunk, seed) {
        Some(_) => seed,
        None => explanation.evidence.typical_seed.unwrap_or(seed),
    };
    let run = shrunk.run_seed(story_seed);
    let why = crate::harness::no_violation(&run)
        .err()
        .unwrap_or_else(|| format!("passes ({})", crate::harness::counts(&run.verdict)));
    Some(Shrunk {
        scheme: scheme.name.to_string(),
        family: family.name.to_string(),
        seed,
        faults_before: drawn.len(),
        kind: kind.as_str().to_string(),
        plan,
        story_seed,
        why,
        replay: String::new(),
        explanation: Some(explanation),
    })
}

const CELL_W: f64 = 104.0;
const CELL_H: f64 = 34.0;
const TOP_PX: f64 = 64.0;

/// The comparison as a grid: a row per scheme, a column per family, each cell coloured from
/// white (rate 0) to red (1) and labelled `k/n`. Same comparison, same bytes.
pub fn grid_svg(cmp: &Comparison, title: &str) -> String {
    let left = 16.0
        + cmp
            .schemes
            .iter()
            .map(|s| text_width_px(&s.name, 12.0))
            .fold(60.0, f64::max);
    let width = (left + CELL_W * cmp.families.len() as f64 + 16.0)
        .max(text_width_px(title, 14.0) + 24.0)
        .ceil();
    let height = TOP_PX + CELL_H * cmp.schemes.len() as f64 + 40.0;
    let mut out = String::new();
    svg!(
        out,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width:.0}\" height=\"{height:.0}\" \
         viewBox=\"0 0 {width:.0} {height:.0}\" font-family=\"sans-serif\">\n\
         <style>text{{font-size:12px}}\n.title{{font-size:14px;font-weight:bold}}</style>\n\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n\
         <text class=\"title\" x=\"8\" y=\"22\">{}</text>\n",
        xml_escape(title)
    );
    for (ix, f) in cmp.families.iter().enumerate() {
        svg!(
            out,
            "<text class=\"col-label\" x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\"><title>{}</title>{}</text>\n",
            left + (ix as f64 + 0.5) * CELL_W,
            TOP_PX - 8.0,
            xml_escape(&f.about),
            xml_escape(&f.name)
        );
    }
    for (iy, s) in cmp.schemes.iter().enumerate() {
        let y = TOP_PX + iy as f64 * CELL_H;
        svg!(
            out,
            "<text class=\"row-label\" x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\"><title>{}</title>{}</text>\n",
            left - 8.0,
            y + CELL_H / 2.0 + 4.0,
            xml_escape(&s.about),
            xml_escape(&s.name)
        );
        for (ix, f) in cmp.families.iter().enumerate() {
            if let Some(c) = cmp.cell(&s.name, &f.name) {
                grid_cell(&mut out, c, left + ix as f64 * CELL_W, y);
            }
        }
    }
    svg!(
        out,
        "<text x=\"8\" y=\"{:.1}\">violating seeds / seeds; the same plans in every row</text>\n</svg>\n",
        height - 14.0
    );
    out
}

fn grid_cell(out: &mut String, c: &Cell, x: f64, y: f64) {
    let r = c.rate.clamp(0.0, 1.0);
    let fade = (255.0 * (1.0 - r)).round() as u8;
    let colour = if r > 0.6 { "white" } else { "black" };
    svg!(
        out,
        "<rect class=\"cell\" x=\"{x:.1}\" y=\"{y:.1}\" width=\"{CELL_W}\" height=\"{CELL_H}\" \
         fill=\"#ff{fade:02x}{fade:02x}\" stroke=\"#cccccc\"><title>{} under {}: {:.1}% [{:.1}, {:.1}]</title></rect>\n\
         <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\" fill=\"{colour}\">{}/{}</text>\n",
        xml_escape(&c.scheme),
        xml_escape(&c.family),
        c.rate * 100.0,
        c.low * 100.0,
        c.high * 100.0,
        x + CELL_W / 2.0,
        y + CELL_H / 2.0 + 4.0,
        c.k,
        c.n
    );
}
