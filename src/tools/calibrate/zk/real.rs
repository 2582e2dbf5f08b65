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
        Box::pin(crate::zk::connect(&self.endpoints, timeout_ms))
    }

    fn open_silenceable(
        &self,
        timeout_ms: u64,
    ) -> BoxFuture<'_, Result<(Arc<dyn Zk>, Box<dyn Silence>), String>> {
        Box::pin(async move {
            let proxy = Proxy::start(&self.endpoints).await?;
            let zk = crate::zk::connect(&proxy.local, timeout_ms)
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
