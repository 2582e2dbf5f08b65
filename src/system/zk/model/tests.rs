//! The model's rules asserted across its files: the lock-node lifecycle a Curator mutex goes
//! through, expiry closing a session in the tree, tokens, `multi`, watches, errors.

use super::*;

const LOCK: &str = "/locks/job";
const CURATOR_PREFIX: &str = "/locks/job/_c_0f1e-lock-";

fn server() -> Server {
    Server::new(SessionConfig::default(), TreeLimits::default(), 0)
}

/// Curator's `creatingParentContainersIfNeeded`: the parents as containers, if missing.
fn ensure_parents(tree: &mut DataTree, session: SessionId) {
    for path in ["/locks", LOCK] {
        match tree.create(session, path, b"", CreateMode::Container) {
            Ok(_) | Err(ZkError::NodeExists) => {}
            Err(e) => panic!("{path}: {e}"),
        }
    }
}

fn lock_node(server: &mut Server, session: SessionId, now_ms: u64) -> (String, Stat) {
    let tree = server.request(session, now_ms).unwrap();
    ensure_parents(tree, session);
    let (path, _) = tree
        .create(
            session,
            CURATOR_PREFIX,
            b"",
            CreateMode::EphemeralSequential,
        )
        .unwrap();
    let stat = tree.exists(&path, None).unwrap().unwrap();
    (path, stat)
}

#[test]
fn sequence_numbers_restart_after_an_empty_container_is_deleted_while_czxid_keeps_rising() {
    let mut s = server();
    let (a, _) = s.connect(60_000, 0).unwrap();
    let (first, first_stat) = lock_node(&mut s, a, 0);
    assert_eq!(first, "/locks/job/_c_0f1e-lock-0000000000");
    let tree = s.request(a, 10).unwrap();
    tree.delete(&first, -1).unwrap();
    let (second, second_stat) = lock_node(&mut s, a, 20);
    assert_eq!(
        second, "/locks/job/_c_0f1e-lock-0000000001",
        "one number per create, deletes or not"
    );
    s.request(a, 30).unwrap().delete(&second, -1).unwrap();
    let parent = s.tree().clone().exists(LOCK, None).unwrap().unwrap();
    assert_eq!(
        (parent.cversion, parent.client_cversion()),
        (2, 4),
        "stored creates; the client sees creates + deletes"
    );
    // The container check: /locks/job is empty and had children, so it goes; /locks still has it
    // as a child this round, and goes on the next.
    let tree = s.request(a, 40).unwrap();
    assert_eq!(tree.check_containers(100).0, vec![LOCK.to_string()]);
    assert_eq!(tree.check_containers(100).0, vec!["/locks".to_string()]);
    assert_eq!(tree.check_containers(100).0, Vec::<String>::new());
    let (third, third_stat) = lock_node(&mut s, a, 50);
    assert_eq!(
        third, "/locks/job/_c_0f1e-lock-0000000000",
        "the sequence restarts: not a safe token"
    );
    assert!(
        third_stat.czxid > second_stat.czxid && second_stat.czxid > first_stat.czxid,
        "czxid rises"
    );
    s.check_invariants();
}

#[test]
fn a_container_that_never_had_a_child_is_not_deleted() {
    let mut s = server();
    let (a, _) = s.connect(4000, 0).unwrap();
    let tree = s.request(a, 0).unwrap();
    ensure_parents(tree, a);
    assert_eq!(
        tree.check_containers(100).0,
        Vec::<String>::new(),
        "/locks has /locks/job; /locks/job never had one"
    );
    tree.create(a, "/locks/job/x", b"", CreateMode::Persistent)
        .unwrap();
    assert_eq!(
        tree.check_containers(100).0,
        Vec::<String>::new(),
        "not empty"
    );
    s.check_invariants();
}

