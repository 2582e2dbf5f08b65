//! Draws the timeline pictures kept in `docs/`:
//! `cargo run --release --example pictures [-- OUT_DIR]` (default `docs`).
//!
//! - `timeline-walkthrough-none.svg`: the walkthrough of etcd's example, no fencing, seed 1;
//! - `timeline-standard-none.svg`: the standard scenario, no fencing, seed 0, with the fault
//!   plan the nemesis draws for seed 0.

#[cfg(madsim)]
fn main() {
    use fencelab::nemesis;
    use fencelab::scenario::Scenario;
    use fencelab::storage::Fencing;
    use fencelab::{stories, timeline, world};

    let dir = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "docs".to_string());
    let (walk, walk_plan) = stories::contrib_lock_walkthrough();
    let standard = Scenario::standard();
    let standard_plan = nemesis::draw(&standard, 0);
    let pictures = [
        (
            "timeline-walkthrough-none.svg",
            "The walkthrough of etcd's example, no fencing (seed 1)",
            &walk,
            &walk_plan,
            1,
        ),
        (
            "timeline-standard-none.svg",
            "Standard scenario, no fencing (seed 0, nemesis plan of seed 0)",
            &standard,
            &standard_plan,
            0,
        ),
    ];
    for (file, title, scenario, plan, seed) in pictures {
        let run = world::run(scenario, plan, Fencing::None, seed);
        let svg = timeline::render(&run.history, &run.verdict, scenario, plan, title);
        let path = std::path::Path::new(&dir).join(file);
        if let Err(e) = std::fs::write(&path, &svg) {
            eprintln!("cannot write {}: {e}", path.display());
            std::process::exit(1);
        }
        println!("{} ({} bytes)", path.display(), svg.len());
    }
}

#[cfg(not(madsim))]
fn main() {
    eprintln!("pictures runs the simulation: build with --cfg madsim (the default in this repo)");
    std::process::exit(2);
}
