//! A pool of encoded export requests that loadgen replays with fresh ids and timestamps,
//! so that a throughput test measures the collector rather than the simulator.
//!
//! Simulating a trace and encoding it as OTLP protobuf costs loadgen about as much CPU as
//! ingesting it costs the collector; on a shared machine that halves what the collector
//! can show. The pool simulates a fixed number of requests once, remembers where each id
//! and timestamp sits in their bytes, and for every send copies one and rewrites those
//! places:
//!
//! - every trace id is XORed with one random 16-byte mask per send, every span id (own,
//!   parent, linked) with one 8-byte mask, so parent/child links and trace membership hold
//!   while every send carries new traces;
//! - every timestamp (span start and end, event times) moves by the time since the
//!   request was simulated, so spans keep their durations and arrive as recent.
//!
//! Names, attributes, durations and error patterns repeat every `pool` requests.

use bytes::Bytes;
use thiserror::Error;

use crate::sim::{Mesh, to_request};
use prost::Message;

/// Why a simulated request could not be indexed for replay (its bytes are not the OTLP
/// shape this module walks: a bug in the simulator or here, never bad user input).
#[derive(Debug, Error, PartialEq, Eq)]
pub enum ReplayError {
    /// The protobuf bytes end inside a field.
    #[error("simulated request is truncated at byte {0}")]
    Truncated(usize),
    /// A field has a wire type this walker does not know.
    #[error("simulated request has unknown wire type {wire_type} at byte {offset}")]
    WireType {
        /// The wire type found.
        wire_type: u64,
        /// Where its key starts.
        offset: usize,
    },
    /// An id field has a length other than the OTLP one.
    #[error("simulated request has a {len}-byte id at byte {offset}")]
    IdLength {
        /// The length found.
        len: usize,
        /// Where the id starts.
        offset: usize,
    },
}

/// One simulated request and the places to rewrite in it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Template {
    bytes: Vec<u8>,
    trace_ids: Vec<usize>,
    span_ids: Vec<usize>,
    timestamps: Vec<usize>,
    /// The earliest span start in the request, the origin of the time shift.
    first_start_unix_nano: u64,
    traces: u64,
    spans: u64,
}

/// An encoded request ready to send.
#[derive(Debug, Clone)]
pub struct Replayed {
    /// OTLP protobuf bytes of an `ExportTraceServiceRequest`.
    pub body: Bytes,
    /// Traces in it.
    pub traces: u64,
    /// Spans in it.
    pub spans: u64,
}

/// Simulated requests replayed round-robin with fresh ids and timestamps.
#[derive(Debug)]
pub struct ReplayPool {
    templates: Vec<Template>,
    next: usize,
    mask_state: u64,
}

impl ReplayPool {
    /// Simulates `requests` requests of `batch` traces each from `mesh`, starting at
    /// `start_unix_nano`, and indexes them.
    ///
    /// # Errors
    /// [`ReplayError`] when a simulated request cannot be walked (a bug).
    pub fn simulate(
        mesh: &mut Mesh,
        requests: usize,
        batch: usize,
        start_unix_nano: u64,
        seed: u64,
    ) -> Result<Self, ReplayError> {
        let mut templates = Vec::with_capacity(requests);
        for request in 0..requests {
            let start = start_unix_nano + (request * batch) as u64 * 1_000;
            let traces: Vec<_> = (0..batch)
                .map(|i| mesh.trace(start + i as u64 * 1_000))
                .collect();
            let spans = traces.iter().map(|t| t.num_spans() as u64).sum();
            let mut template = index(to_request(&traces).encode_to_vec())?;
            template.traces = batch as u64;
            template.spans = spans;
            templates.push(template);
        }
        Ok(Self {
            templates,
            next: 0,
            mask_state: seed ^ 0x005E_ED0F_7EA1_CE11,
        })
    }

