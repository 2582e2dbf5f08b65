//! The calls of a [`ModelZk`] session: each request sent on the session's connection and its
//! answer awaited (`ClientCnxn.submitRequest`), client-side watches registered with it
//! (`ZKWatchManager`), and the [`Zk`] seam over them. See `client.rs` for the session itself.

use super::client::ModelZk;
use super::error::ZkError;
use super::tree::{CreateMode, Op, OpResult, Stat};
use super::wire::{Request, Response, ToServer};
use crate::zk::{Created, Fired, MultiFailed, SessionInfo, SessionState, Watch, Zk, ZkResult};
use crate::BoxFuture;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::oneshot;

/// Most requests waiting for an answer: a limit on everything.
const PENDING_MAX: usize = 10_000;
/// Most client-side watches: a limit on everything.
const WATCHES_MAX: usize = 10_000;

impl ModelZk {
    /// Sends a request and waits for its answer. While suspended, waits for the reconnect
    /// (`queuePacket` queues it), at most one connect timeout per server, then
    /// `ConnectionLoss`.
    async fn call(&self, body: Request) -> ZkResult<Response> {
        let inner = &self.inner;
        let wait = Duration::from_millis(inner.timeout_ms());
        assert!(!wait.is_zero(), "a session has a timeout");
        let connected = inner
            .clock
            .timeout(wait, inner.wait_for(|s| s != SessionState::Suspended))
            .await;
        match (connected, inner.state()) {
            (Err(_), _) => return Err(ZkError::ConnectionLoss),
            (_, SessionState::Connected) => {}
            _ => return Err(ZkError::SessionExpired),
        }
        let (tx, rx) = oneshot::channel();
        let xid = {
            let mut s = inner.shared();
            let Some((_, generation)) = s.link.clone() else {
                return Err(ZkError::ConnectionLoss);
            };
            if s.pending.len() >= PENDING_MAX {
                return Err(ZkError::ModelLimit {
                    what: "requests in flight",
                });
            }
            s.next_xid += 1;
            let xid = s.next_xid;
            let fresh = s.pending.insert(xid, (generation, tx)).is_none();
            assert!(fresh, "request IDs are never reused");
            assert!(s.pending.len() <= PENDING_MAX);
            xid
        };
        if !inner.send(ToServer::Request { xid, body }) {
            inner.shared().pending.remove(&xid);
            return Err(ZkError::ConnectionLoss);
        }
        match rx.await {
            Ok(Response::Error(e)) => Err(e),
            Ok(r) => Ok(r),
            // Sent, then the connection broke: it may have been applied.
            Err(_) => match inner.state() {
                SessionState::Expired | SessionState::Closed => Err(ZkError::SessionExpired),
                _ => Err(ZkError::ConnectionLoss),
            },
        }
    }

    /// A client-side watch on `path`, registered before the request so that no event is
    /// missed; removed again if the request fails (`WatchRegistration.register` keeps it only
    /// on success).
    fn watch(&self, path: &str) -> ZkResult<(oneshot::Receiver<Fired>, WatchGuard)> {
        let (tx, rx) = oneshot::channel();
        let mut s = self.inner.shared();
        if s.watch_count >= WATCHES_MAX {
            return Err(ZkError::ModelLimit {
                what: "client watches",
            });
        }
        s.watches.entry(path.to_string()).or_default().push(tx);
        s.watch_count += 1;
        assert!(s.watch_count <= WATCHES_MAX);
        Ok((
            rx,
            WatchGuard {
                inner: self.inner.clone(),
                path: path.to_string(),
                armed: true,
            },
        ))
    }
}

/// Removes a watch whose request failed (closed senders only: a watch already fired or
/// handed out stays as it is).
struct WatchGuard {
    inner: Arc<super::client::Inner>,
    path: String,
    armed: bool,
}

impl WatchGuard {
    fn keep(mut self) {
        self.armed = false;
    }
}

impl Drop for WatchGuard {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let mut s = self.inner.shared();
        let Some(list) = s.watches.get_mut(&self.path) else {
            return;
        };
        let before = list.len();
        list.retain(|w| !w.is_closed());
        let removed = before - list.len();
        if list.is_empty() {
            s.watches.remove(&self.path);
        }
        assert!(s.watch_count >= removed, "the count covers every watch");
        s.watch_count -= removed;
    }
}

fn into_watch(rx: oneshot::Receiver<Fired>) -> Watch {
    // A watch whose sender went without firing was forgotten with the session: it fires
    // with the session's end.
    Box::pin(async move { rx.await.unwrap_or(Fired::Session(SessionState::Closed)) })
}

fn unexpected(r: Response) -> ZkError {
    debug_assert!(false, "unexpected answer {r:?}");
    ZkError::RuntimeInconsistency
}

