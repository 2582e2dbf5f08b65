//! What happened in a run: one ordered log of events stamped with true time.
//!
//! Jepsen's *history*, extended with what only a simulation can see: the storage's own
//! acceptance order, lock acquisitions, and the faults the nemesis injected. Events are
//! appended in execution order, which for equal true times is the order madsim ran them.
//!
//! In its JSON every field means one thing and every number is exact in jq and JavaScript
//! (below 2^53): `lease_id` is always a lease ID, as 16 hex digits in a string as `etcdctl`
//! prints it; `token` is always a fencing token (the lock key's revision), a number;
//! `wire_version` is what went over the storage protocol as `version` (the token, or under
//! `lease-id` the lease ID), as its decimal digits in a string. See [`crate::exact_json`].

use crate::entry::Entry;
use crate::protocol::Op;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use tokio::time::Instant;

/// Most events one run may record: a limit on everything (a 20 s standard run records ~1,000).
pub const EVENTS_MAX: usize = 1_000_000;

/// How an operation ended, as the client saw it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "lowercase")]
pub enum OpResult {
    /// The storage accepted it (a read of a missing key is accepted too).
    Ok {
        val: String,
        /// The answer's `version` as it came over the wire: what the stored value was written
        /// with (a token, or under `lease-id` a lease ID), -1 for a missing key. In JSON
        /// `wire_version`, decimal digits in a string.
        #[serde(rename = "wire_version", with = "crate::exact_json::wire_version")]
        version: i64,
    },
    /// The storage refused it (fencing).
    Rejected { err: String },
    /// It surely did not take effect (e.g. connection refused before sending).
    Failed { err: String },
    /// No answer (timeout, crash): it may or may not have taken effect.
    Unknown { err: String },
}

impl OpResult {
    /// The value an accepted operation answered with (empty for a missing key), or `None` when
    /// the storage refused it or the answer never came.
    pub fn value(&self) -> Option<&str> {
        match self {
            OpResult::Ok { val, .. } => Some(val),
            _ => None,
        }
    }
}

