//! Chubby's lock-delay (Burrows, "The Chubby lock service", OSDI 2006, section 2.4): "if a lock
//! becomes free because the holder has failed or become inaccessible, the lock server will
//! prevent other clients from claiming the lock for a period called the lock-delay". A clean
//! release frees the lock at once.
//!
//! etcd has no lock-delay, so this is a [`LockRecipe`] over any other recipe, on the etcd seam
//! only: each holder records its token in a marker key when it takes the lock and deletes the
//! marker (if still its own) when it releases. A new holder that finds another holder's marker
//! knows the lock came free without a release, and waits the lock-delay (the scenario's
//! `lock_delay_ms`, by its own clock) before it uses the lock. The delay is counted from the new
//! holder's acquisition, which follows the old lease's end within etcd's 500 ms expiry scan
//! when a waiter is queued: at most that much longer than Chubby's.
//!
//! What it buys: a stale holder that wakes within the delay acts before anyone else does. What
//! it cannot: a pause longer than TTL + delay, or a packet delayed as long. And the marker is a
//! second step after taking the lock: a holder that stalls between the two leaves no marker,
//! and its successor does not wait (Chubby's lock server has no such gap).

use crate::etcd::{CmpOp, Compare, Keys, Target, Txn, TxnOp};
use crate::lock::{Holding, LockContext, LockError, LockRecipe};
use crate::BoxFuture;
use std::sync::Arc;
use std::time::Duration;

/// Where the current holder's token is kept (no lease: it must outlive a lost session).
pub const HOLDER_KEY: &str = "/fencelab/lock-delay/holder";

/// Lock-delay over `inner`.
#[derive(Debug, Clone)]
pub struct LockDelay {
    pub inner: Arc<dyn LockRecipe>,
}

impl LockRecipe for LockDelay {
    fn name(&self) -> &str {
        "lock-delay"
    }

    fn acquire<'a>(&'a self, cx: LockContext<'a>) -> BoxFuture<'a, Result<Holding, LockError>> {
        Box::pin(async move {
            let holding = self.inner.acquire(cx).await?;
            let mine = holding.token.to_string();
            let etcd = cx.etcd()?;
            let read = etcd.get(Keys::Exact(HOLDER_KEY.into()));
            let marker = cx.bounded("lock-delay marker read", read).await?;
            let unreleased = marker.kvs.first().is_some_and(|kv| kv.value != mine);
            if unreleased && cx.cfg.lock_delay_ms > 0 {
                cx.clock
                    .sleep(Duration::from_millis(cx.cfg.lock_delay_ms))
                    .await;
            }
            // Only while this holder's lock key exists: a holder that lost its lock during
            // the delay must not overwrite its successor's marker.
            let claim = Txn::put_while_exists(&holding.key, HOLDER_KEY, &mine);
            let claimed = cx.bounded("lock-delay marker", etcd.txn(claim)).await?;
            if !claimed.succeeded {
                return Err(LockError::Etcd(
                    "lock key gone during the lock-delay: the session expired".into(),
                ));
            }
            Ok(holding)
        })
    }

    fn release<'a>(
        &'a self,
        cx: LockContext<'a>,
        holding: &'a Holding,
    ) -> BoxFuture<'a, Result<(), LockError>> {
        Box::pin(async move {
            // A clean release: the marker goes (if it is still this holder's), so the next
            // holder need not wait.
            let clear = Txn {
                compare: vec![Compare {
                    key: HOLDER_KEY.into(),
                    op: CmpOp::Equal,
                    target: Target::Value(holding.token.to_string()),
                }],
                success: vec![TxnOp::Delete(Keys::Exact(HOLDER_KEY.into()))],
                failure: vec![],
            };
            let cleared = match cx.etcd() {
                Ok(etcd) => cx.bounded("lock-delay release", etcd.txn(clear)).await,
                Err(e) => Err(e),
            };
            let released = self.inner.release(cx, holding).await;
            cleared.map(|_| ())?;
            released
        })
    }
}
