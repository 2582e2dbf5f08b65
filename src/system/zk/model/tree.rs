//! The data tree: znodes, their stats, the global zxid, ephemerals owned by sessions, container
//! parents, `multi` with `check`, and the data watches the writes fire.
//!
//! Each rule cites ZooKeeper 3.8.0, `zookeeper-server/src/main/java/org/apache/zookeeper/server/`:
//! `DataTree.java` (class `DataTree`: `createNode`, `deleteNode`, `setData`, `statNode`,
//! `getData`, `killSession`), `DataNode.java` (`copyStat`), `PrepRequestProcessor.java` (how a
//! request becomes a transaction: `pRequest`, `pRequest2Txn`, `pRequest2TxnCreate`,
//! `checkAndIncVersion`) and `ContainerManager.java` (`getCandidates`). In ZooKeeper a write is
//! checked against pending change records in `PrepRequestProcessor` and applied by `DataTree`;
//! the model has one server and no pipeline, so it checks and applies in one step.
//!
//! **zxids.** Every write request takes the next zxid before it is checked (`pRequest` calls
//! `zks.getNextZxid()` and a failed check becomes an error transaction with that zxid), so a
//! failed write uses one up too; a `multi` takes one zxid for all its ops. The zxid is
//! `epoch << 32 | counter` and a new leader starts a new epoch ([`DataTree::new_epoch`]).
//!
//! **cversion.** The node stores the number of child *creates* (`StatPersisted.cversion`,
//! bumped by `createNode`; `deleteNode` bumps only `pzxid`), and that stored count is the
//! sequential suffix (`pRequest2TxnCreate`: `String.format("%010d", parentCVersion)`). A client
//! reads `cversion * 2 - numChildren` (`DataNode.copyStat`), the count of creates and deletes;
//! [`Stat::client_cversion`] gives it. So sequence numbers under a parent run 0, 1, 2, … one per
//! create, deletes or not.
//!
//! Not modelled: ACLs, quotas, TTL nodes, child watches (`getChildren` with a watch) and
//! persistent watches, the `/zookeeper` system subtree, data as anything but bytes.

use super::error::{ZkError, ZkResult};
use super::path::{check_version, parent_of, validate_path};
use super::session::SessionId;
use super::watch::{EventKind, WatchEvent, Watches};
use std::collections::{BTreeMap, BTreeSet};

/// `CreateMode`: what kind of node `create` makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CreateMode {
    Persistent,
    PersistentSequential,
    Ephemeral,
    EphemeralSequential,
    /// `CreateMode.CONTAINER`: deleted by the server once empty (see [`DataTree::check_containers`]).
    Container,
}

impl CreateMode {
    pub fn is_sequential(self) -> bool {
        matches!(
            self,
            CreateMode::PersistentSequential | CreateMode::EphemeralSequential
        )
    }

    pub fn is_ephemeral(self) -> bool {
        matches!(
            self,
            CreateMode::Ephemeral | CreateMode::EphemeralSequential
        )
    }
}

/// Who owns a node: ZooKeeper's `ephemeralOwner` (`EphemeralType`): 0, a session, or the
/// container marker `0x8000000000000000`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Owner {
    None,
    Session(SessionId),
    Container,
}

/// A node's stat as the model stores it (`StatPersisted`), plus its number of children.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stat {
    /// The zxid of the create: the lock node's token candidate (it rises across leader changes).
    pub czxid: u64,
    /// The zxid of the last `setData` (the create's until then).
    pub mzxid: u64,
    /// The zxid of the last child create or delete (the create's until then).
    pub pzxid: u64,
    /// Data version, bumped by `setData`.
    pub version: i32,
    /// The stored cversion: the number of child creates, the next sequential suffix.
    pub cversion: i32,
    pub num_children: usize,
    pub owner: Owner,
}

impl Stat {
    /// The cversion a client reads (`DataNode.copyStat`): creates and deletes of children.
    pub fn client_cversion(&self) -> i64 {
        2 * i64::from(self.cversion) - self.num_children as i64
    }
}

