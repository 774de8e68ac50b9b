//! `tracegate loadgen`: simulated mesh traffic sent to a running collector over real
//! OTLP, at a set rate for a bounded time, with a progress bar and a summary.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use bytes::{BufMut, Bytes};
use indicatif::{ProgressBar, ProgressStyle};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse;
use prost::Message;
use serde::Serialize;
use tokio::sync::Semaphore;
use tonic::client::Grpc;
use tonic::codec::{Codec, CompressionEncoding, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::transport::Channel;

use crate::replay::ReplayPool;
use crate::sim::{Mesh, Scenario, to_request};

/// The gRPC path of the OTLP export method.
const EXPORT_PATH: &str = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";

/// Sends request bodies that are already protobuf; decodes answers with prost.
struct EncodedExportCodec;

/// Writes an encoded body as it is.
struct BodyEncoder;

/// Decodes the export answer.
struct AnswerDecoder;

impl Codec for EncodedExportCodec {
    type Encode = Bytes;
    type Decode = ExportTraceServiceResponse;
    type Encoder = BodyEncoder;
    type Decoder = AnswerDecoder;

    fn encoder(&mut self) -> Self::Encoder {
        BodyEncoder
    }

    fn decoder(&mut self) -> Self::Decoder {
        AnswerDecoder
    }
}

impl Encoder for BodyEncoder {
    type Item = Bytes;
    type Error = tonic::Status;

    fn encode(&mut self, item: Self::Item, dst: &mut EncodeBuf<'_>) -> Result<(), Self::Error> {
        dst.put(item);
        Ok(())
    }
}

impl Decoder for AnswerDecoder {
    type Item = ExportTraceServiceResponse;
    type Error = tonic::Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Self::Item>, Self::Error> {
        ExportTraceServiceResponse::decode(src)
            .map(Some)
            .map_err(|e| tonic::Status::internal(format!("undecodable export answer: {e}")))
    }
}

/// How loadgen talks to the collector.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Protocol {
    /// OTLP/gRPC.
    Grpc,
    /// OTLP/HTTP with protobuf bodies.
    Http,
}

/// Flags of `tracegate loadgen`.
#[derive(Debug, Clone, clap::Args)]
pub struct LoadgenArgs {
    /// Collector address: the OTLP/gRPC one for `--protocol grpc`, the OTLP/HTTP one for
    /// `--protocol http`.
    #[arg(long, default_value = "127.0.0.1:4317")]
    pub endpoint: String,
    /// Transport.
    #[arg(long, value_enum, default_value_t = Protocol::Grpc)]
    pub protocol: Protocol,
    /// Traces per second to send; 0 sends as fast as the collector acknowledges.
    #[arg(long, default_value_t = 200.0)]
    pub rate: f64,
    /// How long to send, e.g. 30s, 2m.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    pub duration: Duration,
    /// Stop after this many traces even if time is left.
    #[arg(long)]
    pub max_traces: Option<u64>,
    /// Fault scenario of the simulated mesh.
    #[arg(long, value_enum, default_value_t = Scenario::Steady)]
    pub scenario: Scenario,
    /// Traces per export request.
    #[arg(long, default_value_t = 20)]
    pub batch: usize,
    /// Export requests in flight at once.
    #[arg(long, default_value_t = 8)]
    pub concurrency: usize,
    /// Compress requests with gzip.
    #[arg(long)]
    pub gzip: bool,
    /// Random seed, for reproducible traffic: two runs with the same seed send the same
    /// trace and span ids.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Print the summary as JSON on stdout.
    #[arg(long)]
    pub json: bool,
    /// No progress bar.
    #[arg(long)]
    pub quiet: bool,
    /// Simulate this many requests up front and replay them round-robin with fresh ids
    /// and timestamps, instead of simulating every request: for throughput tests, where
    /// loadgen should cost the machine as little as possible. 0 simulates every request.
    #[arg(long, default_value_t = 0)]
    pub replay_pool: usize,
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    tracegate_ui_api::parse_duration("duration", text).map_err(|e| e.message)
}

