//! The ingest service: the decoders of [`crate::decode`] wired to the engine and the catalog.

use std::collections::VecDeque;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use roost_engine::{Engine, EngineError, ErrorClass, InsertBlock};
use roost_proto::catalog::v1::{
    self as catalog, CreateDataSourceRequest, EngineSettings, GetDataSourceRequest,
};
use roost_proto::ingest::v1::{self as proto, DataFormat};
use roost_proto::{
    CatalogClient, EndpointClient, ErrorCode, IngestService, ServiceError, columns_from_proto,
    columns_to_proto,
};
use roost_types::{ChType, Column, format_schema};

use crate::analyze::{AnalyzeError, analyze, csv_options};
use crate::coalesce::{Incoming, InsertQueues};
use crate::decode::{
    self, BlockFormat, CsvDialect, DecodedBatch, encode_quarantine, insert_column_list,
    quarantine_columns, sniff_csv,
};
use crate::replace::{self, FinishError};

/// NDJSON bodies are inserted in parts of about this size, so memory stays bounded and the
/// engine stores one part while the next is decoded.
const NDJSON_SLICE_BYTES: usize = 16 << 20;
/// A body is decoded on several cores at once, in slices of at least this size (one core decodes
/// about 200 MB/s, so smaller slices would gain less than the hand-over costs). A request waits
/// for its decode and its insert, so a shorter decode is a shorter wait for its client and for
/// the insert that gathers it; in alternating `make bench` runs (2.2 MB bodies, four clients)
/// 1 MB slices did as well as or better than 4 MB ones, within this machine's noise.
const NDJSON_PARALLEL_SLICE_BYTES: usize = 1 << 20;
/// Inserts into one table that run at once; batches arriving meanwhile wait and go together.
/// One is best: with four writers of 10k-row Native blocks on two cores, one turn made 14 inserts
/// of 50 blocks at 1.4-1.8 us of CPU per row, two turns 31-34 inserts at 2.5-3.9 us, direct
/// inserts 50 at 2.6-3.0 us (`tests/insert_formats.rs`): each insert and the part it leaves to
/// merge cost the engine far more than the rows in it.
const INSERTS_PER_TABLE: usize = 1;
/// Distinct quarantine reasons reported back.
const REPORTED_ERRORS: usize = 5;
/// A queued batch is decoded in as many slices whatever process takes it, so its inserts (and
/// their statement ids) come out the same on every delivery.
const QUEUED_DECODE_SLICES: usize = 4;

/// The inserts of one queued batch: each runs as the statement `<batch>-<part>` (good rows) or
/// `<batch>-<part>q` (its quarantined rows), and on a redelivery a part that already landed in
/// the engine is not inserted again.
pub(crate) struct QueuedInserts<'a> {
    batch_id: &'a str,
    /// An earlier delivery may have inserted some parts.
    redelivered: bool,
    next_part: u32,
}

impl<'a> QueuedInserts<'a> {
    pub(crate) fn new(batch_id: &'a str, redelivered: bool) -> Self {
        QueuedInserts {
            batch_id,
            redelivered,
            next_part: 0,
        }
    }
}

/// The statement id of part `part` of batch `batch_id` (`quarantine`: its quarantined rows).
pub(crate) fn part_statement_id(batch_id: &str, part: u32, quarantine: bool) -> String {
    let suffix = if quarantine { "q" } else { "" };
    format!("{batch_id}-{part}{suffix}")
}

/// The ingest service.
pub struct Ingest {
    engine: Arc<dyn Engine>,
    catalog: CatalogClient,
    /// Good rows go through here, so concurrent batches for one table become one insert.
    inserts: InsertQueues,
    /// Slices of one body decoded at once.
    cores: usize,
    /// Resolves replace conditions; without it, replaces are of every row only.
    endpoints: Option<EndpointClient>,
}

impl Ingest {
    /// An ingest service writing to `engine`, finding data sources through `catalog`.
    pub fn new(engine: Arc<dyn Engine>, catalog: CatalogClient) -> Self {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        Ingest {
            inserts: InsertQueues::new(engine.clone(), INSERTS_PER_TABLE),
            engine,
            catalog,
            cores,
            endpoints: None,
        }
    }

