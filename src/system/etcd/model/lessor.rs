//! Leases: grant, renew, expire, revoke, as etcd's `lease/lessor.go` does them.
//!
//! Rules (etcd 3.4/3.5, `lease/lessor.go` unless named):
//! - A lease's deadline is the moment its grant or renewal is applied plus its TTL, read from
//!   the member's **monotonic** clock (`Lease.refresh`: `expiry = time.Now().Add(ttl)`; Go's
//!   `time.Now()` carries a monotonic reading, so wall-clock steps do not move deadlines and
//!   rate errors do). Times here are the member's monotonic microseconds.
//! - A TTL below the minimum is raised to it (`Grant`: `if l.ttl < le.minLeaseTTL`); the
//!   minimum is ⌈1.5 × election timeout⌉ in seconds (`NewLessor`, `minTTL`), 2 s at etcd's
//!   default election timeout of 1 s. A TTL above 9,000,000,000 s is refused (`MaxLeaseTTL`).
//! - A lease is expired once `deadline <= now` (`Lease.Remaining() <= 0`, `findExpiredLeases`).
//! - Renewing an expired lease waits for its revocation and fails with "lease not found"
//!   (`Renew`: `if l.expired() { select { case <-l.revokec: return -1, ErrLeaseNotFound ...`).
//!   A renewal returns the granted TTL (`return l.ttl, nil`).
//! - `TimeToLive` answers the remaining time truncated to whole seconds
//!   (`etcdserver/v3_server.go`, `LeaseTimeToLive`: `int64(l.Remaining().Seconds())`).
//! - Lease IDs come from the member's request ID generator (`pkg/idutil/id.go`: 16 bits of
//!   member ID, 40 bits of start time in ms, a counter), masked to 63 bits
//!   (`etcdserver/v3_server.go`, `LeaseGrant`); every request the member applies draws one.
//!
//! Expiry itself (the 500 ms scan, the revocation going through the log) is the server's
//! ([`super::server`]); this file is the pure state.

use crate::etcd::{EtcdError, EtcdResult, Grant, LeaseId};
use std::collections::{BTreeMap, BTreeSet};

/// etcd's `MaxLeaseTTL`.
pub const TTL_S_MAX: i64 = 9_000_000_000;
/// Most live leases: a limit on everything.
pub const LEASES_MAX: usize = 100_000;

/// One lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub id: LeaseId,
    pub ttl_s: i64,
    /// Monotonic µs at which the lease is expired.
    pub deadline_us: i64,
    /// Keys attached to it.
    pub keys: BTreeSet<String>,
}

/// What a renewal found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Renewal {
    /// Renewed to this TTL.
    Renewed(i64),
    /// No such lease.
    NotFound,
    /// The lease exists but its deadline passed: it must be revoked, and the renewal fails.
    Expired,
}

/// etcd's request ID generator (`pkg/idutil/id.go`).
#[derive(Debug, Clone)]
pub struct IdGen {
    prefix: u64,
    suffix: u64,
}

impl IdGen {
    /// `member_id`'s low 16 bits and the member's start time (wall ms) seed the IDs.
    pub fn new(member_id: u64, start_ms: u64) -> Self {
        const TS_LEN: u32 = 40;
        const CNT_LEN: u32 = 8;
        IdGen {
            prefix: (member_id & 0xffff) << (TS_LEN + CNT_LEN),
            suffix: (start_ms & ((1 << TS_LEN) - 1)) << CNT_LEN,
        }
    }

    pub fn draw(&mut self) -> u64 {
        self.suffix += 1;
        let id = self.prefix | (self.suffix & ((1 << 48) - 1));
        // The member's bits survive every draw: IDs of two members never collide.
        assert!(
            id >> 48 == self.prefix >> 48,
            "a request ID lost its member prefix"
        );
        id
    }
}

/// Every lease of one member.
#[derive(Debug, Clone)]
pub struct Lessor {
    leases: BTreeMap<LeaseId, Lease>,
    min_ttl_s: i64,
    ids: IdGen,
}

impl Lessor {
    /// `min_ttl_s` is ⌈1.5 × election timeout⌉.
    pub fn new(min_ttl_s: i64, ids: IdGen) -> Self {
        assert!(min_ttl_s >= 1, "etcd's minimum TTL is at least 1 s");
        Lessor {
            leases: BTreeMap::new(),
            min_ttl_s,
            ids,
        }
    }

