//! What an author of a fence, a lock recipe or a workload needs, in one line:
//!
//! ```
//! use fencelab::prelude::*;
//! ```
//!
//! The three traits users implement ([`Fence`], [`LockRecipe`], [`Workload`]) and what their
//! methods take and return; the values a test builds a world from ([`Scenario`], [`FaultPlan`])
//! and what it reads back ([`History`], [`Verdict`]); in the simulation build, the world's
//! [`Builder`] and the [`Harness`] that runs seeds of it. Everything here keeps its own path
//! too (`fencelab::storage::Fence`, ...): the prelude only gathers them.

pub use crate::checker::Verdict;
pub use crate::etcd::{Etcd, EtcdError};
pub use crate::fault::{Fault, FaultPlan, Trigger};
pub use crate::history::{EventKind, History, OpResult};
pub use crate::lock::{Holding, LockContext, LockError, LockRecipe};
pub use crate::protocol::{Op, Request};
pub use crate::scenario::Scenario;
pub use crate::storage::{Fence, Fencing, KeyState};
pub use crate::workload::{
    Critical, CycleEnd, FindingKind, Findings, Operation, Operations, Point, Workload,
};
pub use crate::BoxFuture;
#[cfg(madsim)]
pub use crate::{harness::Harness, world::Builder};
