//! A lease-based lock over etcd: session (lease + keepalive), acquire, release.
//!
//! Written once against the [`Etcd`] seam, so the same recipes run against a real etcd, the
//! model and SimServer. Three recipes: etcd's election API, etcd's Mutex algorithm over plain
//! KV (`concurrency.Mutex`, `contrib/lock`'s lock) and the v3 Lock API. Each acquisition yields two
//! numbers: the session's **lease ID** (what `contrib/lock` sends as "version") and a **fencing
//! token** from etcd's revisions: the lock key's create revision (election, KV mutex), which
//! strictly increases from one holder to the next, or the Lock answer's header revision (Lock
//! API), which does too on etcd 3.5; on 3.4 a waiter whose key expired while it waited (issue
//! 11456) and the true next holder can read the same revision, so their tokens may tie.
//!
//! A recipe is a [`LockRecipe`]: bring your own by implementing it and handing it to
//! `world::Builder::recipe`. The three built-ins, in [`recipes`], are implementations like any
//! other; [`LockMethod`] names them in scenarios and on the command line.
//!
//! ```
//! use fencelab::BoxFuture;
//! use fencelab::lock::{Holding, LockContext, LockError, LockRecipe};
//!
//! /// etcd's Lock API, without the built-in's care: a sketch of a recipe of one's own.
//! #[derive(Debug)]
//! struct PlainLock;
//!
//! impl LockRecipe for PlainLock {
//!     fn name(&self) -> &str {
//!         "plain-lock"
//!     }
//!     fn acquire<'a>(&'a self, cx: LockContext<'a>) -> BoxFuture<'a, Result<Holding, LockError>> {
//!         Box::pin(async move {
//!             let lease_id = cx.lease_id()?;
//!             let key = cx.etcd()?.lock("/my/lock", lease_id).await.map_err(LockError::from)?;
//!             Ok(Holding::new(key.key, lease_id, key.revision))
//!         })
//!     }
//!     fn release<'a>(
//!         &'a self,
//!         cx: LockContext<'a>,
//!         holding: &'a Holding,
//!     ) -> BoxFuture<'a, Result<(), LockError>> {
//!         Box::pin(async move { cx.bounded("unlock", cx.etcd()?.unlock(&holding.key)).await })
//!     }
//! }
//! ```

pub mod curator;
pub mod recipes;
pub mod redlock;
mod service;
mod session;
mod validity;

use crate::clock::NodeClock;
use crate::etcd::{Etcd, EtcdError};
use crate::redis::RedisError;
use crate::BoxFuture;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::Duration;

pub use curator::{Curator, StopAt, ZkToken};
pub use recipes::{Election, KvMutex, LockApi};
pub use redlock::{Redlock, RedlockToken};
pub use service::{RedisHandle, Service, ServiceContext, ServiceKind};
pub use session::Session;
pub use validity::{ClientClock, Validity};

/// A shared handle on an etcd, whichever backend.
pub type EtcdHandle = Arc<dyn Etcd>;

/// The election every client campaigns in.
pub const LOCK_NAME: &str = "/fencelab/lock";
/// Shortest lease: the simulated etcd's 1 s tick always expires a 1 s lease, and real etcd
/// raises shorter TTLs to 2 s anyway.
pub const TTL_S_MIN: i64 = 2;
pub const TTL_S_MAX: i64 = 60;

/// Where candidate keys of the KV mutex live.
pub const MUTEX_PREFIX: &str = "/fencelab/mutex/";
/// How often a waiting KV-mutex candidate looks again where etcd has no Watch (SimServer).
pub const MUTEX_POLL: Duration = Duration::from_millis(50);
/// Most polls, or watch answers, of one KV-mutex wait, whatever the campaign timeout.
pub(crate) const MUTEX_POLLS_MAX: u32 = 72_000;

/// How a client takes the lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
#[serde(rename_all = "kebab-case")]
pub enum LockMethod {
    /// etcd's election API: `campaign` waits server-side, `resign` releases.
    #[default]
    Election,
    /// etcd's own Mutex algorithm over plain KV (what `concurrency.Mutex`, `contrib/lock`'s lock,
    /// does): put a key under the lease, hold the lock when it has the lowest create
    /// revision, else watch the key created just before it until it goes (SimServer has no
    /// Watch: there the wait polls that one key).
    KvMutex,
    /// The v3 Lock service (`etcdctl lock`, Jepsen's lock tests): etcd runs the Mutex
    /// server-side; the token is the Lock answer's header revision. Not on SimServer.
    LockApi,
    /// Redlock over the world's Redis nodes (`service = "redlock"`): `SET NX PX` on each, a
    /// quorum and a positive validity hold the lock.
    Redlock,
    /// redis.io's single-instance lock: `SET NX PX` on the first Redis node alone.
    RedisSingle,
    /// Curator's `InterProcessMutex` on ZooKeeper (`service = "zk"`): an ephemeral sequential
    /// node under a container parent; the lowest holds, the others watch their predecessor.
    Curator,
}

