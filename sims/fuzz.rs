//! Fuzzing the storage's front door: the request parser and the fenced store.
//!
//! Raw bytes, mangled JSON and structured-but-wrong requests go through
//! `protocol::parse_request`; random request sequences go through `Store::apply` under every
//! policy. Nothing may panic; every refusal must name what is wrong; the store must do what its
//! policy says. Stable Rust and proptest only, so it runs in CI: the default case counts take a
//! few seconds, `PROPTEST_CASES=200000 cargo test --release --test fuzz` runs more per property.

// mimalloc, as in every binary of the package (the library sets no allocator).
#[path = "../src/global_alloc.rs"]
mod global_alloc;

use fencelab::protocol::{parse_request, Op, Request, BODY_BYTES_MAX};
use fencelab::storage::{Fencing, Store, KEY_NOT_FOUND};
use proptest::prelude::*;
use proptest::test_runner::Config;
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;

/// Cases per property unless `PROPTEST_CASES` says otherwise.
const DEFAULT_CASES: u32 = 4_000;
/// Most requests in one store sequence.
const SEQUENCE_MAX: usize = 64;

fn config() -> Config {
    let cases = match std::env::var("PROPTEST_CASES") {
        Ok(s) => s
            .parse()
            .unwrap_or_else(|_| panic!("PROPTEST_CASES={s:?} is not a number")),
        Err(_) => DEFAULT_CASES,
    };
    Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    }
}

/// A parse error must say it is one and say something past that.
fn assert_named(err: &str) {
    let prefix = "malformed request: ";
    assert!(
        (err.starts_with(prefix) && err.len() > prefix.len()) || err.starts_with("request body of"),
        "unhelpful error: {err:?}"
    );
}

