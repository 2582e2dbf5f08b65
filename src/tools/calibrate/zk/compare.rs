//! The model's figures against the real server's: what is held, within what, and the
//! side-by-side table ("model / real").

use super::super::table::aligned;
use super::super::Check;
use super::*;
use crate::calibrate::redis::spread;

/// The expiry latency's tolerance, ms: the model's min, median and max must each fall within
/// this of the real min, median and max (issue 20's rule: inside the real ones widened by it). Four runs of the real
/// probe put their min, median and max within 82, 62 and 76 ms of each other (the committed
/// run and the three in `docs/zookeeper-model.md`): where the 20 staggered trials fall against
/// the buckets' phase moves them by up to a stagger (103 ms).
pub const EXPIRY_WIDEN_MS: f64 = 150.0;

/// The failover probe's tolerance, ms: the model's kill → new leader and new leader →
/// `NodeDeleted` min, median and max must each fall inside the real ones widened by this, and
/// each model session must end no later than T + tick + this after its new leader.
pub const FAILOVER_WIDEN_MS: f64 = 150.0;

/// The shares of sessions expired 3 s after a pause of the real server, per pause (in units of
/// T), in each of the nine rounds measured (`docs/zookeeper-model.md`, `sims/real_zk.rs`; the
/// committed `zk-real.json` holds rounds six and seven). Past 1 T the outcome is a race on
/// resume (the tracker against the reconnects queued in the listen backlog), so one round is
/// one draw and the model is held to the range over rounds.
pub const PAUSE_SHARES_OBSERVED: [(f64, [f64; 9]); 6] = [
    (0.5, [0.0; 9]),
    (0.75, [0.0; 9]),
    (1.0, [0.0; 9]),
    (1.25, [1.0, 0.0, 1.0, 1.0, 1.0, 0.0, 1.0, 0.0, 0.0]),
    (1.5, [1.0, 1.0, 1.0, 0.8, 0.1, 1.0, 1.0, 1.0, 1.0]),
    (2.0, [0.1, 1.0, 1.0, 1.0, 1.0, 0.1, 1.0, 1.0, 0.1]),
];

/// What the probes measured of one ZooKeeper (a real one's committed record, or the model's
/// run), each probe's figures or, in `errors`, why it has none.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ZkFigures {
    pub negotiation: Option<Vec<Negotiated>>,
    pub expiry_latency: Option<ExpiryLatency>,
    pub paused: Option<Paused>,
    pub sequence_restart: Option<SequenceRestart>,
    /// The leader killed while a client is silent (the model's runs in an ensemble of its own).
    #[serde(default)]
    pub failover: Option<Failover>,
    /// Probe name → why it has no figure.
    pub errors: BTreeMap<String, String>,
}

impl ZkRecord {
    /// The record's figures, without their dates and methods.
    pub fn figures(&self) -> ZkFigures {
        let p = &self.parts;
        ZkFigures {
            negotiation: p.negotiation.as_ref().map(|x| x.figures.clone()),
            expiry_latency: p.expiry_latency.as_ref().map(|x| x.figures.clone()),
            paused: p.paused.as_ref().map(|x| x.figures.clone()),
            sequence_restart: p.sequence_restart.as_ref().map(|x| x.figures.clone()),
            failover: p.failover.as_ref().map(|x| x.figures.clone()),
            errors: BTreeMap::new(),
        }
    }
}

/// The range of [`PAUSE_SHARES_OBSERVED`] at `factor`.
pub fn observed_range(factor: f64) -> Option<(f64, f64)> {
    let (_, shares) = PAUSE_SHARES_OBSERVED.iter().find(|(f, _)| *f == factor)?;
    let lo = shares.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = shares.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    Some((lo, hi))
}

fn check(id: String, what: String, reference: String, candidate: String, ok: bool) -> Check {
    Check {
        id,
        what,
        reference,
        candidate,
        ok,
    }
}

fn negotiation_checks(out: &mut Vec<Check>, r: &[Negotiated], c: Option<&Vec<Negotiated>>) {
    for n in r {
        let got = c.and_then(|c| c.iter().find(|x| x.requested_ms == n.requested_ms));
        out.push(check(
            format!("negotiation-{}", n.requested_ms),
            format!("{} ms requested: the timeout granted", n.requested_ms),
            format!("{} ms", n.negotiated_ms),
            got.map_or("no figure".into(), |g| format!("{} ms", g.negotiated_ms)),
            got.is_some_and(|g| g.negotiated_ms == n.negotiated_ms),
        ));
    }
}

