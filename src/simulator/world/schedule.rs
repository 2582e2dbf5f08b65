//! The supervisor's timeline: a fault plan and a scenario as timed actions, in the order the
//! supervisor applies them. Pure: no runtime, no nodes, no clock but the times given to it.

use crate::fault::{Fault, FaultPlan, Trigger};
use crate::ms::MsRange;
use crate::scenario::Scenario;
use std::collections::BTreeMap;

/// What the supervisor does at a time.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Action {
    Pause(String, u64),
    Resume(String),
    Clog(String, String),
    Unclog(String, String),
    /// Lets a held storage request through.
    Release(String),
    /// Revokes the node's current lease at etcd.
    Revoke(String),
    Crash(String, u64),
    Restart(String),
    /// Every link: this one-way latency and loss (per mille).
    Network(MsRange, u32),
    /// Back to the scenario's network.
    NetworkRestored,
    Stop,
    End,
}

/// Timed actions, keyed by (ms, sequence): the sequence number keeps equal times in the
/// order they were scheduled (plan order first, then follow-ups as they are pushed).
///
/// Invariants: actions come out in non-decreasing time order, and `End` stays pending until
/// it is popped (so there is always a first action before that).
pub(super) struct Schedule {
    timeline: BTreeMap<(u64, u64), Action>,
    /// The last sequence number given out; 0 is kept for network restores.
    seq: u64,
    /// Where `End` waits.
    end: (u64, u64),
    /// The time of the last action popped: nothing may be scheduled before it.
    popped_ms: u64,
    ended: bool,
}

impl Schedule {
    /// The plan's timed faults, the scenario's Stop (end of the workload) and End (after the
    /// drain). Faults aimed at code points are not here: they strike when a client reaches
    /// the point.
    pub(super) fn new(plan: &FaultPlan, scenario: &Scenario) -> Schedule {
        let mut schedule = Schedule {
            timeline: BTreeMap::new(),
            seq: 0,
            end: (0, 0),
            popped_ms: 0,
            ended: false,
        };
        for f in &plan.faults {
            schedule.push_fault(f);
        }
        schedule.push(scenario.duration_ms, Action::Stop);
        let end_ms = scenario.duration_ms + scenario.drain_ms;
        schedule.seq += 1;
        schedule.end = (end_ms, schedule.seq);
        schedule.timeline.insert(schedule.end, Action::End);
        // End comes last of the plan's own: after the workload's Stop, by the drain.
        assert!(
            schedule.end.0 >= scenario.duration_ms,
            "End scheduled before Stop"
        );
        assert!(
            schedule.timeline.contains_key(&schedule.end),
            "End is not pending"
        );
        schedule
    }

    fn push_fault(&mut self, f: &Fault) {
        match f {
            Fault::Pause {
                node,
                at: Trigger::AtMs(t),
                duration_ms,
            } => self.push(*t, Action::Pause(node.clone(), *duration_ms)),
            Fault::Partition {
                a,
                b,
                at_ms,
                duration_ms,
            } => {
                self.push(*at_ms, Action::Clog(a.clone(), b.clone()));
                self.push(*at_ms + duration_ms, Action::Unclog(a.clone(), b.clone()));
            }
            Fault::Crash {
                node,
                at_ms,
                restart_after_ms,
            } => self.push(*at_ms, Action::Crash(node.clone(), *restart_after_ms)),
            Fault::RevokeLease {
                node,
                at: Trigger::AtMs(t),
            } => self.push(*t, Action::Revoke(node.clone())),
            Fault::Network {
                at_ms,
                duration_ms,
                latency_ms,
                loss_permille,
            } => {
                self.push(*at_ms, Action::Network(*latency_ms, *loss_permille));
                // Sequence 0: at the moment one window ends and the next begins, the
                // restore must come first, whatever order the plan lists them in.
                let replaced = self
                    .timeline
                    .insert((*at_ms + duration_ms, 0), Action::NetworkRestored);
                assert!(matches!(replaced, None | Some(Action::NetworkRestored)));
            }
            _ => {}
        }
    }

    /// Schedules `action` at `at_ms`, after everything already scheduled for that time: the
    /// follow-ups (Resume after Pause, Restart after Crash, ...). `End` is the plan's alone.
    pub(super) fn push(&mut self, at_ms: u64, action: Action) {
        assert!(!self.ended, "{action:?} scheduled after the end");
        assert!(action != Action::End, "End is scheduled once, by the plan");
        assert!(
            at_ms >= self.popped_ms,
            "{action:?} scheduled at {at_ms} ms, before {} ms, already done",
            self.popped_ms
        );
        self.seq += 1;
        let replaced = self.timeline.insert((at_ms, self.seq), action);
        assert!(
            replaced.is_none(),
            "two actions share one slot at {at_ms} ms"
        );
    }

    /// The time of the first pending action.
    pub(super) fn first_ms(&self) -> u64 {
        assert!(!self.ended, "nothing is pending after the end");
        let (&(ms, _), _) = self
            .timeline
            .first_key_value()
            .expect("End is always pending");
        ms
    }

