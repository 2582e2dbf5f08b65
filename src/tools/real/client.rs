//! The client of etcd's example (`contrib/lock`) over real etcd and real HTTP: `fencelab client`.

use super::*;
use crate::lock::ServiceContext;

/// What the client sends as the storage's "version".
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum TokenKind {
    /// The lock key's create revision: etcd's fencing token.
    Revision,
    /// The session's lease ID, as `contrib/lock` does.
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

/// `fencelab client N`: `contrib/lock`'s client.
#[derive(Debug, Clone, clap::Args)]
pub struct ClientArgs {
    /// 1 waits before writing (`contrib/lock`'s GC pause stand-in); any other number writes at once.
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

/// What one `contrib/lock` client did.
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

/// A `contrib/lock` client's run, shared by `fencelab client` and the walkthrough.
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

    /// The storage client's spec: `contrib/lock`'s one write of `key0`, no think or critical time.
    fn client_spec(&self, cfg: LockConfig, recipe: crate::lock::Election) -> ClientSpec {
        ClientSpec {
            index: self.n,
            service: crate::lock::ServiceKind::Etcd,
            redis_endpoints: Vec::new(),
            zk: Default::default(),
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
        }
    }

    /// What goes on the wire as `version` for this client's token kind.
    fn version_sent(&self, holding: &lock::Holding) -> i64 {
        match self.token {
            TokenKind::LeaseId => holding.lease_id,
            TokenKind::Revision => holding.token,
        }
    }

    /// `contrib/lock`'s line about the write: client 1's rejection is the expected one.
    fn print_write(&self, write: &OpResult, version_sent: i64, out: &Out) {
        let n = self.n;
        let what = match self.token {
            TokenKind::LeaseId => "old lease version",
            TokenKind::Revision => "old fencing token",
        };
        match write {
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
    }

    /// Session, lock, wait, write `key0`, release: `contrib/lock`'s client, line for line.
    pub async fn run(self, wait: Wait, out: &Out) -> Result<ClientReport, String> {
        check_ttl(self.ttl_s)?;
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
        let service = ServiceContext::Etcd {
            etcd: etcd.as_ref(),
            session: &session,
        };
        let holding = match lock::acquire(service, &clock, &cfg, &recipe, &name, 0).await {
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
        let spec = self.client_spec(cfg, recipe);
        let version_sent = self.version_sent(&holding);
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
        self.print_write(&write, version_sent, out);
        // Release: either step fails harmlessly when the lease is already gone.
        let _ = lock::resign(service, &holding, &clock, &cfg, &recipe, (&name, 0)).await;
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

/// A TTL real etcd and this client accept, in seconds.
pub(super) fn check_ttl(ttl_s: i64) -> Result<(), String> {
    if !(TTL_S_MIN..=TTL_S_MAX).contains(&ttl_s) {
        return Err(format!(
            "--ttl {ttl_s} is outside {TTL_S_MIN}..={TTL_S_MAX} seconds"
        ));
    }
    Ok(())
}

pub(super) fn version_text(token: TokenKind, version: i64) -> String {
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
