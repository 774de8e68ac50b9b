//! A simulated service mesh that produces realistic OTLP spans: the traffic of
//! `tracegate demo`, `tracegate loadgen`, the benchmarks and the end-to-end tests.
//!
//! ```text
//! user ─► frontend ─HTTP─► cart ─────────► redis (cache, not instrumented)
//!            │ ─gRPC─► productcatalog ────► postgres (StatefulSet, not instrumented)
//!            │ ─HTTP─► reviews v1 | v2 ─gRPC─► ratings
//!            └ ─gRPC─► checkout ─HTTP─► payment ─► api.stripe.example (external)
//!                          └─ produce orders ─► fulfillment (consumer)
//! ```
//!
//! Every workload runs several pods; `reviews` runs a `v1` baseline and a `v2` canary.
//! A [`Scenario`] switches faults on.

use std::fmt;

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{
    AnyValue, InstrumentationScope, KeyValue, any_value::Value,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

/// Which faults the simulated mesh has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Scenario {
    /// Healthy traffic with a low background error rate.
    Steady,
    /// One `cart` pod fails a third of its requests.
    ErrorBurst,
    /// The `postgres` database answers five times slower.
    SlowDependency,
    /// The `reviews` v2 canary fails more often and is 50% slower.
    CanaryRegression,
}

impl fmt::Display for Scenario {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            Self::Steady => "steady",
            Self::ErrorBurst => "error-burst",
            Self::SlowDependency => "slow-dependency",
            Self::CanaryRegression => "canary-regression",
        };
        f.write_str(name)
    }
}

/// The namespace every simulated workload runs in.
pub const NAMESPACE: &str = "shop";
/// The pod of `cart` that fails in [`Scenario::ErrorBurst`].
pub const FAILING_POD: &str = "cart-7d9f8b6c5-1";

/// One simulated pod: its resource, shared by all its spans.
#[derive(Debug, Clone)]
struct Pod {
    service: &'static str,
    resource: Resource,
    pod: String,
}

/// A simulated workload with its pods.
struct Workload {
    pods: Vec<Pod>,
}

fn kv(key: &str, value: Value) -> KeyValue {
    KeyValue {
        key: key.to_string(),
        value: Some(AnyValue { value: Some(value) }),
        ..Default::default()
    }
}

fn s(key: &str, value: &str) -> KeyValue {
    kv(key, Value::StringValue(value.to_string()))
}

fn i(key: &str, value: i64) -> KeyValue {
    kv(key, Value::IntValue(value))
}

fn workload(
    service: &'static str,
    name: &str,
    kind: &str,
    version: &'static str,
    num_pods: usize,
    hash: &str,
) -> Workload {
    let pods = (0..num_pods)
        .map(|index| {
            let pod = if kind == "statefulset" {
                format!("{name}-{index}")
            } else {
                format!("{name}-{hash}-{index}")
            };
            let resource = Resource {
                attributes: vec![
                    s("service.name", service),
                    s("service.version", version),
                    s("service.namespace", NAMESPACE),
                    s("k8s.namespace.name", NAMESPACE),
                    s(&format!("k8s.{kind}.name"), name),
                    s("k8s.pod.name", &pod),
                    s("k8s.node.name", &format!("node-{}", index % 3)),
                    s("telemetry.sdk.language", "rust"),
                    s("telemetry.sdk.name", "tracegate-sim"),
                ],
                ..Default::default()
            };
            Pod {
                service,
                resource,
                pod,
            }
        })
        .collect();
    Workload { pods }
}

/// The simulated mesh: topology, fault scenario and a seeded random source.
pub struct Mesh {
    scenario: Scenario,
    rng: SmallRng,
    frontend: Workload,
    catalog: Workload,
    cart: Workload,
    reviews_v1: Workload,
    reviews_v2: Workload,
    ratings: Workload,
    checkout: Workload,
    payment: Workload,
    fulfillment: Workload,
}

