//! `tracegate demo`: the server on a throw-away data directory, fed by the simulated
//! mesh, with the URLs to open.

use std::time::Duration;

use anyhow::Context;
use tokio::sync::oneshot;

use crate::config::ServeConfig;
use crate::loadgen::{self, LoadgenArgs, Protocol};
use crate::serve::{self, BoundAddrs};
use crate::sim::Scenario;

/// Flags of `tracegate demo`.
#[derive(Debug, Clone, clap::Args)]
pub struct DemoArgs {
    /// Query API and web page address; port 0 picks a free port.
    #[arg(long, default_value = "127.0.0.1:16686")]
    pub http_addr: std::net::SocketAddr,
    /// OTLP/gRPC address.
    #[arg(long, default_value = "127.0.0.1:4317")]
    pub otlp_grpc_addr: std::net::SocketAddr,
    /// OTLP/HTTP address.
    #[arg(long, default_value = "127.0.0.1:4318")]
    pub otlp_http_addr: std::net::SocketAddr,
    /// Traces per second of demo traffic.
    #[arg(long, default_value_t = 50.0)]
    pub rate: f64,
    /// Fault scenario of the simulated mesh.
    #[arg(long, value_enum, default_value_t = Scenario::CanaryRegression)]
    pub scenario: Scenario,
    /// Stop by itself after this long (e.g. 10m); runs until Ctrl-C when absent.
    #[arg(long, value_parser = parse_duration)]
    pub duration: Option<Duration>,
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    tracegate_ui_api::parse_duration("duration", text).map_err(|e| e.message)
}

/// Runs the demo until Ctrl-C (or `--duration`).
///
/// # Errors
/// When the server cannot start.
pub async fn run(args: DemoArgs) -> anyhow::Result<()> {
    let data_dir = tempfile::Builder::new()
        .prefix("tracegate-demo-")
        .tempdir()
        .context("failed to create a temporary data dir")?;
    let config = ServeConfig {
        data_dir: data_dir.path().to_path_buf(),
        otlp_grpc_addr: args.otlp_grpc_addr,
        otlp_http_addr: args.otlp_http_addr,
        http_addr: args.http_addr,
        max_request_bytes: 16 << 20,
        max_head_spans: 200_000,
        max_head_age: Duration::from_secs(30),
        max_memory_bytes: 512 << 20,
    };
    let (ready_tx, ready_rx) = oneshot::channel::<BoundAddrs>();
    let duration = args.duration;
    let stop = async move {
        match duration {
            Some(limit) => {
                tokio::select! {
                    () = serve::shutdown_signal() => {}
                    () = tokio::time::sleep(limit) => tracing::info!("demo duration reached"),
                }
            }
            None => serve::shutdown_signal().await,
        }
    };
    let server = tokio::spawn(serve::run(config, stop, move |addrs| {
        let _ = ready_tx.send(addrs);
    }));

    let Ok(addrs) = ready_rx.await else {
        // The server ended before it was ready: its own error says why (a port in use...).
        server.await.context("server task failed")??;
        anyhow::bail!("the server stopped before it was ready");
    };
    let base = format!("http://{}", addrs.http);
    println!(
        "tracegate demo is running (data in {}, deleted on exit)",
        data_dir.path().display()
    );
    println!("  scenario:            {}", args.scenario);
    println!("  OTLP/gRPC:           {}", addrs.otlp_grpc);
    println!(
        "  OTLP/HTTP:           http://{}/v1/traces",
        addrs.otlp_http
    );
    println!("  services (Jaeger):   {base}/api/services");
    println!("  search (Jaeger):     {base}/api/traces?service=frontend&limit=5");
    println!("  dependencies:        {base}/api/dependencies");
    println!("  service graph:       {base}/api/v1/graph?by=version");
    println!("  demarcation:         {base}/api/v1/demarcation");
    println!("  outliers:            {base}/api/v1/outliers");
    println!(
        "  canary verdict:      {base}/api/v1/canary/verdict?service=reviews\
         &baseline_version=v1&canary_version=v2&window=5m"
    );
    println!("  metrics:             {base}/metrics");
    println!("  OpenAPI:             {base}/api/openapi.yaml");
    println!("Press Ctrl-C to stop.");

    let traffic = LoadgenArgs {
        endpoint: addrs.otlp_grpc.to_string(),
        protocol: Protocol::Grpc,
        rate: args.rate,
        duration: args
            .duration
            .unwrap_or(Duration::from_secs(365 * 24 * 3600)),
        max_traces: None,
        scenario: args.scenario,
        batch: 10,
        concurrency: 4,
        gzip: false,
        seed: 42,
        json: false,
        quiet: true,
        replay_pool: 0,
    };
    let load = tokio::spawn(async move { loadgen::run(&traffic).await });
    let result = server.await.context("server task failed")?;
    load.abort();
    result
}
