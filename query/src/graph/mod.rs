//! The service graph: edges between services from paired caller and callee spans,
//! virtual nodes for uninstrumented peers, exact calls and errors, and latency
//! percentiles from mergeable sketches.
//!
//! ```text
//! Store commit ─► LiveGraph (pairing, buckets: 10 s, 5 min after an hour, 1 h after a day)
//!                      ─► snapshot(range) ─► group_graph(by)
//!                      └─ on seal, written once flushed ─► graph/<generation>.bin
//! ```

mod answer;
mod edge_stats;
mod endpoint;
mod live;
mod snapshot_file;
mod tiers;

pub use answer::{Graph, GraphEdge, GraphNode, group_graph};
pub use edge_stats::{EdgeStats, quantile};
pub use endpoint::{Endpoint, GroupBy, USER_NODE};
pub use live::{GraphSnapshot, LiveGraph, Pending, SWEEP_EVERY, Unpaired};
pub use tiers::FINEST_BUCKET_NANOS;
