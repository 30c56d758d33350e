//! A real distributed Roost for tests: each role its own `roost serve` process, on a new
//! PostgreSQL database, a NATS subject prefix and lease bucket of its own (so clusters running at
//! the same time never share a call or a lease), and the ClickHouse test cluster. The processes
//! call each other over NATS, or over gRPC ([`Transport::Grpc`]: each process serves gRPC on a
//! free port of its own, and every process is told where each service is).
//!
//! PostgreSQL is `ROOST_TEST_POSTGRES_URL` (default `postgres://postgres@127.0.0.1:5432`, the
//! server's maintenance database is used to create and drop the cluster's database with `psql`);
//! NATS is `ROOST_TEST_NATS_URL` (default `nats://127.0.0.1:4222`).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::clickhouse::ClickHouseCluster;
use crate::{Server, Tokens, free_port};

/// Every role, one process each, in start-up order.
pub const ROLES: &[&str] = &[
    "auth",
    "catalog",
    "query",
    "ingest",
    "jobs",
    "scheduler",
    "gateway",
];

/// Two query replicas beside one process for the other back-end roles, and a gateway.
pub const TWO_QUERY_REPLICAS: &[&str] = &[
    "auth,catalog,ingest,jobs,scheduler",
    "query",
    "query",
    "gateway",
];

/// How the processes of a cluster call each other (`rpc.transport`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// NATS request/reply.
    Nats,
    /// gRPC, each process serving on a port of its own.
    Grpc,
}

impl Transport {
    /// The value of `rpc.transport`.
    pub fn name(self) -> &'static str {
        match self {
            Transport::Nats => "nats",
            Transport::Grpc => "grpc",
        }
    }
}

/// The services of each role, by their names in `grpc.services`.
const SERVICES_OF_ROLE: &[(&str, &[&str])] = &[
    ("auth", &["auth"]),
    ("catalog", &["catalog", "pipe_catalog"]),
    ("query", &["query", "endpoint"]),
    ("ingest", &["ingest"]),
    ("jobs", &["jobs"]),
    ("scheduler", &["scheduler"]),
];

/// One `roost serve` process.
pub struct RoleProcess {
    /// The roles it runs (`query`, `gateway`, ...).
    pub role: String,
    /// `127.0.0.1:PORT` it serves gRPC on, when the cluster calls over gRPC.
    pub grpc: Option<String>,
    child: Child,
    log: PathBuf,
}

