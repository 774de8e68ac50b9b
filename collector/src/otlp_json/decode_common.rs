//! Decoding the messages OTLP shares across signals: resources, scopes, attributes and values.

use opentelemetry_proto::tonic::common::v1::any_value::Value as Variant;
use opentelemetry_proto::tonic::common::v1::{
    AnyValue, ArrayValue, EntityRef, InstrumentationScope, KeyValue, KeyValueList,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use serde_json::Value;

use super::error::JsonDecodeError;
use super::path::FieldPath;
use super::scalar::{base64_bytes, boolean, double, int32, int64, string, uint32};
use super::shape::{fields, repeated};

/// Decodes a `Resource`: its attributes, dropped count and entity references.
pub(super) fn resource(value: Value, path: &FieldPath<'_>) -> Result<Resource, JsonDecodeError> {
    let mut resource = Resource::default();
    for (key, value) in fields(value, path)? {
        match key.as_str() {
            "attributes" => {
                resource.attributes = repeated(value, &path.field("attributes"), key_value)?;
            }
            "droppedAttributesCount" | "dropped_attributes_count" => {
                let path = path.field("droppedAttributesCount");
                resource.dropped_attributes_count = uint32(&value, &path)?;
            }
            "entityRefs" | "entity_refs" => {
                resource.entity_refs = repeated(value, &path.field("entityRefs"), entity_ref)?;
            }
            _ => {}
        }
    }
    Ok(resource)
}

/// Decodes an `EntityRef` of a resource.
fn entity_ref(value: Value, path: &FieldPath<'_>) -> Result<EntityRef, JsonDecodeError> {
    let mut entity = EntityRef::default();
    for (key, value) in fields(value, path)? {
        match key.as_str() {
            "schemaUrl" | "schema_url" => {
                entity.schema_url = string(value, &path.field("schemaUrl"))?;
            }
            "type" => entity.r#type = string(value, &path.field("type"))?,
            "idKeys" | "id_keys" => {
                entity.id_keys = repeated(value, &path.field("idKeys"), string)?;
            }
            "descriptionKeys" | "description_keys" => {
                let path = path.field("descriptionKeys");
                entity.description_keys = repeated(value, &path, string)?;
            }
            _ => {}
        }
    }
    Ok(entity)
}

/// Decodes an `InstrumentationScope`.
pub(super) fn scope(
    value: Value,
    path: &FieldPath<'_>,
) -> Result<InstrumentationScope, JsonDecodeError> {
    let mut scope = InstrumentationScope::default();
    for (key, value) in fields(value, path)? {
        match key.as_str() {
            "name" => scope.name = string(value, &path.field("name"))?,
            "version" => scope.version = string(value, &path.field("version"))?,
            "attributes" => {
                scope.attributes = repeated(value, &path.field("attributes"), key_value)?;
            }
            "droppedAttributesCount" | "dropped_attributes_count" => {
                let path = path.field("droppedAttributesCount");
                scope.dropped_attributes_count = uint32(&value, &path)?;
            }
            _ => {}
        }
    }
    Ok(scope)
}

/// Decodes one attribute. A missing `value` stays `None`; `"value": {}` is an empty value.
pub(super) fn key_value(value: Value, path: &FieldPath<'_>) -> Result<KeyValue, JsonDecodeError> {
    let mut pair = KeyValue::default();
    for (key, value) in fields(value, path)? {
        match key.as_str() {
            "key" => pair.key = string(value, &path.field("key"))?,
            "value" => pair.value = Some(any_value(value, &path.field("value"))?),
            "keyStrindex" | "key_strindex" => {
                pair.key_strindex = int32(&value, &path.field("keyStrindex"))?;
            }
            _ => {}
        }
    }
    Ok(pair)
}

/// Decodes an `AnyValue`, which sets at most one of its alternatives; `{}` sets none.
///
/// Recursion through arrays and lists is bounded by the parser's nesting limit.
fn any_value(value: Value, path: &FieldPath<'_>) -> Result<AnyValue, JsonDecodeError> {
    // Find the one alternative first, so that a second one is refused before any decoding.
    let mut chosen: Option<(Alternative, Value)> = None;
    for (key, value) in fields(value, path)? {
        let Some(alternative) = Alternative::from_key(&key) else {
            continue;
        };
        if let Some((first, _)) = &chosen {
            return Err(JsonDecodeError::ConflictingValues {
                path: path.to_string(),
                first: first.json_name(),
                second: alternative.json_name(),
            });
        }
        chosen = Some((alternative, value));
    }
    let Some((alternative, value)) = chosen else {
        return Ok(AnyValue { value: None });
    };

    let path = path.field(alternative.json_name());
    let variant = match alternative {
        Alternative::String => Variant::StringValue(string(value, &path)?),
        Alternative::Bool => Variant::BoolValue(boolean(&value, &path)?),
        Alternative::Int => Variant::IntValue(int64(&value, &path)?),
        Alternative::Double => Variant::DoubleValue(double(&value, &path)?),
        Alternative::Array => Variant::ArrayValue(array_value(value, &path)?),
        Alternative::Kvlist => Variant::KvlistValue(kvlist_value(value, &path)?),
        Alternative::Bytes => Variant::BytesValue(base64_bytes(&value, &path)?),
        Alternative::StringStrindex => Variant::StringValueStrindex(int32(&value, &path)?),
    };
    Ok(AnyValue {
        value: Some(variant),
    })
}

/// Decodes the `{"values": [...]}` of an `arrayValue`.
fn array_value(value: Value, path: &FieldPath<'_>) -> Result<ArrayValue, JsonDecodeError> {
    let mut array = ArrayValue::default();
    for (key, value) in fields(value, path)? {
        if key == "values" {
            array.values = repeated(value, &path.field("values"), any_value)?;
        }
    }
    Ok(array)
}

/// Decodes the `{"values": [...]}` of a `kvlistValue`.
fn kvlist_value(value: Value, path: &FieldPath<'_>) -> Result<KeyValueList, JsonDecodeError> {
    let mut list = KeyValueList::default();
    for (key, value) in fields(value, path)? {
        if key == "values" {
            list.values = repeated(value, &path.field("values"), key_value)?;
        }
    }
    Ok(list)
}

/// The alternatives of `AnyValue`'s `oneof`.
#[derive(Clone, Copy)]
enum Alternative {
    String,
    Bool,
    Int,
    Double,
    Array,
    Kvlist,
    Bytes,
    StringStrindex,
}

impl Alternative {
    /// The alternative a JSON key names, in either spelling.
    fn from_key(key: &str) -> Option<Self> {
        let alternative = match key {
            "stringValue" | "string_value" => Self::String,
            "boolValue" | "bool_value" => Self::Bool,
            "intValue" | "int_value" => Self::Int,
            "doubleValue" | "double_value" => Self::Double,
            "arrayValue" | "array_value" => Self::Array,
            "kvlistValue" | "kvlist_value" => Self::Kvlist,
            "bytesValue" | "bytes_value" => Self::Bytes,
            "stringValueStrindex" | "string_value_strindex" => Self::StringStrindex,
            _ => return None,
        };
        Some(alternative)
    }

    /// The lowerCamelCase name, for paths in error messages.
    fn json_name(self) -> &'static str {
        match self {
            Self::String => "stringValue",
            Self::Bool => "boolValue",
            Self::Int => "intValue",
            Self::Double => "doubleValue",
            Self::Array => "arrayValue",
            Self::Kvlist => "kvlistValue",
            Self::Bytes => "bytesValue",
            Self::StringStrindex => "stringValueStrindex",
        }
    }
}

