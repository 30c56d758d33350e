//! ClickHouse over its HTTP interface: the engine of distributed mode.
//!
//! # How it talks to the server, and why
//!
//! - Every statement is a `POST` on one of the configured URLs, over a pool of keep-alive
//!   connections (reqwest). A semaphore bounds how many requests are in flight, so however many
//!   callers there are the pool holds about `pool_size` connections per server (a connection that
//!   just finished may still be on its way back to the pool when the next request starts, so a
//!   few more can be open for a moment), and keeps at most `pool_size` idle.
//! - Queries go in the body; the output format is the `default_format` URL parameter, so the SQL is
//!   never edited (a trailing `;` or comment would break an appended `FORMAT`), and a `FORMAT`
//!   clause the caller wrote still wins, as in chDB.
//! - `wait_end_of_query=1` makes the server finish the statement before it answers. Without it a
//!   failure after the first rows arrives as status 200 with the exception glued to the end of the
//!   data (measured on 18.16); with it every failure is an error status with the message as body.
//! - Inserts put `INSERT INTO t (cols) FORMAT f` in the `query` URL parameter and the rows, as they
//!   are, in the body. Insert settings go as URL parameters: 18.16 has no `INSERT ... SETTINGS`.
//! - Statistics come from the `X-ClickHouse-Summary` header (19.x and newer). 18.16 sends no
//!   `X-ClickHouse-*` headers: for JSON formats the `statistics` object at the end of the answer
//!   is read instead, the elapsed time falls back to the round trip, and inserts report 0 rows.
//! - Error codes come from `X-ClickHouse-Exception-Code` when present, else from the body
//!   (`Code: 62, e.displayText() = ...` on 18.16, `Code: 62. DB::Exception: ...` later).
//! - Retries: [`EngineError::may_retry`] decides, from the error and whether running the statement
//!   twice is harmless. Reads, `CREATE ... IF NOT EXISTS` (without a `SELECT`) and `DROP ... IF
//!   EXISTS` count as harmless; other statements and inserts are repeated only when the first try
//!   provably never started (connection refused, refused at admission), unless the caller opted
//!   in ([`InsertRetry::Deduplicated`], or an `insert_deduplication_token` setting). Waits grow
//!   exponentially with jitter up to a cap. When a server cannot be reached, the next configured
//!   URL is tried and kept as long as it answers.

use std::hash::{BuildHasher, Hasher};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt;
use reqwest::Url;
use reqwest::header::HeaderMap;
use tokio::sync::{OnceCell, OwnedSemaphorePermit, Semaphore};

use crate::{ByteStream, Engine, EngineError, InsertBlock, InsertSummary, QueryResult};

/// URL parameters the engine sets itself; session settings may not override them.
const RESERVED_PARAMETERS: &[&str] = &[
    "query",
    "default_format",
    "wait_end_of_query",
    "user",
    "password",
    "query_id",
    "session_id",
];

/// When an insert may be sent again after a failure that may have written it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum InsertRetry {
    /// Only when the first try provably never started (no connection could be made). The safe
    /// default: a repeated insert would otherwise risk writing its rows twice.
    #[default]
    OnlyUnsent,
    /// On any transient failure. Choose it only when every target deduplicates a repeated block
    /// (Replicated*MergeTree with `insert_deduplicate = 1`, the default, reached directly or through
    /// a synchronous Distributed insert). An insert whose settings carry an
    /// `insert_deduplication_token` (ClickHouse 22.2 and newer) is treated this way by itself.
    Deduplicated,
}

/// How to reach a ClickHouse server or cluster.
#[derive(Debug, Clone)]
pub struct ClickHouseConfig {
    /// Base URLs of the HTTP interface, e.g. `http://127.0.0.1:8123`. Requests go to the first;
    /// the others are fallbacks when it cannot be reached, so they must serve the same data (servers
    /// of one cluster, with ON CLUSTER DDL and Distributed tables).
    pub urls: Vec<String>,
    /// The ClickHouse user.
    pub user: String,
    /// The user's password (empty for none); sent as HTTP basic auth, never in the URL.
    pub password: String,
    /// The cluster DDL must name (`ON CLUSTER`), when the servers form one.
    pub cluster: Option<String>,
    /// Session settings sent with every statement as URL parameters (name, value).
    pub settings: Vec<(String, String)>,
    /// How long to wait for a TCP connection.
    pub connect_timeout: Duration,
    /// How long one attempt may take, answer included; a backstop behind the server's own
    /// `max_execution_time`.
    pub request_timeout: Duration,
    /// Requests in flight at once, and idle keep-alive connections kept per server.
    pub pool_size: usize,
    /// How long an idle connection stays in the pool. Kept below the server's `keep_alive_timeout`
    /// (3 s by default), so a request never goes out on a connection the server is closing.
    pub pool_idle_timeout: Duration,
    /// Further attempts after a failure that may be retried (0: never retry).
    pub retries: u32,
    /// Wait before the first retry; each next one doubles it.
    pub retry_backoff: Duration,
    /// Longest wait between two attempts.
    pub retry_backoff_max: Duration,
    /// When an insert may be repeated.
    pub insert_retry: InsertRetry,
}

