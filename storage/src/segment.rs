//! Immutable Parquet segments: how a sealed head is written, and how one trace is read
//! back without a time range.
//!
//! Rows are sorted by trace id (then start time), so each row group covers a disjoint
//! range of trace ids. The footer statistics of the `trace_id` column therefore act as
//! a sparse index: finding a trace reads one row group, usually one page of it.

use std::fs::{self, File};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::compute::kernels::numeric::{add_wrapping, sub_wrapping};
use arrow::datatypes::{DataType, Field, Schema};
use parquet::arrow::arrow_reader::{ArrowReaderMetadata, ArrowReaderOptions};
use parquet::arrow::arrow_reader::{ParquetRecordBatchReaderBuilder, RowSelection};
use parquet::arrow::{ArrowWriter, ProjectionMask};
use parquet::basic::{Compression, Encoding, ZstdLevel};
use parquet::file::metadata::{KeyValue, PageIndexPolicy};
use parquet::file::page_index::column_index::ColumnIndexMetaData;
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::file::statistics::Statistics;
use parquet::schema::types::ColumnPath;

use crate::error::StorageError;
use crate::schema::{col, segment_schema, span_schema};
use crate::trace_order::sort_by_trace;
use crate::wal::sync_dir;

/// Sorted rows converted to the stored form and written at a time while a head is flushed.
const WRITE_CHUNK_ROWS: usize = 64 * 1024;

const MIN_START_KEY: &str = "tracegate.min_start_unix_nano";
const MAX_END_KEY: &str = "tracegate.max_end_unix_nano";
/// Rows per row group: small enough that a trace lookup reads little, large enough
/// that per-group overhead stays negligible.
const ROW_GROUP_ROWS: usize = 128 * 1024;
/// False-positive rate of the trace-id bloom filters.
const BLOOM_FPP: f64 = 0.05;
/// Distinct trace ids a row group's bloom filter is sized for (a trace has a few spans).
const BLOOM_NDV: u64 = (ROW_GROUP_ROWS / 4) as u64;
/// Rows per data page of the wide id and timestamp columns, which a trace lookup reads
/// through the page index: small pages keep that read to a few thousand rows.
const PAGE_ROWS: usize = 4096;
/// Rows per data page of every other column (at most; pages are cut at write-batch
/// boundaries). These columns hold a few bits per span, so a 4096-row page is mostly
/// page header, levels and compression frame, and zstd sees too little of it to find
/// repeats. On the 2M-span benchmark segments (zstd 6) they took 2.35 bytes per span
/// with 4096-row pages, 1.59 with 16384 and 1.41 with 32768; a trace lookup, which
/// decompresses one page of each, took 1.83, 1.91 and 2.03 ms.
const NARROW_PAGE_ROWS: usize = 4 * PAGE_ROWS;
/// The wide columns (fixed 8 or 16 bytes a value, no dictionary) with their value width.
/// Their pages are cut by size at [`PAGE_ROWS`] values, since the row limit is per file.
const WIDE_COLUMNS: [(&str, usize); 5] = [
    (col::TRACE_ID, 16),
    (col::SPAN_ID, 8),
    (col::PARENT_SPAN_ID, 8),
    (col::START, 8),
    (col::DURATION, 8),
];
/// zstd level of the wide columns: random ids and the random low bytes of nanosecond
/// times, where higher levels gain little for much flush time (level 6: 0.08 bytes per
/// span less for 15% more flush time; level 19 on the two times alone: 0.27 less for
/// about three times the flush time).
const WIDE_ZSTD_LEVEL: i32 = 3;
/// zstd level of the other columns, a small part of the flush work: level 6 took 0.20
/// bytes per span off level 3 for 6% more flush time (level 12: 0.08 more off, 70%
/// more time).
const NARROW_ZSTD_LEVEL: i32 = 6;

/// The trace-id range of one row group.
#[derive(Debug, Clone, PartialEq, Eq)]
struct RowGroupRange {
    min: Vec<u8>,
    max: Vec<u8>,
}

