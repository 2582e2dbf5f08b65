//! Pictures of real runs: the timeline SVG of the walkthrough of etcd's example, of a standard run and of
//! a run whose etcd leader is paused; and of Kleppmann's Redlock stories, a lane per Redis node.
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

/// A Redlock story by its file name: scenario and plan.
fn redlock_story(name: &str) -> (Scenario, FaultPlan) {
    stories::kleppmann_redlock_named(name).unwrap_or_else(|| panic!("no Redlock story {name}"))
}

/// The elements of `class` on the Redis lanes: their attributes by name.
fn marks<'a>(doc: &'a roxmltree::Document<'a>, class: &str) -> Vec<roxmltree::Node<'a, 'a>> {
    doc.descendants()
        .filter(|n| n.attribute("class") == Some(class))
        .collect()
}

fn us(n: &roxmltree::Node<'_, '_>, attr: &str) -> u64 {
    n.attribute(attr).unwrap().parse().unwrap()
}

#[test]
fn redlock_clock_jump_has_a_lane_per_redis_node_and_redis3_grants_twice() {
    let (scenario, plan) = redlock_story("kleppmann-redlock-clock-jump");
    let (svg, finding_events) = picture(&scenario, &plan, Fencing::None, 1);
    let doc = roxmltree::Document::parse(&svg).expect("well-formed XML");
    // Five Redis lanes where etcd's lane would be.
    assert_eq!(
        lanes(&doc),
        ["client1", "client2", "redis1", "redis2", "redis3", "redis4", "redis5", "storage"]
    );
    assert_eq!(halos(&doc), finding_events);
    // redis3's lane: client 1's grant, then client 2's, which starts while client 1 still
    // believes (the dashed line from the end of its grant).
    let grants = marks(&doc, "grant");
    let on = |node: &str| -> Vec<(String, u64, u64, String)> {
        grants
            .iter()
            .filter(|g| g.attribute("data-node") == Some(node))
            .map(|g| {
                let client = g.attribute("data-client").unwrap().to_string();
                let end = g.attribute("data-end").unwrap().to_string();
                (client, us(g, "data-start-us"), us(g, "data-end-us"), end)
            })
            .collect()
    };
    let redis3 = on("redis3");
    assert_eq!(redis3.len(), 2, "{redis3:?}");
    let ((c1, s1, e1, why1), (c2, s2, _, _)) = (&redis3[0], &redis3[1]);
    assert_eq!(
        (c1.as_str(), c2.as_str(), why1.as_str()),
        ("client1", "client2", "expired")
    );
    assert!(s1 < e1 && e1 <= s2, "{redis3:?}");
    let believes: Vec<_> = marks(&doc, "believes")
        .into_iter()
        .filter(|b| b.attribute("data-node") == Some("redis3"))
        .collect();
    assert_eq!(believes.len(), 1);
    assert_eq!(believes[0].attribute("data-client"), Some("client1"));
    assert!(us(&believes[0], "data-start-us") <= *s2 && *s2 < us(&believes[0], "data-end-us"));
    // The double grant is drawn there and only there.
    let doubles = marks(&doc, "double-grant");
    assert_eq!(doubles.len(), 1);
    let d = &doubles[0];
    let who = ["data-node", "data-earlier", "data-later"].map(|a| d.attribute(a).unwrap());
    assert_eq!(who, ["redis3", "client1", "client2"]);
    // client 1 never reached redis4 and redis5: client 2's grants only. redis1 and redis2
    // hold client 1's key until its unlock.
    assert!(on("redis4").iter().all(|g| g.0 == "client2"));
    assert!(on("redis1")
        .iter()
        .all(|g| g.0 == "client1" && g.3 == "deleted"));
    // The clock step is marked on redis3's lane, and the lane says so.
    assert!(svg.contains(">clock +2500 ms</text>"));
    assert!(svg.contains(">1 step(s) ▼ on the lane</text>"));
    // Client 1's belief is hatched once a quorum no longer holds its key.
    let zombie = marks(&doc, "zombie");
    assert_eq!(zombie.len(), 1);
}

#[test]
fn redlock_restart_and_gc_pause_draw_their_double_grants() {
    let (scenario, plan) = redlock_story("kleppmann-redlock-restart");
    let (svg, _) = picture(&scenario, &plan, Fencing::None, 1);
    let doc = roxmltree::Document::parse(&svg).expect("well-formed XML");
    let lost: Vec<_> = marks(&doc, "grant")
        .into_iter()
        .filter(|g| g.attribute("data-end") == Some("lost in a restart"))
        .map(|g| g.attribute("data-node").unwrap().to_string())
        .collect();
    assert_eq!(lost, ["redis3"]);
    let doubles = marks(&doc, "double-grant");
    assert_eq!(doubles.len(), 1);
    assert_eq!(doubles[0].attribute("data-node"), Some("redis3"));
    let (scenario, plan) = redlock_story("kleppmann-redlock-gc-pause");
    let (svg, _) = picture(&scenario, &plan, Fencing::None, 1);
    let doc = roxmltree::Document::parse(&svg).expect("well-formed XML");
    let nodes: Vec<&str> = marks(&doc, "double-grant")
        .iter()
        .map(|d| d.attribute("data-node").unwrap())
        .collect();
    assert_eq!(nodes, ["redis1", "redis2", "redis3", "redis4", "redis5"]);
}

#[test]
fn redlock_without_the_jump_draws_no_double_grant() {
    let (mut scenario, _) = redlock_story("kleppmann-redlock-clock-jump");
    scenario.faults.retain(|f| !matches!(f, Fault::Skew { .. }));
    let plan = scenario.scripted_plan();
    let (svg, finding_events) = picture(&scenario, &plan, Fencing::None, 1);
    let doc = roxmltree::Document::parse(&svg).expect("well-formed XML");
    assert_eq!(finding_events, 0);
    assert!(marks(&doc, "double-grant").is_empty());
    assert!(marks(&doc, "zombie").is_empty());
    assert!(marks(&doc, "believes").is_empty());
    // redis3 grants client 2 only after client 1's unlock deleted client 1's key.
    let redis3: Vec<_> = marks(&doc, "grant")
        .into_iter()
        .filter(|g| g.attribute("data-node") == Some("redis3"))
        .collect();
    assert_eq!(redis3[0].attribute("data-end"), Some("deleted"));
    assert!(redis3.len() < 2 || us(&redis3[0], "data-end-us") <= us(&redis3[1], "data-start-us"));
}

#[test]
fn the_committed_redlock_pictures_are_what_the_cli_draws() {
    // docs/timeline-redlock-*.svg: `fencelab run --seed 1 --fencing none --scenario
    // sims/scenarios/kleppmann-redlock-*.toml --timeline FILE`, whose title is this.
    for name in ["clock-jump", "restart", "gc-pause"] {
        let (scenario, plan) = redlock_story(&format!("kleppmann-redlock-{name}"));
        let run = world::run(&scenario, &plan, Fencing::None, 1);
        let svg = timeline::render(
            &run.history,
            &run.verdict,
            &scenario,
            &plan,
            "fencing=none seed=1",
        );
        let path = format!(
            "{}/docs/timeline-redlock-{name}.svg",
            env!("CARGO_MANIFEST_DIR")
        );
        let committed = std::fs::read_to_string(&path).expect("committed picture");
        assert!(
            committed == svg,
            "{path} is not what the CLI draws now: draw it again"
        );
    }
}
