//! What the probes do to a server that differs between a real one and a model node: step its
//! wall clock, and kill and restart it. (Stalling it is the etcd calibration's [`Stall`].)

use super::*;

/// Steps one server's wall clock (the clock Redis expires keys by), never its monotonic one.
pub trait WallStep: Send + Sync {
    /// Sets the server's wall clock `offset_ms` ahead of true time (negative: behind), and
    /// returns once the server reads the new time.
    fn set_offset_ms(&self, offset_ms: i64) -> BoxFuture<'_, Result<(), String>>;
}

/// Steps a model node's wall clock with [`Node::set_wall_offset_ms`]: at once, and
/// deterministically (it draws nothing and waits for nothing).
///
/// [`Node::set_wall_offset_ms`]: crate::redis::model::Node::set_wall_offset_ms
#[cfg(madsim)]
pub struct NodeWallStep {
    pub node: Arc<crate::redis::model::Node>,
}

#[cfg(madsim)]
impl WallStep for NodeWallStep {
    fn set_offset_ms(&self, offset_ms: i64) -> BoxFuture<'_, Result<(), String>> {
        Box::pin(async move {
            if offset_ms.abs() > crate::clock::OFFSET_MS_MAX {
                return Err(format!("offset {offset_ms} ms past the clock's limit"));
            }
            self.node.set_wall_offset_ms(offset_ms);
            Ok(())
        })
    }
}

/// Servers of the probe's own that it may kill: one at a time, the last one started.
pub trait Restart: Send + Sync {
    /// Starts a fresh server (empty disk) under persistence `mode`, in place of the last one;
    /// a client of it.
    fn start(&self, mode: Persistence) -> BoxFuture<'_, Result<Arc<dyn Redis>, String>>;
    /// Kills the server at once (`SIGKILL`): nothing it had not written survives.
    fn kill(&self) -> BoxFuture<'_, Result<(), String>>;
    /// Starts the killed server again on the same disk; returns once it answers.
    fn restart(&self) -> BoxFuture<'_, Result<(), String>>;
}
