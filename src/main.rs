//! The `fencelab` command: a thin layer over the library.

// The allocator is the program's to choose, not the library's (see the file).
mod global_alloc;

use clap::{Args, Parser, Subcommand};
use fencelab::etcd::{Backend, Version};
use fencelab::lock::{ClientClock, LockMethod, RedlockToken, ServiceKind};
use fencelab::named::FlagParser;
use fencelab::redis::Persistence;
use fencelab::storage::Fencing;
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
    /// A named scenario (the names come from `Scenario::PRESETS`).
    #[arg(long, help = format!("A named scenario: {}", fencelab::scenario::Scenario::PRESETS.join(", ")))]
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
    /// What clients do with the lock (the names come from `WorkloadKind::NAMED`).
    #[arg(long, help = format!("What clients do with the lock: {}", fencelab::scenario::WorkloadKind::names()))]
    workload: Option<String>,
    /// Which lock service the world hosts: etcd, or Redlock's Redis nodes (then the lock method
    /// is redlock unless one is given).
    #[arg(long, value_parser = FlagParser::<ServiceKind>::new())]
    service: Option<ServiceKind>,
    /// How a client takes the lock (lock-api: the v3 Lock service).
    #[arg(long, value_parser = FlagParser::<LockMethod>::new())]
    lock_method: Option<LockMethod>,
    /// Redis nodes of a Redlock world, 1 to 9 (default 5).
    #[arg(long, value_name = "N")]
    redis_nodes: Option<u32>,
    /// How many Redis nodes must say OK, 1 to the node count (default a majority).
    #[arg(long, value_name = "N")]
    redis_quorum: Option<u32>,
    /// What a Redis node keeps across a crash.
    #[arg(long, value_parser = FlagParser::<Persistence>::new())]
    redis_persistence: Option<Persistence>,
    /// The clock a Redlock client measures its lock's validity on.
    #[arg(long, value_parser = FlagParser::<ClientClock>::new())]
    redlock_clock: Option<ClientClock>,
    /// The number a Redlock holder offers the storage: its random value, or INCR on redis1.
    #[arg(long, value_parser = FlagParser::<RedlockToken>::new())]
    redlock_token: Option<RedlockToken>,
    /// Which simulated etcd (madsim, for comparison).
    #[arg(long, value_parser = FlagParser::<Backend>::new())]
    etcd: Option<Backend>,
    /// Which etcd release the model reproduces where they differ (the Lock API).
    #[arg(long, value_parser = FlagParser::<Version>::new())]
    etcd_version: Option<Version>,
    /// etcd members of the model, 1 to 7 (default 3; `--etcd madsim` is one node).
    #[arg(long, value_name = "N")]
    etcd_members: Option<u32>,
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
    /// The nemesis' knobs, one flag each (declared with the knob in `nemesis/config.rs`).
    #[command(flatten)]
    knobs: fencelab::nemesis::NemesisFlags,
}

/// A `--scheme` flag's help: what it takes, then every scheme of the catalogue.
fn scheme_help(what: &str) -> String {
    let names: Vec<&str> = fencelab::schemes::catalogue()
        .iter()
        .map(|s| s.name)
        .collect();
    format!("{what}: {}", names.join(", "))
}

/// The flags of `demo`.
#[derive(Args, Debug)]
struct DemoArgs {
    /// Seed of the simulated world.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Whose stories: etcd's example (`contrib/lock`), or Kleppmann's on Redlock (the clock
    /// jump, the restart and the GC pause on five Redis nodes).
    #[arg(long, default_value = "etcd", value_parser = FlagParser::<ServiceKind>::new())]
    service: ServiceKind,
}

/// The flags of `run`.
#[derive(Args, Debug)]
struct RunArgs {
    #[arg(long)]
    seed: u64,
    /// The storage's fencing policy.
    #[arg(long, default_value = "token", value_parser = FlagParser::<Fencing>::new())]
    fencing: Fencing,
    /// A scheme of `compare` instead: its fence and lock recipe.
    #[arg(long, help = scheme_help("A scheme of `compare` instead, its fence and lock recipe"))]
    scheme: Option<String>,
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
    /// Also run the same plan under K noise seeds (from --seed on) and report in how many it
    /// violates: its robustness, with a 95% Wilson interval.
    #[arg(long, value_name = "K")]
    noise_seeds: Option<u64>,
    /// Print the run (plan, history, verdict) as JSON.
    #[arg(long)]
    json: bool,
}

/// The flags of `sweep`.
#[derive(Args, Debug)]
struct SweepArgs {
    #[arg(long, default_value_t = 1000)]
    seeds: u64,
    #[arg(long, default_value_t = 0)]
    start: u64,
    /// A policy, a comma-separated list of them, or `all`.
    #[arg(long, default_value = "all", help = format!("A policy ({}), a comma-separated list of them, or `all`", Fencing::names()))]
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
    /// fault (pause-ms, stall-ms, delay-ms, drift-ppm, step-ms) and a knob (ttl-s, session-s
    /// for ZooKeeper, margin-ms).
    #[arg(long)]
    vary: Vec<String>,
    /// Steps of the varied parameter.
    #[arg(long, default_value_t = 6)]
    steps: u32,
    /// Where `--vary` draws its plot (an atlas: one FILE-POLICY.svg per policy).
    #[arg(long, value_name = "FILE.svg", default_value = "sweep.svg")]
    plot: PathBuf,
}