#[cfg(test)]
mod tests {
    use opentelemetry_proto::tonic::common::v1::any_value::Value as Variant;
    use opentelemetry_proto::tonic::common::v1::{AnyValue, ArrayValue, KeyValue, KeyValueList};
    use serde_json::{Value, json};

    use super::{FieldPath, any_value, key_value, resource, scope};

    fn decode_value(json: Value) -> Result<Option<Variant>, String> {
        let root = FieldPath::Root;
        any_value(json, &root.field("value"))
            .map(|value| value.value)
            .map_err(|error| error.to_string())
    }

    fn string_value(text: &str) -> AnyValue {
        AnyValue {
            value: Some(Variant::StringValue(text.to_owned())),
        }
    }

    #[test]
    fn scalar_values_decode_to_their_variant() {
        assert_eq!(
            decode_value(json!({"stringValue": "a"})),
            Ok(Some(Variant::StringValue("a".into())))
        );
        assert_eq!(
            decode_value(json!({"boolValue": false})),
            Ok(Some(Variant::BoolValue(false)))
        );
        assert_eq!(
            decode_value(json!({"intValue": "-7"})),
            Ok(Some(Variant::IntValue(-7)))
        );
        assert_eq!(
            decode_value(json!({"intValue": 7})),
            Ok(Some(Variant::IntValue(7)))
        );
        assert_eq!(
            decode_value(json!({"doubleValue": 0.5})),
            Ok(Some(Variant::DoubleValue(0.5)))
        );
        assert_eq!(
            decode_value(json!({"bytesValue": "AAE="})),
            Ok(Some(Variant::BytesValue(vec![0, 1])))
        );
        assert_eq!(
            decode_value(json!({"stringValueStrindex": 3})),
            Ok(Some(Variant::StringValueStrindex(3)))
        );
    }

