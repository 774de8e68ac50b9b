//! The live service graph: pairs caller and callee spans as they become durable and
//! keeps per-edge statistics in time buckets (10 s for the newest hour, coarser with age:
//! see `tiers`), persisted with every sealed segment.
//!
//! ```text
//! on_commit(batch) ─► for each CLIENT/PRODUCER and SERVER/CONSUMER span:
//!     database call (db.system, a peer) ──► edge caller → virtual database, at once
//!     callee without parent ──────────────► edge user → callee
//!     partner already pending in trace ───► edge caller → callee (bucket of caller start)
//!     otherwise ──────────────────────────► pending[trace] (waits for its partner)
//! sweep (pending longer than the pairing window):
//!     caller with a peer attribute ───────► edge caller → virtual peer
//!     anything else ──────────────────────► counted as unpaired
//!   then roll up: buckets past their level's age merge into coarser ones
//! on_seal(gen) ─► state encoded ─► on_flushed(gen) ─► graph/<gen>.bin
//! ```
//!
//! Pairing works across requests, segments and arrival order, because a trace's
//! pending spans wait for their partner for the whole pairing window. Answers also
//! count pending callers as tentative virtual edges, so a span shows in the graph as
//! soon as it is acknowledged.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use arrow::array::{Array, RecordBatch};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use tracegate_storage::{
    CommitObserver, DictStr, StorageError, col, fixed_binary_column, int8_column, int64_column,
};

use crate::graph::edge_stats::EdgeStats;
use crate::graph::endpoint::{Endpoint, EndpointId, EndpointTable, USER_NODE};
use crate::graph::snapshot_file;
use crate::graph::tiers::{FINEST_BUCKET_NANOS, Mergeable, Tiered};
use crate::table::TimeRange;
use crate::views::STATUS_ERROR;

/// How long a span waits for its partner before it is settled as virtual or unpaired.
const DEFAULT_PAIRING_WINDOW: Duration = Duration::from_secs(30);
/// How often pending spans are swept.
pub const SWEEP_EVERY: Duration = Duration::from_secs(1);
/// Most pending spans kept; beyond this the oldest traces are settled early.
const MAX_PENDING_SPANS: usize = 2_000_000;

/// An edge between two interned endpoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub(crate) struct EdgeKey {
    /// The caller.
    pub source: EndpointId,
    /// The callee.
    pub target: EndpointId,
}

/// A caller or callee span waiting for its partner. Small and without heap data: a busy
/// mesh keeps hundreds of thousands of them (calls to databases and external APIs wait the
/// whole pairing window).
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
struct PendingSpan {
    span_id: [u8; 8],
    parent: Option<[u8; 8]>,
    endpoint: EndpointId,
    error: bool,
    start_unix_nano: i64,
    duration_nanos: i64,
    /// For a caller with a peer attribute, the virtual node of that peer.
    peer: Option<EndpointId>,
}

/// The pending spans of one trace.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct PendingTrace {
    callers: Vec<PendingSpan>,
    callees: Vec<PendingSpan>,
    touched_unix_nano: i64,
}

/// Spans that could not be paired, per bucket.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Unpaired {
    /// CLIENT/PRODUCER spans with neither a callee nor a peer attribute.
    pub callers: u64,
    /// SERVER/CONSUMER spans whose parent is not a caller span that arrived.
    pub callees: u64,
}

/// A hash map with aHash: every span's trace id and edge are looked up on the writer
/// thread, before the span is acknowledged, and SipHash was the graph's largest cost there.
/// aHash keeps a per-process random key, so crafted trace ids cannot force collisions.
type FastMap<K, V> = HashMap<K, V, ahash::RandomState>;

/// Everything the graph knows; what a snapshot file holds.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Working {
    endpoints: EndpointTable,
    buckets: Tiered<FastMap<EdgeKey, EdgeStats>>,
    unpaired: Tiered<Unpaired>,
    pending: FastMap<[u8; 16], PendingTrace>,
    /// Spans in `pending`, recounted after a load.
    #[serde(skip)]
    num_pending_spans: usize,
}

