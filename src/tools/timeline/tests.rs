//! The timeline's tests: hand-made histories, drawn and parsed back.

use super::render;
use crate::checker::{self, Verdict};
use crate::clock::Skew;
use crate::fault::{Fault, FaultPlan, Trigger, NETWORK, STORAGE};
use crate::history::{Event, EventKind, History, OpResult};
use crate::protocol::Op;
use crate::scenario::Scenario;

fn ev(true_us: u64, node: &str, kind: EventKind) -> Event {
    Event {
        true_us,
        perceived_us: Some(true_us as i64),
        node: node.into(),
        kind,
    }
}

fn write(op_id: u64, token: i64) -> EventKind {
    EventKind::Invoke {
        op_id,
        op: Op::Write,
        key: "key0".into(),
        val: format!("v<{token}>"),
        version: token,
        lease_id: token * 10,
        token,
    }
}

fn applied(op_id: u64, token: i64) -> EventKind {
    EventKind::StorageApplied {
        op_id: Some(op_id),
        op: Op::Write,
        key: "key0".into(),
        val: format!("v<{token}>"),
        version: token,
        accepted: true,
        err: String::new(),
    }
}

fn ok(op_id: u64) -> EventKind {
    EventKind::Complete {
        op_id,
        outcome: OpResult::Ok {
            val: String::new(),
            version: 0,
        },
    }
}

/// The walkthrough by hand: client1 paused past its lease writes after client2.
fn walkthrough() -> History {
    History {
        events: vec![
            ev(
                8_000,
                "client1",
                EventKind::LeaseGranted {
                    lease_id: 20,
                    ttl_s: 2,
                },
            ),
            ev(
                21_000,
                "client1",
                EventKind::Acquired {
                    lease_id: 20,
                    token: 2,
                },
            ),
            ev(
                21_000,
                "client1",
                EventKind::Fault {
                    what: "paused at after-acquire #1 for 5000 ms".into(),
                },
            ),
            ev(
                1_013_000,
                "client2",
                EventKind::LeaseGranted {
                    lease_id: 40,
                    ttl_s: 2,
                },
            ),
            ev(
                2_011_000,
                "client2",
                EventKind::Acquired {
                    lease_id: 40,
                    token: 4,
                },
            ),
            ev(2_012_000, "client2", write(1, 4)),
            ev(2_017_000, STORAGE, applied(1, 4)),
            ev(2_021_000, "client2", ok(1)),
            ev(
                2_052_000,
                "client2",
                EventKind::Released {
                    lease_id: 40,
                    token: 4,
                },
            ),
            ev(
                5_020_000,
                "client1",
                EventKind::Fault {
                    what: "resumed".into(),
                },
            ),
            ev(5_021_000, "client1", write(2, 2)),
            ev(
                5_028_000,
                "client1",
                EventKind::LeaseLost {
                    lease_id: 20,
                    why: "gone & <lost>".into(),
                },
            ),
            ev(5_034_000, STORAGE, applied(2, 2)),
            ev(5_043_000, "client1", ok(2)),
        ],
        ..History::default()
    }
}

fn plan() -> FaultPlan {
    FaultPlan {
        faults: vec![
            Fault::Pause {
                node: "client1".into(),
                at: Trigger::AtMs(21),
                duration_ms: 5_000,
            },
            Fault::Skew {
                node: "client2".into(),
                skew: Skew {
                    offset_ms: -150,
                    drift_ppm: 400,
                    steps: vec![crate::clock::ClockStep {
                        at_ms: 3_000,
                        delta_ms: 700,
                    }],
                },
            },
        ],
    }
}

/// The hand-made histories here are of one etcd node, as before clusters: their scenario
/// says so (the stories' default is a cluster of three).
fn one_member_story(clients: u32) -> Scenario {
    Scenario {
        etcd_members: 1,
        ..Scenario::contrib_lock_story(clients)
    }
}

fn count(doc: &roxmltree::Document<'_>, class: &str) -> usize {
    doc.descendants()
        .filter(|n| n.attribute("class") == Some(class))
        .count()
}

