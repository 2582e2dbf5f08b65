//! The model's client: one persistent connection per client, opened at the first call and
//! again only after it broke, requests multiplexed on it by ID, as
//! `redis::aio::MultiplexedConnection` pipelines commands on one TCP connection. A request
//! costs two messages.
//!
//! Failures, as a lock client must read them: no connection, or a send on a closed one, means
//! the command was not sent ([`RedisError::Unavailable`]); a connection that breaks after the
//! command went out means it may have run ([`RedisError::Timeout`], indeterminate). A caller
//! that drops a call (its own deadline) only forgets it: Redis has no way to cancel a command.

use super::wire::{Envelope, Request, Response};
use crate::redis::{Redis, RedisError, RedisResult};
use crate::BoxFuture;
use madsim::net::{Endpoint, Sender};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::sync::oneshot;

/// Most calls waiting for an answer on one connection: a limit on everything.
const PENDING_MAX: usize = 100_000;

#[derive(Default)]
struct Calls {
    next_id: u64,
    /// Calls waiting for an answer, with the generation of the connection they went on.
    pending: BTreeMap<u64, (u64, oneshot::Sender<Response>)>,
    /// The open connection and its generation (a reader that ends clears only its own).
    link: Option<(Arc<Sender>, u64)>,
    generation: u64,
}

fn lock(calls: &Mutex<Calls>) -> MutexGuard<'_, Calls> {
    // Every change under this lock is one map operation: a poisoned lock is still whole.
    calls.lock().unwrap_or_else(|p| p.into_inner())
}

/// A client of the model node at one address.
pub struct ModelRedis {
    addr: SocketAddr,
    calls: Arc<Mutex<Calls>>,
    /// Serializes connecting, so concurrent first calls share one connection.
    connecting: tokio::sync::Mutex<()>,
}

/// Forgets a call that is dropped before its answer (the answer, if any, is dropped).
struct ForgetOnDrop {
    calls: Arc<Mutex<Calls>>,
    id: u64,
}

impl Drop for ForgetOnDrop {
    fn drop(&mut self) {
        lock(&self.calls).pending.remove(&self.id);
    }
}

/// Sends without waiting: madsim's connection send completes at its first poll.
fn send_now(tx: &Sender, id: u64, body: Request) -> bool {
    use std::future::Future;
    let mut fut = std::pin::pin!(tx.send(Box::new(Envelope { id, body })));
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    matches!(fut.as_mut().poll(&mut cx), std::task::Poll::Ready(Ok(())))
}

impl ModelRedis {
    /// A client of the node at `addr`; it connects at its first call.
    pub fn new(addr: SocketAddr) -> Self {
        ModelRedis {
            addr,
            calls: Arc::new(Mutex::new(Calls::default())),
            connecting: tokio::sync::Mutex::new(()),
        }
    }

    async fn link(&self) -> RedisResult<(Arc<Sender>, u64)> {
        let _one = self.connecting.lock().await;
        if let Some((tx, g)) = &lock(&self.calls).link {
            return Ok((tx.clone(), *g));
        }
        let unavailable = |e: std::io::Error| RedisError::Unavailable { why: e.to_string() };
        let ep = Endpoint::bind("0.0.0.0:0").await.map_err(unavailable)?;
        let (tx, mut rx) = ep.connect1(self.addr).await.map_err(unavailable)?;
        let tx = Arc::new(tx);
        let generation = {
            let mut c = lock(&self.calls);
            assert!(c.link.is_none(), "one connection at a time");
            c.generation += 1;
            c.link = Some((tx.clone(), c.generation));
            c.generation
        };
        let calls = self.calls.clone();
        tokio::spawn(async move {
            let _ep = ep;
            while let Ok(msg) = rx.recv().await {
                let Ok(env) = msg.downcast::<Envelope<Response>>() else {
                    continue;
                };
                // An answer after the caller gave up finds no waiter and is dropped.
                if let Some((_, w)) = lock(&calls).pending.remove(&env.id) {
                    let _ = w.send(env.body);
                }
            }
            // The connection broke: every call on it fails (its waiter is dropped), whether
            // or not a newer connection replaced it meanwhile.
            let mut c = lock(&calls);
            if c.link.as_ref().is_some_and(|(_, g)| *g == generation) {
                c.link = None;
            }
            c.pending.retain(|_, (g, _)| *g != generation);
            debug_assert!(c.pending.values().all(|(g, _)| *g != generation));
        });
        Ok((tx, generation))
    }