/// Per-edge statistics merged over a time range, before grouping.
#[derive(Debug, Default)]
pub struct GraphSnapshot {
    /// Edge statistics by (source, target) endpoint.
    pub edges: Vec<(Endpoint, Endpoint, EdgeStats)>,
    /// Spans that could not be paired in the range.
    pub unpaired: Unpaired,
    /// Pending callers counted as tentative virtual edges.
    pub tentative_calls: u64,
    /// Width of the widest bucket the answer merged: the range was widened to whole
    /// buckets of this width (10 s within the newest hour).
    pub resolution_nanos: i64,
}

/// How much the live graph holds back, waiting for partners.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pending {
    /// Traces with at least one waiting span.
    pub traces: usize,
    /// Waiting caller and callee spans.
    pub spans: usize,
}

/// The live service graph. Register it as a [`CommitObserver`] of the store.
pub struct LiveGraph {
    dir: PathBuf,
    pairing_window: Duration,
    state: Mutex<Working>,
    last_sweep: Mutex<Instant>,
    /// Snapshots encoded at a seal, by generation, waiting for their segment's flush.
    unwritten: Mutex<BTreeMap<u64, Vec<u8>>>,
}

/// Most encoded snapshots held while their segments are being flushed; beyond this the
/// oldest is dropped (a restart then rebuilds a little more from segments).
const MAX_UNWRITTEN_SNAPSHOTS: usize = 3;

fn now_unix_nano() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i64)
}

/// The finest bucket of a time, for pending spans (which are recent by nature).
fn bucket_of(unix_nano: i64) -> i64 {
    unix_nano.div_euclid(FINEST_BUCKET_NANOS)
}

impl Mergeable for FastMap<EdgeKey, EdgeStats> {
    fn merge_from(&mut self, other: Self) {
        for (key, stats) in other {
            match self.entry(key) {
                std::collections::hash_map::Entry::Occupied(mut mine) => {
                    mine.get_mut().merge(&stats)
                }
                std::collections::hash_map::Entry::Vacant(slot) => {
                    slot.insert(stats);
                }
            }
        }
    }
}

impl Mergeable for Unpaired {
    fn merge_from(&mut self, other: Self) {
        self.callers += other.callers;
        self.callees += other.callees;
    }
}

impl LiveGraph {
    /// Loads the newest snapshot from `<data_dir>/graph`, returning the graph and the
    /// segment generation the snapshot matches (0 when there is none).
    ///
    /// # Errors
    /// When the directory cannot be created or a snapshot cannot be read.
    pub fn load(data_dir: &Path) -> Result<(Self, u64), StorageError> {
        let dir = data_dir.join("graph");
        std::fs::create_dir_all(&dir).map_err(|e| StorageError::io("create", &dir, e))?;
        let (newest, legacy) = snapshot_file::newest(&dir)?;
        if legacy && newest.is_none() {
            tracing::info!(
                "graph snapshot of an earlier version ignored; rebuilding from segments"
            );
        }
        let loaded = newest.and_then(|(generation, path)| {
            let read = std::fs::read(&path)
                .map_err(|e| StorageError::io("read", &path, e))
                .and_then(|bytes| snapshot_file::decode::<Working>(&bytes, &path));
            match read {
                Ok(working) => Some((generation, working)),
                Err(error) => {
                    tracing::warn!(%error, "graph snapshot unreadable; rebuilding from segments");
                    None
                }
            }
        });
        let (generation, mut working) = loaded.unwrap_or_default();
        working.num_pending_spans = working
            .pending
            .values()
            .map(|t| t.callers.len() + t.callees.len())
            .sum();
        let graph = Self {
            dir,
            pairing_window: DEFAULT_PAIRING_WINDOW,
            state: Mutex::new(working),
            last_sweep: Mutex::new(Instant::now()),
            unwritten: Mutex::new(BTreeMap::new()),
        };
        Ok((graph, generation))
    }

    /// Changes how long spans wait for their partner.
    pub fn with_pairing_window(mut self, window: Duration) -> Self {
        self.pairing_window = window;
        self
    }

