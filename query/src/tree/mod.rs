//! Call-tree assembly: the spans of one trace become parent/child trees with self times
//! and a critical path.
//!
//! ```text
//! spans ─► drop exact copies ─► link parents ─► placeholders ─► cut cycles
//!       ─► clock-skew shifts ─► sort siblings ─► breadth-first renumbering
//!       ─► self time ─► critical path
//! ```
//!
//! Real traces are messy, so assembly repairs instead of refusing. A parent that never
//! arrived gets a placeholder node; a Zipkin-style shared span id (a CLIENT and a SERVER
//! span with the same id) becomes a client → server pair; a child whose clock disagrees
//! with its parent's is shifted into it; a loop of parent links is cut. Every repair is
//! reported as a [`TreeWarning`].
//!
//! Every pass walks an explicit order (breadth-first from the roots, or its reverse)
//! instead of recursing, so a chain 100,000 spans deep needs no more stack than a flat
//! trace. Assembly is O(n log n); the logarithm comes from sorting siblings.

mod assemble;
mod call_tree;
mod critical_path;
mod error;
mod json;
mod node;
mod self_time;
mod skew;
mod span_ids;
#[cfg(test)]
mod test_spans;
mod warning;

pub use call_tree::{CallTree, Descendants};
pub use error::TreeError;
pub use json::MAX_JSON_DEPTH;
pub use node::{NodeId, TreeNode};
pub use warning::{TreeWarning, WarningKind};
