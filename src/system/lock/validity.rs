//! How long a lock without a session holds: a deadline on one of the client's clocks.

use crate::clock::NodeClock;
use serde::{Deserialize, Serialize};

/// Which clock a client measures a lock's validity on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
#[serde(rename_all = "kebab-case")]
pub enum ClientClock {
    /// Rate errors apply, steps do not (redsync, rslock).
    #[default]
    Monotonic,
    /// Steps and rate errors apply (node-redlock, redlock-rb).
    Wall,
}

impl ClientClock {
    pub const ALL: [ClientClock; 2] = [ClientClock::Monotonic, ClientClock::Wall];

    pub fn as_str(self) -> &'static str {
        match self {
            ClientClock::Monotonic => "monotonic",
            ClientClock::Wall => "wall",
        }
    }

    /// The time on this clock, µs.
    pub fn now_us(self, clock: &NodeClock) -> i64 {
        match self {
            ClientClock::Monotonic => clock.monotonic_us(),
            ClientClock::Wall => clock.now_us(),
        }
    }
}

impl std::str::FromStr for ClientClock {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        crate::named::parse(&ClientClock::ALL, ClientClock::as_str, "clock", s)
    }
}

/// Until when a lock without a session holds: a time on the client's clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Validity {
    pub clock: ClientClock,
    pub until_us: i64,
}

impl Validity {
    /// Whether the lock is still valid `margin_ms` from now, by the client's clock.
    pub fn holds(&self, clock: &NodeClock, margin_ms: u64) -> bool {
        self.clock.now_us(clock) + margin_ms as i64 * 1000 <= self.until_us
    }
}
