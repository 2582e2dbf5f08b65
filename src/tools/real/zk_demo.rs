//! `fencelab real-zk-demo`: the walkthrough of etcd's example (`contrib/lock`) on a real
//! ZooKeeper, with Curator's lock (`crate::lock::Curator`, the recipe the simulation runs) over
//! real sessions (`crate::zk::real::RealZk`) and the real storage server.
//!
//! Client 1 takes the lock and stops: its client runs on a current-thread tokio runtime, and
//! the pause blocks that one thread, so nothing of it runs, the `zookeeper-client` session task
//! and its pings included (the crate spawns that task on the runtime that connected). Its
//! process stays alive and its TCP connection open, but silent, as in a stop-the-world GC
//! pause. The server expires the session between T and T + a tick after its last packet
//! (`ExpiryQueue`, `SessionTrackerImpl`) and deletes its ephemeral lock node; client 2, whose
//! node waits on client 1's (`getData` with a watch), is woken by the deletion and holds the
//! lock. Client 2 writes; client 1 resumes and writes with its old token, the lock node's
//! `czxid`. A token fence refuses it; without a fence it is accepted and client 2's write is
//! lost.

use super::*;
use crate::lock::{Curator, Holding, LockContext, LockRecipe, ServiceContext, ServiceKind};
use crate::zk::{ConnectSpec, Fired, ZkClient, SESSION_TIMEOUT_MS_MAX};

/// The session timeout the demo asks for by default, ms: 2 ticks of Debian's `zoo.cfg`
/// (tickTime 2000), the least a server grants.
pub const ZK_SESSION_TIMEOUT_MS: u64 = 4_000;
/// Beyond the negotiated timeout, how long the demo waits for the server to delete client 1's
/// node: a tick (2 s by default; 20 s is the most a tickTime usually is) and a margin.
const ZK_EXPIRY_SLACK: Duration = Duration::from_secs(30);
/// How long a ZooKeeper request of the demo may take.
const ZK_REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// What the demo runs against and how.
#[derive(Debug, Clone)]
pub struct ZkDemoConfig {
    /// ZooKeeper's connect string, `host:port[,host:port...]`.
    pub zk: String,
    pub fencing: Fencing,
    /// What each client asks for; the server clamps it to [2, 20] × tickTime.
    pub session_timeout_ms: u64,
    /// Print lines as they come.
    pub echo: bool,
}

/// What one client of the story did.
#[derive(Debug, Clone)]
pub struct ZkClientReport {
    pub n: u32,
    /// The lock node (`key`), the session (`lease_id`) and the node's `czxid` (`token`).
    pub holding: Holding,
    /// The timeout the server granted the session, ms.
    pub timeout_ms: u64,
    /// What went on the wire as `version`.
    pub version_sent: i64,
    pub write: OpResult,
    /// Client 1: what Curator's own check said just before the stale write (`None`: it
    /// still believed it held the lock).
    pub gave_up: Option<String>,
}

/// What the walkthrough came to.
#[derive(Debug, Clone)]
pub struct ZkWalkthrough {
    pub fencing: Fencing,
    pub lines: Vec<String>,
    pub client1: ZkClientReport,
    pub client2: ZkClientReport,
    /// What the storage holds for `key0` at the end.
    pub key0: Option<Entry>,
    /// From client 1's stop to another session seeing its node's `NodeDeleted`.
    pub node_deleted_after: Duration,
    /// From client 1's stop to client 2 holding the lock.
    pub client2_held_after: Duration,
    pub elapsed: Duration,
}

impl ZkWalkthrough {
    pub fn stale_write_accepted(&self) -> bool {
        matches!(self.client1.write, OpResult::Ok { .. })
    }
}

/// Checks the configuration before anything is touched.
pub fn check_zk_config(cfg: &ZkDemoConfig) -> Result<(), String> {
    let t = cfg.session_timeout_ms;
    if t == 0 || t > SESSION_TIMEOUT_MS_MAX {
        return Err(format!(
            "--session-timeout-ms {t} is outside 1..={SESSION_TIMEOUT_MS_MAX} (the server then \
             clamps it to [2, 20] ticks)"
        ));
    }
    let endpoints: Vec<&str> = cfg.zk.split(',').map(str::trim).collect();
    if let Some(bad) = endpoints.iter().find(|e| !is_host_port(e)) {
        return Err(format!(
            "--zk {:?}: {bad:?} is not host:port (a connect string is host:port,host:port,...)",
            cfg.zk
        ));
    }
    Ok(())
}

