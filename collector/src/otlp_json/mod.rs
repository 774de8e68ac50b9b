//! The OTLP/JSON codec for traces: `ExportTraceServiceRequest` to and from JSON.
//!
//! ```text
//!  POST /v1/traces (application/json)            GET /api/v1/traces/{traceID}
//!        │                                                   ▲
//!        ▼                                                   │
//!  decode_export_request ── ExportTraceServiceRequest ──▶ encode_resource_spans
//!  (path-named errors)        (prost types, as gRPC)       (canonical OTLP/JSON)
//! ```
//!
//! The mapping is proto3 JSON with OTLP's exceptions: trace and span ids are hex rather than
//! base64, and enums are integers. The decoder accepts everything a proto3 JSON parser must
//! (snake_case names, integers as strings, enum names, unknown fields); the encoder writes one
//! canonical form, and decoding that form gives back the request it came from.

mod decode;
mod decode_common;
mod encode;
mod error;
mod path;
mod scalar;
mod shape;

#[cfg(test)]
mod random_request;

pub use decode::decode_export_request;
pub use encode::{encode_export_request, encode_resource_spans};
pub use error::JsonDecodeError;