    /// Lets replaces take a condition, validated by the query service's endpoints.
    pub fn with_conditions(mut self, endpoints: EndpointClient) -> Self {
        self.endpoints = Some(endpoints);
        self
    }

    async fn data_source(
        &self,
        request: &proto::IngestDataRequest,
    ) -> Result<(catalog::DataSource, bool), ServiceError> {
        let get = GetDataSourceRequest {
            header: request.header.clone(),
            name_or_id: request.data_source.clone(),
            with_statistics: false,
        };
        match self.catalog.get_data_source(get.clone()).await {
            Ok(found) => return Ok((found.data_source.unwrap_or_default(), false)),
            Err(error) if error.code == ErrorCode::NotFound && request.create_if_missing => {}
            Err(error) => return Err(error),
        }
        let analysis = analyze(
            request.format(),
            &request.data,
            request.type_guessing,
            &request.csv_delimiter,
            &request.csv_header,
        )
        .map_err(analyze_error)?;
        let created = self
            .catalog
            .create_data_source(CreateDataSourceRequest {
                header: request.header.clone(),
                name: request.data_source.clone(),
                columns: columns_to_proto(&analysis.columns),
                engine: Some(EngineSettings {
                    engine: "MergeTree".into(),
                    sorting_key: sorting_key_for(&analysis.columns),
                    ..Default::default()
                }),
                description: String::new(),
                origin_format: format_name(request.format()).to_string(),
            })
            .await;
        match created {
            Ok(created) => Ok((created.data_source.unwrap_or_default(), true)),
            // Another request created it first: use theirs.
            Err(error) if error.code == ErrorCode::Conflict => Ok((
                self.catalog
                    .get_data_source(get)
                    .await?
                    .data_source
                    .unwrap_or_default(),
                false,
            )),
            Err(error) => Err(error),
        }
    }

    /// Decodes an NDJSON body, big ones in slices on several cores at once, and inserts the
    /// rows in parts of about [`NDJSON_SLICE_BYTES`] as the slices come out, in order.
    async fn ingest_ndjson(
        &self,
        data: &Bytes,
        data_source: &catalog::DataSource,
        columns: &Arc<Vec<Column>>,
        tally: &mut Tally,
        queued: &mut Option<QueuedInserts<'_>>,
    ) -> Result<(), ServiceError> {
        // Turns inserting into this table meanwhile wait a little for these rows (a queued
        // batch inserts on its own, under its statement ids).
        let mut incoming = queued
            .is_none()
            .then(|| self.inserts.announce(&data_source.table));
        let slices_of = if queued.is_some() {
            QUEUED_DECODE_SLICES
        } else {
            self.cores
        };
        let slice_bytes =
            (data.len() / slices_of).clamp(NDJSON_PARALLEL_SLICE_BYTES, NDJSON_SLICE_BYTES);
        let mut slices = ndjson_slices(data, slice_bytes).into_iter();
        let mut decoding = VecDeque::new();
        let mut pending: Option<DecodedBatch> = None;
        loop {
            while decoding.len() < self.cores {
                let Some(slice) = slices.next() else { break };
                let columns = columns.clone();
                decoding.push_back(tokio::task::spawn_blocking(move || {
                    decode::decode_ndjson_as(&columns, &slice, BlockFormat::Native)
                }));
            }
            let Some(decoded) = decoding.pop_front() else {
                break;
            };
            let batch = decoded
                .await
                .map_err(|e| ServiceError::internal(format!("decoder failed: {e}")))?
                .map_err(decode_error)?;
            pending = match pending.take() {
                Some(mut joined) if joined.format == batch.format => {
                    // Blocks (and rows) of one format laid end to end are one valid insert.
                    joined.rows += batch.rows;
                    joined.data.extend_from_slice(&batch.data);
                    joined.quarantined.extend(batch.quarantined);
                    Some(joined)
                }
                Some(earlier) => {
                    self.insert_batch(
                        data_source,
                        columns,
                        earlier,
                        tally,
                        incoming.take(),
                        queued,
                    )
                    .await?;
                    Some(batch)
                }
                None => Some(batch),
            };
            if pending
                .as_ref()
                .is_some_and(|p| p.data.len() >= NDJSON_SLICE_BYTES)
                && let Some(full) = pending.take()
            {
                self.insert_batch(data_source, columns, full, tally, incoming.take(), queued)
                    .await?;
            }
        }
        if let Some(last) = pending {
            self.insert_batch(data_source, columns, last, tally, incoming.take(), queued)
                .await?;
        }
        Ok(())
    }