impl RoleProcess {
    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Its log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// `kill -9`: the process gets no chance to drain or say goodbye.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for RoleProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A running distributed Roost.
pub struct RoostCluster {
    binary: PathBuf,
    /// The processes, in start order.
    pub processes: Vec<RoleProcess>,
    /// `http://127.0.0.1:PORT` of the gateway.
    pub base_url: String,
    /// The tokens the gateway's `GET /tokens` reveals.
    pub tokens: Tokens,
    /// The NATS subject prefix of this cluster's service calls.
    pub subject_prefix: String,
    /// How the processes call each other.
    pub transport: Transport,
    /// The PostgreSQL database of its catalog.
    pub database: String,
    /// The ClickHouse cluster it runs on.
    pub clickhouse: ClickHouseCluster,
    /// How long from the first spawn to a gateway that answers.
    pub startup: Duration,
    env: Vec<(String, String)>,
    postgres: String,
    dir: tempfile::TempDir,
}

fn postgres_base() -> String {
    std::env::var("ROOST_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into())
        .trim_end_matches('/')
        .to_string()
}

fn psql(base: &str, sql: &str) -> anyhow::Result<()> {
    let output = Command::new("psql")
        .arg(format!("{base}/postgres"))
        .args(["-v", "ON_ERROR_STOP=1", "-qAtc", sql])
        .output()
        .context("cannot run psql")?;
    if !output.status.success() {
        bail!(
            "psql {sql:?} failed: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(())
}

impl RoostCluster {
    /// Starts one process per role of [`ROLES`] from `binary` on `clickhouse`.
    pub async fn start(binary: &str, clickhouse: &ClickHouseCluster) -> anyhow::Result<Self> {
        Self::start_with(binary, clickhouse, ROLES, &[]).await
    }

    /// Starts one process per role of [`ROLES`] whose processes call each other over
    /// `transport`.
    pub async fn start_over(
        binary: &str,
        clickhouse: &ClickHouseCluster,
        transport: Transport,
    ) -> anyhow::Result<Self> {
        Self::start_with_transport(binary, clickhouse, ROLES, &[], transport).await
    }

    /// Starts one process per entry of `roles` (an entry may list several: `catalog,query`),
    /// with extra environment variables for every process.
    pub async fn start_with(
        binary: &str,
        clickhouse: &ClickHouseCluster,
        roles: &[&str],
        env: &[(&str, &str)],
    ) -> anyhow::Result<Self> {
        Self::start_with_transport(binary, clickhouse, roles, env, Transport::Nats).await
    }

    /// [`Self::start_with`] over `transport`.
    pub async fn start_with_transport(
        binary: &str,
        clickhouse: &ClickHouseCluster,
        roles: &[&str],
        env: &[(&str, &str)],
        transport: Transport,
    ) -> anyhow::Result<Self> {
        let id = uuid::Uuid::new_v4().simple().to_string()[..12].to_string();
        let postgres = postgres_base();
        let database = format!("roost_it_{id}");
        psql(&postgres, &format!("CREATE DATABASE {database}"))?;
        let port = free_port()?;
        let subject_prefix = format!("roost.it{id}.rpc");
        let mut all_env: Vec<(String, String)> = [
            ("ROOST_STORE_URL", format!("{postgres}/{database}")),
            ("ROOST_ENGINE_KIND", "clickhouse".into()),
            ("ROOST_ENGINE_URLS", clickhouse.urls.join(",")),
            ("ROOST_ENGINE_CLUSTER", clickhouse.cluster.clone()),
            (
                "ROOST_NATS_URL",
                std::env::var("ROOST_TEST_NATS_URL")
                    .unwrap_or_else(|_| "nats://127.0.0.1:4222".into()),
            ),
            ("ROOST_NATS_SUBJECT_PREFIX", subject_prefix.clone()),
            ("ROOST_NATS_LEASE_BUCKET", format!("ROOST_IT_LEASES_{id}")),
            ("ROOST_HTTP_SERVE_TOKENS", "true".into()),
            ("ROOST_HTTP_PORT", port.to_string()),
            ("ROOST_HTTP_LISTEN", "127.0.0.1".into()),
            ("ROOST_RPC_TRANSPORT", transport.name().into()),
        ]
        .into_iter()
        .map(|(key, value)| (key.to_string(), value))
        .collect();
        // Over gRPC every process serves on a port of its own, and every service's address is
        // the first process that runs its role.
        let grpc_ports: Vec<Option<u16>> = roles
            .iter()
            .map(|_| match transport {
                Transport::Grpc => free_port().map(Some),
                Transport::Nats => Ok(None),
            })
            .collect::<anyhow::Result<_>>()?;
        for (role, services) in SERVICES_OF_ROLE {
            let serving = roles
                .iter()
                .zip(&grpc_ports)
                .find(|(entry, _)| entry.split(',').any(|name| name.trim() == *role));
            if let Some((_, Some(port))) = serving {
                for service in *services {
                    all_env.push((
                        format!("ROOST_GRPC_SERVICES_{}", service.to_uppercase()),
                        format!("127.0.0.1:{port}"),
                    ));
                }
            }
        }
        all_env.extend(env.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        let mut cluster = RoostCluster {
            binary: PathBuf::from(binary),
            processes: Vec::new(),
            base_url: format!("http://127.0.0.1:{port}"),
            tokens: Tokens {
                user: String::new(),
                admin: String::new(),
                workspace_admin: String::new(),
            },
            subject_prefix,
            transport,
            database,
            clickhouse: clickhouse.clone(),
            startup: Duration::ZERO,
            env: all_env,
            postgres,
            dir: tempfile::tempdir()?,
        };
        let started = Instant::now();
        for (role, port) in roles.iter().zip(grpc_ports) {
            cluster.spawn(role, port, &[])?;
        }
        for index in 0..cluster.processes.len() {
            cluster.wait_ready(index).await?;
        }
        cluster.tokens = cluster.wait_for_tokens().await?;
        cluster.startup = started.elapsed();
        Ok(cluster)
    }

    /// Starts `role`; over gRPC it serves on `grpc_port` (a free one when `None`). `env` comes
    /// after the cluster's environment, so it may override it.
    fn spawn(
        &mut self,
        role: &str,
        grpc_port: Option<u16>,
        env: &[(&str, &str)],
    ) -> anyhow::Result<usize> {
        let index = self.processes.len();
        let grpc = match (self.transport, grpc_port) {
            (Transport::Nats, _) => None,
            (Transport::Grpc, Some(port)) => Some(format!("127.0.0.1:{port}")),
            (Transport::Grpc, None) => Some(format!("127.0.0.1:{}", free_port()?)),
        };
        let log = self
            .dir
            .path()
            .join(format!("{index}-{}.log", role.replace(',', "+")));
        let log_file = std::fs::File::create(&log)?;
        let child = Command::new(&self.binary)
            .args(["serve", "--role", role])
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .env(
                "ROOST_DATA_DIR",
                self.dir.path().join(format!("data-{index}")),
            )
            .envs(
                grpc.iter()
                    .map(|address| ("ROOST_GRPC_LISTEN", address.as_str())),
            )
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(log_file)
            .spawn()
            .with_context(|| format!("cannot start {}", self.binary.display()))?;
        self.processes.push(RoleProcess {
            role: role.to_string(),
            grpc,
            child,
            log,
        });
        Ok(index)
    }

    /// Starts one more process with `role` (a second replica, a restart) and waits until it
    /// serves. Returns its index in [`Self::processes`].
    pub async fn add(&mut self, role: &str) -> anyhow::Result<usize> {
        self.add_with(role, &[]).await
    }

    /// [`Self::add`] with environment variables of its own, over the cluster's (a second
    /// gateway on another `ROOST_HTTP_PORT`, calling another replica through
    /// `ROOST_GRPC_SERVICES_*`).
    pub async fn add_with(&mut self, role: &str, env: &[(&str, &str)]) -> anyhow::Result<usize> {
        let index = self.spawn(role, None, env)?;
        self.wait_ready(index).await?;
        Ok(index)
    }

    /// `kill -9` of process `index`, then a new process with its roles (and the cluster's
    /// environment); waits until it serves. Returns the new process's index.
    pub async fn restart(&mut self, index: usize) -> anyhow::Result<usize> {
        self.processes[index].kill();
        let role = self.processes[index].role.clone();
        self.add(&role).await
    }

    /// The PostgreSQL URL of the cluster's catalog database.
    pub fn database_url(&self) -> String {
        format!("{}/{}", self.postgres, self.database)
    }

    /// The first process running `role`, by index.
    pub fn index_of(&self, role: &str) -> Option<usize> {
        self.processes.iter().position(|p| p.role == role)
    }

    async fn wait_ready(&mut self, index: usize) -> anyhow::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let process = &mut self.processes[index];
            if process.log().contains("roost serve is ready") {
                return Ok(());
            }
            if let Some(status) = process.child.try_wait()? {
                bail!(
                    "roost serve --role {} exited ({status}); its log:\n{}",
                    process.role,
                    process.log()
                );
            }
            if Instant::now() > deadline {
                bail!(
                    "roost serve --role {} was not ready within 60 s; its log:\n{}",
                    process.role,
                    process.log()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn wait_for_tokens(&self) -> anyhow::Result<Tokens> {
        let client = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(response) = client.get(self.url("/tokens")).send().await
                && response.status().is_success()
            {
                let body: serde_json::Value = response.json().await?;
                let text = |key: &str| body[key].as_str().unwrap_or_default().to_string();
                return Ok(Tokens {
                    user: text("user_token"),
                    admin: text("admin_token"),
                    workspace_admin: text("workspace_admin_token"),
                });
            }
            if Instant::now() > deadline {
                bail!(
                    "the gateway gave no tokens within 30 s; logs:\n{}",
                    self.logs()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Every process's log, headed by its roles.
    pub fn logs(&self) -> String {
        self.processes
            .iter()
            .map(|p| format!("--- {} (pid {}) ---\n{}", p.role, p.pid(), p.log()))
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// The directory of the processes' logs and data.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

impl Server for RoostCluster {
    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }

    fn tokens(&self) -> &Tokens {
        &self.tokens
    }
}

impl RoostCluster {
    /// Drops the ClickHouse databases of the cluster's workspaces, on every server.
    fn drop_workspace_databases(&self) -> anyhow::Result<()> {
        let output = Command::new("psql")
            .arg(format!("{}/{}", self.postgres, self.database))
            .args(["-qAtc", "SELECT database_name FROM workspaces"])
            .output()
            .context("cannot run psql")?;
        let names = String::from_utf8_lossy(&output.stdout);
        for name in names.lines().filter(|name| name.starts_with("w_")) {
            let sql = format!(
                "DROP DATABASE IF EXISTS `{name}` ON CLUSTER `{}`",
                self.clickhouse.cluster
            );
            let status = Command::new("curl")
                .args([
                    "-sS",
                    "--fail",
                    "--data-binary",
                    &sql,
                    self.clickhouse.url(),
                ])
                .stdout(Stdio::null())
                .status()
                .context("cannot run curl")?;
            if !status.success() {
                bail!("{sql} failed ({status})");
            }
        }
        Ok(())
    }
}

impl Drop for RoostCluster {
    fn drop(&mut self) {
        // The processes hold connections to the database; they go first.
        for process in &mut self.processes {
            process.kill();
        }
        if let Err(error) = self.drop_workspace_databases() {
            eprintln!(
                "leaving ClickHouse databases of {}: {error:#}",
                self.database
            );
        }
        if let Err(error) = psql(
            &self.postgres,
            &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.database),
        ) {
            eprintln!("leaving the database {}: {error:#}", self.database);
        }
        if let Err(error) = self.remove_nats_streams() {
            eprintln!(
                "leaving the NATS streams of {}: {error:#}",
                self.subject_prefix
            );
        }
    }
}

impl RoostCluster {
    fn env_value(&self, key: &str) -> Option<&str> {
        self.env
            .iter()
            .find(|(name, _)| name == key)
            .map(|(_, value)| value.as_str())
    }

    /// Deletes the JetStream streams this cluster made on the shared NATS server (the events
    /// queue's, named after the subject prefix, and the scheduler's lease bucket), which would
    /// otherwise pile up run after run.
    fn remove_nats_streams(&self) -> anyhow::Result<()> {
        let url = self
            .env_value("ROOST_NATS_URL")
            .context("no NATS URL")?
            .to_string();
        let lease_stream = format!(
            "KV_{}",
            self.env_value("ROOST_NATS_LEASE_BUCKET")
                .context("no lease bucket")?
        );
        let queue_prefix = roost_bus::stream_name_prefix(&self.subject_prefix);
        // Drop runs inside or outside a runtime: a thread of its own may always block on one.
        std::thread::scope(|scope| {
            scope
                .spawn(|| {
                    let runtime = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()?;
                    runtime.block_on(async {
                        use futures::TryStreamExt;
                        let client = async_nats::connect(url.as_str()).await?;
                        let jetstream = async_nats::jetstream::new(client);
                        let names: Vec<String> = jetstream.stream_names().try_collect().await?;
                        for name in names {
                            if name == lease_stream || name.starts_with(&queue_prefix) {
                                jetstream.delete_stream(&name).await?;
                            }
                        }
                        anyhow::Ok(())
                    })
                })
                .join()
                .map_err(|_| anyhow::anyhow!("the NATS cleanup thread panicked"))?
        })
    }
}
