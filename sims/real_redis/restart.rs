//! A sixth redis-server of the test's own (no shim, a free port, a temp dir), killed with
//! SIGKILL and restarted with the same `--dir` under each persistence mode: what a lock key
//! set just before the crash is after the restart, and what the client says meanwhile.

use super::support::*;
use fencelab::redis::{Persistence, Redis, RedisError, PTTL_MISSING};
use serde_json::json;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// `redis.conf`'s persistence settings for each mode (see [`Persistence`]).
fn mode_args(mode: Persistence) -> [&'static str; 6] {
    let (save, aof, fsync) = match mode {
        Persistence::None => ("", "no", "everysec"),
        Persistence::AofEverysec => ("", "yes", "everysec"),
        Persistence::AofAlways => ("", "yes", "always"),
        // The built-in save points, which Debian's redis.conf leaves on.
        Persistence::Rdb => ("3600 1 300 100 60 10000", "no", "everysec"),
    };
    ["--save", save, "--appendonly", aof, "--appendfsync", fsync]
}

/// A redis-server child process; killed when dropped.
struct OwnServer {
    child: Option<Child>,
    port: u16,
    dir: PathBuf,
    mode: Persistence,
}

impl OwnServer {
    fn start(mode: Persistence) -> OwnServer {
        let dir = std::env::temp_dir().join(run_key(mode.as_str()).replace('/', "-"));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let mut server = OwnServer {
            child: None,
            port: refused_port(),
            dir,
            mode,
        };
        server.launch();
        server
    }

    fn endpoint(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn log(&self) -> PathBuf {
        self.dir.join("redis.log")
    }

    /// Starts the server (again) and waits (5 s at most) until it answers PING, which it does
    /// only once it has loaded what it kept.
    fn launch(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log())
            .expect("log");
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--daemonize", "no", "--dir", &self.dir.to_string_lossy()])
            .args(mode_args(self.mode))
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .stdin(Stdio::null())
            .spawn()
            .expect("redis-server on PATH");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(5);
        while !pings(self.port) {
            let exited = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten());
            if exited.is_some() || Instant::now() > deadline {
                let log = std::fs::read_to_string(self.log()).unwrap_or_default();
                panic!(
                    "redis-server {} did not come up ({exited:?}):\n{log}",
                    self.port
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for OwnServer {
    fn drop(&mut self) {
        self.kill9();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Whether a Redis answers PING on the port.
fn pings(port: u16) -> bool {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
    let mut reply = [0u8; 7];
    s.write_all(b"PING\r\n").is_ok()
        && s.read_exact(&mut reply).is_ok()
        && reply.starts_with(b"+PONG")
}

/// A `PX px_ms` key set, the server killed with SIGKILL right after the reply, kept down for
/// `down_ms`, restarted: whether the key came back, and its PTTL then.
fn crash_trial(mode: Persistence, px_ms: i64, down_ms: u64) -> serde_json::Value {
    let mut server = OwnServer::start(mode);
    let key = run_key("restart");
    block_on(async {
        let r = connect(&server.endpoint()).await;
        timed_set(&r, &key, px_ms).await;
        server.kill9();
        let killed = Instant::now();
        // The connection broke under a call: it may have run. Then nothing listens.
        assert_eq!(r.get(&key).await, Err(RedisError::Timeout), "{mode:?}");
        let e = r.get(&key).await;
        assert!(
            matches!(e, Err(RedisError::Unavailable { .. })),
            "{mode:?}: {e:?}"
        );
        sleep_until(killed + Duration::from_millis(down_ms)).await;
        server.launch();
        let down = ms(killed.elapsed());
        // The client connects again by itself.
        let kept = r.get(&key).await.expect("GET after the restart").is_some();
        let pttl = r.pttl(&key).await.expect("PTTL after the restart");
        assert_eq!(kept, pttl != PTTL_MISSING);
        println!(
            "{}: PX {px_ms} key, SIGKILL, down {down:.0} ms: {} (PTTL {pttl})",
            mode.as_str(),
            if kept { "kept" } else { "lost" }
        );
        json!({"mode": mode.as_str(), "px_ms": px_ms, "down_ms": round3(down), "kept": kept,
               "pttl_after_restart_ms": pttl})
    })
}

/// Each persistence mode against a real server's crash and restart.
#[test]
fn restarts_under_each_persistence_mode() {
    let Some(servers) = Servers::from_env() else {
        return;
    };
    let mut figures = Vec::new();
    // No persistence: a restart loses every key (the Redlock page's first restart hazard).
    let none = crash_trial(Persistence::None, 60_000, 0);
    assert_eq!(none["kept"], false, "{none}");
    figures.push(none);
    // RDB save points need 1 change in an hour (or many more in less): none was taken.
    let rdb = crash_trial(Persistence::Rdb, 60_000, 0);
    assert_eq!(rdb["kept"], false, "{rdb}");
    figures.push(rdb);
    // appendfsync always: every acknowledged write survives, its expiry absolute.
    let always = crash_trial(Persistence::AofAlways, 60_000, 0);
    assert_eq!(always["kept"], true, "{always}");
    let pttl = always["pttl_after_restart_ms"].as_i64().unwrap_or(0);
    assert!((50_000..=60_000).contains(&pttl), "{always}");
    figures.push(always);
    // everysec: SIGKILL is no power loss (the write reached the kernel before the reply), so
    // what it keeps is recorded, not asserted.
    figures.push(crash_trial(Persistence::AofEverysec, 60_000, 0));
    // Down longer than the TTL: the key's absolute expiry passed while the server was down,
    // so it is absent after the load (the Redlock page's "delayed restarts").
    let delayed = crash_trial(Persistence::AofAlways, 1_000, 1_500);
    assert_eq!(delayed["kept"], false, "{delayed}");
    figures.push(delayed);
    calibration_part(
        &servers,
        "restarts",
        "a sixth redis-server started by the test (no shim): SET NX PX, SIGKILL right after the \
         reply, restarted with the same --dir; down_ms from the SIGKILL to the restarted \
         server's first PONG; then GET and PTTL of the key",
        serde_json::Value::Array(figures),
    );
}
