//! The sink job: a pipe node's result written as files to an S3-compatible bucket or a local
//! directory. The engine encodes each file (CSVWithNames, JSONEachRow, Parquet); this job only
//! compresses and uploads the bytes as they come, in multipart pieces, so a streamed result is
//! never held whole. A `{column}` in the file template splits the result into one file per
//! distinct value.

use std::io::Write;
use std::path::{Path as FsPath, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use flate2::Compression;
use flate2::write::GzEncoder;
use futures::StreamExt;
use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::{ObjectStore, RetryConfig, WriteMultipart};
use roost_proto::catalog::v1::{Connection, GetConnectionRequest};
use roost_types::sink::{
    BucketUri, FileTemplate, RunValues, SinkCompression, SinkFormat, WriteStrategy, local_path,
    relative_path,
};
use roost_types::{quote_ident, quote_string};
use serde_json::{Map, Value, json};

use crate::kinds::{JobContext, JobFailure, compile_job_node};

/// More distinct values than this in a partition column is a template mistake, not a plan.
const MAX_FILES: usize = 1000;

/// Bytes per uploaded part; S3 needs at least 5 MiB for every part but the last.
const PART_BYTES: usize = 8 * 1024 * 1024;

/// Parts uploading at once per file.
const PARTS_IN_FLIGHT: usize = 2;

/// Where files go: a store and the prefix inside it, and how to show a file's location.
struct Target {
    store: Arc<dyn ObjectStore>,
    prefix: String,
    /// `s3://bucket` or the local directory: what a written file's path is shown under.
    shown_root: String,
}

impl Target {
    fn location(&self, name: &str) -> String {
        match self.prefix.is_empty() {
            true => name.to_string(),
            false => format!("{}/{name}", self.prefix),
        }
    }

    fn shown(&self, location: &str) -> String {
        format!("{}/{location}", self.shown_root.trim_end_matches('/'))
    }
}

fn failed(message: impl Into<String>) -> JobFailure {
    JobFailure::Failed(message.into())
}

fn text<'a>(fields: &'a Map<String, Value>, key: &str) -> &'a str {
    fields
        .get(key)
        .and_then(Value::as_str)
        .map(str::trim)
        .unwrap_or_default()
}

fn object(text: &str) -> Map<String, Value> {
    match serde_json::from_str(text) {
        Ok(Value::Object(fields)) => fields,
        _ => Map::new(),
    }
}

/// The target a connection and a sink path name. S3 targets may be any S3-compatible server
/// (loopback included: the connection's owner chose it); local targets must resolve, symlinks
/// followed, inside `local_root`.
async fn target(
    connection: &Connection,
    path: &str,
    local_root: &FsPath,
) -> Result<Target, JobFailure> {
    let settings = object(&connection.settings_json);
    let secrets = object(&connection.secrets_json);
    match connection.service.as_str() {
        "s3" => {
            let uri = BucketUri::parse(path).map_err(failed)?;
            let endpoint = text(&settings, "s3_endpoint");
            let mut builder = AmazonS3Builder::new()
                .with_bucket_name(&uri.bucket)
                .with_region(text(&settings, "s3_region"))
                .with_access_key_id(text(&settings, "s3_access_key_id"))
                .with_secret_access_key(text(&secrets, "s3_secret_access_key"))
                .with_retry(RetryConfig {
                    max_retries: 3,
                    retry_timeout: Duration::from_secs(30),
                    ..RetryConfig::default()
                });
            if !endpoint.is_empty() {
                builder = builder
                    .with_endpoint(endpoint)
                    .with_allow_http(endpoint.starts_with("http://"));
            }
            let store = builder
                .build()
                .map_err(|e| failed(format!("Cannot use connection '{}': {e}", connection.name)))?;
            Ok(Target {
                store: Arc::new(store),
                prefix: uri.prefix,
                shown_root: format!("s3://{}", uri.bucket),
            })
        }
        "local" => {
            let root = relative_path(text(&settings, "root")).map_err(failed)?;
            let path = local_path(path).map_err(failed)?;
            let directory = local_root.join(&root).join(&path);
            let inside = |directory: PathBuf| async move {
                tokio::fs::create_dir_all(&directory).await?;
                let allowed = tokio::fs::canonicalize(local_root).await?;
                let resolved = tokio::fs::canonicalize(&directory).await?;
                Ok::<_, std::io::Error>(resolved.starts_with(&allowed).then_some(resolved))
            };
            let directory = match inside(directory).await {
                Ok(Some(directory)) => directory,
                Ok(None) => {
                    return Err(failed(format!(
                        "The path '{path}' leaves the local export root"
                    )));
                }
                Err(error) => {
                    return Err(failed(format!(
                        "Cannot create the export directory '{path}': {error}"
                    )));
                }
            };
            let store = LocalFileSystem::new_with_prefix(&directory)
                .map_err(|e| failed(format!("Cannot use the export directory: {e}")))?;
            Ok(Target {
                store: Arc::new(store),
                prefix: String::new(),
                shown_root: directory.display().to_string(),
            })
        }
        other => Err(failed(format!(
            "Connection '{}' is for '{other}', which sinks cannot write to",
            connection.name
        ))),
    }
}