impl ClickHouseConfig {
    /// A configuration for one server as `default` without a password, with the default pool,
    /// timeouts and retries.
    pub fn new(url: impl Into<String>) -> Self {
        ClickHouseConfig {
            urls: vec![url.into()],
            user: "default".into(),
            password: String::new(),
            cluster: None,
            settings: Vec::new(),
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(300),
            pool_size: 16,
            pool_idle_timeout: Duration::from_secs(2),
            retries: 3,
            retry_backoff: Duration::from_millis(100),
            retry_backoff_max: Duration::from_secs(2),
            insert_retry: InsertRetry::OnlyUnsent,
        }
    }
}

/// A ClickHouse server or cluster over HTTP.
pub struct ClickHouse {
    client: reqwest::Client,
    endpoints: Vec<Url>,
    /// The endpoint that answered last; requests start there.
    current: AtomicUsize,
    user: String,
    password: String,
    cluster: Option<String>,
    settings: Vec<(String, String)>,
    permits: Arc<Semaphore>,
    retries: u32,
    retry_backoff: Duration,
    retry_backoff_max: Duration,
    insert_retry: InsertRetry,
    version: OnceCell<String>,
}

impl std::fmt::Debug for ClickHouse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The password stays out of logs.
        f.debug_struct("ClickHouse")
            .field(
                "urls",
                &self.endpoints.iter().map(Url::as_str).collect::<Vec<_>>(),
            )
            .field("user", &self.user)
            .field("cluster", &self.cluster)
            .finish()
    }
}

/// What the server answered to one successful request.
struct Answer {
    body: Bytes,
    headers: HeaderMap,
    /// Round trip of the attempt that succeeded.
    round_trip: Duration,
}

/// One statement to send, with what is needed to send it again.
struct Request {
    /// The SQL (queries) or the encoded rows (inserts).
    body: Bytes,
    /// URL parameters after the session settings.
    parameters: Vec<(String, String)>,
    /// Whether running it twice is harmless.
    idempotent: bool,
    /// For logs: the statement, or the insert's target.
    label: String,
}

impl ClickHouse {
    /// Checks the configuration and builds the connection pool. Connects lazily: a server that is
    /// down now is no error here.
    pub fn new(config: &ClickHouseConfig) -> Result<ClickHouse, EngineError> {
        if config.urls.is_empty() {
            return Err(EngineError::Invalid("no ClickHouse URL configured".into()));
        }
        let endpoints = config
            .urls
            .iter()
            .map(|url| parse_endpoint(url))
            .collect::<Result<Vec<_>, _>>()?;
        if let Some(cluster) = &config.cluster
            && !is_identifier(cluster)
        {
            return Err(EngineError::Invalid(format!(
                "cluster name {cluster:?} must be letters, digits and underscores"
            )));
        }
        for (name, _) in &config.settings {
            if !is_identifier(name) {
                return Err(EngineError::Invalid(format!(
                    "setting name {name:?} must be letters, digits and underscores"
                )));
            }
            if RESERVED_PARAMETERS.contains(&name.as_str()) {
                return Err(EngineError::Invalid(format!(
                    "{name} is set by the engine itself and cannot be a session setting"
                )));
            }
        }
        let pool_size = config.pool_size.max(1);
        let client = reqwest::Client::builder()
            .connect_timeout(config.connect_timeout)
            .timeout(config.request_timeout)
            .pool_max_idle_per_host(pool_size)
            .pool_idle_timeout(config.pool_idle_timeout)
            .tcp_nodelay(true)
            // The servers are reached directly; an HTTP(S)_PROXY meant for the outside world
            // must not capture the database traffic.
            .no_proxy()
            .build()
            .map_err(|e| EngineError::Invalid(format!("cannot build the HTTP client: {e}")))?;
        Ok(ClickHouse {
            client,
            endpoints,
            current: AtomicUsize::new(0),
            user: config.user.clone(),
            password: config.password.clone(),
            cluster: config.cluster.clone(),
            settings: config.settings.clone(),
            permits: Arc::new(Semaphore::new(pool_size)),
            retries: config.retries,
            retry_backoff: config.retry_backoff,
            retry_backoff_max: config.retry_backoff_max,
            insert_retry: config.insert_retry,
            version: OnceCell::new(),
        })
    }

    /// The base URLs, in the order they are tried.
    pub fn urls(&self) -> Vec<String> {
        self.endpoints.iter().map(|url| url.to_string()).collect()
    }

    /// Sends `request`, retrying what [`EngineError::may_retry`] allows.
    async fn send(&self, request: Request) -> Result<Answer, EngineError> {
        self.with_retries(&request, |endpoint| self.attempt(endpoint, &request))
            .await
    }

