//! `tracegate serve`: binds the listeners, replays the WAL, serves OTLP and the HTTP
//! API until told to stop, then drains and flushes.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use std::time::Instant;

use anyhow::Context;
use axum::Router;
use axum::extract::Request;
use serde::Serialize;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tower::ServiceExt;
use tracegate_collector::{Ingestor, grpc_service, http_router};
use tracegate_query::graph::{LiveGraph, SWEEP_EVERY};
use tracegate_storage::{CommitObserver, Store, StoreConfig};
use tracegate_ui_api::{AppState, api_router};

use crate::config::ServeConfig;

/// The addresses the server actually listens on, as written to `ports.json`.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct BoundAddrs {
    /// OTLP/gRPC.
    pub otlp_grpc: SocketAddr,
    /// OTLP/HTTP.
    pub otlp_http: SocketAddr,
    /// Query API, web page and metrics.
    pub http: SocketAddr,
}

fn bind(addr: SocketAddr, what: &str) -> anyhow::Result<std::net::TcpListener> {
    let listener = std::net::TcpListener::bind(addr)
        .with_context(|| format!("failed to bind the {what} listener to {addr}"))?;
    listener.set_nonblocking(true)?;
    Ok(listener)
}

fn write_ports(data_dir: &Path, addrs: &BoundAddrs) -> anyhow::Result<()> {
    let path = data_dir.join("ports.json");
    let tmp = data_dir.join("ports.json.tmp");
    std::fs::write(&tmp, serde_json::to_vec_pretty(addrs)?)
        .with_context(|| format!("failed to write {}", tmp.display()))?;
    std::fs::rename(&tmp, &path).with_context(|| format!("failed to write {}", path.display()))?;
    Ok(())
}

/// Waits until `stop` turns true.
async fn stopped(mut stop: watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

/// Ticks the service graph every [`SWEEP_EVERY`] until the server stops, so that spans
/// still waiting for a partner when traffic stops are settled (as virtual edges or
/// unpaired) once their pairing window ends, not at the next export.
fn spawn_graph_sweeper(graph: std::sync::Weak<LiveGraph>, mut stop: watch::Receiver<bool>) {
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(SWEEP_EVERY);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = ticks.tick() => {}
                _ = stop.wait_for(|s| *s) => return,
            }
            let Some(graph) = graph.upgrade() else { return };
            // A sweep walks every pending trace under the graph's lock: off the runtime.
            if tokio::task::spawn_blocking(move || graph.tick())
                .await
                .is_err()
            {
                tracing::error!("service graph sweep panicked");
            }
        }
    });
}

