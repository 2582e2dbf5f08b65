//! ZooKeeper, fencelab's third lock service (issue 20), with Curator's `InterProcessMutex` as
//! its lock. So far only the [`model`] core: ZooKeeper's sessions and data tree as pure,
//! deterministic rules. The client trait, the simulated server, the real client and the recipe
//! come when the model is wired through the lock-service seam (`docs/architecture.md`, "How to
//! add a lock service").

pub mod model;