/// One Parquet segment file with what lookups need from its footer.
#[derive(Debug)]
pub struct Segment {
    path: PathBuf,
    generation: u64,
    num_spans: u64,
    bytes: u64,
    min_start_unix_nano: i64,
    max_end_unix_nano: i64,
    row_groups: Vec<RowGroupRange>,
    trace_column: usize,
    stores_duration: bool,
    metadata: ArrowReaderMetadata,
}

/// The file name of segment `generation`.
pub(crate) fn segment_file_name(generation: u64) -> String {
    format!("{generation:010}.parquet")
}

impl Segment {
    /// Sorts `batches` by trace id and writes them as segment `generation` in `dir`,
    /// atomically (temporary file, sync, rename, directory sync).
    ///
    /// # Errors
    /// When sorting or writing fails.
    pub fn write(
        dir: &Path,
        generation: u64,
        batches: &[RecordBatch],
    ) -> Result<Self, StorageError> {
        let path = dir.join(segment_file_name(generation));
        let tmp = dir.join(format!("{}.tmp", segment_file_name(generation)));
        let sorted = sort_by_trace(batches)?;
        let (min_start, max_end) = time_range(&sorted);

        let props = writer_properties(min_start, max_end);
        let file = File::create(&tmp).map_err(|e| StorageError::io("create", &tmp, e))?;
        let parquet_err = |source| StorageError::Parquet {
            path: tmp.clone(),
            source,
        };
        let mut writer =
            ArrowWriter::try_new(file, segment_schema(), Some(props)).map_err(parquet_err)?;
        // The stored form (duration instead of end) is made a slice at a time, so that
        // it never exists for the whole head at once.
        for offset in (0..sorted.num_rows()).step_by(WRITE_CHUNK_ROWS) {
            let length = WRITE_CHUNK_ROWS.min(sorted.num_rows() - offset);
            writer
                .write(&with_duration(&sorted.slice(offset, length))?)
                .map_err(parquet_err)?;
        }
        let file = writer.into_inner().map_err(parquet_err)?;
        file.sync_all()
            .map_err(|e| StorageError::io("sync", &tmp, e))?;
        drop(file);
        fs::rename(&tmp, &path).map_err(|e| StorageError::io("rename", &tmp, e))?;
        sync_dir(dir)?;
        Self::open(&path)
    }

    /// Opens a segment file and reads its footer.
    ///
    /// # Errors
    /// When the file cannot be opened or its footer is not a span segment's.
    pub fn open(path: &Path) -> Result<Self, StorageError> {
        let generation = path
            .file_stem()
            .and_then(|s| s.to_str())
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| StorageError::Corrupt(format!("bad segment name {}", path.display())))?;
        let file = File::open(path).map_err(|e| StorageError::io("open", path, e))?;
        let bytes = file
            .metadata()
            .map_err(|e| StorageError::io("stat", path, e))?
            .len();
        let options = ArrowReaderOptions::new().with_page_index_policy(PageIndexPolicy::Optional);
        let metadata =
            ArrowReaderMetadata::load(&file, options).map_err(|source| StorageError::Parquet {
                path: path.to_path_buf(),
                source,
            })?;

