//! Faults as data: a [`FaultPlan`] is a list of timed faults on named nodes.
//!
//! A plan is a plain serde value: print it, save it as JSON, load it, diff it, shrink it,
//! replay it. The world applies it; nothing else decides what goes wrong.

use crate::clock::Skew;
use serde::{Deserialize, Serialize};

/// Most faults in one plan: a limit on everything.
pub const FAULTS_MAX: usize = 256;
/// Longest single fault, in ms.
pub const FAULT_MS_MAX: u64 = 120_000;

/// The etcd node's name.
pub const ETCD: &str = "etcd";
/// The storage node's name.
pub const STORAGE: &str = "storage";

/// A labelled place in the client's lock cycle where a fault can be aimed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Point {
    /// Just told "you hold the lock".
    AfterAcquire,
    /// "My lease looks valid" and about to send the write: Kleppmann's window.
    BeforeWrite,
}

impl Point {
    pub fn as_str(self) -> &'static str {
        match self {
            Point::AfterAcquire => "after-acquire",
            Point::BeforeWrite => "before-write",
        }
    }
}

/// When a fault starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Trigger {
    /// At a true time, ms since the world started.
    AtMs(u64),
    /// The `nth` (1-based) time the node reaches `point`.
    Point { point: Point, nth: u32 },
}

impl std::fmt::Display for Trigger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Trigger::AtMs(ms) => write!(f, "at {ms} ms"),
            Trigger::Point { point, nth } => write!(f, "at {} #{nth}", point.as_str()),
        }
    }
}

/// One fault.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "fault", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Fault {
    /// Stop the world on a node (GC pause; on `etcd`, an etcd stall).
    Pause {
        node: String,
        at: Trigger,
        duration_ms: u64,
    },
    /// The node's clock for the whole run.
    Skew { node: String, skew: Skew },
    /// Messages between `a` and `b`, both ways, are held until the partition heals.
    Partition {
        a: String,
        b: String,
        at_ms: u64,
        duration_ms: u64,
    },
    /// The client's next storage request is held in the network for `duration_ms`
    /// (Kleppmann's delayed packet).
    HoldRequest {
        node: String,
        at: Trigger,
        duration_ms: u64,
    },
    /// Kill the node; it restarts from scratch (a new session) after `restart_after_ms`.
    Crash {
        node: String,
        at_ms: u64,
        restart_after_ms: u64,
    },
    /// The simulated etcd answers this fraction of requests with a timeout (after 5-15 s,
    /// never committing).
    EtcdTimeouts { rate_permille: u32 },
}

impl Fault {
    /// The node the fault is about (`etcd` for etcd-wide faults).
    pub fn node(&self) -> &str {
        match self {
            Fault::Pause { node, .. }
            | Fault::Skew { node, .. }
            | Fault::HoldRequest { node, .. }
            | Fault::Crash { node, .. } => node,
            Fault::Partition { a, .. } => a,
            Fault::EtcdTimeouts { .. } => ETCD,
        }
    }

    /// A short description in words.
    pub fn describe(&self) -> String {
        match self {
            Fault::Pause {
                node,
                at,
                duration_ms,
            } => format!("pause {node} {at} for {duration_ms} ms"),
            Fault::Skew { node, skew } => format!(
                "clock of {node}: offset {} ms, drift {} ppm, {} step(s){}",
                skew.offset_ms,
                skew.drift_ppm,
                skew.steps.len(),
                skew.steps
                    .iter()
                    .map(|s| format!(" [{:+} ms at {} ms]", s.delta_ms, s.at_ms))
                    .collect::<String>()
            ),
            Fault::Partition {
                a,
                b,
                at_ms,
                duration_ms,
            } => format!("partition {a} | {b} at {at_ms} ms for {duration_ms} ms"),
            Fault::HoldRequest {
                node,
                at,
                duration_ms,
            } => format!("hold {node}'s storage request {at} for {duration_ms} ms"),
            Fault::Crash {
                node,
                at_ms,
                restart_after_ms,
            } => format!("crash {node} at {at_ms} ms, restart {restart_after_ms} ms later"),
            Fault::EtcdTimeouts { rate_permille } => {
                format!("etcd times out {rate_permille}‰ of requests")
            }
        }
    }
}