/// The SQL expression a partition column stands for: its value as text, or formatted.
fn partition_expression(column: &str, format: Option<&str>) -> String {
    match format {
        Some(format) => format!(
            "formatDateTime({}, {})",
            quote_ident(column),
            quote_string(format)
        ),
        None => format!("toString({})", quote_ident(column)),
    }
}

/// One file to write: its partition values and the rows the engine counted for it.
struct Part {
    values: Vec<String>,
    rows: u64,
}

/// The partitions of the result, each with its row count, from one grouped query.
async fn parts(
    context: &JobContext,
    sql: &str,
    expressions: &[String],
) -> Result<Vec<Part>, JobFailure> {
    let engine = &context.dependencies.engine;
    let query = match expressions.is_empty() {
        true => format!("SELECT count() FROM ({sql})"),
        false => {
            let keys = (1..=expressions.len())
                .map(|i| i.to_string())
                .collect::<Vec<_>>()
                .join(", ");
            format!(
                "SELECT {}, count() FROM ({sql}) GROUP BY {keys} ORDER BY {keys} LIMIT {}",
                expressions.join(", "),
                MAX_FILES + 1
            )
        }
    };
    let answer = engine.query(&query, "JSONCompactEachRow").await?;
    let mut parts = Vec::new();
    for line in String::from_utf8_lossy(&answer.data).lines() {
        let Ok(Value::Array(mut row)) = serde_json::from_str::<Value>(line) else {
            return Err(failed(format!("unexpected partition row: {line}")));
        };
        let rows = match row.pop() {
            Some(Value::Number(n)) => n.as_u64(),
            Some(Value::String(s)) => s.parse().ok(),
            _ => None,
        }
        .ok_or_else(|| failed(format!("unexpected partition row: {line}")))?;
        let values = row
            .into_iter()
            .map(|v| match v {
                Value::String(s) => s,
                other => other.to_string(),
            })
            .collect();
        parts.push(Part { values, rows });
    }
    if parts.len() > MAX_FILES {
        return Err(failed(format!(
            "The file_template splits the result into more than {MAX_FILES} files: partition by a column with fewer distinct values"
        )));
    }
    Ok(parts)
}

/// A free name for `stem` + `extension` under the target: the name itself, or with `truncate`
/// the name even when taken; with `new`, `stem_1`, `stem_2`, ... when it is taken.
async fn free_location(
    target: &Target,
    stem: &str,
    extension: &str,
    strategy: WriteStrategy,
) -> Result<Path, JobFailure> {
    for attempt in 0..=MAX_FILES {
        let name = match attempt {
            0 => format!("{stem}.{extension}"),
            n => format!("{stem}_{n}.{extension}"),
        };
        let location = Path::parse(target.location(&name))
            .map_err(|e| failed(format!("Invalid file name '{name}': {e}")))?;
        if strategy == WriteStrategy::Truncate {
            return Ok(location);
        }
        match target.store.head(&location).await {
            Err(object_store::Error::NotFound { .. }) => return Ok(location),
            Ok(_) => continue,
            Err(error) => return Err(failed(format!("Cannot read {location}: {error}"))),
        }
    }
    Err(failed(format!("Too many files named '{stem}' exist")))
}