/// A span under construction, with the pod it runs in.
struct Emitted {
    pod: Pod,
    span: Span,
}

/// One generated trace: its spans, each with the index of its pod's resource.
pub struct GeneratedTrace {
    spans: Vec<Emitted>,
}

impl GeneratedTrace {
    /// Number of spans.
    pub fn num_spans(&self) -> usize {
        self.spans.len()
    }

    /// The spans with their resources.
    pub fn spans(&self) -> impl Iterator<Item = (&Resource, &Span)> {
        self.spans.iter().map(|e| (&e.pod.resource, &e.span))
    }
}

/// Groups spans of many traces into one OTLP request, one `ResourceSpans` per pod.
pub fn to_request<'a>(
    traces: impl IntoIterator<Item = &'a GeneratedTrace>,
) -> ExportTraceServiceRequest {
    let mut groups: Vec<(String, ResourceSpans)> = Vec::new();
    for trace in traces {
        for emitted in &trace.spans {
            let index = match groups.iter().position(|(pod, _)| *pod == emitted.pod.pod) {
                Some(index) => index,
                None => {
                    groups.push((
                        emitted.pod.pod.clone(),
                        ResourceSpans {
                            resource: Some(emitted.pod.resource.clone()),
                            scope_spans: vec![ScopeSpans {
                                scope: Some(InstrumentationScope {
                                    name: "tracegate-sim".to_string(),
                                    version: env!("CARGO_PKG_VERSION").to_string(),
                                    ..Default::default()
                                }),
                                spans: Vec::new(),
                                schema_url: "https://opentelemetry.io/schemas/1.26.0".to_string(),
                            }],
                            schema_url: String::new(),
                        },
                    ));
                    groups.len() - 1
                }
            };
            groups[index].1.scope_spans[0]
                .spans
                .push(emitted.span.clone());
        }
    }
    ExportTraceServiceRequest {
        resource_spans: groups.into_iter().map(|(_, rs)| rs).collect(),
    }
}

/// A call in progress: the span and the time cursor of its children.
struct Call {
    index: usize,
    start: u64,
}

impl Mesh {
    /// A mesh with the given fault scenario, reproducible from `seed`.
    pub fn new(scenario: Scenario, seed: u64) -> Self {
        Self {
            scenario,
            rng: SmallRng::seed_from_u64(seed),
            frontend: workload(
                "frontend",
                "frontend",
                "deployment",
                "1.4.2",
                3,
                "5c7d9b8f4",
            ),
            catalog: workload(
                "productcatalog",
                "productcatalog",
                "deployment",
                "2.1.0",
                2,
                "6b8c4d7f9",
            ),
            cart: workload("cart", "cart", "deployment", "1.9.3", 3, "7d9f8b6c5"),
            reviews_v1: workload("reviews", "reviews-v1", "deployment", "v1", 3, "84d6c9f7b"),
            reviews_v2: workload("reviews", "reviews-v2", "deployment", "v2", 1, "9f5b7c8d6"),
            ratings: workload("ratings", "ratings", "deployment", "1.0.7", 2, "5f6d8c9b7"),
            checkout: workload(
                "checkout",
                "checkout",
                "deployment",
                "3.0.1",
                2,
                "4c8b7d6f5",
            ),
            payment: workload("payment", "payment", "deployment", "1.2.0", 2, "8d7c6b5f4"),
            fulfillment: workload("fulfillment", "fulfillment", "statefulset", "0.9.4", 2, ""),
        }
    }

    fn id<const N: usize>(&mut self) -> [u8; N] {
        let mut id = [0u8; N];
        self.rng.fill(&mut id[..]);
        id[0] |= 1;
        id
    }

