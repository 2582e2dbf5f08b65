//! Stalling etcd for a while: SIGSTOP/SIGCONT of a real etcd, madsim's pause of a simulated one.

use super::*;

/// Stalls etcd: while stalled it runs nothing and answers nothing.
pub trait Stall: Send + Sync {
    /// Stalls etcd for `duration`, then resumes it.
    fn stall(&self, duration: Duration) -> BoxFuture<'_, Result<(), String>>;
}

/// Stalls a real etcd process with `SIGSTOP`, resumes it with `SIGCONT` (also if the stall is
/// dropped half-way).
#[cfg(not(madsim))]
pub struct SigStop {
    pub pid: u32,
}

/// Sends `sig` (`STOP`, `CONT`) to `pid` with `kill`.
#[cfg(not(madsim))]
pub(crate) fn signal(pid: u32, sig: &str) -> Result<(), String> {
    let status = std::process::Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .status()
        .map_err(|e| format!("kill -{sig} {pid}: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("kill -{sig} {pid}: {status}"))
    }
}

#[cfg(not(madsim))]
struct ContOnDrop(u32);

#[cfg(not(madsim))]
impl Drop for ContOnDrop {
    fn drop(&mut self) {
        let _ = signal(self.0, "CONT");
    }
}

#[cfg(not(madsim))]
impl Stall for SigStop {
    fn stall(&self, duration: Duration) -> BoxFuture<'_, Result<(), String>> {
        Box::pin(async move {
            signal(self.pid, "STOP")?;
            let cont = ContOnDrop(self.pid);
            sleep(duration).await;
            std::mem::forget(cont);
            signal(self.pid, "CONT")
        })
    }
}

/// Stalls a simulated etcd node with madsim's pause.
#[cfg(madsim)]
pub struct PauseNode {
    pub node: madsim::task::NodeId,
}

#[cfg(madsim)]
impl Stall for PauseNode {
    fn stall(&self, duration: Duration) -> BoxFuture<'_, Result<(), String>> {
        Box::pin(async move {
            let handle = madsim::runtime::Handle::current();
            handle.pause(self.node);
            sleep(duration).await;
            handle.resume(self.node);
            Ok(())
        })
    }
}

// ---------------------------------------------------------------------------------------
// figures