        let parquet = metadata.metadata();
        let file_meta = parquet.file_metadata();
        let read_key = |key: &str| -> Option<i64> {
            file_meta
                .key_value_metadata()?
                .iter()
                .find(|kv| kv.key == key)
                .and_then(|kv| kv.value.as_deref()?.parse().ok())
        };
        let trace_column = file_meta
            .schema_descr()
            .columns()
            .iter()
            .position(|c| c.name() == col::TRACE_ID)
            .ok_or_else(|| StorageError::schema(col::TRACE_ID, "in the segment"))?;
        let stores_duration = file_meta
            .schema_descr()
            .columns()
            .iter()
            .any(|c| c.name() == col::DURATION);
        let mut row_groups = Vec::with_capacity(parquet.num_row_groups());
        for rg in parquet.row_groups() {
            let range = match rg.column(trace_column).statistics() {
                Some(Statistics::FixedLenByteArray(stats)) => stats
                    .min_bytes_opt()
                    .zip(stats.max_bytes_opt())
                    .map(|(min, max)| RowGroupRange {
                        min: min.to_vec(),
                        max: max.to_vec(),
                    }),
                _ => None,
            };
            // Without statistics a row group must always be read.
            row_groups.push(range.unwrap_or(RowGroupRange {
                min: vec![0; 16],
                max: vec![255; 16],
            }));
        }
        Ok(Self {
            path: path.to_path_buf(),
            generation,
            num_spans: u64::try_from(file_meta.num_rows()).unwrap_or(0),
            bytes,
            min_start_unix_nano: read_key(MIN_START_KEY).unwrap_or(i64::MIN),
            max_end_unix_nano: read_key(MAX_END_KEY).unwrap_or(i64::MAX),
            row_groups,
            trace_column,
            stores_duration,
            metadata,
        })
    }

    /// The file path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The generation: the last WAL generation whose spans this segment holds.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// True when the file stores durations ([`segment_schema`]) rather than ends (the
    /// span schema, as segments written before durations were). [`Segment::read`] and
    /// [`Segment::read_trace`] return the span schema either way; other readers of the
    /// file must add the end themselves.
    pub fn stores_duration(&self) -> bool {
        self.stores_duration
    }

    /// Number of spans stored.
    pub fn num_spans(&self) -> u64 {
        self.num_spans
    }

    /// File size in bytes.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Earliest span start, Unix nanoseconds.
    pub fn min_start_unix_nano(&self) -> i64 {
        self.min_start_unix_nano
    }

    /// Latest span end, Unix nanoseconds.
    pub fn max_end_unix_nano(&self) -> i64 {
        self.max_end_unix_nano
    }

    /// True when the segment may hold spans overlapping `[start, end]`.
    pub fn overlaps(&self, start_unix_nano: i64, end_unix_nano: i64) -> bool {
        self.min_start_unix_nano <= end_unix_nano && self.max_end_unix_nano >= start_unix_nano
    }

    /// Reads the spans of one trace: only the row groups whose trace-id range holds it.
    ///
    /// # Errors
    /// When the file cannot be read.
    pub fn read_trace(&self, trace_id: &[u8]) -> Result<Vec<RecordBatch>, StorageError> {
        let row_groups: Vec<usize> = self
            .row_groups
            .iter()
            .enumerate()
            .filter(|(_, rg)| rg.min.as_slice() <= trace_id && trace_id <= rg.max.as_slice())
            .map(|(i, _)| i)
            .collect();
        let row_groups = self.bloom_may_hold(row_groups, trace_id)?;
        if row_groups.is_empty() {
            return Ok(Vec::new());
        }
        let parquet = self.metadata.metadata();
        let num_rows: usize = row_groups
            .iter()
            .map(|&rg| usize::try_from(parquet.row_group(rg).num_rows()).unwrap_or(0))
            .sum();
        let candidates = self
            .pages_holding(&row_groups, trace_id)
            .unwrap_or_else(|| std::iter::once(0..num_rows).collect());
        if candidates.is_empty() {
            return Ok(Vec::new());
        }
        // Two passes: the trace-id column alone finds the trace's exact rows, then every
        // column decodes only those, instead of a page's worth of rows of every column
        // that is filtered afterwards.
        let rows = self.rows_of_trace(&row_groups, &candidates, num_rows, trace_id)?;
        if rows.is_empty() {
            return Ok(Vec::new());
        }
        let selection = RowSelection::from_consecutive_ranges(rows.into_iter(), num_rows);
        self.read_selected(Some(row_groups), Some(selection), None)
    }

    /// The rows (numbered over `row_groups`, as `candidates` are) holding `trace_id`,
    /// from reading the trace-id column of the `candidates` rows.
    fn rows_of_trace(
        &self,
        row_groups: &[usize],
        candidates: &[Range<usize>],
        num_rows: usize,
        trace_id: &[u8],
    ) -> Result<Vec<Range<usize>>, StorageError> {
        let selection = RowSelection::from_consecutive_ranges(candidates.iter().cloned(), num_rows);
        let projection = ProjectionMask::leaves(
            self.metadata.metadata().file_metadata().schema_descr(),
            [self.trace_column],
        );
        let batches =
            self.read_selected(Some(row_groups.to_vec()), Some(selection), Some(projection))?;
        let mut positions = candidates.iter().flat_map(Clone::clone);
        let mut rows: Vec<Range<usize>> = Vec::new();
        for batch in batches {
            let ids = batch
                .column(0)
                .as_fixed_size_binary_opt()
                .ok_or_else(|| StorageError::schema(col::TRACE_ID, "fixed-size binary"))?;
            for i in 0..ids.len() {
                let row = positions.next().ok_or_else(|| {
                    StorageError::Corrupt(format!(
                        "{}: more trace ids than selected rows",
                        self.path.display()
                    ))
                })?;
                if ids.value(i) == trace_id {
                    match rows.last_mut() {
                        Some(last) if last.end == row => last.end = row + 1,
                        _ => rows.push(row..row + 1),
                    }
                }
            }
        }
        Ok(rows)
    }

    /// The row groups whose trace-id bloom filter may hold `trace_id` (all of them when
    /// the file has no bloom filter).
    fn bloom_may_hold(
        &self,
        row_groups: Vec<usize>,
        trace_id: &[u8],
    ) -> Result<Vec<usize>, StorageError> {
        if row_groups.is_empty() {
            return Ok(row_groups);
        }
        let file = File::open(&self.path).map_err(|e| StorageError::io("open", &self.path, e))?;
        let reader =
            ParquetRecordBatchReaderBuilder::new_with_metadata(file, self.metadata.clone());
        let mut kept = Vec::with_capacity(row_groups.len());
        for rg in row_groups {
            let bloom = reader
                .get_row_group_column_bloom_filter(rg, self.trace_column)
                .map_err(|source| StorageError::Parquet {
                    path: self.path.clone(),
                    source,
                })?;
            if bloom.is_none_or(|bloom| bloom.check(trace_id)) {
                kept.push(rg);
            }
        }
        Ok(kept)
    }

    /// The rows of `row_groups` (numbered over them, in that order) on pages whose
    /// trace-id range holds `trace_id`, from the page index; `None` when the file has no
    /// page index.
    fn pages_holding(&self, row_groups: &[usize], trace_id: &[u8]) -> Option<Vec<Range<usize>>> {
        let parquet = self.metadata.metadata();
        let column_index = parquet.column_index()?;
        let offset_index = parquet.offset_index()?;
        let mut ranges = Vec::new();
        let mut first_row_of_group = 0usize;
        for &rg in row_groups {
            let num_rows = usize::try_from(parquet.row_group(rg).num_rows()).ok()?;
            let ColumnIndexMetaData::FIXED_LEN_BYTE_ARRAY(index) =
                column_index.get(rg)?.get(self.trace_column)?
            else {
                return None;
            };
            let pages = offset_index
                .get(rg)?
                .get(self.trace_column)?
                .page_locations();
            for (page, location) in pages.iter().enumerate() {
                let (Some(min), Some(max)) = (index.min_value(page), index.max_value(page)) else {
                    continue;
                };
                if min <= trace_id && trace_id <= max {
                    let start = usize::try_from(location.first_row_index).ok()?;
                    let end = pages.get(page + 1).map_or(Some(num_rows), |next| {
                        usize::try_from(next.first_row_index).ok()
                    })?;
                    ranges.push(first_row_of_group + start..first_row_of_group + end);
                }
            }
            first_row_of_group += num_rows;
        }
        Some(ranges)
    }

    /// Reads whole row groups (all of them when `row_groups` is `None`).
    ///
    /// # Errors
    /// When the file cannot be read.
    pub fn read(&self, row_groups: Option<Vec<usize>>) -> Result<Vec<RecordBatch>, StorageError> {
        self.read_selected(row_groups, None, None)
    }

    fn read_selected(
        &self,
        row_groups: Option<Vec<usize>>,
        selection: Option<RowSelection>,
        projection: Option<ProjectionMask>,
    ) -> Result<Vec<RecordBatch>, StorageError> {
        let parquet_err = |source| StorageError::Parquet {
            path: self.path.clone(),
            source,
        };
        let file = File::open(&self.path).map_err(|e| StorageError::io("open", &self.path, e))?;
        let mut builder =
            ParquetRecordBatchReaderBuilder::new_with_metadata(file, self.metadata.clone())
                .with_batch_size(64 * 1024);
        if let Some(selection) = selection {
            builder = builder.with_row_selection(selection);
        }
        if let Some(row_groups) = row_groups {
            builder = builder.with_row_groups(row_groups);
        }
        if let Some(projection) = projection {
            builder = builder.with_projection(projection);
        }
        let reader = builder.build().map_err(parquet_err)?;
        let mut out = Vec::new();
        for batch in reader {
            out.push(with_end(batch?)?);
        }
        Ok(out)
    }
}

