//! `explore`: a proptest search of fault schedules, shrunk on robustness, and its report.

use super::{draw_timeline, write_file, ExploreArgs, ScenarioArgs};
use fencelab::explore::{self, Exploration, Settings};
use fencelab::ms::MsRange;
use fencelab::robust::Explanation;
use fencelab::world::Experiment;
use fencelab::{report, sweep};
use std::fmt::Write;

// The command's default K is the library's.
const _: () = assert!(crate::NOISE_SEEDS_DEFAULT == fencelab::robust::NOISE_SEEDS_DEFAULT);

/// The space `explore` searches: it chooses clients, TTL and critical sections unless a flag
/// pins them.
fn explore_space(scenario: &ScenarioArgs, critical_ms_top: u64) -> Result<explore::Space, String> {
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
    Ok(space)
}

/// The shrunk counterexample as an experiment at its most typical noise seed, with what
/// explore measured of it.
fn experiment(found: &Exploration, fencing: fencelab::storage::Fencing) -> Option<Experiment> {
    let (case, evidence) = (found.case.as_ref()?, found.evidence.as_ref()?);
    Some(Experiment {
        seed: evidence.typical_seed.unwrap_or(case.seed),
        fencing,
        scheme: None,
        scenario: found.scenario.clone()?,
        plan: found.plan.clone()?,
        explanation: Some(Explanation {
            original: found.original.clone()?,
            faults_before: found.faults_before,
            share: found.share,
            need: found.need,
            evidence: evidence.clone(),
        }),
    })
}

/// `explore`: search, shrink on robustness, then tell the plan, its evidence and the story of
/// its most typical noise seed.
pub(super) fn explore(args: ExploreArgs, out: &mut String) -> Result<(), String> {
    let ExploreArgs {
        fencing,
        scenario,
        cases,
        critical_ms_top,
        search_seed,
        noise_seeds,
        robust_share,
        save,
        timeline,
        json,
    } = args;
    let base = scenario.build()?;
    if !(1..=1_000_000).contains(&cases) {
        return Err(format!("--cases {cases} is outside 1..=1000000"));
    }
    let settings = Settings {
        noise_seeds,
        share: robust_share,
        jobs: sweep::default_jobs(),
    };
    settings.validate()?;
    let space = explore_space(&scenario, critical_ms_top)?;
    let config = explore::config(cases, search_seed, None);
    let builder = fencelab::world::Builder::new(base).fencing(fencing);
    let found = explore::explore_with(&builder, config, &space, &settings);
    let exp = experiment(&found, fencing);
    if let (Some(path), Some(exp)) = (&save, &exp) {
        write_file(path, &serde_json::to_string_pretty(exp).expect("json"))?;
    }
    if json {
        return writeln!(out, "{}", json_doc(&found, fencing)).map_err(|e| e.to_string());
    }
    let _ = writeln!(
        out,
        "explored {} cases ({} runs) in {:.1} s under fencing={fencing}",
        found.cases, found.runs, found.wall_s,
    );
    let Some(exp) = exp else {
        let _ = writeln!(out, "no violation found");
        return Ok(());
    };
    tell_found(out, &found, &exp);
    let run = exp.run();
    draw_timeline(&timeline, &exp, &run)?;
    let _ = writeln!(
        out,
        "story of noise seed {} (the most typical violating one):",
        exp.seed
    );
    out.push_str(&report::story_excerpt(&run));
    let _ = write!(
        out,
        "{}",
        report::verdict(&run.verdict).lines().next().unwrap_or("")
    );
    out.push('\n');
    let file = save
        .as_ref()
        .map_or("FILE.json".to_string(), |p| p.display().to_string());
    let add = if save.is_some() {
        ""
    } else {
        "add --save FILE.json, then "
    };
    let _ = writeln!(out, "replay: {add}cargo run --release -- replay {file}");
    Ok(())
}

/// What `explore --json` prints: one object.
fn json_doc(found: &Exploration, fencing: fencelab::storage::Fencing) -> serde_json::Value {
    serde_json::json!({
        "fencing": fencing,
        "found": found.found,
        "cases": found.cases,
        "runs": found.runs,
        "faults_before": found.faults_before,
        "faults_after": found.faults_after,
        "plan": found.plan,
        "original": found.original,
        "share": found.share,
        "need": found.need,
        "evidence": found.evidence,
    })
}

/// The shrunk plan: where it came from, the plan, its robustness and each fault's evidence.
fn tell_found(out: &mut String, found: &Exploration, exp: &Experiment) {
    let e = exp.explanation.as_ref().expect("explore's experiment");
    let s = &exp.scenario;
    let _ = writeln!(
        out,
        "shrunk {} fault(s) to {}, keeping each step only while it violated in at least {} of {} noise seeds (share {:.2}); {} clients, TTL {} s, critical sections up to {} ms",
        e.faults_before,
        found.faults_after,
        e.need,
        e.original.noise.count,
        e.share,
        s.clients,
        s.ttl_s,
        s.critical_ms.max
    );
    let _ = writeln!(out, "before shrinking: violates in {}", e.original.text());
    let _ = writeln!(
        out,
        "plan: {}",
        serde_json::to_string(&exp.plan).expect("json")
    );
    let n = e.evidence.robustness.noise;
    let _ = writeln!(
        out,
        "noise seeds {}..{} (the plan fixed):",
        n.first,
        n.first + n.count - 1
    );
    out.push_str(&e.evidence.text());
}
