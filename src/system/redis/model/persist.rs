//! What survives a crash of one node, per [`Persistence`]: the node's "disk".
//!
//! The model's crash is a machine crash (power loss, a VM killed): what was written but not
//! fsynced is lost. (A `kill -9` of the process alone normally loses nothing acknowledged
//! under AOF: Redis writes the AOF buffer to the page cache in `beforeSleep`, before it sends
//! the replies; the harsher crash is the one the Redlock document's warning is about.)
//!
//! - `none` (`--save "" --appendonly no`): nothing survives.
//! - `aof-always`: every acknowledged write survives; Redis appends it and fsyncs before it
//!   answers (`src/aof.c`, `flushAppendOnlyFile`, `server.aof_fsync == AOF_FSYNC_ALWAYS`).
//! - `aof-everysec`: the writes up to the last fsync survive; Redis fsyncs once a second
//!   (`flushAppendOnlyFile`, `AOF_FSYNC_EVERYSEC`). The model fsyncs every
//!   [`Config::fsync_every_ms`](super::config::Config) of the node's monotonic timer.
//! - `rdb`: the last snapshot survives. Redis's built-in save points are `save 3600 1 300 100
//!   60 10000` (`src/config.c`); `serverCron` (`src/server.c`) saves when, for one of them,
//!   at least `changes` writes happened and more than `seconds` passed since the last save
//!   (`server.dirty >= sp->changes && server.unixtime - server.lastsave > sp->seconds`), by
//!   the wall clock's seconds.
//!
//! On boot the node loads the durable copy and skips the keys already past their absolute
//! expiry by its wall clock (`src/rdb.c`, `rdbLoadRioWithLoadingCtx`: a master does not load
//! an expired key). The other keys keep their absolute expiry: time "still elapses" while
//! the server is off.

use super::store::{is_expired, Entry, Store};
use crate::redis::Persistence;
use std::collections::BTreeMap;

/// Redis's built-in RDB save points, `(seconds, changes)` (`src/config.c`, the default of
/// `save`).
pub const SAVE_POINTS: [(i64, u64); 3] = [(3600, 1), (300, 100), (60, 10_000)];
/// Most unsynced key changes an everysec AOF holds before it fsyncs early (a limit on
/// everything; it only makes the model more durable, never less).
pub const UNSYNCED_MAX: usize = 1_000_000;

/// The durable side of one node. It outlives the node's crashes.
#[derive(Debug, Clone)]
pub struct Disk {
    mode: Persistence,
    /// What a boot loads.
    durable: Store,
    /// `aof-everysec`: each key changed since the last fsync, with its entry after the
    /// change (`None`: deleted). Written, not yet durable.
    unsynced: BTreeMap<String, Option<Entry>>,
    /// `rdb`: changes since the last save (`server.dirty`).
    dirty: u64,
    /// `rdb`: wall-clock second of the last save, or of the boot (`server.lastsave`).
    last_save_s: i64,
    fsyncs: u64,
    saves: u64,
}

impl Disk {
    /// An empty disk for `mode`, for a node holding at most `keys_max` keys.
    pub fn new(mode: Persistence, keys_max: usize) -> Self {
        Disk {
            mode,
            durable: Store::new(keys_max),
            unsynced: BTreeMap::new(),
            dirty: 0,
            last_save_s: 0,
            fsyncs: 0,
            saves: 0,
        }
    }

    /// The copy a boot loads.
    pub fn durable(&self) -> &Store {
        &self.durable
    }

    /// Changes written but not yet durable (`aof-everysec`).
    pub fn unsynced(&self) -> usize {
        self.unsynced.len()
    }

    pub fn fsyncs(&self) -> u64 {
        self.fsyncs
    }

    pub fn saves(&self) -> u64 {
        self.saves
    }

