//! The in-memory tables a query sees: the head segment being appended to, heads being
//! flushed, and the Parquet segments.

use std::sync::Arc;

use arrow::array::RecordBatch;

use crate::segment::Segment;

/// A sealed head waiting for its Parquet file.
#[derive(Debug, Clone)]
pub struct SealedHead {
    /// The last WAL generation it covers; its segment file gets this number.
    pub generation: u64,
    /// Its span batches.
    pub batches: Arc<Vec<RecordBatch>>,
}

/// Everything stored, as one consistent picture: each span is in exactly one place.
#[derive(Debug, Clone, Default)]
pub struct Tables {
    /// Batches of the head segment, in commit order.
    pub head: Vec<RecordBatch>,
    /// Sealed heads whose Parquet file is being written.
    pub sealed: Vec<SealedHead>,
    /// Parquet segments, oldest first.
    pub segments: Vec<Arc<Segment>>,
}

impl Tables {
    /// The batches held in memory (head and sealed heads).
    pub fn memory_batches(&self) -> impl Iterator<Item = &RecordBatch> {
        self.head
            .iter()
            .chain(self.sealed.iter().flat_map(|s| s.batches.iter()))
    }

    /// Number of spans in memory.
    pub fn memory_spans(&self) -> usize {
        self.memory_batches().map(RecordBatch::num_rows).sum()
    }

    /// Number of spans in Parquet segments.
    pub fn segment_spans(&self) -> u64 {
        self.segments.iter().map(|s| s.num_spans()).sum()
    }
}
