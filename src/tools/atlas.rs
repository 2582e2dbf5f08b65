//! The atlas: violation rate over two parameters at once (`sweep --vary A --vary B`).
//!
//! One axis is a fault's size (a client pause, an etcd stall, a held request, clock drift),
//! the other a knob of the protocol (the lease TTL, the client's lease-check margin). Each
//! cell of the grid runs the same seeds with only that fault kind drawn; the map shows, per
//! fencing policy, where unfenced runs start to break. On the pause × TTL map the renewal
//! slack ([`crate::label::renewal_slack_ms`]) is drawn as the line a pause must cross.

use crate::ms::MsRange;
use crate::nemesis::NemesisConfig;
use crate::scenario::{Scenario, LOCAL_CHECK_MARGIN_MS};
use crate::storage::Fencing;
use crate::sweep::{self, Summary};

/// Most steps along one axis: a limit on everything.
pub const STEPS_MAX: u32 = 24;

/// What one axis of the atlas varies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Axis {
    /// Client pauses (timed and aimed) of exactly this length, ms.
    PauseMs,
    /// etcd stalls of exactly this length, ms (long critical sections, so a stale holder is
    /// still at work when the stall ends).
    StallMs,
    /// Held storage requests (Kleppmann's delayed packet) of exactly this length, ms.
    DelayMs,
    /// Clock drift bound, ppm, with keepalives cut by partitions and a client-side lease check.
    DriftPpm,
    /// The scripted wall-clock step of a Redis node in a Redlock scenario
    /// (`kleppmann-redlock-clock-jump.toml`), ms.
    StepMs,
    /// The lease TTL, s.
    TtlS,
    /// A ZooKeeper scenario's session timeout, s, on servers with tickTime 1000 ms (so that
    /// 2 to 20 s are granted unchanged).
    SessionS,
    /// The client-side lease check's safety margin, ms.
    MarginMs,
}

impl std::str::FromStr for Axis {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s {
            "pause-ms" => Axis::PauseMs,
            "stall-ms" => Axis::StallMs,
            "delay-ms" => Axis::DelayMs,
            "drift-ppm" => Axis::DriftPpm,
            "step-ms" => Axis::StepMs,
            "ttl-s" => Axis::TtlS,
            "session-s" => Axis::SessionS,
            "margin-ms" => Axis::MarginMs,
            other => {
                return Err(format!(
                    "--vary {other}: expected two of pause-ms, stall-ms, delay-ms, drift-ppm, step-ms (a fault) and ttl-s, session-s, margin-ms (a knob)"
                ))
            }
        })
    }
}

impl Axis {
    pub fn name(self) -> &'static str {
        match self {
            Axis::PauseMs => "pause-ms",
            Axis::StallMs => "stall-ms",
            Axis::DelayMs => "delay-ms",
            Axis::DriftPpm => "drift-ppm",
            Axis::StepMs => "step-ms",
            Axis::TtlS => "ttl-s",
            Axis::SessionS => "session-s",
            Axis::MarginMs => "margin-ms",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Axis::PauseMs => "client pause (ms)",
            Axis::StallMs => "etcd stall (ms)",
            Axis::DelayMs => "storage request delay (ms)",
            Axis::DriftPpm => "clock drift bound (ppm)",
            Axis::StepMs => "wall-clock step of one Redis node (ms)",
            Axis::TtlS => "lease TTL (s)",
            Axis::SessionS => "ZooKeeper session timeout (s)",
            Axis::MarginMs => "lease-check margin (ms)",
        }
    }

    fn is_fault(self) -> bool {
        matches!(
            self,
            Axis::PauseMs | Axis::StallMs | Axis::DelayMs | Axis::DriftPpm | Axis::StepMs
        )
    }

    /// The values of `steps` steps, evenly spaced over the axis' range.
    pub fn values(self, steps: u32) -> Vec<f64> {
        let (lo, hi) = match self {
            Axis::PauseMs | Axis::StallMs => (250.0, 6_000.0),
            Axis::DelayMs => (0.0, 6_000.0),
            Axis::DriftPpm => (0.0, 100_000.0),
            // Up to twice the longest TTL of the TTL axis.
            Axis::StepMs => (0.0, 20_000.0),
            Axis::TtlS | Axis::SessionS => (2.0, 10.0),
            Axis::MarginMs => (0.0, 1_000.0),
        };
        (0..steps)
            .map(|i| {
                let f = if steps <= 1 {
                    1.0
                } else {
                    i as f64 / (steps - 1) as f64
                };
                let v = lo + f * (hi - lo);
                // TTLs are whole seconds; everything else whole units.
                v.round()
            })
            .collect()
    }
}