/// `explore --noise-seeds`' default: `robust::NOISE_SEEDS_DEFAULT`, which only the simulation
/// build has (the two are held equal at compile time in `cli/explore.rs`).
const NOISE_SEEDS_DEFAULT: u64 = 20;

/// The flags of `explore`.
#[derive(Args, Debug)]
struct ExploreArgs {
    /// The storage's fencing policy.
    #[arg(long, default_value = "none", value_parser = FlagParser::<Fencing>::new())]
    fencing: Fencing,
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
    /// K: the noise seeds each plan is measured over while shrinking.
    #[arg(long, value_name = "K", default_value_t = NOISE_SEEDS_DEFAULT)]
    noise_seeds: u64,
    /// The share of the K noise seeds (0 to 1) a shrunk plan must still violate in (default:
    /// half the original plan's own share).
    #[arg(long, value_name = "SHARE")]
    robust_share: Option<f64>,
    /// Save the shrunk counterexample, with its robustness and each fault's evidence, for
    /// `replay`.
    #[arg(long, value_name = "FILE.json")]
    save: Option<PathBuf>,
    /// Draw the most typical noise seed's run as a timeline picture.
    #[arg(long, value_name = "FILE.svg")]
    timeline: Option<PathBuf>,
    /// One JSON object: fencing, found, cases, faults_before, faults_after, plan, robustness,
    /// evidence.
    #[arg(long)]
    json: bool,
}

/// The flags of `replay`.
#[derive(Args, Debug)]
struct ReplayArgs {
    file: PathBuf,
    #[arg(long, value_name = "FILE.svg")]
    timeline: Option<PathBuf>,
    /// Also run the plan under K noise seeds (from the saved seed on; default: the noise
    /// `explore --save` measured, if saved) and report its robustness.
    #[arg(long, value_name = "K")]
    noise_seeds: Option<u64>,
    #[arg(long)]
    json: bool,
}

/// The flags of `merge`.
#[derive(Args, Debug)]
struct MergeArgs {
    #[arg(required = true, value_name = "FILE|DIR")]
    files: Vec<PathBuf>,
    #[arg(long, conflicts_with = "csv")]
    json: bool,
    #[arg(long)]
    csv: bool,
}

#[derive(Subcommand)]
enum Command {
    /// Tell the walkthrough of etcd's example, `contrib/lock` (and its stalled variant), under every fencing policy;
    /// with `--service redlock`, Kleppmann's Redlock stories under every fence that runs on Redlock.
    Demo(DemoArgs),
    /// Run one seed and tell its story.
    Run(RunArgs),
    /// Run many seeds on every core; a table per policy.
    Sweep(SweepArgs),
    /// Search fault schedules with proptest and shrink a violation, while it stays robust
    /// under noise, to a minimal plan.
    Explore(ExploreArgs),
    /// Re-run a saved experiment (from `run --save` or `explore --save`) and tell its story.
    Replay(ReplayArgs),
    /// Combine `sweep --json` outputs of shards into one table: files, or directories whose
    /// `*.jsonl` files are read in name order.
    Merge(MergeArgs),
    /// Every scheme (rows) against every fault family (columns) on the same seeds and plans:
    /// violating seeds with their 95% Wilson interval, false rejections, stale acceptances.
    Compare(compare::CompareArgs),
    /// Real mode: the storage server over real HTTP.
    #[cfg(not(madsim))]
    Storage(fencelab::real::StorageArgs),
    /// Real mode: `contrib/lock`'s client N against a real etcd and storage.
    #[cfg(not(madsim))]
    Client(fencelab::real::ClientArgs),
    /// Real mode: the walkthrough of etcd's example, unattended, against a real etcd, per policy.
    #[cfg(not(madsim))]
    RealDemo(fencelab::real::DemoArgs),
    /// Real mode: Kleppmann's clock jump on Redlock against five real redis-servers (a double
    /// grant), and what each fence makes of the stale write.
    #[cfg(not(madsim))]
    RealRedlockDemo(fencelab::real::RedlockDemoArgs),
    /// Real mode: the walkthrough of etcd's example on a real ZooKeeper with Curator's lock:
    /// client 1 stopped past its session timeout, client 2 takes the lock, client 1's stale
    /// write with its old czxid, per policy.
    #[cfg(not(madsim))]
    RealZkDemo(fencelab::real::ZkDemoArgs),
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
        Command::RealRedlockDemo(args) => fencelab::real::redlock_demo(args),
        Command::RealZkDemo(args) => fencelab::real::zk_demo(args),
        _ => Err("this subcommand runs the simulation: build without RUSTFLAGS (the default .cargo/config.toml sets --cfg madsim)".into()),
    }
}

#[path = "cli/compare.rs"]
mod compare;

#[cfg(madsim)]
use sim::run;

#[cfg(madsim)]
#[path = "cli/sim.rs"]
mod sim;
