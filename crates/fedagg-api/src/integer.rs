//! Integer fields that also accept a JSON number with an integral value (`4055.0`): JSON has one
//! number type, and JSON Schema's `integer` (what the OpenAPI document says) includes it.

use std::fmt;
use std::marker::PhantomData;

use serde::de::{self, Deserializer, Visitor};

/// Deserialize an unsigned integer of type `T` from any integral JSON number in `T`'s range.
pub(crate) fn de<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: TryFrom<u64>,
{
    struct Integral<T>(PhantomData<T>);

    impl<T: TryFrom<u64>> Integral<T> {
        fn fit<E: de::Error>(v: u64) -> Result<T, E> {
            T::try_from(v).map_err(|_| E::custom(format!("{v} is out of range")))
        }
    }

    impl<T: TryFrom<u64>> Visitor<'_> for Integral<T> {
        type Value = T;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a non-negative integer")
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> Result<T, E> {
            Self::fit(v)
        }
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<T, E> {
            u64::try_from(v)
                .map_err(|_| E::custom(format!("{v} is negative")))
                .and_then(Self::fit)
        }
        fn visit_f64<E: de::Error>(self, v: f64) -> Result<T, E> {
            // 2^64 is exactly representable; every integral f64 below it fits a u64.
            if v.fract() == 0.0 && (0.0..18_446_744_073_709_551_616.0).contains(&v) {
                Self::fit(v as u64)
            } else {
                Err(E::custom(format!("{v} is not a non-negative integer")))
            }
        }
    }

    d.deserialize_any(Integral(PhantomData))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    #[derive(serde::Deserialize)]
    struct S {
        #[serde(deserialize_with = "super::de")]
        n: u32,
    }

    fn parse(j: &str) -> Result<u32, serde_json::Error> {
        serde_json::from_str::<S>(j).map(|s| s.n)
    }

    #[test]
    fn integral_numbers_are_integers_and_nothing_else_is() {
        assert_eq!(parse(r#"{"n": 4055}"#).unwrap(), 4055);
        assert_eq!(parse(r#"{"n": 4055.0}"#).unwrap(), 4055);
        assert_eq!(parse(r#"{"n": 4.055e3}"#).unwrap(), 4055);
        for bad in [
            "4055.5",
            "-1",
            "-1.0",
            "4294967296",
            "1e300",
            "\"7\"",
            "null",
        ] {
            assert!(parse(&format!(r#"{{"n": {bad}}}"#)).is_err(), "{bad}");
        }
    }
}
