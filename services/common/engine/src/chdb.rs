//! ClickHouse embedded through chDB (`libchdb.so`, ClickHouse 26.x).
//!
//! # How chDB behaves under concurrency, and what this module does about it
//!
//! Measured on chDB 26.7.3 (see the `concurrent_*` tests in `tests/chdb.rs`):
//! - The engine keeps **one data path per process**. Several connections to that same path may be
//!   open at once; connecting to another path needs every connection closed first. So the engine
//!   is a process-wide singleton keyed by its path, and asking for a second path is an error.
//! - **A connection runs one statement at a time**: `chdb_query*` hands the statement to the
//!   connection's own worker thread and blocks the caller until it is done, and an open insert
//!   stream holds the connection until it is finished. Statements on *different* connections run
//!   in parallel against the same tables (readers and writers together).
//! - So [`Chdb`] keeps a pool of connections. Each call checks one out, runs the blocking C call on
//!   tokio's blocking pool (never on an async worker), and returns it. Callers beyond the pool size
//!   wait on a semaphore instead of piling onto one connection's queue.
//! - A statement that fails leaves the output it wrote before failing in its connection's buffer,
//!   and chDB puts it in front of the next answer on that connection, which in a shared pool may be
//!   another workspace's. After any error a sentinel query drains it; a connection that cannot be
//!   drained is replaced, never reused (test `a_failed_querys_partial_output_never_reaches_the_next_caller`).
//! - Results are materialized by chDB; the answer buffer is handed to [`Bytes`] without a copy and
//!   freed when the last reference drops. A streamed query (`query_stream`) holds its connection on
//!   a blocking thread and fetches the result block by block, a couple of blocks ahead of its
//!   reader; chDB reports a statement that cannot run at the first fetch, so the call waits for
//!   that one. A reader that stops early cancels the query, and any stream that did not end cleanly
//!   is drained like a failed query (test `a_streamed_result_comes_block_by_block_and_leaves_its_connection_clean`).
//! - chDB's own fatal-signal handlers sleep for minutes before re-raising; they are turned off so a
//!   crash inside the engine ends the process at once (and a supervisor restarts it).
//! - chDB 26.7 cannot shut an engine with MergeTree tables down cleanly, so connections are never
//!   closed: the process exits with them open, and without running chDB's static destructors
//!   (`ffi::end_before_engine_destructors`). MergeTree parts are on disk once an insert returns.

mod ffi;

use std::ffi::{CStr, CString, c_char};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use async_trait::async_trait;
use bytes::Bytes;
use tokio::sync::Semaphore;

use crate::{ByteStream, Engine, EngineError, InsertBlock, InsertSummary, QueryResult};

/// Environment variable naming the `libchdb.so` to load.
pub const LIBCHDB_ENV: &str = "ROOST_LIBCHDB";

/// The command that fetches the library, named in every "library missing" error.
const INSTALL_HINT: &str = "run `make setup` (it fetches the npm package @chdb/lib-linux-x64-gnu into .roost/lib/) or set ROOST_LIBCHDB to the path of libchdb.so";

/// How to open the embedded engine.
#[derive(Debug, Clone)]
pub struct ChdbConfig {
    /// Directory holding the engine's databases; created when missing.
    pub data_dir: PathBuf,
    /// Explicit `libchdb.so`; when None, [`find_library`] looks in the usual places.
    pub library: Option<PathBuf>,
    /// Connections in the pool: how many statements may run at once.
    pub connections: usize,
    /// Session settings every connection starts with (name, value).
    pub settings: Vec<(String, String)>,
    /// The nice value chDB's merge threads get (see [`DEFAULT_MERGE_THREAD_NICE`]); `None`
    /// leaves them as chDB starts them. Process-wide: the first [`Chdb::open`] decides.
    pub merge_thread_nice: Option<i32>,
}

impl ChdbConfig {
    /// A configuration with the default pool size for this machine.
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        let cores = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2);
        ChdbConfig {
            data_dir: data_dir.into(),
            library: None,
            connections: (cores * 2).max(4),
            settings: Vec::new(),
            merge_thread_nice: Some(DEFAULT_MERGE_THREAD_NICE),
        }
    }
}

