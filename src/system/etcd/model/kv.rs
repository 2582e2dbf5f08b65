//! The key-value store with revisions: what etcd's `mvcc` package shows a client.
//!
//! Rules, each from etcd (paths in etcd's source tree, 3.4/3.5):
//! - The store revision starts at 1 and a write transaction that changes something raises it
//!   by exactly one, however many keys it touches; one that changes nothing leaves it
//!   (`mvcc/kvstore_txn.go`, `storeTxnWrite.End`: `if len(tw.changes) != 0 { currentRev++ }`).
//! - A put creates a key with `create_revision = mod_revision = ` the new revision and
//!   `version = 1`; a put on an existing key keeps its create revision and raises `version`
//!   (`mvcc/kvstore_txn.go`, `storeTxnWrite.put`).
//! - A delete removes the key; deleting a missing key changes nothing (`deleteRange`).
//! - A compare on a missing key sees version, create and mod revision 0 and no value, so a
//!   value compare fails (`etcdserver/apply.go`, `compareKV` / `applyCompare`).
//! - A put with a lease that does not exist fails with "requested lease not found"
//!   (`etcdserver/apply.go`, `applierV3backend.Put` / `checkRequestPut`).
//! - Keys are attached to their lease and detached from a previous one
//!   (`lease/lessor.go`, `Attach` / `Detach`, called from `storeTxnWrite.put`).
//!
//! Not modelled: history older than the live keys (no compaction, no `Range` at a past
//! revision): the lock recipes read only the present; watches replay from a bounded log of
//! recent events (see [`super::watch`]).

use crate::etcd::{
    CmpOp, Compare, EtcdError, EtcdResult, KeyValue, Keys, LeaseId, Revision, Target, Txn, TxnOp,
    TxnOpResult, TxnResult, WatchEvent,
};
use std::collections::BTreeMap;

/// Most live keys: a limit on everything (a lock run keeps a handful).
pub const KEYS_MAX: usize = 100_000;
/// Most operations in one transaction (etcd's default `--max-txn-ops`).
pub const TXN_OPS_MAX: usize = 128;

/// The live keys and the store revision.
#[derive(Debug, Clone)]
pub struct Kv {
    revision: Revision,
    keys: BTreeMap<String, KeyValue>,
}

impl Default for Kv {
    fn default() -> Self {
        Kv::new()
    }
}

/// What a write did: the events it makes watchers see, and the lease attachments it changed.
#[derive(Debug, Default)]
pub struct Changes {
    pub events: Vec<WatchEvent>,
    /// (key, lease it was attached to before, lease it is attached to now); 0 is none.
    pub leases: Vec<(String, LeaseId, LeaseId)>,
}

impl Kv {
    pub fn new() -> Self {
        // etcd's store starts at revision 1: the first write makes revision 2.
        Kv {
            revision: 1,
            keys: BTreeMap::new(),
        }
    }

    pub fn revision(&self) -> Revision {
        self.revision
    }

    pub fn key(&self, key: &str) -> Option<&KeyValue> {
        self.keys.get(key)
    }

    /// Keys in key order, as etcd's `Range` returns them by default.
    pub fn range(&self, keys: &Keys) -> Vec<KeyValue> {
        match keys {
            Keys::Exact(k) => self.keys.get(k).cloned().into_iter().collect(),
            Keys::Prefix(p) => self
                .keys
                .range(p.clone()..)
                .take_while(|(k, _)| k.starts_with(p.as_str()))
                .map(|(_, kv)| kv.clone())
                .collect(),
        }
    }

    fn compare(&self, c: &Compare) -> bool {
        let kv = self.keys.get(&c.key);
        let ord = match &c.target {
            Target::Value(v) => match kv {
                // etcd: a value compare against a missing key is false whatever the op.
                None => return false,
                Some(kv) => kv.value.as_str().cmp(v.as_str()),
            },
            Target::Version(v) => kv.map_or(0, |kv| kv.version).cmp(v),
            Target::CreateRevision(r) => kv.map_or(0, |kv| kv.create_revision).cmp(r),
            Target::ModRevision(r) => kv.map_or(0, |kv| kv.mod_revision).cmp(r),
        };
        match c.op {
            CmpOp::Equal => ord.is_eq(),
            CmpOp::NotEqual => ord.is_ne(),
            CmpOp::Greater => ord.is_gt(),
            CmpOp::Less => ord.is_lt(),
        }
    }

