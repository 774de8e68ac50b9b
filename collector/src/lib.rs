//! OTLP receivers for tracegate: gRPC and HTTP, protobuf and JSON, plain or gzip.
//!
//! ```text
//! gRPC TraceService/Export ─┐
//! HTTP POST /v1/traces ─────┼─► decode ─► Ingestor::export ─► validate + columnarize
//!   (protobuf | JSON, gzip) ┘                                  └─► Store::append (fsync)
//! ```
//!
//! A success answer is sent only once every accepted span is durable; spans with bad
//! ids are refused one by one through `partial_success`, and undecodable bodies as a
//! whole with `INVALID_ARGUMENT` / HTTP 400.

mod error;
mod grpc;
mod http;
mod ingest;
pub mod otlp_json;

pub use error::{ErrorKind, IngestError};
pub use grpc::{GrpcTraceService, grpc_service};
pub use http::http_router;
pub use ingest::{IngestStats, Ingestor, RequestLatencies};
