//! What the real Redis suite's tests share: the servers from the environment, wall steps
//! through the shim's offset files, SIGSTOP stalls, timing probes and the calibration file.

use fencelab::calibrate::{self, redis::WallStep};
use fencelab::redis::real::RealRedis;
use fencelab::redis::{Redis, RedisError};
use fencelab::BoxFuture;
use std::sync::Mutex;

#[path = "../shared/machine.rs"]
mod machine;
pub use machine::{command_line, machine};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The servers `.ci/redis-servers` started, in one order.
pub struct Servers {
    pub endpoints: Vec<String>,
    pub offset_files: Vec<String>,
    pub pids: Vec<u32>,
}

fn env_list(name: &str) -> Vec<String> {
    std::env::var(name)
        .unwrap_or_else(|_| {
            panic!("FENCELAB_REDIS is set, {name} is not (.ci/redis-servers sets both)")
        })
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(String::from)
        .collect()
}

impl Servers {
    /// The servers, or `None` (with a message) when `FENCELAB_REDIS` is unset.
    pub fn from_env() -> Option<Servers> {
        if std::env::var("FENCELAB_REDIS").is_err() {
            println!(
                "real Redis suite skipped: FENCELAB_REDIS is unset; start five servers with \
                 `bash .ci/redis-servers CMD` (see the header of sims/real_redis.rs)"
            );
            return None;
        }
        let servers = Servers {
            endpoints: env_list("FENCELAB_REDIS"),
            offset_files: env_list("FENCELAB_REDIS_OFFSET_FILES"),
            pids: env_list("FENCELAB_REDIS_PIDS")
                .iter()
                .map(|p| {
                    p.parse()
                        .unwrap_or_else(|e| panic!("FENCELAB_REDIS_PIDS: {p}: {e}"))
                })
                .collect(),
        };
        let n = servers.endpoints.len();
        assert!(
            n >= 5 && servers.offset_files.len() == n && servers.pids.len() == n,
            "five servers, each with an offset file and a PID: {:?} {:?} {:?}",
            servers.endpoints,
            servers.offset_files,
            servers.pids
        );
        Some(servers)
    }
}

/// A key of its own for this test in this run (a server may keep a failed run's keys).
pub fn run_key(test: &str) -> String {
    let run = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos();
    format!("fencelab-real-redis/{test}/{run:x}")
}

/// Runs `f` on a runtime of its own, one thread: the probes' timing is the test's alone.
pub fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(f)
}

pub async fn connect(endpoint: &str) -> RealRedis {
    RealRedis::connect(endpoint)
        .await
        .unwrap_or_else(|e| panic!("{endpoint}: {e}"))
}

/// A command the seam does not have (`SCRIPT FLUSH`, `RPUSH`, `TIME`, `INFO`), on a
/// connection of its own.
pub fn raw_command(endpoint: &str, args: &[&str]) -> redis::Value {
    let client = redis::Client::open(format!("redis://{endpoint}/")).expect("url");
    let mut c = client
        .get_connection_with_timeout(Duration::from_secs(2))
        .unwrap_or_else(|e| panic!("{endpoint}: {e}"));
    c.set_read_timeout(Some(Duration::from_secs(2)))
        .expect("timeout");
    redis::cmd(args[0])
        .arg(&args[1..])
        .query(&mut c)
        .unwrap_or_else(|e| panic!("{endpoint} {args:?}: {e}"))
}

/// `redis_version` from `INFO server`.
pub fn redis_version(endpoint: &str) -> String {
    let info: String =
        redis::from_redis_value(raw_command(endpoint, &["INFO", "server"])).expect("INFO is text");
    info.lines()
        .find_map(|l| l.strip_prefix("redis_version:"))
        .unwrap_or("?")
        .trim()
        .to_string()
}

/// The server's wall clock minus this process's, ms, from `TIME` (the server reads it with
/// gettimeofday, through the shim): half the round trip is the error.
fn server_clock_ahead_ms(endpoint: &str) -> f64 {
    let before = SystemTime::now();
    let (s, us): (String, String) =
        redis::from_redis_value(raw_command(endpoint, &["TIME"])).expect("TIME");
    let after = SystemTime::now();
    let server_us = s.parse::<f64>().expect("s") * 1e6 + us.parse::<f64>().expect("us");
    let mid = before + after.duration_since(before).unwrap_or_default() / 2;
    let client_us = mid
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64()
        * 1e6;
    (server_us - client_us) / 1e3
}

/// A port on which nothing listens: one the kernel just handed out and took back.
pub fn refused_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

/// One server's offset file: its wall clock runs this many ms ahead of the machine's.
pub struct OffsetFile {
    path: String,
    endpoint: String,
}

impl OffsetFile {
    pub fn new(path: &str, endpoint: &str) -> OffsetFile {
        OffsetFile {
            path: path.to_string(),
            endpoint: endpoint.to_string(),
        }
    }

    fn write(&self, offset_ms: i64) {
        // By rename: the shim never reads a half-written file.
        let tmp = format!("{}.tmp", self.path);
        std::fs::write(&tmp, format!("{offset_ms}\n")).expect("write the offset");
        std::fs::rename(&tmp, &self.path).expect("rename the offset");
    }