    /// Applies a transaction. `lease_exists` answers whether a lease may take keys. Either the
    /// whole transaction applies or nothing does.
    pub fn txn(
        &mut self,
        txn: &Txn,
        lease_exists: impl Fn(LeaseId) -> bool,
    ) -> EtcdResult<(TxnResult, Changes)> {
        refuse_malformed(txn)?;
        let revision_before = self.revision;
        let succeeded = txn.compare.iter().all(|c| self.compare(c));
        let ops = if succeeded {
            &txn.success
        } else {
            &txn.failure
        };
        // Checked before anything changes: etcd refuses the whole request.
        for op in ops {
            if let TxnOp::Put { lease, .. } = op {
                if *lease != 0 && !lease_exists(*lease) {
                    return Err(EtcdError::LeaseNotFound);
                }
            }
        }
        let puts = ops
            .iter()
            .filter(|o| matches!(o, TxnOp::Put { .. }))
            .count();
        if self.keys.len() + puts > KEYS_MAX {
            return Err(EtcdError::Other {
                why: format!("the model holds at most {KEYS_MAX} keys"),
            });
        }
        let rev = self.revision + 1;
        let mut changes = Changes::default();
        let mut results = Vec::with_capacity(ops.len());
        for op in ops {
            results.push(match op {
                TxnOp::Get(keys) => TxnOpResult::Get(self.range(keys)),
                TxnOp::Put { key, value, lease } => {
                    self.put_at(rev, key, value, *lease, &mut changes);
                    TxnOpResult::Put
                }
                TxnOp::Delete(keys) => TxnOpResult::Delete(self.delete_at(rev, keys, &mut changes)),
            });
        }
        if !changes.events.is_empty() {
            self.revision = rev;
        }
        // Positive space: a revision is used by one transaction, and only when it changed keys;
        // revisions rise by exactly one per commit that changes something.
        assert!(changes.events.is_empty() || self.revision == rev);
        assert_eq!(
            self.revision - revision_before,
            i64::from(!changes.events.is_empty()),
            "a commit raises the revision by one exactly when it changes keys"
        );
        Ok((
            TxnResult {
                succeeded,
                revision: self.revision,
                results,
            },
            changes,
        ))
    }

    fn put_at(&mut self, rev: Revision, key: &str, value: &str, lease: LeaseId, ch: &mut Changes) {
        let before = self.keys.get(key);
        let (create_revision, version, old_lease) = before.map_or((rev, 1, 0), |kv| {
            (kv.create_revision, kv.version + 1, kv.lease)
        });
        let kv = KeyValue {
            key: key.to_string(),
            value: value.to_string(),
            create_revision,
            mod_revision: rev,
            version,
            lease,
        };
        if let Some(before) = before {
            // One put per key per revision (a branch writing a key twice is refused).
            assert!(
                before.mod_revision < rev,
                "{key} put twice at revision {rev}"
            );
        }
        // A key's version counts its puts since creation, one per revision at most: never
        // fewer than one, never more than the revisions since it was created.
        assert!(kv.version >= 1 && kv.version - 1 <= kv.mod_revision - kv.create_revision);
        if old_lease != lease {
            ch.leases.push((key.to_string(), old_lease, lease));
        }
        ch.events.push(WatchEvent::Put(kv.clone()));
        self.keys.insert(key.to_string(), kv);
    }

    fn delete_at(&mut self, rev: Revision, keys: &Keys, ch: &mut Changes) -> u64 {
        let gone: Vec<String> = self.range(keys).into_iter().map(|kv| kv.key).collect();
        for key in &gone {
            self.remove_at(rev, key, ch);
        }
        gone.len() as u64
    }

    /// A delete event carries only the key and the delete's revision
    /// (`mvcc/kvstore_txn.go`, `storeTxnWrite.delete`).
    fn remove_at(&mut self, rev: Revision, key: &str, ch: &mut Changes) {
        let Some(kv) = self.keys.remove(key) else {
            return;
        };
        if kv.lease != 0 {
            ch.leases.push((key.to_string(), kv.lease, 0));
        }
        ch.events.push(WatchEvent::Delete(KeyValue {
            key: key.to_string(),
            value: String::new(),
            create_revision: 0,
            mod_revision: rev,
            version: 0,
            lease: 0,
        }));
    }

    /// Deletes `keys` in one revision, with no limit on their number: what a lease's
    /// revocation does (`lease/lessor.go`, `Revoke`: one internal write transaction, which the
    /// gRPC layer's limits never see).
    pub fn delete_keys(&mut self, keys: &[String]) -> Changes {
        let rev = self.revision + 1;
        let mut changes = Changes::default();
        for key in keys {
            self.remove_at(rev, key, &mut changes);
        }
        if !changes.events.is_empty() {
            self.revision = rev;
        }
        assert!(self.revision == rev || changes.events.is_empty());
        changes
    }
}

