//! The `tracegate` binary's commands: `serve`, `demo` and `loadgen`, plus the simulated
//! mesh they share with the benchmarks and end-to-end tests.

pub mod config;
pub mod demo;
pub mod loadgen;
pub mod replay;
pub mod serve;
pub mod sim;

use clap::{Parser, Subcommand};

/// The allocator of every program linking this crate (the binary, its benchmarks and
/// tests): glibc's spent half of the ingest profile consolidating and unlinking chunks
/// freed on other threads; mimalloc's thread-local heaps avoid that. It is built without
/// transparent huge pages (`no_thp`): with them, a third of the server's CPU under load
/// went to the kernel zeroing 2 MiB pages faulted back in after mimalloc purged parts of
/// them.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// tracegate: a distributed-tracing collector and analysis engine for service meshes.
#[derive(Debug, Parser)]
#[command(name = "tracegate", version, about)]
pub struct Cli {
    /// What to run.
    #[command(subcommand)]
    pub command: Command,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the collector, storage, analysis and HTTP API until SIGINT/SIGTERM.
    Serve(config::ServeArgs),
    /// Run the server on a throw-away data dir with simulated mesh traffic.
    Demo(demo::DemoArgs),
    /// Send simulated mesh traffic to a running collector over OTLP.
    Loadgen(loadgen::LoadgenArgs),
}