/// What a load run did.
#[derive(Debug, Default, Serialize)]
pub struct LoadReport {
    /// Traces sent.
    pub traces: u64,
    /// Spans sent.
    pub spans: u64,
    /// Spans acknowledged (sent minus rejected, of successful requests).
    pub spans_acknowledged: u64,
    /// Spans the collector refused through partial success.
    pub spans_rejected: u64,
    /// Requests that failed after retries.
    pub failed_requests: u64,
    /// Requests retried after an overload answer.
    pub retries: u64,
    /// Wall time, seconds.
    pub elapsed_seconds: f64,
    /// Acknowledged spans per second.
    pub spans_per_second: f64,
    /// Median request latency, milliseconds.
    pub p50_request_ms: f64,
    /// 99th percentile request latency, milliseconds.
    pub p99_request_ms: f64,
}

#[derive(Default)]
struct Counters {
    acknowledged: AtomicU64,
    rejected: AtomicU64,
    failed: AtomicU64,
    retries: AtomicU64,
    /// Why the latest request failed for good.
    last_failure: std::sync::Mutex<Option<String>>,
}

/// Failed requests, with none acknowledged, after which loadgen gives up: the endpoint is
/// wrong or refuses everything, and sending on would only repeat the same warning.
const FAILURES_BEFORE_GIVING_UP: u64 = 16;

/// One connection to the collector.
#[derive(Clone)]
enum Sender {
    Grpc(Grpc<Channel>),
    Http { url: String, agent: ureq::Agent },
}

/// Outcome of one export: spans rejected, or a retryable / final failure.
enum Outcome {
    Accepted { rejected: u64 },
    Retry(String),
    Failed(String),
}

impl Sender {
    async fn connect(args: &LoadgenArgs) -> anyhow::Result<Self> {
        match args.protocol {
            Protocol::Grpc => {
                let url = format!("http://{}", args.endpoint);
                let channel = Channel::from_shared(url.clone())?
                    .tcp_nodelay(true)
                    .initial_stream_window_size(4 << 20)
                    .initial_connection_window_size(16 << 20)
                    .connect()
                    .await
                    .with_context(|| format!("cannot connect to OTLP/gRPC at {url}"))?;
                let mut client = Grpc::new(channel).max_decoding_message_size(64 << 20);
                if args.gzip {
                    client = client.send_compressed(CompressionEncoding::Gzip);
                }
                Ok(Self::Grpc(client))
            }
            Protocol::Http => Ok(Self::Http {
                url: format!("http://{}/v1/traces", args.endpoint),
                agent: ureq::Agent::new_with_defaults(),
            }),
        }
    }

    /// Sends one encoded `ExportTraceServiceRequest`.
    async fn send(&self, body: Bytes) -> Outcome {
        match self {
            Self::Grpc(client) => match export_encoded(client.clone(), body).await {
                Ok(response) => Outcome::Accepted {
                    rejected: response
                        .into_inner()
                        .partial_success
                        .map_or(0, |p| u64::try_from(p.rejected_spans).unwrap_or(0)),
                },
                Err(status)
                    if matches!(
                        status.code(),
                        tonic::Code::Unavailable | tonic::Code::ResourceExhausted
                    ) =>
                {
                    Outcome::Retry(status.message().to_string())
                }
                Err(status) => {
                    Outcome::Failed(format!("{:?}: {}", status.code(), status.message()))
                }
            },
            Self::Http { url, agent } => {
                let (url, agent) = (url.clone(), agent.clone());
                let result = tokio::task::spawn_blocking(move || {
                    agent
                        .post(&url)
                        .header("content-type", "application/x-protobuf")
                        .config()
                        .http_status_as_error(false)
                        .build()
                        .send(&body[..])
                        .map(|mut r| {
                            (
                                r.status().as_u16(),
                                r.body_mut().read_to_vec().unwrap_or_default(),
                            )
                        })
                })
                .await;
                match result {
                    Ok(Ok((200, body))) => {
                        let response =
                            ExportTraceServiceResponse::decode(body.as_slice()).unwrap_or_default();
                        Outcome::Accepted {
                            rejected: response
                                .partial_success
                                .map_or(0, |p| u64::try_from(p.rejected_spans).unwrap_or(0)),
                        }
                    }
                    Ok(Ok((429 | 503, _))) => Outcome::Retry("overloaded".to_string()),
                    Ok(Ok((status, _))) => Outcome::Failed(format!("HTTP {status}")),
                    Ok(Err(error)) => Outcome::Failed(error.to_string()),
                    Err(error) => Outcome::Failed(error.to_string()),
                }
            }
        }
    }
}