impl Drop for ModelZk {
    /// The handle goes without `close()`: its thread stops and its connection closes; the
    /// session lives on the servers until it expires, as a crashed client's does.
    fn drop(&mut self) {
        self.inner.set_state(SessionState::Closed);
    }
}

impl Zk for ModelZk {
    fn session(&self) -> SessionInfo {
        self.inner.shared().session
    }

    fn state(&self) -> SessionState {
        self.inner.state()
    }

    fn state_changed(&self, seen: SessionState) -> BoxFuture<'_, SessionState> {
        Box::pin(self.inner.wait_for(move |s| s != seen))
    }

    fn create(
        &self,
        path: &str,
        data: &[u8],
        mode: CreateMode,
    ) -> BoxFuture<'_, ZkResult<Created>> {
        let body = Request::Create {
            path: path.to_string(),
            data: data.to_vec(),
            mode,
        };
        Box::pin(async move {
            match self.call(body).await? {
                Response::Created { path, stat } => Ok(Created { path, stat }),
                r => Err(unexpected(r)),
            }
        })
    }

    fn delete(&self, path: &str, version: i32) -> BoxFuture<'_, ZkResult<()>> {
        let body = Request::Delete {
            path: path.to_string(),
            version,
        };
        Box::pin(async move {
            match self.call(body).await? {
                Response::Deleted => Ok(()),
                r => Err(unexpected(r)),
            }
        })
    }

    fn get_data(&self, path: &str) -> BoxFuture<'_, ZkResult<(Vec<u8>, Stat)>> {
        let body = Request::GetData {
            path: path.to_string(),
            watch: false,
        };
        Box::pin(async move {
            match self.call(body).await? {
                Response::Data { data, stat } => Ok((data, stat)),
                r => Err(unexpected(r)),
            }
        })
    }

    fn get_data_watch(&self, path: &str) -> BoxFuture<'_, ZkResult<(Vec<u8>, Stat, Watch)>> {
        let path = path.to_string();
        Box::pin(async move {
            let (rx, guard) = self.watch(&path)?;
            let body = Request::GetData { path, watch: true };
            match self.call(body).await? {
                Response::Data { data, stat } => {
                    guard.keep();
                    Ok((data, stat, into_watch(rx)))
                }
                r => Err(unexpected(r)),
            }
        })
    }

    fn exists_watch(&self, path: &str) -> BoxFuture<'_, ZkResult<(Option<Stat>, Watch)>> {
        let path = path.to_string();
        Box::pin(async move {
            let (rx, guard) = self.watch(&path)?;
            let body = Request::Exists { path, watch: true };
            match self.call(body).await? {
                Response::Exists(stat) => {
                    guard.keep();
                    Ok((stat, into_watch(rx)))
                }
                r => Err(unexpected(r)),
            }
        })
    }

    fn set_data(&self, path: &str, data: &[u8], version: i32) -> BoxFuture<'_, ZkResult<Stat>> {
        let body = Request::SetData {
            path: path.to_string(),
            data: data.to_vec(),
            version,
        };
        Box::pin(async move {
            match self.call(body).await? {
                Response::Stat(stat) => Ok(stat),
                r => Err(unexpected(r)),
            }
        })
    }

    fn get_children(&self, path: &str) -> BoxFuture<'_, ZkResult<Vec<String>>> {
        let body = Request::GetChildren {
            path: path.to_string(),
        };
        Box::pin(async move {
            match self.call(body).await? {
                Response::Children(c) if c.len() <= crate::zk::CHILDREN_MAX => Ok(c),
                Response::Children(_) => Err(ZkError::ModelLimit { what: "children" }),
                r => Err(unexpected(r)),
            }
        })
    }

    fn multi(&self, ops: &[Op]) -> BoxFuture<'_, Result<Vec<OpResult>, MultiFailed>> {
        let body = Request::Multi { ops: ops.to_vec() };
        let too_many = ops.len() > crate::zk::MULTI_OPS_MAX;
        Box::pin(async move {
            if too_many {
                return Err(MultiFailed::Call(ZkError::ModelLimit { what: "multi ops" }));
            }
            match self.call(body).await.map_err(MultiFailed::Call)? {
                Response::Multi(Ok(results)) => Ok(results),
                Response::Multi(Err(e)) => Err(MultiFailed::Op(e)),
                r => Err(MultiFailed::Call(unexpected(r))),
            }
        })
    }

    fn close(&self) -> BoxFuture<'_, ZkResult<()>> {
        Box::pin(async move {
            let closed = self.call(Request::CloseSession).await;
            self.inner.set_state(SessionState::Closed);
            match closed {
                Ok(_) | Err(ZkError::SessionExpired) => Ok(()),
                Err(e) => Err(e),
            }
        })
    }
}
