//! `compare`: every scheme against every fault family, on the same seeds. The flags here; the
//! simulation is `fencelab::compare`.

use clap::Args;
use std::path::PathBuf;

/// What `compare` takes. The families set the nemesis, so the scenario flags are only those
/// that leave it alone.
/// `--family`'s help, from the families' own table so that it cannot leave one out.
#[cfg(madsim)]
fn family_help() -> String {
    let names: Vec<&str> = fencelab::compare::families()
        .iter()
        .map(|f| f.name)
        .collect();
    format!(
        "Columns: {}; comma-separated, in the order given (default: every one)",
        names.join(", ")
    )
}

/// `--family`'s help in real mode, where `compare` (a simulation) does not run.
#[cfg(not(madsim))]
fn family_help() -> String {
    "Columns: fault families, comma-separated (a simulation subcommand)".to_string()
}

#[derive(Args, Debug, Clone)]
pub struct CompareArgs {
    /// Seeds per cell (the same seeds, so the same fault plans, in every row). The run takes
    /// schemes × families × seeds worlds.
    #[arg(long, default_value_t = 200)]
    seeds: u64,
    /// Threads (default: every core).
    #[arg(long)]
    jobs: Option<usize>,
    /// Rows: schemes, comma-separated, in the order given (default: the whole catalogue); the
    /// names come from `schemes::catalogue()`.
    #[arg(long, value_name = "A,B,...", help = crate::scheme_help("Rows: schemes, comma-separated, in the order given (default: the whole catalogue)"))]
    scheme: Option<String>,
    /// Columns: fault families, comma-separated, in the order given (default: every one); the
    /// names come from `compare::families()`.
    #[arg(long, value_name = "A,B,...", help = family_help())]
    family: Option<String>,
    /// The workload (the names come from `WorkloadKind::NAMED`).
    #[arg(long, help = format!("The workload: {}", fencelab::scenario::WorkloadKind::names()))]
    workload: Option<String>,
    /// A scenario file (TOML) for everything but the nemesis, which each family sets.
    #[arg(long, value_name = "FILE.toml", conflicts_with = "preset")]
    scenario: Option<PathBuf>,
    /// A named scenario (its nemesis replaced by each family's).
    #[arg(long)]
    preset: Option<String>,
    /// One JSON document: schemes, families, cells (and the shrunk plans with --shrink).
    #[arg(long)]
    json: bool,
    /// Draw the grid: a row per scheme, a column per family, coloured by violation rate.
    #[arg(long, value_name = "FILE.svg")]
    svg: Option<PathBuf>,
    /// Also shrink, per scheme, its first violating seed under `all` (else under the first
    /// family with a violation), and write a file that replays it.
    #[arg(long)]
    shrink: bool,
    /// K: the noise seeds --shrink measures and shrinks each plan's robustness over (from the
    /// violating seed on).
    #[arg(long, default_value_t = 20)]
    noise_seeds: u64,
    /// Where --shrink writes its replay files.
    #[arg(long, value_name = "DIR", default_value = "target/fencelab-compare")]
    shrink_dir: PathBuf,
}

#[cfg(madsim)]
pub use sim::run;

#[cfg(madsim)]
mod sim {
    use super::CompareArgs;
    use fencelab::compare::{self, Comparison, Family, Shrunk};
    use fencelab::scenario::Scenario;
    use fencelab::schemes::{self, Scheme};
    use fencelab::storage::Fencing;
    use fencelab::sweep;
    use fencelab::world::Experiment;
    use std::fmt::Write;

