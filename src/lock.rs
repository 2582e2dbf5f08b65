//! A lease-based lock over etcd: session (lease + keepalive), acquire, release.
//!
//! Only the etcd API subset that both the simulated (`madsim-etcd-client`) and the real
//! `etcd-client` offer: leases, the election API (the simulated etcd has no Lock API), no
//! Watch. Each acquisition yields two numbers: the session's **lease ID** (what the seed sends
//! as "version") and a **fencing token**, the revision at which the lock key was created,
//! which strictly increases from one holder to the next.

use crate::clock::NodeClock;
use crate::history::{EventKind, Probe};
use etcd_client::{Client, GetOptions, LeaderKey, PutOptions, ResignOptions};
use serde::{Deserialize, Serialize};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The election every client campaigns in.
pub const LOCK_NAME: &str = "/fencelab/lock";
/// Shortest lease: the simulated etcd's 1 s tick always expires a 1 s lease, and real etcd
/// raises shorter TTLs to 2 s anyway.
pub const TTL_S_MIN: i64 = 2;
pub const TTL_S_MAX: i64 = 60;

/// Where candidate keys of the KV mutex live.
pub const MUTEX_PREFIX: &str = "/fencelab/mutex/";
/// How often a waiting KV-mutex candidate looks again (the simulated etcd has no Watch).
pub const MUTEX_POLL: Duration = Duration::from_millis(50);
/// Most polls of one KV-mutex wait, whatever the campaign timeout (an hour of polling).
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
    /// revision, else wait for the key created just before it to go; the wait polls that
    /// one key instead of watching it. Needed beyond 3 clients, where the
    /// simulated etcd's election drops waiters (see `ELECTION_CLIENTS_MAX`).
    KvMutex,
}

impl std::str::FromStr for LockMethod {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "election" => Ok(LockMethod::Election),
            "kv-mutex" => Ok(LockMethod::KvMutex),
            _ => Err(format!(
                "unknown lock method '{s}' (expected election or kv-mutex)"
            )),
        }
    }
}

/// Most clients the election method supports in simulation. Why: the simulated etcd wakes a
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

impl std::fmt::Display for LockError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LockError::Etcd(e) => write!(f, "etcd: {e}"),
            LockError::Timeout(what) => write!(f, "etcd {what} timed out"),
            LockError::CampaignTimeout => f.write_str("gave up waiting for the lock"),
        }
    }
}

fn etcd_err(e: etcd_client::Error) -> LockError {
    LockError::Etcd(e.to_string())
}

