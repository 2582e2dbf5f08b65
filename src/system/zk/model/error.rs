//! ZooKeeper's error codes, as a client sees them (`zookeeper-server/src/main/java/org/apache/
//! zookeeper/KeeperException.java`, enum `KeeperException.Code`, ZooKeeper 3.8.0).

/// The errors the model answers, each with ZooKeeper's code, and the model's own limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ZkError {
    /// `NONODE` (-101): the node, or the parent of a node to create, does not exist.
    NoNode,
    /// `NODEEXISTS` (-110).
    NodeExists,
    /// `NOTEMPTY` (-111): delete of a node with children.
    NotEmpty,
    /// `BADVERSION` (-103): the expected version (not -1) differs from the node's.
    BadVersion,
    /// `NOCHILDRENFOREPHEMERALS` (-108): create under an ephemeral node.
    NoChildrenForEphemerals,
    /// `BADARGUMENTS` (-8): an invalid path (`PathUtils.validatePath`).
    BadArguments,
    /// `SESSIONEXPIRED` (-112): the session is closing or gone (`checkSession`).
    SessionExpired,
    /// `CONNECTIONLOSS` (-4): the client's connection broke with the request outstanding
    /// (`ClientCnxn.SendThread.cleanAndNotifyState`). The server may have applied it: a lock
    /// client must treat it as indeterminate. Only a client answers it, never the model server.
    ConnectionLoss,
    /// `RUNTIMEINCONSISTENCY` (-2): an op of a `multi` after the one that failed
    /// (`PrepRequestProcessor.pRequest`, `case OpCode.multi`).
    RuntimeInconsistency,
    /// Not ZooKeeper's: the model refuses to grow past one of its bounds (nodes, watches,
    /// sessions, bytes). ZooKeeper's nearest answers are an out-of-memory server or
    /// `jute.maxbuffer`'s closed connection.
    ModelLimit { what: &'static str },
}

impl ZkError {
    /// ZooKeeper's integer code (`KeeperException.Code.intValue()`), `None` for a model limit.
    pub fn code(self) -> Option<i32> {
        Some(match self {
            ZkError::NoNode => -101,
            ZkError::NodeExists => -110,
            ZkError::NotEmpty => -111,
            ZkError::BadVersion => -103,
            ZkError::NoChildrenForEphemerals => -108,
            ZkError::BadArguments => -8,
            ZkError::SessionExpired => -112,
            ZkError::ConnectionLoss => -4,
            ZkError::RuntimeInconsistency => -2,
            ZkError::ModelLimit { .. } => return None,
        })
    }
}

impl std::fmt::Display for ZkError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ZkError::ModelLimit { what } => write!(f, "zookeeper model limit: {what}"),
            other => write!(f, "zookeeper: {other:?} ({})", other.code().unwrap_or(0)),
        }
    }
}

impl std::error::Error for ZkError {}

impl ZkError {
    /// Whether the request may have been applied although the caller saw no success.
    pub fn is_indeterminate(self) -> bool {
        matches!(self, ZkError::ConnectionLoss)
    }
}

/// A result with a [`ZkError`].
pub type ZkResult<T> = Result<T, ZkError>;
