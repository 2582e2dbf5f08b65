//! The real cluster: etcd members, each its own process, stalled with `SIGSTOP`/`SIGCONT`.

use super::*;

/// Real etcd members, each its own process, stalled with `SIGSTOP`/`SIGCONT`.
pub struct SigStopCluster {
    pub endpoints: Vec<String>,
    pub pids: Vec<u32>,
    /// One client per member, connected to that member's endpoint alone.
    pub clients: Vec<Arc<crate::etcd::grpc::GrpcEtcd>>,
    /// Each member's raft ID, as it reported it (`Status` header's `member_id`).
    ids: Vec<u64>,
}

/// Sends `sig` to every pid with one `kill` so that the members stop (or resume) together.
fn signal_all(pids: &[u32], sig: &str) -> Result<(), String> {
    let status = std::process::Command::new("kill")
        .arg(format!("-{sig}"))
        .args(pids.iter().map(|p| p.to_string()))
        .status()
        .map_err(|e| format!("kill -{sig} {pids:?}: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("kill -{sig} {pids:?}: {status}"))
    }
}

/// Resumes stalled members if the stall is dropped half-way, or if its own resume failed.
struct ContAllOnDrop {
    pids: Vec<u32>,
    armed: bool,
}

impl Drop for ContAllOnDrop {
    fn drop(&mut self) {
        if self.armed {
            let _ = signal_all(&self.pids, "CONT");
        }
    }
}

impl SigStopCluster {
    /// Connects one client to each endpoint and asks each member its own ID (to map the
    /// leader ID `Status` reports to a member index). `pids[i]` is the process of
    /// `endpoints[i]`.
    pub async fn connect(endpoints: Vec<String>, pids: Vec<u32>) -> Result<SigStopCluster, String> {
        if endpoints.len() != pids.len() || endpoints.is_empty() {
            return Err(format!(
                "{} endpoints and {} pids: need one pid per endpoint",
                endpoints.len(),
                pids.len()
            ));
        }
        if endpoints.len() > crate::etcd::failover::MEMBERS_MAX {
            return Err(format!(
                "{} members, at most {}",
                endpoints.len(),
                crate::etcd::failover::MEMBERS_MAX
            ));
        }
        let mut clients = Vec::with_capacity(endpoints.len());
        let mut ids = Vec::with_capacity(endpoints.len());
        for e in &endpoints {
            let client = crate::etcd::grpc::GrpcEtcd::connect(std::slice::from_ref(e))
                .await
                .map_err(|err| format!("{e}: {err}"))?;
            let (id, _, _) = status_of(&client)
                .await
                .map_err(|err| format!("{e}: {err}"))?;
            ids.push(id);
            clients.push(Arc::new(client));
        }
        Ok(SigStopCluster {
            endpoints,
            pids,
            clients,
            ids,
        })
    }

    /// The etcd version member 0 reports.
    pub async fn version(&self) -> Result<String, String> {
        Ok(status_of(&self.clients[0]).await?.2)
    }
}

/// A member's own ID, the leader it knows (0: none) and its version, bounded by
/// [`SETTLE_READ_TIMEOUT`].
async fn status_of(client: &crate::etcd::grpc::GrpcEtcd) -> Result<(u64, u64, String), String> {
    let mut m = client.client().maintenance_client();
    match deadline::timeout(SETTLE_READ_TIMEOUT, m.status()).await {
        Ok(Ok(s)) => {
            let own = s
                .header()
                .map(|h| h.member_id())
                .ok_or("status answered without a header")?;
            Ok((own, s.leader(), s.version().to_string()))
        }
        Ok(Err(e)) => Err(format!("status: {e}")),
        Err(_) => Err(format!("status: no answer in {SETTLE_READ_TIMEOUT:?}")),
    }
}

impl Cluster for SigStopCluster {
    fn members(&self) -> usize {
        self.clients.len()
    }

    fn member(&self, i: usize) -> Arc<dyn Etcd> {
        self.clients[i].clone()
    }

    fn failover_from(&self, first: usize) -> Arc<dyn Etcd> {
        failover_client(self, first)
    }

    /// Asks every member's `Status` at once: the leader is the member that every member
    /// answering names, and a majority must answer (a stalled member does not).
    fn leader(&self) -> BoxFuture<'_, Result<usize, String>> {
        Box::pin(async move {
            let mut asks = Vec::with_capacity(self.clients.len());
            for c in &self.clients {
                let c = c.clone();
                asks.push(tokio::spawn(async move { status_of(&c).await }));
            }
            let mut named = Vec::new();
            for (i, a) in asks.into_iter().enumerate() {
                if let Ok(Ok((_, leader, _))) = a.await {
                    named.push((i, leader));
                }
            }
            if named.len() * 2 <= self.clients.len() {
                return Err(format!("only {} members answered Status", named.len()));
            }
            let (_, first) = named[0];
            if first == 0 || named.iter().any(|(_, l)| *l != first) {
                return Err(format!("members disagree on the leader: {named:x?}"));
            }
            self.ids
                .iter()
                .position(|id| *id == first)
                .ok_or_else(|| format!("leader {first:x} is none of the members {:x?}", self.ids))
        })
    }

    fn stall(&self, members: &[usize], duration: Duration) -> BoxFuture<'_, Result<(), String>> {
        let pids: Result<Vec<u32>, String> = members
            .iter()
            .map(|&i| {
                self.pids
                    .get(i)
                    .copied()
                    .ok_or_else(|| format!("no member {i}"))
            })
            .collect();
        Box::pin(async move {
            let pids = pids?;
            // Stopped before the first poll returns (the trait's contract): no await before.
            signal_all(&pids, "STOP")?;
            let mut cont = ContAllOnDrop { pids, armed: true };
            sleep(duration).await;
            let resumed = signal_all(&cont.pids, "CONT");
            cont.armed = resumed.is_err();
            resumed
        })
    }
}
