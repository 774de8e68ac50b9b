//! The span as the analysis code sees it: one owned row per span, decoded from the
//! columnar store only for the traces an analysis looks at.

use serde::Serialize;

/// OTLP span kind, as its protobuf enum value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SpanKind {
    /// `SPAN_KIND_UNSPECIFIED` (0).
    Unspecified,
    /// `SPAN_KIND_INTERNAL` (1).
    Internal,
    /// `SPAN_KIND_SERVER` (2).
    Server,
    /// `SPAN_KIND_CLIENT` (3).
    Client,
    /// `SPAN_KIND_PRODUCER` (4).
    Producer,
    /// `SPAN_KIND_CONSUMER` (5).
    Consumer,
}

impl SpanKind {
    /// Maps the OTLP enum value; unknown values read as `Unspecified`.
    pub fn from_otlp(value: i32) -> Self {
        match value {
            1 => Self::Internal,
            2 => Self::Server,
            3 => Self::Client,
            4 => Self::Producer,
            5 => Self::Consumer,
            _ => Self::Unspecified,
        }
    }

    /// True for the kinds that start an edge: CLIENT and PRODUCER.
    pub fn is_caller(self) -> bool {
        matches!(self, Self::Client | Self::Producer)
    }

    /// True for the kinds that end an edge: SERVER and CONSUMER.
    pub fn is_callee(self) -> bool {
        matches!(self, Self::Server | Self::Consumer)
    }
}

/// Where a span ran: the mesh coordinates of its resource.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize)]
pub struct Placement {
    /// `service.name` (`unknown_service` when absent).
    pub service: String,
    /// `k8s.namespace.name`.
    pub namespace: Option<String>,
    /// Deployment, StatefulSet, DaemonSet or Job name, in that order of preference.
    pub workload: Option<String>,
    /// `service.version`.
    pub version: Option<String>,
    /// `k8s.pod.name`.
    pub pod: Option<String>,
}

/// One span with the fields that trees, the graph, demarcation and the judge use.
#[derive(Debug, Clone, PartialEq)]
pub struct SpanView {
    /// 16-byte trace id.
    pub trace_id: [u8; 16],
    /// 8-byte span id.
    pub span_id: [u8; 8],
    /// Parent span id; `None` for a root span.
    pub parent_span_id: Option<[u8; 8]>,
    /// Span name (the operation).
    pub name: String,
    /// Span kind.
    pub kind: SpanKind,
    /// Start time, Unix nanoseconds.
    pub start_unix_nano: i64,
    /// End time, Unix nanoseconds.
    pub end_unix_nano: i64,
    /// True when the span's status is ERROR.
    pub error: bool,
    /// The resource's mesh coordinates.
    pub placement: Placement,
    /// For CLIENT and PRODUCER spans: the uninstrumented peer's name, from the first of
    /// `peer.service`, `db.namespace` (or `db.name`), `db.system`,
    /// `messaging.destination.name`, `server.address` that is present.
    pub peer: Option<String>,
}

impl SpanView {
    /// Duration in nanoseconds, never negative.
    pub fn duration_nanos(&self) -> i64 {
        (self.end_unix_nano - self.start_unix_nano).max(0)
    }

    /// Duration in floating milliseconds.
    pub fn duration_ms(&self) -> f64 {
        self.duration_nanos() as f64 / 1e6
    }

    /// The host a span's clock belongs to, for clock-skew decisions: the pod when known,
    /// else the service.
    pub fn clock_domain(&self) -> &str {
        self.placement
            .pod
            .as_deref()
            .unwrap_or(&self.placement.service)
    }
}

impl SpanKind {
    /// The name Jaeger uses in its `span.kind` tag (empty for unspecified).
    pub fn jaeger_name(self) -> &'static str {
        match self {
            Self::Unspecified => "",
            Self::Internal => "internal",
            Self::Server => "server",
            Self::Client => "client",
            Self::Producer => "producer",
            Self::Consumer => "consumer",
        }
    }
}
