//! The member as a node of the simulated world: its connections, its clock, its lessor scan,
//! and the request faults the nemesis can inject.
//!
//! Rules (etcd 3.4/3.5):
//! - The leader's lessor looks for expired leases every 500 ms (`lease/lessor.go`, `runLoop`:
//!   `revokeExpiredLeases` then `time.After(500 * time.Millisecond)`) and revokes each through
//!   the log. The model scans on the member's own timer and applies the revocation at once
//!   (a single member commits in about a millisecond; see the calibration).
//! - A stalled member (its node paused) runs nothing, scans nothing, answers nothing; its
//!   monotonic clock goes on. On resume a lease whose deadline passed cannot be renewed,
//!   whatever runs first: the renewal finds it expired (`Renew`).
//! - A keepalive of an expired lease is answered (TTL 0) only once the lease is revoked: etcd's
//!   `Renew` waits on the lease's `revokec` (closed when the scan's revocation applies) and
//!   does not revoke it itself. A real etcd 3.4.23 answered such a keepalive, sent 20 ms past
//!   the deadline, 0–508 ms later (the calibration), and deleted the lease's keys no earlier.
//! - A request that goes through the log and is not answered in etcd's request timeout
//!   (`etcdserver/config.go`, `ReqTimeout`: 5 s + 2 × election timeout) fails with
//!   "etcdserver: request timed out" (`ErrTimeout`); it may or may not have committed. The
//!   nemesis injects both: a *clean* timeout (not applied) and an *ambiguous* one (applied,
//!   then timed out).
//! - Canceling a call (client deadline, lost connection) cancels what it started server-side
//!   (gRPC cancels the stream's context): a waiting Lock or Campaign deletes its key, a watch
//!   ends.

use super::handle::{Fault, Member};
use super::recipes;
use super::wire::{Envelope, Request, Response};
use crate::etcd::EtcdError;
use madsim::net::{Endpoint, Receiver, Sender};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::oneshot;

/// Most waiting calls (Lock, Campaign, Watch) one connection may have: a limit on everything.
const RUNNING_MAX: usize = 1024;
/// Most lessor scans in one member's life (a year of 500 ms scans).
const SCANS_MAX: u64 = 63_072_000;

/// A node of its own, named `name` at `addr`'s IP, that serves `member` on `addr`. A
/// restarted node serves the same member again: its data lives in the cluster, as etcd's in
/// its WAL.
pub fn node(
    handle: &madsim::runtime::Handle,
    name: &str,
    addr: SocketAddr,
    member: Arc<Member>,
) -> madsim::runtime::NodeHandle {
    crate::system::sim_node::serving(handle, name, addr, member, serve)
}

/// Serves the member on `addr` until the node is killed.
pub async fn serve(addr: SocketAddr, member: Arc<Member>) -> std::io::Result<()> {
    let ep = Endpoint::bind(addr).await?;
    let _scan = tokio::spawn(scan(member.clone()));
    loop {
        let (tx, rx, _) = ep.accept1().await?;
        tokio::spawn(connection(member.clone(), Arc::new(tx), rx));
    }
}

/// The lessor's loop: revoke what expired, wait a scan period (by the member's timer). Only
/// the leader's lessor expires leases; a stale former leader's may too (issue 15247).
async fn scan(member: Arc<Member>) {
    let period = Duration::from_millis(member.cfg().scan_ms);
    for _ in 0..SCANS_MAX {
        member.clock.sleep(period).await;
        if member.cluster.expires_leases(member.index) {
            let now_us = member.now_us();
            member.state().expire(now_us);
        } else if member.cluster.leads(member.index) {
            member.cluster.propose_expired(member.index);
        } else {
            member.cluster.stale_scan(member.index);
        }
    }
}

async fn reply(tx: &Sender, id: u64, body: Response) {
    // A closed connection loses the answer, as a reset TCP connection does.
    let _ = tx.send(Box::new(Envelope { id, body })).await;
}

