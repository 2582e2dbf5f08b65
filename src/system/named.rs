//! Value lists, declared once. An enum whose values have names (in TOML, in JSON and on the
//! command line) keeps them in one table, a `const ALL` with an `as_str`; these helpers make
//! its `FromStr`, the error that lists the accepted names, and, with the `cli` feature, the
//! flag parser whose help lists them, from that table. With `cli` the enum also derives
//! `clap::ValueEnum` (kebab-case, or `#[value(name = ...)]` where serde renames); a test holds
//! its names, serde's and `as_str` equal.

/// The value of `all` named `s`, or an error that names `what` and lists every name.
pub fn parse<T: Copy>(
    all: &[T],
    as_str: fn(T) -> &'static str,
    what: &str,
    s: &str,
) -> Result<T, String> {
    all.iter()
        .copied()
        .find(|v| as_str(*v) == s)
        .ok_or_else(|| {
            format!(
                "unknown {what} '{s}' (expected one of: {})",
                names(all, as_str)
            )
        })
}

/// Every name of `all`, comma-separated, in the table's order.
pub fn names<T: Copy>(all: &[T], as_str: fn(T) -> &'static str) -> String {
    let names: Vec<&str> = all.iter().map(|v| as_str(*v)).collect();
    names.join(", ")
}

/// A flag's parser for a value list: the value is parsed by the type's `FromStr` (so a bad one
/// gets the error that lists the accepted names), and `--help` shows the `[possible values]`
/// of its `clap::ValueEnum`.
#[cfg(feature = "cli")]
#[derive(Debug, Clone, Copy, Default)]
pub struct FlagParser<E>(std::marker::PhantomData<E>);

#[cfg(feature = "cli")]
impl<E> FlagParser<E> {
    pub fn new() -> Self {
        FlagParser(std::marker::PhantomData)
    }
}

#[cfg(feature = "cli")]
impl<E> clap::builder::TypedValueParser for FlagParser<E>
where
    E: clap::ValueEnum + std::str::FromStr<Err = String> + Clone + Send + Sync + 'static,
{
    type Value = E;

    fn parse_ref(
        &self,
        _cmd: &clap::Command,
        _arg: Option<&clap::Arg>,
        value: &std::ffi::OsStr,
    ) -> Result<E, clap::Error> {
        let s = value.to_string_lossy();
        s.parse().map_err(|e: String| {
            clap::Error::raw(clap::error::ErrorKind::InvalidValue, format!("{e}\n"))
        })
    }

    fn possible_values(
        &self,
    ) -> Option<Box<dyn Iterator<Item = clap::builder::PossibleValue> + '_>> {
        Some(Box::new(
            E::value_variants()
                .iter()
                .filter_map(clap::ValueEnum::to_possible_value),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bad_name_gets_every_name() {
        let all = [1u8, 2];
        let name = |v: u8| if v == 1 { "one" } else { "two" };
        assert_eq!(parse(&all, name, "number", "two"), Ok(2));
        assert_eq!(
            parse(&all, name, "number", "three"),
            Err("unknown number 'three' (expected one of: one, two)".to_string())
        );
    }
}

/// Each list's names agree: `as_str`, serde's (TOML and JSON) and clap's, in the same order.
#[cfg(all(test, feature = "cli"))]
mod agree {
    use clap::ValueEnum;
    use serde::Serialize;

    fn agree<E: ValueEnum + Serialize + Copy + PartialEq + std::fmt::Debug>(
        all: &[E],
        as_str: fn(E) -> &'static str,
    ) {
        assert_eq!(E::value_variants(), all, "clap's list is ALL");
        for v in all {
            let name = as_str(*v);
            assert_eq!(serde_json::to_string(v).unwrap(), format!("\"{name}\""));
            assert_eq!(v.to_possible_value().unwrap().get_name(), name);
        }
    }

    #[test]
    fn every_list_has_one_set_of_names() {
        use crate::{etcd, lock, redis, storage};
        agree(&storage::Fencing::ALL, storage::Fencing::as_str);
        agree(&lock::LockMethod::ALL, lock::LockMethod::as_str);
        agree(&etcd::Backend::ALL, etcd::Backend::as_str);
        agree(&etcd::Version::ALL, etcd::Version::as_str);
        agree(&lock::ServiceKind::ALL, lock::ServiceKind::as_str);
        agree(&redis::Persistence::ALL, redis::Persistence::as_str);
        agree(&lock::ClientClock::ALL, lock::ClientClock::as_str);
        agree(&lock::RedlockToken::ALL, lock::RedlockToken::as_str);
    }
}
