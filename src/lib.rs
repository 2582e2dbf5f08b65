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
//! The library sets no global allocator: that is for the program that uses it. fencelab's own
//! binaries (command, bench, suites) use mimalloc, with the `mimalloc` feature (default); see
//! `src/global_alloc.rs`.

#[cfg(madsim)]
pub mod atlas;
pub mod calibrate;
pub mod checker;
pub mod clock;
pub mod deadline;
pub mod entry;
pub mod etcd;
pub mod exact_json;
#[cfg(madsim)]
pub mod explore;
pub mod fault;
pub mod heatmap;
pub mod history;
pub mod keys;
pub mod label;
pub mod lock;
pub mod ms;
pub mod nemesis;
pub mod plot;
pub mod protocol;
#[cfg(not(madsim))]
pub mod real;
#[cfg(madsim)]
pub mod report;
pub mod scenario;
pub mod storage;
pub mod stories;
pub mod svg;
#[cfg(madsim)]
pub mod sweep;
pub mod timeline;
pub mod workload;
#[cfg(madsim)]
pub mod world;
