//! The `fencelab` command: a thin layer over the library.

// The allocator is the program's to choose, not the library's (see the file).
mod global_alloc;

use clap::{Args, Parser, Subcommand};
use std::io::Write;
use std::path::PathBuf;

#[derive(Parser)]
#[command(
    name = "fencelab",
    version,
    about = "Deterministic simulation of lease-based locking and fencing tokens"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// Where a scenario comes from, and flags that override it.
#[derive(Args, Debug, Clone, Default)]
struct ScenarioArgs {
    /// A scenario file (TOML); keys left out keep the standard scenario's values.
    #[arg(long, value_name = "FILE.toml", conflicts_with = "preset")]
    scenario: Option<PathBuf>,
    /// A named scenario: standard, long-critical, local-check-pauses, local-check-skew.
    #[arg(long)]
    preset: Option<String>,
    /// The random nemesis: off draws no fault at all (a scenario file's scripted faults still
    /// apply); on draws from the scenario's ranges and the flags below.
    #[arg(long, value_name = "off|on", value_parser = ["off", "on"])]
    nemesis: Option<String>,
    /// Number of clients.
    #[arg(long)]
    clients: Option<u32>,
    /// Lease TTL in seconds (>= 2).
    #[arg(long)]
    ttl_s: Option<i64>,
    /// Simulated time during which clients start lock cycles, ms.
    #[arg(long)]
    duration_ms: Option<u64>,
    /// single or counter.
    #[arg(long)]
    workload: Option<String>,
    /// election, kv-mutex or lock-api (the v3 Lock service).
    #[arg(long)]
    lock_method: Option<String>,
    /// Which simulated etcd: model (fencelab's calibrated model, the default) or madsim
    /// (madsim-etcd-client's SimServer, for comparison).
    #[arg(long, value_name = "model|madsim")]
    etcd: Option<String>,
    /// Which etcd release the model reproduces where they differ (the Lock API): 3.4 or 3.5.
    #[arg(long, value_name = "3.4|3.5")]
    etcd_version: Option<String>,
    /// Time a holder spends between its read and its write, MIN..MAX ms.
    #[arg(long, value_name = "MIN..MAX")]
    critical_ms: Option<String>,
    /// Client-side lease check before each write, with this margin (ms).
    #[arg(long)]
    lease_check_margin_ms: Option<u64>,
    /// One-way network latency, MIN..MAX ms.
    #[arg(long, value_name = "MIN..MAX")]
    latency_ms: Option<String>,
    /// Message loss probability (lost messages are retransmitted later).
    #[arg(long)]
    loss_rate: Option<f64>,
    /// Most timed GC pauses per run.
    #[arg(long)]
    pauses_max: Option<u32>,
    /// Most pauses aimed at the before-write point per run.
    #[arg(long)]
    aimed_pauses_max: Option<u32>,
    /// Pause length, MIN..MAX ms.
    #[arg(long, value_name = "MIN..MAX")]
    pause_ms: Option<String>,
    /// An aimed fault strikes at the Nth time its client reaches the point, N drawn from
    /// 1..=this.
    #[arg(long)]
    aim_nth_max: Option<u32>,
    /// Drift drawn from +-this many ppm.
    #[arg(long)]
    drift_ppm_max: Option<i64>,
    /// Chance per mille that a client's clock is skewed.
    #[arg(long)]
    skew_permille: Option<u32>,
    /// A skewed clock's initial offset, drawn from +- this many ms.
    #[arg(long)]
    offset_ms_max: Option<i64>,
    /// Clock steps per skewed client.
    #[arg(long)]
    steps_max: Option<u32>,
    /// Clock step size, +- ms.
    #[arg(long)]
    step_ms_max: Option<i64>,
    /// Most partitions between two random nodes per run.
    #[arg(long)]
    partitions_max: Option<u32>,
    /// Most partitions of a client from etcd per run.
    #[arg(long)]
    etcd_partitions_max: Option<u32>,
    /// Partition length (both kinds), MIN..MAX ms.
    #[arg(long, value_name = "MIN..MAX")]
    partition_ms: Option<String>,
    /// Most storage requests held in flight per run.
    #[arg(long)]
    holds_max: Option<u32>,
    /// Hold length, MIN..MAX ms.
    #[arg(long, value_name = "MIN..MAX")]
    hold_ms: Option<String>,
    /// Most client crashes per run.
    #[arg(long)]
    crashes_max: Option<u32>,
    /// Time a crashed client stays down, MIN..MAX ms.
    #[arg(long, value_name = "MIN..MAX")]
    restart_ms: Option<String>,
    /// Most etcd stalls per run.
    #[arg(long)]
    etcd_stalls_max: Option<u32>,
    /// etcd stall length, MIN..MAX ms.
    #[arg(long, value_name = "MIN..MAX")]
    etcd_stall_ms: Option<String>,
    /// Chance per mille that a run has etcd request timeouts.
    #[arg(long)]
    etcd_timeouts_permille: Option<u32>,
    /// In such a run, the share of etcd requests that time out, per mille, drawn from
    /// 1..=this (0: none).
    #[arg(long)]
    etcd_timeout_rate_permille: Option<u32>,
    /// Chance per mille that etcd's clock drifts (by up to --drift-ppm-max).
    #[arg(long)]
    etcd_skew_permille: Option<u32>,
    /// Chance per mille that a run has ambiguous etcd timeouts (committed, then timed out).
    #[arg(long)]
    etcd_ambiguous_permille: Option<u32>,
    /// In such a run, the share of etcd requests that commit and time out, per mille, drawn
    /// from 1..=this (0: none).
    #[arg(long)]
    etcd_ambiguous_rate_permille: Option<u32>,
    /// Most windows of a degraded network (latency and loss on every link) per run.
    #[arg(long)]
    network_faults_max: Option<u32>,
    /// Such a window's length, MIN..MAX ms.
    #[arg(long, value_name = "MIN..MAX")]
    network_ms: Option<String>,
    /// Slowest one-way latency in such a window (the fastest a quarter of it), MIN..MAX ms.
    #[arg(long, value_name = "MIN..MAX")]
    network_latency_ms: Option<String>,
    /// Highest loss in such a window, per mille.
    #[arg(long)]
    network_loss_permille_max: Option<u32>,
}