/// How segments are written: see the constants above for the measured reasons.
fn writer_properties(min_start: i64, max_end: i64) -> WriterProperties {
    let zstd = |level| Compression::ZSTD(ZstdLevel::try_new(level).expect("valid level"));
    let mut builder = WriterProperties::builder()
        .set_compression(zstd(NARROW_ZSTD_LEVEL))
        .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
        // Row-group statistics for every column, page statistics (the column index) only
        // for the trace id: rows are sorted by trace id, so any other column's page
        // min/max spans about the whole segment and prunes nothing, and their column
        // index cost 0.27 bytes per span.
        .set_statistics_enabled(EnabledStatistics::Chunk)
        .set_column_statistics_enabled(ColumnPath::from(col::TRACE_ID), EnabledStatistics::Page)
        .set_data_page_row_count_limit(NARROW_PAGE_ROWS)
        // Trace ids are random, so every segment's row groups span the whole id
        // range; a bloom filter lets a lookup skip the segments without the trace.
        .set_column_bloom_filter_enabled(ColumnPath::from(col::TRACE_ID), true)
        .set_column_bloom_filter_fpp(ColumnPath::from(col::TRACE_ID), BLOOM_FPP)
        .set_column_bloom_filter_max_ndv(ColumnPath::from(col::TRACE_ID), BLOOM_NDV)
        // Split into byte streams, the slowly changing high bytes of the start and the
        // zero high bytes of the duration compress to almost nothing (3.5 and 3.1 bytes
        // per span on the demo mesh, against 3.7 and 3.4 plain; DELTA_BINARY_PACKED
        // took 5.2 for the start, as every trace boundary jumps by minutes).
        .set_column_encoding(ColumnPath::from(col::START), Encoding::BYTE_STREAM_SPLIT)
        .set_column_encoding(ColumnPath::from(col::DURATION), Encoding::BYTE_STREAM_SPLIT)
        .set_key_value_metadata(Some(vec![
            KeyValue::new(MIN_START_KEY.to_string(), min_start.to_string()),
            KeyValue::new(MAX_END_KEY.to_string(), max_end.to_string()),
        ]));
    for (name, width) in WIDE_COLUMNS {
        // Ids are random and timestamps unique: no dictionary, which also keeps the page
        // size limit a limit on values, so that pages hold PAGE_ROWS of them.
        builder = builder
            .set_column_dictionary_enabled(ColumnPath::from(name), false)
            .set_column_data_page_size_limit(ColumnPath::from(name), width * PAGE_ROWS)
            .set_column_compression(ColumnPath::from(name), zstd(WIDE_ZSTD_LEVEL));
    }
    builder.build()
}

