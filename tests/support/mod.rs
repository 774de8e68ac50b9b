//! What the end-to-end tests share: a real `tracegate serve` process on loopback, HTTP and
//! gRPC clients for it, and the Python SDK scripts under `tests/py`.
//!
//! ```text
//! test ──ureq──────► OTLP/HTTP  ┐
//!      ──tonic─────► OTLP/gRPC  ├─ tracegate serve (port 0, temp data dir)
//!      ──python SDK► either     │
//!      ◄──ureq────── query API  ┘
//! ```
//!
//! Every server gets its own data directory and port-0 listeners, so tests run in parallel.
//! Waits are bounded and poll at short intervals; a server that dies or never gets ready
//! fails the test with the tail of its log.

#![allow(
    dead_code,
    reason = "each test binary uses a different part of the support module"
)]

use std::fs;
use std::io::{Read, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use serde_json::Value;
use tonic::codec::CompressionEncoding;
use tonic::transport::Channel;

/// How long a server may take to bind, replay its WAL and answer `/ready`.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a server may take to exit after SIGTERM.
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(30);
/// Timeout of one HTTP or gRPC request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a Python script may run.
const PYTHON_TIMEOUT: Duration = Duration::from_secs(90);
/// Pause between two polls.
const POLL_INTERVAL: Duration = Duration::from_millis(20);
/// Lines of the server log shown when something goes wrong.
const LOG_TAIL_LINES: usize = 40;

/// The addresses a server wrote to `ports.json`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Ports {
    /// OTLP/gRPC.
    pub(crate) otlp_grpc: SocketAddr,
    /// OTLP/HTTP.
    pub(crate) otlp_http: SocketAddr,
    /// Query API, health and metrics.
    pub(crate) http: SocketAddr,
}

/// A `tracegate serve` process with its own data directory, killed when dropped.
pub(crate) struct TestServer {
    child: Option<Child>,
    data_dir: PathBuf,
    /// Holds the data directory when the server made it; removed on drop.
    _owned_data_dir: Option<tempfile::TempDir>,
    /// Holds the server logs, outside the data directory.
    logs: tempfile::TempDir,
    log_path: PathBuf,
    num_starts: usize,
    started: Instant,
    startup_transport_errors: Vec<String>,
    args: Vec<String>,
    ports: Ports,
}

impl TestServer {
    /// Starts a server with default settings in a fresh temporary data directory.
    pub(crate) fn start() -> Self {
        Self::start_with_args(&[])
    }

