//! Pictures of real runs: the timeline SVG of the walkthrough of etcd's example, of a standard run and of
//! a run whose etcd leader is paused.
#![cfg(madsim)]

// mimalloc, as in every binary of the package (the library sets no allocator).
#[path = "../src/global_alloc.rs"]
mod global_alloc;

use fencelab::fault::{Fault, FaultPlan, Trigger};
use fencelab::nemesis::NemesisConfig;
use fencelab::nemesis::{self};
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
    let (scenario, plan) = stories::contrib_lock_walkthrough();
    let (svg, finding_events) = picture(&scenario, &plan, Fencing::None, 1);
    let doc = roxmltree::Document::parse(&svg).expect("well-formed XML");
    // The walkthrough runs on one etcd, as etcd's example does: no member lanes.
    assert_eq!(scenario.etcd_members, 1);
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
    let (scenario, plan) = stories::contrib_lock_walkthrough();
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
        ["client1", "client2", "client3", "etcd", "etcd1", "etcd2", "etcd3", "storage"]
    );
    assert_eq!(halos(&doc), finding_events);
    assert!(a.len() < 200_000, "picture is {} bytes", a.len());
}

/// The member lanes' leader bands (`rect class="leader"`): (member, title), in order.
fn leader_bands(doc: &roxmltree::Document<'_>) -> Vec<(String, String)> {
    doc.descendants()
        .filter(|n| n.attribute("class") == Some("leader"))
        .map(|n| {
            let title = n
                .children()
                .find(|c| c.has_tag_name("title"))
                .and_then(|t| t.text())
                .unwrap_or_default();
            let node = n.attribute("data-node").unwrap_or_default();
            (node.to_string(), title.to_string())
        })
        .collect()
}

#[test]
fn leader_pause_moves_the_leader_band_to_another_member() {
    let pause = Fault::Pause {
        node: "etcd:leader".into(),
        at: Trigger::AtMs(3_000),
        duration_ms: 5_000,
    };
    let scenario = Scenario {
        etcd_members: 3,
        nemesis: NemesisConfig::off(),
        faults: vec![pause],
        ..Scenario::standard()
    };
    let plan = nemesis::draw(&scenario, 0);
    let (svg, finding_events) = picture(&scenario, &plan, Fencing::Token, 0);
    let doc = roxmltree::Document::parse(&svg).expect("well-formed XML");
    assert_eq!(
        lanes(&doc),
        ["client1", "client2", "client3", "etcd", "etcd1", "etcd2", "etcd3", "storage"]
    );
    assert_eq!(halos(&doc), finding_events);
    // etcd1 leads from the start until it is replaced while paused; another member leads
    // from its election on.
    let bands = leader_bands(&doc);
    assert!(bands.len() >= 2, "bands: {bands:?}");
    let (first, title) = &bands[0];
    assert_eq!(first, "etcd1");
    assert!(
        title.starts_with("etcd1 leads in term 1 from 0.000 s"),
        "{title}"
    );
    let (second, title) = &bands[1];
    assert!(second != "etcd1", "bands: {bands:?}");
    assert!(title.contains("elected leader of term 2"), "{title}");
    assert!(svg.contains(">leader, term 2</text>"));
    // The pause is drawn on the leader's lane, and ends when it resumed.
    let pause = doc
        .descendants()
        .filter(|n| n.attribute("class") == Some("fault"))
        .filter_map(|n| n.children().find(|c| c.has_tag_name("title")))
        .filter_map(|t| t.text())
        .find(|t| t.starts_with("etcd1: paused for 5000 ms (etcd:leader; leader etcd1 (term 1))"))
        .expect("the leader's pause on etcd1's lane");
    assert!(pause.ends_with("(3.000 s to 8.000 s)"), "{pause}");
    // Its stepping down and the election are marked with their words.
    let marks: Vec<&str> = doc
        .descendants()
        .filter(|n| n.attribute("class") == Some("leadership"))
        .filter_map(|n| n.children().find(|c| c.has_tag_name("title")))
        .filter_map(|t| t.text())
        .collect();
    assert!(
        marks
            .iter()
            .any(|m| m.starts_with("etcd1 at ") && m.contains("stepped down")),
        "{marks:?}"
    );
    assert!(
        marks.iter().any(|m| m.contains("elected leader of term 2")),
        "{marks:?}"
    );
}