    /// Runs `try_on` on an endpoint until it succeeds or [`EngineError::may_retry`] says stop,
    /// moving to the next URL when a server cannot be reached.
    async fn with_retries<T, F, Fut>(
        &self,
        request: &Request,
        mut try_on: F,
    ) -> Result<T, EngineError>
    where
        F: FnMut(usize) -> Fut,
        Fut: std::future::Future<Output = Result<T, EngineError>>,
    {
        let mut endpoint = self.current.load(Ordering::Relaxed) % self.endpoints.len();
        let mut attempt = 0u32;
        loop {
            match try_on(endpoint).await {
                Ok(answer) => {
                    self.current.store(endpoint, Ordering::Relaxed);
                    return Ok(answer);
                }
                Err(error) => {
                    if attempt >= self.retries || !error.may_retry(request.idempotent) {
                        return Err(error);
                    }
                    // An unreachable server: the next URL may serve it now.
                    if matches!(error, EngineError::Unavailable(_)) {
                        endpoint = (endpoint + 1) % self.endpoints.len();
                    }
                    let delay = backoff(
                        self.retry_backoff,
                        self.retry_backoff_max,
                        attempt,
                        random_fraction(),
                    );
                    tracing::warn!(
                        statement = %request.label,
                        attempt = attempt + 1,
                        delay_ms = delay.as_millis() as u64,
                        error = %error,
                        "ClickHouse request failed; retrying"
                    );
                    tokio::time::sleep(delay).await;
                    attempt += 1;
                }
            }
        }
    }

    /// One try on one endpoint.
    async fn attempt(&self, endpoint: usize, request: &Request) -> Result<Answer, EngineError> {
        let opened = self.open(endpoint, request).await?;
        let body = opened
            .response
            .bytes()
            .await
            .map_err(|e| transport_error(&self.endpoints[endpoint], &e))?;
        Ok(Answer {
            body,
            headers: opened.headers,
            round_trip: opened.started.elapsed(),
        })
    }

    /// Sends a request to one endpoint and reads its status: a success is answered with the body
    /// still to read (and the request's permit, held until it is read), a failure with the
    /// server's error.
    async fn open(&self, endpoint: usize, request: &Request) -> Result<Opened, EngineError> {
        let permit = self
            .permits
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| EngineError::Unavailable("engine closed".into()))?;
        let url = request_url(
            &self.endpoints[endpoint],
            &self.settings,
            &request.parameters,
        );
        let mut builder = self.client.post(url).body(request.body.clone());
        if !self.user.is_empty() {
            let password = (!self.password.is_empty()).then_some(&self.password);
            builder = builder.basic_auth(&self.user, password);
        }
        let started = Instant::now();
        let response = builder
            .send()
            .await
            .map_err(|e| transport_error(&self.endpoints[endpoint], &e))?;
        let status = response.status();
        let headers = response.headers().clone();
        if !status.is_success() {
            let body = response
                .bytes()
                .await
                .map_err(|e| transport_error(&self.endpoints[endpoint], &e))?;
            return Err(server_error(status.as_u16(), &headers, &body));
        }
        Ok(Opened {
            response,
            headers,
            started,
            _permit: permit,
        })
    }

    /// A query with its output format as a URL parameter, so the SQL is sent as written.
    fn select(sql: &str, format: &str) -> Result<Request, EngineError> {
        if !is_identifier(format) {
            return Err(EngineError::Invalid(format!(
                "{format:?} is not a ClickHouse format name"
            )));
        }
        Ok(Request {
            body: Bytes::copy_from_slice(sql.as_bytes()),
            parameters: vec![
                ("default_format".into(), format.into()),
                ("wait_end_of_query".into(), "1".into()),
            ],
            idempotent: is_idempotent(sql),
            label: statement_label(sql),
        })
    }
}

/// A successful answer whose body is still to read.
struct Opened {
    response: reqwest::Response,
    headers: HeaderMap,
    started: Instant,
    /// Counts the request as in flight until the body is read or dropped.
    _permit: OwnedSemaphorePermit,
}

#[async_trait]
impl Engine for ClickHouse {
    async fn query(&self, sql: &str, format: &str) -> Result<QueryResult, EngineError> {
        let answer = self.send(ClickHouse::select(sql, format)?).await?;
        let summary = Summary::from_headers(&answer.headers);
        // Only the JSON document formats end with a `statistics` object; 18.16 sends no summary.
        let document = format.starts_with("JSON") && !format.contains("EachRow");
        let json = document
            .then(|| statistics_from_json_tail(&answer.body))
            .flatten();
        let elapsed = summary
            .as_ref()
            .and_then(|summary| summary.elapsed_ns)
            .map(|nanos| nanos as f64 / 1e9)
            .or(json.map(|(elapsed, _, _)| elapsed))
            .unwrap_or(answer.round_trip.as_secs_f64());
        let rows_read = summary
            .as_ref()
            .map(|summary| summary.read_rows)
            .or(json.map(|(_, rows, _)| rows))
            .unwrap_or(0);
        let bytes_read = summary
            .as_ref()
            .map(|summary| summary.read_bytes)
            .or(json.map(|(_, _, bytes)| bytes))
            .unwrap_or(0);
        Ok(QueryResult {
            data: answer.body,
            elapsed,
            rows_read,
            bytes_read,
        })
    }