    /// A latency in nanoseconds: log-normal around `median_ms` with a heavy tail.
    fn latency(&mut self, median_ms: f64) -> u64 {
        let normal: f64 = (0..4).map(|_| self.rng.random::<f64>()).sum::<f64>() - 2.0;
        let tail = if self.rng.random::<f64>() < 0.02 {
            3.0
        } else {
            1.0
        };
        (median_ms * (normal * 0.6).exp() * tail * 1e6) as u64
    }

    fn pick(&mut self, workload: fn(&Self) -> &Workload) -> Pod {
        let pods = &workload(self).pods;
        let index = self.rng.random_range(0..pods.len());
        workload(self).pods[index].clone()
    }

    fn chance(&mut self, probability: f64) -> bool {
        self.rng.random::<f64>() < probability
    }

    /// Generates one trace that starts at `start_unix_nano`.
    pub fn trace(&mut self, start_unix_nano: u64) -> GeneratedTrace {
        let mut spans = Vec::with_capacity(16);
        let trace_id: [u8; 16] = self.id();
        let frontend = self.pick(|m| &m.frontend);
        let route = match self.rng.random_range(0..10) {
            0..=4 => "/",
            5..=7 => "/product/{id}",
            _ => "/cart/checkout",
        };
        let root = self.push(
            &mut spans,
            trace_id,
            None,
            &frontend,
            &format!("GET {route}"),
            2,
            start_unix_nano,
        );
        spans[root].span.attributes.extend([
            s(
                "http.request.method",
                if route == "/cart/checkout" {
                    "POST"
                } else {
                    "GET"
                },
            ),
            s("http.route", route),
            s("url.scheme", "http"),
        ]);
        let mut cursor = Call {
            index: root,
            start: start_unix_nano + self.latency(0.3),
        };

        self.call_catalog(&mut spans, trace_id, &frontend, &mut cursor);
        self.call_cart(&mut spans, trace_id, &frontend, &mut cursor);
        if route != "/cart/checkout" {
            self.call_reviews(&mut spans, trace_id, &frontend, &mut cursor);
        } else {
            self.call_checkout(&mut spans, trace_id, &frontend, &mut cursor);
        }

        // The root ends after its last child, and fails when a child it depends on did.
        let end = cursor.start + self.latency(0.4);
        let failed = spans
            .iter()
            .any(|e| e.span.parent_span_id == spans[root].span.span_id && is_error(&e.span));
        let root_span = &mut spans[root].span;
        root_span.end_time_unix_nano = end;
        let code = if failed { 500 } else { 200 };
        root_span
            .attributes
            .push(i("http.response.status_code", code));
        if failed {
            root_span.status = Some(Status {
                code: 2,
                message: "upstream call failed".to_string(),
            });
        }
        GeneratedTrace { spans }
    }