impl LockMethod {
    /// The method's recipe as the client library of etcd `version` runs it (only kv-mutex,
    /// a client-side recipe, differs; the Lock API's difference is the server's).
    pub fn recipe_on(self, version: crate::etcd::Version) -> Arc<dyn LockRecipe> {
        match self {
            LockMethod::KvMutex => Arc::new(KvMutex { version }),
            other => other.recipe(),
        }
    }

    /// The method's recipe.
    pub fn recipe(self) -> Arc<dyn LockRecipe> {
        match self {
            LockMethod::Election => Arc::new(Election),
            LockMethod::KvMutex => Arc::new(KvMutex::default()),
            LockMethod::LockApi => Arc::new(LockApi),
            LockMethod::Redlock => Arc::new(Redlock::default()),
            LockMethod::RedisSingle => Arc::new(Redlock {
                single: true,
                ..Redlock::default()
            }),
            LockMethod::Curator => Arc::new(Curator::default()),
        }
    }

    /// The lock service the method's recipe talks to.
    pub fn service(self) -> ServiceKind {
        match self {
            LockMethod::Redlock | LockMethod::RedisSingle => ServiceKind::Redlock,
            LockMethod::Curator => ServiceKind::Zk,
            _ => ServiceKind::Etcd,
        }
    }

    /// Every method: the one list of names ([`crate::named`]).
    pub const ALL: [LockMethod; 6] = [
        LockMethod::Election,
        LockMethod::KvMutex,
        LockMethod::LockApi,
        LockMethod::Redlock,
        LockMethod::RedisSingle,
        LockMethod::Curator,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            LockMethod::Election => "election",
            LockMethod::KvMutex => "kv-mutex",
            LockMethod::LockApi => "lock-api",
            LockMethod::Redlock => "redlock",
            LockMethod::RedisSingle => "redis-single",
            LockMethod::Curator => "curator",
        }
    }
}

impl std::str::FromStr for LockMethod {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        crate::named::parse(&LockMethod::ALL, LockMethod::as_str, "lock method", s)
    }
}

/// Most clients the election method supports on SimServer (`--etcd madsim`). Why: SimServer wakes a
/// waiting `campaign` through a 4-slot event channel and drops the waiter (then panics with
/// "sender should not drop") when more than 4 events on the election's prefix arrive before
/// it runs. With at most 3 clients a waiter sees at most one event per other client at once.
pub const ELECTION_CLIENTS_MAX: u32 = 3;

/// Knobs of the lock client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LockConfig {
    pub ttl_s: i64,
    /// How long to wait for the lock before giving up (and revoking the lease).
    pub campaign_timeout: Duration,
    /// How long to wait for any other etcd answer.
    pub request_timeout: Duration,
    /// The lock-delay, for recipes that have one (`schemes::LockDelay`).
    pub lock_delay_ms: u64,
}

/// Why a lock operation failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LockError {
    Etcd(String),
    Redis(String),
    /// A ZooKeeper error that ended the acquisition or the release (not a connection loss).
    Zk(String),
    Timeout(&'static str),
    CampaignTimeout,
    /// A recipe of one service ran on a world of another (an etcd recipe on Redis nodes).
    WrongService {
        wanted: &'static str,
        got: &'static str,
    },
}

impl LockError {
    /// What an indeterminate error was about (the request may have taken effect).
    pub fn indeterminate(&self) -> Option<&'static str> {
        match self {
            LockError::Timeout(what) => Some(what),
            _ => None,
        }
    }
}

impl std::fmt::Display for LockError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LockError::Etcd(e) => write!(f, "etcd: {e}"),
            LockError::Redis(e) => write!(f, "redis: {e}"),
            LockError::Zk(e) => write!(f, "{e}"),
            LockError::Timeout(what) => write!(f, "{what} timed out"),
            LockError::CampaignTimeout => f.write_str("gave up waiting for the lock"),
            LockError::WrongService { wanted, got } => {
                write!(f, "this recipe needs {wanted}, and the world hosts {got}")
            }
        }
    }
}

