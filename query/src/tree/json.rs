//! The contract's JSON for a call tree, flattened below [`MAX_JSON_DEPTH`].

use serde_json::{Map, Value};

use super::{CallTree, NodeId, TreeWarning, WarningKind};
use crate::span_view::SpanKind;

/// Node depth at which [`CallTree::to_json`] stops nesting and flattens the subtree.
///
/// serde_json refuses to parse documents nested deeper than 128 arrays and objects, and
/// building, printing or dropping a nested `serde_json::Value` recurses once per level.
/// A node costs two levels (its object and its `children` array) below the envelope's
/// two, so a node at depth 60 whose flattened descendants sit in its `children` reaches
/// level 126 and still parses.
pub const MAX_JSON_DEPTH: usize = 60;

impl CallTree {
    /// The contract's JSON for `/api/v1/traces/{traceID}/tree`.
    ///
    /// `{"trace_id", "roots": [node...], "warnings": [...], "num_spans"}`, where a node is
    /// `{"span_id", "parent_span_id", "service", "workload", "version", "pod", "name",
    /// "kind", "start_unix_nano", "duration_ms", "self_ms", "critical_self_ms", "error",
    /// "critical_path", "children"}`, placeholders add `"placeholder": true`, and shifted
    /// nodes add `"clock_shift_ms"`.
    ///
    /// `parent_span_id` is the tree parent's id: for the SERVER half of a shared Zipkin
    /// id that is the CLIENT half, whose id is its own.
    ///
    /// A node at depth [`MAX_JSON_DEPTH`] lists its whole subtree, depth-first, as
    /// childless entries of its `children`; each keeps its `parent_span_id`, so a client
    /// can rebuild the nesting, and a `depth_cap` warning names the node.
    pub fn to_json(&self) -> Value {
        // Children come after their parent in `nodes`, so walking backwards builds every
        // child's value before its parent needs it.
        let mut built: Vec<Option<Value>> = Vec::new();
        built.resize_with(self.nodes.len(), || None);
        let mut cap_warnings = Vec::new();
        for (id, node) in self.nodes().rev() {
            if node.depth > MAX_JSON_DEPTH {
                continue;
            }
            let children: Vec<Value> = if node.depth == MAX_JSON_DEPTH && !node.children.is_empty()
            {
                let flat: Vec<Value> = self
                    .descendants(id)
                    .skip(1)
                    .map(|below| self.node_json(below, Vec::new()))
                    .collect();
                cap_warnings.push(depth_cap_warning(node.span_id, flat.len()));
                flat
            } else {
                node.children
                    .iter()
                    .map(|child| {
                        built[child.0]
                            .take()
                            .expect("children are built before parents")
                    })
                    .collect()
            };
            built[id.0] = Some(self.node_json(id, children));
        }

        let roots: Vec<Value> = self
            .roots
            .iter()
            .map(|root| built[root.0].take().expect("every root is at depth 0"))
            .collect();
        let warnings: Vec<Value> = self
            .warnings
            .iter()
            .chain(cap_warnings.iter().rev())
            .map(TreeWarning::to_json)
            .collect();
        let mut envelope = Map::with_capacity(4);
        envelope.insert("trace_id".into(), Value::String(hex::encode(self.trace_id)));
        envelope.insert("roots".into(), Value::Array(roots));
        envelope.insert("warnings".into(), Value::Array(warnings));
        envelope.insert("num_spans".into(), Value::from(self.num_spans));
        Value::Object(envelope)
    }

    /// One node's object. Built field by field: `json!` would serialize `children`
    /// through a reference, copying every subtree once per level above it.
    fn node_json(&self, id: NodeId, children: Vec<Value>) -> Value {
        let node = self.node(id);
        let hex_id = |span_id: [u8; 8]| Value::String(hex::encode(span_id));
        let text = |field: &Option<String>| field.clone().map_or(Value::Null, Value::String);
        let mut object = Map::with_capacity(18);
        object.insert("span_id".into(), hex_id(node.span_id));
        let parent_span_id = node.parent.map(|parent| hex_id(self.node(parent).span_id));
        object.insert(
            "parent_span_id".into(),
            parent_span_id.unwrap_or(Value::Null),
        );
        match &node.span {
            Some(span) => {
                let placement = &span.placement;
                object.insert("service".into(), Value::String(placement.service.clone()));
                object.insert("workload".into(), text(&placement.workload));
                object.insert("version".into(), text(&placement.version));
                object.insert("pod".into(), text(&placement.pod));
                object.insert("name".into(), Value::String(span.name.clone()));
                object.insert("kind".into(), Value::from(kind_name(span.kind)));
            }
            None => {
                for field in ["service", "workload", "version", "pod", "name", "kind"] {
                    object.insert(field.into(), Value::Null);
                }
                object.insert("placeholder".into(), Value::Bool(true));
            }
        }
        object.insert("start_unix_nano".into(), Value::from(node.start_unix_nano));
        object.insert(
            "duration_ms".into(),
            Value::from(nanos_to_ms(node.duration_nanos())),
        );
        object.insert("self_ms".into(), Value::from(nanos_to_ms(node.self_nanos)));
        let critical_self_ms = nanos_to_ms(node.critical_self_nanos);
        object.insert("critical_self_ms".into(), Value::from(critical_self_ms));
        object.insert("error".into(), Value::Bool(node.error()));
        object.insert("critical_path".into(), Value::Bool(node.critical_path));
        if node.clock_shift_nanos != 0 {
            let shift_ms = nanos_to_ms(node.clock_shift_nanos);
            object.insert("clock_shift_ms".into(), Value::from(shift_ms));
        }
        object.insert("children".into(), Value::Array(children));
        Value::Object(object)
    }
}

