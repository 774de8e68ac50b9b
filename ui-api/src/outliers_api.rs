//! Outlier pods and versions: `GET /api/v1/outliers`, and the monitor that keeps
//! recomputing them over the last few minutes.
//!
//! ```text
//! load_pod_stats ─┬─► detect_outliers (pods within their workload) ──► "outliers"
//!                 └─► version_stats ─► detect_outliers (versions)  ──► "versions"
//! every 10 s over the last 5 min ─► OutlierMonitor: latest, history, logged changes
//! ```

use std::collections::{BTreeSet, VecDeque};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use axum::Json;
use axum::extract::{Query, State};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tracegate_query::outliers::{Outlier, detect_outliers};
use tracegate_query::pod_stats::{
    load_pod_stats, pod_outlier_config, version_outlier_config, version_stats,
};
use tracegate_query::{QueryError, TimeRange};
use tracegate_storage::{Store, Tables};

use crate::error::ApiError;
use crate::state::AppState;
use crate::time_range::{native_range, now_unix_nano};

/// How often the monitor recomputes.
pub const MONITOR_INTERVAL: Duration = Duration::from_secs(10);

/// The window the monitor looks back over.
pub const MONITOR_WINDOW: Duration = Duration::from_secs(5 * 60);

/// Snapshots the monitor keeps: ten minutes at [`MONITOR_INTERVAL`].
pub const MONITOR_HISTORY: usize = 60;

/// Outliers over one window.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OutlierSnapshot {
    /// The window's start, Unix nanoseconds.
    pub start_unix_nano: i64,
    /// The window's end, Unix nanoseconds.
    pub end_unix_nano: i64,
    /// Pods analysed.
    pub pods_analyzed: usize,
    /// Pods that stand out from the other pods of their service and workload.
    pub outliers: Vec<Outlier>,
    /// Versions that stand out from the other versions of their service; `workload` is
    /// empty and `pod` repeats the version.
    pub versions: Vec<Outlier>,
}

/// Finds the outlier pods and versions over `range`, of one service when given.
///
/// # Errors
/// Query and storage errors.
pub async fn find_outliers(
    tables: &Tables,
    range: TimeRange,
    service: Option<&str>,
) -> Result<OutlierSnapshot, QueryError> {
    let pods = load_pod_stats(tables, range, service).await?;
    let config = pod_outlier_config();
    let invalid =
        |error: tracegate_query::outliers::OutlierError| QueryError::BadRequest(error.to_string());
    let outliers = detect_outliers(&pods, &config).map_err(invalid)?;
    let versions = detect_outliers(&version_stats(&pods), &version_outlier_config(&config))
        .map_err(invalid)?;
    Ok(OutlierSnapshot {
        start_unix_nano: range.start_unix_nano,
        end_unix_nano: range.end_unix_nano,
        pods_analyzed: pods.len(),
        outliers,
        versions,
    })
}

/// Query parameters of `/api/v1/outliers`.
#[derive(Debug, Deserialize)]
pub(crate) struct OutlierParams {
    start: Option<String>,
    end: Option<String>,
    service: Option<String>,
}

/// `GET /api/v1/outliers?start=&end=&service=`
///
/// # Errors
/// 400 for a bad range; query failures.
pub(crate) async fn outliers(
    State(state): State<AppState>,
    Query(params): Query<OutlierParams>,
) -> Result<Json<Value>, ApiError> {
    let range = native_range(params.start.as_deref(), params.end.as_deref())?;
    let snapshot = find_outliers(&state.store.tables(), range, params.service.as_deref()).await?;
    let versions: Vec<Value> = snapshot
        .versions
        .iter()
        .map(|v| {
            json!({
                "service": v.service,
                "version": v.version,
                "detector": v.detector,
                "value": v.value,
                "threshold": v.threshold,
                "requests": v.requests,
            })
        })
        .collect();
    Ok(Json(json!({
        "outliers": snapshot.outliers,
        "versions": versions,
        "pods_analyzed": snapshot.pods_analyzed,
        "start_unix_nano": snapshot.start_unix_nano,
        "end_unix_nano": snapshot.end_unix_nano,
    })))
}

/// The latest outliers and their recent history, kept by the task that
/// [`spawn_outlier_monitor`] starts. Cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct OutlierMonitor {
    history: Arc<Mutex<VecDeque<OutlierSnapshot>>>,
}