    /// The server finishes the statement first (`wait_end_of_query`, so a failure is still an
    /// error status, never text glued to the data), buffering the result on its side; the body
    /// then comes in the pieces the network delivers, never held whole here.
    async fn query_stream(&self, sql: &str, format: &str) -> Result<ByteStream, EngineError> {
        let request = &ClickHouse::select(sql, format)?;
        let (opened, endpoint) = self
            .with_retries(request, |endpoint| async move {
                Ok((self.open(endpoint, request).await?, endpoint))
            })
            .await?;
        let url = self.endpoints[endpoint].clone();
        let permit = opened._permit;
        Ok(Box::pin(opened.response.bytes_stream().map(move |chunk| {
            let _in_flight = &permit;
            chunk.map_err(|e| transport_error(&url, &e))
        })))
    }

    async fn execute(&self, sql: &str) -> Result<(), EngineError> {
        // `Null` drops whatever the statement returns (ON CLUSTER DDL answers a row per host).
        self.query(sql, "Null").await.map(|_| ())
    }

    async fn insert(&self, block: InsertBlock<'_>) -> Result<InsertSummary, EngineError> {
        self.insert_as(block, None).await
    }

    async fn insert_identified(
        &self,
        block: InsertBlock<'_>,
        statement_id: &str,
    ) -> Result<InsertSummary, EngineError> {
        self.insert_as(block, Some(statement_id)).await
    }

    /// Asks every server, since the insert may have gone to any of them (the first URL, or a
    /// fallback when it was down). A server's query log lives in memory for a few seconds
    /// before it is written, hence the flush first; 18.16 logs a statement only when it asks
    /// (`log_queries`, which identified inserts set).
    async fn statement_landed(&self, statement_id: &str) -> Result<bool, EngineError> {
        check_statement_id(statement_id)?;
        for endpoint in 0..self.endpoints.len() {
            let ask = |sql: String| async move {
                let request = ClickHouse::select(&sql, "TabSeparated")?;
                self.attempt(endpoint, &request).await
            };
            let running = ask(format!(
                "SELECT count() FROM system.processes WHERE query_id = '{statement_id}'"
            ))
            .await?;
            if String::from_utf8_lossy(&running.body).trim() != "0" {
                return Err(EngineError::Server {
                    code: Some(QUERY_WITH_SAME_ID_IS_ALREADY_RUNNING),
                    message: format!("the statement {statement_id} is still running"),
                });
            }
            ask("SYSTEM FLUSH LOGS".to_string()).await?;
            let finished = ask(format!(
                "SELECT count() FROM system.query_log \
                 WHERE query_id = '{statement_id}' AND type = 2 AND is_initial_query = 1"
            ))
            .await;
            match finished {
                Ok(answer) if String::from_utf8_lossy(&answer.body).trim() != "0" => {
                    return Ok(true);
                }
                Ok(_) => {}
                // No statement was ever logged on this server: the log table does not exist yet.
                Err(error) if error.code() == Some(60) => {}
                Err(error) => return Err(error),
            }
        }
        Ok(false)
    }

    fn kind(&self) -> &'static str {
        "clickhouse"
    }

    fn cluster(&self) -> Option<&str> {
        self.cluster.as_deref()
    }

    async fn server_version(&self) -> Result<String, EngineError> {
        self.version
            .get_or_try_init(|| async {
                let answer = self.query("SELECT version()", "TabSeparated").await?;
                Ok(String::from_utf8_lossy(&answer.data).trim().to_string())
            })
            .await
            .cloned()
    }
}

/// ClickHouse's code for a `query_id` already taken by a running statement.
const QUERY_WITH_SAME_ID_IS_ALREADY_RUNNING: u32 = 216;

/// Statement ids go into SQL strings and URLs: letters, digits, `-` and `_` only.
fn check_statement_id(statement_id: &str) -> Result<(), EngineError> {
    let valid = !statement_id.is_empty()
        && statement_id.len() <= 128
        && statement_id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if valid {
        Ok(())
    } else {
        Err(EngineError::Invalid(format!(
            "statement id {statement_id:?} must be letters, digits, '-' and '_'"
        )))
    }
}

