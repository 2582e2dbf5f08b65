//! One-shot data watches, as ZooKeeper 3.8.0's `zookeeper-server/src/main/java/org/apache/
//! zookeeper/server/watch/WatchManager.java` (class `WatchManager`, `addWatch` and
//! `triggerWatch`) holds the `dataWatches` of `DataTree`: `exists` and `getData` register one,
//! the next change of the path fires it once and removes it (a standard watch is not
//! persistent). The model answers the fired watches as [`WatchEvent`]s for the caller to deliver.

use super::error::{ZkError, ZkResult};
use super::session::SessionId;
use std::collections::{BTreeMap, BTreeSet};

/// `Watcher.Event.EventType`, the kinds a data watch fires with (`DataTree.createNode`,
/// `deleteNode`, `setData`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum EventKind {
    NodeCreated,
    NodeDeleted,
    NodeDataChanged,
}

/// A fired watch: which session's watcher, which path, what happened.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct WatchEvent {
    pub session: SessionId,
    pub path: String,
    pub kind: EventKind,
}

/// The data watches: path → the sessions watching it. The watcher in ZooKeeper is the client's
/// connection (`ServerCnxn`); the model names it by its session. A set, as `WatchManager`'s: the
/// same watcher registering twice on a path is fired once.
#[derive(Debug, Clone, Default)]
pub struct Watches {
    by_path: BTreeMap<String, BTreeSet<SessionId>>,
    count: usize,
    /// A limit on everything: registrations past this are refused (ZooKeeper has none).
    watches_max: usize,
}

impl Watches {
    pub fn new(watches_max: usize) -> Self {
        Self {
            by_path: BTreeMap::new(),
            count: 0,
            watches_max,
        }
    }

    pub fn count(&self) -> usize {
        self.count
    }

    /// `addWatch(path, watcher)`.
    pub fn add(&mut self, path: &str, session: SessionId) -> ZkResult<()> {
        if self
            .by_path
            .get(path)
            .is_some_and(|set| set.contains(&session))
        {
            return Ok(());
        }
        if self.count >= self.watches_max {
            return Err(ZkError::ModelLimit { what: "watches" });
        }
        self.by_path
            .entry(path.to_string())
            .or_default()
            .insert(session);
        self.count += 1;
        Ok(())
    }

    /// `triggerWatch(path, type)`: every watcher of `path` fires once and is removed.
    pub fn trigger(&mut self, path: &str, kind: EventKind) -> Vec<WatchEvent> {
        let Some(sessions) = self.by_path.remove(path) else {
            return Vec::new();
        };
        assert!(self.count >= sessions.len(), "the count covers every watch");
        self.count -= sessions.len();
        sessions
            .into_iter()
            .map(|session| WatchEvent {
                session,
                path: path.to_string(),
                kind,
            })
            .collect()
    }

    /// A closed connection's watches go with it (`DataTree.removeCnxn` →
    /// `WatchManager.removeWatcher`).
    pub fn remove_session(&mut self, session: SessionId) {
        let mut emptied = Vec::new();
        for (path, sessions) in self.by_path.iter_mut() {
            if sessions.remove(&session) {
                self.count -= 1;
            }
            if sessions.is_empty() {
                emptied.push(path.clone());
            }
        }
        for path in emptied {
            self.by_path.remove(&path);
        }
    }

    pub fn check_invariants(&self) {
        let counted: usize = self.by_path.values().map(BTreeSet::len).sum();
        assert_eq!(counted, self.count, "the watch count agrees with the table");
        assert!(self.count <= self.watches_max, "watches over their bound");
        assert!(
            self.by_path.values().all(|set| !set.is_empty()),
            "no empty watch set is kept"
        );
    }
}
