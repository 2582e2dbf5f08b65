//! The leader's session table: negotiation, touches, bucketed expiry, close, and a new leader
//! re-tracking every session.
//!
//! As ZooKeeper 3.8.0's `zookeeper-server/src/main/java/org/apache/zookeeper/server/`
//! `SessionTrackerImpl.java` (class `SessionTrackerImpl`) and `ZooKeeperServer.java`
//! (`processConnectRequest`, `touch`, `submitRequestNow`, `expire`, `setMinSessionTimeout`,
//! `setMaxSessionTimeout`). Times are the server's monotonic ms, passed in.
//!
//! **A stalled server.** ZooKeeper's tracker is a thread (`SessionTrackerImpl.run`) that sleeps
//! `getWaitTime()` and then expires the polled bucket. While the JVM is stopped (SIGSTOP, a GC
//! pause) nothing runs, so nothing expires. On resume the monotonic clock has jumped: `run` finds
//! `getWaitTime() == 0` and polls bucket after bucket without sleeping until it has caught up, so
//! every session whose bucket passed during the pause expires at once. The client connections'
//! threads resume too, and a packet read before the tracker reaches a session's bucket touches it
//! and moves it out of that bucket: which wins is a race of threads. The model has no threads:
//! expiry happens only in [`SessionTracker::tick`], which catches up the same way, and the caller
//! orders the race (touch the sessions whose packets were queued, then tick, or the other way).

use super::expiry::{ExpiryQueue, QueueFull};
use std::collections::BTreeMap;

/// A session's ID (ZooKeeper's `long sessionId`).
pub type SessionId = u64;

/// ZooKeeper's `DEFAULT_TICK_TIME` (`ZooKeeperServer.java`) is 3000 ms, but the shipped sample
/// `conf/zoo_sample.cfg` and Debian's `zoo.cfg` set `tickTime=2000`, the value the calibration
/// server runs with.
pub const TICK_MS_DEFAULT: u64 = 2000;

/// How one server's sessions behave (`zoo.cfg`: `tickTime`, `minSessionTimeout`,
/// `maxSessionTimeout`) and the model's bound on them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionConfig {
    pub tick_ms: u64,
    /// `minSessionTimeout`; `None` is ZooKeeper's -1, which means 2 × tickTime
    /// (`ZooKeeperServer.setMinSessionTimeout`).
    pub min_session_timeout_ms: Option<u64>,
    /// `maxSessionTimeout`; `None` means 20 × tickTime (`setMaxSessionTimeout`).
    pub max_session_timeout_ms: Option<u64>,
    /// A limit on everything: sessions past this are refused (ZooKeeper's nearest limit is
    /// `maxClientCnxns` per client address; the model's table must be bounded).
    pub sessions_max: usize,
    /// The server's `myid`, the top byte of its session IDs (`initializeNextSessionId`).
    pub server_id: u8,
}

impl Default for SessionConfig {
    fn default() -> Self {
        Self {
            tick_ms: TICK_MS_DEFAULT,
            min_session_timeout_ms: None,
            max_session_timeout_ms: None,
            sessions_max: 10_000,
            server_id: 1,
        }
    }
}

impl SessionConfig {
    pub fn min_session_timeout_ms(&self) -> u64 {
        self.min_session_timeout_ms.unwrap_or(2 * self.tick_ms)
    }

    pub fn max_session_timeout_ms(&self) -> u64 {
        self.max_session_timeout_ms.unwrap_or(20 * self.tick_ms)
    }

    /// `ZooKeeperServer.processConnectRequest`: the requested timeout raised to the minimum, then
    /// lowered to the maximum (in that order: a minimum above the maximum yields the maximum).
    pub fn negotiate_ms(&self, requested_ms: u64) -> u64 {
        let mut timeout_ms = requested_ms;
        if timeout_ms < self.min_session_timeout_ms() {
            timeout_ms = self.min_session_timeout_ms();
        }
        if timeout_ms > self.max_session_timeout_ms() {
            timeout_ms = self.max_session_timeout_ms();
        }
        timeout_ms
    }
}

/// `SessionTrackerImpl.SessionImpl`: the negotiated timeout and whether expiry has begun.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Session {
    pub id: SessionId,
    pub timeout_ms: u64,
    /// `isClosing`: set when the tracker expires the session or a close is prepared; a closing
    /// session is touched no more (`touchSession` answers false).
    pub closing: bool,
}