impl ClickHouse {
    async fn insert_as(
        &self,
        block: InsertBlock<'_>,
        statement_id: Option<&str>,
    ) -> Result<InsertSummary, EngineError> {
        if !is_identifier(block.format) {
            return Err(EngineError::Invalid(format!(
                "{:?} is not a ClickHouse format name",
                block.format
            )));
        }
        let mut statement = format!("INSERT INTO {}", block.table);
        if !block.columns.is_empty() {
            statement.push_str(&format!(" ({})", block.columns));
        }
        statement.push_str(&format!(" FORMAT {}", block.format));
        let settings = parse_settings_clause(block.settings)?;
        let deduplicated = self.insert_retry == InsertRetry::Deduplicated
            || settings
                .iter()
                .any(|(name, _)| name == "insert_deduplication_token");
        let mut parameters = settings;
        if let Some(statement_id) = statement_id {
            check_statement_id(statement_id)?;
            parameters.push(("query_id".into(), statement_id.into()));
            // So that `statement_landed` finds it in system.query_log.
            parameters.push(("log_queries".into(), "1".into()));
        }
        parameters.push(("wait_end_of_query".into(), "1".into()));
        parameters.push(("query".into(), statement));
        let answer = self
            .send(Request {
                body: block.data,
                parameters,
                idempotent: deduplicated,
                label: format!("INSERT INTO {}", block.table),
            })
            .await?;
        Ok(Summary::from_headers(&answer.headers)
            .map(|summary| InsertSummary {
                rows_written: summary.written_rows,
                bytes_written: summary.written_bytes,
            })
            .unwrap_or_default())
    }
}

/// A base URL from the configuration: http only (this build has no TLS), kept with its path and
/// any parameters it already carries (e.g. `?database=x`).
fn parse_endpoint(text: &str) -> Result<Url, EngineError> {
    let url = Url::parse(text)
        .map_err(|e| EngineError::Invalid(format!("{text:?} is not a URL: {e}")))?;
    if url.scheme() != "http" {
        return Err(EngineError::Invalid(format!(
            "{text:?}: only http:// URLs are supported (this build has no TLS)"
        )));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(EngineError::Invalid(format!(
            "{}: put the user and password in the configuration, not in the URL",
            url.host_str().unwrap_or_default()
        )));
    }
    Ok(url)
}

/// The URL of one request: the base, then the session settings, then the request's own
/// parameters (last, so nothing before can override them).
fn request_url(base: &Url, settings: &[(String, String)], parameters: &[(String, String)]) -> Url {
    let mut url = base.clone();
    {
        let mut pairs = url.query_pairs_mut();
        for (name, value) in settings.iter().chain(parameters) {
            pairs.append_pair(name, value);
        }
    }
    url
}

/// Whether `text` is a plain identifier (format, setting and cluster names).
fn is_identifier(text: &str) -> bool {
    !text.is_empty() && text.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// Whether running `sql` twice does no more than running it once: reads, `DROP ... IF EXISTS`
/// and `CREATE ... IF NOT EXISTS` that copies no data (an interrupted `CREATE ... AS SELECT` or
/// `POPULATE` would leave the object without its rows, and a retry would then skip it).
fn is_idempotent(sql: &str) -> bool {
    let words = leading_words(sql, 8);
    let Some(first) = words.first() else {
        return false;
    };
    let has = |sequence: &[&str]| words.windows(sequence.len()).any(|w| w == sequence);
    match first.as_str() {
        "SELECT" | "WITH" | "SHOW" | "DESC" | "DESCRIBE" | "EXISTS" | "EXPLAIN" => true,
        "DROP" => has(&["IF", "EXISTS"]),
        "CREATE" => has(&["IF", "NOT", "EXISTS"]) && !sql.to_ascii_uppercase().contains("SELECT"),
        _ => false,
    }
}

/// The first `limit` words of a statement, upper-cased, after comments and opening parentheses.
fn leading_words(sql: &str, limit: usize) -> Vec<String> {
    let mut words = Vec::new();
    let mut rest = sql;
    while words.len() < limit {
        rest = rest.trim_start_matches(|c: char| c.is_whitespace() || c == '(');
        if let Some(comment) = rest.strip_prefix("--") {
            rest = comment.split_once('\n').map_or("", |(_, after)| after);
            continue;
        }
        if let Some(comment) = rest.strip_prefix("/*") {
            rest = comment.split_once("*/").map_or("", |(_, after)| after);
            continue;
        }
        let end = rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(rest.len());
        if end == 0 {
            break;
        }
        words.push(rest[..end].to_ascii_uppercase());
        rest = &rest[end..];
    }
    words
}

/// A short form of a statement for logs.
fn statement_label(sql: &str) -> String {
    let flat: String = sql.split_whitespace().collect::<Vec<_>>().join(" ");
    match flat.char_indices().nth(120) {
        Some((at, _)) => format!("{}...", &flat[..at]),
        None => flat,
    }
}

/// Parses the body of a `SETTINGS` clause ("a = 1, b = 'x'") into URL parameters. String values
/// lose their quotes and escapes; other values must be plain literals (numbers, words).
fn parse_settings_clause(clause: &str) -> Result<Vec<(String, String)>, EngineError> {
    let invalid = |why: &str| EngineError::Invalid(format!("insert settings {clause:?}: {why}"));
    let mut settings = Vec::new();
    let mut rest = clause.trim();
    while !rest.is_empty() {
        let (name, after) = rest
            .split_once('=')
            .ok_or_else(|| invalid("expected name = value"))?;
        let name = name.trim();
        if !is_identifier(name) {
            return Err(invalid(&format!("{name:?} is not a setting name")));
        }
        if RESERVED_PARAMETERS.contains(&name) {
            return Err(invalid(&format!("{name} cannot be set per insert")));
        }
        let after = after.trim_start();
        let (value, after) = if let Some(quoted) = after.strip_prefix('\'') {
            read_quoted(quoted).ok_or_else(|| invalid("unterminated string"))?
        } else {
            let end = after.find(',').unwrap_or(after.len());
            let value = after[..end].trim();
            let plain = !value.is_empty()
                && value
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"_.+-".contains(&b));
            if !plain {
                return Err(invalid(&format!("{value:?} is not a plain value")));
            }
            (value.to_string(), &after[end..])
        };
        settings.push((name.to_string(), value));
        let after = after.trim_start();
        rest = match after.strip_prefix(',') {
            Some(next) => next.trim_start(),
            None if after.is_empty() => after,
            None => return Err(invalid("expected a comma between settings")),
        };
    }
    Ok(settings)
}

