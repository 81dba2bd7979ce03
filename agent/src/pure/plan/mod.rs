//! The agent's phase machine: a pure function from (state, observation, time, jitter) to (new state, action).
//! No clock, no randomness, no I/O in here: the executor (another module) performs each [`Action`], reports its
//! outcome as the next [`Observation`], persists the [`AgentState`] after every step
//! (`/run/k8s-agent/state.json`, [`STATE_FILE`]) and sleeps on [`Action::Wait`] before reporting
//! [`Observation::Tick`].
//!
//! ```text
//! Role ─► HostCheck ─┬─ master ─► StartControlPlane ─────────────────────────────────────────► Ready
//!                    └─ minion ─► ResolveMasters ─► MasterHealthy ─► WeavePeers ─► StartUnits ─► Ready
//!         any phase ─► Failed   (MasterHealthy ─► ResolveMasters when the masters record disappears)
//! ```
//!
//! | phase | action it issues | what moves it on |
//! |---|---|---|
//! | `Role` | [`Action::ReadRoleFile`] | a parsed role file; none yet → wait (Watch); both files / invalid → `Failed` |
//! | `HostCheck` | [`Action::RunHostChecks`] | checks pass (and report this node's addresses); fail → retry (Error), `Failed` after [`HOST_CHECK_ATTEMPTS`] |
//! | `StartControlPlane` | [`Action::StartUnits`] master units | all started → `Ready`; a unit fails → `Failed` |
//! | `ResolveMasters` | [`Action::Resolve`] `masters.<cluster>.<domain>` | addresses → `MasterHealthy`; NXDOMAIN / empty → wait (Watch, TTL floor); resolver errors → wait (Error) |
//! | `MasterHealthy` | [`Action::ProbeMaster`] (re-resolves first when the answer expired and the probe could not connect) | healthy → `WeavePeers`; HTTP status / unreachable / timeout → wait (Watch); TLS untrusted → wait (Blocked, 30 s) and say what to fix |
//! | `WeavePeers` | [`Action::Resolve`] `minions.…`, then [`Action::WriteWeaveEnv`] | env written → `StartUnits` (decision: [`crate::weave`]) |
//! | `StartUnits` | [`Action::StartUnits`] minion units not yet started | all started → `Ready` |
//! | `Ready` | [`Action::Done`] | — |
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
    AgentState, DnsLookup, NodeSettings, PhaseTransition, ResumeError, STATE_FILE,
    STATE_SCHEMA_VERSION,
};

use crate::role_file::{MasterTrust, RoleConfig, RoleDiscovery, RoleFileError, RoleLoad};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::net::IpAddr;
use std::time::Duration;

/// How many times failed host checks are retried before the agent gives up (they can race module loading at boot).
pub const HOST_CHECK_ATTEMPTS: u32 = 5;
/// A masters answer is re-resolved (after a failed connection) no more often than this, whatever its TTL.
pub const MASTERS_RERESOLVE_MIN_SECS: u32 = 5;

/// Where a node is in bringing itself up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Phase {
    /// Find and read the role file.
    Role,
    /// Check the host (binaries, sysctls, modules, …).
    HostCheck,
    /// Master: start etcd and the control plane.
    StartControlPlane,
    /// Minion: wait until `masters.<cluster>.<domain>` resolves.
    ResolveMasters,
    /// Minion: wait until the API server answers its health check.
    MasterHealthy,
    /// Minion: decide and write Weave Net's peers.
    WeavePeers,
    /// Minion: start containerd, weave, kubelet, kube-proxy.
    StartUnits,
    /// Everything started.
    Ready,
    /// Stopped with a reason; nothing more is done until the agent is restarted.
    Failed,
}

impl Phase {
    /// Every phase, in order.
    pub const ALL: [Phase; 9] = [
        Phase::Role,
        Phase::HostCheck,
        Phase::StartControlPlane,
        Phase::ResolveMasters,
        Phase::MasterHealthy,
        Phase::WeavePeers,
        Phase::StartUnits,
        Phase::Ready,
        Phase::Failed,
    ];

    /// Kebab-case name, as in `state.json` and `k8s-agent status`.
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Role => "role",
            Phase::HostCheck => "host-check",
            Phase::StartControlPlane => "start-control-plane",
            Phase::ResolveMasters => "resolve-masters",
            Phase::MasterHealthy => "master-healthy",
            Phase::WeavePeers => "weave-peers",
            Phase::StartUnits => "start-units",
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

/// A unit that did not start: systemd's view of it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct UnitFailure {
    pub unit: String,
    pub active_state: String,
    pub sub_state: String,
    /// The unit's `Result` property (`exit-code`, `timeout`, …) or the job result.
    pub result: String,
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
    WriteWeaveEnv { path: String, contents: String },
    /// Start these units, in this order, over systemd's D-Bus API; report the ones started.
    StartUnits { units: Vec<String> },
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

#[cfg(test)]
mod tests;