    pub fn run(args: CompareArgs, out: &mut String) -> Result<(), String> {
        let base = crate::ScenarioArgs {
            scenario: args.scenario.clone(),
            preset: args.preset.clone(),
            workload: args.workload.clone(),
            ..Default::default()
        }
        .build()?;
        let jobs = args.jobs.unwrap_or_else(sweep::default_jobs);
        if !(1..=1024).contains(&jobs) {
            return Err(format!("--jobs {jobs} is outside 1..=1024"));
        }
        if !(1..=compare::SEEDS_MAX).contains(&args.seeds) {
            return Err(format!(
                "--seeds {} is outside 1..={}",
                args.seeds,
                compare::SEEDS_MAX
            ));
        }
        let schemes = pick_schemes(args.scheme.as_deref(), &base)?;
        let families = match &args.family {
            Some(list) => compare::families_named(list).map_err(|e| format!("--family: {e}"))?,
            None => compare::families_for(base.service),
        };
        let mut cmp = run_all(&base, &schemes, &families, args.seeds, jobs)?;
        if args.shrink {
            fencelab::robust::Noise::new(0, args.noise_seeds)
                .map_err(|e| format!("--noise-seeds: {e}"))?;
            let k = args.noise_seeds;
            cmp.shrunk = shrink_all(&base, &schemes, &families, &cmp, k, &args.shrink_dir)?;
        }
        if let Some(path) = &args.svg {
            let title = format!(
                "violating seeds per scheme and fault family ({} seeds per cell, workload {})",
                cmp.seeds, cmp.workload
            );
            std::fs::write(path, compare::grid_svg(&cmp, &title))
                .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
            eprintln!("grid written to {}", path.display());
        }
        if args.json {
            let _ = writeln!(out, "{}", serde_json::to_string(&cmp).expect("json"));
        } else {
            out.push_str(&table(&cmp));
            out.push_str(&shrunk_text(&cmp.shrunk));
        }
        Ok(())
    }

    /// The schemes of a comma-separated list, or every scheme of the catalogue that runs on
    /// the scenario's lock (its service and method).
    fn pick_schemes(list: Option<&str>, base: &Scenario) -> Result<Vec<Scheme>, String> {
        let Some(list) = list else {
            return Ok(schemes::fitting(base));
        };
        let mut picked: Vec<Scheme> = Vec::new();
        for name in list.split(',').map(str::trim) {
            let s = schemes::by_name(name).map_err(|e| format!("--scheme: {e}"))?;
            if picked.iter().any(|p| p.name == s.name) {
                return Err(format!("--scheme: '{name}' is named twice"));
            }
            picked.push(s);
        }
        Ok(picked)
    }

    /// The comparison, with a progress bar on a terminal and its cost on stderr.
    fn run_all(
        base: &Scenario,
        schemes: &[Scheme],
        families: &[Family],
        seeds: u64,
        jobs: usize,
    ) -> Result<Comparison, String> {
        use std::io::IsTerminal;
        let steps = seeds * families.len() as u64;
        let bar = if std::io::stderr().is_terminal() {
            let bar = indicatif::ProgressBar::new(steps);
            bar.set_style(
                indicatif::ProgressStyle::with_template(
                    "compare {bar:40} {pos}/{len} (family, seed) {per_sec} eta {eta}",
                )
                .expect("static template"),
            );
            bar
        } else {
            indicatif::ProgressBar::hidden()
        };
        // Wall time for the cost line only: nothing inside a run sees it.
        let started = std::time::Instant::now();
        let cmp = compare::compare(base, schemes, families, 0..seeds, jobs, &|| bar.inc(1))?;
        bar.finish_and_clear();
        let wall_s = started.elapsed().as_secs_f64();
        let worlds = steps * schemes.len() as u64;
        eprintln!(
            "{worlds} worlds ({} schemes x {} families x {seeds} seeds) in {wall_s:.1} s: {:.0} worlds/s on {jobs} threads",
            schemes.len(),
            families.len(),
            worlds as f64 / wall_s.max(1e-9)
        );
        Ok(cmp)
    }

    /// Shrinks each scheme's chosen seed and writes a file that replays it.
    fn shrink_all(
        base: &Scenario,
        schemes: &[Scheme],
        families: &[Family],
        cmp: &Comparison,
        noise_seeds: u64,
        dir: &std::path::Path,
    ) -> Result<Vec<Shrunk>, String> {
        let mut shrunk = Vec::new();
        for scheme in schemes {
            let Some((family, seed)) = cmp.to_shrink(scheme.name) else {
                continue;
            };
            let family = families
                .iter()
                .find(|f| f.name == family)
                .expect("a family of the comparison");
            let Some(mut s) = compare::shrink(base, scheme, family, seed, noise_seeds) else {
                continue;
            };
            s.replay = write_replay(base, scheme, family, &s, dir)?;
            shrunk.push(s);
        }
        Ok(shrunk)
    }