/// Where `libchdb.so` is looked for, in order: `ROOST_LIBCHDB`; then `.roost/lib/libchdb.so` in
/// the current directory or any parent, or in an ancestor of the executable's directory (where
/// `make setup` links it).
pub fn find_library() -> Result<PathBuf, EngineError> {
    if let Some(path) = std::env::var_os(LIBCHDB_ENV) {
        let path = PathBuf::from(path);
        return if path.is_file() {
            Ok(path)
        } else {
            Err(EngineError::Unavailable(format!(
                "{LIBCHDB_ENV}={} does not name a file: {INSTALL_HINT}",
                path.display()
            )))
        };
    }
    let mut roots: Vec<PathBuf> = Vec::new();
    if let Ok(cwd) = std::env::current_dir() {
        roots.extend(cwd.ancestors().map(Path::to_path_buf));
    }
    if let Ok(exe) = std::env::current_exe() {
        roots.extend(exe.ancestors().skip(1).map(Path::to_path_buf));
    }
    roots
        .iter()
        .map(|root| root.join(".roost/lib/libchdb.so"))
        .find(|path| path.is_file())
        .ok_or_else(|| {
            EngineError::Unavailable(format!("libchdb.so was not found: {INSTALL_HINT}"))
        })
}

/// One open chDB connection. Only the pool hands it out, to one thread at a time.
struct Connection(*mut ffi::Connection);

// SAFETY: a chDB connection may be used from any thread as long as one thread uses it at a time,
// which the pool guarantees by moving it out while in use.
unsafe impl Send for Connection {}

struct Shared {
    api: ffi::Api,
    data_dir: PathBuf,
    version: String,
}

static ENGINE: OnceLock<Shared> = OnceLock::new();
static OPEN_LOCK: Mutex<()> = Mutex::new(());

/// The embedded ClickHouse engine.
pub struct Chdb {
    pool: Arc<Pool>,
}

/// The engine's connections: shared with the threads that stream results, which hold a
/// connection for as long as their reader reads.
struct Pool {
    shared: &'static Shared,
    idle: Mutex<Vec<Connection>>,
    permits: Arc<Semaphore>,
    /// The session settings of every connection, to open a replacement with.
    settings: Vec<(String, String)>,
}

impl Pool {
    fn check_out(&self) -> Result<Connection, EngineError> {
        self.idle
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .pop()
            .ok_or_else(|| EngineError::Unavailable("no idle chDB connection".into()))
    }

    /// Returns a connection after use, or a fresh one in place of a tainted one.
    fn give_back(&self, connection: Connection, health: Health) {
        let connection = match health {
            Health::Good => Some(connection),
            // Never hand a connection that may answer with someone else's output to a caller:
            // it is left open (chDB cannot close one safely here) and a new one takes its place.
            Health::Tainted => match connect(self.shared, &self.settings) {
                Ok(fresh) => Some(fresh),
                Err(error) => {
                    tracing::error!(error = %error, "cannot replace a tainted chDB connection");
                    None
                }
            },
        };
        if let Some(connection) = connection {
            self.idle
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .push(connection);
        } else {
            // One connection fewer: keep the permits in step so no caller waits for it.
            self.permits.forget_permits(1);
        }
    }
}

impl std::fmt::Debug for Chdb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Chdb")
            .field("data_dir", &self.pool.shared.data_dir)
            .field("version", &self.pool.shared.version)
            .finish()
    }
}

impl Chdb {
    /// Loads the library (once per process) and opens the pool on `config.data_dir`.
    pub fn open(config: &ChdbConfig) -> Result<Chdb, EngineError> {
        let _guard = OPEN_LOCK
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        std::fs::create_dir_all(&config.data_dir).map_err(|e| {
            EngineError::Unavailable(format!("cannot create {}: {e}", config.data_dir.display()))
        })?;
        let data_dir = config.data_dir.canonicalize().map_err(|e| {
            EngineError::Unavailable(format!("cannot resolve {}: {e}", config.data_dir.display()))
        })?;
        let shared = match ENGINE.get() {
            Some(shared) if shared.data_dir == data_dir => shared,
            Some(shared) => {
                return Err(EngineError::Invalid(format!(
                    "chDB is already open on {} in this process; it cannot open {} too",
                    shared.data_dir.display(),
                    data_dir.display()
                )));
            }
            None => {
                let library = match &config.library {
                    Some(path) => path.clone(),
                    None => find_library()?,
                };
                let loaded = load(&library, data_dir)?;
                ENGINE.get_or_init(|| loaded)
            }
        };
        let size = config.connections.max(1);
        let mut idle = Vec::with_capacity(size);
        for _ in 0..size {
            idle.push(connect(shared, &config.settings)?);
        }
        if let Some(nice) = config.merge_thread_nice {
            MERGES_YIELD.get_or_init(|| {
                let _ = std::thread::Builder::new()
                    .name("chdb-merge-nice".into())
                    .spawn(move || lower_merge_thread_priority(nice));
            });
        }
        tracing::info!(path = %shared.data_dir.display(), version = %shared.version, connections = size, "chDB engine open");
        Ok(Chdb {
            pool: Arc::new(Pool {
                shared,
                idle: Mutex::new(idle),
                permits: Arc::new(Semaphore::new(size)),
                settings: config.settings.clone(),
            }),
        })
    }