fn depth_cap_warning(span_id: [u8; 8], num_flattened: usize) -> TreeWarning {
    let message = format!(
        "span {} is at depth {MAX_JSON_DEPTH}; its {num_flattened} descendant(s) are listed \
         flat in its children, each with its parent_span_id",
        hex::encode(span_id)
    );
    TreeWarning::new(WarningKind::DepthCap, span_id, message)
}

fn kind_name(kind: SpanKind) -> &'static str {
    match kind {
        SpanKind::Unspecified => "unspecified",
        SpanKind::Internal => "internal",
        SpanKind::Server => "server",
        SpanKind::Client => "client",
        SpanKind::Producer => "producer",
        SpanKind::Consumer => "consumer",
    }
}

pub(super) fn nanos_to_ms(nanos: i64) -> f64 {
    nanos as f64 / 1e6
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use serde_json::Value;

    use crate::span_view::{SpanKind, SpanView};
    use crate::tree::test_spans::{EPOCH, TRACE, id, on, span};
    use crate::tree::{CallTree, MAX_JSON_DEPTH};

    #[test]
    fn json_follows_the_contract_shape() {
        let spans = vec![
            on(span(1, None, 0, 100), "pod-a", SpanKind::Server),
            on(span(2, Some(1), -20, 40), "pod-b", SpanKind::Server),
            span(3, Some(42), 10, 20),
        ];
        let tree = CallTree::assemble(spans).unwrap();
        let json = tree.to_json();

        assert_eq!(json["trace_id"], hex::encode(TRACE));
        assert_eq!(json["num_spans"], 3);
        let root = &json["roots"][0];
        for field in [
            "span_id",
            "parent_span_id",
            "service",
            "workload",
            "version",
            "pod",
            "name",
            "kind",
            "start_unix_nano",
            "duration_ms",
            "self_ms",
            "error",
            "critical_path",
            "children",
        ] {
            assert!(root.get(field).is_some(), "node lacks {field}");
        }
        assert_eq!(root["span_id"], hex::encode(id(1)));
        assert_eq!(root["kind"], "server");
        assert_eq!(root["duration_ms"], 100.0);
        assert_eq!(root["self_ms"], 40.0);
        assert_eq!(root["critical_path"], true);
        let child = &root["children"][0];
        assert_eq!(child["parent_span_id"], hex::encode(id(1)));
        assert_eq!(child["clock_shift_ms"], 20.0);
        let placeholder = &json["roots"][1];
        assert_eq!(placeholder["placeholder"], true);
        assert_eq!(placeholder["span_id"], hex::encode(id(42)));
        let warning_kinds: Vec<&str> = json["warnings"]
            .as_array()
            .unwrap()
            .iter()
            .map(|w| w["kind"].as_str().unwrap())
            .collect();
        assert_eq!(warning_kinds, vec!["orphan", "clock_skew"]);
        assert_eq!(json["warnings"][1]["delta_ms"], 20.0);
    }

    #[test]
    fn deep_chain_of_100k_spans_assembles_renders_and_drops() {
        let num_spans: i64 = 100_000;
        let mut spans: Vec<SpanView> = (0..num_spans)
            .map(|depth| {
                let parent = (depth > 0).then_some(depth as u64);
                let (start, end) = (depth, 2 * num_spans - depth);
                let pod = if depth % 2 == 0 { "pod-a" } else { "pod-b" };
                let mut chain_span = on(
                    span(depth as u64 + 1, parent, 0, 0),
                    pod,
                    SpanKind::Internal,
                );
                chain_span.start_unix_nano = EPOCH + start * 10;
                chain_span.end_unix_nano = EPOCH + end * 10;
                chain_span
            })
            .collect();
        spans.reverse();

        let started = Instant::now();
        let tree = CallTree::assemble(spans).unwrap();
        let assembled = started.elapsed();
        let json = tree.to_json();
        let text = serde_json::to_string(&json).unwrap();
        let rendered = started.elapsed() - assembled;
        println!("deep 100k: assemble {assembled:?}, to_json + to_string {rendered:?}");

        assert!(assembled.as_secs_f64() < 1.0, "assembly took {assembled:?}");
        assert!(tree.warnings().is_empty());
        assert_eq!(
            tree.nodes().last().unwrap().1.depth(),
            num_spans as usize - 1
        );
        assert_eq!(tree.critical_path().count(), num_spans as usize);
        let parsed: Value =
            serde_json::from_str(&text).expect("capped JSON parses with serde_json");
        let mut capped = &parsed["roots"][0];
        for _ in 0..MAX_JSON_DEPTH {
            capped = &capped["children"][0];
        }
        let flat = capped["children"].as_array().unwrap();
        assert_eq!(flat.len(), num_spans as usize - 1 - MAX_JSON_DEPTH);
        assert_eq!(flat[1]["parent_span_id"], flat[0]["span_id"]);
        assert_eq!(parsed["warnings"][0]["kind"], "depth_cap");
        drop((parsed, json, tree));
    }
}