    /// Starts a server in a fresh temporary data directory with extra `serve` flags, such as
    /// `["--max-request-bytes", "4096"]`.
    pub(crate) fn start_with_args(args: &[&str]) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("tracegate-e2e-data-")
            .tempdir()
            .expect("create a temporary data directory");
        let data_dir = dir.path().to_path_buf();
        Self::launch(data_dir, Some(dir), args)
    }

    /// Starts a server on an existing data directory, which it does not remove.
    pub(crate) fn start_in(data_dir: &Path, args: &[&str]) -> Self {
        Self::launch(data_dir.to_path_buf(), None, args)
    }

    fn launch(data_dir: PathBuf, owned: Option<tempfile::TempDir>, args: &[&str]) -> Self {
        let logs = tempfile::Builder::new()
            .prefix("tracegate-e2e-logs-")
            .tempdir()
            .expect("create a temporary log directory");
        let mut server = Self {
            child: None,
            log_path: logs.path().join("server-0.log"),
            data_dir,
            _owned_data_dir: owned,
            logs,
            num_starts: 0,
            started: Instant::now(),
            startup_transport_errors: Vec::new(),
            args: args.iter().map(|a| a.to_string()).collect(),
            ports: Ports {
                otlp_grpc: unspecified(),
                otlp_http: unspecified(),
                http: unspecified(),
            },
        };
        server.spawn_and_wait();
        server
    }

    /// Starts the process again on the same data directory and with the same flags; the
    /// old process must have stopped (see [`TestServer::kill9`] and [`TestServer::sigterm`]).
    pub(crate) fn restart(&mut self) {
        assert!(
            self.child.is_none(),
            "restart() needs the previous process to be stopped"
        );
        self.spawn_and_wait();
    }

    /// Like [`TestServer::restart`], with other extra `serve` flags from now on.
    pub(crate) fn restart_with_args(&mut self, args: &[&str]) {
        self.args = args.iter().map(|a| a.to_string()).collect();
        self.restart();
    }

    /// Like [`TestServer::restart`], but returns as soon as the listeners are bound (ports.json
    /// written), before the WAL is replayed; finish with [`TestServer::wait_ready`].
    pub(crate) fn restart_until_bound(&mut self) {
        assert!(
            self.child.is_none(),
            "restart needs the previous process to be stopped"
        );
        self.spawn_until_bound();
    }

    fn spawn_and_wait(&mut self) {
        self.spawn_until_bound();
        self.wait_ready();
    }

    fn spawn_until_bound(&mut self) {
        // A stale ports.json from the previous process must not be mistaken for this one's.
        let ports_path = self.data_dir.join("ports.json");
        match fs::remove_file(&ports_path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => panic!("cannot remove stale {}: {e}", ports_path.display()),
        }

        self.num_starts += 1;
        self.log_path = self
            .logs
            .path()
            .join(format!("server-{}.log", self.num_starts));
        let log = fs::File::create(&self.log_path).expect("create the server log file");
        let binary = env!("CARGO_BIN_EXE_tracegate");
        let child = Command::new(binary)
            .arg("serve")
            .arg("--data-dir")
            .arg(&self.data_dir)
            .args(["--otlp-grpc-addr", "127.0.0.1:0"])
            .args(["--otlp-http-addr", "127.0.0.1:0"])
            .args(["--http-addr", "127.0.0.1:0"])
            .args(&self.args)
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .env_remove("TRACEGATE_CONFIG")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone the log file handle"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {binary}: {e}"));
        self.child = Some(child);
        self.started = Instant::now();
        self.startup_transport_errors.clear();

        self.ports = loop {
            self.assert_alive("while starting");
            if let Some(ports) = read_ports(&ports_path) {
                break ports;
            }
            self.assert_before("ports.json to appear");
            std::thread::sleep(POLL_INTERVAL);
        };
    }

    /// Polls `GET /ready` until it answers 200. A transport error (a connection refused or
    /// reset while the server hands over from its startup listener) counts as not ready yet
    /// and is kept in [`TestServer::startup_transport_errors`].
    pub(crate) fn wait_ready(&mut self) {
        loop {
            self.assert_alive("while replaying the WAL");
            match try_get(&self.url("/ready")) {
                Ok(reply) if reply.status == 200 => break,
                Ok(reply) => assert_eq!(reply.status, 503, "/ready before ready: {}", reply.text()),
                Err(error) => self.startup_transport_errors.push(error),
            }
            self.assert_before("GET /ready to answer 200");
            std::thread::sleep(POLL_INTERVAL);
        }
    }

    /// Transport errors seen while waiting for `/ready` in the last start.
    pub(crate) fn startup_transport_errors(&self) -> &[String] {
        &self.startup_transport_errors
    }

    fn assert_alive(&mut self, when: &str) {
        let child = self.child.as_mut().expect("a started process");
        if let Some(status) = child.try_wait().expect("poll the server process") {
            self.child = None;
            panic!(
                "tracegate serve exited {when} with {status}\n{}",
                self.log_tail()
            );
        }
    }

    fn assert_before(&mut self, what: &str) {
        if self.started.elapsed() > STARTUP_TIMEOUT {
            self.kill9();
            panic!(
                "timed out after {STARTUP_TIMEOUT:?} waiting for {what}\n{}",
                self.log_tail()
            );
        }
    }

    /// The addresses of the running process.
    pub(crate) fn ports(&self) -> Ports {
        self.ports
    }

    /// The data directory.
    pub(crate) fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// `http://ADDR{path}` on the query API.
    pub(crate) fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.ports.http)
    }

    /// The OTLP/HTTP trace endpoint, `http://ADDR/v1/traces`.
    pub(crate) fn otlp_http_url(&self) -> String {
        format!("http://{}/v1/traces", self.ports.otlp_http)
    }

    /// The OTLP/gRPC endpoint as `127.0.0.1:PORT`.
    pub(crate) fn otlp_grpc_addr(&self) -> String {
        self.ports.otlp_grpc.to_string()
    }

    /// The OTLP/HTTP listen address as `127.0.0.1:PORT`.
    #[allow(
        dead_code,
        reason = "not every test binary speaks OTLP/HTTP by address"
    )]
    pub(crate) fn otlp_http_addr(&self) -> String {
        self.ports.otlp_http.to_string()
    }

    /// The process id of the running process.
    pub(crate) fn pid(&self) -> u32 {
        self.child.as_ref().expect("a running process").id()
    }

    /// The last lines of the current process's log, for failure messages.
    pub(crate) fn log_tail(&self) -> String {
        let text = fs::read_to_string(&self.log_path).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let tail = &lines[lines.len().saturating_sub(LOG_TAIL_LINES)..];
        format!(
            "--- last lines of {} ---\n{}",
            self.log_path.display(),
            tail.join("\n")
        )
    }

    /// The whole log of the current process.
    pub(crate) fn log(&self) -> String {
        fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// Kills the process with SIGKILL and reaps it: no chance to flush anything.
    pub(crate) fn kill9(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        // `Child::kill` is SIGKILL on Unix.
        let _ = child.kill();
        let _ = child.wait();
    }

    /// Sends SIGTERM and waits (bounded) for the process to exit, returning its status.
    pub(crate) fn sigterm(&mut self) -> ExitStatus {
        self.stop_with_signal("TERM", SHUTDOWN_TIMEOUT)
    }

    /// Sends SIGTERM and fails the test unless the process exits within `limit`.
    pub(crate) fn sigterm_within(&mut self, limit: Duration) -> ExitStatus {
        self.stop_with_signal("TERM", limit)
    }

    /// Sends SIGINT (as Ctrl-C does) and waits (bounded) for the process to exit.
    pub(crate) fn sigint(&mut self) -> ExitStatus {
        self.stop_with_signal("INT", SHUTDOWN_TIMEOUT)
    }

    fn stop_with_signal(&mut self, signal: &str, limit: Duration) -> ExitStatus {
        let mut child = self.child.take().expect("a running process");
        let pid = child.id().to_string();
        let flag = format!("-{signal}");
        let sent = Command::new("kill")
            .args([flag.as_str(), &pid])
            .status()
            .expect("run kill");
        assert!(sent.success(), "kill {flag} {pid} failed: {sent}");
        let started = Instant::now();
        loop {
            if let Some(status) = child.try_wait().expect("poll the server process") {
                return status;
            }
            if started.elapsed() > limit {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "tracegate serve did not exit within {limit:?} of SIG{signal}\n{}",
                    self.log_tail()
                );
            }
            std::thread::sleep(POLL_INTERVAL);
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.kill9();
    }
}

