//! The model's client: one persistent connection per client, requests multiplexed on it by
//! ID, as etcd's Go and Rust clients multiplex gRPC calls on one HTTP/2 channel. A request
//! costs two messages; a connection is opened once, and again only after it broke.
//!
//! Dropping a call before its answer (a deadline) sends a cancel, as gRPC does when a
//! context ends, so the member stops what the call started (a waiting Lock, a watch).

use super::wire::{Envelope, Request, Response};
use crate::etcd::{
    Etcd, EtcdError, EtcdResult, Grant, Keys, LeaderKey, LeaseId, LockKey, Range, Revision, Txn,
    TxnResult, WatchEvent, WatchStream,
};
use crate::BoxFuture;
use madsim::net::{Endpoint, Sender};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use tokio::sync::{mpsc, oneshot};

/// Most calls waiting for an answer on one connection: a limit on everything.
const PENDING_MAX: usize = 100_000;

enum Waiter {
    Once(oneshot::Sender<Response>),
    Stream(mpsc::UnboundedSender<Response>),
}

#[derive(Default)]
struct Calls {
    next_id: u64,
    /// Calls waiting for an answer, with the generation of the connection they went on.
    pending: BTreeMap<u64, (u64, Waiter)>,
    /// The open connection and its generation (a reader that ends clears only its own).
    link: Option<(Arc<Sender>, u64)>,
    generation: u64,
}

/// A client of the model member at one address.
pub struct ModelEtcd {
    addr: SocketAddr,
    calls: Arc<Mutex<Calls>>,
    /// Serializes connecting, so concurrent first calls share one connection.
    connecting: tokio::sync::Mutex<()>,
}

/// Sends a cancel for a call that is dropped before its answer.
struct CancelOnDrop {
    calls: Arc<Mutex<Calls>>,
    id: u64,
    done: bool,
}

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        let link = {
            let mut c = self.calls.lock().expect("calls");
            c.pending.remove(&self.id);
            c.link.as_ref().map(|(tx, _)| tx.clone())
        };
        if let Some(tx) = link {
            send_now(&tx, self.id, Request::Cancel);
        }
    }
}

/// Sends without waiting: madsim's connection send completes at its first poll.
fn send_now(tx: &Sender, id: u64, body: Request) -> bool {
    use std::future::Future;
    let mut fut = std::pin::pin!(tx.send(Box::new(Envelope { id, body })));
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    matches!(fut.as_mut().poll(&mut cx), std::task::Poll::Ready(Ok(())))
}

impl ModelEtcd {
    /// A client of the member at `addr`; it connects at its first call.
    pub fn new(addr: SocketAddr) -> Self {
        ModelEtcd {
            addr,
            calls: Arc::new(Mutex::new(Calls::default())),
            connecting: tokio::sync::Mutex::new(()),
        }
    }

