//! # fencelab
//!
//! A deterministic-simulation testbed for lease-based locking and fencing tokens.
//!
//! Clients take a lock from a (simulated) etcd, then read and write a storage server that
//! may check **fencing tokens**. A nemesis pauses nodes, skews their clocks, delays and
//! partitions the network, crashes clients and stalls etcd. The history of what happened is
//! checked for lost updates and token-order breaks. Same seed, same history, byte for byte.
//!
//! Bring your own fence (or lock recipe, or workload) and test it in your own `cargo test`:
//!
//! ```
//! # #[cfg(madsim)] {
//! use fencelab::harness::Harness;
//! use fencelab::protocol::{Op, Request};
//! use fencelab::scenario::Scenario;
//! use fencelab::storage::{Admit, Fence, KeyState};
//! use fencelab::world::Builder;
//!
//! /// Refuse any operation whose token is below the highest seen on its key.
//! #[derive(Debug)]
//! struct Highest;
//!
//! impl Fence for Highest {
//!     fn name(&self) -> &str {
//!         "highest"
//!     }
//!     fn admit(&self, req: &Request, key: &KeyState<'_>) -> Result<Admit, String> {
//!         match key.mark {
//!             Some(high) if req.version < high => Err(format!("{} < {high}", req.version)),
//!             _ => Ok(Admit::raise(req.version)), // the store keeps the maximum
//!         }
//!     }
//! }
//!
//! // One world: seed 42, the plan the standard nemesis draws for it.
//! let run = Builder::new(Scenario::standard()).fence(Highest).seed(42).run();
//! println!("{} faults, history hash {:016x}", run.faults.len(), run.history_hash());
//! assert!(!run.verdict.violates());
//!
//! // Many: every core, and on a failure a panic with the seed, the shrunk plan and a
//! // `FENCELAB_SEED=…` line that replays it.
//! Harness::new(Builder::new(Scenario::standard()).fence(Highest)).seeds(0..20).run();
//! # let _ = Op::Read;
//! # }
//! ```
//!
//! The three things users vary are traits: [`storage::Fence`] (what the storage accepts),
//! [`lock::LockRecipe`] (how a client takes and releases the lock over the [`etcd::Etcd`]
//! seam) and [`workload::Workload`] (what a holder does, and what must hold of it).
//! fencelab's own policies, recipes and workloads implement them like any other.
//!
//! Rooms, in Jepsen's words: [`workload`] (what clients do), [`nemesis`] (which faults a seed
//! gets; what a fault is: [`fault`]; whether it is inside the protocol's assumptions:
//! [`label`]), [`history`] (what happened, with true times), [`checker`] (what must hold).
//! Around them: [`scenario`] (its times in [`ms`]), [`clock`], [`deadline`], [`exact_json`],
//! [`keys`] (the storage keys the workloads use), [`etcd`] (the one seam to etcd, and
//! fencelab's model of it), [`lock`], [`storage`] (its values: [`entry`]), [`protocol`],
//! [`world`] (its [`world::Builder`]), [`harness`] (seeds in your tests), [`schemes`] and
//! [`compare`] (the safeguards people argue about, side by side), [`sweep`], [`atlas`],
//! [`explore`], [`report`], [`timeline`], [`plot`] and
//! [`heatmap`] (drawn with [`svg`]), [`stories`], [`calibrate`] (the etcd model against a real
//! etcd), and `real` (the same code against a real etcd, built without `--cfg madsim`).
//!
//! The tree shows three layers: `src/system/` (what also runs for real: [`protocol`],
//! [`storage`], [`lock`], [`workload`], [`clock`], [`etcd`]), `src/simulator/` ([`scenario`],
//! [`nemesis`], the world, [`history`], [`checker`]) and `src/tools/` (sweep, explore, report,
//! pictures, [`calibrate`], real mode). Every module keeps its path at the crate root.
//!
//! The library sets no global allocator: that is for the program that uses it. fencelab's own
//! binaries (command, bench, suites) use mimalloc, with the `mimalloc` feature (default); see
//! `src/global_alloc.rs`.

/// A boxed future that can cross threads: what the async methods of the user traits
/// ([`Fence`](storage::Fence), [`LockRecipe`](lock::LockRecipe), [`Workload`](workload::Workload)) and of the lock services' clients return. Boxed
/// so that the traits stay object-safe without an extra crate.
pub type BoxFuture<'a, T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send + 'a>>;

// Three layers, one folder each; every module keeps its path at the crate root.
mod simulator;
mod system;
mod tools;

pub use system::{
    clock, deadline, entry, etcd, exact_json, history, keys, lock, ms, named, protocol, redis,
    schemes, storage, workload, zk,
};

#[cfg(madsim)]
pub use simulator::world;
pub use simulator::{
    checker, fault, label, nemesis, redis_settings, scenario, stories, zk_settings,
};

#[cfg(all(not(madsim), feature = "cli"))]
pub use tools::real;

#[cfg(all(madsim, feature = "explore"))]
pub use tools::explore;
#[cfg(madsim)]
pub use tools::{atlas, compare, harness, report, robust, sweep};
pub use tools::{calibrate, heatmap, plot, redlock_story, svg, timeline};

// What a fence, recipe or workload author needs, gathered; each item keeps one path of its own
// besides (no aliases at the root).
pub mod prelude;
