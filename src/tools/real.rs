//! Real mode: the same storage, lock and client code over real TCP, a real etcd and real time.
//!
//! Built without `--cfg madsim` (`RUSTFLAGS= cargo run --release --target-dir target/real`).
//! The storage is [`crate::storage::http::Server`], the lock is [`lock::Session`] + [`lock::acquire`],
//! the write goes through [`ClientRun::send`]: exactly what the simulation tests run.
//!
//! A GC pause is real here too, and **in-process**: a client runs on a current-thread tokio
//! runtime, and a pause blocks that one thread (`std::thread::sleep` or a blocking channel
//! receive), so nothing of the client runs, its lease keepalive included, as in a
//! stop-the-world pause. A client process can also be paused from outside with
//! `kill -STOP <pid>` / `kill -CONT <pid>`, which has the same effect.

use crate::clock::NodeClock;
use crate::history::{OpResult, Probe};
use crate::lock::{self, LockConfig, Session, TTL_S_MAX, TTL_S_MIN};
use crate::protocol::{Op, Request};
use crate::scenario::MsRange;
use crate::storage::http::{Client as StorageClient, Server, ServerLimits};
use crate::storage::{Entry, Fencing, Store};
use crate::workload::{ClientRun, ClientSpec, Points, SINGLE_KEY};
use std::io::Write;
use std::sync::atomic::AtomicBool;
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

/// How long a client waits for etcd to answer a connect.
const ETCD_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long any other etcd request may take.
const ETCD_REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a client waits for the lock before giving up.
const CAMPAIGN_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a storage request may take.
const STORAGE_REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest wait of client 1 for a key press or its lease's loss.
pub const WAIT_S_MAX: u64 = 3_600;
/// How often the demo asks etcd whether a lease is gone.
const LEASE_POLL_PERIOD: Duration = Duration::from_millis(50);
/// Beyond its TTL, how long the demo waits for etcd to expire a lease (etcd checks leases
/// every 500 ms).
const LEASE_EXPIRY_SLACK: Duration = Duration::from_secs(10);
/// How long the demo waits for a client's step (acquire, finish).
const CLIENT_STEP_TIMEOUT: Duration = Duration::from_secs(60);
/// Most clients and requests of a load run: a limit on everything.
pub const LOAD_CLIENTS_MAX: usize = 1_024;
pub const LOAD_REQUESTS_MAX: usize = 100_000;

fn runtime_multi() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start a tokio runtime: {e}"))
}

/// A client's runtime: one thread, so that blocking it stops everything the client does.
fn runtime_single() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start a tokio runtime: {e}"))
}

// ---------------------------------------------------------------------------------------
// storage

/// `fencelab storage`: the storage server over real HTTP.
#[derive(Debug, Clone, clap::Args)]
pub struct StorageArgs {
    /// Address to listen on (127.0.0.1 only is the intended use).
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: String,
    /// none, lease-id (the seed's check), token-writes or token.
    #[arg(long, default_value = "lease-id")]
    pub fencing: String,
    /// Close a connection whose request head has not arrived after this long (0: never).
    #[arg(long, default_value_t = 10_000)]
    pub header_read_timeout_ms: u64,
    /// Answer 408 to a request whose body has not arrived after this long.
    #[arg(long, default_value_t = 10_000)]
    pub body_read_timeout_ms: u64,
}

pub fn storage(args: StorageArgs) -> Result<(), String> {
    let fencing: Fencing = args.fencing.parse()?;
    let limits = ServerLimits {
        header_read_timeout: (args.header_read_timeout_ms > 0)
            .then(|| Duration::from_millis(args.header_read_timeout_ms)),
        body_read_timeout: Duration::from_millis(args.body_read_timeout_ms.max(1)),
        ..ServerLimits::default()
    };
    let rt = runtime_multi()?;
    rt.block_on(async {
        let listener = tokio::net::TcpListener::bind(&args.listen)
            .await
            .map_err(|e| format!("cannot listen on {}: {e}", args.listen))?;
        let addr = listener.local_addr().map_err(|e| e.to_string())?;
        println!("storage listening on http://{addr} with fencing {fencing}");
        let _ = std::io::stdout().flush();
        let store = Arc::new(Mutex::new(Store::new(fencing)));
        Server::new(store, None, "storage")
            .with_limits(limits)
            .serve(listener)
            .await
            .map_err(|e| format!("storage stopped: {e}"))
    })
}

