//! The storage's HTTP/1.1 transport (hyper), the same code over madsim TCP and real TCP.
//!
//! Server: `POST /` with `contrib/lock`'s JSON. Errors in the request never stop the server: each
//! gets a JSON body in `contrib/lock`'s response shape with `err` set and a fitting HTTP status.
//! Client: one keep-alive connection, re-opened after any failure.

use super::{Applied, Fence, Store};
use crate::etcd::Etcd;
use crate::history::{EventKind, Recorder};
use crate::ms::MsRange;
use crate::protocol::{self, Request, Response, BODY_BYTES_MAX, OP_HEADER};
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::{Method, StatusCode};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::convert::Infallible;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};

/// How long the server waits for a request body before answering 408.
pub const BODY_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// How long an abandoned exchange may still wait for its answer before it is dropped.
pub const EXCHANGE_LINGER: Duration = Duration::from_secs(120);
/// How long the server waits for a request's head (line and headers), idle time between
/// keep-alive requests included, before closing the connection.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Most connections the server serves at once; past it, new ones wait in the accept queue.
pub const CONNECTIONS_MAX: usize = 1024;

/// Consecutive failed accepts after which the listener is taken for broken.
const ACCEPT_ERRORS_MAX: u32 = 1_000;
/// Pause after a failed accept (out of file descriptors: let connections close).
const ACCEPT_RETRY_BACKOFF: Duration = Duration::from_millis(10);

/// How long the storage waits for the lock service's answer (a fence that asks it).
const LOCK_SERVICE_TIMEOUT: Duration = Duration::from_millis(1_000);

/// The server's limits. Configurable so that tests need not wait for the defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerLimits {
    /// `None` keeps a connection open for as long as the client wants.
    pub header_read_timeout: Option<Duration>,
    pub body_read_timeout: Duration,
    pub connections_max: usize,
    /// How long a fence's question to the lock service may take before the request is
    /// refused (as long as a lock client waits for etcd).
    pub lock_service_timeout: Duration,
}

impl Default for ServerLimits {
    fn default() -> Self {
        ServerLimits {
            // Why not in the simulation: an idle keep-alive connection would be closed after
            // the timeout, which changes the simulated histories the suites were written
            // against. A simulation that wants it sets it.
            header_read_timeout: if cfg!(madsim) {
                None
            } else {
                Some(HEADER_READ_TIMEOUT)
            },
            body_read_timeout: BODY_READ_TIMEOUT,
            connections_max: CONNECTIONS_MAX,
            lock_service_timeout: LOCK_SERVICE_TIMEOUT,
        }
    }
}

/// hyper's [`hyper::rt::Timer`] over `tokio::time`, so it runs on madsim's clock in the
/// simulation and on tokio's for real. Why not hyper-util's `TokioTimer`: it panics under
/// madsim (it needs a real tokio runtime).
#[derive(Debug, Clone, Copy, Default)]
pub struct Timer;

/// A [`hyper::rt::Sleep`] over `tokio::time::Sleep`.
struct TimerSleep(Pin<Box<tokio::time::Sleep>>);

impl std::future::Future for TimerSleep {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        self.0.as_mut().poll(cx)
    }
}

impl hyper::rt::Sleep for TimerSleep {}

impl hyper::rt::Timer for Timer {
    fn sleep(&self, duration: Duration) -> Pin<Box<dyn hyper::rt::Sleep>> {
        Box::pin(TimerSleep(Box::pin(tokio::time::sleep(duration))))
    }

    fn sleep_until(&self, deadline: std::time::Instant) -> Pin<Box<dyn hyper::rt::Sleep>> {
        // Both clocks agree: madsim answers `std::time::Instant::now()` with simulated time.
        let duration = deadline.saturating_duration_since(std::time::Instant::now());
        self.sleep(duration)
    }
}