    /// Records that `key` changed to `after` (`None`: deleted). `counts` says whether the
    /// change is a command's (it counts toward the RDB save points) or passive expiry's (it
    /// does not; it is in the AOF, as Redis propagates a `DEL` for it).
    pub fn note(&mut self, key: &str, after: Option<&Entry>, counts: bool) {
        match self.mode {
            Persistence::None => {}
            Persistence::AofAlways => self.durable.restore(key, after.cloned()),
            Persistence::AofEverysec => {
                self.unsynced.insert(key.to_string(), after.cloned());
                if self.unsynced.len() >= UNSYNCED_MAX {
                    self.fsync();
                }
            }
            Persistence::Rdb => self.dirty += u64::from(counts),
        }
        debug_assert!(self.unsynced.len() < UNSYNCED_MAX);
    }

    /// `aof-everysec`'s fsync: what was written becomes durable. Deletions first, so that
    /// the durable copy never holds more keys than the node may.
    pub fn fsync(&mut self) {
        let unsynced = std::mem::take(&mut self.unsynced);
        let (deleted, set): (Vec<_>, Vec<_>) = unsynced.into_iter().partition(|(_, e)| e.is_none());
        for (key, entry) in deleted.into_iter().chain(set) {
            self.durable.restore(&key, entry);
        }
        self.fsyncs += 1;
        assert!(self.unsynced.is_empty(), "an fsync leaves nothing unsynced");
    }

    /// `serverCron`'s check of the save points at wall second `now_s`: snapshots `live` when
    /// one is reached. True when it saved.
    pub fn cron(&mut self, live: &Store, now_s: i64) -> bool {
        if self.mode != Persistence::Rdb {
            return false;
        }
        let due = SAVE_POINTS
            .iter()
            .any(|&(seconds, changes)| self.dirty >= changes && now_s - self.last_save_s > seconds);
        if due {
            self.durable = live.clone();
            self.dirty = 0;
            self.last_save_s = now_s;
            self.saves += 1;
            assert_eq!(
                self.durable.len(),
                live.len(),
                "a snapshot copies every key"
            );
        }
        due
    }

