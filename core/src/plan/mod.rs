//! The agent's phase machine: a pure function from (state, observation, time, jitter) to (new state, action).
//! No clock, no randomness, no I/O in here: the executor (another module) performs each [`Action`], reports its
//! outcome as the next [`Observation`], persists the [`AgentState`] after every step
//! (`/run/k8s-agent/state.json`, [`STATE_FILE`]) and sleeps on [`Action::Wait`] before reporting
//! [`Observation::Tick`].
//!
//! ```text
//! Role ─► HostCheck ─┬─ master ─► ControlPlanePki ─(►EtcdMember)─► StartControlPlane ─► ApiServerReady ─► JoinObjects ─(►RegisterDns)
//!                    │                                                                 ─► ComponentsHealthy ─► Ready
//!                    └─ minion ─(►RegisterDns)─► ResolveMasters ─► Discovery ─► MasterHealthy ─► WeavePeers ─► StartRuntime
//!                                     ─► ImportImages ─► StartUnits ─► KubeletBootstrap ─(►PodNetwork)─► StartKubeProxy
//!                                     ─► ComponentsHealthy ─► Ready
//!         Ready ─► ComponentsHealthy   (a recheck while Ready failed: a unit restarting, the Node NotReady)
//!         any phase ─► Failed   (Discovery / MasterHealthy ─► ResolveMasters when the masters record disappears;
//!                                MASTER_PROBE=http skips Discovery and KubeletBootstrap: no TLS join)
//! ```
//!
//! | phase | action it issues | what moves it on |
//! |---|---|---|
//! | `Role` | [`Action::ReadRoleFile`] | a parsed role file; none yet → wait (Watch); both files / invalid → `Failed` |
//! | `HostCheck` | [`Action::RunHostChecks`] | checks pass (and report this node's addresses); fail → retry (Error), `Failed` after [`HOST_CHECK_ATTEMPTS`] |
//! | `RegisterDns` | [`Action::RegisterDns`] (only with `DNS_UPDATE_*`) | registered → `ResolveMasters` (minion) / `Ready` (master); key file or refusal → wait (Blocked) and say what to fix; no answer → wait (Error) |
//! | `ControlPlanePki` | [`Action::EnsurePki`] | files checked and the missing ones written → `StartControlPlane`; a supplied file is wrong → wait (Blocked) and say which and what to fix |
//! | `EtcdMember` (only with `CONTROL_PLANE_SIZE` > 1) | [`Action::EnsureEtcdMember`]: one step of [`crate::etcd_cluster::decide`] (bootstrap, add as learner and start, promote) | a voter in quorum → `StartControlPlane`; a step taken → look again in 1 s; nothing to do yet → wait (Watch); two clusters / a record with too many masters → wait (Blocked) |
//! | `StartControlPlane` | [`Action::StartUnits`] master units | all started → `ApiServerReady`; a unit fails → `Failed` |
//! | `ApiServerReady` | [`Action::ProbeMaster`] its own `/readyz` over loopback, verified against its CA | 200 → `JoinObjects`; HTTP status / unreachable → wait (Watch); untrusted → wait (Blocked) |
//! | `JoinObjects` | [`Action::EnsureJoinObjects`] | every object created or already equal → `Ready`; one differs → wait (Blocked); an API error → wait (Error) |
//! | `ResolveMasters` | [`Action::Resolve`] `masters.<cluster>.<domain>` | addresses → `Discovery` (`MasterHealthy` with `MASTER_PROBE=http`); NXDOMAIN / empty → wait (Watch, TTL floor); resolver errors → wait (Error) |
//! | `Discovery` | [`Action::Discover`] (cluster-info, JWS, CA pin; writes ca.crt, bootstrap-kubelet.conf, kube-proxy.conf) | verified → `MasterHealthy`; not signed yet / not there / unreachable → wait (Watch); wrong token or pin → wait (Blocked) |
//! | `MasterHealthy` | [`Action::ProbeMaster`] (re-resolves first when the answer expired and the probe could not connect) | healthy → `WeavePeers`; HTTP status / unreachable / timeout → wait (Watch); TLS untrusted → wait (Blocked, 30 s) and say what to fix |
//! | `WeavePeers` | [`Action::Resolve`] `minions.…`, then [`Action::WriteWeaveEnv`] | env written → `StartUnits` (decision: [`crate::weave`]) |
//! | `StartRuntime` | [`Action::StartUnits`] containerd | started → `ImportImages` |
//! | `ImportImages` | [`Action::ImportImages`] every container image the lock lists, into containerd's `k8s.io` namespace, pinned | all there with the locked digest → `StartUnits`; a failed import → wait (Error); another digest → wait (Blocked) |
//! | `StartUnits` | [`Action::StartUnits`] weave, kubelet (those not yet started) | all started → `KubeletBootstrap` (`StartKubeProxy` with `MASTER_PROBE=http`) |
//! | `KubeletBootstrap` | [`Action::CheckKubeletCredentials`] | `kubelet.conf` + a CA-signed client certificate for `system:node:<name>` → `StartKubeProxy` (`PodNetwork` with `CNI=bridge`); not yet → wait (Watch); wrong name or CA → wait (Blocked) |
//! | `PodNetwork` | [`Action::SetUpPodNetwork`] (only with `CNI=bridge`) | the Node's podCIDR → `10-bridge.conflist` + egress rule → `StartKubeProxy`; no podCIDR yet / no answer → wait (Watch); a bad podCIDR or a host tool failing → wait (Error) |
//! | `StartKubeProxy` | [`Action::StartUnits`] kube-proxy | started → `ComponentsHealthy` |
//! | `ComponentsHealthy` | [`Action::CheckHealth`] ([`crate::health`]: the components' health endpoints; a minion's Node Ready) | all healthy → `Ready`; else wait (Watch), naming each failing check with its unit's state and last log line |
//! | `Ready` | [`Action::Done`] (the executor repeats the health checks every [`crate::health::READY_RECHECK`]) | a failing recheck → `ComponentsHealthy` |
//! | `Failed` | [`Action::Fail`] | a restart of the agent ([`AgentState::resume`]) |
//!
//! Protocol: every call returns exactly one action to perform; its outcome is the next observation. An
//! observation a phase does not expect (e.g. a late unit-state signal) is treated like [`Observation::Tick`]: if a
//! wait is pending the remaining wait is returned, otherwise the phase's action again (every action is
//! idempotent: re-reading, re-resolving, re-probing, rewriting the same file, starting an active unit). Unit
//! failures are always recorded.
//!
//! Waits follow [`backoff`] (the delay table and the query-rate numbers are there). Attempts reset on every phase
//! change. Restart semantics are on [`AgentState::resume`].

