//! Suspects: the places where errors or slowdowns start, in the contract's shape.

use serde::Serialize;
use serde_json::{Value, json};

/// Exemplar trace ids per suspect.
pub(super) const MAX_EXEMPLARS: usize = 5;

/// Whether a suspect explains errors or latency.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SuspectKind {
    /// Failing traces start here.
    Error,
    /// Slow traces spend their excess time here.
    Latency,
}

/// How finely a suspect is located.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SuspectLevel {
    /// One pod, while the other pods of its workload are healthy.
    Pod,
    /// One version of a service, while another version is healthy.
    Version,
    /// One workload of a service.
    Workload,
    /// The service as a whole.
    Service,
    /// The calls from a service to a callee or an uninstrumented peer.
    Edge,
}

/// The calls from one service to another service or to a virtual peer node.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct SuspectEdge {
    /// The calling service.
    pub source: String,
    /// The called service, or the virtual peer node (see [`SpanView::peer`]).
    ///
    /// [`SpanView::peer`]: crate::span_view::SpanView::peer
    pub target: String,
}

/// One place where errors or slowdowns start, in the contract's shape.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Suspect {
    /// Errors or latency.
    pub kind: SuspectKind,
    /// The service, or the calling service of an edge.
    pub service: String,
    /// The workload, when the level names it or every blamed span shares it.
    pub workload: Option<String>,
    /// The pod, when the level names it or every blamed span shares it.
    pub pod: Option<String>,
    /// The version, when the level names it or every blamed span shares it.
    pub version: Option<String>,
    /// The operation (span name), when every blamed span shares it.
    pub operation: Option<String>,
    /// For edge suspects, the edge.
    pub edge: Option<SuspectEdge>,
    /// How finely the suspect is located.
    pub level: SuspectLevel,
    /// Share of the window's failing (errors) or slowed (latency) traces explained, 0..1.
    pub score: f64,
    /// Number of traces explained.
    pub traces: usize,
    /// Up to five of those traces, hex; for latency the most slowed first.
    pub exemplar_trace_ids: Vec<String>,
    /// Why, in a sentence, with the numbers behind it.
    pub reason: String,
}

/// The contract's JSON for `/api/v1/demarcation`: `{"suspects": [...]}`.
pub fn suspects_to_json(suspects: &[Suspect]) -> Value {
    json!({ "suspects": suspects })
}

/// The value every item shares, `None` when they differ or one is missing.
pub(super) fn unanimous<'a>(mut values: impl Iterator<Item = Option<&'a str>>) -> Option<String> {
    let first = values.next()??;
    values
        .all(|value| value == Some(first))
        .then(|| first.to_owned())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use crate::demarcation::test_traces::{TraceBuilder, place};
    use crate::demarcation::{demarcate, suspects_to_json};

    #[test]
    fn suspects_serialize_to_the_contract_shape() {
        let orders = place("orders", "orders", "v1", "orders-0");
        let mut builder = TraceBuilder::new(1);
        let root = builder.server(None, &orders, (0.0, 10.0), true);
        builder.peer_call(root, &orders, "postgres", (1.0, 9.0), true);
        let json = suspects_to_json(&demarcate(&[builder.build()], None));

        let suspect = &json["suspects"][0];
        for field in [
            "kind",
            "service",
            "workload",
            "pod",
            "version",
            "operation",
            "edge",
            "level",
            "score",
            "traces",
            "exemplar_trace_ids",
        ] {
            assert!(suspect.get(field).is_some(), "suspect lacks {field}");
        }
        assert_eq!(suspect["kind"], "error");
        assert_eq!(suspect["level"], "edge");
        assert_eq!(
            suspect["edge"],
            json!({"source": "orders", "target": "postgres"})
        );
        assert_eq!(
            suspect["exemplar_trace_ids"][0],
            "00000000000000000000000000000001"
        );
    }
}