/// One op of a `multi` (`org.apache.zookeeper.Op`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    Create {
        path: String,
        data: Vec<u8>,
        mode: CreateMode,
    },
    Delete {
        path: String,
        version: i32,
    },
    SetData {
        path: String,
        data: Vec<u8>,
        version: i32,
    },
    /// `Op.check(path, version)`: fails the whole `multi` unless the node exists with that
    /// version (-1: any version, so a check of existence).
    Check {
        path: String,
        version: i32,
    },
}

/// What one op of a successful `multi` answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OpResult {
    Created { path: String },
    Deleted,
    SetData { stat: Stat },
    Checked,
}

/// A failed `multi`: the index of the op that failed and its error; the ops after it answer
/// `RUNTIMEINCONSISTENCY` in ZooKeeper, the ops before it were rolled back
/// (`rollbackPendingChanges`), and nothing changed but the zxid used up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MultiError {
    pub index: usize,
    pub error: ZkError,
}

/// The model's bounds: a limit on everything (ZooKeeper's are memory and `jute.maxbuffer`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TreeLimits {
    pub nodes_max: usize,
    /// ZooKeeper refuses data over `jute.maxbuffer` (1 MiB); a lock node holds a few bytes.
    pub data_bytes_max: usize,
    pub path_bytes_max: usize,
    pub watches_max: usize,
    pub multi_ops_max: usize,
}

impl Default for TreeLimits {
    fn default() -> Self {
        Self {
            nodes_max: 10_000,
            data_bytes_max: 4096,
            path_bytes_max: 1024,
            watches_max: 10_000,
            multi_ops_max: 64,
        }
    }
}

#[derive(Debug, Clone)]
struct Node {
    data: Vec<u8>,
    stat: Stat,
    children: BTreeSet<String>,
}

/// The part of the tree a `multi` works on a copy of (so that a failed op changes nothing).
#[derive(Debug, Clone)]
struct State {
    nodes: BTreeMap<String, Node>,
    /// `DataTree.ephemerals`: session → its ephemeral paths.
    ephemerals: BTreeMap<SessionId, BTreeSet<String>>,
    /// `DataTree.containers`.
    containers: BTreeSet<String>,
    watches: Watches,
}

/// `DataTree`, with the zxid counter that in ZooKeeper is the server's (`hzxid`).
#[derive(Debug, Clone)]
pub struct DataTree {
    state: State,
    last_zxid: u64,
    limits: TreeLimits,
}

impl State {
    fn node(&self, path: &str) -> ZkResult<&Node> {
        self.nodes.get(path).ok_or(ZkError::NoNode)
    }

    /// `pRequest2TxnCreate` then `DataTree.createNode`: every check before any change.
    fn create(
        &mut self,
        zxid: u64,
        session: SessionId,
        path: &str,
        data: &[u8],
        mode: CreateMode,
        limits: &TreeLimits,
    ) -> ZkResult<(String, Vec<WatchEvent>)> {
        validate_path(path, mode.is_sequential(), limits.path_bytes_max)?;
        if path == "/" {
            return Err(ZkError::NodeExists);
        }
        let parent_path = parent_of(path).to_string();
        let parent = self.node(&parent_path)?;
        let full = if mode.is_sequential() {
            format!("{path}{:010}", parent.stat.cversion)
        } else {
            path.to_string()
        };
        validate_path(&full, false, limits.path_bytes_max)?;
        if self.nodes.contains_key(&full) {
            return Err(ZkError::NodeExists);
        }
        if matches!(parent.stat.owner, Owner::Session(_)) {
            return Err(ZkError::NoChildrenForEphemerals);
        }
        if self.nodes.len() >= limits.nodes_max {
            return Err(ZkError::ModelLimit { what: "nodes" });
        }
        if data.len() > limits.data_bytes_max {
            return Err(ZkError::ModelLimit { what: "data bytes" });
        }
        // The stored cversion is an int: ZooKeeper's suffix would wrap past 2^31 - 1; the model
        // stops there instead.
        let cversion = parent
            .stat
            .cversion
            .checked_add(1)
            .ok_or(ZkError::ModelLimit { what: "cversion" })?;
        let parent = self.nodes.get_mut(&parent_path).expect("checked above");
        assert!(cversion > parent.stat.cversion, "cversion never falls");
        parent.stat.cversion = cversion;
        parent.stat.pzxid = zxid;
        parent
            .children
            .insert(full.rsplit('/').next().expect("a child name").to_string());
        let owner = match mode {
            CreateMode::Container => Owner::Container,
            m if m.is_ephemeral() => Owner::Session(session),
            _ => Owner::None,
        };
        let stat = Stat {
            czxid: zxid,
            mzxid: zxid,
            pzxid: zxid,
            version: 0,
            cversion: 0,
            num_children: 0,
            owner,
        };
        self.nodes.insert(
            full.clone(),
            Node {
                data: data.to_vec(),
                stat,
                children: BTreeSet::new(),
            },
        );
        match owner {
            Owner::Session(s) => {
                assert!(self.ephemerals.entry(s).or_default().insert(full.clone()))
            }
            Owner::Container => assert!(self.containers.insert(full.clone())),
            Owner::None => {}
        }
        let events = self.watches.trigger(&full, EventKind::NodeCreated);
        Ok((full, events))
    }