fn is_host_port(e: &str) -> bool {
    match e.rsplit_once(':') {
        Some((host, port)) => !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p > 0),
        None => false,
    }
}

// ---------------------------------------------------------------------------------------
// one client

/// One client of the story: a Curator client of its own (one session at a time) and the lock.
struct DemoZkClient {
    n: u32,
    spec: ConnectSpec,
    client: ZkClient,
    clock: NodeClock,
    recipe: Curator,
    cfg: LockConfig,
    /// Curator's protection prefix is made of it: unique per acquisition.
    nonce: u64,
    fencing: Fencing,
    out: Out,
}

impl DemoZkClient {
    fn new(n: u32, cfg: &ZkDemoConfig, out: Out) -> DemoZkClient {
        let spec = ConnectSpec {
            endpoints: cfg.zk.split(',').map(|e| e.trim().to_string()).collect(),
            session_timeout_ms: cfg.session_timeout_ms,
        };
        let clock = NodeClock::perfect(tokio::time::Instant::now());
        DemoZkClient {
            n,
            client: ZkClient::new(spec.clone(), clock.clone(), 0, None),
            spec,
            clock,
            // The recipe the simulation runs: czxid as the token, a holder that stops at
            // SUSPENDED (Curator's advice), no CURATOR-604.
            recipe: Curator::default(),
            cfg: LockConfig {
                ttl_s: TTL_S_MIN,
                campaign_timeout: CAMPAIGN_TIMEOUT,
                request_timeout: ZK_REQUEST_TIMEOUT,
                lock_delay_ms: 0,
            },
            nonce: rand::random(),
            fencing: cfg.fencing,
            out,
        }
    }

    fn name(&self) -> String {
        format!("client{}", self.n)
    }

    fn context<'a>(&'a self, name: &'a str) -> LockContext<'a> {
        LockContext {
            service: ServiceContext::Zk {
                client: &self.client,
            },
            clock: &self.clock,
            cfg: &self.cfg,
            value: name,
            nonce: self.nonce,
        }
    }

    /// Takes Curator's lock: its node, session and `czxid`, and the granted timeout.
    async fn acquire(&self) -> Result<(Holding, u64), String> {
        let name = self.name();
        let service = self.context(&name).service;
        let got = lock::acquire(
            service,
            &self.clock,
            &self.cfg,
            &self.recipe,
            &name,
            self.nonce,
        )
        .await;
        let holding = got.map_err(|e| format!("client {}: no lock: {e}", self.n))?;
        let timeout_ms = self
            .client
            .current()
            .map_or(0, |zk| zk.session().timeout_ms);
        self.out.line(format!(
            "acquired Curator's lock: node {}, session {:x} ({timeout_ms} ms granted)",
            holding.key, holding.lease_id
        ));
        self.out.line(format!(
            "fencing token (the lock node's czxid): {}",
            holding.token
        ));
        Ok((holding, timeout_ms))
    }

    /// What Curator's connection-state check says now (`None`: it believes it holds).
    fn gave_up(&self, holding: &Holding) -> Option<String> {
        let name = self.name();
        self.recipe.gave_up(self.context(&name), holding)
    }

    /// Writes `key0` through the storage with `ClientRun::send`, as the simulated clients do.
    async fn write(&self, storage: &str, holding: &Holding) -> (i64, OpResult) {
        let name = self.name();
        let spec = ClientSpec {
            index: self.n,
            service: ServiceKind::Zk,
            redis_endpoints: Vec::new(),
            zk: self.spec.clone(),
            etcd_backend: crate::etcd::Backend::default(),
            etcd_endpoints: Vec::new(),
            storage_addr: storage.to_string(),
            fence: self.fencing.fence(),
            workload: Arc::new(crate::workload::Single),
            recipe: Arc::new(self.recipe),
            lock: self.cfg,
            critical_ms: MsRange::exactly(0),
            think_ms: MsRange::exactly(0),
            request_timeout: STORAGE_REQUEST_TIMEOUT,
            lease_check_margin_ms: None,
            seed: 0,
        };
        let probe = Probe::new(None, &name, self.clock.clone());
        let stop = Arc::new(AtomicBool::new(false));
        let mut run = ClientRun::new(spec, self.clock.clone(), probe, Points::none(), stop, 0);
        let version = self
            .fencing
            .fence()
            .version(holding.lease_id, holding.token);
        let val = format!("value from {name}");
        let write = run.send(Op::Write, SINGLE_KEY, val, holding).await;
        self.out.line(match &write {
            OpResult::Ok { .. } => {
                format!("successfully wrote {SINGLE_KEY} to storage with version {version}")
            }
            OpResult::Rejected { err } if self.n == 1 => {
                let what = if self.fencing.sends_lease_id() {
                    "old session ID"
                } else {
                    "old fencing token"
                };
                format!("expected fail to write to storage with {what}: error: {err}")
            }
            OpResult::Rejected { err } => {
                format!("unexpected fail to write to storage: error: {err}")
            }
            OpResult::Failed { err } | OpResult::Unknown { err } => {
                format!("fail to write to storage: {err}")
            }
        });
        (version, write)
    }

