//! A client of several etcd members that moves to the next member when the one it uses fails
//! or times out, as etcd's own clients do: clientv3 pins one endpoint and its balancer moves
//! away from an endpoint whose calls fail (`client/v3/balancer`; 3.4 round-robins over the
//! healthy ones), and a gRPC call that hits its deadline leaves the member suspect.
//!
//! The same code runs in the simulation (over one model client per member) and for real (over
//! one gRPC client per member), so the failover a lock client gets is the one measured in the
//! real cluster's calibration.
//!
//! Rules:
//! - Every call goes to the *pinned* member (at first the first one given).
//! - A call that ends in a timeout (etcd's `ErrTimeout`, or the caller's deadline: the call's
//!   future dropped before its answer) or with the member unreachable moves the pin to the
//!   next member, round-robin. The call itself is not retried: a timeout is indeterminate and
//!   only the caller knows whether to try again.
//! - A move happens once per failure: calls that were already in flight on the old member and
//!   fail afterwards do not move the pin again.
//! - A keepalive answers the TTL the lease was granted with (etcd renews to it: `lessor.Renew`),
//!   also through a member other than the one that granted it: the real build's client learns
//!   a lease's TTL only from its own grant.

use super::{
    Etcd, EtcdError, EtcdResult, Grant, Keys, LeaderKey, LeaseId, LockKey, Range, Revision, Txn,
    TxnResult, WatchStream,
};
use crate::BoxFuture;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// Most members one client knows: etcd recommends at most 7.
pub const MEMBERS_MAX: usize = 7;
/// Most leases whose granted TTL the client remembers (the oldest are forgotten first).
const GRANTED_MAX: usize = 4096;

/// A client of several members; see the module doc.
pub struct Failover {
    members: Vec<Arc<dyn Etcd>>,
    pinned: AtomicUsize,
    moves: AtomicU64,
    /// TTL of each lease this client granted.
    granted: Mutex<BTreeMap<LeaseId, i64>>,
}

impl Failover {
    /// A client of `members`, pinned to the first.
    pub fn new(members: Vec<Arc<dyn Etcd>>) -> Failover {
        assert!(
            !members.is_empty() && members.len() <= MEMBERS_MAX,
            "a failover client needs 1..={MEMBERS_MAX} members, got {}",
            members.len()
        );
        Failover {
            members,
            pinned: AtomicUsize::new(0),
            moves: AtomicU64::new(0),
            granted: Mutex::new(BTreeMap::new()),
        }
    }

    /// The member calls go to now (its index in the list given to [`Failover::new`]).
    pub fn pinned(&self) -> usize {
        self.pinned.load(Ordering::Relaxed)
    }

    /// How many times the pin moved.
    pub fn moves(&self) -> u64 {
        self.moves.load(Ordering::Relaxed)
    }

    /// Moves the pin past member `failed`, unless it moved already.
    fn failed(&self, failed: usize) {
        let next = (failed + 1) % self.members.len();
        let moved =
            self.pinned
                .compare_exchange(failed, next, Ordering::Relaxed, Ordering::Relaxed);
        if moved.is_ok() {
            self.moves.fetch_add(1, Ordering::Relaxed);
        }
        // Positive space: the pin always names a member.
        assert!(self.pinned() < self.members.len());
    }

    /// Runs `call` on the pinned member and moves the pin if it times out, fails to reach the
    /// member, or is dropped before its answer.
    fn on_pinned<'a, T: Send + 'a>(
        &'a self,
        call: impl FnOnce(&'a dyn Etcd) -> BoxFuture<'a, EtcdResult<T>> + Send + 'a,
    ) -> BoxFuture<'a, EtcdResult<T>> {
        Box::pin(async move {
            let i = self.pinned();
            let mut guard = MoveOnDrop {
                client: self,
                member: i,
                armed: true,
            };
            let answer = call(self.members[i].as_ref()).await;
            guard.armed = matches!(
                answer,
                Err(EtcdError::Timeout) | Err(EtcdError::Unavailable { .. })
            );
            answer
        })
    }
}

