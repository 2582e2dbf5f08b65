//! [`Etcd`] over the `etcd-client` API: a real etcd in the real build, `madsim-etcd-client`'s
//! SimServer in the simulation (the `madsim` backend, kept to show its artefacts beside the
//! model's). Both crates share one API, so this adapter is written once; where SimServer lacks a
//! service (Lock, Watch, compares other than on values) the simulated build answers
//! [`EtcdError::Unsupported`].

use super::*;
use etcd_client::{Client, Compare as ECompare, CompareOp, DeleteOptions, GetOptions, PutOptions};
use std::collections::BTreeMap;
use std::sync::Mutex;

/// Most leases whose granted TTL one client remembers (a limit on everything).
const GRANTED_MAX: usize = 4096;

/// A client of a real etcd (real build) or of SimServer (simulation).
pub struct GrpcEtcd {
    client: Client,
    /// TTL each lease was granted with: a keepalive round through this API says only that the
    /// lease was renewed, and etcd renews a lease to its granted TTL (`lessor.Renew`).
    granted: Mutex<BTreeMap<LeaseId, i64>>,
}

impl GrpcEtcd {
    /// Connects to the given endpoints.
    pub async fn connect(endpoints: &[String]) -> EtcdResult<GrpcEtcd> {
        let client = Client::connect(endpoints, None)
            .await
            .map_err(|e| EtcdError::Unavailable { why: e.to_string() })?;
        Ok(GrpcEtcd {
            client,
            granted: Mutex::new(BTreeMap::new()),
        })
    }

    /// The underlying client (for what the seam does not cover).
    pub fn client(&self) -> &Client {
        &self.client
    }
}

/// Classifies an `etcd-client` error by what a lock client may conclude from it.
///
/// Only a failure to connect means "not sent"; a transport that breaks after the request went
/// out (gRPC `Unavailable`) leaves it indeterminate, like a timeout.
fn classify(e: etcd_client::Error) -> EtcdError {
    let text = e.to_string();
    if text.contains("lease not found") {
        EtcdError::LeaseNotFound
    } else if text.contains("session is expired") {
        // `concurrency.ErrSessionExpired`: "mutex: session is expired".
        EtcdError::SessionExpired
    } else if matches!(e, etcd_client::Error::TransportError(_))
        || text.contains("error trying to connect")
        || text.contains("connection refused")
    {
        EtcdError::Unavailable { why: text }
    } else if text.contains("timed out")
        || text.contains("Deadline")
        || text.contains("Unavailable")
    {
        EtcdError::Timeout
    } else {
        EtcdError::Other { why: text }
    }
}

fn kv_of(kv: &etcd_client::KeyValue) -> KeyValue {
    KeyValue {
        key: String::from_utf8_lossy(kv.key()).into_owned(),
        value: String::from_utf8_lossy(kv.value()).into_owned(),
        create_revision: kv.create_revision(),
        mod_revision: kv.mod_revision(),
        // SimServer does not keep a key's version.
        #[cfg(not(madsim))]
        version: kv.version(),
        #[cfg(madsim)]
        version: 0,
        lease: kv.lease(),
    }
}

fn get_options(keys: &Keys) -> (String, Option<GetOptions>) {
    match keys {
        Keys::Exact(k) => (k.clone(), None),
        Keys::Prefix(p) => (p.clone(), Some(GetOptions::new().with_prefix())),
    }
}

fn delete_options(keys: &Keys) -> EtcdResult<(String, Option<DeleteOptions>)> {
    match keys {
        Keys::Exact(k) => Ok((k.clone(), None)),
        #[cfg(not(madsim))]
        Keys::Prefix(p) => Ok((p.clone(), Some(DeleteOptions::new().with_prefix()))),
        #[cfg(madsim)]
        Keys::Prefix(_) => Err(EtcdError::Unsupported {
            what: "prefix delete (madsim SimServer)".into(),
        }),
    }
}

