//! What a node tells the world about its keys, for the history: the changes that explain a
//! lock (granted, refused, deleted, extended, expired, counted), its clock's steps and its
//! boots with what survived them. The world sets an [`Observer`] (as it does on the etcd
//! model's cluster, `Cluster::observe`) and records what it is told; a node without one tells
//! nothing and clones nothing.
//!
//! Bounded: one event per command that changes a key or refuses `SET NX`, none for reads
//! (`GET`, `PTTL`) unless their lookup expires the key; one per clock step; one per boot, with
//! at most [`BOOT_KEYS_MAX`] keys named. Telling adds no wake-up, task or random draw: a clock
//! step is told at the node's first command or boot after it, stamped with its planned time.

use super::store::Entry;
use super::wire::{Request, Response};
use crate::clock::{ClockStep, NodeClock};
use crate::history::EventKind;
use crate::redis::Persistence;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Most keys a boot names as kept or lost (the rest are counted only).
pub const BOOT_KEYS_MAX: usize = 8;

/// What the world does with a node's events (given by value: the world moves their strings
/// into the history rather than copying them).
pub type Tell = Box<dyn Fn(EventKind) + Send + Sync>;

/// The world's ear on one node, and the clock steps already told.
pub struct Observer {
    tell: Tell,
    steps_told: AtomicUsize,
}

impl std::fmt::Debug for Observer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Observer")
            .field("steps_told", &self.steps_told)
            .finish_non_exhaustive()
    }
}

impl Observer {
    pub fn new(tell: Tell) -> Self {
        Observer {
            tell,
            steps_told: AtomicUsize::new(0),
        }
    }

    pub fn tell(&self, event: EventKind) {
        (self.tell)(event);
    }

    /// Tells every step of `clock` whose planned time has come and that was not told yet.
    /// Steps are sorted by time (`Skew::validate`), so the ones told are a prefix.
    pub fn tell_steps(&self, clock: &NodeClock) {
        let steps: &[ClockStep] = &clock.skew().steps;
        let told = self.steps_told.load(Ordering::Relaxed);
        if told == steps.len() {
            return;
        }
        let now_us = clock.true_us();
        let due = steps
            .iter()
            .take_while(|s| s.at_ms.saturating_mul(1000) <= now_us)
            .count();
        for s in &steps[told.min(due)..due] {
            self.tell(EventKind::RedisClockStepped {
                at_ms: s.at_ms,
                delta_ms: s.delta_ms,
            });
        }
        self.steps_told.store(told.max(due), Ordering::Relaxed);
        assert!(self.steps_told.load(Ordering::Relaxed) <= steps.len());
    }
}

/// What one applied command did to its key, if it is worth telling: `before` and `after` are
/// the key's entry around the command (after passive expiry), `answer` its answer.
pub fn command(
    req: &Request,
    before: Option<&Entry>,
    after: Option<&Entry>,
    answer: &Response,
) -> Option<EventKind> {
    // Allocated only for a command worth telling (most are not: reads, refused deletes).
    let key = || req.key().to_string();
    let deadline = |e: Option<&Entry>| e.and_then(|e| e.expire_at_ms);
    match (req, answer) {
        (Request::SetNxPx { value, .. }, Response::Bool(true)) => {
            let e = after.expect("a granted SET NX leaves the key");
            debug_assert_eq!(&e.value, value);
            Some(EventKind::RedisGranted {
                key: key(),
                value: value.clone(),
                // PX always sets a deadline; i64::MAX would mean the model forgot it.
                deadline_ms: e.expire_at_ms.unwrap_or(i64::MAX),
            })
        }
        (Request::SetNxPx { value, .. }, Response::Bool(false)) => Some(EventKind::RedisRefused {
            key: key(),
            value: value.clone(),
            holder: before.map(|e| e.value.clone()).unwrap_or_default(),
            deadline_ms: deadline(before),
        }),
        (Request::Del { .. } | Request::DelIfEq { .. }, Response::Bool(true)) => {
            debug_assert!(after.is_none());
            Some(EventKind::RedisDeleted {
                key: key(),
                value: before.map(|e| e.value.clone()).unwrap_or_default(),
            })
        }
        (Request::Pexpire { .. } | Request::PexpireIfEq { .. }, Response::Bool(true)) => {
            Some(EventKind::RedisExtended {
                key: key(),
                value: after.map(|e| e.value.clone()).unwrap_or_default(),
                deadline_ms: deadline(after).unwrap_or(i64::MAX),
            })
        }
        (Request::Incr { .. }, Response::Int(value)) => Some(EventKind::RedisCounted {
            key: key(),
            value: *value,
        }),
        _ => None,
    }
}

