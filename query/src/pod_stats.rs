//! What each pod served over a window, in the shape the outlier detectors of
//! [`crate::outliers`] take.
//!
//! ```text
//! SERVER / CONSUMER spans ─► per (service, workload, pod): calls in start order
//!                         ─► PodStats { requests, errors, longest error run, latencies }
//!                         └► per (service, version): the same, pooled (version_stats)
//! ```
//!
//! A pod's requests are the SERVER and CONSUMER spans of its resource: the calls it served,
//! not the calls it made. A span without `k8s.pod.name` belongs to no pod and is skipped.
//! Pods are compared within their service and workload, so a missing workload groups the
//! pod with the other workload-less pods of its service.

use std::collections::{BTreeMap, HashMap};

use arrow::array::AsArray;
use arrow::datatypes::{Int8Type, Int64Type};
use datafusion::prelude::{col, lit};
use tracegate_storage::{DictStr, Tables, col as column};

use crate::error::QueryError;
use crate::outliers::{OutlierConfig, PodStats};
use crate::span_view::SpanView;
use crate::table::{TimeRange, span_session, spans_frame};
use crate::tree::CallTree;
use crate::views::STATUS_ERROR;

/// Pods a workload needs before the success-rate and failure-percentage detectors compare
/// them, in [`pod_outlier_config`].
pub const MIN_PEER_PODS: usize = 3;

/// The outlier detectors' config that tracegate's API applies to pods.
///
/// It is [`OutlierConfig::default`] with [`MIN_PEER_PODS`] instead of Envoy's five hosts
/// for the success-rate and failure-percentage detectors. Envoy needs five because its rule
/// draws the spread from the crowd, the suspect included; tracegate compares a pod with its
/// peers only and, before flagging it, asks the error-rate e-value test for strong evidence
/// against the peers' pooled rate, so two peers are enough to contrast and the false-flag
/// budget does not depend on the crowd. Workloads of three pods are common, and Envoy's
/// minimum would leave them to the consecutive-errors detector alone.
pub fn pod_outlier_config() -> OutlierConfig {
    OutlierConfig {
        success_rate_minimum_hosts: MIN_PEER_PODS,
        failure_percentage_minimum_hosts: MIN_PEER_PODS,
        ..OutlierConfig::default()
    }
}

/// The detectors' config for [`version_stats`]: versions of a service are few, so two
/// are enough for every detector. The evidence requirement of the success-rate detector
/// and the rank test of the latency detector keep a version from being flagged on noise.
pub fn version_outlier_config(pods: &OutlierConfig) -> OutlierConfig {
    OutlierConfig {
        success_rate_minimum_hosts: 2,
        failure_percentage_minimum_hosts: 2,
        latency_minimum_hosts: 2,
        ..pods.clone()
    }
}

/// One served call.
#[derive(Debug, Clone, Copy)]
struct Call {
    start_unix_nano: i64,
    latency_ms: f64,
    error: bool,
}

/// The calls of one pod, before they are summed up.
#[derive(Debug)]
struct PodCalls {
    service: String,
    workload: String,
    version: String,
    pod: String,
    calls: Vec<Call>,
}

/// Collects served calls per pod, in any order, and sums them up into [`PodStats`].
#[derive(Debug, Default)]
pub struct PodStatsBuilder {
    index: HashMap<(String, String, String), usize>,
    pods: Vec<PodCalls>,
}

impl PodStatsBuilder {
    /// An empty builder.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds one span when it is a SERVER or CONSUMER span of a known pod.
    pub fn add_span(&mut self, span: &SpanView) {
        let Some(pod) = span.placement.pod.as_deref() else {
            return;
        };
        if !span.kind.is_callee() {
            return;
        }
        let index = self.pod_index(
            &span.placement.service,
            span.placement.workload.as_deref(),
            span.placement.version.as_deref(),
            pod,
        );
        self.pods[index].calls.push(Call {
            start_unix_nano: span.start_unix_nano,
            latency_ms: span.duration_ms(),
            error: span.error,
        });
    }