    /// The first pending action and its time, if it is due at `now_ms`.
    pub(super) fn pop_due(&mut self, now_ms: u64) -> Option<(u64, Action)> {
        if self.first_ms() > now_ms {
            return None;
        }
        let ((ms, seq), action) = self.timeline.pop_first().expect("End is always pending");
        assert!(
            ms >= self.popped_ms,
            "time went back: {ms} ms after {} ms",
            self.popped_ms
        );
        self.popped_ms = ms;
        // A schedule's actions are ordered by time: nothing pending comes before this one.
        debug_assert!(self
            .timeline
            .first_key_value()
            .is_none_or(|(k, _)| *k > (ms, seq)));
        if (ms, seq) == self.end {
            self.ended = true;
        } else {
            assert!(
                self.timeline.contains_key(&self.end),
                "End is always pending"
            );
        }
        Some((ms, action))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fault::STORAGE;
    use crate::scenario::client_name;
    use crate::workload::Point;

    fn scenario(duration_ms: u64, drain_ms: u64) -> Scenario {
        let mut s = Scenario::standard();
        s.duration_ms = duration_ms;
        s.drain_ms = drain_ms;
        s
    }

    /// Every action, in the order the supervisor would apply them, with its time.
    fn drain(mut schedule: Schedule) -> Vec<(u64, Action)> {
        let mut out = Vec::new();
        loop {
            let popped = schedule.pop_due(u64::MAX).expect("End is always pending");
            let end = popped.1 == Action::End;
            out.push(popped);
            if end {
                return out;
            }
        }
    }

    fn c(n: u32) -> String {
        client_name(n)
    }

    #[test]
    fn a_plan_becomes_ordered_actions() {
        let plan = FaultPlan {
            faults: vec![
                Fault::network_window(700, 100, 50, 10),
                Fault::Pause {
                    node: c(1),
                    at: Trigger::AtMs(100),
                    duration_ms: 300,
                },
                Fault::Partition {
                    a: c(2),
                    b: STORAGE.into(),
                    at_ms: 150,
                    duration_ms: 200,
                },
                Fault::Crash {
                    node: c(3),
                    at_ms: 400,
                    restart_after_ms: 50,
                },
                Fault::network_window(600, 100, 20, 0),
                Fault::RevokeLease {
                    node: c(1),
                    at: Trigger::AtMs(500),
                },
                // Aimed, not timed: not on the timeline.
                Fault::HoldRequest {
                    node: c(2),
                    at: Trigger::Point {
                        point: Point::BeforeWrite,
                        nth: 1,
                    },
                    duration_ms: 10,
                },
            ],
        };
        let actions = drain(Schedule::new(&plan, &scenario(1000, 500)));
        assert_eq!(
            actions,
            vec![
                (100, Action::Pause(c(1), 300)),
                (150, Action::Clog(c(2), STORAGE.into())),
                (350, Action::Unclog(c(2), STORAGE.into())),
                (400, Action::Crash(c(3), 50)),
                (500, Action::Revoke(c(1))),
                (600, Action::Network(MsRange::new(1, 20), 0)),
                // The back-to-back window: the restore of the first comes before the second.
                (700, Action::NetworkRestored),
                (700, Action::Network(MsRange::new(1, 50), 10)),
                (800, Action::NetworkRestored),
                (1000, Action::Stop),
                (1500, Action::End),
            ]
        );
    }

    #[test]
    fn ties_keep_plan_order_and_follow_ups_come_after() {
        let pause = |n| Fault::Pause {
            node: c(n),
            at: Trigger::AtMs(100),
            duration_ms: 10,
        };
        let plan = FaultPlan {
            faults: vec![pause(2), pause(1), pause(3)],
        };
        let mut schedule = Schedule::new(&plan, &scenario(200, 0));
        assert_eq!(schedule.first_ms(), 100);
        assert_eq!(schedule.pop_due(99), None);
        assert_eq!(schedule.pop_due(100), Some((100, Action::Pause(c(2), 10))));
        schedule.push(100, Action::Resume(c(2)));
        schedule.push(110, Action::Resume(c(2)));
        let rest = drain(schedule);
        assert_eq!(
            rest,
            vec![
                (100, Action::Pause(c(1), 10)),
                (100, Action::Pause(c(3), 10)),
                (100, Action::Resume(c(2))),
                (110, Action::Resume(c(2))),
                (200, Action::Stop),
                (200, Action::End),
            ]
        );
    }

    #[test]
    fn end_waits_behind_later_follow_ups() {
        let mut schedule = Schedule::new(&FaultPlan::none(), &scenario(100, 50));
        assert_eq!(schedule.pop_due(100), Some((100, Action::Stop)));
        // A restart due after the end is never applied: End comes first.
        schedule.push(400, Action::Restart(c(1)));
        assert_eq!(schedule.first_ms(), 150);
        assert_eq!(schedule.pop_due(150), Some((150, Action::End)));
    }

    #[test]
    #[should_panic(expected = "already done")]
    fn nothing_is_scheduled_in_the_past() {
        let mut schedule = Schedule::new(&FaultPlan::none(), &scenario(100, 50));
        schedule.pop_due(100);
        schedule.push(99, Action::Resume(c(1)));
    }
}
