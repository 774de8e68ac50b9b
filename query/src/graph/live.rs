//! The live service graph: pairs caller and callee spans as they become durable and
//! keeps per-edge statistics in 10-second buckets, persisted with every sealed segment.
//!
//! ```text
//! on_commit(batch) ─► for each CLIENT/PRODUCER and SERVER/CONSUMER span:
//!     callee without parent ──────────────► edge user → callee
//!     partner already pending in trace ───► edge caller → callee (bucket of caller start)
//!     otherwise ──────────────────────────► pending[trace] (waits for its partner)
//! sweep (pending longer than the pairing window):
//!     caller with a peer attribute ───────► edge caller → virtual peer
//!     anything else ──────────────────────► counted as unpaired
//! on_seal(generation) ─► graph/<generation>.json (before the WAL is trimmed)
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
use crate::table::TimeRange;
use crate::views::STATUS_ERROR;

/// Width of a statistics bucket.
pub const BUCKET_NANOS: i64 = 10_000_000_000;
/// How long a span waits for its partner before it is settled as virtual or unpaired.
const DEFAULT_PAIRING_WINDOW: Duration = Duration::from_secs(30);
/// How often pending spans are swept.
const SWEEP_EVERY: Duration = Duration::from_secs(1);
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

/// A caller or callee span waiting for its partner.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct PendingSpan {
    span_id: [u8; 8],
    parent: Option<[u8; 8]>,
    endpoint: EndpointId,
    error: bool,
    start_unix_nano: i64,
    duration_nanos: i64,
    peer: Option<String>,
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

/// Everything the graph knows; what a snapshot holds.
#[derive(Debug, Default, Serialize, Deserialize)]
struct GraphState {
    endpoints: EndpointTable,
    buckets: BTreeMap<i64, Vec<(EdgeKey, EdgeStats)>>,
    unpaired: BTreeMap<i64, Unpaired>,
    pending: Vec<([u8; 16], PendingTrace)>,
}

/// The mutable working form of [`GraphState`].
#[derive(Debug, Default)]
struct Working {
    endpoints: EndpointTable,
    buckets: BTreeMap<i64, HashMap<EdgeKey, EdgeStats>>,
    unpaired: BTreeMap<i64, Unpaired>,
    pending: HashMap<[u8; 16], PendingTrace>,
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
}

/// The live service graph. Register it as a [`CommitObserver`] of the store.
pub struct LiveGraph {
    dir: PathBuf,
    pairing_window: Duration,
    state: Mutex<Working>,
    last_sweep: Mutex<Instant>,
}

fn now_unix_nano() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i64)
}

fn bucket_of(unix_nano: i64) -> i64 {
    unix_nano.div_euclid(BUCKET_NANOS)
}

