//! `fencelab real-redlock-demo`: Kleppmann's clock jump on Redlock, against five real
//! redis-servers (`.ci/redis-servers`) and the real storage server.
//!
//! The story of `sims/scenarios/kleppmann-redlock-clock-jump.toml`, for real: client 1 locks
//! A, B and C while D and E are stopped (SIGSTOP); C's wall clock steps past the TTL (the
//! realtime-offset shim's file), so C expires the key; D and E run again; client 2 locks C, D
//! and E. Both hold a quorum, both validities are positive by their own clocks, and client 1's
//! stale write reaches the storage, where only a fence with an ordered token can refuse it.
//!
//! Why client 1 connects to each node on its first call: a connection opened before the stop
//! would make SIGSTOP a delay, not a partition. Its `SET NX` would wait in D's and E's socket
//! buffers and run on SIGCONT, handing D and E to client 1 after all (the real suite's
//! `sigstop_longer_than_the_ttl` shows a queued `SET NX` winning the moment a server runs
//! again). A connection attempt to a stopped server never completes (the kernel accepts, the
//! handshake gets no answer), so the per-node timeout drops it and no `SET` is ever sent: D and
//! E are unreachable to client 1, as in the simulated scenario's partition.

use super::redlock_nodes::*;
use super::*;
use crate::lock::redlock::{REDLOCK_KEY, TOKEN_KEY};
use crate::lock::{
    Holding, LockRecipe, RedisHandle, Redlock, RedlockToken, ServiceContext, ServiceKind,
};
use crate::protocol::Request;
use std::path::PathBuf;

pub use super::redlock_nodes::{CLOCK_STEP_MS, REDLOCK_NODES, REDLOCK_TTL_S};

/// How long a client keeps retrying for the lock: well inside client 1's validity, so that a
/// client 2 that finds no quorum gives up while client 1 still holds (the control run).
const REDLOCK_CAMPAIGN_TIMEOUT: Duration = Duration::from_secs(3);
/// How long `INCR` and the unlock script may take.
const REDIS_REQUEST_TIMEOUT: Duration = Duration::from_secs(2);

/// What the demo runs against and how.
#[derive(Debug, Clone)]
pub struct RedlockDemoConfig {
    /// The five nodes A to E, `host:port`.
    pub redis: Vec<String>,
    /// Each node's realtime-offset file, same order.
    pub offset_files: Vec<PathBuf>,
    /// Each node's PID, same order (D's and E's are stopped).
    pub pids: Vec<u32>,
    pub fencing: Fencing,
    pub token: RedlockToken,
    /// Step C's clock (the story); `false` is the control: client 2 must find no quorum.
    pub clock_step: bool,
    /// Print lines as they come.
    pub echo: bool,
}

/// One client's lock, as it took it.
#[derive(Debug, Clone)]
pub struct RedlockHeld {
    pub holding: Holding,
    /// The nodes that answered OK to the winning attempt's `SET NX PX`.
    pub nodes_ok: Vec<char>,
    pub attempts: usize,
    /// From the call to `lock::acquire` to its answer.
    pub acquire_ms: u128,
}

/// What the demo came to.
#[derive(Debug, Clone)]
pub struct RedlockRun {
    pub config: RedlockDemoConfig,
    pub lines: Vec<String>,
    pub client1: RedlockHeld,
    /// Client 2's lock, or why it has none.
    pub client2: Result<RedlockHeld, String>,
    /// Validity left, ms, of client 1 and client 2 by each one's own clock, read together
    /// once client 2 holds.
    pub validity_left_ms: Option<(i64, i64)>,
    pub write1: OpResult,
    pub write2: Option<OpResult>,
    pub key0: Option<Entry>,
    /// Under `--token incr`: whether the same fence would have accepted client 1's stale
    /// write had the clients offered Redlock's random values instead.
    pub random_token_accepts: Option<bool>,
}

impl RedlockRun {
    /// Both clients held the lock at once, each valid by its own clock.
    pub fn double_grant(&self) -> bool {
        self.validity_left_ms.is_some_and(|(a, b)| a > 0 && b > 0)
    }

    pub fn stale_write_accepted(&self) -> bool {
        self.write2.is_some() && matches!(self.write1, OpResult::Ok { .. })
    }
}