/// One thing that happened.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum EventKind {
    /// A session's lease was granted.
    LeaseGranted {
        #[serde(with = "crate::exact_json::lease_id")]
        lease_id: i64,
        ttl_s: i64,
    },
    /// The client learned its lease is gone (keepalive refused or unanswered past the TTL).
    LeaseLost {
        #[serde(with = "crate::exact_json::lease_id")]
        lease_id: i64,
        why: String,
    },
    /// The client was told it holds the lock.
    Acquired {
        #[serde(with = "crate::exact_json::lease_id")]
        lease_id: i64,
        token: i64,
    },
    /// The client gave up waiting for the lock and revoked its lease.
    CampaignTimedOut {
        #[serde(with = "crate::exact_json::lease_id")]
        lease_id: i64,
    },
    /// A lock-service request of the client's ended without an answer (its own deadline,
    /// etcd's "request timed out", a Redis command's timeout, ZooKeeper's `ConnectionLoss`):
    /// it may or may not have taken effect. `what` names the call (Redis's and ZooKeeper's
    /// name their service too). The name stays `Etcd…`, as saved histories spell it.
    EtcdIndeterminate { what: String },
    /// The client released the lock (resign + revoke).
    Released {
        #[serde(with = "crate::exact_json::lease_id")]
        lease_id: i64,
        token: i64,
    },
    /// The client's own lease check refused to write (local deadline passed).
    LocalCheckRefused { token: i64, deadline_us: i64 },
    /// A client sent an operation.
    Invoke {
        op_id: u64,
        op: Op,
        key: String,
        val: String,
        /// What went on the wire as `version`: `token`, or under `lease-id` `lease_id`. In
        /// JSON `wire_version`, decimal digits in a string.
        #[serde(rename = "wire_version", with = "crate::exact_json::wire_version")]
        version: i64,
        #[serde(with = "crate::exact_json::lease_id")]
        lease_id: i64,
        token: i64,
    },
    /// A client got (or gave up on) the answer.
    Complete { op_id: u64, outcome: OpResult },
    /// The storage applied a request: its true serialization order.
    StorageApplied {
        op_id: Option<u64>,
        op: Op,
        key: String,
        val: String,
        /// The request's `version` as it came over the wire (whatever the client sent: a
        /// token, or under `lease-id` a lease ID). In JSON `wire_version`, decimal digits in a
        /// string.
        #[serde(rename = "wire_version", with = "crate::exact_json::wire_version")]
        version: i64,
        accepted: bool,
        err: String,
    },
    /// The nemesis did something.
    Fault { what: String },
    /// A client node started (again, after a crash).
    NodeStarted { incarnation: u32 },
    // Last, so that the derived hash of every earlier kind stays as it was.
    /// etcd's leadership changed (a cluster of the model): from now `leader` leads, or no one
    /// does; `what` says how.
    Leadership {
        leader: Option<String>,
        what: String,
    },
    // The Redis nodes' own events (fencelab's model, `redis/model/observe.rs`), after every
    // etcd kind so that etcd's hashes stay as they were. `deadline_ms` and `now_ms` are on the
    // node's wall clock, the one Redis judges expiry by; `value` is the lock's value (a
    // Redlock client's name and nonce).
    /// `SET NX PX` succeeded on a Redis node: `key` holds `value` until `deadline_ms`.
    RedisGranted {
        key: String,
        value: String,
        deadline_ms: i64,
    },
    /// `SET NX` was refused on a Redis node: `key` was held by `holder`.
    RedisRefused {
        key: String,
        value: String,
        holder: String,
        deadline_ms: Option<i64>,
    },
    /// `DEL` or the compare-and-delete script removed `key`, which held `value`.
    RedisDeleted { key: String, value: String },
    /// `PEXPIRE` or the compare-and-pexpire script moved `key`'s deadline.
    RedisExtended {
        key: String,
        value: String,
        deadline_ms: i64,
    },
    /// A lookup on a Redis node found `key` past its deadline and deleted it (passive expiry).
    RedisExpired {
        key: String,
        value: String,
        deadline_ms: i64,
        now_ms: i64,
    },
    /// `INCR` raised the counter `key` to `value`.
    RedisCounted { key: String, value: i64 },
    /// The Redis node's wall clock stepped by `delta_ms` at true time `at_ms` (recorded at the
    /// node's first command or boot after it: noticing it costs no wake-up).
    RedisClockStepped { at_ms: u64, delta_ms: i64 },
    /// The Redis node booted (`boot` 1 is its first start) and loaded `loaded` keys under
    /// `persistence`; of the keys it held live when it went down, `kept` (key to value) came
    /// back and `lost` did not (a few of each named).
    RedisBooted {
        boot: u64,
        persistence: String,
        loaded: u64,
        kept: BTreeMap<String, String>,
        lost: BTreeMap<String, String>,
    },
    // Last, after the Redis nodes' kinds, for the same reason.
    /// The holder extended its lock during its computation (a recipe that extends: Redlock
    /// with `extend_below_ms`): valid until `until_us` by its clock, or `None` when the
    /// extension failed and the holder stopped.
    LockExtended { token: i64, until_us: Option<i64> },
}

/// An event with its node and times.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Event {
    /// True time, microseconds since the world started.
    pub true_us: u64,
    /// The node's own reading of the time, when it has one.
    pub perceived_us: Option<i64>,
    pub node: String,
    #[serde(flatten)]
    pub kind: EventKind,
}

/// A whole run's record.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct History {
    pub events: Vec<Event>,
    /// The storage's contents when the run ended.
    pub final_entries: BTreeMap<String, Entry>,
    /// Events that could not be recorded because of [`EVENTS_MAX`].
    pub dropped_events: u64,
}

impl History {
    /// A 64-bit FNV-1a hash of the whole history: equal runs give equal hashes.
    ///
    /// It feeds the derived `Hash` (every field, in order) to FNV-1a rather than hashing the
    /// JSON text: the JSON formatting cost 5.7% of a sweep's instructions. `Hash` of integers
    /// and strings is only promised stable within one build on one platform, which is where
    /// replays are compared (the same binary re-runs the seed); byte-for-byte equality of the
    /// JSON is what the determinism suite checks.
    pub fn hash(&self) -> u64 {
        use std::hash::{Hash, Hasher};
        let mut h = Fnv1a(FNV_OFFSET);
        Hash::hash(self, &mut h);
        h.finish()
    }