fn unspecified() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

fn read_ports(path: &Path) -> Option<Ports> {
    let text = fs::read_to_string(path).ok()?;
    let json: Value = serde_json::from_str(&text).ok()?;
    let addr = |name: &str| -> Option<SocketAddr> { json.get(name)?.as_str()?.parse().ok() };
    let ports = Ports {
        otlp_grpc: addr("otlp_grpc")?,
        otlp_http: addr("otlp_http")?,
        http: addr("http")?,
    };
    for addr in [ports.otlp_grpc, ports.otlp_http, ports.http] {
        assert!(addr.ip().is_loopback(), "server bound {addr}, not loopback");
        assert_ne!(addr.port(), 0, "ports.json holds port 0: {text}");
    }
    Some(ports)
}

// ---------------------------------------------------------------------------------------------
// HTTP

/// An HTTP answer, whatever its status.
#[derive(Debug, Clone)]
pub(crate) struct Reply {
    /// Status code.
    pub(crate) status: u16,
    /// `Content-Type`, empty when absent.
    pub(crate) content_type: String,
    /// Headers, lowercase names.
    pub(crate) headers: Vec<(String, String)>,
    /// The body, decompressed.
    pub(crate) body: Vec<u8>,
}

impl Reply {
    /// The body as UTF-8 text.
    pub(crate) fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body as JSON; panics with the body when it is not JSON.
    pub(crate) fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "expected a JSON body (status {}): {e}\n{}",
                self.status,
                self.text()
            )
        })
    }

    /// A header's value.
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// An HTTP agent for loopback: statuses are answers, not errors; no proxy.
pub(crate) fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .proxy(None)
        .timeout_global(Some(REQUEST_TIMEOUT))
        .build()
        .new_agent()
}

fn reply(result: Result<ureq::http::Response<ureq::Body>, ureq::Error>, what: &str) -> Reply {
    let mut response = result.unwrap_or_else(|e| panic!("{what} failed: {e}"));
    let status = response.status().as_u16();
    let headers: Vec<(String, String)> = response
        .headers()
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_ascii_lowercase(),
                v.to_str().unwrap_or_default().into(),
            )
        })
        .collect();
    let content_type = headers
        .iter()
        .find(|(k, _)| k == "content-type")
        .map(|(_, v)| v.clone())
        .unwrap_or_default();
    let body = response
        .body_mut()
        .with_config()
        .limit(256 << 20)
        .read_to_vec()
        .unwrap_or_else(|e| panic!("{what}: cannot read the body: {e}"));
    Reply {
        status,
        content_type,
        headers,
        body,
    }
}