/// Moves the pin when a call on `member` ends badly or is abandoned.
struct MoveOnDrop<'a> {
    client: &'a Failover,
    member: usize,
    armed: bool,
}

impl Drop for MoveOnDrop<'_> {
    fn drop(&mut self) {
        if self.armed {
            self.client.failed(self.member);
        }
    }
}

impl Etcd for Failover {
    fn grant(&self, ttl_s: i64) -> BoxFuture<'_, EtcdResult<Grant>> {
        Box::pin(async move {
            let g = self.on_pinned(move |m| m.grant(ttl_s)).await?;
            let mut granted = self.granted.lock().expect("granted");
            if granted.len() >= GRANTED_MAX {
                granted.pop_first();
            }
            granted.insert(g.id, g.ttl_s);
            Ok(g)
        })
    }

    fn keep_alive(&self, id: LeaseId) -> BoxFuture<'_, EtcdResult<i64>> {
        Box::pin(async move {
            let ttl = self.on_pinned(move |m| m.keep_alive(id)).await?;
            let granted = self.granted.lock().expect("granted").get(&id).copied();
            Ok(match (ttl, granted) {
                (t, Some(g)) if t > 0 => g,
                (t, _) => t,
            })
        })
    }

    fn revoke(&self, id: LeaseId) -> BoxFuture<'_, EtcdResult<()>> {
        self.on_pinned(move |m| m.revoke(id))
    }

    fn time_to_live(&self, id: LeaseId) -> BoxFuture<'_, EtcdResult<i64>> {
        self.on_pinned(move |m| m.time_to_live(id))
    }

    fn put(&self, key: &str, value: &str, lease: LeaseId) -> BoxFuture<'_, EtcdResult<Revision>> {
        let (key, value) = (key.to_string(), value.to_string());
        self.on_pinned(move |m| Box::pin(async move { m.put(&key, &value, lease).await }))
    }

    fn get(&self, keys: Keys) -> BoxFuture<'_, EtcdResult<Range>> {
        self.on_pinned(move |m| m.get(keys))
    }

    fn delete(&self, keys: Keys) -> BoxFuture<'_, EtcdResult<u64>> {
        self.on_pinned(move |m| m.delete(keys))
    }

    fn txn(&self, txn: Txn) -> BoxFuture<'_, EtcdResult<TxnResult>> {
        self.on_pinned(move |m| m.txn(txn))
    }

    fn watch(
        &self,
        keys: Keys,
        start_revision: Revision,
    ) -> BoxFuture<'_, EtcdResult<Box<dyn WatchStream>>> {
        self.on_pinned(move |m| m.watch(keys, start_revision))
    }

    fn lock(&self, name: &str, lease: LeaseId) -> BoxFuture<'_, EtcdResult<LockKey>> {
        let name = name.to_string();
        self.on_pinned(move |m| Box::pin(async move { m.lock(&name, lease).await }))
    }

    fn unlock(&self, key: &str) -> BoxFuture<'_, EtcdResult<()>> {
        let key = key.to_string();
        self.on_pinned(move |m| Box::pin(async move { m.unlock(&key).await }))
    }

    fn campaign(
        &self,
        name: &str,
        value: &str,
        lease: LeaseId,
    ) -> BoxFuture<'_, EtcdResult<LeaderKey>> {
        let (name, value) = (name.to_string(), value.to_string());
        self.on_pinned(move |m| Box::pin(async move { m.campaign(&name, &value, lease).await }))
    }

    fn resign(&self, leader: &LeaderKey) -> BoxFuture<'_, EtcdResult<()>> {
        let leader = leader.clone();
        self.on_pinned(move |m| Box::pin(async move { m.resign(&leader).await }))
    }
}
