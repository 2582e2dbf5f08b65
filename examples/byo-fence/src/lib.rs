//! A fence of one's own: **accept a write only if its token is at least the token stored with
//! the key; reads are not checked.**
//!
//! It compares with the stored entry, not with a mark of its own, so it keeps no state beyond
//! the data. It stops a stale holder's write once a newer holder has written, but not a stale
//! read: under a read-modify-write workload a holder whose lock has passed can still read (the
//! checker counts that as a token-order break: the read-modify-write acts on what it read), and
//! can still write between a newer holder's read and write (a lost update). The tests in
//! `tests/` show both: the single-write workload holds, the counter breaks, with a replay.

use fencelab::protocol::{Op, Request};
use fencelab::storage::{Admit, Fence, KeyState};

#[derive(Debug, Clone, Copy, Default)]
pub struct AtLeastStored;

impl Fence for AtLeastStored {
    fn name(&self) -> &str {
        "at-least-stored"
    }

    fn admit(&self, req: &Request, key: &KeyState<'_>) -> Result<Admit, String> {
        match key.stored {
            Some(entry) if req.op == Op::Write && req.version < entry.version => Err(format!(
                "token {} is below the stored token {}",
                req.version, entry.version
            )),
            _ => Ok(Admit::keep()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fencelab::storage::Store;
    use std::sync::Arc;

    fn req(op: Op, version: i64) -> Request {
        Request {
            op,
            key: "k".into(),
            val: "v".into(),
            version,
        }
    }

    #[test]
    fn refuses_a_write_below_the_stored_token_and_never_a_read() {
        let mut store = Store::with_fence(Arc::new(AtLeastStored));
        assert!(store.apply(&req(Op::Write, 7)).accepted);
        assert!(
            store.apply(&req(Op::Write, 7)).accepted,
            "equal is accepted"
        );
        assert!(!store.apply(&req(Op::Write, 6)).accepted);
        assert!(store.apply(&req(Op::Read, 1)).accepted);
        assert_eq!(store.get("k").map(|e| e.version), Some(7));
    }
}
