//! The probes' seams against a real ZooKeeper: sessions of [`RealZk`](crate::zk::real::RealZk),
//! directly or through a TCP proxy of the probe's own that can silence them.

use super::*;
use std::sync::atomic::{AtomicBool, Ordering};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Sessions on one real server (or ensemble): `endpoints` is ZooKeeper's connect string.
pub struct RealSessions {
    pub endpoints: String,
}

impl Sessions for RealSessions {
    fn open(&self, timeout_ms: u64) -> BoxFuture<'_, ZkResult<Arc<dyn Zk>>> {
        Box::pin(crate::zk::real::connect(&self.endpoints, timeout_ms))
    }

    fn open_silenceable(&self, timeout_ms: u64) -> BoxFuture<'_, Result<Silenceable, String>> {
        Box::pin(async move {
            let proxy = Proxy::start(&self.endpoints).await?;
            let zk = crate::zk::real::connect(&proxy.local, timeout_ms)
                .await
                .map_err(|e| format!("connect through the proxy: {e}"))?;
            Ok((zk, Box::new(proxy) as Box<dyn Silence>))
        })
    }
}

/// Most bytes one read of the proxy moves: a ZooKeeper packet of a lock client is far smaller.
const PROXY_BUFFER_BYTES: usize = 64 * 1024;

/// What the proxy's tasks share.
struct ProxyState {
    /// Once set, nothing more is forwarded, either way, and new connections are dropped.
    silent: AtomicBool,
    /// When the last byte from the client was written to the server. Held across each write
    /// to the server, and by [`Silence::silence`] while it sets `silent`, so that no byte can
    /// reach the server after the instant `silence` answers.
    last_to_server: tokio::sync::Mutex<Option<Instant>>,
    /// Becomes true when the [`Proxy`] is dropped (or its sender is gone): silenced
    /// connections then close.
    dropped: tokio::sync::watch::Receiver<bool>,
}

/// A TCP proxy on 127.0.0.1 to the first server of a connect string, for one session.
pub struct Proxy {
    /// `127.0.0.1:port` to connect the session to.
    pub local: String,
    state: Arc<ProxyState>,
    accept: tokio::task::JoinHandle<()>,
    /// Told when the proxy is dropped: ends the silenced connections' tasks.
    dropped: tokio::sync::watch::Sender<bool>,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.accept.abort();
        // Connections' tasks end on their own: silent, they stop at their next read.
        self.state.silent.store(true, Ordering::SeqCst);
        let _ = self.dropped.send(true);
    }
}

impl Proxy {
    /// Listens on an ephemeral port of 127.0.0.1 and forwards each connection to the first
    /// server of `endpoints`.
    pub async fn start(endpoints: &str) -> Result<Proxy, String> {
        let upstream = endpoints
            .split(',')
            .next()
            .unwrap_or_default()
            .trim()
            .to_string();
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|e| format!("proxy bind: {e}"))?;
        let local = listener
            .local_addr()
            .map_err(|e| format!("proxy address: {e}"))?
            .to_string();
        let (dropped_tx, dropped) = tokio::sync::watch::channel(false);
        let state = Arc::new(ProxyState {
            silent: AtomicBool::new(false),
            last_to_server: tokio::sync::Mutex::new(None),
            dropped,
        });
        let accept = tokio::spawn(accept_loop(listener, upstream, state.clone()));
        Ok(Proxy {
            local,
            state,
            accept,
            dropped: dropped_tx,
        })
    }
}

async fn accept_loop(listener: TcpListener, upstream: String, state: Arc<ProxyState>) {
    while let Ok((client, _)) = listener.accept().await {
        if state.silent.load(Ordering::SeqCst) {
            // Silenced: the client's reconnects reach nothing.
            drop(client);
            continue;
        }
        let Ok(server) = TcpStream::connect(&upstream).await else {
            continue;
        };
        let (cr, cw) = client.into_split();
        let (sr, sw) = server.into_split();
        tokio::spawn(pump(cr, sw, state.clone(), true));
        tokio::spawn(pump(sr, cw, state.clone(), false));
    }
}

/// Copies `from` to `to` until either closes or the proxy is silenced; `to_server` stamps
/// each write to the server.
async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    state: Arc<ProxyState>,
    to_server: bool,
) {
    let mut buf = vec![0u8; PROXY_BUFFER_BYTES];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        // Checked after the read, and for the client's bytes under the lock that silencing
        // takes: bytes read once silenced are dropped, not forwarded. The halves stay open (a
        // blackhole, not a reset), so the peer sees silence, as in a partition, until the
        // proxy is dropped.
        let mut stamp = if to_server {
            Some(state.last_to_server.lock().await)
        } else {
            None
        };
        if state.silent.load(Ordering::SeqCst) {
            drop(stamp);
            let mut dropped = state.dropped.clone();
            let _ = dropped.wait_for(|d| *d).await;
            return;
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
        if let Some(last) = stamp.as_mut() {
            **last = Some(Instant::now());
        }
    }
}