#[test]
fn expiry_closes_a_session_deleting_all_its_ephemerals_in_one_zxid_and_fires_their_watches() {
    let mut s = server();
    let (holder, timeout_ms) = s.connect(4000, 0).unwrap();
    let (waiter, _) = s.connect(40_000, 0).unwrap();
    let (mine, _) = lock_node(&mut s, holder, 100);
    let tree = s.request(holder, 100).unwrap();
    tree.create(holder, "/other", b"", CreateMode::Ephemeral)
        .unwrap();
    let (theirs, _) = lock_node(&mut s, waiter, 200);
    // The waiter watches its predecessor (Curator: getData().usingWatcher) and /other (exists).
    let tree = s.request(waiter, 200).unwrap();
    tree.get_data(&mine, Some(waiter)).unwrap();
    tree.exists("/other", Some(waiter)).unwrap();
    tree.exists("/other", Some(holder)).unwrap();
    let zxid_before = s.tree().last_zxid();
    // The holder goes silent after 100 ms: dead in (100 + T, 100 + T + tick].
    assert!(s.tick(100 + timeout_ms).is_empty());
    assert!(s.ping(waiter, 3000));
    let closed = s.tick(100 + timeout_ms + 2000);
    assert_eq!(closed.len(), 1);
    let closed = &closed[0];
    assert_eq!(closed.session, holder);
    assert_eq!(closed.deleted, vec![mine.clone(), "/other".to_string()]);
    let fired: Vec<(SessionId, &str, EventKind)> = closed
        .events
        .iter()
        .map(|e| (e.session, e.path.as_str(), e.kind))
        .collect();
    assert_eq!(
        fired,
        vec![
            (waiter, mine.as_str(), EventKind::NodeDeleted),
            (waiter, "/other", EventKind::NodeDeleted)
        ]
    );
    assert_eq!(s.tree().last_zxid(), zxid_before + 1, "one transaction");
    assert_eq!(s.tree().ephemerals(holder), Vec::<String>::new());
    assert_eq!(s.request(holder, 7000).err(), Some(ZkError::SessionExpired));
    assert_eq!(
        s.tree().get_children(LOCK).unwrap(),
        vec![theirs.rsplit('/').next().unwrap().to_string()]
    );
    s.check_invariants();
}

#[test]
fn a_leader_change_gives_every_session_a_full_timeout_and_zxids_keep_rising() {
    let mut s = server();
    let (a, _) = s.connect(4000, 0).unwrap();
    let (_, before) = lock_node(&mut s, a, 0);
    // Silent since 0: due at 6 s on the old leader; the new leader starts at 5 s.
    s.leader_change(5000);
    assert!(
        s.tick(6000).is_empty(),
        "the new leader gives a full timeout"
    );
    assert_eq!(s.tracker().expiry_ms(a), Some(10_000));
    assert!(s.tick(9999).is_empty());
    assert_eq!(s.tick(10_000).len(), 1);
    let (b, _) = s.connect(4000, 10_000).unwrap();
    let (_, after) = lock_node(&mut s, b, 10_000);
    assert_eq!(after.czxid >> 32, 1, "the new epoch");
    assert!(after.czxid > before.czxid);
    s.check_invariants();
}

#[test]
fn a_multi_with_a_failing_check_changes_nothing() {
    let mut s = server();
    let (a, _) = s.connect(4000, 0).unwrap();
    let (lock, _) = lock_node(&mut s, a, 0);
    let tree = s.request(a, 0).unwrap();
    tree.create(a, "/data", b"v0", CreateMode::Persistent)
        .unwrap();
    tree.get_data("/data", Some(a)).unwrap();
    // The fenced write while holding: check the lock node exists, then write.
    let write = |lock: &str, value: &[u8]| {
        vec![
            Op::Check {
                path: lock.to_string(),
                version: -1,
            },
            Op::SetData {
                path: "/data".into(),
                data: value.to_vec(),
                version: -1,
            },
            Op::Create {
                path: "/data/log-".into(),
                data: Vec::new(),
                mode: CreateMode::PersistentSequential,
            },
        ]
    };
    let (results, events) = tree.multi(a, &write(&lock, b"v1")).unwrap();
    assert_eq!(
        results[2],
        OpResult::Created {
            path: "/data/log-0000000000".into()
        }
    );
    assert_eq!(events.len(), 1, "the getData watch fired once");
    tree.delete(&lock, -1).unwrap();
    let before = tree.clone();
    let zxid = tree.last_zxid();
    let err = tree.multi(a, &write(&lock, b"v2")).unwrap_err();
    assert_eq!(
        err,
        MultiError {
            index: 0,
            error: ZkError::NoNode
        }
    );
    assert_eq!(tree.get_data("/data", None).unwrap().0, b"v1".to_vec());
    assert_eq!(
        tree.get_children("/data").unwrap(),
        before.get_children("/data").unwrap()
    );
    assert_eq!(
        tree.exists("/data", None).unwrap(),
        before.clone().exists("/data", None).unwrap()
    );
    assert_eq!(
        tree.last_zxid(),
        zxid + 1,
        "a failed multi still takes a zxid"
    );
    s.check_invariants();
}