/// Runs the server until `shutdown` resolves. `on_ready` is called with the bound
/// addresses once every listener is up and the WAL is replayed.
///
/// # Errors
/// When a listener cannot be bound or the data directory cannot be opened.
pub async fn run(
    config: ServeConfig,
    shutdown: impl Future<Output = ()>,
    on_ready: impl FnOnce(BoundAddrs),
) -> anyhow::Result<()> {
    let started = Instant::now();
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("failed to create data dir {}", config.data_dir.display()))?;

    // One server per data directory: a second one would replay and delete the WAL the
    // first is still appending to. The lock lasts as long as this function runs.
    let lock_path = config.data_dir.join("LOCK");
    let lock = std::fs::File::create(&lock_path)
        .with_context(|| format!("failed to create {}", lock_path.display()))?;
    if lock.try_lock().is_err() {
        anyhow::bail!(
            "data dir {} is in use by another tracegate process (locked {})",
            config.data_dir.display(),
            lock_path.display()
        );
    }

    // Bind everything first, so that ports.json and /ready tell the truth early.
    let http = bind(config.http_addr, "HTTP API")?;
    let otlp_grpc = bind(config.otlp_grpc_addr, "OTLP/gRPC")?;
    let otlp_http = bind(config.otlp_http_addr, "OTLP/HTTP")?;
    let addrs = BoundAddrs {
        otlp_grpc: otlp_grpc.local_addr()?,
        otlp_http: otlp_http.local_addr()?,
        http: http.local_addr()?,
    };
    write_ports(&config.data_dir, &addrs)?;
    tracing::info!(
        otlp_grpc = %addrs.otlp_grpc,
        otlp_http = %addrs.otlp_http,
        http = %addrs.http,
        data_dir = %config.data_dir.display(),
        "listeners bound"
    );

    // While the WAL replays, the HTTP address answers /health and a 503 /ready; the
    // same server then hands every request to the full API.
    let (stop_tx, stop_rx) = watch::channel(false);
    let gate: Arc<OnceLock<Router>> = Arc::default();
    let api = tokio::spawn(
        axum::serve(
            TcpListener::from_std(http)?,
            gated_router(Arc::clone(&gate)),
        )
        .with_graceful_shutdown(stopped(stop_rx.clone()))
        .into_future(),
    );

    let store_config = StoreConfig {
        max_head_spans: config.max_head_spans,
        max_head_age: config.max_head_age,
        max_memory_bytes: config.max_memory_bytes,
        ..StoreConfig::new(&config.data_dir)
    };
    let data_dir = config.data_dir.clone();
    let (store, replay, graph) =
        tokio::task::spawn_blocking(move || open_storage(&data_dir, store_config)).await??;
    tracing::info!(
        num_files = replay.num_files,
        num_records = replay.num_records,
        num_spans = replay.num_spans,
        truncated_bytes = replay.truncated_bytes,
        num_segments = replay.num_segments,
        elapsed_ms = replay.elapsed.as_millis() as u64,
        "write-ahead log replayed"
    );

    spawn_graph_sweeper(Arc::downgrade(&graph), stop_rx.clone());
    let ingestor = Ingestor::new(store.clone(), config.max_request_bytes);
    let state = AppState::new(store.clone(), ingestor.clone(), graph);
    let _ = gate.set(api_router(state.clone()));
    let otlp_http_server = tokio::spawn(
        axum::serve(
            TcpListener::from_std(otlp_http)?,
            http_router(ingestor.clone()),
        )
        .with_graceful_shutdown(stopped(stop_rx.clone()))
        .into_future(),
    );
    // Without TCP_NODELAY, Nagle holds back the trailers of an answer until the client
    // acknowledges its headers, which delayed ACK defers by up to 40 ms: measured, the
    // p99 export took 48 ms on loopback at one request in flight, against 12 ms over HTTP.
    let grpc_incoming =
        tonic::transport::server::TcpIncoming::from(TcpListener::from_std(otlp_grpc)?)
            .with_nodelay(Some(true));
    let grpc = tokio::spawn(
        tonic::transport::Server::builder()
            // Export requests are tens of kilobytes to megabytes: with HTTP/2's default
            // 64 KiB windows, concurrent requests on one connection wait for each other's
            // window updates.
            .initial_stream_window_size(GRPC_STREAM_WINDOW_BYTES)
            .initial_connection_window_size(GRPC_CONNECTION_WINDOW_BYTES)
            .add_service(grpc_service(ingestor.clone()))
            .serve_with_incoming_shutdown(grpc_incoming, stopped(stop_rx.clone())),
    );

    state.set_ready();
    tracegate_ui_api::spawn_outlier_monitor(state.clone());
    tracing::info!(elapsed_ms = started.elapsed().as_millis() as u64, "ready");
    on_ready(addrs);

    shutdown.await;
    tracing::info!("shutting down: no new connections, draining requests");
    let _ = stop_tx.send(true);
    // A client that stalls mid-request must not keep the head from being flushed
    // before an orchestrator's kill deadline: draining gets a deadline of its own.
    let deadline = tokio::time::Instant::now() + DRAIN_DEADLINE;
    for (name, server) in [("HTTP API", api), ("OTLP/HTTP", otlp_http_server)] {
        finish(name, server, deadline).await;
    }
    finish("OTLP/gRPC", grpc, deadline).await;

    let flushing = Instant::now();
    tokio::task::spawn_blocking(move || store.shutdown()).await?;
    tracing::info!(
        elapsed_ms = flushing.elapsed().as_millis() as u64,
        "head flushed; stopped"
    );
    drop(lock);
    Ok(())
}