#[test]
fn walkthrough_picture_is_well_formed_with_lanes_and_highlights() {
    let history = walkthrough();
    let verdict = checker::check(&history);
    assert!(verdict.violates());
    let scenario = one_member_story(2);
    let svg = render(
        &history,
        &verdict,
        &scenario,
        &plan(),
        "walk <&> \"through\"",
    );
    let doc = roxmltree::Document::parse(&svg).expect("well-formed XML");
    let lanes: Vec<&str> = doc
        .descendants()
        .filter(|n| n.attribute("class") == Some("lane"))
        .filter_map(|n| n.attribute("data-node"))
        .collect();
    assert_eq!(lanes, ["client1", "client2", "etcd", "storage"]);
    // Both findings are on one event: one halo, listing both.
    assert_eq!(count(&doc, "finding"), 1);
    assert!(svg.contains("[1,2]"));
    assert_eq!(count(&doc, "zombie"), 1, "client1 believes past etcd");
    assert_eq!(count(&doc, "fault"), 1, "one pause");
    assert_eq!(count(&doc, "step"), 1, "client2's clock step");
    assert!(svg.contains("clock -150 ms, +400 ppm"));
    assert!(svg.contains("walk &lt;&amp;&gt; &quot;through&quot;"));
    assert_eq!(
        svg,
        render(
            &history,
            &verdict,
            &scenario,
            &plan(),
            "walk <&> \"through\""
        )
    );
}

/// The picture of a two-client story history of one etcd node, with the checker's findings.
fn story_picture(history: &History) -> String {
    story_picture_of(history, &one_member_story(2))
}

fn story_picture_of(history: &History, scenario: &Scenario) -> String {
    let verdict = checker::check(history);
    render(history, &verdict, scenario, &FaultPlan::none(), "t")
}

#[test]
fn a_network_window_spans_every_lane_and_no_lane_is_named_network() {
    let mut history = walkthrough();
    let note = |what: &str| EventKind::Fault { what: what.into() };
    history.events.push(ev(
        1_000_000,
        NETWORK,
        note("network degraded: latency 1..2 ms, loss 5‰"),
    ));
    history
        .events
        .push(ev(2_000_000, NETWORK, note("network restored")));
    history.events.push(ev(
        3_000_000,
        NETWORK,
        note("network degraded: latency 3..4 ms, loss 0‰"),
    ));
    history.events.sort_by_key(|e| e.true_us);
    let svg = story_picture(&history);
    let doc = roxmltree::Document::parse(&svg).expect("well-formed XML");
    // One closed window, one to the end of the run.
    assert_eq!(count(&doc, "network"), 2);
    assert!(svg.contains("(to the end)"));
    assert!(!svg.contains(">network</text>"), "no lane for the network");
}

#[test]
fn no_findings_no_highlights() {
    let mut history = walkthrough();
    // Drop client1's stale write: nothing left to find.
    history.events.retain(|e| {
        !matches!(e.kind, EventKind::Invoke { op_id: 2, .. })
            && !matches!(e.kind, EventKind::StorageApplied { op_id: Some(2), .. })
            && !matches!(e.kind, EventKind::Complete { op_id: 2, .. })
    });
    assert!(checker::check(&history).findings.is_empty());
    let svg = story_picture(&history);
    let doc = roxmltree::Document::parse(&svg).expect("well-formed XML");
    assert_eq!(count(&doc, "finding"), 0);
    assert!(!svg.contains("class=\"wire-flagged\""));
}

#[test]
fn empty_history_still_draws() {
    let svg = render(
        &History::default(),
        &Verdict::default(),
        &Scenario::standard(),
        &FaultPlan::none(),
        "",
    );
    roxmltree::Document::parse(&svg).expect("well-formed XML");
}

/// Who led in a hand-made cluster of three: etcd1 from the start, replaced while paused by
/// etcd2, which etcd3 replaces without etcd2 stepping down first (etcd2 learns it later).
fn cluster_notes() -> Vec<Event> {
    let note = |what: &str| EventKind::Fault { what: what.into() };
    let elected = |member: &str, term: u32| EventKind::Leadership {
        leader: Some(member.into()),
        what: format!("elected leader of term {term}; Promote extended 1 lease(s)"),
    };
    let stepped_down = || EventKind::Leadership {
        leader: None,
        what: "stepped down: replaced".into(),
    };
    vec![
        ev(1_000_000, "etcd1", note("paused for 5000 ms (etcd:leader; leader etcd1 (term 1))")),
        ev(2_200_000, "etcd1", stepped_down()),
        ev(2_200_000, "etcd2", elected("etcd2", 2)),
        ev(3_000_000, "client1", note("partitioned from etcd1")),
        ev(3_000_000, "client1", note("partitioned from etcd2")),
        ev(3_000_000, "client1", note("partitioned from etcd3")),
        ev(4_000_000, "client1", note("partition from etcd1 healed")),
        ev(4_000_000, "client1", note("partition from etcd2 healed")),
        ev(4_000_000, "client1", note("partition from etcd3 healed")),
        ev(6_000_000, "etcd1", note("resumed (leader etcd2 (term 2))")),
        ev(7_000_000, "etcd:leader", note("no etcd:leader to pause (no leader)")),
        ev(8_000_000, "etcd3", elected("etcd3", 3)),
        ev(8_100_000, "etcd2", stepped_down()),
        ev(
            8_200_000,
            "etcd2",
            note("acts on its stale lessor for 300 ms before it notices it was replaced (etcd issue 15247)"),
        ),
    ]
}

