//! Chubby's sequencer check (Burrows, "The Chubby lock service", OSDI 2006, section 2.4): a
//! holder passes a *sequencer* (lock name, mode, generation) to the servers it talks to, and
//! a server "can check the sequencer by asking Chubby whether it is still valid" before it
//! acts.
//!
//! Here the sequencer is the lock key's create revision (the fencing token of the election and
//! KV mutex recipes): before applying, the storage asks etcd whether a lock key with that
//! create revision still exists (election keys under `LOCK_NAME/`, KV mutex keys under
//! `MUTEX_PREFIX`), then admits and applies. The Lock API's token is its answer's revision,
//! not its key's, so the scheme refuses to run with it (`Scheme::validate`). The question and the write are two steps: an answer that was true when etcd gave
//! it may be false when the write lands (the answer delayed in the network, the storage slow
//! to apply), and nothing orders the write after the next holder's.

use crate::etcd::{Etcd, Keys};
use crate::lock::{LOCK_NAME, MUTEX_PREFIX};
use crate::protocol::Request;
use crate::storage::{Admit, Fence, KeyState};
use crate::BoxFuture;

/// The prefix both lock recipes' keys share, so one range read covers them.
const LOCKS_PREFIX: &str = "/fencelab/";

#[derive(Debug, Clone, Copy, Default)]
pub struct SequencerCheck;

impl Fence for SequencerCheck {
    fn name(&self) -> &str {
        "sequencer"
    }

    fn admit(&self, _: &Request, _: &KeyState<'_>) -> Result<Admit, String> {
        Ok(Admit::keep())
    }

    fn asks_lock_service(&self) -> bool {
        true
    }

    fn ask_lock_service<'a>(
        &'a self,
        req: &'a Request,
        etcd: &'a dyn Etcd,
    ) -> BoxFuture<'a, Result<(), String>> {
        debug_assert!(
            LOCK_NAME.starts_with(LOCKS_PREFIX) && MUTEX_PREFIX.starts_with(LOCKS_PREFIX)
        );
        Box::pin(async move {
            let locks = etcd
                .get(Keys::Prefix(LOCKS_PREFIX.into()))
                .await
                .map_err(|e| format!("the lock service could not check the sequencer: {e}"))?;
            let election = format!("{LOCK_NAME}/");
            let valid = locks.kvs.iter().any(|kv| {
                (kv.key.starts_with(&election) || kv.key.starts_with(MUTEX_PREFIX))
                    && kv.create_revision == req.version
            });
            if valid {
                Ok(())
            } else {
                Err(format!(
                    "sequencer {} is no longer valid: no lock key has that revision",
                    req.version
                ))
            }
        })
    }
}