    /// Steps the server's wall clock to `offset_ms` ahead of the machine's, and waits (1 s at
    /// most) until the server's `TIME` shows it.
    pub fn set_ms(&self, offset_ms: i64) {
        self.write(offset_ms);
        let deadline = Instant::now() + Duration::from_secs(1);
        loop {
            let ahead_ms = server_clock_ahead_ms(&self.endpoint);
            if (ahead_ms - offset_ms as f64).abs() < 20.0 {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{}: wrote {offset_ms} to {}, the server's clock is {ahead_ms:.1} ms ahead",
                self.endpoint,
                self.path
            );
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}

impl Drop for OffsetFile {
    /// A failed test leaves the server's clock right.
    fn drop(&mut self) {
        self.write(0);
    }
}

fn signal(pid: u32, sig: &str) {
    let status = std::process::Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .status()
        .unwrap_or_else(|e| panic!("kill -{sig} {pid}: {e}"));
    assert!(status.success(), "kill -{sig} {pid}: {status}");
}

/// The state letter of /proc/PID/stat ('T' stopped, 'S' sleeping, ...).
fn process_state(pid: u32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name in parentheses may hold spaces: the state follows the last ')'.
    stat.rsplit_once(')')?.1.trim_start().chars().next()
}

/// A server stopped with SIGSTOP until `end` (or drop) sends SIGCONT.
pub struct Stall {
    pid: u32,
    running: bool,
}

impl Stall {
    /// Stops `pid` and waits (1 s at most) until the kernel shows it stopped, so that nothing
    /// sent after this returns can run before the resume.
    pub fn start(pid: u32) -> Stall {
        signal(pid, "STOP");
        let stall = Stall {
            pid,
            running: false,
        };
        let deadline = Instant::now() + Duration::from_secs(1);
        while process_state(pid) != Some('T') {
            assert!(Instant::now() < deadline, "{pid} did not stop");
            std::thread::sleep(Duration::from_micros(200));
        }
        stall
    }

    /// Resumes the server.
    pub fn end(mut self) {
        signal(self.pid, "CONT");
        self.running = true;
    }
}

impl Drop for Stall {
    fn drop(&mut self) {
        if !self.running {
            let _ = std::process::Command::new("kill")
                .args(["-CONT", &self.pid.to_string()])
                .status();
        }
    }
}

/// How late past its expected time a key may still be seen, ms (the real suite's bound on a
/// busy machine's probe delay).
pub const TRIAL_LATE_MS_MAX: f64 = 200.0;

/// A wall step through one server's offset file (the library's probes step the clock through
/// this).
impl WallStep for OffsetFile {
    fn set_offset_ms(&self, offset_ms: i64) -> BoxFuture<'_, Result<(), String>> {
        Box::pin(async move {
            self.set_ms(offset_ms);
            Ok(())
        })
    }
}

/// A stall by SIGSTOP (waiting until the kernel shows the server stopped) during which a client
/// with a 200 ms response timeout calls `GET`: what it met, for the test to assert.
pub struct StopWithImpatientGet {
    pub pid: u32,
    pub impatient: RealRedis,
    pub key: String,
    pub met: Mutex<Option<Result<Option<String>, RedisError>>>,
}

impl calibrate::Stall for StopWithImpatientGet {
    fn stall(&self, duration: Duration) -> BoxFuture<'_, Result<(), String>> {
        Box::pin(async move {
            let stall = Stall::start(self.pid);
            let began = tokio::time::Instant::now();
            let met = self.impatient.get(&self.key).await;
            *self.met.lock().unwrap_or_else(|e| e.into_inner()) = Some(met);
            tokio::time::sleep_until(began + duration).await;
            stall.end();
            Ok(())
        })
    }
}

// ---------------------------------------------------------------------------------------
// the calibration file

const CALIBRATION_FILE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/sims/calibration/redis-real.json"
);

/// The parts of the record (`fencelab::calibrate::redis::RedisParts`), each a test's.
const PARTS: [&str; 4] = ["ttl_precision", "sigstop", "wall_steps", "restarts"];

/// The tests write their parts one at a time.
static CALIBRATION: Mutex<()> = Mutex::new(());

/// With `FENCELAB_CALIBRATION_WRITE=1`, puts this test's figures, measured just now, into
/// `sims/calibration/redis-real.json` as part `name` (the other parts stay as they were).
pub fn calibration_part(
    servers: &Servers,
    name: &str,
    method: &str,
    figures: impl serde::Serialize,
) {
    if std::env::var("FENCELAB_CALIBRATION_WRITE").map_or(true, |v| v != "1") {
        return;
    }
    let _one = CALIBRATION.lock().unwrap_or_else(|e| e.into_inner());
    let mut record: serde_json::Value = std::fs::read_to_string(CALIBRATION_FILE)
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or_else(|| serde_json::json!({}));
    // Parts of an older layout, which no probe writes any more, go.
    if let Some(parts) = record["parts"].as_object_mut() {
        parts.retain(|k, _| PARTS.contains(&k.as_str()));
    }
    record["redis_version"] = redis_version(&servers.endpoints[0]).into();
    record["machine"] = machine().into();
    record["parts"][name] = serde_json::json!({
        "date": command_line("date", &["-u", "+%Y-%m-%dT%H:%M:%SZ"]),
        "method": method,
        "figures": serde_json::to_value(figures).expect("figures as JSON"),
    });
    let text = serde_json::to_string_pretty(&record).expect("json") + "\n";
    std::fs::write(CALIBRATION_FILE, text)
        .unwrap_or_else(|e| panic!("write {CALIBRATION_FILE}: {e}"));
    println!("wrote part {name} of {CALIBRATION_FILE}");
}