    /// An experiment `replay` reads: the scheme by name (a policy's run needs none).
    fn write_replay(
        base: &Scenario,
        scheme: &Scheme,
        family: &Family,
        s: &Shrunk,
        dir: &std::path::Path,
    ) -> Result<String, String> {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        let path = dir.join(format!(
            "{}-{}-seed{}.json",
            s.scheme, s.family, s.story_seed
        ));
        let policy = scheme
            .name
            .parse::<Fencing>()
            .ok()
            .filter(|f| scheme.recipe.is_none() && f.fence().name() == scheme.fence.name());
        let exp = Experiment {
            seed: s.story_seed,
            fencing: policy.unwrap_or(Fencing::None),
            scheme: policy.is_none().then(|| scheme.name.to_string()),
            scenario: family.scenario(base),
            plan: s.plan.clone(),
            // Not saved: its robustness counts one finding kind, and `replay` measures any
            // violation, so the two figures would disagree; the text output gives it.
            explanation: None,
        };
        let replay = format!("cargo run --release -- replay {}", path.display());
        let text = serde_json::to_string_pretty(&exp);
        std::fs::write(&path, text.expect("json") + "\n")
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        Ok(replay)
    }

    /// The text table: violating seeds with their interval, then false rejections and stale
    /// acceptances, a row per scheme and a column per family.
    fn table(cmp: &Comparison) -> String {
        let mut t = format!(
            "violating seeds / seeds [95% Wilson interval], {} seeds per cell from seed {}, workload {}, the same plans in every row\n",
            cmp.seeds, cmp.seed_start, cmp.workload
        );
        t.push_str(&grid(cmp, |c| {
            format!(
                "{}/{} {:.0}-{:.0}%",
                c.k,
                c.n,
                c.low * 100.0,
                c.high * 100.0
            )
        }));
        t.push_str("\nfalse rejections / stale acceptances, summed over the seeds\n");
        t.push_str(&grid(cmp, |c| {
            format!("{}/{}", c.false_rejections, c.stale_acceptances)
        }));
        t
    }

    fn grid(cmp: &Comparison, text: impl Fn(&compare::Cell) -> String) -> String {
        let rows: Vec<(&str, Vec<String>)> = cmp
            .schemes
            .iter()
            .map(|s| {
                let cells = cmp.families.iter().map(|f| {
                    cmp.cell(&s.name, &f.name)
                        .map_or_else(|| "-".to_string(), &text)
                });
                (s.name.as_str(), cells.collect())
            })
            .collect();
        let first = rows.iter().map(|(n, _)| n.len()).fold(6, usize::max) + 2;
        let widths: Vec<usize> = (0..cmp.families.len())
            .map(|i| {
                rows.iter()
                    .map(|(_, c)| c[i].len())
                    .fold(cmp.families[i].name.len(), usize::max)
                    + 2
            })
            .collect();
        let mut t = format!("{:<first$}", "scheme");
        for (f, w) in cmp.families.iter().zip(&widths) {
            let _ = write!(t, "{:>w$}", f.name);
        }
        t.push('\n');
        for (name, cells) in &rows {
            let _ = write!(t, "{name:<first$}");
            for (c, w) in cells.iter().zip(&widths) {
                let _ = write!(t, "{c:>w$}");
            }
            t.push('\n');
        }
        t
    }

    fn shrunk_text(shrunk: &[Shrunk]) -> String {
        let mut t = String::new();
        for s in shrunk {
            let _ = writeln!(
                t,
                "\n{}: seed {} under {}, shrunk on robustness to {} from {}, kept violating with {}\n  plan: {}",
                s.scheme,
                s.seed,
                s.family,
                fencelab::harness::plural(s.plan.len() as u64, "fault"),
                s.faults_before,
                fencelab::harness::a(&s.kind),
                serde_json::to_string(&s.plan).expect("json"),
            );
            if let Some(e) = &s.explanation {
                let _ = writeln!(
                    t,
                    "  the drawn plan: violates in {} from seed {} on",
                    e.original.text(),
                    e.original.noise.first
                );
                for line in e.evidence.text().lines() {
                    let _ = writeln!(t, "  {line}");
                }
            }
            let _ = writeln!(
                t,
                "  seed {}: {}\n  replay: {}",
                s.story_seed, s.why, s.replay
            );
        }
        t
    }
}
