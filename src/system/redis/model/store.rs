//! The keyspace of one Redis node: key → (value, absolute expiry in the node's wall-clock ms).
//!
//! Every operation is a pure function of the state and the node's wall time `now_ms`, so the
//! rules unit-test without a runtime. Each rule cites where Redis 7.0.15 does it.
//!
//! The model holds strings only (a lock client stores nothing else), so Redis's `WRONGTYPE`
//! never arises here: `INCR` of a string that is not an integer is answered as Redis answers
//! it, "ERR value is not an integer or out of range" ([`RedisError::Other`]), and
//! [`RedisError::WrongType`] stays reserved for keys of other types, which the model has not.

use crate::redis::{RedisError, RedisResult, PTTL_MISSING, PTTL_PERSISTENT, PX_MS_MAX};
use std::collections::BTreeMap;

/// Longest key, bytes: a limit on everything (Redis allows 512 MB; a lock key is short).
pub const KEY_BYTES_MAX: usize = 1024;
/// Longest value, bytes (the same reasoning: a lock value is 20 random bytes, hex or base64).
pub const VALUE_BYTES_MAX: usize = 4096;

/// Redis's answer to a write that would grow memory past `maxmemory` (`server.c`,
/// `shared.oomerr`); the model's `maxmemory` is a count of keys.
pub const OOM: &str = "OOM command not allowed when used memory > 'maxmemory'.";

/// One key's value and expiry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub value: String,
    /// Absolute expiry in the node's wall-clock ms, or `None` for a persistent key.
    pub expire_at_ms: Option<i64>,
}

/// The keys of one node, at most `keys_max` of them.
#[derive(Debug, Clone)]
pub struct Store {
    keys: BTreeMap<String, Entry>,
    keys_max: usize,
}

fn other(why: impl Into<String>) -> RedisError {
    RedisError::Other { why: why.into() }
}

/// Rejects what the model refuses to store (model limits, not Redis's: Redis takes an
/// empty key and keys up to 512 MB).
fn check_key(key: &str) -> RedisResult<()> {
    if key.is_empty() {
        return Err(other("ERR empty key (fencelab model limit)"));
    }
    if key.len() > KEY_BYTES_MAX {
        return Err(other(format!(
            "ERR key longer than {KEY_BYTES_MAX} bytes (fencelab model limit)"
        )));
    }
    Ok(())
}

fn check_value(value: &str) -> RedisResult<()> {
    if value.len() > VALUE_BYTES_MAX {
        return Err(other(format!(
            "ERR value longer than {VALUE_BYTES_MAX} bytes (fencelab model limit)"
        )));
    }
    Ok(())
}

/// Whether a key with this expiry is expired at `now_ms`: `now > when`, strictly (`src/db.c`,
/// `keyIsExpired`: `return now > when;`). A key is therefore still visible at its deadline
/// `when` and gone from `when + 1`.
pub fn is_expired(expire_at_ms: Option<i64>, now_ms: i64) -> bool {
    matches!(expire_at_ms, Some(when) if now_ms > when)
}

/// Redis's integer parsing of a string value (`src/util.c`, `string2ll`): an optional `-`, then
/// digits without leading zeros, nothing else (no `+`, no spaces, no `-0`), within `i64`.
pub fn parse_integer(s: &str) -> Option<i64> {
    let digits = s.strip_prefix('-').unwrap_or(s);
    let well_formed = !digits.is_empty()
        && digits.len() <= 19
        && digits.bytes().all(|b| b.is_ascii_digit())
        && (digits == "0" || !digits.starts_with('0'))
        && s != "-0";
    if !well_formed {
        return None;
    }
    s.parse().ok()
}

