//! The storage wire protocol of etcd's `contrib/lock` example, unchanged.
//!
//! One endpoint, `POST /`, JSON bodies:
//! request `{"op": "read"|"write", "key", "val", "version"}`,
//! response `{"val", "version", "err"}` with `err` empty on success.
//! `version` carries the client's fencing value (the lease ID in `contrib/lock`, the lock key's
//! revision under the token policies). A client written for `contrib/lock` talks to our storage
//! unchanged, and ours to `contrib/lock`'s.

use serde::{Deserialize, Serialize};

/// Optional HTTP header naming the history operation a request belongs to.
///
/// Why a header and not a JSON field: the body stays exactly `contrib/lock`'s protocol, while the
/// storage's own log can still be joined with the client history. Clients that do not send
/// it (`contrib/lock`'s Go client) are served the same.
pub const OP_HEADER: &str = "x-fencelab-op";

/// The largest request body the storage accepts, in bytes. A limit on everything.
pub const BODY_BYTES_MAX: usize = 64 * 1024;

/// What a request asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Op {
    Read,
    Write,
}

impl Op {
    pub fn as_str(self) -> &'static str {
        match self {
            Op::Read => "read",
            Op::Write => "write",
        }
    }
}

/// A storage request, exactly `contrib/lock`'s JSON shape.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Request {
    pub op: Op,
    pub key: String,
    #[serde(default)]
    pub val: String,
    pub version: i64,
}

/// A storage response, exactly `contrib/lock`'s JSON shape.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Response {
    pub val: String,
    pub version: i64,
    pub err: String,
}

impl Response {
    pub fn ok(val: impl Into<String>, version: i64) -> Self {
        Response {
            val: val.into(),
            version,
            err: String::new(),
        }
    }

    pub fn error(err: impl Into<String>) -> Self {
        Response {
            val: String::new(),
            version: -1,
            err: err.into(),
        }
    }

    pub fn is_ok(&self) -> bool {
        self.err.is_empty()
    }
}

/// Why a request body could not be turned into a [`Request`]: a message for the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError(pub String);

impl std::fmt::Display for ParseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Parses a request body. Never panics; every failure names what is wrong.
pub fn parse_request(body: &[u8]) -> Result<Request, ParseError> {
    if body.len() > BODY_BYTES_MAX {
        return Err(ParseError(format!(
            "request body of {} bytes is over the limit of {} bytes",
            body.len(),
            BODY_BYTES_MAX
        )));
    }
    let raw = serde_json::from_slice::<RawRequest>(body)
        .map_err(|e| ParseError(format!("malformed request: {}", explain(body, e))))?;
    let val = match (raw.op, raw.val) {
        (_, Some(val)) => val,
        // `contrib/lock`'s client always sends `val`; a read may leave it out, but a write without
        // one would silently store an empty string.
        (Op::Read, None) => String::new(),
        (Op::Write, None) => {
            return Err(ParseError(
                "malformed request: missing field `val` (a write needs a value)".into(),
            ))
        }
    };
    Ok(Request {
        op: raw.op,
        key: raw.key,
        val,
        version: raw.version,
    })
}

/// A request as it arrives, before the rules that depend on `op`.
#[derive(Deserialize)]
struct RawRequest {
    op: Op,
    key: String,
    /// Missing is `None`; present must be a string (`null` is refused, as before).
    #[serde(default, deserialize_with = "present_string")]
    val: Option<String>,
    version: i64,
}

fn present_string<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    String::deserialize(d).map(Some)
}

/// serde's message, or a plainer one where serde's names nothing: for an `op` that is not a
/// string, or a body that is not an object, it says "expected value at line 1 column 7".
fn explain(body: &[u8], e: serde_json::Error) -> String {
    use serde_json::Value;
    // Names the JSON type, not the value: the value may be 64 KiB long.
    let kind = |v: &Value| match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    };
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(fields)) => match fields.get("op") {
            Some(op) if !op.is_string() => {
                format!("field `op` must be \"read\" or \"write\", not {}", kind(op))
            }
            _ => e.to_string(),
        },
        Ok(other) => format!("the request must be a JSON object, not {}", kind(&other)),
        Err(_) => e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_contrib_lock_request() {
        let r = parse_request(br#"{"op":"write","key":"key0","val":"v","version":7}"#).unwrap();
        assert_eq!(r.op, Op::Write);
        assert_eq!(r.key, "key0");
        assert_eq!(r.version, 7);
    }

    #[test]
    fn refuses_unknown_op_and_bad_types() {
        let e = parse_request(br#"{"op":"delete","key":"k","val":"","version":1}"#).unwrap_err();
        assert!(e.0.contains("unknown variant"), "{e}");
        assert!(parse_request(br#"{"op":"read","key":"k","version":"x"}"#).is_err());
        assert!(parse_request(br#"{"op":"read","key":"k"}"#).is_err());
        // A read may leave out `val`; a write may not.
        assert_eq!(
            parse_request(br#"{"op":"read","key":"k","version":1}"#).map(|r| r.val),
            Ok(String::new())
        );
        let e = parse_request(br#"{"op":"write","key":"k","version":1}"#).unwrap_err();
        assert!(e.0.contains("missing field `val`"), "{e}");
        assert!(parse_request(b"{").is_err());
        // serde alone says "expected value" here, naming neither the field nor the fault.
        let e = parse_request(br#"{"op":7,"key":"k","version":1}"#).unwrap_err();
        assert!(e.0.contains("field `op` must be"), "{e}");
        let e = parse_request(b"[1,2]").unwrap_err();
        assert!(e.0.contains("must be a JSON object, not an array"), "{e}");
        assert!(parse_request(&vec![b' '; BODY_BYTES_MAX + 1]).is_err());
    }

    #[test]
    fn response_shape_is_contrib_locks() {
        let s = serde_json::to_string(&Response::ok("v", 3)).unwrap();
        assert_eq!(s, r#"{"val":"v","version":3,"err":""}"#);
    }
}