/// `SessionTrackerImpl`: the sessions by ID and their expiry queue, ticked by the caller.
#[derive(Debug, Clone)]
pub struct SessionTracker {
    config: SessionConfig,
    sessions: BTreeMap<SessionId, Session>,
    queue: ExpiryQueue<SessionId>,
    next_id: SessionId,
}

impl SessionTracker {
    /// A tracker started at `now_ms` with no sessions.
    pub fn new(config: SessionConfig, now_ms: u64) -> Self {
        assert!(config.tick_ms > 0, "tickTime is positive");
        assert!(
            config.min_session_timeout_ms() > 0,
            "a zero timeout would expire at once"
        );
        Self {
            config,
            sessions: BTreeMap::new(),
            queue: ExpiryQueue::new(config.tick_ms, now_ms, config.sessions_max),
            // `initializeNextSessionId` puts the server ID in the top byte and the start time
            // below it; the model starts the counter at 1 (no clock), which keeps IDs unique per
            // server and never equal to the container owner `0x8000000000000000`.
            next_id: (u64::from(config.server_id) << 56) | 1,
        }
    }

    pub fn config(&self) -> &SessionConfig {
        &self.config
    }

    pub fn session(&self, id: SessionId) -> Option<&Session> {
        self.sessions.get(&id)
    }

    /// Every session, by ID.
    pub fn sessions(&self) -> impl Iterator<Item = &Session> {
        self.sessions.values()
    }

    /// The IDs of the sessions not closing: the global sessions a follower knows.
    pub fn live_sessions(&self) -> std::collections::BTreeSet<SessionId> {
        (self.sessions.iter())
            .filter(|(_, x)| !x.closing)
            .map(|(id, _)| *id)
            .collect()
    }

    /// When `id` expires at the earliest, ms: its bucket.
    pub fn expiry_ms(&self, id: SessionId) -> Option<u64> {
        self.queue.expiry_ms(id)
    }

    /// How long the tracker's thread sleeps before its next poll, ms (`SessionTrackerImpl.run`
    /// → `ExpiryQueue.getWaitTime`): 0 once a bucket is due.
    pub fn wait_ms(&self, now_ms: u64) -> u64 {
        self.queue.wait_ms(now_ms)
    }

    /// `createSession(int sessionTimeout)` after `processConnectRequest`'s negotiation: a new ID
    /// and its first bucket. Answers the ID and the negotiated timeout.
    pub fn create(
        &mut self,
        requested_timeout_ms: u64,
        now_ms: u64,
    ) -> Result<(SessionId, u64), QueueFull> {
        let timeout_ms = self.config.negotiate_ms(requested_timeout_ms);
        let id = self.next_id;
        self.track(id, timeout_ms, now_ms)?;
        self.next_id += 1;
        Ok((id, timeout_ms))
    }

    /// `trackSession(long id, int sessionTimeout)`: adds the session if new, and in both cases
    /// (`updateSessionExpiry`) gives it a full timeout from `now_ms`.
    fn track(&mut self, id: SessionId, timeout_ms: u64, now_ms: u64) -> Result<(), QueueFull> {
        self.queue.update(id, timeout_ms, now_ms)?;
        let session = self.sessions.entry(id).or_insert(Session {
            id,
            timeout_ms,
            closing: false,
        });
        assert_eq!(
            session.timeout_ms, timeout_ms,
            "a session keeps its negotiated timeout"
        );
        Ok(())
    }

    /// `touchSession(long sessionId, int timeout)`, called for every packet a client sends, ping
    /// included (`ZooKeeperServer.submitRequestNow` calls `touch(si.cnxn)` before processing any
    /// request). False for an unknown or closing session (ZooKeeper then closes the connection:
    /// `MissingSessionException`).
    pub fn touch(&mut self, id: SessionId, now_ms: u64) -> bool {
        let Some(session) = self.sessions.get(&id) else {
            return false;
        };
        if session.closing {
            return false;
        }
        let timeout_ms = session.timeout_ms;
        // A known session is already queued, so the bound cannot refuse it.
        self.queue
            .update(id, timeout_ms, now_ms)
            .expect("a tracked session is in the queue");
        true
    }