    /// The next request of the pool with new ids, shifted so that its spans start at
    /// about `now_unix_nano`.
    pub fn next(&mut self, now_unix_nano: u64) -> Replayed {
        let trace_mask = [self.splitmix(), self.splitmix()];
        let span_mask = self.splitmix();
        let template = &self.templates[self.next % self.templates.len()];
        self.next += 1;
        let shift = now_unix_nano.wrapping_sub(template.first_start_unix_nano);

        let mut bytes = template.bytes.clone();
        for &offset in &template.trace_ids {
            for (half, mask) in trace_mask.iter().enumerate() {
                xor_u64(&mut bytes[offset + 8 * half..offset + 8 * half + 8], *mask);
            }
        }
        for &offset in &template.span_ids {
            xor_u64(&mut bytes[offset..offset + 8], span_mask);
        }
        for &offset in &template.timestamps {
            let slot = &mut bytes[offset..offset + 8];
            let time = u64::from_le_bytes(slot.try_into().unwrap_or_default());
            slot.copy_from_slice(&time.wrapping_add(shift).to_le_bytes());
        }
        Replayed {
            body: Bytes::from(bytes),
            traces: template.traces,
            spans: template.spans,
        }
    }

    /// Requests in the pool.
    pub fn len(&self) -> usize {
        self.templates.len()
    }

    /// Whether the pool holds no request.
    pub fn is_empty(&self) -> bool {
        self.templates.is_empty()
    }

    /// SplitMix64: a fresh, well-mixed mask per call.
    fn splitmix(&mut self) -> u64 {
        self.mask_state = self.mask_state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.mask_state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

fn xor_u64(slot: &mut [u8], mask: u64) {
    let value = u64::from_le_bytes(slot.try_into().unwrap_or_default());
    slot.copy_from_slice(&(value ^ mask).to_le_bytes());
}

/// A field of a protobuf message: number, wire type and where its value lies.
struct Field {
    number: u64,
    wire_type: u64,
    start: usize,
    end: usize,
}

/// The fields of the message in `bytes[start..end]`, in order.
fn fields(bytes: &[u8], start: usize, end: usize) -> Result<Vec<Field>, ReplayError> {
    let mut found = Vec::new();
    let mut at = start;
    while at < end {
        let key_at = at;
        let key = varint(bytes, &mut at, end)?;
        let (number, wire_type) = (key >> 3, key & 7);
        let value_start = at;
        let value_end = match wire_type {
            0 => {
                varint(bytes, &mut at, end)?;
                at
            }
            1 => at + 8,
            2 => {
                let len = usize::try_from(varint(bytes, &mut at, end)?)
                    .map_err(|_| ReplayError::Truncated(at))?;
                let value_start = at;
                found.push(Field {
                    number,
                    wire_type,
                    start: value_start,
                    end: value_start + len,
                });
                at = value_start + len;
                if at > end {
                    return Err(ReplayError::Truncated(value_start));
                }
                continue;
            }
            5 => at + 4,
            other => {
                return Err(ReplayError::WireType {
                    wire_type: other,
                    offset: key_at,
                });
            }
        };
        if value_end > end {
            return Err(ReplayError::Truncated(value_start));
        }
        found.push(Field {
            number,
            wire_type,
            start: value_start,
            end: value_end,
        });
        at = value_end;
    }
    Ok(found)
}

fn varint(bytes: &[u8], at: &mut usize, end: usize) -> Result<u64, ReplayError> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        if *at >= end {
            return Err(ReplayError::Truncated(*at));
        }
        let byte = bytes[*at];
        *at += 1;
        value |= u64::from(byte & 0x7F) << shift;
        if byte < 0x80 {
            return Ok(value);
        }
    }
    Err(ReplayError::Truncated(*at))
}

/// Finds every id and timestamp of an encoded `ExportTraceServiceRequest`.
fn index(bytes: Vec<u8>) -> Result<Template, ReplayError> {
    let mut template = Template {
        first_start_unix_nano: u64::MAX,
        ..Template::default()
    };
    let nested = |parent: &Field, number: u64| parent.wire_type == 2 && parent.number == number;
    for resource_spans in fields(&bytes, 0, bytes.len())?
        .iter()
        .filter(|f| nested(f, 1))
    {
        for scope_spans in fields(&bytes, resource_spans.start, resource_spans.end)?
            .iter()
            .filter(|f| nested(f, 2))
        {
            for span in fields(&bytes, scope_spans.start, scope_spans.end)?
                .iter()
                .filter(|f| nested(f, 2))
            {
                index_span(&bytes, span, &mut template)?;
            }
        }
    }
    if template.first_start_unix_nano == u64::MAX {
        template.first_start_unix_nano = 0;
    }
    template.bytes = bytes;
    Ok(template)
}