/// A storage server on a free 127.0.0.1 port, running on `rt` until dropped.
pub struct LocalStorage {
    pub addr: std::net::SocketAddr,
    pub store: Arc<Mutex<Store>>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl LocalStorage {
    pub async fn start(fencing: Fencing, limits: ServerLimits) -> Result<LocalStorage, String> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|e| format!("cannot listen on 127.0.0.1: {e}"))?;
        let addr = listener.local_addr().map_err(|e| e.to_string())?;
        let store = Arc::new(Mutex::new(Store::new(fencing)));
        let server = Server::new(store.clone(), None, "storage").with_limits(limits);
        let task = tokio::spawn(server.serve(listener));
        Ok(LocalStorage { addr, store, task })
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn entry(&self, key: &str) -> Option<Entry> {
        self.store.lock().expect("store lock").get(key).cloned()
    }
}

impl Drop for LocalStorage {
    fn drop(&mut self) {
        self.task.abort();
    }
}

// ---------------------------------------------------------------------------------------
// the seed's client

/// What the client sends as the storage's "version".
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum TokenKind {
    /// The lock key's create revision: etcd's fencing token.
    Revision,
    /// The session's lease ID, as the seed does.
    LeaseId,
}

impl TokenKind {
    /// The policy whose client sends this (only `sends_lease_id` matters on the client side).
    fn client_fencing(self) -> Fencing {
        match self {
            TokenKind::Revision => Fencing::Token,
            TokenKind::LeaseId => Fencing::LeaseId,
        }
    }

    /// What the token sent for each policy is, as the demo runs it.
    pub fn for_policy(fencing: Fencing) -> TokenKind {
        if fencing.sends_lease_id() {
            TokenKind::LeaseId
        } else {
            TokenKind::Revision
        }
    }
}

/// `fencelab client N`: the seed's client.
#[derive(Debug, Clone, clap::Args)]
pub struct ClientArgs {
    /// 1 waits before writing (the seed's GC pause stand-in); any other number writes at once.
    pub n: u32,
    #[arg(long, default_value = "127.0.0.1:2379")]
    pub etcd: String,
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub storage: String,
    /// Lease TTL in seconds (real etcd raises anything below 2 to 2).
    #[arg(long = "ttl", default_value_t = 2)]
    pub ttl_s: i64,
    /// What to send as the storage's version.
    #[arg(long, value_enum, default_value = "lease-id")]
    pub fencing_token: TokenKind,
    /// Client 1: instead of waiting for Enter, stop the whole client (keepalives too) for
    /// this many seconds, like a stop-the-world GC pause.
    #[arg(long = "pause", conflicts_with = "until_lease_lost")]
    pub pause_s: Option<u64>,
    /// Client 1: instead of waiting for Enter, keep the lease alive and go on once the
    /// client learns the lease is gone (revoked with etcdctl, or expired).
    #[arg(long)]
    pub until_lease_lost: bool,
    /// Longest wait for Enter or the lease's loss, in seconds.
    #[arg(long = "wait-max", default_value_t = 600)]
    pub wait_max_s: u64,
}

/// How client 1 waits between taking the lock and writing.
#[derive(Debug)]
pub enum Wait {
    /// Write at once (client 2).
    None,
    /// Stop the world for this long: the thread blocks, keepalives included.
    Freeze(Duration),
    /// Stop the world until told to go on (or the limit passes).
    FreezeUntil(mpsc::Receiver<()>, Duration),
    /// Keep the lease alive and wait for Enter on stdin (or end of input), at most this long.
    KeyPress(Duration),
    /// Keep the lease alive until the client learns the lease is gone, at most this long.
    LeaseLost(Duration),
}

