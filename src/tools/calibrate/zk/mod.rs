//! Calibration of ZooKeeper: what a lock client can observe of its sessions, measured by
//! probes written once over the [`Zk`] seam.
//!
//! The probes run against real ZooKeeper 3.8.0 servers (`sims/real_zk.rs`, which writes the
//! figures to `sims/calibration/zk-real.json` with `FENCELAB_CALIBRATION_WRITE=1` and holds
//! the real servers to the committed ones) and, in the simulation, against fencelab's model
//! (`sims/zk_calibration.rs`, which holds the model to the committed real figures:
//! [`zk_compare`]). Time is `tokio::time`: real in the real build, simulated under madsim.
//! What differs between a real server and a model goes through small traits:
//!
//! | trait | real (`real`, real build only) | simulation (`model`, simulation only) |
//! |---|---|---|
//! | [`Sessions`] | `zookeeper-client` sessions, directly or through a TCP proxy of the probe's own | `zk::connect`: the model's `ClientCnxn`, a silenceable one on a client node of its own |
//! | [`Silence`] | the proxy drops every byte both ways and refuses new connections | a partition of the client's node (madsim's `clog_node`) |
//! | [`Stall`] | `SIGSTOP`, `SIGCONT` of the server | madsim's pause of the node ([`PauseNode`](super::PauseNode)) |
//! | [`Ensemble`] | kill and restart of a real 3-server ensemble's processes | the model's 3-server ensemble: madsim's kill and restart of the leader's node, the model told (`set_up`) |
//!
//! Why a proxy, not `SIGSTOP` of a client process, to make a client silent: the sessions are
//! in this process (the crate's task), twenty of them at once; a proxy per session silences
//! each alone, and it stamps the last byte it forwarded to the server, which is the instant
//! the server's `touchSession` can last have seen (`NIOServerCnxn.doIO` → ...
//! `ZooKeeperServer.touch`).
//!
//! The probes, each returning plain serde figures:
//! - **negotiation** ([`negotiation`]): the timeout granted for each of
//!   [`NEGOTIATION_REQUESTS_MS`]; ZooKeeper clamps to [2, 20] × tickTime
//!   (`ZooKeeperServer.processConnectRequest`, `minSessionTimeout`, `maxSessionTimeout`).
//! - **expiry latency** ([`expiry_latency`]): [`EXPIRY_TRIALS`] sessions of
//!   [`EXPIRY_TIMEOUT_MS`], started [`EXPIRY_STAGGER`] apart (their phases against the
//!   tick-sized buckets differ), each with an ephemeral node that another session watches; each
//!   session is silenced; the figure is the time from its last packet to the watcher's
//!   `NodeDeleted`. ZooKeeper expires a session in the first `ExpiryQueue` bucket past
//!   lastTouch + T (`ExpiryQueue.roundToNextInterval`), so between T and T + tick.
//! - **a paused server** ([`paused`]): [`PAUSE_SESSIONS`] sessions with an ephemeral each, the
//!   server paused for each of [`PAUSE_FACTORS`] × T; the share of the sessions whose
//!   ephemeral is gone [`PAUSE_READ_AFTER`] after the resume, read by a session of 40 s.
//! - **failover** ([`failover`]): a 3-server [`Ensemble`] with its leader killed while a client
//!   is silent: the session ends no sooner than the new leader's start + T.
//! - **sequence restart** ([`sequence_restart`]): a container parent's sequence numbers restart
//!   at 0 once the server deleted it empty (`ContainerManager`), while `czxid` keeps rising.

use crate::deadline;
use crate::zk::{ZkError, ZkResult};
use crate::BoxFuture;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

pub use super::Stall;
pub use crate::zk::Zk;

mod compare;
mod failover;
#[cfg(madsim)]
pub mod model;
mod probes;
#[cfg(not(madsim))]
pub mod real;
mod tokens;

pub use compare::{
    observed_range, run_zk, zk_compare, zk_table, ZkFigures, EXPIRY_WIDEN_MS, FAILOVER_WIDEN_MS,
    PAUSE_SHARES_OBSERVED,
};
pub use failover::{
    failover, Ensemble, Failover, LeaderKill, ELECTION_MAX, FAILOVER_METHOD, FAILOVER_TRIALS,
    KILL_AFTER,
};
pub use probes::{expiry_latency, negotiation, paused};
pub use tokens::{
    sequence_of, sequence_restart, SequenceRestart, CONTAINER_GONE_MAX, SEQUENCE_CHILDREN,
    SEQUENCE_METHOD,
};

