//! The unit tests of [`FaultPlan`](super::FaultPlan): its JSON and its validation (in their own
//! file, so that `fault.rs` keeps under the size limit).

use super::*;
use crate::scenario::client_name;

#[test]
fn plan_round_trips_through_json() {
    let plan = FaultPlan {
        faults: vec![
            Fault::Pause {
                node: "client1".into(),
                at: Trigger::Point {
                    point: Point::AfterAcquire,
                    nth: 1,
                },
                duration_ms: 5000,
            },
            Fault::Partition {
                a: "client2".into(),
                b: STORAGE.into(),
                at_ms: 100,
                duration_ms: 200,
            },
            Fault::EtcdTimeouts { rate_permille: 10 },
        ],
    };
    let json = serde_json::to_string(&plan).unwrap();
    assert_eq!(serde_json::from_str::<FaultPlan>(&json).unwrap(), plan);
    plan.validate(&["client1".into(), "client2".into()])
        .unwrap();
}

#[test]
fn validation_bounds_start_times_and_refuses_duplicates() {
    let nodes = [client_name(1)];
    let late = FaultPlan {
        faults: vec![Fault::Partition {
            a: client_name(1),
            b: STORAGE.into(),
            at_ms: u64::MAX,
            duration_ms: 10,
        }],
    };
    assert!(late.validate(&nodes).unwrap_err().contains("starts at"));
    let skew = Fault::Skew {
        node: client_name(1),
        skew: Skew::default(),
    };
    let twice = FaultPlan {
        faults: vec![skew.clone(), skew],
    };
    assert!(twice.validate(&nodes).unwrap_err().contains("second skew"));
    // Every aimed fault counts its point's hits from 1: a revoke as a pause.
    let never = FaultPlan {
        faults: vec![Fault::RevokeLease {
            node: client_name(1),
            at: Trigger::Point {
                point: Point::BeforeWrite,
                nth: 0,
            },
        }],
    };
    assert!(never
        .validate(&nodes)
        .unwrap_err()
        .contains("nth counts from 1"));
}

#[test]
fn validation_names_the_fault() {
    let plan = FaultPlan {
        faults: vec![Fault::Crash {
            node: "nobody".into(),
            at_ms: 1,
            restart_after_ms: 1,
        }],
    };
    let e = plan.validate(&["client1".into()]).unwrap_err();
    assert!(e.contains("fault 1") && e.contains("unknown node"), "{e}");
}
