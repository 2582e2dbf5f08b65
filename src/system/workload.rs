//! What a client does: lock cycles against etcd and the storage.
//!
//! The same code runs in the simulated world and for real; only the [`Points`] hook (where
//! aimed faults strike) and the stop signal differ.

use crate::clock::NodeClock;
use crate::fault::Point;
use crate::history::{EventKind, OpResult, Probe};
use crate::lock::{self, EtcdHandle, Holding, LockConfig, LockError, Session};
use crate::protocol::{Op, Request};
use crate::scenario::{MsRange, Workload};
use crate::storage::http::{CallError, Client as StorageClient};
use crate::storage::{Fencing, KEY_NOT_FOUND};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

pub use crate::keys::{COUNTER_KEY, SINGLE_KEY};

/// Most lock cycles one client runs: a limit on everything.
pub const CYCLES_MAX: u32 = 100_000;
/// Pause between retries after an etcd error, by the node's clock.
const RETRY_BACKOFF: Duration = Duration::from_millis(200);

/// A code point reached, sent to whoever injects aimed faults; it answers once the fault is
/// in place (for a pause, the answer is only seen after the node resumes).
#[derive(Debug)]
pub struct PointHit {
    pub node: String,
    pub point: Point,
    pub nth: u32,
    pub done: tokio::sync::oneshot::Sender<()>,
}

/// Where aimed faults strike. Only the points a plan aims at cost a message.
#[derive(Debug, Clone, Default)]
pub struct Points {
    aimed: Arc<BTreeMap<Point, Vec<u32>>>,
    tx: Option<tokio::sync::mpsc::UnboundedSender<PointHit>>,
}

impl Points {
    pub fn none() -> Self {
        Points::default()
    }

    pub fn new(
        aimed: BTreeMap<Point, Vec<u32>>,
        tx: tokio::sync::mpsc::UnboundedSender<PointHit>,
    ) -> Self {
        Points {
            aimed: Arc::new(aimed),
            tx: Some(tx),
        }
    }

    async fn hit(&self, node: &str, point: Point, nth: u32) {
        let aimed = self.aimed.get(&point).is_some_and(|v| v.contains(&nth));
        let Some(tx) = self.tx.as_ref().filter(|_| aimed) else {
            return;
        };
        let (done, wait) = tokio::sync::oneshot::channel();
        let hit = PointHit {
            node: node.to_string(),
            point,
            nth,
            done,
        };
        if tx.send(hit).is_ok() {
            let _ = wait.await;
        }
    }
}

/// Everything one client needs.
#[derive(Debug, Clone)]
pub struct ClientSpec {
    /// 1-based.
    pub index: u32,
    /// Which etcd client to use (the real build always uses a real etcd).
    pub etcd_backend: crate::etcd::Backend,
    pub etcd_addr: String,
    pub storage_addr: String,
    pub fencing: Fencing,
    pub workload: Workload,
    pub lock: LockConfig,
    pub critical_ms: MsRange,
    pub think_ms: MsRange,
    pub request_timeout: Duration,
    pub lease_check_margin_ms: Option<u64>,
    /// Seed of the client's own random choices (critical section, think time).
    pub seed: u64,
}

/// A client's running state.
pub struct ClientRun {
    spec: ClientSpec,
    clock: NodeClock,
    probe: Probe,
    points: Points,
    stop: Arc<AtomicBool>,
    rng: ChaCha8Rng,
    storage: StorageClient,
    reached: BTreeMap<Point, u32>,
    last_token: i64,
}

/// What one lock cycle came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CycleEnd {
    /// The work was done (the write may still have been refused).
    Done,
    /// The lock was never taken.
    NoLock(String),
    /// The lock was taken but the work stopped early (read refused, local check, ...).
    Abandoned(String),
}

impl ClientRun {
    pub fn new(
        spec: ClientSpec,
        clock: NodeClock,
        probe: Probe,
        points: Points,
        stop: Arc<AtomicBool>,
        incarnation: u32,
    ) -> Self {
        let rng = ChaCha8Rng::seed_from_u64(
            spec.seed ^ (spec.index as u64) << 32 ^ (incarnation as u64) << 48,
        );
        let storage = StorageClient::new(&spec.storage_addr);
        ClientRun {
            spec,
            clock,
            probe,
            points,
            stop,
            rng,
            storage,
            reached: BTreeMap::new(),
            last_token: i64::MIN,
        }
    }

    fn name(&self) -> &str {
        self.probe.node()
    }

    fn draw(&mut self, r: MsRange) -> Duration {
        Duration::from_millis(self.rng.gen_range(r.min..=r.max))
    }

    async fn reach(&mut self, point: Point) {
        let nth = self.reached.entry(point).or_insert(0);
        *nth += 1;
        let nth = *nth;
        let name = self.name().to_string();
        self.points.hit(&name, point, nth).await;
    }

    /// Runs lock cycles until told to stop (counter) or once (single).
    pub async fn run(mut self) {
        let etcd = loop {
            let endpoints = [self.spec.etcd_addr.clone()];
            match crate::etcd::connect(self.spec.etcd_backend, &endpoints).await {
                Ok(c) => break c,
                Err(_) if !self.stop.load(Ordering::Relaxed) => {
                    self.clock.sleep(RETRY_BACKOFF).await
                }
                Err(_) => return,
            }
        };
        // Best effort: a failed connection is retried at the first request.
        let _ = self.storage.warm_up().await;
        for _ in 0..CYCLES_MAX {
            if self.stop.load(Ordering::Relaxed) {
                return;
            }
            let end = self.cycle(&etcd).await;
            if self.spec.workload == Workload::Single && !matches!(end, CycleEnd::NoLock(_)) {
                return;
            }
            if matches!(end, CycleEnd::NoLock(_)) {
                self.clock.sleep(RETRY_BACKOFF).await;
            }
            let think = self.draw(self.spec.think_ms);
            self.clock.sleep(think).await;
        }
    }

