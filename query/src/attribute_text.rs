//! Attribute values as text, the way Jaeger tag filters and the Jaeger JSON model
//! show them.

use opentelemetry_proto::tonic::common::v1::{AnyValue, any_value::Value};
use serde_json::Value as Json;

/// The text form of an attribute value: strings as they are, numbers and booleans in
/// their usual notation, bytes as hex, arrays and maps as compact JSON of their
/// values with the values' own types (`[true,false]`, `[1,2]`, `{"k":"v"}`).
pub fn attribute_text(value: Option<&AnyValue>) -> String {
    match attribute_json(value) {
        Json::String(text) => text,
        Json::Null => String::new(),
        other => other.to_string(),
    }
}

/// The JSON form of an attribute value, keeping its type.
pub fn attribute_json(value: Option<&AnyValue>) -> Json {
    let Some(value) = value.and_then(|v| v.value.as_ref()) else {
        return Json::Null;
    };
    match value {
        Value::StringValue(s) => Json::String(s.clone()),
        Value::BoolValue(b) => Json::Bool(*b),
        Value::IntValue(i) => Json::from(*i),
        Value::DoubleValue(d) => serde_json::Number::from_f64(*d)
            .map_or_else(|| Json::String(d.to_string()), Json::Number),
        Value::BytesValue(bytes) => Json::String(hex::encode(bytes)),
        Value::ArrayValue(array) => Json::Array(
            array
                .values
                .iter()
                .map(|v| attribute_json(Some(v)))
                .collect(),
        ),
        Value::KvlistValue(list) => Json::Object(
            list.values
                .iter()
                .map(|kv| (kv.key.clone(), attribute_json(kv.value.as_ref())))
                .collect(),
        ),
        Value::StringValueStrindex(index) => Json::String(format!("strindex:{index}")),
    }
}

#[cfg(test)]
mod tests {
    use opentelemetry_proto::tonic::common::v1::ArrayValue;

    use super::*;

    fn any(value: Value) -> AnyValue {
        AnyValue { value: Some(value) }
    }

    #[test]
    fn arrays_keep_their_element_types() {
        let bools = any(Value::ArrayValue(ArrayValue {
            values: vec![any(Value::BoolValue(true)), any(Value::BoolValue(false))],
        }));
        assert_eq!(attribute_text(Some(&bools)), "[true,false]");
        let mixed = any(Value::ArrayValue(ArrayValue {
            values: vec![any(Value::IntValue(3)), any(Value::StringValue("a".into()))],
        }));
        assert_eq!(attribute_text(Some(&mixed)), "[3,\"a\"]");
        assert_eq!(
            attribute_text(Some(&any(Value::StringValue("plain".into())))),
            "plain"
        );
        assert_eq!(attribute_text(None), "");
    }
}
