//! Real mode against a real etcd: the walkthrough of etcd's example under each policy, the command-line
//! client and storage as separate processes, the storage under malformed input and under load.
//!
//! Needs an etcd at `FENCELAB_ETCD` (default 127.0.0.1:23790), as `.ci/run` starts one. Run:
//! `RUSTFLAGS= cargo test --release --target-dir target/real --test real`. The calibration test
//! needs a second, dedicated etcd that it stalls (`FENCELAB_CALIBRATION_ETCD`,
//! `FENCELAB_CALIBRATION_ETCD_PID`; `.ci/run` starts that one too) and is skipped without it.
//! The cluster calibration needs a dedicated 3-member cluster it stalls member by member
//! (`FENCELAB_CLUSTER_ETCD`, `FENCELAB_CLUSTER_PIDS`; `.ci/run` starts it) and is skipped
//! without it.
#![cfg(not(madsim))]

// mimalloc, as in every binary of the package (the library sets no allocator).
#[path = "../src/global_alloc.rs"]
mod global_alloc;

#[path = "shared/machine.rs"]
mod machine;
use machine::{command_line, machine};

use fencelab::history::OpResult;
use fencelab::real::{self, LeaseEnd, Walkthrough, WalkthroughConfig};
use fencelab::storage::http::ServerLimits;
use fencelab::storage::Fencing;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

/// The walkthroughs share one lock name in one etcd: one at a time.
static ETCD_USER: Mutex<()> = Mutex::new(());

fn etcd() -> String {
    std::env::var("FENCELAB_ETCD").unwrap_or_else(|_| "127.0.0.1:23790".into())
}

fn walkthrough(fencing: Fencing, end: LeaseEnd) -> Walkthrough {
    let _one = ETCD_USER.lock().unwrap_or_else(|e| e.into_inner());
    let w = real::walkthrough(&WalkthroughConfig {
        etcd: etcd(),
        fencing,
        ttl_s: 2,
        end,
        echo: false,
    })
    .unwrap_or_else(|e| panic!("{fencing}: {e}"));
    println!("{}", w.lines.join("\n"));
    println!("{}", real::summary(&w));
    // The story happened as told: client 2 took the lock after client 1's lease was gone,
    // with a higher token, and its write landed.
    assert!(w.client2.token > w.client1.token, "{}", real::summary(&w));
    assert_ne!(w.client1.lease_id, w.client2.lease_id);
    assert!(matches!(w.client2.write, OpResult::Ok { .. }), "{w:?}");
    assert!(
        w.lines
            .iter()
            .any(|l| l.contains(&format!("acquired lock, version: {:x}", w.client1.lease_id))),
        "{:?}",
        w.lines
    );
    w
}

#[test]
fn none_accepts_the_stale_write() {
    let w = walkthrough(Fencing::None, LeaseEnd::Expire);
    assert!(w.stale_write_accepted(), "{w:?}");
    let key0 = w.key0.expect("key0 written");
    assert_eq!(key0.val, "value from client1", "the stale write won");
    assert_eq!(key0.version, w.client1.token);
}

#[test]
fn lease_id_rejects_client1_with_contrib_locks_message() {
    for end in [LeaseEnd::Expire, LeaseEnd::Revoke] {
        let w = walkthrough(Fencing::LeaseId, end);
        let expected = format!(
            "given version ({:x}) is different from the existing version ({:x})",
            w.client1.lease_id, w.client2.lease_id
        );
        assert_eq!(
            w.client1.write,
            OpResult::Rejected {
                err: expected.clone()
            },
            "{end:?}"
        );
        let seed_line =
            format!("expected fail to write to storage with old lease version: error: {expected}");
        assert!(
            w.lines.iter().any(|l| l.ends_with(&seed_line)),
            "{:?}",
            w.lines
        );
        assert_eq!(w.key0.expect("key0").val, "value from client2");
    }
}

#[test]
fn token_rejects_client1_naming_both_tokens() {
    for fencing in [Fencing::TokenWrites, Fencing::Token] {
        let w = walkthrough(fencing, LeaseEnd::Expire);
        let (t1, t2) = (w.client1.token, w.client2.token);
        match &w.client1.write {
            OpResult::Rejected { err } => assert!(
                err.contains(&format!("({t1})")) && err.contains(&format!("({t2})")),
                "{err}"
            ),
            other => panic!("{fencing}: client 1 should be rejected, got {other:?}"),
        }
        let key0 = w.key0.expect("key0");
        assert_eq!(key0.val, "value from client2");
        assert_eq!(key0.version, t2);
    }
}

