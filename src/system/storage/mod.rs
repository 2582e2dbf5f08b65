//! The storage: a key-value store guarded by a [`Fence`] (fencelab's four policies, named by
//! [`Fencing`], or yours).
//!
//! [`Store`] is a plain value: `apply(request) -> response`, no I/O, no clock. The HTTP
//! transport in [`http`] wraps it and the simulated and real builds share both.

pub mod fence;
pub mod http;

use crate::protocol::{Op, Request, Response};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;

pub use crate::entry::Entry;
pub use fence::{Admit, Fence, KeyState, LeaseIdFence, NoFence, TokenFence};

/// How the storage checks the `version` a client sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
#[serde(rename_all = "kebab-case")]
pub enum Fencing {
    /// Accept everything. Versions are still logged, so the checker sees the tokens.
    None,
    /// `contrib/lock`'s check: an absent key takes any version; a present key accepts only a write
    /// carrying the version already stored. Reads are not checked.
    LeaseId,
    /// Reject a write whose token is below the highest token written to that key (equal is
    /// accepted). Reads are not checked.
    TokenWrites,
    /// As `TokenWrites`, and reads carry the token too: a read below the highest is rejected and
    /// an accepted read raises the highest. Needed for read-modify-write.
    Token,
}

impl Fencing {
    /// Every policy, in the order tables show them: the one list of names ([`crate::named`]).
    pub const ALL: [Fencing; 4] = [
        Fencing::None,
        Fencing::LeaseId,
        Fencing::TokenWrites,
        Fencing::Token,
    ];

    /// The policy's name in TOML, JSON and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Fencing::None => "none",
            Fencing::LeaseId => "lease-id",
            Fencing::TokenWrites => "token-writes",
            Fencing::Token => "token",
        }
    }

    /// Every name, comma-separated.
    pub fn names() -> String {
        crate::named::names(&Fencing::ALL, Fencing::as_str)
    }

    /// The policy's [`Fence`].
    pub fn fence(self) -> Arc<dyn Fence> {
        match self {
            Fencing::None => Arc::new(NoFence),
            Fencing::LeaseId => Arc::new(LeaseIdFence),
            Fencing::TokenWrites => Arc::new(TokenFence { reads: false }),
            Fencing::Token => Arc::new(TokenFence { reads: true }),
        }
    }

    /// Whether clients send the lease ID (`contrib/lock`'s "version") rather than the lock revision.
    pub fn sends_lease_id(self) -> bool {
        self.fence().version(1, 0) == 1
    }
}

impl std::fmt::Display for Fencing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Fencing {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        crate::named::parse(&Fencing::ALL, Fencing::as_str, "fencing policy", s)
    }
}

/// The fenced key-value state machine.
#[derive(Debug, Clone)]
pub struct Store {
    fence: Arc<dyn Fence>,
    entries: BTreeMap<String, Entry>,
    /// The fence's mark per key (the highest token seen, under the token fences).
    marks: BTreeMap<String, i64>,
}

/// What [`Store::apply`] did: the answer, and whether the policy let the request through.
/// A read of a missing key is accepted even though its answer carries an error text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    pub response: Response,
    pub accepted: bool,
}

/// `contrib/lock`'s text for a missing key.
pub const KEY_NOT_FOUND: &str = "key not found";

impl Store {
    /// A store under one of fencelab's policies.
    pub fn new(fencing: Fencing) -> Self {
        Store::with_fence(fencing.fence())
    }

    /// A store under any fence.
    pub fn with_fence(fence: Arc<dyn Fence>) -> Self {
        Store {
            fence,
            entries: BTreeMap::new(),
            marks: BTreeMap::new(),
        }
    }

    pub fn fence(&self) -> &Arc<dyn Fence> {
        &self.fence
    }

    pub fn get(&self, key: &str) -> Option<&Entry> {
        self.entries.get(key)
    }

    /// The fence's mark for the key, if it set one.
    pub fn mark(&self, key: &str) -> Option<i64> {
        self.marks.get(key).copied()
    }

    pub fn entries(&self) -> &BTreeMap<String, Entry> {
        &self.entries
    }

    /// Applies one request and answers it. Total: every request gets a response.
    pub fn apply(&mut self, req: &Request) -> Applied {
        let state = KeyState {
            stored: self.entries.get(&req.key),
            mark: self.marks.get(&req.key).copied(),
        };
        match self.fence.admit(req, &state) {
            Err(refusal) => Applied {
                response: Response::error(refusal),
                accepted: false,
            },
            Ok(admit) => {
                if let Some(mark) = admit.apply(state.mark) {
                    self.marks.insert(req.key.clone(), mark);
                }
                Applied {
                    response: self.accept(req),
                    accepted: true,
                }
            }
        }
    }