fn compare_of(c: &Compare) -> EtcdResult<ECompare> {
    let op = match c.op {
        CmpOp::Equal => CompareOp::Equal,
        CmpOp::NotEqual => CompareOp::NotEqual,
        CmpOp::Greater => CompareOp::Greater,
        CmpOp::Less => CompareOp::Less,
    };
    let key = c.key.as_str();
    match &c.target {
        Target::Value(v) => Ok(ECompare::value(key, op, v.as_str())),
        #[cfg(not(madsim))]
        Target::Version(v) => Ok(ECompare::version(key, op, *v)),
        #[cfg(not(madsim))]
        Target::CreateRevision(r) => Ok(ECompare::create_revision(key, op, *r)),
        #[cfg(not(madsim))]
        Target::ModRevision(r) => Ok(ECompare::mod_revision(key, op, *r)),
        #[cfg(madsim)]
        _ => Err(EtcdError::Unsupported {
            what: "compare other than on values (madsim SimServer)".into(),
        }),
    }
}

fn op_of(op: &TxnOp) -> EtcdResult<etcd_client::TxnOp> {
    Ok(match op {
        TxnOp::Put { key, value, lease } => {
            let opts = (*lease != 0).then(|| PutOptions::new().with_lease(*lease));
            etcd_client::TxnOp::put(key.as_str(), value.as_str(), opts)
        }
        TxnOp::Get(keys) => {
            let (k, o) = get_options(keys);
            etcd_client::TxnOp::get(k, o)
        }
        TxnOp::Delete(keys) => {
            let (k, o) = delete_options(keys)?;
            etcd_client::TxnOp::delete(k, o)
        }
    })
}

fn header_revision(h: Option<&etcd_client::ResponseHeader>) -> Revision {
    h.map_or(0, |h| h.revision())
}

