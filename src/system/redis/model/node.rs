//! One Redis node as the server holds it: its live keyspace and its disk behind one lock, its
//! clock and its configuration. A [`Node`] outlives the madsim node that serves it, as a
//! machine's disk outlives a crash of its process: a madsim `kill` drops the server's tasks,
//! and the next boot ([`Node::boot`]) replaces the live keyspace with what persisted.
//!
//! Time: Redis judges expiry by its wall clock (`src/server.c`, `mstime()` from
//! `gettimeofday`, issue redis/redis#416), so the node reads [`NodeClock::now_us`] (offset,
//! steps and drift), never its monotonic clock, for every deadline. Only the background
//! fsync and cron run on the node's timer, as Redis's event loop does (`src/ae.c`,
//! monotonic).

use super::config::Config;
use super::observe::{self, Observer};
use super::persist::Disk;
use super::store::{is_expired, Store};
use super::wire::{Request, Response};
use crate::clock::NodeClock;
use crate::history::EventKind;
use crate::redis::{Persistence, RedisResult};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Mutex, MutexGuard, OnceLock};

/// What a node holds: live keys (lost at a crash) and its disk (kept).
#[derive(Debug)]
struct State {
    live: Store,
    disk: Disk,
    /// How many times the node booted.
    boots: u64,
    /// Commands applied since the node was made, across boots.
    commands: u64,
}

/// One Redis node: its state, its clock and its configuration.
#[derive(Debug)]
pub struct Node {
    cfg: Config,
    clock: NodeClock,
    /// An offset of the wall clock set while the node runs, ms, on top of the clock's planned
    /// skew: what `date -s` (or the real suite's offset file) does to a real server. A world's
    /// faults plan their steps in the [`Skew`](crate::clock::Skew); this is for a probe that
    /// steps the clock at a time it only knows while it runs (`calibrate::redis`). 0 unless set.
    wall_offset_ms: AtomicI64,
    state: Mutex<State>,
    /// Who hears of the node's key changes, clock steps and boots (the world, for the
    /// history); unset, the node tells nothing and clones nothing for it.
    observer: OnceLock<Observer>,
}

impl Node {
    /// A node that has never run: empty keyspace, empty disk. Panics on a configuration
    /// outside its limits (a bug of the caller, not an input the node must survive).
    pub fn new(cfg: Config, clock: NodeClock) -> Self {
        if let Err(why) = cfg.validate() {
            panic!("redis model config: {why}");
        }
        let state = State {
            live: Store::new(cfg.keys_max),
            disk: Disk::new(cfg.persistence, cfg.keys_max),
            boots: 0,
            commands: 0,
        };
        assert_eq!(state.live.keys_max(), cfg.keys_max);
        Node {
            cfg,
            clock,
            wall_offset_ms: AtomicI64::new(0),
            state: Mutex::new(state),
            observer: OnceLock::new(),
        }
    }

    /// Calls `tell` at every event of the node (its lock key's changes, clock steps and boots,
    /// as the history's [`EventKind`]s: the world records them).
    /// Set once, before the node first boots. Panics if set twice.
    pub fn observe(&self, tell: observe::Tell) {
        assert_eq!(
            self.boots(),
            0,
            "an observer hears the node from its first boot"
        );
        let set = self.observer.set(Observer::new(tell));
        assert!(set.is_ok(), "a node has one observer");
    }

    fn tell(&self, events: impl IntoIterator<Item = EventKind>) {
        if let Some(o) = self.observer.get() {
            for e in events {
                o.tell(e);
            }
        }
    }

    pub fn config(&self) -> &Config {
        &self.cfg
    }

    pub fn clock(&self) -> &NodeClock {
        &self.clock
    }

    /// The node's wall time, ms (`mstime()`): its perceived clock plus the offset set at run
    /// time, floored to the ms.
    pub fn now_ms(&self) -> i64 {
        self.clock.now_us().div_euclid(1000) + self.wall_offset_ms.load(Ordering::Relaxed)
    }