/// `GET url`.
pub(crate) fn get(url: &str) -> Reply {
    reply(agent().get(url).call(), &format!("GET {url}"))
}

/// `GET url`, with a transport failure (refused, reset) as an error instead of a panic.
pub(crate) fn try_get(url: &str) -> Result<Reply, String> {
    match agent().get(url).call() {
        Ok(response) => Ok(reply(Ok(response), &format!("GET {url}"))),
        Err(error) => Err(error.to_string()),
    }
}

/// `GET url`, expecting 200 and JSON.
pub(crate) fn get_json(url: &str) -> Value {
    let reply = get(url);
    assert_eq!(reply.status, 200, "GET {url}: {}", reply.text());
    reply.json()
}

/// `POST url` with a body, a content type and optionally a content encoding.
pub(crate) fn post(
    url: &str,
    content_type: &str,
    content_encoding: Option<&str>,
    body: &[u8],
) -> Reply {
    let mut request = agent().post(url).header("Content-Type", content_type);
    if let Some(encoding) = content_encoding {
        request = request.header("Content-Encoding", encoding);
    }
    reply(request.send(body), &format!("POST {url}"))
}

/// Gzips `bytes`.
pub(crate) fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(bytes).expect("gzip into memory");
    encoder.finish().expect("gzip into memory")
}

/// Gunzips `bytes`.
pub(crate) fn gunzip(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(bytes)
        .read_to_end(&mut out)
        .expect("valid gzip");
    out
}

