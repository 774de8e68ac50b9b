//! The stored spans around one service over a window: the service's spans marked
//! baseline or canary by their SELECTORs, with their callers' and callees' spans, decoded
//! into small call trees for [`canary_inputs`], and whole traces on demand for evidence.
//!
//! ```text
//! spans of the window ± 30 s ─► pass 1: the service's calls in the window, sided
//!                             └► pass 2: those spans + parents of its SERVER spans
//!                                        + children of its CLIENT spans ─► call trees
//! ```
//!
//! Only the service's spans and their direct neighbours are decoded for the inputs, so the
//! cost grows with the service's traffic, not with the size of the traces it takes part in.

use std::collections::{HashMap, HashSet};

use arrow::array::{Array, AsArray, BooleanArray, RecordBatch};
use arrow::compute::filter_record_batch;
use arrow::datatypes::{Int8Type, Int32Type, Int64Type};
use datafusion::prelude::{col, lit};
use opentelemetry_proto::tonic::resource::v1::Resource;
use tracegate_storage::{DictStr, SpanRows, Tables, col as column};

use crate::attribute_text::attribute_text;
use crate::canary::SpanSelector;
use crate::canary_inputs::{CanaryInputs, Membership, canary_inputs};
use crate::error::QueryError;
use crate::span_view::{SpanKind, SpanView};
use crate::table::{TimeRange, span_session, spans_frame};
use crate::tree::CallTree;
use crate::views::{SPAN_VIEW_COLUMNS, append_span_views};

/// How far beyond the window the scan reaches for the callers and callees of the window's
/// spans, which may start a little before or after it.
const NEIGHBOUR_MARGIN_NANOS: i64 = 30_000_000_000;

/// A span's identity within the scan.
type SpanKey = ([u8; 16], [u8; 8]);

/// The stored spans around one service over a window, ready to become the judge's inputs
/// (from small trees of the service's spans with their callers and callees) and, for
/// evidence, whole call trees of chosen traces.
pub struct CanaryScan {
    service: String,
    batches: Vec<RecordBatch>,
    marks: Marks,
}

/// The service's spans with their sides, and the neighbours the inputs need.
#[derive(Default)]
struct Marks {
    memberships: HashMap<SpanKey, Membership>,
    /// The service's CLIENT and PRODUCER spans, whose children are wanted.
    callers: HashSet<SpanKey>,
    /// The parents of the service's SERVER and CONSUMER spans.
    parents_of_callees: HashSet<SpanKey>,
}

impl Marks {
    /// Records the side of every span of `service` in one batch that starts in `range`,
    /// and which neighbours (callers of its SERVER spans, callees of its CLIENT spans) the
    /// inputs need.
    fn mark_service_spans(
        &mut self,
        batch: &RecordBatch,
        service: &str,
        range: TimeRange,
        [baseline, canary]: [&SpanSelector; 2],
        needs_attributes: bool,
    ) -> Result<(), QueryError> {
        let columns = Columns::of(batch)?;
        let services = DictStr::of(batch, column::SERVICE)?;
        let workloads = DictStr::of(batch, column::WORKLOAD)?;
        let versions = DictStr::of(batch, column::VERSION)?;
        let mut attributes = needs_attributes
            .then(|| StoredAttributes::of(batch))
            .transpose()?;

        for row in 0..batch.num_rows() {
            if services.get(row) != Some(service) {
                continue;
            }
            let start = columns.starts.value(row);
            if start < range.start_unix_nano || start > range.end_unix_nano {
                continue;
            }
            let kind = SpanKind::from_otlp(i32::from(columns.kinds.value(row)));
            if !kind.is_callee() && !kind.is_caller() {
                continue;
            }
            let (version, workload) = (versions.get(row), workloads.get(row));
            let mut lookup =
                |key: &str| attributes.as_mut().and_then(|stored| stored.get(row, key));
            let in_baseline = baseline.matches(version, workload, &mut lookup);
            let in_canary = canary.matches(version, workload, &mut lookup);
            let membership = Membership::of(in_baseline, in_canary);
            if membership == Membership::Neither {
                continue;
            }

            let key = columns.key(row);
            self.memberships.insert(key, membership);
            if kind.is_callee() {
                if let Some(parent) = columns.parent(row) {
                    self.parents_of_callees.insert((key.0, parent));
                }
            } else {
                self.callers.insert(key);
            }
        }
        Ok(())
    }