/// A list of faults: the nemesis' whole intent for one run.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultPlan {
    pub faults: Vec<Fault>,
}

impl FaultPlan {
    pub fn none() -> Self {
        FaultPlan::default()
    }

    pub fn len(&self) -> usize {
        self.faults.len()
    }

    pub fn is_empty(&self) -> bool {
        self.faults.is_empty()
    }

    /// The skew of a node's clock (perfect unless the plan says otherwise).
    pub fn skew_of(&self, node: &str) -> Skew {
        self.faults
            .iter()
            .find_map(|f| match f {
                Fault::Skew { node: n, skew } if n == node => Some(skew.clone()),
                _ => None,
            })
            .unwrap_or_default()
    }

    pub fn etcd_timeout_rate(&self) -> f32 {
        self.faults
            .iter()
            .find_map(|f| match f {
                Fault::EtcdTimeouts { rate_permille } => Some(*rate_permille as f32 / 1000.0),
                _ => None,
            })
            .unwrap_or(0.0)
    }

    /// Checks limits and node names; the message names the fault.
    pub fn validate(&self, nodes: &[String]) -> Result<(), String> {
        if self.faults.len() > FAULTS_MAX {
            return Err(format!(
                "{} faults, at most {FAULTS_MAX}",
                self.faults.len()
            ));
        }
        let known = |n: &str| n == ETCD || n == STORAGE || nodes.iter().any(|m| m == n);
        for (i, f) in self.faults.iter().enumerate() {
            let bad = |why: String| Err(format!("fault {} ({}): {why}", i + 1, f.describe()));
            let node_ok = match f {
                Fault::Partition { a, b, .. } => known(a) && known(b) && a != b,
                Fault::EtcdTimeouts { .. } => true,
                other => known(other.node()),
            };
            if !node_ok {
                return bad("unknown node (or a partition of a node from itself)".into());
            }
            let client_only = matches!(
                f,
                Fault::HoldRequest { .. }
                    | Fault::Crash { .. }
                    | Fault::Skew { .. }
                    | Fault::Pause {
                        at: Trigger::Point { .. },
                        ..
                    }
            );
            if client_only && (f.node() == ETCD || f.node() == STORAGE) {
                return bad("this fault applies to client nodes only".into());
            }
            match f {
                Fault::Pause {
                    duration_ms, at, ..
                }
                | Fault::HoldRequest {
                    duration_ms, at, ..
                } => {
                    if *duration_ms > FAULT_MS_MAX {
                        return bad(format!("duration_ms above {FAULT_MS_MAX}"));
                    }
                    if matches!(at, Trigger::Point { nth: 0, .. }) {
                        return bad("nth counts from 1".into());
                    }
                    if matches!(
                        f,
                        Fault::HoldRequest {
                            at: Trigger::AtMs(_),
                            ..
                        }
                    ) {
                        return bad("a held request is aimed at a code point".into());
                    }
                }
                Fault::Partition { duration_ms, .. } if *duration_ms > FAULT_MS_MAX => {
                    return bad(format!("duration_ms above {FAULT_MS_MAX}"));
                }
                Fault::Crash {
                    restart_after_ms, ..
                } if *restart_after_ms > FAULT_MS_MAX => {
                    return bad(format!("restart_after_ms above {FAULT_MS_MAX}"));
                }
                Fault::Skew { skew, .. } => skew.validate().or_else(bad)?,
                Fault::EtcdTimeouts { rate_permille } if *rate_permille > 500 => {
                    return bad("rate_permille above 500".into());
                }
                _ => {}
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
