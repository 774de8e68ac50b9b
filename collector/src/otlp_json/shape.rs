//! Reading JSON objects as proto messages and JSON arrays as repeated fields.

use serde_json::{Map, Value};

use super::error::JsonDecodeError;
use super::path::FieldPath;

/// The fields of the message at `path`, leaving out those whose value is `null`.
///
/// In proto3 JSON a `null` field means the field's default, and every decoder starts from the
/// default message, so skipping them here gives every field that meaning at once.
///
/// # Errors
///
/// Fails when the value is not an object, or when it holds one field under both of its names
/// (`traceId` and `trace_id`): which one should win is not defined, so neither does.
pub(super) fn fields(
    value: Value,
    path: &FieldPath<'_>,
) -> Result<impl Iterator<Item = (String, Value)>, JsonDecodeError> {
    let Value::Object(object) = value else {
        return Err(JsonDecodeError::wrong_type(path, "an object", &value));
    };
    refuse_duplicate_spellings(&object, path)?;
    Ok(object.into_iter().filter(|(_, value)| !value.is_null()))
}

/// The elements of the repeated field at `path`, each decoded by `element`.
///
/// # Errors
///
/// Fails when the value is not an array or when an element fails to decode. Elements may not
/// be `null`: unlike a field, an element has no "absent" to fall back on.
pub(super) fn repeated<T>(
    value: Value,
    path: &FieldPath<'_>,
    element: fn(Value, &FieldPath<'_>) -> Result<T, JsonDecodeError>,
) -> Result<Vec<T>, JsonDecodeError> {
    let Value::Array(values) = value else {
        return Err(JsonDecodeError::wrong_type(path, "an array", &value));
    };
    let mut decoded = Vec::with_capacity(values.len());
    for (index, value) in values.into_iter().enumerate() {
        decoded.push(element(value, &path.index(index))?);
    }
    Ok(decoded)
}

/// Fails when a snake_case key and its lowerCamelCase twin are both in the object.
///
/// Only keys with an underscore are looked at, so well-formed OTLP/JSON pays for one byte scan
/// per key.
fn refuse_duplicate_spellings(
    object: &Map<String, Value>,
    path: &FieldPath<'_>,
) -> Result<(), JsonDecodeError> {
    for key in object.keys().filter(|key| key.contains('_')) {
        let camel = lower_camel(key);
        if camel != *key && object.contains_key(&camel) {
            return Err(JsonDecodeError::DuplicateField {
                path: path.to_string(),
                field: camel,
            });
        }
    }
    Ok(())
}

/// `start_time_unix_nano` as `startTimeUnixNano`, the way protoc derives JSON names.
fn lower_camel(snake: &str) -> String {
    let mut camel = String::with_capacity(snake.len());
    let mut upper_next = false;
    for character in snake.chars() {
        if character == '_' {
            upper_next = true;
        } else if upper_next {
            camel.push(character.to_ascii_uppercase());
            upper_next = false;
        } else {
            camel.push(character);
        }
    }
    camel
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::{FieldPath, fields, lower_camel, repeated};
    use crate::otlp_json::error::JsonDecodeError;

    fn number(value: Value, path: &FieldPath<'_>) -> Result<u64, JsonDecodeError> {
        value
            .as_u64()
            .ok_or_else(|| JsonDecodeError::wrong_type(path, "a number", &value))
    }

    #[test]
    fn camel_case_follows_protoc() {
        assert_eq!(lower_camel("start_time_unix_nano"), "startTimeUnixNano");
        assert_eq!(lower_camel("kind"), "kind");
        assert_eq!(lower_camel("key_strindex"), "keyStrindex");
    }

    #[test]
    fn null_fields_are_left_out() {
        let object = json!({"name": "a", "kind": null});

        let kept: Vec<_> = fields(object, &FieldPath::Root).unwrap().collect();

        assert_eq!(kept, vec![("name".to_owned(), json!("a"))]);
    }

    #[test]
    fn a_field_under_both_names_is_refused() {
        let root = FieldPath::Root;
        let object = json!({"traceId": "01", "trace_id": "02"});

        let error = fields(object, &root.field("spans").index(2)).err().unwrap();

        assert_eq!(
            error.to_string(),
            "duplicate field in spans[2]: traceId is given both in lowerCamelCase and in snake_case"
        );
    }

    #[test]
    fn snake_case_alone_is_not_a_duplicate() {
        let object = json!({"trace_id": "01", "name": "x"});

        assert_eq!(fields(object, &FieldPath::Root).unwrap().count(), 2);
    }

    #[test]
    fn non_objects_are_refused() {
        let error = fields(json!([1]), &FieldPath::Root).err().unwrap();

        assert_eq!(
            error.to_string(),
            "wrong type for the top-level object: expected an object, found an array"
        );
    }

    #[test]
    fn repeated_elements_get_their_index_in_errors() {
        let root = FieldPath::Root;
        let path = root.field("values");

        assert_eq!(repeated(json!([1, 2]), &path, number).unwrap(), vec![1, 2]);
        let error = repeated(json!([1, null]), &path, number).unwrap_err();
        assert_eq!(
            error.to_string(),
            "wrong type for values[1]: expected a number, found null"
        );
        let error = repeated(json!({}), &path, number).unwrap_err();
        assert_eq!(
            error.to_string(),
            "wrong type for values: expected an array, found an object"
        );
    }
}