#[test]
fn a_multi_with_a_stale_check_after_a_good_op_changes_nothing() {
    let mut tree = DataTree::new(TreeLimits::default());
    tree.create(1, "/data", b"v1", CreateMode::Persistent)
        .unwrap();
    let stale = [
        Op::SetData {
            path: "/data".into(),
            data: b"v3".to_vec(),
            version: -1,
        },
        Op::Check {
            path: "/data".into(),
            version: 0,
        },
    ];
    assert_eq!(
        tree.multi(1, &stale).unwrap_err(),
        MultiError {
            index: 1,
            error: ZkError::BadVersion
        }
    );
    let (data, stat) = tree.get_data("/data", None).unwrap();
    assert_eq!((data, stat.version), (b"v1".to_vec(), 0));
    tree.check_invariants();
}

#[test]
fn errors_are_zookeepers() {
    let mut s = server();
    let (a, _) = s.connect(4000, 0).unwrap();
    let tree = s.request(a, 0).unwrap();
    assert_eq!(
        tree.create(a, "/x/y", b"", CreateMode::Persistent)
            .unwrap_err(),
        ZkError::NoNode
    );
    tree.create(a, "/x", b"", CreateMode::Persistent).unwrap();
    assert_eq!(
        tree.create(a, "/x", b"", CreateMode::Persistent)
            .unwrap_err(),
        ZkError::NodeExists
    );
    tree.create(a, "/x/y", b"", CreateMode::Persistent).unwrap();
    assert_eq!(tree.delete("/x", -1).unwrap_err(), ZkError::NotEmpty);
    assert_eq!(
        tree.delete("/x", 7).unwrap_err(),
        ZkError::BadVersion,
        "the version is checked first"
    );
    assert_eq!(
        tree.set_data("/x/y", b"", 3).unwrap_err(),
        ZkError::BadVersion
    );
    tree.create(a, "/e", b"", CreateMode::Ephemeral).unwrap();
    assert_eq!(
        tree.create(a, "/e/c", b"", CreateMode::Persistent)
            .unwrap_err(),
        ZkError::NoChildrenForEphemerals
    );
    for bad in ["x", "/x/", "//x", "/x/./y", ""] {
        assert_eq!(
            tree.exists(bad, None).unwrap_err(),
            ZkError::BadArguments,
            "{bad:?}"
        );
    }
    assert_eq!(tree.get_data("/nope", None).unwrap_err(), ZkError::NoNode);
    let codes: Vec<Option<i32>> = [
        ZkError::NoNode,
        ZkError::NodeExists,
        ZkError::NotEmpty,
        ZkError::BadVersion,
        ZkError::NoChildrenForEphemerals,
    ]
    .iter()
    .map(|e| e.code())
    .collect();
    assert_eq!(
        codes,
        vec![Some(-101), Some(-110), Some(-111), Some(-103), Some(-108)]
    );
    s.check_invariants();
}