    /// Unlock (deletes the node, if the session still has it), then closes the session.
    async fn release(&self, holding: &Holding) {
        let name = self.name();
        let ident = (name.as_str(), self.nonce);
        let service = self.context(&name).service;
        let r = lock::resign(
            service,
            holding,
            &self.clock,
            &self.cfg,
            &self.recipe,
            ident,
        )
        .await;
        if let Err(e) = r {
            self.out.line(format!("release: {e}"));
        }
        if let Some(zk) = self.client.current() {
            let _ = tokio::time::timeout(ZK_REQUEST_TIMEOUT, zk.close()).await;
        }
    }

    /// Write, release, report.
    async fn finish(
        &self,
        storage: &str,
        holding: Holding,
        timeout_ms: u64,
        gave_up: Option<String>,
    ) -> ZkClientReport {
        let (version_sent, write) = self.write(storage, &holding).await;
        self.release(&holding).await;
        ZkClientReport {
            n: self.n,
            holding,
            timeout_ms,
            version_sent,
            write,
            gave_up,
        }
    }
}

// ---------------------------------------------------------------------------------------
// client 1, on its own thread

type Held = Result<(Holding, u64), String>;

/// Client 1 on its own thread and current-thread runtime: it takes the lock, tells `held`,
/// blocks its thread until `go` (or `limit`), then writes; its report goes to `done`.
fn spawn_client1(
    c1: DemoZkClient,
    storage: String,
    limit: Duration,
    held: mpsc::Sender<Held>,
    go: mpsc::Receiver<()>,
    done: mpsc::Sender<Result<ZkClientReport, String>>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let rt = match runtime_single() {
            Ok(rt) => rt,
            Err(e) => {
                let _ = held.send(Err(e));
                return;
            }
        };
        let report = rt.block_on(async {
            c1.out.line("client 1 starts");
            let (holding, timeout_ms) = match c1.acquire().await {
                Ok(x) => x,
                Err(e) => {
                    let _ = held.send(Err(e.clone()));
                    return Err(e);
                }
            };
            c1.out.line(
                "client 1 stops (the whole client, its ZooKeeper pings too: a stop-the-world pause)",
            );
            let _ = held.send(Ok((holding.clone(), timeout_ms)));
            // Blocking on purpose: this runtime has one thread, so nothing else of client 1
            // runs, the session's task included.
            let _ = go.recv_timeout(limit);
            c1.out.line("resuming client 1");
            // Read before any await: what the client knows as it resumes.
            let gave_up = c1.gave_up(&holding);
            c1.out.line(match &gave_up {
                None => "Curator's check before the write: still connected, the lock is ours \
                         (nothing has run since the pause)"
                    .to_string(),
                Some(why) => format!("Curator's check before the write: {why}; writing anyway"),
            });
            Ok(c1.finish(&storage, holding, timeout_ms, gave_up).await)
        });
        let _ = done.send(report);
        rt.shutdown_timeout(Duration::from_secs(1));
    })
}

// ---------------------------------------------------------------------------------------
// the story