    #[expect(
        clippy::too_many_arguments,
        reason = "a span has this many coordinates"
    )]
    fn push(
        &mut self,
        spans: &mut Vec<Emitted>,
        trace_id: [u8; 16],
        parent: Option<[u8; 8]>,
        pod: &Pod,
        name: &str,
        kind: i32,
        start: u64,
    ) -> usize {
        let span_id: [u8; 8] = self.id();
        spans.push(Emitted {
            pod: pod.clone(),
            span: Span {
                trace_id: trace_id.to_vec(),
                span_id: span_id.to_vec(),
                parent_span_id: parent.map(|p| p.to_vec()).unwrap_or_default(),
                flags: 0x101,
                name: name.to_string(),
                kind,
                start_time_unix_nano: start,
                end_time_unix_nano: start,
                ..Default::default()
            },
        });
        spans.len() - 1
    }

    fn span_id(spans: &[Emitted], index: usize) -> [u8; 8] {
        spans[index]
            .span
            .span_id
            .as_slice()
            .try_into()
            .expect("8-byte span id")
    }

    /// A CLIENT span in `caller` and the SERVER span in `callee` it leads to; the
    /// server's own work (including its downstream calls) runs through `serve`.
    #[expect(
        clippy::too_many_arguments,
        reason = "one call has this many coordinates"
    )]
    fn rpc(
        &mut self,
        spans: &mut Vec<Emitted>,
        trace_id: [u8; 16],
        caller: &Pod,
        parent: &mut Call,
        callee: &Pod,
        name: &str,
        grpc: bool,
        serve: impl FnOnce(&mut Self, &mut Vec<Emitted>, &mut Call) -> Option<&'static str>,
    ) -> bool {
        let parent_id = Self::span_id(spans, parent.index);
        let client_start = parent.start;
        let client = self.push(
            spans,
            trace_id,
            Some(parent_id),
            caller,
            name,
            3,
            client_start,
        );
        let network = self.latency(0.4);
        let server_start = client_start + network / 2;
        let server = self.push(
            spans,
            trace_id,
            Some(Self::span_id(spans, client)),
            callee,
            name,
            2,
            server_start,
        );
        let mut inner = Call {
            index: server,
            start: server_start + self.latency(0.1),
        };
        let error = serve(self, spans, &mut inner);
        let server_end = inner.start + self.latency(0.2);
        let client_end = server_end + network / 2;

        let protocol_attributes = |status_ok: bool| -> Vec<KeyValue> {
            if grpc {
                let (service, method) = name.split_once('/').unwrap_or((name, ""));
                vec![
                    s("rpc.system", "grpc"),
                    s("rpc.service", service),
                    s("rpc.method", method),
                    i("rpc.grpc.status_code", if status_ok { 0 } else { 13 }),
                ]
            } else {
                vec![
                    s("http.request.method", "GET"),
                    s("http.route", name.split_once(' ').map_or(name, |(_, r)| r)),
                    i(
                        "http.response.status_code",
                        if status_ok { 200 } else { 503 },
                    ),
                ]
            }
        };
        let failed = error.is_some();
        for (index, end, extra) in [
            (
                client,
                client_end,
                vec![
                    s("server.address", callee.service),
                    s("peer.service", callee.service),
                ],
            ),
            (server, server_end, Vec::new()),
        ] {
            let span = &mut spans[index].span;
            span.end_time_unix_nano = end;
            span.attributes.extend(protocol_attributes(!failed));
            span.attributes.extend(extra);
            if let Some(message) = error {
                span.status = Some(Status {
                    code: 2,
                    message: message.to_string(),
                });
            }
        }
        if failed {
            spans[server]
                .span
                .events
                .push(opentelemetry_proto::tonic::trace::v1::span::Event {
                    time_unix_nano: server_end,
                    name: "exception".to_string(),
                    attributes: vec![
                        s("exception.type", "UpstreamError"),
                        s("exception.message", error.unwrap_or_default()),
                    ],
                    dropped_attributes_count: 0,
                });
        }
        parent.start = client_end + self.latency(0.05);
        !failed
    }

    /// A CLIENT span to an uninstrumented peer (database, cache, external API).
    #[expect(
        clippy::too_many_arguments,
        reason = "a leaf call has this many coordinates"
    )]
    fn leaf(
        &mut self,
        spans: &mut Vec<Emitted>,
        trace_id: [u8; 16],
        caller: &Pod,
        parent: &mut Call,
        name: &str,
        attributes: Vec<KeyValue>,
        median_ms: f64,
        error_probability: f64,
    ) -> bool {
        let parent_id = Self::span_id(spans, parent.index);
        let start = parent.start;
        let index = self.push(spans, trace_id, Some(parent_id), caller, name, 3, start);
        let end = start + self.latency(median_ms);
        let failed = self.chance(error_probability);
        let span = &mut spans[index].span;
        span.end_time_unix_nano = end;
        span.attributes = attributes;
        if failed {
            span.status = Some(Status {
                code: 2,
                message: "connection reset by peer".to_string(),
            });
        }
        parent.start = end + self.latency(0.05);
        !failed
    }

    fn call_catalog(
        &mut self,
        spans: &mut Vec<Emitted>,
        trace_id: [u8; 16],
        frontend: &Pod,
        cursor: &mut Call,
    ) {
        let pod = self.pick(|m| &m.catalog);
        let slow = if self.scenario == Scenario::SlowDependency {
            5.0
        } else {
            1.0
        };
        let db_pod = pod.clone();
        self.rpc(
            spans,
            trace_id,
            frontend,
            cursor,
            &pod,
            "catalog.ProductCatalog/ListProducts",
            true,
            move |mesh, spans, call| {
                let attributes = vec![
                    s("db.system", "postgresql"),
                    s("db.namespace", "catalog"),
                    s("db.operation.name", "SELECT"),
                    s("server.address", "postgres-0.postgres.shop.svc"),
                    i("server.port", 5432),
                ];
                let ok = mesh.leaf(
                    spans,
                    trace_id,
                    &db_pod,
                    call,
                    "SELECT catalog.products",
                    attributes,
                    4.0 * slow,
                    0.001,
                );
                (!ok).then_some("database query failed")
            },
        );
    }

    fn call_cart(
        &mut self,
        spans: &mut Vec<Emitted>,
        trace_id: [u8; 16],
        frontend: &Pod,
        cursor: &mut Call,
    ) {
        let pod = self.pick(|m| &m.cart);
        let burst = self.scenario == Scenario::ErrorBurst && pod.pod == FAILING_POD;
        let cache_pod = pod.clone();
        let failing = self.chance(if burst { 0.33 } else { 0.002 });
        self.rpc(
            spans,
            trace_id,
            frontend,
            cursor,
            &pod,
            "GET /cart",
            false,
            move |mesh, spans, call| {
                let attributes = vec![
                    s("db.system", "redis"),
                    s("db.operation.name", "GET"),
                    s("server.address", "redis.shop.svc"),
                ];
                mesh.leaf(
                    spans, trace_id, &cache_pod, call, "GET", attributes, 0.6, 0.0,
                );
                failing.then_some("cart store unavailable")
            },
        );
    }

    fn call_reviews(
        &mut self,
        spans: &mut Vec<Emitted>,
        trace_id: [u8; 16],
        frontend: &Pod,
        cursor: &mut Call,
    ) {
        // One request in five reaches the canary.
        let canary = self.chance(0.2);
        let pod = if canary {
            self.pick(|m| &m.reviews_v2)
        } else {
            self.pick(|m| &m.reviews_v1)
        };
        let regressed = canary && self.scenario == Scenario::CanaryRegression;
        let failing = self.chance(if regressed { 0.08 } else { 0.005 });
        let slow = if regressed { 1.5 } else { 1.0 };
        let caller = pod.clone();
        self.rpc(
            spans,
            trace_id,
            frontend,
            cursor,
            &pod,
            "GET /reviews/{product}",
            false,
            move |mesh, spans, call| {
                let ratings = mesh.pick(|m| &m.ratings);
                mesh.rpc(
                    spans,
                    trace_id,
                    &caller,
                    call,
                    &ratings,
                    "ratings.Ratings/Get",
                    true,
                    |mesh, _, call| {
                        call.start += mesh.latency(1.5);
                        None
                    },
                );
                call.start += mesh.latency(3.0 * slow);
                failing.then_some("review rendering failed")
            },
        );
    }

    fn call_checkout(
        &mut self,
        spans: &mut Vec<Emitted>,
        trace_id: [u8; 16],
        frontend: &Pod,
        cursor: &mut Call,
    ) {
        let pod = self.pick(|m| &m.checkout);
        let caller = pod.clone();
        self.rpc(
            spans,
            trace_id,
            frontend,
            cursor,
            &pod,
            "checkout.Checkout/PlaceOrder",
            true,
            move |mesh, spans, call| {
                let payment = mesh.pick(|m| &m.payment);
                let payer = payment.clone();
                let paid = mesh.rpc(
                    spans,
                    trace_id,
                    &caller,
                    call,
                    &payment,
                    "POST /charge",
                    false,
                    move |mesh, spans, call| {
                        let attributes = vec![
                            s("http.request.method", "POST"),
                            s("server.address", "api.stripe.example"),
                            i("server.port", 443),
                        ];
                        let ok = mesh.leaf(
                            spans, trace_id, &payer, call, "POST", attributes, 25.0, 0.003,
                        );
                        (!ok).then_some("payment provider unreachable")
                    },
                );
                if !paid {
                    return Some("payment failed");
                }
                // Publish the order; the fulfillment consumer picks it up.
                let parent_id = Self::span_id(spans, call.index);
                let start = call.start;
                let producer = mesh.push(
                    spans,
                    trace_id,
                    Some(parent_id),
                    &caller,
                    "orders publish",
                    4,
                    start,
                );
                let end = start + mesh.latency(0.8);
                spans[producer].span.end_time_unix_nano = end;
                spans[producer].span.attributes = vec![
                    s("messaging.system", "kafka"),
                    s("messaging.destination.name", "orders"),
                    s("messaging.operation.type", "publish"),
                ];
                let consumer_pod = mesh.pick(|m| &m.fulfillment);
                let consume_start = end + mesh.latency(5.0);
                let producer_id = Self::span_id(spans, producer);
                let consumer = mesh.push(
                    spans,
                    trace_id,
                    Some(producer_id),
                    &consumer_pod,
                    "orders process",
                    5,
                    consume_start,
                );
                spans[consumer].span.end_time_unix_nano = consume_start + mesh.latency(12.0);
                spans[consumer].span.attributes = vec![
                    s("messaging.system", "kafka"),
                    s("messaging.destination.name", "orders"),
                    s("messaging.operation.type", "process"),
                ];
                call.start = end + mesh.latency(0.1);
                None
            },
        );
    }
}

