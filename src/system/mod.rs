//! The system under test: the code that also runs for real, against a real etcd and a real
//! storage server (protocol, storage and its fences, lock recipes, workloads, node clocks, and
//! the seam to etcd), and the formats the system records in: the [`history`] of events, the
//! [`ms`] ranges and the [`exact_json`] numbers. The system names nothing of the simulator or
//! the tools (`.ci/shape.py` checks it): the simulator drives and judges the system, never the
//! other way round.

pub mod clock;
pub mod deadline;
pub mod entry;
pub mod etcd;
pub mod exact_json;
pub mod history;
pub mod keys;
pub mod lock;
pub mod ms;
pub mod named;
pub mod protocol;
pub mod redis;
pub mod schemes;
#[cfg(madsim)]
pub mod sim_node;
pub mod storage;
pub mod workload;
pub mod zk;
