//! Request bodies as JSON, strictly: serde_json keeps the last of duplicate
//! keys, so `{"replicas": 1, "replicas": 50}` would mean what a reviewer of
//! the first line does not see. A duplicate key anywhere is refused.

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

use crate::base::quote::clip;

/// A whole number for a `u32` or `u64` field, as JSON Schema reads one:
/// `3` or `3.0` (a number with no fraction), never `3.5`, `-1` or `"3"`.
pub fn whole<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: TryFrom<u64>,
{
    let number = serde_json::Number::deserialize(deserializer)?;
    // 2^64, exactly: the first float past u64::MAX.
    const PAST_U64: f64 = 18_446_744_073_709_551_616.0;
    let whole = number
        .as_u64()
        .or_else(|| number.as_f64().filter(|f| f.fract() == 0.0 && (0.0..PAST_U64).contains(f)).map(|f| f as u64));
    let what = || format!("expected a whole number within {}, not {number}", std::any::type_name::<T>());
    whole.and_then(|n| T::try_from(n).ok()).ok_or_else(|| de::Error::custom(what()))
}

/// `body` as a JSON value, refusing duplicate keys at any depth.
pub fn parse(body: &[u8]) -> Result<Value, serde_json::Error> {
    serde_json::from_slice::<Strict>(body).map(|Strict(v)| v)
}

/// A JSON value whose objects never repeat a key.
struct Strict(Value);

impl<'de> Deserialize<'de> for Strict {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(StrictVisitor).map(Strict)
    }
}

struct StrictVisitor;

impl<'de> Visitor<'de> for StrictVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(Strict(item)) = seq.next_element()? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut object = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if object.contains_key(&key) {
                return Err(de::Error::custom(format_args!("duplicate key {:?}", clip(&key))));
            }
            let Strict(value) = map.next_value()?;
            object.insert(key, value);
        }
        Ok(Value::Object(object))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicate_keys_are_refused_at_any_depth() {
        assert_eq!(
            parse(br#"{"a": [1, {"b": null}], "c": 1.5}"#).unwrap(),
            serde_json::json!({"a": [1, {"b": null}], "c": 1.5})
        );
        let e = parse(br#"{"replicas": 1, "replicas": 2}"#).unwrap_err();
        assert!(e.to_string().contains("duplicate key \"replicas\""), "{e}");
        assert!(parse(br#"[{"x": 1, "y": {"z": 1, "z": 1}}]"#).is_err());
    }

    #[test]
    fn whole_numbers_may_be_written_with_a_zero_fraction() {
        #[derive(serde::Deserialize)]
        struct Count {
            #[serde(deserialize_with = "whole")]
            n: u32,
        }
        let read = |text: &str| serde_json::from_str::<Count>(text).map(|c| c.n).map_err(|e| e.to_string());
        assert_eq!(read(r#"{"n": 3}"#), Ok(3));
        assert_eq!(read(r#"{"n": 3.0}"#), Ok(3));
        assert_eq!(read(r#"{"n": 4294967295.0}"#), Ok(u32::MAX));
        for bad in [
            r#"{"n": 3.5}"#,
            r#"{"n": -1}"#,
            r#"{"n": -1.0}"#,
            r#"{"n": "3"}"#,
            r#"{"n": 4294967296}"#,
            r#"{"n": 1e300}"#,
        ] {
            assert!(read(bad).is_err(), "{bad}");
        }
        #[derive(serde::Deserialize)]
        struct Id {
            #[serde(deserialize_with = "whole")]
            id: u64,
        }
        let id = |text: &str| serde_json::from_str::<Id>(text).map(|c| c.id).ok();
        assert_eq!(id(r#"{"id": 18446744073709551615}"#), Some(u64::MAX));
        assert_eq!(id(r#"{"id": 2005510427388358.0}"#), Some(2_005_510_427_388_358));
        assert_eq!(id(r#"{"id": 18446744073709551616}"#), None);
    }

    #[test]
    fn malformed_json_is_still_refused() {
        for bad in [&b""[..], b"{", b"nope", b"\xff", br#"{"a": 1} x"#] {
            assert!(parse(bad).is_err(), "{}", String::from_utf8_lossy(bad));
        }
    }
}