    /// Feeds a batch, as `on_commit` does; used to rebuild from segments.
    ///
    /// # Errors
    /// When the batch does not follow the span schema.
    pub fn ingest(&self, batch: &RecordBatch) -> Result<(), StorageError> {
        let now = now_unix_nano();
        let mut state = self.state.lock();
        state.ingest(batch, now)?;
        drop(state);
        self.maybe_sweep(now);
        Ok(())
    }

    /// Sweeps and rolls up when [`SWEEP_EVERY`] has passed since the last time. Ingest
    /// does this by itself; a server calls it on a timer too, so that spans pending when
    /// traffic stops are still settled once their pairing window ends.
    pub fn tick(&self) {
        self.maybe_sweep(now_unix_nano());
    }

    fn maybe_sweep(&self, now: i64) {
        let mut last = self.last_sweep.lock();
        let over_capacity = self.state.lock().num_pending_spans > MAX_PENDING_SPANS;
        if last.elapsed() < SWEEP_EVERY && !over_capacity {
            return;
        }
        *last = Instant::now();
        drop(last);
        let mut window = self.pairing_window.as_nanos() as i64;
        let mut state = self.state.lock();
        state.sweep(now - window);
        while state.num_pending_spans > MAX_PENDING_SPANS && window > 0 {
            window /= 2;
            state.sweep(now - window);
        }
        state.roll_up(now);
    }

    /// Spans waiting for their partner, and their traces.
    pub fn pending(&self) -> Pending {
        let state = self.state.lock();
        Pending {
            traces: state.pending.len(),
            spans: state.num_pending_spans,
        }
    }

    /// Edge statistics over `range`, pending callers included as tentative edges.
    pub fn snapshot(&self, range: TimeRange) -> GraphSnapshot {
        let state = self.state.lock();
        let first = bucket_of(range.start_unix_nano);
        let last = bucket_of(range.end_unix_nano);
        let (start, end) = (range.start_unix_nano, range.end_unix_nano);
        let mut merged: HashMap<EdgeKey, EdgeStats> = HashMap::new();
        let mut unpaired = Unpaired::default();
        let mut resolution_nanos = FINEST_BUCKET_NANOS;
        for (width, edges) in state.buckets.overlapping(start, end) {
            resolution_nanos = resolution_nanos.max(width);
            for (key, stats) in edges {
                merged.entry(*key).or_default().merge(stats);
            }
        }
        for (width, counts) in state.unpaired.overlapping(start, end) {
            resolution_nanos = resolution_nanos.max(width);
            unpaired.merge_from(*counts);
        }

        // What a sweep would decide now, without deciding it.
        let mut tentative_calls = 0;
        let mut tentative: HashMap<EdgeKey, EdgeStats> = HashMap::new();
        for trace in state.pending.values() {
            for caller in &trace.callers {
                let bucket = bucket_of(caller.start_unix_nano);
                if bucket < first || bucket > last {
                    continue;
                }
                match caller.peer {
                    Some(peer) => {
                        tentative_calls += 1;
                        let key = EdgeKey {
                            source: caller.endpoint,
                            target: peer,
                        };
                        tentative.entry(key).or_default().record(
                            caller.error,
                            caller.duration_nanos as f64 / 1e6,
                            None,
                        );
                    }
                    None => unpaired.callers += 1,
                }
            }
            unpaired.callees += trace
                .callees
                .iter()
                .filter(|c| (first..=last).contains(&bucket_of(c.start_unix_nano)))
                .count() as u64;
        }

        let endpoint = |id: EndpointId| state.endpoints.get(id).clone();
        let edges: Vec<(Endpoint, Endpoint, EdgeStats)> = merged
            .into_iter()
            .chain(tentative)
            .map(|(key, stats)| (endpoint(key.source), endpoint(key.target), stats))
            .collect();
        GraphSnapshot {
            edges,
            unpaired,
            tentative_calls,
            resolution_nanos,
        }
    }