/// How often a file being written reports progress (and looks for a cancellation).
const PROGRESS_EVERY: Duration = Duration::from_millis(500);

/// Where a run is: the files written of all, and within the file being written, the rows seen
/// of its rows (text formats end every row with a newline; Parquet counts per file only).
struct Progress<'a> {
    context: &'a JobContext,
    files: usize,
    files_done: usize,
    rows: u64,
    rows_seen: u64,
    counts_rows: bool,
    reported: Instant,
}

impl<'a> Progress<'a> {
    fn new(context: &'a JobContext, files: usize, format: SinkFormat) -> Self {
        Progress {
            context,
            files: files.max(1),
            files_done: 0,
            rows: 0,
            rows_seen: 0,
            counts_rows: format != SinkFormat::Parquet,
            reported: Instant::now(),
        }
    }

    fn start_file(&mut self, rows: u64) {
        self.rows = rows;
        self.rows_seen = 0;
    }

    /// Counts a piece of the file being written; now and then reports, and stops a cancelled
    /// job.
    async fn saw(&mut self, piece: &[u8]) -> Result<(), JobFailure> {
        if self.counts_rows {
            self.rows_seen += piece.iter().filter(|&&byte| byte == b'\n').count() as u64;
        }
        if self.reported.elapsed() < PROGRESS_EVERY {
            return Ok(());
        }
        self.reported = Instant::now();
        let within = match self.rows {
            0 => 0.0,
            // A CSV header, or a newline inside a quoted value, may count one too many.
            rows => (self.rows_seen as f64 / rows as f64).min(1.0),
        };
        self.report(within).await
    }

    async fn finish_file(&mut self) -> Result<(), JobFailure> {
        self.files_done += 1;
        self.report(0.0).await
    }

    async fn report(&self, within_file: f64) -> Result<(), JobFailure> {
        let done = (self.files_done as f64 + within_file) / self.files as f64;
        self.context.checkpoint(done).await
    }
}

/// Streams the result of `sql` into the file at `location`, compressed as asked. Returns the
/// bytes written. A failed or cancelled upload is aborted, so no partial file stays behind.
async fn write_file(
    progress: &mut Progress<'_>,
    target: &Target,
    location: &Path,
    sql: &str,
    format: SinkFormat,
    compression: SinkCompression,
) -> Result<u64, JobFailure> {
    let upload = target
        .store
        .put_multipart(location)
        .await
        .map_err(|e| failed(format!("Cannot write {location}: {e}")))?;
    let mut writer = WriteMultipart::new_with_chunk_size(upload, PART_BYTES);
    let written = async {
        let mut chunks = progress
            .context
            .dependencies
            .engine
            .query_stream(sql, format.engine_format())
            .await?;
        let mut gzip = match compression {
            SinkCompression::Gzip => Some(GzEncoder::new(Vec::new(), Compression::default())),
            SinkCompression::None => None,
        };
        let mut bytes = 0u64;
        while let Some(chunk) = chunks.next().await {
            let chunk = chunk?;
            progress.saw(&chunk).await?;
            let out = match &mut gzip {
                Some(encoder) => {
                    encoder
                        .write_all(&chunk)
                        .map_err(|e| failed(format!("Cannot compress: {e}")))?;
                    Bytes::from(std::mem::take(encoder.get_mut()))
                }
                None => chunk,
            };
            bytes += out.len() as u64;
            writer
                .wait_for_capacity(PARTS_IN_FLIGHT)
                .await
                .map_err(|e| failed(format!("Cannot write {location}: {e}")))?;
            writer.put(out);
        }
        if let Some(encoder) = gzip {
            let rest = encoder
                .finish()
                .map_err(|e| failed(format!("Cannot compress: {e}")))?;
            bytes += rest.len() as u64;
            writer.write(&rest);
        }
        Ok::<_, JobFailure>(bytes)
    }
    .await;
    match written {
        Ok(bytes) => {
            writer
                .finish()
                .await
                .map_err(|e| failed(format!("Cannot write {location}: {e}")))?;
            Ok(bytes)
        }
        Err(failure) => {
            let _ = writer.abort().await;
            Err(failure)
        }
    }
}