/// Reads a single-quoted SQL string whose opening quote is already consumed: returns the value
/// and what follows the closing quote.
fn read_quoted(text: &str) -> Option<(String, &str)> {
    let mut value = String::new();
    let mut chars = text.char_indices();
    while let Some((at, c)) = chars.next() {
        match c {
            '\\' => value.push(chars.next()?.1),
            '\'' if text[at + 1..].starts_with('\'') => {
                value.push('\'');
                chars.next();
            }
            '\'' => return Some((value, &text[at + 1..])),
            _ => value.push(c),
        }
    }
    None
}

/// Turns a failure of the HTTP exchange into the error that tells whether the statement may
/// have run: no connection means it did not (Unavailable); anything after means it may have.
fn transport_error(endpoint: &Url, error: &reqwest::Error) -> EngineError {
    let mut detail = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        detail.push_str(": ");
        detail.push_str(&cause.to_string());
        source = cause.source();
    }
    let server = format!(
        "{}:{}",
        endpoint.host_str().unwrap_or_default(),
        endpoint.port_or_known_default().unwrap_or_default()
    );
    if error.is_connect() {
        EngineError::Unavailable(format!(
            "cannot connect to ClickHouse at {server}: {detail}"
        ))
    } else if error.is_timeout() {
        EngineError::Network(format!(
            "ClickHouse at {server} did not answer in time: {detail}"
        ))
    } else {
        EngineError::Network(format!(
            "lost the answer of ClickHouse at {server}: {detail}"
        ))
    }
}

/// The error an error status stands for. The code comes from `X-ClickHouse-Exception-Code` when
/// present, else from the message. An error status without any ClickHouse code from a gateway
/// (502-504) is a proxy in front that lost the server: whether the statement ran is unknown.
fn server_error(status: u16, headers: &HeaderMap, body: &[u8]) -> EngineError {
    let message = String::from_utf8_lossy(body).trim().to_string();
    let message = if message.is_empty() {
        format!("ClickHouse answered HTTP {status} without a message")
    } else {
        message
    };
    let from_header = headers
        .get("x-clickhouse-exception-code")
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.trim().parse::<u32>().ok());
    match EngineError::from_server_message(message) {
        EngineError::Server {
            code: None,
            message,
        } if from_header.is_none() && (502..=504).contains(&status) => {
            EngineError::Network(format!("HTTP {status} from ClickHouse's side: {message}"))
        }
        EngineError::Server { code, message } => EngineError::Server {
            code: from_header.or(code),
            message,
        },
        other => other,
    }
}

/// The `X-ClickHouse-Summary` header (ClickHouse 19.x and newer): counters as quoted numbers.
#[derive(Debug, Default, PartialEq)]
struct Summary {
    read_rows: u64,
    read_bytes: u64,
    written_rows: u64,
    written_bytes: u64,
    /// Only from 22.x on.
    elapsed_ns: Option<u64>,
}

impl Summary {
    fn from_headers(headers: &HeaderMap) -> Option<Summary> {
        let value = headers.get("x-clickhouse-summary")?.to_str().ok()?;
        Summary::parse(value)
    }

    fn parse(text: &str) -> Option<Summary> {
        let object: serde_json::Value = serde_json::from_str(text).ok()?;
        let number = |key: &str| -> Option<u64> {
            match object.get(key)? {
                serde_json::Value::String(text) => text.parse().ok(),
                value => value.as_u64(),
            }
        };
        Some(Summary {
            read_rows: number("read_rows").unwrap_or(0),
            read_bytes: number("read_bytes").unwrap_or(0),
            written_rows: number("written_rows").unwrap_or(0),
            written_bytes: number("written_bytes").unwrap_or(0),
            elapsed_ns: number("elapsed_ns"),
        })
    }
}