/// The candidate's min, median and max of a figure, each inside the reference's widened by
/// `widen_ms`: checks `{id}-min`, `{id}-median`, `{id}-max`.
fn spread_checks(
    out: &mut Vec<Check>,
    (id, what): (&str, &str),
    r: &Spread,
    c: Option<&Spread>,
    widen_ms: f64,
) {
    type Get = fn(&Spread) -> f64;
    for (end, get) in [
        ("min", (|s| s.min_ms) as Get),
        ("median", |s| s.median_ms),
        ("max", |s| s.max_ms),
    ] {
        let real = get(r);
        let (lo, hi) = (real - widen_ms, real + widen_ms);
        let v = c.map(get);
        out.push(check(
            format!("{id}-{end}"),
            format!("{what}: the {end}"),
            format!("{real:.3} ms widened by {widen_ms}: {lo:.3} ..= {hi:.3} ms"),
            v.map_or("no figure".into(), |v| format!("{v:.3} ms")),
            v.is_some_and(|v| (lo..=hi).contains(&v)),
        ));
    }
}

fn expiry_checks(out: &mut Vec<Check>, r: &ExpiryLatency, c: Option<&ExpiryLatency>) {
    spread_checks(
        out,
        ("expiry", "silent session, last packet to NodeDeleted"),
        &r.last_packet_to_deleted,
        c.map(|c| &c.last_packet_to_deleted),
        EXPIRY_WIDEN_MS,
    );
}

impl Failover {
    /// From each kill to its new leader first seen serving, over the trials.
    pub fn kill_to_new_leader(&self) -> Spread {
        spread(
            self.trials
                .iter()
                .map(|k| k.kill_to_new_leader_ms)
                .collect(),
        )
    }

    /// From each new leader first seen serving to the watcher's `NodeDeleted`.
    pub fn new_leader_to_deleted(&self) -> Spread {
        spread(
            self.trials
                .iter()
                .map(|k| k.new_leader_to_deleted_ms)
                .collect(),
        )
    }
}

/// As many trials as the reference; the kill → new leader spread inside the reference's
/// widened by [`FAILOVER_WIDEN_MS`]; and every session, the candidate's and the reference's,
/// ended no sooner than T after its new leader (the new leader's tracker re-tracks it with a
/// full T), no later than T + tick + [`FAILOVER_WIDEN_MS`].
fn failover_checks(out: &mut Vec<Check>, r: &Failover, c: Option<&Failover>) {
    out.push(check(
        "failover-trials".into(),
        "leader kills".into(),
        format!("{}", r.trials.len()),
        c.map_or("no figure".into(), |c| format!("{}", c.trials.len())),
        c.is_some_and(|c| c.trials.len() == r.trials.len()),
    ));
    let what = "leader killed, kill to new leader serving";
    let c_kill = c.map(Failover::kill_to_new_leader);
    let r_kill = r.kill_to_new_leader();
    spread_checks(
        out,
        ("failover-kill", what),
        &r_kill,
        c_kill.as_ref(),
        FAILOVER_WIDEN_MS,
    );
    let t_ms = r.timeout_ms as f64;
    let (lo, hi) = (t_ms, t_ms + TICK_MS as f64 + FAILOVER_WIDEN_MS);
    let ended = |k: &LeaderKill| (lo..=hi).contains(&k.new_leader_to_deleted_ms);
    let r_ended = r.trials.iter().all(ended);
    for (i, k) in c.map_or(&[][..], |c| &c.trials[..]).iter().enumerate() {
        out.push(check(
            format!("failover-ended-{i}"),
            format!("leader kill {i}: new leader to NodeDeleted, T {t_ms} ms, tick {TICK_MS}"),
            format!("T ..= T + tick + {FAILOVER_WIDEN_MS}: {lo} ..= {hi} ms (real: all {r_ended})"),
            format!("{:.3} ms", k.new_leader_to_deleted_ms),
            ended(k),
        ));
    }
    // Not held: new leader → `NodeDeleted` as a min / median / max against the real one. It is
    // T plus the rest of the bucket the new leader started in, and that phase is set by the
    // run (the model's buckets count from the world's origin, ZooKeeper's from the machine's
    // boot, `Time.currentElapsedTime`), not by the server; the table reports it. What the
    // server decides, the bounds T ..= T + tick, is held above for every trial, and the real
    // trials must keep them too.
    out.push(check(
        "failover-real-ended".into(),
        "the real trials: new leader to NodeDeleted inside T ..= T + tick + widening".into(),
        "true".into(),
        format!("{r_ended}"),
        r_ended,
    ));
}