    /// True for the rows the inputs' small trees need.
    fn wants(&self, columns: &Columns<'_>, row: usize) -> bool {
        let key = columns.key(row);
        self.memberships.contains_key(&key)
            || self.parents_of_callees.contains(&key)
            || columns
                .parent(row)
                .is_some_and(|parent| self.callers.contains(&(key.0, parent)))
    }
}

impl CanaryScan {
    /// Scans `range` for the spans of `service` that either selector matches.
    ///
    /// Selectors on attributes other than those a [`SpanView`] carries read the stored
    /// resource (once per distinct resource) and, when the resource lacks the key, the
    /// span's own attributes.
    ///
    /// # Errors
    /// When the query engine fails or stored spans do not decode.
    pub async fn load(
        tables: &Tables,
        range: TimeRange,
        service: &str,
        baseline: &SpanSelector,
        canary: &SpanSelector,
    ) -> Result<Self, QueryError> {
        let scan_range = TimeRange {
            start_unix_nano: range.start_unix_nano.saturating_sub(NEIGHBOUR_MARGIN_NANOS),
            end_unix_nano: range.end_unix_nano.saturating_add(NEIGHBOUR_MARGIN_NANOS),
        };
        let needs_attributes =
            baseline.needs_stored_attributes() || canary.needs_stored_attributes();
        let ctx = span_session();
        let mut frame = spans_frame(&ctx, tables, scan_range).await?.filter(
            col(column::START)
                .gt_eq(lit(scan_range.start_unix_nano))
                .and(col(column::START).lt_eq(lit(scan_range.end_unix_nano))),
        )?;
        if !needs_attributes {
            frame = frame.select_columns(&SPAN_VIEW_COLUMNS)?;
        }
        let batches = frame.collect().await?;

        let mut marks = Marks::default();
        for batch in &batches {
            marks.mark_service_spans(
                batch,
                service,
                range,
                [baseline, canary],
                needs_attributes,
            )?;
        }
        Ok(Self {
            service: service.to_owned(),
            batches,
            marks,
        })
    }

    /// The judge's inputs, from small trees of the service's spans and their neighbours.
    ///
    /// # Errors
    /// When a stored batch does not decode.
    pub fn inputs(&self) -> Result<CanaryInputs, QueryError> {
        let trees = self.trees_where(|columns, row| self.marks.wants(columns, row))?;
        Ok(canary_inputs(&trees, &self.service, |span| {
            self.marks
                .memberships
                .get(&(span.trace_id, span.span_id))
                .copied()
                .unwrap_or(Membership::Neither)
        }))
    }

    /// Whole call trees of the given traces, as far as the scanned range holds them.
    ///
    /// # Errors
    /// When a stored batch does not decode.
    pub fn full_trees(&self, trace_ids: &HashSet<[u8; 16]>) -> Result<Vec<CallTree>, QueryError> {
        self.trees_where(|columns, row| trace_ids.contains(&columns.key(row).0))
    }

    /// Decodes the rows that `wanted` picks and assembles them into one tree per trace.
    fn trees_where(
        &self,
        wanted: impl Fn(&Columns<'_>, usize) -> bool,
    ) -> Result<Vec<CallTree>, QueryError> {
        let mut by_trace: HashMap<[u8; 16], Vec<SpanView>> = HashMap::new();
        let mut views = Vec::new();
        for batch in &self.batches {
            let columns = Columns::of(batch)?;
            let mask: BooleanArray = (0..batch.num_rows())
                .map(|row| Some(wanted(&columns, row)))
                .collect();
            if mask.true_count() == 0 {
                continue;
            }
            let picked = filter_record_batch(batch, &mask)?;
            views.clear();
            append_span_views(&picked, &mut views)?;
            for view in views.drain(..) {
                by_trace.entry(view.trace_id).or_default().push(view);
            }
        }
        let mut trees = Vec::with_capacity(by_trace.len());
        for spans in by_trace.into_values() {
            match CallTree::assemble(spans) {
                Ok(tree) => trees.push(tree),
                Err(error) => tracing::debug!(%error, "trace skipped by canary analysis"),
            }
        }
        trees.sort_by_key(CallTree::trace_id);
        Ok(trees)
    }
}

/// The id and time columns of a batch.
struct Columns<'a> {
    trace_ids: &'a arrow::array::FixedSizeBinaryArray,
    span_ids: &'a arrow::array::FixedSizeBinaryArray,
    parent_ids: &'a arrow::array::FixedSizeBinaryArray,
    kinds: &'a arrow::array::PrimitiveArray<Int8Type>,
    starts: &'a arrow::array::PrimitiveArray<Int64Type>,
}