    /// The chDB library version.
    pub fn version(&self) -> &str {
        &self.pool.shared.version
    }

    /// Runs `work` with a connection of the pool on a blocking thread.
    async fn with_connection<T, F>(&self, work: F) -> Result<T, EngineError>
    where
        T: Send + 'static,
        F: FnOnce(&'static ffi::Api, ffi::Connection) -> (Result<T, EngineError>, Health)
            + Send
            + 'static,
    {
        let _permit = self
            .pool
            .permits
            .acquire()
            .await
            .map_err(|_| EngineError::Unavailable("engine closed".into()))?;
        let connection = self.pool.check_out()?;
        let api = &self.pool.shared.api;
        let connection = tokio::task::spawn_blocking(move || {
            // SAFETY: the connection pointer came from chdb_connect and is used by this thread only.
            let handle = unsafe { *connection.0 };
            let (outcome, health) = work(api, handle);
            (connection, outcome, health)
        })
        .await
        .map_err(|e| EngineError::Unavailable(format!("engine task failed: {e}")))?;
        let (connection, outcome, health) = connection;
        self.pool.give_back(connection, health);
        outcome
    }
}

fn load(library_path: &Path, data_dir: PathBuf) -> Result<Shared, EngineError> {
    // SAFETY: loading chDB runs its static constructors, which only initialize ClickHouse's globals.
    let library = unsafe { libloading::Library::new(library_path) }.map_err(|e| {
        EngineError::Unavailable(format!(
            "cannot load {}: {e}; {INSTALL_HINT}",
            library_path.display()
        ))
    })?;
    // chDB cannot be unloaded safely (threads and globals outlive any handle), so it stays for good.
    let library: &'static libloading::Library = Box::leak(Box::new(library));
    // SAFETY: this is libchdb.so, whose exports have the signatures declared in `ffi`.
    let api = unsafe { ffi::Api::load(library) }.map_err(|e| {
        EngineError::Unavailable(format!(
            "{} is not a usable libchdb ({e}); {INSTALL_HINT}",
            library_path.display()
        ))
    })?;
    // SAFETY: plain flag setter; must run before the first connect.
    unsafe { (api.set_signal_handlers_enabled)(0) };
    ffi::end_before_engine_destructors();
    // SAFETY: returns a static NUL-terminated string.
    let version = unsafe { CStr::from_ptr((api.version)()) }
        .to_string_lossy()
        .into_owned();
    Ok(Shared {
        api,
        data_dir,
        version,
    })
}

/// The nice value of chDB's merge threads: merges yield the CPU to inserts and queries, which
/// callers wait for, and take what those leave idle. ClickHouse server does this with
/// `os_threads_nice_value_merge_mutate`; chDB accepts that setting but does not apply it.
pub const DEFAULT_MERGE_THREAD_NICE: i32 = 10;

/// How often merge threads are looked for: chDB starts them when first needed.
const MERGE_THREAD_SCAN: std::time::Duration = std::time::Duration::from_secs(2);

/// `setpriority`'s "no such thread".
const ESRCH: i32 = 3;

/// Set once the thread lowering merge priority runs (one per process, like the engine).
static MERGES_YIELD: OnceLock<()> = OnceLock::new();

/// Gives every chDB merge thread of this process the nice value `nice`, for good.
fn lower_merge_thread_priority(nice: i32) {
    loop {
        for thread_id in threads_named("MergeMutate") {
            match ffi::set_thread_nice(thread_id, nice) {
                Ok(()) => {}
                // The thread ended since it was listed.
                Err(error) if error.raw_os_error() == Some(ESRCH) => {}
                Err(error) => {
                    tracing::warn!(%error, "cannot lower the priority of chDB's merges");
                    return;
                }
            }
        }
        std::thread::sleep(MERGE_THREAD_SCAN);
    }
}

/// The ids of this process's threads whose name starts with `prefix`.
fn threads_named(prefix: &str) -> Vec<u32> {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return Vec::new();
    };
    tasks
        .flatten()
        .filter(|task| {
            std::fs::read_to_string(task.path().join("comm"))
                .is_ok_and(|name| name.starts_with(prefix))
        })
        .filter_map(|task| task.file_name().to_str()?.parse().ok())
        .collect()
}