/// While client 1 is stopped: another session watches its node, client 2 waits for the lock
/// behind it; both see the node go once the server expires client 1's session. Then client 2
/// writes and lets go. Returns client 2's report and the two delays from `stopped`.
async fn while_stopped(
    cfg: &ZkDemoConfig,
    (held1, timeout_ms): (&Holding, u64),
    storage: &str,
    stopped: Instant,
    lines: &Arc<Mutex<Vec<String>>>,
) -> Result<(ZkClientReport, Duration, Duration), String> {
    let demo = Out::new("[demo]     ", cfg.echo, lines.clone());
    let observer = tokio::time::timeout(
        ZK_REQUEST_TIMEOUT,
        crate::zk::real::connect(&cfg.zk, cfg.session_timeout_ms),
    )
    .await
    .map_err(|_| format!("ZooKeeper at {} did not answer", cfg.zk))?
    .map_err(|e| format!("cannot connect to ZooKeeper at {}: {e}", cfg.zk))?;
    let watched = observer.exists_watch(&held1.key).await;
    let Ok((Some(_), watch)) = watched else {
        let _ = observer.close().await;
        return Err(format!(
            "client 1's node {} is not there to watch",
            held1.key
        ));
    };
    demo.line(format!(
        "waiting for ZooKeeper to expire client 1's session {:x} (T = {timeout_ms} ms; a silent \
         session goes between T and T + a tick after its last packet)",
        held1.lease_id
    ));
    let c2 = DemoZkClient::new(2, cfg, Out::new("[client 2] ", cfg.echo, lines.clone()));
    c2.out.line("client 2 starts");
    let limit = Duration::from_millis(timeout_ms) + ZK_EXPIRY_SLACK;
    let deleted = async {
        let fired = tokio::time::timeout(limit, watch).await;
        let after = stopped.elapsed();
        if let Ok(Fired::NodeDeleted) = fired {
            demo.line(format!(
                "ZooKeeper: client 1's node {} deleted {} ms after client 1 stopped (its \
                 session expired)",
                held1.key,
                after.as_millis()
            ));
        }
        (fired, after)
    };
    let acquired = async { (c2.acquire().await, stopped.elapsed()) };
    let ((fired, deleted_after), (got2, held2_after)) = tokio::join!(deleted, acquired);
    let _ = observer.close().await;
    match fired {
        Ok(Fired::NodeDeleted) => {}
        Ok(other) => return Err(format!("client 1's node: {other:?}, not deleted")),
        Err(_) => return Err(format!("client 1's node still there after {limit:?}")),
    }
    let (held2, timeout2) = got2?;
    c2.out.line(format!(
        "holds the lock {} ms after client 1 stopped",
        held2_after.as_millis()
    ));
    let report2 = c2.finish(storage, held2, timeout2, None).await;
    Ok((report2, deleted_after, held2_after))
}

/// The story against the ZooKeeper of `cfg`, with the storage in-process on a free port.
pub fn zk_walkthrough(cfg: &ZkDemoConfig) -> Result<ZkWalkthrough, String> {
    check_zk_config(cfg)?;
    let started = Instant::now();
    let lines: Arc<Mutex<Vec<String>>> = Arc::default();
    let demo = Out::new("[demo]     ", cfg.echo, lines.clone());
    let rt = runtime_multi()?;
    let storage = rt.block_on(LocalStorage::start(cfg.fencing, ServerLimits::default()))?;
    demo.line(format!(
        "storage on {} with fencing {}; ZooKeeper at {}",
        storage.url(),
        cfg.fencing,
        cfg.zk
    ));
    let (held_tx, held_rx) = mpsc::channel();
    let (go_tx, go_rx) = mpsc::channel();
    let (done_tx, done_rx) = mpsc::channel();
    let c1 = DemoZkClient::new(1, cfg, Out::new("[client 1] ", cfg.echo, lines.clone()));
    // A bound for a failure's sake only: client 1 is told to go on every path.
    let stop_limit =
        CLIENT_STEP_TIMEOUT + ZK_EXPIRY_SLACK + Duration::from_millis(SESSION_TIMEOUT_MS_MAX);
    let thread1 = spawn_client1(c1, storage.url(), stop_limit, held_tx, go_rx, done_tx);
    let held1 = match held_rx.recv_timeout(CLIENT_STEP_TIMEOUT) {
        Ok(Ok(h)) => h,
        Ok(Err(e)) => return finish_early(go_tx, thread1, e),
        Err(_) => return finish_early(go_tx, thread1, "client 1 took no lock in time".into()),
    };
    // From here client 1 is stopped: it blocked right after telling us.
    let stopped = Instant::now();
    let during = rt.block_on(while_stopped(
        cfg,
        (&held1.0, held1.1),
        &storage.url(),
        stopped,
        &lines,
    ));
    demo.line("client 1 resumes");
    let _ = go_tx.send(());
    let report1 = done_rx
        .recv_timeout(CLIENT_STEP_TIMEOUT)
        .unwrap_or_else(|_| Err("client 1 did not finish in time".into()));
    let _ = thread1.join();
    let (client2, node_deleted_after, client2_held_after) = during?;
    let client1 = report1?;
    let key0 = storage.entry(SINGLE_KEY);
    demo.line(match &key0 {
        Some(e) => format!(
            "storage holds {SINGLE_KEY} = '{}' (version {})",
            e.val, e.version
        ),
        None => format!("storage holds no {SINGLE_KEY}"),
    });
    drop(storage);
    rt.shutdown_timeout(Duration::from_secs(1));
    let lines = lines.lock().unwrap_or_else(|e| e.into_inner()).clone();
    Ok(ZkWalkthrough {
        fencing: cfg.fencing,
        lines,
        client1,
        client2,
        key0,
        node_deleted_after,
        client2_held_after,
        elapsed: started.elapsed(),
    })
}