/// The `statistics` object the JSON formats end with, read from the last bytes of the answer so a
/// large result is not parsed twice: (elapsed seconds, rows read, bytes read).
fn statistics_from_json_tail(body: &[u8]) -> Option<(f64, u64, u64)> {
    const TAIL: usize = 1024;
    let tail = &body[body.len().saturating_sub(TAIL)..];
    // The cut may fall inside a character: start at the first byte that begins one.
    let start = tail
        .iter()
        .position(|b| b & 0xC0 != 0x80)
        .unwrap_or(tail.len());
    let tail = std::str::from_utf8(&tail[start..]).ok()?;
    let at = tail.rfind("\"statistics\"")?;
    let open = at + tail[at..].find('{')?;
    let close = open + tail[open..].find('}')?;
    let object: serde_json::Value = serde_json::from_str(&tail[open..=close]).ok()?;
    Some((
        object.get("elapsed")?.as_f64()?,
        object.get("rows_read")?.as_u64()?,
        object.get("bytes_read")?.as_u64()?,
    ))
}

/// The wait before retry number `attempt + 1`: `base * 2^attempt`, capped at `max`, then scaled
/// into its upper half by `jitter` in [0, 1) so callers that failed together do not retry in step.
fn backoff(base: Duration, max: Duration, attempt: u32, jitter: f64) -> Duration {
    let exponential = base.saturating_mul(2u32.saturating_pow(attempt.min(16)));
    let capped = exponential.min(max);
    capped.mul_f64(0.5 + 0.5 * jitter.clamp(0.0, 1.0))
}