fn is_error(span: &Span) -> bool {
    span.status.as_ref().is_some_and(|s| s.code == 2)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traces_are_well_formed_trees() {
        let mut mesh = Mesh::new(Scenario::Steady, 7);
        for n in 0..200 {
            let trace = mesh.trace(1_700_000_000_000_000_000 + n * 1_000_000);
            let ids: Vec<&[u8]> = trace.spans().map(|(_, s)| s.span_id.as_slice()).collect();
            let roots = trace
                .spans()
                .filter(|(_, s)| s.parent_span_id.is_empty())
                .count();
            assert_eq!(roots, 1);
            for (_, span) in trace.spans() {
                assert!(
                    span.end_time_unix_nano >= span.start_time_unix_nano,
                    "{}",
                    span.name
                );
                if !span.parent_span_id.is_empty() {
                    assert!(ids.contains(&span.parent_span_id.as_slice()));
                }
            }
        }
    }

    #[test]
    fn error_burst_fails_only_in_the_failing_pod() {
        let mut mesh = Mesh::new(Scenario::ErrorBurst, 11);
        let mut failing_pod_errors = 0;
        let mut other_cart_errors = 0;
        for n in 0..3000 {
            let trace = mesh.trace(n * 1_000);
            for (resource, span) in trace.spans() {
                let pod = resource
                    .attributes
                    .iter()
                    .find(|kv| kv.key == "k8s.pod.name")
                    .unwrap();
                let pod = match pod.value.as_ref().and_then(|v| v.value.as_ref()) {
                    Some(Value::StringValue(p)) => p.clone(),
                    _ => unreachable!(),
                };
                if span.kind == 2 && span.name == "GET /cart" && is_error(span) {
                    if pod == FAILING_POD {
                        failing_pod_errors += 1
                    } else {
                        other_cart_errors += 1
                    }
                }
            }
        }
        assert!(failing_pod_errors > 200, "{failing_pod_errors}");
        assert!(other_cart_errors < 30, "{other_cart_errors}");
    }
}
