//! One member's state: KV, lessor and watches together, and how a request applies to them.
//!
//! Everything here is synchronous and pure apart from the watch channels: the server
//! ([`super::server`]) decides *when* a request applies (network, stalls, faults), this file
//! decides *what* it does.

use super::kv::{Changes, Kv};
use super::lessor::{IdGen, Lessor, Renewal};
use super::watch::Watches;
use super::wire::{Request, Response};
use crate::etcd::{EtcdError, EtcdResult, Keys, LeaseId, Revision, Txn, TxnOp, TxnResult};
use std::collections::BTreeMap;
use tokio::sync::oneshot;

/// Most keepalives waiting for an expired lease's revocation: a limit on everything.
pub const RENEWALS_WAITING_MAX: usize = 100_000;

/// The state every request reads and changes.
pub struct State {
    pub kv: Kv,
    pub lessor: Lessor,
    pub watches: Watches,
    /// Keepalives of expired leases, waiting for the revocation (`lessor.Renew`: `<-l.revokec`).
    revocations: BTreeMap<LeaseId, Vec<oneshot::Sender<()>>>,
    waiting: usize,
}

impl State {
    pub fn new(min_ttl_s: i64, ids: IdGen) -> Self {
        State {
            kv: Kv::new(),
            lessor: Lessor::new(min_ttl_s, ids),
            watches: Watches::default(),
            revocations: BTreeMap::new(),
            waiting: 0,
        }
    }

    /// A receiver that completes when lease `id` is revoked (by the lessor's scan or a
    /// `LeaseRevoke`); `None` when there is no such lease (or too many are waiting already).
    pub fn after_revocation(&mut self, id: LeaseId) -> Option<oneshot::Receiver<()>> {
        if !self.lessor.exists(id) || self.waiting >= RENEWALS_WAITING_MAX {
            return None;
        }
        let (tx, rx) = oneshot::channel();
        self.revocations.entry(id).or_default().push(tx);
        self.waiting += 1;
        assert!(
            self.waiting <= RENEWALS_WAITING_MAX,
            "more waiting renewals than the limit"
        );
        Some(rx)
    }

    /// Applies a transaction: keys attach to and detach from leases, watchers see the events.
    pub fn txn(&mut self, txn: &Txn) -> EtcdResult<TxnResult> {
        let lessor = &self.lessor;
        let (result, changes) = self.kv.txn(txn, |l| lessor.exists(l))?;
        self.commit(changes);
        Ok(result)
    }

    fn commit(&mut self, changes: Changes) {
        for (key, before, after) in &changes.leases {
            if *before != 0 {
                self.lessor.detach(*before, key);
            }
            if *after != 0 {
                self.lessor.attach(*after, key);
            }
        }
        self.watches.publish(&changes.events);
    }

    /// Revokes a lease and deletes its keys in one revision (`lease/lessor.go`, `Revoke`: one
    /// `txn.DeleteRange` per key inside a single write transaction). False if it was gone.
    pub fn revoke(&mut self, id: LeaseId) -> bool {
        let Some(lease) = self.lessor.revoke(id) else {
            return false;
        };
        for waiter in self.revocations.remove(&id).unwrap_or_default() {
            assert!(
                self.waiting > 0,
                "a revocation woke more renewals than were waiting"
            );
            self.waiting -= 1;
            let _ = waiter.send(());
        }
        let keys: Vec<String> = lease.keys.into_iter().collect();
        let changes = self.kv.delete_keys(&keys);
        self.commit(changes);
        // Negative space: a revoked lease has no keys left, and no renewal waits on it.
        assert!(
            !self.lessor.exists(id),
            "a revoked lease is still in the lessor"
        );
        debug_assert!(
            keys.iter().all(|k| self.kv.key(k).is_none()),
            "a revoked lease left keys"
        );
        assert!(
            !self.revocations.contains_key(&id),
            "a renewal still waits on a revoked lease"
        );
        true
    }

