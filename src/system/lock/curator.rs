//! Curator's `InterProcessMutex` over the [`Zk`](crate::zk::Zk) seam (apache/curator,
//! `curator-recipes`, `org/apache/curator/framework/recipes/locks/`: `InterProcessMutex`,
//! `LockInternals.attemptLock` and `internalLockLoop`, `StandardLockInternalsDriver`).
//!
//! 1. Create an ephemeral sequential node `<path>/_c_<uuid>-lock-` in protected mode, its
//!    parents as containers (`StandardLockInternalsDriver.createsTheLock`:
//!    `creatingParentContainersIfNeeded().withProtection()`, `EPHEMERAL_SEQUENTIAL`).
//! 2. List the children sorted by sequence (`LockInternals.getSortedChildren`,
//!    [`sort_by_sequence`]); the lowest holds (`getsTheLock`, `maxLeases` 1).
//! 3. Otherwise `getData` with a watch on the node just before ours and wait for it to fire
//!    (any event, a session state included, wakes the waiter: `LockInternals.watcher`), then
//!    list again. A predecessor already gone (`NoNode`) means list again at once.
//! 4. Unlock deletes our node (`releaseLock` → `deleteOurPath`).
//!
//! A create that lost its connection is found again in protected mode: the children are
//! listed and the one whose name starts with our `_c_<uuid>-` is ours
//! (`CreateBuilderImpl.findProtectedNodeInForeground`). **CURATOR-604** (the open
//! double-lock): after the session expired and the client reconnected with a new one, that
//! search can find the node the *old* session made, not yet deleted by the servers, and the
//! client takes the lock on it; once the servers delete it, the next waiter takes the lock
//! too. [`Curator::curator_604`] lets the search take such a node; off, the search keeps only
//! a node the current session owns (its `ephemeralOwner`), as a fix would.
//!
//! **The holder's policy** ([`StopAt`]): Curator's docs tell a holder to treat `SUSPENDED`
//! as the loss of the lock ("Error Handling" in the recipes' docs; `ConnectionStateListener`);
//! some wait for `LOST`. [`LockRecipe::gave_up`] answers it before each write.
//!
//! **Tokens** ([`ZkToken`]): the lock node's `czxid`, which rises with every transaction of
//! the ensemble, across leader changes too (a new epoch's zxids are higher); or its sequence
//! number, the parent's cversion, which restarts at 0 when the empty container parent is
//! deleted by the container manager: then a later holder's number is *lower* and the token
//! does not rise ([`LockRecipe::tokens_rise`] is false for it).

use super::{Holding, LockContext, LockError, LockRecipe, ServiceKind};
use crate::zk::{sort_by_sequence, CreateMode, Fired, SessionState, Zk, ZkError, ZkHandle};
use crate::BoxFuture;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// The lock's path: every client's lock node is a child of it.
pub const LOCK_PATH: &str = "/fencelab/locks/mutex";
/// `InterProcessMutex`'s `LOCK_NAME`.
pub const LOCK_NAME: &str = "lock-";
/// Most attempts of one acquisition (Curator's `RetryLoop` under a retry policy; the
/// campaign timeout usually ends it first).
pub const ATTEMPTS_MAX: u32 = 64;
/// Most listings of one wait (one per predecessor gone): a limit on everything.
const LISTINGS_MAX: u32 = 10_000;
/// The sleep between two attempts: `ExponentialBackoffRetry`'s base, small here because the
/// campaign timeout bounds the whole.
const RETRY_SLEEP: Duration = Duration::from_millis(100);

/// Which number the holder offers the storage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
#[serde(rename_all = "kebab-case")]
pub enum ZkToken {
    /// The lock node's `czxid`: rises.
    #[default]
    Czxid,
    /// The lock node's sequence number: restarts at 0 with its container parent.
    Sequence,
}

impl ZkToken {
    pub const ALL: [ZkToken; 2] = [ZkToken::Czxid, ZkToken::Sequence];

