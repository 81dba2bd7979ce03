//! The agent's persisted state (`/run/k8s-agent/state.json`). What a restarted agent does with it is
//! [`AgentState::resume`] (in the module root, next to [`super::next`]: both drive the machine).

use super::{
    DnsQuery, DnsResult, ImageReport, KubeletCredentials, ObjectReport, Phase, UnitFailure,
};
use crate::dns_update::DnsUpdateConfig;
use crate::node_role::{NodeRole, UnitStage};
use crate::role_file::{ClusterName, Cni, DnsName, MasterEndpoint, MasterTrust, RoleConfig};
use crate::weave::{ConsensusSize, KeptDecision, WeaveDecision};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;
use std::path::PathBuf;

/// Where the executor persists the state (relative to the root; `/run` is per boot).
pub const STATE_FILE: &str = "run/k8s-agent/state.json";
/// Version of the state's format; a different version is not resumed.
pub const STATE_SCHEMA_VERSION: u32 = 2;

/// What the plan needs from the role file, without secrets (so it can be persisted).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeSettings {
    pub role: NodeRole,
    pub role_file: PathBuf,
    pub cluster: ClusterName,
    pub dns_domain: DnsName,
    pub master_endpoint: MasterEndpoint,
    pub master_trust: MasterTrust,
    pub minions_name: DnsName,
    pub weave_consensus: Option<ConsensusSize>,
    /// The pod network (`CNI`).
    #[serde(default)]
    pub cni: Cni,
    /// Self-registration over RFC 2136 (`DNS_UPDATE_*`), if configured (the key file's path, never the secret).
    #[serde(default)]
    pub dns_update: Option<DnsUpdateConfig>,
    /// sha256 of the role file as read (`status` reports a file changed or removed since).
    #[serde(default)]
    pub role_file_sha256: String,
    /// `ADVERTISE_ADDRESS` (masters).
    #[serde(default)]
    pub advertise_address: Option<std::net::IpAddr>,
    /// `CONTROL_PLANE_SIZE` and the etcd removal graces (masters).
    #[serde(default)]
    pub control_plane: crate::etcd_cluster::ControlPlane,
}

impl NodeSettings {
    pub fn from_role(config: &RoleConfig) -> NodeSettings {
        NodeSettings {
            role: config.role,
            role_file: config.source.clone(),
            cluster: config.cluster_name.clone(),
            dns_domain: config.dns_domain.clone(),
            master_endpoint: config.master_endpoint.clone(),
            master_trust: config.master_trust(),
            minions_name: config.minions_name.clone(),
            weave_consensus: config.weave_consensus,
            cni: config.cni,
            dns_update: config.dns_update.clone(),
            role_file_sha256: config.content_sha256.clone(),
            advertise_address: config.advertise_address,
            control_plane: config.control_plane,
        }
    }

    /// The name a query is for.
    pub fn name_for(&self, query: DnsQuery) -> &DnsName {
        match query {
            DnsQuery::Masters => &self.master_endpoint.host,
            DnsQuery::Minions => &self.minions_name,
        }
    }

    /// Same node identity: what must not change once units run or Weave decided (the CA and probe may).
    pub fn same_node_as(&self, other: &NodeSettings) -> bool {
        (
            self.role,
            &self.cluster,
            &self.dns_domain,
            self.weave_consensus,
        ) == (
            other.role,
            &other.cluster,
            &other.dns_domain,
            other.weave_consensus,
        )
    }
}

/// The last lookup of one name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DnsLookup {
    pub name: String,
    pub result: DnsResult,
    /// When the answer came (unix ms).
    pub at: u64,
}

impl DnsLookup {
    /// The TTL the answer carried (positive or negative), if any.
    pub fn ttl_secs(&self) -> Option<u32> {
        match &self.result {
            DnsResult::Answers { ttl_secs, .. } => Some(*ttl_secs),
            DnsResult::NxDomain { negative_ttl_secs }
            | DnsResult::NoRecords { negative_ttl_secs } => *negative_ttl_secs,
            _ => None,
        }
    }
}

/// Entering a phase, and what the phase waited on before it was left (the boot timeline).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PhaseTransition {
    pub phase: Phase,
    /// Unix ms.
    pub at: u64,
    /// The reasons the phase waited on, in order; a reason repeated back to back is counted, not repeated. At
    /// most [`PhaseTransition::MAX_WAIT_REASONS`] distinct ones (the last slot takes the latest), so a phase that
    /// waits for hours keeps a bounded state file.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub waited: Vec<WaitReason>,
}

/// One reason a phase waited on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WaitReason {
    pub reason: String,
    /// When it was first given (unix ms), and how many waits in a row gave it.
    pub first_at: u64,
    pub times: u32,
}

impl PhaseTransition {
    /// Distinct wait reasons kept per phase.
    pub const MAX_WAIT_REASONS: usize = 8;

    /// A phase entered at `at`.
    pub fn new(phase: Phase, at: u64) -> PhaseTransition {
        PhaseTransition {
            phase,
            at,
            waited: Vec::new(),
        }
    }

