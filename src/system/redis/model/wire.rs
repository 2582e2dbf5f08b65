//! What travels between a model client and a node: one [`Envelope`] per request and one per
//! answer, on one connection per client, as a multiplexed Redis connection pipelines its
//! commands on one TCP connection. RESP framing is abstracted away: a message is a typed
//! value, and a client cannot tell (it sees the same commands and answers).

use crate::redis::RedisError;

/// A request or an answer, tagged with the client's request ID.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope<T> {
    pub id: u64,
    pub body: T,
}

/// The commands of the [`Redis`](crate::redis::Redis) seam.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    SetNxPx {
        key: String,
        value: String,
        px_ms: i64,
    },
    Get {
        key: String,
    },
    Del {
        key: String,
    },
    Pttl {
        key: String,
    },
    Pexpire {
        key: String,
        px_ms: i64,
    },
    Incr {
        key: String,
    },
    /// The unlock script (compare-and-delete).
    DelIfEq {
        key: String,
        value: String,
    },
    /// The extend script (compare-and-pexpire).
    PexpireIfEq {
        key: String,
        value: String,
        px_ms: i64,
    },
}

impl Request {
    /// The one key every command of the seam names.
    pub fn key(&self) -> &str {
        match self {
            Request::SetNxPx { key, .. }
            | Request::Get { key }
            | Request::Del { key }
            | Request::Pttl { key }
            | Request::Pexpire { key, .. }
            | Request::Incr { key }
            | Request::DelIfEq { key, .. }
            | Request::PexpireIfEq { key, .. } => key,
        }
    }
}

/// A node's answer: RESP's integer, bulk string (or nil), or error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Response {
    /// `SET NX`'s `OK`/nil, `DEL`'s, `PEXPIRE`'s and the scripts' 1/0.
    Bool(bool),
    /// `GET`'s bulk string or nil.
    Value(Option<String>),
    /// `PTTL`'s and `INCR`'s integer.
    Int(i64),
    Error(RedisError),
}
