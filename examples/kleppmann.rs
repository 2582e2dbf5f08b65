//! Kleppmann against antirez, run: every scheme on Kleppmann's scripted scenarios and on the
//! random nemesis, on etcd and on Redlock, as the README's table.
//!
//! `cargo run --release --example kleppmann [SEEDS]` (default 200): each cell is the number of
//! seeds, of SEEDS, in which the scheme let a safety violation through. A scripted scenario
//! keeps its faults on every seed; the seed changes the noise (latencies, scheduling, the
//! clients' draws). `-` marks a scheme that does not run on that service (the sequencer and
//! lock-delay ask etcd; an INCR token is Redis's).

#[path = "../src/global_alloc.rs"]
mod global_alloc;

#[cfg(not(madsim))]
fn main() {
    eprintln!("the example runs the simulation: run it without RUSTFLAGS");
}

#[cfg(madsim)]
fn main() {
    use fencelab::fault::FaultPlan;
    use fencelab::scenario::Scenario;
    use fencelab::{schemes, sweep, world::Builder};

    let seeds: u64 = std::env::args()
        .nth(1)
        .map(|s| s.parse().expect("SEEDS: a number"))
        .unwrap_or(200);
    let load = |name: &str| {
        let path = format!("{}/sims/scenarios/{name}.toml", env!("CARGO_MANIFEST_DIR"));
        let text = std::fs::read_to_string(&path).expect("scenario file");
        Scenario::from_toml(&text).expect("valid scenario")
    };
    // (column, scenario, whether the scenario's scripted plan is every seed's plan)
    let columns: Vec<(&str, Scenario, bool)> = vec![
        ("etcd: GC pause", load("kleppmann-gc-pause"), true),
        (
            "etcd: delayed packet",
            load("kleppmann-delayed-packet"),
            true,
        ),
        ("etcd: clock jump", load("kleppmann-clock-jump"), true),
        ("etcd: random nemesis", Scenario::standard(), false),
        (
            "Redlock: GC pause",
            load("kleppmann-redlock-gc-pause"),
            true,
        ),
        (
            "Redlock: clock jump",
            load("kleppmann-redlock-clock-jump"),
            true,
        ),
        ("Redlock: restart", load("kleppmann-redlock-restart"), true),
        (
            "Redlock: random nemesis",
            Scenario::preset("redlock").expect("preset"),
            false,
        ),
    ];
    let jobs = sweep::default_jobs();
    let head: Vec<&str> = columns.iter().map(|c| c.0).collect();
    println!("| scheme | {} |", head.join(" | "));
    println!("|---|{}", "---|".repeat(columns.len()));
    for scheme in schemes::catalogue() {
        let cells: Vec<String> = columns
            .iter()
            .map(|(_, scenario, scripted)| {
                if scheme.validate(scenario).is_err() {
                    return "-".to_string();
                }
                let builder = Builder::new(scenario.clone()).scheme(&scheme);
                let plan = FaultPlan {
                    faults: scenario.faults.clone(),
                };
                let violating = sweep::map_seeds(0..seeds, jobs, |seed| {
                    let b = match scripted {
                        true => builder.clone().plan(plan.clone()),
                        false => builder.clone(),
                    };
                    b.seed(seed).run().verdict.violates()
                });
                format!("{}/{seeds}", violating.iter().filter(|v| **v).count())
            })
            .collect();
        println!("| {} | {} |", scheme.name, cells.join(" | "));
    }
}