/// The two axes, fault first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Axes {
    pub fault: Axis,
    pub knob: Axis,
}

impl Axes {
    /// One fault axis and one knob axis, in either order.
    pub fn new(a: Axis, b: Axis) -> Result<Axes, String> {
        match (a.is_fault(), b.is_fault()) {
            (true, false) => Ok(Axes { fault: a, knob: b }),
            (false, true) => Ok(Axes { fault: b, knob: a }),
            _ => Err(format!(
                "--vary {} --vary {}: give one fault (pause-ms, stall-ms, delay-ms, drift-ppm, step-ms) and one knob (ttl-s, session-s, margin-ms)",
                a.name(),
                b.name()
            )),
        }
    }

    /// The scenario of one cell: only the fault kind of the fault axis, at that size.
    pub fn cell(&self, base: &Scenario, fault: f64, knob: f64) -> Result<Scenario, String> {
        let mut s = base.clone();
        let ms = fault.max(0.0) as u64;
        s.nemesis = match self.fault {
            Axis::PauseMs => NemesisConfig {
                pause_ms: MsRange::exactly(ms),
                ..NemesisConfig::pauses()
            },
            Axis::StallMs => {
                s.critical_ms = MsRange::new(500, 4_000);
                NemesisConfig {
                    enabled: true,
                    etcd_stalls_max: 2,
                    etcd_stall_ms: MsRange::exactly(ms),
                    ..NemesisConfig::none()
                }
            }
            Axis::DelayMs => NemesisConfig {
                enabled: true,
                holds_max: 2,
                hold_ms: MsRange::exactly(ms),
                ..NemesisConfig::none()
            },
            Axis::DriftPpm => {
                s.lease_check_margin_ms = s.lease_check_margin_ms.or(Some(LOCAL_CHECK_MARGIN_MS));
                NemesisConfig {
                    drift_ppm_max: fault as i64,
                    steps_max: 0,
                    ..NemesisConfig::skew()
                }
            }
            Axis::StepMs => {
                set_scripted_step(&mut s, ms as i64)?;
                s.nemesis.clone()
            }
            other => return Err(format!("{} is not a fault axis", other.name())),
        };
        match self.knob {
            Axis::TtlS => s.ttl_s = knob as i64,
            Axis::SessionS => set_session(&mut s, knob)?,
            Axis::MarginMs => s.lease_check_margin_ms = Some(knob as u64),
            other => return Err(format!("{} is not a knob axis", other.name())),
        }
        s.validate()?;
        Ok(s)
    }
}

/// Sets a ZooKeeper scenario's session timeout to `session_s`, on servers with tickTime
/// 1000 ms: every session of the axis (2 to 10 s) is then granted as asked ([2, 20] ticks).
fn set_session(s: &mut Scenario, session_s: f64) -> Result<(), String> {
    if s.service != crate::lock::ServiceKind::Zk {
        return Err(format!(
            "session-s varies a ZooKeeper scenario's session timeout; this scenario's service is {}",
            s.service.as_str()
        ));
    }
    s.zk.tick_ms = 1_000;
    s.zk.session_timeout_ms = session_s as u64 * 1_000;
    Ok(())
}

