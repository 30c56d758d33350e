//! Test helpers: a real `roost local` process on a spare loopback port, with its own data
//! directory, its tokens, and an HTTP client. Black-box tests talk to it as any client would.

pub mod api;
pub mod clickhouse;
pub mod cluster;
pub mod http;
pub mod tb;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::Value;

/// The tokens `GET /tokens` reveals.
#[derive(Debug, Clone)]
pub struct Tokens {
    /// Manages workspaces.
    pub user: String,
    /// The user's admin token in the workspace.
    pub admin: String,
    /// The workspace's admin token.
    pub workspace_admin: String,
}

/// A running Roost that answers HTTP: a `roost local`, or a cluster's gateway.
pub trait Server {
    /// `base_url` + `path`.
    fn url(&self, path: &str) -> String;
    /// The tokens `GET /tokens` gave.
    fn tokens(&self) -> &Tokens;
}

impl Server for RoostLocal {
    fn url(&self, path: &str) -> String {
        RoostLocal::url(self, path)
    }

    fn tokens(&self) -> &Tokens {
        &self.tokens
    }
}

/// A running `roost local`.
pub struct RoostLocal {
    child: Child,
    binary: PathBuf,
    /// `http://127.0.0.1:PORT`.
    pub base_url: String,
    /// The port it listens on.
    pub port: u16,
    /// Its tokens.
    pub tokens: Tokens,
    /// How long it took from spawn to answering.
    pub startup: Duration,
    data_dir: PathBuf,
    env: Vec<(String, String)>,
    _owned_dir: Option<tempfile::TempDir>,
    log: PathBuf,
}

/// A free loopback port (there is a small window before the server binds it).
pub fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

impl RoostLocal {
    /// Starts `binary local` on a new temporary data directory.
    pub async fn start(binary: impl AsRef<Path>) -> anyhow::Result<RoostLocal> {
        Self::start_with_env(binary, &[]).await
    }

    /// Starts `binary local` on a new temporary data directory with extra environment variables
    /// (e.g. `ROOST_EVENTS_RPS`), which it keeps across [`Self::restart`].
    pub async fn start_with_env(
        binary: impl AsRef<Path>,
        env: &[(&str, &str)],
    ) -> anyhow::Result<RoostLocal> {
        Self::start_in(binary, &std::env::temp_dir(), env).await
    }

    /// [`Self::start_with_env`] on a new data directory inside `parent`.
    pub async fn start_in(
        binary: impl AsRef<Path>,
        parent: &Path,
        env: &[(&str, &str)],
    ) -> anyhow::Result<RoostLocal> {
        let dir = tempfile::tempdir_in(parent)?;
        let data_dir = dir.path().join("data");
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let mut roost = Self::spawn(binary.as_ref(), &data_dir, env).await?;
        roost._owned_dir = Some(dir);
        Ok(roost)
    }

    async fn spawn(
        binary: &Path,
        data_dir: &Path,
        env: Vec<(String, String)>,
    ) -> anyhow::Result<RoostLocal> {
        let port = free_port()?;
        std::fs::create_dir_all(data_dir)?;
        let log = data_dir.with_extension(format!("{port}.log"));
        let log_file = std::fs::File::create(&log)?;
        let started = Instant::now();
        let child = Command::new(binary)
            .arg("local")
            .arg("--port")
            .arg(port.to_string())
            .arg("--data-dir")
            .arg(data_dir)
            .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdout(Stdio::null())
            .stderr(log_file)
            .spawn()
            .with_context(|| format!("cannot start {}", binary.display()))?;
        let base_url = format!("http://127.0.0.1:{port}");
        let client = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(60);
        let tokens = loop {
            if let Ok(response) = client.get(format!("{base_url}/tokens")).send().await
                && response.status().is_success()
            {
                {
                    let body: Value = response.json().await?;
                    let text = |key: &str| body[key].as_str().unwrap_or_default().to_string();
                    break Tokens {
                        user: text("user_token"),
                        admin: text("admin_token"),
                        workspace_admin: text("workspace_admin_token"),
                    };
                }
            }
            if Instant::now() > deadline {
                let log_text = std::fs::read_to_string(&log).unwrap_or_default();
                bail!("roost local did not answer within 60 s; its log:\n{log_text}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        Ok(RoostLocal {
            child,
            binary: binary.to_path_buf(),
            base_url,
            port,
            tokens,
            startup: started.elapsed(),
            data_dir: data_dir.to_path_buf(),
            env,
            _owned_dir: None,
            log,
        })
    }

    /// Kills the process and starts it again on the same data directory.
    pub async fn restart(mut self) -> anyhow::Result<RoostLocal> {
        self.kill();
        let owned = self._owned_dir.take();
        let mut again =
            Self::spawn(&self.binary, &self.data_dir, std::mem::take(&mut self.env)).await?;
        again._owned_dir = owned;
        Ok(again)
    }

    /// `base_url` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The data directory (catalog and engine files).
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends SIGINT (Ctrl-C) and waits, at most 30 s, for the process to end; its exit status.
    pub async fn interrupt(&mut self) -> anyhow::Result<std::process::ExitStatus> {
        let sent = Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status()?;
        anyhow::ensure!(sent.success(), "kill -INT failed: {sent}");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait()? {
                return Ok(status);
            }
            if Instant::now() > deadline {
                bail!("roost local did not end within 30 s of SIGINT");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for RoostLocal {
    fn drop(&mut self) {
        self.kill();
    }
}