/// The export call over gRPC with a body that is already encoded.
async fn export_encoded(
    mut client: Grpc<Channel>,
    body: Bytes,
) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
    client
        .ready()
        .await
        .map_err(|e| tonic::Status::unavailable(format!("connection not ready: {e}")))?;
    let path = tonic::codegen::http::uri::PathAndQuery::from_static(EXPORT_PATH);
    client
        .unary(tonic::Request::new(body), path, EncodedExportCodec)
        .await
}

fn now_unix_nano() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// Sends simulated traffic as `args` says and returns what happened.
///
/// # Errors
/// When the collector cannot be reached at all.
pub async fn run(args: &LoadgenArgs) -> anyhow::Result<LoadReport> {
    if args.batch == 0 || args.concurrency == 0 {
        bail!("--batch and --concurrency must be positive");
    }
    if args.rate < 0.0 || !args.rate.is_finite() {
        bail!("--rate must be a non-negative number of traces per second");
    }
    let sender = Sender::connect(args).await?;
    let mut mesh = Mesh::new(args.scenario, args.seed);
    let mut pool = if args.replay_pool > 0 {
        let pool = ReplayPool::simulate(
            &mut mesh,
            args.replay_pool,
            args.batch,
            now_unix_nano(),
            args.seed,
        )?;
        tracing::info!(requests = pool.len(), "replay pool simulated");
        Some(pool)
    } else {
        None
    };
    let counters = Arc::new(Counters::default());
    let latencies = Arc::new(latencies::Latencies::default());
    let permits = Arc::new(Semaphore::new(args.concurrency));
    let progress = if args.quiet {
        ProgressBar::hidden()
    } else {
        let bar = ProgressBar::new(args.duration.as_secs().max(1));
        bar.set_style(
            ProgressStyle::with_template(
                "{spinner} [{elapsed_precise}] {bar:30} {pos}/{len}s {msg}",
            )
            .expect("valid template"),
        );
        bar
    };

    let started = Instant::now();
    let mut report = LoadReport::default();
    let mut tasks = tokio::task::JoinSet::new();
    while started.elapsed() < args.duration && args.max_traces.is_none_or(|max| report.traces < max)
    {
        // Pace: the number of traces due by now at the asked rate.
        if args.rate > 0.0 {
            let due = (started.elapsed().as_secs_f64() * args.rate) as u64;
            if report.traces >= due {
                let next = (report.traces + 1) as f64 / args.rate;
                let wait = Duration::from_secs_f64(next).saturating_sub(started.elapsed());
                tokio::time::sleep(wait.min(Duration::from_millis(50))).await;
                continue;
            }
        }
        let remaining = args.max_traces.map_or(u64::MAX, |max| max - report.traces);
        let count = (args.batch as u64).min(remaining) as usize;
        let start = now_unix_nano();
        let (request, count, num_spans) = match pool.as_mut() {
            Some(pool) => {
                let replayed = pool.next(start);
                (replayed.body, replayed.traces, replayed.spans)
            }
            None => {
                let traces: Vec<_> = (0..count)
                    .map(|i| mesh.trace(start + i as u64 * 1_000))
                    .collect();
                let num_spans: u64 = traces.iter().map(|t| t.num_spans() as u64).sum();
                let body = Bytes::from(to_request(&traces).encode_to_vec());
                (body, count as u64, num_spans)
            }
        };
        report.traces += count;
        report.spans += num_spans;

        let permit = Arc::clone(&permits)
            .acquire_owned()
            .await
            .expect("semaphore stays open");
        let (sender, task_counters, latencies) = (
            sender.clone(),
            Arc::clone(&counters),
            Arc::clone(&latencies),
        );
        tasks.spawn(async move {
            let counters = task_counters;
            let _permit = permit;
            let mut backoff = Duration::from_millis(50);
            for attempt in 0..8 {
                let sent = Instant::now();
                match sender.send(request.clone()).await {
                    Outcome::Accepted { rejected } => {
                        latencies.record(sent.elapsed());
                        counters
                            .acknowledged
                            .fetch_add(num_spans - rejected, Ordering::Relaxed);
                        counters.rejected.fetch_add(rejected, Ordering::Relaxed);
                        return;
                    }
                    Outcome::Retry(reason) if attempt < 7 => {
                        tracing::debug!(%reason, attempt, "collector overloaded, retrying");
                        counters.retries.fetch_add(1, Ordering::Relaxed);
                        tokio::time::sleep(backoff).await;
                        backoff = (backoff * 2).min(Duration::from_secs(2));
                    }
                    Outcome::Retry(reason) | Outcome::Failed(reason) => {
                        tracing::warn!(%reason, "export failed");
                        counters.failed.fetch_add(1, Ordering::Relaxed);
                        if let Ok(mut last) = counters.last_failure.lock() {
                            *last = Some(reason);
                        }
                        return;
                    }
                }
            }
        });
        while let Some(done) = tasks.try_join_next() {
            done?;
        }
        if counters.failed.load(Ordering::Relaxed) >= FAILURES_BEFORE_GIVING_UP
            && counters.acknowledged.load(Ordering::Relaxed) == 0
        {
            tasks.abort_all();
            progress.finish_and_clear();
            let reason = counters
                .last_failure
                .lock()
                .ok()
                .and_then(|last| last.clone())
                .unwrap_or_default();
            let protocol = match args.protocol {
                Protocol::Grpc => "OTLP/gRPC",
                Protocol::Http => "OTLP/HTTP",
            };
            bail!(
                "the collector at {} refused the first {FAILURES_BEFORE_GIVING_UP} \
                 {protocol} requests (last: {reason}); is --endpoint its {protocol} port?",
                args.endpoint
            );
        }
        progress.set_position(started.elapsed().as_secs());
        let acked = counters.acknowledged.load(Ordering::Relaxed);
        progress.set_message(format!(
            "{} traces, {} spans acked, {:.0} spans/s",
            report.traces,
            acked,
            acked as f64 / started.elapsed().as_secs_f64().max(1e-3)
        ));
    }
    while let Some(done) = tasks.join_next().await {
        done?;
    }
    progress.finish_and_clear();

    report.elapsed_seconds = started.elapsed().as_secs_f64();
    report.spans_acknowledged = counters.acknowledged.load(Ordering::Relaxed);
    report.spans_rejected = counters.rejected.load(Ordering::Relaxed);
    report.failed_requests = counters.failed.load(Ordering::Relaxed);
    report.retries = counters.retries.load(Ordering::Relaxed);
    report.spans_per_second = report.spans_acknowledged as f64 / report.elapsed_seconds.max(1e-9);
    (report.p50_request_ms, report.p99_request_ms) = latencies.percentiles();
    Ok(report)
}

/// Request latencies, kept whole (a load run has at most a few hundred thousand).
mod latencies {
    use std::sync::Mutex;
    use std::time::Duration;

    #[derive(Default)]
    pub(super) struct Latencies(Mutex<Vec<f64>>);

    impl Latencies {
        pub(super) fn record(&self, latency: Duration) {
            if let Ok(mut all) = self.0.lock() {
                all.push(latency.as_secs_f64() * 1e3);
            }
        }

        pub(super) fn percentiles(&self) -> (f64, f64) {
            let Ok(mut all) = self.0.lock() else {
                return (0.0, 0.0);
            };
            if all.is_empty() {
                return (0.0, 0.0);
            }
            all.sort_by(f64::total_cmp);
            let at = |q: f64| all[((all.len() - 1) as f64 * q).round() as usize];
            (at(0.5), at(0.99))
        }
    }
}
