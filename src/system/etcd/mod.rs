//! The one seam between lock recipes and etcd.
//!
//! Lock recipes ([`crate::lock`]) and the tools' calibration probes talk to etcd
//! only through the [`Etcd`] trait: the subset of etcd's v3 API that a lock client uses (leases,
//! KV with revisions and transactions, watch, the v3 Lock and election services). Three
//! implementations:
//!
//! | backend | build | what it is |
//! |---|---|---|
//! | [`grpc::GrpcEtcd`] | real | the `etcd-client` crate against a real etcd |
//! | [`grpc::GrpcEtcd`] | simulation | `madsim-etcd-client`'s SimServer, kept for comparison (`--etcd madsim`) |
//! | `model` | simulation | fencelab's own model of an etcd member, calibrated against the real one (the default) |
//!
//! Every value crossing the seam is a plain Rust value; errors are classified the way a lock
//! client must treat them ([`EtcdError`]): a timeout is *indeterminate* (etcd's own
//! `ErrTimeout`: the request may have committed).

use crate::BoxFuture;
use serde::{Deserialize, Serialize};

pub mod failover;
pub mod grpc;
#[cfg(madsim)]
pub mod model;

/// A lease's ID, as etcd returns it.
pub type LeaseId = i64;
/// A store revision (etcd's `mvcc` revision: one per committed write transaction).
pub type Revision = i64;

/// What every call of the seam returns.
pub type EtcdResult<T> = Result<T, EtcdError>;

/// Why an etcd call failed, classified by what the caller may conclude.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "error", rename_all = "kebab-case")]
pub enum EtcdError {
    /// The lease does not exist: never granted, revoked, or expired (etcd's
    /// `lease.ErrLeaseNotFound`, "etcdserver: requested lease not found").
    LeaseNotFound,
    /// "etcdserver: request timed out" (etcd's `ErrTimeout`), or no answer in time: the
    /// request **may have committed**.
    Timeout,
    /// The Lock API found the waiter's own key gone after waiting (etcd 3.5's
    /// `concurrency.ErrSessionExpired`, "mutex: session is expired").
    SessionExpired,
    /// No connection to etcd: the request was not sent.
    Unavailable { why: String },
    /// This backend has no such API (madsim's SimServer has no Lock or Watch service).
    Unsupported { what: String },
    /// Anything else etcd answered (a malformed request, a TTL too large, ...).
    Other { why: String },
}

impl std::fmt::Display for EtcdError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            EtcdError::LeaseNotFound => f.write_str("etcdserver: requested lease not found"),
            EtcdError::Timeout => f.write_str("etcdserver: request timed out"),
            EtcdError::SessionExpired => f.write_str("mutex: session is expired"),
            EtcdError::Unavailable { why } => write!(f, "etcd unavailable: {why}"),
            EtcdError::Unsupported { what } => write!(f, "this etcd has no {what}"),
            EtcdError::Other { why } => write!(f, "etcd: {why}"),
        }
    }
}

impl std::error::Error for EtcdError {}

/// A key and its revisions, as etcd's `mvccpb.KeyValue` carries them.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct KeyValue {
    pub key: String,
    pub value: String,
    /// Revision of the transaction that created the key (the lock recipes' fencing token).
    pub create_revision: Revision,
    /// Revision of the last transaction that modified it.
    pub mod_revision: Revision,
    /// Number of modifications since creation (1 after the first put).
    pub version: i64,
    /// The lease the key is attached to, 0 for none.
    pub lease: LeaseId,
}

/// A granted lease.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Grant {
    pub id: LeaseId,
    /// The TTL etcd granted, which may be raised to its minimum.
    pub ttl_s: i64,
}

/// What a range read returns.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Range {
    pub kvs: Vec<KeyValue>,
    /// The store revision when the read was served (the response header's revision).
    pub revision: Revision,
}

/// Which keys a read, delete or watch covers.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Keys {
    /// One key.
    Exact(String),
    /// Every key starting with this prefix (etcd's `WithPrefix`).
    Prefix(String),
}

impl Keys {
    pub fn matches(&self, key: &str) -> bool {
        match self {
            Keys::Exact(k) => k == key,
            Keys::Prefix(p) => key.starts_with(p.as_str()),
        }
    }
}

/// What a compare reads of a key (etcd's `Compare_CompareTarget`). A missing key has version,
/// create and mod revision 0 and no value: a value compare on it is false.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Target {
    Value(String),
    Version(i64),
    CreateRevision(Revision),
    ModRevision(Revision),
}

/// How a compare compares (etcd's `Compare_CompareResult`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CmpOp {
    Equal,
    NotEqual,
    Greater,
    Less,
}

/// One condition of a transaction.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Compare {
    pub key: String,
    pub op: CmpOp,
    pub target: Target,
}

