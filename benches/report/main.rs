//! The benchmark report: tracegate's speed and size claims, each measured against its
//! baseline in the same run, written to `target/bench-report.json` and printed as a
//! table. Run it through `benches/run` (see README.md, "Performance").
//!
//! ```text
//! in process   mesh requests ─► prost decode only        (baseline)
//!                            └► Ingestor::export_encoded (decode, validate, columnarize, WAL)
//! end to end   tracegate loadgen ─OTLP/gRPC─► tracegate serve (durable acks)
//! freshness    one trace exported ─► polled in trace by id, search and graph
//! queries      N spans ─► Store (segments) ─► tracegate serve: trace by id, graph
//!                                         └─► DuckDB on the same Parquet files
//! ```
//!
//! Flags: `--spans N` (query data set, default 10,000,000), `--ingest-spans N` (spans
//! per in-process run, default 1,000,000), `--runs N` (repetitions, default 5),
//! `--e2e-seconds N` (per loadgen run, default 20), `--e2e-concurrency N` (default 8),
//! `--e2e-replay-pool N` (loadgen requests simulated once and replayed, default 512),
//! `--freshness-samples N` (default 20), `--skip-e2e`, `--skip-queries`, `--keep`
//! (keep the work directory), `--out PATH`, `--python PATH`.
//!
//! Under `cargo test` (no `--bench` flag) it only smoke-tests the in-process steps on a
//! few thousand spans.

mod e2e;
mod fixture;
mod in_process;
mod query_set;
mod server;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use prost::Message;
use serde_json::{Value, json};

use crate::in_process::Bodies;
use crate::server::Server;

/// Parsed command-line flags.
struct Args {
    bench: bool,
    spans: u64,
    ingest_spans: u64,
    runs: usize,
    e2e_seconds: u64,
    e2e_concurrency: usize,
    e2e_replay_pool: usize,
    freshness_samples: usize,
    skip_e2e: bool,
    skip_queries: bool,
    keep: bool,
    out: PathBuf,
    python: PathBuf,
    /// Internal: run one in-process measurement (`decode` or `ingest`) and print it.
    worker: Option<String>,
    bodies: Option<PathBuf>,
}

impl Args {
    fn parse() -> anyhow::Result<Self> {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut args = Self {
            bench: false,
            spans: 10_000_000,
            ingest_spans: 1_000_000,
            runs: 5,
            e2e_seconds: 20,
            e2e_concurrency: 8,
            e2e_replay_pool: 512,
            freshness_samples: 20,
            skip_e2e: false,
            skip_queries: false,
            keep: false,
            out: root.join("target/bench-report.json"),
            python: root.join(".venv/bin/python"),
            worker: None,
            bodies: None,
        };
        let mut iter = std::env::args().skip(1);
        while let Some(flag) = iter.next() {
            let mut value =
                |name: &str| iter.next().with_context(|| format!("{name} needs a value"));
            match flag.as_str() {
                "--bench" => args.bench = true,
                "--spans" => args.spans = value("--spans")?.replace('_', "").parse()?,
                "--ingest-spans" => {
                    args.ingest_spans = value("--ingest-spans")?.replace('_', "").parse()?;
                }
                "--runs" => args.runs = value("--runs")?.parse()?,
                "--e2e-seconds" => args.e2e_seconds = value("--e2e-seconds")?.parse()?,
                "--e2e-concurrency" => {
                    args.e2e_concurrency = value("--e2e-concurrency")?.parse()?;
                }
                "--e2e-replay-pool" => {
                    args.e2e_replay_pool = value("--e2e-replay-pool")?.parse()?;
                }
                "--freshness-samples" => {
                    args.freshness_samples = value("--freshness-samples")?.parse()?;
                }
                "--skip-e2e" => args.skip_e2e = true,
                "--skip-queries" => args.skip_queries = true,
                "--keep" => args.keep = true,
                "--out" => args.out = value("--out")?.into(),
                "--python" => args.python = value("--python")?.into(),
                "--worker" => args.worker = Some(value("--worker")?),
                "--bodies" => args.bodies = Some(value("--bodies")?.into()),
                // Flags cargo passes to every bench or test binary.
                "--nocapture" | "--test" | "--quiet" | "-q" => {}
                other if other.starts_with("--") => bail!("unknown flag {other}"),
                _ => {}
            }
        }
        anyhow::ensure!(args.runs > 0, "--runs must be positive");
        Ok(args)
    }
}

fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    match sorted.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => sorted[n / 2],
        n => (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0,
    }
}

fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1e3
}

fn progress(started: Instant, message: &str) {
    eprintln!(
        "report [{:>6.1} s] {message}",
        started.elapsed().as_secs_f64()
    );
}

/// Where the release binaries are: next to this bench binary's `deps/` folder.
fn release_dir() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    exe.parent()
        .and_then(Path::parent)
        .map(Path::to_path_buf)
        .context("bench binary has no release directory")
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse()?;
    if let Some(worker) = &args.worker {
        return run_worker(
            worker,
            args.bodies.as_deref().context("--worker needs --bodies")?,
        );
    }
    if !args.bench {
        return smoke_test();
    }
    let started = Instant::now();
    let release = release_dir()?;
    let binary = release.join("tracegate");
    anyhow::ensure!(
        binary.exists(),
        "{} is missing: build it first (benches/run does)",
        binary.display()
    );
    let work_root = release.parent().unwrap_or(&release).to_path_buf();
    let work = tempfile::Builder::new()
        .prefix("report-work-")
        .tempdir_in(&work_root)?;
    progress(
        started,
        &format!("work directory {}", work.path().display()),
    );

    let mut report = serde_json::Map::new();
    report.insert(
        "cores".into(),
        json!(std::thread::available_parallelism()?.get()),
    );
    report.insert("runs".into(), json!(args.runs));
    report.insert("spans".into(), json!(args.spans));
    report.insert("ingest_spans".into(), json!(args.ingest_spans));

    in_process_part(&args, work.path(), started, &mut report)?;
    if !args.skip_e2e {
        e2e_part(&args, &binary, work.path(), started, &mut report)?;
    }
    if !args.skip_queries {
        query_part(&args, &binary, work.path(), started, &mut report)?;
    }
    report.insert("elapsed_s".into(), json!(started.elapsed().as_secs_f64()));

    let targets = judge(&report);
    report.insert("targets".into(), targets);
    let report = Value::Object(report);
    if let Some(dir) = args.out.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(&args.out, serde_json::to_vec_pretty(&report)?)?;
    print_table(&report);
    println!("\nreport written to {}", args.out.display());
    if args.keep {
        let kept = work.keep();
        println!("work directory kept: {}", kept.display());
    }
    Ok(())
}

/// Under `cargo test`: the in-process steps on a few thousand spans, so the code stays
/// exercised without a release build.
fn smoke_test() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let bodies = encode_bodies(2_000);
    in_process::decode_all(&bodies)?;
    let path = dir.path().join("bodies.bin");
    bodies.save(&path)?;
    let loaded = in_process::Bodies::load(&path)?;
    anyhow::ensure!(loaded.bodies == bodies.bodies && loaded.num_spans == bodies.num_spans);
    in_process::ingest_all(loaded, &dir.path().join("ingest"), 4)?;
    let set = query_set::build(&dir.path().join("query"), 3_000)?;
    anyhow::ensure!(set.num_spans >= 3_000 && set.parquet_bytes > 0);
    println!("report: smoke test passed (run benches/run for the measurements)");
    Ok(())
}

fn encode_bodies(num_spans: u64) -> Bodies {
    let mut bodies = Vec::new();
    let mut total = 0;
    for request in fixture::MeshRequests::new(1, num_spans, 600_000_000_000) {
        total += request.num_spans;
        bodies.push(request.request.encode_to_vec());
    }
    Bodies {
        bodies,
        num_spans: total,
    }
}

/// Requests in flight in the in-process ingest: each awaits its WAL sync while the
/// next ones are decoded and columnarized, so syncs cover groups as in production.
const INGEST_IN_FLIGHT: usize = 16;