/// Lines a client prints: echoed as they come, and kept for tests.
#[derive(Debug, Clone, Default)]
pub struct Out {
    prefix: String,
    echo: bool,
    lines: Arc<Mutex<Vec<String>>>,
}

impl Out {
    pub fn new(prefix: &str, echo: bool, lines: Arc<Mutex<Vec<String>>>) -> Self {
        Out {
            prefix: prefix.to_string(),
            echo,
            lines,
        }
    }

    pub fn line(&self, s: impl AsRef<str>) {
        let s = format!("{}{}", self.prefix, s.as_ref());
        if self.echo {
            println!("{s}");
            let _ = std::io::stdout().flush();
        }
        self.lines.lock().expect("out lines").push(s);
    }
}

/// What one seed client did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientReport {
    pub n: u32,
    pub lease_id: i64,
    pub token: i64,
    /// What went on the wire as `version`.
    pub version_sent: i64,
    pub write: OpResult,
    /// Why the client knows its lease is gone, if it knew when it finished.
    pub lease_lost: Option<String>,
}

/// The seed client's run, shared by `fencelab client` and the walkthrough.
pub struct SeedClient {
    pub n: u32,
    pub etcd: String,
    pub storage: String,
    pub ttl_s: i64,
    pub token: TokenKind,
    /// Told the lease ID and token once the lock is held.
    pub acquired: Option<mpsc::Sender<(i64, i64)>>,
}

impl SeedClient {
    fn lock_config(&self) -> LockConfig {
        LockConfig {
            ttl_s: self.ttl_s,
            campaign_timeout: CAMPAIGN_TIMEOUT,
            request_timeout: ETCD_REQUEST_TIMEOUT,
            lock_delay_ms: 0,
        }
    }

    /// Session, lock, wait, write `key0`, release: the seed's client, line for line.
    pub async fn run(self, wait: Wait, out: &Out) -> Result<ClientReport, String> {
        if !(TTL_S_MIN..=TTL_S_MAX).contains(&self.ttl_s) {
            return Err(format!(
                "--ttl {} is outside {TTL_S_MIN}..={TTL_S_MAX} seconds",
                self.ttl_s
            ));
        }
        let n = self.n;
        out.line(format!("client {n} starts"));
        let clock = NodeClock::perfect(tokio::time::Instant::now());
        let name = format!("client{n}");
        let probe = Probe::new(None, &name, clock.clone());
        let cfg = self.lock_config();
        let etcd = connect_etcd(&self.etcd).await?;
        let session = Session::start(&etcd, &clock, &probe, &cfg)
            .await
            .map_err(|e| format!("cannot create a session: {e}"))?;
        out.line("created etcd client and session");
        // The same recipe the simulated stories use, so real and simulated runs compare.
        let recipe = crate::lock::Election;
        let holding = match lock::acquire(&etcd, &session, &clock, &cfg, &recipe, &name).await {
            Ok(h) => h,
            Err(e) => {
                // Revoking removes the waiting campaign key.
                session.close(&etcd, &clock, &cfg).await;
                return Err(format!("cannot take the lock: {e}"));
            }
        };
        out.line(format!("acquired lock, version: {:x}", holding.lease_id));
        out.line(format!(
            "fencing token (the lock key's create revision): {}",
            holding.token
        ));
        let tell = || {
            if let Some(tx) = &self.acquired {
                let _ = tx.send((holding.lease_id, holding.token));
            }
        };
        wait_before_write(n, wait, &session, out, tell).await;
        if n == 1 {
            out.line("resuming client 1");
        } else {
            out.line(format!("this is client {n}, continuing"));
        }
        let spec = ClientSpec {
            index: n,
            etcd_backend: crate::etcd::Backend::default(),
            etcd_endpoints: vec![self.etcd.clone()],
            storage_addr: self.storage.clone(),
            fence: self.token.client_fencing().fence(),
            workload: Arc::new(crate::workload::Single),
            recipe: Arc::new(recipe),
            lock: cfg,
            critical_ms: MsRange::exactly(0),
            think_ms: MsRange::exactly(0),
            request_timeout: STORAGE_REQUEST_TIMEOUT,
            lease_check_margin_ms: None,
            seed: 0,
        };
        let version_sent = match self.token {
            TokenKind::LeaseId => holding.lease_id,
            TokenKind::Revision => holding.token,
        };
        let mut run = ClientRun::new(
            spec,
            clock.clone(),
            probe,
            Points::none(),
            Arc::new(AtomicBool::new(false)),
            0,
        );
        let write = run
            .send(
                Op::Write,
                SINGLE_KEY,
                format!("value from {name}"),
                &holding,
            )
            .await;
        let what = match self.token {
            TokenKind::LeaseId => "old lease version",
            TokenKind::Revision => "old fencing token",
        };
        match &write {
            OpResult::Ok { .. } => out.line(format!(
                "successfully wrote {SINGLE_KEY} to storage with version {}",
                version_text(self.token, version_sent)
            )),
            OpResult::Rejected { err } if n == 1 => out.line(format!(
                "expected fail to write to storage with {what}: error: {err}"
            )),
            OpResult::Rejected { err } => {
                out.line(format!("unexpected fail to write to storage: error: {err}"))
            }
            OpResult::Failed { err } | OpResult::Unknown { err } => {
                out.line(format!("fail to write to storage: {err}"))
            }
        }
        // Release: either step fails harmlessly when the lease is already gone.
        let _ = lock::resign(&etcd, &session, &holding, &clock, &cfg, &recipe).await;
        let lease_lost = session.lost();
        session.close(&etcd, &clock, &cfg).await;
        Ok(ClientReport {
            n,
            lease_id: holding.lease_id,
            token: holding.token,
            version_sent,
            write,
            lease_lost,
        })
    }
}

