//! What travels between a model client and the member: one message per request, one per
//! answer (a watch answers many times), on one connection per client, as gRPC multiplexes
//! calls on one HTTP/2 channel.

use crate::etcd::{EtcdError, Grant, Keys, LeaderKey, LeaseId, LockKey, Range, Revision, Txn};
use crate::etcd::{TxnResult, WatchEvent};

/// A request, tagged with the client's request ID.
#[derive(Debug, Clone)]
pub struct Envelope<T> {
    pub id: u64,
    pub body: T,
}

#[derive(Debug, Clone)]
pub enum Request {
    Grant {
        ttl_s: i64,
    },
    KeepAlive {
        id: LeaseId,
    },
    Revoke {
        id: LeaseId,
    },
    TimeToLive {
        id: LeaseId,
    },
    Put {
        key: String,
        value: String,
        lease: LeaseId,
    },
    Get(Keys),
    Delete(Keys),
    Txn(Txn),
    /// Answers with events until canceled.
    Watch {
        keys: Keys,
        start_revision: Revision,
    },
    Lock {
        name: String,
        lease: LeaseId,
    },
    Unlock {
        key: String,
    },
    Campaign {
        name: String,
        value: String,
        lease: LeaseId,
    },
    Resign(LeaderKey),
    /// The client gave up on request `id` (gRPC's RST_STREAM on a canceled context).
    Cancel,
}

impl Request {
    /// Whether the member answers at once (after applying), rather than waiting or streaming.
    pub fn is_unary(&self) -> bool {
        !matches!(
            self,
            Request::Watch { .. }
                | Request::Lock { .. }
                | Request::Campaign { .. }
                | Request::Cancel
        )
    }

    /// Whether etcd sends it through the Raft log, where it can time out after it committed
    /// (`etcdserver/v3_server.go`, `processInternalRaftRequestOnce`). Keepalives are answered
    /// by the leader's lessor directly and TimeToLive and reads never write.
    pub fn goes_through_the_log(&self) -> bool {
        matches!(
            self,
            Request::Grant { .. }
                | Request::Revoke { .. }
                | Request::Put { .. }
                | Request::Delete(_)
                | Request::Txn(_)
                | Request::Unlock { .. }
                | Request::Resign(_)
        )
    }
}

#[derive(Debug, Clone)]
pub enum Response {
    Grant(Grant),
    /// A keepalive's or TimeToLive's TTL.
    Ttl(i64),
    Done,
    Revision(Revision),
    Range(Range),
    Deleted(u64),
    Txn(TxnResult),
    Events(Vec<WatchEvent>),
    Lock(LockKey),
    Leader(LeaderKey),
    Error(EtcdError),
}
