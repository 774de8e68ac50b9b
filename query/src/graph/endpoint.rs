//! The ends of an edge: instrumented workloads at pod granularity, virtual peers, and
//! the `user` node, interned to small ids so that the ingest path copies no strings.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

/// The node that calls root server spans.
pub const USER_NODE: &str = "user";

/// Where one end of an edge runs.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Endpoint {
    /// Service name, or the virtual peer's name.
    pub service: String,
    /// Workload name.
    pub workload: Option<String>,
    /// `service.version`.
    pub version: Option<String>,
    /// Pod name.
    pub pod: Option<String>,
    /// Namespace.
    pub namespace: Option<String>,
    /// True for uninstrumented peers (and the `user` node).
    pub is_virtual: bool,
}

impl Endpoint {
    /// A virtual node named `name`.
    pub fn virtual_node(name: &str) -> Self {
        Self {
            service: name.to_string(),
            workload: None,
            version: None,
            pod: None,
            namespace: None,
            is_virtual: true,
        }
    }
}

/// How edges are grouped in an answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum GroupBy {
    /// One node per service.
    Service,
    /// One node per workload (Deployment, StatefulSet, ...).
    Workload,
    /// One node per service version.
    Version,
    /// One node per pod.
    Pod,
}

impl GroupBy {
    /// Parses `service`, `workload`, `version` or `pod`.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "service" => Some(Self::Service),
            "workload" => Some(Self::Workload),
            "version" => Some(Self::Version),
            "pod" => Some(Self::Pod),
            _ => None,
        }
    }

    /// The node id of `endpoint` under this grouping. Virtual nodes keep their name;
    /// a missing coordinate falls back to the service.
    pub fn node_id(self, endpoint: &Endpoint) -> String {
        if endpoint.is_virtual {
            return endpoint.service.clone();
        }
        match self {
            Self::Service => endpoint.service.clone(),
            Self::Workload => endpoint
                .workload
                .clone()
                .unwrap_or_else(|| endpoint.service.clone()),
            Self::Version => match &endpoint.version {
                Some(version) => format!("{}@{version}", endpoint.service),
                None => endpoint.service.clone(),
            },
            Self::Pod => endpoint
                .pod
                .clone()
                .unwrap_or_else(|| endpoint.service.clone()),
        }
    }
}

/// Small integer id of an interned endpoint.
pub(crate) type EndpointId = u32;

/// Interns endpoints: each distinct one is stored once.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub(crate) struct EndpointTable {
    endpoints: Vec<Endpoint>,
    #[serde(skip)]
    index: HashMap<Endpoint, EndpointId>,
}

impl EndpointTable {
    /// The id of `endpoint`, adding it when new.
    pub(crate) fn intern(&mut self, endpoint: Endpoint) -> EndpointId {
        if self.index.len() != self.endpoints.len() {
            self.rebuild_index();
        }
        if let Some(id) = self.index.get(&endpoint) {
            return *id;
        }
        let id =
            EndpointId::try_from(self.endpoints.len()).expect("fewer than 4 billion endpoints");
        self.endpoints.push(endpoint.clone());
        self.index.insert(endpoint, id);
        id
    }

    /// The endpoint with id `id`.
    pub(crate) fn get(&self, id: EndpointId) -> &Endpoint {
        &self.endpoints[id as usize]
    }

    fn rebuild_index(&mut self) {
        self.index = self
            .endpoints
            .iter()
            .enumerate()
            .map(|(i, e)| (e.clone(), i as EndpointId))
            .collect();
    }
}
