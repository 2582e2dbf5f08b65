//! Shrinking on robustness: a plan gets smaller only while it still violates in at least
//! `need` of the noise seeds.
//!
//! The passes, in order: faults that cannot act go first ([`without_noops`]); then faults
//! are removed one at a time, each time the one whose removal keeps the plan most robust;
//! a pause or hold at an absolute time is aimed at a protocol point instead (`after-acquire`,
//! `before-write`, the 1st to 3rd time) where that is at least as robust; durations are cut
//! to the shortest that is still robust; and a last removal pass drops what the cuts made
//! unneeded.

use super::{measure, Judge, Noise};
use crate::fault::{Fault, FaultPlan, Trigger};
use crate::workload::Point;
use crate::world::Builder;

/// Most measurements (each K runs) one shrink makes. Six faults take about 100 (removal 21,
/// aiming 7 and cutting about 9 per fault); with K = 20 the limit is 6,000 runs, about a
/// minute on one core of the standard scenario.
pub const SHRINK_MEASUREMENTS_MAX: u64 = 300;
/// The protocol points a timed pause or hold may be aimed at, and how many times in.
const AIM_POINTS: [Point; 2] = [Point::AfterAcquire, Point::BeforeWrite];
const AIM_NTH_MAX: u32 = 3;
/// Durations are cut to this grain, ms: finer steps buy noise, not understanding.
const CUT_GRAIN_MS: u64 = 10;

/// The plan without the faults that cannot act ([`Fault::is_noop`]).
pub fn without_noops(plan: &FaultPlan) -> FaultPlan {
    FaultPlan {
        faults: plan
            .faults
            .iter()
            .filter(|f| !f.is_noop())
            .cloned()
            .collect(),
    }
}

/// Shrinks plans of one builder over one set of noise seeds.
pub struct Shrinker<'a> {
    builder: &'a Builder,
    noise: Noise,
    jobs: usize,
    /// Violating noise seeds a plan needs to count as robust (at least 1).
    need: u64,
    judge: &'a Judge<'a>,
    /// Runs made so far; no measurement starts past [`SHRINK_MEASUREMENTS_MAX`] of them.
    runs: u64,
}

impl<'a> Shrinker<'a> {
    pub fn new(
        builder: &'a Builder,
        noise: Noise,
        jobs: usize,
        need: u64,
        judge: &'a Judge<'a>,
    ) -> Shrinker<'a> {
        assert!(need <= noise.count, "need {need} of {} seeds", noise.count);
        Shrinker {
            builder,
            noise,
            jobs,
            need: need.max(1),
            judge,
            runs: 0,
        }
    }

    /// Runs made so far.
    pub fn runs(&self) -> u64 {
        self.runs
    }

    /// The violating noise seeds of `plan`; `None` once the run budget is spent.
    fn violating(&mut self, plan: &FaultPlan) -> Option<u64> {
        if self.runs >= SHRINK_MEASUREMENTS_MAX * self.noise.count {
            return None;
        }
        self.runs += self.noise.count;
        Some(
            measure(self.builder, plan, self.noise, self.jobs, self.judge)
                .0
                .violating,
        )
    }

    /// Every pass in turn (see the module). The result is robust if `plan` was.
    pub fn shrink(&mut self, plan: &FaultPlan) -> FaultPlan {
        let plan = without_noops(plan);
        let plan = self.remove(plan);
        let plan = self.aim(plan);
        let plan = self.cut(plan);
        self.remove(plan)
    }

    /// Removes the fault whose removal keeps the most violating seeds, while that stays at
    /// `need` or more.
    fn remove(&mut self, mut plan: FaultPlan) -> FaultPlan {
        // Bounded: each pass removes a fault or ends.
        while !plan.is_empty() {
            let mut best: Option<(usize, u64)> = None;
            for i in 0..plan.len() {
                let mut smaller = plan.clone();
                smaller.faults.remove(i);
                let Some(v) = self.violating(&smaller) else {
                    return plan;
                };
                if v >= self.need && best.is_none_or(|(_, b)| v > b) {
                    best = Some((i, v));
                }
            }
            let Some((i, _)) = best else {
                break;
            };
            plan.faults.remove(i);
        }
        plan
    }

    /// Aims each timed pause or hold of a client at the protocol point that keeps the plan
    /// most robust, when one is at least as robust as the timed fault.
    fn aim(&mut self, mut plan: FaultPlan) -> FaultPlan {
        for i in 0..plan.len() {
            if aimed(&plan.faults[i], Point::AfterAcquire, 1).is_none() {
                continue;
            }
            let Some(mut best_v) = self.violating(&plan) else {
                return plan;
            };
            let mut best = None;
            for point in AIM_POINTS {
                for nth in 1..=AIM_NTH_MAX {
                    let mut other = plan.clone();
                    other.faults[i] = aimed(&plan.faults[i], point, nth).expect("aimable");
                    let Some(v) = self.violating(&other) else {
                        return plan;
                    };
                    if v >= best_v.max(self.need) && (best.is_none() || v > best_v) {
                        (best, best_v) = (Some(other), v);
                    }
                }
            }
            if let Some(other) = best {
                plan = other;
            }
        }
        plan
    }

    /// Cuts each duration to the shortest (to [`CUT_GRAIN_MS`]) that is still robust, by
    /// bisection: robustness is not strictly monotone in a duration, so the cut is checked.
    fn cut(&mut self, mut plan: FaultPlan) -> FaultPlan {
        for i in 0..plan.len() {
            let Some(full) = duration(&mut plan.faults[i]).map(|d| *d) else {
                continue;
            };
            let (mut short, mut long) = (0, full);
            // Bounded: the gap halves each step.
            while long - short > CUT_GRAIN_MS {
                let mid = (short + (long - short) / 2).div_ceil(CUT_GRAIN_MS) * CUT_GRAIN_MS;
                let mid = mid.clamp(short + 1, long - 1);
                let mut other = plan.clone();
                *duration(&mut other.faults[i]).expect("a duration") = mid;
                match self.violating(&other) {
                    Some(v) if v >= self.need => long = mid,
                    Some(_) => short = mid,
                    None => break,
                }
            }
            if long < full {
                *duration(&mut plan.faults[i]).expect("a duration") = long;
            }
        }
        plan
    }
}