    /// One request ID drawn, as every request etcd applies draws one.
    pub fn draw_request_id(&mut self) {
        self.ids.draw();
    }

    pub fn grant(&mut self, ttl_s: i64, now_us: i64) -> EtcdResult<Grant> {
        if ttl_s > TTL_S_MAX {
            return Err(EtcdError::Other {
                why: "etcdserver: too large lease TTL".into(),
            });
        }
        if self.leases.len() >= LEASES_MAX {
            return Err(EtcdError::Other {
                why: format!("the model holds at most {LEASES_MAX} leases"),
            });
        }
        let ttl_s = ttl_s.max(self.min_ttl_s);
        // Positive space: a granted lease lives at least etcd's minimum TTL, at most the most
        // etcd grants.
        assert!(ttl_s >= self.min_ttl_s && ttl_s <= TTL_S_MAX.max(self.min_ttl_s));
        // etcd redraws a zero ID and refuses one that exists (`ErrLeaseExists`); IDs are
        // unique for 2^48 draws, so a second zero or a clash is a broken generator.
        let mut id = (self.ids.draw() & ((1 << 63) - 1)) as i64;
        if id == 0 {
            id = (self.ids.draw() & ((1 << 63) - 1)) as i64;
        }
        if id == 0 || self.leases.contains_key(&id) {
            return Err(EtcdError::Other {
                why: "lease already exists".into(),
            });
        }
        let previous = self.leases.insert(
            id,
            Lease {
                id,
                ttl_s,
                deadline_us: now_us + ttl_s * 1_000_000,
                keys: BTreeSet::new(),
            },
        );
        assert!(previous.is_none(), "a grant replaced the live lease {id}");
        assert!(id > 0, "a granted lease ID is positive");
        assert!(self.leases.len() <= LEASES_MAX);
        Ok(Grant { id, ttl_s })
    }

    pub fn renew(&mut self, id: LeaseId, now_us: i64) -> Renewal {
        let Some(l) = self.leases.get_mut(&id) else {
            return Renewal::NotFound;
        };
        if l.deadline_us <= now_us {
            return Renewal::Expired;
        }
        // `Renew` → `l.refresh(0)`: now + TTL, which is earlier than a new leader's
        // Promote (now + election timeout + TTL) left it, as in etcd.
        l.deadline_us = now_us + l.ttl_s * 1_000_000;
        // Positive space: a renewed lease is alive for a whole TTL.
        assert!(l.deadline_us > now_us, "a renewed lease expired at once");
        Renewal::Renewed(l.ttl_s)
    }

    /// Expired leases, earliest deadline first.
    pub fn expired(&self, now_us: i64) -> Vec<LeaseId> {
        let mut v: Vec<&Lease> = self
            .leases
            .values()
            .filter(|l| l.deadline_us <= now_us)
            .collect();
        v.sort_by_key(|l| (l.deadline_us, l.id));
        // Negative space: nothing alive is reported expired.
        debug_assert!(v.iter().all(|l| l.deadline_us <= now_us));
        v.into_iter().map(|l| l.id).collect()
    }

    /// Removes the lease; its keys are the caller's to delete.
    pub fn revoke(&mut self, id: LeaseId) -> Option<Lease> {
        let lease = self.leases.remove(&id);
        assert!(
            !self.leases.contains_key(&id),
            "a revoked lease is still there"
        );
        debug_assert!(
            lease.as_ref().is_none_or(|l| l.id == id),
            "lease filed under another ID"
        );
        lease
    }

    pub fn time_to_live(&self, id: LeaseId, now_us: i64) -> i64 {
        match self.leases.get(&id) {
            None => -1,
            // Go's int64(float seconds) truncates toward zero.
            Some(l) => (l.deadline_us - now_us) / 1_000_000,
        }
    }

    pub fn exists(&self, id: LeaseId) -> bool {
        self.leases.contains_key(&id)
    }

    pub fn get(&self, id: LeaseId) -> Option<&Lease> {
        self.leases.get(&id)
    }

    pub fn attach(&mut self, id: LeaseId, key: &str) {
        if let Some(l) = self.leases.get_mut(&id) {
            l.keys.insert(key.to_string());
            debug_assert!(l.keys.contains(key), "an attached key is not on its lease");
        }
    }