/// Sets the size of a Redlock scenario's one scripted clock step on a Redis node (Kleppmann's
/// clock jump), keeping its time: the cell varies how far the clock jumps, nothing else.
fn set_scripted_step(s: &mut Scenario, delta_ms: i64) -> Result<(), String> {
    let steps: Vec<&mut crate::clock::ClockStep> = s
        .faults
        .iter_mut()
        .filter_map(|f| match f {
            crate::fault::Fault::Skew { node, skew } if node.starts_with("redis") => {
                Some(skew.steps.iter_mut())
            }
            _ => None,
        })
        .flatten()
        .collect();
    match steps.len() {
        1 => {
            steps.into_iter().for_each(|step| step.delta_ms = delta_ms);
            Ok(())
        }
        n => Err(format!(
            "step-ms varies the one scripted clock step of a Redis node (as in sims/scenarios/kleppmann-redlock-clock-jump.toml); this scenario has {n}"
        )),
    }
}

/// One cell of the atlas for one policy.
#[derive(Debug, Clone)]
pub struct Cell {
    pub fault: f64,
    pub knob: f64,
    pub summary: Summary,
}

/// Runs the grid: for every knob value and fault value, every policy over `seeds`.
pub fn run(
    base: &Scenario,
    axes: Axes,
    steps: u32,
    policies: &[Fencing],
    seeds: std::ops::Range<u64>,
    jobs: usize,
) -> Result<Vec<(Fencing, Vec<Cell>)>, String> {
    if !(2..=STEPS_MAX).contains(&steps) {
        return Err(format!(
            "--steps {steps} is outside 2..={STEPS_MAX} for an atlas"
        ));
    }
    let mut out: Vec<(Fencing, Vec<Cell>)> = policies.iter().map(|p| (*p, vec![])).collect();
    for knob in axes.knob.values(steps) {
        for fault in axes.fault.values(steps) {
            let s = axes.cell(base, fault, knob)?;
            for (fencing, cells) in out.iter_mut() {
                let (summary, _) = sweep::sweep_summary(&s, *fencing, seeds.clone(), jobs);
                cells.push(Cell {
                    fault,
                    knob,
                    summary,
                });
            }
        }
    }
    Ok(out)
}

/// The line drawn over a map, named, as (knob, fault) points: the renewal slack on the
/// pause × TTL map, Redlock's drift margin (⌊0.01·TTL⌋ + 2 ms, what the client keeps short of
/// the TTL) on the step × TTL map.
pub fn line(base: &Scenario, axes: Axes, steps: u32) -> Option<(&'static str, Vec<(f64, f64)>)> {
    match (axes.fault, axes.knob) {
        (Axis::PauseMs, Axis::TtlS) => Some(("renewal slack", slack_line(base, axes, steps)?)),
        // The shortest pause that can end a session: a client pings after T/3 without
        // sending, so its last packet can be T/3 old when the pause begins.
        (Axis::PauseMs, Axis::SessionS) => Some((
            "2T/3",
            axes.knob
                .values(steps)
                .into_iter()
                .map(|t_s| (t_s, t_s * 1000.0 * 2.0 / 3.0))
                .collect(),
        )),
        (Axis::StepMs, Axis::TtlS) => Some((
            "Redlock's drift margin",
            axes.knob
                .values(steps)
                .into_iter()
                .map(|ttl_s| {
                    let ttl_ms = ttl_s as i64 * 1000;
                    (ttl_s, crate::lock::Redlock::drift_ms(ttl_ms) as f64)
                })
                .collect(),
        )),
        _ => None,
    }
}

