//! 64-bit integers in the history's JSON, written so that common JSON tools read them exactly.
//!
//! jq 1.6 and JavaScript read every JSON number as a double, which holds integers exactly only
//! up to 2^53 ([`SAFE_INTEGER_MAX`]). etcd's lease IDs are random 63-bit numbers, nearly always
//! above it, so the history writes them as strings, through `#[serde(with = "...")]` on the
//! fields that hold them:
//!
//! - [`lease_id`]: a lease ID as `etcdctl` prints it, 16 lowercase hex digits
//!   (`"5b302f8e16a2711a"`).
//! - [`wire_version`]: the `version` number of `contrib/lock`'s storage protocol, exactly as it went
//!   over the wire (a fencing token or a lease ID, depending on the policy), as its decimal
//!   digits in a string (`"2"`, `"6570804143645159706"`).
//!
//! Only the history's JSON changes: the wire protocol ([`crate::protocol`]) still carries
//! `version` as a plain JSON number, as `contrib/lock`'s Go programs expect.

use serde::{de::Error as _, Deserialize, Deserializer, Serializer};

/// The largest integer a double holds exactly, with every integer below it: 2^53.
pub const SAFE_INTEGER_MAX: u64 = 1 << 53;

/// A lease ID as 16 lowercase hex digits, as `etcdctl` prints it (`%016x`).
///
/// etcd grants only positive IDs; any other `i64` is written as its 64-bit two's complement
/// (`-1` is `"ffffffffffffffff"`), so every value survives the round trip. Reading accepts 1
/// to 16 hex digits of either case, so an ID copied from `etcdctl` or from fencelab's own
/// story (which prints it without leading zeros) reads back as well.
pub mod lease_id {
    use super::*;

    pub fn serialize<S: Serializer>(id: &i64, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&format_args!("{id:016x}"))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
        let text = String::deserialize(d)?;
        parse(&text).map_err(D::Error::custom)
    }

    /// Reads 1 to 16 hex digits.
    pub fn parse(text: &str) -> Result<i64, String> {
        let hex =
            !text.is_empty() && text.len() <= 16 && text.bytes().all(|b| b.is_ascii_hexdigit());
        if !hex {
            return Err(format!(
                "lease ID '{text}' is not 1 to 16 hex digits (as etcdctl prints it)"
            ));
        }
        // Why through u64: IDs at or above 2^63 are the two's complement of negative ones.
        assert!(
            text.len() <= 16,
            "more than 64 bits of hex digits passed the check"
        );
        u64::from_str_radix(text, 16)
            .inspect(|v| debug_assert!(u64::from_str_radix(&format!("{v:016x}"), 16) == Ok(*v)))
            .map(|v| v as i64)
            .map_err(|e| format!("lease ID '{text}': {e}"))
    }
}

/// The protocol's `version` number as its decimal digits in a JSON string.
pub mod wire_version {
    use super::*;

    pub fn serialize<S: Serializer>(v: &i64, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(v)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(|_| {
            D::Error::custom(format!(
                "wire version '{text}' is not the decimal digits of a 64-bit integer"
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Serialize;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Both {
        #[serde(with = "lease_id")]
        lease_id: i64,
        #[serde(with = "wire_version")]
        wire_version: i64,
    }

    const EDGES: [i64; 9] = [
        0,
        1,
        42,
        (1 << 53) - 1,
        (1 << 53) + 1,
        0x5b30_2f8e_16a2_711a,
        i64::MAX,
        i64::MIN,
        -1,
    ];

    #[test]
    fn every_value_round_trips_exactly() {
        for v in EDGES {
            let both = Both {
                lease_id: v,
                wire_version: v,
            };
            let json = serde_json::to_string(&both).unwrap();
            assert_eq!(serde_json::from_str::<Both>(&json).unwrap(), both, "{json}");
            // Strings, not numbers: nothing for a double to round.
            let value: serde_json::Value = serde_json::from_str(&json).unwrap();
            assert!(value["lease_id"].is_string() && value["wire_version"].is_string());
        }
    }

    #[test]
    fn the_text_is_etcdctls_hex_and_the_wires_digits() {
        let json = |lease_id, wire_version| {
            serde_json::to_string(&Both {
                lease_id,
                wire_version,
            })
            .unwrap()
        };
        assert_eq!(
            json(0x5b30_2f8e_16a2_711a, 2),
            r#"{"lease_id":"5b302f8e16a2711a","wire_version":"2"}"#
        );
        // A double rounds this one (to ...159424): why strings.
        let big: i64 = 0x5b30_2f8e_16a2_711a;
        assert_ne!(big as f64 as i64, big);
        // Leading zeros, as etcdctl's %016x; the wire's digits in decimal.
        assert_eq!(
            json(0x0571_a748_9917_23b1, 0x5b30_2f8e_16a2_711a),
            r#"{"lease_id":"0571a748991723b1","wire_version":"6570804143645159706"}"#
        );
        assert_eq!(
            json(-1, -1),
            r#"{"lease_id":"ffffffffffffffff","wire_version":"-1"}"#
        );
    }

    #[test]
    fn reading_accepts_short_and_upper_hex_and_refuses_the_rest() {
        assert_eq!(
            lease_id::parse("571a748991723b1"),
            Ok(0x0571_a748_9917_23b1)
        );
        assert_eq!(
            lease_id::parse("5B302F8E16A2711A"),
            Ok(0x5b30_2f8e_16a2_711a)
        );
        for bad in ["", "-1", "+1", "0x1f", "g", "1 ", "00000000000000001"] {
            assert!(lease_id::parse(bad).is_err(), "{bad:?}");
        }
        for bad in [
            r#"{"lease_id":42,"wire_version":"2"}"#,
            r#"{"lease_id":"2a","wire_version":2}"#,
            r#"{"lease_id":"2a","wire_version":"2.0"}"#,
            r#"{"lease_id":"2a","wire_version":"9223372036854775808"}"#,
        ] {
            assert!(serde_json::from_str::<Both>(bad).is_err(), "{bad}");
        }
    }
}