    pub fn detach(&mut self, id: LeaseId, key: &str) {
        if let Some(l) = self.leases.get_mut(&id) {
            l.keys.remove(key);
            debug_assert!(
                !l.keys.contains(key),
                "a detached key is still on its lease"
            );
        }
    }

    pub fn len(&self) -> usize {
        self.leases.len()
    }

    /// Every lease's (deadline µs, TTL s): what a leader's lessor holds in memory.
    pub fn deadlines(&self) -> BTreeMap<LeaseId, (i64, i64)> {
        self.leases
            .iter()
            .map(|(id, l)| (*id, (l.deadline_us, l.ttl_s)))
            .collect()
    }

    /// A new leader's `Promote(extend)`: every lease's deadline becomes `now_us + extend_us +
    /// TTL` of the new leader's clock (`Lease.refresh(extend)`). How many leases it extended.
    pub fn promote(&mut self, now_us: i64, extend_us: i64) -> usize {
        assert!(extend_us >= 0, "Promote extends, never shortens");
        for l in self.leases.values_mut() {
            l.deadline_us = now_us + extend_us + l.ttl_s * 1_000_000;
            // Never shorter than a fresh renewal on the new leader's clock. (A deadline set on
            // a former leader's skewed clock may have been later: etcd's `refresh` resets it the
            // same way, so "later than before" is not an invariant of etcd.)
            debug_assert!(l.deadline_us >= now_us + l.ttl_s * 1_000_000);
        }
        self.leases.len()
    }

    pub fn is_empty(&self) -> bool {
        self.leases.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lessor() -> Lessor {
        Lessor::new(2, IdGen::new(0x8e9e, 1_700_000_000_000))
    }

    #[test]
    fn a_short_ttl_is_raised_to_the_minimum() {
        let mut l = lessor();
        let g = l.grant(1, 0).unwrap();
        assert_eq!(g.ttl_s, 2);
        assert_eq!(l.get(g.id).unwrap().deadline_us, 2_000_000);
        assert!(l.grant(TTL_S_MAX + 1, 0).is_err());
    }

    #[test]
    fn deadline_is_apply_time_plus_ttl_and_expiry_is_at_the_deadline() {
        let mut l = lessor();
        let g = l.grant(5, 1_000).unwrap();
        assert_eq!(l.renew(g.id, 3_000_000), Renewal::Renewed(5));
        assert_eq!(l.get(g.id).unwrap().deadline_us, 8_000_000);
        assert!(l.expired(7_999_999).is_empty());
        assert_eq!(l.expired(8_000_000), vec![g.id]);
        // Renewing once the deadline has passed fails: it cannot be saved.
        assert_eq!(l.renew(g.id, 8_000_000), Renewal::Expired);
        assert_eq!(l.get(g.id).unwrap().deadline_us, 8_000_000);
        assert!(l.revoke(g.id).is_some());
        assert_eq!(l.renew(g.id, 8_000_001), Renewal::NotFound);
    }

    #[test]
    fn promote_extends_every_lease_by_the_election_timeout_past_its_ttl() {
        let mut l = lessor();
        let a = l.grant(2, 0).unwrap().id;
        let b = l.grant(5, 0).unwrap().id;
        assert_eq!(l.promote(10_000_000, 1_000_000), 2);
        assert_eq!(l.get(a).unwrap().deadline_us, 13_000_000);
        assert_eq!(l.get(b).unwrap().deadline_us, 16_000_000);
        assert_eq!(l.deadlines()[&a], (13_000_000, 2));
    }

    #[test]
    fn time_to_live_truncates_like_go_and_says_minus_one_when_gone() {
        let mut l = lessor();
        let g = l.grant(2, 0).unwrap();
        assert_eq!(l.time_to_live(g.id, 0), 2);
        assert_eq!(l.time_to_live(g.id, 1), 1);
        assert_eq!(l.time_to_live(g.id, 1_999_999), 0);
        assert_eq!(l.time_to_live(g.id, 2_500_000), 0);
        l.revoke(g.id);
        assert_eq!(l.time_to_live(g.id, 0), -1);
    }

    #[test]
    fn ids_carry_the_member_prefix_and_are_unique_positive() {
        let mut l = lessor();
        let a = l.grant(2, 0).unwrap().id;
        l.draw_request_id();
        let b = l.grant(2, 0).unwrap().id;
        assert!(a > 0 && b > a + 1, "{a:x} {b:x}");
        assert_eq!(a as u64 >> 48, 0x8e9e & 0x7fff);
    }
}
