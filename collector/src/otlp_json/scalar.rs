//! Reading proto3 scalars out of JSON values, as the OTLP/JSON mapping spells them.
//!
//! The mapping is lenient in the ways proto3 JSON parsers must be: integers of any width may be
//! numbers or strings of digits, enums may be integers or their names, doubles may be the
//! strings `NaN`, `Infinity` and `-Infinity`. It is strict about everything else, because a
//! value that is silently read as zero is worse than a rejected request.
//!
//! `null` never reaches these functions: the message decoders treat a `null` field as absent.

use base64::Engine as _;
use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use serde_json::Value;

use super::error::JsonDecodeError;
use super::path::FieldPath;

/// Standard-alphabet base64 that accepts input with or without `=` padding.
const BASE64_STANDARD: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// URL-safe base64 (`-` and `_`) that accepts input with or without `=` padding.
const BASE64_URL_SAFE: GeneralPurpose = GeneralPurpose::new(
    &alphabet::URL_SAFE,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// The largest magnitude for which every integral `f64` converts to `i128` exactly: 2^64.
const INTEGRAL_FLOAT_LIMIT: f64 = 18_446_744_073_709_551_616.0;

/// A JSON string, moved out of the document.
pub(super) fn string(value: Value, path: &FieldPath<'_>) -> Result<String, JsonDecodeError> {
    match value {
        Value::String(text) => Ok(text),
        other => Err(JsonDecodeError::wrong_type(path, "a string", &other)),
    }
}

/// A JSON boolean.
pub(super) fn boolean(value: &Value, path: &FieldPath<'_>) -> Result<bool, JsonDecodeError> {
    value
        .as_bool()
        .ok_or_else(|| JsonDecodeError::wrong_type(path, "a boolean", value))
}

/// An id in hex, either case; the empty string is empty bytes. The length is not checked.
pub(super) fn hex_bytes(value: &Value, path: &FieldPath<'_>) -> Result<Vec<u8>, JsonDecodeError> {
    let Value::String(text) = value else {
        return Err(JsonDecodeError::wrong_type(path, "a hex string", value));
    };
    hex::decode(text).map_err(|cause| JsonDecodeError::InvalidHex {
        path: path.to_string(),
        cause,
    })
}

/// Bytes in base64, standard or URL-safe alphabet, padded or not.
pub(super) fn base64_bytes(
    value: &Value,
    path: &FieldPath<'_>,
) -> Result<Vec<u8>, JsonDecodeError> {
    let Value::String(text) = value else {
        return Err(JsonDecodeError::wrong_type(path, "a base64 string", value));
    };

    // The two alphabets differ only in two characters, so either one in the text picks it.
    let engine = if text.contains(['-', '_']) {
        &BASE64_URL_SAFE
    } else {
        &BASE64_STANDARD
    };
    engine
        .decode(text)
        .map_err(|cause| JsonDecodeError::InvalidBase64 {
            path: path.to_string(),
            cause,
        })
}

/// A `fixed64`/`uint64` field such as `startTimeUnixNano`.
pub(super) fn uint64(value: &Value, path: &FieldPath<'_>) -> Result<u64, JsonDecodeError> {
    integer(value, path, "an unsigned 64-bit integer")
}

/// An `int64` field such as `intValue`.
pub(super) fn int64(value: &Value, path: &FieldPath<'_>) -> Result<i64, JsonDecodeError> {
    integer(value, path, "a signed 64-bit integer")
}

/// A `fixed32`/`uint32` field such as `flags` or `droppedAttributesCount`.
pub(super) fn uint32(value: &Value, path: &FieldPath<'_>) -> Result<u32, JsonDecodeError> {
    integer(value, path, "an unsigned 32-bit integer")
}

/// An `int32` field such as `keyStrindex`.
pub(super) fn int32(value: &Value, path: &FieldPath<'_>) -> Result<i32, JsonDecodeError> {
    integer(value, path, "a signed 32-bit integer")
}

/// An enum field: its number, or one of its names as `from_name` knows them.
///
/// Numbers the enum does not define are kept, as proto3 enums are open.
pub(super) fn enumeration(
    value: &Value,
    path: &FieldPath<'_>,
    from_name: fn(&str) -> Option<i32>,
    known: &'static str,
) -> Result<i32, JsonDecodeError> {
    match value {
        Value::Number(_) => int32(value, path),
        Value::String(text) => match from_name(text) {
            Some(number) => Ok(number),
            None if text
                .bytes()
                .all(|byte| byte.is_ascii_digit() || byte == b'-') =>
            {
                int32(value, path)
            }
            None => Err(JsonDecodeError::unknown_enum_name(path, text, known)),
        },
        other => Err(JsonDecodeError::wrong_type(
            path,
            "an integer or enum name",
            other,
        )),
    }
}

/// A `double` field: a number, or a string holding a number or a non-finite value's name.
pub(super) fn double(value: &Value, path: &FieldPath<'_>) -> Result<f64, JsonDecodeError> {
    match value {
        // Without serde_json's `arbitrary_precision`, every number has an `f64` reading.
        Value::Number(number) => number
            .as_f64()
            .ok_or_else(|| JsonDecodeError::invalid_double(path, value)),
        Value::String(text) => match text.as_str() {
            "NaN" => Ok(f64::NAN),
            "Infinity" => Ok(f64::INFINITY),
            "-Infinity" => Ok(f64::NEG_INFINITY),
            // Rust's parser also takes `inf` and `nan`, and overflows to infinity; proto3 JSON
            // spells non-finite values only in the three ways above.
            other => match other.parse::<f64>() {
                Ok(parsed) if parsed.is_finite() => Ok(parsed),
                _ => Err(JsonDecodeError::invalid_double(path, value)),
            },
        },
        other => Err(JsonDecodeError::wrong_type(path, "a number", other)),
    }
}

/// An integer of type `T` from a JSON number or a string of digits.
///
/// Numbers written with a fraction or exponent (`1e3`, `5.0`) are accepted when their value is
/// whole, as proto3 JSON parsers do; strings must be plain decimal integers.
fn integer<T>(
    value: &Value,
    path: &FieldPath<'_>,
    expected: &'static str,
) -> Result<T, JsonDecodeError>
where
    T: TryFrom<i128> + std::str::FromStr,
{
    let invalid = || JsonDecodeError::invalid_integer(path, value, expected);
    match value {
        Value::Number(number) => {
            let wide = if let Some(unsigned) = number.as_u64() {
                i128::from(unsigned)
            } else if let Some(signed) = number.as_i64() {
                i128::from(signed)
            } else {
                whole_float(number.as_f64().ok_or_else(invalid)?).ok_or_else(invalid)?
            };
            T::try_from(wide).map_err(|_| invalid())
        }
        Value::String(text) => text.parse::<T>().map_err(|_| invalid()),
        other => Err(JsonDecodeError::wrong_type(path, "an integer", other)),
    }
}

/// The float as an integer when it is whole and small enough to convert exactly.
fn whole_float(float: f64) -> Option<i128> {
    let is_whole = float.is_finite() && float.fract() == 0.0;
    if !is_whole || float.abs() > INTEGRAL_FLOAT_LIMIT {
        return None;
    }
    // Exact: the value is whole and at most 2^64 in magnitude, well inside i128.
    Some(float as i128)
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::{
        FieldPath, base64_bytes, boolean, double, enumeration, hex_bytes, int32, int64, string,
        uint32, uint64,
    };
    use crate::otlp_json::error::JsonDecodeError;

    fn at<T>(
        read: impl Fn(&Value, &FieldPath<'_>) -> Result<T, JsonDecodeError>,
        value: Value,
    ) -> Result<T, String> {
        let root = FieldPath::Root;
        read(&value, &root.field("x")).map_err(|error| error.to_string())
    }

    fn span_kind(name: &str) -> Option<i32> {
        (name == "SPAN_KIND_SERVER").then_some(2)
    }

    fn kind(value: &Value, path: &FieldPath<'_>) -> Result<i32, JsonDecodeError> {
        enumeration(value, path, span_kind, "SPAN_KIND_SERVER")
    }

    #[test]
    fn sixty_four_bit_integers_are_read_from_numbers_and_strings() {
        assert_eq!(
            at(uint64, json!(1_700_000_000_123_456_789_u64)),
            Ok(1_700_000_000_123_456_789)
        );
        assert_eq!(at(uint64, json!("18446744073709551615")), Ok(u64::MAX));
        assert_eq!(at(int64, json!("-9223372036854775808")), Ok(i64::MIN));
        assert_eq!(at(int64, json!(-42)), Ok(-42));
        assert_eq!(at(int64, json!(1e3)), Ok(1000));
    }

    #[test]
    fn thirty_two_bit_integers_are_read_from_numbers_and_digit_strings() {
        assert_eq!(at(uint32, json!(7)), Ok(7));
        assert_eq!(at(uint32, json!("4294967295")), Ok(u32::MAX));
        assert_eq!(at(int32, json!("-5")), Ok(-5));
    }

    #[test]
    fn integers_out_of_range_or_fractional_are_refused() {
        assert_eq!(
            at(uint32, json!(4_294_967_296_u64)),
            Err("invalid integer in x: 4294967296 is not an unsigned 32-bit integer".to_owned())
        );
        assert_eq!(
            at(uint64, json!(-1)),
            Err("invalid integer in x: -1 is not an unsigned 64-bit integer".to_owned())
        );
        assert_eq!(
            at(int64, json!(1.5)),
            Err("invalid integer in x: 1.5 is not a signed 64-bit integer".to_owned())
        );
        assert_eq!(
            at(uint64, json!("12abc")),
            Err("invalid integer in x: \"12abc\" is not an unsigned 64-bit integer".to_owned())
        );
        assert!(at(int64, json!("9223372036854775808")).is_err());
        assert!(at(uint64, json!(1e20)).is_err());
        assert!(at(uint64, json!("")).is_err());
    }

    #[test]
    fn integers_of_the_wrong_json_type_are_refused() {
        assert_eq!(
            at(uint64, json!(true)),
            Err("wrong type for x: expected an integer, found a boolean".to_owned())
        );
        assert!(at(int32, json!([1])).is_err());
    }

    #[test]
    fn enums_take_numbers_names_and_digit_strings() {
        assert_eq!(at(kind, json!(2)), Ok(2));
        assert_eq!(at(kind, json!("SPAN_KIND_SERVER")), Ok(2));
        assert_eq!(at(kind, json!("3")), Ok(3));
        assert_eq!(at(kind, json!(99)), Ok(99), "unknown numbers are kept");
    }

    #[test]
    fn enums_refuse_unknown_names_and_other_types() {
        assert_eq!(
            at(kind, json!("SERVER")),
            Err("unknown enum name in x: \"SERVER\", expected one of SPAN_KIND_SERVER".to_owned())
        );
        assert_eq!(
            at(kind, json!({})),
            Err("wrong type for x: expected an integer or enum name, found an object".to_owned())
        );
        assert!(at(kind, json!(1.5)).is_err());
    }

    #[test]
    fn doubles_take_numbers_and_non_finite_names() {
        assert_eq!(at(double, json!(1.25)), Ok(1.25));
        assert_eq!(at(double, json!(3)), Ok(3.0));
        assert_eq!(at(double, json!("2.5")), Ok(2.5));
        assert_eq!(at(double, json!("Infinity")), Ok(f64::INFINITY));
        assert_eq!(at(double, json!("-Infinity")), Ok(f64::NEG_INFINITY));
        assert!(at(double, json!("NaN")).unwrap().is_nan());
    }

    #[test]
    fn doubles_refuse_other_spellings() {
        assert_eq!(
            at(double, json!("inf")),
            Err(
                "invalid number in x: \"inf\" is not a number, \"NaN\", \"Infinity\" or \
                 \"-Infinity\""
                    .to_owned()
            )
        );
        assert!(at(double, json!("nan")).is_err());
        assert!(at(double, json!("1e999")).is_err());
        assert!(at(double, json!(false)).is_err());
    }

    #[test]
    fn hex_ids_are_case_insensitive_and_may_be_empty() {
        assert_eq!(at(hex_bytes, json!("0aFf")), Ok(vec![0x0a, 0xff]));
        assert_eq!(at(hex_bytes, json!("")), Ok(vec![]));
    }

    #[test]
    fn hex_ids_of_any_length_are_returned_raw() {
        assert_eq!(at(hex_bytes, json!("01020304")), Ok(vec![1, 2, 3, 4]));
    }

    #[test]
    fn bad_hex_is_refused_with_the_reason() {
        assert_eq!(
            at(hex_bytes, json!("zz")),
            Err("invalid hex in x: Invalid character 'z' at position 0".to_owned())
        );
        assert_eq!(
            at(hex_bytes, json!("abc")),
            Err("invalid hex in x: Odd number of digits".to_owned())
        );
        assert_eq!(
            at(hex_bytes, json!(12)),
            Err("wrong type for x: expected a hex string, found a number".to_owned())
        );
    }

    #[test]
    fn base64_takes_both_alphabets_with_or_without_padding() {
        let bytes = vec![0xfb, 0xff, 0xbf, 0x01];
        assert_eq!(at(base64_bytes, json!("+/+/AQ==")), Ok(bytes.clone()));
        assert_eq!(at(base64_bytes, json!("+/+/AQ")), Ok(bytes.clone()));
        assert_eq!(at(base64_bytes, json!("-_-_AQ==")), Ok(bytes.clone()));
        assert_eq!(at(base64_bytes, json!("-_-_AQ")), Ok(bytes));
        assert_eq!(at(base64_bytes, json!("")), Ok(vec![]));
    }

    #[test]
    fn bad_base64_is_refused() {
        assert!(at(base64_bytes, json!("a+b_")).is_err(), "mixed alphabets");
        assert!(at(base64_bytes, json!("abc!")).is_err());
        assert!(at(base64_bytes, json!("a")).is_err());
        assert_eq!(
            at(base64_bytes, json!([])),
            Err("wrong type for x: expected a base64 string, found an array".to_owned())
        );
    }

    #[test]
    fn strings_and_booleans_must_have_their_json_type() {
        let root = FieldPath::Root;
        let path = root.field("x");
        assert_eq!(string(json!("é"), &path).unwrap(), "é");
        assert!(string(json!(1), &path).is_err());
        assert_eq!(at(boolean, json!(true)), Ok(true));
        assert_eq!(
            at(boolean, json!("true")),
            Err("wrong type for x: expected a boolean, found a string".to_owned())
        );
    }
}