impl OutlierMonitor {
    /// The most recent snapshot, `None` before the first one.
    pub fn latest(&self) -> Option<OutlierSnapshot> {
        self.history.lock().ok()?.back().cloned()
    }

    /// The recent snapshots, oldest first, at most [`MONITOR_HISTORY`].
    pub fn history(&self) -> Vec<OutlierSnapshot> {
        self.history
            .lock()
            .map(|history| history.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// Keeps a snapshot and returns the one before it.
    fn push(&self, snapshot: OutlierSnapshot) -> Option<OutlierSnapshot> {
        let mut history = self.history.lock().ok()?;
        let previous = history.back().cloned();
        history.push_back(snapshot);
        while history.len() > MONITOR_HISTORY {
            history.pop_front();
        }
        previous
    }
}

/// Starts the outlier monitor: every [`MONITOR_INTERVAL`] it finds the outliers of the
/// last [`MONITOR_WINDOW`], keeps them in `state.outlier_monitor` (also returned), and logs each
/// pod or version that becomes an outlier or stops being one.
///
/// The task ends by itself once the server that owns `state` is gone (every clone of
/// `state` dropped). Must be called within a Tokio runtime.
pub fn spawn_outlier_monitor(state: AppState) -> OutlierMonitor {
    let monitor = state.outlier_monitor.clone();
    let alive = Arc::downgrade(&state.ready);
    let store = state.store.clone();
    drop(state);
    tokio::spawn(run_monitor(store, alive, monitor.clone()));
    monitor
}

async fn run_monitor(store: Store, alive: Weak<AtomicBool>, monitor: OutlierMonitor) {
    tracing::info!(
        interval_seconds = MONITOR_INTERVAL.as_secs(),
        window_seconds = MONITOR_WINDOW.as_secs(),
        "outlier monitor started"
    );
    let mut ticks = tokio::time::interval(MONITOR_INTERVAL);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        if alive.upgrade().is_none() {
            tracing::info!("outlier monitor stopped: the server is gone");
            return;
        }
        let end = now_unix_nano();
        let range = TimeRange {
            start_unix_nano: end.saturating_sub(MONITOR_WINDOW.as_nanos() as i64),
            end_unix_nano: end,
        };
        match find_outliers(&store.tables(), range, None).await {
            Ok(snapshot) => {
                tracing::debug!(
                    num_pods = snapshot.pods_analyzed,
                    num_outliers = snapshot.outliers.len(),
                    num_versions = snapshot.versions.len(),
                    "outliers recomputed"
                );
                let previous = monitor.push(snapshot.clone());
                log_changes(previous.as_ref(), &snapshot);
            }
            Err(error) => tracing::warn!(%error, "outlier monitor could not compute outliers"),
        }
    }
}

/// Logs the pods and versions that became outliers, or stopped being ones, between two
/// snapshots.
fn log_changes(previous: Option<&OutlierSnapshot>, current: &OutlierSnapshot) {
    let flagged = |snapshot: Option<&OutlierSnapshot>| -> BTreeSet<(String, String, String)> {
        snapshot
            .into_iter()
            .flat_map(|s| s.outliers.iter().chain(&s.versions))
            .map(|o| (o.service.clone(), o.workload.clone(), o.pod.clone()))
            .collect()
    };
    let (before, now) = (flagged(previous), flagged(Some(current)));
    for outlier in current.outliers.iter().chain(&current.versions) {
        let key = (
            outlier.service.clone(),
            outlier.workload.clone(),
            outlier.pod.clone(),
        );
        if !before.contains(&key) {
            tracing::info!(
                service = %outlier.service,
                workload = %outlier.workload,
                pod = %outlier.pod,
                version = %outlier.version,
                detector = ?outlier.detector,
                value = outlier.value,
                threshold = outlier.threshold,
                requests = outlier.requests,
                "outlier detected"
            );
        }
    }
    for (service, workload, pod) in before.difference(&now) {
        tracing::info!(%service, %workload, %pod, "outlier recovered");
    }
}

/// `GET /api/v1/outliers/live`: the monitor's latest detection and its recent history.
pub(crate) async fn live_outliers(
    axum::extract::State(state): axum::extract::State<AppState>,
) -> axum::Json<serde_json::Value> {
    axum::Json(serde_json::json!({
        "latest": state.outlier_monitor.latest(),
        "history": state.outlier_monitor.history(),
    }))
}