    async fn link(&self) -> EtcdResult<(Arc<Sender>, u64)> {
        let _one = self.connecting.lock().await;
        if let Some((tx, g)) = &self.calls.lock().expect("calls").link {
            return Ok((tx.clone(), *g));
        }
        let unavailable = |e: std::io::Error| EtcdError::Unavailable { why: e.to_string() };
        let ep = Endpoint::bind("0.0.0.0:0").await.map_err(unavailable)?;
        let (tx, mut rx) = ep.connect1(self.addr).await.map_err(unavailable)?;
        let tx = Arc::new(tx);
        let generation = {
            let mut c = self.calls.lock().expect("calls");
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
                let mut c = calls.lock().expect("calls");
                match c.pending.get(&env.id) {
                    Some((_, Waiter::Once(_))) => {
                        if let Some((_, Waiter::Once(w))) = c.pending.remove(&env.id) {
                            let _ = w.send(env.body);
                        }
                    }
                    Some((_, Waiter::Stream(w))) => {
                        // The watch was dropped: forget it.
                        let dropped = w.send(env.body).is_err();
                        if dropped {
                            c.pending.remove(&env.id);
                        }
                    }
                    // Answered after the caller gave up: dropped.
                    None => {}
                }
            }
            // The connection broke: every call on it fails (its waiter is dropped), whether
            // or not a newer connection replaced it meanwhile.
            let mut c = calls.lock().expect("calls");
            if c.link.as_ref().is_some_and(|(_, g)| *g == generation) {
                c.link = None;
            }
            c.pending.retain(|_, (g, _)| *g != generation);
        });
        Ok((tx, generation))
    }

    /// Registers a call and sends it; the guard cancels it if dropped before the answer.
    async fn start(&self, body: Request, waiter: Waiter) -> EtcdResult<CancelOnDrop> {
        let (tx, generation) = self.link().await?;
        let id = {
            let mut c = self.calls.lock().expect("calls");
            if c.pending.len() >= PENDING_MAX {
                return Err(EtcdError::Other {
                    why: format!("more than {PENDING_MAX} calls in flight"),
                });
            }
            c.next_id += 1;
            let id = c.next_id;
            c.pending.insert(id, (generation, waiter));
            id
        };
        let guard = CancelOnDrop {
            calls: self.calls.clone(),
            id,
            done: false,
        };
        // madsim's connection send completes at its first poll; `false` means the connection
        // is closed (it never means "try again").
        if !send_now(&tx, id, body) {
            let mut c = self.calls.lock().expect("calls");
            c.pending.remove(&id);
            if c.link.as_ref().is_some_and(|(_, g)| *g == generation) {
                c.link = None;
            }
            return Err(EtcdError::Unavailable {
                why: "connection reset".into(),
            });
        }
        Ok(guard)
    }

    async fn call(&self, body: Request) -> EtcdResult<Response> {
        let (tx, rx) = oneshot::channel();
        let mut guard = self.start(body, Waiter::Once(tx)).await?;
        let answer = rx.await;
        guard.done = true;
        match answer {
            Ok(Response::Error(e)) => Err(e),
            Ok(r) => Ok(r),
            // Sent, then the connection broke: it may have been applied.
            Err(_) => Err(EtcdError::Timeout),
        }
    }
}

impl Drop for ModelEtcd {
    /// Closes the connection: its reader ends when the member closes its side, and the
    /// member cancels what the client started (gRPC closes a channel's streams likewise).
    fn drop(&mut self) {
        if let Ok(mut c) = self.calls.lock() {
            c.link = None;
        }
    }
}

fn unexpected(r: Response) -> EtcdError {
    EtcdError::Other {
        why: format!("unexpected answer {r:?}"),
    }
}