    /// Writes the state durably as the snapshot of segment `generation` and removes
    /// older snapshots.
    ///
    /// # Errors
    /// When the file cannot be written.
    pub fn persist(&self, generation: u64) -> Result<(), StorageError> {
        let bytes = self.encode()?;
        snapshot_file::write(&self.dir, generation, &bytes)?;
        tracing::debug!(generation, bytes = bytes.len(), "graph snapshot written");
        Ok(())
    }

    fn encode(&self) -> Result<Vec<u8>, StorageError> {
        snapshot_file::encode(&*self.state.lock())
    }
}

impl CommitObserver for LiveGraph {
    fn on_commit(&self, batch: &RecordBatch) {
        if let Err(error) = self.ingest(batch) {
            tracing::error!(%error, "service graph skipped a batch");
        }
    }

    /// Encodes the state as it stands at the seal, every span of the segment in it and
    /// none after. It is written only once the segment is flushed: a snapshot on disk
    /// whose segment is not would count that segment's spans twice after a crash, once
    /// from the snapshot and once from the WAL replay.
    fn on_seal(&self, generation: u64) {
        match self.encode() {
            Ok(bytes) => {
                let mut unwritten = self.unwritten.lock();
                unwritten.insert(generation, bytes);
                while unwritten.len() > MAX_UNWRITTEN_SNAPSHOTS {
                    unwritten.pop_first();
                }
            }
            Err(error) => tracing::error!(%error, generation, "cannot encode the graph snapshot"),
        }
    }

    /// Writes the snapshot encoded at the seal of `generation`. A failure loses nothing:
    /// a restart rebuilds from an older snapshot and the segments after it.
    fn on_flushed(&self, generation: u64) {
        let bytes = {
            let mut unwritten = self.unwritten.lock();
            let mut newer = unwritten.split_off(&(generation + 1));
            std::mem::swap(&mut *unwritten, &mut newer);
            newer.remove(&generation)
        };
        let Some(bytes) = bytes else { return };
        match snapshot_file::write(&self.dir, generation, &bytes) {
            Ok(()) => tracing::debug!(generation, bytes = bytes.len(), "graph snapshot written"),
            Err(error) => tracing::error!(%error, generation, "cannot write the graph snapshot"),
        }
    }
}

impl Working {
    fn record(
        &mut self,
        key: EdgeKey,
        start: i64,
        error: bool,
        latency_ms: f64,
        server_ms: Option<f64>,
    ) {
        self.buckets
            .at(start)
            .entry(key)
            .or_default()
            .record(error, latency_ms, server_ms);
    }

    fn pair(&mut self, caller: &PendingSpan, callee: &PendingSpan) {
        let key = EdgeKey {
            source: caller.endpoint,
            target: callee.endpoint,
        };
        self.record(
            key,
            caller.start_unix_nano,
            caller.error || callee.error,
            caller.duration_nanos as f64 / 1e6,
            Some(callee.duration_nanos as f64 / 1e6),
        );
    }

