//! The walkthrough, unattended: etcd's example played by two clients in one process, and
//! `fencelab demo`.

use super::*;

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

/// The walkthrough of etcd's example against a real etcd: storage in-process on a free port, client 1
/// takes the lock and stops (its thread blocks), its lease expires or is revoked, client 2
/// takes the lock and writes, client 1 resumes and writes with its old lease or token.
pub fn walkthrough(cfg: &WalkthroughConfig) -> Result<Walkthrough, String> {
    // Checked before any duration is computed from it (a negative TTL would overflow).
    check_ttl(cfg.ttl_s)?;
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
    let thread1 = spawn_client1(client1, cfg.ttl_s, out1, go_rx, done_tx);

    let (lease1, _) = match acquired_rx.recv_timeout(CLIENT_STEP_TIMEOUT) {
        Ok(x) => x,
        Err(_) => return abort_client1(go_tx, thread1, why_no_lock(&done_rx)),
    };
    // From here client 1 is blocked: it stopped right after telling us, before yielding.
    let held_at = Instant::now();
    let gone = rt.block_on(end_lease(cfg, lease1, &demo));
    let lease_gone_after = held_at.elapsed();
    if let Err(e) = gone {
        return abort_client1(go_tx, thread1, e);
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
    let report2 = rt.block_on(run_client2(client2, &out2));

    demo.line("client 1 resumes");
    let _ = go_tx.send(());
    let report1 = done_rx
        .recv_timeout(CLIENT_STEP_TIMEOUT)
        .unwrap_or_else(|_| Err("client 1 did not finish in time".into()));
    join_client1(thread1);
    let (client1, client2) = (report1?, report2?);
    let key0 = storage.entry(SINGLE_KEY);
    demo.line(key0_text(key0.as_ref(), token));
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

/// Client 1 on its own thread and runtime, frozen once it holds the lock until `go` (or a
/// limit of a step plus the TTL); its report goes to `done`.
fn spawn_client1(
    client1: SeedClient,
    ttl_s: i64,
    out1: Out,
    go_rx: mpsc::Receiver<()>,
    done_tx: mpsc::Sender<Result<ClientReport, String>>,
) -> std::thread::JoinHandle<()> {
    let freeze_limit = CLIENT_STEP_TIMEOUT + Duration::from_secs(ttl_s as u64);
    std::thread::spawn(move || {
        let report = runtime_single()
            .and_then(|rt| rt.block_on(client1.run(Wait::FreezeUntil(go_rx, freeze_limit), &out1)));
        let _ = done_tx.send(report);
    })
}

/// Why client 1 did not tell us it holds the lock: its own error if it ended with one.
fn why_no_lock(done_rx: &mpsc::Receiver<Result<ClientReport, String>>) -> String {
    match done_rx.try_recv() {
        Ok(Err(e)) => e,
        _ => "client 1 did not take the lock in time".to_string(),
    }
}

/// Lets client 1 go (dropping `go` ends its freeze), waits for its thread, fails with `why`.
fn abort_client1(
    go_tx: mpsc::Sender<()>,
    thread1: std::thread::JoinHandle<()>,
    why: String,
) -> Result<Walkthrough, String> {
    drop(go_tx);
    join_client1(thread1);
    Err(why)
}

fn join_client1(thread1: std::thread::JoinHandle<()>) {
    // The thread ends soon after its report (or after its freeze limit at worst).
    let _ = thread1.join();
}

/// Client 2 writes at once, bounded by a step's timeout.
async fn run_client2(client2: SeedClient, out2: &Out) -> Result<ClientReport, String> {
    tokio::time::timeout(CLIENT_STEP_TIMEOUT, client2.run(Wait::None, out2))
        .await
        .unwrap_or_else(|_| Err("client 2 did not finish in time".into()))
}

/// The demo's last line: what the storage holds for `key0`.
fn key0_text(key0: Option<&Entry>, token: TokenKind) -> String {
    match key0 {
        Some(e) => format!(
            "storage holds {SINGLE_KEY} = '{}' (version {})",
            e.val,
            version_text(token, e.version)
        ),
        None => format!("storage holds no {SINGLE_KEY}"),
    }
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
    #[arg(long, default_value = "all", help = format!("A policy ({}) or `all`", Fencing::names()))]
    pub fencing: String,
    /// Lease TTL in seconds.
    #[arg(long = "ttl", default_value_t = 2)]
    pub ttl_s: i64,
    /// How client 1's lease ends while it is stopped.
    #[arg(long, value_enum, default_value = "expire")]
    pub lease_end: LeaseEnd,
}

pub fn demo(args: DemoArgs) -> Result<(), String> {
    let policies = super::demo_policies(&args.fencing)?;
    for fencing in policies {
        println!("== etcd's example for real, fencing {fencing}");
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