/// The span batch as a segment stores it: the end replaced by the duration, in
/// [`segment_schema`].
fn with_duration(batch: &RecordBatch) -> Result<RecordBatch, StorageError> {
    let int64 = |name: &str| {
        batch
            .column_by_name(name)
            .filter(|c| c.data_type() == &DataType::Int64)
            .ok_or_else(|| StorageError::schema(name, "Int64"))
    };
    let duration = sub_wrapping(int64(col::END)?, int64(col::START)?)?;
    let mut columns = batch.columns().to_vec();
    columns[batch.schema().index_of(col::END)?] = duration;
    Ok(RecordBatch::try_new(segment_schema(), columns)?)
}

/// A batch read from a segment in the span schema again: the end from the start and
/// the duration. A batch without a duration (a projection without it, or a segment
/// written before segments stored durations) is returned as it is.
fn with_end(batch: RecordBatch) -> Result<RecordBatch, StorageError> {
    let schema = batch.schema();
    let Ok(index) = schema.index_of(col::DURATION) else {
        return Ok(batch);
    };
    let start = batch
        .column_by_name(col::START)
        .filter(|c| c.data_type() == &DataType::Int64)
        .ok_or_else(|| StorageError::schema(col::START, "read with the duration"))?;
    let end = add_wrapping(start, batch.column(index))?;
    let mut fields = schema.fields().to_vec();
    fields[index] = Arc::new(Field::new(col::END, DataType::Int64, false));
    let mut columns = batch.columns().to_vec();
    columns[index] = end;
    let span = span_schema();
    let schema = if fields == span.fields().to_vec() {
        span
    } else {
        Arc::new(Schema::new(fields))
    };
    Ok(RecordBatch::try_new(schema, columns)?)
}