pub mod backoff;
mod machine;
mod state;

pub use backoff::RetryPolicy;
pub use state::{
    AgentState, DnsLookup, DnsRegistration, KeptWeave, NodeSettings, PhaseTransition, ResumeError,
    STATE_FILE, STATE_SCHEMA_VERSION, Tallies, WaitReason,
};

use crate::dns_update::DnsUpdateConfig;
use crate::role_file::{MasterTrust, RoleConfig, RoleDiscovery, RoleFileError, RoleLoad};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::net::IpAddr;
use std::time::Duration;

/// How many times failed host checks are retried before the agent gives up (they can race module loading at boot).
pub const HOST_CHECK_ATTEMPTS: u32 = 5;
/// A masters answer is re-resolved (after a failed connection) no more often than this, whatever its TTL.
pub const MASTERS_RERESOLVE_MIN_SECS: u32 = 5;
/// The cluster CA certificate, relative to the node root (kubeadm's path): a master's own (from user data), a
/// minion's as discovery verified it. Trust paths in actions that are relative are under the root.
pub const CLUSTER_CA_FILE: &str = "etc/kubernetes/pki/ca.crt";

/// Where a node is in bringing itself up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Phase {
    /// Find and read the role file.
    Role,
    /// Check the host (binaries, sysctls, modules, …).
    HostCheck,
    /// With `DNS_UPDATE_*`: add this node's address to its records over RFC 2136 (a minion right after the host
    /// checks, a master once its join objects exist).
    RegisterDns,
    /// Master: check the supplied PKI and create what is missing (kubeadm's layout).
    ControlPlanePki,
    /// Master with `CONTROL_PLANE_SIZE` > 1: bootstrap or join etcd across the masters, until this master's
    /// member is a voter in quorum ([`crate::etcd_cluster`]).
    EtcdMember,
    /// Master: start etcd and the control plane.
    StartControlPlane,
    /// Master: wait until its own API server answers `/readyz`.
    ApiServerReady,
    /// Master: create the objects nodes need to join (token Secret, RBAC, cluster-info).
    JoinObjects,
    /// Minion: wait until `masters.<cluster>.<domain>` resolves.
    ResolveMasters,
    /// Minion: kubeadm-style token discovery: the cluster CA from cluster-info, signed with the token, pinned.
    Discovery,
    /// Minion: wait until the API server answers its health check.
    MasterHealthy,
    /// Minion: decide and write Weave Net's peers.
    WeavePeers,
    /// Minion: start containerd.
    StartRuntime,
    /// Minion: import the baked container images into containerd (pinned) before anything runs them.
    ImportImages,
    /// Minion: start weave, kubelet.
    StartUnits,
    /// Minion: wait for kubelet's TLS bootstrap (its client certificate).
    KubeletBootstrap,
    /// Minion with `CNI=bridge`: the node's podCIDR → its CNI configuration and egress rule
    /// ([`crate::pod_network`]).
    PodNetwork,
    /// Minion: start kube-proxy (it uses the kubelet's client certificate).
    StartKubeProxy,
    /// Wait until the node's components answer their health checks (a minion: and its Node is Ready).
    ComponentsHealthy,
    /// Everything runs and answers its health checks.
    Ready,
    /// Stopped with a reason; nothing more is done until the agent is restarted.
    Failed,
}

