//! The five nodes of `fencelab real-redlock-demo` (`redlock.rs`): each as a demo client sees
//! it ([`DemoNode`]), as the demo itself checks them ([`Observer`]), and the servers' stops
//! (SIGSTOP, SIGCONT) and wall-clock steps (the realtime-offset shim's files), undone however
//! the demo ends ([`Restore`]).

use super::*;
use crate::lock::redlock::REDLOCK_KEY;
use crate::redis::real::RealRedis;
use crate::redis::{Redis, RedisResult};
use crate::BoxFuture;
use std::path::{Path, PathBuf};

/// The lock's TTL, s: Redlock's doc's example (10 s, so a node timeout of 500 ms).
pub const REDLOCK_TTL_S: i64 = 10;
/// How far C's wall clock steps: past the TTL, so that C expires client 1's key at once.
pub const CLOCK_STEP_MS: i64 = REDLOCK_TTL_S * 1000 + 1000;
/// The nodes of the story, A to E (`.ci/redis-servers`' five, in order).
pub const REDLOCK_NODES: usize = 5;
pub(super) const LABELS: [char; REDLOCK_NODES] = ['A', 'B', 'C', 'D', 'E'];
/// Which nodes client 1 cannot reach (D and E), and whose clock steps (C).
pub(super) const STOPPED: [usize; 2] = [3, 4];
pub(super) const STEPPED: usize = 2;
/// How long a server may take to show a step, a stop or a resume.
const SERVER_STATE_TIMEOUT: Duration = Duration::from_secs(2);
/// How often the demo looks again at a server's state.
const SERVER_POLL_PERIOD: Duration = Duration::from_millis(2);

/// What one `SET NX PX` of an attempt came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum SetSeen {
    /// Sent (or connecting), no answer before the per-node timeout dropped it.
    NoAnswer,
    Answer(RedisResult<bool>),
}

/// One node for one client: connected on its first call (see the module's doc), every
/// `SET NX PX`'s outcome noted in order (the k-th of each node belongs to attempt k).
pub(super) struct DemoNode {
    pub(super) endpoint: String,
    conn: tokio::sync::OnceCell<RealRedis>,
    sets: Mutex<Vec<SetSeen>>,
}

impl DemoNode {
    pub(super) fn new(endpoint: &str) -> Arc<DemoNode> {
        Arc::new(DemoNode {
            endpoint: endpoint.to_string(),
            conn: tokio::sync::OnceCell::new(),
            sets: Mutex::default(),
        })
    }

    /// The connection, made on the first call; a dropped attempt leaves it to the next.
    async fn node(&self) -> RedisResult<&RealRedis> {
        self.conn
            .get_or_try_init(|| RealRedis::connect(&self.endpoint))
            .await
    }

    pub(super) fn sets(&self) -> Vec<SetSeen> {
        self.sets.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

impl Redis for DemoNode {
    fn set_nx_px(&self, key: &str, value: &str, px_ms: i64) -> BoxFuture<'_, RedisResult<bool>> {
        let (key, value) = (key.to_string(), value.to_string());
        let slot = {
            let mut sets = self.sets.lock().unwrap_or_else(|e| e.into_inner());
            sets.push(SetSeen::NoAnswer);
            sets.len() - 1
        };
        Box::pin(async move {
            let r = match self.node().await {
                Ok(n) => n.set_nx_px(&key, &value, px_ms).await,
                Err(e) => Err(e),
            };
            self.sets.lock().unwrap_or_else(|e| e.into_inner())[slot] = SetSeen::Answer(r.clone());
            r
        })
    }

    fn get(&self, key: &str) -> BoxFuture<'_, RedisResult<Option<String>>> {
        let key = key.to_string();
        Box::pin(async move { self.node().await?.get(&key).await })
    }

    fn del(&self, key: &str) -> BoxFuture<'_, RedisResult<bool>> {
        let key = key.to_string();
        Box::pin(async move { self.node().await?.del(&key).await })
    }

    fn pttl(&self, key: &str) -> BoxFuture<'_, RedisResult<i64>> {
        let key = key.to_string();
        Box::pin(async move { self.node().await?.pttl(&key).await })
    }

    fn pexpire(&self, key: &str, px_ms: i64) -> BoxFuture<'_, RedisResult<bool>> {
        let key = key.to_string();
        Box::pin(async move { self.node().await?.pexpire(&key, px_ms).await })
    }

    fn incr(&self, key: &str) -> BoxFuture<'_, RedisResult<i64>> {
        let key = key.to_string();
        Box::pin(async move { self.node().await?.incr(&key).await })
    }

    fn del_if_eq(&self, key: &str, value: &str) -> BoxFuture<'_, RedisResult<bool>> {
        let (key, value) = (key.to_string(), value.to_string());
        Box::pin(async move { self.node().await?.del_if_eq(&key, &value).await })
    }

    fn pexpire_if_eq(
        &self,
        key: &str,
        value: &str,
        px_ms: i64,
    ) -> BoxFuture<'_, RedisResult<bool>> {
        let (key, value) = (key.to_string(), value.to_string());
        Box::pin(async move { self.node().await?.pexpire_if_eq(&key, &value, px_ms).await })
    }
}