    /// Records one wait for `reason` at `now`.
    pub fn record_wait(&mut self, reason: &str, now: u64) {
        match self.waited.last_mut() {
            Some(last) if last.reason == reason => last.times = last.times.saturating_add(1),
            _ => {
                let entry = WaitReason {
                    reason: reason.to_string(),
                    first_at: now,
                    times: 1,
                };
                if self.waited.len() < Self::MAX_WAIT_REASONS {
                    self.waited.push(entry);
                } else if let Some(last) = self.waited.last_mut() {
                    *last = entry;
                }
            }
        }
    }
}

/// Everything the agent knows about its progress on this boot. Written after every step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentState {
    pub schema_version: u32,
    pub phase: Phase,
    /// When the current phase was entered (unix ms).
    pub since: u64,
    /// From the role file, once read.
    pub node: Option<NodeSettings>,
    /// Failed attempts in the current phase (resets on every phase change; drives the backoff).
    pub attempt: u32,
    /// Failed attempts over the whole run.
    pub attempts_total: u64,
    /// DNS lookups and master probes asked for (for `status` and the query-rate budget).
    pub dns_queries: u64,
    pub probes: u64,
    /// When the pending wait ends (unix ms), if one is pending.
    pub retry_at: Option<u64>,
    /// How long that wait was (ms): a remaining wait longer than it means the wall clock was stepped back.
    #[serde(default)]
    pub wait_ms: Option<u64>,
    /// The last reason the current phase is waiting, in words.
    pub blocking: Option<String>,
    /// The last lookup of the masters / minions name.
    pub masters: Option<DnsLookup>,
    pub minions: Option<DnsLookup>,
    /// Set when the masters answer expired and a probe could not connect: resolve again before the next probe.
    pub reresolve_masters: bool,
    /// The Kubernetes node name (KUBELET_HOSTNAME or the host name), once an edge reported it.
    pub node_name: Option<String>,
    /// Master: the PKI and kubeconfig files the agent wrote on this boot (relative paths; never their contents).
    pub pki_written: Vec<String>,
    /// Master: how each join object fared the last time.
    pub join_objects: Vec<ObjectReport>,
    /// Minion: the API server URL and CA hash token discovery verified.
    pub discovered_server: Option<String>,
    pub discovered_ca_hash: Option<String>,
    /// Minion: what kubelet's TLS bootstrap produced (subject and expiry, never key material).
    pub kubelet_credentials: Option<KubeletCredentials>,
    /// Minion: the baked container images and how their import into containerd went.
    pub images: Vec<ImageReport>,
    /// This node's addresses, as the host check reported them.
    pub local_addrs: Vec<IpAddr>,
    /// The Weave Net decision: made once, never changed on this boot.
    pub weave: Option<WeaveDecision>,
    /// What validation removed from the last minions answer.
    pub minion_answer_notes: Vec<String>,
    /// Units started so far (never started again).
    pub units_started: Vec<String>,
    pub unit_failures: Vec<UnitFailure>,
    /// Minion with `CNI=bridge`: the pod range its CNI configuration was written for.
    #[serde(default)]
    pub pod_cidr: Option<crate::pod_network::Ipv4Cidr>,
    /// The last health checks ([`crate::health`]): on the way to Ready and the rechecks while Ready.
    #[serde(default)]
    pub health: Vec<crate::health::HealthReport>,
    pub failed_checks: Vec<String>,
    /// Role file warnings.
    pub warnings: Vec<String>,
    /// Why the agent is in `Failed`.
    pub failure: Option<String>,
    /// Every phase entered, in order.
    pub transitions: Vec<PhaseTransition>,
    /// How often the agent was restarted on this boot.
    pub restarts: u32,
    /// Counts for the metrics (DNS answers by kind, probes by outcome).
    #[serde(default)]
    pub tallies: Tallies,
    /// What this node added to DNS over RFC 2136 (what `k8s-agent dns-deregister` deletes again).
    #[serde(default)]
    pub dns_registration: Option<DnsRegistration>,
    /// Why the last re-assertion of the records (after a restart) failed, if it did.
    #[serde(default)]
    pub dns_update_problem: Option<String>,
    /// Set while a restarted agent re-asserts its records before it goes on with its phase.
    #[serde(default)]
    pub dns_reassert: bool,
    /// The Weave decision an earlier boot kept in `/var/lib/k8s-agent` (read once, when this boot's agent started).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kept_weave: Option<KeptWeave>,
    /// A master of an HA control plane: its etcd membership as last seen.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etcd: Option<crate::etcd_cluster::EtcdMembership>,
}

/// What the Weave decision file of an earlier boot held ([`crate::weave::WEAVE_DECISION_FILE`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub enum KeptWeave {
    Found(KeptDecision),
    /// The file exists but cannot be used: the minion waits rather than decide afresh (it might have voted).
    Unreadable {
        reason: String,
    },
}

/// The records this node added: its address in these names, at that server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DnsRegistration {
    pub address: IpAddr,
    pub records: Vec<String>,
    /// When (unix ms).
    pub at: u64,
}