/// Adapts a tokio-style stream (madsim's or tokio's `TcpStream`) to hyper's IO traits.
///
/// Why not hyper-util's `TokioIo`: madsim's `poll_flush` sends a message even when nothing
/// was written, and hyper flushes on every poll, so an empty flush must send nothing here or
/// the simulated network fills with empty messages.
pub struct Io<T> {
    /// Present until dropped, when it may be given back (see [`Io::give_back_on_drop`]).
    inner: Option<T>,
    unflushed: bool,
    /// Bytes read since the last bytes written: a request begun and not yet answered.
    /// Best effort: a pipelined head that arrived with the previous request is forgotten
    /// when that request's answer is written (its timeout then closes in silence).
    unanswered_bytes: u64,
    give_back: Option<tokio::sync::oneshot::Sender<(T, u64)>>,
}

impl<T> Io<T> {
    pub fn new(inner: T) -> Self {
        Io {
            inner: Some(inner),
            unflushed: false,
            unanswered_bytes: 0,
            give_back: None,
        }
    }

    /// When hyper drops the connection, the stream and the count of unanswered bytes go to
    /// `tx`. Why: hyper closes a connection whose request head timed out without answering,
    /// and the server wants to answer a half-sent request with a 408 itself.
    pub fn give_back_on_drop(mut self, tx: tokio::sync::oneshot::Sender<(T, u64)>) -> Self {
        self.give_back = Some(tx);
        self
    }

    fn stream(&mut self) -> Pin<&mut T>
    where
        T: Unpin,
    {
        Pin::new(
            self.inner
                .as_mut()
                .expect("the stream is present until drop"),
        )
    }
}

impl<T> Drop for Io<T> {
    fn drop(&mut self) {
        if let (Some(tx), Some(inner)) = (self.give_back.take(), self.inner.take()) {
            // Bytes of an answer still unflushed: a 408 after them would garble it.
            let unanswered_bytes = if self.unflushed {
                0
            } else {
                self.unanswered_bytes
            };
            let _ = tx.send((inner, unanswered_bytes));
        }
    }
}

impl<T: AsyncRead + Unpin> hyper::rt::Read for Io<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        mut buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        // SAFETY: tokio's ReadBuf only writes initialized bytes into the unfilled part and
        // reports how many; we advance the cursor by exactly that many.
        let filled = unsafe {
            let mut tbuf = tokio::io::ReadBuf::uninit(buf.as_mut());
            match self.stream().poll_read(cx, &mut tbuf) {
                Poll::Ready(Ok(())) => tbuf.filled().len(),
                other => return other,
            }
        };
        unsafe { buf.advance(filled) };
        self.unanswered_bytes += filled as u64;
        Poll::Ready(Ok(()))
    }
}

impl<T: AsyncWrite + Unpin> hyper::rt::Write for Io<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let r = self.stream().poll_write(cx, buf);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.unflushed = true;
            self.unanswered_bytes = 0;
        }
        r
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if !self.unflushed {
            return Poll::Ready(Ok(()));
        }
        let r = self.stream().poll_flush(cx);
        if matches!(r, Poll::Ready(Ok(()))) {
            self.unflushed = false;
        }
        r
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.stream().poll_shutdown(cx)
    }
}

/// The server's shared state: the store and, in a simulated world, the history.
#[derive(Clone)]
pub struct Server {
    store: Arc<Mutex<Store>>,
    recorder: Option<Recorder>,
    node: Arc<str>,
    limits: ServerLimits,
    /// The store's fence (fixed for a store's life), read once here so that a request need
    /// not lock the store to learn whether to ask the lock service.
    fence: Arc<dyn Fence>,
    /// The lock service, for fences that ask it ([`Fence::asks_lock_service`]).
    lock_service: Option<Arc<dyn Etcd>>,
    /// The server's own work on a request between receiving it (and asking the lock service,
    /// if its fence does) and applying it: a time drawn per request from this range, from a
    /// seeded generator. `None`: it applies at once.
    work: Option<(MsRange, Arc<Mutex<ChaCha8Rng>>)>,
}