fn version_text(token: TokenKind, version: i64) -> String {
    match token {
        TokenKind::LeaseId => format!("{version:x}"),
        TokenKind::Revision => version.to_string(),
    }
}

/// Waits as told; calls `tell` once the wait has begun (for a freeze: just before blocking,
/// with no await in between, so whoever is told knows the client is stopped).
async fn wait_before_write(n: u32, wait: Wait, session: &Session, out: &Out, tell: impl FnOnce()) {
    let lease = session.lease_id();
    match wait {
        Wait::None => tell(),
        Wait::Freeze(pause) => {
            out.line(format!(
                "client {n} stops for {} ms (the whole client, keepalives too: a stop-the-world pause)",
                pause.as_millis()
            ));
            tell();
            // Blocking on purpose: this runtime has one thread, so nothing else runs.
            std::thread::sleep(pause);
        }
        Wait::FreezeUntil(go, limit) => {
            out.line(format!(
                "client {n} stops (the whole client, keepalives too: a stop-the-world pause)"
            ));
            tell();
            // Blocking on purpose, as above.
            let _ = go.recv_timeout(limit);
        }
        Wait::KeyPress(limit) => {
            tell();
            out.line(format!(
                "please manually revoke the lease using 'etcdctl lease revoke {lease:x}' or wait for it to expire, then start executing client 2 and hit Enter..."
            ));
            let (tx, rx) = tokio::sync::oneshot::channel();
            // Why a thread: a blocking stdin read must not stop the keepalive.
            std::thread::spawn(move || {
                let mut line = String::new();
                let _ = std::io::stdin().read_line(&mut line);
                let _ = tx.send(());
            });
            if tokio::time::timeout(limit, rx).await.is_err() {
                out.line(format!(
                    "no key press after {} s, continuing",
                    limit.as_secs()
                ));
            }
        }
        Wait::LeaseLost(limit) => {
            tell();
            out.line(format!(
                "waiting until lease {lease:x} is gone: revoke it with 'etcdctl lease revoke {lease:x}'"
            ));
            let started = Instant::now();
            // Bounded by `limit`; the keepalive notices a loss within TTL/3.
            while session.lost().is_none() && started.elapsed() < limit {
                tokio::time::sleep(LEASE_POLL_PERIOD).await;
            }
            match session.lost() {
                Some(why) => out.line(format!("lease {lease:x} is gone: {why}")),
                None => out.line(format!(
                    "lease {lease:x} still alive after {} s, continuing",
                    limit.as_secs()
                )),
            }
        }
    }
}