/// A fault's duration, where cutting it makes it gentler.
fn duration(f: &mut Fault) -> Option<&mut u64> {
    match f {
        Fault::Pause { duration_ms, .. }
        | Fault::HoldRequest { duration_ms, .. }
        | Fault::Partition { duration_ms, .. }
        | Fault::Network { duration_ms, .. } => Some(duration_ms),
        _ => None,
    }
}

/// A timed pause or hold of a client, aimed at `point` instead; `None` for any other fault.
fn aimed(f: &Fault, point: Point, nth: u32) -> Option<Fault> {
    let at = Trigger::Point { point, nth };
    match f {
        Fault::Pause {
            node,
            at: Trigger::AtMs(_),
            duration_ms,
        } if node.starts_with("client") => Some(Fault::Pause {
            node: node.clone(),
            at,
            duration_ms: *duration_ms,
        }),
        Fault::HoldRequest {
            node,
            at: Trigger::AtMs(_),
            duration_ms,
        } => Some(Fault::HoldRequest {
            node: node.clone(),
            at,
            duration_ms: *duration_ms,
        }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn noops_go_and_the_rest_stay() {
        let pause = |ms| Fault::Pause {
            node: "client1".into(),
            at: Trigger::AtMs(13),
            duration_ms: ms,
        };
        let crash = Fault::Crash {
            node: "client1".into(),
            at_ms: 13,
            restart_after_ms: 0,
        };
        let plan = FaultPlan {
            faults: vec![pause(0), crash.clone(), pause(1981)],
        };
        assert_eq!(without_noops(&plan).faults, vec![crash, pause(1981)]);
    }

    #[test]
    fn only_a_clients_timed_pause_or_hold_is_aimed() {
        let etcd = Fault::Pause {
            node: "etcd".into(),
            at: Trigger::AtMs(1),
            duration_ms: 5,
        };
        assert_eq!(aimed(&etcd, Point::BeforeWrite, 1), None);
        let client = Fault::Pause {
            node: "client2".into(),
            at: Trigger::AtMs(1),
            duration_ms: 5,
        };
        assert!(aimed(&client, Point::BeforeWrite, 2).is_some());
    }
}