    fn accept(&mut self, req: &Request) -> Response {
        match req.op {
            Op::Read => match self.entries.get(&req.key) {
                Some(e) => Response::ok(e.val.clone(), e.version),
                None => Response {
                    val: String::new(),
                    version: -1,
                    err: KEY_NOT_FOUND.to_string(),
                },
            },
            Op::Write => {
                self.entries.insert(
                    req.key.clone(),
                    Entry {
                        val: req.val.clone(),
                        version: req.version,
                    },
                );
                Response::ok(req.val.clone(), req.version)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(op: Op, key: &str, val: &str, version: i64) -> Request {
        Request {
            op,
            key: key.into(),
            val: val.into(),
            version,
        }
    }

    /// Accepts everything and says `admit` for each write's version: a fence whose author
    /// forgot to compare, to show what the store makes of each kind of [`Admit`].
    #[derive(Debug)]
    struct Says(fn(i64) -> Admit);

    impl Fence for Says {
        fn name(&self) -> &str {
            "says"
        }
        fn admit(&self, req: &Request, _: &KeyState<'_>) -> Result<Admit, String> {
            Ok((self.0)(req.version))
        }
    }

    #[test]
    fn a_raise_below_the_mark_keeps_the_mark() {
        let mut s = Store::with_fence(Arc::new(Says(Admit::raise)));
        assert_eq!(s.mark("k"), None);
        assert!(s.apply(&req(Op::Write, "k", "a", 7)).accepted);
        assert_eq!(s.mark("k"), Some(7), "a raise sets an absent mark");
        assert!(s.apply(&req(Op::Write, "k", "b", 3)).accepted);
        assert_eq!(s.mark("k"), Some(7), "a raise below the mark keeps it");
        assert!(s.apply(&req(Op::Write, "k", "c", 9)).accepted);
        assert_eq!(s.mark("k"), Some(9), "a raise above the mark lifts it");
    }

    #[test]
    fn only_an_explicit_replace_lowers_the_mark_and_keep_keeps_it() {
        let mut s = Store::with_fence(Arc::new(Says(Admit::replace)));
        assert!(s.apply(&req(Op::Write, "k", "a", 7)).accepted);
        assert!(s.apply(&req(Op::Write, "k", "b", 3)).accepted);
        assert_eq!(s.mark("k"), Some(3), "replace means replace");
        let mut s = Store::with_fence(Arc::new(Says(|_| Admit::keep())));
        assert!(s.apply(&req(Op::Write, "k", "a", 7)).accepted);
        assert_eq!(s.mark("k"), None, "keep leaves an absent mark absent");
        assert_eq!(Admit::keep().apply(Some(4)), Some(4));
    }

    #[test]
    fn none_accepts_everything() {
        let mut s = Store::new(Fencing::None);
        assert!(s.apply(&req(Op::Write, "k", "a", 5)).accepted);
        assert!(s.apply(&req(Op::Write, "k", "b", 3)).accepted);
        assert_eq!(s.get("k").unwrap().val, "b");
    }

    #[test]
    fn read_of_missing_key_is_contrib_locks() {
        let mut s = Store::new(Fencing::None);
        let r = s.apply(&req(Op::Read, "k", "", 1));
        assert_eq!(r.response.err, KEY_NOT_FOUND);
        assert_eq!(r.response.version, -1);
    }

    #[test]
    fn lease_id_is_contrib_locks_equality_check() {
        let mut s = Store::new(Fencing::LeaseId);
        assert!(s.apply(&req(Op::Write, "key0", "c2", 0x2a)).accepted);
        let r = s.apply(&req(Op::Write, "key0", "c1", 0x1f));
        assert_eq!(
            r.response.err,
            "given version (1f) is different from the existing version (2a)"
        );
        // Equal version is accepted, reads are never checked.
        assert!(s.apply(&req(Op::Write, "key0", "again", 0x2a)).accepted);
        assert!(s.apply(&req(Op::Read, "key0", "", 0x1)).accepted);
        // The flaw: a stale first writer owns the key, a newer holder is refused.
        let mut s = Store::new(Fencing::LeaseId);
        assert!(s.apply(&req(Op::Write, "key0", "stale", 0x99)).accepted);
        assert!(!s.apply(&req(Op::Write, "key0", "new", 0x100)).accepted);
    }

    #[test]
    fn token_writes_fences_writes_only() {
        let mut s = Store::new(Fencing::TokenWrites);
        assert!(s.apply(&req(Op::Write, "k", "a", 5)).accepted);
        assert!(
            s.apply(&req(Op::Write, "k", "b", 5)).accepted,
            "equal is accepted"
        );
        let r = s.apply(&req(Op::Write, "k", "c", 4));
        assert!(
            r.response.err.contains("(4)") && r.response.err.contains("(5)"),
            "{}",
            r.response.err
        );
        // A read with a lower token passes and does not raise the highest.
        assert!(s.apply(&req(Op::Read, "k", "", 1)).accepted);
        assert!(s.apply(&req(Op::Read, "k", "", 9)).accepted);
        assert!(s.apply(&req(Op::Write, "k", "d", 6)).accepted);
        // Keys are fenced independently.
        assert!(s.apply(&req(Op::Write, "other", "x", 1)).accepted);
    }

    #[test]
    fn token_fences_reads_and_reads_raise_the_highest() {
        let mut s = Store::new(Fencing::Token);
        assert_eq!(
            s.apply(&req(Op::Read, "k", "", 7)).response.err,
            KEY_NOT_FOUND
        );
        // The read above raised the highest to 7 even though the key was absent.
        assert!(!s.apply(&req(Op::Write, "k", "stale", 6)).accepted);
        assert!(s.apply(&req(Op::Write, "k", "new", 7)).accepted);
        assert!(!s.apply(&req(Op::Read, "k", "", 3)).accepted);
        assert_eq!(s.get("k").unwrap().val, "new");
    }

    #[test]
    fn fencing_names_round_trip() {
        for f in Fencing::ALL {
            assert_eq!(f.as_str().parse::<Fencing>().unwrap(), f);
        }
        assert!("tokens".parse::<Fencing>().is_err());
        for f in Fencing::ALL {
            assert_eq!(
                f.fence().name(),
                f.as_str(),
                "a policy's fence goes by its name"
            );
        }
    }
}