#[derive(Subcommand)]
enum Command {
    /// Tell the seed's walkthrough (and its stalled variant) under every fencing policy.
    Demo {
        /// Seed of the simulated world.
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
    /// Run one seed and tell its story.
    Run {
        #[arg(long)]
        seed: u64,
        /// none, lease-id, token-writes or token.
        #[arg(long, default_value = "token")]
        fencing: String,
        #[command(flatten)]
        scenario: ScenarioArgs,
        /// Run this fault plan (JSON) instead of the one the seed draws.
        #[arg(long, value_name = "FILE.json")]
        plan: Option<PathBuf>,
        /// Draw the run as a timeline picture.
        #[arg(long, value_name = "FILE.svg")]
        timeline: Option<PathBuf>,
        /// Save the experiment (seed, policy, scenario, plan) for `replay`.
        #[arg(long, value_name = "FILE.json")]
        save: Option<PathBuf>,
        /// Print the run (plan, history, verdict) as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Run many seeds on every core; a table per policy.
    Sweep {
        #[arg(long, default_value_t = 1000)]
        seeds: u64,
        #[arg(long, default_value_t = 0)]
        start: u64,
        /// A policy, a comma-separated list of them, or `all`.
        #[arg(long, default_value = "all")]
        fencing: String,
        #[command(flatten)]
        scenario: ScenarioArgs,
        /// Threads (default: every core).
        #[arg(long)]
        jobs: Option<usize>,
        /// One JSON object per policy.
        #[arg(long, conflicts_with = "csv")]
        json: bool,
        /// CSV, a header and one row per policy.
        #[arg(long)]
        csv: bool,
        /// Run only shard I of N (0-based) of the seed range; also read from
        /// JOB_COMPLETION_INDEX and JOB_COMPLETION_COUNT (Kubernetes indexed Jobs).
        #[arg(long, value_name = "I/N")]
        shard: Option<String>,
        /// Sweep one parameter (pause-ttl, drift or delay), or two at once for an atlas: a
        /// fault (pause-ms, stall-ms, delay-ms, drift-ppm) and a knob (ttl-s, margin-ms).
        #[arg(long)]
        vary: Vec<String>,
        /// Steps of the varied parameter.
        #[arg(long, default_value_t = 6)]
        steps: u32,
        /// Where `--vary` draws its plot (an atlas: one FILE-POLICY.svg per policy).
        #[arg(long, value_name = "FILE.svg", default_value = "sweep.svg")]
        plot: PathBuf,
    },
    /// Search fault schedules with proptest and shrink a violation to a minimal plan.
    Explore {
        #[arg(long, default_value = "none")]
        fencing: String,
        #[command(flatten)]
        scenario: ScenarioArgs,
        /// Cases to try before giving up.
        #[arg(long, default_value_t = 256)]
        cases: u32,
        /// Longest critical section the search may choose, ms.
        #[arg(long, default_value_t = 3000)]
        critical_ms_top: u64,
        /// Seed of proptest's search.
        #[arg(long, default_value_t = 0)]
        search_seed: u64,
        /// Save the minimal counterexample for `replay`.
        #[arg(long, value_name = "FILE.json")]
        save: Option<PathBuf>,
        /// One JSON object: fencing, found, cases, faults_before, faults_after, plan.
        #[arg(long)]
        json: bool,
    },
    /// Re-run a saved experiment (from `run --save` or `explore --save`) and tell its story.
    Replay {
        file: PathBuf,
        #[arg(long, value_name = "FILE.svg")]
        timeline: Option<PathBuf>,
        #[arg(long)]
        json: bool,
    },
    /// Combine `sweep --json` outputs of shards into one table: files, or directories whose
    /// `*.jsonl` files are read in name order.
    Merge {
        #[arg(required = true, value_name = "FILE|DIR")]
        files: Vec<PathBuf>,
        #[arg(long, conflicts_with = "csv")]
        json: bool,
        #[arg(long)]
        csv: bool,
    },
    /// Real mode: the storage server over real HTTP.
    #[cfg(not(madsim))]
    Storage(fencelab::real::StorageArgs),
    /// Real mode: the seed's client N against a real etcd and storage.
    #[cfg(not(madsim))]
    Client(fencelab::real::ClientArgs),
    /// Real mode: the seed's walkthrough, unattended, against a real etcd, per policy.
    #[cfg(not(madsim))]
    RealDemo(fencelab::real::DemoArgs),
}

fn main() {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            use clap::error::ErrorKind;
            match e.kind() {
                ErrorKind::DisplayHelp
                | ErrorKind::DisplayVersion
                | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => e.exit(),
                _ => {
                    // One line, like every other error of this tool: clap's first line names
                    // the fault; its usage block is what --help is for.
                    let rendered = e.render().to_string();
                    // The message and what clap indents under it (the missing arguments),
                    // without the usage block.
                    let said: Vec<&str> = rendered
                        .lines()
                        .take_while(|l| !l.is_empty() && !l.starts_with("Usage:"))
                        .map(str::trim)
                        .collect();
                    let said = if said.is_empty() {
                        "error: bad arguments".to_string()
                    } else {
                        said.join(" ")
                    };
                    eprintln!("{said} (see --help)");
                    std::process::exit(2);
                }
            }
        }
    };
    let mut out = String::new();
    let code = match run(cli.command, &mut out) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("error: {e}");
            2
        }
    };
    // A closed pipe (`| head`) is not worth a panic.
    let _ = std::io::stdout().lock().write_all(out.as_bytes());
    std::process::exit(code);
}