    /// The position of a pod, created on first sight. The version is the first one seen.
    fn pod_index(
        &mut self,
        service: &str,
        workload: Option<&str>,
        version: Option<&str>,
        pod: &str,
    ) -> usize {
        let workload = workload.unwrap_or_default();
        let key = (service.to_owned(), workload.to_owned(), pod.to_owned());
        if let Some(&index) = self.index.get(&key) {
            return index;
        }
        self.pods.push(PodCalls {
            service: key.0.clone(),
            workload: key.1.clone(),
            version: version.unwrap_or_default().to_owned(),
            pod: key.2.clone(),
            calls: Vec::new(),
        });
        self.index.insert(key, self.pods.len() - 1);
        self.pods.len() - 1
    }

    /// The stats of every pod, sorted by service, workload and pod.
    pub fn finish(self) -> Vec<PodStats> {
        let mut stats: Vec<PodStats> = self.pods.into_iter().map(summarize).collect();
        stats.sort_by(|a, b| {
            (&a.service, &a.workload, &a.pod).cmp(&(&b.service, &b.workload, &b.pod))
        });
        stats
    }
}

/// Sums up one pod's calls; the error run is counted in start-time order.
fn summarize(mut pod: PodCalls) -> PodStats {
    pod.calls.sort_by(|a, b| {
        a.start_unix_nano
            .cmp(&b.start_unix_nano)
            .then(a.latency_ms.total_cmp(&b.latency_ms))
    });
    let (mut errors, mut run, mut longest_run) = (0u64, 0u64, 0u64);
    for call in &pod.calls {
        if call.error {
            errors += 1;
            run += 1;
            longest_run = longest_run.max(run);
        } else {
            run = 0;
        }
    }
    PodStats {
        requests: pod.calls.len() as u64,
        errors,
        consecutive_errors_max: longest_run,
        latencies_ms: pod.calls.iter().map(|call| call.latency_ms).collect(),
        service: pod.service,
        workload: pod.workload,
        version: pod.version,
        pod: pod.pod,
    }
}

/// The stats of every pod that served one of `spans`.
pub fn pod_stats<'a>(spans: impl IntoIterator<Item = &'a SpanView>) -> Vec<PodStats> {
    let mut builder = PodStatsBuilder::new();
    for span in spans {
        builder.add_span(span);
    }
    builder.finish()
}

/// The stats of every pod that served a span of one of `trees`.
pub fn pod_stats_of_trees(trees: &[CallTree]) -> Vec<PodStats> {
    pod_stats(
        trees
            .iter()
            .flat_map(|tree| tree.nodes().filter_map(|(_, node)| node.span())),
    )
}