/// `fencelab client N`.
pub fn client(args: ClientArgs) -> Result<(), String> {
    if args.wait_max_s > WAIT_S_MAX || args.pause_s.is_some_and(|p| p > WAIT_S_MAX) {
        return Err(format!("waits are limited to {WAIT_S_MAX} s"));
    }
    let wait_max = Duration::from_secs(args.wait_max_s);
    let wait = match (args.n, args.pause_s, args.until_lease_lost) {
        (1, Some(p), _) => Wait::Freeze(Duration::from_secs(p)),
        (1, None, true) => Wait::LeaseLost(wait_max),
        (1, None, false) => Wait::KeyPress(wait_max),
        _ => Wait::None,
    };
    let out = Out::new("", true, Arc::default());
    let client = SeedClient {
        n: args.n,
        etcd: args.etcd,
        storage: args.storage,
        ttl_s: args.ttl_s,
        token: args.fencing_token,
        acquired: None,
    };
    let report = runtime_single()?.block_on(client.run(wait, &out))?;
    match report.write {
        OpResult::Ok { .. } => Ok(()),
        OpResult::Rejected { .. } if report.n == 1 => Ok(()),
        other => Err(format!("client {}'s write: {other:?}", report.n)),
    }
}

// ---------------------------------------------------------------------------------------
// the walkthrough, unattended

/// How client 1's lease ends in the walkthrough.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LeaseEnd {
    /// Client 1 is stopped and its lease expires by itself.
    Expire,
    /// Client 1 is stopped and its lease is revoked, as `etcdctl lease revoke` does.
    Revoke,
}

/// One unattended walkthrough.
#[derive(Debug, Clone)]
pub struct WalkthroughConfig {
    pub etcd: String,
    pub fencing: Fencing,
    pub ttl_s: i64,
    pub end: LeaseEnd,
    /// Print lines as they come.
    pub echo: bool,
}

/// What the walkthrough came to.
#[derive(Debug, Clone)]
pub struct Walkthrough {
    pub fencing: Fencing,
    pub lines: Vec<String>,
    pub client1: ClientReport,
    pub client2: ClientReport,
    /// What the storage holds for `key0` at the end.
    pub key0: Option<Entry>,
    /// From client 1 holding the lock to etcd reporting its lease gone.
    pub lease_gone_after: Duration,
    pub elapsed: Duration,
}

impl Walkthrough {
    pub fn stale_write_accepted(&self) -> bool {
        matches!(self.client1.write, OpResult::Ok { .. })
    }
}

