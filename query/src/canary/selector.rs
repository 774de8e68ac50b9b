//! SELECTORs: which spans of a service are the baseline and which the canary.
//!
//! `{"version": "v2"}` picks the resource's `service.version`, `{"workload": "reviews-v2"}`
//! its Kubernetes workload, and `{"attributes": {"key": "value"}}` any resource or span
//! attribute; keys given together must all match.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;
use thiserror::Error;

use crate::span_view::Placement;

/// Why a selector was refused; the message names the field.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{field}: {reason}")]
pub struct SelectorError {
    /// The offending field, as a path such as `canary.attributes.team`.
    pub field: String,
    /// What is wrong with it.
    pub reason: String,
}

/// Picks the spans of one side of a canary comparison.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SpanSelector {
    /// Resource `service.version`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// The resource's workload (Deployment, StatefulSet, DaemonSet or Job name).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub workload: Option<String>,
    /// Resource or span attributes, compared as text (`200`, `true`, `v2`).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub attributes: BTreeMap<String, String>,
}

/// Resource attributes that [`Placement`] carries, by key.
const PLACEMENT_KEYS: [&str; 4] = [
    "service.name",
    "service.version",
    "k8s.namespace.name",
    "k8s.pod.name",
];

impl SpanSelector {
    /// Selects by `service.version`.
    pub fn version(version: impl Into<String>) -> Self {
        Self {
            version: Some(version.into()),
            ..Self::default()
        }
    }

    /// Selects by workload.
    pub fn workload(workload: impl Into<String>) -> Self {
        Self {
            workload: Some(workload.into()),
            ..Self::default()
        }
    }

    /// Parses the API's JSON form; `field` names the selector in errors (`baseline`).
    ///
    /// # Errors
    /// [`SelectorError`] for a value that is not an object, an unknown key, a non-string
    /// version or workload, an attribute value that is not a string, number or boolean, or
    /// a selector that selects nothing in particular (`{}`).
    pub fn from_json(field: &str, value: &Value) -> Result<Self, SelectorError> {
        let error = |path: String, reason: &str| SelectorError {
            field: path,
            reason: reason.to_owned(),
        };
        let Some(object) = value.as_object() else {
            return Err(error(
                field.to_owned(),
                "want an object such as {\"version\": \"v2\"}",
            ));
        };
        let mut selector = Self::default();
        for (key, item) in object {
            let path = format!("{field}.{key}");
            match key.as_str() {
                "version" | "workload" => {
                    let Some(text) = item.as_str().filter(|text| !text.is_empty()) else {
                        return Err(error(path, "want a non-empty string"));
                    };
                    if key == "version" {
                        selector.version = Some(text.to_owned());
                    } else {
                        selector.workload = Some(text.to_owned());
                    }
                }
                "attributes" => {
                    let Some(attributes) = item.as_object() else {
                        return Err(error(path, "want an object of attribute values"));
                    };
                    for (name, value) in attributes {
                        let text = match value {
                            Value::String(text) => text.clone(),
                            Value::Number(number) => number.to_string(),
                            Value::Bool(flag) => flag.to_string(),
                            _ => {
                                return Err(error(
                                    format!("{path}.{name}"),
                                    "want a string, number or boolean",
                                ));
                            }
                        };
                        selector.attributes.insert(name.clone(), text);
                    }
                }
                _ => {
                    return Err(error(
                        path,
                        "unknown selector key: want version, workload or attributes",
                    ));
                }
            }
        }
        if selector.is_empty() {
            return Err(error(
                field.to_owned(),
                "empty selector: give a version, a workload or attributes",
            ));
        }
        Ok(selector)
    }

    /// True when the selector names nothing, and so would select every span.
    pub fn is_empty(&self) -> bool {
        self.version.is_none() && self.workload.is_none() && self.attributes.is_empty()
    }

    /// True when some attribute is asked for that [`Placement`] does not carry, so that
    /// matching needs the stored resource and span attributes.
    pub fn needs_stored_attributes(&self) -> bool {
        self.attributes
            .keys()
            .any(|key| !PLACEMENT_KEYS.contains(&key.as_str()))
    }

