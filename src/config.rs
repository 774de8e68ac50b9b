//! The `serve` settings: flag beats environment beats `--config` file beats default.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use serde::Deserialize;

/// Settings that may come from a flag, `TRACEGATE_<NAME>` or the TOML file.
#[derive(Debug, Clone, Default, clap::Args, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ServeArgs {
    /// TOML file with any of these settings (keys as the flags, without dashes in front).
    #[arg(long, env = "TRACEGATE_CONFIG")]
    #[serde(skip)]
    pub config: Option<PathBuf>,
    /// Where the WAL and segments live [default: ./tracegate-data].
    #[arg(long, env = "TRACEGATE_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// OTLP/gRPC listen address; port 0 picks a free port [default: 127.0.0.1:4317].
    #[arg(long, env = "TRACEGATE_OTLP_GRPC_ADDR")]
    pub otlp_grpc_addr: Option<SocketAddr>,
    /// OTLP/HTTP listen address [default: 127.0.0.1:4318].
    #[arg(long, env = "TRACEGATE_OTLP_HTTP_ADDR")]
    pub otlp_http_addr: Option<SocketAddr>,
    /// Query API, web page and metrics listen address [default: 127.0.0.1:16686].
    #[arg(long, env = "TRACEGATE_HTTP_ADDR")]
    pub http_addr: Option<SocketAddr>,
    /// Largest OTLP request accepted, bytes after decompression [default: 16777216].
    #[arg(long, env = "TRACEGATE_MAX_REQUEST_BYTES")]
    pub max_request_bytes: Option<usize>,
    /// Seal the head segment into Parquet after this many spans [default: 1000000].
    #[arg(long, env = "TRACEGATE_MAX_HEAD_SPANS")]
    pub max_head_spans: Option<usize>,
    /// Seal the head segment after this many seconds [default: 60].
    #[arg(long, env = "TRACEGATE_MAX_HEAD_AGE_SECONDS")]
    pub max_head_age_seconds: Option<u64>,
    /// Memory budget of the server: unflushed spans may take half of it, beyond which
    /// ingest is refused (retryably), and a head is sealed at a third of that [default:
    /// 1073741824].
    #[arg(long, env = "TRACEGATE_MAX_MEMORY_BYTES")]
    pub max_memory_bytes: Option<usize>,
}

/// The resolved settings of a server.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// Data directory.
    pub data_dir: PathBuf,
    /// OTLP/gRPC address.
    pub otlp_grpc_addr: SocketAddr,
    /// OTLP/HTTP address.
    pub otlp_http_addr: SocketAddr,
    /// HTTP API address.
    pub http_addr: SocketAddr,
    /// Request size limit.
    pub max_request_bytes: usize,
    /// Head seal threshold in spans.
    pub max_head_spans: usize,
    /// Head seal threshold in time.
    pub max_head_age: Duration,
    /// Memory limit for unflushed spans.
    pub max_memory_bytes: usize,
}

impl ServeArgs {
    /// Resolves flags and environment (already merged by clap) over the file, over the
    /// defaults.
    ///
    /// # Errors
    /// When the config file cannot be read or parsed, or a value is out of range.
    pub fn resolve(&self) -> anyhow::Result<ServeConfig> {
        let file = match &self.config {
            Some(path) => read_file(path)?,
            None => ServeArgs::default(),
        };
        let pick = |flag: Option<SocketAddr>, file: Option<SocketAddr>, default: &str| {
            flag.or(file)
                .unwrap_or_else(|| default.parse().expect("valid default address"))
        };
        let config = ServeConfig {
            data_dir: self
                .data_dir
                .clone()
                .or(file.data_dir)
                .unwrap_or_else(|| PathBuf::from("./tracegate-data")),
            otlp_grpc_addr: pick(self.otlp_grpc_addr, file.otlp_grpc_addr, "127.0.0.1:4317"),
            otlp_http_addr: pick(self.otlp_http_addr, file.otlp_http_addr, "127.0.0.1:4318"),
            http_addr: pick(self.http_addr, file.http_addr, "127.0.0.1:16686"),
            max_request_bytes: self
                .max_request_bytes
                .or(file.max_request_bytes)
                .unwrap_or(16 << 20),
            max_head_spans: self
                .max_head_spans
                .or(file.max_head_spans)
                .unwrap_or(1_000_000),
            max_head_age: Duration::from_secs(
                self.max_head_age_seconds
                    .or(file.max_head_age_seconds)
                    .unwrap_or(60),
            ),
            max_memory_bytes: self
                .max_memory_bytes
                .or(file.max_memory_bytes)
                .unwrap_or(1 << 30),
        };
        if config.max_request_bytes == 0 || config.max_head_spans == 0 {
            bail!("max-request-bytes and max-head-spans must be positive");
        }
        if config.max_head_age.is_zero() {
            bail!("max-head-age-seconds must be positive");
        }
        Ok(config)
    }
}

fn read_file(path: &Path) -> anyhow::Result<ServeArgs> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("failed to read config file {}", path.display()))?;
    toml::from_str(&text).with_context(|| format!("failed to parse config file {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flag_beats_file_beats_default() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("tracegate.toml");
        std::fs::write(
            &file,
            "data-dir = \"/from/file\"\nhttp-addr = \"127.0.0.1:9999\"\n",
        )
        .unwrap();
        let args = ServeArgs {
            config: Some(file),
            http_addr: Some("127.0.0.1:1234".parse().unwrap()),
            ..Default::default()
        };
        let config = args.resolve().unwrap();
        assert_eq!(config.http_addr, "127.0.0.1:1234".parse().unwrap());
        assert_eq!(config.data_dir, PathBuf::from("/from/file"));
        assert_eq!(config.otlp_grpc_addr, "127.0.0.1:4317".parse().unwrap());
    }

    #[test]
    fn unknown_file_keys_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("bad.toml");
        std::fs::write(&file, "data_dri = \"x\"\n").unwrap();
        let error = ServeArgs {
            config: Some(file),
            ..Default::default()
        }
        .resolve()
        .unwrap_err();
        assert!(format!("{error:#}").contains("unknown field"), "{error:#}");
    }
}
