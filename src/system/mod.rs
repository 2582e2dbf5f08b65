//! The system under test: the code that also runs for real, against a real etcd and a real
//! storage server (protocol, storage and its fences, lock recipes, workloads, node clocks, and
//! the seam to etcd).

pub mod clock;
pub mod deadline;
pub mod entry;
pub mod etcd;
pub mod keys;
pub mod lock;
pub mod protocol;
pub mod schemes;
pub mod storage;
pub mod workload;