    pub fn as_str(self) -> &'static str {
        match self {
            ZkToken::Czxid => "czxid",
            ZkToken::Sequence => "sequence",
        }
    }
}

/// Where a holder stops treating the lock as its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
#[serde(rename_all = "kebab-case")]
pub enum StopAt {
    /// At `SUSPENDED` (Curator's advice).
    #[default]
    Suspended,
    /// Only at `LOST` (a session timeout after `SUSPENDED`, by the client's wall clock).
    Lost,
}

impl StopAt {
    pub const ALL: [StopAt; 2] = [StopAt::Suspended, StopAt::Lost];

    pub fn as_str(self) -> &'static str {
        match self {
            StopAt::Suspended => "suspended",
            StopAt::Lost => "lost",
        }
    }
}

/// Curator's `InterProcessMutex` (see the module doc).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Curator {
    pub token: ZkToken,
    pub stop_at: StopAt,
    /// Let the protected-mode search take a node of an older session (CURATOR-604).
    pub curator_604: bool,
}

/// How an attempt ended short of the lock.
enum Retry {
    /// Try again (a lost connection, an expired session, our node gone).
    Again(LockError),
    /// Give up with this error.
    Fail(LockError),
}

fn classify(e: ZkError) -> Retry {
    match e {
        ZkError::ConnectionLoss | ZkError::SessionExpired | ZkError::NoNode => {
            Retry::Again(LockError::from(e))
        }
        other => Retry::Fail(LockError::from(other)),
    }
}

/// The number after the last `-` of a sequential node's name (`%010d`), if any.
pub fn sequence_of(path: &str) -> Option<i64> {
    let digits = path.rsplit(LOCK_NAME).next()?;
    (digits.len() == 10).then(|| digits.parse().ok()).flatten()
}