/// What the client believes about its lease.
#[derive(Debug, Clone, PartialEq, Eq)]
struct LeaseView {
    /// Perceived time (µs) after which the lease may be gone: the send time of the last
    /// answered keepalive plus the TTL, as etcd's Go client computes it.
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
        etcd: &Client,
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
            .timeout(
                cfg.request_timeout,
                etcd.lease_client().grant(cfg.ttl_s, None),
            )
            .await
            .map_err(|_| LockError::Timeout("lease grant"))?
            .map_err(etcd_err)?;
        let lease_id = grant.id();
        probe.record(EventKind::LeaseGranted {
            lease_id,
            ttl_s: grant.ttl(),
        });
        let view = Arc::new(Mutex::new(LeaseView {
            deadline_us: sent_us + grant.ttl() * 1_000_000,
            lost: None,
        }));
        let keepalive = tokio::spawn(keep_alive(
            etcd.clone(),
            clock.clone(),
            probe.clone(),
            *cfg,
            lease_id,
            grant.ttl(),
            view.clone(),
        ));
        Ok(Session {
            lease_id,
            ttl_s: grant.ttl(),
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
    pub async fn close(self, etcd: &Client, clock: &NodeClock, cfg: &LockConfig) {
        self.keepalive.abort();
        let _ = clock
            .timeout(
                cfg.request_timeout,
                etcd.lease_client().revoke(self.lease_id),
            )
            .await;
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        // A session never outlives its owner's interest in it.
        self.keepalive.abort();
    }
}

async fn keep_alive(
    etcd: Client,
    clock: NodeClock,
    probe: Probe,
    cfg: LockConfig,
    lease_id: i64,
    ttl_s: i64,
    view: Arc<Mutex<LeaseView>>,
) {
    let period = Duration::from_millis(ttl_s as u64 * 1000 / 3);
    let mut lease = etcd.lease_client();
    let mut stream = None;
    // Bounded: a lease cannot be renewed more than this often in the longest run we allow.
    for _ in 0..1_000_000u32 {
        clock.sleep(period).await;
        let sent_us = clock.now_us();
        let renewed = clock
            .timeout(cfg.request_timeout, async {
                if stream.is_none() {
                    // The first keepalive travels with the stream's opening.
                    let (keeper, s) = lease.keep_alive(lease_id).await?;
                    stream = Some((keeper, s));
                    return Ok::<i64, etcd_client::Error>(ttl_s);
                }
                let (keeper, s) = stream.as_mut().expect("stream open");
                keeper.keep_alive().await?;
                Ok(s.message().await?.map_or(0, |r| r.ttl()))
            })
            .await;
        let lost = match renewed {
            Ok(Ok(ttl)) if ttl > 0 => {
                view.lock().expect("lease view").deadline_us = sent_us + ttl * 1_000_000;
                continue;
            }
            Ok(Ok(_)) => "keepalive answered TTL 0: the lease expired".to_string(),
            Ok(Err(e)) => format!("keepalive refused: {e}"),
            Err(_) => {
                // A late answer would be read as the next one's: open a fresh stream.
                stream = None;
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
}

/// The lock, held.
#[derive(Debug, Clone)]
pub struct Holding {
    pub held: Held,
    pub lease_id: i64,
    /// The lock key's creation revision: the fencing token.
    pub token: i64,
}

/// Takes the lock under the session's lease. On timeout the caller must revoke the lease:
/// the waiting key stays in etcd otherwise and would take the lock later.
pub async fn acquire(
    etcd: &Client,
    session: &Session,
    clock: &NodeClock,
    cfg: &LockConfig,
    value: &str,
) -> Result<Holding, LockError> {
    let taken = match cfg.method {
        LockMethod::Election => campaign(etcd, session, value),
        LockMethod::KvMutex => Box::pin(kv_mutex(etcd, session, clock, value))
            as std::pin::Pin<Box<dyn std::future::Future<Output = _> + Send + '_>>,
    };
    clock
        .timeout(cfg.campaign_timeout, taken)
        .await
        .map_err(|_| LockError::CampaignTimeout)?
}

fn campaign<'a>(
    etcd: &'a Client,
    session: &'a Session,
    value: &'a str,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<Holding, LockError>> + Send + 'a>> {
    Box::pin(async move {
        let resp = etcd
            .election_client()
            .campaign(LOCK_NAME, value, session.lease_id())
            .await
            .map_err(etcd_err)?;
        let leader = resp
            .leader()
            .cloned()
            .ok_or_else(|| LockError::Etcd("campaign answered without a leader key".into()))?;
        Ok(Holding {
            lease_id: session.lease_id(),
            token: leader.rev(),
            held: Held::Election(leader),
        })
    })
}

async fn kv_mutex(
    etcd: &Client,
    session: &Session,
    clock: &NodeClock,
    value: &str,
) -> Result<Holding, LockError> {
    let key = format!("{MUTEX_PREFIX}{:016x}", session.lease_id());
    let mut kv = etcd.kv_client();
    kv.put(
        key.as_str(),
        value,
        Some(PutOptions::new().with_lease(session.lease_id())),
    )
    .await
    .map_err(etcd_err)?;
    // Bounded by the caller's campaign timeout; this cap only guards against a missing one.
    let mut polls_left = MUTEX_POLLS_MAX;
    while polls_left > 0 {
        let listing = kv
            .get(MUTEX_PREFIX, Some(GetOptions::new().with_prefix()))
            .await
            .map_err(etcd_err)?;
        let ours = listing
            .kvs()
            .iter()
            .find(|k| k.key() == key.as_bytes())
            .map(|k| k.create_revision())
            .ok_or_else(|| LockError::Etcd("lock key gone: the session expired".into()))?;
        // The candidate created last before ours, as etcd's `waitDeletes` picks it.
        let before = listing
            .kvs()
            .iter()
            .filter(|k| k.create_revision() < ours)
            .max_by_key(|k| k.create_revision())
            .map(|k| k.key().to_vec());
        let Some(before) = before else {
            debug_assert!(listing.kvs().iter().all(|k| k.create_revision() >= ours));
            return Ok(Holding {
                lease_id: session.lease_id(),
                token: ours,
                held: Held::Kv(key),
            });
        };
        // Wait for that one key to go, then look again: candidates before it may remain.
        // Why one key and not the whole prefix: a poll then costs the same however many
        // clients wait, so waiting grows linearly with clients, not quadratically.
        while polls_left > 0 {
            polls_left -= 1;
            clock.sleep(MUTEX_POLL).await;
            let still = kv.get(before.clone(), None).await.map_err(etcd_err)?;
            if still.kvs().is_empty() {
                break;
            }
        }
    }
    Err(LockError::CampaignTimeout)
}

/// Releases the lock: resign (or delete the mutex key), then the caller closes the session.
pub async fn resign(
    etcd: &Client,
    holding: &Holding,
    clock: &NodeClock,
    cfg: &LockConfig,
) -> Result<(), LockError> {
    match &holding.held {
        Held::Election(leader) => {
            let opts = ResignOptions::new().with_leader(leader.clone());
            clock
                .timeout(
                    cfg.request_timeout,
                    etcd.election_client().resign(Some(opts)),
                )
                .await
                .map_err(|_| LockError::Timeout("resign"))?
                .map_err(etcd_err)?;
        }
        Held::Kv(key) => {
            clock
                .timeout(
                    cfg.request_timeout,
                    etcd.kv_client().delete(key.as_str(), None),
                )
                .await
                .map_err(|_| LockError::Timeout("unlock"))?
                .map_err(etcd_err)?;
        }
    }
    Ok(())
}