impl<'a> Columns<'a> {
    fn of(batch: &'a RecordBatch) -> Result<Self, QueryError> {
        let fixed = |name: &str| {
            batch
                .column_by_name(name)
                .and_then(|c| c.as_fixed_size_binary_opt())
                .ok_or_else(|| QueryError::BadRequest(format!("scan lacks {name}")))
        };
        Ok(Self {
            trace_ids: fixed(column::TRACE_ID)?,
            span_ids: fixed(column::SPAN_ID)?,
            parent_ids: fixed(column::PARENT_SPAN_ID)?,
            kinds: batch
                .column_by_name(column::KIND)
                .and_then(|c| c.as_primitive_opt::<Int8Type>())
                .ok_or_else(|| QueryError::BadRequest("scan lacks span kinds".to_owned()))?,
            starts: batch
                .column_by_name(column::START)
                .and_then(|c| c.as_primitive_opt::<Int64Type>())
                .ok_or_else(|| QueryError::BadRequest("scan lacks start times".to_owned()))?,
        })
    }

    fn key(&self, row: usize) -> SpanKey {
        (
            self.trace_ids.value(row).try_into().unwrap_or_default(),
            self.span_ids.value(row).try_into().unwrap_or_default(),
        )
    }

    fn parent(&self, row: usize) -> Option<[u8; 8]> {
        (!self.parent_ids.is_null(row))
            .then(|| self.parent_ids.value(row).try_into().ok())
            .flatten()
    }
}

/// Resource and span attributes of a batch's rows as text, decoded on demand: a resource
/// once per dictionary entry, a span's own attributes once per row.
struct StoredAttributes<'a> {
    rows: SpanRows<'a>,
    resource_keys: &'a arrow::array::PrimitiveArray<Int32Type>,
    resources: HashMap<i32, HashMap<String, String>>,
    span_row: Option<(usize, HashMap<String, String>)>,
}

impl<'a> StoredAttributes<'a> {
    fn of(batch: &'a RecordBatch) -> Result<Self, QueryError> {
        let resource_keys = batch
            .column_by_name(column::RESOURCE_PROTO)
            .and_then(|c| c.as_dictionary_opt::<Int32Type>())
            .map(|dictionary| dictionary.keys())
            .ok_or_else(|| QueryError::BadRequest("scan lacks resources".to_owned()))?;
        Ok(Self {
            rows: SpanRows::new(batch)?,
            resource_keys,
            resources: HashMap::new(),
            span_row: None,
        })
    }

    /// The attribute `key` of row `row`: the resource's, else the span's.
    fn get(&mut self, row: usize, key: &str) -> Option<String> {
        if !self.resource_keys.is_null(row) {
            let dictionary_key = self.resource_keys.value(row);
            if !self.resources.contains_key(&dictionary_key) {
                let attributes = self
                    .rows
                    .resource(row)
                    .map(|resource: Resource| {
                        let pairs = resource.attributes.into_iter();
                        pairs
                            .map(|kv| (kv.key, attribute_text(kv.value.as_ref())))
                            .collect()
                    })
                    .unwrap_or_default();
                self.resources.insert(dictionary_key, attributes);
            }
            if let Some(value) = self.resources[&dictionary_key].get(key) {
                return Some(value.clone());
            }
        }
        if self
            .span_row
            .as_ref()
            .is_none_or(|(cached, _)| *cached != row)
        {
            let attributes = self
                .rows
                .span(row)
                .map(|span| {
                    let pairs = span.attributes.into_iter();
                    pairs
                        .map(|kv| (kv.key, attribute_text(kv.value.as_ref())))
                        .collect()
                })
                .unwrap_or_default();
            self.span_row = Some((row, attributes));
        }
        self.span_row
            .as_ref()
            .and_then(|(_, attributes)| attributes.get(key).cloned())
    }
}
