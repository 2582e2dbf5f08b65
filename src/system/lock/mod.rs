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
//!             let lease_id = cx.session.lease_id();
//!             let key = cx.etcd.lock("/my/lock", lease_id).await.map_err(LockError::from)?;
//!             Ok(Holding { key: key.key, lease_id, token: key.revision })
//!         })
//!     }
//!     fn release<'a>(
//!         &'a self,
//!         cx: LockContext<'a>,
//!         holding: &'a Holding,
//!     ) -> BoxFuture<'a, Result<(), LockError>> {
//!         Box::pin(cx.bounded("unlock", cx.etcd.unlock(&holding.key)))
//!     }
//! }
//! ```

pub mod recipes;
mod session;

use crate::clock::NodeClock;
use crate::etcd::{Etcd, EtcdError};
use crate::BoxFuture;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::Duration;

pub use recipes::{Election, KvMutex, LockApi};
pub use session::Session;

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
}

impl LockMethod {
    /// The method's recipe.
    pub fn recipe(self) -> Arc<dyn LockRecipe> {
        match self {
            LockMethod::Election => Arc::new(Election),
            LockMethod::KvMutex => Arc::new(KvMutex),
            LockMethod::LockApi => Arc::new(LockApi),
        }
    }

    /// Every method: the one list of names ([`crate::named`]).
    pub const ALL: [LockMethod; 3] = [
        LockMethod::Election,
        LockMethod::KvMutex,
        LockMethod::LockApi,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            LockMethod::Election => "election",
            LockMethod::KvMutex => "kv-mutex",
            LockMethod::LockApi => "lock-api",
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
    Timeout(&'static str),
    CampaignTimeout,
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
            LockError::Timeout(what) => write!(f, "etcd {what} timed out"),
            LockError::CampaignTimeout => f.write_str("gave up waiting for the lock"),
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
    /// revision). A holder's token must exceed every token its client held before.
    pub token: i64,
}

/// What a recipe works with: the etcd seam, the client's session and clock, the lock's knobs,
/// and the value a holder stores in its key (the client's name).
#[derive(Clone, Copy)]
pub struct LockContext<'a> {
    pub etcd: &'a dyn Etcd,
    pub session: &'a Session,
    pub clock: &'a NodeClock,
    pub cfg: &'a LockConfig,
    pub value: &'a str,
}

impl<'a> LockContext<'a> {
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

    /// Takes the lock under `cx.session`'s lease.
    fn acquire<'a>(&'a self, cx: LockContext<'a>) -> BoxFuture<'a, Result<Holding, LockError>>;

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
    etcd: &EtcdHandle,
    session: &Session,
    clock: &NodeClock,
    cfg: &LockConfig,
    recipe: &dyn LockRecipe,
    value: &str,
) -> Result<Holding, LockError> {
    let cx = LockContext {
        etcd: etcd.as_ref(),
        session,
        clock,
        cfg,
        value,
    };
    clock
        .timeout(cfg.campaign_timeout, recipe.acquire(cx))
        .await
        .map_err(|_| LockError::CampaignTimeout)?
}

/// Releases the lock with `recipe`; then the caller closes the session.
pub(crate) async fn resign(
    etcd: &EtcdHandle,
    session: &Session,
    holding: &Holding,
    clock: &NodeClock,
    cfg: &LockConfig,
    recipe: &dyn LockRecipe,
) -> Result<(), LockError> {
    let cx = LockContext {
        etcd: etcd.as_ref(),
        session,
        clock,
        cfg,
        value: "",
    };
    recipe.release(cx, holding).await
}
