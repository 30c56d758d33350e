//! The `import` job: a file read from a URL into a data source, chunk by chunk, through the
//! ingest service (so rows that do not fit go to quarantine as for any upload). Appends (and
//! creates, whose data source the API made before) add each chunk as it comes; replaces stage
//! every chunk aside and swap them in at the end, so readers never see a partial table and an
//! interrupted replace can simply run again.

use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use roost_fetch::chunks::first_row;
use roost_fetch::{Body, FetchError, FileFormat, RowChunker, RowFormat};
use roost_proto::ingest::v1::{
    AnalyzeDataRequest, DataFormat, FinishReplaceRequest, IngestDataRequest,
};
use serde_json::{Value, json};

use crate::kinds::{JobContext, JobFailure, data_source_of};

/// Rows go to ingest in chunks of about this size: big enough that each insert is worth its
/// cost, small enough that progress and cancellation are seen often and memory stays bounded.
const CHUNK_BYTES: usize = 4 << 20;
/// Longest row: a file without row boundaries (one endless line, a CSV quote never closed)
/// fails here rather than filling memory.
const MAX_ROW_BYTES: usize = 64 << 20;
/// Bytes looked at to recognise the format of an unlabelled file.
const SNIFF_BYTES: usize = 4096;
/// Progress is written at most this often while the file streams in.
const PROGRESS_EVERY: Duration = Duration::from_millis(500);

/// Runs an import; a replace that does not finish leaves the data source as it was.
pub(crate) async fn run(context: &JobContext) -> Result<Value, JobFailure> {
    let staging = (context.spec_text("mode") == "replace").then(|| context.job.id.replace('-', ""));
    if let Some(id) = &staging {
        // A run interrupted by a crash left its staged rows: start from nothing.
        finish_replace(context, id, true).await?;
    }
    let outcome = import(context, staging.as_deref()).await;
    if let (Some(id), Err(_)) = (&staging, &outcome)
        && let Err(error) = finish_replace(context, id, true).await
    {
        tracing::warn!(job = %context.job.id, error = ?error, "cannot drop a failed replace's staged rows");
    }
    outcome
}

async fn finish_replace(
    context: &JobContext,
    staging_id: &str,
    discard: bool,
) -> Result<u64, JobFailure> {
    let finished = context
        .dependencies
        .ingest
        .finish_replace(FinishReplaceRequest {
            header: context.header(),
            data_source: data_source_of(context),
            staging_id: staging_id.to_string(),
            replace_condition: context.spec_text("replace_condition").to_string(),
            discard,
        })
        .await?;
    Ok(finished.rows)
}

fn fetch_failure(error: FetchError) -> JobFailure {
    JobFailure::Failed(error.to_string())
}

/// What went in so far.
#[derive(Default)]
struct Tally {
    rows: u64,
    quarantined: u64,
    errors: Vec<String>,
}

/// Sends chunks to ingest with the dialect every chunk must share.
struct Sender<'a> {
    context: &'a JobContext,
    format: DataFormat,
    staging_id: Option<&'a str>,
    /// CSV: the delimiter and whether there is a header, settled on the first chunk.
    csv: Option<(u8, bool)>,
    /// CSV with a header: the header row, put before every chunk after the first so that
    /// columns keep being matched by name.
    header_row: Option<Bytes>,
    tally: Tally,
}

impl Sender<'_> {
    async fn send(&mut self, chunk: Bytes) -> Result<(), JobFailure> {
        let ingest = &self.context.dependencies.ingest;
        let chunk = if self.format == DataFormat::Csv {
            match (self.csv, &self.header_row) {
                (None, _) => {
                    let dialect = self.settle_dialect(&chunk).await?;
                    if dialect.1 {
                        self.header_row = first_row(RowFormat::Csv(Some(dialect.0)), &chunk)
                            .map(Bytes::copy_from_slice);
                    }
                    self.csv = Some(dialect);
                    chunk
                }
                (Some(_), Some(header)) => {
                    let mut joined = BytesMut::with_capacity(header.len() + chunk.len());
                    joined.extend_from_slice(header);
                    joined.extend_from_slice(&chunk);
                    joined.freeze()
                }
                (Some(_), None) => chunk,
            }
        } else {
            chunk
        };
        let (delimiter, header) = match self.csv {
            Some((delimiter, header)) => (char::from(delimiter).to_string(), header.to_string()),
            None => (String::new(), "auto".to_string()),
        };
        let ingested = ingest
            .ingest_data(IngestDataRequest {
                header: self.context.header(),
                data_source: data_source_of(self.context),
                format: self.format as i32,
                data: chunk,
                create_if_missing: false,
                type_guessing: true,
                csv_delimiter: delimiter,
                csv_header: header,
                wait: true,
                staging_id: self.staging_id.unwrap_or_default().to_string(),
            })
            .await?;
        self.tally.rows += ingested.successful_rows;
        self.tally.quarantined += ingested.quarantined_rows;
        for error in ingested.errors {
            if self.tally.errors.len() < 5 && !self.tally.errors.contains(&error) {
                self.tally.errors.push(error);
            }
        }
        Ok(())
    }

    /// The CSV dialect: what the spec forces, else what the analysis of the first chunk finds.
    async fn settle_dialect(&self, first: &Bytes) -> Result<(u8, bool), JobFailure> {
        let forced_delimiter = match self.context.spec_text("dialect_delimiter") {
            "\\t" => Some(b'\t'),
            text => text.bytes().next(),
        };
        let forced_header = match self.context.spec_text("dialect_header") {
            "true" | "1" => Some(true),
            "false" | "0" => Some(false),
            _ => None,
        };
        if let (Some(delimiter), Some(header)) = (forced_delimiter, forced_header) {
            return Ok((delimiter, header));
        }
        let analysis = self
            .context
            .dependencies
            .ingest
            .analyze_data(AnalyzeDataRequest {
                header: self.context.header(),
                format: DataFormat::Csv as i32,
                data: first.clone(),
                type_guessing: true,
                csv_delimiter: forced_delimiter
                    .map(|d| char::from(d).to_string())
                    .unwrap_or_default(),
                csv_header: forced_header.map_or("auto".into(), |h| h.to_string()),
            })
            .await?;
        let found = analysis.dialect.unwrap_or_default();
        Ok((
            forced_delimiter
                .or_else(|| found.delimiter.bytes().next())
                .unwrap_or(b','),
            forced_header.unwrap_or(found.has_header),
        ))
    }
}

