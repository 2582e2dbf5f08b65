//! The client every workload runs in: lock cycles against etcd and the storage.
//!
//! The same code runs in the simulated world and for real; only the [`Points`] hook (where
//! aimed faults strike) and the stop signal differ.

// The world (simulation build) runs the whole cycle; real mode only sends one write through
// `ClientRun::send`, so in the real build most of the cycle's plumbing goes unused.
#![cfg_attr(not(madsim), allow(dead_code))]

use super::{Point, Workload};
use crate::clock::NodeClock;
use crate::etcd::{EtcdError, Keys, Txn};
use crate::history::{EventKind, OpResult, Probe};
use crate::keys::ETCD_KEY_PREFIX;
use crate::lock::{
    self, EtcdHandle, Holding, LockConfig, LockContext, LockError, LockRecipe, Session,
};
use crate::lock::{Service, ServiceContext, ServiceKind};
use crate::ms::MsRange;
use crate::protocol::{Op, Request};
use crate::storage::http::{CallError, Client as StorageClient};
use crate::storage::{Fence, KEY_NOT_FOUND};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

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
    /// No aimed faults: real mode's clients (the simulation always builds its points from a plan).
    #[cfg(not(madsim))]
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
    /// Which lock service the client talks to.
    pub service: ServiceKind,
    /// The Redis nodes' endpoints, in node order (a Redlock world).
    pub redis_endpoints: Vec<String>,
    /// The ZooKeeper servers and the session timeout asked for (a ZooKeeper world).
    pub zk: crate::zk::ConnectSpec,
    /// Which etcd client to use (the real build always uses a real etcd).
    pub etcd_backend: crate::etcd::Backend,
    /// etcd's members' endpoints; the client talks to the first until it fails over.
    pub etcd_endpoints: Vec<String>,
    pub storage_addr: String,
    /// The storage's fence: the client asks it which number to send.
    pub fence: Arc<dyn Fence>,
    pub workload: Arc<dyn Workload>,
    pub recipe: Arc<dyn LockRecipe>,
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

/// A critical section written with `?` ends `Done` when it returns `Ok`.
impl From<Result<(), CycleEnd>> for CycleEnd {
    fn from(r: Result<(), CycleEnd>) -> CycleEnd {
        r.err().unwrap_or(CycleEnd::Done)
    }
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

    /// Connects to the lock service, retrying until told to stop.
    async fn connect(&self) -> Option<Service> {
        loop {
            let connected = match self.spec.service {
                ServiceKind::Etcd => {
                    crate::etcd::connect(self.spec.etcd_backend, &self.spec.etcd_endpoints)
                        .await
                        .map(Service::Etcd)
                        .map_err(|e| e.to_string())
                }
                ServiceKind::Redlock => crate::redis::connect_all(&self.spec.redis_endpoints)
                    .await
                    .map(Service::Redis)
                    .map_err(|e| e.to_string()),
                // Curator's client connects at its first call, and again after a session ends.
                ServiceKind::Zk => Ok(Service::Zk(Arc::new(crate::zk::ZkClient::new(
                    self.spec.zk.clone(),
                    self.clock.clone(),
                    self.spec.seed ^ (self.spec.index as u64).rotate_left(24),
                    Some(self.probe.clone()),
                )))),
            };
            match connected {
                Ok(service) => return Some(service),
                Err(_) if !self.stop.load(Ordering::Relaxed) => {
                    self.clock.sleep(RETRY_BACKOFF).await
                }
                Err(_) => return None,
            }
        }
    }

    /// Runs lock cycles until told to stop (counter) or once (single).
    pub async fn run(mut self) {
        let Some(service) = self.connect().await else {
            return;
        };
        // Best effort: a failed connection is retried at the first request.
        let _ = self.storage.warm_up().await;
        for _ in 0..CYCLES_MAX {
            if self.stop.load(Ordering::Relaxed) {
                return;
            }
            let end = self.cycle(&service).await;
            if self.spec.workload.once() && !matches!(end, CycleEnd::NoLock(_)) {
                return;
            }
            if matches!(end, CycleEnd::NoLock(_)) {
                self.clock.sleep(RETRY_BACKOFF).await;
            }
            let think = self.draw(self.spec.think_ms);
            self.clock.sleep(think).await;
        }
    }