    /// `SessionTrackerImpl.run` caught up to `now_ms`: polls every due bucket, one after the
    /// other, marks its sessions closing (`setSessionClosing`) and answers them in order, for the
    /// caller to close (`ZooKeeperServer.expire` submits a `closeSession` request). A session
    /// touched at `t` with timeout `T` is answered by the first tick at or after its bucket
    /// `roundToNextInterval(t + T)`, which lies in `(t + T, t + T + tick]`.
    pub fn tick(&mut self, now_ms: u64) -> Vec<SessionId> {
        let mut expired = Vec::new();
        // Bounded: each round moves the next bucket one interval on, and stops past `now_ms`.
        while self.queue.wait_ms(now_ms) == 0 {
            for id in self.queue.poll(now_ms) {
                let session = self
                    .sessions
                    .get_mut(&id)
                    .expect("a queued session is in the table");
                session.closing = true;
                expired.push(id);
            }
        }
        assert!(
            self.queue.next_expiration_ms() > now_ms,
            "the tick caught up"
        );
        expired
    }

    /// `setSessionClosing`: a close was prepared (the client's own `close()`, or expiry).
    pub fn set_closing(&mut self, id: SessionId) {
        if let Some(session) = self.sessions.get_mut(&id) {
            session.closing = true;
        }
    }

    /// `removeSession(long sessionId)`, once the `closeSession` transaction is applied
    /// (`ZooKeeperServer.killSession`). Answers whether the session was there.
    pub fn remove(&mut self, id: SessionId) -> bool {
        let removed = self.sessions.remove(&id).is_some();
        self.queue.remove(id);
        removed
    }

    /// A new leader's tracker: `new SessionTrackerImpl(...)` re-tracks every session of the
    /// committed table (`sessionsWithTimeout`) with `trackSession`, so each gets a full timeout
    /// from the new leader's `now_ms`, and a fresh `SessionImpl`, so a session that was closing
    /// on the old leader (its close not committed) lives again. The bucket grid restarts at the
    /// new leader's clock.
    pub fn leader_change(&self, now_ms: u64) -> SessionTracker {
        let mut next = SessionTracker::new(self.config, now_ms);
        next.next_id = self.next_id;
        for session in self.sessions.values() {
            next.track(session.id, session.timeout_ms, now_ms)
                .expect("the same bound as before");
        }
        next.check_invariants();
        next
    }