/// Records the id and timestamp places of one `Span` (and its events and links).
fn index_span(bytes: &[u8], span: &Field, template: &mut Template) -> Result<(), ReplayError> {
    let id = |field: &Field, len: usize, places: &mut Vec<usize>| {
        match field.end - field.start {
            0 => {}
            found if found == len => places.push(field.start),
            found => {
                return Err(ReplayError::IdLength {
                    len: found,
                    offset: field.start,
                });
            }
        }
        Ok(())
    };
    for field in fields(bytes, span.start, span.end)? {
        match (field.number, field.wire_type) {
            (1, 2) => id(&field, 16, &mut template.trace_ids)?,
            (2 | 4, 2) => id(&field, 8, &mut template.span_ids)?,
            (7 | 8, 1) => {
                if field.number == 7 {
                    let start = u64::from_le_bytes(
                        bytes[field.start..field.end].try_into().unwrap_or_default(),
                    );
                    template.first_start_unix_nano = template.first_start_unix_nano.min(start);
                }
                template.timestamps.push(field.start);
            }
            (11, 2) => {
                for event_field in fields(bytes, field.start, field.end)? {
                    if (event_field.number, event_field.wire_type) == (1, 1) {
                        template.timestamps.push(event_field.start);
                    }
                }
            }
            (13, 2) => {
                for link_field in fields(bytes, field.start, field.end)? {
                    match (link_field.number, link_field.wire_type) {
                        (1, 2) => id(&link_field, 16, &mut template.trace_ids)?,
                        (2, 2) => id(&link_field, 8, &mut template.span_ids)?,
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;

    use super::*;
    use crate::sim::Scenario;

    fn decode(replayed: &Replayed) -> ExportTraceServiceRequest {
        ExportTraceServiceRequest::decode(replayed.body.clone()).unwrap()
    }

    fn spans(
        request: &ExportTraceServiceRequest,
    ) -> Vec<opentelemetry_proto::tonic::trace::v1::Span> {
        request
            .resource_spans
            .iter()
            .flat_map(|r| r.scope_spans.iter().flat_map(|s| s.spans.iter().cloned()))
            .collect()
    }

    #[test]
    fn replays_keep_structure_with_new_ids_and_times() {
        let mut mesh = Mesh::new(Scenario::Steady, 3);
        let start = 1_800_000_000_000_000_000;
        let mut pool = ReplayPool::simulate(&mut mesh, 2, 5, start, 9).unwrap();
        assert_eq!(pool.len(), 2);

        let first = pool.next(start + 60_000_000_000);
        let third = pool.next(start + 90_000_000_000);
        let again = pool.next(start + 120_000_000_000);
        assert_eq!(first.traces, 5);
        let (first_spans, again_spans) = (spans(&decode(&first)), spans(&decode(&again)));
        assert_eq!(first_spans.len() as u64, first.spans);
        assert_eq!(first_spans.len(), again_spans.len());
        assert_ne!(spans(&decode(&third)).len(), 0);

        let ids: HashSet<Vec<u8>> = first_spans.iter().map(|s| s.span_id.clone()).collect();
        let traces: HashSet<Vec<u8>> = first_spans.iter().map(|s| s.trace_id.clone()).collect();
        assert_eq!(traces.len(), 5);
        for (a, b) in first_spans.iter().zip(&again_spans) {
            // Same span of the same template: new ids, same shape and duration, later.
            assert_ne!(a.trace_id, b.trace_id);
            assert_ne!(a.span_id, b.span_id);
            assert_eq!(a.name, b.name);
            assert_eq!(
                a.end_time_unix_nano - a.start_time_unix_nano,
                b.end_time_unix_nano - b.start_time_unix_nano
            );
            assert_eq!(
                b.start_time_unix_nano - a.start_time_unix_nano,
                60_000_000_000
            );
            // Parents still point at spans of the same request.
            if !a.parent_span_id.is_empty() {
                assert!(ids.contains(&a.parent_span_id), "dangling parent");
            }
        }
        let earliest = first_spans
            .iter()
            .map(|s| s.start_time_unix_nano)
            .min()
            .unwrap();
        assert_eq!(earliest, start + 60_000_000_000);
    }

    #[test]
    fn truncated_bytes_are_refused() {
        let mut mesh = Mesh::new(Scenario::Steady, 3);
        let traces = vec![mesh.trace(1_000)];
        let mut bytes = to_request(&traces).encode_to_vec();
        bytes.truncate(bytes.len() - 3);
        assert!(matches!(index(bytes), Err(ReplayError::Truncated(_))));
    }
}
