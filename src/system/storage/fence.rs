//! A **fence**: the storage's rule for which requests to accept, given what it holds for the
//! key. fencelab's four policies are implementations like any other; bring your own by
//! implementing [`Fence`] and handing it to `world::Builder::fence`.
//!
//! A fence is a pure rule: the [`Store`](super::Store) keeps the state (each key's entry and
//! the fence's *mark* for it, one number the fence chooses, such as the highest token seen)
//! and asks the fence what to do with each request.
//!
//! An accepted request answers with an [`Admit`]: [`Admit::keep`] leaves the mark,
//! [`Admit::raise`] lifts it to at least a number (the store takes the maximum, so a fence
//! cannot lower a mark by accident), and [`Admit::replace`] sets it outright, for the rare rule
//! whose mark is not a high-water mark (a check-and-set claim).
//!
//! ```
//! use fencelab::protocol::{Op, Request};
//! use fencelab::storage::{Admit, Fence, KeyState, Store};
//! use std::sync::Arc;
//!
//! /// Writes must carry a token at least the highest written; reads are not checked.
//! #[derive(Debug)]
//! struct AtLeast;
//!
//! impl Fence for AtLeast {
//!     fn name(&self) -> &str {
//!         "at-least"
//!     }
//!     fn admit(&self, req: &Request, key: &KeyState<'_>) -> Result<Admit, String> {
//!         if req.op == Op::Read {
//!             return Ok(Admit::keep()); // unchecked, the mark stays
//!         }
//!         match key.mark {
//!             Some(high) if req.version < high => Err(format!("{} < {high}", req.version)),
//!             _ => Ok(Admit::raise(req.version)),
//!         }
//!     }
//! }
//!
//! let mut store = Store::with_fence(Arc::new(AtLeast));
//! let write = |v: i64| Request { op: Op::Write, key: "k".into(), val: "x".into(), version: v };
//! assert!(store.apply(&write(5)).accepted);
//! assert!(!store.apply(&write(4)).accepted);
//! assert_eq!(store.mark("k"), Some(5));
//! ```

use crate::entry::Entry;
use crate::etcd::Etcd;
use crate::protocol::{Op, Request};
use crate::BoxFuture;
use std::fmt::Debug;

/// What the storage holds for the key a request names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyState<'a> {
    /// The stored value and the version it was written with, if the key exists.
    pub stored: Option<&'a Entry>,
    /// The fence's own number for the key (the highest token it accepted, say), if it ever set
    /// one. A mark outlives the entry: reads may set it on a key that does not exist.
    pub mark: Option<i64>,
}

/// What an accepted request does to its key's mark. Build it with [`Admit::keep`],
/// [`Admit::raise`] (the usual one: a high-water mark) or [`Admit::replace`] (explicitly
/// unordered); the [`Store`](super::Store) applies it with [`Admit::apply`].
#[must_use = "a fence's Admit says what happens to the mark; return it from Fence::admit"]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Admit(Change);

/// The three ways an accepted request may change a mark; private so that a lowering
/// is only ever spelled `Admit::replace`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Change {
    Keep,
    Raise(i64),
    Replace(i64),
}

impl Admit {
    /// Accept and leave the mark as it is (absent stays absent).
    pub const fn keep() -> Admit {
        Admit(Change::Keep)
    }

    /// Accept and raise the mark to `mark` if it is below (or absent): the store keeps the
    /// maximum, so a `raise` below the mark keeps the mark. The right call for any rule that
    /// tracks the highest number seen.
    pub const fn raise(mark: i64) -> Admit {
        Admit(Change::Raise(mark))
    }

    /// Accept and set the mark to `mark`, *even below* the present mark. Only for a rule whose
    /// mark is not a high-water mark (a claim that any newer claimant overwrites, as antirez's
    /// random-token check-and-set); a token rule wants [`Admit::raise`].
    pub const fn replace(mark: i64) -> Admit {
        Admit(Change::Replace(mark))
    }

    /// The mark after this admission, from the mark before it.
    pub fn apply(self, before: Option<i64>) -> Option<i64> {
        let after = match self.0 {
            Change::Keep => before,
            Change::Raise(mark) => Some(before.map_or(mark, |b| b.max(mark))),
            Change::Replace(mark) => Some(mark),
        };
        // Postconditions: only a replace may lower a mark or move it off the number it names;
        // a mark once set is never removed.
        assert!(
            before.is_none() || after.is_some(),
            "an admission removed a mark"
        );
        if let Change::Raise(mark) = self.0 {
            assert!(
                after >= before && after >= Some(mark),
                "a raise lowered the mark"
            );
        }
        after
    }
}