impl Server {
    pub fn new(store: Arc<Mutex<Store>>, recorder: Option<Recorder>, node: &str) -> Self {
        let fence = store.lock().expect("store lock").fence().clone();
        Server {
            fence,
            store,
            recorder,
            node: node.into(),
            limits: ServerLimits::default(),
            lock_service: None,
            work: None,
        }
    }

    /// The same server, spending a time drawn from `work_ms` (seeded by `seed`) on each
    /// request before it applies it. A range of exactly 0 changes nothing.
    pub fn with_work(mut self, work_ms: MsRange, seed: u64) -> Self {
        self.work = (work_ms.max > 0).then(|| {
            (
                work_ms,
                Arc::new(Mutex::new(ChaCha8Rng::seed_from_u64(seed))),
            )
        });
        self
    }

    /// The same server, asking `etcd` whenever its fence wants the lock service's word.
    pub fn with_lock_service(mut self, etcd: Arc<dyn Etcd>) -> Self {
        self.lock_service = Some(etcd);
        self
    }

    /// The same server with other limits.
    pub fn with_limits(mut self, limits: ServerLimits) -> Self {
        assert!(
            limits.connections_max > 0,
            "connections_max must be positive"
        );
        self.limits = limits;
        self
    }

    pub fn limits(&self) -> ServerLimits {
        self.limits
    }

    /// Whether the store's fence asks the lock service (the server then needs
    /// [`Server::with_lock_service`]).
    pub fn asks_lock_service(&self) -> bool {
        self.fence.asks_lock_service()
    }

    /// Accepts connections until the listener fails for good.
    pub async fn serve(self, listener: TcpListener) -> io::Result<()> {
        let open = Arc::new(tokio::sync::Semaphore::new(self.limits.connections_max));
        let mut accept_errors: u32 = 0;
        loop {
            let permit = open
                .clone()
                .acquire_owned()
                .await
                .expect("semaphore never closed");
            let stream = match listener.accept().await {
                Ok((stream, _)) => {
                    accept_errors = 0;
                    stream
                }
                // Why retry: a client resetting before accept, or a brief shortage of file
                // descriptors, is no reason to stop serving everyone else.
                Err(_) if accept_errors < ACCEPT_ERRORS_MAX => {
                    accept_errors += 1;
                    tokio::time::sleep(ACCEPT_RETRY_BACKOFF).await;
                    continue;
                }
                Err(e) => return Err(e),
            };
            let server = self.clone();
            let limits = self.limits;
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req| {
                    let server = server.clone();
                    async move { Ok::<_, Infallible>(server.handle(req).await) }
                });
                let mut builder = hyper::server::conn::http1::Builder::new();
                builder.timer(Timer);
                builder.header_read_timeout(limits.header_read_timeout);
                // Why: hyper caches the Date header per thread, which differs between two runs
                // of the same seed on one thread. Real mode keeps the header.
                #[cfg(madsim)]
                builder.auto_date_header(false);
                let (back_tx, back_rx) = tokio::sync::oneshot::channel();
                let io = Io::new(stream).give_back_on_drop(back_tx);
                // A broken connection only ends that connection.
                let served = builder.serve_connection(io, service).await;
                if matches!(&served, Err(e) if e.is_timeout()) {
                    if let Ok((stream, unanswered_bytes)) = back_rx.await {
                        // An idle connection is closed in silence (nothing was asked); a
                        // request head begun and not finished in time gets its 408.
                        if unanswered_bytes > 0 {
                            // Bounded: a client that stops reading must not hold the slot.
                            let _ = crate::deadline::timeout(
                                limits.body_read_timeout,
                                answer_head_timeout(stream, limits),
                            )
                            .await;
                        }
                    }
                }
                drop(permit);
            });
        }
    }

    async fn handle(&self, req: hyper::Request<Incoming>) -> hyper::Response<Full<Bytes>> {
        if req.method() != Method::POST {
            let err = format!("method {} is not allowed: use POST", req.method());
            return reply(StatusCode::METHOD_NOT_ALLOWED, &Response::error(err));
        }
        let op_id = req
            .headers()
            .get(OP_HEADER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        let body = Limited::new(req.into_body(), BODY_BYTES_MAX);
        let bytes =
            match crate::deadline::timeout(self.limits.body_read_timeout, body.collect()).await {
                Err(_) => {
                    let err = "timed out reading the request body";
                    return reply(StatusCode::REQUEST_TIMEOUT, &Response::error(err));
                }
                Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => {
                    let err = format!("request body is over the limit of {BODY_BYTES_MAX} bytes");
                    return reply(StatusCode::PAYLOAD_TOO_LARGE, &Response::error(err));
                }
                Ok(Err(e)) => {
                    let err = format!("could not read the request body: {e}");
                    return reply(StatusCode::BAD_REQUEST, &Response::error(err));
                }
                Ok(Ok(collected)) => collected.to_bytes(),
            };
        let request = match protocol::parse_request(&bytes) {
            Ok(r) => r,
            Err(e) => return reply(StatusCode::BAD_REQUEST, &Response::error(e.0)),
        };
        let asked = self.ask_lock_service(&request).await;
        if let Some((range, rng)) = &self.work {
            let ms = rng
                .lock()
                .expect("work rng")
                .gen_range(range.min..=range.max);
            crate::deadline::sleep(Duration::from_millis(ms)).await;
        }
        let Applied { response, .. } = {
            let mut store = self.store.lock().expect("store lock");
            let applied = match asked {
                Ok(()) => store.apply(&request),
                Err(refusal) => Applied {
                    response: Response::error(refusal),
                    accepted: false,
                },
            };
            // Why record under the store lock: the log order must be the apply order.
            if let Some(rec) = &self.recorder {
                rec.record(
                    &self.node,
                    None,
                    EventKind::StorageApplied {
                        op_id,
                        op: request.op,
                        key: request.key.clone(),
                        val: request.val.clone(),
                        version: request.version,
                        accepted: applied.accepted,
                        err: applied.response.err.clone(),
                    },
                );
            }
            applied
        };
        reply(StatusCode::OK, &response)
    }
}