#[cfg(not(madsim))]
fn run(command: Command, _out: &mut String) -> Result<(), String> {
    match command {
        Command::Storage(args) => fencelab::real::storage(args),
        Command::Client(args) => fencelab::real::client(args),
        Command::RealDemo(args) => fencelab::real::demo(args),
        _ => Err("this subcommand runs the simulation: build without RUSTFLAGS (the default .cargo/config.toml sets --cfg madsim)".into()),
    }
}

#[cfg(madsim)]
use sim::run;

#[cfg(madsim)]
mod sim {
    use super::{Command, ScenarioArgs};
    use fencelab::atlas;
    use fencelab::explore;
    use fencelab::nemesis::{self, FaultPlan};
    use fencelab::scenario::{MsRange, Scenario};
    use fencelab::storage::Fencing;
    use fencelab::sweep::{self, Summary};
    use fencelab::world::{Experiment, Run};
    use fencelab::{report, stories};
    use std::fmt::Write;
    use std::path::Path;

    fn read(path: &Path) -> Result<String, String> {
        std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))
    }

    /// The files behind `merge`'s arguments: a directory stands for its `*.jsonl` files, in
    /// name order (what a Kubernetes Indexed Job leaves on a shared volume).
    fn shard_files(args: &[std::path::PathBuf]) -> Result<Vec<std::path::PathBuf>, String> {
        let mut files = Vec::new();
        for arg in args {
            if !arg.is_dir() {
                files.push(arg.clone());
                continue;
            }
            let entries = std::fs::read_dir(arg)
                .map_err(|e| format!("cannot read {}: {e}", arg.display()))?;
            let mut found: Vec<std::path::PathBuf> = entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "jsonl"))
                .collect();
            if found.is_empty() {
                return Err(format!("{}: no *.jsonl file in it", arg.display()));
            }
            found.sort();
            files.extend(found);
        }
        Ok(files)
    }

    fn write_file(path: &Path, text: &str) -> Result<(), String> {
        std::fs::write(path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))
    }

    fn range(flag: &str, s: &str) -> Result<MsRange, String> {
        s.parse().map_err(|e| format!("--{flag}: {e}"))
    }

    impl ScenarioArgs {
        /// The scenario: file or preset, then flags, then validation.
        fn build(&self) -> Result<Scenario, String> {
            let mut s = match (&self.scenario, &self.preset) {
                (Some(path), _) => Scenario::from_toml(&read(path)?)
                    .map_err(|e| format!("bad scenario {}: {e}", path.display()))?,
                (None, Some(p)) => Scenario::preset(p)?,
                (None, None) => Scenario::standard(),
            };
            let n = &mut s.nemesis;
            if let Some(switch) = &self.nemesis {
                n.enabled = switch == "on";
            }
            macro_rules! set {
                ($($flag:ident => $field:expr),* $(,)?) => {$(
                    if let Some(v) = self.$flag.clone() { $field = v; }
                )*};
            }
            set!(
                pauses_max => n.pauses_max,
                aimed_pauses_max => n.aimed_pauses_max,
                aim_nth_max => n.aim_nth_max,
                drift_ppm_max => n.drift_ppm_max,
                skew_permille => n.skew_permille,
                offset_ms_max => n.offset_ms_max,
                steps_max => n.steps_max,
                step_ms_max => n.step_ms_max,
                partitions_max => n.partitions_max,
                etcd_partitions_max => n.etcd_partitions_max,
                holds_max => n.holds_max,
                crashes_max => n.crashes_max,
                etcd_stalls_max => n.etcd_stalls_max,
                etcd_timeouts_permille => n.etcd_timeouts_permille,
                etcd_timeout_rate_permille => n.etcd_timeout_rate_permille,
                etcd_skew_permille => n.etcd_skew_permille,
                etcd_ambiguous_permille => n.etcd_ambiguous_permille,
                etcd_ambiguous_rate_permille => n.etcd_ambiguous_rate_permille,
                network_faults_max => n.network_faults_max,
                network_loss_permille_max => n.network_loss_permille_max,
            );
            macro_rules! set_range {
                ($($flag:ident => $field:expr),* $(,)?) => {$(
                    if let Some(r) = &self.$flag {
                        $field = range(&stringify!($flag).replace('_', "-"), r)?;
                    }
                )*};
            }
            set_range!(
                pause_ms => n.pause_ms,
                partition_ms => n.partition_ms,
                hold_ms => n.hold_ms,
                restart_ms => n.restart_ms,
                etcd_stall_ms => n.etcd_stall_ms,
                network_ms => n.network_ms,
                network_latency_ms => n.network_latency_ms,
            );
            set!(
                clients => s.clients,
                ttl_s => s.ttl_s,
                duration_ms => s.duration_ms,
                loss_rate => s.loss_rate,
            );
            if let Some(m) = self.lease_check_margin_ms {
                s.lease_check_margin_ms = Some(m);
            }
            if let Some(w) = &self.workload {
                s.workload = w.parse()?;
            }
            if let Some(m) = &self.lock_method {
                s.lock_method = m.parse()?;
            }
            if let Some(e) = &self.etcd {
                s.etcd = e.parse()?;
            }
            if let Some(v) = &self.etcd_version {
                s.etcd_version = v.parse()?;
            }
            if let Some(r) = &self.critical_ms {
                s.critical_ms = range("critical-ms", r)?;
            }
            if let Some(r) = &self.latency_ms {
                s.latency_ms = range("latency-ms", r)?;
            }
            s.validate()?;
            Ok(s)
        }
    }

    fn policies(s: &str) -> Result<Vec<Fencing>, String> {
        if s == "all" {
            Ok(Fencing::ALL.to_vec())
        } else {
            // A comma-separated list, in the order given.
            s.split(',').map(|p| p.trim().parse()).collect()
        }
    }

    fn tell(out: &mut String, title: &str, exp: &Experiment, run: &Run, json: bool) {
        if json {
            let doc = serde_json::json!({ "experiment": exp, "run": run });
            let _ = writeln!(out, "{doc}");
            return;
        }
        let _ = writeln!(out, "plan ({} faults):", exp.plan.len());
        for f in &run.faults {
            let _ = writeln!(
                out,
                "  {} [{:?}: {}]",
                f.fault.describe(),
                f.assumption,
                f.why
            );
        }
        let _ = write!(out, "{}", report::run_report(title, run));
    }

    const CSV_HEADER: &str = "fencing,seeds,violating_seeds,rate,rate_low,rate_high,lost_updates,token_order_breaks,stale_acceptances,false_rejections,seeds_per_sec";

    fn csv_row(s: &Summary) -> String {
        format!(
            "{},{},{},{:.6},{:.6},{:.6},{},{},{},{},{:.1}",
            s.fencing,
            s.seeds,
            s.violating_seeds,
            s.rate,
            s.rate_low,
            s.rate_high,
            s.lost_updates,
            s.token_order_breaks,
            s.stale_acceptances,
            s.false_rejections,
            s.seeds_per_sec
        )
    }

    fn table(summaries: &[Summary]) -> String {
        let mut t = String::new();
        let _ = writeln!(
            t,
            "{:<13} {:>7} {:>9} {:>22} {:>6} {:>6} {:>7} {:>9} {:>8}",
            "fencing",
            "seeds",
            "violating",
            "rate [95% Wilson]",
            "lost",
            "order",
            "stale",
            "falserej",
            "seeds/s"
        );
        for s in summaries {
            let _ = writeln!(
                t,
                "{:<13} {:>7} {:>9} {:>6.1}% [{:>5.1}, {:>5.1}] {:>6} {:>6} {:>7} {:>9} {:>8.0}",
                s.fencing.as_str(),
                s.seeds,
                s.violating_seeds,
                s.rate * 100.0,
                s.rate_low * 100.0,
                s.rate_high * 100.0,
                s.lost_updates,
                s.token_order_breaks,
                s.stale_acceptances,
                s.false_rejections,
                s.seeds_per_sec
            );
        }
        t
    }

    fn print_summaries(out: &mut String, summaries: &[Summary], json: bool, csv: bool) {
        if json {
            for s in summaries {
                let _ = writeln!(out, "{}", serde_json::to_string(s).expect("summary json"));
            }
        } else if csv {
            let _ = writeln!(out, "{CSV_HEADER}");
            for s in summaries {
                let _ = writeln!(out, "{}", csv_row(s));
            }
        } else {
            out.push_str(&table(summaries));
        }
    }

    /// `I/N` from the flag, else from a Kubernetes indexed Job's environment.
    fn shard_of(flag: &Option<String>) -> Result<Option<(u64, u64)>, String> {
        let parse = |i: &str, n: &str, from: &str| -> Result<(u64, u64), String> {
            let i = i
                .trim()
                .parse()
                .map_err(|_| format!("{from}: bad shard index '{i}'"))?;
            let n = n
                .trim()
                .parse()
                .map_err(|_| format!("{from}: bad shard count '{n}'"))?;
            Ok((i, n))
        };
        if let Some(s) = flag {
            let (i, n) = s
                .split_once('/')
                .ok_or_else(|| format!("--shard {s}: expected I/N"))?;
            return parse(i, n, "--shard").map(Some);
        }
        match (
            std::env::var("JOB_COMPLETION_INDEX"),
            std::env::var("JOB_COMPLETION_COUNT"),
        ) {
            (Ok(i), Ok(n)) => parse(&i, &n, "JOB_COMPLETION_INDEX/COUNT").map(Some),
            _ => Ok(None),
        }
    }

    /// Runs the sweep of one policy with a progress bar on a terminal.
    fn sweep_one(
        scenario: &Scenario,
        fencing: Fencing,
        seeds: std::ops::Range<u64>,
        jobs: usize,
    ) -> Summary {
        use std::io::IsTerminal;
        let bar = if std::io::stderr().is_terminal() {
            let bar = indicatif::ProgressBar::new(seeds.end - seeds.start);
            bar.set_style(
                indicatif::ProgressStyle::with_template(
                    "{prefix:>13} {bar:40} {pos}/{len} seeds {per_sec} eta {eta}",
                )
                .expect("static template"),
            );
            bar.set_prefix(fencing.as_str());
            bar
        } else {
            indicatif::ProgressBar::hidden()
        };
        let started = std::time::Instant::now();
        let results = sweep::sweep(scenario, fencing, seeds, jobs, &|_| bar.inc(1));
        bar.finish_and_clear();
        Summary::of(fencing, &results, started.elapsed().as_secs_f64())
    }

    pub fn run(command: Command, out: &mut String) -> Result<(), String> {
        match command {
            Command::Demo { seed } => {
                for (title, (scenario, plan)) in [
                    ("the seed's walkthrough", stories::seed_walkthrough()),
                    (
                        "client 2 stalls before writing",
                        stories::seed_walkthrough_stalled(),
                    ),
                ] {
                    for fencing in Fencing::ALL {
                        let run = fencelab::world::run(&scenario, &plan, fencing, seed);
                        let _ = writeln!(out, "{}", report::run_report(title, &run));
                    }
                }
            }
            Command::Run {
                seed,
                fencing,
                scenario,
                plan,
                timeline,
                save,
                json,
            } => {
                let fencing: Fencing = fencing.parse()?;
                let scenario = scenario.build()?;
                let plan = match plan {
                    Some(path) => serde_json::from_str::<FaultPlan>(&read(&path)?)
                        .map_err(|e| format!("bad plan {}: {e}", path.display()))?,
                    None => nemesis::draw(&scenario, seed),
                };
                let exp = Experiment {
                    seed,
                    fencing,
                    scenario,
                    plan,
                };
                exp.validate()?;
                let run = exp.run();
                if let Some(path) = save {
                    write_file(&path, &serde_json::to_string_pretty(&exp).expect("json"))?;
                }
                draw_timeline(&timeline, &exp, &run)?;
                tell(out, &format!("seed {seed}"), &exp, &run, json);
            }
            Command::Replay {
                file,
                timeline,
                json,
            } => {
                let exp: Experiment = serde_json::from_str(&read(&file)?)
                    .map_err(|e| format!("bad experiment {}: {e}", file.display()))?;
                exp.validate()
                    .map_err(|e| format!("bad experiment {}: {e}", file.display()))?;
                let run = exp.run();
                draw_timeline(&timeline, &exp, &run)?;
                tell(
                    out,
                    &format!("replay of {}", file.display()),
                    &exp,
                    &run,
                    json,
                );
            }
            Command::Sweep {
                seeds,
                start,
                fencing,
                scenario,
                jobs,
                json,
                csv,
                shard,
                vary,
                steps,
                plot,
            } => {
                let scenario = scenario.build()?;
                let jobs = jobs.unwrap_or_else(sweep::default_jobs);
                if !(1..=1024).contains(&jobs) {
                    return Err(format!("--jobs {jobs} is outside 1..=1024"));
                }
                if !(1..=sweep::SEEDS_MAX).contains(&seeds) {
                    return Err(format!(
                        "--seeds {seeds} is outside 1..={}",
                        sweep::SEEDS_MAX
                    ));
                }
                let end = start
                    .checked_add(seeds)
                    .ok_or("--start plus --seeds overflows")?;
                let mut range = start..end;
                if let Some((i, n)) = shard_of(&shard)? {
                    range = sweep::shard(range, i, n)?;
                }
                let policies = policies(&fencing)?;
                match vary.as_slice() {
                    [] => {}
                    [param] => {
                        return vary_sweep(
                            out, &scenario, &policies, range, jobs, param, steps, &plot,
                        )
                    }
                    [a, b] => {
                        let axes = atlas::Axes::new(a.parse()?, b.parse()?)?;
                        return atlas_sweep(
                            out, &scenario, &policies, range, jobs, axes, steps, &plot,
                        );
                    }
                    more => return Err(format!("--vary given {} times: at most 2", more.len())),
                }
                let summaries: Vec<Summary> = policies
                    .iter()
                    .map(|&f| sweep_one(&scenario, f, range.clone(), jobs))
                    .collect();
                print_summaries(out, &summaries, json, csv);
            }
            Command::Merge { files, json, csv } => {
                let mut by_policy: std::collections::BTreeMap<Fencing, Vec<Summary>> =
                    Default::default();
                for path in &shard_files(&files)? {
                    for (i, line) in read(path)?.lines().enumerate() {
                        if line.trim().is_empty() {
                            continue;
                        }
                        let s: Summary = serde_json::from_str(line).map_err(|e| {
                            format!(
                                "{}:{}: not a `sweep --json` line: {e}",
                                path.display(),
                                i + 1
                            )
                        })?;
                        by_policy.entry(s.fencing).or_default().push(s);
                    }
                }
                let merged = by_policy
                    .values()
                    .map(|parts| Summary::merge(parts))
                    .collect::<Result<Vec<_>, _>>()?;
                print_summaries(out, &merged, json, csv);
            }
            Command::Explore {
                fencing,
                scenario,
                cases,
                critical_ms_top,
                search_seed,
                save,
                json,
            } => {
                let fencing: Fencing = fencing.parse()?;
                let base = scenario.build()?;
                if !(1..=1_000_000).contains(&cases) {
                    return Err(format!("--cases {cases} is outside 1..=1000000"));
                }
                // The search chooses clients, TTL and critical sections unless a flag pins them.
                let mut space = explore::Space::new(critical_ms_top);
                if let Some(c) = scenario.clients {
                    space.clients = c..=c;
                }
                if let Some(t) = scenario.ttl_s {
                    space.ttl_s = t..=t;
                }
                if let Some(r) = &scenario.critical_ms {
                    let r: MsRange = r.parse()?;
                    space.critical_ms_max = r.max..=r.max;
                }
                space.validate()?;
                let config = explore::config(cases, search_seed, None);
                let found = explore::explore(&base, fencing, config, &space);
                let exp = found.case.as_ref().map(|c| Experiment {
                    seed: c.seed,
                    fencing,
                    scenario: c.scenario(&base),
                    plan: c.plan(),
                });
                if let (Some(path), Some(exp)) = (&save, &exp) {
                    write_file(path, &serde_json::to_string_pretty(exp).expect("json"))?;
                }
                if json {
                    let doc = serde_json::json!({
                        "fencing": fencing,
                        "found": found.found,
                        "cases": found.cases,
                        "faults_before": found.faults_before,
                        "faults_after": found.faults_after,
                        "plan": found.plan,
                    });
                    let _ = writeln!(out, "{doc}");
                    return Ok(());
                }
                let _ = writeln!(
                    out,
                    "explored {} cases in {:.1} s ({:.0} cases/s) under fencing={fencing}",
                    found.cases,
                    found.wall_s,
                    found.cases as f64 / found.wall_s.max(1e-9)
                );
                let Some(exp) = exp else {
                    let _ = writeln!(out, "no violation found");
                    return Ok(());
                };
                let _ = writeln!(
                    out,
                    "minimal counterexample: {} fault(s), shrunk from {}; {} clients, TTL {} s, critical sections up to {} ms, seed {}",
                    found.faults_after,
                    found.faults_before,
                    exp.scenario.clients,
                    exp.scenario.ttl_s,
                    exp.scenario.critical_ms.max,
                    exp.seed
                );
                let _ = writeln!(
                    out,
                    "plan: {}",
                    serde_json::to_string(&exp.plan).expect("json")
                );
                let run = exp.run();
                tell(out, "minimal counterexample", &exp, &run, false);
                let _ = writeln!(
                    out,
                    "replay: {}cargo run --release -- replay {}",
                    if save.is_some() {
                        ""
                    } else {
                        "add --save FILE.json, then "
                    },
                    save.as_ref()
                        .map_or("FILE.json".to_string(), |p| p.display().to_string())
                );
            }
        }
        Ok(())
    }

    fn draw_timeline(
        path: &Option<std::path::PathBuf>,
        exp: &Experiment,
        run: &Run,
    ) -> Result<(), String> {
        let Some(path) = path else {
            return Ok(());
        };
        let title = format!("fencing={} seed={}", exp.fencing, exp.seed);
        let svg = fencelab::timeline::render(
            &run.history,
            &run.verdict,
            &exp.scenario,
            &exp.plan,
            &title,
        );
        write_file(path, &svg)
    }

    /// Two parameters at once: the atlas' CSV on stdout, one heatmap per policy.
    #[allow(clippy::too_many_arguments)]
    fn atlas_sweep(
        out: &mut String,
        scenario: &Scenario,
        policies: &[Fencing],
        range: std::ops::Range<u64>,
        jobs: usize,
        axes: atlas::Axes,
        steps: u32,
        plot: &Path,
    ) -> Result<(), String> {
        let maps = atlas::run(scenario, axes, steps, policies, range.clone(), jobs)?;
        let (f, k) = (axes.fault, axes.knob);
        let _ = writeln!(out, "{},{},{CSV_HEADER}", f.name(), k.name());
        for (_, cells) in &maps {
            for c in cells {
                let _ = writeln!(out, "{},{},{}", c.fault, c.knob, csv_row(&c.summary));
            }
        }
        let (xs, ys) = (f.values(steps), k.values(steps));
        let slack: Option<Vec<(f64, f64)>> = atlas::slack_line(scenario, axes, steps)
            .map(|l| l.into_iter().map(|(ttl_s, ms)| (ms, ttl_s)).collect());
        let stem = plot.with_extension("");
        for (fencing, cells) in &maps {
            let rate = |ix: usize, iy: usize| {
                cells
                    .iter()
                    .find(|c| c.fault == xs[ix] && c.knob == ys[iy])
                    .map_or(f64::NAN, |c| c.summary.rate)
            };
            let title = format!(
                "fencing={fencing}: violation rate, {} seeds per cell",
                range.end - range.start
            );
            let svg = fencelab::heatmap::heatmap(
                &title,
                f.label(),
                k.label(),
                &xs,
                &ys,
                rate,
                slack.as_deref().map(|l| ("renewal slack", l)),
            );
            let path = std::path::PathBuf::from(format!("{}-{fencing}.svg", stem.display()));
            write_file(&path, &svg)?;
            eprintln!("atlas written to {}", path.display());
        }
        Ok(())
    }

    /// The scenario of one step of `--vary`, and the x value it stands for.
    fn vary_step(
        base: &Scenario,
        param: &str,
        step: u32,
        steps: u32,
    ) -> Result<(f64, Scenario), String> {
        use fencelab::scenario::NemesisConfig;
        let f = if steps <= 1 {
            1.0
        } else {
            step as f64 / (steps - 1) as f64
        };
        let ttl_ms = base.ttl_s as f64 * 1000.0;
        let mut s = base.clone();
        match param {
            // Pause length over TTL, 0.25 to 2.5: timed and aimed GC pauses only.
            "pause-ttl" => {
                let x = 0.25 + f * 2.25;
                let ms = (x * ttl_ms).round() as u64;
                s.nemesis = NemesisConfig {
                    pause_ms: MsRange::exactly(ms),
                    ..NemesisConfig::pauses()
                };
                Ok((x, s))
            }
            // Clock drift bound, 0 to 10%, with keepalives cut by partitions, judged by a
            // client-side lease check (without it, drift alone cannot matter).
            "drift" => {
                let x = (f * 100_000.0).round();
                s.lease_check_margin_ms = s
                    .lease_check_margin_ms
                    .or(Some(fencelab::scenario::LOCAL_CHECK_MARGIN_MS));
                s.nemesis = NemesisConfig {
                    drift_ppm_max: x as i64,
                    steps_max: 0,
                    ..NemesisConfig::skew()
                };
                Ok((x, s))
            }
            // Delay of held storage requests, 0 to 3 TTL.
            "delay" => {
                let x = (f * 3.0 * ttl_ms).round();
                s.nemesis = NemesisConfig {
                    enabled: true,
                    holds_max: 2,
                    hold_ms: MsRange::exactly(x as u64),
                    ..NemesisConfig::none()
                };
                Ok((x, s))
            }
            other => Err(format!(
                "--vary {other}: expected pause-ttl, drift or delay"
            )),
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn vary_sweep(
        out: &mut String,
        scenario: &Scenario,
        policies: &[Fencing],
        range: std::ops::Range<u64>,
        jobs: usize,
        param: &str,
        steps: u32,
        plot: &Path,
    ) -> Result<(), String> {
        if !(1..=100).contains(&steps) {
            return Err(format!("--steps {steps} is outside 1..=100"));
        }
        let x_label = match param {
            "pause-ttl" => "pause length / lease TTL",
            "drift" => "clock drift bound (ppm)",
            "delay" => "request delay in the network (ms)",
            other => {
                return Err(format!(
                    "--vary {other}: expected pause-ttl, drift or delay"
                ))
            }
        };
        let mut series: Vec<fencelab::plot::Series> =
            policies.iter().map(|p| (p.to_string(), vec![])).collect();
        let _ = writeln!(out, "param,x,{CSV_HEADER}");
        for step in 0..steps {
            let (x, s) = vary_step(scenario, param, step, steps)?;
            // Printed values stay short: 1.6, not 1.5999999999999999.
            let x = (x * 1e6).round() / 1e6;
            s.validate()?;
            for (i, &fencing) in policies.iter().enumerate() {
                let summary = sweep_one(&s, fencing, range.clone(), jobs);
                let _ = writeln!(out, "{param},{x},{}", csv_row(&summary));
                series[i]
                    .1
                    .push((x, summary.rate, summary.rate_low, summary.rate_high));
            }
        }
        let title = format!(
            "violation rate vs {x_label} ({} seeds/point)",
            range.end - range.start
        );
        write_file(plot, &fencelab::plot::rate_plot(&title, x_label, &series))?;
        eprintln!("plot written to {}", plot.display());
        Ok(())
    }
}
