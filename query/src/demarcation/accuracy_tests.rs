//! Accuracy on random service meshes: the top suspect must name the injected fault, and a
//! healthy window must show no slowdown.

use rand::SeedableRng;
use rand::rngs::SmallRng;

use crate::demarcation::{SuspectKind, demarcate};
use crate::tree::CallTree;

#[test]
fn top_suspect_matches_the_injected_fault_on_random_meshes() {
    let mut rng = SmallRng::seed_from_u64(0xdead_beef);
    let num_meshes = 200;
    let (mut hits, mut false_alarms, mut num_spans) = (0, 0, 0);
    let mut misses = Vec::new();
    for round in 0..num_meshes {
        let mesh = mesh::Mesh::random(&mut rng);
        let baseline = mesh.traces(&mut rng, None, 120);
        let fault = mesh.random_fault(&mut rng, &baseline);
        let window = mesh.traces(&mut rng, Some(&fault), 200);
        num_spans += window.iter().map(CallTree::num_spans).sum::<usize>();
        let suspects = demarcate(&window, Some(&baseline));
        match suspects.first() {
            Some(first) if fault.matches(first) => hits += 1,
            first => misses.push(format!("round {round}: {fault:?} but got {first:#?}")),
        }

        // Control: the same mesh without the fault must show no slowdown. (Errors
        // still happen: the mesh fails a few calls at random, and those are real.)
        let healthy = mesh.traces(&mut rng, None, 200);
        let suspects = demarcate(&healthy, Some(&baseline));
        if suspects
            .iter()
            .any(|suspect| suspect.kind == SuspectKind::Latency)
        {
            false_alarms += 1;
        }
    }
    let rate = hits as f64 / num_meshes as f64;
    let false_alarm_rate = false_alarms as f64 / num_meshes as f64;
    println!(
        "top-1 rate: {hits}/{num_meshes} = {rate:.3}; healthy windows with a latency \
         suspect: {false_alarms}/{num_meshes}; {:.1} spans per trace",
        num_spans as f64 / (200 * num_meshes) as f64
    );
    for miss in misses.iter().take(5) {
        println!("{miss}");
    }
    assert!(rate >= 0.95, "top-1 rate {rate:.3} below 0.95");
    assert!(
        false_alarm_rate <= 0.05,
        "false alarms in {false_alarm_rate:.3} of healthy windows"
    );
}

/// Random service meshes with one injected fault, for the accuracy test.
mod mesh {
    use std::collections::BTreeMap;

    use rand::rngs::SmallRng;
    use rand::seq::IndexedRandom;
    use rand::{Rng, RngCore};

    use crate::demarcation::test_traces::{EPOCH, MS};
    use crate::demarcation::{Suspect, SuspectKind, SuspectLevel};
    use crate::span_view::{Placement, SpanKind, SpanView};
    use crate::tree::CallTree;

    struct Pod {
        placement: Placement,
        /// Multiplies the pod's self times: pods are never exactly alike.
        speed: f64,
        /// How far the pod's clock is off, in ms.
        clock_ms: f64,
    }

    enum Call {
        Service { service: usize, operation: usize },
        Peer { name: String, ms: f64 },
    }

    struct Operation {
        name: String,
        self_ms: f64,
        parallel: bool,
        calls: Vec<Call>,
    }

    struct Service {
        name: String,
        pods: Vec<Pod>,
        /// Share of the traffic that goes to version v2, when there is one.
        canary_weight: f64,
        operations: Vec<Operation>,
    }

    /// A call graph over 4 to 8 services, each with 2 to 4 pods per version, some
    /// with a v2 canary (as its own workload, or sharing one workload with v1), some
    /// calling uninstrumented databases or caches, some pods with skewed clocks.
    pub(super) struct Mesh {
        services: Vec<Service>,
    }

    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub(super) enum FaultKind {
        ErrorPod,
        ErrorVersion,
        ErrorPeer,
        SlowPod,
        SlowVersion,
        SlowPeer,
    }

    /// The injected truth.
    #[derive(Debug)]
    pub(super) struct Fault {
        kind: FaultKind,
        service: String,
        /// The pod, version or peer, by kind.
        place: String,
        error_rate: f64,
        extra_ms: f64,
    }