    fn ingest(&mut self, batch: &RecordBatch, now: i64) -> Result<(), StorageError> {
        let trace_ids = fixed_binary_column(batch, col::TRACE_ID)?;
        let span_ids = fixed_binary_column(batch, col::SPAN_ID)?;
        let parents = fixed_binary_column(batch, col::PARENT_SPAN_ID)?;
        let starts = int64_column(batch, col::START)?;
        let ends = int64_column(batch, col::END)?;
        let kinds = int8_column(batch, col::KIND)?;
        let statuses = int8_column(batch, col::STATUS_CODE)?;
        let service = DictStr::of(batch, col::SERVICE)?;
        let namespace = DictStr::of(batch, col::NAMESPACE)?;
        let workload = DictStr::of(batch, col::WORKLOAD)?;
        let version = DictStr::of(batch, col::VERSION)?;
        let pod = DictStr::of(batch, col::POD)?;
        let peer = DictStr::of(batch, col::PEER)?;
        let db_system = DictStr::of(batch, col::DB_SYSTEM)?;
        // Peers' virtual nodes, by dictionary key of the peer column.
        let mut peer_cache: HashMap<Option<i32>, Option<EndpointId>> = HashMap::new();

        // Endpoints are per resource, so a handful of dictionary-key tuples per batch.
        let mut endpoint_cache: HashMap<[Option<i32>; 5], EndpointId> = HashMap::new();
        for row in 0..batch.num_rows() {
            let kind = kinds.value(row);
            let is_caller = matches!(kind, 3 | 4);
            let is_callee = matches!(kind, 2 | 5);
            if !is_caller && !is_callee {
                continue;
            }
            let keys = [
                service.key(row),
                namespace.key(row),
                workload.key(row),
                version.key(row),
                pod.key(row),
            ];
            let endpoint = *endpoint_cache.entry(keys).or_insert_with(|| {
                self.endpoints.intern(Endpoint {
                    service: service
                        .get(row)
                        .unwrap_or(tracegate_storage::UNKNOWN_SERVICE)
                        .to_string(),
                    workload: workload.get(row).map(str::to_string),
                    version: version.get(row).map(str::to_string),
                    pod: pod.get(row).map(str::to_string),
                    namespace: namespace.get(row).map(str::to_string),
                    is_virtual: false,
                })
            });
            let Ok(trace_id) = <[u8; 16]>::try_from(trace_ids.value(row)) else {
                continue;
            };
            let Ok(span_id) = <[u8; 8]>::try_from(span_ids.value(row)) else {
                continue;
            };
            let parent = (!parents.is_null(row))
                .then(|| parents.value(row).try_into().ok())
                .flatten();
            let start = starts.value(row);
            let span = PendingSpan {
                span_id,
                parent,
                endpoint,
                error: statuses.value(row) == STATUS_ERROR,
                start_unix_nano: start,
                duration_nanos: (ends.value(row) - start).max(0),
                peer: if is_caller {
                    *peer_cache.entry(peer.key(row)).or_insert_with(|| {
                        peer.get(row)
                            .map(|name| self.endpoints.intern(Endpoint::virtual_node(name)))
                    })
                } else {
                    None
                },
            };

            // A database does not trace its clients' calls with SERVER spans of its own:
            // a CLIENT span with `db.system` and a peer is settled now as an edge to the
            // database's virtual node, as the sweep would settle it after the pairing
            // window. Waiting would only hold it in memory: in a typical mesh, database
            // calls are most of the spans that never pair.
            if kind == 3
                && let Some(target) = span.peer
                && db_system.key(row).is_some()
            {
                let ms = span.duration_nanos as f64 / 1e6;
                let key = EdgeKey {
                    source: endpoint,
                    target,
                };
                self.record(key, start, span.error, ms, None);
                continue;
            }

            if is_callee && span.parent.is_none() {
                let user = self.endpoints.intern(Endpoint::virtual_node(USER_NODE));
                let ms = span.duration_nanos as f64 / 1e6;
                self.record(
                    EdgeKey {
                        source: user,
                        target: endpoint,
                    },
                    start,
                    span.error,
                    ms,
                    Some(ms),
                );
                continue;
            }

            let trace = self.pending.entry(trace_id).or_default();
            trace.touched_unix_nano = now;
            if is_caller {
                if let Some(index) = trace.callees.iter().position(|c| c.parent == Some(span_id)) {
                    let callee = trace.callees.swap_remove(index);
                    self.num_pending_spans -= 1;
                    self.pair(&span, &callee);
                } else {
                    trace.callers.push(span);
                    self.num_pending_spans += 1;
                }
            } else if let Some(index) = trace
                .callers
                .iter()
                .position(|c| Some(c.span_id) == span.parent)
            {
                let caller = trace.callers.swap_remove(index);
                self.num_pending_spans -= 1;
                self.pair(&caller, &span);
            } else {
                trace.callees.push(span);
                self.num_pending_spans += 1;
            }
            if self
                .pending
                .get(&trace_id)
                .is_some_and(|t| t.callers.is_empty() && t.callees.is_empty())
            {
                self.pending.remove(&trace_id);
            }
        }
        Ok(())
    }