/// One operation inside a transaction.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum TxnOp {
    Put {
        key: String,
        value: String,
        lease: LeaseId,
    },
    Get(Keys),
    Delete(Keys),
}

/// A transaction: if every compare holds, `success`, else `failure` (etcd's `TxnRequest`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct Txn {
    pub compare: Vec<Compare>,
    pub success: Vec<TxnOp>,
    pub failure: Vec<TxnOp>,
}

impl Txn {
    /// A transaction with no compares: `ops` always apply, in one revision (how etcd applies
    /// a plain Put or DeleteRange).
    pub fn always(ops: Vec<TxnOp>) -> Txn {
        Txn {
            success: ops,
            ..Txn::default()
        }
    }

    /// Puts `value` at `key` (no lease) only while `guard` exists (its create revision is
    /// above 0): a write guarded by a lock key, etcd's advice for writes under a lock.
    pub fn put_while_exists(guard: &str, key: &str, value: &str) -> Txn {
        Txn {
            compare: vec![Compare {
                key: guard.to_string(),
                op: CmpOp::Greater,
                target: Target::CreateRevision(0),
            }],
            success: vec![txn_put(key, value, 0)],
            failure: vec![],
        }
    }
}

/// What one operation of a transaction returned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TxnOpResult {
    Put,
    Get(Vec<KeyValue>),
    /// How many keys were deleted.
    Delete(u64),
}

/// What a transaction returned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnResult {
    pub succeeded: bool,
    /// The store revision after the transaction (the header's revision).
    pub revision: Revision,
    pub results: Vec<TxnOpResult>,
}

/// A change a watch reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WatchEvent {
    Put(KeyValue),
    /// The key's last state, with `mod_revision` the revision of the delete.
    Delete(KeyValue),
}

/// A running watch: events in revision order, as etcd's watch stream delivers them.
pub trait WatchStream: Send {
    /// The next batch of events; an error ends the watch (canceled, connection lost).
    fn next(&mut self) -> BoxFuture<'_, EtcdResult<Vec<WatchEvent>>>;
}

/// The key the v3 Lock service returns (etcd's `v3lockpb.LockResponse`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockKey {
    /// `name/<lease hex>`: pass it to [`Etcd::unlock`].
    pub key: String,
    /// The response header's revision.
    pub revision: Revision,
}

/// The leader key the v3 election service returns (etcd's `v3electionpb.LeaderKey`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaderKey {
    pub name: String,
    pub key: String,
    /// The leader key's create revision.
    pub rev: Revision,
    pub lease: LeaseId,
}

/// The subset of etcd's v3 API a lock client uses. Every call may fail with
/// [`EtcdError::Timeout`] (indeterminate) or [`EtcdError::Unavailable`]; callers bound each call
/// with their own deadline, as gRPC clients do with a context.
pub trait Etcd: Send + Sync {
    /// `LeaseGrant`: a new lease of at least `ttl_s` seconds.
    fn grant(&self, ttl_s: i64) -> BoxFuture<'_, EtcdResult<Grant>>;
    /// One `LeaseKeepAlive` round: the TTL the lease was renewed to, or 0 when the lease is
    /// gone (etcd answers a keepalive for a missing lease with TTL 0, not an error:
    /// `etcdserver/api/v3rpc/lease.go`, `leaseKeepAlive`).
    fn keep_alive(&self, id: LeaseId) -> BoxFuture<'_, EtcdResult<i64>>;
    /// `LeaseRevoke`: ends the lease and deletes its keys.
    fn revoke(&self, id: LeaseId) -> BoxFuture<'_, EtcdResult<()>>;
    /// `LeaseTimeToLive`: remaining whole seconds, -1 when the lease is gone (etcd answers
    /// TTL -1 for a missing lease: `v3rpc/lease.go`, `LeaseTimeToLive`).
    fn time_to_live(&self, id: LeaseId) -> BoxFuture<'_, EtcdResult<i64>>;
    /// `Put`, attached to `lease` unless it is 0; returns the new revision.
    fn put(&self, key: &str, value: &str, lease: LeaseId) -> BoxFuture<'_, EtcdResult<Revision>>;
    /// `Range` (linearizable).
    fn get(&self, keys: Keys) -> BoxFuture<'_, EtcdResult<Range>>;
    /// `DeleteRange`: how many keys were deleted.
    fn delete(&self, keys: Keys) -> BoxFuture<'_, EtcdResult<u64>>;
    /// `Txn`.
    fn txn(&self, txn: Txn) -> BoxFuture<'_, EtcdResult<TxnResult>>;
    /// `Watch` from `start_revision` (0: from now).
    fn watch(
        &self,
        keys: Keys,
        start_revision: Revision,
    ) -> BoxFuture<'_, EtcdResult<Box<dyn WatchStream>>>;
    /// The v3 Lock service's `Lock`: waits server-side until the lock is held under `lease`.
    fn lock(&self, name: &str, lease: LeaseId) -> BoxFuture<'_, EtcdResult<LockKey>>;
    /// The v3 Lock service's `Unlock`.
    fn unlock(&self, key: &str) -> BoxFuture<'_, EtcdResult<()>>;
    /// The v3 election service's `Campaign`: waits server-side until `lease` leads `name`.
    fn campaign(
        &self,
        name: &str,
        value: &str,
        lease: LeaseId,
    ) -> BoxFuture<'_, EtcdResult<LeaderKey>>;
    /// The v3 election service's `Resign`.
    fn resign(&self, leader: &LeaderKey) -> BoxFuture<'_, EtcdResult<()>>;
}