/// etcd's own "request timed out" is as indeterminate as a client deadline: both are
/// [`LockError::Timeout`].
impl From<EtcdError> for LockError {
    fn from(e: EtcdError) -> LockError {
        match e {
            EtcdError::Timeout => LockError::Timeout("request"),
            other => LockError::Etcd(other.to_string()),
        }
    }
}

/// A Redis timeout is indeterminate (the command may have run), as etcd's is.
impl From<RedisError> for LockError {
    fn from(e: RedisError) -> LockError {
        match e {
            RedisError::Timeout => LockError::Timeout("redis command"),
            other => LockError::Redis(other.to_string()),
        }
    }
}

/// ZooKeeper's connection loss is as indeterminate as a timeout: the request may have been
/// applied (`KeeperException.ConnectionLossException`).
impl From<crate::zk::ZkError> for LockError {
    fn from(e: crate::zk::ZkError) -> LockError {
        match e {
            crate::zk::ZkError::ConnectionLoss => LockError::Timeout("zookeeper request"),
            other => LockError::Zk(other.to_string()),
        }
    }
}

fn etcd_err(e: EtcdError) -> LockError {
    LockError::from(e)
}

/// [`etcd_err`], naming the request that timed out.
fn etcd_err_named(what: &'static str) -> impl Fn(EtcdError) -> LockError {
    move |e| match etcd_err(e) {
        LockError::Timeout(_) => LockError::Timeout(what),
        other => other,
    }
}

/// The lock, held.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holding {
    /// The key the holder owns in etcd (its election, mutex or Lock key): what release deletes.
    pub key: String,
    pub lease_id: i64,
    /// The fencing token (the built-ins: the lock key's create revision, or the Lock answer's
    /// revision). A holder's token must exceed every token its client held before, unless its
    /// recipe says otherwise ([`LockRecipe::tokens_rise`]).
    pub token: i64,
    /// Until when the recipe promises the lock, for a lock without a session (Redlock's
    /// validity); `None`: as long as the session lives.
    pub validity: Option<Validity>,
}

impl Holding {
    /// A lock held under a session: no validity of its own.
    pub fn new(key: impl Into<String>, lease_id: i64, token: i64) -> Holding {
        Holding {
            key: key.into(),
            lease_id,
            token,
            validity: None,
        }
    }
}

/// What a recipe works with: the lock service (its client, and the session where it has one),
/// the client's clock, the lock's knobs, the value a holder stores in its key (the client's
/// name) and a number unique to this acquisition.
#[derive(Clone, Copy)]
pub struct LockContext<'a> {
    pub service: ServiceContext<'a>,
    pub clock: &'a NodeClock,
    pub cfg: &'a LockConfig,
    pub value: &'a str,
    /// Drawn from the client's own stream for services whose lock value must be unique per
    /// acquisition (Redlock's random value); 0 on etcd, whose lease ID is unique already (a
    /// draw there would shift the client's later draws, and so every etcd history).
    pub nonce: u64,
}

impl<'a> LockContext<'a> {
    /// The etcd client, for recipes over etcd.
    pub fn etcd(&self) -> Result<&'a dyn Etcd, LockError> {
        match self.service {
            ServiceContext::Etcd { etcd, .. } => Ok(etcd),
            other => Err(other.wrong(ServiceKind::Etcd)),
        }
    }

    /// The session (etcd's lease) the lock is held under.
    pub fn session(&self) -> Result<&'a Session, LockError> {
        match self.service {
            ServiceContext::Etcd { session, .. } => Ok(session),
            other => Err(other.wrong(ServiceKind::Etcd)),
        }
    }

    /// The session's lease ID.
    pub fn lease_id(&self) -> Result<i64, LockError> {
        self.session().map(Session::lease_id)
    }

    /// The Redis nodes, for recipes over Redis.
    pub fn redis(&self) -> Result<&'a [RedisHandle], LockError> {
        match self.service {
            ServiceContext::Redis { nodes } => Ok(nodes),
            other => Err(other.wrong(ServiceKind::Redlock)),
        }
    }

    /// The ZooKeeper client, for recipes over ZooKeeper.
    pub fn zk(&self) -> Result<&'a crate::zk::ZkClient, LockError> {
        match self.service {
            ServiceContext::Zk { client } => Ok(client),
            other => Err(other.wrong(ServiceKind::Zk)),
        }
    }

    /// A Redis call bounded by the request timeout; `what` names it if it times out.
    pub async fn bounded_redis<T>(
        self,
        what: &'static str,
        call: BoxFuture<'a, Result<T, RedisError>>,
    ) -> Result<T, LockError> {
        match self.clock.timeout(self.cfg.request_timeout, call).await {
            Err(_) | Ok(Err(RedisError::Timeout)) => Err(LockError::Timeout(what)),
            Ok(Err(e)) => Err(LockError::from(e)),
            Ok(Ok(v)) => Ok(v),
        }
    }

    /// An etcd call bounded by the request timeout; `what` names it in the history if it
    /// times out (a timeout is indeterminate: the call may have taken effect).
    pub async fn bounded<T>(
        self,
        what: &'static str,
        call: BoxFuture<'a, Result<T, EtcdError>>,
    ) -> Result<T, LockError> {
        self.clock
            .timeout(self.cfg.request_timeout, call)
            .await
            .map_err(|_| LockError::Timeout(what))?
            .map_err(etcd_err_named(what))
    }
}