#[test]
fn watches_are_one_shot_and_fire_created_changed_deleted() {
    let mut tree = DataTree::new(TreeLimits::default());
    let (a, b) = (1, 2);
    assert_eq!(
        tree.exists("/n", Some(b)).unwrap(),
        None,
        "exists on a missing node sets a watch"
    );
    assert_eq!(tree.get_data("/n", Some(a)).unwrap_err(), ZkError::NoNode);
    let (_, events) = tree.create(a, "/n", b"", CreateMode::Persistent).unwrap();
    assert_eq!(
        events,
        vec![WatchEvent {
            session: b,
            path: "/n".into(),
            kind: EventKind::NodeCreated
        }]
    );
    let (_, events) = tree.set_data("/n", b"1", -1).unwrap();
    assert!(events.is_empty(), "fired once, then gone");
    tree.get_data("/n", Some(b)).unwrap();
    tree.get_data("/n", Some(b)).unwrap();
    tree.exists("/n", Some(a)).unwrap();
    let (stat, events) = tree.set_data("/n", b"2", 1).unwrap();
    assert_eq!(stat.version, 2);
    let kinds: Vec<(SessionId, EventKind)> = events.iter().map(|e| (e.session, e.kind)).collect();
    assert_eq!(
        kinds,
        vec![
            (a, EventKind::NodeDataChanged),
            (b, EventKind::NodeDataChanged)
        ],
        "one per watcher"
    );
    tree.exists("/n", Some(a)).unwrap();
    assert_eq!(
        tree.delete("/n", -1).unwrap(),
        vec![WatchEvent {
            session: a,
            path: "/n".into(),
            kind: EventKind::NodeDeleted
        }]
    );
    tree.check_invariants();
}

#[test]
fn curator_orders_lock_nodes_by_sequence_not_by_name() {
    let children: Vec<String> = [
        "_c_ffff-lock-0000000002",
        "_c_0000-lock-0000000010",
        "_c_aaaa-lock-0000000001",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    assert_eq!(
        sort_by_sequence(&children, "lock-"),
        vec![
            "_c_aaaa-lock-0000000001",
            "_c_ffff-lock-0000000002",
            "_c_0000-lock-0000000010"
        ]
    );
}

#[test]
fn the_tree_is_bounded() {
    let limits = TreeLimits {
        nodes_max: 3,
        multi_ops_max: 2,
        ..TreeLimits::default()
    };
    let mut tree = DataTree::new(limits);
    tree.create(1, "/a", b"", CreateMode::Persistent).unwrap();
    tree.create(1, "/b", b"", CreateMode::Persistent).unwrap();
    assert_eq!(
        tree.create(1, "/c", b"", CreateMode::Persistent)
            .unwrap_err(),
        ZkError::ModelLimit { what: "nodes" }
    );
    let ops = vec![
        Op::Check {
            path: "/a".into(),
            version: -1
        };
        3
    ];
    assert_eq!(
        tree.multi(1, &ops).unwrap_err().error,
        ZkError::ModelLimit { what: "multi ops" }
    );
    tree.check_invariants();
}

/// A small deterministic generator for the random walks below (xorshift64*; no OS randomness).
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % n
    }
}

/// What the walk knows of each live session: its timeout and the last time it was touched.
struct Walk {
    server: Server,
    now_ms: u64,
    touched_ms: std::collections::BTreeMap<SessionId, (u64, u64)>,
    last_czxid: u64,
    /// What the walk did, so that the test can show it did something.
    closed: usize,
    containers_deleted: usize,
}

impl Walk {
    fn touch(&mut self, session: SessionId) -> bool {
        let alive = self.server.ping(session, self.now_ms);
        if alive {
            self.touched_ms
                .get_mut(&session)
                .expect("a live session is known")
                .0 = self.now_ms;
        }
        alive
    }