async fn import(context: &JobContext, staging_id: Option<&str>) -> Result<Value, JobFailure> {
    let url = context.spec_text("url");
    let fetcher = &context.dependencies.fetcher;
    let download = fetcher.open(url).await.map_err(fetch_failure)?;
    let total = download.content_length.filter(|n| *n > 0);
    let named = FileFormat::from_name(context.spec_text("format"))
        .or_else(|| FileFormat::from_url(download.url.as_str()));
    let mut body = download.into_body(fetcher.config().max_bytes);
    context.checkpoint(0.0).await?;
    let (head, ended) = body
        .read_at_least(SNIFF_BYTES)
        .await
        .map_err(fetch_failure)?;
    let format = named.unwrap_or_else(|| FileFormat::sniff(&head));
    let mut sender = Sender {
        context,
        format: match format {
            FileFormat::Csv => DataFormat::Csv,
            FileFormat::Ndjson => DataFormat::Ndjson,
            FileFormat::Parquet => DataFormat::Parquet,
        },
        staging_id,
        csv: None,
        header_row: None,
        tally: Tally::default(),
    };
    match format {
        FileFormat::Parquet => {
            let whole =
                read_whole(&mut body, head, ended, fetcher.config().max_parquet_bytes).await?;
            context.checkpoint(0.5).await?;
            sender.send(whole).await?;
        }
        FileFormat::Csv | FileFormat::Ndjson => {
            let row_format = match format {
                FileFormat::Csv => RowFormat::Csv(None),
                _ => RowFormat::Ndjson,
            };
            let mut chunker = RowChunker::new(row_format, CHUNK_BYTES);
            let mut last_progress = Instant::now();
            let mut piece = Some(head);
            let mut ended = ended;
            while let Some(data) = piece {
                for chunk in chunker.push(&data) {
                    sender.send(chunk).await?;
                    context.checkpoint(progress(&body, total)).await?;
                    last_progress = Instant::now();
                }
                if chunker.pending() > CHUNK_BYTES + MAX_ROW_BYTES {
                    return Err(JobFailure::Failed(format!(
                        "A row of the file is longer than {MAX_ROW_BYTES} bytes (is a quote left open?)"
                    )));
                }
                if last_progress.elapsed() >= PROGRESS_EVERY {
                    context.checkpoint(progress(&body, total)).await?;
                    last_progress = Instant::now();
                }
                piece = if ended {
                    None
                } else {
                    body.next().await.map_err(fetch_failure)?
                };
                ended = ended || piece.is_none();
            }
            if let Some(rest) = chunker.finish() {
                sender.send(rest).await?;
            }
        }
    }
    // The last chance to stop: past it, a replace is swapped in.
    context.checkpoint(0.99).await?;
    let rows_after = match staging_id {
        Some(id) => Some(finish_replace(context, id, false).await?),
        None => None,
    };
    let tally = sender.tally;
    let mut result = json!({
        "url": url,
        "format": format.name(),
        "statistics": { "bytes": body.read(), "row_count": tally.rows },
        "quarantine_rows": tally.quarantined,
        "invalid_lines": 0,
        "errors": tally.errors,
    });
    if let Some(rows) = rows_after {
        result["rows_after_replace"] = json!(rows);
    }
    Ok(result)
}

/// Share of the file received, when its length is known.
fn progress(body: &Body, total: Option<u64>) -> f64 {
    match total {
        // Kept below 1: the job is done only once the last chunk is in.
        Some(total) => (body.received() as f64 / total as f64).min(0.98),
        None => 0.0,
    }
}

/// The rest of a file that can only be read whole, within `limit` bytes.
async fn read_whole(
    body: &mut Body,
    head: Bytes,
    ended: bool,
    limit: u64,
) -> Result<Bytes, JobFailure> {
    let too_large = || {
        JobFailure::Failed(format!(
            "The Parquet file is larger than the limit of {limit} bytes (it is read whole)"
        ))
    };
    let mut whole = BytesMut::from(&head[..]);
    if !ended {
        while let Some(piece) = body.next().await.map_err(fetch_failure)? {
            whole.extend_from_slice(&piece);
            if whole.len() as u64 > limit {
                return Err(too_large());
            }
        }
    }
    if whole.len() as u64 > limit {
        return Err(too_large());
    }
    Ok(whole.freeze())
}