impl Phase {
    /// Every phase, in order.
    pub const ALL: [Phase; 21] = [
        Phase::Role,
        Phase::HostCheck,
        Phase::RegisterDns,
        Phase::ControlPlanePki,
        Phase::EtcdMember,
        Phase::StartControlPlane,
        Phase::ApiServerReady,
        Phase::JoinObjects,
        Phase::ResolveMasters,
        Phase::Discovery,
        Phase::MasterHealthy,
        Phase::WeavePeers,
        Phase::StartRuntime,
        Phase::ImportImages,
        Phase::StartUnits,
        Phase::KubeletBootstrap,
        Phase::PodNetwork,
        Phase::StartKubeProxy,
        Phase::ComponentsHealthy,
        Phase::Ready,
        Phase::Failed,
    ];

    /// Kebab-case name, as in `state.json` and `k8s-agent status`.
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Role => "role",
            Phase::HostCheck => "host-check",
            Phase::RegisterDns => "register-dns",
            Phase::ControlPlanePki => "control-plane-pki",
            Phase::EtcdMember => "etcd-member",
            Phase::StartControlPlane => "start-control-plane",
            Phase::ApiServerReady => "api-server-ready",
            Phase::JoinObjects => "join-objects",
            Phase::ResolveMasters => "resolve-masters",
            Phase::Discovery => "discovery",
            Phase::MasterHealthy => "master-healthy",
            Phase::WeavePeers => "weave-peers",
            Phase::StartRuntime => "start-runtime",
            Phase::ImportImages => "import-images",
            Phase::StartUnits => "start-units",
            Phase::KubeletBootstrap => "kubelet-bootstrap",
            Phase::PodNetwork => "pod-network",
            Phase::StartKubeProxy => "start-kube-proxy",
            Phase::ComponentsHealthy => "components-healthy",
            Phase::Ready => "ready",
            Phase::Failed => "failed",
        }
    }
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which name a DNS lookup was for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DnsQuery {
    /// `masters.<cluster>.<domain>`
    Masters,
    /// `minions.<cluster>.<domain>`
    Minions,
}