/// The earliest start and latest end of a span batch.
pub(crate) fn time_range(batch: &RecordBatch) -> (i64, i64) {
    let min = |name: &str, max: bool| -> Option<i64> {
        let array = batch
            .column_by_name(name)?
            .as_primitive_opt::<arrow::datatypes::Int64Type>()?;
        if max {
            arrow::compute::max(array)
        } else {
            arrow::compute::min(array)
        }
    };
    (
        min(col::START, false).unwrap_or(0),
        min(col::END, true).unwrap_or(0),
    )
}

#[cfg(test)]
mod tests {
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};

    use super::*;
    use crate::columnarize::columnarize;

    /// `num_traces` traces of 4 spans with pseudo-random ids, in one batch.
    fn batch(num_traces: u64) -> RecordBatch {
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let mut spans = Vec::new();
        for _ in 0..num_traces {
            let trace_id = [next().to_le_bytes(), next().to_le_bytes()].concat();
            for i in 0..4u64 {
                spans.push(Span {
                    trace_id: trace_id.clone(),
                    span_id: (next() | 1).to_le_bytes().to_vec(),
                    name: format!("op{i}"),
                    start_time_unix_nano: 1_700_000_000_000_000_000 + next() % 1_000_000_000,
                    end_time_unix_nano: 1_700_000_001_000_000_000,
                    ..Default::default()
                });
            }
        }
        let request = ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                scope_spans: vec![ScopeSpans {
                    spans,
                    ..Default::default()
                }],
                ..Default::default()
            }],
        };
        columnarize(&request).batch.unwrap()
    }

    #[test]
    fn trace_lookup_through_the_page_index_finds_every_span() {
        let dir = tempfile::tempdir().unwrap();
        let input = batch(40_000);
        let segment = Segment::write(dir.path(), 1, std::slice::from_ref(&input)).unwrap();
        assert_eq!(segment.num_spans(), 160_000);
        assert!(segment.row_groups.len() >= 2, "several row groups");

        let ids = input
            .column_by_name(col::TRACE_ID)
            .unwrap()
            .as_fixed_size_binary()
            .clone();
        for row in (0..ids.len()).step_by(7919) {
            let id = ids.value(row);
            let found: usize = segment
                .read_trace(id)
                .unwrap()
                .iter()
                .map(|b| b.num_rows())
                .sum();
            assert_eq!(found, 4, "trace at row {row}");
            let groups: Vec<usize> = (0..segment.row_groups.len()).collect();
            let pages = segment.pages_holding(&groups, id).expect("a page index");
            let rows: usize = pages.iter().map(ExactSizeIterator::len).sum();
            assert!(rows <= 2 * PAGE_ROWS, "{rows} rows");
        }
        assert!(
            segment
                .read_trace(&[0xab; 16])
                .unwrap()
                .iter()
                .all(|b| b.num_rows() == 0)
        );
    }

    /// `batch(num_traces)` with ends of every kind a u64 end can become: after the
    /// start, before it, and at both ends of the i64 range.
    fn batch_with_odd_ends(num_traces: u64) -> RecordBatch {
        let input = batch(num_traces);
        let start = input
            .column_by_name(col::START)
            .unwrap()
            .as_primitive::<arrow::datatypes::Int64Type>();
        let ends: arrow::array::Int64Array = (0..start.len())
            .map(|row| match row % 4 {
                0 => start.value(row) + 1_234_567,
                1 => start.value(row) - 5,
                2 => i64::MAX,
                _ => i64::MIN,
            })
            .map(Some)
            .collect();
        let mut columns = input.columns().to_vec();
        columns[input.schema().index_of(col::END).unwrap()] = Arc::new(ends);
        RecordBatch::try_new(input.schema(), columns).unwrap()
    }

    /// Span id to end, over `batches`.
    fn ends_by_span(batches: &[RecordBatch]) -> std::collections::HashMap<Vec<u8>, i64> {
        let mut out = std::collections::HashMap::new();
        for batch in batches {
            let ids = batch
                .column_by_name(col::SPAN_ID)
                .unwrap()
                .as_fixed_size_binary();
            let ends = batch
                .column_by_name(col::END)
                .unwrap()
                .as_primitive::<arrow::datatypes::Int64Type>();
            for row in 0..batch.num_rows() {
                out.insert(ids.value(row).to_vec(), ends.value(row));
            }
        }
        out
    }

    #[test]
    fn segments_store_durations_and_give_back_every_end() {
        let dir = tempfile::tempdir().unwrap();
        let input = batch_with_odd_ends(500);
        let segment = Segment::write(dir.path(), 1, std::slice::from_ref(&input)).unwrap();
        assert!(segment.stores_duration());
        let reader =
            ParquetRecordBatchReaderBuilder::try_new(File::open(segment.path()).unwrap()).unwrap();
        let file_schema = Arc::clone(reader.schema());
        assert!(file_schema.index_of(col::DURATION).is_ok());
        assert!(file_schema.index_of(col::END).is_err());

        let read = segment.read(None).unwrap();
        assert!(
            read.iter()
                .all(|b| b.schema().fields() == span_schema().fields())
        );
        assert_eq!(
            ends_by_span(&read),
            ends_by_span(std::slice::from_ref(&input))
        );

        let trace = input
            .column_by_name(col::TRACE_ID)
            .unwrap()
            .as_fixed_size_binary()
            .value(0)
            .to_vec();
        let found = segment.read_trace(&trace).unwrap();
        let found = ends_by_span(&found);
        assert_eq!(found.len(), 4);
        let all = ends_by_span(std::slice::from_ref(&input));
        assert!(found.iter().all(|(id, end)| all[id] == *end));
    }

    #[test]
    fn segments_that_store_ends_still_read() {
        let dir = tempfile::tempdir().unwrap();
        let input = batch_with_odd_ends(100);
        let path = dir.path().join(segment_file_name(7));
        let mut writer =
            ArrowWriter::try_new(File::create(&path).unwrap(), span_schema(), None).unwrap();
        writer.write(&input).unwrap();
        writer.close().unwrap();

        let segment = Segment::open(&path).unwrap();
        assert!(!segment.stores_duration());
        let read = segment.read(None).unwrap();
        assert_eq!(
            ends_by_span(&read),
            ends_by_span(std::slice::from_ref(&input))
        );
    }
}
