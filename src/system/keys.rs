//! The storage keys the workloads use, named below both the [`workload`](crate::workload)
//! that writes them and the [`checker`](crate::checker) that reads the counter's history.
//! Imports nothing of the crate.

/// The key of the seed's single write.
pub const SINGLE_KEY: &str = "key0";
/// The key of the counter workload.
pub const COUNTER_KEY: &str = "counter";