    impl Fault {
        /// True when the suspect names exactly the injected fault.
        pub(super) fn matches(&self, suspect: &Suspect) -> bool {
            let kind = match self.kind {
                FaultKind::ErrorPod | FaultKind::ErrorVersion | FaultKind::ErrorPeer => {
                    SuspectKind::Error
                }
                _ => SuspectKind::Latency,
            };
            let (level, place) = match self.kind {
                FaultKind::ErrorPod | FaultKind::SlowPod => (SuspectLevel::Pod, &suspect.pod),
                FaultKind::ErrorVersion | FaultKind::SlowVersion => {
                    (SuspectLevel::Version, &suspect.version)
                }
                FaultKind::ErrorPeer | FaultKind::SlowPeer => {
                    let target = suspect.edge.as_ref().map(|edge| edge.target.clone());
                    return suspect.kind == kind
                        && suspect.level == SuspectLevel::Edge
                        && suspect.service == self.service
                        && target.as_deref() == Some(self.place.as_str());
                }
            };
            suspect.kind == kind
                && suspect.level == level
                && suspect.service == self.service
                && place.as_deref() == Some(self.place.as_str())
        }

        fn on_pod(&self, service: &str, placement: &Placement, kinds: [FaultKind; 2]) -> bool {
            let place = match self.kind {
                FaultKind::ErrorPod | FaultKind::SlowPod => &placement.pod,
                _ => &placement.version,
            };
            kinds.contains(&self.kind)
                && self.service == service
                && place.as_deref() == Some(self.place.as_str())
        }

        fn on_peer(&self, service: &str, peer: &str, kind: FaultKind) -> bool {
            self.kind == kind && self.service == service && self.place == peer
        }
    }

    impl Mesh {
        pub(super) fn random(rng: &mut SmallRng) -> Mesh {
            let num_services = rng.random_range(4..=8);
            let mut services: Vec<Service> = (0..num_services)
                .map(|index| random_service(rng, index))
                .collect();

            // Every service is called by an earlier one, so every service is reached.
            for callee in 1..num_services {
                let caller = rng.random_range(0..callee);
                let operation = rng.random_range(0..services[caller].operations.len());
                let callee_operation = rng.random_range(0..services[callee].operations.len());
                let call = Call::Service {
                    service: callee,
                    operation: callee_operation,
                };
                services[caller].operations[operation].calls.push(call);
            }
            for caller in 0..num_services {
                let name = services[caller].name.clone();
                for operation in 0..services[caller].operations.len() {
                    if caller + 1 < num_services && rng.random_bool(0.3) {
                        let callee = rng.random_range(caller + 1..num_services);
                        let callee_operation =
                            rng.random_range(0..services[callee].operations.len());
                        let call = Call::Service {
                            service: callee,
                            operation: callee_operation,
                        };
                        services[caller].operations[operation].calls.push(call);
                    }
                    if rng.random_bool(0.4) {
                        let store = ["db", "cache"].choose(rng).unwrap();
                        let call = Call::Peer {
                            name: format!("{store}-{name}"),
                            ms: rng.random_range(0.5..5.0),
                        };
                        services[caller].operations[operation].calls.push(call);
                    }
                }
            }
            Mesh { services }
        }

        /// `count` traces entering at the frontend, with the fault switched on if any.
        pub(super) fn traces(
            &self,
            rng: &mut SmallRng,
            fault: Option<&Fault>,
            count: usize,
        ) -> Vec<CallTree> {
            (0..count)
                .map(|_| {
                    let mut trace_id = [0; 16];
                    rng.fill_bytes(&mut trace_id);
                    let start = EPOCH + rng.random_range(0..60_000_000_000);
                    let mut trace = TraceGenerator {
                        mesh: self,
                        fault,
                        rng: &mut *rng,
                        trace_id,
                        start,
                        spans: Vec::new(),
                    };
                    trace.serve(0, 0, 0.0, None);
                    CallTree::assemble(trace.spans).unwrap()
                })
                .collect()
        }

