//! The Arrow schema of a span row, shared by the head segment, the Parquet files and
//! every query.
//!
//! Ids are fixed-size binary; repeated strings (names, mesh coordinates, semantic
//! attributes) are dictionary-encoded; everything a lossless read-back needs and no
//! query filters on (other attributes, events, links, the resource and scope) is kept
//! as protobuf bytes.

use std::sync::{Arc, LazyLock};

use arrow::datatypes::{DataType, Field, Schema, SchemaRef};

/// Column names, so that builders and readers agree without string literals.
pub mod col {
    /// 16-byte trace id.
    pub const TRACE_ID: &str = "trace_id";
    /// 8-byte span id.
    pub const SPAN_ID: &str = "span_id";
    /// 8-byte parent span id, null for roots.
    pub const PARENT_SPAN_ID: &str = "parent_span_id";
    /// W3C trace state, null when empty.
    pub const TRACE_STATE: &str = "trace_state";
    /// Span flags.
    pub const FLAGS: &str = "flags";
    /// Span name.
    pub const NAME: &str = "name";
    /// Span kind as the OTLP enum value.
    pub const KIND: &str = "kind";
    /// Start, Unix nanoseconds.
    pub const START: &str = "start_unix_nano";
    /// End, Unix nanoseconds.
    pub const END: &str = "end_unix_nano";
    /// Duration in nanoseconds: end minus start, wrapping. Segment files store this
    /// instead of [`END`] (see [`segment_schema`](super::segment_schema)).
    pub const DURATION: &str = "duration_nano";
    /// Status code as the OTLP enum value.
    pub const STATUS_CODE: &str = "status_code";
    /// Status message, null when empty.
    pub const STATUS_MESSAGE: &str = "status_message";
    /// `service.name`.
    pub const SERVICE: &str = "service";
    /// `k8s.namespace.name`.
    pub const NAMESPACE: &str = "namespace";
    /// Workload name (deployment, statefulset, daemonset or job).
    pub const WORKLOAD: &str = "workload";
    /// Which kind of workload: `deployment`, `statefulset`, `daemonset` or `job`.
    pub const WORKLOAD_KIND: &str = "workload_kind";
    /// `k8s.pod.name`.
    pub const POD: &str = "pod";
    /// `service.version`.
    pub const VERSION: &str = "version";
    /// `http.request.method`.
    pub const HTTP_METHOD: &str = "http_method";
    /// `http.route`.
    pub const HTTP_ROUTE: &str = "http_route";
    /// `http.response.status_code`.
    pub const HTTP_STATUS_CODE: &str = "http_status_code";
    /// `rpc.system`.
    pub const RPC_SYSTEM: &str = "rpc_system";
    /// `rpc.service`.
    pub const RPC_SERVICE: &str = "rpc_service";
    /// `rpc.method`.
    pub const RPC_METHOD: &str = "rpc_method";
    /// `rpc.grpc.status_code`.
    pub const RPC_STATUS_CODE: &str = "rpc_status_code";
    /// `peer.service`.
    pub const PEER_SERVICE: &str = "peer_service";
    /// `server.address`.
    pub const SERVER_ADDRESS: &str = "server_address";
    /// `db.system`.
    pub const DB_SYSTEM: &str = "db_system";
    /// `db.namespace`.
    pub const DB_NAMESPACE: &str = "db_namespace";
    /// `messaging.system`.
    pub const MESSAGING_SYSTEM: &str = "messaging_system";
    /// `messaging.destination.name`.
    pub const MESSAGING_DESTINATION: &str = "messaging_destination";
    /// Derived: the virtual peer a CLIENT or PRODUCER span names (see `contract.md`).
    pub const PEER: &str = "peer";
    /// Protobuf `Span` holding only the attributes without a column, events and links.
    pub const EXTRA_PROTO: &str = "extra_proto";
    /// Dropped attribute count.
    pub const DROPPED_ATTRIBUTES: &str = "dropped_attributes_count";
    /// Dropped event count.
    pub const DROPPED_EVENTS: &str = "dropped_events_count";
    /// Dropped link count.
    pub const DROPPED_LINKS: &str = "dropped_links_count";
    /// Protobuf `Resource` of the span.
    pub const RESOURCE_PROTO: &str = "resource_proto";
    /// Resource schema URL.
    pub const RESOURCE_SCHEMA_URL: &str = "resource_schema_url";
    /// Protobuf `InstrumentationScope` of the span.
    pub const SCOPE_PROTO: &str = "scope_proto";
    /// Scope schema URL.
    pub const SCOPE_SCHEMA_URL: &str = "scope_schema_url";
}