/// The outcome of one A-record lookup, as the resolver edge reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum DnsResult {
    /// Records (all of them: the edge retries a truncated UDP answer over TCP), with the smallest TTL.
    Answers { addrs: Vec<IpAddr>, ttl_secs: u32 },
    /// The name does not exist; the negative TTL (SOA minimum) when the answer carried one.
    NxDomain { negative_ttl_secs: Option<u32> },
    /// The name exists but has no A records (an empty answer).
    NoRecords { negative_ttl_secs: Option<u32> },
    /// The resolver answered SERVFAIL.
    ServFail,
    /// No answer in time.
    Timeout,
    /// Anything else (refused, network unreachable, …).
    Other { message: String },
}

impl DnsResult {
    /// Short description for messages, e.g. `NXDOMAIN (no such name)`.
    pub fn describe(&self) -> String {
        match self {
            DnsResult::Answers { addrs, ttl_secs } => {
                format!("{} address(es), TTL {ttl_secs} s", addrs.len())
            }
            DnsResult::NxDomain { .. } => "NXDOMAIN (no such name)".to_string(),
            DnsResult::NoRecords { .. } => "no records (empty answer)".to_string(),
            DnsResult::ServFail => "SERVFAIL from the resolver".to_string(),
            DnsResult::Timeout => "no answer from the resolver in time".to_string(),
            DnsResult::Other { message } => message.clone(),
        }
    }
}

/// The outcome of one health probe of the masters' API (`GET <url>`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum ProbeResult {
    /// 200 from `/readyz` (or `/healthz` for plain HTTP).
    Healthy,
    /// Any other HTTP status (503 while the API server starts).
    HttpStatus { status: u16 },
    /// The TLS handshake failed verification: wrong CA / pin, or the name is not a SAN of the certificate.
    TlsUntrusted { message: String },
    /// Could not connect (refused, no route, …).
    Unreachable { message: String },
    /// No answer in time.
    Timeout,
}

/// The [`UnitFailure::result`] the systemd edge reports when the bus connection failed: the unit's own state is not
/// known, so it is retried, not taken as the unit's failure.
pub const UNIT_RESULT_BUS_ERROR: &str = "bus-error";

/// A unit that did not start: systemd's view of it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct UnitFailure {
    pub unit: String,
    pub active_state: String,
    pub sub_state: String,
    /// The unit's `Result` property (`exit-code`, `timeout`, …) or the job result.
    pub result: String,
}

impl UnitFailure {
    /// The agent lost its bus connection (e.g. dbus restarted): nothing is known about the unit itself.
    pub fn is_bus_error(&self) -> bool {
        self.result == UNIT_RESULT_BUS_ERROR
    }
}

/// How one join object fared ([`Action::EnsureJoinObjects`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "kebab-case")]
pub enum ObjectOutcome {
    /// Created now.
    Created,
    /// It existed and says the same.
    Unchanged,
    /// It existed and says something else: reported, not overwritten.
    Differs { what: String },
    /// Not made, on purpose (e.g. no BOOTSTRAP_TOKEN on this master).
    Skipped { why: String },
    /// The API server refused or could not be reached.
    Failed { reason: String },
}

/// One object of [`Action::EnsureJoinObjects`] and how it fared.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectReport {
    /// `Kind namespace/name`.
    pub object: String,
    #[serde(flatten)]
    pub outcome: ObjectOutcome,
}

/// The outcome of token discovery ([`Action::Discover`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum DiscoveryOutcome {
    /// cluster-info verified (signature, pin, verified re-fetch) and the node's join files written.
    Joined {
        /// The API server URL cluster-info publishes (bootstrap-kubelet.conf's server).
        server: String,
        /// `sha256:` of the CA's public key (kubeadm's pin format).
        ca_hash: String,
    },
    /// Not yet: cluster-info missing or unsigned for this token, the API server not answering yet, …
    Waiting { reason: String },
    /// The API server could not be reached (the masters answer may be stale).
    Unreachable { reason: String },
    /// Something only the operator can fix: a wrong token secret, a wrong pin.
    Refused { reason: String },
}

/// How one baked container image fared in [`Action::ImportImages`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageReport {
    /// The reference containerd names it by.
    pub reference: String,
    /// The digest the lock records (what containerd must show).
    pub digest: String,
    #[serde(flatten)]
    pub outcome: ImageOutcome,
}