fn snapshot_path(dir: &Path, generation: u64) -> PathBuf {
    dir.join(format!("{generation:010}.json"))
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
        let mut newest: Option<(u64, PathBuf)> = None;
        for entry in std::fs::read_dir(&dir).map_err(|e| StorageError::io("list", &dir, e))? {
            let path = entry.map_err(|e| StorageError::io("list", &dir, e))?.path();
            let generation = path
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.strip_suffix(".json"))
                .and_then(|n| n.parse::<u64>().ok());
            if let Some(generation) = generation
                && newest.as_ref().is_none_or(|(g, _)| generation > *g)
            {
                newest = Some((generation, path));
            }
        }
        let (generation, working) = match newest {
            Some((generation, path)) => {
                let bytes = std::fs::read(&path).map_err(|e| StorageError::io("read", &path, e))?;
                let state: GraphState = serde_json::from_slice(&bytes).map_err(|e| {
                    StorageError::Corrupt(format!("graph snapshot {}: {e}", path.display()))
                })?;
                (generation, Working::from_state(state))
            }
            None => (0, Working::default()),
        };
        let graph = Self {
            dir,
            pairing_window: DEFAULT_PAIRING_WINDOW,
            state: Mutex::new(working),
            last_sweep: Mutex::new(Instant::now()),
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
    }

    /// Edge statistics over `range`, pending callers included as tentative edges.
    pub fn snapshot(&self, range: TimeRange) -> GraphSnapshot {
        let state = self.state.lock();
        let first = bucket_of(range.start_unix_nano);
        let last = bucket_of(range.end_unix_nano);
        let mut merged: HashMap<EdgeKey, EdgeStats> = HashMap::new();
        let mut unpaired = Unpaired::default();
        for (_, edges) in state.buckets.range(first..=last) {
            for (key, stats) in edges {
                merged.entry(*key).or_default().merge(stats);
            }
        }
        for (_, counts) in state.unpaired.range(first..=last) {
            unpaired.callers += counts.callers;
            unpaired.callees += counts.callees;
        }

        // What a sweep would decide now, without deciding it.
        let mut tentative_calls = 0;
        let mut virtual_ids: HashMap<&str, Endpoint> = HashMap::new();
        let mut tentative: HashMap<(EndpointId, String), EdgeStats> = HashMap::new();
        for trace in state.pending.values() {
            for caller in &trace.callers {
                let bucket = bucket_of(caller.start_unix_nano);
                if bucket < first || bucket > last {
                    continue;
                }
                match &caller.peer {
                    Some(peer) => {
                        tentative_calls += 1;
                        virtual_ids
                            .entry(peer)
                            .or_insert_with(|| Endpoint::virtual_node(peer));
                        tentative
                            .entry((caller.endpoint, peer.clone()))
                            .or_default()
                            .record(caller.error, caller.duration_nanos as f64 / 1e6, None);
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

        let mut edges: Vec<(Endpoint, Endpoint, EdgeStats)> = merged
            .into_iter()
            .map(|(key, stats)| {
                (
                    state.endpoints.get(key.source).clone(),
                    state.endpoints.get(key.target).clone(),
                    stats,
                )
            })
            .collect();
        for ((source, peer), stats) in tentative {
            let target = virtual_ids
                .get(peer.as_str())
                .cloned()
                .unwrap_or_else(|| Endpoint::virtual_node(&peer));
            edges.push((state.endpoints.get(source).clone(), target, stats));
        }
        GraphSnapshot {
            edges,
            unpaired,
            tentative_calls,
        }
    }

    /// Writes the state durably as the snapshot of segment `generation` and removes
    /// older snapshots.
    ///
    /// # Errors
    /// When the file cannot be written.
    pub fn persist(&self, generation: u64) -> Result<(), StorageError> {
        let bytes = {
            let state = self.state.lock();
            serde_json::to_vec(&state.to_state())
                .map_err(|e| StorageError::Corrupt(format!("graph snapshot: {e}")))?
        };
        let path = snapshot_path(&self.dir, generation);
        let tmp = path.with_extension("json.tmp");
        let write = || -> std::io::Result<()> {
            let mut file = std::fs::File::create(&tmp)?;
            std::io::Write::write_all(&mut file, &bytes)?;
            file.sync_all()?;
            std::fs::rename(&tmp, &path)?;
            std::fs::File::open(&self.dir)?.sync_all()
        };
        write().map_err(|e| StorageError::io("write", &path, e))?;
        for entry in
            std::fs::read_dir(&self.dir).map_err(|e| StorageError::io("list", &self.dir, e))?
        {
            let Ok(entry) = entry else { continue };
            let older = entry
                .file_name()
                .to_str()
                .and_then(|n| n.strip_suffix(".json"))
                .and_then(|n| n.parse::<u64>().ok())
                .is_some_and(|g| g < generation);
            if older {
                let _ = std::fs::remove_file(entry.path());
            }
        }
        tracing::debug!(generation, bytes = bytes.len(), "graph snapshot written");
        Ok(())
    }
}

impl CommitObserver for LiveGraph {
    fn on_commit(&self, batch: &RecordBatch) {
        if let Err(error) = self.ingest(batch) {
            tracing::error!(%error, "service graph skipped a batch");
        }
    }

    fn on_seal(&self, generation: u64) {
        // The WAL of this generation is removed only after this returns and the segment
        // is flushed, so a failure here loses nothing that a replay cannot rebuild.
        if let Err(error) = self.persist(generation) {
            tracing::error!(%error, generation, "cannot write the graph snapshot");
        }
    }
}

impl Working {
    fn from_state(state: GraphState) -> Self {
        let num_pending_spans = state
            .pending
            .iter()
            .map(|(_, t)| t.callers.len() + t.callees.len())
            .sum();
        Self {
            endpoints: state.endpoints,
            buckets: state
                .buckets
                .into_iter()
                .map(|(bucket, edges)| (bucket, edges.into_iter().collect()))
                .collect(),
            unpaired: state.unpaired,
            pending: state.pending.into_iter().collect(),
            num_pending_spans,
        }
    }

    fn to_state(&self) -> GraphState {
        GraphState {
            endpoints: self.endpoints.clone(),
            buckets: self
                .buckets
                .iter()
                .map(|(bucket, edges)| {
                    let mut edges: Vec<_> = edges.iter().map(|(k, v)| (*k, v.clone())).collect();
                    edges.sort_by_key(|(k, _)| (k.source, k.target));
                    (*bucket, edges)
                })
                .collect(),
            unpaired: self.unpaired.clone(),
            pending: {
                let mut pending: Vec<_> =
                    self.pending.iter().map(|(k, v)| (*k, v.clone())).collect();
                pending.sort_by_key(|(k, _)| *k);
                pending
            },
        }
    }

    fn record(
        &mut self,
        key: EdgeKey,
        start: i64,
        error: bool,
        latency_ms: f64,
        server_ms: Option<f64>,
    ) {
        self.buckets
            .entry(bucket_of(start))
            .or_default()
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
                    peer.get(row).map(str::to_string)
                } else {
                    None
                },
            };

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
                match &caller.peer {
                    Some(peer) => {
                        let target = self.endpoints.intern(Endpoint::virtual_node(peer));
                        let key = EdgeKey {
                            source: caller.endpoint,
                            target,
                        };
                        let ms = caller.duration_nanos as f64 / 1e6;
                        self.record(key, caller.start_unix_nano, caller.error, ms, None);
                    }
                    None => {
                        self.unpaired
                            .entry(bucket_of(caller.start_unix_nano))
                            .or_default()
                            .callers += 1;
                    }
                }
            }
            for callee in trace.callees {
                self.unpaired
                    .entry(bucket_of(callee.start_unix_nano))
                    .or_default()
                    .callees += 1;
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
        let mut redis = span("cart-1", 5, Some(4), 3, 3, 1, false);
        redis.attributes = vec![kv("db.system", "redis")];
        vec![
            request(1, &[span("cart-1", 4, Some(3), 2, 2, 4, true), redis]),
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