/// Which etcd a simulated world runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
#[serde(rename_all = "kebab-case")]
pub enum Backend {
    /// fencelab's calibrated model of an etcd member.
    #[default]
    Model,
    /// `madsim-etcd-client`'s SimServer (coarse: 1 s lease tick, frozen while paused).
    Madsim,
}

impl std::str::FromStr for Backend {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        crate::named::parse(&Backend::ALL, Backend::as_str, "etcd", s)
    }
}

impl Backend {
    /// Every backend: the one list of names ([`crate::named`]).
    pub const ALL: [Backend; 2] = [Backend::Model, Backend::Madsim];

    pub fn as_str(self) -> &'static str {
        match self {
            Backend::Model => "model",
            Backend::Madsim => "madsim",
        }
    }
}

/// Which etcd release the model reproduces where releases differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
pub enum Version {
    /// etcd 3.4: the Lock API tells a waiter it holds the lock without re-checking its own
    /// key after waiting (etcd issue 11456).
    #[serde(rename = "3.4")]
    #[cfg_attr(feature = "cli", value(name = "3.4"))]
    V3_4,
    /// etcd 3.5: the waiter re-reads its key and answers "mutex: session is expired" when it
    /// is gone (etcd PR 11408, `client/v3/concurrency/mutex.go`; not backported to 3.4).
    #[default]
    #[serde(rename = "3.5")]
    #[cfg_attr(feature = "cli", value(name = "3.5"))]
    V3_5,
}

impl std::str::FromStr for Version {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        crate::named::parse(&Version::ALL, Version::as_str, "etcd version", s)
    }
}

impl Version {
    /// Every release: the one list of names ([`crate::named`]).
    pub const ALL: [Version; 2] = [Version::V3_4, Version::V3_5];

    pub fn as_str(self) -> &'static str {
        match self {
            Version::V3_4 => "3.4",
            Version::V3_5 => "3.5",
        }
    }
}

/// Connects to the etcd at `endpoints` through the backend's client (in the real build always
/// a real etcd, whatever `backend` says). Several endpoints are several members of one
/// cluster: the client is a [`failover::Failover`] over one client per member, pinned to the
/// first endpoint.
pub async fn connect(
    backend: Backend,
    endpoints: &[String],
) -> EtcdResult<std::sync::Arc<dyn Etcd>> {
    if endpoints.len() > failover::MEMBERS_MAX {
        return Err(EtcdError::Other {
            why: format!(
                "{} endpoints, at most {}",
                endpoints.len(),
                failover::MEMBERS_MAX
            ),
        });
    }
    if endpoints.len() > 1 {
        let mut members = Vec::with_capacity(endpoints.len());
        for e in endpoints {
            members.push(connect_one(backend, e).await?);
        }
        return Ok(std::sync::Arc::new(failover::Failover::new(members)));
    }
    let Some(endpoint) = endpoints.first() else {
        return Err(EtcdError::Unavailable {
            why: "no etcd endpoint".into(),
        });
    };
    connect_one(backend, endpoint).await
}

/// A client of one member.
async fn connect_one(backend: Backend, endpoint: &str) -> EtcdResult<std::sync::Arc<dyn Etcd>> {
    #[cfg(madsim)]
    if backend == Backend::Model {
        let addr = endpoint.parse().map_err(|_| EtcdError::Unavailable {
            why: format!("not a model endpoint: {endpoint:?}"),
        })?;
        return Ok(std::sync::Arc::new(model::ModelEtcd::new(addr)));
    }
    let _ = backend;
    Ok(std::sync::Arc::new(
        grpc::GrpcEtcd::connect(&[endpoint.to_string()]).await?,
    ))
}

/// Shorthand for a put inside a transaction.
pub fn txn_put(key: &str, value: &str, lease: LeaseId) -> TxnOp {
    TxnOp::Put {
        key: key.to_string(),
        value: value.to_string(),
        lease,
    }
}

/// Shorthand for a compare.
pub fn compare(key: &str, op: CmpOp, target: Target) -> Compare {
    Compare {
        key: key.to_string(),
        op,
        target,
    }
}
