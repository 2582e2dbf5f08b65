//! # fencelab
//!
//! A deterministic-simulation testbed for lease-based locking and fencing tokens.
//!
//! Clients take a lock from a (simulated) etcd, then read and write a storage server that
//! may check **fencing tokens**. A nemesis pauses nodes, skews their clocks, delays and
//! partitions the network, crashes clients and stalls etcd. The history of what happened is
//! checked for lost updates and token-order breaks. Same seed, same history, byte for byte.
//!
//! ```
//! # #[cfg(madsim)] {
//! use fencelab::{nemesis::FaultPlan, scenario::Scenario, storage::Fencing, world};
//!
//! let run = world::run(&Scenario::standard(), &FaultPlan::none(), Fencing::Token, 42);
//! assert!(!run.verdict.violates());
//! println!("history hash {:016x}", run.history_hash());
//! # }
//! ```
//!
//! Rooms, in Jepsen's words: [`workload`] (what clients do), [`nemesis`] (which faults a seed
//! gets; what a fault is: [`fault`]; whether it is inside the protocol's assumptions:
//! [`label`]), [`history`] (what happened, with true times), [`checker`] (what must hold).
//! Around them: [`scenario`] (its times in [`ms`]), [`clock`], [`deadline`], [`exact_json`],
//! [`keys`] (the storage keys the workloads use), [`etcd`] (the one seam to etcd, and
//! fencelab's model of it), [`lock`], [`storage`] (its values: [`entry`]), [`protocol`],
//! [`world`], [`sweep`], [`atlas`], [`explore`], [`report`], [`timeline`], [`plot`] and
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

// Three layers, one folder each; every module keeps its path at the crate root.
mod simulator;
mod system;
mod tools;

pub use system::{clock, deadline, entry, etcd, keys, lock, protocol, storage, workload};

#[cfg(madsim)]
pub use simulator::world;
pub use simulator::{checker, exact_json, fault, history, label, ms, nemesis, scenario, stories};

#[cfg(not(madsim))]
pub use tools::real;
#[cfg(madsim)]
pub use tools::{atlas, explore, report, sweep};
pub use tools::{calibrate, heatmap, plot, svg, timeline};
