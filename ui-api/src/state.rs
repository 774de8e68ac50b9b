//! What every handler can reach.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tracegate_collector::Ingestor;
use tracegate_query::graph::LiveGraph;
use tracegate_storage::Store;

use crate::metrics::HttpMetrics;
use crate::outliers_api::OutlierMonitor;

/// Shared state of the HTTP API. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    /// The span store.
    pub store: Store,
    /// The ingest path, for its counters.
    pub ingestor: Ingestor,
    /// True once every listener is up and the WAL is replayed.
    pub ready: Arc<AtomicBool>,
    /// Request latencies of this API.
    pub http_metrics: Arc<HttpMetrics>,
    /// The live service graph.
    pub graph: Arc<LiveGraph>,
    /// The latest outlier detections, refreshed in the background once started with
    /// [`crate::spawn_outlier_monitor`].
    pub outlier_monitor: OutlierMonitor,
}

impl AppState {
    /// State for a store, its ingestor and the graph fed by the store; not ready until
    /// [`AppState::set_ready`].
    pub fn new(store: Store, ingestor: Ingestor, graph: Arc<LiveGraph>) -> Self {
        Self {
            store,
            ingestor,
            graph,
            outlier_monitor: OutlierMonitor::default(),
            ready: Arc::new(AtomicBool::new(false)),
            http_metrics: Arc::new(HttpMetrics::default()),
        }
    }

    /// Marks the server ready.
    pub fn set_ready(&self) {
        self.ready.store(true, Ordering::Release);
    }

    /// True once ready.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }
}
