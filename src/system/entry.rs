//! One stored value with its version: what the [`storage`](crate::storage) keeps per key and
//! what the [`history`](crate::history) records as the run's final entries.
//!
//! Its own module, below both, so that the history need not import the storage (whose HTTP
//! server records into the history). Imports nothing of the crate but the JSON format of
//! [`exact_json`](crate::exact_json).

use serde::{Deserialize, Serialize};

/// One stored value with the version it was written under.
///
/// Not part of the wire protocol: its JSON is the history's (`final_entries`), where
/// `version` is `wire_version`, decimal digits in a string (see [`crate::exact_json`]).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Entry {
    pub val: String,
    #[serde(rename = "wire_version", with = "crate::exact_json::wire_version")]
    pub version: i64,
}
