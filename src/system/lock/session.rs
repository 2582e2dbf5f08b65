//! A session: one lease, kept alive every TTL/3 by the node's own clock, and what the client
//! believes about it.

use super::{etcd_err_named, EtcdHandle, LockConfig, LockError, TTL_S_MAX, TTL_S_MIN};
use crate::clock::NodeClock;
use crate::etcd::EtcdError;
use crate::history::{EventKind, Probe};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What the client believes about its lease.
#[derive(Debug, Clone, PartialEq, Eq)]
struct LeaseView {
    /// Perceived time (µs) after which the lease may be gone: the send time of the last
    /// answered keepalive plus the TTL (etcd's Go client counts from the answer's arrival,
    /// `client/v3/lease.go`, `recvKeepAlive`; the send time is the safer bound).
    deadline_us: i64,
    lost: Option<String>,
}

/// A session: one lease kept alive every TTL/3 by the node's own clock.
pub struct Session {
    lease_id: i64,
    ttl_s: i64,
    view: Arc<Mutex<LeaseView>>,
    keepalive: tokio::task::JoinHandle<()>,
}

impl Session {
    /// Grants a lease and starts keeping it alive.
    pub async fn start(
        etcd: &EtcdHandle,
        clock: &NodeClock,
        probe: &Probe,
        cfg: &LockConfig,
    ) -> Result<Session, LockError> {
        assert!(
            (TTL_S_MIN..=TTL_S_MAX).contains(&cfg.ttl_s),
            "ttl_s out of range"
        );
        let sent_us = clock.now_us();
        let grant = clock
            .timeout(cfg.request_timeout, etcd.grant(cfg.ttl_s))
            .await
            .map_err(|_| LockError::Timeout("lease grant"))?
            .map_err(etcd_err_named("lease grant"))?;
        probe.record(EventKind::LeaseGranted {
            lease_id: grant.id,
            ttl_s: grant.ttl_s,
        });
        let view = Arc::new(Mutex::new(LeaseView {
            deadline_us: sent_us + grant.ttl_s * 1_000_000,
            lost: None,
        }));
        let keepalive = tokio::spawn(keep_alive(
            etcd.clone(),
            clock.clone(),
            probe.clone(),
            *cfg,
            grant.id,
            grant.ttl_s,
            view.clone(),
        ));
        Ok(Session {
            lease_id: grant.id,
            ttl_s: grant.ttl_s,
            view,
            keepalive,
        })
    }

    pub fn lease_id(&self) -> i64 {
        self.lease_id
    }

    pub fn ttl_s(&self) -> i64 {
        self.ttl_s
    }

    /// Perceived time (µs) until which the client believes its lease is valid.
    pub fn deadline_us(&self) -> i64 {
        self.view.lock().expect("lease view").deadline_us
    }

    /// Why the client knows its lease is gone, if it knows.
    pub fn lost(&self) -> Option<String> {
        self.view.lock().expect("lease view").lost.clone()
    }

    /// Stops the keepalive and revokes the lease (best effort: it expires anyway).
    pub async fn close(self, etcd: &EtcdHandle, clock: &NodeClock, cfg: &LockConfig) {
        self.keepalive.abort();
        let _ = clock
            .timeout(cfg.request_timeout, etcd.revoke(self.lease_id))
            .await;
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        // A session never outlives its owner's interest in it.
        self.keepalive.abort();
    }
}

/// Renews the lease every TTL/3 after the last answer (etcd's Go client schedules
/// `nextKeepAlive = now + TTL/3` too, but sends on a 500 ms tick, so its period is TTL/3 to
/// TTL/3 + 500 ms: `client/v3/lease.go`, `sendKeepAliveLoop`), until etcd says the lease is
/// gone or no renewal was answered before the deadline the client computed. The labels'
/// renewal slack is this loop's; for Go's client it would be about 500 ms smaller.
async fn keep_alive(
    etcd: EtcdHandle,
    clock: NodeClock,
    probe: Probe,
    cfg: LockConfig,
    lease_id: i64,
    ttl_s: i64,
    view: Arc<Mutex<LeaseView>>,
) {
    let period = Duration::from_millis(ttl_s as u64 * 1000 / 3);
    // Bounded: a lease cannot be renewed more than this often in the longest run we allow.
    for _ in 0..1_000_000u32 {
        clock.sleep(period).await;
        let sent_us = clock.now_us();
        let renewed = clock
            .timeout(cfg.request_timeout, etcd.keep_alive(lease_id))
            .await;
        let lost = match renewed {
            Ok(Ok(ttl)) if ttl > 0 => {
                view.lock().expect("lease view").deadline_us = sent_us + ttl * 1_000_000;
                continue;
            }
            Ok(Ok(_)) => "keepalive answered TTL 0: the lease expired".to_string(),
            Ok(Err(EtcdError::LeaseNotFound)) => {
                format!("keepalive refused: {}", EtcdError::LeaseNotFound)
            }
            // No answer, or no connection: try again while the lease may still be alive.
            Ok(Err(_)) | Err(_) => {
                if clock.now_us() < view.lock().expect("lease view").deadline_us {
                    continue;
                }
                "no keepalive answer before the lease deadline".to_string()
            }
        };
        probe.record(EventKind::LeaseLost {
            lease_id,
            why: lost.clone(),
        });
        view.lock().expect("lease view").lost = Some(lost);
        return;
    }
}