    /// One lock cycle: session, lock, work, release.
    pub async fn cycle(&mut self, etcd: &EtcdHandle) -> CycleEnd {
        let cfg = self.spec.lock;
        let session = match Session::start(etcd, &self.clock, &self.probe, &cfg).await {
            Ok(s) => s,
            Err(e) => {
                self.note_indeterminate(&e);
                return CycleEnd::NoLock(e.to_string());
            }
        };
        let value = self.name().to_string();
        let holding = match lock::acquire(etcd, &session, &self.clock, &cfg, &value).await {
            Ok(h) => h,
            Err(e) => {
                if e == LockError::CampaignTimeout {
                    self.probe.record(EventKind::CampaignTimedOut {
                        lease_id: session.lease_id(),
                    });
                }
                self.note_indeterminate(&e);
                // Revoking removes the campaign key a cancelled campaign leaves behind.
                session.close(etcd, &self.clock, &cfg).await;
                return CycleEnd::NoLock(e.to_string());
            }
        };
        // Positive space: a client's tokens strictly increase, whatever happened between.
        assert!(
            holding.token > self.last_token,
            "{} got token {} after {}",
            self.name(),
            holding.token,
            self.last_token
        );
        self.last_token = holding.token;
        self.probe.record(EventKind::Acquired {
            lease_id: holding.lease_id,
            token: holding.token,
        });
        self.reach(Point::AfterAcquire).await;
        let end = self.work(&holding, &session).await;
        // Release: resign, then revoke. Either may fail if the lease is already gone.
        if let Err(e) = lock::resign(etcd, &holding, &self.clock, &cfg).await {
            self.note_indeterminate(&e);
        }
        session.close(etcd, &self.clock, &cfg).await;
        self.probe.record(EventKind::Released {
            lease_id: holding.lease_id,
            token: holding.token,
        });
        end
    }

    async fn work(&mut self, holding: &Holding, session: &Session) -> CycleEnd {
        let val = match self.spec.workload {
            Workload::Single => format!("value from {}", self.name()),
            Workload::Counter => {
                let read = self
                    .send(Op::Read, COUNTER_KEY, String::new(), holding)
                    .await;
                let current = match read {
                    OpResult::Ok { val, .. } if val.is_empty() => 0,
                    OpResult::Ok { val, .. } => match val.parse::<u64>() {
                        Ok(v) => v,
                        Err(_) => return CycleEnd::Abandoned(format!("counter holds '{val}'")),
                    },
                    other => return CycleEnd::Abandoned(format!("read: {other:?}")),
                };
                (current + 1).to_string()
            }
        };
        let critical = self.draw(self.spec.critical_ms);
        self.clock.sleep(critical).await;
        // "My lease looks valid": the client-side variant checks its own deadline here.
        if let Some(margin_ms) = self.spec.lease_check_margin_ms {
            let deadline_us = session.deadline_us();
            let lost = session.lost().is_some();
            if lost || self.clock.now_us() + margin_ms as i64 * 1000 > deadline_us {
                self.probe.record(EventKind::LocalCheckRefused {
                    token: holding.token,
                    deadline_us,
                });
                return CycleEnd::Abandoned("local lease check".into());
            }
        }
        // Kleppmann's window: between the check above and the write below.
        self.reach(Point::BeforeWrite).await;
        let key = match self.spec.workload {
            Workload::Single => SINGLE_KEY,
            Workload::Counter => COUNTER_KEY,
        };
        self.send(Op::Write, key, val, holding).await;
        CycleEnd::Done
    }

    /// Records an etcd request that may or may not have taken effect.
    fn note_indeterminate(&self, e: &LockError) {
        if let Some(what) = e.indeterminate() {
            self.probe.record(EventKind::EtcdIndeterminate {
                what: what.to_string(),
            });
        }
    }

    /// Sends one storage operation, recording its invocation and completion.
    pub async fn send(&mut self, op: Op, key: &str, val: String, holding: &Holding) -> OpResult {
        let version = if self.spec.fencing.sends_lease_id() {
            holding.lease_id
        } else {
            holding.token
        };
        let op_id = self.probe.next_op_id();
        self.probe.record(EventKind::Invoke {
            op_id,
            op,
            key: key.to_string(),
            val: val.clone(),
            version,
            lease_id: holding.lease_id,
            token: holding.token,
        });
        let req = Request {
            op,
            key: key.to_string(),
            val,
            version,
        };
        let timeout = self.spec.request_timeout;
        let answer = self
            .clock
            .timeout(timeout, self.storage.call(&req, Some(op_id)))
            .await;
        let outcome = match answer {
            Err(_) => {
                self.storage.reset();
                OpResult::Unknown {
                    err: "timed out".into(),
                }
            }
            Ok(Ok(resp)) if resp.is_ok() || (op == Op::Read && resp.err == KEY_NOT_FOUND) => {
                OpResult::Ok {
                    val: resp.val,
                    version: resp.version,
                }
            }
            Ok(Ok(resp)) => OpResult::Rejected { err: resp.err },
            Ok(Err(CallError::NotSent(e))) => OpResult::Failed { err: e },
            Ok(Err(CallError::Http(status, e))) => OpResult::Failed {
                err: format!("HTTP {status}: {e}"),
            },
            Ok(Err(CallError::NoAnswer(e))) => OpResult::Unknown { err: e },
        };
        self.probe.record(EventKind::Complete {
            op_id,
            outcome: outcome.clone(),
        });
        outcome
    }
}
