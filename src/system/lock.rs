//! A lease-based lock over etcd: session (lease + keepalive), acquire, release.
//!
//! Written once against the [`Etcd`] seam, so the same recipes run against a real etcd, the
//! model and SimServer. Three recipes: etcd's election API, etcd's Mutex algorithm over plain
//! KV (`concurrency.Mutex`, the seed's lock) and the v3 Lock API. Each acquisition yields two
//! numbers: the session's **lease ID** (what the seed sends as "version") and a **fencing
//! token** from etcd's revisions: the lock key's create revision (election, KV mutex), which
//! strictly increases from one holder to the next, or the Lock answer's header revision (Lock
//! API), which does too on etcd 3.5; on 3.4 a waiter whose key expired while it waited (issue
//! 11456) and the true next holder can read the same revision, so their tokens may tie.

use crate::clock::NodeClock;
use crate::etcd::{Etcd, EtcdError, Keys, LeaderKey, WatchEvent};
use crate::history::{EventKind, Probe};
use serde::{Deserialize, Serialize};
use std::sync::{Arc, Mutex};
use std::time::Duration;

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
const MUTEX_POLLS_MAX: u32 = 72_000;

/// How a client takes the lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LockMethod {
    /// etcd's election API: `campaign` waits server-side, `resign` releases.
    #[default]
    Election,
    /// etcd's own Mutex algorithm over plain KV (what `concurrency.Mutex`, the seed's lock,
    /// does): put a key under the lease, hold the lock when it has the lowest create
    /// revision, else watch the key created just before it until it goes (SimServer has no
    /// Watch: there the wait polls that one key).
    KvMutex,
    /// The v3 Lock service (`etcdctl lock`, Jepsen's lock tests): etcd runs the Mutex
    /// server-side; the token is the Lock answer's header revision. Not on SimServer.
    LockApi,
}

impl std::str::FromStr for LockMethod {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "election" => Ok(LockMethod::Election),
            "kv-mutex" => Ok(LockMethod::KvMutex),
            "lock-api" => Ok(LockMethod::LockApi),
            _ => Err(format!(
                "unknown lock method '{s}' (expected election, kv-mutex or lock-api)"
            )),
        }
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
    pub method: LockMethod,
    pub ttl_s: i64,
    /// How long to wait for the lock before giving up (and revoking the lease).
    pub campaign_timeout: Duration,
    /// How long to wait for any other etcd answer.
    pub request_timeout: Duration,
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
fn etcd_err(e: EtcdError) -> LockError {
    match e {
        EtcdError::Timeout => LockError::Timeout("request"),
        other => LockError::Etcd(other.to_string()),
    }
}

/// [`etcd_err`], naming the request that timed out.
fn etcd_err_named(what: &'static str) -> impl Fn(EtcdError) -> LockError {
    move |e| match etcd_err(e) {
        LockError::Timeout(_) => LockError::Timeout(what),
        other => other,
    }
}

/// What the client believes about its lease.
#[derive(Debug, Clone, PartialEq, Eq)]
struct LeaseView {
    /// Perceived time (µs) after which the lease may be gone: the send time of the last
    /// answered keepalive plus the TTL (etcd's Go client counts from the answer's arrival,
    /// `client/v3/lease.go`, `recvKeepAlive`; the send time is the safer bound).
    deadline_us: i64,
    lost: Option<String>,
}

/// A session: one lease kept alive every TTL/3 by the node's own clock.
pub struct Session {
    lease_id: i64,
    ttl_s: i64,
    view: Arc<Mutex<LeaseView>>,
    keepalive: tokio::task::JoinHandle<()>,
}

impl Session {
    /// Grants a lease and starts keeping it alive.
    pub async fn start(
        etcd: &EtcdHandle,
        clock: &NodeClock,
        probe: &Probe,
        cfg: &LockConfig,
    ) -> Result<Session, LockError> {
        assert!(
            (TTL_S_MIN..=TTL_S_MAX).contains(&cfg.ttl_s),
            "ttl_s out of range"
        );
        let sent_us = clock.now_us();
        let grant = clock
            .timeout(cfg.request_timeout, etcd.grant(cfg.ttl_s))
            .await
            .map_err(|_| LockError::Timeout("lease grant"))?
            .map_err(etcd_err_named("lease grant"))?;
        probe.record(EventKind::LeaseGranted {
            lease_id: grant.id,
            ttl_s: grant.ttl_s,
        });
        let view = Arc::new(Mutex::new(LeaseView {
            deadline_us: sent_us + grant.ttl_s * 1_000_000,
            lost: None,
        }));
        let keepalive = tokio::spawn(keep_alive(
            etcd.clone(),
            clock.clone(),
            probe.clone(),
            *cfg,
            grant.id,
            grant.ttl_s,
            view.clone(),
        ));
        Ok(Session {
            lease_id: grant.id,
            ttl_s: grant.ttl_s,
            view,
            keepalive,
        })
    }

