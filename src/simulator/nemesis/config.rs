//! The random nemesis' knobs: what [`draw`](super::draw) may draw for a seed, a scenario's
//! `[nemesis]` table.

use crate::ms::MsRange;
use serde::{Deserialize, Serialize};

/// The random nemesis' rates and ranges. Each `*_max` is the most faults of that kind in one
/// plan (the number is drawn uniformly from 0 to it); each range bounds a fault's size.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NemesisConfig {
    /// Whether the random nemesis draws anything at all (scripted stories turn it off).
    pub enabled: bool,
    /// GC-style pauses of a client at a random time.
    pub pauses_max: u32,
    pub pause_ms: MsRange,
    /// Pauses aimed at a client's "before-write" point (Kleppmann's window).
    pub aimed_pauses_max: u32,
    /// Chance (per mille) that a client's clock is skewed at all.
    pub skew_permille: u32,
    /// Drift is drawn from ±drift_ppm_max.
    pub drift_ppm_max: i64,
    /// Initial offset is drawn from ±offset_ms_max.
    pub offset_ms_max: i64,
    /// Clock steps per skewed client, each of ±step_ms_max.
    pub steps_max: u32,
    pub step_ms_max: i64,
    /// Partitions between two random nodes (clients, etcd, storage).
    pub partitions_max: u32,
    pub partition_ms: MsRange,
    /// Partitions of a client from etcd only (its keepalives stop, its storage link works).
    pub etcd_partitions_max: u32,
    /// Storage requests held in flight (delayed packet), aimed at "before-write".
    pub holds_max: u32,
    pub hold_ms: MsRange,
    /// Client crashes, restarted after `restart_ms`.
    pub crashes_max: u32,
    pub restart_ms: MsRange,
    /// etcd stalls: with one member its node paused; with several, the leader alone or every
    /// member (half each, as Jepsen's pause nemesis chose).
    pub etcd_stalls_max: u32,
    pub etcd_stall_ms: MsRange,
    /// Pauses of the etcd leader alone (`etcd:leader`), long enough for a failover at etcd's
    /// default election timeout (1-2 s). Drawn last: 0 leaves every other draw as it was.
    pub leader_pauses_max: u32,
    pub leader_pause_ms: MsRange,
    /// Chance (per mille) that the run has etcd request timeouts, and their rate (per mille).
    pub etcd_timeouts_permille: u32,
    pub etcd_timeout_rate_permille: u32,
    /// Chance (per mille) that etcd's clock is skewed (drift from ±drift_ppm_max).
    pub etcd_skew_permille: u32,
    /// Chance (per mille) that the run has ambiguous etcd timeouts (committed, then timed
    /// out), and their rate (per mille).
    pub etcd_ambiguous_permille: u32,
    pub etcd_ambiguous_rate_permille: u32,
    /// The `nth` of an aimed fault is drawn from 1..=aim_nth_max.
    pub aim_nth_max: u32,
    /// Windows in which every link degrades, each lasting `network_ms`, with its slowest
    /// one-way latency drawn from `network_latency_ms` (the fastest a quarter of it) and its
    /// loss from 0 to `network_loss_permille_max`.
    pub network_faults_max: u32,
    pub network_ms: MsRange,
    pub network_latency_ms: MsRange,
    pub network_loss_permille_max: u32,
}

/// Keys left out of a scenario file keep the standard nemesis' values.
impl Default for NemesisConfig {
    fn default() -> Self {
        NemesisConfig::standard()
    }
}

impl NemesisConfig {
    /// No faults at all.
    pub fn none() -> Self {
        NemesisConfig {
            enabled: false,
            pauses_max: 0,
            pause_ms: MsRange::new(500, 4_000),
            aimed_pauses_max: 0,
            skew_permille: 0,
            drift_ppm_max: 0,
            offset_ms_max: 0,
            steps_max: 0,
            step_ms_max: 0,
            partitions_max: 0,
            partition_ms: MsRange::new(200, 3_000),
            etcd_partitions_max: 0,
            holds_max: 0,
            hold_ms: MsRange::new(1_000, 5_000),
            crashes_max: 0,
            restart_ms: MsRange::new(500, 3_000),
            etcd_stalls_max: 0,
            etcd_stall_ms: MsRange::new(500, 3_000),
            leader_pauses_max: 0,
            leader_pause_ms: MsRange::new(2_000, 6_000),
            etcd_timeouts_permille: 0,
            etcd_timeout_rate_permille: 0,
            etcd_skew_permille: 0,
            etcd_ambiguous_permille: 0,
            etcd_ambiguous_rate_permille: 0,
            aim_nth_max: 8,
            network_faults_max: 0,
            network_ms: MsRange::new(500, 5_000),
            network_latency_ms: MsRange::new(20, 800),
            network_loss_permille_max: 0,
        }
    }

    /// The random nemesis switched off (its ranges kept): for scripted stories.
    pub fn off() -> Self {
        NemesisConfig {
            enabled: false,
            ..NemesisConfig::standard()
        }
    }