/// The titles of the elements of a class, in document order.
fn titles<'a>(doc: &'a roxmltree::Document<'_>, class: &str) -> Vec<&'a str> {
    doc.descendants()
        .filter(|n| n.attribute("class") == Some(class))
        .filter_map(|n| n.descendants().find(|c| c.has_tag_name("title")))
        .filter_map(|t| t.text())
        .collect()
}

#[test]
fn cluster_members_get_thin_lanes_after_etcd_with_who_led_when() {
    let mut history = walkthrough();
    history.events.extend(cluster_notes());
    history.events.sort_by_key(|e| e.true_us);
    let svg = story_picture_of(&history, &Scenario::contrib_lock_story(2));
    let doc = roxmltree::Document::parse(&svg).expect("well-formed XML");
    let lanes: Vec<(&str, &str)> = doc
        .descendants()
        .filter(|n| n.attribute("class") == Some("lane"))
        .filter_map(|n| {
            let height = n.first_element_child()?.attribute("height")?;
            Some((n.attribute("data-node")?, height))
        })
        .collect();
    assert_eq!(
        lanes,
        [
            ("client1", "100.0"),
            ("client2", "100.0"),
            ("etcd", "56.0"),
            ("etcd1", "30.0"),
            ("etcd2", "30.0"),
            ("etcd3", "30.0"),
            ("storage", "84.0"),
        ],
        "no lane for a role (etcd:leader)"
    );
    assert_eq!(
        titles(&doc, "leader"),
        [
            "etcd1 leads in term 1 from 0.000 s to 2.200 s: the first leader, from the start; \
             then stepped down: replaced",
            "etcd2 leads in term 2 from 2.200 s to 8.000 s: elected leader of term 2; Promote \
             extended 1 lease(s); until etcd3 was elected",
            "etcd3 leads in term 3 from 8.000 s to 8.500 s: elected leader of term 3; Promote \
             extended 1 lease(s); to the end",
        ]
    );
    assert!(svg.contains(">leader, term 2</text>"));
    // A member's resumption, with who leads in its note, ends its pause.
    let faults = titles(&doc, "fault");
    assert!(faults.contains(
        &"etcd1: paused for 5000 ms (etcd:leader; leader etcd1 (term 1)) (1.000 s to 6.000 s)"
    ));
    // A client cut from every member: one block and one label on its lane, one on each member's.
    assert!(faults.contains(&"client1: partitioned from etcd1, etcd2, etcd3 (3.000 s to 4.000 s)"));
    for member in ["etcd1", "etcd2", "etcd3"] {
        let cut = format!("{member}: partitioned from client1 (3.000 s to 4.000 s)");
        assert!(faults.contains(&cut.as_str()), "{faults:?}");
    }
    // Every leadership change is marked with its words; the other notes too.
    assert_eq!(count(&doc, "leadership"), 4);
    assert_eq!(
        titles(&doc, "etcd-note"),
        [
            "etcd at 7.000 s: etcd:leader: no etcd:leader to pause (no leader)",
            "etcd2 at 8.200 s: acts on its stale lessor for 300 ms before it notices it was \
             replaced (etcd issue 15247)",
        ]
    );
    assert!(svg.contains("etcd cluster of 3 members"));
    assert_eq!(
        svg,
        story_picture_of(&history, &Scenario::contrib_lock_story(2))
    );
}

#[test]
fn one_member_draws_no_member_lane_and_no_leader() {
    let svg = story_picture(&walkthrough());
    let doc = roxmltree::Document::parse(&svg).expect("well-formed XML");
    assert_eq!(count(&doc, "leaders"), 0);
    assert_eq!(count(&doc, "leader"), 0);
    assert!(!svg.contains(">member</text>"));
    assert!(!svg.contains("etcd member leads"), "no legend entry for it");
    assert!(!svg.contains("cluster of"));
}