/// What the agent saw, counted (for the metrics; never decisions).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tallies {
    /// Record (`masters`, `minions`) → result kind (`answers`, `nxdomain`, …) → count.
    pub dns: BTreeMap<String, BTreeMap<String, u64>>,
    /// Probe outcome (`healthy`, `http-503`, `unreachable`, …) → count.
    pub probes: BTreeMap<String, u64>,
}

/// A persisted state this agent cannot continue from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResumeError {
    SchemaVersion { found: u32, expected: u32 },
}

impl fmt::Display for ResumeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ResumeError::SchemaVersion { found, expected } => write!(
                f,
                "the saved state has format version {found}, this agent writes {expected} — hint: it was written \
                 by another k8s-agent version on this boot; reboot the node (the state lives in /run)"
            ),
        }
    }
}

impl std::error::Error for ResumeError {}

impl AgentState {
    /// A fresh start at `now_millis`, in `Role`. Feed it [`super::Observation::Tick`] to get the first action.
    pub fn new(now_millis: u64) -> AgentState {
        AgentState {
            schema_version: STATE_SCHEMA_VERSION,
            phase: Phase::Role,
            since: now_millis,
            node: None,
            attempt: 0,
            attempts_total: 0,
            dns_queries: 0,
            probes: 0,
            retry_at: None,
            wait_ms: None,
            blocking: None,
            masters: None,
            minions: None,
            reresolve_masters: false,
            node_name: None,
            pki_written: Vec::new(),
            join_objects: Vec::new(),
            discovered_server: None,
            discovered_ca_hash: None,
            kubelet_credentials: None,
            images: Vec::new(),
            local_addrs: Vec::new(),
            weave: None,
            minion_answer_notes: Vec::new(),
            units_started: Vec::new(),
            unit_failures: Vec::new(),
            pod_cidr: None,
            health: Vec::new(),
            failed_checks: Vec::new(),
            warnings: Vec::new(),
            failure: None,
            transitions: vec![PhaseTransition::new(Phase::Role, now_millis)],
            restarts: 0,
            tallies: Tallies::default(),
            dns_registration: None,
            dns_update_problem: None,
            dns_reassert: false,
            kept_weave: None,
            etcd: None,
        }
    }

    /// A first state for a boot on which an earlier boot kept a Weave decision (or a file that cannot be read).
    pub fn with_kept_weave(mut self, kept: Option<KeptWeave>) -> AgentState {
        self.kept_weave = kept;
        self
    }

    /// When `phase` was last entered (unix ms).
    pub fn entered(&self, phase: Phase) -> Option<u64> {
        self.transitions
            .iter()
            .rev()
            .find(|t| t.phase == phase)
            .map(|t| t.at)
    }

    /// The health checks of this node ([`crate::health`]): a minion's Node only once kubelet joined over
    /// TLS; the pod routes with `CNI=bridge` (a minion's once it joined over TLS).
    pub fn health_checks(&self) -> Vec<crate::health::HealthCheck> {
        let Some(n) = self.node.as_ref() else {
            return Vec::new();
        };
        let tls_join = n.master_endpoint.probe == crate::role_file::MasterProbe::Https;
        let node = self.node_name.as_deref().filter(|_| tls_join);
        let mut checks = crate::health::checks_for(n.role, node);
        if n.cni == Cni::Bridge && (n.role == NodeRole::Master || node.is_some()) {
            // Every minion (`minions.<cluster>.<domain>`), not only Weave's peers record (WEAVE_PEERS_RECORD).
            let minions = format!("minions.{}.{}", n.cluster, n.dns_domain);
            checks.push(crate::health::pod_routes_check(n.role, node, &minions));
        }
        checks
    }

    /// The role's units this node runs (what `status` shows and the bundle has journals of): weave.service only
    /// with `CNI=weave`.
    pub fn role_units(&self) -> Vec<String> {
        let Some(n) = self.node.as_ref() else {
            return Vec::new();
        };
        n.role
            .units()
            .iter()
            .filter(|u| **u != "weave.service" || n.cni == Cni::Weave)
            .map(|u| u.to_string())
            .collect()
    }

    /// The role, once the role file was read.
    pub fn role(&self) -> Option<NodeRole> {
        self.node.as_ref().map(|n| n.role)
    }

    /// The cluster, once the role file was read.
    pub fn cluster(&self) -> Option<&ClusterName> {
        self.node.as_ref().map(|n| &n.cluster)
    }

    /// The units of the current start phase not started yet, in start order (see
    /// [`crate::node_role::NodeRole::unit_group`]).
    pub fn units_remaining(&self) -> Vec<String> {
        let stage = match self.phase {
            Phase::StartRuntime => UnitStage::Runtime,
            Phase::StartKubeProxy => UnitStage::AfterBootstrap,
            _ => UnitStage::Node,
        };
        match self.role() {
            Some(role) => role
                .unit_group(stage)
                .iter()
                .filter(|u| !self.units_started.iter().any(|s| s == *u))
                .filter(|u| {
                    // weave.service runs Weave Net: only with CNI=weave.
                    **u != "weave.service" || self.node.as_ref().is_none_or(|n| n.cni == Cni::Weave)
                })
                .map(|u| u.to_string())
                .collect(),
            None => Vec::new(),
        }
    }
}