    /// The table and the queue agree: every session is queued exactly when it is not yet
    /// expired-and-polled, with its own timeout within the negotiated bounds.
    pub fn check_invariants(&self) {
        self.queue.check_invariants();
        assert!(
            self.sessions.len() <= self.config.sessions_max,
            "the table is over its bound"
        );
        for session in self.sessions.values() {
            let range = self.config.min_session_timeout_ms()..=self.config.max_session_timeout_ms();
            assert!(
                range.contains(&session.timeout_ms),
                "{session:?} timeout outside {range:?}"
            );
            assert!(session.id < self.next_id, "{session:?} from the future");
            // A polled session is closing and out of the queue; one that is not closing is in it.
            if !session.closing {
                assert!(
                    self.queue.expiry_ms(session.id).is_some(),
                    "{session:?} not queued"
                );
            }
        }
        assert!(
            self.queue.len() <= self.sessions.len(),
            "the queue holds a session the table lost"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::zk::model::expiry::round_to_next_interval;

    fn tracker(now_ms: u64) -> SessionTracker {
        SessionTracker::new(SessionConfig::default(), now_ms)
    }

    #[test]
    fn negotiation_clamps_to_2_and_20_ticks() {
        let config = SessionConfig::default();
        assert_eq!(config.negotiate_ms(1000), 4000);
        assert_eq!(config.negotiate_ms(60_000), 40_000);
        assert_eq!(config.negotiate_ms(10_000), 10_000);
        let custom = SessionConfig {
            min_session_timeout_ms: Some(1000),
            max_session_timeout_ms: Some(90_000),
            ..config
        };
        assert_eq!(custom.negotiate_ms(500), 1000);
        assert_eq!(custom.negotiate_ms(60_000), 60_000);
        let code_default = SessionConfig {
            tick_ms: 3000,
            ..config
        };
        assert_eq!(code_default.negotiate_ms(1000), 6000);
    }

    /// The first tick that expires a session touched at `touch_ms`, scanning the ms after it.
    fn expiry_seen_ms(touch_ms: u64, timeout_ms: u64) -> u64 {
        let mut t = tracker(0);
        let (id, negotiated_ms) = t.create(timeout_ms, 0).unwrap();
        assert_eq!(negotiated_ms, timeout_ms);
        assert!(t.touch(id, touch_ms));
        let mut now_ms = touch_ms;
        loop {
            now_ms += 1;
            if t.tick(now_ms) == vec![id] {
                t.check_invariants();
                return now_ms;
            }
            assert!(now_ms < touch_ms + 10 * timeout_ms, "never expired");
        }
    }

    #[test]
    fn a_session_touched_at_t_expires_within_t_plus_timeout_and_one_tick() {
        let tick_ms = TICK_MS_DEFAULT;
        for touch_ms in [0, 1, 999, 1999, 2000, 2001, 12_345, 39_999] {
            for timeout_ms in [4000, 5000, 40_000] {
                let dead_ms = expiry_seen_ms(touch_ms, timeout_ms);
                assert!(
                    dead_ms > touch_ms + timeout_ms,
                    "touched {touch_ms}, dead {dead_ms}"
                );
                assert!(
                    dead_ms <= touch_ms + timeout_ms + tick_ms,
                    "touched {touch_ms}, dead {dead_ms}"
                );
                assert_eq!(dead_ms % tick_ms, 0, "expiry happens on the tick grid");
            }
        }
    }

    #[test]
    fn every_packet_touches_and_a_closing_session_is_touched_no_more() {
        let mut t = tracker(0);
        let (id, _) = t.create(4000, 0).unwrap();
        for now_ms in (0..20_000).step_by(1000) {
            assert!(t.touch(id, now_ms), "a ping every second keeps it alive");
            assert_eq!(t.tick(now_ms), Vec::<SessionId>::new());
        }
        assert_eq!(t.tick(25_000), vec![id]);
        assert!(!t.touch(id, 25_000), "closing: the touch is refused");
        assert!(t.remove(id));
        assert!(!t.touch(id, 25_001), "unknown");
        t.check_invariants();
    }

    #[test]
    fn a_paused_tracker_expires_nothing_until_ticked_then_everything_due() {
        let mut t = tracker(0);
        let (a, _) = t.create(4000, 0).unwrap();
        let (b, _) = t.create(40_000, 0).unwrap();
        assert_eq!(t.tick(1000), Vec::<SessionId>::new());
        // The server is stopped from 1 s to 30 s: no tick runs. Resumed, one tick catches up.
        assert_eq!(t.session(a).map(|s| s.closing), Some(false));
        assert_eq!(t.tick(30_000), vec![a]);
        assert!(t.touch(b, 30_000), "b's bucket (42 s) has not passed");
        // The race on resume: a's packet handled before the tracker's catch-up saves it.
        let mut raced = tracker(0);
        let (c, _) = raced.create(4000, 0).unwrap();
        assert!(raced.touch(c, 30_000));
        assert_eq!(raced.tick(30_000), Vec::<SessionId>::new());
        t.check_invariants();
        raced.check_invariants();
    }

    #[test]
    fn a_leader_change_gives_every_session_a_full_new_timeout() {
        let mut t = tracker(0);
        let (a, _) = t.create(4000, 0).unwrap();
        let (b, _) = t.create(40_000, 0).unwrap();
        assert!(t.touch(b, 30_000));
        t.set_closing(a); // expiring on the old leader, its close not committed
        let mut new = t.leader_change(37_000);
        for (id, timeout_ms) in [(a, 4000), (b, 40_000)] {
            assert_eq!(new.session(id).map(|s| s.closing), Some(false));
            let expiry_ms = new.expiry_ms(id).unwrap();
            assert_eq!(
                expiry_ms,
                round_to_next_interval(37_000 + timeout_ms, TICK_MS_DEFAULT)
            );
            assert!(expiry_ms > 37_000 + timeout_ms);
        }
        assert_eq!(new.tick(41_000), Vec::<SessionId>::new());
        assert_eq!(new.tick(42_000), vec![a]);
        let (c, _) = new.create(4000, 42_000).unwrap();
        assert!(c > b, "IDs keep rising across the change");
        new.check_invariants();
    }

    #[test]
    fn the_table_is_bounded() {
        let config = SessionConfig {
            sessions_max: 2,
            ..SessionConfig::default()
        };
        let mut t = SessionTracker::new(config, 0);
        t.create(4000, 0).unwrap();
        t.create(4000, 0).unwrap();
        assert_eq!(t.create(4000, 0), Err(QueueFull { elems_max: 2 }));
        t.check_invariants();
    }
}