    pub fn lease_id(&self) -> i64 {
        self.lease_id
    }

    pub fn ttl_s(&self) -> i64 {
        self.ttl_s
    }

    /// Perceived time (µs) until which the client believes its lease is valid.
    pub fn deadline_us(&self) -> i64 {
        self.view.lock().expect("lease view").deadline_us
    }

    /// Why the client knows its lease is gone, if it knows.
    pub fn lost(&self) -> Option<String> {
        self.view.lock().expect("lease view").lost.clone()
    }

    /// Stops the keepalive and revokes the lease (best effort: it expires anyway).
    pub async fn close(self, etcd: &EtcdHandle, clock: &NodeClock, cfg: &LockConfig) {
        self.keepalive.abort();
        let _ = clock
            .timeout(cfg.request_timeout, etcd.revoke(self.lease_id))
            .await;
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        // A session never outlives its owner's interest in it.
        self.keepalive.abort();
    }
}

/// Renews the lease every TTL/3 after the last answer (etcd's Go client schedules
/// `nextKeepAlive = now + TTL/3` too, but sends on a 500 ms tick, so its period is TTL/3 to
/// TTL/3 + 500 ms: `client/v3/lease.go`, `sendKeepAliveLoop`), until etcd says the lease is
/// gone or no renewal was answered before the deadline the client computed. The labels'
/// renewal slack is this loop's; for Go's client it would be about 500 ms smaller.
async fn keep_alive(
    etcd: EtcdHandle,
    clock: NodeClock,
    probe: Probe,
    cfg: LockConfig,
    lease_id: i64,
    ttl_s: i64,
    view: Arc<Mutex<LeaseView>>,
) {
    let period = Duration::from_millis(ttl_s as u64 * 1000 / 3);
    // Bounded: a lease cannot be renewed more than this often in the longest run we allow.
    for _ in 0..1_000_000u32 {
        clock.sleep(period).await;
        let sent_us = clock.now_us();
        let renewed = clock
            .timeout(cfg.request_timeout, etcd.keep_alive(lease_id))
            .await;
        let lost = match renewed {
            Ok(Ok(ttl)) if ttl > 0 => {
                view.lock().expect("lease view").deadline_us = sent_us + ttl * 1_000_000;
                continue;
            }
            Ok(Ok(_)) => "keepalive answered TTL 0: the lease expired".to_string(),
            Ok(Err(EtcdError::LeaseNotFound)) => {
                format!("keepalive refused: {}", EtcdError::LeaseNotFound)
            }
            // No answer, or no connection: try again while the lease may still be alive.
            Ok(Err(_)) | Err(_) => {
                if clock.now_us() < view.lock().expect("lease view").deadline_us {
                    continue;
                }
                "no keepalive answer before the lease deadline".to_string()
            }
        };
        probe.record(EventKind::LeaseLost {
            lease_id,
            why: lost.clone(),
        });
        view.lock().expect("lease view").lost = Some(lost);
        return;
    }
}

/// What releases a held lock.
#[derive(Debug, Clone)]
pub enum Held {
    Election(LeaderKey),
    /// The candidate key of the KV mutex.
    Kv(String),
    /// The key the Lock API returned.
    LockApi(String),
}

/// The lock, held.
#[derive(Debug, Clone)]
pub struct Holding {
    pub held: Held,
    pub lease_id: i64,
    /// The fencing token: the lock key's creation revision (the Lock API's answer revision).
    pub token: i64,
}

type Taking<'a> =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<Holding, LockError>> + Send + 'a>>;

/// Takes the lock under the session's lease. On timeout the caller must revoke the lease:
/// the waiting key stays in etcd otherwise and would take the lock later.
pub async fn acquire(
    etcd: &EtcdHandle,
    session: &Session,
    clock: &NodeClock,
    cfg: &LockConfig,
    value: &str,
) -> Result<Holding, LockError> {
    let taken: Taking<'_> = match cfg.method {
        LockMethod::Election => Box::pin(campaign(etcd.as_ref(), session, value)),
        LockMethod::KvMutex => Box::pin(kv_mutex(etcd.as_ref(), session, clock, cfg, value)),
        LockMethod::LockApi => Box::pin(lock_api(etcd.as_ref(), session)),
    };
    clock
        .timeout(cfg.campaign_timeout, taken)
        .await
        .map_err(|_| LockError::CampaignTimeout)?
}

async fn campaign(etcd: &dyn Etcd, session: &Session, value: &str) -> Result<Holding, LockError> {
    let leader = etcd
        .campaign(LOCK_NAME, value, session.lease_id())
        .await
        .map_err(etcd_err)?;
    Ok(Holding {
        lease_id: session.lease_id(),
        token: leader.rev,
        held: Held::Election(leader),
    })
}

