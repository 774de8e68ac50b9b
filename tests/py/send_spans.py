"""Sends a known set of traces to tracegate with the official OpenTelemetry Python SDK.

Used by the end-to-end tests (tests/e2e_ingest.rs). Two traces are sent:

    trace "checkout"                          trace "fulfil"
    POST /checkout        SERVER, OK          orders process  CONSUMER, link -> orders publish
    ├─ GET /inventory     CLIENT, ERROR       └─ store order  INTERNAL
    ├─ compute total      INTERNAL
    └─ orders publish     PRODUCER

The two traces come from two tracers (two instrumentation scopes) of one provider, so of one
resource. After `force_flush()` and `shutdown()` the script prints, as one JSON document on
stdout, exactly what the exporter was handed: every span with its ids, parent, name, kind,
times, typed attributes, events, links, status and flags, plus the resource and scope. It exits
non-zero when any export failed, so that a test never compares against spans that were not
delivered.

Typed values are printed as {"type": "string" | "bool" | "int" | "double", "value": ...} or
{"type": "array", "values": [typed, ...]}.
"""

import argparse
import json
import sys
import time
from urllib.parse import urlparse

from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    SpanExporter,
    SpanExportResult,
)
from opentelemetry.trace import Link, SpanKind, Status, StatusCode, set_span_in_context

LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1"}
MILLIS = 1_000_000


class RecordingExporter(SpanExporter):
    """Hands spans to the real OTLP exporter and remembers what it was given and how it went."""

    def __init__(self, inner):
        self.inner = inner
        self.spans = []
        self.results = []

    def export(self, spans):
        result = self.inner.export(spans)
        self.results.append(result)
        if result is SpanExportResult.SUCCESS:
            self.spans.extend(spans)
        return result

    def shutdown(self):
        self.inner.shutdown()

    def force_flush(self, timeout_millis=30000):
        return self.inner.force_flush(timeout_millis)


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--protocol", choices=["grpc", "http"], required=True)
    parser.add_argument(
        "--endpoint",
        required=True,
        help="grpc: 127.0.0.1:PORT; http: http://127.0.0.1:PORT/v1/traces (loopback only)",
    )
    parser.add_argument("--service", default="py-shop", help="resource service.name")
    return parser.parse_args()


def loopback_only(endpoint):
    """Refuses any endpoint that is not on this machine: the tests talk to loopback only."""
    url = endpoint if "://" in endpoint else "http://" + endpoint
    host = urlparse(url).hostname
    if host not in LOOPBACK_HOSTS:
        sys.exit(f"send_spans.py: refusing non-loopback endpoint {endpoint!r}")


def make_exporter(protocol, endpoint):
    if protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        # No proxy: the collector is on loopback.
        options = (("grpc.enable_http_proxy", 0),)
        return OTLPSpanExporter(
            endpoint=endpoint, insecure=True, timeout=10, channel_options=options
        )
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    return OTLPSpanExporter(endpoint=endpoint, timeout=10)


def typed(value):
    """A Python attribute value with its OTLP type, bool checked before int."""
    if isinstance(value, bool):
        return {"type": "bool", "value": value}
    if isinstance(value, int):
        return {"type": "int", "value": value}
    if isinstance(value, float):
        return {"type": "double", "value": value}
    if isinstance(value, str):
        return {"type": "string", "value": value}
    if isinstance(value, (list, tuple)):
        return {"type": "array", "values": [typed(v) for v in value]}
    raise TypeError(f"unexpected attribute value {value!r}")


def typed_map(attributes):
    return {key: typed(value) for key, value in (attributes or {}).items()}


def span_record(span):
    """What the exporter sent for one span, read from the span and the SDK's own encoder."""
    context = span.get_span_context()
    encoded = encode_spans([span]).resource_spans[0]
    encoded_scope = encoded.scope_spans[0]
    encoded_span = encoded_scope.spans[0]
    status = span.status
    return {
        "trace_id": format(context.trace_id, "032x"),
        "span_id": format(context.span_id, "016x"),
        "parent_span_id": format(span.parent.span_id, "016x") if span.parent else None,
        "name": span.name,
        "kind": span.kind.name,
        "kind_otlp": encoded_span.kind,
        "flags": encoded_span.flags,
        "start_time_unix_nano": span.start_time,
        "end_time_unix_nano": span.end_time,
        "attributes": typed_map(span.attributes),
        "events": [
            {
                "name": event.name,
                "time_unix_nano": event.timestamp,
                "attributes": typed_map(event.attributes),
            }
            for event in span.events
        ],
        "links": [
            {
                "trace_id": format(link.context.trace_id, "032x"),
                "span_id": format(link.context.span_id, "016x"),
                "flags": encoded_link.flags,
                "attributes": typed_map(link.attributes),
            }
            for link, encoded_link in zip(span.links, encoded_span.links)
        ],
        "status": {
            "code": status.status_code.name,
            "code_otlp": status.status_code.value,
            "description": status.description or "",
        },
        "resource": {
            "attributes": typed_map(span.resource.attributes),
            "schema_url": encoded.schema_url,
        },
        "scope": {
            "name": span.instrumentation_scope.name,
            "version": span.instrumentation_scope.version or "",
            "attributes": typed_map(span.instrumentation_scope.attributes),
            "schema_url": encoded_scope.schema_url,
        },
    }