/// What etcd refuses before it looks at the store: too many operations in a list, or a key
/// written twice in one branch.
fn refuse_malformed(txn: &Txn) -> EtcdResult<()> {
    // etcd checks each list on its own (`v3rpc/key.go`, `checkTxnRequest`).
    if txn
        .compare
        .len()
        .max(txn.success.len())
        .max(txn.failure.len())
        > TXN_OPS_MAX
    {
        return Err(EtcdError::Other {
            why: "etcdserver: too many operations in txn request".into(),
        });
    }
    // A key written twice in one branch is refused (`v3rpc/key.go`, `checkIntervals`:
    // "etcdserver: duplicate key given in txn request"); prefix deletes overlapping a put
    // are not checked here.
    for ops in [&txn.success, &txn.failure] {
        let mut written = std::collections::BTreeSet::new();
        for op in ops.iter() {
            let key = match op {
                TxnOp::Put { key, .. } | TxnOp::Delete(Keys::Exact(key)) => key,
                _ => continue,
            };
            if !written.insert(key.as_str()) {
                return Err(EtcdError::Other {
                    why: "etcdserver: duplicate key given in txn request".into(),
                });
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::etcd::{compare, txn_put};

    fn put(kv: &mut Kv, key: &str, value: &str) -> TxnResult {
        let t = Txn::always(vec![txn_put(key, value, 0)]);
        kv.txn(&t, |_| true).unwrap().0
    }

    #[test]
    fn revisions_create_mod_and_version_follow_etcd() {
        let mut kv = Kv::new();
        assert_eq!(kv.revision(), 1);
        assert_eq!(put(&mut kv, "a", "1").revision, 2);
        assert_eq!(put(&mut kv, "b", "1").revision, 3);
        assert_eq!(put(&mut kv, "a", "2").revision, 4);
        let a = kv.key("a").unwrap();
        assert_eq!((a.create_revision, a.mod_revision, a.version), (2, 4, 2));
        // Deleting a missing key is not a write.
        let t = Txn::always(vec![TxnOp::Delete(Keys::Exact("zz".into()))]);
        let (r, ch) = kv.txn(&t, |_| true).unwrap();
        assert_eq!((r.revision, ch.events.len()), (4, 0));
        // One transaction, two writes: one revision.
        let t = Txn::always(vec![
            txn_put("c", "1", 0),
            TxnOp::Delete(Keys::Prefix("a".into())),
        ]);
        let (r, ch) = kv.txn(&t, |_| true).unwrap();
        assert_eq!((r.revision, ch.events.len()), (5, 2));
        match &ch.events[1] {
            WatchEvent::Delete(kv) => assert_eq!((kv.key.as_str(), kv.mod_revision), ("a", 5)),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn compares_see_zero_for_a_missing_key_and_values_fail() {
        let mut kv = Kv::new();
        put(&mut kv, "k", "v");
        let holds = |kv: &mut Kv, c: Compare| {
            kv.txn(
                &Txn {
                    compare: vec![c],
                    ..Txn::default()
                },
                |_| true,
            )
            .unwrap()
            .0
            .succeeded
        };
        assert!(holds(
            &mut kv,
            compare("none", CmpOp::Equal, Target::CreateRevision(0))
        ));
        assert!(holds(
            &mut kv,
            compare("none", CmpOp::Equal, Target::Version(0))
        ));
        assert!(!holds(
            &mut kv,
            compare("none", CmpOp::NotEqual, Target::Value("x".into()))
        ));
        assert!(holds(
            &mut kv,
            compare("k", CmpOp::Equal, Target::CreateRevision(2))
        ));
        assert!(holds(
            &mut kv,
            compare("k", CmpOp::Greater, Target::ModRevision(1))
        ));
        assert!(holds(
            &mut kv,
            compare("k", CmpOp::Less, Target::Value("w".into()))
        ));
        assert!(!holds(
            &mut kv,
            compare("k", CmpOp::Equal, Target::Version(2))
        ));
    }

    #[test]
    fn a_put_with_a_missing_lease_changes_nothing() {
        let mut kv = Kv::new();
        let t = Txn::always(vec![txn_put("a", "1", 0), txn_put("b", "1", 7)]);
        assert_eq!(
            kv.txn(&t, |l| l != 7).unwrap_err(),
            EtcdError::LeaseNotFound
        );
        assert_eq!(kv.revision(), 1);
        assert!(kv.key("a").is_none());
    }

    #[test]
    fn a_key_written_twice_in_one_branch_is_refused() {
        let mut kv = Kv::new();
        let t = Txn::always(vec![
            txn_put("a", "1", 0),
            TxnOp::Delete(Keys::Exact("a".into())),
        ]);
        assert!(kv.txn(&t, |_| true).is_err());
        assert_eq!(kv.revision(), 1);
        // 129 deletes cannot be a request, but a revocation deletes as many keys as it has.
        for i in 0..200 {
            put(&mut kv, &format!("k{i}"), "");
        }
        let keys: Vec<String> = (0..200).map(|i| format!("k{i}")).collect();
        let changes = kv.delete_keys(&keys);
        assert_eq!(changes.events.len(), 200);
        assert_eq!(kv.revision(), 202);
    }

    #[test]
    fn prefix_ranges_stop_at_the_prefix() {
        let mut kv = Kv::new();
        for k in ["/l/1", "/l/2", "/m/1", "/l"] {
            put(&mut kv, k, "");
        }
        let keys: Vec<String> = kv
            .range(&Keys::Prefix("/l/".into()))
            .into_iter()
            .map(|kv| kv.key)
            .collect();
        assert_eq!(keys, ["/l/1", "/l/2"]);
    }
}