/// The seed's walkthrough against a real etcd: storage in-process on a free port, client 1
/// takes the lock and stops (its thread blocks), its lease expires or is revoked, client 2
/// takes the lock and writes, client 1 resumes and writes with its old lease or token.
pub fn walkthrough(cfg: &WalkthroughConfig) -> Result<Walkthrough, String> {
    // Checked before any duration is computed from it (a negative TTL would overflow).
    if !(TTL_S_MIN..=TTL_S_MAX).contains(&cfg.ttl_s) {
        return Err(format!(
            "--ttl {} is outside {TTL_S_MIN}..={TTL_S_MAX} seconds",
            cfg.ttl_s
        ));
    }
    let started = Instant::now();
    let lines: Arc<Mutex<Vec<String>>> = Arc::default();
    let demo = Out::new("[demo]     ", cfg.echo, lines.clone());
    let rt = runtime_multi()?;
    let storage = rt.block_on(LocalStorage::start(cfg.fencing, ServerLimits::default()))?;
    demo.line(format!(
        "storage on {} with fencing {}",
        storage.url(),
        cfg.fencing
    ));
    let token = TokenKind::for_policy(cfg.fencing);

    // Client 1 on its own thread and runtime, so that blocking it stops only client 1.
    let (acquired_tx, acquired_rx) = mpsc::channel();
    let (go_tx, go_rx) = mpsc::channel();
    let (done_tx, done_rx) = mpsc::channel();
    let client1 = SeedClient {
        n: 1,
        etcd: cfg.etcd.clone(),
        storage: storage.url(),
        ttl_s: cfg.ttl_s,
        token,
        acquired: Some(acquired_tx),
    };
    let out1 = Out::new("[client 1] ", cfg.echo, lines.clone());
    let freeze_limit = CLIENT_STEP_TIMEOUT + Duration::from_secs(cfg.ttl_s as u64);
    let thread1 = std::thread::spawn(move || {
        let report = runtime_single()
            .and_then(|rt| rt.block_on(client1.run(Wait::FreezeUntil(go_rx, freeze_limit), &out1)));
        let _ = done_tx.send(report);
    });
    let finish = |thread: std::thread::JoinHandle<()>| {
        // The thread ends soon after its report (or after `freeze_limit` at worst).
        let _ = thread.join();
    };

    let (lease1, _) = match acquired_rx.recv_timeout(CLIENT_STEP_TIMEOUT) {
        Ok(x) => x,
        Err(_) => {
            let why = match done_rx.try_recv() {
                Ok(Err(e)) => e,
                _ => "client 1 did not take the lock in time".to_string(),
            };
            drop(go_tx);
            finish(thread1);
            return Err(why);
        }
    };
    // From here client 1 is blocked: it stopped right after telling us, before yielding.
    let held_at = Instant::now();
    let gone = rt.block_on(end_lease(cfg, lease1, &demo));
    let lease_gone_after = held_at.elapsed();
    if let Err(e) = gone {
        drop(go_tx);
        finish(thread1);
        return Err(e);
    }

    let out2 = Out::new("[client 2] ", cfg.echo, lines.clone());
    let client2 = SeedClient {
        n: 2,
        etcd: cfg.etcd.clone(),
        storage: storage.url(),
        ttl_s: cfg.ttl_s,
        token,
        acquired: None,
    };
    let report2 = rt.block_on(async {
        tokio::time::timeout(CLIENT_STEP_TIMEOUT, client2.run(Wait::None, &out2))
            .await
            .unwrap_or_else(|_| Err("client 2 did not finish in time".into()))
    });

    demo.line("client 1 resumes");
    let _ = go_tx.send(());
    let report1 = done_rx
        .recv_timeout(CLIENT_STEP_TIMEOUT)
        .unwrap_or_else(|_| Err("client 1 did not finish in time".into()));
    finish(thread1);
    let (client1, client2) = (report1?, report2?);
    let key0 = storage.entry(SINGLE_KEY);
    demo.line(match &key0 {
        Some(e) => format!(
            "storage holds {SINGLE_KEY} = '{}' (version {})",
            e.val,
            version_text(token, e.version)
        ),
        None => format!("storage holds no {SINGLE_KEY}"),
    });
    drop(storage);
    rt.shutdown_timeout(Duration::from_secs(1));
    let lines = lines.lock().expect("out lines").clone();
    Ok(Walkthrough {
        fencing: cfg.fencing,
        lines,
        client1,
        client2,
        key0,
        lease_gone_after,
        elapsed: started.elapsed(),
    })
}

/// Connects to a real etcd through the seam, bounded by `ETCD_CONNECT_TIMEOUT`.
pub async fn connect_etcd(endpoint: &str) -> Result<crate::lock::EtcdHandle, String> {
    let endpoints = [endpoint.to_string()];
    tokio::time::timeout(
        ETCD_CONNECT_TIMEOUT,
        crate::etcd::connect(crate::etcd::Backend::default(), &endpoints),
    )
    .await
    .map_err(|_| format!("etcd at {endpoint} did not answer"))?
    .map_err(|e| format!("cannot connect to etcd at {endpoint}: {e}"))
}