/// The outcome of importing one image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "kebab-case")]
pub enum ImageOutcome {
    /// Imported now (and pinned), in `millis`.
    Imported { millis: u64 },
    /// Already in containerd with the locked digest and pinned: not imported again.
    Present,
    /// containerd shows another digest under this name after the import.
    WrongDigest { found: String },
    /// The import (or labelling) failed.
    Failed { reason: String },
}

/// What kubelet's TLS bootstrap has produced so far ([`Action::CheckKubeletCredentials`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum KubeletCredentials {
    /// `kubelet.conf` and a client certificate for `subject`, signed by the cluster CA.
    Issued { subject: String, not_after: String },
    /// Not there yet (kubelet is asking for it, or the controller manager has not approved it).
    NotYet { reason: String },
    /// There, but not usable: another node name, another CA, a key that does not match.
    Wrong { reason: String },
}

/// The outcome of an RFC 2136 registration ([`Action::RegisterDns`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum DnsUpdateOutcome {
    /// The server accepted `address` in every one of `records`.
    Registered {
        address: IpAddr,
        records: Vec<String>,
    },
    /// The key file is missing, readable by others, or not a key (the sentence says which; never the secret).
    KeyFile { problem: String },
    /// The server answered with an error code (`NOTAUTH`, `REFUSED`, …) and, for TSIG, the TSIG error.
    Refused {
        rcode: String,
        tsig_error: Option<String>,
    },
    /// No answer, or one that could not be read or verified.
    Unreachable { message: String },
}

/// The outcome of one [`Action::EnsureEtcdMember`] step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum EtcdProgress {
    /// This master's member is a voter in quorum.
    Ready {
        membership: crate::etcd_cluster::EtcdMembership,
    },
    /// A step was taken (`started_by`: bootstrap, join or restart when etcd was started by it); look again soon.
    Acted {
        what: String,
        started_by: Option<String>,
    },
    /// Nothing to do yet.
    Waiting { reason: String },
    /// Only an operator can fix it.
    Blocked { reason: String },
    /// A request or a write failed.
    Error { reason: String },
}

/// What an edge reports back: the outcome of the last action, or that time passed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Observation {
    /// Time passed (after a [`Action::Wait`], or at start-up).
    Tick,
    /// No single role file to read (none yet, both, or unreadable directory).
    RoleDiscovery(RoleDiscovery),
    /// The role file, checked.
    RoleParsed(Box<RoleConfig>),
    /// The role file exists but is not valid.
    RoleInvalid(RoleFileError),
    /// Every host check passed; `local_addrs` are this node's addresses (all interfaces), used to find it in the
    /// minions record.
    HostChecksPassed { local_addrs: Vec<IpAddr> },
    /// Host checks that failed, one line each.
    HostChecksFailed { failures: Vec<String> },
    /// A DNS lookup's outcome.
    Dns { query: DnsQuery, result: DnsResult },
    /// A master health probe's outcome.
    MasterProbe(ProbeResult),
    /// `WriteWeaveEnv` done (atomically).
    WeaveEnvWritten,
    /// `EnsurePki` done: the supplied files checked, these (relative paths) written; `node_name` is the name the
    /// certificates were made for.
    PkiEnsured {
        node_name: String,
        written: Vec<String>,
    },
    /// `EnsurePki` found a supplied file that is wrong (the sentence names it and says what to fix).
    PkiInvalid { problem: String },
    /// `EnsureJoinObjects` done: how each object fared.
    JoinObjectsEnsured(Vec<ObjectReport>),
    /// `Discover` done.
    Discovered(DiscoveryOutcome),
    /// `ImportImages` done: one report per baked image.
    ImagesImported(Vec<ImageReport>),
    /// `CheckKubeletCredentials` done, for the node `node_name`.
    KubeletChecked {
        node_name: String,
        credentials: KubeletCredentials,
    },
    /// `RegisterDns` done.
    DnsUpdated(DnsUpdateOutcome),
    /// `EnsureEtcdMember` done: what it did or why it waits.
    Etcd(EtcdProgress),
    /// The membership as a master's recheck saw it (while Ready; CONTROL_PLANE_SIZE > 1).
    EtcdChecked(crate::etcd_cluster::EtcdMembership),
    /// `SetUpPodNetwork` done.
    PodNetworkSetUp(crate::pod_network::SetUpOutcome),
    /// `CheckHealth` done (also while Ready: the executor's recheck): one report per check.
    HealthChecked(Vec<crate::health::HealthReport>),
    /// These units are started (their start jobs completed).
    UnitsStarted(Vec<String>),
    /// A unit failed to start (or failed later); `already_started` are the units started before it in this action.
    UnitFailed {
        already_started: Vec<String>,
        failure: UnitFailure,
    },
}

