//! A simulated server as a madsim node of its own: the one way etcd's, Redis's and
//! ZooKeeper's models are started in a world.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

/// A node named `name` at `addr`'s IP that runs `serve(addr, state)` each time it starts.
/// `state` is what the server keeps on disk: a restarted node serves the same one again, so
/// it outlives a crash as far as the caller's model says it does.
pub fn serving<S, F>(
    handle: &madsim::runtime::Handle,
    name: &str,
    addr: SocketAddr,
    state: Arc<S>,
    serve: fn(SocketAddr, Arc<S>) -> F,
) -> madsim::runtime::NodeHandle
where
    S: Send + Sync + 'static,
    F: Future<Output = std::io::Result<()>> + 'static,
{
    handle
        .create_node()
        .name(name)
        .ip(addr.ip())
        .init(move || {
            let state = state.clone();
            async move {
                // A server ends only when its node is killed, or when it cannot bind: the
                // node then serves nothing, as a server that failed to start.
                let _ = serve(addr, state).await;
            }
        })
        .build()
}
