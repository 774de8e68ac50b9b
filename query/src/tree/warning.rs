//! The repairs that assembly reports.

use serde_json::{Value, json};

use super::json::nanos_to_ms;

/// What a [`TreeWarning`] reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WarningKind {
    /// Spans whose parent never arrived were attached under a placeholder.
    Orphan,
    /// A subtree was shifted into its parent because their clocks disagree.
    ClockSkew,
    /// Several spans share an id and are not a client/server pair, or a span arrived twice.
    DuplicateSpanId,
    /// Parent links formed a loop, which was cut by turning one span into a root.
    Cycle,
    /// Only from [`CallTree::to_json`]: a subtree deeper than [`MAX_JSON_DEPTH`] was
    /// flattened.
    ///
    /// [`CallTree::to_json`]: crate::tree::CallTree::to_json
    /// [`MAX_JSON_DEPTH`]: crate::tree::MAX_JSON_DEPTH
    DepthCap,
}

impl WarningKind {
    /// The name used in JSON: `orphan`, `clock_skew`, `duplicate_span_id`, `cycle` or
    /// `depth_cap`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Orphan => "orphan",
            Self::ClockSkew => "clock_skew",
            Self::DuplicateSpanId => "duplicate_span_id",
            Self::Cycle => "cycle",
            Self::DepthCap => "depth_cap",
        }
    }
}

/// One repair that assembly made, for the reader of the tree.
#[derive(Debug, Clone, PartialEq)]
pub struct TreeWarning {
    /// What was repaired.
    pub kind: WarningKind,
    /// The span concerned; for orphans, the id of the parent that never arrived.
    pub span_id: [u8; 8],
    /// A sentence for people.
    pub message: String,
    /// For clock skew: how far the subtree moved, in nanoseconds (positive is later).
    pub delta_nanos: Option<i64>,
}

impl TreeWarning {
    pub(super) fn new(kind: WarningKind, span_id: [u8; 8], message: String) -> Self {
        Self {
            kind,
            span_id,
            message,
            delta_nanos: None,
        }
    }

    /// The contract's JSON: `{"kind", "span_id", "message"}`, plus `delta_ms` for clock
    /// skew.
    pub fn to_json(&self) -> Value {
        let mut warning = json!({
            "kind": self.kind.as_str(),
            "span_id": hex::encode(self.span_id),
            "message": self.message,
        });
        if let Some(delta) = self.delta_nanos {
            warning["delta_ms"] = json!(nanos_to_ms(delta));
        }
        warning
    }
}