impl Server {
    /// The fence's question to the lock service, if it has one; refused if the lock service
    /// cannot be asked or does not answer in time.
    async fn ask_lock_service(&self, request: &Request) -> Result<(), String> {
        let fence = &self.fence;
        if !fence.asks_lock_service() {
            return Ok(());
        }
        let Some(etcd) = &self.lock_service else {
            return Err("the fence asks the lock service, and the storage has none".into());
        };
        let timeout = self.limits.lock_service_timeout;
        crate::deadline::timeout(timeout, fence.ask_lock_service(request, etcd.as_ref()))
            .await
            .unwrap_or_else(|_| {
                Err(format!(
                    "the lock service did not answer within {} ms",
                    timeout.as_millis()
                ))
            })
    }
}

/// Writes a 408 with `contrib/lock`'s JSON shape on a connection hyper gave up. Written by hand
/// because hyper has already let go of the connection; the server closes it after.
async fn answer_head_timeout<T: AsyncWrite + Unpin>(
    mut stream: T,
    limits: ServerLimits,
) -> io::Result<()> {
    use tokio::io::AsyncWriteExt;
    let waited_ms = limits.header_read_timeout.unwrap_or_default().as_millis();
    let body = serde_json::to_string(&Response::error(format!(
        "request head not finished within {waited_ms} ms"
    )))
    .expect("a response serializes");
    let head = format!(
        "HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(body.as_bytes()).await?;
    stream.flush().await?;
    stream.shutdown().await
}

fn reply(status: StatusCode, body: &Response) -> hyper::Response<Full<Bytes>> {
    let json = serde_json::to_vec(body).expect("response serializes");
    hyper::Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(json)))
        .expect("static response parts are valid")
}

