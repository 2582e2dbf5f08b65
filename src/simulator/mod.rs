//! The simulator: scenarios, the nemesis and its faults, the seeded world, and the checker that
//! judges the history the system records (`crate::history`). The etcd model is in
//! `etcd::model`, beside the seam it implements.

pub mod checker;
pub mod fault;
pub mod label;
pub mod nemesis;
pub mod redis_settings;
pub mod scenario;
pub mod stories;
#[cfg(madsim)]
pub mod world;
pub mod zk_settings;