/// tickTime of the servers the figures are measured on (Debian's `zoo.cfg`, `.ci/zk-servers`).
pub const TICK_MS: u64 = 2_000;
/// Timeouts the negotiation probe asks for: below the floor, inside, above the ceiling.
pub const NEGOTIATION_REQUESTS_MS: [u64; 4] = [1_000, 4_000, 10_000, 60_000];
/// Trials of the expiry-latency probe.
pub const EXPIRY_TRIALS: usize = 20;
/// The session timeout the expiry and pause probes ask for: the floor, 2 × tick.
pub const EXPIRY_TIMEOUT_MS: u64 = 4_000;
/// Delay between the starts of two expiry trials: 20 × 103 ms spans about one tick, so the
/// trials' last packets fall at spread phases of the buckets.
pub const EXPIRY_STAGGER: Duration = Duration::from_millis(103);
/// The watching session's timeout: long enough to ride out every pause of the probes.
pub const WATCHER_TIMEOUT_MS: u64 = 40_000;
/// Sessions of each pause.
pub const PAUSE_SESSIONS: usize = 10;
/// The pauses, in units of T.
pub const PAUSE_FACTORS: [f64; 6] = [0.5, 0.75, 1.0, 1.25, 1.5, 2.0];
/// Rounds over the pauses (about 45 s each).
pub const PAUSE_ROUNDS: usize = 2;
/// When the paused probe reads which ephemerals are left, after the resume: past every
/// bucket a resumed server's `SessionTrackerImpl.run` finds due, yet shorter than T, so
/// that no session touched on resume can have expired since.
pub const PAUSE_READ_AFTER: Duration = Duration::from_millis(3_000);
/// Every call of a probe is bounded by this.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(20);
/// How long past T + tick a watched ephemeral may take to go before a trial gives up.
pub const LATE_MAX: Duration = Duration::from_secs(5);

pub const NEGOTIATION_METHOD: &str = "calibrate/zk: one session per requested timeout (1000, 4000, 10000, 60000 ms), the timeout its ConnectResponse granted; tickTime 2000";
pub const EXPIRY_METHOD: &str = "calibrate/zk: 20 sessions of 4000 ms started 103 ms apart, each through a TCP proxy of the probe's own, each with an ephemeral node that a second session (40000 ms, direct) watches with exists; each proxy then drops every byte both ways; ms from the last byte the proxy forwarded to the server to the watcher's NodeDeleted; also the silent client's own Suspended, and the first of its Lost or Expired, after that byte";
pub const PAUSE_METHOD: &str = "calibrate/zk: 2 rounds; per round, per pause p in 0.5, 0.75, 1, 1.25, 1.5, 2 x T (T 4000 ms), 10 fresh sessions of 4000 ms with an ephemeral each; the server SIGSTOPped for p, SIGCONTed; 3000 ms after the resume a session of 40000 ms reads which ephemerals are left";

/// A session that can be silenced, and its switch.
pub type Silenceable = (Arc<dyn Zk>, Box<dyn Silence>);

/// Sessions on the server a probe measures.
pub trait Sessions: Send + Sync {
    /// A session asking for `timeout_ms`.
    fn open(&self, timeout_ms: u64) -> BoxFuture<'_, ZkResult<Arc<dyn Zk>>>;
    /// A session asking for `timeout_ms` whose traffic can be cut off ([`Silence`]).
    fn open_silenceable(&self, timeout_ms: u64) -> BoxFuture<'_, Result<Silenceable, String>>;
}

/// Cuts one session off from its servers, both ways, for good.
pub trait Silence: Send + Sync {
    /// Silences the session; answers the instant the last byte from its client reached the
    /// server (at the latest, the silencing itself).
    fn silence(&self) -> BoxFuture<'_, Result<Instant, String>>;
}

/// Min, median and max of some samples, and the samples in trial order, ms.
pub use super::redis::Spread;

/// One negotiation: what was asked, what the server granted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Negotiated {
    pub requested_ms: u64,
    pub negotiated_ms: u64,
}