/// One in-process measurement in this fresh process, printed as JSON on stdout.
fn run_worker(worker: &str, bodies_path: &Path) -> anyhow::Result<()> {
    let bodies = in_process::Bodies::load(bodies_path)?;
    let result = match worker {
        "decode" => {
            let timed = in_process::decode_all(&bodies)?;
            json!({ "seconds": timed.wall.as_secs_f64(), "cpu_seconds": timed.cpu_seconds,
                    "wal_syncs": 0 })
        }
        "ingest" => {
            let dir = tempfile::tempdir_in(bodies_path.parent().unwrap_or(Path::new(".")))?;
            let run = in_process::ingest_all(bodies, dir.path(), INGEST_IN_FLIGHT)?;
            json!({ "seconds": run.elapsed.wall.as_secs_f64(),
                    "cpu_seconds": run.elapsed.cpu_seconds, "wal_syncs": run.wal_syncs })
        }
        other => bail!("unknown worker {other}"),
    };
    println!("{result}");
    Ok(())
}

/// What one worker measured.
struct WorkerRun {
    seconds: f64,
    cpu_seconds: f64,
    wal_syncs: u64,
}

/// Runs one in-process measurement in a child process: each starts with the same
/// fresh heap, so neither side inherits the other's allocator state.
fn worker(worker: &str, bodies_path: &Path) -> anyhow::Result<WorkerRun> {
    let output = Command::new(std::env::current_exe()?)
        .args(["--bench", "--worker", worker, "--bodies"])
        .arg(bodies_path)
        .output()?;
    if !output.status.success() {
        bail!(
            "{worker} worker failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let result: Value = serde_json::from_slice(&output.stdout)?;
    Ok(WorkerRun {
        seconds: result["seconds"]
            .as_f64()
            .context("worker printed no seconds")?,
        cpu_seconds: result["cpu_seconds"].as_f64().unwrap_or(f64::NAN),
        wal_syncs: result["wal_syncs"].as_u64().unwrap_or(0),
    })
}

/// The 1-minute load average: how busy the machine was, other programs included.
fn load_average() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|text| text.split_whitespace().next()?.parse().ok())
        .unwrap_or(f64::NAN)
}

/// Decode-only baseline and in-process ingest, alternating run by run, each run in a
/// fresh process reading the same request bytes.
fn in_process_part(
    args: &Args,
    work: &Path,
    started: Instant,
    report: &mut serde_json::Map<String, Value>,
) -> anyhow::Result<()> {
    progress(
        started,
        &format!("in process: generating {} spans", args.ingest_spans),
    );
    let bodies = encode_bodies(args.ingest_spans);
    let spans = bodies.num_spans as f64;
    let bytes_per_request = bodies.num_bytes() / bodies.bodies.len().max(1) as u64;
    let bodies_path = work.join("bodies.bin");
    bodies.save(&bodies_path)?;
    drop(bodies);

    let (mut decode, mut ingest, mut syncs) = (Vec::new(), Vec::new(), Vec::new());
    let (mut decode_cpu, mut ingest_cpu, mut loads) = (Vec::new(), Vec::new(), Vec::new());
    for run in 0..args.runs {
        loads.push(load_average());
        let decoded = worker("decode", &bodies_path)?;
        decode.push(spans / decoded.seconds);
        decode_cpu.push(spans / decoded.cpu_seconds);
        let ingested = worker("ingest", &bodies_path)?;
        ingest.push(spans / ingested.seconds);
        ingest_cpu.push(spans / ingested.cpu_seconds);
        syncs.push(ingested.wal_syncs as f64);
        progress(
            started,
            &format!(
                "in process run {}/{}: decode {:.0} spans/s, ingest {:.0} spans/s \
                 ({:.0} per CPU second), {} WAL syncs, load average {:.1}",
                run + 1,
                args.runs,
                decode[run],
                ingest[run],
                ingest_cpu[run],
                ingested.wal_syncs,
                loads[run]
            ),
        );
    }
    report.insert(
        "decode_only_spans_per_cpu_s".into(),
        json!(median(&decode_cpu)),
    );
    report.insert("ingest_spans_per_cpu_s".into(), json!(median(&ingest_cpu)));
    report.insert(
        "ingest_vs_decode_cpu".into(),
        json!(median(&ingest_cpu) / median(&decode_cpu)),
    );
    report.insert("load_average_in_process".into(), json!(median(&loads)));
    let decode_median = median(&decode);
    let ingest_median = median(&ingest);
    report.insert("decode_only_spans_per_s".into(), json!(decode_median));
    report.insert("ingest_spans_per_s".into(), json!(ingest_median));
    report.insert(
        "ingest_vs_decode".into(),
        json!(ingest_median / decode_median),
    );
    report.insert(
        "ingest_spans_per_wal_sync".into(),
        json!(spans / median(&syncs)),
    );
    report.insert("ingest_requests_in_flight".into(), json!(INGEST_IN_FLIGHT));
    report.insert(
        "ingest_otlp_bytes_per_request".into(),
        json!(bytes_per_request),
    );
    report.insert(
        "samples_in_process".into(),
        json!({ "decode_spans_per_s": decode, "ingest_spans_per_s": ingest, "wal_syncs": syncs,
                "decode_spans_per_cpu_s": decode_cpu, "ingest_spans_per_cpu_s": ingest_cpu,
                "load_average": loads }),
    );
    Ok(())
}

