//! The OTLP/gRPC receiver: `opentelemetry.proto.collector.trace.v1.TraceService/Export`.

use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use tonic::codec::CompressionEncoding;
use tonic::{Request, Response, Status};

use crate::ingest::Ingestor;

/// The gRPC trace service.
struct GrpcTraceService {
    ingestor: Ingestor,
}

#[tonic::async_trait]
impl TraceService for GrpcTraceService {
    async fn export(
        &self,
        request: Request<ExportTraceServiceRequest>,
    ) -> Result<Response<ExportTraceServiceResponse>, Status> {
        let response = self
            .ingestor
            .export(request.into_inner(), None, "grpc")
            .await
            .map_err(|e| e.to_status())?;
        Ok(Response::new(response))
    }
}

/// The tonic service for OTLP/gRPC trace export, gzip accepted, with the ingestor's
/// request size limit.
pub fn grpc_service(ingestor: Ingestor) -> TraceServiceServer<impl TraceService> {
    let limit = ingestor.max_request_bytes();
    TraceServiceServer::new(GrpcTraceService { ingestor })
        .accept_compressed(CompressionEncoding::Gzip)
        .send_compressed(CompressionEncoding::Gzip)
        .max_decoding_message_size(limit)
}