    /// Steps the node's wall clock to `offset_ms` ahead of its planned clock (negative: behind),
    /// at once, as writing the real server's offset file does. Its timers do not move (they run
    /// on the monotonic clock). Panics past [`OFFSET_MS_MAX`](crate::clock::OFFSET_MS_MAX).
    pub fn set_wall_offset_ms(&self, offset_ms: i64) {
        assert!(
            offset_ms.abs() <= crate::clock::OFFSET_MS_MAX,
            "wall offset {offset_ms} ms past the clock's limit"
        );
        self.wall_offset_ms.store(offset_ms, Ordering::Relaxed);
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock is already a failed run; the state is still whole
        // (every change is one map operation), so a poisoned lock is taken as it is.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A boot, after a crash or the first: the live keyspace becomes the durable copy's
    /// keys not expired at the node's wall time. Answers how many keys it loaded.
    pub fn boot(&self) -> usize {
        let now_ms = self.now_ms();
        if let Some(o) = self.observer.get() {
            o.tell_steps(&self.clock);
        }
        let mut s = self.state();
        // What it held live when it went down and had not expired since, for the observer.
        let down: Vec<_> = match self.observer.get() {
            Some(_) => s
                .live
                .entries()
                .filter(|(_, e)| !is_expired(e.expire_at_ms, now_ms))
                .map(|(k, e)| (k.clone(), e.clone()))
                .collect(),
            None => Vec::new(),
        };
        s.live = s.disk.load(now_ms);
        s.boots += 1;
        assert!(
            s.live.len() <= self.cfg.keys_max,
            "loaded past the key limit"
        );
        assert!(
            s.disk.unsynced() == 0,
            "a boot starts with nothing unsynced"
        );
        // The old live keyspace is gone: the node holds exactly what it loaded.
        debug_assert!(s.live.entries().eq(s.disk.durable().entries()));
        let (loaded, boots) = (s.live.len(), s.boots);
        let told = self
            .observer
            .get()
            .map(|_| observe::booted(boots, self.cfg.persistence, down, &s.live));
        drop(s);
        self.tell(told);
        loaded
    }

    /// How many times the node booted.
    pub fn boots(&self) -> u64 {
        self.state().boots
    }

    /// Commands applied since the node was made, across boots.
    pub fn commands(&self) -> u64 {
        self.state().commands
    }

    /// Keys held now, expired or not (active expiry is not modelled).
    pub fn keys(&self) -> usize {
        self.state().live.len()
    }

    /// Keys a boot would load now, before skipping the expired ones.
    pub fn durable_keys(&self) -> usize {
        self.state().disk.durable().len()
    }

    /// How many fsyncs (`aof-everysec`) and RDB saves the disk took, across boots.
    pub fn fsyncs_and_saves(&self) -> (u64, u64) {
        let s = self.state();
        (s.disk.fsyncs(), s.disk.saves())
    }

    /// `aof-everysec`'s fsync (the server's background task calls it every second).
    pub fn fsync(&self) {
        let mut s = self.state();
        s.disk.fsync();
        // After an fsync an AOF's durable copy is exactly the live keyspace.
        let aof = matches!(
            self.cfg.persistence,
            Persistence::AofEverysec | Persistence::AofAlways
        );
        debug_assert!(!aof || s.disk.durable().entries().eq(s.live.entries()));
    }

    /// `serverCron` (the server's background task calls it at `hz`): active expiry when the
    /// configuration asks for it, then the RDB save points. True when it saved.
    pub fn cron(&self) -> bool {
        let now_ms = self.now_ms();
        let mut s = self.state();
        let State { live, disk, .. } = &mut *s;
        if self.cfg.active_expire {
            // Redis propagates a DEL for each (`deleteExpiredKeyAndPropagate`): in the AOF,
            // not a change toward the save points.
            for key in live.expire_all(now_ms) {
                disk.note(&key, None, false);
            }
        }
        let saved = disk.cron(live, now_ms.div_euclid(1000));
        debug_assert!(!saved || disk.durable().len() == live.len());
        saved
    }

    /// Applies one command atomically at the node's wall time, and answers it. Never
    /// panics on a request: bad input is answered with an error.
    pub fn apply(&self, req: &Request) -> Response {
        let now_ms = self.now_ms();
        let key = req.key();
        let watched = self.observer.get().inspect(|o| o.tell_steps(&self.clock));
        let mut s = self.state();
        s.commands += 1;
        let State { live, disk, .. } = &mut *s;
        // The key as it was, for the observer, only when passive expiry is about to take it.
        let prior = watched.and_then(|_| {
            let e = live.entry(key)?;
            is_expired(e.expire_at_ms, now_ms).then(|| e.clone())
        });
        let mut told = Vec::new();
        // Passive expiry first, as the command's lookup would: recorded as a deletion
        // that is not the command's own change.
        if live.expire_if_needed(key, now_ms) {
            disk.note(key, None, false);
            told.extend(prior.map(|e| observe::expired(key, e, now_ms)));
        }
        // Without persistence the disk notes nothing: no copy of the entry to compare (a
        // clone and a comparison per command saved, on Redlock's hot path).
        // The observer needs the entry as it was too, when there is one.
        let noted = self.cfg.persistence != Persistence::None;
        let before = (noted || watched.is_some()).then(|| live.entry(key).cloned());
        let answer = run(live, req, now_ms);
        let after = live.entry(key);
        if let (true, Some(before)) = (noted, &before) {
            if before.as_ref() != after {
                disk.note(key, after, true);
            }
        }
        assert!(live.len() <= self.cfg.keys_max, "key limit");
        debug_assert!(after.is_none_or(|e| !is_expired(e.expire_at_ms, now_ms)));
        if self.cfg.persistence == Persistence::AofAlways {
            debug_assert_eq!(disk.durable().entry(key), live.entry(key));
        }
        if watched.is_some() {
            told.extend(observe::command(
                req,
                before.flatten().as_ref(),
                after,
                &answer,
            ));
        }
        drop(s);
        self.tell(told);
        answer
    }
}

/// One command on the keyspace, at `now_ms` (a script's start time for the scripts).
fn run(live: &mut Store, req: &Request, now_ms: i64) -> Response {
    fn answer<T>(r: RedisResult<T>, f: impl FnOnce(T) -> Response) -> Response {
        r.map(f).unwrap_or_else(Response::Error)
    }
    match req {
        Request::SetNxPx { key, value, px_ms } => {
            answer(live.set_nx_px(key, value, *px_ms, now_ms), Response::Bool)
        }
        Request::Get { key } => answer(live.get(key, now_ms), Response::Value),
        Request::Del { key } => answer(live.del(key, now_ms), Response::Bool),
        Request::Pttl { key } => answer(live.pttl(key, now_ms), Response::Int),
        Request::Pexpire { key, px_ms } => {
            answer(live.pexpire(key, *px_ms, now_ms), Response::Bool)
        }
        Request::Incr { key } => answer(live.incr(key, now_ms), Response::Int),
        Request::DelIfEq { key, value } => {
            answer(live.del_if_eq(key, value, now_ms), Response::Bool)
        }
        Request::PexpireIfEq { key, value, px_ms } => answer(
            live.pexpire_if_eq(key, value, *px_ms, now_ms),
            Response::Bool,
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_answers_every_command_and_errors_as_answers() {
        let mut live = Store::new(10);
        let set = |px_ms| Request::SetNxPx {
            key: "k".into(),
            value: "v".into(),
            px_ms,
        };
        assert_eq!(run(&mut live, &set(1000), 0), Response::Bool(true));
        assert_eq!(run(&mut live, &set(1000), 0), Response::Bool(false));
        assert!(matches!(run(&mut live, &set(0), 0), Response::Error(_)));
        let pttl = Request::Pttl { key: "k".into() };
        assert_eq!(run(&mut live, &pttl, 400), Response::Int(600));
        let incr = Request::Incr { key: "k".into() };
        assert!(matches!(run(&mut live, &incr, 0), Response::Error(_)));
    }
}
