//! The failover probe: the ensemble's leader killed while a client is silent. A new leader
//! re-tracks every session with a full timeout from its own start (`LeaderZooKeeperServer`
//! starts a fresh `SessionTrackerImpl`, whose constructor adds each session of the snapshot
//! with `addSession` → `touchSession` at its own now), so the silent session's ephemeral goes
//! no sooner than the new leader's start + T, however long the client was silent before.

use super::*;
use crate::zk::{CreateMode, Fired};
use tokio::time::sleep_until;

/// Leader kills, one after another.
pub const FAILOVER_TRIALS: usize = 3;
/// How long after the silent client's last packet the leader is killed: well inside T, so
/// that without the failover the session would go at T..T + tick after that packet.
pub const KILL_AFTER: Duration = Duration::from_millis(1_000);
/// How long a new leader may take to serve: ZooKeeper's election is sub-second on loopback,
/// then the followers sync (`initLimit` ticks at most).
pub const ELECTION_MAX: Duration = Duration::from_secs(30);

pub const FAILOVER_METHOD: &str = "calibrate/zk: a 3-server ensemble (tickTime 2000); a session of 4000 ms through a proxy to server 1 with an ephemeral node, watched by a session of 10000 ms on all three; the proxy silenced; 1000 ms after the last packet the leader (srvr: Mode: leader) is SIGKILLed; the new leader is the first other server seen answering srvr with Mode: leader, polled every 20 ms; ms from there and from the last packet to the watcher's NodeDeleted; the killed server started again and waited for before the next of 3 trials";

/// A real or simulated ensemble whose leader a probe can kill.
pub trait Ensemble: Send + Sync {
    /// Sessions on the whole ensemble (the connect string of every server).
    fn sessions(&self) -> Arc<dyn Sessions>;
    /// Kills the current leader at once; answers which server it was (0-based).
    fn kill_leader(&self) -> BoxFuture<'_, Result<usize, String>>;
    /// Waits, at most [`ELECTION_MAX`], for a server other than `killed` to serve as leader;
    /// answers when it was first seen doing so.
    fn new_leader(&self, killed: usize) -> BoxFuture<'_, Result<Instant, String>>;
    /// Starts server `killed` again and waits, bounded, until it serves.
    fn restart(&self, killed: usize) -> BoxFuture<'_, Result<(), String>>;
}

/// One leader kill.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct LeaderKill {
    /// Which server led (0-based).
    pub killed: usize,
    /// From the silent client's last packet to the kill.
    pub last_packet_to_kill_ms: f64,
    /// From the kill to the new leader first seen serving.
    pub kill_to_new_leader_ms: f64,
    /// From the new leader first seen serving to the watcher's `NodeDeleted`.
    pub new_leader_to_deleted_ms: f64,
    /// From the last packet to the watcher's `NodeDeleted`.
    pub last_packet_to_deleted_ms: f64,
}

/// The ensemble's leader killed while a client is silent.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Failover {
    pub timeout_ms: u64,
    pub trials: Vec<LeaderKill>,
}

async fn failover_trial(e: &dyn Ensemble, dir: &str, i: usize) -> Result<LeaderKill, String> {
    let sessions = e.sessions();
    let watcher = call("watcher", sessions.open(10_000)).await?;
    mkdirs(&*watcher, dir).await?;
    let (zk, silence) = sessions.open_silenceable(EXPIRY_TIMEOUT_MS).await?;
    let t = Duration::from_millis(zk.session().timeout_ms);
    let path = format!("{dir}/s{i}");
    call("create", zk.create(&path, b"", CreateMode::Ephemeral)).await?;
    let (_, watch) = call("exists", watcher.exists_watch(&path)).await?;
    let last = silence.silence().await?;
    sleep_until(last + KILL_AFTER).await;
    let killed_at = Instant::now();
    let killed = e.kill_leader().await?;
    let leader = e.new_leader(killed).await?;
    let limit = leader + t + Duration::from_millis(TICK_MS) + LATE_MAX;
    let deleted = match timeout_at(limit, watch).await {
        Ok(Fired::NodeDeleted) => Instant::now(),
        Ok(other) => return Err(format!("{path}: the watch fired {other:?}")),
        Err(_) => {
            return Err(format!(
                "{path}: not deleted {:?} after the new leader",
                limit - leader
            ))
        }
    };
    let _ = call("close", watcher.close()).await;
    e.restart(killed).await?;
    let signed = |a: Instant, b: Instant| if b >= a { ms(b - a) } else { -ms(a - b) };
    Ok(LeaderKill {
        killed,
        last_packet_to_kill_ms: ms(killed_at - last),
        kill_to_new_leader_ms: ms(leader - killed_at),
        new_leader_to_deleted_ms: signed(leader, deleted),
        last_packet_to_deleted_ms: ms(deleted - last),
    })
}

/// [`FAILOVER_TRIALS`] leader kills in turn; `dir` is the probe's own.
pub async fn failover(e: &dyn Ensemble, dir: &str) -> Result<Failover, String> {
    let mut trials = Vec::with_capacity(FAILOVER_TRIALS);
    for i in 0..FAILOVER_TRIALS {
        trials.push(failover_trial(e, dir, i).await?);
    }
    Ok(Failover {
        timeout_ms: EXPIRY_TIMEOUT_MS,
        trials,
    })
}