impl Silence for Proxy {
    fn silence(&self) -> BoxFuture<'_, Result<Instant, String>> {
        Box::pin(async move {
            // Waits out a write to the server in progress: after this, none can start.
            let last = self.state.last_to_server.lock().await;
            self.state.silent.store(true, Ordering::SeqCst);
            Ok(last.unwrap_or_else(Instant::now))
        })
    }
}

/// How long one `srvr` may take.
const SRVR_TIMEOUT: Duration = Duration::from_secs(1);
/// How often the new leader is looked for.
const LEADER_POLL: Duration = Duration::from_millis(20);
/// How long a restarted server may take to serve again (a JVM's start, then the sync).
const RESTART_MAX: Duration = Duration::from_secs(60);

/// What `srvr` says the server at `endpoint` is (`standalone`, `leader`, `follower`), or
/// `None` if it does not answer with a `Mode:` line (down, or not serving yet: 4lw commands
/// answer "not currently serving requests" until its ZooKeeperServer runs,
/// `FourLetterCommands`/`NIOServerCnxn.checkFourLetterWord`).
pub async fn srvr_mode(endpoint: &str) -> Option<String> {
    let ask = async {
        let mut s = TcpStream::connect(endpoint).await.ok()?;
        s.write_all(b"srvr").await.ok()?;
        let mut reply = String::new();
        s.read_to_string(&mut reply).await.ok()?;
        reply
            .lines()
            .find_map(|l| l.strip_prefix("Mode: "))
            .map(|m| m.trim().to_string())
    };
    deadline::timeout(SRVR_TIMEOUT, ask).await.ok().flatten()
}

/// A real ensemble of processes this test may kill and start again.
pub struct RealEnsemble {
    /// `host:port` of each server, in server order.
    pub endpoints: Vec<String>,
    /// Each server's PID now (a restarted one's new PID).
    pub pids: std::sync::Mutex<Vec<u32>>,
    /// The command line that starts each server (`.ci/zk-servers`'s launch file).
    pub launch: Vec<String>,
    /// Where the PIDs of restarted servers go, for `.ci/zk-servers` to stop them.
    pub restarted_pids_file: String,
}

impl RealEnsemble {
    fn pid(&self, i: usize) -> Result<u32, String> {
        let pids = self.pids.lock().unwrap_or_else(|e| e.into_inner());
        pids.get(i).copied().ok_or_else(|| format!("no server {i}"))
    }

    fn start(&self, i: usize) -> Result<(), String> {
        let line = self
            .launch
            .get(i)
            .ok_or_else(|| format!("no launch line {i}"))?;
        let mut words = line.split_whitespace();
        let program = words.next().ok_or("empty launch line")?;
        let child = std::process::Command::new(program)
            .args(words)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .map_err(|e| format!("start server {i}: {e}"))?;
        let pid = child.id();
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.restarted_pids_file)
            .map_err(|e| format!("{}: {e}", self.restarted_pids_file))?;
        std::io::Write::write_all(&mut f, format!("{pid}\n").as_bytes())
            .map_err(|e| format!("{}: {e}", self.restarted_pids_file))?;
        self.pids.lock().unwrap_or_else(|e| e.into_inner())[i] = pid;
        Ok(())
    }
}

impl super::failover::Ensemble for RealEnsemble {
    fn sessions(&self) -> Arc<dyn Sessions> {
        Arc::new(RealSessions {
            endpoints: self.endpoints.join(","),
        })
    }

    fn kill_leader(&self) -> BoxFuture<'_, Result<usize, String>> {
        Box::pin(async move {
            for (i, e) in self.endpoints.iter().enumerate() {
                if srvr_mode(e).await.as_deref() == Some("leader") {
                    super::super::stall::signal(self.pid(i)?, "KILL")?;
                    return Ok(i);
                }
            }
            Err("no server says it leads".into())
        })
    }

    fn new_leader(&self, killed: usize) -> BoxFuture<'_, Result<Instant, String>> {
        Box::pin(async move {
            let limit = Instant::now() + super::failover::ELECTION_MAX;
            while Instant::now() < limit {
                for (i, e) in self.endpoints.iter().enumerate() {
                    if i != killed && srvr_mode(e).await.as_deref() == Some("leader") {
                        return Ok(Instant::now());
                    }
                }
                tokio::time::sleep(LEADER_POLL).await;
            }
            Err(format!(
                "no new leader in {:?}",
                super::failover::ELECTION_MAX
            ))
        })
    }

    fn restart(&self, killed: usize) -> BoxFuture<'_, Result<(), String>> {
        Box::pin(async move {
            self.start(killed)?;
            let limit = Instant::now() + RESTART_MAX;
            while Instant::now() < limit {
                if srvr_mode(&self.endpoints[killed]).await.is_some() {
                    return Ok(());
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(format!(
                "server {killed} not serving {RESTART_MAX:?} after its restart"
            ))
        })
    }
}