    /// Every lock acquisition in order: (node, token).
    pub fn acquisitions(&self) -> Vec<(&str, i64)> {
        self.events
            .iter()
            .filter_map(|e| match e.kind {
                EventKind::Acquired { token, .. } => Some((e.node.as_str(), token)),
                _ => None,
            })
            .collect()
    }

    /// Pairs each invocation with its completion.
    pub fn ops(&self) -> Vec<OpView<'_>> {
        let mut index: BTreeMap<u64, usize> = BTreeMap::new();
        let mut ops: Vec<OpView<'_>> = Vec::new();
        for (i, e) in self.events.iter().enumerate() {
            match &e.kind {
                EventKind::Invoke { op_id, .. } => {
                    index.insert(*op_id, ops.len());
                    ops.push(OpView {
                        invoke: e,
                        invoke_index: i,
                        complete: None,
                    });
                }
                EventKind::Complete { op_id, .. } => {
                    if let Some(&k) = index.get(op_id) {
                        // A completion comes after its invocation (both in recording order).
                        assert!(ops[k].invoke_index < i);
                        ops[k].complete = Some(e);
                    }
                }
                _ => {}
            }
        }
        ops
    }
}

/// An operation: its invocation and, when it came, its completion.
#[derive(Debug, Clone, Copy)]
pub struct OpView<'a> {
    pub invoke: &'a Event,
    pub invoke_index: usize,
    pub complete: Option<&'a Event>,
}

impl OpView<'_> {
    pub fn outcome(&self) -> Option<&OpResult> {
        match self.complete.map(|e| &e.kind) {
            Some(EventKind::Complete { outcome, .. }) => Some(outcome),
            _ => None,
        }
    }
}

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// FNV-1a, 64 bit: tiny, stable across Rust releases (unlike `DefaultHasher`).
pub fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h = Fnv1a(FNV_OFFSET);
    h.update(bytes);
    h.0
}

/// An FNV-1a state that bytes can be written into.
struct Fnv1a(u64);

impl Fnv1a {
    fn update(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 ^= *b as u64;
            self.0 = self.0.wrapping_mul(FNV_PRIME);
        }
    }
}