/// The string columns filled from span attributes, with the attribute key each reads.
pub const STRING_ATTRIBUTE_COLUMNS: [(&str, &str); 11] = [
    (col::HTTP_METHOD, "http.request.method"),
    (col::HTTP_ROUTE, "http.route"),
    (col::RPC_SYSTEM, "rpc.system"),
    (col::RPC_SERVICE, "rpc.service"),
    (col::RPC_METHOD, "rpc.method"),
    (col::PEER_SERVICE, "peer.service"),
    (col::SERVER_ADDRESS, "server.address"),
    (col::DB_SYSTEM, "db.system"),
    (col::DB_NAMESPACE, "db.namespace"),
    (col::MESSAGING_SYSTEM, "messaging.system"),
    (col::MESSAGING_DESTINATION, "messaging.destination.name"),
];

/// The integer columns filled from span attributes, with the attribute key each reads.
pub const INT_ATTRIBUTE_COLUMNS: [(&str, &str); 2] = [
    (col::HTTP_STATUS_CODE, "http.response.status_code"),
    (col::RPC_STATUS_CODE, "rpc.grpc.status_code"),
];

fn dict(name: &str) -> Field {
    Field::new(
        name,
        DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8)),
        true,
    )
}

fn binary_dict(name: &str) -> Field {
    Field::new(
        name,
        DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Binary)),
        true,
    )
}

static SPAN_SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
    let mut fields = vec![
        Field::new(col::TRACE_ID, DataType::FixedSizeBinary(16), false),
        Field::new(col::SPAN_ID, DataType::FixedSizeBinary(8), false),
        Field::new(col::PARENT_SPAN_ID, DataType::FixedSizeBinary(8), true),
        Field::new(col::TRACE_STATE, DataType::Utf8, true),
        Field::new(col::FLAGS, DataType::UInt32, false),
        dict(col::NAME),
        Field::new(col::KIND, DataType::Int8, false),
        Field::new(col::START, DataType::Int64, false),
        Field::new(col::END, DataType::Int64, false),
        Field::new(col::STATUS_CODE, DataType::Int8, false),
        Field::new(col::STATUS_MESSAGE, DataType::Utf8, true),
        dict(col::SERVICE),
        dict(col::NAMESPACE),
        dict(col::WORKLOAD),
        dict(col::WORKLOAD_KIND),
        dict(col::POD),
        dict(col::VERSION),
    ];
    for (name, _) in &STRING_ATTRIBUTE_COLUMNS {
        fields.push(dict(name));
    }
    for (name, _) in &INT_ATTRIBUTE_COLUMNS {
        fields.push(Field::new(*name, DataType::Int32, true));
    }
    fields.extend([
        dict(col::PEER),
        Field::new(col::EXTRA_PROTO, DataType::Binary, true),
        Field::new(col::DROPPED_ATTRIBUTES, DataType::UInt32, false),
        Field::new(col::DROPPED_EVENTS, DataType::UInt32, false),
        Field::new(col::DROPPED_LINKS, DataType::UInt32, false),
        binary_dict(col::RESOURCE_PROTO),
        dict(col::RESOURCE_SCHEMA_URL),
        binary_dict(col::SCOPE_PROTO),
        dict(col::SCOPE_SCHEMA_URL),
    ]);
    Arc::new(Schema::new(fields))
});

/// The schema of every span batch.
pub fn span_schema() -> SchemaRef {
    Arc::clone(&SPAN_SCHEMA)
}

static SEGMENT_SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
    let fields: Vec<Field> = SPAN_SCHEMA
        .fields()
        .iter()
        .map(|field| {
            if field.name() == col::END {
                Field::new(col::DURATION, DataType::Int64, false)
            } else {
                field.as_ref().clone()
            }
        })
        .collect();
    Arc::new(Schema::new(fields))
});

/// The schema of the Parquet segment files: the span schema with the end replaced by
/// the duration, in the same place. The end itself is a nanosecond timestamp with
/// random low bytes, so it cost as much as the start (3.6 bytes per span on the demo
/// mesh); the duration is a few milliseconds, whose high bytes are all zero (3.1).
/// Segment readers turn it back into the end: `end = start + duration`, wrapping,
/// which gives back every end exactly.
pub fn segment_schema() -> SchemaRef {
    Arc::clone(&SEGMENT_SCHEMA)
}