def send_traces(provider, base):
    """Creates the two traces with fixed, known times relative to `base` (Unix nanoseconds)."""
    shop = provider.get_tracer(
        "tracegate.e2e.shop",
        "0.7.1",
        schema_url="https://opentelemetry.io/schemas/1.26.0",
        attributes={"scope.team": "payments"},
    )
    worker = provider.get_tracer("tracegate.e2e.worker", "1.0.0")

    # Trace "checkout": 250 ms at the root.
    root = shop.start_span(
        "POST /checkout",
        kind=SpanKind.SERVER,
        start_time=base,
        attributes={
            "http.request.method": "POST",
            "http.route": "/checkout",
            "http.response.status_code": 200,
            "app.str": "hello",
            "app.bool": True,
            "app.int": 1234567890123,
            "app.float": 3.25,
            "app.strs": ["a", "b", "c"],
            "app.bools": [True, False],
            "app.ints": [1, -2, 3000000000],
            "app.floats": [0.5, -1.25],
        },
    )
    root.add_event(
        "cache.miss",
        attributes={"cache.key": "user:1", "attempt": 2, "hit": False, "cost": 0.25},
        timestamp=base + 5 * MILLIS,
    )
    root_context = set_span_in_context(root)

    client = shop.start_span(
        "GET /inventory",
        context=root_context,
        kind=SpanKind.CLIENT,
        start_time=base + 10 * MILLIS,
        attributes={
            "http.request.method": "GET",
            "peer.service": "inventory",
            "http.response.status_code": 503,
            "retry.count": 3,
        },
    )
    client.add_event(
        "exception",
        attributes={"exception.type": "TimeoutError", "exception.message": "read timed out"},
        timestamp=base + 60 * MILLIS,
    )
    client.set_status(Status(StatusCode.ERROR, "upstream unavailable"))
    client.end(end_time=base + 70 * MILLIS)

    internal = shop.start_span(
        "compute total",
        context=root_context,
        kind=SpanKind.INTERNAL,
        start_time=base + 80 * MILLIS,
        attributes={"order.items": 3, "order.total": 99.5},
    )
    internal.end(end_time=base + 120 * MILLIS)

    producer = shop.start_span(
        "orders publish",
        context=root_context,
        kind=SpanKind.PRODUCER,
        start_time=base + 130 * MILLIS,
        attributes={"messaging.system": "kafka", "messaging.destination.name": "orders"},
    )
    producer.end(end_time=base + 140 * MILLIS)

    root.set_status(Status(StatusCode.OK))
    root.end(end_time=base + 250 * MILLIS)

    # Trace "fulfil": 30 ms at the root, linked to the producer span.
    consumer = worker.start_span(
        "orders process",
        kind=SpanKind.CONSUMER,
        start_time=base + 300 * MILLIS,
        links=[Link(producer.get_span_context(), {"link.reason": "async", "link.batch": 7})],
        attributes={"messaging.system": "kafka", "messaging.destination.name": "orders"},
    )
    store = worker.start_span(
        "store order",
        context=set_span_in_context(consumer),
        kind=SpanKind.INTERNAL,
        start_time=base + 305 * MILLIS,
        attributes={"db.system": "postgresql", "rows.written": 1},
    )
    store.end(end_time=base + 320 * MILLIS)
    consumer.end(end_time=base + 330 * MILLIS)


def main():
    args = parse_args()
    loopback_only(args.endpoint)

    resource = Resource.create(
        {
            "service.name": args.service,
            "service.version": "2.3.4",
            "k8s.namespace.name": "shop",
            "k8s.deployment.name": "checkout",
            "k8s.pod.name": "checkout-6f7d8b9c4-x2x9z",
            "custom.replicas": 3,
            "custom.canary": False,
            "custom.weight": 0.75,
        }
    )
    recorder = RecordingExporter(make_exporter(args.protocol, args.endpoint))
    provider = TracerProvider(resource=resource)
    provider.add_span_processor(BatchSpanProcessor(recorder, schedule_delay_millis=100))

    # Recent enough for Jaeger's default one-hour lookback, in the past so nothing ends
    # in the future.
    base = time.time_ns() - 2_000 * MILLIS
    send_traces(provider, base)

    flushed = provider.force_flush(timeout_millis=30_000)
    provider.shutdown()

    failures = [r for r in recorder.results if r is not SpanExportResult.SUCCESS]
    if not flushed or failures or not recorder.results:
        sys.exit(
            f"send_spans.py: export failed over {args.protocol} to {args.endpoint}: "
            f"flushed={flushed}, results={[r.name for r in recorder.results]}"
        )

    json.dump(
        {
            "protocol": args.protocol,
            "num_exports": len(recorder.results),
            "spans": [span_record(span) for span in recorder.spans],
        },
        sys.stdout,
        indent=1,
    )
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