/// Checks the configuration before anything is touched: five nodes, an offset file and a
/// redis-server PID each, no offset left from an earlier run.
pub fn check_redlock_config(cfg: &RedlockDemoConfig) -> Result<(), String> {
    let n = REDLOCK_NODES;
    if cfg.redis.len() != n || cfg.offset_files.len() != n || cfg.pids.len() != n {
        return Err(format!(
            "the story needs {n} Redis nodes, each with an offset file and a PID: got {} \
             endpoints, {} offset files, {} PIDs (see .ci/redis-servers)",
            cfg.redis.len(),
            cfg.offset_files.len(),
            cfg.pids.len()
        ));
    }
    for (i, &pid) in cfg.pids.iter().enumerate() {
        // Why a check: `kill -STOP` on a wrong PID stops someone else's process.
        let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
        if pid <= 1 || !comm.contains("redis") {
            return Err(format!(
                "PID {pid} (node {}) is not a running redis-server ({:?})",
                LABELS[i],
                comm.trim()
            ));
        }
    }
    for (i, f) in cfg.offset_files.iter().enumerate() {
        let offset_ms = read_offset(f)?;
        if offset_ms != 0 {
            return Err(format!(
                "node {}'s clock runs {offset_ms} ms ahead ({}): write 0 there first",
                LABELS[i],
                f.display()
            ));
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// the story

/// One client of the story: its nodes, its clock, its lock's knobs.
struct DemoClient {
    n: u32,
    nodes: Vec<Arc<DemoNode>>,
    handles: Vec<RedisHandle>,
    clock: NodeClock,
    recipe: Redlock,
    cfg: LockConfig,
    nonce: u64,
    out: Out,
}

impl DemoClient {
    fn new(n: u32, cfg: &RedlockDemoConfig, out: Out) -> DemoClient {
        let nodes: Vec<Arc<DemoNode>> = cfg.redis.iter().map(|e| DemoNode::new(e)).collect();
        let handles = nodes.iter().map(|n| n.clone() as RedisHandle).collect();
        DemoClient {
            n,
            nodes,
            handles,
            clock: NodeClock::perfect(tokio::time::Instant::now()),
            // The recipe the simulation runs, as it runs it: monotonic validity (redsync).
            recipe: Redlock {
                token: cfg.token,
                ..Redlock::default()
            },
            cfg: LockConfig {
                ttl_s: REDLOCK_TTL_S,
                campaign_timeout: REDLOCK_CAMPAIGN_TIMEOUT,
                request_timeout: REDIS_REQUEST_TIMEOUT,
                lock_delay_ms: 0,
            },
            // Redlock's value must be unique across clients and runs: a fresh random number.
            nonce: rand::random(),
            out,
        }
    }

    fn name(&self) -> String {
        format!("client{}", self.n)
    }

    fn service(&self) -> ServiceContext<'_> {
        ServiceContext::Redis {
            nodes: &self.handles,
        }
    }

    /// Every node's `SET NX PX` outcome of attempt `k`.
    fn attempt(&self, k: usize) -> Vec<SetSeen> {
        let seen = |n: &Arc<DemoNode>| n.sets().get(k).cloned().unwrap_or(SetSeen::NoAnswer);
        self.nodes.iter().map(seen).collect()
    }

    fn attempts(&self) -> usize {
        self.nodes[0].sets().len()
    }

    /// The attempts that reached the last node: the campaign timeout may cut the final one
    /// short, before some nodes were asked.
    fn complete_attempts(&self) -> usize {
        self.nodes[REDLOCK_NODES - 1].sets().len()
    }

    /// Takes the lock through `lock::acquire`, the simulation's path; prints each node's
    /// answer to the last attempt.
    async fn acquire(&self) -> Result<RedlockHeld, String> {
        let name = self.name();
        let service = self.service();
        let started = Instant::now();
        let got = lock::acquire(
            service,
            &self.clock,
            &self.cfg,
            &self.recipe,
            &name,
            self.nonce,
        )
        .await;
        let (attempts, complete) = (self.attempts(), self.complete_attempts());
        if complete < attempts {
            self.out.line(format!(
                "attempt {attempts} was cut short by the campaign timeout; attempt {complete}:"
            ));
        }
        let last = self.attempt(complete.saturating_sub(1));
        let timeout_ms = Redlock::node_timeout_ms(REDLOCK_TTL_S * 1000);
        for (label, seen) in LABELS.iter().zip(&last) {
            self.out.line(format!(
                "  {label}: SET {REDLOCK_KEY} {name}:… NX PX {}: {}",
                REDLOCK_TTL_S * 1000,
                seen_text(seen, timeout_ms)
            ));
        }
        let nodes_ok: Vec<char> = LABELS
            .iter()
            .zip(&last)
            .filter(|(_, s)| **s == SetSeen::Answer(Ok(true)))
            .map(|(l, _)| *l)
            .collect();
        let holding = got.map_err(|e| {
            format!(
                "no lock after {attempts} attempt(s) (the last complete one: {nodes_ok:?} said \
                 OK): {e}"
            )
        })?;
        Ok(RedlockHeld {
            holding,
            nodes_ok,
            attempts,
            acquire_ms: started.elapsed().as_millis(),
        })
    }

    /// Validity left by this client's own clock, ms.
    fn validity_left_ms(&self, held: &RedlockHeld) -> i64 {
        held.holding.validity.map_or(i64::MAX, |v| {
            (v.until_us - v.clock.now_us(&self.clock)) / 1000
        })
    }

    /// Writes `key0` through the storage with `ClientRun::send`, as the simulated clients do.
    async fn write(&self, storage: &str, fencing: Fencing, holding: &Holding) -> OpResult {
        let name = self.name();
        let spec = ClientSpec {
            index: self.n,
            service: ServiceKind::Redlock,
            redis_endpoints: self.nodes.iter().map(|n| n.endpoint.clone()).collect(),
            zk: Default::default(),
            etcd_backend: crate::etcd::Backend::default(),
            etcd_endpoints: Vec::new(),
            storage_addr: storage.to_string(),
            fence: fencing.fence(),
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
        let val = format!("value from {name}");
        let write = run.send(Op::Write, SINGLE_KEY, val, holding).await;
        let version = fencing.fence().version(holding.lease_id, holding.token);
        self.out.line(match &write {
            OpResult::Ok { .. } => format!("wrote {SINGLE_KEY} with version {version}: ACCEPTED"),
            OpResult::Rejected { err } => {
                format!("wrote {SINGLE_KEY} with version {version}: REFUSED: {err}")
            }
            other => format!("wrote {SINGLE_KEY} with version {version}: {other:?}"),
        });
        write
    }

    /// Gives the lock back on every node (the unlock script: only its own value goes). Also
    /// after a campaign timeout: it may cut an attempt between its `SET`s and its unlock, and
    /// the keys it set would hold the next run's nodes for a TTL.
    async fn release(&self, holding: &Holding) {
        let name = self.name();
        let ident = (name.as_str(), self.nonce);
        let r = lock::resign(
            self.service(),
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
    }
}

fn seen_text(seen: &SetSeen, timeout_ms: u64) -> String {
    match seen {
        SetSeen::NoAnswer => format!("no answer within {timeout_ms} ms"),
        SetSeen::Answer(Ok(true)) => "OK".to_string(),
        SetSeen::Answer(Ok(false)) => "nil (another value holds the key)".to_string(),
        SetSeen::Answer(Err(e)) => format!("error: {e}"),
    }
}

/// A holder's line: the nodes that said OK, how long it took, the validity left, the token.
fn held_text(held: &RedlockHeld, client: &DemoClient, cfg: &RedlockDemoConfig) -> String {
    format!(
        "holds the lock: {:?} said OK ({} of {REDLOCK_NODES}) in {} attempt(s), {} ms; validity \
         left {} ms; token {}",
        held.nodes_ok,
        held.nodes_ok.len(),
        held.attempts,
        held.acquire_ms,
        client.validity_left_ms(held),
        token_text(cfg.token, &held.holding)
    )
}

/// The token the holder offers, named for the reader.
fn token_text(token: RedlockToken, holding: &Holding) -> String {
    match token {
        RedlockToken::Random => format!("{} (its random value's number)", holding.token),
        RedlockToken::Incr => format!("{} (INCR {TOKEN_KEY} on A)", holding.token),
    }
}

/// Stops D and E and waits until the kernel shows them stopped.
async fn stop_nodes(
    cfg: &RedlockDemoConfig,
    restore: &mut Restore,
    demo: &Out,
) -> Result<(), String> {
    for i in STOPPED {
        let pid = cfg.pids[i];
        // Noted before the signal: a stop that half-happened is still undone.
        restore.stopped.push(pid);
        signal(pid, "STOP")?;
        await_state(pid, true).await?;
    }
    demo.line(format!(
        "kill -STOP {} {} (D and E): client 1 cannot reach them",
        cfg.pids[STOPPED[0]], cfg.pids[STOPPED[1]]
    ));
    Ok(())
}

/// Resumes D and E and waits until they run.
async fn resume_nodes(
    cfg: &RedlockDemoConfig,
    restore: &mut Restore,
    demo: &Out,
) -> Result<(), String> {
    for i in STOPPED {
        signal(cfg.pids[i], "CONT")?;
        await_state(cfg.pids[i], false).await?;
    }
    restore.stopped.clear();
    demo.line(format!(
        "kill -CONT {} {} (D and E)",
        cfg.pids[STOPPED[0]], cfg.pids[STOPPED[1]]
    ));
    Ok(())
}

/// Client 1 takes the lock while D and E are stopped.
async fn client1_acquires(c1: &DemoClient, cfg: &RedlockDemoConfig) -> Result<RedlockHeld, String> {
    c1.out.line(format!(
        "Redlock on A..E, TTL {REDLOCK_TTL_S} s, node timeout {} ms, quorum {}, token {}",
        Redlock::node_timeout_ms(REDLOCK_TTL_S * 1000),
        Redlock::majority(REDLOCK_NODES),
        c1.recipe.name()
    ));
    let held = c1.acquire().await?;
    c1.out.line(held_text(&held, c1, cfg));
    Ok(held)
}

/// Client 2 tries for the lock; if it holds too, both validities, read together.
async fn client2_acquires(
    c1: &DemoClient,
    held1: &RedlockHeld,
    c2: &DemoClient,
    cfg: &RedlockDemoConfig,
    demo: &Out,
) -> (Result<RedlockHeld, String>, Option<(i64, i64)>) {
    let got = c2.acquire().await;
    let held2 = match got {
        Ok(h) => h,
        Err(e) => {
            c2.out.line(e.clone());
            c2.release(&Holding::new(REDLOCK_KEY, 0, 0)).await;
            return (Err(e), None);
        }
    };
    c2.out.line(held_text(&held2, c2, cfg));
    let left = (c1.validity_left_ms(held1), c2.validity_left_ms(&held2));
    let both = if left.0 > 0 && left.1 > 0 {
        "BOTH hold the lock"
    } else {
        "not both"
    };
    demo.line(format!(
        "validity left by each client's own clock: client 1 {} ms, client 2 {} ms: {both}",
        left.0, left.1
    ));
    (Ok(held2), Some(left))
}

/// Under `--token incr`: what the same fence does with the clients' random values (the
/// random value's number is also their "lease ID"), on a store of its own.
fn random_token_contrast(
    cfg: &RedlockDemoConfig,
    held1: &RedlockHeld,
    held2: &RedlockHeld,
    demo: &Out,
) -> Option<bool> {
    if cfg.token != RedlockToken::Incr {
        return None;
    }
    let mut store = Store::new(cfg.fencing);
    let random = |h: &RedlockHeld| h.holding.lease_id;
    let write = |n: u32, h: &RedlockHeld| Request {
        op: Op::Write,
        key: SINGLE_KEY.to_string(),
        val: format!("value from client{n}"),
        version: cfg.fencing.fence().version(random(h), random(h)),
    };
    store.apply(&write(2, held2));
    let applied = store.apply(&write(1, held1));
    demo.line(format!(
        "contrast: with Redlock's random values as tokens (client 1 {}, client 2 {}), fence {} \
         would have {} client 1's stale write: random values are in no order",
        random(held1),
        random(held2),
        cfg.fencing,
        if applied.accepted {
            "ACCEPTED"
        } else {
            "refused"
        }
    ));
    Some(applied.accepted)
}

/// What came after client 1 took the lock.
struct AfterClient1 {
    client2: Result<RedlockHeld, String>,
    validity_left_ms: Option<(i64, i64)>,
    write1: OpResult,
    write2: Option<OpResult>,
    random_token_accepts: Option<bool>,
}

/// The story on a running storage. Whatever happens once client 1 holds the lock, D and E run
/// again, C's clock is put back and client 1 lets go, so that no key waits for the next run.
async fn story(
    cfg: &RedlockDemoConfig,
    storage: &str,
    lines: &Arc<Mutex<Vec<String>>>,
) -> Result<RedlockRun, String> {
    let out = |p: &str| Out::new(p, cfg.echo, lines.clone());
    let demo = out("[demo]     ");
    let observer = Observer::connect(&cfg.redis).await?;
    let mut restore = Restore {
        stopped: Vec::new(),
        offset_file: cfg.offset_files[STEPPED].clone(),
    };
    stop_nodes(cfg, &mut restore, &demo).await?;
    let c1 = DemoClient::new(1, cfg, out("[client 1] "));
    let held1 = client1_acquires(&c1, cfg).await?;
    let after = after_client1(cfg, storage, &observer, &mut restore, (&c1, &held1), lines).await;
    // The servers first: client 1's unlock must reach D and E, and C with its clock right.
    drop(restore);
    c1.release(&held1.holding).await;
    let after = after?;
    demo.line("released both locks; C's clock back to offset 0");
    Ok(RedlockRun {
        config: cfg.clone(),
        lines: Vec::new(),
        client1: held1,
        client2: after.client2,
        validity_left_ms: after.validity_left_ms,
        write1: after.write1,
        write2: after.write2,
        key0: None,
        random_token_accepts: after.random_token_accepts,
    })
}

/// C's step, D's and E's resume, client 2, both writes, client 2's release.
async fn after_client1(
    cfg: &RedlockDemoConfig,
    storage: &str,
    observer: &Observer,
    restore: &mut Restore,
    (c1, held1): (&DemoClient, &RedlockHeld),
    lines: &Arc<Mutex<Vec<String>>>,
) -> Result<AfterClient1, String> {
    let demo = Out::new("[demo]     ", cfg.echo, lines.clone());
    if cfg.clock_step {
        observer
            .step_clock(&cfg.offset_files[STEPPED], &demo)
            .await?;
    } else {
        demo.line("C's clock is left alone (the control run)");
    }
    resume_nodes(cfg, restore, &demo).await?;
    observer.after_resume(&demo).await?;
    let c2 = DemoClient::new(2, cfg, Out::new("[client 2] ", cfg.echo, lines.clone()));
    let (client2, validity_left_ms) = client2_acquires(c1, held1, &c2, cfg, &demo).await;
    let write2 = match &client2 {
        Ok(h) => Some(c2.write(storage, cfg.fencing, &h.holding).await),
        Err(_) => None,
    };
    let write1 = c1.write(storage, cfg.fencing, &held1.holding).await;
    let random_token_accepts = match &client2 {
        Ok(h2) => random_token_contrast(cfg, held1, h2, &demo),
        Err(_) => None,
    };
    if let Ok(h2) = &client2 {
        c2.release(&h2.holding).await;
    }
    write_offset(&cfg.offset_files[STEPPED], 0)?;
    Ok(AfterClient1 {
        client2,
        validity_left_ms,
        write1,
        write2,
        random_token_accepts,
    })
}

/// The story against the servers of `cfg`, with the storage in-process on a free port.
pub fn redlock_walkthrough(cfg: &RedlockDemoConfig) -> Result<RedlockRun, String> {
    check_redlock_config(cfg)?;
    let lines: Arc<Mutex<Vec<String>>> = Arc::default();
    let rt = runtime_multi()?;
    let storage = rt.block_on(LocalStorage::start(cfg.fencing, ServerLimits::default()))?;
    Out::new("[demo]     ", cfg.echo, lines.clone()).line(format!(
        "storage on {} with fencing {}",
        storage.url(),
        cfg.fencing
    ));
    let run = rt.block_on(story(cfg, &storage.url(), &lines));
    let key0 = storage.entry(SINGLE_KEY);
    drop(storage);
    rt.shutdown_timeout(Duration::from_secs(1));
    let mut run = run?;
    Out::new("[demo]     ", cfg.echo, lines.clone()).line(match &key0 {
        Some(e) => format!(
            "storage holds {SINGLE_KEY} = '{}' (version {})",
            e.val, e.version
        ),
        None => format!("storage holds no {SINGLE_KEY}"),
    });
    run.key0 = key0;
    run.lines = lines.lock().unwrap_or_else(|e| e.into_inner()).clone();
    Ok(run)
}

// ---------------------------------------------------------------------------------------
// the command

/// `fencelab real-redlock-demo`.
#[derive(Debug, Clone, clap::Args)]
pub struct RedlockDemoArgs {
    /// The five Redis nodes A..E, host:port,... (default: $FENCELAB_REDIS).
    #[arg(long)]
    pub redis: Option<String>,
    /// Each node's realtime-offset file, same order (default: $FENCELAB_REDIS_OFFSET_FILES).
    #[arg(long)]
    pub offset_files: Option<String>,
    /// Each node's PID, same order (default: $FENCELAB_REDIS_PIDS).
    #[arg(long)]
    pub pids: Option<String>,
    /// A policy (none, lease-id, token-writes, token) or `all`.
    #[arg(long, default_value = "token")]
    pub fencing: String,
    /// What a holder offers the storage: incr (a counter on A) or random (Redlock's value).
    #[arg(long, value_parser = ["incr", "random"], default_value = "incr")]
    pub token: String,
    /// Leave C's clock alone: the control, in which client 2 must find no quorum.
    #[arg(long)]
    pub no_clock_step: bool,
}

/// A comma list from the flag, else from the environment variable.
fn list_arg(flag: &Option<String>, var: &str, what: &str) -> Result<Vec<String>, String> {
    let text = match flag {
        Some(t) => t.clone(),
        None => std::env::var(var).map_err(|_| {
            format!("no {what}: pass --{what} or set {var} (bash .ci/redis-servers sets it)")
        })?,
    };
    Ok(text
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(String::from)
        .collect())
}

/// The configuration the flags and the environment give, for one policy.
pub fn redlock_config(
    args: &RedlockDemoArgs,
    fencing: Fencing,
) -> Result<RedlockDemoConfig, String> {
    let token = match args.token.as_str() {
        "random" => RedlockToken::Random,
        "incr" => RedlockToken::Incr,
        other => return Err(format!("--token {other}: expected incr or random")),
    };
    let redis = list_arg(&args.redis, "FENCELAB_REDIS", "redis")?;
    let pids = list_arg(&args.pids, "FENCELAB_REDIS_PIDS", "pids")?
        .iter()
        .map(|p| p.parse().map_err(|_| format!("--pids: {p:?} is not a PID")))
        .collect::<Result<Vec<u32>, String>>()?;
    Ok(RedlockDemoConfig {
        redis,
        offset_files: list_arg(
            &args.offset_files,
            "FENCELAB_REDIS_OFFSET_FILES",
            "offset-files",
        )?
        .into_iter()
        .map(PathBuf::from)
        .collect(),
        pids,
        fencing,
        token,
        clock_step: !args.no_clock_step,
        echo: true,
    })
}

pub fn redlock_demo(args: RedlockDemoArgs) -> Result<(), String> {
    let policies = super::demo_policies(&args.fencing)?;
    for fencing in policies {
        let cfg = redlock_config(&args, fencing)?;
        println!(
            "== Kleppmann's clock jump on Redlock, for real: fencing {fencing}, token {}",
            args.token
        );
        let run = redlock_walkthrough(&cfg)?;
        println!("   {}", redlock_summary(&run));
        println!();
    }
    Ok(())
}

/// One line: what the story came to.
pub fn redlock_summary(run: &RedlockRun) -> String {
    let grant = if run.double_grant() {
        "DOUBLE GRANT (both hold a quorum, both valid)".to_string()
    } else {
        match &run.client2 {
            Ok(_) => "client 2 took the lock, client 1's validity had run out".to_string(),
            Err(_) => "no double grant: client 2 found no quorum".to_string(),
        }
    };
    let stale = match (&run.write2, &run.write1) {
        (None, _) => "client 1 wrote alone".to_string(),
        (Some(_), OpResult::Ok { .. }) => "client 1's stale write ACCEPTED".to_string(),
        (Some(_), OpResult::Rejected { .. }) => "client 1's stale write refused".to_string(),
        (Some(_), other) => format!("client 1's stale write: {other:?}"),
    };
    format!(
        "{}: {grant}; {stale}; key0 = {:?}",
        run.config.fencing,
        run.key0.as_ref().map(|e| e.val.as_str()).unwrap_or("-")
    )
}