    /// `PrepRequestProcessor` `case OpCode.delete` then `DataTree.deleteNode`: the version is
    /// checked before the children; the parent's `pzxid` moves, its stored cversion does not.
    fn delete(
        &mut self,
        zxid: u64,
        path: &str,
        version: i32,
        limits: &TreeLimits,
    ) -> ZkResult<Vec<WatchEvent>> {
        validate_path(path, false, limits.path_bytes_max)?;
        if path == "/" {
            return Err(ZkError::BadArguments);
        }
        let node = self.node(path)?;
        check_version(node.stat.version, version)?;
        if !node.children.is_empty() {
            return Err(ZkError::NotEmpty);
        }
        let node = self.nodes.remove(path).expect("checked above");
        let parent = self
            .nodes
            .get_mut(parent_of(path))
            .expect("a node's parent exists");
        assert!(parent
            .children
            .remove(path.rsplit('/').next().expect("a child name")));
        if zxid > parent.stat.pzxid {
            parent.stat.pzxid = zxid;
        }
        match node.stat.owner {
            Owner::Session(s) => {
                let paths = self
                    .ephemerals
                    .get_mut(&s)
                    .expect("an ephemeral is indexed");
                assert!(paths.remove(path));
                if paths.is_empty() {
                    self.ephemerals.remove(&s);
                }
            }
            Owner::Container => assert!(self.containers.remove(path)),
            Owner::None => {}
        }
        Ok(self.watches.trigger(path, EventKind::NodeDeleted))
    }

    /// `PrepRequestProcessor` `case OpCode.setData` then `DataTree.setData`.
    fn set_data(
        &mut self,
        zxid: u64,
        path: &str,
        data: &[u8],
        version: i32,
        limits: &TreeLimits,
    ) -> ZkResult<(Stat, Vec<WatchEvent>)> {
        validate_path(path, false, limits.path_bytes_max)?;
        let node = self.node(path)?;
        check_version(node.stat.version, version)?;
        if data.len() > limits.data_bytes_max {
            return Err(ZkError::ModelLimit { what: "data bytes" });
        }
        let node = self.nodes.get_mut(path).expect("checked above");
        node.data = data.to_vec();
        node.stat.mzxid = zxid;
        node.stat.version = node.stat.version.wrapping_add(1);
        let stat = stat_of(node);
        Ok((stat, self.watches.trigger(path, EventKind::NodeDataChanged)))
    }

    /// `PrepRequestProcessor` `case OpCode.check`.
    fn check(&self, path: &str, version: i32, limits: &TreeLimits) -> ZkResult<()> {
        validate_path(path, false, limits.path_bytes_max)?;
        check_version(self.node(path)?.stat.version, version)
    }

