//! The graph as answered: edges merged under a grouping, with rates and percentiles.

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;

use crate::graph::edge_stats::{EdgeStats, quantile};
use crate::graph::endpoint::{Endpoint, GroupBy};
use crate::graph::live::{GraphSnapshot, Unpaired};

/// A node of the answer.
#[derive(Debug, Clone, Serialize)]
pub struct GraphNode {
    /// The node id under the grouping.
    pub id: String,
    /// Its service (or virtual peer name).
    pub service: String,
    /// Its workload, when grouping by workload, version or pod.
    pub workload: Option<String>,
    /// Its version, when grouping by version or pod.
    pub version: Option<String>,
    /// Its pod, when grouping by pod.
    pub pod: Option<String>,
    /// True for uninstrumented peers and the `user` node.
    #[serde(rename = "virtual")]
    pub is_virtual: bool,
}

/// An edge of the answer.
#[derive(Debug, Clone, Serialize)]
pub struct GraphEdge {
    /// Caller node id.
    pub source: String,
    /// Callee node id.
    pub target: String,
    /// Calls.
    pub calls: u64,
    /// Calls in error.
    pub errors: u64,
    /// errors / calls.
    pub error_rate: f64,
    /// Median client latency.
    pub p50_ms: Option<f64>,
    /// 90th percentile client latency.
    pub p90_ms: Option<f64>,
    /// 99th percentile client latency.
    pub p99_ms: Option<f64>,
    /// Median server latency, when the callee is instrumented.
    pub server_p50_ms: Option<f64>,
    /// 90th percentile server latency.
    pub server_p90_ms: Option<f64>,
    /// 99th percentile server latency.
    pub server_p99_ms: Option<f64>,
}

/// The service graph over a time range.
#[derive(Debug, Clone, Serialize)]
pub struct Graph {
    /// The grouping.
    pub by: GroupBy,
    /// Nodes, sorted by id.
    pub nodes: Vec<GraphNode>,
    /// Edges, sorted by source then target.
    pub edges: Vec<GraphEdge>,
    /// Spans that could not be paired into edges.
    pub unpaired: Unpaired,
    /// Calls counted from callers still waiting for their callee (shown as virtual
    /// edges until paired).
    pub tentative_calls: u64,
    /// Seconds per bucket of the coarsest statistics merged: the range was widened to
    /// whole buckets of this width (10 within the newest hour of data, 300 within the
    /// newest day, 3600 within the newest week, 86400 before).
    pub resolution_seconds: i64,
}

fn node(by: GroupBy, endpoint: &Endpoint) -> GraphNode {
    let keep = |level: u8, value: &Option<String>| {
        let depth = match by {
            GroupBy::Service => 0,
            GroupBy::Workload => 1,
            GroupBy::Version => 2,
            GroupBy::Pod => 3,
        };
        if endpoint.is_virtual || depth < level {
            None
        } else {
            value.clone()
        }
    };
    GraphNode {
        id: by.node_id(endpoint),
        service: endpoint.service.clone(),
        workload: keep(1, &endpoint.workload),
        version: keep(2, &endpoint.version),
        pod: keep(3, &endpoint.pod),
        is_virtual: endpoint.is_virtual,
    }
}

/// Groups a snapshot's edges by `by`.
pub fn group_graph(snapshot: GraphSnapshot, by: GroupBy) -> Graph {
    let mut nodes: BTreeMap<String, GraphNode> = BTreeMap::new();
    let mut merged: HashMap<(String, String), EdgeStats> = HashMap::new();
    for (source, target, stats) in snapshot.edges {
        let source = node(by, &source);
        let target = node(by, &target);
        merged
            .entry((source.id.clone(), target.id.clone()))
            .or_default()
            .merge(&stats);
        nodes.entry(source.id.clone()).or_insert(source);
        nodes.entry(target.id.clone()).or_insert(target);
    }
    let mut edges: Vec<GraphEdge> = merged
        .into_iter()
        .map(|((source, target), stats)| GraphEdge {
            source,
            target,
            calls: stats.calls,
            errors: stats.errors,
            error_rate: stats.error_rate(),
            p50_ms: quantile(&stats.latency_ms, 0.5),
            p90_ms: quantile(&stats.latency_ms, 0.9),
            p99_ms: quantile(&stats.latency_ms, 0.99),
            server_p50_ms: quantile(&stats.server_latency_ms, 0.5),
            server_p90_ms: quantile(&stats.server_latency_ms, 0.9),
            server_p99_ms: quantile(&stats.server_latency_ms, 0.99),
        })
        .collect();
    edges.sort_by(|a, b| (&a.source, &a.target).cmp(&(&b.source, &b.target)));
    Graph {
        by,
        nodes: nodes.into_values().collect(),
        edges,
        unpaired: snapshot.unpaired,
        tentative_calls: snapshot.tentative_calls,
        resolution_seconds: snapshot.resolution_nanos / 1_000_000_000,
    }
}
