//! The random nemesis' knobs: what [`draw`](super::draw) may draw for a seed, a scenario's
//! `[nemesis]` table.

use crate::clock::{DRIFT_PPM_MAX, OFFSET_MS_MAX};
use crate::fault::{FAULT_MS_MAX, NETWORK_LATENCY_MS_MAX, NETWORK_LOSS_PERMILLE_MAX};
use crate::ms::MsRange;
use serde::{Deserialize, Serialize};

/// Each knob of the random nemesis, declared once: its TOML key (the field), its type, its
/// value in [`NemesisConfig::none`], its allowed values and its doc line. From this one table
/// come the struct's fields (serde names them as here), the range checks of
/// [`NemesisConfig::validate`], the [`KNOBS`] table behind the docs' list, and, with the `cli`
/// feature, [`NemesisFlags`]: one `--flag` per knob, named as the key with dashes.
///
/// A library user sees the struct and the flags; the knob machinery (`Knob`, `Limit`, `KNOBS`)
/// stays in the crate, and the docs' table is made only by the test that checks it.
macro_rules! knobs {
    ($( $(#[doc = $doc:literal])+ $key:ident : $ty:ty = $none:expr, $limit:expr; )+) => {
        /// The random nemesis' rates and ranges. Each `*_max` is the most faults of that kind
        /// in one plan (the number is drawn uniformly from 0 to it); each range bounds a
        /// fault's size.
        #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
        #[serde(deny_unknown_fields, default)]
        pub struct NemesisConfig {
            /// Whether the random nemesis draws anything at all (scripted stories turn it
            /// off). Its flag is `--nemesis off|on`.
            pub enabled: bool,
            $( $(#[doc = $doc])+ pub $key: $ty, )+
        }

        impl NemesisConfig {
            /// No faults at all.
            pub fn none() -> Self {
                NemesisConfig { enabled: false, $( $key: $none, )+ }
            }

            /// Every knob within its [`Limit`], in the table's order.
            fn validate_knobs(&self) -> Result<(), String> {
                $( Knob::check(&self.$key, concat!("nemesis.", stringify!($key)), $limit)?; )+
                Ok(())
            }
        }

        /// Every knob (but `enabled`): its TOML key, what it may be, and its doc line.
        #[cfg(test)]
        const KNOBS: &[KnobInfo] = &[
            $( KnobInfo {
                key: stringify!($key),
                limit: $limit,
                doc: concat!($($doc, "\n"),+),
            }, )+
        ];

        /// The nemesis' flags, one per knob, each named as its key with dashes: a flag
        /// given replaces the knob of the scenario file or preset ([`NemesisFlags::apply`]).
        #[cfg(feature = "cli")]
        #[derive(clap::Args, Debug, Clone, Default)]
        pub struct NemesisFlags {
            $(
                $(#[doc = $doc])+
                #[arg(long, value_name = <$ty as Knob>::VALUE_NAME)]
                $key: Option<<$ty as Knob>::Flag>,
            )+
        }

        #[cfg(feature = "cli")]
        impl NemesisFlags {
            /// Each flag given over its knob of `n`; a range is parsed here, so that its
            /// error names the flag.
            pub fn apply(&self, n: &mut NemesisConfig) -> Result<(), String> {
                $(
                    if let Some(v) = &self.$key {
                        n.$key = <$ty as Knob>::from_flag(
                            &stringify!($key).replace('_', "-"),
                            v,
                        )?;
                    }
                )+
                Ok(())
            }
        }
    };
}

knobs! {
    /// Most timed GC-style pauses of a client per run.
    pauses_max: u32 = 0, Limit::Count;
    /// Pause length, MIN..MAX ms.
    pause_ms: MsRange = MsRange::new(500, 4_000), Limit::Span { min_ms: 0, max_ms: FAULT_MS_MAX };
    /// Most pauses aimed at a client's before-write point per run (Kleppmann's window).
    aimed_pauses_max: u32 = 0, Limit::Count;
    /// Chance per mille that a client's clock is skewed.
    skew_permille: u32 = 0, Limit::Permille;
    /// Drift drawn from +-this many ppm.
    drift_ppm_max: i64 = 0, Limit::Within { min: 0, max: DRIFT_PPM_MAX };
    /// A skewed clock's initial offset, drawn from +-this many ms.
    offset_ms_max: i64 = 0, Limit::Within { min: 0, max: OFFSET_MS_MAX };
    /// Most clock steps per skewed client.
    steps_max: u32 = 0, Limit::Count;
    /// Clock step size, +-this many ms.
    step_ms_max: i64 = 0, Limit::Within { min: 0, max: OFFSET_MS_MAX };
    /// Most partitions between two random nodes (clients, etcd, storage) per run.
    partitions_max: u32 = 0, Limit::Count;
    /// Partition length (both kinds), MIN..MAX ms.
    partition_ms: MsRange = MsRange::new(200, 3_000), Limit::Span { min_ms: 0, max_ms: FAULT_MS_MAX };
    /// Most partitions of a client from etcd only per run (its keepalives stop, its storage
    /// link works).
    etcd_partitions_max: u32 = 0, Limit::Count;
    /// Most storage requests held in flight per run (a delayed packet), aimed at before-write.
    holds_max: u32 = 0, Limit::Count;
    /// Hold length, MIN..MAX ms.
    hold_ms: MsRange = MsRange::new(1_000, 5_000), Limit::Span { min_ms: 0, max_ms: FAULT_MS_MAX };
    /// Most client crashes per run.
    crashes_max: u32 = 0, Limit::Count;
    /// Time a crashed client stays down, MIN..MAX ms.
    restart_ms: MsRange = MsRange::new(500, 3_000), Limit::Span { min_ms: 0, max_ms: FAULT_MS_MAX };
    /// Most etcd stalls per run: with one member its node paused; with several, the leader
    /// alone or every member (half each, as Jepsen's pause nemesis chose).
    etcd_stalls_max: u32 = 0, Limit::Count;
    /// etcd stall length, MIN..MAX ms.
    etcd_stall_ms: MsRange = MsRange::new(500, 3_000), Limit::Span { min_ms: 0, max_ms: FAULT_MS_MAX };
    /// Most pauses of the etcd leader alone per run (a failover when longer than 1-2 s).
    /// Drawn last: 0 leaves every other draw as it was.
    leader_pauses_max: u32 = 0, Limit::Count;
    /// Leader pause length, MIN..MAX ms.
    leader_pause_ms: MsRange = MsRange::new(2_000, 6_000), Limit::Span { min_ms: 0, max_ms: FAULT_MS_MAX };
    /// Chance per mille that a run has etcd request timeouts.
    etcd_timeouts_permille: u32 = 0, Limit::Permille;
    /// In such a run, the share of etcd requests that time out, per mille, drawn from
    /// 1..=this (0: none).
    etcd_timeout_rate_permille: u32 = 0, Limit::AtMost(500);
    /// Chance per mille that etcd's clock drifts (by up to drift_ppm_max).
    etcd_skew_permille: u32 = 0, Limit::Permille;
    /// Chance per mille that a run has ambiguous etcd timeouts (committed, then timed out).
    etcd_ambiguous_permille: u32 = 0, Limit::Permille;
    /// In such a run, the share of etcd requests that commit and time out, per mille, drawn
    /// from 1..=this (0: none).
    etcd_ambiguous_rate_permille: u32 = 0, Limit::AtMost(500);
    /// An aimed fault strikes at the Nth time its client reaches the point, N drawn from
    /// 1..=this.
    aim_nth_max: u32 = 8, Limit::Within { min: 1, max: 1000 };
    /// Most windows of a degraded network (latency and loss on every link) per run.
    network_faults_max: u32 = 0, Limit::Count;
    /// Such a window's length, MIN..MAX ms.
    network_ms: MsRange = MsRange::new(500, 5_000), Limit::Span { min_ms: 0, max_ms: FAULT_MS_MAX };
    /// Slowest one-way latency in such a window (the fastest a quarter of it), MIN..MAX ms.
    network_latency_ms: MsRange = MsRange::new(20, 800), Limit::Span { min_ms: 1, max_ms: NETWORK_LATENCY_MS_MAX };
    /// Highest loss in such a window, per mille (drawn from 0 to it).
    network_loss_permille_max: u32 = 0, Limit::AtMost(NETWORK_LOSS_PERMILLE_MAX as i64);
    /// A Redlock world: chance per mille that a Redis node's wall clock is skewed, with an
    /// offset, drift and steps drawn as a client's (offset_ms_max, drift_ppm_max, steps_max,
    /// step_ms_max). Redis reads its expiries off the wall clock, so steps and drift both move them.
    redis_skew_permille: u32 = 0, Limit::Permille;
    /// A Redlock world: most crashes of a Redis node per run; it comes back after restart_ms
    /// with what its persistence mode kept.
    redis_crashes_max: u32 = 0, Limit::Count;
    /// A ZooKeeper ensemble (3 or 5 servers): most crashes of a server per run, the leader
    /// or one server drawn; it comes back after restart_ms and rejoins as a follower. A
    /// standalone server is not crashed by the nemesis (its draws stay as they were).
    zk_crashes_max: u32 = 0, Limit::Count;
}

/// What values a knob may take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Limit {
    /// A number of faults per run: 0 to [`COUNT_MAX`].
    Count,
    /// A chance per mille: 0 to 1000.
    Permille,
    /// 0 to this.
    AtMost(i64),
    /// `min` to `max`, both included.
    Within { min: i64, max: i64 },
    /// A `MIN..MAX` range of ms with `min_ms <= MIN <= MAX <= max_ms`.
    Span { min_ms: u64, max_ms: u64 },
}

/// The most faults of one kind a plan may draw: a bound that keeps plans small enough to read.
pub(crate) const COUNT_MAX: u32 = 16;

impl std::fmt::Display for Limit {
    /// As the docs' table shows it.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Limit::Count => write!(f, "0..={COUNT_MAX}"),
            Limit::Permille => write!(f, "0..=1000"),
            Limit::AtMost(max) => write!(f, "0..={max}"),
            Limit::Within { min, max } => write!(f, "{min}..={max}"),
            Limit::Span { min_ms, max_ms } => write!(f, "MIN..MAX within {min_ms}..={max_ms} ms"),
        }
    }
}

/// One row of [`KNOBS`].
#[cfg(test)]
#[derive(Debug, Clone, Copy)]
struct KnobInfo {
    /// The TOML key in a scenario's `[nemesis]` table; the flag is `--` and it with dashes.
    key: &'static str,
    /// What it may be.
    limit: Limit,
    /// Its doc comment, one `\n` after each line.
    doc: &'static str,
}

#[cfg(test)]
impl KnobInfo {
    /// The command's flag for this knob.
    fn flag(&self) -> String {
        format!("--{}", self.key.replace('_', "-"))
    }
}

/// The docs' table of knobs (`docs/scenarios-and-faults.md` holds it between
/// [`KNOBS_BEGIN`] and [`KNOBS_END`]; a test fails when it is out of date).
#[cfg(test)]
fn knobs_markdown() -> String {
    let mut out = String::from("| key | flag | values | what |\n|---|---|---|---|\n");
    for k in KNOBS {
        let doc = k.doc.split_whitespace().collect::<Vec<_>>().join(" ");
        out += &format!("| `{}` | `{}` | {} | {doc} |\n", k.key, k.flag(), k.limit);
    }
    // One row per knob after the header's two: no doc line breaks a row of the table.
    debug_assert_eq!(out.lines().count(), KNOBS.len() + 2);
    out
}

/// The line before the generated table in the docs.
#[cfg(test)]
const KNOBS_BEGIN: &str =
    "<!-- knobs: generated from KNOBS (nemesis/config.rs); a test checks it -->";
/// The line after it.
#[cfg(test)]
const KNOBS_END: &str = "<!-- end of knobs -->";

/// A knob's type: how it is checked against its [`Limit`] and read from its flag.
pub(crate) trait Knob: Sized {
    /// What the flag takes (ranges as text, so that their parse error names the flag).
    type Flag: Clone + Send + Sync + 'static;
    /// The flag's value name in `--help`.
    const VALUE_NAME: &'static str;
    /// `Err` naming `key` when the value is outside `limit`.
    fn check(&self, key: &str, limit: Limit) -> Result<(), String>;
    /// The knob's value from its flag `--name`.
    fn from_flag(name: &str, flag: &Self::Flag) -> Result<Self, String>;
}

impl Knob for u32 {
    type Flag = u32;
    const VALUE_NAME: &'static str = "N";
    fn check(&self, key: &str, limit: Limit) -> Result<(), String> {
        let v = *self;
        match limit {
            Limit::Count if v > COUNT_MAX => Err(format!("{key}: {v} is above {COUNT_MAX}")),
            Limit::Permille if v > 1000 => Err(format!("{key}: {v} is above 1000")),
            Limit::AtMost(max) if i64::from(v) > max => Err(format!("{key}: above {max}")),
            Limit::Within { min, max } if !(min..=max).contains(&i64::from(v)) => {
                Err(format!("{key}: outside {min}..={max}"))
            }
            Limit::Span { .. } => unreachable!("{key}: a count is not a span"),
            _ => Ok(()),
        }
    }
    fn from_flag(_: &str, flag: &u32) -> Result<Self, String> {
        Ok(*flag)
    }
}

impl Knob for i64 {
    type Flag = i64;
    const VALUE_NAME: &'static str = "N";
    fn check(&self, key: &str, limit: Limit) -> Result<(), String> {
        match limit {
            Limit::Within { min, max } if !(min..=max).contains(self) => {
                Err(format!("{key}: outside {min}..={max}"))
            }
            Limit::Within { .. } => Ok(()),
            _ => unreachable!("{key}: a signed knob takes Within"),
        }
    }
    fn from_flag(_: &str, flag: &i64) -> Result<Self, String> {
        Ok(*flag)
    }
}

impl Knob for MsRange {
    type Flag = String;
    const VALUE_NAME: &'static str = "MIN..MAX";
    fn check(&self, key: &str, limit: Limit) -> Result<(), String> {
        let Limit::Span { min_ms, max_ms } = limit else {
            unreachable!("{key}: a range takes Span");
        };
        self.validate(key, max_ms)?;
        if self.min < min_ms {
            return Err(format!("{key}: min must be at least {min_ms}"));
        }
        Ok(())
    }
    fn from_flag(name: &str, flag: &String) -> Result<Self, String> {
        flag.parse().map_err(|e| format!("--{name}: {e}"))
    }
}

/// Keys left out of a scenario file keep the standard nemesis' values.
impl Default for NemesisConfig {
    fn default() -> Self {
        NemesisConfig::standard()
    }
}

impl NemesisConfig {
    /// The random nemesis switched off (its ranges kept): for scripted stories.
    pub fn off() -> Self {
        NemesisConfig {
            enabled: false,
            ..NemesisConfig::standard()
        }
    }

    /// Every kind of fault, at realistic sizes: the standard scenario's nemesis.
    pub fn standard() -> Self {
        let standard = NemesisConfig {
            enabled: true,
            pauses_max: 2,
            aimed_pauses_max: 2,
            skew_permille: 500,
            drift_ppm_max: 500,
            offset_ms_max: 200,
            steps_max: 1,
            step_ms_max: 1_000,
            partitions_max: 1,
            etcd_partitions_max: 1,
            holds_max: 1,
            crashes_max: 1,
            etcd_stalls_max: 1,
            etcd_timeouts_permille: 200,
            etcd_timeout_rate_permille: 5,
            etcd_skew_permille: 500,
            etcd_ambiguous_permille: 200,
            etcd_ambiguous_rate_permille: 5,
            network_faults_max: 1,
            network_loss_permille_max: 300,
            ..NemesisConfig::none()
        };
        // Every preset is within its knobs' limits: a scenario file that leaves `[nemesis]`
        // out gets these values, and its validation must not refuse what it did not write.
        debug_assert_eq!(standard.validate(), Ok(()));
        standard
    }

    /// The standard nemesis of a Redlock world: the standard one's client faults, stalls of one
    /// Redis node or all, partitions between clients and single nodes, and per node a skewed
    /// wall clock (steps up to one TTL of the standard scenario) and crashes.
    pub fn redlock() -> Self {
        let redlock = NemesisConfig {
            step_ms_max: 2_000,
            redis_skew_permille: 200,
            redis_crashes_max: 1,
            ..NemesisConfig::standard()
        };
        debug_assert_eq!(redlock.validate(), Ok(()));
        redlock
    }

    /// The standard nemesis of a ZooKeeper world: the standard one's client faults (pauses
    /// past the session, partitions, holds, crashes) and stalls of the servers.
    pub fn zk() -> Self {
        NemesisConfig {
            zk_crashes_max: 1,
            ..NemesisConfig::standard()
        }
    }

    /// Pauses only (timed and aimed).
    pub fn pauses() -> Self {
        let pauses = NemesisConfig {
            enabled: true,
            pauses_max: 2,
            aimed_pauses_max: 2,
            ..NemesisConfig::none()
        };
        debug_assert_eq!(pauses.validate(), Ok(()));
        pauses
    }

    /// Skewed clocks (extreme drift, steps) with keepalives cut by client-etcd partitions:
    /// what a client's local lease check has to judge by its own clock.
    pub fn skew() -> Self {
        let skew = NemesisConfig {
            enabled: true,
            skew_permille: 1_000,
            drift_ppm_max: 100_000,
            offset_ms_max: 1_000,
            steps_max: 2,
            step_ms_max: 2_000,
            etcd_partitions_max: 2,
            partition_ms: MsRange::new(1_000, 5_000),
            ..NemesisConfig::none()
        };
        debug_assert_eq!(skew.validate(), Ok(()));
        skew
    }

    /// Every knob in its range (the scenario's `validate` calls this; the messages name the
    /// TOML key, `nemesis.*`).
    pub(crate) fn validate(&self) -> Result<(), String> {
        self.validate_knobs()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The docs list every knob with its flag and values, and nothing else: the table between
    /// the markers is exactly [`knobs_markdown`]. To update it, paste the "generated" text
    /// this prints.
    #[test]
    fn the_docs_table_of_knobs_is_up_to_date() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/scenarios-and-faults.md");
        let doc = std::fs::read_to_string(path).unwrap();
        let begin = doc.find(KNOBS_BEGIN).expect("the begin marker") + KNOBS_BEGIN.len() + 1;
        let end = doc.find(KNOBS_END).expect("the end marker");
        let generated = knobs_markdown();
        assert_eq!(&doc[begin..end], generated, "generated:\n{generated}");
    }

    /// Each knob's limit suits its type, and a value just past the limit is refused with the
    /// key in the message (the negative space of `validate`).
    #[test]
    fn every_knob_refuses_a_value_past_its_limit() {
        let json = serde_json::to_value(NemesisConfig::standard()).unwrap();
        let keys: Vec<&String> = json.as_object().unwrap().keys().collect();
        assert_eq!(
            keys.len(),
            KNOBS.len() + 1,
            "every field but enabled is a knob"
        );
        for k in KNOBS {
            let mut bad = json.clone();
            bad[k.key] = match k.limit {
                Limit::Count => (COUNT_MAX + 1).into(),
                Limit::Permille => 1001.into(),
                Limit::AtMost(max) => (max + 1).into(),
                Limit::Within { max, .. } => (max + 1).into(),
                Limit::Span { max_ms, .. } => serde_json::json!({ "min": 0, "max": max_ms + 1 }),
            };
            let cfg: NemesisConfig = serde_json::from_value(bad).unwrap();
            let err = cfg.validate().unwrap_err();
            assert!(err.starts_with(&format!("nemesis.{}:", k.key)), "{err}");
        }
        NemesisConfig::standard().validate().unwrap();
        NemesisConfig::none().validate().unwrap();
    }
}