impl std::hash::Hasher for Fnv1a {
    fn write(&mut self, bytes: &[u8]) {
        self.update(bytes);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// Appends events with the true time; shared by every node of one world.
#[derive(Debug, Clone)]
pub struct Recorder {
    origin: Instant,
    inner: Arc<Mutex<History>>,
    next_op_id: Arc<std::sync::atomic::AtomicU64>,
}

impl Recorder {
    pub fn new(origin: Instant) -> Self {
        Recorder {
            origin,
            inner: Arc::new(Mutex::new(History::default())),
            next_op_id: Arc::new(std::sync::atomic::AtomicU64::new(1)),
        }
    }

    pub fn origin(&self) -> Instant {
        self.origin
    }

    pub fn true_us(&self) -> u64 {
        self.origin.elapsed().as_micros() as u64
    }

    /// A fresh operation id, unique within the run.
    pub fn next_op_id(&self) -> u64 {
        self.next_op_id
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    }

    pub fn record(&self, node: &str, perceived_us: Option<i64>, kind: EventKind) {
        let true_us = self.true_us();
        let mut h = self.inner.lock().expect("recorder lock");
        if h.events.len() >= EVENTS_MAX {
            h.dropped_events += 1;
            return;
        }
        // In the simulation one thread records, in true-time order. For real, threads may race
        // between reading the clock and taking the lock: the checker reports such an inversion
        // as an anomaly rather than this panicking.
        #[cfg(madsim)]
        debug_assert!(h.events.last().is_none_or(|e| e.true_us <= true_us));
        // Op ids are issued here and each invoked once, in the order issued (a client records
        // its invocation as soon as it takes the id).
        #[cfg(madsim)]
        if let EventKind::Invoke { op_id, .. } = &kind {
            debug_assert!(*op_id < self.next_op_id.load(std::sync::atomic::Ordering::Relaxed));
            debug_assert!(h
                .events
                .iter()
                .rev()
                .find_map(|e| match e.kind {
                    EventKind::Invoke { op_id, .. } => Some(op_id),
                    _ => None,
                })
                .is_none_or(|last| last < *op_id));
        }
        h.events.push(Event {
            true_us,
            perceived_us,
            node: node.to_string(),
            kind,
        });
    }

    /// The newest lease granted to `node`, if any.
    pub fn last_lease_of(&self, node: &str) -> Option<i64> {
        let h = self.inner.lock().expect("recorder lock");
        h.events.iter().rev().find_map(|e| match e.kind {
            EventKind::LeaseGranted { lease_id, .. } if e.node == node => Some(lease_id),
            _ => None,
        })
    }

    pub fn set_final_entries(&self, entries: BTreeMap<String, Entry>) {
        self.inner.lock().expect("recorder lock").final_entries = entries;
    }

    /// Takes the history out, leaving an empty one.
    pub fn take(&self) -> History {
        std::mem::take(&mut *self.inner.lock().expect("recorder lock"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv_is_the_reference_value() {
        // Reference values of FNV-1a 64.
        assert_eq!(fnv1a(b""), 0xcbf29ce484222325);
        assert_eq!(fnv1a(b"a"), 0xaf63dc4c8601ec8c);
    }

    #[test]
    fn history_round_trips_through_json() {
        let lease_id = 0x5b30_2f8e_16a2_711a;
        let event = |kind| Event {
            true_us: 5,
            perceived_us: Some(7),
            node: "client1".into(),
            kind,
        };
        let h = History {
            events: vec![
                event(EventKind::Complete {
                    op_id: 1,
                    outcome: OpResult::Rejected { err: "no".into() },
                }),
                event(EventKind::Invoke {
                    op_id: 2,
                    op: Op::Write,
                    key: "key0".into(),
                    val: "v".into(),
                    version: lease_id,
                    lease_id,
                    token: 4,
                }),
                event(EventKind::Complete {
                    op_id: 2,
                    outcome: OpResult::Ok {
                        val: "v".into(),
                        version: lease_id,
                    },
                }),
            ],
            final_entries: [(
                "key0".to_string(),
                Entry {
                    val: "v".into(),
                    version: lease_id,
                },
            )]
            .into(),
            ..History::default()
        };
        let s = serde_json::to_string(&h).unwrap();
        // Lease IDs in hex as etcdctl prints them, the wire's version in exact decimal digits.
        assert!(
            s.contains(
                r#""wire_version":"6570804143645159706","lease_id":"5b302f8e16a2711a","token":4"#
            ),
            "{s}"
        );
        assert!(
            s.contains(
                r#""outcome":{"result":"ok","val":"v","wire_version":"6570804143645159706"}"#
            ),
            "{s}"
        );
        assert!(
            s.contains(
                r#""final_entries":{"key0":{"val":"v","wire_version":"6570804143645159706"}}"#
            ),
            "{s}"
        );
        let back: History = serde_json::from_str(&s).unwrap();
        assert_eq!(back, h);
        assert_eq!(back.hash(), h.hash());
        // Negative space: any change to the history changes the hash.
        let mut other = h.clone();
        other.events[0].true_us += 1;
        assert_ne!(other.hash(), h.hash());
    }
}

/// One node's pen on the history: records with the node's name and its perceived time.
/// Without a recorder (real mode) it records nothing.
#[derive(Debug, Clone)]
pub struct Probe {
    recorder: Option<Recorder>,
    node: Arc<str>,
    clock: crate::clock::NodeClock,
}

impl Probe {
    pub fn new(recorder: Option<Recorder>, node: &str, clock: crate::clock::NodeClock) -> Self {
        Probe {
            recorder,
            node: node.into(),
            clock,
        }
    }

    pub fn node(&self) -> &str {
        &self.node
    }

    pub fn record(&self, kind: EventKind) {
        if let Some(r) = &self.recorder {
            r.record(&self.node, Some(self.clock.now_us()), kind);
        }
    }

    /// A fresh operation id, unique in the run (0 when there is no recorder: real mode).
    pub fn next_op_id(&self) -> u64 {
        match &self.recorder {
            Some(r) => r.next_op_id(),
            None => 0,
        }
    }
}