/// Opens the graph from its snapshot, then the store (whose WAL replay feeds the graph),
/// then feeds the graph any segment newer than its snapshot.
fn open_storage(
    data_dir: &Path,
    store_config: StoreConfig,
) -> anyhow::Result<(Store, tracegate_storage::ReplayReport, Arc<LiveGraph>)> {
    let (graph, graph_generation) = LiveGraph::load(data_dir)?;
    let graph = Arc::new(graph);
    let observers: Vec<Arc<dyn CommitObserver>> =
        vec![Arc::clone(&graph) as Arc<dyn CommitObserver>];
    let (store, replay) = Store::open(store_config, observers)?;
    let mut rebuilt = 0u64;
    for segment in store
        .tables()
        .segments
        .iter()
        .filter(|s| s.generation() > graph_generation)
    {
        for batch in segment.read(None)? {
            graph.ingest(&batch)?;
            rebuilt += batch.num_rows() as u64;
        }
    }
    if rebuilt > 0 {
        tracing::info!(
            num_spans = rebuilt,
            "service graph rebuilt from segments newer than its snapshot"
        );
    }
    Ok((store, replay, graph))
}

/// How long a shutdown waits for in-flight requests before it flushes anyway.
const DRAIN_DEADLINE: Duration = Duration::from_secs(10);

/// HTTP/2 flow-control window of one OTLP/gRPC request stream.
const GRPC_STREAM_WINDOW_BYTES: u32 = 4 << 20;

/// HTTP/2 flow-control window of one OTLP/gRPC connection, shared by its streams.
const GRPC_CONNECTION_WINDOW_BYTES: u32 = 16 << 20;

/// Waits for a server task until `deadline`, then aborts it.
async fn finish<E: std::fmt::Display>(
    name: &str,
    mut server: JoinHandle<Result<(), E>>,
    deadline: tokio::time::Instant,
) {
    match tokio::time::timeout_at(deadline, &mut server).await {
        Ok(Ok(Ok(()))) => {}
        Ok(Ok(Err(error))) => tracing::warn!(%error, server = name, "server stopped with an error"),
        Ok(Err(error)) => tracing::warn!(%error, server = name, "server task failed"),
        Err(_) => {
            tracing::warn!(
                server = name,
                "requests still open at the drain deadline; closing them"
            );
            server.abort();
        }
    }
}

/// The HTTP API behind a gate: until the gate holds the full router (after the WAL
/// replay), `/health` answers 200 and everything else 503.
fn gated_router(gate: Arc<OnceLock<Router>>) -> Router {
    Router::new().fallback(move |request: Request| {
        let gate = Arc::clone(&gate);
        async move {
            match gate.get() {
                Some(router) => match router.clone().oneshot(request).await {
                    Ok(response) => response,
                    Err(never) => match never {},
                },
                None => starting_router()
                    .oneshot(request)
                    .await
                    .unwrap_or_else(|never| match never {}),
            }
        }
    })
}

fn starting_router() -> axum::Router {
    use axum::http::StatusCode;
    use axum::routing::get;
    axum::Router::new()
        .route("/health", get(|| async { (StatusCode::OK, "ok\n") }))
        .fallback(|| async {
            (
                StatusCode::SERVICE_UNAVAILABLE,
                "starting: replaying the write-ahead log\n",
            )
        })
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                tracing::warn!(%error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => tracing::info!("SIGINT received"),
        () = terminate => tracing::info!("SIGTERM received"),
    }
}