// ---------------------------------------------------------------------------------------
// the command line, as separate processes: the walkthrough of etcd's example by hand, minus the hand

const BIN: &str = env!("CARGO_BIN_EXE_fencelab");
const LINE_TIMEOUT: Duration = Duration::from_secs(30);

/// A child whose stdout lines arrive on a channel; killed when dropped.
struct Proc {
    child: Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Proc {
    fn start(args: &[&str]) -> Proc {
        let mut child = Command::new(BIN)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start fencelab");
        let out = child.stdout.take().expect("stdout");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Proc {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// The first line containing `needle`, waiting at most [`LINE_TIMEOUT`].
    fn wait_line(&mut self, needle: &str) -> String {
        let deadline = Instant::now() + LINE_TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if line.contains(needle) {
                        return line;
                    }
                }
                Err(_) => panic!("no line with '{needle}'; saw {:?}", self.seen),
            }
        }
    }

    /// Waits (bounded) for the process to exit and returns its remaining lines.
    fn finish(&mut self) -> Vec<String> {
        let deadline = Instant::now() + LINE_TIMEOUT;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().expect("wait") {
                assert!(status.success(), "exit {status}; saw {:?}", self.seen);
                // The reader thread ends at EOF.
                while let Ok(line) = self.lines.recv_timeout(Duration::from_secs(5)) {
                    self.seen.push(line);
                }
                return self.seen.clone();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("process did not exit; saw {:?}", self.seen);
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Asks etcd (bounded) until the lease is gone.
fn revoke_and_wait_gone(lease: i64) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let etcd = etcd_client::Client::connect([etcd()], None).await.unwrap();
        let mut leases = etcd.lease_client();
        leases.revoke(lease).await.expect("etcdctl lease revoke");
        for _ in 0..100 {
            match leases.time_to_live(lease, None).await {
                Ok(r) if r.ttl() >= 0 => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                _ => return,
            }
        }
        panic!("lease {lease:x} still alive");
    });
}

#[test]
fn the_contrib_lock_walkthrough_with_the_command_line_processes() {
    let _one = ETCD_USER.lock().unwrap_or_else(|e| e.into_inner());
    let etcd = etcd();
    let mut storage = Proc::start(&[
        "storage",
        "--listen",
        "127.0.0.1:0",
        "--fencing",
        "lease-id",
    ]);
    let line = storage.wait_line("storage listening on");
    let url = line.rsplit(' ').nth(3).expect("url").to_string();
    assert!(url.starts_with("http://127.0.0.1:"), "{line}");

    // Client 1 waits for Enter, as `contrib/lock`'s does.
    let mut c1 = Proc::start(&["client", "1", "--etcd", &etcd, "--storage", &url]);
    let acquired = c1.wait_line("acquired lock, version: ");
    let lease1 = i64::from_str_radix(acquired.rsplit(' ').next().unwrap(), 16).unwrap();
    c1.wait_line(&format!("etcdctl lease revoke {lease1:x}"));
    revoke_and_wait_gone(lease1);

    let mut c2 = Proc::start(&["client", "2", "--etcd", &etcd, "--storage", &url]);
    let lines2 = c2.finish();
    assert!(
        lines2.iter().any(|l| l == "this is client 2, continuing"),
        "{lines2:?}"
    );
    let acquired2 = lines2
        .iter()
        .find(|l| l.starts_with("acquired lock, version: "))
        .expect("client 2 acquired");
    let lease2 = i64::from_str_radix(acquired2.rsplit(' ').next().unwrap(), 16).unwrap();

    // Hit Enter.
    c1.child
        .stdin
        .as_mut()
        .unwrap()
        .write_all(b"\n")
        .expect("press Enter");
    let lines1 = c1.finish();
    assert!(
        lines1.iter().any(|l| l == "resuming client 1"),
        "{lines1:?}"
    );
    let expected = format!(
        "expected fail to write to storage with old lease version: error: given version ({lease1:x}) is different from the existing version ({lease2:x})"
    );
    assert!(lines1.contains(&expected), "{lines1:?}");
}