impl Etcd for GrpcEtcd {
    fn grant(&self, ttl_s: i64) -> BoxFuture<'_, EtcdResult<Grant>> {
        Box::pin(async move {
            let g = self
                .client
                .lease_client()
                .grant(ttl_s, None)
                .await
                .map_err(classify)?;
            let mut granted = self.granted.lock().expect("granted");
            if granted.len() >= GRANTED_MAX {
                granted.pop_first();
            }
            granted.insert(g.id(), g.ttl());
            Ok(Grant {
                id: g.id(),
                ttl_s: g.ttl(),
            })
        })
    }

    fn keep_alive(&self, id: LeaseId) -> BoxFuture<'_, EtcdResult<i64>> {
        Box::pin(async move {
            // Opening the stream sends the first keepalive and reads its answer.
            match self.client.lease_client().keep_alive(id).await {
                Ok(_) => Ok(self
                    .granted
                    .lock()
                    .expect("granted")
                    .get(&id)
                    .copied()
                    .unwrap_or(1)),
                Err(e) => match classify(e) {
                    EtcdError::LeaseNotFound => Ok(0),
                    EtcdError::Other { why } if why.contains("not found") => Ok(0),
                    other => Err(other),
                },
            }
        })
    }

    fn revoke(&self, id: LeaseId) -> BoxFuture<'_, EtcdResult<()>> {
        Box::pin(async move {
            self.client
                .lease_client()
                .revoke(id)
                .await
                .map_err(classify)?;
            Ok(())
        })
    }

    fn time_to_live(&self, id: LeaseId) -> BoxFuture<'_, EtcdResult<i64>> {
        Box::pin(async move {
            match self.client.lease_client().time_to_live(id, None).await {
                Ok(r) => Ok(r.ttl()),
                Err(e) => match classify(e) {
                    EtcdError::LeaseNotFound => Ok(-1),
                    other => Err(other),
                },
            }
        })
    }

    fn put(&self, key: &str, value: &str, lease: LeaseId) -> BoxFuture<'_, EtcdResult<Revision>> {
        let (key, value) = (key.to_string(), value.to_string());
        Box::pin(async move {
            let opts = (lease != 0).then(|| PutOptions::new().with_lease(lease));
            let r = self
                .client
                .kv_client()
                .put(key, value, opts)
                .await
                .map_err(classify)?;
            Ok(header_revision(r.header()))
        })
    }

    fn get(&self, keys: Keys) -> BoxFuture<'_, EtcdResult<Range>> {
        Box::pin(async move {
            let (k, o) = get_options(&keys);
            let r = self.client.kv_client().get(k, o).await.map_err(classify)?;
            Ok(Range {
                kvs: r.kvs().iter().map(kv_of).collect(),
                revision: header_revision(r.header()),
            })
        })
    }

    fn delete(&self, keys: Keys) -> BoxFuture<'_, EtcdResult<u64>> {
        Box::pin(async move {
            let (k, o) = delete_options(&keys)?;
            let r = self
                .client
                .kv_client()
                .delete(k, o)
                .await
                .map_err(classify)?;
            Ok(r.deleted().max(0) as u64)
        })
    }

    fn txn(&self, txn: Txn) -> BoxFuture<'_, EtcdResult<TxnResult>> {
        Box::pin(async move {
            let compares = txn
                .compare
                .iter()
                .map(compare_of)
                .collect::<EtcdResult<Vec<_>>>()?;
            let t = etcd_client::Txn::new()
                .when(compares)
                .and_then(
                    txn.success
                        .iter()
                        .map(op_of)
                        .collect::<EtcdResult<Vec<_>>>()?,
                )
                .or_else(
                    txn.failure
                        .iter()
                        .map(op_of)
                        .collect::<EtcdResult<Vec<_>>>()?,
                );
            let r = self.client.kv_client().txn(t).await.map_err(classify)?;
            let results = r
                .op_responses()
                .into_iter()
                .map(|o| match o {
                    etcd_client::TxnOpResponse::Put(_) => TxnOpResult::Put,
                    etcd_client::TxnOpResponse::Get(g) => {
                        TxnOpResult::Get(g.kvs().iter().map(kv_of).collect())
                    }
                    etcd_client::TxnOpResponse::Delete(d) => {
                        TxnOpResult::Delete(d.deleted().max(0) as u64)
                    }
                    etcd_client::TxnOpResponse::Txn(_) => TxnOpResult::Put,
                })
                .collect();
            Ok(TxnResult {
                succeeded: r.succeeded(),
                revision: header_revision(r.header()),
                results,
            })
        })
    }

    #[cfg(madsim)]
    fn watch(&self, _: Keys, _: Revision) -> BoxFuture<'_, EtcdResult<Box<dyn WatchStream>>> {
        Box::pin(async {
            Err(EtcdError::Unsupported {
                what: "Watch API (madsim SimServer)".into(),
            })
        })
    }

    #[cfg(not(madsim))]
    fn watch(
        &self,
        keys: Keys,
        start_revision: Revision,
    ) -> BoxFuture<'_, EtcdResult<Box<dyn WatchStream>>> {
        Box::pin(async move {
            let mut opts = etcd_client::WatchOptions::new().with_start_revision(start_revision);
            let key = match &keys {
                Keys::Exact(k) => k.clone(),
                Keys::Prefix(p) => {
                    opts = opts.with_prefix();
                    p.clone()
                }
            };
            let stream = self
                .client
                .watch_client()
                .watch(key, Some(opts))
                .await
                .map_err(classify)?;
            Ok(Box::new(RealWatch { stream }) as Box<dyn WatchStream>)
        })
    }

    #[cfg(madsim)]
    fn lock(&self, _: &str, _: LeaseId) -> BoxFuture<'_, EtcdResult<LockKey>> {
        Box::pin(async {
            Err(EtcdError::Unsupported {
                what: "Lock API (madsim SimServer)".into(),
            })
        })
    }

    #[cfg(not(madsim))]
    fn lock(&self, name: &str, lease: LeaseId) -> BoxFuture<'_, EtcdResult<LockKey>> {
        let name = name.to_string();
        Box::pin(async move {
            let r = self
                .client
                .lock_client()
                .lock(
                    name,
                    Some(etcd_client::LockOptions::new().with_lease(lease)),
                )
                .await
                .map_err(classify)?;
            Ok(LockKey {
                key: String::from_utf8_lossy(r.key()).into_owned(),
                revision: header_revision(r.header()),
            })
        })
    }

    #[cfg(madsim)]
    fn unlock(&self, _: &str) -> BoxFuture<'_, EtcdResult<()>> {
        Box::pin(async {
            Err(EtcdError::Unsupported {
                what: "Lock API (madsim SimServer)".into(),
            })
        })
    }

    #[cfg(not(madsim))]
    fn unlock(&self, key: &str) -> BoxFuture<'_, EtcdResult<()>> {
        let key = key.to_string();
        Box::pin(async move {
            self.client
                .lock_client()
                .unlock(key)
                .await
                .map_err(classify)?;
            Ok(())
        })
    }

    fn campaign(
        &self,
        name: &str,
        value: &str,
        lease: LeaseId,
    ) -> BoxFuture<'_, EtcdResult<LeaderKey>> {
        let (name, value) = (name.to_string(), value.to_string());
        Box::pin(async move {
            let r = self
                .client
                .election_client()
                .campaign(name, value, lease)
                .await
                .map_err(classify)?;
            let l = r.leader().ok_or_else(|| EtcdError::Other {
                why: "campaign answered without a leader key".into(),
            })?;
            Ok(LeaderKey {
                name: String::from_utf8_lossy(l.name()).into_owned(),
                key: String::from_utf8_lossy(l.key()).into_owned(),
                rev: l.rev(),
                lease: l.lease(),
            })
        })
    }

    fn resign(&self, leader: &LeaderKey) -> BoxFuture<'_, EtcdResult<()>> {
        let l = etcd_client::LeaderKey::new()
            .with_name(leader.name.as_str())
            .with_key(leader.key.as_str())
            .with_rev(leader.rev)
            .with_lease(leader.lease);
        Box::pin(async move {
            let opts = etcd_client::ResignOptions::new().with_leader(l);
            self.client
                .election_client()
                .resign(Some(opts))
                .await
                .map_err(classify)?;
            Ok(())
        })
    }
}

