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
    let scenario = Scenario::seed_story(2);
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

/// The picture of a two-client story history, with the checker's findings.
fn story_picture(history: &History) -> String {
    let verdict = checker::check(history);
    render(
        history,
        &verdict,
        &Scenario::seed_story(2),
        &FaultPlan::none(),
        "t",
    )
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
    assert!(!svg.contains("class=\"wf\""));
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
