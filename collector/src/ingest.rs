//! The protocol-independent ingest step: validate, columnarize, log durably.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use bytes::Bytes;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};

use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTracePartialSuccess, ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use prost::Message;
use tracegate_storage::{Columnarized, Store, columnarize, columnarize_encoded, without_spans};

use crate::error::IngestError;

/// Export request latency by protocol (`grpc`, `http`), from decode to durable.
pub type RequestLatencies = Family<Vec<(String, String)>, Histogram, fn() -> Histogram>;

fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.0005, 2.0, 16))
}

/// Counters of the receivers.
#[derive(Debug)]
pub struct IngestStats {
    /// Export requests handled (any outcome).
    pub requests: AtomicU64,
    /// Requests refused as a whole (malformed, too large, overload).
    pub failed_requests: AtomicU64,
    /// Spans made durable.
    pub spans_accepted: AtomicU64,
    /// Spans refused through partial success.
    pub spans_rejected: AtomicU64,
    /// Request bytes received (after decompression).
    pub bytes_received: AtomicU64,
    /// Export request latencies.
    pub request_seconds: RequestLatencies,
}

impl Default for IngestStats {
    fn default() -> Self {
        Self {
            requests: AtomicU64::default(),
            failed_requests: AtomicU64::default(),
            spans_accepted: AtomicU64::default(),
            spans_rejected: AtomicU64::default(),
            bytes_received: AtomicU64::default(),
            request_seconds: Family::new_with_constructor(latency_histogram),
        }
    }
}

/// Takes decoded export requests into the store. Cheap to clone.
#[derive(Clone)]
pub struct Ingestor {
    store: Store,
    stats: Arc<IngestStats>,
    max_request_bytes: usize,
}

impl Ingestor {
    /// An ingestor writing to `store`, refusing bodies over `max_request_bytes`.
    pub fn new(store: Store, max_request_bytes: usize) -> Self {
        Self {
            store,
            stats: Arc::default(),
            max_request_bytes,
        }
    }

    /// The request size limit in bytes (after decompression).
    pub fn max_request_bytes(&self) -> usize {
        self.max_request_bytes
    }

    /// The receivers' counters.
    pub fn stats(&self) -> &IngestStats {
        &self.stats
    }

    /// The store spans go to.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Validates, columnarizes and durably stores the spans of the protobuf
    /// `ExportTraceServiceRequest` in `raw`, which also becomes the WAL record.
    /// `protocol` labels the latency metric. Returns once every accepted span is synced
    /// to the WAL.
    ///
    /// The spans are read in place into the columns (see
    /// [`tracegate_storage::columnarize_encoded`]); a request that path leaves to prost
    /// (malformed, with rejected spans, ...) is decoded and goes through
    /// [`Ingestor::export`], so the answers are the same either way.
    ///
    /// # Errors
    /// [`IngestError::Decode`] when `raw` is not a valid request (counted in no
    /// statistic, as a receiver's own decode failure); storage failures as
    /// [`Ingestor::export`].
    pub async fn export_encoded(
        &self,
        raw: Bytes,
        protocol: &'static str,
    ) -> Result<ExportTraceServiceResponse, IngestError> {
        let started = Instant::now();
        let Some(columnarized) = columnarize_encoded(&raw) else {
            let request = ExportTraceServiceRequest::decode(&raw[..])
                .map_err(|e| IngestError::Decode(format!("protobuf: {e}")))?;
            return self.export(request, Some(raw), protocol).await;
        };
        self.stats.requests.fetch_add(1, Ordering::Relaxed);
        // Nothing was rejected, so the log record is the request as it came.
        let result = self.store_columnarized(columnarized, |_| raw).await;
        self.finish_request(&result, started, protocol);
        result
    }

    /// Validates, columnarizes and durably stores the spans of `request`. `raw` is the
    /// request's own protobuf encoding when the caller has it, saving a re-encode;
    /// `protocol` labels the latency metric.
    /// Returns once every accepted span is synced to the WAL.
    ///
    /// # Errors
    /// Storage failures; overload is retryable (see [`IngestError::kind`]).
    pub async fn export(
        &self,
        request: ExportTraceServiceRequest,
        raw: Option<Bytes>,
        protocol: &'static str,
    ) -> Result<ExportTraceServiceResponse, IngestError> {
        let started = Instant::now();
        self.stats.requests.fetch_add(1, Ordering::Relaxed);
        let columnarized = columnarize(&request);
        // The log holds exactly the accepted spans, so replay needs no validation
        // decisions of its own.
        let payload = |rejected: &[(usize, usize, usize)]| match raw {
            Some(raw) if rejected.is_empty() => raw,
            _ => without_spans(&request, rejected).encode_to_vec().into(),
        };
        let result = self.store_columnarized(columnarized, payload).await;
        self.finish_request(&result, started, protocol);
        result
    }

    /// Counts a finished request and observes its latency.
    fn finish_request(
        &self,
        result: &Result<ExportTraceServiceResponse, IngestError>,
        started: Instant,
        protocol: &'static str,
    ) {
        if result.is_err() {
            self.stats.failed_requests.fetch_add(1, Ordering::Relaxed);
        }
        let labels = vec![("protocol".to_string(), protocol.to_string())];
        self.stats
            .request_seconds
            .get_or_create(&labels)
            .observe(started.elapsed().as_secs_f64());
    }

    /// Logs and stores the accepted spans, then answers with the partial success of
    /// the rejected ones. `payload` makes the WAL record from the rejected positions.
    async fn store_columnarized(
        &self,
        mut columnarized: Columnarized,
        payload: impl FnOnce(&[(usize, usize, usize)]) -> Bytes,
    ) -> Result<ExportTraceServiceResponse, IngestError> {
        let num_rejected = columnarized.num_rejected;
        let num_accepted = columnarized.num_accepted;

        if let Some(batch) = columnarized.batch.take() {
            let payload = payload(&columnarized.rejected_positions);
            self.stats
                .bytes_received
                .fetch_add(payload.len() as u64, Ordering::Relaxed);
            self.store.append(payload, batch).await?;
        }

        self.stats
            .spans_accepted
            .fetch_add(num_accepted as u64, Ordering::Relaxed);
        self.stats
            .spans_rejected
            .fetch_add(num_rejected as u64, Ordering::Relaxed);
        tracing::debug!(num_accepted, num_rejected, "export request stored");
        let partial_success = (num_rejected > 0).then(|| {
            let mut message = format!("{num_rejected} spans rejected: ");
            message.push_str(&columnarized.rejection_messages.join("; "));
            if columnarized.rejection_messages.len() < num_rejected {
                message.push_str("; ...");
            }
            ExportTracePartialSuccess {
                rejected_spans: i64::try_from(num_rejected).unwrap_or(i64::MAX),
                error_message: message,
            }
        });
        Ok(ExportTraceServiceResponse { partial_success })
    }
}
