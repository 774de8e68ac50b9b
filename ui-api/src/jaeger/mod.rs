//! The Jaeger-compatible query API.

pub(crate) mod model;
pub(crate) mod routes;