    /// A boot at wall time `now_ms`: forgets what was not durable, and answers the keyspace
    /// the node starts with: the durable keys not expired at `now_ms`, with their absolute
    /// expiry. The durable copy becomes that keyspace (an expired key is gone for good, as
    /// the next save or AOF rewrite would drop it; only a wall clock stepped back past such
    /// a deadline could tell).
    pub fn load(&mut self, now_ms: i64) -> Store {
        self.unsynced.clear();
        self.dirty = 0;
        self.last_save_s = now_ms.div_euclid(1000);
        let mut live = Store::new(self.durable.keys_max());
        for (key, entry) in self.durable.entries() {
            if !is_expired(entry.expire_at_ms, now_ms) {
                live.restore(key, Some(entry.clone()));
            }
        }
        if self.mode == Persistence::None {
            assert!(live.is_empty(), "nothing survives without persistence");
        }
        self.durable = live.clone();
        debug_assert!(live
            .entries()
            .all(|(_, e)| !is_expired(e.expire_at_ms, now_ms)));
        live
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs `SET key value NX PX px_ms` at `now_ms` on `live`, noting the change on `disk`.
    fn set(live: &mut Store, disk: &mut Disk, key: &str, px_ms: i64, now_ms: i64) {
        assert_eq!(live.set_nx_px(key, "v", px_ms, now_ms), Ok(true));
        disk.note(key, live.entry(key), true);
    }

    fn del(live: &mut Store, disk: &mut Disk, key: &str, now_ms: i64) {
        assert_eq!(live.del(key, now_ms), Ok(true));
        disk.note(key, None, true);
    }

    fn world(mode: Persistence) -> (Store, Disk) {
        (Store::new(1000), Disk::new(mode, 1000))
    }

    #[test]
    fn without_persistence_nothing_survives() {
        let (mut live, mut disk) = world(Persistence::None);
        set(&mut live, &mut disk, "k", 60_000, 0);
        assert!(!disk.cron(&live, 100_000));
        assert!(disk.load(10).is_empty());
    }

    #[test]
    fn aof_always_keeps_every_acknowledged_write() {
        let (mut live, mut disk) = world(Persistence::AofAlways);
        set(&mut live, &mut disk, "a", 60_000, 0);
        set(&mut live, &mut disk, "b", 60_000, 5);
        del(&mut live, &mut disk, "a", 6);
        let loaded = disk.load(7);
        assert_eq!(loaded.entry("a"), None);
        assert_eq!(loaded.entry("b"), live.entry("b"));
    }

    #[test]
    fn aof_everysec_keeps_what_was_fsynced_only() {
        let (mut live, mut disk) = world(Persistence::AofEverysec);
        set(&mut live, &mut disk, "early", 60_000, 0);
        disk.fsync();
        set(&mut live, &mut disk, "late", 60_000, 10);
        del(&mut live, &mut disk, "early", 20);
        assert_eq!(disk.unsynced(), 2);
        let loaded = disk.load(30);
        assert!(
            loaded.entry("early").is_some(),
            "its deletion was not synced"
        );
        assert!(
            loaded.entry("late").is_none(),
            "written after the last fsync"
        );
        assert_eq!(disk.unsynced(), 0, "a boot forgets the unsynced writes");
        // After an fsync the durable copy is the live keyspace.
        let (mut live, mut disk) = world(Persistence::AofEverysec);
        set(&mut live, &mut disk, "a", 60_000, 0);
        set(&mut live, &mut disk, "b", 60_000, 0);
        del(&mut live, &mut disk, "a", 1);
        disk.fsync();
        let durable: Vec<_> = disk.durable().entries().collect();
        assert_eq!(durable, live.entries().collect::<Vec<_>>());
    }

    #[test]
    fn rdb_saves_at_the_built_in_save_points_by_wall_seconds() {
        let (mut live, mut disk) = world(Persistence::Rdb);
        assert_eq!(disk.load(0).len(), 0);
        set(&mut live, &mut disk, "k", 86_400_000, 0);
        // One change: saved only once more than 3600 s passed.
        assert!(!disk.cron(&live, 3600));
        assert_eq!(
            disk.load(3_600_000).len(),
            0,
            "a crash before the save loses it"
        );
        set(&mut live, &mut disk, "k2", 86_400_000, 0);
        assert!(!disk.cron(&live, 3600 + 3600));
        assert!(disk.cron(&live, 3600 + 3601));
        assert_eq!(disk.saves(), 1);
        assert!(!disk.cron(&live, 100_000), "no change since the save");
        // 100 changes: saved after more than 300 s.
        for i in 0..100 {
            set(&mut live, &mut disk, &format!("n{i}"), 86_400_000, 0);
        }
        assert!(!disk.cron(&live, 3600 + 3601 + 300));
        assert!(disk.cron(&live, 3600 + 3601 + 301));
        assert_eq!(disk.durable().len(), 102);
    }

    #[test]
    fn restored_keys_keep_their_absolute_expiry_and_expired_ones_are_skipped() {
        let (mut live, mut disk) = world(Persistence::AofAlways);
        set(&mut live, &mut disk, "short", 2_000, 1_000);
        set(&mut live, &mut disk, "long", 60_000, 1_000);
        // Down 1.5 s: both load; their deadlines did not move.
        let loaded = disk.load(2_500);
        assert_eq!(loaded.entry("short").unwrap().expire_at_ms, Some(3_000));
        assert_eq!(loaded.entry("long").unwrap().expire_at_ms, Some(61_000));
        // At the deadline a key still loads (`expiretime < now` skips), one ms later not.
        assert!(disk.clone().load(3_000).entry("short").is_some());
        let loaded = disk.load(3_001);
        assert!(loaded.entry("short").is_none());
        assert!(disk.durable().entry("short").is_none());
        assert_eq!(loaded.len(), 1);
    }
}
