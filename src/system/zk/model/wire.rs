//! What travels between a model client ([`super::client::ModelZk`]) and a model server
//! ([`super::ZkNode`]): one message per packet, on one connection per session at a time, as
//! ZooKeeper's `ClientCnxnSocketNIO` carries jute records on one TCP connection. The framing
//! (jute, the 4-byte length) is abstracted away: a message is a typed value, and a client sees
//! the same requests, answers and events.

use super::error::ZkError;
use super::tree::{CreateMode, MultiError, Op, OpResult, Stat};
use super::watch::EventKind;

/// A client's packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ToServer {
    /// `ConnectRequest` (`ClientCnxn.SendThread.primeConnection`): the first packet of every
    /// connection. `session_id` 0 asks for a new session; another is a reconnect of that
    /// session (`ZooKeeperServer.processConnectRequest` → `reopenSession`).
    Connect { session_id: u64, timeout_ms: u64 },
    /// `OpCode.ping`, sent after T/3 without sending (`SendThread.run`).
    Ping,
    /// A request with its `xid`, answered with the same `xid`.
    Request { xid: u64, body: Request },
}

/// The requests of the [`Zk`](crate::zk::Zk) seam.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    Create {
        path: String,
        data: Vec<u8>,
        mode: CreateMode,
    },
    Delete {
        path: String,
        version: i32,
    },
    GetData {
        path: String,
        watch: bool,
    },
    Exists {
        path: String,
        watch: bool,
    },
    SetData {
        path: String,
        data: Vec<u8>,
        version: i32,
    },
    GetChildren {
        path: String,
    },
    Multi {
        ops: Vec<Op>,
    },
    /// `OpCode.closeSession`, the client's own `close()`.
    CloseSession,
}

/// A server's packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ToClient {
    /// `ConnectResponse` with the negotiated timeout (`ZooKeeperServer.finishSessionInit`,
    /// valid).
    Connected { session_id: u64, timeout_ms: u64 },
    /// `ConnectResponse` with timeout 0: the session is gone (`finishSessionInit` with
    /// `valid == false`; the client's `onConnected` raises `Expired`). The server then closes
    /// the connection.
    Expired,
    /// The answer to a ping (`xid == -2`).
    Pong,
    /// The answer to a request.
    Reply { xid: u64, body: Response },
    /// A fired watch (`xid == -1`, `WatcherEvent`).
    Event { path: String, kind: EventKind },
}

/// A request's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Response {
    Created { path: String, stat: Stat },
    Deleted,
    Data { data: Vec<u8>, stat: Stat },
    Exists(Option<Stat>),
    Stat(Stat),
    Children(Vec<String>),
    Multi(Result<Vec<OpResult>, MultiError>),
    Closed,
    Error(ZkError),
}
