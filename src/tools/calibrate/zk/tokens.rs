//! The sequence-number probe: a container parent's sequence restarts once the server deletes
//! it, `czxid` does not.

use super::*;
use crate::zk::{CreateMode, Fired};

/// Children created under the container before it is emptied.
pub const SEQUENCE_CHILDREN: usize = 3;
/// How long the server may take to delete the emptied container: the check interval the
/// servers run with (`znode.container.checkIntervalMs=1000`, `.ci/zk-servers`) twice over,
/// and some.
pub const CONTAINER_GONE_MAX: Duration = Duration::from_secs(10);

pub const SEQUENCE_METHOD: &str = "calibrate/zk: a container parent; 3 ephemeral sequential children n- created and deleted by one session; the container watched with exists until NodeDeleted (ContainerManager, check interval 1000 ms); the container created again, one child; sequence numbers from the names' %010d suffix, czxids from the create's stat";

/// Sequence numbers and czxids across the deletion of an emptied container.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct SequenceRestart {
    /// The first children's sequence numbers, in creation order.
    pub before: Vec<u64>,
    pub before_czxids: Vec<u64>,
    /// The server deleted the emptied container, ms after the last child's delete answered.
    pub container_deleted_after_ms: u64,
    /// The first child's sequence number under the container created again.
    pub after: u64,
    pub after_czxid: u64,
}

/// The sequence number of a sequential node's name: its last ten digits (`%010d`,
/// `PrepRequestProcessor.pRequest2TxnCreate`).
pub fn sequence_of(path: &str) -> Result<u64, String> {
    let digits = path.len().checked_sub(10).map(|i| &path[i..]);
    digits
        .and_then(|d| d.parse().ok())
        .ok_or_else(|| format!("{path}: no %010d suffix"))
}

/// Creates `parent` as a container, [`SEQUENCE_CHILDREN`] sequential children, deletes them,
/// waits for the server to delete the container, then does it again once.
pub async fn sequence_restart(
    sessions: &dyn Sessions,
    dir: &str,
) -> Result<SequenceRestart, String> {
    let zk = call("connect", sessions.open(WATCHER_TIMEOUT_MS)).await?;
    mkdirs(&*zk, dir).await?;
    let parent = format!("{dir}/lock");
    let child = format!("{parent}/n-");
    call(
        "create container",
        zk.create(&parent, b"", CreateMode::Container),
    )
    .await?;
    let (mut before, mut before_czxids, mut paths) = (vec![], vec![], vec![]);
    for _ in 0..SEQUENCE_CHILDREN {
        let c = call(
            "create child",
            zk.create(&child, b"", CreateMode::EphemeralSequential),
        )
        .await?;
        before.push(sequence_of(&c.path)?);
        before_czxids.push(c.stat.czxid);
        paths.push(c.path);
    }
    let (_, watch) = call("exists", zk.exists_watch(&parent)).await?;
    for p in &paths {
        call("delete child", zk.delete(p, -1)).await?;
    }
    let emptied = Instant::now();
    match timeout_at(emptied + CONTAINER_GONE_MAX, watch).await {
        Ok(Fired::NodeDeleted) => {}
        Ok(other) => return Err(format!("{parent}: the watch fired {other:?}")),
        Err(_) => return Err(format!("{parent}: not deleted in {CONTAINER_GONE_MAX:?}")),
    }
    let container_deleted_after_ms = emptied.elapsed().as_millis() as u64;
    call(
        "create container again",
        zk.create(&parent, b"", CreateMode::Container),
    )
    .await?;
    let c = call(
        "create child again",
        zk.create(&child, b"", CreateMode::EphemeralSequential),
    )
    .await?;
    let _ = call("close", zk.close()).await;
    Ok(SequenceRestart {
        before,
        before_czxids,
        container_deleted_after_ms,
        after: sequence_of(&c.path)?,
        after_czxid: c.stat.czxid,
    })
}

#[cfg(test)]
mod tests {
    use super::sequence_of;

    #[test]
    fn a_sequence_is_the_names_last_ten_digits() {
        assert_eq!(sequence_of("/a/lock/n-0000000000"), Ok(0));
        assert_eq!(sequence_of("/a/lock/_c_x-lock-0000000042"), Ok(42));
        assert!(sequence_of("/a/n-12").is_err());
        assert!(sequence_of("/a/lock/n-00000000x1").is_err());
    }
}
