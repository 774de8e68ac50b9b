//! The ingest and query hot paths, each on its own, with criterion.
//!
//! | group | what one iteration does | input |
//! | --- | --- | --- |
//! | `decode` | prost decodes one OTLP export request | 20 mesh traces (loadgen's batch) |
//! | `columnarize` | validates and columnarizes that decoded request | same |
//! | `wal_append` | appends that request's bytes to a WAL file: without sync, with one sync per request, and 16 requests per sync (a group commit) | same, temp file |
//! | `parquet_flush` | `Segment::write` of a sealed head: sort by trace id, zstd Parquet, sync, rename | 100,000 spans |
//! | `tree_assembly` | `CallTree::assemble` of one trace | 10,000 spans: ~770 mesh traces under one root |
//! | `sketch_merge` | `EdgeStats::merge` of one edge's stats into another | 10,000 calls each |
//!
//! Throughput is reported in spans (elements) where it applies. Every group measures
//! for 3 s after a 1 s warm-up, so the whole file runs in about a minute:
//! `CARGO_TARGET_DIR=target/bench cargo bench --bench hot_paths`. Under `cargo test`
//! each benchmark runs once, on smaller inputs.

use std::hint::black_box;
use std::time::{Duration, Instant};

use arrow::array::RecordBatch;
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message;
use tracegate::sim::{Mesh, Scenario, to_request};
use tracegate_query::graph::EdgeStats;
use tracegate_query::{CallTree, span_views};
use tracegate_storage::{Segment, WalFile, columnarize};

/// 2026-01-01T00:00:00Z, the start of the simulated traffic.
const BASE_UNIX_NANO: u64 = 1_767_225_600_000_000_000;
/// Traces per request, as `tracegate loadgen` sends them by default.
const TRACES_PER_REQUEST: usize = 20;
/// A WAL file is replaced once it holds this much, so appends never fill the disk.
const WAL_ROTATE_BYTES: u64 = 256 << 20;

/// True under `cargo bench`, false under `cargo test` (criterion's test mode).
fn benchmarking() -> bool {
    std::env::args().any(|a| a == "--bench")
}

/// `num_traces` traces of the steady mesh, one millisecond apart.
fn mesh_requests(seed: u64, num_traces: usize) -> Vec<ExportTraceServiceRequest> {
    let mut mesh = Mesh::new(Scenario::Steady, seed);
    let traces: Vec<_> = (0..num_traces)
        .map(|i| mesh.trace(BASE_UNIX_NANO + i as u64 * 1_000_000))
        .collect();
    traces.chunks(TRACES_PER_REQUEST).map(to_request).collect()
}

fn num_spans(request: &ExportTraceServiceRequest) -> u64 {
    request
        .resource_spans
        .iter()
        .flat_map(|rs| &rs.scope_spans)
        .map(|ss| ss.spans.len() as u64)
        .sum()
}

fn decode_and_columnarize(c: &mut Criterion) {
    let request = mesh_requests(1, TRACES_PER_REQUEST).remove(0);
    let bytes = request.encode_to_vec();
    let spans = num_spans(&request);

    let mut group = c.benchmark_group("decode");
    group.throughput(Throughput::Elements(spans));
    group.bench_function("request_20_traces", |b| {
        b.iter(|| ExportTraceServiceRequest::decode(black_box(bytes.as_slice())).unwrap());
    });
    group.finish();

    let mut group = c.benchmark_group("columnarize");
    group.throughput(Throughput::Elements(spans));
    group.bench_function("request_20_traces", |b| {
        b.iter(|| columnarize(black_box(&request)));
    });
    group.finish();
}