/// Lets client 1 go (dropping `go` ends its stop), waits for its thread, fails with `why`.
fn finish_early(
    go: mpsc::Sender<()>,
    thread1: std::thread::JoinHandle<()>,
    why: String,
) -> Result<ZkWalkthrough, String> {
    drop(go);
    let _ = thread1.join();
    Err(why)
}

// ---------------------------------------------------------------------------------------
// the command

/// `fencelab real-zk-demo`.
#[derive(Debug, Clone, clap::Args)]
pub struct ZkDemoArgs {
    /// ZooKeeper's connect string, host:port,... (default: $FENCELAB_ZK, else 127.0.0.1:2181).
    #[arg(long)]
    pub zk: Option<String>,
    /// A policy or `all`.
    #[arg(long, default_value = "all", help = format!("A policy ({}) or `all`", Fencing::names()))]
    pub fencing: String,
    /// The session timeout each client asks for, ms (the server clamps it to [2, 20] ticks).
    #[arg(long, default_value_t = ZK_SESSION_TIMEOUT_MS)]
    pub session_timeout_ms: u64,
}

/// The configuration the flags and the environment give, for one policy.
pub fn zk_config(args: &ZkDemoArgs, fencing: Fencing) -> Result<ZkDemoConfig, String> {
    let zk = match &args.zk {
        Some(z) => z.clone(),
        None => std::env::var("FENCELAB_ZK").unwrap_or_else(|_| "127.0.0.1:2181".into()),
    };
    let cfg = ZkDemoConfig {
        zk,
        fencing,
        session_timeout_ms: args.session_timeout_ms,
        echo: true,
    };
    check_zk_config(&cfg)?;
    Ok(cfg)
}

pub fn zk_demo(args: ZkDemoArgs) -> Result<(), String> {
    let policies = super::demo_policies(&args.fencing)?;
    // Every policy's configuration checked before the first story starts.
    let configs = policies
        .into_iter()
        .map(|f| zk_config(&args, f))
        .collect::<Result<Vec<_>, String>>()?;
    for cfg in configs {
        println!(
            "== etcd's example on real ZooKeeper, Curator's lock, fencing {}",
            cfg.fencing
        );
        let w = zk_walkthrough(&cfg)?;
        println!("   {}", zk_summary(&w));
        println!();
    }
    Ok(())
}

/// One line: what the walkthrough came to.
pub fn zk_summary(w: &ZkWalkthrough) -> String {
    let c1 = match &w.client1.write {
        OpResult::Ok { .. } => "ACCEPTED (stale write: client 2's update is lost)".to_string(),
        OpResult::Rejected { .. } => "refused".to_string(),
        other => format!("{other:?}"),
    };
    format!(
        "{}: client 1 (session {:x}, czxid {}) stale write {c1}; client 2 (session {:x}, czxid \
         {}) {}; key0 = {:?}; node deleted {} ms after client 1 stopped (T = {} ms); {} ms in all",
        w.fencing,
        w.client1.holding.lease_id,
        w.client1.holding.token,
        w.client2.holding.lease_id,
        w.client2.holding.token,
        if matches!(w.client2.write, OpResult::Ok { .. }) {
            "wrote"
        } else {
            "did not write"
        },
        w.key0.as_ref().map(|e| e.val.as_str()).unwrap_or("-"),
        w.node_deleted_after.as_millis(),
        w.client1.timeout_ms,
        w.elapsed.as_millis()
    )
}