// ---------------------------------------------------------------------------------------
// the storage under malformed input

/// Test limits: short timeouts so that the stalled clients below cost little.
const HEADER_TIMEOUT: Duration = Duration::from_millis(300);
const BODY_TIMEOUT: Duration = Duration::from_millis(300);

fn test_limits() -> ServerLimits {
    ServerLimits {
        header_read_timeout: Some(HEADER_TIMEOUT),
        body_read_timeout: BODY_TIMEOUT,
        ..ServerLimits::default()
    }
}

/// Sends raw bytes, optionally half-closes, and reads until the server closes or a full
/// response has arrived (bounded by a read timeout). Returns the status and JSON body.
fn raw(addr: &str, bytes: &[u8], half_close: bool) -> (Option<u16>, String) {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(bytes).expect("send");
    if half_close {
        s.shutdown(std::net::Shutdown::Write).unwrap();
    }
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    // Bounded: the read timeout ends a silent server, the size cap a chatty one.
    while got.len() < 1 << 20 {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                got.extend_from_slice(&buf[..n]);
                if complete_response(&got) {
                    break;
                }
            }
            Err(_) => break,
        }
    }
    let text = String::from_utf8_lossy(&got).to_string();
    let status = text
        .strip_prefix("HTTP/1.1 ")
        .and_then(|r| r.get(..3))
        .and_then(|c| c.parse().ok());
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

fn complete_response(got: &[u8]) -> bool {
    let text = String::from_utf8_lossy(got);
    let Some((head, body)) = text.split_once("\r\n\r\n") else {
        return false;
    };
    let len = head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.eq_ignore_ascii_case("content-length")
            .then(|| v.trim().parse::<usize>().ok())?
    });
    len.is_some_and(|n| body.len() >= n)
}