    fn apply(
        &mut self,
        zxid: u64,
        session: SessionId,
        op: &Op,
        limits: &TreeLimits,
    ) -> ZkResult<(OpResult, Vec<WatchEvent>)> {
        Ok(match op {
            Op::Create { path, data, mode } => {
                let (path, events) = self.create(zxid, session, path, data, *mode, limits)?;
                (OpResult::Created { path }, events)
            }
            Op::Delete { path, version } => (
                OpResult::Deleted,
                self.delete(zxid, path, *version, limits)?,
            ),
            Op::SetData {
                path,
                data,
                version,
            } => {
                let (stat, events) = self.set_data(zxid, path, data, *version, limits)?;
                (OpResult::SetData { stat }, events)
            }
            Op::Check { path, version } => {
                self.check(path, *version, limits)?;
                (OpResult::Checked, Vec::new())
            }
        })
    }
}

fn stat_of(node: &Node) -> Stat {
    Stat {
        num_children: node.children.len(),
        ..node.stat
    }
}

impl DataTree {
    /// A tree with only the root, at zxid 0.
    pub fn new(limits: TreeLimits) -> Self {
        assert!(
            limits.nodes_max > 0 && limits.multi_ops_max > 0,
            "limits leave room for work"
        );
        let root_stat = Stat {
            czxid: 0,
            mzxid: 0,
            pzxid: 0,
            version: 0,
            cversion: 0,
            num_children: 0,
            owner: Owner::None,
        };
        let root = Node {
            data: Vec::new(),
            stat: root_stat,
            children: BTreeSet::new(),
        };
        let state = State {
            nodes: BTreeMap::from([("/".to_string(), root)]),
            ephemerals: BTreeMap::new(),
            containers: BTreeSet::new(),
            watches: Watches::new(limits.watches_max),
        };
        Self {
            state,
            last_zxid: 0,
            limits,
        }
    }

    pub fn last_zxid(&self) -> u64 {
        self.last_zxid
    }

    /// `ZooKeeperServer.getNextZxid`: the next zxid, strictly above every earlier one.
    fn next_zxid(&mut self) -> u64 {
        // The counter is the low 32 bits; ZooKeeper forces an election before it wraps
        // (`ZxidRolloverException`). The model stops: 4 billion writes are outside any run.
        assert!(
            self.last_zxid & 0xffff_ffff < 0xffff_ffff,
            "zxid counter exhausted"
        );
        let zxid = self.last_zxid + 1;
        assert!(zxid > self.last_zxid, "zxids strictly rise");
        self.last_zxid = zxid;
        zxid
    }

    /// A new leader's epoch (`Leader.lead` → `ZooKeeperServer.setZxid(epoch << 32)`): the counter
    /// restarts at 0 under a higher epoch, so zxids keep rising.
    pub fn new_epoch(&mut self) {
        let epoch = (self.last_zxid >> 32) + 1;
        assert!(epoch < u64::from(u32::MAX), "epochs exhausted");
        let first = epoch << 32;
        assert!(first > self.last_zxid, "zxids rise across epochs");
        self.last_zxid = first;
    }

    /// A transaction that changes no node (`createSession`): it takes the next zxid. Answers it.
    pub fn session_txn(&mut self) -> u64 {
        self.next_zxid()
    }

    /// A write that takes a zxid first and fails without a change when its check fails.
    fn write<T>(
        &mut self,
        f: impl FnOnce(&mut State, u64, &TreeLimits) -> ZkResult<T>,
    ) -> ZkResult<T> {
        let zxid = self.next_zxid();
        let limits = self.limits;
        f(&mut self.state, zxid, &limits)
    }

    /// `create`: answers the created path (with its suffix when sequential) and the watches fired.
    pub fn create(
        &mut self,
        session: SessionId,
        path: &str,
        data: &[u8],
        mode: CreateMode,
    ) -> ZkResult<(String, Vec<WatchEvent>)> {
        self.write(|state, zxid, limits| state.create(zxid, session, path, data, mode, limits))
    }

    /// `delete(path, version)`.
    pub fn delete(&mut self, path: &str, version: i32) -> ZkResult<Vec<WatchEvent>> {
        self.write(|state, zxid, limits| state.delete(zxid, path, version, limits))
    }