impl From<RoleLoad> for Observation {
    fn from(load: RoleLoad) -> Observation {
        match load {
            RoleLoad::NotRead(discovery) => Observation::RoleDiscovery(discovery),
            RoleLoad::Parsed(config) => Observation::RoleParsed(config),
            RoleLoad::Invalid(error) => Observation::RoleInvalid(error),
        }
    }
}

/// What the executor does next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Nothing to do until `retry_after` has passed (then report [`Observation::Tick`]); `reason` is a sentence
    /// for the operator (shown by `k8s-agent status`).
    Wait {
        reason: String,
        retry_after: Duration,
    },
    /// [`crate::role_file::load`] under the root.
    ReadRoleFile,
    /// Run the host checks and list this node's addresses.
    RunHostChecks,
    /// Add this node's address (the one it reaches `update.server` from) to `update.records` with a TSIG-signed
    /// RFC 2136 UPDATE ([`crate::dns_update`]).
    RegisterDns { update: DnsUpdateConfig },
    /// Look up the A records of `name` (no cache; TCP when truncated).
    Resolve { query: DnsQuery, name: String },
    /// `GET url`, connecting to one of `connect_to` (the resolved masters, so the probe does not resolve
    /// again) with the URL's host for SNI and certificate verification against `trust`.
    ProbeMaster {
        url: String,
        connect_to: Vec<IpAddr>,
        trust: MasterTrust,
    },
    /// Write `contents` atomically to `path` (relative to the root: [`crate::weave::WEAVE_ENV_FILE`]).
    WriteWeaveEnv {
        path: String,
        contents: String,
        /// Written first, to [`crate::weave::WEAVE_DECISION_FILE`]: the decision for the boots after this one.
        keep: String,
        /// Also write Weave's CNI configuration ([`crate::weave::WEAVE_CNI_CONFIG`]): `CNI=weave` only (with
        /// `CNI=bridge` the decision is kept and shown, not applied).
        weave_cni: bool,
    },
    /// Master: check the PKI under `/etc/kubernetes` and write what is missing ([`crate::pki`]), for the
    /// endpoint name and this node's addresses (SANs of the API server certificate), and the control plane's
    /// environment file (the advertised address).
    EnsurePki {
        endpoint_host: String,
        advertise_addrs: Vec<IpAddr>,
        /// The API server's `--advertise-address` ([`crate::advertise`]), written to
        /// [`crate::advertise::NODE_ENV_FILE`] with the PKI.
        advertise: crate::advertise::AdvertiseChoice,
    },
    /// Master: create the join objects ([`crate::join_objects`]) at `server` (its endpoint URL),
    /// connecting to `connect_to` (loopback), with admin.conf's identity (super-admin.conf for
    /// `kubeadm:cluster-admins` while admin.conf is still forbidden).
    EnsureJoinObjects {
        server: String,
        connect_to: Vec<IpAddr>,
    },
    /// Minion: token discovery at `server` (the endpoint), connecting to `connect_to` ([`crate::discovery`]);
    /// on success write the CA, bootstrap-kubelet.conf and kube-proxy.conf.
    Discover {
        server: String,
        connect_to: Vec<IpAddr>,
        trust: MasterTrust,
        /// kubelet's `--node-ip` ([`crate::advertise`]), written to
        /// [`crate::advertise::NODE_ENV_FILE`] with the join files.
        advertise: crate::advertise::AdvertiseChoice,
    },
    /// Minion: read kubelet.conf and its client certificate.
    CheckKubeletCredentials,
    /// Minion with `CNI=bridge`: read the Node `node`'s podCIDR (kubelet's credentials, at one of `connect_to`),
    /// write the bridge CNI configuration for it and the egress rule ([`crate::pod_network`]).
    SetUpPodNetwork {
        node: String,
        connect_to: Vec<IpAddr>,
    },
    /// Minion: import every container image the image's lock lists into containerd (`k8s.io` namespace), pin it,
    /// and check the digest containerd shows; images already there with that digest are not imported again.
    ImportImages,
    /// Master with `CONTROL_PLANE_SIZE` > 1: look at etcd (data directory, own member, `masters` answer, the other
    /// masters' member lists) and take the one next step [`crate::etcd_cluster::decide`] names.
    EnsureEtcdMember {
        /// `masters.<cluster>.<domain>`.
        masters: String,
        /// This master's address (its peer URL).
        own: IpAddr,
        /// The member's name (the node name).
        name: String,
        cluster: String,
        size: u32,
    },
    /// Start these units, in this order, over systemd's D-Bus API; report the ones started.
    StartUnits { units: Vec<String> },
    /// Run the health checks ([`crate::health`]); the Node is read at one of `connect_to` (the masters).
    CheckHealth {
        checks: Vec<crate::health::HealthCheck>,
        connect_to: Vec<IpAddr>,
    },
    /// Everything is up; nothing more to do (the agent idles, serving `status`).
    Done,
    /// The agent stopped; `reason` says why and what to do.
    Fail { reason: String },
}

