//! A node's own clock: what a client believes the time is.
//!
//! madsim has one global clock, the *true* time. Each node reads it through a [`NodeClock`]:
//! `perceived = offset + (1 + drift) * true + sum(steps taken so far)`.
//! Timers (`sleep`, `timeout`) run at the node's *rate* (drift) but ignore offset and steps,
//! the way `CLOCK_MONOTONIC` is slewed by NTP but never stepped. Lease deadlines that a client
//! computes from `now_us` do see steps, as wall-clock deadlines do.

use serde::{Deserialize, Serialize};
use std::future::Future;
use std::time::Duration;
use tokio::time::Instant;

/// Largest drift a clock may have, in parts per million (10%, the "extreme" end).
pub const DRIFT_PPM_MAX: i64 = 100_000;
/// Largest offset or step, in milliseconds (one hour): a limit on everything.
pub const OFFSET_MS_MAX: i64 = 3_600_000;
/// Most steps one clock may take.
pub const STEPS_MAX: usize = 64;

/// A step of the wall clock at a true time (NTP jump, operator fix).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ClockStep {
    /// True time of the step, ms since the world started.
    pub at_ms: u64,
    /// How far the clock jumps: positive is forward.
    pub delta_ms: i64,
}

/// How a node's clock departs from true time. The default is a perfect clock.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Skew {
    #[serde(default)]
    pub offset_ms: i64,
    /// Rate error: +500 means the clock gains 0.5 ms per true second.
    #[serde(default)]
    pub drift_ppm: i64,
    #[serde(default)]
    pub steps: Vec<ClockStep>,
}

impl Skew {
    pub fn is_perfect(&self) -> bool {
        *self == Skew::default()
    }

    /// Checks the limits; the message names the field.
    pub fn validate(&self) -> Result<(), String> {
        if self.drift_ppm.abs() > DRIFT_PPM_MAX {
            return Err(format!(
                "drift_ppm {} is outside ±{DRIFT_PPM_MAX}",
                self.drift_ppm
            ));
        }
        if self.offset_ms.abs() > OFFSET_MS_MAX {
            return Err(format!(
                "offset_ms {} is outside ±{OFFSET_MS_MAX}",
                self.offset_ms
            ));
        }
        if self.steps.len() > STEPS_MAX {
            return Err(format!(
                "{} clock steps, at most {STEPS_MAX}",
                self.steps.len()
            ));
        }
        if let Some(s) = self.steps.iter().find(|s| s.delta_ms.abs() > OFFSET_MS_MAX) {
            return Err(format!(
                "clock step delta_ms {} is outside ±{OFFSET_MS_MAX}",
                s.delta_ms
            ));
        }
        Ok(())
    }

    /// Perceived microseconds at a true instant, `true_us` since the world's origin.
    pub fn perceived_us(&self, true_us: u64) -> i64 {
        let t = true_us as i128;
        let drift = t * self.drift_ppm as i128 / 1_000_000;
        let steps: i128 = self
            .steps
            .iter()
            .filter(|s| (s.at_ms as i128) * 1000 <= t)
            .map(|s| s.delta_ms as i128 * 1000)
            .sum();
        (self.offset_ms as i128 * 1000 + t + drift + steps) as i64
    }

    /// True duration that the node's timer takes for a perceived duration.
    pub fn true_duration(&self, perceived: Duration) -> Duration {
        // Positive space: validate() keeps the rate above zero, so this never divides by zero.
        assert!(self.drift_ppm > -1_000_000, "clock rate must stay positive");
        let nanos = perceived.as_nanos() * 1_000_000 / (1_000_000 + self.drift_ppm) as u128;
        Duration::from_nanos(nanos.min(u64::MAX as u128) as u64)
    }
}

/// A node's clock over the (possibly simulated) true clock.
#[derive(Debug, Clone)]
pub struct NodeClock {
    origin: Instant,
    skew: Skew,
}

impl NodeClock {
    /// A clock whose true time counts from `origin` (the world's start).
    pub fn new(origin: Instant, skew: Skew) -> Self {
        NodeClock { origin, skew }
    }

    pub fn perfect(origin: Instant) -> Self {
        NodeClock::new(origin, Skew::default())
    }