    /// One write on a live session: a lock node, a delete, or a fenced `multi`.
    fn write(&mut self, rng: &mut Rng, session: SessionId) {
        if !self.touch(session) {
            return;
        }
        let now_ms = self.now_ms;
        let tree = self.server.request(session, now_ms).expect("touched");
        let children = tree.get_children(LOCK).unwrap_or_default();
        match rng.below(3) {
            0 => {
                ensure_parents(tree, session);
                let (path, _) = tree
                    .create(
                        session,
                        CURATOR_PREFIX,
                        b"",
                        CreateMode::EphemeralSequential,
                    )
                    .unwrap();
                let czxid = tree.exists(&path, None).unwrap().unwrap().czxid;
                assert!(
                    czxid > self.last_czxid,
                    "every new lock node has a higher czxid"
                );
                self.last_czxid = czxid;
            }
            1 if !children.is_empty() => {
                let child = &children[rng.below(children.len() as u64) as usize];
                tree.delete(&format!("{LOCK}/{child}"), -1).unwrap();
            }
            _ => {
                let ops = [
                    Op::Check {
                        path: format!("{LOCK}/nope"),
                        version: -1,
                    },
                    Op::Delete {
                        path: LOCK.into(),
                        version: -1,
                    },
                ];
                let zxid = tree.last_zxid();
                assert_eq!(tree.multi(session, &ops).unwrap_err().index, 0);
                assert_eq!(tree.last_zxid(), zxid + 1);
            }
        }
    }

    /// Time passes and the tracker ticks: a session closes exactly at the first tick at or after
    /// its bucket, and its bucket lies in (last touch + T, last touch + T + tick].
    fn advance(&mut self, step_ms: u64) {
        let before_ms = self.now_ms;
        self.now_ms += step_ms;
        let closed = self.server.tick(self.now_ms);
        let closed_ids: Vec<SessionId> = closed.iter().map(|c| c.session).collect();
        let mut due = Vec::new();
        for (&id, &(touched_ms, timeout_ms)) in &self.touched_ms {
            let bucket_ms = expiry::round_to_next_interval(touched_ms + timeout_ms, TICK_MS);
            assert!(
                bucket_ms > touched_ms + timeout_ms
                    && bucket_ms <= touched_ms + timeout_ms + TICK_MS
            );
            assert!(
                bucket_ms > before_ms,
                "{id:#x} outlived its bucket {bucket_ms} ms"
            );
            if bucket_ms <= self.now_ms {
                due.push(id);
            }
        }
        assert_eq!(
            closed_ids, due,
            "closed exactly the sessions whose bucket came"
        );
        self.closed += closed.len();
        for c in &closed {
            self.touched_ms.remove(&c.session);
            assert!(c.deleted.iter().all(|p| self
                .server
                .tree()
                .clone()
                .exists(p, None)
                .unwrap()
                .is_none()));
        }
    }
}

const TICK_MS: u64 = session::TICK_MS_DEFAULT;

#[test]
fn random_walks_keep_every_invariant_and_expire_in_the_window() {
    let (mut closed, mut containers_deleted) = (0, 0);
    for seed in 1..=40u64 {
        let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
        let mut walk = Walk {
            server: server(),
            now_ms: 0,
            touched_ms: Default::default(),
            last_czxid: 0,
            closed: 0,
            containers_deleted: 0,
        };
        for _ in 0..400 {
            let live: Vec<SessionId> = walk.touched_ms.keys().copied().collect();
            match rng.below(10) {
                0 if live.len() < 6 => {
                    let (id, timeout_ms) = walk
                        .server
                        .connect(4000 + rng.below(8000), walk.now_ms)
                        .unwrap();
                    walk.touched_ms.insert(id, (walk.now_ms, timeout_ms));
                }
                1 | 2 if !live.is_empty() => {
                    let pick = live[rng.below(live.len() as u64) as usize];
                    walk.write(&mut rng, pick)
                }
                3 if !live.is_empty() => {
                    walk.touch(live[rng.below(live.len() as u64) as usize]);
                }
                4 => {
                    walk.containers_deleted += walk.server.check_containers(10).0.len();
                }
                5 if rng.below(20) == 0 => {
                    walk.server.leader_change(walk.now_ms);
                    for entry in walk.touched_ms.values_mut() {
                        entry.0 = walk.now_ms; // a full timeout from the new leader's start
                    }
                }
                _ => walk.advance(1 + rng.below(1500)),
            }
            walk.server.check_invariants();
        }
        closed += walk.closed;
        containers_deleted += walk.containers_deleted;
    }
    assert!(
        closed > 40 && containers_deleted > 40,
        "the walks expired {closed} sessions, deleted {containers_deleted} containers"
    );
}
