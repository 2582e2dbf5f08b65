//! A **workload**: what a client does while it holds the lock, and what the checker must know
//! of it. fencelab's built-ins ([`Single`], `contrib/lock`'s one write; [`Counter`], a
//! read-modify-write; [`Transfer`], two writes per critical section; [`Set`], Jepsen's
//! lock-set) are implementations like
//! any other; bring your own by implementing
//! [`Workload`] and handing it to `world::Builder::workload`.
//!
//! The client around it is the same for every workload (`ClientRun`): session, lock, the
//! workload's critical section, release, think, again. The critical section talks to the
//! storage through a [`Critical`], which records every operation in the history, sends the
//! number the run's fence asks for, and strikes aimed faults where the plan says.
//!
//! ```
//! use fencelab::BoxFuture;
//! use fencelab::workload::{Critical, CycleEnd, Workload};
//!
//! /// Each holder appends its name to a log key: read, compute, write.
//! #[derive(Debug)]
//! struct Append;
//!
//! impl Workload for Append {
//!     fn name(&self) -> &str {
//!         "append"
//!     }
//!     fn critical<'a>(&'a self, cs: &'a mut Critical<'_>) -> BoxFuture<'a, CycleEnd> {
//!         Box::pin(async move {
//!             let log = match cs.read("log").await.value() {
//!                 Some(v) => v.to_string(),
//!                 None => return CycleEnd::Abandoned("read refused".into()),
//!             };
//!             if let Err(end) = cs.prepare_write().await {
//!                 return end;
//!             }
//!             let node = cs.node().to_string();
//!             cs.write("log", format!("{log}{node};")).await;
//!             CycleEnd::Done
//!         })
//!     }
//! }
//! ```

mod builtin;
mod client;
mod findings;
mod ops;
mod point;
pub mod set;
mod transfer;

pub use crate::keys::{COUNTER_KEY, SINGLE_KEY};
pub use builtin::{lost_updates, Counter, Single};
#[cfg(madsim)]
pub(crate) use client::PointHit;
pub(crate) use client::{ClientRun, ClientSpec, Points};
pub use client::{Critical, CycleEnd, CYCLES_MAX};
pub use findings::{At, FindingKind, Findings, Found};
pub use ops::{Applied, Operation, Operations};
pub use point::Point;
pub use set::{EtcdSet, Set};
pub use transfer::Transfer;

use crate::history::History;
use crate::BoxFuture;

/// What a lock holder does, and what must hold of it afterwards.
pub trait Workload: Send + Sync + std::fmt::Debug + 'static {
    /// A short name, for reports (`single`, `counter`, ...).
    fn name(&self) -> &str;

    /// Whether a client stops after its first cycle that took the lock (`contrib/lock`'s client
    /// writes once); otherwise it runs cycles until the scenario's duration ends.
    fn once(&self) -> bool {
        false
    }

    /// The critical section, run while the client believes it holds the lock. What it returns
    /// is the cycle's end; the client releases the lock afterwards whatever it returns.
    fn critical<'a>(&'a self, cs: &'a mut Critical<'_>) -> BoxFuture<'a, CycleEnd>;

    /// The workload's own invariants over a run's history, returned as [`Findings`]: the
    /// simulator's checker adds them to its workload-independent ones (token order, stale
    /// acceptances, false rejections). Report a broken one with a violation kind
    /// ([`FindingKind::InvariantBreak`]), at an event ([`Findings::at_event`]) or at the end
    /// ([`Findings::at_end`]). [`Operations::of`] pairs a history's operations.
    fn check(&self, history: &History) -> Findings {
        let _ = history;
        Findings::default()
    }

    /// The etcd keys this workload keeps data in (through [`Critical::etcd_read`] and
    /// [`Critical::etcd_guarded_write`]): after the run the world reads them from etcd, as
    /// Jepsen's final read does, into the history's final entries as `etcd:<key>`.
    fn etcd_keys(&self) -> Vec<String> {
        Vec::new()
    }
}