/// The storage's acceptance rule. `Send + Sync`: one fence is shared by the storage server and
/// every client of a run (clients ask it which number to send).
pub trait Fence: Send + Sync + Debug + 'static {
    /// A short name, for reports, sweeps and histories (`token`, `lease-id`, ...).
    fn name(&self) -> &str;

    /// The number a client sends as the request's `version`, from what its lock gave it: the
    /// session's lease ID and the lock's fencing token. Most fences want the token (the
    /// default); `contrib/lock`'s check wants the lease ID.
    fn version(&self, lease_id: i64, token: i64) -> i64 {
        let _ = lease_id;
        token
    }

    /// Accept or refuse `req`. On acceptance, the [`Admit`] says what becomes of the key's
    /// mark ([`Admit::keep`], [`Admit::raise`], or the explicit [`Admit::replace`]); the store
    /// then applies the request. On refusal, the reason is the error text the client
    /// receives, and nothing changes.
    fn admit(&self, req: &Request, key: &KeyState<'_>) -> Result<Admit, String>;

    /// Whether the storage must ask the lock service before [`Fence::admit`] (Chubby's
    /// sequencer check). Only then does the storage connect to etcd.
    fn asks_lock_service(&self) -> bool {
        false
    }

    /// The question to the lock service, over the etcd seam: `Err(reason)` refuses the
    /// request. The storage asks, *then* admits and applies: two steps, with no lock between
    /// them, as a storage server that checks with a lock service has.
    fn ask_lock_service<'a>(
        &'a self,
        req: &'a Request,
        etcd: &'a dyn Etcd,
    ) -> BoxFuture<'a, Result<(), String>> {
        let _ = (req, etcd);
        Box::pin(async { Ok(()) })
    }
}

/// Accept everything: the lock alone must keep writers apart.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoFence;

impl Fence for NoFence {
    fn name(&self) -> &str {
        "none"
    }

    fn admit(&self, _: &Request, _: &KeyState<'_>) -> Result<Admit, String> {
        Ok(Admit::keep())
    }
}

/// The check of etcd's example (`contrib/lock`'s storage): clients send their lease ID; an absent key
/// takes any version, a present key accepts only a write carrying the version already stored.
/// Reads are not checked. Lease IDs are not ordered, so this is equality, not fencing.
#[derive(Debug, Clone, Copy, Default)]
pub struct LeaseIdFence;

impl Fence for LeaseIdFence {
    fn name(&self) -> &str {
        "lease-id"
    }

    fn version(&self, lease_id: i64, _token: i64) -> i64 {
        lease_id
    }

    fn admit(&self, req: &Request, key: &KeyState<'_>) -> Result<Admit, String> {
        match key.stored {
            Some(existing) if req.op == Op::Write && existing.version != req.version => {
                Err(format!(
                    "given version ({:x}) is different from the existing version ({:x})",
                    req.version, existing.version
                ))
            }
            _ => Ok(Admit::keep()),
        }
    }
}

/// Kleppmann's fencing token: refuse an operation whose token is below the highest accepted
/// on that key (equal is accepted: a holder writes more than once). Under `reads: false` only
/// writes are checked and only writes raise the mark; under `reads: true` reads carry the
/// token too, and an accepted read raises the mark, which a read-modify-write needs.
#[derive(Debug, Clone, Copy)]
pub struct TokenFence {
    pub reads: bool,
}

impl Fence for TokenFence {
    fn name(&self) -> &str {
        if self.reads {
            "token"
        } else {
            "token-writes"
        }
    }

    fn admit(&self, req: &Request, key: &KeyState<'_>) -> Result<Admit, String> {
        if req.op == Op::Read && !self.reads {
            return Ok(Admit::keep());
        }
        match key.mark {
            Some(highest) if req.version < highest => Err(format!(
                "given token ({}) is lower than the highest token seen ({}) for key {}",
                req.version, highest, req.key
            )),
            highest => {
                // Positive space: an accepted op never lowers the highest token.
                assert!(
                    highest.is_none_or(|h| req.version >= h),
                    "accepted a token below the highest"
                );
                Ok(Admit::raise(req.version))
            }
        }
    }
}