/// Ends client 1's lease (revoke, or wait for expiry) and waits until etcd says it is gone.
async fn end_lease(cfg: &WalkthroughConfig, lease: i64, demo: &Out) -> Result<(), String> {
    let etcd = connect_etcd(&cfg.etcd).await?;
    if cfg.end == LeaseEnd::Revoke {
        demo.line(format!("etcdctl lease revoke {lease:x}"));
        tokio::time::timeout(ETCD_REQUEST_TIMEOUT, etcd.revoke(lease))
            .await
            .map_err(|_| "lease revoke timed out".to_string())?
            .map_err(|e| format!("lease revoke: {e}"))?;
    } else {
        demo.line(format!("waiting for lease {lease:x} to expire"));
    }
    let limit = Duration::from_secs(cfg.ttl_s as u64) + LEASE_EXPIRY_SLACK;
    let started = Instant::now();
    // Bounded by `limit`: etcd expires a lease within its TTL plus its 500 ms check period.
    while started.elapsed() < limit {
        let answer = tokio::time::timeout(ETCD_REQUEST_TIMEOUT, etcd.time_to_live(lease)).await;
        // Why not `ttl <= 0`: etcd rounds the remaining TTL down to whole seconds, so 0 only
        // means "under a second left"; a lease that is gone answers -1.
        let gone = matches!(answer, Ok(Ok(ttl)) if ttl < 0);
        if gone {
            demo.line(format!(
                "etcd: lease {lease:x} is gone after {} ms",
                started.elapsed().as_millis()
            ));
            return Ok(());
        }
        tokio::time::sleep(LEASE_POLL_PERIOD).await;
    }
    Err(format!(
        "lease {lease:x} still alive after {} s",
        limit.as_secs()
    ))
}

/// `fencelab real-demo`.
#[derive(Debug, Clone, clap::Args)]
pub struct DemoArgs {
    #[arg(long, default_value = "127.0.0.1:2379")]
    pub etcd: String,
    /// A policy or `all`.
    #[arg(long, default_value = "all")]
    pub fencing: String,
    /// Lease TTL in seconds.
    #[arg(long = "ttl", default_value_t = 2)]
    pub ttl_s: i64,
    /// How client 1's lease ends while it is stopped.
    #[arg(long, value_enum, default_value = "expire")]
    pub lease_end: LeaseEnd,
}

pub fn demo(args: DemoArgs) -> Result<(), String> {
    let policies = if args.fencing == "all" {
        Fencing::ALL.to_vec()
    } else {
        vec![args.fencing.parse()?]
    };
    for fencing in policies {
        println!("== the seed's walkthrough for real, fencing {fencing}");
        let w = walkthrough(&WalkthroughConfig {
            etcd: args.etcd.clone(),
            fencing,
            ttl_s: args.ttl_s,
            end: args.lease_end,
            echo: true,
        })?;
        println!("   {}", summary(&w));
        println!();
    }
    Ok(())
}

/// One line: what the walkthrough came to.
pub fn summary(w: &Walkthrough) -> String {
    let c1 = match &w.client1.write {
        OpResult::Ok { .. } => "ACCEPTED (stale write: client 2's update is lost)".to_string(),
        OpResult::Rejected { .. } => "rejected".to_string(),
        other => format!("{other:?}"),
    };
    format!(
        "{}: client 1 (lease {:x}, token {}) stale write {c1}; client 2 (lease {:x}, token {}) {}; key0 = {:?}; lease gone {} ms after acquire; {} ms in all",
        w.fencing,
        w.client1.lease_id,
        w.client1.token,
        w.client2.lease_id,
        w.client2.token,
        if matches!(w.client2.write, OpResult::Ok { .. }) { "wrote" } else { "did not write" },
        w.key0.as_ref().map(|e| e.val.as_str()).unwrap_or("-"),
        w.lease_gone_after.as_millis(),
        w.elapsed.as_millis()
    )
}

// ---------------------------------------------------------------------------------------
// load