// ---------------------------------------------------------------------------------------
// the servers: stops, clock steps, and putting them back

pub(super) use crate::tools::calibrate::stall::signal;

/// The state letter of /proc/PID/stat ('T' stopped, 'S' sleeping, ...).
fn process_state(pid: u32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name in parentheses may hold spaces: the state follows the last ')'.
    stat.rsplit_once(')')?.1.trim_start().chars().next()
}

/// Waits (bounded) until `pid` is stopped (`want_stopped`) or running again.
pub(super) async fn await_state(pid: u32, want_stopped: bool) -> Result<(), String> {
    let deadline = Instant::now() + SERVER_STATE_TIMEOUT;
    while (process_state(pid) == Some('T')) != want_stopped {
        if Instant::now() >= deadline {
            let want = if want_stopped { "stop" } else { "run again" };
            return Err(format!(
                "PID {pid} did not {want} within {SERVER_STATE_TIMEOUT:?}"
            ));
        }
        tokio::time::sleep(SERVER_POLL_PERIOD).await;
    }
    Ok(())
}

/// Writes a server's wall-clock offset, by rename so that the shim never reads it half-written.
pub(super) fn write_offset(path: &Path, offset_ms: i64) -> Result<(), String> {
    let tmp = path.with_extension("fencelab-tmp");
    std::fs::write(&tmp, format!("{offset_ms}\n"))
        .and_then(|_| std::fs::rename(&tmp, path))
        .map_err(|e| format!("cannot write the offset file {}: {e}", path.display()))
}

pub(super) fn read_offset(path: &Path) -> Result<i64, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read the offset file {}: {e}", path.display()))?;
    text.trim()
        .parse()
        .map_err(|_| format!("offset file {} holds {text:?}, not ms", path.display()))
}

/// Puts the servers back however the demo ends (an error, a panic): the stopped ones running,
/// C's clock without its step.
pub(super) struct Restore {
    pub(super) stopped: Vec<u32>,
    pub(super) offset_file: PathBuf,
}

impl Drop for Restore {
    fn drop(&mut self) {
        for &pid in &self.stopped {
            let _ = signal(pid, "CONT");
        }
        let _ = write_offset(&self.offset_file, 0);
    }
}

/// The demo's view of every node, for checks outside the clients (one connection each).
pub(super) struct Observer {
    nodes: Vec<RealRedis>,
}

impl Observer {
    /// Connects to every node and checks that no lock key is left from an earlier run.
    pub(super) async fn connect(endpoints: &[String]) -> Result<Observer, String> {
        let mut nodes = Vec::new();
        for (label, e) in LABELS.iter().zip(endpoints) {
            let node = RealRedis::connect(e)
                .await
                .map_err(|e| format!("node {label}: {e}"))?;
            let pttl_ms = node.pttl(REDLOCK_KEY).await.map_err(|e| e.to_string())?;
            if pttl_ms != crate::redis::PTTL_MISSING {
                return Err(format!(
                    "node {label} ({e}) still holds {REDLOCK_KEY} for {pttl_ms} ms (an earlier \
                     run's lock): try again once it expires"
                ));
            }
            nodes.push(node);
        }
        Ok(Observer { nodes })
    }

    /// Steps C's clock past the TTL and waits until C no longer holds client 1's key.
    pub(super) async fn step_clock(&self, file: &Path, demo: &Out) -> Result<(), String> {
        let c = &self.nodes[STEPPED];
        let before_ms = c.pttl(REDLOCK_KEY).await.map_err(|e| e.to_string())?;
        write_offset(file, CLOCK_STEP_MS)?;
        let stepped = Instant::now();
        let deadline = stepped + SERVER_STATE_TIMEOUT;
        // Polled: the shim re-reads the file at most once per ms, and Redis expires on access.
        while c
            .get(REDLOCK_KEY)
            .await
            .map_err(|e| e.to_string())?
            .is_some()
        {
            if Instant::now() >= deadline {
                return Err(format!(
                    "C still holds the lock {SERVER_STATE_TIMEOUT:?} after the step"
                ));
            }
            tokio::time::sleep(SERVER_POLL_PERIOD).await;
        }
        demo.line(format!(
            "C's wall clock steps +{CLOCK_STEP_MS} ms ({}): C's PTTL for the lock was {before_ms} \
             ms, the key is gone {} ms after the step",
            file.display(),
            stepped.elapsed().as_millis()
        ));
        Ok(())
    }

    /// What D and E hold once they run again: nothing of client 1's, if it never reached them.
    pub(super) async fn after_resume(&self, demo: &Out) -> Result<(), String> {
        for i in STOPPED {
            let held = self.nodes[i]
                .get(REDLOCK_KEY)
                .await
                .map_err(|e| e.to_string())?;
            demo.line(format!(
                "{} runs again; it holds {}",
                LABELS[i],
                held.map_or(
                    "no lock key (client 1's SET never reached it)".into(),
                    |v| { format!("{REDLOCK_KEY} = {v}") }
                )
            ));
        }
        Ok(())
    }
}