    /// `setData(path, data, version)`.
    pub fn set_data(
        &mut self,
        path: &str,
        data: &[u8],
        version: i32,
    ) -> ZkResult<(Stat, Vec<WatchEvent>)> {
        self.write(|state, zxid, limits| state.set_data(zxid, path, data, version, limits))
    }

    /// `multi(ops)`: all ops under one zxid, all or nothing. Runs on a copy of the tree and keeps
    /// it only if every op succeeded (ZooKeeper checks each op against pending change records and
    /// rolls them back on the first failure).
    pub fn multi(
        &mut self,
        session: SessionId,
        ops: &[Op],
    ) -> Result<(Vec<OpResult>, Vec<WatchEvent>), MultiError> {
        if ops.len() > self.limits.multi_ops_max {
            return Err(MultiError {
                index: self.limits.multi_ops_max,
                error: ZkError::ModelLimit { what: "multi ops" },
            });
        }
        let zxid = self.next_zxid();
        let mut copy = self.state.clone();
        let (mut results, mut events) = (Vec::with_capacity(ops.len()), Vec::new());
        for (index, op) in ops.iter().enumerate() {
            let (result, fired) = copy
                .apply(zxid, session, op, &self.limits)
                .map_err(|error| MultiError { index, error })?;
            results.push(result);
            events.extend(fired);
        }
        self.state = copy;
        Ok((results, events))
    }

    /// `exists(path, watch)` (`DataTree.statNode`): the watch is set whether or not the node
    /// exists, so a watch on a missing node fires `NodeCreated`.
    pub fn exists(&mut self, path: &str, watch: Option<SessionId>) -> ZkResult<Option<Stat>> {
        validate_path(path, false, self.limits.path_bytes_max)?;
        if let Some(session) = watch {
            self.state.watches.add(path, session)?;
        }
        Ok(self.state.nodes.get(path).map(stat_of))
    }

    /// `getData(path, watch)` (`DataTree.getData`): a missing node answers `NoNode` and sets no
    /// watch.
    pub fn get_data(&mut self, path: &str, watch: Option<SessionId>) -> ZkResult<(Vec<u8>, Stat)> {
        validate_path(path, false, self.limits.path_bytes_max)?;
        let node = self.state.node(path)?;
        let answer = (node.data.clone(), stat_of(node));
        if let Some(session) = watch {
            self.state.watches.add(path, session)?;
        }
        Ok(answer)
    }

    /// `getChildren(path)`, without a watch. ZooKeeper answers its `HashSet`'s order; the model
    /// answers names in byte order, and a lock recipe sorts them itself ([`super::path::sort_by_sequence`]).
    pub fn get_children(&self, path: &str) -> ZkResult<Vec<String>> {
        validate_path(path, false, self.limits.path_bytes_max)?;
        Ok(self.state.node(path)?.children.iter().cloned().collect())
    }

