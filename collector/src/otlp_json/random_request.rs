//! Random trace requests for round-trip tests, reaching every field and every `AnyValue` kind.
//!
//! Values lean towards the edges (empty, zero, extremes, odd id lengths, non-finite doubles,
//! strings that need escaping) because that is where a codec loses information.

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value as Variant;
use opentelemetry_proto::tonic::common::v1::{
    AnyValue, ArrayValue, EntityRef, InstrumentationScope, KeyValue, KeyValueList,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::span::{Event, Link};
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status};
use rand::Rng;
use rand::rngs::SmallRng;

/// How many levels of arrays and lists a generated `AnyValue` may nest. Deeper values exceed
/// the JSON parser's nesting limit, which the encoder documents as its one structural loss.
const MAX_VALUE_DEPTH: usize = 6;

/// Strings that exercise escaping and multi-byte UTF-8.
const TRICKY_STRINGS: &[&str] = &[
    "",
    "a",
    "é",
    "日本語",
    "🦀",
    "\"quoted\"",
    "back\\slash",
    "tab\tnew\nline",
    "\u{0}\u{1f}",
];

/// A request with a few resources, scopes and spans, every field drawn at random.
pub(super) fn random_request(rng: &mut SmallRng) -> ExportTraceServiceRequest {
    ExportTraceServiceRequest {
        resource_spans: list(rng, 3, resource_spans),
    }
}

fn resource_spans(rng: &mut SmallRng) -> ResourceSpans {
    ResourceSpans {
        resource: optional(rng, resource),
        scope_spans: list(rng, 3, scope_spans),
        schema_url: text(rng),
    }
}

fn resource(rng: &mut SmallRng) -> Resource {
    Resource {
        attributes: list(rng, 4, attribute),
        dropped_attributes_count: count(rng),
        entity_refs: list(rng, 2, entity_ref),
    }
}

fn entity_ref(rng: &mut SmallRng) -> EntityRef {
    EntityRef {
        schema_url: text(rng),
        r#type: text(rng),
        id_keys: list(rng, 3, text),
        description_keys: list(rng, 3, text),
    }
}

fn scope_spans(rng: &mut SmallRng) -> ScopeSpans {
    ScopeSpans {
        scope: optional(rng, scope),
        spans: list(rng, 4, span),
        schema_url: text(rng),
    }
}

fn scope(rng: &mut SmallRng) -> InstrumentationScope {
    InstrumentationScope {
        name: text(rng),
        version: text(rng),
        attributes: list(rng, 3, attribute),
        dropped_attributes_count: count(rng),
    }
}

fn span(rng: &mut SmallRng) -> Span {
    Span {
        trace_id: id(rng, 16),
        span_id: id(rng, 8),
        trace_state: text(rng),
        parent_span_id: id(rng, 8),
        flags: count(rng),
        name: text(rng),
        kind: enum_number(rng, 5),
        start_time_unix_nano: nanos(rng),
        end_time_unix_nano: nanos(rng),
        attributes: list(rng, 5, attribute),
        dropped_attributes_count: count(rng),
        events: list(rng, 3, event),
        dropped_events_count: count(rng),
        links: list(rng, 2, link),
        dropped_links_count: count(rng),
        status: optional(rng, status),
    }
}

fn event(rng: &mut SmallRng) -> Event {
    Event {
        time_unix_nano: nanos(rng),
        name: text(rng),
        attributes: list(rng, 3, attribute),
        dropped_attributes_count: count(rng),
    }
}

fn link(rng: &mut SmallRng) -> Link {
    Link {
        trace_id: id(rng, 16),
        span_id: id(rng, 8),
        trace_state: text(rng),
        attributes: list(rng, 3, attribute),
        dropped_attributes_count: count(rng),
        flags: count(rng),
    }
}

fn status(rng: &mut SmallRng) -> Status {
    Status {
        message: text(rng),
        code: enum_number(rng, 2),
    }
}

fn attribute(rng: &mut SmallRng) -> KeyValue {
    key_value(rng, 0)
}

fn key_value(rng: &mut SmallRng, depth: usize) -> KeyValue {
    KeyValue {
        key: text(rng),
        value: rng.random_bool(0.9).then(|| any_value(rng, depth)),
        key_strindex: if rng.random_bool(0.8) {
            0
        } else {
            rng.random()
        },
    }
}

