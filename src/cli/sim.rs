//! The simulation's subcommands (`--cfg madsim`): run, replay, demo, sweep, merge, explore
//! (and compare, in `compare.rs`).

use super::{
    Command, DemoArgs, ExploreArgs, MergeArgs, ReplayArgs, RunArgs, ScenarioArgs, SweepArgs,
};
use fencelab::atlas;
use fencelab::fault::FaultPlan;
use fencelab::lock::ServiceKind;
use fencelab::ms::MsRange;
use fencelab::nemesis::NemesisConfig;
use fencelab::nemesis::{self};
use fencelab::scenario::Scenario;
use fencelab::storage::Fencing;
use fencelab::sweep::{self, Summary};
use fencelab::world::{Experiment, Run};
use fencelab::{report, robust, stories};
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
        let entries =
            std::fs::read_dir(arg).map_err(|e| format!("cannot read {}: {e}", arg.display()))?;
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
    pub(crate) fn build(&self) -> Result<Scenario, String> {
        let mut s = match (&self.scenario, &self.preset) {
            (Some(path), _) => Scenario::from_toml(&read(path)?)
                .map_err(|e| format!("bad scenario {}: {e}", path.display()))?,
            (None, Some(p)) => Scenario::preset(p)?,
            (None, None) => Scenario::standard(),
        };
        self.override_nemesis(&mut s.nemesis)?;
        macro_rules! set {
            ($($flag:ident => $field:expr),* $(,)?) => {$(
                if let Some(v) = self.$flag.clone() { $field = v; }
            )*};
        }
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
        self.override_service(&mut s);
        if let Some(e) = self.etcd {
            s.etcd = e;
            // SimServer is one node: choosing it chooses one member, unless said otherwise
            // (then validation names the conflict).
            if s.etcd == fencelab::etcd::Backend::Madsim {
                s.etcd_members = 1;
            }
        }
        if let Some(n) = self.etcd_members {
            s.etcd_members = n;
        }
        if let Some(v) = self.etcd_version {
            s.etcd_version = v;
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

    /// The lock service and its settings. Choosing a service without a lock method chooses
    /// the service's own (redlock, or etcd's election), unless the scenario's already fits.
    fn override_service(&self, s: &mut Scenario) {
        use fencelab::lock::{LockMethod, ServiceKind};
        if let Some(service) = self.service {
            s.service = service;
            if self.lock_method.is_none() && s.lock_method.service() != service {
                s.lock_method = match service {
                    ServiceKind::Etcd => LockMethod::Election,
                    ServiceKind::Redlock => LockMethod::Redlock,
                    ServiceKind::Zk => LockMethod::Curator,
                };
            }
        }
        if let Some(m) = self.lock_method {
            s.lock_method = m;
        }
        if let Some(n) = self.redis_nodes {
            s.redis.nodes = n;
        }
        if let Some(q) = self.redis_quorum {
            s.redis.quorum = Some(q);
        }
        if let Some(p) = self.redis_persistence {
            s.redis.persistence = p;
        }
        if let Some(c) = self.redlock_clock {
            s.redis.clock = c;
        }
        if let Some(t) = self.redlock_token {
            s.redis.token = t;
        }
    }

    /// The nemesis flags over the file's or preset's nemesis: each flag given replaces its
    /// knob; ranges are parsed here so that an error names the flag.
    fn override_nemesis(&self, n: &mut NemesisConfig) -> Result<(), String> {
        if let Some(switch) = &self.nemesis {
            n.enabled = switch == "on";
        }
        self.knobs.apply(n)
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
    // The workload's own counts, when it has any; the set's lost adds as a fraction of the
    // acknowledged ones, with the Wilson interval of that fraction.
    for s in summaries.iter().filter(|s| !s.tallies.is_empty()) {
        let counts: Vec<String> = s.tallies.iter().map(|(k, v)| format!("{k} {v}")).collect();
        let _ = write!(t, "{:<13} {}", s.fencing.as_str(), counts.join(", "));
        let (acked, lost) = (s.tallies.get("adds-acked"), s.tallies.get("adds-lost"));
        if let (Some(&acked), Some(&lost)) = (acked, lost) {
            let (low, high) = sweep::wilson(lost, acked);
            let rate = lost as f64 / acked.max(1) as f64;
            let _ = write!(
                t,
                ": {:.2}% of acknowledged adds lost [{:.2}, {:.2}]",
                rate * 100.0,
                low * 100.0,
                high * 100.0
            );
        }
        t.push('\n');
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

/// One function per subcommand: the dispatch only.
pub fn run(command: Command, out: &mut String) -> Result<(), String> {
    match command {
        Command::Demo(args) => demo(args, out),
        Command::Run(args) => run_one(args, out),
        Command::Replay(args) => replay(args, out),
        Command::Sweep(args) => sweep(args, out),
        Command::Merge(args) => merge(args, out),
        Command::Explore(args) => explore(args, out),
        Command::Compare(args) => super::compare::run(args, out),
    }
}

/// `demo`: the walkthroughs of etcd's example under every policy.
fn demo(args: DemoArgs, out: &mut String) -> Result<(), String> {
    let DemoArgs { seed, service } = args;
    if service == ServiceKind::Redlock {
        return redlock_demo(seed, out);
    }
    for (title, (scenario, plan)) in [
        ("etcd's example", stories::contrib_lock_walkthrough()),
        (
            "client 2 stalls before writing",
            stories::contrib_lock_walkthrough_stalled(),
        ),
    ] {
        for fencing in Fencing::ALL {
            let run = fencelab::world::run(&scenario, &plan, fencing, seed);
            let _ = writeln!(out, "{}", report::run_report(title, &run));
        }
    }
    Ok(())
}

/// What the fence lines of a Redlock story cannot say by themselves.
const REDLOCK_FENCE_NOTE: &str = "  (token-writes, token and token-strict compare Redlock's random values, \
which are in no order: they refuse the stale write only when its value happens to be the lower, as `compare` \
counts; the incr-token fences compare an INCR counter on redis1, which a restart of redis1 without persistence \
resets; random-cas claims the key with a read, and these stories write without one, so it refuses every write)";

/// `demo --service redlock`: each of Kleppmann's Redlock stories told unfenced, in the
/// history's words, then one line per fence that runs on Redlock (the same seed and plan).
fn redlock_demo(seed: u64, out: &mut String) -> Result<(), String> {
    for (name, title, scenario, plan) in stories::kleppmann_redlock() {
        let run = fencelab::world::run(&scenario, &plan, Fencing::None, seed);
        let title = format!("{title} (sims/scenarios/{name}.toml)");
        let _ = write!(out, "{}", report::redlock_report(&title, &run));
        let _ = writeln!(out, "what each fence did (the same seed and plan):");
        for scheme in fencelab::schemes::catalogue() {
            let exp = Experiment {
                seed,
                fencing: Fencing::None,
                scheme: Some(scheme.name.to_string()),
                scenario: scenario.clone(),
                plan: plan.clone(),
                explanation: None,
            };
            // Schemes of etcd only (a sequencer, lock-delay) do not run here.
            if exp.validate().is_err() {
                continue;
            }
            let _ = write!(out, "{}", report::fence_line(scheme.name, &exp.run()));
        }
        let _ = writeln!(out, "{REDLOCK_FENCE_NOTE}");
        let _ = writeln!(
            out,
            "timeline: fencelab run --seed {seed} --fencing none --scenario sims/scenarios/{name}.toml --timeline {name}.svg\n"
        );
    }
    Ok(())
}

/// `run`: one seed (or a saved plan), told and optionally drawn and saved.
fn run_one(args: RunArgs, out: &mut String) -> Result<(), String> {
    let RunArgs {
        seed,
        fencing,
        scheme,
        scenario,
        plan,
        timeline,
        save,
        noise_seeds,
        json,
    } = args;
    let noise = noise_of(seed, noise_seeds)?;
    let scenario = scenario.build()?;
    let plan = match plan {
        Some(path) => serde_json::from_str::<FaultPlan>(&read(&path)?)
            .map_err(|e| format!("bad plan {}: {e}", path.display()))?,
        None => nemesis::draw(&scenario, seed),
    };
    let exp = Experiment {
        seed,
        fencing,
        scheme,
        scenario,
        plan,
        explanation: None,
    };
    exp.validate()?;
    let run = exp.run();
    if let Some(path) = save {
        write_file(&path, &serde_json::to_string_pretty(&exp).expect("json"))?;
    }
    draw_timeline(&timeline, &exp, &run)?;
    tell(out, &format!("seed {seed}"), &exp, &run, json);
    if let Some(noise) = noise {
        tell_robustness(out, &exp, noise, json);
    }
    Ok(())
}

/// `--noise-seeds K` from `seed` on, checked; `None` when not asked.
fn noise_of(seed: u64, k: Option<u64>) -> Result<Option<robust::Noise>, String> {
    k.map(|k| robust::Noise::new(seed, k).map_err(|e| format!("--noise-seeds: {e}")))
        .transpose()
}

/// The experiment's plan under every noise seed: its robustness, and each fault's robustness
/// without it (a line each; one JSON object with `--json`).
fn tell_robustness(out: &mut String, exp: &Experiment, noise: robust::Noise, json: bool) {
    let judge = robust::violation_judge(None);
    let jobs = sweep::default_jobs();
    let evidence = robust::Evidence::measure(&exp.builder(), &exp.plan, noise, jobs, &judge);
    if json {
        let doc = serde_json::json!({ "robustness": evidence });
        let _ = writeln!(out, "{doc}");
        return;
    }
    let _ = writeln!(
        out,
        "noise seeds {}..{} (the plan fixed):",
        noise.first,
        noise.first + noise.count - 1
    );
    out.push_str(&evidence.text());
    if let Some(seed) = evidence.typical_seed {
        let _ = writeln!(out, "most typical violating noise seed: {seed}");
    }
}

/// `replay`: a saved experiment, run again and told.
fn replay(args: ReplayArgs, out: &mut String) -> Result<(), String> {
    let ReplayArgs {
        file,
        timeline,
        noise_seeds,
        json,
    } = args;
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
    let saved = exp
        .explanation
        .as_ref()
        .map(|e| e.evidence.robustness.noise);
    let noise = noise_of(exp.seed, noise_seeds)?.or(saved);
    if let Some(noise) = noise {
        tell_robustness(out, &exp, noise, json);
    }
    if let (Some(e), false) = (&exp.explanation, json) {
        let _ = writeln!(
            out,
            "saved by explore: violates in {}",
            e.evidence.robustness.text()
        );
    }
    Ok(())
}

/// `sweep`: many seeds per policy, or a sweep of one or two varied parameters.
fn sweep(args: SweepArgs, out: &mut String) -> Result<(), String> {
    let SweepArgs {
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
    } = args;
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
        [param] => return vary_sweep(out, &scenario, &policies, range, jobs, param, steps, &plot),
        [a, b] => {
            let axes = atlas::Axes::new(a.parse()?, b.parse()?)?;
            return atlas_sweep(out, &scenario, &policies, range, jobs, axes, steps, &plot);
        }
        more => return Err(format!("--vary given {} times: at most 2", more.len())),
    }
    let summaries: Vec<Summary> = policies
        .iter()
        .map(|&f| sweep_one(&scenario, f, range.clone(), jobs))
        .collect();
    print_summaries(out, &summaries, json, csv);
    Ok(())
}

/// `merge`: the shards of a sweep, one summary per policy.
fn merge(args: MergeArgs, out: &mut String) -> Result<(), String> {
    let MergeArgs { files, json, csv } = args;
    let mut by_policy: std::collections::BTreeMap<Fencing, Vec<Summary>> = Default::default();
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
    let svg =
        fencelab::timeline::render(&run.history, &run.verdict, &exp.scenario, &exp.plan, &title);
    write_file(path, &svg)
}

#[path = "vary.rs"]
mod vary;
use vary::{atlas_sweep, vary_sweep};

#[path = "explore.rs"]
mod explore_cli;
use explore_cli::explore;