/// What a load run measured.
#[derive(Debug, Clone)]
pub struct LoadReport {
    pub clients: usize,
    pub requests: usize,
    /// Requests answered with anything but an accepted write.
    pub errors: Vec<String>,
    /// Acknowledged writes whose value is not what a read returns afterwards.
    pub lost: Vec<String>,
    pub elapsed: Duration,
    pub p50: Duration,
    pub p99: Duration,
    pub max: Duration,
}

impl LoadReport {
    pub fn throughput_per_s(&self) -> f64 {
        self.requests as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// `clients` concurrent keep-alive clients each write `requests_per_client` distinct keys,
/// then every acknowledged write is read back. Latencies are of the writes.
pub async fn load(storage: &str, clients: usize, requests_per_client: usize) -> LoadReport {
    assert!((1..=LOAD_CLIENTS_MAX).contains(&clients), "clients");
    assert!(
        (1..=LOAD_REQUESTS_MAX).contains(&requests_per_client),
        "requests"
    );
    let key = |c: usize, i: usize| format!("load-{c}-{i}");
    let val = |c: usize, i: usize| format!("client {c} request {i}");
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(clients);
    for c in 0..clients {
        let addr = storage.to_string();
        tasks.push(tokio::spawn(async move {
            let mut client = StorageClient::new(&addr);
            let mut latencies = Vec::with_capacity(requests_per_client);
            let mut acked = Vec::with_capacity(requests_per_client);
            let mut errors = Vec::new();
            for i in 0..requests_per_client {
                let req = Request {
                    op: Op::Write,
                    key: key(c, i),
                    val: val(c, i),
                    version: i as i64,
                };
                let sent = Instant::now();
                let answer =
                    tokio::time::timeout(STORAGE_REQUEST_TIMEOUT, client.call(&req, None)).await;
                latencies.push(sent.elapsed());
                match answer {
                    Ok(Ok(r)) if r.is_ok() => acked.push(i),
                    Ok(Ok(r)) => errors.push(format!("{}: refused: {}", req.key, r.err)),
                    Ok(Err(e)) => errors.push(format!("{}: {e:?}", req.key)),
                    Err(_) => {
                        client.reset();
                        errors.push(format!("{}: timed out", req.key));
                    }
                }
            }
            (latencies, acked, errors)
        }));
    }
    let mut latencies = Vec::with_capacity(clients * requests_per_client);
    let mut acked = Vec::new();
    let mut errors = Vec::new();
    for (c, t) in tasks.into_iter().enumerate() {
        match t.await {
            Ok((l, a, e)) => {
                latencies.extend(l);
                acked.push((c, a));
                errors.extend(e);
            }
            Err(e) => errors.push(format!("client {c} panicked: {e}")),
        }
    }
    let elapsed = started.elapsed();
    // Read every acknowledged write back, one client per writer to keep it quick.
    let mut checks = Vec::with_capacity(acked.len());
    for (c, indexes) in acked {
        let addr = storage.to_string();
        checks.push(tokio::spawn(async move {
            let mut client = StorageClient::new(&addr);
            let mut lost = Vec::new();
            for i in indexes {
                let req = Request {
                    op: Op::Read,
                    key: key(c, i),
                    val: String::new(),
                    version: i as i64,
                };
                match tokio::time::timeout(STORAGE_REQUEST_TIMEOUT, client.call(&req, None)).await {
                    Ok(Ok(r)) if r.is_ok() && r.val == val(c, i) && r.version == i as i64 => {}
                    other => lost.push(format!("{}: read back {other:?}", req.key)),
                }
            }
            lost
        }));
    }
    let mut lost = Vec::new();
    for t in checks {
        match t.await {
            Ok(l) => lost.extend(l),
            Err(e) => lost.push(format!("a read-back task panicked: {e}")),
        }
    }
    latencies.sort_unstable();
    let pick = |q: f64| {
        let i = ((latencies.len() as f64 * q).ceil() as usize).clamp(1, latencies.len()) - 1;
        latencies[i]
    };
    LoadReport {
        clients,
        requests: latencies.len(),
        errors,
        lost,
        elapsed,
        p50: pick(0.50),
        p99: pick(0.99),
        max: *latencies.last().expect("at least one request"),
    }
}
