//! Fault demarcation: where errors and slowdowns start, judged from the call trees of a
//! time window.
//!
//! ```text
//!          ┌─► error origins ─► per service: narrow to pod, version, workload ──┐
//! trees ───┤                                                                    ├─► ranked
//!          └─► self times ─► against versions, pods, baseline ─► slowed traces ─┘   suspects
//! ```
//!
//! **Errors.** In each trace an *origin* is a span in error with no failing child below
//! it; the spans above it that failed because it did are propagators and are not blamed.
//! An OK CLIENT, PRODUCER, SERVER or CONSUMER span in between handled the failure (a
//! fallback swallowed it): the origin below stays the origin and the OK span is blamed for
//! nothing. A failed CLIENT or PRODUCER call with nothing failing below it blames the edge:
//! either no server span answered (the peer or the network failed), or the server saw no
//! error (the failure happened between the two).
//!
//! Origins are grouped per service and narrowed to the finest place that holds nearly all
//! of them while its neighbours are healthy: a pod when the other pods of its workload
//! served traffic with (almost) no origins, else a version when another version is clean,
//! else a workload, else the service. Score: the share of failing traces explained.
//!
//! **Latency.** The critical path splits each trace's latency into per-span shares (see
//! [`crate::tree`]). Per operation of a service, and per edge from a service to a callee
//! or peer, span self times are compared by medians against, in order: the service's other
//! versions, the other pods of the same workload, the other workloads, the same operation
//! in a baseline window, and, without a baseline, the service's other operations (a weak
//! signal, ranked lower). A slowdown is blamed for a trace when its excess critical-path
//! time is a noticeable share of the trace's latency. Score: the share of slowed traces
//! explained.
//!
//! **Ranking.** Most likely first, by the lower bound of the 95% Wilson interval of the
//! score over the traces behind it, so that one failing trace out of one does not outrank
//! fifty out of fifty-two; ties by trace count.

#[cfg(test)]
mod accuracy_tests;
mod errors;
mod latency;
mod place;
mod ranking;
mod samples;
mod slowdown;
mod suspect;
#[cfg(test)]
mod test_traces;

pub use place::UNKNOWN_PEER;
pub use ranking::demarcate;
pub use suspect::{Suspect, SuspectEdge, SuspectKind, SuspectLevel, suspects_to_json};
