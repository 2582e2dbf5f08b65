//! A sixth redis-server of the test's own (no shim, a free port, a temp dir), killed with
//! SIGKILL and restarted with the same `--dir` under each persistence mode: what a lock key
//! set just before the crash is after the restart, and what the client says meanwhile (the
//! shared probe `calibrate::redis::restarts` over [`Restart`]).

use super::support::*;
use fencelab::calibrate::redis::{self as cal, Restart};
use fencelab::redis::{Persistence, Redis};
use fencelab::BoxFuture;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
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

/// The probe's servers: one [`OwnServer`] at a time, killed with SIGKILL and started again on
/// its `--dir`. (Its start and restart block the probe's thread for the ~12 ms a redis-server
/// takes to answer; nothing else runs on that runtime meanwhile.)
struct OwnServers {
    current: Mutex<Option<OwnServer>>,
}

impl OwnServers {
    fn with<T>(&self, f: impl FnOnce(&mut OwnServer) -> T) -> Result<T, String> {
        let mut current = self.current.lock().unwrap_or_else(|e| e.into_inner());
        current
            .as_mut()
            .map(f)
            .ok_or_else(|| "no server started".into())
    }
}

impl Restart for OwnServers {
    fn start(&self, mode: Persistence) -> BoxFuture<'_, Result<Arc<dyn Redis>, String>> {
        Box::pin(async move {
            // The last trial's server is killed and its dir removed first.
            let old = self
                .current
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .take();
            drop(old);
            let server = OwnServer::start(mode);
            let endpoint = server.endpoint();
            *self.current.lock().unwrap_or_else(|e| e.into_inner()) = Some(server);
            Ok(Arc::new(connect(&endpoint).await) as Arc<dyn Redis>)
        })
    }

    fn kill(&self) -> BoxFuture<'_, Result<(), String>> {
        Box::pin(async move { self.with(|s| s.kill9()) })
    }

    fn restart(&self) -> BoxFuture<'_, Result<(), String>> {
        Box::pin(async move { self.with(|s| s.launch()) })
    }
}

/// Each persistence mode against a real server's crash and restart: the shared probe
/// (`calibrate::redis::restarts`).
#[test]
fn restarts_under_each_persistence_mode() {
    let Some(servers) = Servers::from_env() else {
        return;
    };
    let own = OwnServers {
        current: Mutex::new(None),
    };
    let trials = block_on(cal::restarts(&own, &run_key("restart")))
        .unwrap_or_else(|e| panic!("restarts: {e}"));
    drop(own);
    for t in &trials {
        println!(
            "{}: PX {} key, SIGKILL, down {} ms: {} (PTTL {}); while down: {:?}",
            t.mode.as_str(),
            t.px_ms,
            t.down_ms,
            if t.kept { "kept" } else { "lost" },
            t.pttl_after_restart_ms,
            t.after_kill
        );
        // The connection broke under a call: it may have run. Then nothing listens.
        assert_eq!(t.after_kill, ["timeout", "unavailable"], "{t:?}");
        let expected = match (t.mode, t.down_planned_ms) {
            // No persistence: a restart loses every key (the Redlock page's first hazard).
            (Persistence::None, _) => Some(false),
            // RDB save points need 1 change in an hour (or many more in less): none was taken.
            (Persistence::Rdb, _) => Some(false),
            // Down longer than the TTL: the key's absolute expiry passed while the server was
            // down, so it is absent after the load (the Redlock page's "delayed restarts").
            (Persistence::AofAlways, d) if d > t.px_ms as u64 => Some(false),
            // appendfsync always: every acknowledged write survives, its expiry absolute.
            (Persistence::AofAlways, _) => Some(true),
            // everysec: SIGKILL is no power loss (the write reached the kernel before the
            // reply), so what it keeps is recorded, not asserted.
            (Persistence::AofEverysec, _) => None,
        };
        if let Some(kept) = expected {
            assert_eq!(t.kept, kept, "{t:?}");
        }
        if t.kept && t.mode == Persistence::AofAlways {
            let range = (t.px_ms - 10_000)..=t.px_ms;
            assert!(range.contains(&t.pttl_after_restart_ms), "{t:?}");
        }
    }
    calibration_part(&servers, "restarts", cal::RESTART_METHOD, &trials);
}