/// How a client takes and releases the lock, over the [`Etcd`] seam.
///
/// `acquire` may wait as long as it likes: the caller bounds it by the campaign timeout and
/// then closes the session, whose revocation removes any key the recipe left waiting. The
/// token it yields must strictly rise from one holder to the next, or the checker's
/// token-order findings mean nothing.
pub trait LockRecipe: Send + Sync + std::fmt::Debug + 'static {
    /// A short name, for reports (`election`, `kv-mutex`, ...).
    fn name(&self) -> &str;

    /// The lock service the recipe is written for: a scenario of another service refuses it.
    fn service(&self) -> ServiceKind {
        ServiceKind::Etcd
    }

    /// Whether the token strictly rises from one holder to the next, as the checker's
    /// token-order findings assume. Redlock's random value does not; an `INCR` counter does
    /// only while its node keeps its data.
    fn tokens_rise(&self) -> bool {
        true
    }

    /// Takes the lock (under `cx`'s session, where the service has one).
    fn acquire<'a>(&'a self, cx: LockContext<'a>) -> BoxFuture<'a, Result<Holding, LockError>>;

    /// How little validity a holder lets its lock come down to before it extends it, ms;
    /// `None`: the recipe does not extend (an etcd lock lives while its session's keepalives
    /// do, which is the session's business, not the holder's).
    fn extend_below_ms(&self) -> Option<u64> {
        None
    }

    /// Extends a held lock: its new validity, or an error when the lock could not be kept
    /// (the holder must stop). Called only when [`LockRecipe::extend_below_ms`] is `Some`.
    fn extend<'a>(
        &'a self,
        cx: LockContext<'a>,
        holding: &'a Holding,
    ) -> BoxFuture<'a, Result<Validity, LockError>> {
        let _ = (cx, holding);
        Box::pin(async { Err(LockError::Redis("this lock is not extended".into())) })
    }

    /// Whether the holder has given the lock up by now, checked before each write: why, or
    /// `None` while it still holds. A recipe whose client tells it of a lost connection
    /// (Curator's `ConnectionStateListener`) answers here; the default never gives up.
    fn gave_up(&self, cx: LockContext<'_>, holding: &Holding) -> Option<String> {
        let _ = (cx, holding);
        None
    }

    /// Releases it (the caller then closes the session). May fail when the lease is gone.
    fn release<'a>(
        &'a self,
        cx: LockContext<'a>,
        holding: &'a Holding,
    ) -> BoxFuture<'a, Result<(), LockError>>;
}

/// Takes the lock with `recipe`. On timeout the caller must revoke the lease: the waiting key
/// stays in etcd otherwise and would take the lock later.
pub(crate) async fn acquire(
    service: ServiceContext<'_>,
    clock: &NodeClock,
    cfg: &LockConfig,
    recipe: &dyn LockRecipe,
    value: &str,
    nonce: u64,
) -> Result<Holding, LockError> {
    let cx = LockContext {
        service,
        clock,
        cfg,
        value,
        nonce,
    };
    clock
        .timeout(cfg.campaign_timeout, recipe.acquire(cx))
        .await
        .map_err(|_| LockError::CampaignTimeout)?
}

/// Releases the lock with `recipe`; then the caller closes the session. `value` and `nonce`
/// are those the lock was acquired with.
pub(crate) async fn resign(
    service: ServiceContext<'_>,
    holding: &Holding,
    clock: &NodeClock,
    cfg: &LockConfig,
    recipe: &dyn LockRecipe,
    (value, nonce): (&str, u64),
) -> Result<(), LockError> {
    let cx = LockContext {
        service,
        clock,
        cfg,
        value,
        nonce,
    };
    recipe.release(cx, holding).await
}
