//! A real `tracegate serve` process on loopback, started on a data dir and stopped with
//! SIGTERM, plus the HTTP calls the report makes to it.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde::Deserialize;

/// The addresses in `<data-dir>/ports.json`.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Ports {
    /// OTLP/gRPC.
    pub(crate) otlp_grpc: String,
    /// Query API.
    pub(crate) http: String,
}

/// A running server.
pub(crate) struct Server {
    child: Child,
    /// Its addresses.
    pub(crate) ports: Ports,
    /// Time from spawning the process to `/ready` answering 200.
    pub(crate) ready_after: Duration,
    agent: ureq::Agent,
}

impl Server {
    /// Starts `binary serve` on `data_dir` with every listener on 127.0.0.1 port 0 and
    /// `extra` flags, logging to `log`, and waits until it is ready.
    ///
    /// # Errors
    /// When the process cannot start or is not ready within `timeout`.
    pub(crate) fn start(
        binary: &Path,
        data_dir: &Path,
        extra: &[String],
        log: &Path,
        timeout: Duration,
    ) -> anyhow::Result<Self> {
        let ports_file = data_dir.join("ports.json");
        let _ = std::fs::remove_file(&ports_file);
        let log_file = File::create(log).with_context(|| format!("create {}", log.display()))?;
        let started = Instant::now();
        let mut child = Command::new(binary)
            .arg("serve")
            .arg("--data-dir")
            .arg(data_dir)
            .args(["--otlp-grpc-addr", "127.0.0.1:0"])
            .args(["--otlp-http-addr", "127.0.0.1:0"])
            .args(["--http-addr", "127.0.0.1:0"])
            .args(extra)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(log_file.try_clone()?)
            .stderr(log_file)
            .spawn()
            .with_context(|| format!("start {}", binary.display()))?;
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(600)))
            .build()
            .into();

        let mut ports: Option<Ports> = None;
        loop {
            if let Some(status) = child.try_wait()? {
                bail!(
                    "server exited with {status} before ready; see {}",
                    log.display()
                );
            }
            if started.elapsed() > timeout {
                let _ = child.kill();
                bail!("server not ready after {timeout:?}; see {}", log.display());
            }
            if ports.is_none() {
                ports = std::fs::read(&ports_file)
                    .ok()
                    .and_then(|bytes| serde_json::from_slice(&bytes).ok());
            }
            if let Some(ports) = &ports {
                let url = format!("http://{}/ready", ports.http);
                if agent.get(&url).call().is_ok_and(|r| r.status() == 200) {
                    break;
                }
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        Ok(Self {
            child,
            ports: ports.expect("ready implies ports"),
            ready_after: started.elapsed(),
            agent,
        })
    }

    /// The process id.
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// `GET path` on the query API: status and body.
    ///
    /// # Errors
    /// On a transport failure.
    pub(crate) fn get(&self, path_and_query: &str) -> anyhow::Result<(u16, Vec<u8>)> {
        let url = format!("http://{}{path_and_query}", self.ports.http);
        let mut response = self
            .agent
            .get(&url)
            .call()
            .with_context(|| format!("GET {url}"))?;
        let status = response.status().as_u16();
        let body = response
            .body_mut()
            .with_config()
            .limit(1 << 30)
            .read_to_vec()?;
        Ok((status, body))
    }

    /// `GET path`, which must answer 200 with JSON.
    ///
    /// # Errors
    /// On another status or a body that is not JSON.
    pub(crate) fn get_json(&self, path_and_query: &str) -> anyhow::Result<serde_json::Value> {
        let (status, body) = self.get(path_and_query)?;
        if status != 200 {
            bail!(
                "GET {path_and_query}: HTTP {status}: {}",
                String::from_utf8_lossy(&body)
            );
        }
        Ok(serde_json::from_slice(&body)?)
    }

    /// Peak resident memory so far (`VmHWM`), in bytes.
    ///
    /// # Errors
    /// When `/proc/<pid>/status` cannot be read.
    pub(crate) fn peak_rss_bytes(&self) -> anyhow::Result<u64> {
        proc_status_kib(self.pid(), "VmHWM:").map(|kib| kib * 1024)
    }

    /// Stops the server with SIGTERM (it flushes its head) and waits for it.
    ///
    /// # Errors
    /// When it does not exit within `timeout` (it is then killed) or exits non-zero.
    pub(crate) fn stop(mut self, timeout: Duration) -> anyhow::Result<()> {
        let pid = self.pid().to_string();
        Command::new("kill").args(["-TERM", &pid]).status()?;
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait()? {
                if !status.success() {
                    bail!("server exited with {status}");
                }
                return Ok(());
            }
            if started.elapsed() > timeout {
                let _ = self.child.kill();
                let _ = self.child.wait();
                bail!("server did not stop within {timeout:?}; killed");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A `kB` field of `/proc/<pid>/status`.
fn proc_status_kib(pid: u32, field: &str) -> anyhow::Result<u64> {
    let path = PathBuf::from(format!("/proc/{pid}/status"));
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("read {}", path.display()))?;
    text.lines()
        .find_map(|line| line.strip_prefix(field))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|kib| kib.parse().ok())
        .with_context(|| format!("no {field} in {}", path.display()))
}