    /// One lock cycle: session (where the service has one), lock, work, release.
    pub async fn cycle(&mut self, service: &Service) -> CycleEnd {
        let cfg = self.spec.lock;
        let session = match service {
            Service::Etcd(etcd) => match Session::start(etcd, &self.clock, &self.probe, &cfg).await
            {
                Ok(s) => Some(s),
                Err(e) => {
                    self.note_indeterminate(&e);
                    return CycleEnd::NoLock(e.to_string());
                }
            },
            Service::Redis(_) | Service::Zk(_) => None,
        };
        // Only where the lock's value must be unique per acquisition: a draw on etcd would
        // shift the client's later draws, and with them every etcd history.
        let nonce = match service {
            Service::Etcd(_) => 0,
            Service::Redis(_) | Service::Zk(_) => self.rng.gen(),
        };
        let cx = service_context(service, session.as_ref());
        let value = self.name().to_string();
        let recipe = self.spec.recipe.clone();
        let mut holding = match lock::acquire(cx, &self.clock, &cfg, &*recipe, &value, nonce).await
        {
            Ok(h) => h,
            Err(e) => {
                if let (LockError::CampaignTimeout, Some(s)) = (&e, &session) {
                    self.probe.record(EventKind::CampaignTimedOut {
                        lease_id: s.lease_id(),
                    });
                }
                self.note_indeterminate(&e);
                // Revoking removes the campaign key a cancelled campaign leaves behind.
                self.close(service, session).await;
                return CycleEnd::NoLock(e.to_string());
            }
        };
        // Positive space: a client's tokens strictly increase, whatever happened between,
        // where the recipe promises rising tokens.
        assert!(
            !recipe.tokens_rise() || holding.token > self.last_token,
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
        let workload = self.spec.workload.clone();
        let mut cs = Critical {
            run: self,
            holding: &mut holding,
            session: session.as_ref(),
            service,
            nonce,
        };
        let end = workload.critical(&mut cs).await;
        // Release: resign, then revoke. Either may fail if the lease is already gone.
        let released =
            lock::resign(cx, &holding, &self.clock, &cfg, &*recipe, (&value, nonce)).await;
        if let Err(e) = released {
            self.note_indeterminate(&e);
        }
        self.close(service, session).await;
        self.probe.record(EventKind::Released {
            lease_id: holding.lease_id,
            token: holding.token,
        });
        end
    }

    /// Ends the cycle's session, if the service has sessions.
    async fn close(&self, service: &Service, session: Option<Session>) {
        if let (Service::Etcd(etcd), Some(session)) = (service, session) {
            session.close(etcd, &self.clock, &self.spec.lock).await;
        }
    }

    /// Records an etcd request that may or may not have taken effect.
    fn note_indeterminate(&self, e: &LockError) {
        if let Some(what) = e.indeterminate() {
            self.probe.record(EventKind::EtcdIndeterminate {
                what: what.to_string(),
            });
        }
    }

    /// Runs one etcd operation of a workload, recording it as an operation on `etcd:<key>`;
    /// a timeout is indeterminate (the Txn may have committed), as etcd's own is.
    async fn record_etcd(
        &mut self,
        op: Op,
        key: &str,
        val: String,
        holding: &Holding,
        call: impl std::future::Future<Output = Result<OpResult, EtcdError>>,
    ) -> OpResult {
        let op_id = self.probe.next_op_id();
        self.probe.record(EventKind::Invoke {
            op_id,
            op,
            key: format!("{ETCD_KEY_PREFIX}{key}"),
            val,
            version: holding.token,
            lease_id: holding.lease_id,
            token: holding.token,
        });
        let outcome = match self.clock.timeout(self.spec.request_timeout, call).await {
            Ok(Ok(outcome)) => outcome,
            Err(_) | Ok(Err(EtcdError::Timeout)) => OpResult::Unknown {
                err: "etcd timed out".into(),
            },
            Ok(Err(e @ EtcdError::Unavailable { .. })) => OpResult::Failed { err: e.to_string() },
            Ok(Err(e)) => OpResult::Unknown { err: e.to_string() },
        };
        self.probe.record(EventKind::Complete {
            op_id,
            outcome: outcome.clone(),
        });
        outcome
    }

    /// Sends one storage operation, recording its invocation and completion.
    pub async fn send(&mut self, op: Op, key: &str, val: String, holding: &Holding) -> OpResult {
        let version = self.spec.fence.version(holding.lease_id, holding.token);
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

/// What a workload's critical section works with: the storage (each operation recorded in the
/// history, carrying the number the fence asks for), the lock it holds, the client's seeded
/// randomness and, for workloads that keep data in etcd, the etcd seam.
pub struct Critical<'a> {
    run: &'a mut ClientRun,
    /// Mutable for its validity alone, which an extension moves.
    holding: &'a mut Holding,
    session: Option<&'a Session>,
    service: &'a Service,
    /// The acquisition's nonce: the lock's value is made of it (an extension names it).
    nonce: u64,
}

/// What a recipe gets of the service for one cycle.
fn service_context<'a>(service: &'a Service, session: Option<&'a Session>) -> ServiceContext<'a> {
    match (service, session) {
        (Service::Etcd(etcd), Some(session)) => ServiceContext::Etcd {
            etcd: etcd.as_ref(),
            session,
        },
        (Service::Redis(nodes), _) => ServiceContext::Redis { nodes },
        (Service::Zk(client), _) => ServiceContext::Zk { client },
        (Service::Etcd(_), None) => unreachable!("an etcd cycle always has a session"),
    }
}

impl Critical<'_> {
    /// The client's node name (`client1`, ...).
    pub fn node(&self) -> &str {
        self.run.name()
    }

    /// The lock this client holds: its key, lease ID and token.
    pub fn holding(&self) -> &Holding {
        &*self.holding
    }

    /// The etcd this client's lock lives in; `None` on a world of another lock service.
    pub fn etcd(&self) -> Option<&EtcdHandle> {
        match self.service {
            Service::Etcd(etcd) => Some(etcd),
            _ => None,
        }
    }

    /// The lock service this client talks to.
    pub fn service(&self) -> &Service {
        self.service
    }

    /// The client's own seeded random numbers: draw from these, never from the OS, so the run
    /// replays from its seed.
    pub fn rng(&mut self) -> &mut impl Rng {
        &mut self.run.rng
    }

    /// Reads `key` from the storage.
    pub async fn read(&mut self, key: &str) -> OpResult {
        self.run
            .send(Op::Read, key, String::new(), &*self.holding)
            .await
    }

    /// Writes `val` to `key` in the storage.
    pub async fn write(&mut self, key: &str, val: String) -> OpResult {
        self.run.send(Op::Write, key, val, &*self.holding).await
    }

    /// Reads `key` from etcd (for workloads whose data lives in etcd), recorded in the history
    /// as a read of `etcd:<key>`.
    pub async fn etcd_read(&mut self, key: &str) -> OpResult {
        let Some(etcd) = self.etcd().cloned() else {
            return no_etcd();
        };
        let read = Keys::Exact(key.to_string());
        self.run
            .record_etcd(Op::Read, key, String::new(), &*self.holding, async move {
                etcd.get(read).await.map(|r| {
                    let kv = r.kvs.into_iter().next();
                    OpResult::Ok {
                        val: kv.as_ref().map(|kv| kv.value.clone()).unwrap_or_default(),
                        version: kv.map_or(-1, |kv| kv.mod_revision),
                    }
                })
            })
            .await
    }

    /// Writes `val` to `key` in etcd only while this client's lock key still exists: one Txn,
    /// `if create_revision(lock key) > 0 then put` (etcd's advice for writes guarded by a lock;
    /// the lock key's name holds the session's lease, so while it exists the lock is this
    /// client's). Recorded as a write of `etcd:<key>`; refused when the lock key is gone.
    pub async fn etcd_guarded_write(&mut self, key: &str, val: String) -> OpResult {
        let Some(etcd) = self.etcd().cloned() else {
            return no_etcd();
        };
        let txn = Txn::put_while_exists(&self.holding.key, key, &val);
        let written = val.clone();
        self.run
            .record_etcd(Op::Write, key, val, &*self.holding, async move {
                etcd.txn(txn).await.map(|t| match t.succeeded {
                    true => OpResult::Ok {
                        val: written,
                        version: t.revision,
                    },
                    false => OpResult::Rejected {
                        err: "etcd refused the write: the lock key is gone".into(),
                    },
                })
            })
            .await
    }

    /// Everything between deciding what to write and writing it: the computation (a time
    /// drawn from the scenario's `critical_ms`, by the node's clock), then the client-side
    /// lease check if the scenario has one (`Err` when it refuses: end the cycle with it),
    /// then the point where aimed faults strike before a write (Kleppmann's window).
    pub async fn prepare_write(&mut self) -> Result<(), CycleEnd> {
        let critical = self.run.draw(self.run.spec.critical_ms);
        self.compute(critical).await?;
        self.still_held()?;
        let run = &mut *self.run;
        // "My lease looks valid": the client-side variant checks its own deadline here (a
        // lock without a session, its validity, on the clock the recipe measured it with).
        if let Some(margin_ms) = run.spec.lease_check_margin_ms {
            let margin_us = margin_ms as i64 * 1000;
            let (deadline_us, refuse) = match (self.session, self.holding.validity) {
                (Some(s), _) => (
                    s.deadline_us(),
                    s.lost().is_some() || run.clock.now_us() + margin_us > s.deadline_us(),
                ),
                (None, Some(v)) => (v.until_us, !v.holds(&run.clock, margin_ms)),
                (None, None) => (i64::MAX, false),
            };
            if refuse {
                run.probe.record(EventKind::LocalCheckRefused {
                    token: self.holding.token,
                    deadline_us,
                });
                return Err(CycleEnd::Abandoned("local lease check".into()));
            }
        }
        // Kleppmann's window: between the check above and the write below.
        run.reach(Point::BeforeWrite).await;
        Ok(())
    }
}

impl Critical<'_> {
    /// What the recipe gets to judge or extend this cycle's lock, `name` its value.
    fn lock_context<'c>(&'c self, name: &'c str) -> LockContext<'c> {
        LockContext {
            service: service_context(self.service, self.session),
            clock: &self.run.clock,
            cfg: &self.run.spec.lock,
            value: name,
            nonce: self.nonce,
        }
    }

