//! A member of a [`Cluster`] as the server and the lock recipes hold it: its index, its clock,
//! and what a request through it needs of the cluster. Its own file so that the recipes use
//! it without importing the server that calls them.

use super::cluster::Cluster;
use super::config::Config;
use super::member::State;
use super::wire::Request;
use crate::clock::NodeClock;
use crate::etcd::Version;
use std::sync::{Arc, MutexGuard};

/// One member of a [`Cluster`]: its index, its clock, and the cluster's state.
pub struct Member {
    pub(super) cluster: Arc<Cluster>,
    pub(super) index: usize,
    pub(super) clock: NodeClock,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Fault {
    None,
    /// Times out without committing.
    Lost,
    /// Commits, then times out.
    Ambiguous,
}

impl Member {
    /// The one member of a cluster of one.
    pub fn new(cfg: Config, clock: NodeClock) -> Self {
        Member::of(&Cluster::new(cfg, vec![clock]), 0)
    }

    /// Member `index` of `cluster`.
    pub fn of(cluster: &Arc<Cluster>, index: usize) -> Self {
        assert!(
            index < cluster.members(),
            "member {index} of {}",
            cluster.members()
        );
        Member {
            clock: cluster.clock(index),
            cluster: cluster.clone(),
            index,
        }
    }

    pub fn cluster(&self) -> &Arc<Cluster> {
        &self.cluster
    }

    /// The cluster's committed state.
    pub fn state(&self) -> MutexGuard<'_, State> {
        self.cluster.state()
    }

    pub(super) fn cfg(&self) -> &Config {
        self.cluster.config()
    }

    pub fn version(&self) -> Version {
        self.cfg().version
    }

    /// The member's monotonic clock, µs.
    pub fn now_us(&self) -> i64 {
        self.clock.monotonic_us()
    }

    /// What a request through this member needs of the cluster: a leader with a majority (it
    /// goes through the log, or is a linearizable read), a reachable leader (the leader's
    /// lessor answers it), or nothing (a watch: served from the member's own state).
    pub(super) fn ready(&self, req: &Request) -> bool {
        match req {
            Request::KeepAlive { .. } => {
                self.cluster.renewing_leader(self.index).is_some()
                    || self.cluster.is_stale(self.index)
            }
            Request::TimeToLive { .. } => self.cluster.renewing_leader(self.index).is_some(),
            Request::Watch { .. } | Request::Cancel => true,
            // Through the log, a linearizable read, or a Lock or Campaign (which write).
            _ => self.cluster.can_commit(self.index),
        }
    }

    /// Waits (etcd's request timeout at most) until the request can be served; false if not.
    pub(super) async fn wait_ready(&self, req: &Request) -> bool {
        let timeout = self.cfg().request_timeout();
        self.cluster.wait_until(timeout, || self.ready(req)).await
    }

    /// The clock lease deadlines run on: the leader's (`lessor.go` runs on the leader).
    pub(super) fn lease_now_us(&self) -> i64 {
        let leader = self.cluster.renewing_leader(self.index);
        self.cluster.now_us(leader.unwrap_or(self.index))
    }

    pub(super) fn draw_fault(&self) -> Fault {
        let (lost, ambiguous) = (self.cfg().timeout_permille, self.cfg().ambiguous_permille);
        if lost + ambiguous == 0 {
            return Fault::None;
        }
        let r = self.cluster.draw_fault_permille(self.index);
        if r < lost {
            Fault::Lost
        } else if r < lost + ambiguous {
            Fault::Ambiguous
        } else {
            Fault::None
        }
    }
}
