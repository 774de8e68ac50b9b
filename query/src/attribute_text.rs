//! Attribute values as text, the way Jaeger tag filters compare them.

use opentelemetry_proto::tonic::common::v1::{AnyValue, any_value::Value};

/// The text form of an attribute value: strings as they are, numbers and booleans in
/// their usual notation, arrays, maps and bytes as compact JSON.
pub fn attribute_text(value: Option<&AnyValue>) -> String {
    let Some(value) = value.and_then(|v| v.value.as_ref()) else {
        return String::new();
    };
    match value {
        Value::StringValue(s) => s.clone(),
        Value::BoolValue(b) => b.to_string(),
        Value::IntValue(i) => i.to_string(),
        Value::DoubleValue(d) => d.to_string(),
        Value::BytesValue(bytes) => hex::encode(bytes),
        Value::ArrayValue(array) => {
            let items: Vec<String> = array
                .values
                .iter()
                .map(|v| attribute_text(Some(v)))
                .collect();
            serde_json::to_string(&items).unwrap_or_default()
        }
        Value::KvlistValue(list) => {
            let map: serde_json::Map<String, serde_json::Value> = list
                .values
                .iter()
                .map(|kv| (kv.key.clone(), attribute_text(kv.value.as_ref()).into()))
                .collect();
            serde_json::Value::Object(map).to_string()
        }
        Value::StringValueStrindex(index) => format!("strindex:{index}"),
    }
}
