//! Load: many clients writing to one storage server as fast as it answers, latencies measured.

use super::*;

/// What a load run measured.
#[derive(Debug, Clone)]
pub struct LoadReport {
    pub clients: usize,
    pub requests: usize,
    /// Requests answered with anything but an accepted write.
    pub errors: Vec<String>,
    /// Acknowledged writes whose value is not what a read returns afterwards.
    pub lost: Vec<String>,
    pub elapsed: Duration,
    pub p50: Duration,
    pub p99: Duration,
    pub max: Duration,
}

impl LoadReport {
    pub fn throughput_per_s(&self) -> f64 {
        self.requests as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// `clients` concurrent keep-alive clients each write `requests_per_client` distinct keys,
/// then every acknowledged write is read back. Latencies are of the writes.
pub async fn load(storage: &str, clients: usize, requests_per_client: usize) -> LoadReport {
    assert!((1..=LOAD_CLIENTS_MAX).contains(&clients), "clients");
    assert!(
        (1..=LOAD_REQUESTS_MAX).contains(&requests_per_client),
        "requests"
    );
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(clients);
    for c in 0..clients {
        let addr = storage.to_string();
        tasks.push(tokio::spawn(write_keys(addr, c, requests_per_client)));
    }
    let mut latencies = Vec::with_capacity(clients * requests_per_client);
    let mut acked = Vec::new();
    let mut errors = Vec::new();
    for (c, t) in tasks.into_iter().enumerate() {
        match t.await {
            Ok((l, a, e)) => {
                latencies.extend(l);
                acked.push((c, a));
                errors.extend(e);
            }
            Err(e) => errors.push(format!("client {c} panicked: {e}")),
        }
    }
    let elapsed = started.elapsed();
    // Read every acknowledged write back, one client per writer to keep it quick.
    let mut checks = Vec::with_capacity(acked.len());
    for (c, indexes) in acked {
        let addr = storage.to_string();
        checks.push(tokio::spawn(read_back(addr, c, indexes)));
    }
    let mut lost = Vec::new();
    for t in checks {
        match t.await {
            Ok(l) => lost.extend(l),
            Err(e) => lost.push(format!("a read-back task panicked: {e}")),
        }
    }
    latencies.sort_unstable();
    let pick = |q: f64| {
        let i = ((latencies.len() as f64 * q).ceil() as usize).clamp(1, latencies.len()) - 1;
        latencies[i]
    };
    LoadReport {
        clients,
        requests: latencies.len(),
        errors,
        lost,
        elapsed,
        p50: pick(0.50),
        p99: pick(0.99),
        max: *latencies.last().expect("at least one request"),
    }
}

/// The key client `c` writes in its request `i`: distinct for every write of a run.
fn load_key(c: usize, i: usize) -> String {
    format!("load-{c}-{i}")
}

/// The value client `c` writes in its request `i`, checked when read back.
fn load_val(c: usize, i: usize) -> String {
    format!("client {c} request {i}")
}

/// One keep-alive client writing its `requests` keys in turn: each write's latency, the
/// indexes of the acknowledged writes, and what went wrong with the others.
async fn write_keys(
    addr: String,
    c: usize,
    requests: usize,
) -> (Vec<Duration>, Vec<usize>, Vec<String>) {
    let mut client = StorageClient::new(&addr);
    let mut latencies = Vec::with_capacity(requests);
    let mut acked = Vec::with_capacity(requests);
    let mut errors = Vec::new();
    for i in 0..requests {
        let req = Request {
            op: Op::Write,
            key: load_key(c, i),
            val: load_val(c, i),
            version: i as i64,
        };
        let sent = Instant::now();
        let answer = tokio::time::timeout(STORAGE_REQUEST_TIMEOUT, client.call(&req, None)).await;
        latencies.push(sent.elapsed());
        match answer {
            Ok(Ok(r)) if r.is_ok() => acked.push(i),
            Ok(Ok(r)) => errors.push(format!("{}: refused: {}", req.key, r.err)),
            Ok(Err(e)) => errors.push(format!("{}: {e:?}", req.key)),
            Err(_) => {
                client.reset();
                errors.push(format!("{}: timed out", req.key));
            }
        }
    }
    (latencies, acked, errors)
}

/// Reads back client `c`'s acknowledged writes: what is not as written is lost.
async fn read_back(addr: String, c: usize, indexes: Vec<usize>) -> Vec<String> {
    let mut client = StorageClient::new(&addr);
    let mut lost = Vec::new();
    for i in indexes {
        let req = Request {
            op: Op::Read,
            key: load_key(c, i),
            val: String::new(),
            version: i as i64,
        };
        match tokio::time::timeout(STORAGE_REQUEST_TIMEOUT, client.call(&req, None)).await {
            Ok(Ok(r)) if r.is_ok() && r.val == load_val(c, i) && r.version == i as i64 => {}
            other => lost.push(format!("{}: read back {other:?}", req.key)),
        }
    }
    lost
}
