//! The `fencelab` command.

use clap::{Parser, Subcommand};
use std::io::Write;

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
        /// A named scenario: standard, long-critical, local-check-pauses, local-check-skew.
        #[arg(long, default_value = "standard")]
        preset: String,
        /// Run this fault plan (JSON) instead of the one the seed draws.
        #[arg(long)]
        plan: Option<std::path::PathBuf>,
        /// Print the run (history, verdict, plan) as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Run many seeds on every core and summarize per policy.
    Sweep {
        #[arg(long, default_value_t = 1000)]
        seeds: u64,
        #[arg(long, default_value_t = 0)]
        start: u64,
        /// A policy or `all`.
        #[arg(long, default_value = "all")]
        fencing: String,
        #[arg(long, default_value = "standard")]
        preset: String,
        /// Threads (default: every core).
        #[arg(long)]
        jobs: Option<usize>,
        /// One JSON object per policy.
        #[arg(long)]
        json: bool,
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
    let cli = Cli::parse();
    let mut out = String::new();
    let code = match run(cli.command, &mut out) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("error: {e}");
            2
        }
    };
    // A closed pipe (`| head`) is not an error worth a panic.
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
fn run(command: Command, out: &mut String) -> Result<(), String> {
    use fencelab::nemesis::{self, FaultPlan};
    use fencelab::scenario::Scenario;
    use fencelab::storage::Fencing;
    use fencelab::{report, stories, sweep, world};
    use std::fmt::Write;

    let policies = |s: &str| -> Result<Vec<Fencing>, String> {
        if s == "all" {
            Ok(Fencing::ALL.to_vec())
        } else {
            Ok(vec![s.parse()?])
        }
    };
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
                    let run = world::run(&scenario, &plan, fencing, seed);
                    let _ = writeln!(out, "{}", report::run_report(title, &run));
                }
            }
        }
        Command::Run {
            seed,
            fencing,
            preset,
            plan,
            json,
        } => {
            let fencing: Fencing = fencing.parse()?;
            let scenario = Scenario::preset(&preset)?;
            let plan = match plan {
                Some(path) => {
                    let text = std::fs::read_to_string(&path)
                        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
                    let plan: FaultPlan = serde_json::from_str(&text)
                        .map_err(|e| format!("bad plan {}: {e}", path.display()))?;
                    plan.validate(&scenario.client_names())
                        .map_err(|e| format!("bad plan {}: {e}", path.display()))?;
                    plan
                }
                None => nemesis::draw(&scenario, seed),
            };
            let run = world::run(&scenario, &plan, fencing, seed);
            if json {
                let doc = serde_json::json!({ "plan": plan, "run": run });
                let _ = writeln!(out, "{doc}");
            } else {
                let _ = writeln!(out, "plan ({} faults):", plan.len());
                for f in &run.faults {
                    let _ = writeln!(
                        out,
                        "  {} [{:?}: {}]",
                        f.fault.describe(),
                        f.assumption,
                        f.why
                    );
                }
                let _ = write!(out, "{}", report::run_report(&preset, &run));
            }
        }
        Command::Sweep {
            seeds,
            start,
            fencing,
            preset,
            jobs,
            json,
        } => {
            let scenario = Scenario::preset(&preset)?;
            let jobs = jobs.unwrap_or_else(sweep::default_jobs);
            if jobs == 0 || jobs > 1024 {
                return Err(format!("--jobs {jobs} is outside 1..=1024"));
            }
            if seeds == 0 || seeds > sweep::SEEDS_MAX {
                return Err(format!(
                    "--seeds {seeds} is outside 1..={}",
                    sweep::SEEDS_MAX
                ));
            }
            for fencing in policies(&fencing)? {
                let (summary, _) =
                    sweep::sweep_summary(&scenario, fencing, start..start + seeds, jobs);
                if json {
                    let _ = writeln!(out, "{}", serde_json::to_string(&summary).unwrap());
                } else {
                    let _ = writeln!(
                        out,
                        "{} seeds_per_sec={:.0} realtime_x={:.0} peak_rss_mb={:.1}",
                        summary.line(),
                        summary.seeds_per_sec,
                        summary.realtime_x,
                        sweep::peak_rss_mb().unwrap_or(f64::NAN)
                    );
                }
            }
        }
    }
    Ok(())
}
