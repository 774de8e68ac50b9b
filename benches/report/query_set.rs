//! The query data set: mesh spans ingested in process into a store laid out as a
//! server lays it out (segments of the default head size), then served by a real
//! server and read by DuckDB.

use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::Context;
use prost::Message;
use tracegate_storage::{StorageError, Store, StoreConfig, columnarize};

use crate::fixture::{BASE_UNIX_NANO, MeshRequests};

/// Simulated time the data set covers.
pub(crate) const WINDOW_NANOS: u64 = 3_600_000_000_000;
/// Trace ids looked up by id.
const NUM_LOOKUP_TRACES: usize = 25;

/// What building the data set produced.
pub(crate) struct QuerySet {
    /// Spans stored.
    pub(crate) num_spans: u64,
    /// OTLP protobuf bytes of the same spans (export requests of 20 traces).
    pub(crate) otlp_bytes: u64,
    /// Parquet bytes on disk after the final flush.
    pub(crate) parquet_bytes: u64,
    /// Parquet segment files.
    pub(crate) num_segments: usize,
    /// Trace ids to look up, with their span counts, spread over the data set.
    pub(crate) lookups: Vec<([u8; 16], usize)>,
    /// Arrow memory of the columnarized requests (what the head holds), capacity
    /// included.
    pub(crate) head_bytes: u64,
    /// Time to generate and ingest everything, flush included.
    pub(crate) build_time: Duration,
}

/// Generates `num_spans` spans and ingests them into a new store in `data_dir`, with
/// the server's default head size, then flushes.
///
/// # Errors
/// When the store fails.
pub(crate) fn build(data_dir: &Path, num_spans: u64) -> anyhow::Result<QuerySet> {
    let started = Instant::now();
    let config = StoreConfig {
        max_memory_bytes: 8 << 30,
        max_head_age: Duration::from_secs(24 * 3600),
        ..StoreConfig::new(data_dir)
    };
    let (store, _) = Store::open(config, Vec::new()).context("open the query store")?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;

    let lookup_every = (num_spans / NUM_LOOKUP_TRACES as u64).max(1);
    let mut next_lookup = lookup_every / 2;
    let mut lookups = Vec::new();
    let mut otlp_bytes = 0u64;
    let mut head_bytes = 0u64;
    let mut generated = 0u64;
    let mut next_progress = 1_000_000u64;
    runtime.block_on(async {
        let mut tasks = tokio::task::JoinSet::new();
        for request in MeshRequests::new(7, num_spans, WINDOW_NANOS) {
            if generated >= next_lookup && lookups.len() < NUM_LOOKUP_TRACES {
                lookups.push(request.traces[0]);
                next_lookup += lookup_every;
            }
            generated += request.num_spans;
            if generated >= next_progress {
                eprintln!(
                    "report:   {generated} spans stored ({:.0} s)",
                    started.elapsed().as_secs_f64()
                );
                next_progress += 1_000_000;
            }
            let payload = request.request.encode_to_vec();
            otlp_bytes += payload.len() as u64;
            let batch = columnarize(&request.request)
                .batch
                .context("the mesh makes valid spans")?;
            head_bytes += batch.get_array_memory_size() as u64;
            while tasks.len() >= 16 {
                if let Some(done) = tasks.join_next().await {
                    done??;
                }
            }
            let store = store.clone();
            tasks.spawn(async move {
                // Wait out memory pressure while the flusher catches up.
                loop {
                    match store.append(payload.clone(), batch.clone()).await {
                        Err(StorageError::Overloaded(_)) => {
                            tokio::time::sleep(Duration::from_millis(50)).await;
                        }
                        other => return other,
                    }
                }
            });
        }
        while let Some(done) = tasks.join_next().await {
            done??;
        }
        anyhow::Ok(())
    })?;
    store.shutdown();
    let stored = store.stats().spans_committed.load(Ordering::Relaxed);
    anyhow::ensure!(stored == generated, "stored {stored} of {generated} spans");

    let tables = store.tables();
    let parquet_bytes = tables.segments.iter().map(|s| s.bytes()).sum();
    anyhow::ensure!(
        tables.segment_spans() == generated,
        "segments hold {} of {generated} spans",
        tables.segment_spans()
    );
    Ok(QuerySet {
        num_spans: generated,
        otlp_bytes,
        parquet_bytes,
        num_segments: tables.segments.len(),
        head_bytes,
        lookups,
        build_time: started.elapsed(),
    })
}

/// The graph query range covering the whole data set, in Unix microseconds.
pub(crate) fn graph_range_micros() -> (u64, u64) {
    let start = BASE_UNIX_NANO / 1_000 - 1_000_000;
    let end = (BASE_UNIX_NANO + WINDOW_NANOS) / 1_000 + 60_000_000;
    (start, end)
}
