//! Span storage for tracegate: schema, write-ahead log, head segment and Parquet
//! segments.
//!
//! ```text
//! OTLP request ──columnarize──► RecordBatch ──Store::append──► WAL (group fsync)
//!                                                    │
//!                                                    ▼
//!                            head (memory) ──seal──► NNN.parquet (sorted by trace id)
//!                                  ▲                        ▲
//!                                  └──── Tables snapshot ───┴──── find_trace, queries
//! ```
//!
//! An append is acknowledged only after its WAL record is synced; opening the store
//! replays the WAL into the head, so a crash loses nothing that was acknowledged.

mod columnarize;
mod columnarize_encoded;
mod columns;
mod error;
mod group_cache;
mod head;
mod lookup;
mod mesh;
mod reconstruct;
mod schema;
mod segment;
mod span_columns;
mod store;
mod trace_order;
mod wal;
mod wire;

pub use columnarize::{Columnarized, columnarize, without_spans};
pub use columnarize_encoded::columnarize_encoded;
pub use columns::{fixed_binary_column, int8_column, int64_column};
pub use error::StorageError;
pub use head::{SealedHead, Tables};
pub use lookup::find_trace;
pub use mesh::{PEER_KEYS, ResourceMesh, UNKNOWN_SERVICE, virtual_peer};
pub use reconstruct::{DictStr, SpanRows, to_resource_spans};
pub use schema::{
    INT_ATTRIBUTE_COLUMNS, STRING_ATTRIBUTE_COLUMNS, col, segment_schema, span_schema,
};
pub use segment::Segment;
pub use store::{CommitObserver, ReplayReport, Store, StoreConfig, StoreStats};
pub use wal::{ReplayedFile, WalFile, list_generations, replay_file};