/// Loadgen against a fresh server per run, then freshness under moderate load.
fn e2e_part(
    args: &Args,
    binary: &Path,
    work: &Path,
    started: Instant,
    report: &mut serde_json::Map<String, Value>,
) -> anyhow::Result<()> {
    let max_memory_bytes: u64 = 1 << 30;
    let server_flags = vec![
        "--max-memory-bytes".to_string(),
        max_memory_bytes.to_string(),
    ];
    let load_flags = vec![
        "--rate".to_string(),
        "0".to_string(),
        "--duration".to_string(),
        format!("{}s", args.e2e_seconds),
        "--concurrency".to_string(),
        args.e2e_concurrency.to_string(),
        "--batch".to_string(),
        fixture::TRACES_PER_REQUEST.to_string(),
        // Replaying pre-simulated requests keeps loadgen's share of the 2 cores small:
        // simulating every request cost it about as much CPU as the server spent.
        "--replay-pool".to_string(),
        args.e2e_replay_pool.to_string(),
    ];
    let (mut rates, mut peaks, mut retries, mut failed) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut loads = Vec::new();
    for run in 0..args.runs {
        let dir = tempfile::tempdir_in(work)?;
        let log = work.join(format!("e2e-server-{run}.log"));
        let server = Server::start(
            binary,
            dir.path(),
            &server_flags,
            &log,
            Duration::from_secs(60),
        )?;
        loads.push(load_average());
        let mut flags = load_flags.clone();
        flags.extend(["--seed".to_string(), (run + 1).to_string()]);
        let load = e2e::loadgen(binary, &server, &flags)?;
        let peak = server.peak_rss_bytes()?;
        server.stop(Duration::from_secs(120))?;
        progress(
            started,
            &format!(
                "e2e run {}/{}: {:.0} spans/s acked ({} of {} spans), peak RSS {} MiB, \
                 p50 request {:.1} ms, {} retries, {} failed requests",
                run + 1,
                args.runs,
                load.spans_per_second,
                load.spans_acknowledged,
                load.spans,
                peak >> 20,
                load.p50_request_ms,
                load.retries,
                load.failed_requests
            ),
        );
        rates.push(load.spans_per_second);
        peaks.push(peak as f64);
        retries.push(load.retries as f64);
        failed.push(load.failed_requests as f64);
    }
    let e2e = median(&rates);
    report.insert("e2e_spans_per_s".into(), json!(e2e));
    report.insert("load_average_e2e".into(), json!(median(&loads)));
    if let Some(ingest) = report.get("ingest_spans_per_s").and_then(Value::as_f64) {
        report.insert("e2e_vs_ingest".into(), json!(e2e / ingest));
    }
    report.insert("peak_rss_bytes".into(), json!(median(&peaks)));
    report.insert(
        "peak_rss_bytes_max".into(),
        json!(peaks.iter().copied().fold(0.0, f64::max)),
    );
    report.insert("max_memory_bytes".into(), json!(max_memory_bytes));
    report.insert(
        "e2e_loadgen".into(),
        json!({
            "seconds": args.e2e_seconds,
            "concurrency": args.e2e_concurrency,
            "replay_pool_requests": args.e2e_replay_pool,
            "traces_per_request": fixture::TRACES_PER_REQUEST,
            "retries": retries,
            "failed_requests": failed,
            "spans_per_s": rates,
            "peak_rss_bytes": peaks,
        }),
    );

    // Freshness, while loadgen keeps the server busy at a moderate rate.
    let rate_traces_per_s = 500;
    let dir = tempfile::tempdir_in(work)?;
    let log = work.join("freshness-server.log");
    let server = Server::start(
        binary,
        dir.path(),
        &server_flags,
        &log,
        Duration::from_secs(60),
    )?;
    let background_seconds = 10 + args.freshness_samples as u64;
    let mut load = Command::new(binary)
        .arg("loadgen")
        .args(["--endpoint", &server.ports.otlp_grpc, "--quiet"])
        .args(["--rate", &rate_traces_per_s.to_string()])
        .args(["--duration", &format!("{background_seconds}s")])
        .stdout(std::process::Stdio::null())
        .spawn()?;
    std::thread::sleep(Duration::from_secs(2));
    let samples = e2e::freshness(&server, args.freshness_samples);
    let _ = load.wait();
    server.stop(Duration::from_secs(60))?;
    let samples = samples?;
    let all: Vec<f64> = samples.iter().map(e2e::Freshness::all_ms).collect();
    let pick = |f: fn(&e2e::Freshness) -> f64| samples.iter().map(f).collect::<Vec<_>>();
    report.insert("freshness_ms".into(), json!(median(&all)));
    report.insert(
        "freshness_max_ms".into(),
        json!(all.iter().copied().fold(0.0, f64::max)),
    );
    report.insert(
        "freshness_trace_ms".into(),
        json!(median(&pick(|f| f.trace_ms))),
    );
    report.insert(
        "freshness_search_ms".into(),
        json!(median(&pick(|f| f.search_ms))),
    );
    report.insert(
        "freshness_graph_ms".into(),
        json!(median(&pick(|f| f.graph_ms))),
    );
    report.insert(
        "freshness_background_traces_per_s".into(),
        json!(rate_traces_per_s),
    );
    progress(
        started,
        &format!(
            "freshness: median {:.1} ms, max {:.1} ms over {} traces",
            median(&all),
            all.iter().copied().fold(0.0, f64::max),
            all.len()
        ),
    );
    Ok(())
}