    /// Revokes every lease whose deadline has passed: what the leader's scan finds
    /// (`lessor.runLoop` → `revokeExpiredLeases`, then a `LeaseRevoke` through the log).
    pub fn expire(&mut self, now_us: i64) -> Vec<LeaseId> {
        let expired = self.lessor.expired(now_us);
        for id in &expired {
            self.revoke(*id);
        }
        debug_assert!(
            expired.iter().all(|id| !self.lessor.exists(*id)),
            "an expired lease lives"
        );
        expired
    }

    /// Applies a unary request at the member's monotonic time `now_us`.
    pub fn apply(&mut self, req: &Request, now_us: i64) -> Response {
        let revision_before = self.kv.revision();
        self.lessor.draw_request_id();
        let answer = match req {
            Request::Grant { ttl_s } => self.lessor.grant(*ttl_s, now_us).map(Response::Grant),
            Request::KeepAlive { id } => Ok(Response::Ttl(match self.lessor.renew(*id, now_us) {
                Renewal::Renewed(ttl) => ttl,
                // etcd's Renew of an expired lease waits for its revocation, which the leader's
                // expiry scan starts, then fails; a keepalive for a missing lease answers TTL 0
                // (`v3rpc/lease.go`). The revocation is the scan's (or a LeaseRevoke's), not the
                // renewal's: the server holds this answer until then ([`State::after_revocation`]).
                Renewal::Expired => 0,
                Renewal::NotFound => 0,
            })),
            Request::Revoke { id } => {
                if self.revoke(*id) {
                    Ok(Response::Done)
                } else {
                    Err(EtcdError::LeaseNotFound)
                }
            }
            Request::TimeToLive { id } => Ok(Response::Ttl(self.lessor.time_to_live(*id, now_us))),
            Request::Put { key, value, lease } => {
                let txn = Txn::always(vec![crate::etcd::txn_put(key, value, *lease)]);
                self.txn(&txn).map(|r| Response::Revision(r.revision))
            }
            Request::Get(keys) => Ok(Response::Range(crate::etcd::Range {
                kvs: self.kv.range(keys),
                revision: self.kv.revision(),
            })),
            Request::Delete(keys) => {
                let txn = Txn::always(vec![TxnOp::Delete(keys.clone())]);
                self.txn(&txn).map(|r| match r.results.first() {
                    Some(crate::etcd::TxnOpResult::Delete(n)) => Response::Deleted(*n),
                    _ => Response::Deleted(0),
                })
            }
            Request::Txn(txn) => self.txn(txn).map(Response::Txn),
            Request::Unlock { key } => {
                // v3lock's Unlock is a plain delete of the key (`v3lock/lock.go`).
                let txn = Txn::always(vec![TxnOp::Delete(Keys::Exact(key.clone()))]);
                self.txn(&txn).map(|_| Response::Done)
            }
            Request::Resign(leader) => {
                // `concurrency.Election.Resign`: delete the key if it is still this leader's.
                let txn = Txn {
                    compare: vec![crate::etcd::compare(
                        &leader.key,
                        crate::etcd::CmpOp::Equal,
                        crate::etcd::Target::CreateRevision(leader.rev),
                    )],
                    success: vec![TxnOp::Delete(Keys::Exact(leader.key.clone()))],
                    ..Txn::default()
                };
                self.txn(&txn).map(|_| Response::Done)
            }
            Request::Watch { .. }
            | Request::Lock { .. }
            | Request::Campaign { .. }
            | Request::Cancel => Err(EtcdError::Other {
                why: "not a unary request".into(),
            }),
        };
        let answer = answer.unwrap_or_else(Response::Error);
        self.check_answer(&answer, revision_before);
        answer
    }