async fn lock_api(etcd: &dyn Etcd, session: &Session) -> Result<Holding, LockError> {
    let key = etcd
        .lock(LOCK_NAME, session.lease_id())
        .await
        .map_err(etcd_err)?;
    Ok(Holding {
        lease_id: session.lease_id(),
        token: key.revision,
        held: Held::LockApi(key.key),
    })
}

/// etcd's Mutex (`concurrency/mutex.go`, `Lock`) over KV: the key is new (its name holds a
/// fresh lease), so a plain put stands for the recipe's create-if-absent transaction.
async fn kv_mutex(
    etcd: &dyn Etcd,
    session: &Session,
    clock: &NodeClock,
    cfg: &LockConfig,
    value: &str,
) -> Result<Holding, LockError> {
    let key = format!("{MUTEX_PREFIX}{:016x}", session.lease_id());
    etcd.put(&key, value, session.lease_id())
        .await
        .map_err(etcd_err)?;
    // Bounded by the caller's campaign timeout; this cap only guards against a missing one.
    for _ in 0..MUTEX_POLLS_MAX {
        let listing = etcd
            .get(Keys::Prefix(MUTEX_PREFIX.to_string()))
            .await
            .map_err(etcd_err)?;
        let ours = listing
            .kvs
            .iter()
            .find(|k| k.key == key)
            .map(|k| k.create_revision)
            .ok_or_else(|| LockError::Etcd("lock key gone: the session expired".into()))?;
        // The candidate created last before ours, as etcd's `waitDeletes` picks it.
        let before = listing
            .kvs
            .iter()
            .filter(|k| k.create_revision < ours)
            .max_by_key(|k| k.create_revision)
            .map(|k| k.key.clone());
        let Some(before) = before else {
            debug_assert!(listing.kvs.iter().all(|k| k.create_revision >= ours));
            return Ok(Holding {
                lease_id: session.lease_id(),
                token: ours,
                held: Held::Kv(key),
            });
        };
        // Wait for that one key to go, then look again: candidates before it may remain.
        // Why one key and not the whole prefix: waiting then costs the same however many
        // clients wait, so it grows linearly with clients, not quadratically.
        wait_delete(etcd, clock, cfg, &before, listing.revision).await?;
    }
    Err(LockError::CampaignTimeout)
}

/// `waitDelete` (`concurrency/key.go`): watch `key` from the revision after `revision` until
/// it is deleted. Where etcd has no Watch (SimServer), poll it.
async fn wait_delete(
    etcd: &dyn Etcd,
    clock: &NodeClock,
    cfg: &LockConfig,
    key: &str,
    revision: i64,
) -> Result<(), LockError> {
    let watched = clock
        .timeout(
            cfg.request_timeout,
            etcd.watch(Keys::Exact(key.to_string()), revision + 1),
        )
        .await
        .map_err(|_| LockError::Timeout("watch"))?;
    match watched {
        Ok(mut stream) => {
            for _ in 0..MUTEX_POLLS_MAX {
                let events = stream.next().await.map_err(etcd_err)?;
                if events.iter().any(|e| matches!(e, WatchEvent::Delete(_))) {
                    return Ok(());
                }
            }
            Err(LockError::CampaignTimeout)
        }
        Err(EtcdError::Unsupported { .. }) => {
            for _ in 0..MUTEX_POLLS_MAX {
                clock.sleep(MUTEX_POLL).await;
                let still = etcd
                    .get(Keys::Exact(key.to_string()))
                    .await
                    .map_err(etcd_err)?;
                if still.kvs.is_empty() {
                    return Ok(());
                }
            }
            Err(LockError::CampaignTimeout)
        }
        Err(e) => Err(etcd_err(e)),
    }
}

/// Releases the lock: resign, delete the mutex key or unlock; then the caller closes the
/// session.
pub async fn resign(
    etcd: &EtcdHandle,
    holding: &Holding,
    clock: &NodeClock,
    cfg: &LockConfig,
) -> Result<(), LockError> {
    let (what, released) = match &holding.held {
        Held::Election(leader) => ("resign", etcd.resign(leader)),
        Held::Kv(key) => (
            "unlock",
            Box::pin(async move { etcd.delete(Keys::Exact(key.clone())).await.map(|_| ()) })
                as crate::etcd::BoxFuture<'_, _>,
        ),
        Held::LockApi(key) => ("unlock", etcd.unlock(key)),
    };
    clock
        .timeout(cfg.request_timeout, released)
        .await
        .map_err(|_| LockError::Timeout(what))?
        .map_err(etcd_err_named(what))
}