/// Expiry latency of silent sessions.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ExpiryLatency {
    pub timeout_ms: u64,
    pub trials: usize,
    /// From the last byte forwarded to the server to another session's `NodeDeleted`.
    pub last_packet_to_deleted: Spread,
    /// The silent client's own `Suspended`, after its last packet (the crate's 2T/5 with
    /// nothing received, `zookeeper-client`'s `Session::serve_session`).
    pub last_packet_to_suspended: Spread,
    /// The silent client's first terminal-looking verdict, `Lost` or `Expired`, whichever
    /// came first: `Lost` is one T after `Suspended` (`RealZk`'s, Curator's rule); the crate
    /// gives up on its own 7T/5 after its last receive and calls that `Expired`
    /// (`zookeeper-client`'s `Session::start`), at about the same instant.
    pub last_packet_to_gave_up: Spread,
    /// Which of the two each trial saw first, in trial order.
    pub gave_up_as: Vec<crate::zk::SessionState>,
}

/// One pause of the server.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Pause {
    /// Which round of [`PAUSE_FACTORS`] (0-based).
    #[serde(default)]
    pub round: usize,
    pub factor: f64,
    pub pause_ms: f64,
    pub sessions: usize,
    /// Sessions whose ephemeral was gone [`PAUSE_READ_AFTER`] after the resume.
    pub expired: usize,
    pub expired_share: f64,
}

/// A server paused for 0.5 T to 2 T.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Paused {
    pub timeout_ms: u64,
    /// Rounds over [`PAUSE_FACTORS`]: the outcome past T is a race, so one round is one draw.
    #[serde(default)]
    pub rounds: usize,
    pub pauses: Vec<Pause>,
}

/// One part of the real record: its figures, when and how they were measured.
pub use super::redis::Part;

/// The parts of the real record, each written by its own test of the real suite.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ZkParts {
    #[serde(default)]
    pub negotiation: Option<Part<Vec<Negotiated>>>,
    #[serde(default)]
    pub expiry_latency: Option<Part<ExpiryLatency>>,
    #[serde(default)]
    pub paused: Option<Part<Paused>>,
    #[serde(default)]
    pub failover: Option<Part<Failover>>,
    #[serde(default)]
    pub sequence_restart: Option<Part<SequenceRestart>>,
}

/// The figures of a real ZooKeeper as committed (`sims/calibration/zk-real.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ZkRecord {
    /// The server's version line from `srvr`.
    pub zookeeper_version: String,
    /// Where: CPU, cores, kernel.
    pub machine: String,
    pub tick_ms: u64,
    pub parts: ZkParts,
}

impl ZkRecord {
    /// The committed record, parsed.
    pub fn parse(text: &str) -> Result<ZkRecord, String> {
        serde_json::from_str(text).map_err(|e| format!("zk-real.json: {e}"))
    }
}

// ---------------------------------------------------------------------------------------
// helpers the probes share

/// `fut` bounded by [`CALL_TIMEOUT`]; its error in words, naming `what`.
pub(super) async fn call<T>(what: &str, fut: BoxFuture<'_, ZkResult<T>>) -> Result<T, String> {
    match deadline::timeout(CALL_TIMEOUT, fut).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(format!("{what}: {e}")),
        Err(_) => Err(format!("{what}: no answer in {CALL_TIMEOUT:?}")),
    }
}

/// `fut` bounded by the instant `limit` (madsim's tokio has no `timeout_at`); `Err` when it
/// passed first.
pub(super) async fn timeout_at<F: std::future::Future>(
    limit: Instant,
    fut: F,
) -> Result<F::Output, ()> {
    let left = limit.saturating_duration_since(Instant::now());
    deadline::timeout(left, fut).await.map_err(|_| ())
}

/// A duration in ms, to the µs.
pub(super) fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e6).round() / 1e3
}

/// Creates `path` and its missing ancestors as persistent nodes (a node that exists is fine).
pub async fn mkdirs(zk: &dyn Zk, path: &str) -> Result<(), String> {
    let mut at = String::new();
    for part in path.split('/').filter(|p| !p.is_empty()) {
        at.push('/');
        at.push_str(part);
        match deadline::timeout(
            CALL_TIMEOUT,
            zk.create(&at, b"", crate::zk::CreateMode::Persistent),
        )
        .await
        {
            Ok(Ok(_)) | Ok(Err(ZkError::NodeExists)) => {}
            Ok(Err(e)) => return Err(format!("create {at}: {e}")),
            Err(_) => return Err(format!("create {at}: no answer in {CALL_TIMEOUT:?}")),
        }
    }
    Ok(())
}

/// The figures of a probe, or its error noted under `name`.
pub fn keep<T>(
    errors: &mut BTreeMap<String, String>,
    name: &str,
    r: Result<T, String>,
) -> Option<T> {
    r.map_err(|e| errors.insert(name.to_string(), e)).ok()
}
