//! Milliseconds as scenarios and fault plans count them: an inclusive range of them, and the
//! longest run, which bounds every time in a scenario or a plan.
//!
//! Imports nothing of the crate: the simulator's scenarios and fault plans both use it, and the
//! system's clients and storage count their delays with it, so it lives in the system layer,
//! below all of them.

use serde::{Deserialize, Serialize};

/// Longest simulated run, in ms (10 minutes): a limit on everything.
pub const DURATION_MS_MAX: u64 = 600_000;

/// An inclusive range of milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct MsRange {
    pub min: u64,
    pub max: u64,
}

impl MsRange {
    pub const fn new(min: u64, max: u64) -> Self {
        MsRange { min, max }
    }

    pub const fn exactly(ms: u64) -> Self {
        MsRange { min: ms, max: ms }
    }

    pub(crate) fn validate(&self, name: &str, limit: u64) -> Result<(), String> {
        if self.min > self.max {
            return Err(format!(
                "{name}: min {} is above max {}",
                self.min, self.max
            ));
        }
        if self.max > limit {
            return Err(format!(
                "{name}: max {} is above the limit {limit}",
                self.max
            ));
        }
        debug_assert!(
            self.min <= self.max && self.max <= limit,
            "{name}: validated out of range"
        );
        Ok(())
    }
}

impl std::str::FromStr for MsRange {
    type Err = String;
    /// `MIN..MAX` (inclusive) or a single number.
    fn from_str(s: &str) -> Result<Self, String> {
        let num = |t: &str| {
            t.trim()
                .parse::<u64>()
                .map_err(|_| format!("'{s}' is not a range of milliseconds (MIN..MAX)"))
        };
        match s.split_once("..") {
            Some((a, b)) => Ok(MsRange::new(num(a)?, num(b.trim_start_matches('='))?)),
            None => Ok(MsRange::exactly(num(s)?)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ms_ranges_parse() {
        assert_eq!("10..20".parse::<MsRange>().unwrap(), MsRange::new(10, 20));
        assert_eq!("10..=20".parse::<MsRange>().unwrap(), MsRange::new(10, 20));
        assert_eq!("7".parse::<MsRange>().unwrap(), MsRange::exactly(7));
        assert!("a..b".parse::<MsRange>().is_err());
    }
}