fn connect(shared: &Shared, settings: &[(String, String)]) -> Result<Connection, EngineError> {
    let nul = |_| EngineError::Invalid("a connection argument contains a NUL byte".into());
    let mut args = vec![
        CString::new("roost").map_err(nul)?,
        CString::new(format!("--path={}", shared.data_dir.display())).map_err(nul)?,
    ];
    for (name, value) in settings {
        args.push(CString::new(format!("--{name}={value}")).map_err(nul)?);
    }
    let mut argv: Vec<*mut c_char> = args.iter().map(|arg| arg.as_ptr() as *mut c_char).collect();
    // SAFETY: argv holds valid NUL-terminated strings that outlive the call.
    let connection = unsafe { (shared.api.connect)(argv.len() as i32, argv.as_mut_ptr()) };
    // SAFETY: a non-null result points at a connection handle.
    if connection.is_null() || unsafe { (*connection).is_null() } {
        return Err(EngineError::Unavailable(format!(
            "chDB could not open {}",
            shared.data_dir.display()
        )));
    }
    ffi::end_before_engine_destructors();
    Ok(Connection(connection))
}

/// A finished chDB result, owned so its buffer can back a [`Bytes`] without a copy.
struct OwnedResult {
    api: &'static ffi::Api,
    result: ffi::ResultPtr,
}

// SAFETY: a finished result is an immutable buffer; chdb_destroy_query_result may run on any thread.
unsafe impl Send for OwnedResult {}
// SAFETY: see Send; reads of a finished result do not mutate it.
unsafe impl Sync for OwnedResult {}

impl OwnedResult {
    fn take(api: &'static ffi::Api, result: ffi::ResultPtr) -> Result<OwnedResult, EngineError> {
        if result.is_null() {
            return Err(EngineError::Unavailable("chDB returned no result".into()));
        }
        let owned = OwnedResult { api, result };
        // SAFETY: result is a live chdb_result.
        let error = unsafe { (api.result_error)(result) };
        if !error.is_null() {
            // SAFETY: a non-null error is a NUL-terminated string owned by the result.
            let message = unsafe { CStr::from_ptr(error) }
                .to_string_lossy()
                .into_owned();
            if !message.is_empty() {
                return Err(EngineError::from_server_message(message));
            }
        }
        Ok(owned)
    }
}

impl AsRef<[u8]> for OwnedResult {
    fn as_ref(&self) -> &[u8] {
        // SAFETY: buffer/length describe memory owned by the live result.
        unsafe {
            let length = (self.api.result_length)(self.result);
            let buffer = (self.api.result_buffer)(self.result);
            if buffer.is_null() || length == 0 {
                &[]
            } else {
                std::slice::from_raw_parts(buffer as *const u8, length)
            }
        }
    }
}

impl Drop for OwnedResult {
    fn drop(&mut self) {
        // SAFETY: the result is destroyed exactly once, here.
        unsafe { (self.api.destroy_query_result)(self.result) };
    }
}

#[async_trait]
impl Engine for Chdb {
    async fn query(&self, sql: &str, format: &str) -> Result<QueryResult, EngineError> {
        let sql = sql.to_owned();
        let format = format.to_owned();
        self.with_connection(move |api, connection| {
            // SAFETY: pointers and lengths describe live Rust strings; the connection is ours.
            let result = unsafe {
                (api.query_n)(
                    connection,
                    sql.as_ptr().cast(),
                    sql.len(),
                    format.as_ptr().cast(),
                    format.len(),
                )
            };
            let owned = match OwnedResult::take(api, result) {
                Ok(owned) => owned,
                Err(error) => return (Err(error), drain_after_error(api, connection)),
            };
            // SAFETY: owned.result is live.
            let (elapsed, rows_read, bytes_read) = unsafe {
                (
                    (api.result_elapsed)(owned.result),
                    (api.result_rows_read)(owned.result),
                    (api.result_bytes_read)(owned.result),
                )
            };
            let answer = QueryResult {
                data: Bytes::from_owner(owned),
                elapsed,
                rows_read,
                bytes_read,
            };
            (Ok(answer), Health::Good)
        })
        .await
    }