/// A number in [0, 1) from the standard library's per-instance random hash keys.
fn random_fraction() -> f64 {
    let bits = std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish();
    (bits >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_carry_settings_then_the_requests_own_parameters() {
        let base = parse_endpoint("http://127.0.0.1:8123/?database=analytics").unwrap();
        let url = request_url(
            &base,
            &[("max_threads".into(), "2".into())],
            &[
                ("default_format".into(), "JSON".into()),
                ("query".into(), "INSERT INTO `a b` FORMAT TSV".into()),
            ],
        );
        assert_eq!(
            url.as_str(),
            "http://127.0.0.1:8123/?database=analytics&max_threads=2&default_format=JSON&query=INSERT+INTO+%60a+b%60+FORMAT+TSV"
        );
        let pairs: Vec<(String, String)> = url.query_pairs().into_owned().collect();
        assert_eq!(pairs.last().unwrap().1, "INSERT INTO `a b` FORMAT TSV");
    }

    #[test]
    fn endpoints_are_plain_http_without_credentials() {
        assert!(parse_endpoint("http://ch:8123").is_ok());
        assert!(matches!(
            parse_endpoint("https://ch:8443"),
            Err(EngineError::Invalid(_))
        ));
        assert!(matches!(
            parse_endpoint("http://user:secret@ch:8123"),
            Err(EngineError::Invalid(message)) if !message.contains("secret")
        ));
        assert!(parse_endpoint("not a url").is_err());
    }

    #[test]
    fn configuration_is_checked() {
        let mut config = ClickHouseConfig::new("http://127.0.0.1:8123");
        config.cluster = Some("roost; DROP".into());
        assert!(ClickHouse::new(&config).is_err());
        config.cluster = Some("roost".into());
        config.settings = vec![("readonly".into(), "1".into())];
        let engine = ClickHouse::new(&config).unwrap();
        assert_eq!(engine.cluster(), Some("roost"));
        assert_eq!(crate::on_cluster(engine.cluster()), " ON CLUSTER `roost`");
        assert_eq!(crate::on_cluster(None), "");
        config.settings = vec![("default_format".into(), "CSV".into())];
        assert!(ClickHouse::new(&config).is_err());
        config.settings = vec![("max threads".into(), "1".into())];
        assert!(ClickHouse::new(&config).is_err());
        config.urls.clear();
        assert!(ClickHouse::new(&config).is_err());
    }

    #[test]
    fn debug_output_hides_the_password() {
        let mut config = ClickHouseConfig::new("http://127.0.0.1:8123");
        config.password = "hunter2".into();
        let engine = ClickHouse::new(&config).unwrap();
        assert!(!format!("{engine:?}").contains("hunter2"));
    }

    #[test]
    fn settings_clauses_become_parameters() {
        assert_eq!(parse_settings_clause("").unwrap(), vec![]);
        assert_eq!(
            parse_settings_clause(
                "input_format_skip_unknown_fields = 1, insert_deduplication_token='a,b''c\\'d', max_insert_block_size=-1.5"
            )
            .unwrap(),
            vec![
                ("input_format_skip_unknown_fields".into(), "1".into()),
                ("insert_deduplication_token".into(), "a,b'c'd".into()),
                ("max_insert_block_size".into(), "-1.5".into()),
            ]
        );
        for bad in [
            "x",
            "= 1",
            "a = ",
            "a = 1 b = 2",
            "a = 'open",
            "a = 1; DROP TABLE t",
            "query = 'SELECT 1'",
            "a b = 1",
        ] {
            assert!(
                matches!(parse_settings_clause(bad), Err(EngineError::Invalid(_))),
                "{bad:?} was accepted"
            );
        }
    }

    #[test]
    fn only_harmless_statements_are_idempotent() {
        for sql in [
            "SELECT 1",
            "  -- comment\n select * from t",
            "/* x */ (SELECT 1) UNION ALL (SELECT 2)",
            "WITH 1 AS x SELECT x",
            "SHOW TABLES",
            "DESCRIBE TABLE t",
            "EXISTS TABLE t",
            "DROP TABLE IF EXISTS db.t ON CLUSTER roost",
            "CREATE DATABASE IF NOT EXISTS db ON CLUSTER roost",
            "create table if not exists db.t (a UInt8) ENGINE = MergeTree ORDER BY a",
        ] {
            assert!(is_idempotent(sql), "{sql}");
        }
        for sql in [
            "",
            "INSERT INTO t SELECT 1",
            "DROP TABLE t",
            "CREATE TABLE t (a UInt8) ENGINE = Memory",
            "CREATE TABLE IF NOT EXISTS t ENGINE = MergeTree ORDER BY a AS SELECT 1 AS a",
            "CREATE MATERIALIZED VIEW IF NOT EXISTS mv TO t POPULATE AS select 1",
            "ALTER TABLE t DELETE WHERE 1",
            "TRUNCATE TABLE t",
            "RENAME TABLE a TO b",
        ] {
            assert!(!is_idempotent(sql), "{sql}");
        }
    }

    #[test]
    fn server_errors_take_the_code_from_the_header_or_the_body() {
        let empty = HeaderMap::new();
        let old = server_error(
            400,
            &empty,
            b"Code: 62, e.displayText() = DB::Exception: Syntax error: failed at position 1, e.what() = DB::Exception\n",
        );
        assert_eq!(old.code(), Some(62));
        assert_eq!(old.class(), crate::ErrorClass::BadRequest);
        assert_eq!(old.user_message(), "Syntax error: failed at position 1");

        let mut headers = HeaderMap::new();
        headers.insert("x-clickhouse-exception-code", "60".parse().unwrap());
        let new = server_error(404, &headers, b"Unknown table");
        assert_eq!(new.code(), Some(60));
        assert_eq!(new.class(), crate::ErrorClass::NotFound);

        let gateway = server_error(502, &empty, b"<html>Bad Gateway</html>");
        assert!(matches!(gateway, EngineError::Network(_)));
        assert!(!gateway.may_retry(false));
        assert!(gateway.may_retry(true));

        let bare = server_error(500, &empty, b"");
        assert_eq!(bare.code(), None);
        assert!(bare.to_string().contains("500"));
    }

    #[test]
    fn statistics_come_from_the_summary_or_the_json_tail() {
        let summary = Summary::parse(
            r#"{"read_rows":"3","read_bytes":"24","written_rows":"5","written_bytes":"40","total_rows_to_read":"3","elapsed_ns":"1500000"}"#,
        )
        .unwrap();
        assert_eq!(
            summary,
            Summary {
                read_rows: 3,
                read_bytes: 24,
                written_rows: 5,
                written_bytes: 40,
                elapsed_ns: Some(1_500_000),
            }
        );
        let without_elapsed =
            Summary::parse(r#"{"read_rows":"3","read_bytes":"24","written_rows":"0"}"#).unwrap();
        assert_eq!(without_elapsed.elapsed_ns, None);
        assert_eq!(without_elapsed.read_rows, 3);
        assert_eq!(Summary::parse("not json"), None);

        let json = b"{\n\t\"meta\": [],\n\t\"data\": [],\n\t\"rows\": 3,\n\t\"statistics\":\n\t{\n\t\t\"elapsed\": 0.000052029,\n\t\t\"rows_read\": 3,\n\t\t\"bytes_read\": 24\n\t}\n}\n";
        assert_eq!(statistics_from_json_tail(json), Some((0.000052029, 3, 24)));
        assert_eq!(statistics_from_json_tail(b"1\t2\n"), None);
        assert_eq!(statistics_from_json_tail(b""), None);
    }

    #[test]
    fn backoff_doubles_up_to_the_cap_with_jitter() {
        let base = Duration::from_millis(100);
        let max = Duration::from_secs(2);
        assert_eq!(backoff(base, max, 0, 1.0), Duration::from_millis(100));
        assert_eq!(backoff(base, max, 0, 0.0), Duration::from_millis(50));
        assert_eq!(backoff(base, max, 3, 1.0), Duration::from_millis(800));
        assert_eq!(backoff(base, max, 10, 1.0), max);
        assert_eq!(backoff(base, max, u32::MAX, 0.0), max / 2);
        for _ in 0..100 {
            let fraction = random_fraction();
            assert!((0.0..1.0).contains(&fraction));
        }
    }

    #[test]
    fn statement_ids_are_safe_in_sql_strings_and_urls() {
        assert!(check_statement_id("0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0-0").is_ok());
        assert!(check_statement_id("batch_1-2q").is_ok());
        for bad in ["", "a'b", "a b", "a\\b", "é", &"x".repeat(129)] {
            assert!(check_statement_id(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn labels_are_short_single_lines() {
        assert_eq!(statement_label("SELECT\n  1"), "SELECT 1");
        let long = format!("SELECT '{}'", "é".repeat(300));
        let label = statement_label(&long);
        assert!(label.ends_with("...") && label.chars().count() == 123);
    }
}
