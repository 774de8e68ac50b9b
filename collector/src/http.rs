//! The OTLP/HTTP receiver: `POST /v1/traces` with protobuf or JSON bodies, plain or
//! gzip.

use std::io::Read;

use axum::Router;
use axum::body::{Body, to_bytes};
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use http::{HeaderMap, HeaderValue, StatusCode, header};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse;
use prost::Message;

use crate::error::{ErrorKind, IngestError};
use crate::ingest::Ingestor;
use crate::otlp_json;

const PROTOBUF: &str = "application/x-protobuf";
const JSON: &str = "application/json";
/// Seconds a client is asked to wait before retrying after an overload answer.
const RETRY_AFTER_SECONDS: &str = "1";

/// `google.rpc.Status`, the body of an OTLP/HTTP error answer.
#[derive(Clone, PartialEq, prost::Message)]
struct RpcStatus {
    #[prost(int32, tag = "1")]
    code: i32,
    #[prost(string, tag = "2")]
    message: String,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Format {
    Protobuf,
    Json,
}

/// The router serving `POST /v1/traces`.
pub fn http_router(ingestor: Ingestor) -> Router {
    Router::new()
        .route("/v1/traces", post(export))
        .with_state(ingestor)
}

async fn export(State(ingestor): State<Ingestor>, headers: HeaderMap, body: Body) -> Response {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let essence = content_type.split(';').next().unwrap_or_default().trim();
    let format = match essence.to_ascii_lowercase().as_str() {
        PROTOBUF => Format::Protobuf,
        JSON => Format::Json,
        _ => {
            let error = IngestError::Unsupported {
                what: "content type",
                value: format!("{content_type:?}"),
                hint: "use application/x-protobuf or application/json",
            };
            return error_response(Format::Json, &error);
        }
    };
    match handle(&ingestor, &headers, body, format).await {
        Ok(response) => success_response(format, &response),
        Err(error) => {
            if error.kind() != ErrorKind::Unavailable {
                tracing::debug!(%error, "OTLP/HTTP request refused");
            }
            error_response(format, &error)
        }
    }
}

async fn handle(
    ingestor: &Ingestor,
    headers: &HeaderMap,
    body: Body,
    format: Format,
) -> Result<ExportTraceServiceResponse, IngestError> {
    let limit = ingestor.max_request_bytes();
    let too_large = IngestError::TooLarge { limit_bytes: limit };
    let body = to_bytes(body, limit).await.map_err(|_| too_large)?;

    let encoding = headers
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("identity")
        .trim()
        .to_ascii_lowercase();
    let body = match encoding.as_str() {
        "identity" | "" => body,
        "gzip" => gunzip(&body, limit)?.into(),
        other => {
            return Err(IngestError::Unsupported {
                what: "content encoding",
                value: other.to_string(),
                hint: "use gzip, or send the body uncompressed",
            });
        }
    };

    match format {
        Format::Protobuf => ingestor.export_encoded(body, "http").await,
        Format::Json => {
            let request = otlp_json::decode_export_request(&body)
                .map_err(|e| IngestError::Decode(e.to_string()))?;
            ingestor.export(request, None, "http").await
        }
    }
}

/// Decompresses a gzip body, refusing output beyond `limit` bytes.
fn gunzip(body: &[u8], limit: usize) -> Result<Vec<u8>, IngestError> {
    let mut out = Vec::with_capacity(body.len() * 4);
    let decoder = flate2::read::GzDecoder::new(body);
    decoder
        .take(limit as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| IngestError::Decode(format!("gzip body: {e}")))?;
    if out.len() > limit {
        return Err(IngestError::TooLarge { limit_bytes: limit });
    }
    Ok(out)
}

fn success_response(format: Format, response: &ExportTraceServiceResponse) -> Response {
    match format {
        Format::Protobuf => {
            ([(header::CONTENT_TYPE, PROTOBUF)], response.encode_to_vec()).into_response()
        }
        Format::Json => {
            let body = match &response.partial_success {
                Some(partial) => serde_json::json!({
                    "partialSuccess": {
                        "rejectedSpans": partial.rejected_spans.to_string(),
                        "errorMessage": partial.error_message,
                    }
                }),
                None => serde_json::json!({}),
            };
            ([(header::CONTENT_TYPE, JSON)], body.to_string()).into_response()
        }
    }
}

fn error_response(format: Format, error: &IngestError) -> Response {
    let kind = error.kind();
    let status: StatusCode = kind.http_status();
    let rpc = RpcStatus {
        code: kind.grpc_code() as i32,
        message: error.to_string(),
    };
    let mut response = match format {
        Format::Protobuf => (
            status,
            [(header::CONTENT_TYPE, PROTOBUF)],
            rpc.encode_to_vec(),
        )
            .into_response(),
        Format::Json => {
            let body = serde_json::json!({"code": rpc.code, "message": rpc.message});
            (status, [(header::CONTENT_TYPE, JSON)], body.to_string()).into_response()
        }
    };
    if kind == ErrorKind::Unavailable {
        response.headers_mut().insert(
            header::RETRY_AFTER,
            HeaderValue::from_static(RETRY_AFTER_SECONDS),
        );
    }
    response
}