/// The renewal slack at each knob value, for the pause × TTL map (ms).
pub fn slack_line(base: &Scenario, axes: Axes, steps: u32) -> Option<Vec<(f64, f64)>> {
    if axes
        != (Axes {
            fault: Axis::PauseMs,
            knob: Axis::TtlS,
        })
    {
        return None;
    }
    Some(
        axes.knob
            .values(steps)
            .into_iter()
            .map(|ttl_s| {
                let s = Scenario {
                    ttl_s: ttl_s as i64,
                    ..base.clone()
                };
                (ttl_s, crate::label::renewal_slack_ms(&s) as f64)
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn axes_pair_a_fault_with_a_knob() {
        let pause: Axis = "pause-ms".parse().unwrap();
        let ttl: Axis = "ttl-s".parse().unwrap();
        assert_eq!(Axes::new(ttl, pause).unwrap().fault, Axis::PauseMs);
        assert!(Axes::new(pause, "stall-ms".parse().unwrap()).is_err());
        assert!(Axes::new(ttl, "margin-ms".parse().unwrap()).is_err());
        assert!("nope".parse::<Axis>().is_err());
        assert_eq!(Axis::TtlS.values(5), vec![2.0, 4.0, 6.0, 8.0, 10.0]);
    }

    #[test]
    fn a_step_cell_sets_the_scripted_step_and_refuses_a_scenario_without_one() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/sims/scenarios/kleppmann-redlock-clock-jump.toml"
        );
        let base = Scenario::from_toml(&std::fs::read_to_string(path).unwrap()).unwrap();
        let axes = Axes::new(Axis::StepMs, Axis::TtlS).unwrap();
        let s = axes.cell(&base, 7_500.0, 5.0).unwrap();
        assert_eq!(s.ttl_s, 5);
        let deltas: Vec<i64> = s
            .faults
            .iter()
            .filter_map(|f| match f {
                crate::fault::Fault::Skew { skew, .. } => Some(skew.steps[0].delta_ms),
                _ => None,
            })
            .collect();
        assert_eq!(deltas, vec![7_500]);
        assert_eq!(s.faults.len(), base.faults.len(), "only the step changes");
        assert!(axes.cell(&Scenario::standard(), 1.0, 2.0).is_err());
        let (name, line) = line(&base, axes, 2).unwrap();
        assert_eq!(name, "Redlock's drift margin");
        assert_eq!(line, vec![(2.0, 22.0), (10.0, 102.0)]);
    }

    #[test]
    fn a_cell_sets_exactly_its_fault_and_knob() {
        let axes = Axes::new(Axis::StallMs, Axis::TtlS).unwrap();
        let s = axes.cell(&Scenario::standard(), 3000.0, 4.0).unwrap();
        assert_eq!(s.ttl_s, 4);
        assert_eq!(s.nemesis.etcd_stall_ms, MsRange::exactly(3000));
        assert_eq!(s.nemesis.pauses_max, 0);
        let line = slack_line(
            &Scenario::standard(),
            Axes::new(Axis::PauseMs, Axis::TtlS).unwrap(),
            2,
        )
        .unwrap();
        assert_eq!(line[0], (2.0, 1312.0));
    }

    #[test]
    fn a_session_cell_sets_the_session_on_a_zk_scenario_only() {
        let axes = Axes::new(Axis::PauseMs, "session-s".parse().unwrap()).unwrap();
        let s = axes
            .cell(&Scenario::preset("zk").unwrap(), 3000.0, 6.0)
            .unwrap();
        assert_eq!((s.zk.session_timeout_ms, s.zk.tick_ms), (6_000, 1_000));
        assert_eq!(s.nemesis.pause_ms, MsRange::exactly(3000));
        let e = axes.cell(&Scenario::standard(), 3000.0, 6.0).unwrap_err();
        assert!(e.contains("session-s varies a ZooKeeper scenario"), "{e}");
        let (name, line) = line(&Scenario::zk(), axes, 2).unwrap();
        assert_eq!(name, "2T/3");
        assert_eq!(line[0].0, 2.0);
        assert!((line[0].1 - 4000.0 / 3.0).abs() < 1e-9);
    }
}