    /// Registers a call and sends it; the guard forgets it if dropped before the answer.
    async fn start(
        &self,
        body: Request,
        waiter: oneshot::Sender<Response>,
    ) -> RedisResult<ForgetOnDrop> {
        let (tx, generation) = self.link().await?;
        let id = {
            let mut c = lock(&self.calls);
            if c.pending.len() >= PENDING_MAX {
                return Err(RedisError::Other {
                    why: format!("more than {PENDING_MAX} calls in flight"),
                });
            }
            c.next_id += 1;
            let id = c.next_id;
            let fresh = c.pending.insert(id, (generation, waiter)).is_none();
            assert!(fresh, "request IDs are never reused");
            debug_assert!(c.pending.len() <= PENDING_MAX);
            id
        };
        let guard = ForgetOnDrop {
            calls: self.calls.clone(),
            id,
        };
        // `false` means the connection is closed (never "try again"): not sent.
        if !send_now(&tx, id, body) {
            let mut c = lock(&self.calls);
            c.pending.remove(&id);
            if c.link.as_ref().is_some_and(|(_, g)| *g == generation) {
                c.link = None;
            }
            return Err(RedisError::Unavailable {
                why: "connection reset".into(),
            });
        }
        Ok(guard)
    }

    async fn call(&self, body: Request) -> RedisResult<Response> {
        let (tx, rx) = oneshot::channel();
        let guard = self.start(body, tx).await?;
        let answer = rx.await;
        // Answered or failed, the call is no longer pending: the reader removed it.
        debug_assert!(!lock(&self.calls).pending.contains_key(&guard.id));
        match answer {
            Ok(Response::Error(e)) => Err(e),
            Ok(r) => Ok(r),
            // Sent, then the connection broke: it may have run.
            Err(_) => Err(RedisError::Timeout),
        }
    }

    async fn call_bool(&self, body: Request) -> RedisResult<bool> {
        match self.call(body).await? {
            Response::Bool(b) => Ok(b),
            r => Err(unexpected(r)),
        }
    }

    async fn call_int(&self, body: Request) -> RedisResult<i64> {
        match self.call(body).await? {
            Response::Int(i) => Ok(i),
            r => Err(unexpected(r)),
        }
    }
}

impl Drop for ModelRedis {
    /// Closes the connection: its reader ends when the node closes its side.
    fn drop(&mut self) {
        lock(&self.calls).link = None;
    }
}

fn unexpected(r: Response) -> RedisError {
    RedisError::Other {
        why: format!("unexpected answer {r:?}"),
    }
}

impl Redis for ModelRedis {
    fn set_nx_px(&self, key: &str, value: &str, px_ms: i64) -> BoxFuture<'_, RedisResult<bool>> {
        let body = Request::SetNxPx {
            key: key.to_string(),
            value: value.to_string(),
            px_ms,
        };
        Box::pin(self.call_bool(body))
    }

    fn get(&self, key: &str) -> BoxFuture<'_, RedisResult<Option<String>>> {
        let body = Request::Get {
            key: key.to_string(),
        };
        Box::pin(async move {
            match self.call(body).await? {
                Response::Value(v) => Ok(v),
                r => Err(unexpected(r)),
            }
        })
    }

    fn del(&self, key: &str) -> BoxFuture<'_, RedisResult<bool>> {
        let body = Request::Del {
            key: key.to_string(),
        };
        Box::pin(self.call_bool(body))
    }

    fn pttl(&self, key: &str) -> BoxFuture<'_, RedisResult<i64>> {
        let body = Request::Pttl {
            key: key.to_string(),
        };
        Box::pin(self.call_int(body))
    }

    fn pexpire(&self, key: &str, px_ms: i64) -> BoxFuture<'_, RedisResult<bool>> {
        let body = Request::Pexpire {
            key: key.to_string(),
            px_ms,
        };
        Box::pin(self.call_bool(body))
    }

    fn incr(&self, key: &str) -> BoxFuture<'_, RedisResult<i64>> {
        let body = Request::Incr {
            key: key.to_string(),
        };
        Box::pin(self.call_int(body))
    }

    fn del_if_eq(&self, key: &str, value: &str) -> BoxFuture<'_, RedisResult<bool>> {
        let body = Request::DelIfEq {
            key: key.to_string(),
            value: value.to_string(),
        };
        Box::pin(self.call_bool(body))
    }

    fn pexpire_if_eq(
        &self,
        key: &str,
        value: &str,
        px_ms: i64,
    ) -> BoxFuture<'_, RedisResult<bool>> {
        let body = Request::PexpireIfEq {
            key: key.to_string(),
            value: value.to_string(),
            px_ms,
        };
        Box::pin(self.call_bool(body))
    }
}