    /// A session's ephemeral paths, in order (`DataTree.getEphemerals(sessionId)`).
    pub fn ephemerals(&self, session: SessionId) -> Vec<String> {
        self.state
            .ephemerals
            .get(&session)
            .map(|set| set.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// The sessions that own at least one ephemeral.
    pub fn ephemeral_owners(&self) -> impl Iterator<Item = SessionId> + '_ {
        self.state.ephemerals.keys().copied()
    }

    /// `closeSession` as applied (`DataTree.killSession`): one transaction, one zxid, deletes
    /// every ephemeral of the session. Answers the deleted paths and the watches they fire. The
    /// session's own watches are dropped first: its connection is closed with it
    /// (`NIOServerCnxnFactory.closeSession` → `removeCnxn`), so nothing is delivered to it.
    pub fn close_session(&mut self, session: SessionId) -> (Vec<String>, Vec<WatchEvent>) {
        let zxid = self.next_zxid();
        self.state.watches.remove_session(session);
        let paths = self.ephemerals(session);
        let mut events = Vec::new();
        for path in &paths {
            // An ephemeral has no children and any version goes: the delete cannot fail.
            events.extend(
                self.state
                    .delete(zxid, path, -1, &self.limits)
                    .expect("an ephemeral deletes"),
            );
        }
        assert!(
            !self.state.ephemerals.contains_key(&session),
            "every ephemeral of the session is gone"
        );
        (paths, events)
    }

    /// One run of `ContainerManager.checkContainers` (every `znode.container.checkIntervalMs`,
    /// default 60000): the candidates of `getCandidates` are containers with no children whose
    /// stored cversion is above 0 (a container that never had a child stays; ZooKeeper's
    /// `znode.container.maxNeverUsedIntervalMs` is 0 by default, which keeps it forever). Each is
    /// deleted by its own `deleteContainer` request, with its own zxid; at most `deletes_max`
    /// (ZooKeeper's `znode.container.maxPerMinute` throttle). A parent emptied by this check
    /// waits for the next one, as the candidates are listed once, before deleting.
    pub fn check_containers(&mut self, deletes_max: usize) -> (Vec<String>, Vec<WatchEvent>) {
        let candidates: Vec<String> = self
            .state
            .containers
            .iter()
            .filter(|path| {
                let node = &self.state.nodes[*path];
                node.children.is_empty() && node.stat.cversion > 0
            })
            .take(deletes_max)
            .cloned()
            .collect();
        let mut events = Vec::new();
        for path in &candidates {
            events.extend(self.delete(path, -1).expect("an empty container deletes"));
        }
        (candidates, events)
    }

    /// The tree's invariants, swept whole (O(nodes)): the tree is connected both ways, each
    /// stored cversion counts at least the children present, zxids lie at or below the last one,
    /// the ephemeral and container indexes match the owners, ephemerals have no children.
    pub fn check_invariants(&self) {
        let nodes = &self.state.nodes;
        assert!(nodes.contains_key("/"), "the root exists");
        assert!(
            nodes.len() <= self.limits.nodes_max,
            "nodes over their bound"
        );
        for (path, node) in nodes {
            let stat = node.stat;
            assert!(
                stat.czxid <= stat.mzxid && stat.czxid <= stat.pzxid,
                "{path}: {stat:?}"
            );
            assert!(
                stat.mzxid <= self.last_zxid && stat.pzxid <= self.last_zxid,
                "{path}: zxid from the future"
            );
            assert!(
                node.children.len() as i64 <= i64::from(stat.cversion),
                "{path}: more children than creates"
            );
            for child in &node.children {
                let child_path = if path == "/" {
                    format!("/{child}")
                } else {
                    format!("{path}/{child}")
                };
                assert!(
                    nodes.contains_key(&child_path),
                    "{child_path} listed but missing"
                );
            }
            if path != "/" {
                let name = path.rsplit('/').next().expect("a name");
                assert!(
                    nodes[parent_of(path)].children.contains(name),
                    "{path} not listed by its parent"
                );
            }
            match stat.owner {
                Owner::Session(s) => {
                    assert!(node.children.is_empty(), "ephemeral {path} has children");
                    assert!(
                        self.state
                            .ephemerals
                            .get(&s)
                            .is_some_and(|set| set.contains(path)),
                        "{path} unindexed"
                    );
                }
                Owner::Container => {
                    assert!(self.state.containers.contains(path), "{path} unindexed")
                }
                Owner::None => {}
            }
        }
        let indexed: usize = self.state.ephemerals.values().map(BTreeSet::len).sum();
        let owned = nodes
            .values()
            .filter(|n| matches!(n.stat.owner, Owner::Session(_)))
            .count();
        assert_eq!(
            indexed, owned,
            "the ephemeral index lists exactly the ephemerals"
        );
        assert!(
            self.state.ephemerals.values().all(|set| !set.is_empty()),
            "no empty ephemeral set is kept"
        );
        assert!(self.state.containers.iter().all(|p| nodes
            .get(p)
            .is_some_and(|n| n.stat.owner == Owner::Container)));
        self.state.watches.check_invariants();
    }
}
