//! Watches: every change of a watched key or prefix, in revision order, from a start revision.
//!
//! Rules (etcd 3.4/3.5, `mvcc/watchable_store.go`):
//! - A watch created with a start revision at or below the current one first receives the
//!   past events from that revision on ("unsynced" watchers catch up from history), then every
//!   new event (`syncWatchers`, `notify`).
//! - A start revision older than the retained history fails ("mvcc: required revision has
//!   been compacted"). The model retains the last [`LOG_MAX`] events instead of compacting by
//!   time (etcd's default keeps everything until an explicit or periodic compaction).
//! - A delete event carries the key with `mod_revision` set to the delete's revision.

use crate::etcd::{EtcdError, EtcdResult, Keys, Revision, WatchEvent};
use std::collections::{BTreeMap, VecDeque};
use tokio::sync::mpsc::UnboundedSender;

/// Events kept for watches that start in the past.
pub const LOG_MAX: usize = 4096;
/// Most watches at once: a limit on everything.
pub const WATCHES_MAX: usize = 10_000;

fn revision_of(e: &WatchEvent) -> Revision {
    match e {
        WatchEvent::Put(kv) | WatchEvent::Delete(kv) => kv.mod_revision,
    }
}

fn key_of(e: &WatchEvent) -> &str {
    match e {
        WatchEvent::Put(kv) | WatchEvent::Delete(kv) => &kv.key,
    }
}

struct Watcher {
    keys: Keys,
    /// Events below this revision are not the watcher's (a watch may start in the future:
    /// etcd filters by the watcher's minimum revision, `watcherGroup.chooseAll`).
    min_revision: Revision,
    tx: UnboundedSender<Vec<WatchEvent>>,
}

/// Every watch of one member, and the recent events.
#[derive(Default)]
pub struct Watches {
    next_id: u64,
    watchers: BTreeMap<u64, Watcher>,
    log: VecDeque<WatchEvent>,
    /// Whether the log ever dropped a revision (then older starts are "compacted").
    trimmed: bool,
}

impl Watches {
    /// Starts a watch; past events from `start_revision` (if at or below `current`) are sent
    /// at once. Returns the watch's ID.
    pub fn watch(
        &mut self,
        keys: Keys,
        start_revision: Revision,
        current: Revision,
        tx: UnboundedSender<Vec<WatchEvent>>,
    ) -> EtcdResult<u64> {
        if self.watchers.len() >= WATCHES_MAX {
            return Err(EtcdError::Other {
                why: format!("the model holds at most {WATCHES_MAX} watches"),
            });
        }
        if start_revision > 0 && start_revision <= current {
            let oldest = self.log.front().map_or(current + 1, revision_of);
            if self.trimmed && start_revision < oldest {
                return Err(EtcdError::Other {
                    why: "mvcc: required revision has been compacted".into(),
                });
            }
            let past: Vec<WatchEvent> = self
                .log
                .iter()
                .filter(|e| revision_of(e) >= start_revision && keys.matches(key_of(e)))
                .cloned()
                .collect();
            // A watch never sends an event below its start revision, nor one it did not ask for.
            debug_assert!(past.iter().all(|e| revision_of(e) >= start_revision));
            debug_assert!(past.iter().all(|e| keys.matches(key_of(e))));
            if !past.is_empty() {
                let _ = tx.send(past);
            }
        }
        self.next_id += 1;
        let min_revision = start_revision.max(current + 1);
        // Positive space: live events start past both the request and the current revision.
        assert!(min_revision > current && min_revision >= start_revision);
        assert!(
            !self.watchers.contains_key(&self.next_id),
            "watch ID reused"
        );
        self.watchers.insert(
            self.next_id,
            Watcher {
                keys,
                min_revision,
                tx,
            },
        );
        assert!(
            self.watchers.len() <= WATCHES_MAX,
            "more watches than the limit"
        );
        Ok(self.next_id)
    }

    pub fn cancel(&mut self, id: u64) {
        self.watchers.remove(&id);
    }

    /// Delivers one transaction's events to every matching watch, and logs them.
    pub fn publish(&mut self, events: &[WatchEvent]) {
        if events.is_empty() {
            return;
        }
        // Positive space: one transaction's events share its revision.
        debug_assert!(events
            .iter()
            .all(|e| revision_of(e) == revision_of(&events[0])));
        // Events in revision order: each transaction's revision is above every logged one, so
        // a replay from the log and the live stream after it never go back.
        assert!(
            self.log
                .back()
                .is_none_or(|l| revision_of(l) < revision_of(&events[0])),
            "watch events published out of revision order"
        );
        self.watchers.retain(|_, w| {
            let mine: Vec<WatchEvent> = events
                .iter()
                .filter(|e| revision_of(e) >= w.min_revision && w.keys.matches(key_of(e)))
                .cloned()
                .collect();
            // A watch never sends an event below its start revision.
            debug_assert!(mine.iter().all(|e| revision_of(e) >= w.min_revision));
            // A watcher whose receiver is gone is dropped.
            mine.is_empty() || w.tx.send(mine).is_ok()
        });
        // Trimmed a whole revision at a time, so a replay never shows half a transaction.
        while !self.log.is_empty() && self.log.len() + events.len() > LOG_MAX {
            let oldest = self.log.front().map(revision_of);
            while self.log.front().map(revision_of) == oldest {
                self.log.pop_front();
            }
            self.trimmed = true;
        }
        self.log.extend(events.iter().take(LOG_MAX).cloned());
        // The log stays bounded, and its newest entry is this transaction's.
        assert!(self.log.len() <= LOG_MAX, "the watch log outgrew its bound");
        assert!(self.log.back().map(revision_of) == Some(revision_of(&events[0])));
    }

    pub fn len(&self) -> usize {
        self.watchers.len()
    }

    pub fn is_empty(&self) -> bool {
        self.watchers.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::etcd::KeyValue;

    fn put(key: &str, rev: Revision) -> WatchEvent {
        WatchEvent::Put(KeyValue {
            key: key.into(),
            value: String::new(),
            create_revision: rev,
            mod_revision: rev,
            version: 1,
            lease: 0,
        })
    }

    #[test]
    fn a_watch_from_the_past_replays_then_follows() {
        let mut w = Watches::default();
        w.publish(&[put("/a", 2)]);
        w.publish(&[put("/b", 3)]);
        w.publish(&[put("/a", 4)]);
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        w.watch(Keys::Exact("/a".into()), 3, 4, tx).unwrap();
        assert_eq!(rx.try_recv().unwrap(), vec![put("/a", 4)]);
        w.publish(&[put("/b", 5)]);
        w.publish(&[put("/a", 6)]);
        assert_eq!(rx.try_recv().unwrap(), vec![put("/a", 6)]);
        assert!(rx.try_recv().is_err());
    }

    #[test]
    fn a_watch_from_the_future_skips_what_comes_before() {
        let mut w = Watches::default();
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        w.watch(Keys::Prefix("/".into()), 4, 1, tx).unwrap();
        w.publish(&[put("/a", 2)]);
        w.publish(&[put("/a", 3)]);
        assert!(rx.try_recv().is_err());
        w.publish(&[put("/a", 4)]);
        assert_eq!(rx.try_recv().unwrap(), vec![put("/a", 4)]);
    }

    #[test]
    fn a_dropped_receiver_ends_its_watch() {
        let mut w = Watches::default();
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        w.watch(Keys::Prefix("/".into()), 0, 1, tx).unwrap();
        drop(rx);
        w.publish(&[put("/a", 2)]);
        assert!(w.is_empty());
    }
}