/// Why a call did not produce a storage response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallError {
    /// Nothing was sent: it surely did not take effect.
    NotSent(String),
    /// Sent, no answer: it may have taken effect.
    NoAnswer(String),
    /// The server refused the request at the HTTP level (it did not apply it).
    Http(StatusCode, String),
}

/// A storage client over one keep-alive HTTP/1.1 connection.
pub struct Client {
    /// `host:port`.
    addr: String,
    sender: Option<hyper::client::conn::http1::SendRequest<Full<Bytes>>>,
}

impl Client {
    /// `addr` is `host:port` or `http://host:port[/]`.
    pub fn new(addr: &str) -> Self {
        let addr = addr
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .to_string();
        Client { addr, sender: None }
    }

    /// Drops the connection; the next call opens a new one. Call it after a timeout, since a
    /// late answer on the old connection would otherwise be taken for the next request's.
    pub fn reset(&mut self) {
        self.sender = None;
    }

    /// Opens the connection now rather than at the first request, as a pooled client would.
    pub async fn warm_up(&mut self) -> Result<(), CallError> {
        self.connect().await.map(|_| ())
    }

    async fn connect(
        &mut self,
    ) -> Result<&mut hyper::client::conn::http1::SendRequest<Full<Bytes>>, CallError> {
        if self.sender.as_ref().is_some_and(|s| s.is_closed()) {
            self.sender = None;
        }
        if self.sender.is_none() {
            let stream = TcpStream::connect(&self.addr)
                .await
                .map_err(|e| CallError::NotSent(format!("connect {}: {e}", self.addr)))?;
            let (sender, conn) = hyper::client::conn::http1::handshake(Io::new(stream))
                .await
                .map_err(|e| CallError::NotSent(format!("handshake: {e}")))?;
            tokio::spawn(async move {
                // Ends when the sender is dropped or the peer closes.
                let _ = conn.await;
            });
            self.sender = Some(sender);
        }
        Ok(self.sender.as_mut().expect("just connected"))
    }

    /// Sends one request and waits for its answer.
    pub async fn call(&mut self, req: &Request, op_id: Option<u64>) -> Result<Response, CallError> {
        let body = serde_json::to_vec(req).expect("request serializes");
        let mut builder = hyper::Request::builder()
            .method(Method::POST)
            .uri("/")
            .header("host", self.addr.as_str())
            .header("content-type", "application/json");
        if let Some(id) = op_id {
            builder = builder.header(OP_HEADER, id);
        }
        let http_req = builder
            .body(Full::new(Bytes::from(body)))
            .expect("request parts are valid");
        let sender = self.connect().await?;
        if sender.ready().await.is_err() {
            self.sender = None;
            return Err(CallError::NotSent("connection closed".into()));
        }
        // The exchange runs as its own task: if the caller stops waiting (its timeout), the
        // request stays in flight and may still reach the storage, as on a real network
        // where a closed socket does not recall packets already sent.
        let response = sender.send_request(http_req);
        let exchange = tokio::spawn(async move {
            let linger = crate::deadline::timeout(EXCHANGE_LINGER, async {
                let resp = response
                    .await
                    .map_err(|e| CallError::NoAnswer(e.to_string()))?;
                let status = resp.status();
                let bytes = Limited::new(resp.into_body(), BODY_BYTES_MAX)
                    .collect()
                    .await
                    .map_err(|e| CallError::NoAnswer(e.to_string()))?
                    .to_bytes();
                let parsed: Response = serde_json::from_slice(&bytes)
                    .map_err(|e| CallError::NoAnswer(format!("malformed response: {e}")))?;
                if status != StatusCode::OK {
                    return Err(CallError::Http(status, parsed.err));
                }
                Ok(parsed)
            });
            linger
                .await
                .unwrap_or_else(|_| Err(CallError::NoAnswer("no answer".into())))
        });
        let result = exchange
            .await
            .unwrap_or_else(|e| Err(CallError::NoAnswer(format!("exchange task: {e}"))));
        if matches!(result, Err(CallError::NoAnswer(_))) {
            self.sender = None;
        }
        result
    }
}