    /// chDB's streaming query: a blocking thread holds a connection and fetches the result
    /// block by block, handing each on through a short channel, so the reader's pace bounds what
    /// is held. A reader that stops early cancels the query.
    async fn query_stream(&self, sql: &str, format: &str) -> Result<ByteStream, EngineError> {
        let permit = self
            .pool
            .permits
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| EngineError::Unavailable("engine closed".into()))?;
        let connection = self.pool.check_out()?;
        let pool = self.pool.clone();
        let (sql, format) = (sql.to_owned(), format.to_owned());
        let (started, start) = tokio::sync::oneshot::channel();
        let (chunks, received) = tokio::sync::mpsc::channel(STREAM_CHUNKS_AHEAD);
        tokio::task::spawn_blocking(move || {
            // SAFETY: the connection pointer came from chdb_connect and is used by this thread only.
            let handle = unsafe { *connection.0 };
            let health = stream_blocking(&pool.shared.api, handle, &sql, &format, started, &chunks);
            pool.give_back(connection, health);
            drop(permit);
        });
        start
            .await
            .map_err(|_| EngineError::Unavailable("engine task failed".into()))??;
        Ok(Box::pin(futures::stream::unfold(
            received,
            |mut received| async move { received.recv().await.map(|chunk| (chunk, received)) },
        )))
    }

    async fn execute(&self, sql: &str) -> Result<(), EngineError> {
        self.query(sql, "Null").await.map(|_| ())
    }

    async fn insert(&self, block: InsertBlock<'_>) -> Result<InsertSummary, EngineError> {
        let mut statement = format!("INSERT INTO {}", block.table);
        if !block.columns.is_empty() {
            statement.push_str(&format!(" ({})", block.columns));
        }
        if !block.settings.is_empty() {
            statement.push_str(&format!(" SETTINGS {}", block.settings));
        }
        let format = block.format.to_owned();
        let data = block.data;
        self.with_connection(move |api, connection| {
            (
                insert_blocking(api, connection, &statement, &format, &data),
                Health::Good,
            )
        })
        .await
    }

    fn kind(&self) -> &'static str {
        "chdb"
    }

    async fn drop_sync_clause(&self) -> Result<&'static str, EngineError> {
        Ok(" SYNC")
    }
}

/// chDB keeps the output a failed query wrote before its error in the connection's buffer and
/// puts it in front of the next query's answer, which would hand one request's rows (possibly
/// another workspace's) to the next caller of the connection. A sentinel query takes it out; it
/// runs until its answer is exactly its own.
fn drain_after_error(api: &'static ffi::Api, connection: ffi::Connection) -> Health {
    const SENTINEL: &str = "SELECT 'roost-drain'";
    const FORMAT: &str = "TSVRaw";
    for _ in 0..4 {
        // SAFETY: pointers and lengths describe live constants; the connection is ours.
        let result = unsafe {
            (api.query_n)(
                connection,
                SENTINEL.as_ptr().cast(),
                SENTINEL.len(),
                FORMAT.as_ptr().cast(),
                FORMAT.len(),
            )
        };
        if let Ok(owned) = OwnedResult::take(api, result)
            && owned.as_ref() == b"roost-drain\n"
        {
            return Health::Good;
        }
    }
    tracing::error!("a chDB connection still returns stale output after an error; replacing it");
    Health::Tainted
}

/// Blocks of a streamed result fetched ahead of their reader.
const STREAM_CHUNKS_AHEAD: usize = 2;