fn name_of(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

impl Curator {
    /// The protection prefix of one acquisition: `_c_` and a UUID-sized number from the
    /// client's own stream (`CreateBuilderImpl.adjustPath` uses `UUID.randomUUID()`).
    fn protection(cx: &LockContext<'_>) -> String {
        format!(
            "_c_{:032x}-",
            u128::from(cx.nonce) << 64 | u128::from(cx.nonce.rotate_left(17))
        )
    }

    /// `creatingParentContainersIfNeeded()`: every missing parent of `path`, as a container
    /// (`ZKPaths.mkdirs` with `asContainers`), an existing one left as it is.
    async fn make_parents(zk: &dyn Zk, path: &str) -> Result<(), ZkError> {
        let mut at = 0;
        while let Some(slash) = path[at + 1..].find('/') {
            at += 1 + slash;
            match zk.create(&path[..at], b"", CreateMode::Container).await {
                Ok(_) | Err(ZkError::NodeExists) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// The protected-mode search: our node among the children, if a create of ours made it.
    /// Off CURATOR-604, only a node of the current session counts.
    async fn find_ours(
        &self,
        zk: &dyn Zk,
        protection: &str,
    ) -> Result<Option<(String, i64)>, ZkError> {
        let children = match zk.get_children(LOCK_PATH).await {
            Ok(c) => c,
            Err(ZkError::NoNode) => return Ok(None),
            Err(e) => return Err(e),
        };
        let Some(name) = children.into_iter().find(|c| c.starts_with(protection)) else {
            return Ok(None);
        };
        let path = format!("{LOCK_PATH}/{name}");
        let stat = match zk.get_data(&path).await {
            Ok((_, stat)) => stat,
            Err(ZkError::NoNode) => return Ok(None),
            Err(e) => return Err(e),
        };
        let session = zk.session().session_id;
        let owned = stat.owner == crate::zk::model::Owner::Session(session);
        Ok((owned || self.curator_604).then_some((path, stat.czxid as i64)))
    }

    /// Step 1: our lock node, made or found; its path and `czxid`.
    async fn create_ours(
        &self,
        zk: &dyn Zk,
        protection: &str,
        after_loss: bool,
    ) -> Result<(String, i64), ZkError> {
        if after_loss {
            if let Some(found) = self.find_ours(zk, protection).await? {
                return Ok(found);
            }
        }
        let prefix = format!("{LOCK_PATH}/{protection}{LOCK_NAME}");
        let mode = CreateMode::EphemeralSequential;
        let created = match zk.create(&prefix, b"", mode).await {
            Err(ZkError::NoNode) => {
                Curator::make_parents(zk, &prefix).await?;
                zk.create(&prefix, b"", mode).await?
            }
            other => other?,
        };
        Ok((created.path, created.stat.czxid as i64))
    }

    /// Steps 2 and 3: wait until our node is the lowest. `NoNode` when it is gone.
    async fn wait_lowest(&self, zk: &dyn Zk, ours: &str) -> Result<(), ZkError> {
        for _ in 0..LISTINGS_MAX {
            let children = zk.get_children(LOCK_PATH).await?;
            let sorted = sort_by_sequence(&children, LOCK_NAME);
            let Some(at) = sorted.iter().position(|c| c == name_of(ours)) else {
                // `validateOurIndex`: "Sequential path not found".
                return Err(ZkError::NoNode);
            };
            if at == 0 {
                return Ok(());
            }
            let before = format!("{LOCK_PATH}/{}", sorted[at - 1]);
            match zk.get_data_watch(&before).await {
                Ok((_, _, watch)) => {
                    if let Fired::Session(s) = watch.await {
                        if s.is_terminal() || s == SessionState::Lost {
                            return Err(ZkError::SessionExpired);
                        }
                    }
                }
                Err(ZkError::NoNode) => {}
                Err(e) => return Err(e),
            }
        }
        Err(ZkError::ModelLimit {
            what: "lock listings",
        })
    }

    /// One attempt on the session now: our node, then the wait.
    async fn attempt(
        &self,
        zk: &ZkHandle,
        protection: &str,
        after_loss: bool,
    ) -> Result<Holding, Retry> {
        let (ours, czxid) = self
            .create_ours(&**zk, protection, after_loss)
            .await
            .map_err(classify)?;
        self.wait_lowest(&**zk, &ours).await.map_err(classify)?;
        let token = match self.token {
            ZkToken::Czxid => czxid,
            ZkToken::Sequence => sequence_of(&ours).unwrap_or(-1),
        };
        let session = zk.session().session_id as i64;
        Ok(Holding::new(ours, session, token))
    }

    async fn acquire_curator(&self, cx: LockContext<'_>) -> Result<Holding, LockError> {
        let client = cx.zk()?;
        let protection = Curator::protection(&cx);
        // Our own deadline inside the caller's, so that a timed-out wait deletes its node
        // (`internalLockLoop`'s `finally`: `deleteOurPath`), as `acquire(time, unit)` does.
        let budget = cx
            .cfg
            .campaign_timeout
            .saturating_sub(cx.cfg.request_timeout);
        let mut after_loss = false;
        let mut last = LockError::CampaignTimeout;
        let attempts = async {
            for _ in 0..ATTEMPTS_MAX {
                let zk = client.session().await.map_err(LockError::from)?;
                match self.attempt(&zk, &protection, after_loss).await {
                    Ok(holding) => return Ok(holding),
                    Err(Retry::Fail(e)) => return Err(e),
                    Err(Retry::Again(e)) => {
                        // Once a call may have made our node, every later try searches for it
                        // first: Curator retries the create in one `RetryLoop` whose every
                        // retry after the first searches (`CreateBuilderImpl.pathInForeground`:
                        // `!localFirstTime && doProtected()`), through `ConnectionLoss` and
                        // `SessionExpired` alike (`RetryLoop.shouldRetry`), a new session too.
                        after_loss = after_loss || e.indeterminate().is_some();
                        last = e;
                    }
                }
                cx.clock.sleep(RETRY_SLEEP).await;
            }
            Err(last)
        };
        match cx.clock.timeout(budget, attempts).await {
            Ok(done) => done,
            Err(_) => {
                self.give_back(cx, &protection).await;
                Err(LockError::CampaignTimeout)
            }
        }
    }

    /// Deletes this acquisition's node, if the session made one; when that cannot be done,
    /// gives the session up so that the servers delete it at its expiry.
    async fn give_back(&self, cx: LockContext<'_>, protection: &str) {
        let Ok(client) = cx.zk() else { return };
        let Some(zk) = client.current() else { return };
        let found = cx
            .clock
            .timeout(cx.cfg.request_timeout, self.find_ours(&*zk, protection))
            .await;
        let deleted = match found {
            Ok(Ok(None)) => true,
            Ok(Ok(Some((path, _)))) => {
                let delete = cx
                    .clock
                    .timeout(cx.cfg.request_timeout, zk.delete(&path, -1));
                matches!(delete.await, Ok(Ok(()) | Err(ZkError::NoNode)))
            }
            _ => false,
        };
        if !deleted {
            client.abandon();
        }
    }
}

impl LockRecipe for Curator {
    fn name(&self) -> &str {
        match (self.token, self.curator_604) {
            (ZkToken::Czxid, false) => "curator",
            (ZkToken::Sequence, false) => "curator-sequence",
            (ZkToken::Czxid, true) => "curator-604",
            (ZkToken::Sequence, true) => "curator-604-sequence",
        }
    }

    fn service(&self) -> ServiceKind {
        ServiceKind::Zk
    }

    fn tokens_rise(&self) -> bool {
        // czxid rises with every transaction; a sequence number restarts with its parent.
        self.token == ZkToken::Czxid && !self.curator_604
    }

    fn acquire<'a>(&'a self, cx: LockContext<'a>) -> BoxFuture<'a, Result<Holding, LockError>> {
        Box::pin(self.acquire_curator(cx))
    }

    fn gave_up(&self, cx: LockContext<'_>, holding: &Holding) -> Option<String> {
        let client = cx.zk().ok()?;
        let Some(zk) = client.current() else {
            return Some("curator: no session".into());
        };
        if zk.session().session_id as i64 != holding.lease_id {
            return Some("curator: the lock's session ended".into());
        }
        match (zk.state(), self.stop_at) {
            (SessionState::Connected, _) | (SessionState::Suspended, StopAt::Lost) => None,
            (state, _) => Some(format!("curator: connection {}", state.as_str())),
        }
    }

    fn release<'a>(
        &'a self,
        cx: LockContext<'a>,
        holding: &'a Holding,
    ) -> BoxFuture<'a, Result<(), LockError>> {
        Box::pin(async move {
            let client = cx.zk()?;
            let Some(zk) = client.current() else {
                return Ok(());
            };
            if zk.session().session_id as i64 != holding.lease_id {
                // The session the lock was held under is gone, and its node with it.
                return Ok(());
            }
            let deleted = cx
                .clock
                .timeout(cx.cfg.request_timeout, zk.delete(&holding.key, -1))
                .await;
            match deleted {
                Ok(Ok(()) | Err(ZkError::NoNode)) => Ok(()),
                Ok(Err(e)) => {
                    client.abandon();
                    Err(LockError::from(e))
                }
                Err(_) => {
                    client.abandon();
                    Err(LockError::Timeout("zookeeper delete"))
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequence_numbers_parse_from_the_suffix() {
        assert_eq!(sequence_of("/l/_c_ab-lock-0000000007"), Some(7));
        assert_eq!(sequence_of("/l/_c_ab-lock-0000000000"), Some(0));
        assert_eq!(sequence_of("/l/_c_ab-lock-"), None);
        assert_eq!(sequence_of("/l/other"), None);
    }

    #[test]
    fn names_and_tokens() {
        let c = Curator::default();
        assert_eq!(c.name(), "curator");
        assert!(c.tokens_rise());
        let s = Curator {
            token: ZkToken::Sequence,
            ..c
        };
        assert!(!s.tokens_rise());
        assert_eq!(s.service(), ServiceKind::Zk);
    }
}