/// One step of the machine. Pure: the same arguments always give the same result. `jitter` is a number in 0..1
/// the caller draws (see [`backoff`]).
pub fn next(
    state: &AgentState,
    observation: Observation,
    now_millis: u64,
    jitter: f64,
) -> (AgentState, Action) {
    machine::Step::new(state.clone(), now_millis, jitter).run(observation)
}

impl AgentState {
    /// Continue from a state a previous agent process persisted on this boot. Returns the state and the first
    /// action.
    ///
    /// | persisted phase | resumes | why |
    /// |---|---|---|
    /// | `Ready` | `Ready`, [`Action::Done`] | nothing to do; units are not touched |
    /// | `RegisterDns` | same phase, the update again | adding a record that is there is a no-op |
    /// | `StartControlPlane`, `StartRuntime`, `StartUnits`, `StartKubeProxy` | same phase, starts only the units not started yet | never restart an active unit |
    /// | `ApiServerReady`, `JoinObjects`, `ImportImages`, `KubeletBootstrap`, `PodNetwork` | same phase, its action again | units run already; probing, creating-if-missing, importing what is missing and reading credentials are idempotent |
    /// | `WeavePeers` with a decision | same phase, writes the *persisted* decision again | the decision never changes once made |
    /// | `Role`, `HostCheck`, `ControlPlanePki`, `ResolveMasters`, `Discovery`, `MasterHealthy`, `WeavePeers` without a decision, `Failed` | `Role`: re-reads the role file, then on | nothing irreversible happened yet (or the operator restarted after a failure): redoing the cheap steps picks up a fixed role file, e.g. a corrected `CA_CERT_HASH`; PKI files already written are kept (only missing ones are made) |
    ///
    /// A node that had registered itself in DNS (`DNS_UPDATE_*`) and resumes in place first re-asserts its
    /// records ([`Action::RegisterDns`]; a clean stop deleted them); a failure there is reported, not blocking.
    /// In every case the Weave decision, the started units and the history are kept; if the re-read role file
    /// names another cluster, role or consensus size while units run or Weave has decided, the agent fails and
    /// asks for a reboot instead of mixing two configurations.
    pub fn resume(
        persisted: AgentState,
        now_millis: u64,
    ) -> Result<(AgentState, Action), ResumeError> {
        if persisted.schema_version != STATE_SCHEMA_VERSION {
            return Err(ResumeError::SchemaVersion {
                found: persisted.schema_version,
                expected: STATE_SCHEMA_VERSION,
            });
        }
        Ok(machine::Step::new(persisted, now_millis, 0.5).resume())
    }
}

#[cfg(test)]
mod tests;
