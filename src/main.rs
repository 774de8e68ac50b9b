//! The `tracegate` binary: parses the command line and runs the command.

use clap::Parser;
use tracegate::{Cli, Command, config, demo, loadgen, serve};
use tracing_subscriber::EnvFilter;

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        match cli.command {
            Command::Serve(args) => {
                let config: config::ServeConfig = args.resolve()?;
                serve::run(config, serve::shutdown_signal(), |_| {}).await
            }
            Command::Demo(args) => demo::run(args).await,
            Command::Loadgen(args) => {
                let report = loadgen::run(&args).await?;
                if args.json {
                    println!("{}", serde_json::to_string_pretty(&report)?);
                } else {
                    println!(
                        "sent {} traces ({} spans) in {:.1}s: {} spans acknowledged ({:.0}/s), \
                         {} rejected, {} failed requests, {} retries, \
                         request p50 {:.1} ms p99 {:.1} ms",
                        report.traces,
                        report.spans,
                        report.elapsed_seconds,
                        report.spans_acknowledged,
                        report.spans_per_second,
                        report.spans_rejected,
                        report.failed_requests,
                        report.retries,
                        report.p50_request_ms,
                        report.p99_request_ms
                    );
                }
                if report.failed_requests > 0 {
                    anyhow::bail!("{} export requests failed", report.failed_requests);
                }
                Ok(())
            }
        }
    })
}