#[cfg(not(madsim))]
struct RealWatch {
    stream: etcd_client::WatchStream,
}

#[cfg(not(madsim))]
impl WatchStream for RealWatch {
    fn next(&mut self) -> BoxFuture<'_, EtcdResult<Vec<WatchEvent>>> {
        Box::pin(async move {
            // Bounded: a watch answers created, progress and event messages; skip the empty
            // ones, but not forever.
            for _ in 0..1_000_000u32 {
                let Some(r) = self.stream.message().await.map_err(classify)? else {
                    return Err(EtcdError::Unavailable {
                        why: "watch stream ended".into(),
                    });
                };
                if r.canceled() {
                    return Err(EtcdError::Other {
                        why: format!("watch canceled: {}", r.cancel_reason()),
                    });
                }
                let events: Vec<WatchEvent> = r
                    .events()
                    .iter()
                    .filter_map(|e| {
                        let kv = kv_of(e.kv()?);
                        Some(match e.event_type() {
                            etcd_client::EventType::Put => WatchEvent::Put(kv),
                            etcd_client::EventType::Delete => WatchEvent::Delete(kv),
                        })
                    })
                    .collect();
                if !events.is_empty() {
                    return Ok(events);
                }
            }
            Err(EtcdError::Other {
                why: "watch sent a million empty messages".into(),
            })
        })
    }
}