impl Etcd for ModelEtcd {
    fn grant(&self, ttl_s: i64) -> BoxFuture<'_, EtcdResult<Grant>> {
        Box::pin(async move {
            match self.call(Request::Grant { ttl_s }).await? {
                Response::Grant(g) => Ok(g),
                r => Err(unexpected(r)),
            }
        })
    }

    fn keep_alive(&self, id: LeaseId) -> BoxFuture<'_, EtcdResult<i64>> {
        Box::pin(async move {
            match self.call(Request::KeepAlive { id }).await? {
                Response::Ttl(t) => Ok(t),
                r => Err(unexpected(r)),
            }
        })
    }

    fn revoke(&self, id: LeaseId) -> BoxFuture<'_, EtcdResult<()>> {
        Box::pin(async move {
            match self.call(Request::Revoke { id }).await? {
                Response::Done => Ok(()),
                r => Err(unexpected(r)),
            }
        })
    }

    fn time_to_live(&self, id: LeaseId) -> BoxFuture<'_, EtcdResult<i64>> {
        Box::pin(async move {
            match self.call(Request::TimeToLive { id }).await? {
                Response::Ttl(t) => Ok(t),
                r => Err(unexpected(r)),
            }
        })
    }

    fn put(&self, key: &str, value: &str, lease: LeaseId) -> BoxFuture<'_, EtcdResult<Revision>> {
        let body = Request::Put {
            key: key.to_string(),
            value: value.to_string(),
            lease,
        };
        Box::pin(async move {
            match self.call(body).await? {
                Response::Revision(r) => Ok(r),
                r => Err(unexpected(r)),
            }
        })
    }

    fn get(&self, keys: Keys) -> BoxFuture<'_, EtcdResult<Range>> {
        Box::pin(async move {
            match self.call(Request::Get(keys)).await? {
                Response::Range(r) => Ok(r),
                r => Err(unexpected(r)),
            }
        })
    }

    fn delete(&self, keys: Keys) -> BoxFuture<'_, EtcdResult<u64>> {
        Box::pin(async move {
            match self.call(Request::Delete(keys)).await? {
                Response::Deleted(n) => Ok(n),
                r => Err(unexpected(r)),
            }
        })
    }

    fn txn(&self, txn: Txn) -> BoxFuture<'_, EtcdResult<TxnResult>> {
        Box::pin(async move {
            match self.call(Request::Txn(txn)).await? {
                Response::Txn(t) => Ok(t),
                r => Err(unexpected(r)),
            }
        })
    }

    fn watch(
        &self,
        keys: Keys,
        start_revision: Revision,
    ) -> BoxFuture<'_, EtcdResult<Box<dyn WatchStream>>> {
        Box::pin(async move {
            let (tx, rx) = mpsc::unbounded_channel();
            let body = Request::Watch {
                keys,
                start_revision,
            };
            let guard = self.start(body, Waiter::Stream(tx)).await?;
            Ok(Box::new(ModelWatch { rx, _guard: guard }) as Box<dyn WatchStream>)
        })
    }

    fn lock(&self, name: &str, lease: LeaseId) -> BoxFuture<'_, EtcdResult<LockKey>> {
        let name = name.to_string();
        Box::pin(async move {
            match self.call(Request::Lock { name, lease }).await? {
                Response::Lock(k) => Ok(k),
                r => Err(unexpected(r)),
            }
        })
    }

    fn unlock(&self, key: &str) -> BoxFuture<'_, EtcdResult<()>> {
        let key = key.to_string();
        Box::pin(async move {
            match self.call(Request::Unlock { key }).await? {
                Response::Done => Ok(()),
                r => Err(unexpected(r)),
            }
        })
    }

    fn campaign(
        &self,
        name: &str,
        value: &str,
        lease: LeaseId,
    ) -> BoxFuture<'_, EtcdResult<LeaderKey>> {
        let body = Request::Campaign {
            name: name.to_string(),
            value: value.to_string(),
            lease,
        };
        Box::pin(async move {
            match self.call(body).await? {
                Response::Leader(l) => Ok(l),
                r => Err(unexpected(r)),
            }
        })
    }

    fn resign(&self, leader: &LeaderKey) -> BoxFuture<'_, EtcdResult<()>> {
        let body = Request::Resign(leader.clone());
        Box::pin(async move {
            match self.call(body).await? {
                Response::Done => Ok(()),
                r => Err(unexpected(r)),
            }
        })
    }
}

/// A watch on the model: its events in order; dropping it cancels it.
struct ModelWatch {
    rx: mpsc::UnboundedReceiver<Response>,
    _guard: CancelOnDrop,
}

impl WatchStream for ModelWatch {
    fn next(&mut self) -> BoxFuture<'_, EtcdResult<Vec<WatchEvent>>> {
        Box::pin(async move {
            match self.rx.recv().await {
                Some(Response::Events(e)) => Ok(e),
                Some(Response::Error(e)) => Err(e),
                Some(r) => Err(unexpected(r)),
                None => Err(EtcdError::Unavailable {
                    why: "watch ended: connection lost".into(),
                }),
            }
        })
    }
}