    /// Moves buckets that have aged past their level into coarser ones (see `tiers`).
    fn roll_up(&mut self, now_unix_nano: i64) {
        let merged = self.buckets.roll_up(now_unix_nano) + self.unpaired.roll_up(now_unix_nano);
        if merged > 0 {
            tracing::debug!(
                merged,
                "service graph: aged buckets merged into coarser ones"
            );
        }
    }

    /// Settles traces untouched since `cutoff_unix_nano`.
    fn sweep(&mut self, cutoff_unix_nano: i64) {
        let expired: Vec<[u8; 16]> = self
            .pending
            .iter()
            .filter(|(_, t)| t.touched_unix_nano <= cutoff_unix_nano)
            .map(|(id, _)| *id)
            .collect();
        for trace_id in expired {
            let Some(trace) = self.pending.remove(&trace_id) else {
                continue;
            };
            self.num_pending_spans -= trace.callers.len() + trace.callees.len();
            for caller in trace.callers {
                match caller.peer {
                    Some(target) => {
                        let key = EdgeKey {
                            source: caller.endpoint,
                            target,
                        };
                        let ms = caller.duration_nanos as f64 / 1e6;
                        self.record(key, caller.start_unix_nano, caller.error, ms, None);
                    }
                    None => {
                        self.unpaired.at(caller.start_unix_nano).callers += 1;
                    }
                }
            }
            for callee in trace.callees {
                self.unpaired.at(callee.start_unix_nano).callees += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value::Value};
    use opentelemetry_proto::tonic::resource::v1::Resource;
    use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status};
    use tracegate_storage::columnarize;

    use super::*;
    use crate::graph::{GroupBy, group_graph};

    const T0: i64 = 1_700_000_000_000_000_000;

    fn kv(key: &str, value: &str) -> KeyValue {
        KeyValue {
            key: key.into(),
            value: Some(AnyValue {
                value: Some(Value::StringValue(value.into())),
            }),
            ..Default::default()
        }
    }

    /// One span of a pod, with its start offset and duration in milliseconds.
    struct S {
        pod: &'static str,
        id: u8,
        parent: Option<u8>,
        kind: i32,
        start_ms: i64,
        duration_ms: i64,
        error: bool,
        attributes: Vec<KeyValue>,
    }

    fn request(trace: u8, spans: &[S]) -> ExportTraceServiceRequest {
        let resource_spans = spans
            .iter()
            .map(|s| {
                let service = s.pod.split('-').next().unwrap();
                let start = T0 + s.start_ms * 1_000_000;
                ResourceSpans {
                    resource: Some(Resource {
                        attributes: vec![
                            kv("service.name", service),
                            kv("k8s.deployment.name", service),
                            kv("k8s.pod.name", s.pod),
                            kv("service.version", "v1"),
                        ],
                        ..Default::default()
                    }),
                    scope_spans: vec![ScopeSpans {
                        spans: vec![Span {
                            trace_id: vec![trace; 16],
                            span_id: vec![s.id; 8],
                            parent_span_id: s.parent.map(|p| vec![p; 8]).unwrap_or_default(),
                            name: format!("op{}", s.id),
                            kind: s.kind,
                            start_time_unix_nano: start as u64,
                            end_time_unix_nano: (start + s.duration_ms * 1_000_000) as u64,
                            attributes: s.attributes.clone(),
                            status: s.error.then(|| Status {
                                code: 2,
                                message: "boom".into(),
                            }),
                            ..Default::default()
                        }],
                        ..Default::default()
                    }],
                    schema_url: String::new(),
                }
            })
            .collect();
        ExportTraceServiceRequest { resource_spans }
    }

    /// user → frontend → cart → redis (virtual), with the cart call failing on the
    /// server side, split so that the server half arrives before its client half.
    fn scattered() -> Vec<ExportTraceServiceRequest> {
        let span = |pod, id, parent, kind, start_ms, duration_ms, error| S {
            pod,
            id,
            parent,
            kind,
            start_ms,
            duration_ms,
            error,
            attributes: Vec::new(),
        };
        // A database call, settled at once, and a call to an external API, pending until
        // the pairing window ends.
        let mut redis = span("cart-1", 5, Some(4), 3, 3, 1, false);
        redis.attributes = vec![kv("db.system", "redis")];
        let mut stripe = span("cart-1", 6, Some(4), 3, 4, 1, false);
        stripe.attributes = vec![kv("server.address", "api.stripe.example")];
        vec![
            request(
                1,
                &[span("cart-1", 4, Some(3), 2, 2, 4, true), redis, stripe],
            ),
            request(1, &[span("frontend-0", 1, None, 2, 0, 10, true)]),
            request(1, &[span("frontend-0", 3, Some(1), 3, 1, 6, false)]),
            // A callee whose caller never arrives.
            request(2, &[span("cart-2", 9, Some(8), 2, 0, 1, false)]),
        ]
    }

    fn feed(graph: &LiveGraph, requests: &[ExportTraceServiceRequest]) {
        for request in requests {
            graph.ingest(&columnarize(request).batch.unwrap()).unwrap();
        }
    }

    const ALL: TimeRange = TimeRange::ALL;

    #[test]
    fn pairs_out_of_order_halves_and_counts_the_unpaired() {
        let dir = tempfile::tempdir().unwrap();
        let (graph, generation) = LiveGraph::load(dir.path()).unwrap();
        assert_eq!(generation, 0);
        feed(&graph, &scattered());
        let answer = group_graph(graph.snapshot(ALL), GroupBy::Service);
        insta::assert_json_snapshot!("graph_by_service", answer);

        let edge = |s: &str, t: &str| answer.edges.iter().find(|e| e.source == s && e.target == t);
        let cart = edge("frontend", "cart").expect("frontend → cart paired");
        assert_eq!((cart.calls, cart.errors), (1, 1));
        assert!(
            (cart.p50_ms.unwrap() - 6.0).abs() < 0.06
                && (cart.server_p50_ms.unwrap() - 4.0).abs() < 0.04
        );
        assert_eq!(edge("user", "frontend").map(|e| e.errors), Some(1));
        assert_eq!(
            edge("cart", "redis").map(|e| e.calls),
            Some(1),
            "database call settled at once"
        );
        assert_eq!(
            edge("cart", "api.stripe.example").map(|e| e.calls),
            Some(1),
            "tentative virtual edge"
        );
        assert_eq!(
            answer.unpaired,
            Unpaired {
                callers: 0,
                callees: 1
            }
        );
        assert_eq!(answer.tentative_calls, 1);
    }

    #[test]
    fn sweeping_settles_virtual_edges_without_changing_the_answer() {
        let dir = tempfile::tempdir().unwrap();
        let (graph, _) = LiveGraph::load(dir.path()).unwrap();
        feed(&graph, &scattered());
        let before = group_graph(graph.snapshot(ALL), GroupBy::Pod);
        graph.state.lock().sweep(i64::MAX);
        let after = group_graph(graph.snapshot(ALL), GroupBy::Pod);
        assert_eq!(
            serde_json::to_value(&before.edges).unwrap(),
            serde_json::to_value(&after.edges).unwrap()
        );
        assert_eq!(after.tentative_calls, 0);
        assert_eq!(
            after.unpaired,
            Unpaired {
                callers: 0,
                callees: 1
            }
        );
    }

    #[test]
    fn snapshot_is_written_only_once_its_segment_is_flushed() {
        let dir = tempfile::tempdir().unwrap();
        let (graph, _) = LiveGraph::load(dir.path()).unwrap();
        let requests = scattered();
        feed(&graph, &requests[..2]);
        graph.on_seal(4);
        // Spans after the seal belong to the next segment, not to this snapshot.
        feed(&graph, &requests[2..]);
        let (before_flush, generation) = LiveGraph::load(dir.path()).unwrap();
        assert_eq!(generation, 0, "a crash before the flush finds no snapshot");
        assert!(before_flush.state.lock().pending.is_empty());
        graph.on_flushed(4);
        let (reloaded, generation) = LiveGraph::load(dir.path()).unwrap();
        assert_eq!(generation, 4);
        let (expected, _) = LiveGraph::load(tempfile::tempdir().unwrap().path()).unwrap();
        feed(&expected, &requests[..2]);
        let answer =
            |g: &LiveGraph| serde_json::to_value(group_graph(g.snapshot(ALL), GroupBy::Pod));
        assert_eq!(answer(&reloaded).unwrap(), answer(&expected).unwrap());
        let pending = |g: &LiveGraph| g.state.lock().num_pending_spans;
        assert_eq!(pending(&reloaded), pending(&expected));
        assert_eq!(
            pending(&reloaded),
            2,
            "the cart server span and the stripe call"
        );
    }

    #[test]
    fn old_calls_merge_into_coarser_buckets_and_the_answer_says_so() {
        let call = |trace: u8, start_ms: i64| {
            let span = |pod, id, parent, kind| S {
                pod,
                id,
                parent,
                kind,
                start_ms,
                duration_ms: 5,
                error: false,
                attributes: Vec::new(),
            };
            request(
                trace,
                &[
                    span("frontend-0", 1, None, 3),
                    span("cart-1", 2, Some(1), 2),
                ],
            )
        };
        let dir = tempfile::tempdir().unwrap();
        let (graph, _) = LiveGraph::load(dir.path()).unwrap();
        let three_hours_ms = 3 * 3_600 * 1_000;
        feed(
            &graph,
            &[call(1, 0), call(2, 20_000), call(3, three_hours_ms)],
        );
        graph.state.lock().roll_up(now_unix_nano());
        let calls = |range: TimeRange| {
            let answer = group_graph(graph.snapshot(range), GroupBy::Service);
            let calls = answer.edges.iter().map(|e| e.calls).sum::<u64>();
            (calls, answer.resolution_seconds)
        };
        assert_eq!(calls(ALL), (3, 300));
        // One second asked, three hours back: its whole 5-minute bucket answers.
        let at = |ms: i64| TimeRange {
            start_unix_nano: T0 + ms * 1_000_000,
            end_unix_nano: T0 + ms * 1_000_000 + 999_999_999,
        };
        assert_eq!(calls(at(0)), (2, 300));
        assert_eq!(calls(at(three_hours_ms)), (1, 10));
        graph.persist(1).unwrap();
        let (reloaded, _) = LiveGraph::load(dir.path()).unwrap();
        let answer =
            |g: &LiveGraph| serde_json::to_value(group_graph(g.snapshot(at(0)), GroupBy::Pod));
        assert_eq!(answer(&reloaded).unwrap(), answer(&graph).unwrap());
    }

    #[test]
    fn unreadable_snapshot_means_a_rebuild_not_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let graph_dir = dir.path().join("graph");
        std::fs::create_dir_all(&graph_dir).unwrap();
        std::fs::write(graph_dir.join("0000000007.bin"), b"half a snapshot").unwrap();
        let (graph, generation) = LiveGraph::load(dir.path()).unwrap();
        assert_eq!(generation, 0);
        assert!(graph.snapshot(ALL).edges.is_empty());
    }

    #[test]
    fn snapshot_round_trips_through_disk() {
        let dir = tempfile::tempdir().unwrap();
        let (graph, _) = LiveGraph::load(dir.path()).unwrap();
        let requests = scattered();
        feed(&graph, &requests[..2]);
        graph.persist(7).unwrap();
        let (reloaded, generation) = LiveGraph::load(dir.path()).unwrap();
        assert_eq!(generation, 7);
        // The rest arrives after the restart and still pairs with what was pending.
        feed(&graph, &requests[2..]);
        feed(&reloaded, &requests[2..]);
        let expected =
            serde_json::to_value(group_graph(graph.snapshot(ALL), GroupBy::Pod)).unwrap();
        let got = serde_json::to_value(group_graph(reloaded.snapshot(ALL), GroupBy::Pod)).unwrap();
        assert_eq!(got, expected);
    }
}
