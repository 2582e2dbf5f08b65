//! The simulator: scenarios, the nemesis and its faults, the seeded world, the history it
//! records and the checker that judges it (the etcd model is in `etcd::model`, beside the seam
//! it implements).

pub mod checker;
pub mod exact_json;
pub mod fault;
pub mod history;
pub mod label;
pub mod ms;
pub mod nemesis;
pub mod scenario;
pub mod stories;
#[cfg(madsim)]
pub mod world;
