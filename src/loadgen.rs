//! `tracegate loadgen`: simulated mesh traffic sent to a running collector over real
//! OTLP, at a set rate for a bounded time, with a progress bar and a summary.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use indicatif::{ProgressBar, ProgressStyle};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use prost::Message;
use serde::Serialize;
use tokio::sync::Semaphore;
use tonic::codec::CompressionEncoding;
use tonic::transport::Channel;

use crate::sim::{Mesh, Scenario, to_request};

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
    /// Random seed, for reproducible traffic.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Print the summary as JSON on stdout.
    #[arg(long)]
    pub json: bool,
    /// No progress bar.
    #[arg(long)]
    pub quiet: bool,
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
}

/// One connection to the collector.
#[derive(Clone)]
enum Sender {
    Grpc(TraceServiceClient<Channel>),
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
                    .connect()
                    .await
                    .with_context(|| format!("cannot connect to OTLP/gRPC at {url}"))?;
                let mut client =
                    TraceServiceClient::new(channel).max_decoding_message_size(64 << 20);
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

    async fn send(&self, request: ExportTraceServiceRequest) -> Outcome {
        match self {
            Self::Grpc(client) => match client.clone().export(request).await {
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
                let body = request.encode_to_vec();
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
        let traces: Vec<_> = (0..count)
            .map(|i| mesh.trace(start + i as u64 * 1_000))
            .collect();
        let num_spans: u64 = traces.iter().map(|t| t.num_spans() as u64).sum();
        let request = to_request(&traces);
        report.traces += count as u64;
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
                        return;
                    }
                }
            }
        });
        while let Some(done) = tasks.try_join_next() {
            done?;
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