/// Runs a sink: compiles the node, finds its partitions, writes one file per partition (or one
/// file), and reports each file with its bytes and rows.
pub(crate) async fn run(context: &JobContext) -> Result<Value, JobFailure> {
    let format = SinkFormat::parse(context.spec_text("format")).map_err(failed)?;
    let compression = SinkCompression::parse(context.spec_text("compression")).map_err(failed)?;
    let strategy = WriteStrategy::parse(context.spec_text("write_strategy")).map_err(failed)?;
    let template = FileTemplate::parse(context.spec_text("file_template")).map_err(failed)?;
    // The id: a connection renamed or replaced by one of the same name is not written to.
    let connection_id = context.spec_text("connection_id");
    let connection = context
        .dependencies
        .catalog
        .get_connection(GetConnectionRequest {
            header: context.header(),
            name_or_id: connection_id.to_string(),
            with_secrets: true,
        })
        .await?
        .connection
        .ok_or_else(|| failed(format!("Connection '{connection_id}' not found")))?;
    let target = target(
        &connection,
        context.spec_text("path"),
        &context.dependencies.sink_local_root,
    )
    .await?;
    let compiled = compile_job_node(context).await?;
    let partitions = template.partitions();
    if let Some((missing, _)) = partitions
        .iter()
        .find(|(column, _)| !compiled.columns.iter().any(|c| c.name == *column))
    {
        return Err(failed(format!(
            "The file_template partitions by '{missing}', which the node's result does not have"
        )));
    }
    let expressions: Vec<String> = partitions
        .iter()
        .map(|(column, format)| partition_expression(column, *format))
        .collect();
    let parts = parts(context, &compiled.sql, &expressions).await?;
    context.checkpoint(0.0).await?;
    let run = RunValues {
        at: chrono::Utc::now(),
        job_id: &context.job.id,
    };
    let extension = format!("{}{}", format.extension(), compression.suffix());
    let mut files = Vec::new();
    let (mut total_rows, mut total_bytes) = (0u64, 0u64);
    let mut progress = Progress::new(context, parts.len(), format);
    for part in &parts {
        let stem = template.render(&run, &part.values);
        let location = free_location(&target, &stem, &extension, strategy).await?;
        let sql = match expressions.is_empty() {
            true => compiled.sql.clone(),
            false => {
                let filter = expressions
                    .iter()
                    .zip(&part.values)
                    .map(|(expression, value)| format!("{expression} = {}", quote_string(value)))
                    .collect::<Vec<_>>()
                    .join(" AND ");
                format!("SELECT * FROM ({}) WHERE {filter}", compiled.sql)
            }
        };
        progress.start_file(part.rows);
        let bytes =
            write_file(&mut progress, &target, &location, &sql, format, compression).await?;
        files.push(json!({
            "path": target.shown(location.as_ref()),
            "bytes": bytes,
            "rows": part.rows,
        }));
        total_rows += part.rows;
        total_bytes += bytes;
        progress.finish_file().await?;
    }
    Ok(json!({
        "files": files,
        "rows": total_rows,
        "bytes": total_bytes,
        "format": format.extension(),
        "compression": compression.as_str(),
        "connection": connection.name,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partition_expressions_quote_the_column_and_the_format() {
        assert_eq!(partition_expression("country", None), "toString(`country`)");
        assert_eq!(
            partition_expression("ts", Some("%Y-%m")),
            "formatDateTime(`ts`, '%Y-%m')"
        );
    }

    #[test]
    fn locations_sit_under_the_prefix_and_show_under_the_root() {
        let target = Target {
            store: Arc::new(object_store::memory::InMemory::new()),
            prefix: "exports/daily".into(),
            shown_root: "s3://bucket".into(),
        };
        assert_eq!(target.location("a.csv"), "exports/daily/a.csv");
        assert_eq!(
            target.shown("exports/daily/a.csv"),
            "s3://bucket/exports/daily/a.csv"
        );
    }
}
