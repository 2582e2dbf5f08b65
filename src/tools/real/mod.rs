//! Real mode: the same storage, lock and client code over real TCP, a real etcd and real time.
//!
//! Built without `--cfg madsim` (`RUSTFLAGS= cargo run --release --target-dir target/real`).
//! The storage is [`crate::storage::http::Server`], the lock is [`lock::Session`] + `lock::acquire`,
//! the write goes through `ClientRun::send`: exactly what the simulation tests run.
//!
//! A GC pause is real here too, and **in-process**: a client runs on a current-thread tokio
//! runtime, and a pause blocks that one thread (`std::thread::sleep` or a blocking channel
//! receive), so nothing of the client runs, its lease keepalive included, as in a
//! stop-the-world pause. A client process can also be paused from outside with
//! `kill -STOP <pid>` / `kill -CONT <pid>`, which has the same effect.

use crate::clock::NodeClock;
use crate::history::{OpResult, Probe};
use crate::lock::{self, LockConfig, Session, TTL_S_MAX, TTL_S_MIN};
use crate::ms::MsRange;
use crate::protocol::{Op, Request};
use crate::storage::http::{Client as StorageClient, Server, ServerLimits};
use crate::storage::{Entry, Fencing, Store};
use crate::workload::{ClientRun, ClientSpec, Points, SINGLE_KEY};
use std::io::Write;
use std::sync::atomic::AtomicBool;
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

/// How long a client waits for etcd to answer a connect.
const ETCD_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long any other etcd request may take.
const ETCD_REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a client waits for the lock before giving up.
const CAMPAIGN_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a storage request may take.
const STORAGE_REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest wait of client 1 for a key press or its lease's loss.
pub const WAIT_S_MAX: u64 = 3_600;
/// How often the demo asks etcd whether a lease is gone.
const LEASE_POLL_PERIOD: Duration = Duration::from_millis(50);
/// Beyond its TTL, how long the demo waits for etcd to expire a lease (etcd checks leases
/// every 500 ms).
const LEASE_EXPIRY_SLACK: Duration = Duration::from_secs(10);
/// How long the demo waits for a client's step (acquire, finish).
const CLIENT_STEP_TIMEOUT: Duration = Duration::from_secs(60);
/// Most clients and requests of a load run: a limit on everything.
pub const LOAD_CLIENTS_MAX: usize = 1_024;
pub const LOAD_REQUESTS_MAX: usize = 100_000;

fn runtime_multi() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start a tokio runtime: {e}"))
}

/// A client's runtime: one thread, so that blocking it stops everything the client does.
fn runtime_single() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start a tokio runtime: {e}"))
}

/// A demo's `--fencing`: `all`, or one policy.
fn demo_policies(fencing: &str) -> Result<Vec<Fencing>, String> {
    match fencing {
        "all" => Ok(Fencing::ALL.to_vec()),
        one => Ok(vec![one.parse()?]),
    }
}

mod client;
mod demo;
mod load;
mod redlock;
mod redlock_nodes;
mod storage;
mod zk_demo;

pub use client::*;
pub use demo::*;
pub use load::*;
pub use redlock::*;
pub use storage::*;
pub use zk_demo::*;