fn post(body: &str) -> Vec<u8> {
    format!(
        "POST / HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

fn json_err(body: &str) -> String {
    let v: serde_json::Value = serde_json::from_str(body)
        .unwrap_or_else(|e| panic!("not contrib/lock's JSON response ({e}): {body:?}"));
    v["err"].as_str().expect("err field").to_string()
}

#[test]
fn storage_answers_bad_requests_and_keeps_serving() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let storage = rt
        .block_on(real::LocalStorage::start(Fencing::LeaseId, test_limits()))
        .unwrap();
    let addr = storage.addr.to_string();
    let write = |key: &str, val: &str, version: i64| {
        let (status, body) = raw(
            &addr,
            &post(&format!(
                r#"{{"op":"write","key":"{key}","val":"{val}","version":{version}}}"#
            )),
            false,
        );
        assert_eq!(status, Some(200), "{body}");
        assert_eq!(json_err(&body), "");
    };
    write("a", "first", 7);

    let too_big = format!(
        r#"{{"op":"write","key":"k","val":"{}","version":1}}"#,
        "x".repeat(fencelab::protocol::BODY_BYTES_MAX)
    );
    let cases: Vec<(&str, Vec<u8>, bool, u16, &str)> = vec![
        ("malformed JSON", post("{\"op\":"), false, 400, "malformed"),
        (
            "unknown op",
            post(r#"{"op":"delete","key":"a","val":"","version":7}"#),
            false,
            400,
            "unknown variant",
        ),
        (
            "missing field",
            post(r#"{"op":"write","key":"a","val":"x"}"#),
            false,
            400,
            "missing field",
        ),
        (
            "mistyped field",
            post(r#"{"op":"write","key":"a","val":"x","version":"7"}"#),
            false,
            400,
            "invalid type",
        ),
        (
            "not UTF-8",
            {
                let mut b = post("{\"op\":\"write\",\"key\":\"\u{e9}\"}");
                let n = b.len();
                b[n - 4] = 0xff;
                b
            },
            false,
            400,
            "malformed",
        ),
        ("body over the limit", post(&too_big), false, 413, "limit"),
        (
            "truncated body",
            b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 60\r\n\r\n{\"op\":\"write\"".to_vec(),
            true,
            400,
            "could not read the request body",
        ),
        (
            "body never finished",
            b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 60\r\n\r\n{\"op\":\"write\"".to_vec(),
            false,
            408,
            "timed out reading the request body",
        ),
        (
            "GET",
            b"GET / HTTP/1.1\r\nHost: t\r\n\r\n".to_vec(),
            false,
            405,
            "use POST",
        ),
        (
            "PUT with a valid body",
            {
                let mut b = post(r#"{"op":"write","key":"a","val":"put","version":7}"#);
                b.splice(0..5, *b"PUT ");
                b
            },
            false,
            405,
            "use POST",
        ),
    ];
    for (what, bytes, half_close, status, needle) in cases {
        let started = Instant::now();
        let (got, body) = raw(&addr, &bytes, half_close);
        assert_eq!(got, Some(status), "{what}: {body}");
        let err = json_err(&body);
        assert!(err.contains(needle), "{what}: {err}");
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "{what} took {:?}",
            started.elapsed()
        );
        // Between bad requests, a good one still goes through.
        write(&format!("after {what}"), "ok", 1);
    }

    // Not HTTP at all: hyper answers 400 itself (no JSON: there was no request to answer).
    let (got, _) = raw(&addr, b"hello there\r\n\r\n", false);
    assert_eq!(got, Some(400));

    // A head that never ends: after the header timeout, a 408 in `contrib/lock`'s JSON shape, and
    // the connection closed.
    let started = Instant::now();
    let (got, body) = raw(&addr, b"POST / HTTP/1.1\r\nHost: t\r\n", false);
    let waited = started.elapsed();
    assert_eq!(got, Some(408), "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert!(
        v["err"]
            .as_str()
            .unwrap()
            .contains("request head not finished"),
        "{body}"
    );
    assert_eq!(v["version"], -1, "{body}");
    assert!(
        waited >= HEADER_TIMEOUT && waited < Duration::from_secs(3),
        "closed after {waited:?}"
    );
    // An idle connection that asks nothing is closed in silence.
    let started = Instant::now();
    assert_eq!(raw(&addr, b"", false).0, None);
    assert!(started.elapsed() < Duration::from_secs(3));

    // Earlier acknowledged writes are intact and the server still applies its policy.
    let entry = storage.entry("a").expect("a");
    assert_eq!((entry.val.as_str(), entry.version), ("first", 7));
    let (status, body) = raw(
        &addr,
        &post(r#"{"op":"read","key":"a","val":"","version":0}"#),
        false,
    );
    assert_eq!(status, Some(200));
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        (v["val"].as_str(), v["version"].as_i64()),
        (Some("first"), Some(7))
    );
    let (_, body) = raw(
        &addr,
        &post(r#"{"op":"write","key":"a","val":"stale","version":6}"#),
        false,
    );
    assert_eq!(
        json_err(&body),
        "given version (6) is different from the existing version (7)"
    );
}

// ---------------------------------------------------------------------------------------
// load

#[test]
fn load_64_clients_1000_requests_each_loses_nothing() {
    const CLIENTS: usize = 64;
    const REQUESTS: usize = 1_000;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let report = rt.block_on(async {
        let storage = real::LocalStorage::start(Fencing::Token, ServerLimits::default())
            .await
            .unwrap();
        let report = real::load(&storage.url(), CLIENTS, REQUESTS).await;
        assert_eq!(
            storage.store.lock().unwrap().entries().len(),
            CLIENTS * REQUESTS - report.errors.len()
        );
        report
    });
    println!(
        "load: {} clients x {} requests: {:.0} requests/s, p50 {} us, p99 {} us, max {} us, {:.2} s",
        report.clients,
        REQUESTS,
        report.throughput_per_s(),
        report.p50.as_micros(),
        report.p99.as_micros(),
        report.max.as_micros(),
        report.elapsed.as_secs_f64()
    );
    assert_eq!(report.requests, CLIENTS * REQUESTS);
    assert!(
        report.errors.is_empty(),
        "{:?}",
        &report.errors[..report.errors.len().min(10)]
    );
    assert!(
        report.lost.is_empty(),
        "{:?}",
        &report.lost[..report.lost.len().min(10)]
    );
}

#[test]
fn walkthrough_refuses_a_ttl_out_of_range_before_touching_etcd() {
    for ttl_s in [-1, 0, 1, i64::MAX] {
        let e = real::walkthrough(&WalkthroughConfig {
            // Nothing listens here: the TTL must be refused first.
            etcd: "127.0.0.1:1".into(),
            fencing: Fencing::Token,
            ttl_s,
            end: LeaseEnd::Revoke,
            echo: false,
        })
        .expect_err("an out-of-range TTL must be refused");
        assert!(e.contains("--ttl") && e.contains("outside"), "{ttl_s}: {e}");
    }
}

// ---------------------------------------------------------------------------------------
// calibration: the probes of `fencelab::calibrate` against a dedicated etcd they may stall

/// Where the committed real figures live (read by `sims/calibration.rs`).
const CALIBRATION_FILE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/sims/calibration/real-etcd.json"
);

/// A key prefix of its own for this run (a calibration etcd may keep a failed run's keys).
fn run_prefix(base: &str) -> String {
    let run = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos();
    format!("{base}/{run:x}")
}

/// Figures just measured, with the etcd version, the date, this machine and the method.
fn fresh_record<F>(
    etcd_version: String,
    method: &str,
    figures: F,
) -> fencelab::calibrate::Record<F> {
    fencelab::calibrate::Record {
        etcd_version,
        date: command_line("date", &["-u", "+%Y-%m-%dT%H:%M:%SZ"]),
        machine: machine(),
        method: method.to_string(),
        figures,
    }
}

/// The record committed at `path`, if there is one that reads.
fn read_record<F: serde::de::DeserializeOwned>(
    path: &str,
) -> Option<fencelab::calibrate::Record<F>> {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
}

/// The table's columns: this run's figures, then the committed ones if any.
fn columns<'a, F>(
    fresh: &'a fencelab::calibrate::Record<F>,
    committed: Option<&'a fencelab::calibrate::Record<F>>,
) -> Vec<(&'static str, &'a F)> {
    let mut columns = vec![("this run", &fresh.figures)];
    columns.extend(committed.map(|c| ("committed", &c.figures)));
    columns
}

/// Writes a record to `path` (what `FENCELAB_CALIBRATION_WRITE=1` asks for).
fn write_record<F: serde::Serialize>(path: &str, record: &fencelab::calibrate::Record<F>) {
    let text = serde_json::to_string_pretty(record).expect("json") + "\n";
    if let Some(dir) = std::path::Path::new(path).parent() {
        std::fs::create_dir_all(dir).expect("sims/calibration");
    }
    std::fs::write(path, text).unwrap_or_else(|e| panic!("write {path}: {e}"));
    println!("wrote {path}");
}

/// Prints the checks of a fresh run against the committed record at `path` and fails on any
/// that does not hold.
fn assert_agrees<F>(
    path: &str,
    committed: Option<&fencelab::calibrate::Record<F>>,
    fresh_version: &str,
    checks: impl Fn(&F) -> Vec<fencelab::calibrate::Check>,
) {
    let committed = committed
        .unwrap_or_else(|| panic!("no {path}: run once with FENCELAB_CALIBRATION_WRITE=1"));
    if committed.etcd_version != fresh_version {
        println!(
            "note: committed figures are of etcd {}, this is etcd {fresh_version}",
            committed.etcd_version
        );
    }
    let checks = checks(&committed.figures);
    for c in &checks {
        println!("  {c}");
    }
    let failed = fencelab::calibrate::failures(&checks);
    assert!(
        failed.is_empty(),
        "this etcd is not the one calibrated (committed {} on {}):\n{}",
        committed.date,
        committed.machine,
        failed.join("\n")
    );
}

/// Runs every calibration probe against the etcd at `FENCELAB_CALIBRATION_ETCD`, stalling the
/// process `FENCELAB_CALIBRATION_ETCD_PID` (so it must not be the etcd the other tests use).
/// With `FENCELAB_CALIBRATION_WRITE=1` it writes the figures to `sims/calibration/real-etcd.json`;
/// otherwise it checks them against that file within `calibrate::TOLERANCES`, so that a real
/// etcd that behaves differently is noticed. One test, probes in sequence: the stalls must not
/// overlap anything else on that etcd.
#[test]
fn calibration_against_a_dedicated_real_etcd() {
    use fencelab::calibrate::{self, Record, SigStop, TOLERANCES};
    let (Ok(addr), Ok(pid)) = (
        std::env::var("FENCELAB_CALIBRATION_ETCD"),
        std::env::var("FENCELAB_CALIBRATION_ETCD_PID"),
    ) else {
        println!(
            "calibration skipped: set FENCELAB_CALIBRATION_ETCD=127.0.0.1:PORT and \
             FENCELAB_CALIBRATION_ETCD_PID=PID (a dedicated etcd: it gets stalled)"
        );
        return;
    };
    let pid: u32 = pid
        .parse()
        .unwrap_or_else(|e| panic!("FENCELAB_CALIBRATION_ETCD_PID={pid}: {e}"));
    let write = std::env::var("FENCELAB_CALIBRATION_WRITE").is_ok_and(|v| v == "1");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let started = Instant::now();
    let (etcd_version, figures) = rt.block_on(async {
        let etcd = fencelab::etcd::grpc::GrpcEtcd::connect(std::slice::from_ref(&addr))
            .await
            .unwrap_or_else(|e| panic!("{addr}: {e}"));
        let status = etcd
            .client()
            .maintenance_client()
            .status()
            .await
            .unwrap_or_else(|e| panic!("{addr} status: {e}"));
        let version = status.version().to_string();
        let prefix = run_prefix("/fencelab-calibration");
        let figures = calibrate::run(Arc::new(etcd), &SigStop { pid }, &prefix).await;
        (version, figures)
    });
    let fresh = fresh_record(etcd_version, calibrate::METHOD, figures);
    println!(
        "calibration of etcd {} at {addr} took {:.1} s",
        fresh.etcd_version,
        started.elapsed().as_secs_f64()
    );
    let committed: Option<Record> = read_record(CALIBRATION_FILE);
    println!("{}", calibrate::table(&columns(&fresh, committed.as_ref())));
    for s in fresh.figures.stalled.iter().filter(|s| s.failed > 0) {
        println!(
            "stalled {} ms: {} keepalives failed, the first with: {}",
            s.stall_ms,
            s.failed,
            s.first_failure.as_deref().unwrap_or("?")
        );
    }
    assert!(
        fresh.figures.errors.is_empty(),
        "{:?}",
        fresh.figures.errors
    );
    // What etcd's source says, whatever the release (the Lock API's answer after an expired
    // wait is the release-specific one: recorded, not asserted here).
    let f = &fresh.figures;
    assert_eq!(f.keepalive_unknown_lease, Some(0));
    assert_eq!(f.keepalive_after_expiry, Some(0));
    assert_eq!(
        f.granted_ttl_for_1,
        Some(2),
        "etcd's minimum TTL at its default election timeout"
    );
    for t in [&f.campaign_tokens, &f.lock_tokens] {
        let t = t.as_ref().expect("tokens");
        assert!(t.rise && t.waited, "{t:?}");
    }
    let stall = |ms: u64| {
        f.stalled
            .iter()
            .find(|s| s.stall_ms == ms)
            .unwrap_or_else(|| panic!("no {ms} ms stall"))
            .gone_after_resume
    };
    assert!(stall(5_000), "a 5 s stall must cost a TTL 2 s lease");
    assert!(!stall(1_000), "a 1 s stall must not cost a TTL 2 s lease");
    if write {
        return write_record(CALIBRATION_FILE, &fresh);
    }
    assert_agrees(
        CALIBRATION_FILE,
        committed.as_ref(),
        &fresh.etcd_version,
        |c| calibrate::compare(c, &fresh.figures, TOLERANCES),
    );
}

// ---------------------------------------------------------------------------------------
// cluster calibration: the probes of `fencelab::calibrate::run_cluster` against a dedicated
// 3-member cluster they stall member by member

/// Where the committed figures of the real cluster live.
const CLUSTER_CALIBRATION_FILE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/sims/calibration/real-cluster.json"
);

/// Runs every cluster probe against the members at `FENCELAB_CLUSTER_ETCD` (comma-separated
/// endpoints), stalling the processes `FENCELAB_CLUSTER_PIDS` (comma-separated, in the same
/// order; the cluster must be nobody else's). With `FENCELAB_CALIBRATION_WRITE=1` it writes
/// the figures to `sims/calibration/real-cluster.json`; otherwise the real cluster must agree
/// with its committed figures (`calibrate::agree_cluster`: the same lease outcomes, the failover
/// median inside the committed spread widened by 300 ms).
#[test]
fn cluster_calibration_against_three_real_members() {
    use fencelab::calibrate::{self, ClusterRecord, SigStopCluster};
    let (Ok(endpoints), Ok(pids)) = (
        std::env::var("FENCELAB_CLUSTER_ETCD"),
        std::env::var("FENCELAB_CLUSTER_PIDS"),
    ) else {
        println!(
            "cluster calibration skipped: set FENCELAB_CLUSTER_ETCD=HOST:PORT,HOST:PORT,HOST:PORT \
             and FENCELAB_CLUSTER_PIDS=PID,PID,PID (a dedicated cluster: its members get stalled)"
        );
        return;
    };
    let endpoints: Vec<String> = endpoints.split(',').map(|e| e.trim().to_string()).collect();
    let pids: Vec<u32> = pids
        .split(',')
        .map(|p| {
            p.trim()
                .parse()
                .unwrap_or_else(|e| panic!("FENCELAB_CLUSTER_PIDS: {p:?}: {e}"))
        })
        .collect();
    assert_eq!(endpoints.len(), 3, "three members: {endpoints:?}");
    let write = std::env::var("FENCELAB_CALIBRATION_WRITE").is_ok_and(|v| v == "1");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let started = Instant::now();
    let (etcd_version, figures) = rt.block_on(async {
        let cluster = SigStopCluster::connect(endpoints.clone(), pids)
            .await
            .unwrap_or_else(|e| panic!("{endpoints:?}: {e}"));
        let version = cluster
            .version()
            .await
            .unwrap_or_else(|e| panic!("{endpoints:?}: {e}"));
        let prefix = run_prefix("/fencelab-cluster-calibration");
        let figures = calibrate::run_cluster(Arc::new(cluster), &prefix).await;
        (version, figures)
    });
    let fresh = fresh_record(etcd_version, calibrate::CLUSTER_METHOD, figures);
    println!(
        "cluster calibration of etcd {} at {endpoints:?} took {:.1} s",
        fresh.etcd_version,
        started.elapsed().as_secs_f64()
    );
    let committed: Option<ClusterRecord> = read_record(CLUSTER_CALIBRATION_FILE);
    println!(
        "{}",
        calibrate::cluster_table(&columns(&fresh, committed.as_ref()))
    );
    if let Some(f) = &fresh.figures.failover {
        println!(
            "failover: writes sent {:?}, timed out {:?}, leaders (before, after) {:?}",
            f.attempts, f.timed_out, f.leaders
        );
    }
    for (name, lease) in [
        ("leader stalled", fresh.figures.lease_leader_paused.as_ref()),
        ("all stalled", fresh.figures.lease_all_paused.as_ref()),
        (
            "failover client, its member stalled, keepalives bounded by 1 s",
            fresh.figures.keepalive_failover.as_ref().map(|k| &k.lease),
        ),
        (
            "failover client, its member stalled, keepalives bounded by 500 ms",
            fresh
                .figures
                .keepalive_failover_short
                .as_ref()
                .map(|k| &k.lease),
        ),
    ] {
        let Some(l) = lease else { continue };
        let times: Vec<String> = l
            .keepalives
            .iter()
            .map(|k| {
                let ttl = k.ttl_s.map_or("failed".into(), |t| format!("ttl {t}"));
                format!("{}->{} {ttl}", k.sent_ms, k.answered_ms)
            })
            .collect();
        println!(
            "{name}: keepalives sent->answered ms from the stall's start: {}",
            times.join(", ")
        );
    }
    assert!(
        fresh.figures.errors.is_empty(),
        "{:?}",
        fresh.figures.errors
    );
    let f = &fresh.figures;
    assert_eq!(f.members, 3);
    let failover = f.failover.as_ref().expect("failover figure");
    assert_eq!(failover.samples_ms.len(), calibrate::FAILOVER_TRIALS);
    assert!(
        failover
            .leaders
            .iter()
            .all(|(before, after)| before != after),
        "a leader stalled 5 s must lose its leadership: {:?}",
        failover.leaders
    );
    if write {
        return write_record(CLUSTER_CALIBRATION_FILE, &fresh);
    }
    assert_agrees(
        CLUSTER_CALIBRATION_FILE,
        committed.as_ref(),
        &fresh.etcd_version,
        |c| calibrate::agree_cluster(c, &fresh.figures),
    );
}
