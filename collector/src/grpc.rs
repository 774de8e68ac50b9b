//! The OTLP/gRPC receiver: `opentelemetry.proto.collector.trace.v1.TraceService/Export`.
//!
//! The service is wired by hand rather than through the generated server so that its
//! codec can keep each request's protobuf bytes: the spans are read from them in place
//! ([`Ingestor::export_encoded`]), they become the WAL record as they are, with no
//! re-encoding, and an undecodable body is answered `INVALID_ARGUMENT` (the generated
//! codec answers `INTERNAL`).

use std::convert::Infallible;
use std::task::{Context, Poll};

use bytes::{Buf, Bytes};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse;
use prost::Message;
use tonic::codec::{Codec, CompressionEncoding, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::codegen::{BoxFuture, Service, http};
use tonic::server::{Grpc, NamedService, UnaryService};
use tonic::{Request, Response, Status};

use crate::ingest::Ingestor;

/// The gRPC path of the export method.
const EXPORT_PATH: &str = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";

/// The protobuf bytes of an export request, decoded by the ingestor.
struct RawExport {
    raw: Bytes,
}

/// Keeps requests as bytes; encodes responses with prost.
#[derive(Default)]
struct RawExportCodec;

struct RawExportDecoder;

struct ResponseEncoder;

impl Codec for RawExportCodec {
    type Encode = ExportTraceServiceResponse;
    type Decode = RawExport;
    type Encoder = ResponseEncoder;
    type Decoder = RawExportDecoder;

    fn encoder(&mut self) -> Self::Encoder {
        ResponseEncoder
    }

    fn decoder(&mut self) -> Self::Decoder {
        RawExportDecoder
    }
}

impl Decoder for RawExportDecoder {
    type Item = RawExport;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Self::Item>, Self::Error> {
        // Split off tonic's buffer, not copied: the same bytes become the WAL record.
        let raw = src.copy_to_bytes(src.remaining());
        Ok(Some(RawExport { raw }))
    }
}

impl Encoder for ResponseEncoder {
    type Item = ExportTraceServiceResponse;
    type Error = Status;

    fn encode(&mut self, item: Self::Item, dst: &mut EncodeBuf<'_>) -> Result<(), Self::Error> {
        item.encode(dst)
            .map_err(|e| Status::internal(format!("cannot encode the answer: {e}")))
    }
}

/// The unary export method.
struct Export {
    ingestor: Ingestor,
}

impl UnaryService<RawExport> for Export {
    type Response = ExportTraceServiceResponse;
    type Future = BoxFuture<Response<Self::Response>, Status>;

    fn call(&mut self, request: Request<RawExport>) -> Self::Future {
        let ingestor = self.ingestor.clone();
        Box::pin(async move {
            let RawExport { raw } = request.into_inner();
            // An undecodable body is `IngestError::Decode`: INVALID_ARGUMENT, "invalid
            // OTLP request: protobuf: ...".
            let response = ingestor
                .export_encoded(raw, "grpc")
                .await
                .map_err(|e| e.to_status())?;
            Ok(Response::new(response))
        })
    }
}

/// The OTLP/gRPC trace service: gzip accepted, the ingestor's request size limit.
#[derive(Clone)]
pub struct GrpcTraceService {
    ingestor: Ingestor,
}

/// The tonic service for OTLP/gRPC trace export.
pub fn grpc_service(ingestor: Ingestor) -> GrpcTraceService {
    GrpcTraceService { ingestor }
}

impl NamedService for GrpcTraceService {
    const NAME: &'static str = "opentelemetry.proto.collector.trace.v1.TraceService";
}

impl<B> Service<http::Request<B>> for GrpcTraceService
where
    B: tonic::codegen::Body + Send + 'static,
    B::Error: Into<tonic::codegen::StdError> + Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        if request.uri().path() != EXPORT_PATH {
            let path = request.uri().path().to_string();
            return Box::pin(async move {
                let status = Status::unimplemented(format!("no gRPC method {path}"));
                Ok(status.into_http())
            });
        }
        let ingestor = self.ingestor.clone();
        Box::pin(async move {
            let limit = ingestor.max_request_bytes();
            let mut grpc = Grpc::new(RawExportCodec)
                .accept_compressed(CompressionEncoding::Gzip)
                .send_compressed(CompressionEncoding::Gzip)
                .max_decoding_message_size(limit);
            Ok(grpc.unary(Export { ingestor }, request).await)
        })
    }
}