async fn connection(member: Arc<Member>, tx: Arc<Sender>, mut rx: Receiver) {
    // Dropping a call's sender cancels it: on Cancel, and for all of them when the
    // connection ends.
    let mut running: BTreeMap<u64, oneshot::Sender<()>> = BTreeMap::new();
    while let Ok(msg) = rx.recv().await {
        // No panic in a server: a message that is not a request is dropped.
        let Ok(env) = msg.downcast::<Envelope<Request>>() else {
            continue;
        };
        let Envelope { id, body } = *env;
        if matches!(body, Request::Cancel) {
            running.remove(&id);
        } else if body.is_unary() && member.ready(&body) {
            unary(&member, &tx, id, body).await;
        } else if body.is_unary() {
            // No leader to serve it yet: it waits, without holding up the connection.
            let (member, tx) = (member.clone(), tx.clone());
            tokio::spawn(async move {
                if member.wait_ready(&body).await {
                    unary(&member, &tx, id, body).await;
                } else {
                    reply(&tx, id, Response::Error(EtcdError::Timeout)).await;
                }
            });
        } else {
            running.retain(|_, c| !c.is_closed());
            if running.len() >= RUNNING_MAX {
                let why = format!("more than {RUNNING_MAX} waiting calls on one connection");
                reply(&tx, id, Response::Error(EtcdError::Other { why })).await;
                continue;
            }
            let (cancel_tx, cancel_rx) = oneshot::channel();
            running.insert(id, cancel_tx);
            tokio::spawn(waiting(member.clone(), tx.clone(), id, body, cancel_rx));
        }
    }
}

async fn unary(member: &Arc<Member>, tx: &Arc<Sender>, id: u64, req: Request) {
    if let Request::KeepAlive { id: lease } = &req {
        // A former leader that has not noticed answers from its own lessor (issue 15247).
        if let Some(ttl) = member.cluster.stale_renew(member.index, *lease) {
            return reply(tx, id, Response::Ttl(ttl)).await;
        }
    }
    let fault = if req.goes_through_the_log() {
        member.draw_fault()
    } else {
        Fault::None
    };
    let answer = match fault {
        Fault::Lost => None,
        Fault::None | Fault::Ambiguous => {
            let now_us = member.lease_now_us();
            let mut state = member.state();
            let answer = state.apply(&req, now_us);
            // A keepalive answered 0 whose lease is still there: it expired, and etcd's Renew
            // answers once the revocation has applied.
            let revoked = match (&req, &answer) {
                (Request::KeepAlive { id }, Response::Ttl(0)) => state.after_revocation(*id),
                _ => None,
            };
            Some((answer, revoked))
        }
    };
    match (fault, answer) {
        (Fault::None, Some((answer, None))) => reply(tx, id, answer).await,
        (Fault::None, Some((answer, Some(revoked)))) => {
            let tx = tx.clone();
            // Bounded by the next scan (or a revoke); killing the member ends it.
            tokio::spawn(async move {
                if revoked.await.is_ok() {
                    reply(&tx, id, answer).await;
                }
            });
        }
        _ => {
            let (member, tx) = (member.clone(), tx.clone());
            tokio::spawn(async move {
                member.clock.sleep(member.cfg().request_timeout()).await;
                reply(&tx, id, Response::Error(EtcdError::Timeout)).await;
            });
        }
    }
}

/// A call that waits (Lock, Campaign) or streams (Watch), until done or canceled.
/// Every `select!` here is `biased` (cancel first): tokio's unbiased `select!` draws from a
/// thread-local RNG outside madsim's, which made runs depend on the runs before them on the
/// same thread.
async fn waiting(
    member: Arc<Member>,
    tx: Arc<Sender>,
    id: u64,
    req: Request,
    mut cancel: oneshot::Receiver<()>,
) {
    if !member.wait_ready(&req).await {
        return reply(&tx, id, Response::Error(EtcdError::Timeout)).await;
    }
    let answer = match req {
        Request::Lock { name, lease } => tokio::select! {
            biased;
            _ = &mut cancel => return recipes::abandon(&member, &name, lease),
            r = recipes::lock(&member, &name, lease) => r.map(Response::Lock),
        },
        Request::Campaign { name, value, lease } => tokio::select! {
            biased;
            _ = &mut cancel => return recipes::abandon(&member, &name, lease),
            r = recipes::campaign(&member, &name, &value, lease) => r.map(Response::Leader),
        },
        Request::Watch {
            keys,
            start_revision,
        } => {
            let (etx, mut erx) = tokio::sync::mpsc::unbounded_channel();
            let watch = {
                let mut s = member.state();
                let current = s.kv.revision();
                s.watches.watch(keys, start_revision, current, etx)
            };
            let watch_id = match watch {
                Ok(w) => w,
                Err(e) => return reply(&tx, id, Response::Error(e)).await,
            };
            // Bounded by the connection: cancel or a closed connection ends it.
            loop {
                tokio::select! {
                    biased;
                    _ = &mut cancel => break,
                    events = erx.recv() => match events {
                        Some(events) => reply(&tx, id, Response::Events(events)).await,
                        None => break,
                    },
                }
            }
            member.state().watches.cancel(watch_id);
            return;
        }
        _ => Err(EtcdError::Other {
            why: "not a waiting request".into(),
        }),
    };
    reply(&tx, id, answer.unwrap_or_else(Response::Error)).await;
}