fn wal_append(c: &mut Criterion) {
    let request = mesh_requests(2, TRACES_PER_REQUEST).remove(0);
    let bytes = request.encode_to_vec();
    let spans = num_spans(&request);
    let dir = tempfile::tempdir().unwrap();
    let mut generation = 1;
    let mut wal = WalFile::create(dir.path(), generation).unwrap();
    // Appends `requests_per_sync` records per step (then syncs, when asked), replacing
    // full files outside the timed part.
    let mut run = |iters: u64, requests_per_sync: u64, sync: bool| {
        let mut elapsed = Duration::ZERO;
        for _ in 0..iters {
            if wal.bytes() > WAL_ROTATE_BYTES {
                let old = generation;
                generation += 1;
                wal = WalFile::create(dir.path(), generation).unwrap();
                std::fs::remove_file(dir.path().join(format!("{old:010}.wal"))).unwrap();
            }
            let started = Instant::now();
            for _ in 0..requests_per_sync {
                wal.append(black_box(&bytes)).unwrap();
            }
            if sync {
                wal.sync().unwrap();
            }
            elapsed += started.elapsed();
        }
        elapsed
    };

    let mut group = c.benchmark_group("wal_append");
    group.throughput(Throughput::Elements(spans));
    group.bench_function("no_sync", |b| b.iter_custom(|iters| run(iters, 1, false)));
    group.bench_function("sync_each_request", |b| {
        b.iter_custom(|iters| run(iters, 1, true));
    });
    group.throughput(Throughput::Elements(spans * 16));
    group.bench_function("sync_per_16_requests", |b| {
        b.iter_custom(|iters| run(iters, 16, true));
    });
    group.finish();
}

fn parquet_flush(c: &mut Criterion) {
    let num_traces = if benchmarking() { 7_700 } else { 400 };
    let batches: Vec<RecordBatch> = mesh_requests(3, num_traces)
        .iter()
        .filter_map(|r| columnarize(r).batch)
        .collect();
    let spans: usize = batches.iter().map(RecordBatch::num_rows).sum();
    let dir = tempfile::tempdir().unwrap();
    let mut generation = 0;

    let mut group = c.benchmark_group("parquet_flush");
    group.throughput(Throughput::Elements(spans as u64));
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(5));
    group.bench_function(format!("sealed_head_{spans}_spans"), |b| {
        b.iter_custom(|iters| {
            let mut elapsed = Duration::ZERO;
            for _ in 0..iters {
                generation += 1;
                let started = Instant::now();
                let segment = Segment::write(dir.path(), generation, &batches).unwrap();
                elapsed += started.elapsed();
                std::fs::remove_file(segment.path()).unwrap();
            }
            elapsed
        });
    });
    group.finish();
}

fn tree_assembly(c: &mut Criterion) {
    let target_spans = if benchmarking() { 10_000 } else { 1_000 };
    // Mesh traces until the target is reached, all moved into one trace whose first
    // root is the parent of every other root: a wide, realistic 10k-span call tree.
    let batches: Vec<RecordBatch> = mesh_requests(4, target_spans / 8 + TRACES_PER_REQUEST)
        .iter()
        .filter_map(|r| columnarize(r).batch)
        .collect();
    let mut spans = span_views(&batches).unwrap();
    spans.truncate(target_spans);
    let trace_id = spans[0].trace_id;
    let root = spans[0].span_id;
    for span in &mut spans[1..] {
        span.trace_id = trace_id;
        if span.parent_span_id.is_none() {
            span.parent_span_id = Some(root);
        }
    }

    let mut group = c.benchmark_group("tree_assembly");
    group.throughput(Throughput::Elements(spans.len() as u64));
    group.bench_function(format!("trace_{}_spans", spans.len()), |b| {
        b.iter_batched(
            || spans.clone(),
            |spans| CallTree::assemble(spans).unwrap(),
            BatchSize::LargeInput,
        );
    });
    group.finish();
}

fn sketch_merge(c: &mut Criterion) {
    let stats = |seed: u64| {
        let mut stats = EdgeStats::default();
        for i in 0..10_000u64 {
            let x = (i.wrapping_mul(2_654_435_761).wrapping_add(seed) % 100_000) as f64;
            stats.record(i % 97 == 0, 0.2 + x / 250.0, Some(0.1 + x / 300.0));
        }
        stats
    };
    let (into, other) = (stats(1), stats(2));

    let mut group = c.benchmark_group("sketch_merge");
    group.bench_function("edge_stats_10k_calls", |b| {
        b.iter_batched_ref(
            || into.clone(),
            |into| into.merge(black_box(&other)),
            BatchSize::SmallInput,
        );
    });
    group.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(30)
}

criterion_group! {
    name = hot_paths;
    config = config();
    targets = decode_and_columnarize, wal_append, parquet_flush, tree_assembly, sketch_merge
}
criterion_main!(hot_paths);