    /// Postconditions of [`State::apply`]: the revision never goes back, and a reply's header
    /// revision is at least the one the request found and at most the current one.
    fn check_answer(&self, answer: &Response, revision_before: Revision) {
        let now = self.kv.revision();
        assert!(now >= revision_before, "a request lowered the revision");
        assert!(
            now <= revision_before + 1,
            "a request committed more than one revision"
        );
        let header = match answer {
            Response::Revision(r) => Some(*r),
            Response::Range(r) => Some(r.revision),
            Response::Txn(t) => Some(t.revision),
            _ => None,
        };
        assert!(
            header.is_none_or(|h| h >= revision_before && h <= now),
            "a reply's header revision {header:?} is outside {revision_before}..={now}"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state() -> State {
        State::new(2, IdGen::new(1, 0))
    }

    fn grant(s: &mut State, ttl_s: i64, now_us: i64) -> LeaseId {
        match s.apply(&Request::Grant { ttl_s }, now_us) {
            Response::Grant(g) => g.id,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn revoking_deletes_every_key_of_the_lease_in_one_revision() {
        let mut s = state();
        let l = grant(&mut s, 2, 0);
        for k in ["/a", "/b"] {
            let put = Request::Put {
                key: k.into(),
                value: String::new(),
                lease: l,
            };
            assert!(matches!(s.apply(&put, 0), Response::Revision(_)));
        }
        assert_eq!(s.kv.revision(), 3);
        assert!(s.revoke(l));
        assert_eq!(s.kv.revision(), 4);
        assert!(s.kv.range(&Keys::Prefix("/".into())).is_empty());
        assert!(!s.revoke(l));
    }

    #[test]
    fn a_keepalive_after_the_deadline_answers_zero_once_the_scan_revoked_the_lease() {
        let mut s = state();
        let l = grant(&mut s, 2, 0);
        let put = Request::Put {
            key: "/k".into(),
            value: String::new(),
            lease: l,
        };
        s.apply(&put, 0);
        let ka = Request::KeepAlive { id: l };
        assert!(matches!(s.apply(&ka, 1_999_999), Response::Ttl(2)));
        assert!(matches!(s.apply(&ka, 3_999_998), Response::Ttl(2)));
        // The deadline is now 5_999_998: a renewal at it finds the lease expired, answers 0
        // (once revoked), and leaves the revocation to the scan.
        assert!(matches!(s.apply(&ka, 5_999_998), Response::Ttl(0)));
        assert!(s.kv.key("/k").is_some());
        let mut revoked = s.after_revocation(l).expect("the lease is still there");
        assert!(revoked.try_recv().is_err());
        assert_eq!(s.expire(6_000_000), vec![l]);
        assert_eq!(revoked.try_recv(), Ok(()));
        assert!(s.kv.key("/k").is_none());
        assert!(s.after_revocation(l).is_none());
        assert!(matches!(
            s.apply(&Request::TimeToLive { id: l }, 6_000_000),
            Response::Ttl(-1)
        ));
        // A put under a gone lease is refused.
        assert!(matches!(
            s.apply(&put, 6_000_000),
            Response::Error(EtcdError::LeaseNotFound)
        ));
    }

    #[test]
    fn a_revoke_releases_the_keepalives_waiting_for_it() {
        let mut s = state();
        let l = grant(&mut s, 2, 0);
        let mut a = s.after_revocation(l).expect("a lease");
        let mut b = s.after_revocation(l).expect("a lease");
        assert!(matches!(
            s.apply(&Request::Revoke { id: l }, 1),
            Response::Done
        ));
        assert_eq!(a.try_recv(), Ok(()));
        assert_eq!(b.try_recv(), Ok(()));
        assert_eq!(s.waiting, 0);
        assert!(s.after_revocation(l).is_none());
    }

    #[test]
    fn the_scan_expires_exactly_the_leases_past_their_deadline() {
        let mut s = state();
        let a = grant(&mut s, 2, 0);
        let b = grant(&mut s, 5, 0);
        assert!(s.expire(1_999_999).is_empty());
        assert_eq!(s.expire(2_000_000), vec![a]);
        assert!(s.lessor.exists(b));
    }
}