fn pause_checks(out: &mut Vec<Check>, r: &Paused, c: Option<&Paused>) {
    for p in &r.pauses {
        let got = c.and_then(|c| {
            let same = |x: &&Pause| (x.round, x.factor) == (p.round, p.factor);
            c.pauses.iter().find(same)
        });
        let (lo, hi) = observed_range(p.factor).unwrap_or((p.expired_share, p.expired_share));
        out.push(check(
            format!("paused-r{}-{}T", p.round, p.factor),
            format!(
                "server paused {} T, round {}: share expired 3 s after the resume",
                p.factor, p.round
            ),
            format!(
                "{lo} ..= {hi} (nine real rounds; this one {})",
                p.expired_share
            ),
            got.map_or("no figure".into(), |g| format!("{}", g.expired_share)),
            got.is_some_and(|g| (lo..=hi).contains(&g.expired_share)),
        ));
    }
}

fn sequence_checks(out: &mut Vec<Check>, r: &SequenceRestart, c: Option<&SequenceRestart>) {
    let shown = |s: &SequenceRestart| format!("{:?} then {}", s.before, s.after);
    out.push(check(
        "sequence-restart".into(),
        "sequence numbers under a container, then under it created again".into(),
        shown(r),
        c.map_or("no figure".into(), shown),
        c.is_some_and(|c| (&c.before, c.after) == (&r.before, r.after)),
    ));
    let rising = |s: &SequenceRestart| {
        let mut all = s.before_czxids.clone();
        all.push(s.after_czxid);
        all.windows(2).all(|w| w[0] < w[1])
    };
    let czxids = |s: &SequenceRestart| format!("{:?} then {}", s.before_czxids, s.after_czxid);
    out.push(check(
        "czxid-rising".into(),
        "czxids of the same children: rising throughout".into(),
        format!("{} (rising: {})", czxids(r), rising(r)),
        c.map_or("no figure".into(), czxids),
        rising(r) && c.is_some_and(rising),
    ));
}

/// Checks the model's figures (`candidate`) against a real server's (`reference`): every probe
/// the reference has, the candidate must have.
pub fn zk_compare(reference: &ZkFigures, candidate: &ZkFigures) -> Vec<Check> {
    let mut out = Vec::new();
    if let Some(r) = &reference.negotiation {
        negotiation_checks(&mut out, r, candidate.negotiation.as_ref());
    }
    if let Some(r) = &reference.expiry_latency {
        expiry_checks(&mut out, r, candidate.expiry_latency.as_ref());
    }
    if let Some(r) = &reference.paused {
        pause_checks(&mut out, r, candidate.paused.as_ref());
    }
    if let Some(r) = &reference.sequence_restart {
        sequence_checks(&mut out, r, candidate.sequence_restart.as_ref());
    }
    if let Some(r) = &reference.failover {
        failover_checks(&mut out, r, candidate.failover.as_ref());
    }
    out
}

type Row = (String, Vec<String>);

fn cell<T>(v: Option<&T>, show: impl Fn(&T) -> String) -> String {
    v.map_or_else(|| "—".into(), show)
}

fn spread_cell(s: &Spread) -> String {
    format!("{:.0} / {:.0} / {:.0}", s.min_ms, s.median_ms, s.max_ms)
}

/// The shares of one pause factor over every round, in round order.
fn shares(p: &Paused, factor: f64) -> String {
    let s: Vec<String> = (p.pauses.iter().filter(|x| x.factor == factor))
        .map(|x| format!("{}", x.expired_share))
        .collect();
    s.join(", ")
}