        /// A fault on a place that the baseline shows enough traffic for.
        pub(super) fn random_fault(&self, rng: &mut SmallRng, baseline: &[CallTree]) -> Fault {
            let mut pods: BTreeMap<(String, String), usize> = BTreeMap::new();
            let mut versions: BTreeMap<(String, String), usize> = BTreeMap::new();
            let mut peers: BTreeMap<(String, String), usize> = BTreeMap::new();
            for span in baseline
                .iter()
                .flat_map(|tree| tree.nodes())
                .filter_map(|(_, n)| n.span())
            {
                let service = span.placement.service.clone();
                match (&span.peer, span.kind) {
                    (Some(peer), _) => *peers.entry((service, peer.clone())).or_default() += 1,
                    (None, SpanKind::Server) => {
                        let pod = span.placement.pod.clone().unwrap();
                        let version = span.placement.version.clone().unwrap();
                        *pods.entry((service.clone(), pod)).or_default() += 1;
                        *versions.entry((service, version)).or_default() += 1;
                    }
                    _ => {}
                }
            }
            let busy = |counts: &BTreeMap<(String, String), usize>, least: usize| {
                counts
                    .iter()
                    .filter(|&(_, &count)| count >= least)
                    .map(|(key, _)| key.clone())
                    .collect::<Vec<_>>()
            };
            let canaries: Vec<(String, String)> = busy(&versions, 15)
                .into_iter()
                .filter(|(_, version)| version == "v2")
                .collect();
            loop {
                let kind = *[
                    FaultKind::ErrorPod,
                    FaultKind::ErrorVersion,
                    FaultKind::ErrorPeer,
                    FaultKind::SlowPod,
                    FaultKind::SlowVersion,
                    FaultKind::SlowPeer,
                ]
                .choose(rng)
                .unwrap();
                let places = match kind {
                    FaultKind::ErrorPod | FaultKind::SlowPod => busy(&pods, 12),
                    FaultKind::ErrorVersion | FaultKind::SlowVersion => canaries.clone(),
                    FaultKind::ErrorPeer | FaultKind::SlowPeer => busy(&peers, 15),
                };
                let Some((service, place)) = places.choose(rng) else {
                    continue;
                };
                return Fault {
                    kind,
                    service: service.clone(),
                    place: place.clone(),
                    error_rate: rng.random_range(0.1..0.9),
                    extra_ms: rng.random_range(2.0..20.0),
                };
            }
        }
    }

    fn random_service(rng: &mut SmallRng, index: usize) -> Service {
        let name = if index == 0 {
            "frontend".to_owned()
        } else {
            format!("svc{index}")
        };
        let versions: &[&str] = if index > 0 && rng.random_bool(0.4) {
            &["v1", "v2"]
        } else {
            &["v1"]
        };
        let workload_per_version = rng.random_bool(0.7);
        let mut pods = Vec::new();
        for version in versions {
            let workload = if workload_per_version {
                format!("{name}-{version}")
            } else {
                name.clone()
            };
            for replica in 0..rng.random_range(2..=4) {
                let skewed = rng.random_bool(0.25);
                pods.push(Pod {
                    placement: Placement {
                        service: name.clone(),
                        namespace: Some("mesh".into()),
                        workload: Some(workload.clone()),
                        version: Some((*version).to_owned()),
                        pod: Some(format!("{name}-{version}-{replica}")),
                    },
                    speed: rng.random_range(0.85..1.15),
                    clock_ms: if skewed {
                        rng.random_range(-10.0..10.0)
                    } else {
                        0.0
                    },
                });
            }
        }
        let operations = (0..rng.random_range(1..=3))
            .map(|number| Operation {
                name: format!("op{number}"),
                self_ms: rng.random_range(0.5..4.0),
                parallel: rng.random_bool(0.3),
                calls: Vec::new(),
            })
            .collect();
        Service {
            name,
            pods,
            canary_weight: rng.random_range(0.3..0.5),
            operations,
        }
    }

    /// Builds one trace by walking the call graph from the frontend.
    struct TraceGenerator<'m, 'r> {
        mesh: &'m Mesh,
        fault: Option<&'m Fault>,
        rng: &'r mut SmallRng,
        trace_id: [u8; 16],
        start: i64,
        spans: Vec<SpanView>,
    }