    #[test]
    fn snake_case_alternatives_are_accepted() {
        assert_eq!(
            decode_value(json!({"int_value": "1"})),
            Ok(Some(Variant::IntValue(1)))
        );
        assert_eq!(
            decode_value(json!({"kvlist_value": {"values": []}})),
            Ok(Some(Variant::KvlistValue(KeyValueList::default())))
        );
    }

    #[test]
    fn an_empty_object_is_a_value_with_no_variant() {
        assert_eq!(decode_value(json!({})), Ok(None));
        assert_eq!(decode_value(json!({"stringValue": null})), Ok(None));
        assert_eq!(decode_value(json!({"somethingElse": 1})), Ok(None));
    }

    #[test]
    fn nested_arrays_and_lists_decode_recursively() {
        let json = json!({"arrayValue": {"values": [
            {"stringValue": "x"},
            {"kvlistValue": {"values": [{"key": "k", "value": {"arrayValue": {}}}]}},
            {}
        ]}});

        let expected = Variant::ArrayValue(ArrayValue {
            values: vec![
                string_value("x"),
                AnyValue {
                    value: Some(Variant::KvlistValue(KeyValueList {
                        values: vec![KeyValue {
                            key: "k".into(),
                            value: Some(AnyValue {
                                value: Some(Variant::ArrayValue(ArrayValue::default())),
                            }),
                            key_strindex: 0,
                        }],
                    })),
                },
                AnyValue { value: None },
            ],
        });
        assert_eq!(decode_value(json), Ok(Some(expected)));
    }

    #[test]
    fn two_alternatives_are_refused() {
        let error = decode_value(json!({"intValue": 1, "stringValue": "1"})).unwrap_err();

        assert!(
            error.starts_with("conflicting values in value: both "),
            "unexpected message: {error}"
        );
        assert!(
            error.contains("intValue") && error.contains("stringValue"),
            "{error}"
        );
    }

    #[test]
    fn errors_inside_nested_values_carry_the_full_path() {
        let json = json!({"arrayValue": {"values": [{}, {"kvlistValue": {"values": [
            {"key": "k", "value": {"intValue": "ten"}}
        ]}}]}});

        assert_eq!(
            decode_value(json),
            Err(
                "invalid integer in value.arrayValue.values[1].kvlistValue.values[0].value\
                 .intValue: \"ten\" is not a signed 64-bit integer"
                    .to_owned()
            )
        );
    }

    #[test]
    fn a_key_value_without_value_keeps_none() {
        let root = FieldPath::Root;

        let pair = key_value(json!({"key": "k"}), &root).unwrap();
        assert_eq!(pair.value, None);
        let pair = key_value(json!({"key": "k", "value": {}}), &root).unwrap();
        assert_eq!(pair.value, Some(AnyValue { value: None }));
        let pair = key_value(json!({"key": "k", "key_strindex": "4"}), &root).unwrap();
        assert_eq!(pair.key_strindex, 4);
    }

    #[test]
    fn resources_and_scopes_decode_every_field() {
        let root = FieldPath::Root;
        let json = json!({
            "attributes": [{"key": "service.name", "value": {"stringValue": "cart"}}],
            "droppedAttributesCount": 2,
            "entityRefs": [{"schemaUrl": "s", "type": "service", "idKeys": ["service.name"],
                            "description_keys": ["d"]}]
        });

        let decoded = resource(json, &root).unwrap();

        assert_eq!(decoded.attributes[0].value, Some(string_value("cart")));
        assert_eq!(decoded.dropped_attributes_count, 2);
        assert_eq!(decoded.entity_refs[0].schema_url, "s");
        assert_eq!(decoded.entity_refs[0].r#type, "service");
        assert_eq!(
            decoded.entity_refs[0].id_keys,
            vec!["service.name".to_owned()]
        );
        assert_eq!(
            decoded.entity_refs[0].description_keys,
            vec!["d".to_owned()]
        );

        let json = json!({"name": "lib", "version": "1.0", "dropped_attributes_count": "3",
                          "attributes": [{"key": "a"}]});
        let decoded = scope(json, &root).unwrap();
        assert_eq!(
            (decoded.name.as_str(), decoded.version.as_str()),
            ("lib", "1.0")
        );
        assert_eq!(decoded.dropped_attributes_count, 3);
        assert_eq!(decoded.attributes.len(), 1);
    }

    #[test]
    fn entity_ref_keys_must_be_strings() {
        let root = FieldPath::Root;
        let json = json!({"entityRefs": [{"idKeys": ["a", 1]}]});

        let error = resource(json, &root).unwrap_err();

        assert_eq!(
            error.to_string(),
            "wrong type for entityRefs[0].idKeys[1]: expected a string, found a number"
        );
    }
}
