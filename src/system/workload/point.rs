//! The labelled places in a client's lock cycle where an aimed fault can strike.
//!
//! They belong to the client that reaches them ([`super::ClientRun`]); the simulator's fault
//! plans name them (the simulator's fault module re-exports this type) and the world answers when one is hit.

use serde::{Deserialize, Serialize};

/// A labelled place in the client's lock cycle where a fault can be aimed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Point {
    /// Just told "you hold the lock".
    AfterAcquire,
    /// "My lease looks valid" and about to send the write: Kleppmann's window.
    BeforeWrite,
}

impl Point {
    pub fn as_str(self) -> &'static str {
        match self {
            Point::AfterAcquire => "after-acquire",
            Point::BeforeWrite => "before-write",
        }
    }
}
