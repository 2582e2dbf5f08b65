//! Pictures of real runs: the timeline SVG of the seed walkthrough and of a standard run.
#![cfg(madsim)]

// mimalloc, as in every binary of the package (the library sets no allocator).
#[path = "../src/global_alloc.rs"]
mod global_alloc;

use fencelab::nemesis::{self, FaultPlan};
use fencelab::scenario::Scenario;
use fencelab::storage::Fencing;
use fencelab::stories;
use fencelab::timeline;
use fencelab::world;

fn picture(scenario: &Scenario, plan: &FaultPlan, fencing: Fencing, seed: u64) -> (String, usize) {
    let run = world::run(scenario, plan, fencing, seed);
    let svg = timeline::render(&run.history, &run.verdict, scenario, plan, "test picture");
    let finding_events: std::collections::BTreeSet<usize> =
        run.verdict.findings.iter().map(|f| f.event).collect();
    (svg, finding_events.len())
}

fn lanes(doc: &roxmltree::Document<'_>) -> Vec<String> {
    doc.descendants()
        .filter(|n| n.attribute("class") == Some("lane"))
        .filter_map(|n| n.attribute("data-node").map(str::to_string))
        .collect()
}

fn halos(doc: &roxmltree::Document<'_>) -> usize {
    doc.descendants()
        .filter(|n| n.attribute("class") == Some("finding"))
        .count()
}

#[test]
fn walkthrough_without_fencing_shows_its_violation() {
    let (scenario, plan) = stories::seed_walkthrough();
    let (svg, finding_events) = picture(&scenario, &plan, Fencing::None, 1);
    let doc = roxmltree::Document::parse(&svg).expect("well-formed XML");
    assert_eq!(lanes(&doc), ["client1", "client2", "etcd", "storage"]);
    assert!(
        finding_events > 0,
        "the walkthrough violates without fencing"
    );
    assert_eq!(halos(&doc), finding_events);
    // The pause and client 1's belief outliving etcd's are drawn.
    assert!(svg.contains("class=\"fault\""));
    assert!(svg.contains("class=\"zombie\""));
}

#[test]
fn walkthrough_with_token_fencing_has_no_highlight() {
    let (scenario, plan) = stories::seed_walkthrough();
    let (svg, finding_events) = picture(&scenario, &plan, Fencing::Token, 1);
    let doc = roxmltree::Document::parse(&svg).expect("well-formed XML");
    assert_eq!(finding_events, 0);
    assert_eq!(halos(&doc), 0);
}

#[test]
fn standard_run_picture_is_one_lane_per_node_and_replays_byte_for_byte() {
    let scenario = Scenario::standard();
    let plan = nemesis::draw(&scenario, 0);
    let (a, finding_events) = picture(&scenario, &plan, Fencing::None, 0);
    let (b, _) = picture(&scenario, &plan, Fencing::None, 0);
    assert!(a == b, "two renders of the same run differ");
    let doc = roxmltree::Document::parse(&a).expect("well-formed XML");
    assert_eq!(
        lanes(&doc),
        ["client1", "client2", "client3", "etcd", "storage"]
    );
    assert_eq!(halos(&doc), finding_events);
    assert!(a.len() < 200_000, "picture is {} bytes", a.len());
}