/// Percent-encodes a query parameter value.
pub(crate) fn query_escape(text: &str) -> String {
    let mut out = String::new();
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-_.~".contains(&byte) {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// gRPC

/// A blocking OTLP/gRPC client: its own small runtime and a tonic channel.
pub(crate) struct GrpcClient {
    runtime: tokio::runtime::Runtime,
    client: TraceServiceClient<Channel>,
}

impl GrpcClient {
    /// Connects to `addr` (loopback, plaintext HTTP/2).
    pub(crate) fn connect(addr: SocketAddr) -> Self {
        assert!(
            addr.ip().is_loopback(),
            "tests talk to loopback only, not {addr}"
        );
        // One worker keeps the connection serviced between calls, so that an idle client
        // still answers the server's shutdown notice instead of looking stalled.
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("build a tokio runtime");
        let channel = runtime
            .block_on(async {
                tonic::transport::Endpoint::from_shared(format!("http://{addr}"))?
                    .connect_timeout(REQUEST_TIMEOUT)
                    .timeout(REQUEST_TIMEOUT)
                    .connect()
                    .await
            })
            .unwrap_or_else(|e| panic!("cannot connect to OTLP/gRPC at {addr}: {e}"));
        let client = TraceServiceClient::new(channel).max_decoding_message_size(64 << 20);
        Self { runtime, client }
    }

    /// Compresses requests with gzip from now on.
    pub(crate) fn gzip(mut self) -> Self {
        self.client = self.client.send_compressed(CompressionEncoding::Gzip);
        self
    }

    /// Sends one export request and waits for the answer.
    pub(crate) fn export(
        &mut self,
        request: ExportTraceServiceRequest,
    ) -> Result<ExportTraceServiceResponse, tonic::Status> {
        let client = &mut self.client;
        self.runtime.block_on(async {
            client
                .export(request)
                .await
                .map(tonic::Response::into_inner)
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Python SDK scripts

/// The root of the workspace (the root package's manifest directory).
pub(crate) fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The Python interpreter of the test virtualenv: `$TRACEGATE_TEST_PYTHON`, else
/// `<workspace>/.venv/bin/python`. Panics, with how to create it, when there is none.
pub(crate) fn python() -> PathBuf {
    let how = "create it with `scripts/setup-venv.sh` (run from the workspace root), then \
               `export TRACEGATE_TEST_PYTHON=$PWD/.venv/bin/python`, or run `scripts/test.sh`";
    if let Some(path) = std::env::var_os("TRACEGATE_TEST_PYTHON") {
        let path = PathBuf::from(path);
        assert!(
            path.is_file(),
            "TRACEGATE_TEST_PYTHON={} does not exist: the end-to-end tests need the Python \
             OpenTelemetry SDK virtualenv; {how}",
            path.display()
        );
        return path;
    }
    let fallback = workspace_root().join(".venv/bin/python");
    assert!(
        fallback.is_file(),
        "no Python for the end-to-end tests: TRACEGATE_TEST_PYTHON is not set and {} does not \
         exist; {how}",
        fallback.display()
    );
    fallback
}

/// Runs `tests/py/<script>` with the virtualenv's Python and parses its stdout as JSON.
/// Panics with the script's stderr when it fails or prints something else.
pub(crate) fn run_python(script: &str, args: &[&str]) -> Value {
    let python = python();
    let script_path = workspace_root().join("tests/py").join(script);
    assert!(
        script_path.is_file(),
        "missing script {}",
        script_path.display()
    );
    let output_dir = tempfile::tempdir().expect("create a temporary directory");
    let stdout_path = output_dir.path().join("stdout");
    let stderr_path = output_dir.path().join("stderr");
    let mut child = Command::new(&python)
        .arg(&script_path)
        .args(args)
        // Everything the scripts talk to is on loopback: keep any proxy out of the way.
        .env_remove("http_proxy")
        .env_remove("https_proxy")
        .env_remove("HTTP_PROXY")
        .env_remove("HTTPS_PROXY")
        .env_remove("all_proxy")
        .env_remove("ALL_PROXY")
        .env_remove("grpc_proxy")
        .env("NO_PROXY", "127.0.0.1,localhost")
        .env("no_proxy", "127.0.0.1,localhost")
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .stdin(Stdio::null())
        .stdout(fs::File::create(&stdout_path).expect("create stdout file"))
        .stderr(fs::File::create(&stderr_path).expect("create stderr file"))
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", python.display()));

    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("poll the Python process") {
            break status;
        }
        if started.elapsed() > PYTHON_TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "{script} did not finish within {PYTHON_TIMEOUT:?}; stderr:\n{}",
                fs::read_to_string(&stderr_path).unwrap_or_default()
            );
        }
        std::thread::sleep(POLL_INTERVAL);
    };
    let stdout = fs::read_to_string(&stdout_path).unwrap_or_default();
    let stderr = fs::read_to_string(&stderr_path).unwrap_or_default();
    let hint = if stderr.contains("ModuleNotFoundError") {
        "\n(the OpenTelemetry SDK is missing from this Python: run `scripts/setup-venv.sh`)"
    } else {
        ""
    };
    assert!(
        status.success(),
        "{} {script} {args:?} failed with {status}{hint}\nstderr:\n{stderr}\nstdout:\n{stdout}",
        python.display()
    );
    serde_json::from_str(&stdout)
        .with_context(|| format!("{script} printed no JSON; stderr:\n{stderr}\nstdout:\n{stdout}"))
        .unwrap()
}

// ---------------------------------------------------------------------------------------------
// Misc

/// Now, in Unix nanoseconds.
pub(crate) fn now_unix_nano() -> u64 {
    let since = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970");
    u64::try_from(since.as_nanos()).expect("time fits u64")
}

/// A trace id that no other call in this process returns, with a recognizable `tag` byte.
pub(crate) fn unique_trace_id(tag: u8) -> [u8; 16] {
    static COUNTER: AtomicUsize = AtomicUsize::new(1);
    let count = COUNTER.fetch_add(1, Ordering::Relaxed) as u64;
    let mut id = [0u8; 16];
    id[0] = tag;
    id[1..9].copy_from_slice(&now_unix_nano().to_be_bytes());
    id[9..].copy_from_slice(&count.to_be_bytes()[1..]);
    id
}

/// Polls `check` every few milliseconds until it returns `Some`, or panics after `timeout`
/// describing `what` was awaited.
pub(crate) fn wait_for<T>(
    timeout: Duration,
    what: &str,
    mut check: impl FnMut() -> Option<T>,
) -> T {
    let started = Instant::now();
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(
            started.elapsed() < timeout,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(POLL_INTERVAL);
    }
}

/// Files in `dir` whose names end with `suffix`, with their sizes, sorted by name.
pub(crate) fn files_with_suffix(dir: &Path, suffix: &str) -> Vec<(String, u64)> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<(String, u64)> = entries
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let name = entry.file_name().to_string_lossy().into_owned();
            let size = entry.metadata().ok()?.len();
            name.ends_with(suffix).then_some((name, size))
        })
        .collect();
    files.sort();
    files
}
