//! The store keeps unflushed spans within half of its memory budget: it seals
//! heads early and refuses appends (retryably) beyond the share, and never loses what it
//! acknowledged.

use std::time::Duration;

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use prost::Message;
use tracegate_storage::{StorageError, Store, StoreConfig, columnarize};

/// A request of `spans` spans of trace `trace`, and its protobuf bytes.
fn request(trace: u32, spans: u32) -> (Vec<u8>, arrow::array::RecordBatch) {
    let spans = (0..spans)
        .map(|index| {
            let mut trace_id = [0u8; 16];
            trace_id[..4].copy_from_slice(&(trace + 1).to_be_bytes());
            let mut span_id = [0u8; 8];
            span_id[..4].copy_from_slice(&(index + 1).to_be_bytes());
            Span {
                trace_id: trace_id.to_vec(),
                span_id: span_id.to_vec(),
                name: format!("operation {index}"),
                start_time_unix_nano: 1_000_000 + u64::from(index),
                end_time_unix_nano: 2_000_000 + u64::from(index),
                ..Span::default()
            }
        })
        .collect();
    let request = ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            scope_spans: vec![ScopeSpans {
                spans,
                ..ScopeSpans::default()
            }],
            ..ResourceSpans::default()
        }],
    };
    let batch = columnarize(&request).batch.expect("valid spans");
    (request.encode_to_vec(), batch)
}

#[tokio::test]
async fn unflushed_spans_stay_within_half_of_the_budget() {
    let dir = tempfile::tempdir().unwrap();
    let (_, sample) = request(0, 500);
    let batch_bytes = sample.get_array_memory_size();
    // Room for about eight batches of unflushed spans (with the sorted copies flushes
    // make); heads seal every three.
    let config = StoreConfig {
        max_memory_bytes: batch_bytes * 16,
        max_head_spans: usize::MAX,
        max_head_age: Duration::from_secs(3600),
        ..StoreConfig::new(dir.path())
    };
    assert!(config.span_memory_budget() >= 7 * batch_bytes);
    let (store, _) = Store::open(config.clone(), Vec::new()).unwrap();

    let (mut acknowledged, mut refused) = (0usize, None);
    for trace in 0..200 {
        let (payload, batch) = request(trace, 500);
        match store.append(payload, batch).await {
            Ok(()) => acknowledged += 1,
            Err(StorageError::Overloaded(message)) => {
                refused = Some(message);
                break;
            }
            Err(other) => panic!("unexpected error: {other}"),
        }
        assert!(
            store.memory_bytes() as usize <= config.span_memory_budget() + batch_bytes,
            "{} bytes held after {acknowledged} appends",
            store.memory_bytes()
        );
    }
    // Sealing early lets flushes keep up, or the budget refuses: either way memory held.
    if let Some(message) = refused {
        assert!(message.contains("memory budget"), "{message}");
    }
    store.flush();
    assert!(acknowledged > 0);
    let segments = std::fs::read_dir(dir.path().join("segments"))
        .unwrap()
        .count();
    assert!(
        segments >= 2,
        "heads sealed by size: {segments} segment files"
    );
    assert_eq!(store.memory_bytes(), 0, "everything flushed");
}
