//! The comparison's fences beyond the four policies: antirez's random token with
//! check-and-set, and the two tempting wrong fixes.

use crate::protocol::{Op, Request};
use crate::storage::{Admit, Fence, KeyState};

/// antirez, "Is Redlock safe?" (2016): a lock that hands out a *random unique* token is enough
/// if the storage can check-and-set: "set the resource's state to the token when you start,
/// and write only if the token is still yours".
///
/// Here each acquisition's token is a bijective scramble of the lock's revision (SplitMix64's
/// finaliser): unique per acquisition, and in no useful order, as a random token would be. A
/// read carrying the token *claims* the key (the mark becomes that token); a write is accepted
/// only if the key's mark is still the writer's own token, so a holder whose key another
/// holder claimed since is refused. Reads are never refused. It needs a workload that reads
/// (claims) before it writes: a blind write, as the `single` workload's, is always refused.
#[derive(Debug, Clone, Copy, Default)]
pub struct RandomTokenCas;

/// SplitMix64's finaliser: a bijection of 64-bit values that scatters their order.
pub fn scramble(x: i64) -> i64 {
    let mut z = (x as u64).wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    (z ^ (z >> 31)) as i64
}

impl Fence for RandomTokenCas {
    fn name(&self) -> &str {
        "random-cas"
    }

    fn version(&self, _lease_id: i64, token: i64) -> i64 {
        scramble(token)
    }

    fn admit(&self, req: &Request, key: &KeyState<'_>) -> Result<Admit, String> {
        match req.op {
            // A claim overwrites any earlier claim: scrambled tokens are unordered, so this
            // mark is no high-water mark and must be replaced, not raised.
            Op::Read => Ok(Admit::replace(req.version)),
            Op::Write if key.mark == Some(req.version) => Ok(Admit::keep()),
            Op::Write => Err(format!(
                "check-and-set failed: the key was claimed by token {:x}, not {:x}",
                key.mark.unwrap_or(0),
                req.version
            )),
        }
    }
}

/// A wrong fix: `contrib/lock`'s lease-ID check with `>=` instead of equality, as if lease IDs were
/// ordered like tokens. They are not ordered by acquisition: a client granted its lease
/// earlier may take the lock later (and on a cluster each leader draws IDs from its own
/// member-ID prefix, `pkg/idutil`), so a newer holder with a lower lease ID is refused and an
/// older one with a higher ID gets through.
#[derive(Debug, Clone, Copy, Default)]
pub struct LeaseIdAtLeast;

impl Fence for LeaseIdAtLeast {
    fn name(&self) -> &str {
        "lease-id-ge"
    }

    fn version(&self, lease_id: i64, _token: i64) -> i64 {
        lease_id
    }

    fn admit(&self, req: &Request, key: &KeyState<'_>) -> Result<Admit, String> {
        match key.stored {
            Some(existing) if req.op == Op::Write && req.version < existing.version => {
                Err(format!(
                    "given version ({:x}) is below the existing version ({:x})",
                    req.version, existing.version
                ))
            }
            _ => Ok(Admit::keep()),
        }
    }
}

/// A wrong fix: Kleppmann's token check with a strict `>`, "to be safe". A holder's own second
/// operation carries the same token as its first and is refused: under a read-modify-write the
/// read raises the mark and the write is always refused (false rejections, no progress).
#[derive(Debug, Clone, Copy, Default)]
pub struct TokenStrict;

impl Fence for TokenStrict {
    fn name(&self) -> &str {
        "token-strict"
    }

    fn admit(&self, req: &Request, key: &KeyState<'_>) -> Result<Admit, String> {
        match key.mark {
            Some(highest) if req.version <= highest => Err(format!(
                "given token ({}) is not above the highest token seen ({}) for key {}",
                req.version, highest, req.key
            )),
            _ => Ok(Admit::raise(req.version)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::Store;
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
    fn random_cas_accepts_a_write_only_while_the_writers_claim_stands() {
        let f = RandomTokenCas;
        let (a, b) = (f.version(0, 10), f.version(0, 11));
        let mut s = Store::with_fence(Arc::new(f));
        assert!(s.apply(&req(Op::Read, a)).accepted, "a claims");
        assert!(
            s.apply(&req(Op::Read, b)).accepted,
            "b claims: reads are never refused"
        );
        assert!(!s.apply(&req(Op::Write, a)).accepted, "a's claim was taken");
        assert!(s.apply(&req(Op::Write, b)).accepted);
        assert!(s.apply(&req(Op::Write, b)).accepted, "b writes again");
        assert!(
            !s.apply(&req(Op::Write, 12)).accepted,
            "a write without a claim"
        );
    }

    #[test]
    fn scrambled_tokens_are_unique_and_unordered() {
        let v: Vec<i64> = (1..1000).map(scramble).collect();
        let mut sorted = v.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted.len(), v.len(), "a bijection keeps them unique");
        let rises = v.windows(2).filter(|w| w[1] > w[0]).count();
        assert!((400..600).contains(&rises), "about half rise: {rises}");
    }

    #[test]
    fn lease_id_ge_refuses_a_lower_id_whatever_the_order_of_holders() {
        let mut s = Store::with_fence(Arc::new(LeaseIdAtLeast));
        assert!(s.apply(&req(Op::Write, 0x20)).accepted);
        assert!(s.apply(&req(Op::Write, 0x30)).accepted);
        assert!(!s.apply(&req(Op::Write, 0x25)).accepted);
        assert!(s.apply(&req(Op::Read, 0x1)).accepted, "reads unchecked");
    }

    #[test]
    fn token_strict_refuses_the_holders_own_second_op() {
        let mut s = Store::with_fence(Arc::new(TokenStrict));
        assert!(s.apply(&req(Op::Read, 5)).accepted);
        assert!(!s.apply(&req(Op::Write, 5)).accepted, "its own write");
        assert!(s.apply(&req(Op::Write, 6)).accepted);
    }
}