/// The stats of every pod over the SERVER and CONSUMER spans that start in `range`, of
/// one service when `service` is given.
///
/// Reads only the columns it needs and keeps one small record per call, so a window of a
/// few minutes of a busy mesh costs a few megabytes, not whole traces.
///
/// # Errors
/// When the query engine fails or a batch does not follow the span schema.
pub async fn load_pod_stats(
    tables: &Tables,
    range: TimeRange,
    service: Option<&str>,
) -> Result<Vec<PodStats>, QueryError> {
    let ctx = span_session();
    let callee_kinds = vec![lit(2i8), lit(5i8)];
    let mut predicate = col(column::START)
        .gt_eq(lit(range.start_unix_nano))
        .and(col(column::START).lt_eq(lit(range.end_unix_nano)))
        .and(col(column::KIND).in_list(callee_kinds, false));
    if let Some(service) = service {
        predicate = predicate.and(col(column::SERVICE).eq(lit(service)));
    }
    let batches = spans_frame(&ctx, tables, range)
        .await?
        .filter(predicate)?
        .select_columns(&[
            column::START,
            column::END,
            column::STATUS_CODE,
            column::SERVICE,
            column::WORKLOAD,
            column::VERSION,
            column::POD,
        ])?
        .collect()
        .await?;

    let mut builder = PodStatsBuilder::new();
    for batch in &batches {
        let int64 = |name: &str| {
            batch
                .column_by_name(name)
                .and_then(|c| c.as_primitive_opt::<Int64Type>())
                .ok_or_else(|| QueryError::BadRequest(format!("scan lacks {name}")))
        };
        let (starts, ends) = (int64(column::START)?, int64(column::END)?);
        let status = batch
            .column_by_name(column::STATUS_CODE)
            .and_then(|c| c.as_primitive_opt::<Int8Type>())
            .ok_or_else(|| QueryError::BadRequest("scan lacks status codes".to_owned()))?;
        let services = DictStr::of(batch, column::SERVICE)?;
        let workloads = DictStr::of(batch, column::WORKLOAD)?;
        let versions = DictStr::of(batch, column::VERSION)?;
        let pods = DictStr::of(batch, column::POD)?;

        // Dictionary keys are stable within a batch, so a pod is looked up by name once.
        let mut pod_of_keys: HashMap<[Option<i32>; 4], usize> = HashMap::new();
        for row in 0..batch.num_rows() {
            let Some(pod) = pods.get(row) else {
                continue;
            };
            let keys = [
                services.key(row),
                workloads.key(row),
                versions.key(row),
                pods.key(row),
            ];
            let index = *pod_of_keys.entry(keys).or_insert_with(|| {
                builder.pod_index(
                    services
                        .get(row)
                        .unwrap_or(tracegate_storage::UNKNOWN_SERVICE),
                    workloads.get(row),
                    versions.get(row),
                    pod,
                )
            });
            let duration_nanos = (ends.value(row) - starts.value(row)).max(0);
            builder.pods[index].calls.push(Call {
                start_unix_nano: starts.value(row),
                latency_ms: duration_nanos as f64 / 1e6,
                error: status.value(row) == STATUS_ERROR,
            });
        }
    }
    Ok(builder.finish())
}