    impl<'m> TraceGenerator<'m, '_> {
        /// Serves one request and returns when it ended (ms) and whether it failed.
        fn serve(
            &mut self,
            service: usize,
            operation: usize,
            start: f64,
            parent: Option<[u8; 8]>,
        ) -> (f64, bool) {
            let mesh: &'m Mesh = self.mesh;
            let service = &mesh.services[service];
            let operation = &service.operations[operation];
            let pod = self.pick_pod(service);
            let fault = self.fault;
            let slow = fault.is_some_and(|f| {
                f.on_pod(
                    &service.name,
                    &pod.placement,
                    [FaultKind::SlowPod, FaultKind::SlowVersion],
                )
            });
            let failing = fault.is_some_and(|f| {
                f.on_pod(
                    &service.name,
                    &pod.placement,
                    [FaultKind::ErrorPod, FaultKind::ErrorVersion],
                ) && self.rng.random_bool(f.error_rate)
            });
            let spike = if self.rng.random_bool(0.01) { 5.0 } else { 1.0 };
            let mut self_ms =
                operation.self_ms * pod.speed * self.rng.random_range(0.8..1.2) * spike;
            if slow {
                self_ms += fault.map_or(0.0, |f| f.extra_ms);
            }

            let server_id = self.new_id();
            let calls_from = start + 0.4 * self_ms;
            let mut cursor = calls_from;
            let mut child_failed = false;
            let fail_fast = failing && self.rng.random_bool(0.5);
            for call in operation.calls.iter().filter(|_| !fail_fast) {
                if !self.rng.random_bool(0.9) {
                    continue;
                }
                let call_start = if operation.parallel {
                    calls_from
                } else {
                    cursor
                };
                let (call_end, failed) = match call {
                    Call::Service {
                        service: callee,
                        operation: callee_operation,
                    } => {
                        let client_id = self.new_id();
                        let network = self.rng.random_range(0.05..0.3);
                        let (served, server_failed) = self.serve(
                            *callee,
                            *callee_operation,
                            call_start + network,
                            Some(client_id),
                        );
                        let end = served + network;
                        let failed = server_failed || self.rng.random_bool(0.001);
                        let name = format!("call {}", mesh.services[*callee].name);
                        self.push(
                            client_id,
                            Some(server_id),
                            pod,
                            &name,
                            SpanKind::Client,
                            (call_start, end),
                            failed,
                            None,
                        );
                        (end, failed)
                    }
                    Call::Peer { name, ms } => {
                        let mut duration = ms * self.rng.random_range(0.8..1.2);
                        if fault
                            .is_some_and(|f| f.on_peer(&service.name, name, FaultKind::SlowPeer))
                        {
                            duration += fault.map_or(0.0, |f| f.extra_ms);
                        }
                        let peer_fails = fault.is_some_and(|f| {
                            f.on_peer(&service.name, name, FaultKind::ErrorPeer)
                                && self.rng.random_bool(f.error_rate)
                        });
                        let failed = peer_fails || self.rng.random_bool(0.001);
                        let client_id = self.new_id();
                        let span_name = format!("query {name}");
                        let times = (call_start, call_start + duration);
                        self.push(
                            client_id,
                            Some(server_id),
                            pod,
                            &span_name,
                            SpanKind::Client,
                            times,
                            failed,
                            Some(name),
                        );
                        (call_start + duration, failed)
                    }
                };
                // A few callers have a fallback that handles the failure.
                if failed && !self.rng.random_bool(0.15) {
                    child_failed = true;
                }
                cursor = if operation.parallel {
                    cursor.max(call_end)
                } else {
                    call_end + 0.05
                };
            }

            let end = cursor + 0.6 * self_ms;
            let failed = failing || child_failed || self.rng.random_bool(0.005);
            self.push(
                server_id,
                parent,
                pod,
                &operation.name,
                SpanKind::Server,
                (start, end),
                failed,
                None,
            );
            (end, failed)
        }

        fn pick_pod(&mut self, service: &'m Service) -> &'m Pod {
            let canary = service
                .pods
                .iter()
                .any(|pod| pod.placement.version.as_deref() == Some("v2"))
                && self.rng.random_bool(service.canary_weight);
            let version = if canary { "v2" } else { "v1" };
            let pods: Vec<&Pod> = service
                .pods
                .iter()
                .filter(|pod| pod.placement.version.as_deref() == Some(version))
                .collect();
            pods.choose(self.rng).unwrap()
        }

        fn new_id(&mut self) -> [u8; 8] {
            self.rng.next_u64().to_be_bytes()
        }

        #[expect(clippy::too_many_arguments, reason = "a span has that many fields")]
        fn push(
            &mut self,
            span_id: [u8; 8],
            parent: Option<[u8; 8]>,
            pod: &Pod,
            name: &str,
            kind: SpanKind,
            (start, end): (f64, f64),
            error: bool,
            peer: Option<&str>,
        ) {
            let at = |ms: f64| self.start + ((ms + pod.clock_ms) * MS) as i64;
            self.spans.push(SpanView {
                trace_id: self.trace_id,
                span_id,
                parent_span_id: parent,
                name: name.to_owned(),
                kind,
                start_unix_nano: at(start),
                end_unix_nano: at(end),
                error,
                placement: pod.placement.clone(),
                peer: peer.map(str::to_owned),
            });
        }
    }
}
