//! The in-process half of the ingest comparison: prost alone decoding the request bytes
//! (the baseline), and the production ingest step on the same bytes.

use std::hint::black_box;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::Context;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message;
use tracegate_collector::Ingestor;
use tracegate_storage::{Store, StoreConfig};

/// Encoded export requests and the spans they hold.
pub(crate) struct Bodies {
    /// Protobuf `ExportTraceServiceRequest` bytes, one per request.
    pub(crate) bodies: Vec<Vec<u8>>,
    /// Spans in all of them.
    pub(crate) num_spans: u64,
}

impl Bodies {
    /// Encoded bytes in all requests.
    pub(crate) fn num_bytes(&self) -> u64 {
        self.bodies.iter().map(|b| b.len() as u64).sum()
    }

    /// Writes the bodies to `path`: the span count, then each body length-prefixed.
    ///
    /// # Errors
    /// When the file cannot be written.
    pub(crate) fn save(&self, path: &Path) -> anyhow::Result<()> {
        let mut out = Vec::with_capacity(self.num_bytes() as usize + 8 * self.bodies.len() + 8);
        out.extend_from_slice(&self.num_spans.to_le_bytes());
        for body in &self.bodies {
            out.extend_from_slice(&(body.len() as u64).to_le_bytes());
            out.extend_from_slice(body);
        }
        std::fs::write(path, out).with_context(|| format!("write {}", path.display()))
    }

    /// Reads what [`Bodies::save`] wrote.
    ///
    /// # Errors
    /// When the file cannot be read or is cut short.
    pub(crate) fn load(path: &Path) -> anyhow::Result<Self> {
        let data = std::fs::read(path).with_context(|| format!("read {}", path.display()))?;
        let word = |at: usize| -> anyhow::Result<u64> {
            let bytes = data.get(at..at + 8).context("bodies file cut short")?;
            Ok(u64::from_le_bytes(bytes.try_into()?))
        };
        let num_spans = word(0)?;
        let mut bodies = Vec::new();
        let mut at = 8;
        while at < data.len() {
            let len = word(at)? as usize;
            let body = data
                .get(at + 8..at + 8 + len)
                .context("bodies file cut short")?;
            bodies.push(body.to_vec());
            at += 8 + len;
        }
        Ok(Self { bodies, num_spans })
    }
}

/// Wall time and the CPU time of the whole process (every thread) over it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Timed {
    /// Wall-clock time.
    pub(crate) wall: Duration,
    /// User plus system CPU seconds of the process, at the kernel's tick resolution.
    pub(crate) cpu_seconds: f64,
}

/// Starts measuring wall and process CPU time.
pub(crate) struct Timer {
    wall: Instant,
    cpu_seconds: f64,
}

impl Timer {
    pub(crate) fn start() -> Self {
        Self {
            wall: Instant::now(),
            cpu_seconds: process_cpu_seconds(),
        }
    }

    pub(crate) fn stop(&self) -> Timed {
        Timed {
            wall: self.wall.elapsed(),
            cpu_seconds: process_cpu_seconds() - self.cpu_seconds,
        }
    }
}

/// User plus system CPU time of this process so far, from `/proc/self/stat` (0 where
/// that file does not exist). Ticks are 1/100 s on Linux.
fn process_cpu_seconds() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return 0.0;
    };
    // Fields after the parenthesised command name: state is field 3, utime 14, stime 15.
    let Some((_, rest)) = stat.rsplit_once(')') else {
        return 0.0;
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(11) + ticks(12)) / 100.0
}

/// Time for prost to decode every body once.
///
/// # Errors
/// When a body does not decode.
pub(crate) fn decode_all(bodies: &Bodies) -> anyhow::Result<Timed> {
    let started = Timer::start();
    for body in &bodies.bodies {
        let request = ExportTraceServiceRequest::decode(body.as_slice())?;
        black_box(request);
    }
    Ok(started.stop())
}

/// What one in-process ingest run measured.
pub(crate) struct IngestRun {
    /// Wall time from the first decode to the last acknowledgement.
    pub(crate) elapsed: Timed,
    /// WAL syncs the store made.
    pub(crate) wal_syncs: u64,
}

/// Ingests every body into a fresh store in `dir` exactly as the OTLP receivers do
/// ([`Ingestor::export_encoded`]: decode, validate and columnarize in one pass over the
/// bytes, WAL append with group commit, head), on one thread, with `in_flight` requests
/// awaiting their sync at once.
/// The bodies are owned, as a receiver owns the bytes it read from the socket.
///
/// The store never seals during the run, so no Parquet flush competes for the CPU; the
/// WAL writer thread still does the writes and syncs, as in production.
///
/// # Errors
/// When the store cannot be opened or an export fails.
pub(crate) fn ingest_all(
    bodies: Bodies,
    dir: &Path,
    in_flight: usize,
) -> anyhow::Result<IngestRun> {
    let config = StoreConfig {
        max_head_spans: usize::MAX,
        max_head_age: Duration::from_secs(24 * 3600),
        max_memory_bytes: usize::MAX,
        ..StoreConfig::new(dir)
    };
    let (store, _) = Store::open(config, Vec::new()).context("open the ingest store")?;
    let ingestor = Ingestor::new(store.clone(), 64 << 20);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;

    let num_spans = bodies.num_spans;
    let started = Timer::start();
    runtime.block_on(async {
        let mut tasks = tokio::task::JoinSet::new();
        for raw in bodies.bodies {
            while tasks.len() >= in_flight {
                if let Some(done) = tasks.join_next().await {
                    done??;
                }
            }
            let ingestor = ingestor.clone();
            tasks.spawn(async move {
                let response = ingestor.export_encoded(raw.into(), "bench").await?;
                anyhow::ensure!(response.partial_success.is_none(), "spans were rejected");
                anyhow::Ok(())
            });
        }
        while let Some(done) = tasks.join_next().await {
            done??;
        }
        anyhow::Ok(())
    })?;
    let elapsed = started.stop();

    let committed = store.stats().spans_committed.load(Ordering::Relaxed);
    anyhow::ensure!(
        committed == num_spans,
        "ingest committed {committed} spans of {num_spans}"
    );
    let wal_syncs = store.stats().wal_syncs.load(Ordering::Relaxed);
    // Dropping the last handle stops the writer without flushing the head to Parquet.
    drop(ingestor);
    drop(store);
    Ok(IngestRun { elapsed, wal_syncs })
}