/// Pools the pods of each version of a service into one [`PodStats`] per version, for
/// finding versions that stand out from the service's other versions.
///
/// In the result, `workload` is empty (versions are compared across the whole service),
/// `pod` and `version` hold the version, and `consecutive_errors_max` is 0: a run of errors
/// spread over several pods says nothing about any one of them. Services with fewer than two
/// versions, and pods without a version, are left out.
pub fn version_stats(pods: &[PodStats]) -> Vec<PodStats> {
    let mut versions: BTreeMap<(&str, &str), PodStats> = BTreeMap::new();
    for pod in pods.iter().filter(|pod| !pod.version.is_empty()) {
        let pooled = versions
            .entry((&pod.service, &pod.version))
            .or_insert_with(|| PodStats {
                service: pod.service.clone(),
                workload: String::new(),
                pod: pod.version.clone(),
                version: pod.version.clone(),
                ..PodStats::default()
            });
        pooled.requests += pod.requests;
        pooled.errors += pod.errors;
        pooled.latencies_ms.extend_from_slice(&pod.latencies_ms);
    }
    let mut versions_per_service: HashMap<&str, usize> = HashMap::new();
    for (service, _) in versions.keys() {
        *versions_per_service.entry(service).or_default() += 1;
    }
    versions
        .into_iter()
        .filter(|((service, _), _)| versions_per_service[service] >= 2)
        .map(|(_, stats)| stats)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outliers::{Detector, detect_outliers};
    use crate::span_view::{Placement, SpanKind};

    fn span(pod: &str, version: &str, kind: SpanKind, start: i64, error: bool) -> SpanView {
        let workload = pod.rsplit_once('-').map_or(pod, |(workload, _)| workload);
        SpanView {
            trace_id: [1; 16],
            span_id: [2; 8],
            parent_span_id: None,
            name: "GET /".into(),
            kind,
            start_unix_nano: start,
            end_unix_nano: start + 4_000_000,
            error,
            placement: Placement {
                service: "cart".into(),
                namespace: Some("shop".into()),
                workload: Some(workload.into()),
                version: Some(version.into()),
                pod: Some(pod.into()),
            },
            peer: None,
        }
    }

    #[test]
    fn error_runs_are_counted_in_start_order() {
        // Errors at starts 1, 2, 4 and 5 with an OK call at 3: runs of two, whatever the
        // order the spans come in.
        let spans = [5, 1, 3, 2, 4]
            .map(|start| span("cart-a-0", "v1", SpanKind::Server, start, start != 3));
        let stats = pod_stats(&spans);
        assert_eq!(stats.len(), 1);
        assert_eq!(
            (
                stats[0].requests,
                stats[0].errors,
                stats[0].consecutive_errors_max
            ),
            (5, 4, 2)
        );
        assert_eq!(stats[0].latencies_ms, vec![4.0; 5]);
        assert_eq!(
            (stats[0].workload.as_str(), stats[0].version.as_str()),
            ("cart-a", "v1")
        );
    }

    #[test]
    fn only_served_calls_of_known_pods_count() {
        let mut unknown_pod = span("cart-a-1", "v1", SpanKind::Server, 1, true);
        unknown_pod.placement.pod = None;
        let spans = [
            span("cart-a-0", "v1", SpanKind::Server, 1, false),
            span("cart-a-0", "v1", SpanKind::Consumer, 2, false),
            span("cart-a-0", "v1", SpanKind::Client, 3, true),
            span("cart-a-0", "v1", SpanKind::Internal, 4, true),
            unknown_pod,
        ];
        let stats = pod_stats(&spans);
        assert_eq!(stats.len(), 1);
        assert_eq!((stats[0].requests, stats[0].errors), (2, 0));
    }

    #[test]
    fn a_failing_pod_among_three_is_flagged_with_the_api_config() {
        let mut spans = Vec::new();
        for index in 0..300i64 {
            for pod in ["cart-a-0", "cart-a-1", "cart-a-2"] {
                let error = pod == "cart-a-1" && index % 3 == 0;
                spans.push(span(pod, "v1", SpanKind::Server, index, error));
            }
        }
        let stats = pod_stats(&spans);
        let outliers = detect_outliers(&stats, &pod_outlier_config()).unwrap();
        let flagged: Vec<(&str, Detector)> = outliers
            .iter()
            .map(|o| (o.pod.as_str(), o.detector))
            .collect();
        assert_eq!(flagged, vec![("cart-a-1", Detector::SuccessRate)]);
        // Envoy's five-host minimum would not compare three pods at all.
        assert_eq!(
            detect_outliers(&stats, &OutlierConfig::default()).unwrap(),
            vec![]
        );
    }

    #[test]
    fn versions_pool_their_pods_and_need_a_second_version() {
        let mut spans = Vec::new();
        for index in 0..400i64 {
            spans.push(span("reviews-v1-0", "v1", SpanKind::Server, index, false));
            spans.push(span(
                "reviews-v1-1",
                "v1",
                SpanKind::Server,
                index,
                index % 200 == 0,
            ));
            spans.push(span(
                "reviews-v2-0",
                "v2",
                SpanKind::Server,
                index,
                index % 5 == 0,
            ));
        }
        let pods = pod_stats(&spans);
        let versions = version_stats(&pods);
        assert_eq!(versions.len(), 2);
        assert_eq!(
            (versions[0].pod.as_str(), versions[0].requests),
            ("v1", 800)
        );
        assert_eq!((versions[1].pod.as_str(), versions[1].errors), ("v2", 80));
        assert!(versions.iter().all(|v| v.consecutive_errors_max == 0));

        let config = version_outlier_config(&pod_outlier_config());
        let outliers = detect_outliers(&versions, &config).unwrap();
        assert_eq!(outliers.len(), 1, "{outliers:?}");
        assert_eq!(
            (outliers[0].pod.as_str(), outliers[0].detector),
            ("v2", Detector::SuccessRate)
        );

        let one_version = version_stats(&pods[..2]);
        assert!(one_version.is_empty());
    }
}