    async fn insert_batch(
        &self,
        data_source: &catalog::DataSource,
        columns: &Arc<Vec<Column>>,
        batch: DecodedBatch,
        tally: &mut Tally,
        incoming: Option<Incoming<'_>>,
        queued: &mut Option<QueuedInserts<'_>>,
    ) -> Result<(), ServiceError> {
        let part = queued.as_mut().map(|queued| {
            let part = queued.next_part;
            queued.next_part += 1;
            (queued.batch_id, queued.redelivered, part)
        });
        if batch.rows > 0 {
            let column_list = insert_column_list(columns);
            match part {
                Some((batch_id, redelivered, part)) => {
                    let block = InsertBlock {
                        table: &data_source.table,
                        columns: &column_list,
                        format: batch.format.name(),
                        data: Bytes::from(batch.data),
                        settings: "",
                    };
                    self.insert_once(
                        block,
                        &part_statement_id(batch_id, part, false),
                        redelivered,
                    )
                    .await?;
                }
                None => {
                    let incoming =
                        incoming.unwrap_or_else(|| self.inserts.announce(&data_source.table));
                    incoming
                        .insert(&column_list, batch.format.name(), Bytes::from(batch.data))
                        .await
                        .map_err(engine_error)?;
                }
            }
            tally.successful += batch.rows;
        }
        if !batch.quarantined.is_empty() {
            for row in &batch.quarantined {
                for error in &row.errors {
                    if tally.errors.len() < REPORTED_ERRORS && !tally.errors.contains(error) {
                        tally.errors.push(error.clone());
                    }
                }
            }
            let now = u32::try_from(chrono::Utc::now().timestamp()).unwrap_or(u32::MAX);
            let quarantine = quarantine_columns(columns);
            let encoded = DecodedBatch {
                rows: batch.quarantined.len() as u64,
                data: encode_quarantine(&batch.quarantined, None, now),
                format: BlockFormat::RowBinaryWithDefaults,
                quarantined: Vec::new(),
            }
            .into_native(&quarantine)
            .map_err(decode_error)?;
            let quarantine_list = insert_column_list(&quarantine);
            let block = InsertBlock {
                table: &data_source.quarantine_table,
                columns: &quarantine_list,
                format: encoded.format.name(),
                data: Bytes::from(encoded.data),
                settings: "",
            };
            match part {
                Some((batch_id, redelivered, part)) => {
                    self.insert_once(block, &part_statement_id(batch_id, part, true), redelivered)
                        .await?;
                }
                None => {
                    self.engine.insert(block).await.map_err(engine_error)?;
                }
            }
            tally.quarantined += batch.quarantined.len() as u64;
        }
        Ok(())
    }
}

impl Ingest {
    /// Inserts one part of a queued batch as the statement `statement_id`, unless an earlier
    /// delivery's insert of it already landed. A redelivery asks the engine first; when the
    /// engine cannot tell (a server down, the earlier insert still running) the error is
    /// transient, and the batch is tried again later.
    async fn insert_once(
        &self,
        block: InsertBlock<'_>,
        statement_id: &str,
        redelivered: bool,
    ) -> Result<(), ServiceError> {
        if redelivered
            && self
                .engine
                .statement_landed(statement_id)
                .await
                .map_err(engine_error)?
        {
            tracing::info!(statement_id, "part of a redelivered batch already stored");
            return Ok(());
        }
        self.engine
            .insert_identified(block, statement_id)
            .await
            .map_err(engine_error)?;
        Ok(())
    }