impl Store {
    /// An empty keyspace holding at most `keys_max` keys.
    pub fn new(keys_max: usize) -> Self {
        assert!(keys_max > 0, "a node must hold at least one key");
        Store {
            keys: BTreeMap::new(),
            keys_max,
        }
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    pub fn keys_max(&self) -> usize {
        self.keys_max
    }

    /// A key's entry as stored, expired or not (for persistence, never for an answer).
    pub fn entry(&self, key: &str) -> Option<&Entry> {
        self.keys.get(key)
    }

    /// Every stored entry, expired or not, in key order.
    pub fn entries(&self) -> impl Iterator<Item = (&String, &Entry)> {
        self.keys.iter()
    }

    /// Puts an entry as it is (loading, or replaying a durable change). The limit holds.
    pub fn restore(&mut self, key: &str, entry: Option<Entry>) {
        match entry {
            Some(e) => {
                let grows = !self.keys.contains_key(key);
                assert!(
                    !grows || self.keys.len() < self.keys_max,
                    "restoring past the key limit"
                );
                self.keys.insert(key.to_string(), e);
            }
            None => {
                self.keys.remove(key);
            }
        }
        debug_assert!(self.keys.len() <= self.keys_max);
    }

    /// Passive expiry: deletes `key` if it is expired at `now_ms`; true when it did. Redis runs
    /// it on every access (`src/db.c`, `expireIfNeeded`, called from `lookupKeyRead` and
    /// `lookupKeyWrite`, and by `DEL` before it deletes), so an expired key is never seen,
    /// whether or not active expiry (`src/expire.c`, `activeExpireCycle`) got to it.
    pub fn expire_if_needed(&mut self, key: &str, now_ms: i64) -> bool {
        let expired = self
            .keys
            .get(key)
            .is_some_and(|e| is_expired(e.expire_at_ms, now_ms));
        if expired {
            self.keys.remove(key);
        }
        debug_assert!(self
            .keys
            .get(key)
            .is_none_or(|e| !is_expired(e.expire_at_ms, now_ms)));
        expired
    }

    /// Active expiry, simplified: deletes every key expired at `now_ms` and answers them (in
    /// key order). Redis's slow cycle (`src/expire.c`, `activeExpireCycle`) samples 20
    /// volatile keys per loop and loops while more than 10% were expired, so with few
    /// volatile keys it deletes them all, as here.
    pub fn expire_all(&mut self, now_ms: i64) -> Vec<String> {
        let expired: Vec<String> = self
            .keys
            .iter()
            .filter(|(_, e)| is_expired(e.expire_at_ms, now_ms))
            .map(|(k, _)| k.clone())
            .collect();
        for key in &expired {
            self.keys.remove(key);
        }
        debug_assert!(self
            .keys
            .values()
            .all(|e| !is_expired(e.expire_at_ms, now_ms)));
        expired
    }

    /// `lookupKeyRead`/`lookupKeyWrite`: the live entry, after passive expiry.
    fn lookup(&mut self, key: &str, now_ms: i64) -> Option<&Entry> {
        self.expire_if_needed(key, now_ms);
        self.keys.get(key)
    }

    /// Adds a new key unless the node is full (the model's `maxmemory`, a count of keys).
    fn add(&mut self, key: &str, entry: Entry) -> RedisResult<()> {
        assert!(!self.keys.contains_key(key), "add of a present key");
        if self.keys.len() >= self.keys_max {
            return Err(other(OOM));
        }
        self.keys.insert(key.to_string(), entry);
        assert!(self.keys.len() <= self.keys_max, "key limit");
        Ok(())
    }

    /// `SET key value NX PX px_ms`. The expiry is made absolute at once and stored so
    /// (`src/t_string.c`, `getExpireMillisecondsOrReply`: `*milliseconds += mstime()`;
    /// `setGenericCommand` propagates it as `PXAT`). A non-positive expiry is refused with
    /// Redis's text (`getExpireMillisecondsOrReply`); one past [`PX_MS_MAX`] is refused
    /// with the same text (the seam's limit). `NX` finds the key through `lookupKeyWrite`,
    /// so an expired holder is deleted first and the new value wins from `when + 1`.
    pub fn set_nx_px(
        &mut self,
        key: &str,
        value: &str,
        px_ms: i64,
        now_ms: i64,
    ) -> RedisResult<bool> {
        if px_ms <= 0 || px_ms > PX_MS_MAX {
            return Err(other("ERR invalid expire time in 'set' command"));
        }
        check_key(key)?;
        check_value(value)?;
        if self.lookup(key, now_ms).is_some() {
            return Ok(false);
        }
        let when = now_ms + px_ms;
        assert!(when > now_ms, "a set key's expiry is after its set time");
        let entry = Entry {
            value: value.to_string(),
            expire_at_ms: Some(when),
        };
        self.add(key, entry)?;
        Ok(true)
    }

    /// `GET key`: the value, `None` when missing or expired.
    pub fn get(&mut self, key: &str, now_ms: i64) -> RedisResult<Option<String>> {
        check_key(key)?;
        Ok(self.lookup(key, now_ms).map(|e| e.value.clone()))
    }

    /// `DEL key`: whether a live key was deleted (`src/db.c`, `delGenericCommand` runs
    /// `expireIfNeeded` first, so an expired key counts as not deleted).
    pub fn del(&mut self, key: &str, now_ms: i64) -> RedisResult<bool> {
        check_key(key)?;
        self.expire_if_needed(key, now_ms);
        Ok(self.keys.remove(key).is_some())
    }

    /// `PTTL key` (`src/expire.c`, `ttlGenericCommand`): [`PTTL_MISSING`] (-2) for a missing
    /// key, [`PTTL_PERSISTENT`] (-1) for one without expiry, else `when - now` (0 at `when`).
    pub fn pttl(&mut self, key: &str, now_ms: i64) -> RedisResult<i64> {
        check_key(key)?;
        let pttl = match self.lookup(key, now_ms) {
            None => PTTL_MISSING,
            Some(Entry {
                expire_at_ms: None, ..
            }) => PTTL_PERSISTENT,
            Some(Entry {
                expire_at_ms: Some(when),
                ..
            }) => when - now_ms,
        };
        debug_assert!(pttl >= PTTL_MISSING);
        Ok(pttl)
    }

    /// `PEXPIRE key px_ms` (`src/expire.c`, `expireGenericCommand`): false for a missing key;
    /// an expiry not after now (`px_ms <= 0`, `checkAlreadyExpired`) deletes the key and
    /// answers true; else the key gets the absolute expiry `now + px_ms`. One past
    /// [`PX_MS_MAX`] is refused (the seam's limit; Redis refuses only an overflow).
    pub fn pexpire(&mut self, key: &str, px_ms: i64, now_ms: i64) -> RedisResult<bool> {
        if px_ms > PX_MS_MAX {
            return Err(other("ERR invalid expire time in 'pexpire' command"));
        }
        check_key(key)?;
        if self.lookup(key, now_ms).is_none() {
            return Ok(false);
        }
        if px_ms <= 0 {
            self.keys.remove(key);
            return Ok(true);
        }
        let when = now_ms + px_ms;
        let entry = self.keys.get_mut(key).expect("looked up above");
        entry.expire_at_ms = Some(when);
        assert!(when > now_ms, "a new expiry is after now");
        Ok(true)
    }

    /// `INCR key` (`src/t_string.c`, `incrDecrCommand`): a missing key becomes `1` without
    /// expiry; a present one keeps its expiry (`dbOverwrite` keeps it); a value that is not an
    /// integer answers "ERR value is not an integer or out of range"
    /// (`getLongLongFromObjectOrReply`), an overflow "ERR increment or decrement would
    /// overflow".
    pub fn incr(&mut self, key: &str, now_ms: i64) -> RedisResult<i64> {
        check_key(key)?;
        let Some(entry) = self.lookup(key, now_ms) else {
            let entry = Entry {
                value: "1".into(),
                expire_at_ms: None,
            };
            self.add(key, entry)?;
            return Ok(1);
        };
        let Some(old) = parse_integer(&entry.value) else {
            return Err(other("ERR value is not an integer or out of range"));
        };
        let Some(new) = old.checked_add(1) else {
            return Err(other("ERR increment or decrement would overflow"));
        };
        let entry = self.keys.get_mut(key).expect("looked up above");
        entry.value = new.to_string();
        debug_assert_eq!(parse_integer(&entry.value), Some(new));
        Ok(new)
    }

    /// The unlock script of "Distributed Locks with Redis":
    /// `if redis.call("get",KEYS[1]) == ARGV[1] then return redis.call("del",KEYS[1]) else
    /// return 0 end`. A script runs atomically, and every key it touches is judged at the
    /// time the script started (`src/db.c`, `keyIsExpired`: inside a script,
    /// `now = scriptTimeSnapshot()`), which `started_ms` is.
    pub fn del_if_eq(&mut self, key: &str, value: &str, started_ms: i64) -> RedisResult<bool> {
        check_key(key)?;
        check_value(value)?;
        if self.get(key, started_ms)?.as_deref() != Some(value) {
            return Ok(false);
        }
        let deleted = self.del(key, started_ms)?;
        assert!(deleted, "a key just read is deleted in the same script");
        Ok(deleted)
    }

    /// The extend script: `if redis.call("get",KEYS[1]) == ARGV[1] then return
    /// redis.call("pexpire",KEYS[1],ARGV[2]) else return 0 end`, atomic, keys judged at the
    /// script's start `started_ms` as in [`Store::del_if_eq`]. (Redis 7.0's `PEXPIRE` adds the
    /// live `mstime()`, not the snapshot; a model script takes no time, so both are
    /// `started_ms`.) A bad `px_ms` is refused only when the value matched, as the script
    /// reaches `PEXPIRE` only then.
    pub fn pexpire_if_eq(
        &mut self,
        key: &str,
        value: &str,
        px_ms: i64,
        started_ms: i64,
    ) -> RedisResult<bool> {
        check_key(key)?;
        check_value(value)?;
        if self.get(key, started_ms)?.as_deref() != Some(value) {
            return Ok(false);
        }
        self.pexpire(key, px_ms, started_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> Store {
        Store::new(100)
    }

    #[test]
    fn a_key_is_visible_at_its_deadline_and_gone_one_ms_later() {
        let mut s = store();
        assert_eq!(s.set_nx_px("k", "a", 2000, 1000), Ok(true));
        assert_eq!(s.entry("k").unwrap().expire_at_ms, Some(3000));
        assert_eq!(s.get("k", 3000), Ok(Some("a".into())));
        assert_eq!(s.pttl("k", 3000), Ok(0));
        assert_eq!(s.get("k", 3001), Ok(None));
        assert!(s.is_empty(), "passive expiry deleted it");
    }

    #[test]
    fn active_expiry_deletes_every_expired_key_and_only_those() {
        let mut s = store();
        s.set_nx_px("a", "1", 100, 0).unwrap();
        s.set_nx_px("b", "1", 200, 0).unwrap();
        s.incr("n", 0).unwrap();
        assert_eq!(s.expire_all(100), Vec::<String>::new());
        assert_eq!(s.expire_all(150), vec!["a".to_string()]);
        // A wall clock stepped back no longer brings `a` back.
        assert_eq!(s.get("a", 50), Ok(None));
        assert_eq!(s.get("b", 50), Ok(Some("1".into())));
        assert_eq!(s.expire_all(10_000), vec!["b".to_string()]);
        assert_eq!(s.len(), 1);
    }

    #[test]
    fn set_nx_loses_until_the_deadline_and_wins_one_ms_past_it() {
        let mut s = store();
        assert_eq!(s.set_nx_px("k", "a", 2000, 0), Ok(true));
        assert_eq!(s.set_nx_px("k", "b", 2000, 1), Ok(false));
        assert_eq!(s.set_nx_px("k", "b", 2000, 2000), Ok(false));
        assert_eq!(s.set_nx_px("k", "b", 2000, 2001), Ok(true));
        assert_eq!(s.get("k", 2001), Ok(Some("b".into())));
        assert_eq!(s.entry("k").unwrap().expire_at_ms, Some(4001));
    }

    #[test]
    fn pttl_answers_missing_persistent_and_ms_left() {
        let mut s = store();
        assert_eq!(s.pttl("k", 0), Ok(PTTL_MISSING));
        assert_eq!(s.incr("n", 0), Ok(1));
        assert_eq!(s.pttl("n", 0), Ok(PTTL_PERSISTENT));
        s.set_nx_px("k", "a", 2000, 100).unwrap();
        assert_eq!(s.pttl("k", 600), Ok(1500));
        assert_eq!(s.pttl("k", 2101), Ok(PTTL_MISSING));
    }

    #[test]
    fn pexpire_sets_a_new_absolute_deadline_and_non_positive_deletes() {
        let mut s = store();
        assert_eq!(s.pexpire("k", 1000, 0), Ok(false));
        s.set_nx_px("k", "a", 2000, 0).unwrap();
        assert_eq!(s.pexpire("k", 5000, 1500), Ok(true));
        assert_eq!(s.pttl("k", 1500), Ok(5000));
        assert_eq!(s.pexpire("k", 0, 1600), Ok(true));
        assert_eq!(s.get("k", 1600), Ok(None));
        s.set_nx_px("k", "a", 2000, 0).unwrap();
        assert_eq!(s.pexpire("k", -5, 10), Ok(true));
        assert_eq!(s.pttl("k", 10), Ok(PTTL_MISSING));
        // An expired key is not extended.
        s.set_nx_px("k", "a", 100, 0).unwrap();
        assert_eq!(s.pexpire("k", 1000, 101), Ok(false));
        assert!(s.pexpire("k", PX_MS_MAX + 1, 0).is_err());
    }

    #[test]
    fn incr_counts_keeps_the_expiry_and_refuses_non_integers() {
        let mut s = store();
        assert_eq!(s.incr("n", 0), Ok(1));
        assert_eq!(s.incr("n", 0), Ok(2));
        s.set_nx_px("k", "41", 1000, 0).unwrap();
        assert_eq!(s.incr("k", 10), Ok(42));
        assert_eq!(s.entry("k").unwrap().expire_at_ms, Some(1000));
        s.set_nx_px("lock", "token-a", 1000, 0).unwrap();
        let not_int = Err(other("ERR value is not an integer or out of range"));
        assert_eq!(s.incr("lock", 0), not_int);
        s.restore(
            "big",
            Some(Entry {
                value: i64::MAX.to_string(),
                expire_at_ms: None,
            }),
        );
        assert!(s
            .incr("big", 0)
            .unwrap_err()
            .to_string()
            .contains("overflow"));
        for bad in ["+1", "01", "-0", " 1", "1 ", "", "99999999999999999999"] {
            assert_eq!(parse_integer(bad), None, "{bad:?}");
        }
        assert_eq!(parse_integer("-12"), Some(-12));
        assert_eq!(parse_integer("0"), Some(0));
    }

    #[test]
    fn scripts_compare_the_value() {
        let mut s = store();
        s.set_nx_px("k", "mine", 2000, 0).unwrap();
        assert_eq!(s.del_if_eq("k", "theirs", 10), Ok(false));
        assert_eq!(s.pexpire_if_eq("k", "theirs", 9000, 10), Ok(false));
        assert_eq!(s.pttl("k", 10), Ok(1990));
        assert_eq!(s.pexpire_if_eq("k", "mine", 9000, 10), Ok(true));
        assert_eq!(s.pttl("k", 10), Ok(9000));
        assert_eq!(s.del_if_eq("k", "mine", 20), Ok(true));
        assert_eq!(s.get("k", 20), Ok(None));
        assert_eq!(s.del_if_eq("k", "mine", 20), Ok(false));
        assert_eq!(s.pexpire_if_eq("k", "mine", 9000, 20), Ok(false));
    }

    #[test]
    fn a_script_judges_keys_at_its_start() {
        let mut s = store();
        s.set_nx_px("k", "mine", 2000, 0).unwrap();
        // Started at the deadline: the key is still there for the whole script.
        assert_eq!(s.pexpire_if_eq("k", "mine", 500, 2000), Ok(true));
        assert_eq!(s.entry("k").unwrap().expire_at_ms, Some(2500));
        assert_eq!(s.del_if_eq("k", "mine", 2500), Ok(true));
        // Started one ms past it: gone, so neither script acts.
        s.set_nx_px("k", "mine", 2000, 0).unwrap();
        assert_eq!(s.del_if_eq("k", "mine", 2001), Ok(false));
        s.set_nx_px("k", "mine", 2000, 0).unwrap();
        assert_eq!(s.pexpire_if_eq("k", "mine", 500, 2001), Ok(false));
    }

    #[test]
    fn bad_input_is_answered_with_an_error() {
        let mut s = store();
        let invalid = Err(other("ERR invalid expire time in 'set' command"));
        assert_eq!(s.set_nx_px("k", "a", 0, 0), invalid);
        assert_eq!(s.set_nx_px("k", "a", -1, 0), invalid);
        assert_eq!(s.set_nx_px("k", "a", PX_MS_MAX + 1, 0), invalid);
        assert_eq!(s.set_nx_px("k", "a", PX_MS_MAX, 0), Ok(true));
        assert!(s.set_nx_px("", "a", 1000, 0).is_err());
        assert!(s.get("", 0).is_err());
        assert!(s.del("", 0).is_err());
        assert!(s.incr(&"x".repeat(KEY_BYTES_MAX + 1), 0).is_err());
        assert!(s
            .set_nx_px("v", &"x".repeat(VALUE_BYTES_MAX + 1), 10, 0)
            .is_err());
        // A refused script extension with a matching value.
        assert!(s.pexpire_if_eq("k", "a", PX_MS_MAX + 1, 0).is_err());
    }

    #[test]
    fn a_full_node_answers_oom_and_an_expired_key_frees_its_place() {
        let mut s = Store::new(2);
        s.set_nx_px("a", "1", 100, 0).unwrap();
        s.set_nx_px("b", "1", 1000, 0).unwrap();
        assert_eq!(s.set_nx_px("c", "1", 100, 0), Err(other(OOM)));
        assert_eq!(s.incr("c", 0), Err(other(OOM)));
        assert_eq!(s.len(), 2);
        // `a` expired: a new key still finds no room (only `a` itself is looked up).
        assert_eq!(s.set_nx_px("c", "1", 100, 101), Err(other(OOM)));
        assert_eq!(s.set_nx_px("a", "2", 100, 101), Ok(true));
    }
}