/// The query data set: storage size, trace by id and graph against DuckDB.
fn query_part(
    args: &Args,
    binary: &Path,
    work: &Path,
    started: Instant,
    report: &mut serde_json::Map<String, Value>,
) -> anyhow::Result<()> {
    report.insert("load_average_queries".into(), json!(load_average()));
    let data_dir = work.join("query-data");
    progress(
        started,
        &format!("queries: storing {} spans in process", args.spans),
    );
    let set = query_set::build(&data_dir, args.spans)?;
    progress(
        started,
        &format!(
            "queries: {} spans in {} segments, {} Parquet bytes, built in {:.1} s",
            set.num_spans,
            set.num_segments,
            set.parquet_bytes,
            set.build_time.as_secs_f64()
        ),
    );
    let spans = set.num_spans as f64;
    report.insert("query_spans".into(), json!(set.num_spans));
    report.insert("query_segments".into(), json!(set.num_segments));
    report.insert("query_build_s".into(), json!(set.build_time.as_secs_f64()));
    report.insert(
        "bytes_per_span".into(),
        json!(set.parquet_bytes as f64 / spans),
    );
    report.insert(
        "otlp_bytes_per_span".into(),
        json!(set.otlp_bytes as f64 / spans),
    );
    report.insert(
        "head_memory_bytes_per_span".into(),
        json!(set.head_bytes as f64 / spans),
    );
    report.insert(
        "otlp_vs_parquet".into(),
        json!(set.otlp_bytes as f64 / set.parquet_bytes as f64),
    );

    // The server finds no graph snapshot, so it rebuilds the graph from every segment.
    let log = work.join("query-server.log");
    let server = Server::start(binary, &data_dir, &[], &log, Duration::from_secs(3600))?;
    report.insert(
        "server_start_with_graph_rebuild_ms".into(),
        json!(ms(server.ready_after)),
    );
    progress(
        started,
        &format!(
            "queries: server ready after {:.0} ms (graph rebuilt)",
            ms(server.ready_after)
        ),
    );

    // Trace by id, native (OTLP/JSON) and Jaeger, every lookup id `runs` times.
    let ids: Vec<String> = set.lookups.iter().map(|(id, _)| hex::encode(id)).collect();
    server.get_json(&format!("/api/v1/traces/{}", ids[0]))?;
    let (mut native, mut jaeger) = (Vec::new(), Vec::new());
    for _ in 0..args.runs {
        for ((_, num_spans), id) in set.lookups.iter().zip(&ids) {
            let timer = Instant::now();
            let json = server.get_json(&format!("/api/v1/traces/{id}"))?;
            native.push(ms(timer.elapsed()));
            let found = e2e::count_otlp_spans(&json);
            anyhow::ensure!(
                found == *num_spans,
                "trace {id}: {found} of {num_spans} spans"
            );
            let timer = Instant::now();
            server.get_json(&format!("/api/traces/{id}"))?;
            jaeger.push(ms(timer.elapsed()));
        }
    }

    // The service graph over every stored span.
    let (start_us, end_us) = query_set::graph_range_micros();
    let graph_path = format!("/api/v1/graph?start={start_us}&end={end_us}");
    let mut graph = server.get_json(&graph_path)?;
    let mut graph_times = Vec::new();
    for _ in 0..args.runs.max(5) {
        let timer = Instant::now();
        graph = server.get_json(&graph_path)?;
        graph_times.push(ms(timer.elapsed()));
    }
    report.insert(
        "query_server_peak_rss_bytes".into(),
        json!(server.peak_rss_bytes()?),
    );
    report.insert(
        "graph_tentative_calls".into(),
        graph["tentative_calls"].clone(),
    );
    report.insert("graph_unpaired".into(), graph["unpaired"].clone());
    server.stop(Duration::from_secs(600))?;
    progress(
        started,
        &format!(
            "queries: tracegate trace by id {:.2} ms, graph {:.2} ms; now DuckDB",
            median(&native),
            median(&graph_times)
        ),
    );

    // DuckDB on the same files, in one warm Python process.
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/duckdb_queries.py");
    let glob = data_dir.join("segments/*.parquet");
    let output = Command::new(&args.python)
        .arg(&script)
        .arg(&glob)
        .arg(ids.join(","))
        .arg(args.runs.max(5).to_string())
        .output()
        .with_context(|| {
            format!(
                "run {} (benches/run installs duckdb)",
                args.python.display()
            )
        })?;
    if !output.status.success() {
        bail!(
            "DuckDB script failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let duck: Value = serde_json::from_slice(&output.stdout)?;
    for ((_, num_spans), id) in set.lookups.iter().zip(&ids) {
        let rows = duck["trace_rows"][id].as_u64().unwrap_or(0);
        anyhow::ensure!(
            rows == *num_spans as u64,
            "DuckDB trace {id}: {rows} of {num_spans}"
        );
    }

    let trace_ms = median(&native);
    let trace_duck = duck["trace_by_id_ms"].as_f64().unwrap_or(f64::NAN);
    let graph_ms = median(&graph_times);
    let graph_duck = duck["graph_ms"].as_f64().unwrap_or(f64::NAN);
    report.insert("trace_by_id_ms".into(), json!(trace_ms));
    report.insert("trace_by_id_jaeger_ms".into(), json!(median(&jaeger)));
    report.insert("trace_by_id_duckdb_ms".into(), json!(trace_duck));
    report.insert("trace_by_id_vs_duckdb".into(), json!(trace_ms / trace_duck));
    report.insert("graph_ms".into(), json!(graph_ms));
    report.insert("graph_duckdb_ms".into(), json!(graph_duck));
    report.insert("graph_vs_duckdb".into(), json!(graph_ms / graph_duck));
    report.insert(
        "duckdb".into(),
        json!({ "version": duck["duckdb_version"], "settings": duck["settings"] }),
    );
    report.insert(
        "samples_queries".into(),
        json!({ "trace_by_id_ms": native, "trace_by_id_jaeger_ms": jaeger, "graph_ms": graph_times }),
    );
    let check = compare_graphs(&graph, &duck["edges"]);
    progress(
        started,
        &format!(
            "queries: DuckDB trace by id {trace_duck:.2} ms, graph {graph_duck:.2} ms; edges {}",
            if check["match"] == true {
                "agree"
            } else {
                "DISAGREE"
            }
        ),
    );
    report.insert("graph_check".into(), check);
    Ok(())
}

/// Compares tracegate's service-to-service edges with DuckDB's self-join: calls and
/// errors must be equal, percentiles are reported as the largest relative difference.
/// Edges from the `user` node and to uninstrumented peers exist only in tracegate.
fn compare_graphs(graph: &Value, duck_edges: &Value) -> Value {
    let empty = Vec::new();
    let virtual_nodes: std::collections::HashSet<&str> = graph["nodes"]
        .as_array()
        .unwrap_or(&empty)
        .iter()
        .filter(|n| n["virtual"] == true)
        .filter_map(|n| n["id"].as_str())
        .collect();
    let key = |e: &Value| {
        (
            e["source"].as_str().unwrap_or_default().to_string(),
            e["target"].as_str().unwrap_or_default().to_string(),
        )
    };
    let ours: std::collections::BTreeMap<_, &Value> = graph["edges"]
        .as_array()
        .unwrap_or(&empty)
        .iter()
        .filter(|e| {
            let (s, t) = key(e);
            !virtual_nodes.contains(s.as_str()) && !virtual_nodes.contains(t.as_str())
        })
        .map(|e| (key(e), e))
        .collect();
    let theirs: std::collections::BTreeMap<_, &Value> = duck_edges
        .as_array()
        .unwrap_or(&empty)
        .iter()
        .map(|e| (key(e), e))
        .collect();

    let mut mismatches = Vec::new();
    let mut max_quantile_error: f64 = 0.0;
    let mut worst_quantile = Value::Null;
    let mut calls = 0u64;
    for (edge, theirs_edge) in &theirs {
        let Some(ours_edge) = ours.get(edge) else {
            mismatches.push(format!("{} -> {} missing in tracegate", edge.0, edge.1));
            continue;
        };
        calls += theirs_edge["calls"].as_u64().unwrap_or(0);
        for field in ["calls", "errors"] {
            if ours_edge[field] != theirs_edge[field] {
                mismatches.push(format!(
                    "{} -> {} {field}: tracegate {} DuckDB {}",
                    edge.0, edge.1, ours_edge[field], theirs_edge[field]
                ));
            }
        }
        for field in [
            "p50_ms",
            "p90_ms",
            "p99_ms",
            "server_p50_ms",
            "server_p90_ms",
            "server_p99_ms",
        ] {
            if let (Some(a), Some(b)) = (ours_edge[field].as_f64(), theirs_edge[field].as_f64())
                && b > 0.0
                && (a - b).abs() / b > max_quantile_error
            {
                max_quantile_error = (a - b).abs() / b;
                worst_quantile = json!({
                    "edge": format!("{} -> {}", edge.0, edge.1), "field": field,
                    "calls": theirs_edge["calls"], "tracegate": a, "duckdb": b,
                });
            }
        }
    }
    for edge in ours.keys().filter(|e| !theirs.contains_key(*e)) {
        mismatches.push(format!("{} -> {} missing in DuckDB", edge.0, edge.1));
    }
    json!({
        "match": mismatches.is_empty(),
        "edges_compared": theirs.len(),
        "calls_compared": calls,
        "max_quantile_relative_error": max_quantile_error,
        "worst_quantile": worst_quantile,
        "mismatches": mismatches,
    })
}

/// The targets of docs/product.md, judged on the medians.
fn judge(report: &serde_json::Map<String, Value>) -> Value {
    let get = |key: &str| report.get(key).and_then(Value::as_f64);
    let mut targets = Vec::new();
    let mut target = |key: &str, want: &str, met: Option<bool>| {
        targets.push(json!({ "key": key, "target": want, "value": get(key), "met": met }));
    };
    target(
        "ingest_vs_decode",
        ">= 0.5",
        get("ingest_vs_decode").map(|v| v >= 0.5),
    );
    target(
        "e2e_vs_ingest",
        ">= 0.4",
        get("e2e_vs_ingest").map(|v| v >= 0.4),
    );
    target(
        "bytes_per_span",
        "<= 25",
        get("bytes_per_span").map(|v| v <= 25.0),
    );
    target(
        "otlp_vs_parquet",
        ">= 10",
        get("otlp_vs_parquet").map(|v| v >= 10.0),
    );
    target(
        "trace_by_id_vs_duckdb",
        "<= 1",
        get("trace_by_id_vs_duckdb").map(|v| v <= 1.0),
    );
    target(
        "graph_vs_duckdb",
        "<= 1",
        get("graph_vs_duckdb").map(|v| v <= 1.0),
    );
    target(
        "freshness_ms",
        "<= 1000",
        get("freshness_ms").map(|v| v <= 1000.0),
    );
    let peak = get("peak_rss_bytes_max");
    let limit = get("max_memory_bytes");
    target(
        "peak_rss_bytes_max",
        "<= --max-memory-bytes",
        peak.zip(limit).map(|(p, l)| p <= l),
    );
    let graph_match = report.get("graph_check").map(|c| c["match"] == true);
    targets.push(
        json!({ "key": "graph_check.match", "target": "edges equal DuckDB's",
                         "value": graph_match, "met": graph_match }),
    );
    Value::Array(targets)
}

fn print_table(report: &Value) {
    let rows: [(&str, &str); 37] = [
        ("decode_only_spans_per_s", "spans/s"),
        ("ingest_spans_per_s", "spans/s"),
        ("ingest_vs_decode", "ratio"),
        ("decode_only_spans_per_cpu_s", "spans/CPU s"),
        ("ingest_spans_per_cpu_s", "spans/CPU s"),
        ("ingest_vs_decode_cpu", "ratio"),
        ("load_average_in_process", "1-min load"),
        ("ingest_spans_per_wal_sync", "spans"),
        ("e2e_spans_per_s", "spans/s"),
        ("e2e_vs_ingest", "ratio"),
        ("load_average_e2e", "1-min load"),
        ("peak_rss_bytes", "bytes"),
        ("peak_rss_bytes_max", "bytes"),
        ("max_memory_bytes", "bytes"),
        ("freshness_ms", "ms"),
        ("freshness_max_ms", "ms"),
        ("freshness_trace_ms", "ms"),
        ("freshness_search_ms", "ms"),
        ("freshness_graph_ms", "ms"),
        ("load_average_queries", "1-min load"),
        ("query_spans", "spans"),
        ("query_segments", "files"),
        ("bytes_per_span", "bytes"),
        ("otlp_bytes_per_span", "bytes"),
        ("otlp_vs_parquet", "ratio"),
        ("head_memory_bytes_per_span", "bytes"),
        ("server_start_with_graph_rebuild_ms", "ms"),
        ("query_build_s", "s"),
        ("query_server_peak_rss_bytes", "bytes"),
        ("trace_by_id_ms", "ms"),
        ("trace_by_id_jaeger_ms", "ms"),
        ("trace_by_id_duckdb_ms", "ms"),
        ("trace_by_id_vs_duckdb", "ratio"),
        ("graph_ms", "ms"),
        ("graph_duckdb_ms", "ms"),
        ("graph_vs_duckdb", "ratio"),
        ("graph_tentative_calls", "calls"),
    ];
    println!("\n{:<36} {:>16}  unit", "metric (median)", "value");
    println!("{}", "-".repeat(62));
    for (key, unit) in rows {
        let Some(value) = report[key].as_f64() else {
            continue;
        };
        let text = if value.abs() >= 1000.0 {
            format!("{value:.0}")
        } else {
            format!("{value:.3}")
        };
        println!("{key:<36} {text:>16}  {unit}");
    }
    if let Some(check) = report.get("graph_check") {
        println!(
            "{:<36} {:>16}  ({} edges, max quantile diff {:.2}%)",
            "graph edges equal DuckDB's",
            check["match"],
            check["edges_compared"],
            check["max_quantile_relative_error"].as_f64().unwrap_or(0.0) * 100.0
        );
    }
    println!("\n{:<28} {:<22} {:>14}  result", "target", "want", "value");
    println!("{}", "-".repeat(74));
    for target in report["targets"].as_array().into_iter().flatten() {
        let value = match &target["value"] {
            Value::Number(n) => format!("{:.3}", n.as_f64().unwrap_or(f64::NAN)),
            other => other.to_string(),
        };
        let result = match target["met"].as_bool() {
            Some(true) => "met",
            Some(false) => "MISSED",
            None => "not measured",
        };
        let want = target["target"].as_str().unwrap_or_default();
        println!(
            "{:<28} {:<22} {:>14}  {result}",
            target["key"].as_str().unwrap_or_default(),
            want,
            value
        );
    }
}