    /// Ingests one batch of the events queue (see `crate::events_queue`): as
    /// [`IngestService::ingest_data`], with every insert under a statement id derived from
    /// `batch_id`, so a `redelivered` batch stores no row twice.
    pub async fn ingest_queued(
        &self,
        request: proto::IngestDataRequest,
        batch_id: &str,
        redelivered: bool,
    ) -> Result<proto::IngestDataResponse, ServiceError> {
        self.ingest(request, Some(QueuedInserts::new(batch_id, redelivered)))
            .await
    }

    async fn ingest(
        &self,
        request: proto::IngestDataRequest,
        mut queued: Option<QueuedInserts<'_>>,
    ) -> Result<proto::IngestDataResponse, ServiceError> {
        let (data_source, created) = self.data_source(&request).await?;
        let columns = Arc::new(columns_from_proto(&data_source.columns)?);
        let mut tally = Tally::default();
        // A replace's rows go aside; quarantined rows still go to the data source's quarantine.
        let written = if request.staging_id.is_empty() {
            data_source.clone()
        } else {
            let staging = replace::staging_table(&data_source.table, &request.staging_id)?;
            replace::ensure_staging(self.engine.as_ref(), &data_source.table, &staging)
                .await
                .map_err(engine_error)?;
            catalog::DataSource {
                table: staging,
                ..data_source.clone()
            }
        };
        match request.format() {
            DataFormat::Parquet => {
                let column_list = insert_column_list(&columns);
                let summary = self
                    .engine
                    .insert(InsertBlock {
                        table: &written.table,
                        columns: &column_list,
                        format: "Parquet",
                        data: request.data.clone(),
                        settings: "input_format_parquet_allow_missing_columns = 1",
                    })
                    .await
                    .map_err(engine_error)?;
                tally.successful = summary.rows_written;
            }
            DataFormat::Csv => {
                let (delimiter, header) = csv_options(&request.csv_delimiter, &request.csv_header)
                    .map_err(analyze_error)?;
                let (data, decode_columns) = (request.data.clone(), columns.clone());
                let batch = tokio::task::spawn_blocking(move || {
                    let dialect: CsvDialect =
                        sniff_csv(&data, Some(&decode_columns), delimiter, header);
                    decode::decode_csv(&decode_columns, &data, &dialect)?
                        .into_native(&decode_columns)
                })
                .await
                .map_err(|e| ServiceError::internal(format!("decoder failed: {e}")))?
                .map_err(decode_error)?;
                self.insert_batch(&written, &columns, batch, &mut tally, None, &mut queued)
                    .await?;
            }
            DataFormat::Ndjson | DataFormat::Unspecified => {
                self.ingest_ndjson(&request.data, &written, &columns, &mut tally, &mut queued)
                    .await?;
            }
        }
        Ok(proto::IngestDataResponse {
            successful_rows: tally.successful,
            quarantined_rows: tally.quarantined,
            data_source: Some(data_source),
            created,
            errors: tally.errors,
        })
    }
}

#[derive(Default)]
struct Tally {
    successful: u64,
    quarantined: u64,
    errors: Vec<String>,
}

fn engine_error(error: EngineError) -> ServiceError {
    match error.class() {
        ErrorClass::BadRequest => ServiceError::bad_request(error.user_message()),
        ErrorClass::NotFound => ServiceError::not_found(error.user_message()),
        _ => {
            tracing::error!(error = %error, "insert failed in the engine");
            ServiceError::new(
                ErrorCode::Unavailable,
                "the engine could not store the data; retry",
            )
        }
    }
}

fn decode_error(error: decode::DecodeError) -> ServiceError {
    ServiceError::bad_request(error.to_string())
}

fn analyze_error(error: AnalyzeError) -> ServiceError {
    ServiceError::bad_request(error.to_string())
}

fn format_name(format: DataFormat) -> &'static str {
    match format {
        DataFormat::Csv => "csv",
        DataFormat::Parquet => "parquet",
        DataFormat::Ndjson | DataFormat::Unspecified => "ndjson",
    }
}

/// A sorting key for a guessed schema: the first non-nullable date column, else none.
fn sorting_key_for(columns: &[Column]) -> String {
    columns
        .iter()
        .find(|c| {
            matches!(
                c.ty,
                ChType::DateTime(_) | ChType::DateTime64(..) | ChType::Date | ChType::Date32
            )
        })
        .map(|c| roost_types::quote_ident(&c.name))
        .unwrap_or_default()
}

