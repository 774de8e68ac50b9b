//! Mesh coordinates read from resource attributes, and the virtual peer a span names.

use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value::Value};

/// The service name used when a resource has no `service.name`, as the specification
/// says.
pub const UNKNOWN_SERVICE: &str = "unknown_service";

/// The workload attributes in order of preference, with the kind each names.
const WORKLOAD_KEYS: [(&str, &str); 4] = [
    ("k8s.deployment.name", "deployment"),
    ("k8s.statefulset.name", "statefulset"),
    ("k8s.daemonset.name", "daemonset"),
    ("k8s.job.name", "job"),
];

/// The span attributes that name a virtual peer, first present wins.
pub const PEER_KEYS: [&str; 6] = [
    "peer.service",
    "db.namespace",
    "db.name",
    "db.system",
    "messaging.destination.name",
    "server.address",
];

/// A resource's place in the mesh.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResourceMesh<'a> {
    /// `service.name`, or [`UNKNOWN_SERVICE`].
    pub service: &'a str,
    /// `k8s.namespace.name`.
    pub namespace: Option<&'a str>,
    /// Workload name.
    pub workload: Option<&'a str>,
    /// `deployment`, `statefulset`, `daemonset` or `job`.
    pub workload_kind: Option<&'static str>,
    /// `k8s.pod.name`.
    pub pod: Option<&'a str>,
    /// `service.version`.
    pub version: Option<&'a str>,
}

impl<'a> ResourceMesh<'a> {
    /// Reads the mesh coordinates from resource attributes.
    pub fn from_attributes(attributes: &'a [KeyValue]) -> Self {
        let mut mesh = ResourceMesh {
            service: UNKNOWN_SERVICE,
            ..Default::default()
        };
        let mut workload_rank = usize::MAX;
        for kv in attributes {
            let Some(value) = string_value(kv.value.as_ref()) else {
                continue;
            };
            match kv.key.as_str() {
                "service.name" => mesh.service = value,
                "service.version" => mesh.version = Some(value),
                "k8s.namespace.name" => mesh.namespace = Some(value),
                "k8s.pod.name" => mesh.pod = Some(value),
                key => {
                    let found = WORKLOAD_KEYS.iter().position(|(k, _)| *k == key);
                    if let Some(rank) = found.filter(|rank| *rank < workload_rank) {
                        workload_rank = rank;
                        mesh.workload = Some(value);
                        mesh.workload_kind = Some(WORKLOAD_KEYS[rank].1);
                    }
                }
            }
        }
        mesh
    }
}

/// The string inside an attribute value, if it is a string.
pub(crate) fn string_value(value: Option<&AnyValue>) -> Option<&str> {
    match value?.value.as_ref()? {
        Value::StringValue(s) => Some(s.as_str()),
        _ => None,
    }
}

/// The virtual peer named by a span's attributes: the first of [`PEER_KEYS`] present.
pub fn virtual_peer(attributes: &[KeyValue]) -> Option<&str> {
    let mut best: Option<(usize, &str)> = None;
    for kv in attributes {
        let Some(rank) = PEER_KEYS.iter().position(|k| *k == kv.key) else {
            continue;
        };
        let Some(value) = string_value(kv.value.as_ref()).filter(|v| !v.is_empty()) else {
            continue;
        };
        if best.is_none_or(|(r, _)| rank < r) {
            best = Some((rank, value));
        }
    }
    best.map(|(_, value)| value)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kv(key: &str, value: &str) -> KeyValue {
        KeyValue {
            key: key.to_string(),
            value: Some(AnyValue {
                value: Some(Value::StringValue(value.to_string())),
            }),
            ..Default::default()
        }
    }

    #[test]
    fn workload_prefers_deployment_over_statefulset() {
        let attrs = vec![
            kv("k8s.statefulset.name", "db"),
            kv("k8s.deployment.name", "web"),
            kv("service.name", "shop"),
        ];
        let mesh = ResourceMesh::from_attributes(&attrs);
        assert_eq!(mesh.workload, Some("web"));
        assert_eq!(mesh.workload_kind, Some("deployment"));
        assert_eq!(mesh.service, "shop");
    }

    #[test]
    fn missing_service_name_is_unknown_service() {
        assert_eq!(ResourceMesh::from_attributes(&[]).service, UNKNOWN_SERVICE);
    }

    #[test]
    fn peer_follows_contract_order() {
        let attrs = vec![kv("server.address", "10.0.0.1"), kv("db.system", "redis")];
        assert_eq!(virtual_peer(&attrs), Some("redis"));
        let attrs = vec![kv("db.name", "orders"), kv("peer.service", "payments")];
        assert_eq!(virtual_peer(&attrs), Some("payments"));
        assert_eq!(virtual_peer(&[]), None);
    }
}