    /// The recipe's own verdict on the lock before a write ([`LockRecipe::gave_up`]): a
    /// holder that gave it up stops, recorded as a refused local check.
    fn still_held(&mut self) -> Result<(), CycleEnd> {
        let name = self.run.name().to_string();
        let cx = self.lock_context(&name);
        let Some(why) = self.run.spec.recipe.gave_up(cx, self.holding) else {
            return Ok(());
        };
        self.run.probe.record(EventKind::LocalCheckRefused {
            token: self.holding.token,
            deadline_us: self.run.clock.now_us(),
        });
        Err(CycleEnd::Abandoned(why))
    }
}

/// Most extensions in one computation: a limit on everything (a 1 s TTL extended at 500 ms
/// left takes 60 s of computation to reach it).
const EXTENSIONS_MAX: u32 = 128;

impl Critical<'_> {
    /// The computation before a write, `d` of it by the node's clock. A holder whose recipe
    /// extends its lock ([`LockRecipe::extend_below_ms`]) extends it each time less validity
    /// than the threshold is left, as node-redlock's `using` does on a timer; a failed
    /// extension stops the holder, as `using`'s abort signal asks. A pause still outlives the
    /// extended validity, as Kleppmann's pause outlives any lease.
    async fn compute(&mut self, d: Duration) -> Result<(), CycleEnd> {
        let recipe = self.run.spec.recipe.clone();
        let Some(below_ms) = recipe.extend_below_ms() else {
            // The one sleep every recipe without extension has always had: the same draws.
            self.run.clock.sleep(d).await;
            return Ok(());
        };
        let end_us = self.run.clock.now_us() + d.as_micros() as i64;
        for _ in 0..EXTENSIONS_MAX {
            let left_us = end_us - self.run.clock.now_us();
            let Some(validity) = self.holding.validity else {
                break;
            };
            let due_us =
                validity.until_us - below_ms as i64 * 1000 - validity.clock.now_us(&self.run.clock);
            if left_us <= due_us {
                break;
            }
            self.run
                .clock
                .sleep(Duration::from_micros(due_us.max(0) as u64))
                .await;
            self.extend(&*recipe, validity).await?;
        }
        let left_us = end_us - self.run.clock.now_us();
        if left_us > 0 {
            self.run
                .clock
                .sleep(Duration::from_micros(left_us as u64))
                .await;
        }
        Ok(())
    }

    /// Extends the lock once; records the outcome.
    async fn extend(
        &mut self,
        recipe: &dyn LockRecipe,
        validity: crate::lock::Validity,
    ) -> Result<(), CycleEnd> {
        let name = self.run.name().to_string();
        let cx = self.lock_context(&name);
        let extended = recipe.extend(cx, self.holding).await;
        let token = self.holding.token;
        let until_us = extended.as_ref().ok().map(|v| v.until_us);
        self.run
            .probe
            .record(EventKind::LockExtended { token, until_us });
        match extended {
            Ok(v) => {
                // An extension moves the validity later, never earlier, on a clock that
                // only runs forward (a wall clock may be stepped back between the two).
                assert!(
                    v.clock == crate::lock::ClientClock::Wall || v.until_us >= validity.until_us,
                    "{v:?} before {validity:?}"
                );
                self.holding.validity = Some(v);
                Ok(())
            }
            Err(e) => Err(CycleEnd::Abandoned(format!("lock extension: {e}"))),
        }
    }
}

/// What an etcd operation of a workload answers on a world without etcd: not sent.
fn no_etcd() -> OpResult {
    OpResult::Failed {
        err: "this world's lock service is not etcd".into(),
    }
}