    /// Every kind of fault, at realistic sizes: the standard scenario's nemesis.
    pub fn standard() -> Self {
        NemesisConfig {
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
        }
    }

    /// Pauses only (timed and aimed).
    pub fn pauses() -> Self {
        NemesisConfig {
            enabled: true,
            pauses_max: 2,
            aimed_pauses_max: 2,
            ..NemesisConfig::none()
        }
    }

    /// Skewed clocks (extreme drift, steps) with keepalives cut by client-etcd partitions:
    /// what a client's local lease check has to judge by its own clock.
    pub fn skew() -> Self {
        NemesisConfig {
            enabled: true,
            skew_permille: 1_000,
            drift_ppm_max: 100_000,
            offset_ms_max: 1_000,
            steps_max: 2,
            step_ms_max: 2_000,
            etcd_partitions_max: 2,
            partition_ms: MsRange::new(1_000, 5_000),
            ..NemesisConfig::none()
        }
    }

    /// Every knob in its range (the scenario's `validate` calls this; the messages name the
    /// TOML key, `nemesis.*`).
    pub(crate) fn validate(&self) -> Result<(), String> {
        use crate::clock::{DRIFT_PPM_MAX, OFFSET_MS_MAX};
        self.validate_counts_and_spans()?;
        use crate::fault::{NETWORK_LATENCY_MS_MAX, NETWORK_LOSS_PERMILLE_MAX};
        self.network_latency_ms
            .validate("nemesis.network_latency_ms", NETWORK_LATENCY_MS_MAX)?;
        if self.network_latency_ms.min == 0 {
            return Err("nemesis.network_latency_ms: min must be at least 1".into());
        }
        if self.network_loss_permille_max > NETWORK_LOSS_PERMILLE_MAX {
            return Err(format!(
                "nemesis.network_loss_permille_max: above {NETWORK_LOSS_PERMILLE_MAX}"
            ));
        }
        for (name, v) in [
            ("nemesis.skew_permille", self.skew_permille),
            (
                "nemesis.etcd_timeouts_permille",
                self.etcd_timeouts_permille,
            ),
            ("nemesis.etcd_skew_permille", self.etcd_skew_permille),
            (
                "nemesis.etcd_ambiguous_permille",
                self.etcd_ambiguous_permille,
            ),
        ] {
            if v > 1000 {
                return Err(format!("{name}: {v} is above 1000"));
            }
        }
        if self.etcd_timeout_rate_permille > 500 {
            return Err("nemesis.etcd_timeout_rate_permille: above 500".into());
        }
        if self.etcd_ambiguous_rate_permille > 500 {
            return Err("nemesis.etcd_ambiguous_rate_permille: above 500".into());
        }
        if !(0..=DRIFT_PPM_MAX).contains(&self.drift_ppm_max) {
            return Err(format!(
                "nemesis.drift_ppm_max: outside 0..={DRIFT_PPM_MAX}"
            ));
        }
        for (name, v) in [
            ("nemesis.offset_ms_max", self.offset_ms_max),
            ("nemesis.step_ms_max", self.step_ms_max),
        ] {
            if !(0..=OFFSET_MS_MAX).contains(&v) {
                return Err(format!("{name}: outside 0..={OFFSET_MS_MAX}"));
            }
        }
        if !(1..=1000).contains(&self.aim_nth_max) {
            return Err("nemesis.aim_nth_max: outside 1..=1000".into());
        }
        Ok(())
    }

    /// The most faults of each kind (at most 16), and each fault's length.
    fn validate_counts_and_spans(&self) -> Result<(), String> {
        use crate::fault::FAULT_MS_MAX;
        for (name, v) in [
            ("nemesis.pauses_max", self.pauses_max),
            ("nemesis.aimed_pauses_max", self.aimed_pauses_max),
            ("nemesis.steps_max", self.steps_max),
            ("nemesis.partitions_max", self.partitions_max),
            ("nemesis.etcd_partitions_max", self.etcd_partitions_max),
            ("nemesis.holds_max", self.holds_max),
            ("nemesis.crashes_max", self.crashes_max),
            ("nemesis.etcd_stalls_max", self.etcd_stalls_max),
            ("nemesis.leader_pauses_max", self.leader_pauses_max),
            ("nemesis.network_faults_max", self.network_faults_max),
        ] {
            if v > 16 {
                return Err(format!("{name}: {v} is above 16"));
            }
        }
        for (name, r) in [
            ("nemesis.pause_ms", self.pause_ms),
            ("nemesis.partition_ms", self.partition_ms),
            ("nemesis.hold_ms", self.hold_ms),
            ("nemesis.restart_ms", self.restart_ms),
            ("nemesis.etcd_stall_ms", self.etcd_stall_ms),
            ("nemesis.leader_pause_ms", self.leader_pause_ms),
            ("nemesis.network_ms", self.network_ms),
        ] {
            r.validate(name, FAULT_MS_MAX)?;
        }
        Ok(())
    }
}
