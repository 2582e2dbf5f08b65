//! The lock service a client talks to, and what a recipe gets of it.
//!
//! A world hosts the nodes of one lock service: etcd's members, or Redlock's N independent
//! Redis nodes, or ZooKeeper's ensemble. A client connects to that service once
//! ([`Service`]); each lock cycle then hands the recipe a [`ServiceContext`]: the service's
//! client and, where the service has one, the session the lock is lost with (etcd's lease).
//! A recipe asks for the service it is written for ([`LockContext::etcd`],
//! [`LockContext::redis`]) and gets a clear error on a world of another.
//!
//! [`LockContext::etcd`]: super::LockContext::etcd
//! [`LockContext::redis`]: super::LockContext::redis

use super::{EtcdHandle, LockError, Session};
use crate::redis::Redis;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// A shared handle on one Redis node, whichever backend.
pub type RedisHandle = Arc<dyn Redis>;

/// Which lock service a world hosts (the scenario's `service`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
#[serde(rename_all = "kebab-case")]
pub enum ServiceKind {
    /// etcd: one member or a cluster (`etcd_members`), the lock held under a lease.
    #[default]
    Etcd,
    /// N independent Redis masters (`redis_nodes`), locked with Redlock or, on one node, the
    /// single-instance `SET NX PX` lock.
    Redlock,
    /// A ZooKeeper ensemble (`[zk] servers`), locked with Curator's `InterProcessMutex`.
    Zk,
}

impl ServiceKind {
    /// Every service, in the order the docs list them.
    pub const ALL: [ServiceKind; 3] = [ServiceKind::Etcd, ServiceKind::Redlock, ServiceKind::Zk];

    pub fn as_str(self) -> &'static str {
        match self {
            ServiceKind::Etcd => "etcd",
            ServiceKind::Redlock => "redlock",
            ServiceKind::Zk => "zk",
        }
    }
}

impl std::str::FromStr for ServiceKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        crate::named::parse(&ServiceKind::ALL, ServiceKind::as_str, "service", s)
    }
}

/// A client's connection to the world's lock service.
#[derive(Clone)]
pub enum Service {
    Etcd(EtcdHandle),
    /// One client per Redis node, in node order (`redis1` first).
    Redis(Vec<RedisHandle>),
    /// The client of the ZooKeeper ensemble: one session at a time, as Curator's.
    Zk(Arc<crate::zk::ZkClient>),
}

impl Service {
    pub fn kind(&self) -> ServiceKind {
        match self {
            Service::Etcd(_) => ServiceKind::Etcd,
            Service::Redis(_) => ServiceKind::Redlock,
            Service::Zk(_) => ServiceKind::Zk,
        }
    }
}

/// What one lock cycle has of the service: its client, and the session the lock is held
/// under where the service has sessions.
#[derive(Clone, Copy)]
pub enum ServiceContext<'a> {
    /// etcd, and the cycle's lease.
    Etcd {
        etcd: &'a dyn crate::etcd::Etcd,
        session: &'a Session,
    },
    /// Redis's nodes. Redlock has no session: the lock lasts as long as the validity the
    /// client computed when it took it (`Holding::valid_until_us`).
    Redis { nodes: &'a [RedisHandle] },
    /// ZooKeeper's client. The lock is held under its session, which the recipe takes from
    /// the client at each attempt (a new one after the last ended, as Curator's).
    Zk { client: &'a crate::zk::ZkClient },
}

impl<'a> ServiceContext<'a> {
    /// The service's name, for errors.
    pub fn kind(&self) -> ServiceKind {
        match self {
            ServiceContext::Etcd { .. } => ServiceKind::Etcd,
            ServiceContext::Redis { .. } => ServiceKind::Redlock,
            ServiceContext::Zk { .. } => ServiceKind::Zk,
        }
    }

    pub(super) fn wrong(&self, wanted: ServiceKind) -> LockError {
        LockError::WrongService {
            wanted: wanted.as_str(),
            got: self.kind().as_str(),
        }
    }
}