/// One field of a generated request: a good value, a wrong one (with what the error must
/// say), or absent.
#[derive(Debug, Clone)]
enum Field {
    Good(Value),
    /// The value, and a fragment the parser's error must contain when it reports this field.
    Bad(Value, &'static str),
    Missing,
}

fn wrong_type() -> impl Strategy<Value = Field> {
    prop_oneof![
        Just(Field::Bad(Value::Null, "invalid type: null")),
        Just(Field::Bad(json!(true), "invalid type: boolean")),
        Just(Field::Bad(json!([1, 2]), "invalid type: sequence")),
        Just(Field::Bad(json!({"a": 1}), "invalid type: map")),
    ]
}

fn op_field() -> impl Strategy<Value = Field> {
    prop_oneof![
        4 => prop_oneof![Just("read"), Just("write")].prop_map(|s| Field::Good(json!(s))),
        2 => prop_oneof![Just("delete"), Just("READ"), Just(""), Just("writes")]
            .prop_map(|s| Field::Bad(json!(s), "unknown variant")),
        1 => any::<i64>().prop_map(|n| Field::Bad(json!(n), OP_NOT_TEXT)),
        1 => prop_oneof![Just(json!(null)), Just(json!(true)), Just(json!([1])), Just(json!({"a": 1}))]
            .prop_map(|v| Field::Bad(v, OP_NOT_TEXT)),
        1 => Just(Field::Missing),
    ]
}

/// What the parser says of an `op` that is not a string at all.
const OP_NOT_TEXT: &str = "field `op` must be \"read\" or \"write\"";

fn text_field(required: bool) -> impl Strategy<Value = Field> {
    prop_oneof![
        4 => ".{0,12}".prop_map(|s| Field::Good(json!(s))),
        1 => any::<i64>().prop_map(|n| Field::Bad(json!(n), "invalid type: integer")),
        1 => any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(|f| Field::Bad(json!(f), "invalid type: floating point")),
        1 => wrong_type(),
        1 => Just(if required { Field::Missing } else { Field::Good(json!("")) }),
    ]
}

fn version_field() -> impl Strategy<Value = Field> {
    prop_oneof![
        4 => any::<i64>().prop_map(|n| Field::Good(json!(n))),
        1 => (i64::MAX as u64 + 1..=u64::MAX)
            .prop_map(|n| Field::Bad(json!(n), "invalid value: integer")),
        1 => any::<i32>().prop_map(|n| f64::from(n) + 0.5)
            .prop_map(|f| Field::Bad(json!(f), "invalid type: floating point")),
        1 => "[0-9]{1,5}".prop_map(|s| Field::Bad(json!(s), "invalid type: string")),
        1 => wrong_type(),
        1 => Just(Field::Missing),
    ]
}

/// What the parser must say of the request built from these fields: `Ok` with the request,
/// or `Err` with the fragments of which the error must contain at least one.
fn expectation(fields: &[(&str, &Field)]) -> Result<Request, Vec<String>> {
    let mut wrong = Vec::new();
    for (name, field) in fields {
        match field {
            Field::Bad(_, says) => wrong.push(says.to_string()),
            // `val` may be left out of a read (checked below); the others are required.
            Field::Missing if *name != "val" => wrong.push(format!("missing field `{name}`")),
            _ => {}
        }
    }
    let good = |name: &str| {
        fields.iter().find_map(|(n, f)| match f {
            Field::Good(v) if *n == name => Some(v.clone()),
            _ => None,
        })
    };
    let op = match good("op")
        .and_then(|v| v.as_str().map(str::to_string))
        .as_deref()
    {
        Some("read") => Op::Read,
        _ => Op::Write,
    };
    // A write needs `val`; a read may leave it out.
    let val_missing = fields
        .iter()
        .any(|(n, f)| *n == "val" && matches!(f, Field::Missing));
    if op == Op::Write && val_missing {
        wrong.push("missing field `val`".to_string());
    }
    if !wrong.is_empty() {
        return Err(wrong);
    }
    Ok(Request {
        op,
        key: good("key")
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default(),
        val: good("val")
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default(),
        version: good("version").and_then(|v| v.as_i64()).unwrap_or_default(),
    })
}

proptest! {
    #![proptest_config(config())]

    /// Any bytes at all: an answer, never a panic, and a refusal that says why.
    #[test]
    fn parser_survives_raw_bytes(body in prop::collection::vec(any::<u8>(), 0..512)) {
        if let Err(e) = parse_request(&body) {
            assert_named(&e.0);
        }
    }

    /// A good request mangled: cut short, a byte changed, or bytes spliced in.
    #[test]
    fn parser_survives_mangled_json(
        version in any::<i64>(),
        key in ".{0,8}",
        cut in any::<prop::sample::Index>(),
        flip in any::<prop::sample::Index>(),
        byte in any::<u8>(),
        how in 0u8..3,
    ) {
        let good = json!({"op": "write", "key": key, "val": "v", "version": version});
        let mut body = serde_json::to_vec(&good).unwrap();
        match how {
            0 => body.truncate(cut.index(body.len())),
            1 => {
                let i = flip.index(body.len());
                body[i] = byte;
            }
            _ => {
                let i = flip.index(body.len());
                body.insert(i, byte);
            }
        }
        if let Err(e) = parse_request(&body) {
            assert_named(&e.0);
        }
    }

    /// Well-formed JSON with wrong, missing or extra fields: parsed exactly when every field
    /// is right, and otherwise refused with an error naming one of the faults.
    #[test]
    fn parser_names_the_wrong_field(
        op in op_field(),
        key in text_field(true),
        val in text_field(false),
        version in version_field(),
        extra in prop::option::of(any::<i64>()),
        order in Just(vec![0usize, 1, 2, 3]).prop_shuffle(),
    ) {
        let fields = [("op", &op), ("key", &key), ("val", &val), ("version", &version)];
        let mut object = Map::new();
        for &i in &order {
            let (name, field) = fields[i];
            match field {
                Field::Good(v) | Field::Bad(v, _) => {
                    object.insert(name.to_string(), v.clone());
                }
                Field::Missing => {}
            }
        }
        if let Some(n) = extra {
            // Unknown fields are ignored: `contrib/lock`'s clients may send more than we read.
            object.insert("extra".to_string(), json!(n));
        }
        let body = serde_json::to_vec(&Value::Object(object)).unwrap();
        match (parse_request(&body), expectation(&fields)) {
            (Ok(got), Ok(want)) => prop_assert_eq!(got, want),
            (Err(e), Err(says)) => {
                assert_named(&e.0);
                prop_assert!(
                    says.iter().any(|s| e.0.contains(s.as_str())),
                    "error {:?} names none of {:?}", e.0, says
                );
            }
            (got, want) => prop_assert!(false, "parsed {:?}, expected {:?}", got, want),
        }
    }

    /// Bodies around the size limit: over it is refused by size, whatever the content.
    #[test]
    fn parser_refuses_oversized_bodies(extra in 1usize..64, fill in any::<u8>()) {
        let body = vec![fill; BODY_BYTES_MAX + extra];
        let e = parse_request(&body).unwrap_err();
        prop_assert!(e.0.contains(&format!("{}", BODY_BYTES_MAX)), "{}", e.0);
    }

    /// Random request sequences under every policy: never a panic, and exactly the policy.
    #[test]
    fn store_follows_its_policy(
        policy in prop::sample::select(Fencing::ALL.to_vec()),
        requests in prop::collection::vec(
            (
                prop_oneof![Just(Op::Read), Just(Op::Write)],
                prop_oneof![Just(""), Just("counter"), Just("key0"), Just("ключ")],
                ".{0,6}",
                prop_oneof![
                    Just(i64::MIN), Just(i64::MAX), Just(-1i64), Just(0i64), -3i64..12
                ],
            ),
            0..SEQUENCE_MAX,
        ),
    ) {
        let mut store = Store::new(policy);
        // The model: what each key holds and the highest token its fenced ops carried.
        let mut held: BTreeMap<String, (String, i64)> = BTreeMap::new();
        let mut highest: BTreeMap<String, i64> = BTreeMap::new();
        for (op, key, val, version) in requests {
            let req = Request { op, key: key.to_string(), val: val.clone(), version };
            let fenced = match policy {
                Fencing::None | Fencing::LeaseId => false,
                Fencing::TokenWrites => op == Op::Write,
                Fencing::Token => true,
            };
            let refuse = match policy {
                Fencing::None => false,
                Fencing::LeaseId => {
                    op == Op::Write && held.get(key).is_some_and(|(_, v)| *v != version)
                }
                Fencing::TokenWrites | Fencing::Token => {
                    fenced && highest.get(key).is_some_and(|h| version < *h)
                }
            };
            let applied = store.apply(&req);
            prop_assert_eq!(applied.accepted, !refuse, "{:?} under {}", req, policy);
            if refuse {
                // The refusal names both numbers, so a client can tell why.
                let err = &applied.response.err;
                let (given, existing) = match policy {
                    Fencing::LeaseId => (
                        format!("({version:x})"),
                        format!("({:x})", held[key].1),
                    ),
                    _ => (format!("({version})"), format!("({})", highest[key])),
                };
                prop_assert!(
                    err.contains(&given) && err.contains(&existing),
                    "{:?} does not name {} and {}", err, given, existing
                );
                continue;
            }
            if fenced {
                highest.insert(key.to_string(), version);
            }
            match op {
                Op::Write => {
                    held.insert(key.to_string(), (val.clone(), version));
                    prop_assert!(applied.response.is_ok());
                }
                Op::Read => match held.get(key) {
                    Some((v, ver)) => {
                        prop_assert_eq!(&applied.response.val, v);
                        prop_assert_eq!(applied.response.version, *ver);
                    }
                    None => prop_assert_eq!(applied.response.err.as_str(), KEY_NOT_FOUND),
                },
            }
            let stored = store.get(key).map(|e| (e.val.clone(), e.version));
            prop_assert_eq!(stored.as_ref(), held.get(key));
        }
    }

    /// Bytes all the way through: whatever parses is applied under every policy, no panic.
    #[test]
    fn parsed_bytes_apply_under_every_policy(
        version in any::<i64>(),
        op in prop_oneof![Just("read"), Just("write")],
        noise in prop::collection::vec(any::<u8>(), 0..16),
    ) {
        let mut body = serde_json::to_vec(
            &json!({"op": op, "key": "k", "val": "v", "version": version}),
        )
        .unwrap();
        body.extend_from_slice(&noise);
        let parsed = parse_request(&body);
        for policy in Fencing::ALL {
            let mut store = Store::new(policy);
            if let Ok(req) = &parsed {
                store.apply(req);
                store.apply(req);
            }
        }
    }
}
