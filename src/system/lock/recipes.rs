//! fencelab's three lock recipes, each a [`LockRecipe`] like any a user brings.

use super::{
    etcd_err, Holding, LockConfig, LockContext, LockError, LockRecipe, LOCK_NAME, MUTEX_POLL,
    MUTEX_POLLS_MAX, MUTEX_PREFIX,
};
use crate::clock::NodeClock;
use crate::etcd::{Etcd, EtcdError, Keys, LeaderKey, Version, WatchEvent};
use crate::BoxFuture;

/// etcd's election API (`concurrency.Election`): `campaign` waits server-side until the
/// candidate's key is the oldest; `resign` releases. The token is the leader key's create
/// revision.
#[derive(Debug, Clone, Copy, Default)]
pub struct Election;

impl LockRecipe for Election {
    fn name(&self) -> &str {
        "election"
    }

    fn acquire<'a>(&'a self, cx: LockContext<'a>) -> BoxFuture<'a, Result<Holding, LockError>> {
        Box::pin(async move {
            let lease_id = cx.lease_id()?;
            let leader = cx
                .etcd()?
                .campaign(LOCK_NAME, cx.value, lease_id)
                .await
                .map_err(etcd_err)?;
            Ok(Holding::new(leader.key, lease_id, leader.rev))
        })
    }

    fn release<'a>(
        &'a self,
        cx: LockContext<'a>,
        holding: &'a Holding,
    ) -> BoxFuture<'a, Result<(), LockError>> {
        Box::pin(async move {
            // The leader key campaign answered: its name, key, create revision and lease.
            let leader = LeaderKey {
                name: LOCK_NAME.to_string(),
                key: holding.key.clone(),
                rev: holding.token,
                lease: holding.lease_id,
            };
            cx.bounded("resign", cx.etcd()?.resign(&leader)).await
        })
    }
}

/// The v3 Lock service (`etcdctl lock`, Jepsen's lock tests): etcd runs the Mutex
/// server-side; the token is the Lock answer's header revision. Not on SimServer.
#[derive(Debug, Clone, Copy, Default)]
pub struct LockApi;

impl LockRecipe for LockApi {
    fn name(&self) -> &str {
        "lock-api"
    }

    fn acquire<'a>(&'a self, cx: LockContext<'a>) -> BoxFuture<'a, Result<Holding, LockError>> {
        Box::pin(async move {
            let lease_id = cx.lease_id()?;
            let key = cx
                .etcd()?
                .lock(LOCK_NAME, lease_id)
                .await
                .map_err(etcd_err)?;
            Ok(Holding::new(key.key, lease_id, key.revision))
        })
    }

    fn release<'a>(
        &'a self,
        cx: LockContext<'a>,
        holding: &'a Holding,
    ) -> BoxFuture<'a, Result<(), LockError>> {
        Box::pin(async move { cx.bounded("unlock", cx.etcd()?.unlock(&holding.key)).await })
    }
}

/// etcd's own Mutex algorithm over plain KV (`concurrency/mutex.go`, `Lock`; `contrib/lock`'s
/// lock): put a key under the lease, hold the lock when it has the lowest create revision,
/// else watch the key created just before it until it goes (SimServer has no Watch: there the
/// wait polls that one key). The key is new (its name holds a fresh lease), so a plain put
/// stands for the recipe's create-if-absent transaction.
///
/// `version` is the client library's: 3.4's Mutex knows its key's revision from its put and,
/// once every key before it has gone, holds without looking at its own key again, so a waiter
/// whose session expired while it waited still believes it holds (etcd issue 11456, the client
/// side); 3.5 re-reads its key after waiting and answers "session is expired" when it is gone
/// (PR 11408, `client/v3/concurrency/mutex.go`, `Lock`).
#[derive(Debug, Clone, Copy, Default)]
pub struct KvMutex {
    pub version: Version,
}

impl LockRecipe for KvMutex {
    fn name(&self) -> &str {
        "kv-mutex"
    }

    fn acquire<'a>(&'a self, cx: LockContext<'a>) -> BoxFuture<'a, Result<Holding, LockError>> {
        Box::pin(kv_mutex(cx, self.version))
    }

    fn release<'a>(
        &'a self,
        cx: LockContext<'a>,
        holding: &'a Holding,
    ) -> BoxFuture<'a, Result<(), LockError>> {
        Box::pin(async move {
            let etcd = cx.etcd()?;
            let deleted = Box::pin(async move {
                etcd.delete(Keys::Exact(holding.key.clone()))
                    .await
                    .map(|_| ())
            });
            cx.bounded("unlock", deleted).await
        })
    }
}

async fn kv_mutex(cx: LockContext<'_>, version: Version) -> Result<Holding, LockError> {
    let (etcd, lease_id) = (cx.etcd()?, cx.lease_id()?);
    let key = format!("{MUTEX_PREFIX}{lease_id:016x}");
    etcd.put(&key, cx.value, lease_id).await.map_err(etcd_err)?;
    // Our key's create revision, once seen: what 3.4 goes on waiting by when the key is gone.
    let mut my_revision = None;
    // Bounded by the caller's campaign timeout; this cap only guards against a missing one.
    for _ in 0..MUTEX_POLLS_MAX {
        let listing = etcd
            .get(Keys::Prefix(MUTEX_PREFIX.to_string()))
            .await
            .map_err(etcd_err)?;
        let found = listing
            .kvs
            .iter()
            .find(|k| k.key == key)
            .map(|k| k.create_revision);
        let ours = match (found, my_revision, version) {
            (Some(revision), _, _) => revision,
            (None, Some(revision), Version::V3_4) => revision,
            (None, _, _) => {
                return Err(LockError::Etcd("lock key gone: the session expired".into()))
            }
        };
        debug_assert!(
            my_revision.is_none_or(|r| r == ours),
            "a key's revision moved"
        );
        my_revision = Some(ours);
        // The candidate created last before ours, as etcd's `waitDeletes` picks it.
        let before = listing
            .kvs
            .iter()
            .filter(|k| k.create_revision < ours)
            .max_by_key(|k| k.create_revision)
            .map(|k| k.key.clone());
        let Some(before) = before else {
            debug_assert!(listing.kvs.iter().all(|k| k.create_revision >= ours));
            return Ok(Holding::new(key, lease_id, ours));
        };
        // Wait for that one key to go, then look again: candidates before it may remain.
        // Why one key and not the whole prefix: waiting then costs the same however many
        // clients wait, so it grows linearly with clients, not quadratically.
        wait_delete(etcd, cx.clock, cx.cfg, &before, listing.revision).await?;
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