/// Splits NDJSON into slices of about `size` bytes at line ends.
fn ndjson_slices(data: &Bytes, size: usize) -> Vec<Bytes> {
    let mut slices = Vec::new();
    let mut start = 0;
    while start < data.len() {
        let mut end = (start + size).min(data.len());
        if end < data.len() {
            end = match memchr::memchr(b'\n', &data[end..]) {
                Some(offset) => end + offset + 1,
                None => data.len(),
            };
        }
        slices.push(data.slice(start..end));
        start = end;
    }
    slices
}

#[async_trait]
impl IngestService for Ingest {
    async fn ingest_data(
        &self,
        request: proto::IngestDataRequest,
    ) -> Result<proto::IngestDataResponse, ServiceError> {
        self.ingest(request, None).await
    }

    async fn analyze_data(
        &self,
        request: proto::AnalyzeDataRequest,
    ) -> Result<proto::AnalyzeDataResponse, ServiceError> {
        let analysis = analyze(
            request.format(),
            &request.data,
            request.type_guessing,
            &request.csv_delimiter,
            &request.csv_header,
        )
        .map_err(analyze_error)?;
        Ok(proto::AnalyzeDataResponse {
            schema: format_schema(&analysis.columns),
            columns: columns_to_proto(&analysis.columns),
            preview: analysis.preview.iter().map(ToString::to_string).collect(),
            present_pct: analysis.present,
            dialect: analysis.dialect.map(|found| proto::CsvDialect {
                delimiter: char::from(found.dialect.delimiter).to_string(),
                has_header: found.dialect.has_header,
                newline: found.newline.to_string(),
                escapechar: String::new(),
            }),
            sampled_rows: analysis.sampled_rows,
        })
    }

    async fn finish_replace(
        &self,
        request: proto::FinishReplaceRequest,
    ) -> Result<proto::FinishReplaceResponse, ServiceError> {
        let data_source = self
            .catalog
            .get_data_source(GetDataSourceRequest {
                header: request.header.clone(),
                name_or_id: request.data_source.clone(),
                with_statistics: false,
            })
            .await?
            .data_source
            .unwrap_or_default();
        let columns = columns_from_proto(&data_source.columns)?;
        let rows = replace::finish(
            self.engine.as_ref(),
            self.endpoints.as_ref(),
            &request,
            &data_source,
            &columns,
        )
        .await
        .map_err(|error| match error {
            FinishError::Service(error) => error,
            FinishError::Engine(error) => engine_error(error),
        })?;
        Ok(proto::FinishReplaceResponse {
            data_source: Some(data_source),
            rows,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slices_end_at_line_ends() {
        let data = Bytes::from_static(b"{\"a\":1}\n{\"a\":2}\n{\"a\":3}");
        let slices = ndjson_slices(&data, 3);
        assert_eq!(
            slices,
            [
                Bytes::from_static(b"{\"a\":1}\n"),
                Bytes::from_static(b"{\"a\":2}\n"),
                Bytes::from_static(b"{\"a\":3}")
            ]
        );
        assert_eq!(ndjson_slices(&data, 1 << 20).len(), 1);
    }

    #[test]
    fn every_part_of_a_batch_has_its_own_statement_id() {
        let batch = "6f1c0f7e-9a8b-4c3d-8e2f-1a2b3c4d5e6f";
        assert_eq!(part_statement_id(batch, 0, false), format!("{batch}-0"));
        assert_eq!(part_statement_id(batch, 0, true), format!("{batch}-0q"));
        assert_eq!(part_statement_id(batch, 12, false), format!("{batch}-12"));
        let mut queued = QueuedInserts::new(batch, true);
        queued.next_part += 1;
        assert_eq!(queued.next_part, 1);
        assert!(queued.redelivered);
    }

    #[test]
    fn sorting_key_prefers_a_date_column() {
        let columns = roost_types::parse_schema("a String, t DateTime, d Date").unwrap();
        assert_eq!(sorting_key_for(&columns), "`t`");
        assert_eq!(
            sorting_key_for(&roost_types::parse_schema("a String").unwrap()),
            ""
        );
    }
}
