//! The storage keys the workloads use, named below both the [`workload`](crate::workload)
//! that writes them and the simulator's checker that reads their history.
//! Imports nothing of the crate.

/// The key of `contrib/lock`'s single write.
pub const SINGLE_KEY: &str = "key0";
/// The key of the counter workload.
pub const COUNTER_KEY: &str = "counter";
/// The transfer workload's two accounts: each cycle moves one unit from the first to the
/// second.
pub const TRANSFER_FROM_KEY: &str = "account-a";
pub const TRANSFER_TO_KEY: &str = "account-b";
/// Units in the first account before any transfer (an absent key holds its initial amount).
pub const TRANSFER_TOTAL: u64 = 1_000_000;
/// The set workload's key (Jepsen's lock-set).
pub const SET_KEY: &str = "set";
/// How the history names a key that lives in etcd rather than in the storage (a workload's
/// etcd operations, and the final read of its etcd keys).
pub const ETCD_KEY_PREFIX: &str = "etcd:";