fn any_value(rng: &mut SmallRng, depth: usize) -> AnyValue {
    let kinds = if depth < MAX_VALUE_DEPTH { 9 } else { 7 };
    let value = match rng.random_range(0..kinds) {
        0 => None,
        1 => Some(Variant::StringValue(text(rng))),
        2 => Some(Variant::BoolValue(rng.random())),
        3 => Some(Variant::IntValue(pick(
            rng,
            &[0, 1, -1, i64::MIN, i64::MAX],
            SmallRng::random,
        ))),
        4 => Some(Variant::DoubleValue(double(rng))),
        5 => Some(Variant::BytesValue(id(rng, 5))),
        6 => Some(Variant::StringValueStrindex(pick(
            rng,
            &[0, -1, i32::MAX],
            SmallRng::random,
        ))),
        7 => {
            let values = (0..rng.random_range(0..4))
                .map(|_| any_value(rng, depth + 1))
                .collect();
            Some(Variant::ArrayValue(ArrayValue { values }))
        }
        _ => {
            let values = (0..rng.random_range(0..4))
                .map(|_| key_value(rng, depth + 1))
                .collect();
            Some(Variant::KvlistValue(KeyValueList { values }))
        }
    };
    AnyValue { value }
}

/// A double from the edges or from random bits; NaNs are the standard NaN, since JSON has no
/// way to carry a NaN's payload.
fn double(rng: &mut SmallRng) -> f64 {
    let edges = [
        0.0,
        -0.0,
        1.0,
        -1.5,
        f64::MIN_POSITIVE,
        5e-324,
        f64::MAX,
        f64::MIN,
        f64::INFINITY,
    ];
    let number = pick(rng, &edges, |rng| match rng.random_range(0..3) {
        0 => f64::from_bits(rng.random()),
        1 => f64::NEG_INFINITY,
        _ => f64::NAN,
    });
    if number.is_nan() { f64::NAN } else { number }
}

/// Mostly `usual_length` random bytes, sometimes none or an odd number of them.
fn id(rng: &mut SmallRng, usual_length: usize) -> Vec<u8> {
    let length = match rng.random_range(0..6) {
        0 => 0,
        1 => rng.random_range(1..20),
        _ => usual_length,
    };
    (0..length).map(|_| rng.random()).collect()
}

fn text(rng: &mut SmallRng) -> String {
    if rng.random_bool(0.7) {
        return TRICKY_STRINGS[rng.random_range(0..TRICKY_STRINGS.len())].to_owned();
    }
    (0..rng.random_range(0..12))
        .map(|_| rng.random::<char>())
        .collect()
}

fn nanos(rng: &mut SmallRng) -> u64 {
    pick(
        rng,
        &[0, 1, u64::MAX, 1_700_000_000_000_000_000],
        SmallRng::random,
    )
}

fn count(rng: &mut SmallRng) -> u32 {
    pick(rng, &[0, 0, 1, u32::MAX], SmallRng::random)
}

/// An enum number: mostly a defined one, sometimes one the enum does not define.
fn enum_number(rng: &mut SmallRng, largest_defined: i32) -> i32 {
    if rng.random_bool(0.8) {
        rng.random_range(0..=largest_defined)
    } else {
        pick(rng, &[-1, i32::MIN, i32::MAX], SmallRng::random)
    }
}

/// One of `edges` half of the time, else a value from `draw`.
fn pick<T: Copy>(rng: &mut SmallRng, edges: &[T], draw: fn(&mut SmallRng) -> T) -> T {
    if rng.random_bool(0.5) {
        edges[rng.random_range(0..edges.len())]
    } else {
        draw(rng)
    }
}

fn optional<T: Default>(rng: &mut SmallRng, make: fn(&mut SmallRng) -> T) -> Option<T> {
    match rng.random_range(0..4) {
        0 => None,
        1 => Some(T::default()),
        _ => Some(make(rng)),
    }
}

fn list<T>(rng: &mut SmallRng, most: usize, make: fn(&mut SmallRng) -> T) -> Vec<T> {
    (0..rng.random_range(0..=most)).map(|_| make(rng)).collect()
}