fn rows(columns: &[(&str, &ZkFigures)]) -> Vec<Row> {
    let mut rows: Vec<Row> = Vec::new();
    let mut row = |name: String, f: &dyn Fn(&ZkFigures) -> String| {
        rows.push((name, columns.iter().map(|(_, c)| f(c)).collect()));
    };
    row("negotiation: requested → granted, ms".into(), &|f| {
        cell(f.negotiation.as_ref(), |n| {
            let s: Vec<String> = n
                .iter()
                .map(|x| format!("{} → {}", x.requested_ms, x.negotiated_ms))
                .collect();
            s.join(", ")
        })
    });
    row(
        "20 silent sessions, T 4000, tick 2000: last packet → NodeDeleted, min / median / max ms"
            .into(),
        &|f| {
            cell(f.expiry_latency.as_ref(), |e| {
                spread_cell(&e.last_packet_to_deleted)
            })
        },
    );
    row(
        "the silent clients' own view: Suspended; first of Lost or Expired (which), median ms"
            .into(),
        &|f| {
            cell(f.expiry_latency.as_ref(), |e| {
                let how = e.gave_up_as.first().map_or("—", |s| s.as_str());
                let (s, g) = (&e.last_packet_to_suspended, &e.last_packet_to_gave_up);
                format!("{:.0}; {:.0} ({how})", s.median_ms, g.median_ms)
            })
        },
    );
    for factor in PAUSE_FACTORS {
        row(
            format!("server paused {factor} T, 10 sessions: share expired, per round"),
            &|f| cell(f.paused.as_ref(), |p| shares(p, factor)),
        );
    }
    row(
        "container: children's sequence numbers; after the server deleted it empty".into(),
        &|f| {
            cell(f.sequence_restart.as_ref(), |s| {
                format!("{:?}; {}", s.before, s.after)
            })
        },
    );
    row(
        "the same children's czxids; ms from emptied to deleted".into(),
        &|f| {
            cell(f.sequence_restart.as_ref(), |s| {
                format!(
                    "{:?} then {}; {}",
                    s.before_czxids, s.after_czxid, s.container_deleted_after_ms
                )
            })
        },
    );
    row(
        "3 servers, leader killed 1000 ms after a client fell silent: kill → new leader serving, min / median / max ms".into(),
        &|f| cell(f.failover.as_ref(), |x| spread_cell(&x.kill_to_new_leader())),
    );
    row(
        "the same: new leader → NodeDeleted, min / median / max ms (per trial)".into(),
        &|f| {
            cell(f.failover.as_ref(), |x| {
                let s = x.new_leader_to_deleted();
                let each: Vec<String> = s.samples_ms.iter().map(|v| format!("{v:.0}")).collect();
                format!("{} ({})", spread_cell(&s), each.join(", "))
            })
        },
    );
    rows
}

/// The figures of several columns (the model, a real ZooKeeper) side by side, one row per
/// figure, then every column's probe errors.
pub fn zk_table(columns: &[(&str, &ZkFigures)]) -> String {
    let names: Vec<&str> = columns.iter().map(|(n, _)| *n).collect();
    let mut out = aligned(&names, &rows(columns));
    for (n, f) in columns {
        for (probe, e) in &f.errors {
            out.push_str(&format!("{n}: {probe}: {e}\n"));
        }
    }
    out
}

/// Every probe but the failover (which needs an ensemble: [`failover`]) against the sessions
/// of `sessions`, the server stalled by `stall`; `dir` is the run's own.
pub async fn run_zk(sessions: Arc<dyn Sessions>, stall: &dyn Stall, dir: &str) -> ZkFigures {
    let mut errors = BTreeMap::new();
    let e = &mut errors;
    let negotiation = keep(e, "negotiation", negotiation(&*sessions).await);
    let expiry = expiry_latency(sessions.clone(), &format!("{dir}/expiry")).await;
    let expiry_latency = keep(e, "expiry_latency", expiry);
    let p = paused(&*sessions, stall, &format!("{dir}/paused")).await;
    let paused = keep(e, "paused", p);
    let s = sequence_restart(&*sessions, &format!("{dir}/sequence")).await;
    let sequence_restart = keep(e, "sequence_restart", s);
    ZkFigures {
        negotiation,
        expiry_latency,
        paused,
        sequence_restart,
        failover: None,
        errors,
    }
}