/// The event of a passive expiry of `expired` at `now_ms`.
pub fn expired(key: &str, expired: Entry, now_ms: i64) -> EventKind {
    debug_assert!(super::store::is_expired(expired.expire_at_ms, now_ms));
    EventKind::RedisExpired {
        key: key.to_string(),
        value: expired.value,
        deadline_ms: expired.expire_at_ms.unwrap_or(i64::MIN),
        now_ms,
    }
}

/// The event of boot number `boot`: `down` is what the node held live when it went down (not
/// yet expired there), `loaded` what it holds now.
pub fn booted(
    boot: u64,
    persistence: Persistence,
    down: Vec<(String, Entry)>,
    loaded: &super::store::Store,
) -> EventKind {
    let (kept, lost): (Vec<_>, Vec<_>) = down
        .into_iter()
        .map(|(k, e)| (k, e.value))
        .partition(|(k, v)| loaded.entry(k).is_some_and(|e| &e.value == v));
    // The first few, in the order the node held them, named by key.
    let cap = |v: Vec<(String, String)>| v.into_iter().take(BOOT_KEYS_MAX).collect();
    EventKind::RedisBooted {
        boot,
        persistence: persistence.as_str().to_string(),
        loaded: loaded.len() as u64,
        kept: cap(kept),
        lost: cap(lost),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::redis::model::store::Store;

    fn entry(value: &str, expire_at_ms: i64) -> Entry {
        Entry {
            value: value.into(),
            expire_at_ms: Some(expire_at_ms),
        }
    }

    #[test]
    fn a_granted_and_a_refused_set_nx_are_told_with_their_holder_and_deadline() {
        let set = Request::SetNxPx {
            key: "k".into(),
            value: "client2:01".into(),
            px_ms: 2000,
        };
        let held = entry("client1:01", 2500);
        let refused = command(&set, Some(&held), Some(&held), &Response::Bool(false));
        assert_eq!(
            refused,
            Some(EventKind::RedisRefused {
                key: "k".into(),
                value: "client2:01".into(),
                holder: "client1:01".into(),
                deadline_ms: Some(2500),
            })
        );
        let mine = entry("client2:01", 3000);
        let granted = command(&set, None, Some(&mine), &Response::Bool(true));
        assert_eq!(
            granted,
            Some(EventKind::RedisGranted {
                key: "k".into(),
                value: "client2:01".into(),
                deadline_ms: 3000,
            })
        );
        // Negative space: a read tells nothing, nor a compare-and-delete that matched nothing.
        let get = Request::Get { key: "k".into() };
        let value = Response::Value(Some("client1:01".into()));
        assert_eq!(command(&get, Some(&held), Some(&held), &value), None);
        let del = Request::DelIfEq {
            key: "k".into(),
            value: "client9:01".into(),
        };
        let no = Response::Bool(false);
        assert_eq!(command(&del, Some(&held), Some(&held), &no), None);
    }

    #[test]
    fn a_boot_names_the_keys_it_kept_and_lost() {
        let mut loaded = Store::new(10);
        loaded.restore("kept", Some(entry("a", 9000)));
        let down = vec![
            ("kept".to_string(), entry("a", 9000)),
            ("lost".to_string(), entry("b", 9000)),
        ];
        let EventKind::RedisBooted {
            boot,
            persistence,
            kept,
            lost,
            ..
        } = booted(2, Persistence::None, down, &loaded)
        else {
            panic!("a boot tells a boot");
        };
        assert_eq!((boot, persistence.as_str()), (2, "none"));
        let named = |k: &str, v: &str| std::collections::BTreeMap::from([(k.into(), v.into())]);
        assert_eq!(kept, named("kept", "a"));
        assert_eq!(lost, named("lost", "b"));
    }
}
