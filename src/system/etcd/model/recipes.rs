//! The v3 Lock and election services: lock recipes etcd runs inside the server.
//!
//! etcd's `v3lock` and `v3election` services run `client/v3/concurrency`'s `Mutex.Lock` and
//! `Election.Campaign` on an in-process client, under the caller's lease
//! (`etcdserver/api/v3lock/lock.go`, `v3election/election.go`). Both are:
//! 1. a transaction that creates `name/<lease hex>` under the lease unless it exists;
//! 2. `waitDeletes`: until no key under `name/` with a lower create revision is left, watch
//!    the newest such key for its deletion (`concurrency/key.go`).
//!
//! Release-specific: etcd 3.4's `Mutex.Lock` returns as soon as `waitDeletes` does, even if
//! the waiter's own key was deleted meanwhile (its lease expired): the waiter is told it holds
//! a lock it does not (etcd issue 11456, found by Jepsen). 3.5 re-reads its key after waiting
//! and answers "mutex: session is expired" when it is gone (PR 11408, not backported to 3.4).
//! The election is the same in both.
//!
//! A canceled call (client timeout, lost connection) deletes the waiter's key, as `Lock`'s
//! `m.Unlock` and `Campaign`'s `Resign` do on a canceled context.

use super::handle::Member;
use crate::etcd::{
    compare, txn_put, CmpOp, EtcdError, EtcdResult, KeyValue, Keys, LeaderKey, LeaseId, LockKey,
    Revision, Target, Txn, TxnOp, TxnOpResult, Version, WatchEvent,
};

/// Most keys one wait may see deleted before it gives up: a limit on everything.
const WAITS_MAX: u32 = 100_000;

/// The waiter's key: `prefix + lease in hex` (`concurrency/mutex.go`, `election.go`).
pub fn waiter_key(name: &str, lease: LeaseId) -> String {
    format!("{name}/{lease:x}")
}

/// Creates the waiter's key unless it exists; returns its create revision and the keys under
/// the prefix (for the uncontended check).
fn enqueue(member: &Member, key: &str, value: &str, lease: LeaseId) -> EtcdResult<Revision> {
    let txn = Txn {
        compare: vec![compare(key, CmpOp::Equal, Target::CreateRevision(0))],
        success: vec![txn_put(key, value, lease)],
        failure: vec![TxnOp::Get(Keys::Exact(key.to_string()))],
    };
    let r = member.state().txn(&txn)?;
    if r.succeeded {
        return Ok(r.revision);
    }
    match r.results.first() {
        Some(TxnOpResult::Get(kvs)) if !kvs.is_empty() => Ok(kvs[0].create_revision),
        _ => Err(EtcdError::Other {
            why: "waiter key vanished inside a transaction".into(),
        }),
    }
}

/// A watch of the member's, canceled when dropped (a canceled wait leaves no watcher behind).
struct WatchGuard<'a> {
    member: &'a Member,
    id: u64,
}

impl Drop for WatchGuard<'_> {
    fn drop(&mut self) {
        self.member.state().watches.cancel(self.id);
    }
}

/// `waitDeletes` (`concurrency/key.go`): waits until no key under `prefix` was created at or
/// before `max_create_rev`; returns the revision of the last read. A watch that cannot be
/// registered, or that ends before the delete, fails the wait, as etcd's `waitDelete` answers
/// "lost watcher waiting for delete": the caller then deletes its own key.
async fn wait_deletes(
    member: &Member,
    prefix: &str,
    max_create_rev: Revision,
) -> EtcdResult<Revision> {
    for _ in 0..WAITS_MAX {
        let (_guard, mut rx) = {
            let mut s = member.state();
            let newest: Option<KeyValue> =
                s.kv.range(&Keys::Prefix(prefix.to_string()))
                    .into_iter()
                    .filter(|kv| kv.create_revision <= max_create_rev)
                    .max_by_key(|kv| kv.create_revision);
            let Some(newest) = newest else {
                return Ok(s.kv.revision());
            };
            // Registered under the same lock as the read: no deletion can slip between.
            let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
            let current = s.kv.revision();
            let id = s
                .watches
                .watch(Keys::Exact(newest.key.clone()), 0, current, tx)?;
            (WatchGuard { member, id }, rx)
        };
        // Bounded by the key's own life: a put is skipped, a delete ends the wait.
        let mut deleted = false;
        while let Some(events) = rx.recv().await {
            if events.iter().any(|e| matches!(e, WatchEvent::Delete(_))) {
                deleted = true;
                break;
            }
        }
        if !deleted {
            return Err(EtcdError::Other {
                why: "lost watcher waiting for delete".into(),
            });
        }
    }
    Err(EtcdError::Other {
        why: format!("more than {WAITS_MAX} keys went before this waiter"),
    })
}

/// The v3 Lock service's `Lock`.
pub async fn lock(member: &Member, name: &str, lease: LeaseId) -> EtcdResult<LockKey> {
    let key = waiter_key(name, lease);
    let prefix = format!("{name}/");
    let my_rev = enqueue(member, &key, "", lease)?;
    let revision = match wait_deletes(member, &prefix, my_rev - 1).await {
        Ok(r) => r,
        Err(e) => {
            // `Mutex.Lock`: "release lock key if wait failed" (`m.Unlock`).
            abandon(member, name, lease);
            return Err(e);
        }
    };
    match member.version() {
        Version::V3_4 => Ok(LockKey { key, revision }),
        Version::V3_5 => {
            let s = member.state();
            match s.kv.key(&key) {
                None => Err(EtcdError::SessionExpired),
                Some(_) => Ok(LockKey {
                    key,
                    revision: s.kv.revision(),
                }),
            }
        }
    }
}

/// The v3 election service's `Campaign`.
pub async fn campaign(
    member: &Member,
    name: &str,
    value: &str,
    lease: LeaseId,
) -> EtcdResult<LeaderKey> {
    let key = waiter_key(name, lease);
    let prefix = format!("{name}/");
    let rev = enqueue(member, &key, value, lease)?;
    if let Err(e) = wait_deletes(member, &prefix, rev - 1).await {
        // `Election.Campaign` resigns when its wait fails.
        abandon(member, name, lease);
        return Err(e);
    }
    Ok(LeaderKey {
        name: name.to_string(),
        key,
        rev,
        lease,
    })
}

/// What a canceled Lock or Campaign leaves: its key deleted, if it is still under `lease`.
pub fn abandon(member: &Member, name: &str, lease: LeaseId) {
    let key = waiter_key(name, lease);
    let mut s = member.state();
    if s.kv.key(&key).is_some_and(|kv| kv.lease == lease) {
        let _ = s.txn(&Txn::always(vec![TxnOp::Delete(Keys::Exact(key))]));
    }
}