/// Runs a streaming query on `connection`: says on `started` whether its first block came (chDB
/// reports a statement that cannot run only when the first block is fetched), then sends its
/// blocks on `chunks` until the end, an error, or a reader that went away (then the query is
/// cancelled). Returns whether the connection may serve the next caller.
fn stream_blocking(
    api: &'static ffi::Api,
    connection: ffi::Connection,
    sql: &str,
    format: &str,
    started: tokio::sync::oneshot::Sender<Result<(), EngineError>>,
    chunks: &tokio::sync::mpsc::Sender<Result<Bytes, EngineError>>,
) -> Health {
    // SAFETY: pointers and lengths describe live Rust strings; the connection is ours.
    let handle = unsafe {
        (api.stream_query_n)(
            connection,
            sql.as_ptr().cast(),
            sql.len(),
            format.as_ptr().cast(),
            format.len(),
        )
    };
    // The handle is a result of its own, destroyed when `stream` drops.
    let stream = match OwnedResult::take(api, handle) {
        Ok(stream) => stream,
        Err(error) => {
            let _ = started.send(Err(error));
            return drain_after_error(api, connection);
        }
    };
    let mut started = Some(started);
    loop {
        // SAFETY: the stream handle is live and fetched by this thread only.
        let chunk = unsafe { (api.stream_fetch_result)(connection, stream.result) };
        let chunk = match (OwnedResult::take(api, chunk), started.take()) {
            (Err(error), Some(started)) => {
                let _ = started.send(Err(error));
                drop(stream);
                return drain_after_error(api, connection);
            }
            (chunk, Some(started)) => {
                let _ = started.send(Ok(()));
                chunk
            }
            (chunk, None) => chunk,
        };
        match chunk {
            Ok(chunk) if chunk.as_ref().is_empty() => return Health::Good,
            Ok(chunk) => {
                if chunks.blocking_send(Ok(Bytes::from_owner(chunk))).is_err() {
                    // SAFETY: the stream handle is live; it is destroyed after the cancel.
                    unsafe { (api.stream_cancel_query)(connection, stream.result) };
                    drop(stream);
                    return drain_after_error(api, connection);
                }
            }
            Err(error) => {
                let _ = chunks.blocking_send(Err(error));
                drop(stream);
                return drain_after_error(api, connection);
            }
        }
    }
}

/// Whether a connection may serve the next caller.
enum Health {
    Good,
    /// It may still hold output of an earlier statement.
    Tainted,
}

fn insert_blocking(
    api: &'static ffi::Api,
    connection: ffi::Connection,
    statement: &str,
    format: &str,
    data: &[u8],
) -> Result<InsertSummary, EngineError> {
    struct Stream<'a>(&'a ffi::Api, ffi::InsertStream);
    impl Drop for Stream<'_> {
        fn drop(&mut self) {
            // SAFETY: destroy is required once per handle, on every path; it cancels if unfinished.
            unsafe { (self.0.destroy_insert_stream)(self.1) };
        }
    }
    let stream_error = |stream: &Stream<'_>| -> Option<String> {
        // SAFETY: the stream handle is live; a non-null error is a NUL-terminated string.
        let error = unsafe { (api.stream_insert_error)(stream.1) };
        (!error.is_null()).then(|| {
            unsafe { CStr::from_ptr(error) }
                .to_string_lossy()
                .into_owned()
        })
    };
    // SAFETY: pointers and lengths describe live strings; the connection is ours.
    let handle = unsafe {
        (api.stream_insert_n)(
            connection,
            statement.as_ptr().cast(),
            statement.len(),
            format.as_ptr().cast(),
            format.len(),
        )
    };
    if handle.is_null() {
        return Err(EngineError::Unavailable(
            "chDB returned no insert stream".into(),
        ));
    }
    let stream = Stream(api, handle);
    if let Some(message) = stream_error(&stream) {
        return Err(EngineError::from_server_message(message));
    }
    // Appends are copied by chDB and may block for backpressure; large blocks go in slices so
    // parsing can start before the whole block is handed over.
    const SLICE: usize = 8 << 20;
    for chunk in data.chunks(SLICE) {
        // SAFETY: chunk is live for the call; chDB copies it.
        let state = unsafe { (api.stream_append)(stream.1, chunk.as_ptr().cast(), chunk.len()) };
        if state != ffi::CHDB_SUCCESS {
            let message =
                stream_error(&stream).unwrap_or_else(|| "chDB refused the insert data".into());
            return Err(EngineError::from_server_message(message));
        }
    }
    // SAFETY: the stream is live and not yet finished.
    let result = OwnedResult::take(api, unsafe { (api.stream_done)(stream.1) })?;
    // SAFETY: result.result is live.
    let summary = unsafe {
        InsertSummary {
            rows_written: (api.result_rows_written)(result.result),
            bytes_written: (api.result_bytes_written)(result.result),
        }
    };
    Ok(summary)
}