    pub fn skew(&self) -> &Skew {
        &self.skew
    }

    /// True microseconds since the world's origin (for the history, never for decisions).
    pub fn true_us(&self) -> u64 {
        self.origin.elapsed().as_micros() as u64
    }

    /// What the node believes the time is, in microseconds since the world's origin.
    pub fn now_us(&self) -> i64 {
        self.skew.perceived_us(self.true_us())
    }

    /// The node's monotonic clock, µs since the world's origin: its rate error (drift)
    /// applies, its offset and steps do not, as `CLOCK_MONOTONIC` is slewed but never stepped.
    pub fn monotonic_us(&self) -> i64 {
        let t = self.true_us() as i128;
        (t + t * self.skew.drift_ppm as i128 / 1_000_000) as i64
    }

    /// Sleeps for a duration measured by this node's timer.
    pub async fn sleep(&self, perceived: Duration) {
        crate::deadline::sleep(self.skew.true_duration(perceived)).await
    }

    /// Runs `fut` with a timeout measured by this node's timer.
    pub async fn timeout<F: Future>(
        &self,
        perceived: Duration,
        fut: F,
    ) -> Result<F::Output, crate::deadline::Elapsed> {
        crate::deadline::timeout(self.skew.true_duration(perceived), fut).await
    }

    /// [`NodeClock::sleep`] on `alarm`'s timer (see [`crate::deadline::Alarm`]).
    pub async fn sleep_on(&self, alarm: &crate::deadline::Alarm, perceived: Duration) {
        alarm.sleep(self.skew.true_duration(perceived)).await
    }

    /// [`NodeClock::timeout`] on `alarm`'s timer (see [`crate::deadline::Alarm`]).
    pub async fn timeout_on<F: Future>(
        &self,
        alarm: &crate::deadline::Alarm,
        perceived: Duration,
        fut: F,
    ) -> Result<F::Output, crate::deadline::Elapsed> {
        alarm.timeout(self.skew.true_duration(perceived), fut).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn perfect_clock_reads_true_time() {
        let s = Skew::default();
        assert_eq!(s.perceived_us(0), 0);
        assert_eq!(s.perceived_us(1_234_567), 1_234_567);
        assert_eq!(
            s.true_duration(Duration::from_secs(2)),
            Duration::from_secs(2)
        );
    }

    #[test]
    fn offset_drift_and_steps_compose() {
        let s = Skew {
            offset_ms: 100,
            drift_ppm: 500,
            steps: vec![
                ClockStep {
                    at_ms: 5_000,
                    delta_ms: -2_000,
                },
                ClockStep {
                    at_ms: 8_000,
                    delta_ms: 300,
                },
            ],
        };
        // At 10 s true: 100 ms offset + 10 s + 5 ms drift - 2 s + 0.3 s.
        assert_eq!(
            s.perceived_us(10_000_000),
            100_000 + 10_000_000 + 5_000 - 2_000_000 + 300_000
        );
        // Before the first step only offset and drift count.
        assert_eq!(s.perceived_us(4_999_999), 100_000 + 4_999_999 + 2_499);
        // A backward step makes perceived time go back: the negative space is real.
        assert!(s.perceived_us(5_000_000) < s.perceived_us(4_999_999));
    }

    #[test]
    fn fast_clock_sleeps_shorter_in_true_time() {
        let fast = Skew {
            drift_ppm: 100_000,
            ..Skew::default()
        };
        let slow = Skew {
            drift_ppm: -100_000,
            ..Skew::default()
        };
        let d = Duration::from_millis(1100);
        assert_eq!(fast.true_duration(d), Duration::from_millis(1000));
        assert!(slow.true_duration(d) > d);
    }

    #[test]
    fn limits_are_enforced_with_the_field_named() {
        let s = Skew {
            drift_ppm: 200_000,
            ..Skew::default()
        };
        assert!(s.validate().unwrap_err().contains("drift_ppm"));
        let s = Skew {
            offset_ms: i64::MAX,
            ..Skew::default()
        };
        assert!(s.validate().unwrap_err().contains("offset_ms"));
        assert!(Skew::default().validate().is_ok());
    }
}