    /// Matches a span given its version, workload and a lookup of its attributes (resource
    /// first, then span), which is asked only for the keys in [`SpanSelector::attributes`].
    pub fn matches(
        &self,
        version: Option<&str>,
        workload: Option<&str>,
        mut attribute: impl FnMut(&str) -> Option<String>,
    ) -> bool {
        if self.version.is_some() && self.version.as_deref() != version {
            return false;
        }
        if self.workload.is_some() && self.workload.as_deref() != workload {
            return false;
        }
        self.attributes
            .iter()
            .all(|(key, expected)| attribute(key).as_deref() == Some(expected.as_str()))
    }

    /// Matches a span's placement. Attributes are looked up among those the placement
    /// carries (`service.name`, `service.version`, `k8s.namespace.name`, `k8s.pod.name`);
    /// any other attribute does not match here (see
    /// [`SpanSelector::needs_stored_attributes`]).
    pub fn matches_placement(&self, placement: &Placement) -> bool {
        self.matches(
            placement.version.as_deref(),
            placement.workload.as_deref(),
            |key| placement_attribute(placement, key),
        )
    }
}

/// The value of a resource attribute that [`Placement`] carries.
pub(crate) fn placement_attribute(placement: &Placement, key: &str) -> Option<String> {
    match key {
        "service.name" => Some(placement.service.clone()),
        "service.version" => placement.version.clone(),
        "k8s.namespace.name" => placement.namespace.clone(),
        "k8s.pod.name" => placement.pod.clone(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn placement(version: &str, workload: &str) -> Placement {
        Placement {
            service: "reviews".into(),
            namespace: Some("shop".into()),
            workload: Some(workload.into()),
            version: Some(version.into()),
            pod: Some(format!("{workload}-0")),
        }
    }

    #[test]
    fn parses_the_three_forms() {
        assert_eq!(
            SpanSelector::from_json("canary", &json!({"version": "v2"})).unwrap(),
            SpanSelector::version("v2")
        );
        assert_eq!(
            SpanSelector::from_json("canary", &json!({"workload": "reviews-v2"})).unwrap(),
            SpanSelector::workload("reviews-v2")
        );
        let selector = SpanSelector::from_json(
            "canary",
            &json!({"attributes": {"track": "canary", "shard": 3}}),
        )
        .unwrap();
        assert_eq!(selector.attributes["shard"], "3");
        assert!(selector.needs_stored_attributes());
    }

    #[test]
    fn errors_name_the_field() {
        let cases = [
            (json!("v2"), "baseline: want an object"),
            (json!({}), "baseline: empty selector"),
            (
                json!({"verison": "v1"}),
                "baseline.verison: unknown selector key",
            ),
            (
                json!({"version": 2}),
                "baseline.version: want a non-empty string",
            ),
            (
                json!({"attributes": {"a": [1]}}),
                "baseline.attributes.a: want a string",
            ),
        ];
        for (value, expected) in cases {
            let error = SpanSelector::from_json("baseline", &value).unwrap_err();
            assert!(error.to_string().starts_with(expected), "{error}");
        }
    }

    #[test]
    fn matches_every_key_given() {
        let selector = SpanSelector {
            version: Some("v2".into()),
            workload: Some("reviews-v2".into()),
            attributes: BTreeMap::from([("k8s.namespace.name".into(), "shop".into())]),
        };
        assert!(!selector.needs_stored_attributes());
        assert!(selector.matches_placement(&placement("v2", "reviews-v2")));
        assert!(!selector.matches_placement(&placement("v2", "reviews-v1")));
        assert!(!selector.matches_placement(&placement("v1", "reviews-v2")));
        let other_namespace = Placement {
            namespace: Some("staging".into()),
            ..placement("v2", "reviews-v2")
        };
        assert!(!selector.matches_placement(&other_namespace));
        let unknown_key = SpanSelector {
            attributes: BTreeMap::from([("team".into(), "books".into())]),
            ..SpanSelector::default()
        };
        assert!(!unknown_key.matches_placement(&placement("v2", "reviews-v2")));
    }
}
