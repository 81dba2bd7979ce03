//! Tests of the phase machine: the phase × observation table, the backoff sequences, both paths, blocking TLS,
//! and resume.

use super::backoff::{BLOCKED_RETRY, PATIENCE};
use super::*;
use crate::node_role::{MASTER_UNITS, MINION_UNITS, NodeRole, UnitStage};
use crate::role_file::{RoleConfig, RoleFileError, parse_role_file};
use std::path::{Path, PathBuf};

const T0: u64 = 1_767_225_600_000;
const MINION_FILE: &str = "/etc/sysconfig/kubernetes-minions";
const MASTER_FILE: &str = "/etc/sysconfig/kubernetes-masters";
const PIN: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
const SELF: &str = "10.0.0.2";
const TOKEN: &str = "abcdef.0123456789abcdef";

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
}

fn config(role: NodeRole, extra: &str) -> RoleConfig {
    let (path, text) = match role {
        NodeRole::Minion => (
            MINION_FILE,
            format!(
                "CLUSTER_NAME=prod\nCA_CERT_HASH={PIN}\nBOOTSTRAP_TOKEN={TOKEN}\nWEAVE_CONSENSUS=3\n{extra}"
            ),
        ),
        NodeRole::Master => (
            MASTER_FILE,
            format!("CLUSTER_NAME=prod\nBOOTSTRAP_TOKEN={TOKEN}\n{extra}"),
        ),
    };
    parse_role_file(Path::new(path), role, &text).unwrap_or_else(|e| panic!("{e}"))
}

fn masters_answer() -> DnsResult {
    DnsResult::Answers {
        addrs: vec![ip("10.0.1.1")],
        ttl_secs: 30,
    }
}

fn minions_answer() -> DnsResult {
    DnsResult::Answers {
        addrs: vec![ip("10.0.0.3"), ip("10.0.0.1"), ip(SELF)],
        ttl_secs: 0,
    }
}

fn units(role: NodeRole) -> Vec<String> {
    role.units().iter().map(|u| u.to_string()).collect()
}

fn group(role: NodeRole, stage: UnitStage) -> Vec<String> {
    role.unit_group(stage)
        .iter()
        .map(|u| u.to_string())
        .collect()
}

fn images(outcome: ImageOutcome) -> Observation {
    Observation::ImagesImported(vec![ImageReport {
        reference: "registry.k8s.io/pause:3.10.1".into(),
        digest: format!("sha256:{}", "2".repeat(64)),
        outcome,
    }])
}

fn joined() -> Observation {
    Observation::Discovered(DiscoveryOutcome::Joined {
        server: "https://masters.prod.k8s:6443".into(),
        ca_hash: PIN.into(),
    })
}

fn issued() -> Observation {
    Observation::KubeletChecked {
        node_name: "node-2".into(),
        credentials: KubeletCredentials::Issued {
            subject: "system:node:node-2".into(),
            not_after: "2027-12-01T00:00:00Z".into(),
        },
    }
}

fn objects(outcome: ObjectOutcome) -> Observation {
    Observation::JoinObjectsEnsured(vec![
        ObjectReport {
            object: "ClusterRoleBinding kubeadm:cluster-admins".into(),
            outcome: ObjectOutcome::Unchanged,
        },
        ObjectReport {
            object: "Secret kube-system/bootstrap-token-abcdef".into(),
            outcome,
        },
    ])
}

fn kubelet_failed() -> UnitFailure {
    UnitFailure {
        unit: "kubelet.service".into(),
        active_state: "failed".into(),
        sub_state: "failed".into(),
        result: "exit-code".into(),
    }
}

/// A test driver: a state, a clock, and the actions seen.
struct Run {
    state: AgentState,
    now: u64,
    jitter: f64,
}

impl Run {
    fn new() -> Run {
        Run {
            state: AgentState::new(T0),
            now: T0,
            jitter: 0.5,
        }
    }

    fn from(state: AgentState) -> Run {
        let now = state.since;
        Run {
            state,
            now,
            jitter: 0.5,
        }
    }

    fn feed(&mut self, observation: Observation) -> Action {
        let (state, action) = next(&self.state, observation, self.now, self.jitter);
        self.state = state;
        action
    }

    fn advance(&mut self, ms: u64) {
        self.now += ms;
    }

    /// Feed, and if the answer is a wait, let the time pass and tick.
    fn feed_then_wait(&mut self, observation: Observation) -> Action {
        let action = self.feed(observation);
        if let Action::Wait { retry_after, .. } = &action {
            self.advance(retry_after.as_millis() as u64);
        }
        action
    }
}

/// The happy path observations of a role, in order.
fn happy_path(role: NodeRole) -> Vec<Observation> {
    match role {
        NodeRole::Master => vec![
            Observation::Tick,
            Observation::RoleParsed(Box::new(config(NodeRole::Master, ""))),
            Observation::HostChecksPassed {
                local_addrs: vec![ip("10.0.1.1")],
            },
            Observation::PkiEnsured {
                node_name: "master-1".into(),
                written: vec!["etc/kubernetes/pki/apiserver.crt".into()],
            },
            Observation::UnitsStarted(units(NodeRole::Master)),
            Observation::MasterProbe(ProbeResult::Healthy),
            objects(ObjectOutcome::Created),
            healthy(NodeRole::Master),
        ],
        NodeRole::Minion => vec![
            Observation::Tick,
            Observation::RoleParsed(Box::new(config(NodeRole::Minion, ""))),
            Observation::HostChecksPassed {
                local_addrs: vec![ip("127.0.0.1"), ip(SELF)],
            },
            Observation::Dns {
                query: DnsQuery::Masters,
                result: masters_answer(),
            },
            joined(),
            Observation::MasterProbe(ProbeResult::Healthy),
            Observation::Dns {
                query: DnsQuery::Minions,
                result: minions_answer(),
            },
            Observation::WeaveEnvWritten,
            Observation::UnitsStarted(group(NodeRole::Minion, UnitStage::Runtime)),
            images(ImageOutcome::Imported { millis: 120 }),
            Observation::UnitsStarted(group(NodeRole::Minion, UnitStage::Node)),
            issued(),
            Observation::UnitsStarted(group(NodeRole::Minion, UnitStage::AfterBootstrap)),
            healthy(NodeRole::Minion),
        ],
    }
}

/// kube-proxy (a minion) or the scheduler (a master) does not answer: a unit restarting.
fn unhealthy(role: NodeRole) -> Observation {
    let Observation::HealthChecked(mut reports) = healthy(role) else {
        unreachable!("healthy() gives HealthChecked")
    };
    reports[1].healthy = false;
    reports[1].detail =
        "connection refused; kube-proxy.service activating/auto-restart, its last line: \
                         open /proc/sys/net/netfilter/nf_conntrack_max: read-only file system"
            .into();
    Observation::HealthChecked(reports)
}

/// Every health check of `role` passed (the minion's Node is the one `issued()` names).
fn healthy(role: NodeRole) -> Observation {
    let node = match role {
        NodeRole::Master => None,
        NodeRole::Minion => Some("node-2"),
    };
    Observation::HealthChecked(
        crate::health::checks_for(role, node)
            .into_iter()
            .map(|check| crate::health::HealthReport {
                check,
                healthy: true,
                unknown: false,
                detail: "200".into(),
            })
            .collect(),
    )
}

/// Drive a fresh agent along the happy path until `done(state)`, 10 ms per step.
fn walk(role: NodeRole, done: impl Fn(&AgentState) -> bool) -> AgentState {
    let mut run = Run::new();
    for observation in happy_path(role) {
        if done(&run.state) {
            break;
        }
        run.advance(10);
        run.feed(observation);
    }
    assert!(
        done(&run.state),
        "walk of the {role} did not get there: ended in {:?} after {:?}",
        run.state.phase,
        run.state
            .transitions
            .iter()
            .map(|t| t.phase)
            .collect::<Vec<_>>()
    );
    run.state
}

fn walk_to(role: NodeRole, phase: Phase) -> AgentState {
    walk(role, |s| s.phase == phase)
}

fn kind(action: &Action) -> &'static str {
    match action {
        Action::Wait { .. } => "wait",
        Action::ReadRoleFile => "read-role",
        Action::RunHostChecks => "host-checks",
        Action::RegisterDns { .. } => "register-dns",
        Action::Resolve {
            query: DnsQuery::Masters,
            ..
        } => "resolve-masters",
        Action::Resolve {
            query: DnsQuery::Minions,
            ..
        } => "resolve-minions",
        Action::ProbeMaster { .. } => "probe",
        Action::WriteWeaveEnv { .. } => "write-weave-env",
        Action::StartUnits { .. } => "start-units",
        Action::EnsurePki { .. } => "ensure-pki",
        Action::EnsureJoinObjects { .. } => "ensure-join-objects",
        Action::Discover { .. } => "discover",
        Action::CheckKubeletCredentials => "check-kubelet",
        Action::ImportImages => "import-images",
        Action::CheckHealth { .. } => "check-health",
        Action::SetUpPodNetwork { .. } => "set-up-pod-network",
        Action::EnsureEtcdMember { .. } => "ensure-etcd-member",
        Action::Done => "done",
        Action::Fail { .. } => "fail",
    }
}

fn wait_ms(action: &Action) -> u64 {
    match action {
        Action::Wait { retry_after, .. } => retry_after.as_millis() as u64,
        other => panic!("expected a wait, got {other:?}"),
    }
}

fn wait_reason(action: &Action) -> String {
    match action {
        Action::Wait { reason, .. } => reason.clone(),
        other => panic!("expected a wait, got {other:?}"),
    }
}

// ---- the table: every phase × every observation kind ----

/// One state per phase (and WeavePeers before and after the decision), with the role it is on.
fn table_states() -> Vec<(&'static str, NodeRole, AgentState)> {
    vec![
        ("role", NodeRole::Minion, AgentState::new(T0)),
        (
            "host-check",
            NodeRole::Minion,
            walk_to(NodeRole::Minion, Phase::HostCheck),
        ),
        (
            "control-plane-pki",
            NodeRole::Master,
            walk_to(NodeRole::Master, Phase::ControlPlanePki),
        ),
        (
            "start-control-plane",
            NodeRole::Master,
            walk_to(NodeRole::Master, Phase::StartControlPlane),
        ),
        (
            "api-server-ready",
            NodeRole::Master,
            walk_to(NodeRole::Master, Phase::ApiServerReady),
        ),
        (
            "join-objects",
            NodeRole::Master,
            walk_to(NodeRole::Master, Phase::JoinObjects),
        ),
        (
            "resolve-masters",
            NodeRole::Minion,
            walk_to(NodeRole::Minion, Phase::ResolveMasters),
        ),
        (
            "discovery",
            NodeRole::Minion,
            walk_to(NodeRole::Minion, Phase::Discovery),
        ),
        (
            "master-healthy",
            NodeRole::Minion,
            walk_to(NodeRole::Minion, Phase::MasterHealthy),
        ),
        (
            "weave-peers",
            NodeRole::Minion,
            walk_to(NodeRole::Minion, Phase::WeavePeers),
        ),
        (
            "weave-peers-decided",
            NodeRole::Minion,
            walk(NodeRole::Minion, |s| s.weave.is_some()),
        ),
        (
            "start-runtime",
            NodeRole::Minion,
            walk_to(NodeRole::Minion, Phase::StartRuntime),
        ),
        (
            "import-images",
            NodeRole::Minion,
            walk_to(NodeRole::Minion, Phase::ImportImages),
        ),
        (
            "start-units",
            NodeRole::Minion,
            walk_to(NodeRole::Minion, Phase::StartUnits),
        ),
        (
            "kubelet-bootstrap",
            NodeRole::Minion,
            walk_to(NodeRole::Minion, Phase::KubeletBootstrap),
        ),
        (
            "start-kube-proxy",
            NodeRole::Minion,
            walk_to(NodeRole::Minion, Phase::StartKubeProxy),
        ),
        (
            "components-healthy",
            NodeRole::Minion,
            walk_to(NodeRole::Minion, Phase::ComponentsHealthy),
        ),
        (
            "ready",
            NodeRole::Minion,
            walk_to(NodeRole::Minion, Phase::Ready),
        ),
        ("failed", NodeRole::Minion, {
            let mut run = Run::new();
            run.feed(Observation::RoleDiscovery(RoleDiscovery::Both {
                master: MASTER_FILE.into(),
                minion: MINION_FILE.into(),
            }));
            run.state
        }),
    ]
}

/// One sample of every observation kind (and every variant of the DNS and probe results).
fn table_observations(role: NodeRole) -> Vec<(&'static str, Observation)> {
    let dns = |query, result| Observation::Dns { query, result };
    vec![
        ("tick", Observation::Tick),
        (
            "discovery-none-yet",
            Observation::RoleDiscovery(RoleDiscovery::NoneYet {
                master: MASTER_FILE.into(),
                minion: MINION_FILE.into(),
            }),
        ),
        (
            "discovery-found",
            Observation::RoleDiscovery(RoleDiscovery::Found {
                path: MINION_FILE.into(),
                role,
            }),
        ),
        (
            "discovery-both",
            Observation::RoleDiscovery(RoleDiscovery::Both {
                master: MASTER_FILE.into(),
                minion: MINION_FILE.into(),
            }),
        ),
        (
            "discovery-unreadable",
            Observation::RoleDiscovery(RoleDiscovery::Unreadable {
                path: MINION_FILE.into(),
                message: "Permission denied".into(),
            }),
        ),
        (
            "role-parsed",
            Observation::RoleParsed(Box::new(config(role, ""))),
        ),
        (
            "role-invalid",
            Observation::RoleInvalid(RoleFileError::MissingKey {
                path: MINION_FILE.into(),
                key: "CLUSTER_NAME",
            }),
        ),
        (
            "host-passed",
            Observation::HostChecksPassed {
                local_addrs: vec![ip(SELF)],
            },
        ),
        (
            "host-failed",
            Observation::HostChecksFailed {
                failures: vec!["net.ipv4.ip_forward is 0".into()],
            },
        ),
        (
            "dns-masters-answers",
            dns(DnsQuery::Masters, masters_answer()),
        ),
        (
            "dns-masters-unusable",
            dns(
                DnsQuery::Masters,
                DnsResult::Answers {
                    addrs: vec![ip("0.0.0.0")],
                    ttl_secs: 5,
                },
            ),
        ),
        (
            "dns-masters-nxdomain",
            dns(
                DnsQuery::Masters,
                DnsResult::NxDomain {
                    negative_ttl_secs: Some(5),
                },
            ),
        ),
        (
            "dns-masters-no-records",
            dns(
                DnsQuery::Masters,
                DnsResult::NoRecords {
                    negative_ttl_secs: None,
                },
            ),
        ),
        (
            "dns-masters-servfail",
            dns(DnsQuery::Masters, DnsResult::ServFail),
        ),
        (
            "dns-masters-timeout",
            dns(DnsQuery::Masters, DnsResult::Timeout),
        ),
        (
            "dns-masters-other",
            dns(
                DnsQuery::Masters,
                DnsResult::Other {
                    message: "refused".into(),
                },
            ),
        ),
        (
            "dns-minions-answers",
            dns(DnsQuery::Minions, minions_answer()),
        ),
        (
            "dns-minions-too-few",
            dns(
                DnsQuery::Minions,
                DnsResult::Answers {
                    addrs: vec![ip(SELF)],
                    ttl_secs: 0,
                },
            ),
        ),
        (
            "dns-minions-nxdomain",
            dns(
                DnsQuery::Minions,
                DnsResult::NxDomain {
                    negative_ttl_secs: None,
                },
            ),
        ),
        (
            "dns-minions-no-records",
            dns(
                DnsQuery::Minions,
                DnsResult::NoRecords {
                    negative_ttl_secs: Some(1),
                },
            ),
        ),
        (
            "dns-minions-servfail",
            dns(DnsQuery::Minions, DnsResult::ServFail),
        ),
        (
            "dns-minions-timeout",
            dns(DnsQuery::Minions, DnsResult::Timeout),
        ),
        (
            "dns-minions-other",
            dns(
                DnsQuery::Minions,
                DnsResult::Other {
                    message: "refused".into(),
                },
            ),
        ),
        (
            "probe-healthy",
            Observation::MasterProbe(ProbeResult::Healthy),
        ),
        (
            "probe-http-503",
            Observation::MasterProbe(ProbeResult::HttpStatus { status: 503 }),
        ),
        (
            "probe-tls-untrusted",
            Observation::MasterProbe(ProbeResult::TlsUntrusted {
                message: "unknown issuer".into(),
            }),
        ),
        (
            "probe-unreachable",
            Observation::MasterProbe(ProbeResult::Unreachable {
                message: "connection refused".into(),
            }),
        ),
        (
            "probe-timeout",
            Observation::MasterProbe(ProbeResult::Timeout),
        ),
        ("weave-env-written", Observation::WeaveEnvWritten),
        (
            "pki-ensured",
            Observation::PkiEnsured {
                node_name: "master-1".into(),
                written: vec![],
            },
        ),
        (
            "pki-invalid",
            Observation::PkiInvalid {
                problem: "etc/kubernetes/pki/apiserver.key does not match apiserver.crt".into(),
            },
        ),
        ("join-ok", objects(ObjectOutcome::Created)),
        (
            "join-differs",
            objects(ObjectOutcome::Differs {
                what: "Secret kube-system/bootstrap-token-abcdef exists and differs in data".into(),
            }),
        ),
        (
            "join-failed",
            objects(ObjectOutcome::Failed {
                reason: "HTTP 403".into(),
            }),
        ),
        ("discovered-joined", joined()),
        (
            "discovered-waiting",
            Observation::Discovered(DiscoveryOutcome::Waiting {
                reason: "no signature yet".into(),
            }),
        ),
        (
            "discovered-unreachable",
            Observation::Discovered(DiscoveryOutcome::Unreachable {
                reason: "connection refused".into(),
            }),
        ),
        (
            "discovered-refused",
            Observation::Discovered(DiscoveryOutcome::Refused {
                reason: "wrong token".into(),
            }),
        ),
        ("kubelet-issued", issued()),
        ("images-ok", images(ImageOutcome::Present)),
        (
            "images-failed",
            images(ImageOutcome::Failed {
                reason: "ctr: connection refused".into(),
            }),
        ),
        (
            "images-wrong-digest",
            images(ImageOutcome::WrongDigest {
                found: format!("sha256:{}", "9".repeat(64)),
            }),
        ),
        (
            "kubelet-not-yet",
            Observation::KubeletChecked {
                node_name: "node-2".into(),
                credentials: KubeletCredentials::NotYet {
                    reason: "no kubelet.conf".into(),
                },
            },
        ),
        (
            "kubelet-wrong",
            Observation::KubeletChecked {
                node_name: "node-2".into(),
                credentials: KubeletCredentials::Wrong {
                    reason: "CN system:node:other".into(),
                },
            },
        ),
        ("health-ok", healthy(role)),
        ("health-failing", unhealthy(role)),
        ("units-started", Observation::UnitsStarted(units(role))),
        (
            "unit-failed",
            Observation::UnitFailed {
                already_started: vec![],
                failure: kubelet_failed(),
            },
        ),
    ]
}

use Phase::*;

/// The cells where an observation does something. Every other cell must behave exactly like `tick` (checked).
/// `unit-failed` outside the start phases is recorded and otherwise behaves like `tick` (listed, checked apart).
const TABLE: &[(&str, &str, Phase, &str)] = &[
    // state                 observation               → phase             action
    ("role", "discovery-none-yet", Role, "wait"),
    ("role", "discovery-found", Role, "read-role"),
    ("role", "discovery-both", Failed, "fail"),
    ("role", "discovery-unreadable", Failed, "fail"),
    ("role", "role-parsed", HostCheck, "host-checks"),
    ("role", "role-invalid", Failed, "fail"),
    (
        "host-check",
        "host-passed",
        ResolveMasters,
        "resolve-masters",
    ),
    ("host-check", "host-failed", HostCheck, "wait"),
    (
        "control-plane-pki",
        "pki-ensured",
        StartControlPlane,
        "start-units",
    ),
    ("control-plane-pki", "pki-invalid", ControlPlanePki, "wait"),
    (
        "start-control-plane",
        "units-started",
        ApiServerReady,
        "probe",
    ),
    ("start-control-plane", "unit-failed", Failed, "fail"),
    (
        "api-server-ready",
        "probe-healthy",
        JoinObjects,
        "ensure-join-objects",
    ),
    ("api-server-ready", "probe-http-503", ApiServerReady, "wait"),
    (
        "api-server-ready",
        "probe-tls-untrusted",
        ApiServerReady,
        "wait",
    ),
    (
        "api-server-ready",
        "probe-unreachable",
        ApiServerReady,
        "wait",
    ),
    ("api-server-ready", "probe-timeout", ApiServerReady, "wait"),
    ("join-objects", "join-ok", ComponentsHealthy, "check-health"),
    ("join-objects", "join-differs", JoinObjects, "wait"),
    ("join-objects", "join-failed", JoinObjects, "wait"),
    (
        "resolve-masters",
        "dns-masters-answers",
        Discovery,
        "discover",
    ),
    (
        "resolve-masters",
        "dns-masters-unusable",
        ResolveMasters,
        "wait",
    ),
    (
        "resolve-masters",
        "dns-masters-nxdomain",
        ResolveMasters,
        "wait",
    ),
    (
        "resolve-masters",
        "dns-masters-no-records",
        ResolveMasters,
        "wait",
    ),
    (
        "resolve-masters",
        "dns-masters-servfail",
        ResolveMasters,
        "wait",
    ),
    (
        "resolve-masters",
        "dns-masters-timeout",
        ResolveMasters,
        "wait",
    ),
    (
        "resolve-masters",
        "dns-masters-other",
        ResolveMasters,
        "wait",
    ),
    ("discovery", "dns-masters-answers", Discovery, "discover"),
    ("discovery", "dns-masters-unusable", ResolveMasters, "wait"),
    ("discovery", "dns-masters-nxdomain", ResolveMasters, "wait"),
    (
        "discovery",
        "dns-masters-no-records",
        ResolveMasters,
        "wait",
    ),
    ("discovery", "dns-masters-servfail", Discovery, "wait"),
    ("discovery", "dns-masters-timeout", Discovery, "wait"),
    ("discovery", "dns-masters-other", Discovery, "wait"),
    ("discovery", "discovered-joined", MasterHealthy, "probe"),
    ("discovery", "discovered-waiting", Discovery, "wait"),
    ("discovery", "discovered-unreachable", Discovery, "wait"),
    ("discovery", "discovered-refused", Discovery, "wait"),
    (
        "master-healthy",
        "dns-masters-answers",
        MasterHealthy,
        "probe",
    ),
    (
        "master-healthy",
        "dns-masters-unusable",
        ResolveMasters,
        "wait",
    ),
    (
        "master-healthy",
        "dns-masters-nxdomain",
        ResolveMasters,
        "wait",
    ),
    (
        "master-healthy",
        "dns-masters-no-records",
        ResolveMasters,
        "wait",
    ),
    (
        "master-healthy",
        "dns-masters-servfail",
        MasterHealthy,
        "wait",
    ),
    (
        "master-healthy",
        "dns-masters-timeout",
        MasterHealthy,
        "wait",
    ),
    ("master-healthy", "dns-masters-other", MasterHealthy, "wait"),
    (
        "master-healthy",
        "probe-healthy",
        WeavePeers,
        "resolve-minions",
    ),
    ("master-healthy", "probe-http-503", MasterHealthy, "wait"),
    (
        "master-healthy",
        "probe-tls-untrusted",
        MasterHealthy,
        "wait",
    ),
    ("master-healthy", "probe-unreachable", MasterHealthy, "wait"),
    ("master-healthy", "probe-timeout", MasterHealthy, "wait"),
    (
        "weave-peers",
        "dns-minions-answers",
        WeavePeers,
        "write-weave-env",
    ),
    ("weave-peers", "dns-minions-too-few", WeavePeers, "wait"),
    ("weave-peers", "dns-minions-nxdomain", WeavePeers, "wait"),
    ("weave-peers", "dns-minions-no-records", WeavePeers, "wait"),
    ("weave-peers", "dns-minions-servfail", WeavePeers, "wait"),
    ("weave-peers", "dns-minions-timeout", WeavePeers, "wait"),
    ("weave-peers", "dns-minions-other", WeavePeers, "wait"),
    (
        "weave-peers-decided",
        "weave-env-written",
        StartRuntime,
        "start-units",
    ),
    (
        "start-runtime",
        "units-started",
        ImportImages,
        "import-images",
    ),
    ("start-runtime", "unit-failed", Failed, "fail"),
    ("import-images", "images-ok", StartUnits, "start-units"),
    ("import-images", "images-failed", ImportImages, "wait"),
    ("import-images", "images-wrong-digest", ImportImages, "wait"),
    (
        "start-units",
        "units-started",
        KubeletBootstrap,
        "check-kubelet",
    ),
    ("start-units", "unit-failed", Failed, "fail"),
    (
        "kubelet-bootstrap",
        "kubelet-issued",
        StartKubeProxy,
        "start-units",
    ),
    (
        "kubelet-bootstrap",
        "kubelet-not-yet",
        KubeletBootstrap,
        "wait",
    ),
    (
        "kubelet-bootstrap",
        "kubelet-wrong",
        KubeletBootstrap,
        "wait",
    ),
    (
        "start-kube-proxy",
        "units-started",
        ComponentsHealthy,
        "check-health",
    ),
    ("start-kube-proxy", "unit-failed", Failed, "fail"),
    ("components-healthy", "health-ok", Ready, "done"),
    (
        "components-healthy",
        "health-failing",
        ComponentsHealthy,
        "wait",
    ),
    ("ready", "health-ok", Ready, "done"),
    ("ready", "health-failing", ComponentsHealthy, "wait"),
];

#[test]
fn every_phase_times_every_observation() {
    let mut cells = 0;
    let mut used = vec![false; TABLE.len()];
    for (label, role, state) in table_states() {
        let (tick_state, tick_action) = next(&state, Observation::Tick, T0 + 1_000_000, 0.5);
        for (obs_label, observation) in table_observations(role) {
            cells += 1;
            let cell = format!("{label} × {obs_label}");
            let (after, action) = next(&state, observation, T0 + 1_000_000, 0.5);
            match TABLE
                .iter()
                .position(|(s, o, _, _)| *s == label && *o == obs_label)
            {
                Some(i) => {
                    used[i] = true;
                    let (_, _, phase, expected) = TABLE[i];
                    assert_eq!(
                        (after.phase, kind(&action)),
                        (phase, expected),
                        "{cell}: {action:?}"
                    );
                    if let Action::Wait {
                        reason,
                        retry_after,
                    } = &action
                    {
                        assert!(
                            !reason.is_empty() && *retry_after > Duration::ZERO,
                            "{cell}"
                        );
                        assert_eq!(after.blocking.as_deref(), Some(reason.as_str()), "{cell}");
                    }
                    if let Action::Fail { reason } = &action {
                        assert_eq!(after.failure.as_deref(), Some(reason.as_str()), "{cell}");
                    }
                }
                None if obs_label == "unit-failed" => {
                    assert_eq!(action, tick_action, "{cell}");
                    assert_eq!(after.phase, state.phase, "{cell}");
                    assert_eq!(
                        after.unit_failures,
                        vec![kubelet_failed()],
                        "{cell}: recorded"
                    );
                }
                None => {
                    assert_eq!(action, tick_action, "{cell} must behave like a tick");
                    assert_eq!(
                        after, tick_state,
                        "{cell} must change nothing a tick does not"
                    );
                }
            }
        }
    }
    assert_eq!(cells, 19 * 48);
    let unused: Vec<_> = TABLE
        .iter()
        .zip(used)
        .filter(|(_, u)| !u)
        .map(|(row, _)| row)
        .collect();
    assert!(unused.is_empty(), "rows never reached: {unused:?}");
}

#[test]
fn tick_issues_each_phase_action() {
    let expected = [
        ("role", "read-role"),
        ("host-check", "host-checks"),
        ("control-plane-pki", "ensure-pki"),
        ("start-control-plane", "start-units"),
        ("api-server-ready", "probe"),
        ("join-objects", "ensure-join-objects"),
        ("resolve-masters", "resolve-masters"),
        ("discovery", "discover"),
        ("master-healthy", "probe"),
        ("weave-peers", "resolve-minions"),
        ("weave-peers-decided", "write-weave-env"),
        ("start-runtime", "start-units"),
        ("import-images", "import-images"),
        ("start-units", "start-units"),
        ("kubelet-bootstrap", "check-kubelet"),
        ("start-kube-proxy", "start-units"),
        ("components-healthy", "check-health"),
        ("ready", "done"),
        ("failed", "fail"),
    ];
    for ((label, _, state), (want_label, want)) in table_states().into_iter().zip(expected) {
        assert_eq!(label, want_label);
        let (_, action) = next(&state, Observation::Tick, T0 + 1_000_000, 0.5);
        assert_eq!(kind(&action), want, "{label}");
    }
}

// ---- whole paths ----

#[test]
fn minion_path_and_its_actions() {
    let mut run = Run::new();
    let mut actions = Vec::new();
    for observation in happy_path(NodeRole::Minion) {
        run.advance(100);
        actions.push(run.feed(observation));
    }
    assert_eq!(
        actions.iter().map(kind).collect::<Vec<_>>(),
        vec![
            "read-role",
            "host-checks",
            "resolve-masters",
            "discover",
            "probe",
            "resolve-minions",
            "write-weave-env",
            "start-units",
            "import-images",
            "start-units",
            "check-kubelet",
            "start-units",
            "check-health",
            "done"
        ]
    );
    assert_eq!(
        actions[2],
        Action::Resolve {
            query: DnsQuery::Masters,
            name: "masters.prod.k8s".into()
        }
    );
    match &actions[3] {
        Action::Discover {
            server,
            connect_to,
            trust,
            advertise,
        } => {
            assert_eq!(
                advertise,
                &crate::advertise::AdvertiseChoice::OnlyAddress(ip(SELF)),
                "kubelet's --node-ip: the node's only global address"
            );
            assert_eq!(server, "https://masters.prod.k8s:6443");
            assert_eq!(connect_to, &vec![ip("10.0.1.1")]);
            assert_eq!(
                trust.ca_cert_hash.as_ref().map(|p| p.to_string()),
                Some(PIN.to_string())
            );
        }
        other => panic!("{other:?}"),
    }
    // After discovery the probe trusts the CA discovery wrote, and still the pin.
    match &actions[4] {
        Action::ProbeMaster {
            url,
            connect_to,
            trust,
        } => {
            assert_eq!(url, "https://masters.prod.k8s:6443/readyz");
            assert_eq!(connect_to, &vec![ip("10.0.1.1")]);
            assert_eq!(
                trust.ca_cert_hash.as_ref().map(|p| p.to_string()),
                Some(PIN.to_string())
            );
            assert_eq!(
                trust.ca_cert_file.as_deref(),
                Some(Path::new(CLUSTER_CA_FILE))
            );
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        actions[5],
        Action::Resolve {
            query: DnsQuery::Minions,
            name: "minions.prod.k8s".into()
        }
    );
    match &actions[6] {
        Action::WriteWeaveEnv {
            path,
            contents,
            keep,
            weave_cni,
        } => {
            assert!(weave_cni, "CNI=weave writes Weave's CNI configuration");
            assert_eq!(path, "run/k8s-agent/weave.env");
            let kept = crate::weave::KeptDecision::parse(keep).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(kept.cluster, "prod");
            assert!(kept.decision.is_core(), "{keep}");
            assert!(
                contents.contains("IPALLOC_INIT=consensus=3\n"),
                "{contents}"
            );
            assert!(
                contents.contains("KUBE_PEERS=\"10.0.0.1 10.0.0.2 10.0.0.3\"\n"),
                "{contents}"
            );
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        actions[7],
        Action::StartUnits {
            units: vec!["containerd.service".into()]
        }
    );
    assert_eq!(actions[8], Action::ImportImages);
    assert_eq!(
        actions[9],
        Action::StartUnits {
            units: group(NodeRole::Minion, UnitStage::Node)
        }
    );
    assert_eq!(actions[10], Action::CheckKubeletCredentials);
    assert_eq!(
        actions[11],
        Action::StartUnits {
            units: vec!["kube-proxy.service".into()]
        }
    );
    let state = &run.state;
    let phases: Vec<Phase> = state.transitions.iter().map(|t| t.phase).collect();
    assert_eq!(
        phases,
        vec![
            Role,
            HostCheck,
            ResolveMasters,
            Discovery,
            MasterHealthy,
            WeavePeers,
            StartRuntime,
            ImportImages,
            StartUnits,
            KubeletBootstrap,
            StartKubeProxy,
            ComponentsHealthy,
            Ready
        ]
    );
    assert!(matches!(
        state.images[0].outcome,
        ImageOutcome::Imported { .. }
    ));
    // Kubelet is started only after discovery and the master was healthy; kube-proxy only after the bootstrap.
    let healthy = state.entered(WeavePeers).unwrap_or(u64::MAX);
    let started = state.entered(StartUnits).unwrap_or(0);
    assert!(state.entered(Discovery) < state.entered(MasterHealthy));
    assert!(state.entered(MasterHealthy) < Some(healthy) && healthy < started);
    assert!(state.entered(KubeletBootstrap) < state.entered(StartKubeProxy));
    assert_eq!(state.units_started, units(NodeRole::Minion));
    assert_eq!(
        (state.dns_queries, state.probes, state.attempts_total),
        (2, 1, 0)
    );
    assert_eq!(state.cluster().map(|c| c.as_str()), Some("prod"));
    assert_eq!(state.weave.as_ref().map(|w| w.is_core()), Some(true));
    assert_eq!(
        state.discovered_server.as_deref(),
        Some("https://masters.prod.k8s:6443")
    );
    assert_eq!(state.node_name.as_deref(), Some("node-2"));
    assert!(matches!(
        state.kubelet_credentials,
        Some(KubeletCredentials::Issued { .. })
    ));
}

#[test]
fn master_path_starts_the_control_plane_then_makes_the_join_objects() {
    let mut run = Run::new();
    let actions: Vec<Action> = happy_path(NodeRole::Master)
        .into_iter()
        .map(|o| run.feed(o))
        .collect();
    assert_eq!(
        actions.iter().map(kind).collect::<Vec<_>>(),
        vec![
            "read-role",
            "host-checks",
            "ensure-pki",
            "start-units",
            "probe",
            "ensure-join-objects",
            "check-health",
            "done"
        ]
    );
    assert_eq!(
        actions[2],
        Action::EnsurePki {
            endpoint_host: "masters.prod.k8s".into(),
            advertise_addrs: vec![ip("10.0.1.1")],
            advertise: crate::advertise::AdvertiseChoice::OnlyAddress(ip("10.0.1.1")),
        }
    );
    assert_eq!(
        actions[3],
        Action::StartUnits {
            units: units(NodeRole::Master)
        }
    );
    // Its own API server, over loopback, verified against its own CA under the endpoint's name.
    assert_eq!(
        actions[4],
        Action::ProbeMaster {
            url: "https://masters.prod.k8s:6443/readyz".into(),
            connect_to: vec![ip("127.0.0.1")],
            trust: crate::role_file::MasterTrust {
                ca_cert_hash: None,
                ca_cert_file: Some(CLUSTER_CA_FILE.into()),
            },
        }
    );
    assert_eq!(
        actions[5],
        Action::EnsureJoinObjects {
            server: "https://masters.prod.k8s:6443".into(),
            connect_to: vec![ip("127.0.0.1")],
        }
    );
    let phases: Vec<Phase> = run.state.transitions.iter().map(|t| t.phase).collect();
    assert_eq!(
        phases,
        vec![
            Role,
            HostCheck,
            ControlPlanePki,
            StartControlPlane,
            ApiServerReady,
            JoinObjects,
            ComponentsHealthy,
            Ready
        ]
    );
    assert!(run.state.masters.is_none() && run.state.weave.is_none());
    assert_eq!(run.state.units_started.len(), MASTER_UNITS.len());
    assert_eq!(
        run.state.pki_written,
        vec!["etc/kubernetes/pki/apiserver.crt".to_string()]
    );
    assert_eq!(run.state.join_objects.len(), 2);
}

#[test]
fn a_master_is_not_ready_while_a_join_object_differs_or_fails() {
    let mut run = Run::from(walk_to(NodeRole::Master, JoinObjects));
    let differs = run.feed(objects(ObjectOutcome::Differs {
        what: "Secret kube-system/bootstrap-token-abcdef exists and differs in data".into(),
    }));
    assert!(
        wait_reason(&differs).starts_with("blocked: Secret"),
        "{differs:?}"
    );
    assert_eq!(wait_ms(&differs), BLOCKED_RETRY.as_millis() as u64);
    run.advance(wait_ms(&differs));
    assert_eq!(kind(&run.feed(Observation::Tick)), "ensure-join-objects");
    let failed = run.feed(objects(ObjectOutcome::Failed {
        reason: "POST …: HTTP 403".into(),
    }));
    assert!(wait_reason(&failed).contains("HTTP 403"), "{failed:?}");
    run.advance(wait_ms(&failed));
    run.feed(Observation::Tick);
    assert_eq!(
        kind(&run.feed(objects(ObjectOutcome::Unchanged))),
        "check-health"
    );
    assert_eq!(run.state.phase, ComponentsHealthy);
    assert_eq!(kind(&run.feed(healthy(NodeRole::Master))), "done");
    assert_eq!(run.state.phase, Ready);
}

#[test]
fn discovery_says_what_to_fix_and_the_masters_record_going_away_sends_it_back() {
    let mut run = Run::from(walk_to(NodeRole::Minion, Discovery));
    let refused = run.feed(Observation::Discovered(DiscoveryOutcome::Refused {
        reason: "the cluster-info signature does not verify with BOOTSTRAP_TOKEN's secret".into(),
    }));
    let reason = wait_reason(&refused);
    assert!(reason.starts_with("blocked: discovery:"), "{reason}");
    assert!(
        reason.contains(MINION_FILE) && reason.contains("systemctl restart k8s-agent"),
        "{reason}"
    );
    run.advance(wait_ms(&refused));
    assert_eq!(kind(&run.feed(Observation::Tick)), "discover");
    let action = run.feed(Observation::Dns {
        query: DnsQuery::Masters,
        result: DnsResult::NxDomain {
            negative_ttl_secs: Some(5),
        },
    });
    assert_eq!((run.state.phase, kind(&action)), (ResolveMasters, "wait"));
}

#[test]
fn http_probe_minions_skip_discovery_and_the_bootstrap() {
    let mut run = Run::new();
    run.feed(Observation::Tick);
    run.feed(Observation::RoleParsed(Box::new(config(
        NodeRole::Minion,
        "MASTER_PROBE=http\n",
    ))));
    run.feed(Observation::HostChecksPassed {
        local_addrs: vec![ip(SELF)],
    });
    let probe = run.feed(Observation::Dns {
        query: DnsQuery::Masters,
        result: masters_answer(),
    });
    assert_eq!((run.state.phase, kind(&probe)), (MasterHealthy, "probe"));
    run.feed(Observation::MasterProbe(ProbeResult::Healthy));
    run.feed(Observation::Dns {
        query: DnsQuery::Minions,
        result: minions_answer(),
    });
    run.feed(Observation::WeaveEnvWritten);
    run.feed(Observation::UnitsStarted(group(
        NodeRole::Minion,
        UnitStage::Runtime,
    )));
    run.feed(Observation::ImagesImported(vec![]));
    let proxy = run.feed(Observation::UnitsStarted(group(
        NodeRole::Minion,
        UnitStage::Node,
    )));
    assert_eq!(
        (run.state.phase, proxy),
        (
            StartKubeProxy,
            Action::StartUnits {
                units: vec!["kube-proxy.service".into()]
            }
        )
    );
}

#[test]
fn cni_none_computes_no_weave_start_up_and_starts_no_weave() {
    let mut run = Run::new();
    run.feed(Observation::Tick);
    let text =
        format!("CLUSTER_NAME=prod\nCA_CERT_HASH={PIN}\nBOOTSTRAP_TOKEN={TOKEN}\nCNI=none\n");
    let config = parse_role_file(Path::new(MINION_FILE), NodeRole::Minion, &text)
        .unwrap_or_else(|e| panic!("{e}"));
    run.feed(Observation::RoleParsed(Box::new(config)));
    run.feed(Observation::HostChecksPassed {
        local_addrs: vec![ip(SELF)],
    });
    run.feed(Observation::Dns {
        query: DnsQuery::Masters,
        result: masters_answer(),
    });
    run.feed(joined());
    let runtime = run.feed(Observation::MasterProbe(ProbeResult::Healthy));
    assert_eq!(
        (run.state.phase, runtime),
        (
            StartRuntime,
            Action::StartUnits {
                units: vec!["containerd.service".into()]
            }
        )
    );
    run.feed(Observation::UnitsStarted(vec!["containerd.service".into()]));
    let node = run.feed(Observation::ImagesImported(vec![]));
    assert_eq!(
        node,
        Action::StartUnits {
            units: vec!["kubelet.service".into()]
        }
    );
    assert!(run.state.weave.is_none() && run.state.minions.is_none());
    assert!(!run.state.transitions.iter().any(|t| t.phase == WeavePeers));
}

#[test]
fn cni_bridge_keeps_the_weave_decision_unapplied_and_sets_up_the_pod_network_after_the_bootstrap() {
    use crate::pod_network::{Ipv4Cidr, SetUpOutcome};
    let mut run = Run::new();
    run.feed(Observation::Tick);
    run.feed(Observation::RoleParsed(Box::new(config(
        NodeRole::Minion,
        "CNI=bridge\n",
    ))));
    run.feed(Observation::HostChecksPassed {
        local_addrs: vec![ip(SELF)],
    });
    run.feed(Observation::Dns {
        query: DnsQuery::Masters,
        result: masters_answer(),
    });
    run.feed(joined());
    run.feed(Observation::MasterProbe(ProbeResult::Healthy));
    assert_eq!(run.state.phase, WeavePeers, "WEAVE_CONSENSUS set: decided");
    let write = run.feed(Observation::Dns {
        query: DnsQuery::Minions,
        result: minions_answer(),
    });
    match &write {
        Action::WriteWeaveEnv { weave_cni, .. } => {
            assert!(!weave_cni, "CNI=bridge: no Weave CNI configuration")
        }
        other => panic!("expected the weave env, got {other:?}"),
    }
    run.feed(Observation::WeaveEnvWritten);
    run.feed(Observation::UnitsStarted(vec!["containerd.service".into()]));
    let node = run.feed(Observation::ImagesImported(vec![]));
    assert_eq!(
        node,
        Action::StartUnits {
            units: vec!["kubelet.service".into()]
        },
        "weave.service is not started with CNI=bridge"
    );
    run.feed(Observation::UnitsStarted(vec!["kubelet.service".into()]));
    let setup = run.feed(issued());
    assert_eq!(run.state.phase, PodNetwork);
    assert!(matches!(&setup, Action::SetUpPodNetwork { node, .. } if node == "node-2"));
    let wait = run.feed(Observation::PodNetworkSetUp(SetUpOutcome::NotYet {
        reason: "the Node node-2 has no podCIDR yet".into(),
    }));
    assert!(wait_reason(&wait).contains("no podCIDR yet"), "{wait:?}");
    assert_eq!(run.state.phase, PodNetwork);
    let cidr = Ipv4Cidr::parse("10.32.4.0/24").unwrap();
    let proxy = run.feed(Observation::PodNetworkSetUp(SetUpOutcome::Ready {
        pod_cidr: cidr,
    }));
    assert_eq!(
        proxy,
        Action::StartUnits {
            units: vec!["kube-proxy.service".into()]
        }
    );
    assert_eq!(run.state.pod_cidr, Some(cidr));
    let health = run.feed(Observation::UnitsStarted(vec!["kube-proxy.service".into()]));
    match health {
        Action::CheckHealth { checks, .. } => assert!(
            checks.iter().any(|c| matches!(
                c,
                crate::health::HealthCheck::PodRoutes { minions, node: Some(n), .. }
                    if minions == "minions.prod.k8s" && n == "node-2"
            )),
            "{checks:?}"
        ),
        other => panic!("expected the health checks, got {other:?}"),
    }
}

#[test]
fn units_started_one_by_one() {
    let mut run = Run::from(walk_to(NodeRole::Minion, StartUnits));
    let action = run.feed(Observation::UnitsStarted(vec!["weave.service".into()]));
    assert_eq!(
        action,
        Action::StartUnits {
            units: group(NodeRole::Minion, UnitStage::Node)[1..].to_vec()
        }
    );
    // No progress: back off instead of spinning.
    let action = run.feed(Observation::UnitsStarted(vec![]));
    assert_eq!(kind(&action), "wait");
    run.advance(wait_ms(&action));
    assert_eq!(
        run.feed(Observation::Tick),
        Action::StartUnits {
            units: group(NodeRole::Minion, UnitStage::Node)[1..].to_vec()
        }
    );
    let action = run.feed(Observation::UnitsStarted(
        group(NodeRole::Minion, UnitStage::Node)[1..].to_vec(),
    ));
    assert_eq!(
        (action, run.state.phase),
        (Action::CheckKubeletCredentials, KubeletBootstrap)
    );
}

#[test]
fn role_file_not_there_yet_is_watched() {
    let mut run = Run::new();
    assert_eq!(run.feed(Observation::Tick), Action::ReadRoleFile);
    let none = Observation::RoleDiscovery(RoleDiscovery::NoneYet {
        master: MASTER_FILE.into(),
        minion: MINION_FILE.into(),
    });
    let action = run.feed(none);
    assert!(wait_reason(&action).starts_with("cloud-init has not written a role file yet"));
    assert_eq!(wait_ms(&action), 250);
}

#[test]
fn both_role_files_refuse_and_start_nothing() {
    let mut run = Run::new();
    let action = run.feed(Observation::RoleDiscovery(RoleDiscovery::Both {
        master: MASTER_FILE.into(),
        minion: MINION_FILE.into(),
    }));
    match action {
        Action::Fail { reason } => assert!(reason.contains("nothing was started"), "{reason}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(run.state.phase, Failed);
    assert_eq!(
        run.feed(Observation::Tick),
        Action::Fail {
            reason: run.state.failure.clone().unwrap_or_default()
        }
    );
}

#[test]
fn host_checks_retry_then_fail() {
    let mut run = Run::from(walk_to(NodeRole::Minion, HostCheck));
    let failed = || Observation::HostChecksFailed {
        failures: vec!["br_netfilter not loaded".into()],
    };
    let mut delays = Vec::new();
    for _ in 1..HOST_CHECK_ATTEMPTS {
        let action = run.feed(failed());
        delays.push(wait_ms(&action));
        assert!(wait_reason(&action).contains("br_netfilter not loaded"));
        run.advance(*delays.last().unwrap_or(&0));
        assert_eq!(run.feed(Observation::Tick), Action::RunHostChecks);
    }
    assert_eq!(delays, vec![250, 500, 1000, 2000]);
    match run.feed(failed()) {
        Action::Fail { reason } => {
            assert!(reason.contains("failed 5 times") && reason.contains("k8s-agent check"))
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        run.state.failed_checks,
        vec!["br_netfilter not loaded".to_string()]
    );
}

// ---- backoff through the machine ----

#[test]
fn nxdomain_backoff_sequence_and_reason() {
    let mut run = Run::from(walk_to(NodeRole::Minion, ResolveMasters));
    let mut delays = Vec::new();
    for _ in 0..6 {
        let action = run.feed_then_wait(Observation::Dns {
            query: DnsQuery::Masters,
            result: DnsResult::NxDomain {
                negative_ttl_secs: None,
            },
        });
        delays.push(wait_ms(&action));
        if delays.len() == 1 {
            assert_eq!(
                wait_reason(&action),
                "waiting for masters.prod.k8s to resolve: NXDOMAIN (no such name) — the DNS record is created when \
                 the master group has a healthy instance"
            );
        }
        assert_eq!(kind(&run.feed(Observation::Tick)), "resolve-masters");
    }
    assert_eq!(delays, vec![250, 500, 750, 750, 750, 750]);
}

#[test]
fn jitter_spreads_the_waits() {
    let state = walk_to(NodeRole::Minion, ResolveMasters);
    let nx = || Observation::Dns {
        query: DnsQuery::Masters,
        result: DnsResult::NxDomain {
            negative_ttl_secs: None,
        },
    };
    let delays: Vec<u64> = [0.0, 0.25, 0.5, 1.0]
        .iter()
        .map(|j| wait_ms(&next(&state, nx(), state.since, *j).1))
        .collect();
    assert_eq!(delays, vec![200, 225, 250, 300]);
}

#[test]
fn negative_ttl_is_a_floor_up_to_the_cap() {
    let state = walk_to(NodeRole::Minion, ResolveMasters);
    let nx = |ttl| Observation::Dns {
        query: DnsQuery::Masters,
        result: DnsResult::NxDomain {
            negative_ttl_secs: ttl,
        },
    };
    assert_eq!(wait_ms(&next(&state, nx(Some(0)), state.since, 0.5).1), 250);
    assert_eq!(
        wait_ms(&next(&state, nx(Some(900)), state.since, 0.5).1),
        750
    );
    // After PATIENCE in the phase the cap (and so the floor) is 10 s.
    let late = state.since + PATIENCE.as_millis() as u64;
    assert_eq!(wait_ms(&next(&state, nx(Some(900)), late, 0.5).1), 10_000);
}

#[test]
fn resolver_errors_back_off_harder() {
    let mut run = Run::from(walk_to(NodeRole::Minion, ResolveMasters));
    let mut delays = Vec::new();
    for _ in 0..8 {
        let action = run.feed_then_wait(Observation::Dns {
            query: DnsQuery::Masters,
            result: DnsResult::ServFail,
        });
        delays.push(wait_ms(&action));
        run.feed(Observation::Tick);
    }
    assert_eq!(
        delays,
        vec![250, 500, 1000, 2000, 4000, 8000, 10_000, 10_000]
    );
}

#[test]
fn backoff_resets_on_phase_change() {
    let mut run = Run::from(walk_to(NodeRole::Minion, ResolveMasters));
    for _ in 0..4 {
        run.feed_then_wait(Observation::Dns {
            query: DnsQuery::Masters,
            result: DnsResult::Timeout,
        });
        run.feed(Observation::Tick);
    }
    assert_eq!(run.state.attempt, 4);
    assert_eq!(
        kind(&run.feed(Observation::Dns {
            query: DnsQuery::Masters,
            result: masters_answer()
        })),
        "discover"
    );
    assert_eq!(run.state.attempt, 0);
    assert_eq!(kind(&run.feed(joined())), "probe");
    let action = run.feed(Observation::MasterProbe(ProbeResult::Unreachable {
        message: "refused".into(),
    }));
    assert_eq!(wait_ms(&action), 250);
}

#[test]
fn an_early_tick_or_stray_observation_gets_the_rest_of_the_wait() {
    let mut run = Run::from(walk_to(NodeRole::Minion, ResolveMasters));
    let action = run.feed(Observation::Dns {
        query: DnsQuery::Masters,
        result: DnsResult::ServFail,
    });
    assert_eq!(wait_ms(&action), 250);
    run.advance(100);
    let early = run.feed(Observation::Tick);
    assert_eq!(
        (wait_ms(&early), wait_reason(&early)),
        (150, wait_reason(&action))
    );
    let stray = run.feed(Observation::WeaveEnvWritten);
    assert_eq!(wait_ms(&stray), 150);
    assert_eq!(run.state.attempt, 1, "neither counts as an attempt");
    run.advance(150);
    assert_eq!(kind(&run.feed(Observation::Tick)), "resolve-masters");
}

#[test]
fn probe_failures_are_watched_quickly() {
    let mut run = Run::from(walk_to(NodeRole::Minion, MasterHealthy));
    let mut delays = Vec::new();
    for _ in 0..5 {
        let action = run.feed_then_wait(Observation::MasterProbe(ProbeResult::HttpStatus {
            status: 503,
        }));
        delays.push(wait_ms(&action));
        assert!(wait_reason(&action).contains("answered HTTP 503"));
        assert_eq!(kind(&run.feed(Observation::Tick)), "probe");
    }
    assert_eq!(delays, vec![250, 500, 750, 750, 750]);
}

#[test]
fn tls_untrusted_blocks_with_a_long_fixed_retry_and_says_what_to_fix() {
    let mut run = Run::from(walk_to(NodeRole::Minion, MasterHealthy));
    let untrusted = || {
        Observation::MasterProbe(ProbeResult::TlsUntrusted {
            message: "certificate's public key does not match CA_CERT_HASH".into(),
        })
    };
    let start = run.now;
    let mut delays = Vec::new();
    for _ in 0..4 {
        let action = run.feed_then_wait(untrusted());
        delays.push(wait_ms(&action));
        let reason = wait_reason(&action);
        for needle in [
            "blocked",
            "CA_CERT_HASH",
            MINION_FILE,
            "masters.prod.k8s",
            "SAN",
            "systemctl restart k8s-agent",
        ] {
            assert!(reason.contains(needle), "{needle} missing from {reason}");
        }
        assert_eq!(kind(&run.feed(Observation::Tick)), "probe");
    }
    assert_eq!(delays, vec![BLOCKED_RETRY.as_millis() as u64; 4]);
    // Two probes a minute, no DNS at all while blocked.
    assert_eq!(run.now - start, 120_000);
    assert_eq!(run.state.dns_queries, 1);
    assert_eq!(run.state.phase, MasterHealthy);
}

#[test]
fn an_unreachable_master_is_re_resolved_after_its_ttl() {
    let mut run = Run::from(walk_to(NodeRole::Minion, MasterHealthy));
    let refused = || {
        Observation::MasterProbe(ProbeResult::Unreachable {
            message: "connection refused".into(),
        })
    };
    // Within the TTL (30 s): probe again, no DNS.
    run.feed_then_wait(refused());
    assert_eq!(kind(&run.feed(Observation::Tick)), "probe");
    // After it: resolve first, then probe the new address at once.
    run.advance(30_000);
    run.feed_then_wait(refused());
    assert_eq!(kind(&run.feed(Observation::Tick)), "resolve-masters");
    let new_answer = DnsResult::Answers {
        addrs: vec![ip("10.0.1.9")],
        ttl_secs: 30,
    };
    match run.feed(Observation::Dns {
        query: DnsQuery::Masters,
        result: new_answer,
    }) {
        Action::ProbeMaster { connect_to, .. } => assert_eq!(connect_to, vec![ip("10.0.1.9")]),
        other => panic!("{other:?}"),
    }
    assert_eq!(run.state.phase, MasterHealthy);
}

#[test]
fn a_zero_ttl_answer_is_re_resolved_at_most_every_five_seconds() {
    let mut run = Run::from(walk_to(NodeRole::Minion, ResolveMasters));
    run.feed(Observation::Dns {
        query: DnsQuery::Masters,
        result: DnsResult::Answers {
            addrs: vec![ip("10.0.1.1")],
            ttl_secs: 0,
        },
    });
    run.feed(joined());
    let mut resolves = 0;
    let start = run.now;
    while run.now - start < 60_000 {
        let action = run.feed_then_wait(Observation::MasterProbe(ProbeResult::Timeout));
        assert_eq!(kind(&action), "wait");
        if kind(&run.feed(Observation::Tick)) == "resolve-masters" {
            resolves += 1;
            run.feed(Observation::Dns {
                query: DnsQuery::Masters,
                result: DnsResult::Answers {
                    addrs: vec![ip("10.0.1.1")],
                    ttl_secs: 0,
                },
            });
        }
    }
    assert!(
        (10..=13).contains(&resolves),
        "{resolves} re-resolutions in a minute"
    );
}

#[test]
fn the_masters_record_disappearing_goes_back_to_resolving() {
    let mut run = Run::from(walk_to(NodeRole::Minion, MasterHealthy));
    run.advance(60_000);
    run.feed_then_wait(Observation::MasterProbe(ProbeResult::Unreachable {
        message: "no route".into(),
    }));
    assert_eq!(kind(&run.feed(Observation::Tick)), "resolve-masters");
    let action = run.feed(Observation::Dns {
        query: DnsQuery::Masters,
        result: DnsResult::NxDomain {
            negative_ttl_secs: None,
        },
    });
    assert_eq!((run.state.phase, wait_ms(&action)), (ResolveMasters, 250));
}

#[test]
fn minions_wait_for_n_with_a_readable_reason() {
    let mut run = Run::from(walk_to(NodeRole::Minion, WeavePeers));
    let two = DnsResult::Answers {
        addrs: vec![ip(SELF), ip("10.0.0.1"), ip("10.0.0.1"), ip("fd00::1")],
        ttl_secs: 0,
    };
    let action = run.feed(Observation::Dns {
        query: DnsQuery::Minions,
        result: two,
    });
    assert_eq!(
        wait_reason(&action),
        "waiting for minions.prod.k8s to list WEAVE_CONSENSUS=3 minions: it lists 2 (10.0.0.1 10.0.0.2) — the \
         record lists the minion group's healthy instances"
    );
    assert_eq!(
        run.state.minion_answer_notes,
        vec![
            "fd00::1 ignored: weave peers are IPv4 addresses".to_string(),
            "10.0.0.1 listed more than once".into()
        ]
    );
    assert!(run.state.weave.is_none());
}

#[test]
fn a_late_joiner_observes() {
    let mut run = Run::from(walk_to(NodeRole::Minion, WeavePeers));
    let four = DnsResult::Answers {
        addrs: ["10.0.0.1", SELF, "10.0.0.3", "10.0.0.4"].map(ip).to_vec(),
        ttl_secs: 0,
    };
    match run.feed(Observation::Dns {
        query: DnsQuery::Minions,
        result: four,
    }) {
        Action::WriteWeaveEnv { contents, .. } => {
            assert!(contents.contains("IPALLOC_INIT=observer\n"), "{contents}")
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn too_many_minion_records_block() {
    let mut run = Run::from(walk_to(NodeRole::Minion, WeavePeers));
    let huge: Vec<IpAddr> = (0..1001u32)
        .map(|i| IpAddr::V4(std::net::Ipv4Addr::from(0x0a00_0000 + i)))
        .collect();
    let action = run.feed(Observation::Dns {
        query: DnsQuery::Minions,
        result: DnsResult::Answers {
            addrs: huge,
            ttl_secs: 0,
        },
    });
    assert_eq!(wait_ms(&action), BLOCKED_RETRY.as_millis() as u64);
    assert!(wait_reason(&action).contains("1001 addresses"));
}

#[test]
fn no_local_ipv4_fails_rather_than_guessing() {
    let mut run = Run::new();
    run.feed(Observation::Tick);
    run.feed(Observation::RoleParsed(Box::new(config(
        NodeRole::Minion,
        "",
    ))));
    run.feed(Observation::HostChecksPassed {
        local_addrs: vec![ip("::1")],
    });
    run.feed(Observation::Dns {
        query: DnsQuery::Masters,
        result: masters_answer(),
    });
    run.feed(joined());
    run.feed(Observation::MasterProbe(ProbeResult::Healthy));
    let action = run.feed(Observation::Dns {
        query: DnsQuery::Minions,
        result: minions_answer(),
    });
    assert_eq!(kind(&action), "fail");
    assert!(run.state.weave.is_none());
}

#[test]
fn the_weave_decision_is_never_recomputed() {
    let mut run = Run::from(walk(NodeRole::Minion, |s| s.weave.is_some()));
    let decided = run.state.weave.clone();
    // A later, different answer is ignored: the same file is written again.
    let bigger = DnsResult::Answers {
        addrs: ["10.0.0.1", SELF, "10.0.0.3", "10.0.0.4"].map(ip).to_vec(),
        ttl_secs: 0,
    };
    match run.feed(Observation::Dns {
        query: DnsQuery::Minions,
        result: bigger,
    }) {
        Action::WriteWeaveEnv { contents, .. } => assert!(contents.contains("consensus=3")),
        other => panic!("{other:?}"),
    }
    assert_eq!(run.state.weave, decided);
}

#[test]
fn a_unit_failure_fails_with_the_journal_hint() {
    let mut run = Run::from(walk_to(NodeRole::Minion, StartUnits));
    let action = run.feed(Observation::UnitFailed {
        already_started: vec!["containerd.service".into(), "weave.service".into()],
        failure: kubelet_failed(),
    });
    match action {
        Action::Fail { reason } => assert_eq!(
            reason,
            "kubelet.service did not start (ActiveState=failed SubState=failed Result=exit-code) — hint: see \
             `journalctl -u kubelet.service`; after fixing it, `systemctl restart k8s-agent` starts the remaining units"
        ),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        run.state.units_started,
        vec!["containerd.service".to_string(), "weave.service".into()]
    );
}

// ---- resume ----

fn resumed(state: AgentState) -> (AgentState, Action) {
    let now = state.since + 5_000;
    // Through JSON, as the executor does.
    let json = serde_json::to_string(&state).unwrap_or_default();
    let persisted: AgentState =
        serde_json::from_str(&json).unwrap_or_else(|e| panic!("{e}: {json}"));
    assert_eq!(persisted, state);
    AgentState::resume(persisted, now).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn resume_ready_does_nothing() {
    let (state, action) = resumed(walk_to(NodeRole::Minion, Ready));
    assert_eq!(
        (state.phase, action, state.restarts),
        (Ready, Action::Done, 1)
    );
}

#[test]
fn resume_start_units_starts_only_the_rest() {
    let mut run = Run::from(walk_to(NodeRole::Minion, StartUnits));
    run.feed(Observation::UnitsStarted(vec![
        "containerd.service".into(),
        "weave.service".into(),
    ]));
    let (state, action) = resumed(run.state);
    assert_eq!(state.phase, StartUnits);
    assert_eq!(
        action,
        Action::StartUnits {
            units: vec!["kubelet.service".into()]
        }
    );
}

#[test]
fn resume_start_control_plane_starts_only_the_rest() {
    let mut run = Run::from(walk_to(NodeRole::Master, StartControlPlane));
    run.feed(Observation::UnitsStarted(vec!["etcd.service".into()]));
    let (_, action) = resumed(run.state);
    assert_eq!(
        action,
        Action::StartUnits {
            units: units(NodeRole::Master)[1..].to_vec()
        }
    );
}

#[test]
fn resume_after_the_weave_decision_writes_the_same_file() {
    let before = walk(NodeRole::Minion, |s| s.weave.is_some());
    let contents_before = before
        .weave
        .as_ref()
        .map(crate::weave::render_env)
        .unwrap_or_default();
    let (state, action) = resumed(before.clone());
    assert_eq!(state.phase, WeavePeers);
    assert_eq!(
        action,
        Action::WriteWeaveEnv {
            path: crate::weave::WEAVE_ENV_FILE.into(),
            contents: contents_before,
            keep: crate::weave::KeptDecision::new("prod", before.weave.as_ref().expect("decided"))
                .render(),
            weave_cni: true,
        }
    );
    assert_eq!(state.weave, before.weave);
}

#[test]
fn resume_before_anything_irreversible_rereads_the_role_file() {
    for phase in [Role, HostCheck, ResolveMasters, MasterHealthy, WeavePeers] {
        let before = walk_to(NodeRole::Minion, phase);
        let (state, action) = resumed(before.clone());
        assert_eq!(
            (state.phase, &action),
            (Role, &Action::ReadRoleFile),
            "{phase}"
        );
        assert_eq!(
            state.transitions.len(),
            before.transitions.len() + 1,
            "{phase}: history kept"
        );
        assert_eq!(state.node, before.node, "{phase}");
    }
}

#[test]
fn resume_after_a_failure_keeps_the_weave_decision_and_started_units() {
    let mut run = Run::from(walk_to(NodeRole::Minion, StartUnits));
    run.feed(Observation::UnitFailed {
        already_started: vec!["containerd.service".into(), "weave.service".into()],
        failure: kubelet_failed(),
    });
    let decision = run.state.weave.clone();
    let (state, action) = resumed(run.state);
    assert_eq!(
        (state.phase, action, state.failure.clone()),
        (Role, Action::ReadRoleFile, None)
    );
    // The whole way again: no new minions lookup, the same env file, only the units not started yet.
    let mut run = Run::from(state);
    let mut actions = Vec::new();
    for observation in happy_path(NodeRole::Minion).into_iter().skip(1).take(6) {
        actions.push(run.feed(observation));
    }
    assert_eq!(
        actions.iter().map(kind).collect::<Vec<_>>(),
        vec![
            "host-checks",
            "resolve-masters",
            "discover",
            "probe",
            "write-weave-env",
            "write-weave-env"
        ]
    );
    // (the stray minions answer above was treated as a tick: the decision was already made)
    assert_eq!(run.state.weave, decision);
    // containerd ran already: straight to the images (present now: nothing re-imported), then only kubelet.
    assert_eq!(run.feed(Observation::WeaveEnvWritten), Action::ImportImages);
    assert_eq!(
        run.feed(images(ImageOutcome::Present)),
        Action::StartUnits {
            units: vec!["kubelet.service".into()]
        }
    );
}

#[test]
fn resume_with_a_changed_role_file_refuses_to_mix_configurations() {
    let mut run = Run::from(walk_to(NodeRole::Minion, StartUnits));
    run.feed(Observation::UnitFailed {
        already_started: vec!["containerd.service".into()],
        failure: kubelet_failed(),
    });
    let (state, _) = resumed(run.state);
    let mut run = Run::from(state);
    let other_cluster = parse_role_file(
        Path::new(MINION_FILE),
        NodeRole::Minion,
        &format!(
            "CLUSTER_NAME=staging\nCA_CERT_HASH={PIN}\nBOOTSTRAP_TOKEN={TOKEN}\nWEAVE_CONSENSUS=3\n"
        ),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    match run.feed(Observation::RoleParsed(Box::new(other_cluster))) {
        Action::Fail { reason } => assert!(reason.contains("reboot the node"), "{reason}"),
        other => panic!("{other:?}"),
    }
    // A changed CA pin alone is fine (that is how a TLS block is fixed).
    let (state, _) = resumed(walk_to(NodeRole::Minion, MasterHealthy));
    let mut run = Run::from(state);
    let new_pin = config(
        NodeRole::Minion,
        "CA_CERT_FILE=/etc/kubernetes/pki/ca.crt\n",
    );
    assert_eq!(
        run.feed(Observation::RoleParsed(Box::new(new_pin))),
        Action::RunHostChecks
    );
    assert_eq!(
        run.state
            .node
            .as_ref()
            .and_then(|n| n.master_trust.ca_cert_file.clone()),
        Some(PathBuf::from("/etc/kubernetes/pki/ca.crt"))
    );
}

#[test]
fn resume_refuses_another_schema() {
    let mut state = AgentState::new(T0);
    state.schema_version = 99;
    assert_eq!(
        AgentState::resume(state, T0),
        Err(ResumeError::SchemaVersion {
            found: 99,
            expected: STATE_SCHEMA_VERSION
        })
    );
}

#[test]
fn every_state_on_both_paths_reads_back_as_written() {
    for role in NodeRole::ALL {
        let mut run = Run::new();
        for observation in happy_path(role) {
            run.advance(10);
            run.feed(observation);
            let json = serde_json::to_string(&run.state).expect("serialises");
            let back: AgentState = serde_json::from_str(&json)
                .unwrap_or_else(|e| panic!("{role} in {}: {e}\n{json}", run.state.phase));
            assert_eq!(back, run.state, "{role} in {}", run.state.phase);
        }
    }
    let master = walk_to(NodeRole::Master, Ready);
    let json = serde_json::to_value(&master).unwrap_or_default();
    assert_eq!(
        json["join_objects"][1],
        serde_json::json!({"object": "Secret kube-system/bootstrap-token-abcdef", "outcome": "created"})
    );
}

#[test]
fn state_json_is_stable_and_readable() {
    let state = walk_to(NodeRole::Minion, Ready);
    let json = serde_json::to_value(&state).unwrap_or_default();
    assert_eq!(json["phase"], "ready");
    assert_eq!(json["node"]["role"], "minion");
    assert_eq!(json["node"]["cluster"], "prod");
    assert_eq!(json["weave"]["ipalloc_init"], "consensus=3");
    assert_eq!(
        json["weave"]["peers"],
        serde_json::json!(["10.0.0.1", "10.0.0.2", "10.0.0.3"])
    );
    assert_eq!(json["masters"]["result"]["kind"], "answers");
    assert_eq!(
        json["transitions"][0],
        serde_json::json!({"phase": "role", "at": T0})
    );
    assert!(
        json["node"]["master_trust"]["ca_cert_hash"]
            .as_str()
            .unwrap_or_default()
            .starts_with("sha256:")
    );
    assert_eq!(
        MINION_UNITS.len(),
        json["units_started"]
            .as_array()
            .map(|a| a.len())
            .unwrap_or(0)
    );
}

// ---- self-registration (DNS_UPDATE_*) ----

const DNS_UPDATE: &str = "DNS_UPDATE_SERVER=10.0.9.9\nDNS_UPDATE_TSIG_NAME=k8s-agent\n\
                          DNS_UPDATE_TSIG_FILE=/etc/k8s-agent/dns-update.key\n";

/// A minion with `DNS_UPDATE_*` just past its host checks, and the action that got it into `RegisterDns`.
fn registering_minion() -> (Run, Action) {
    let mut run = Run::new();
    run.feed(Observation::Tick);
    run.feed(Observation::RoleParsed(Box::new(config(
        NodeRole::Minion,
        DNS_UPDATE,
    ))));
    let action = run.feed(Observation::HostChecksPassed {
        local_addrs: vec![ip(SELF)],
    });
    (run, action)
}

fn registered(records: &[&str]) -> Observation {
    Observation::DnsUpdated(DnsUpdateOutcome::Registered {
        address: ip(SELF),
        records: records.iter().map(|r| r.to_string()).collect(),
    })
}

#[test]
fn a_registering_minion_adds_itself_before_it_looks_for_the_masters() {
    let (mut run, action) = registering_minion();
    assert_eq!(run.state.phase, Phase::RegisterDns);
    let Action::RegisterDns { update } = action else {
        panic!("expected RegisterDns, got {action:?}")
    };
    assert_eq!(update.record_list(), "minions.prod.k8s");
    assert_eq!(update.server.to_string(), "10.0.9.9:53");
    let action = run.feed(registered(&["minions.prod.k8s"]));
    assert_eq!(run.state.phase, Phase::ResolveMasters);
    assert_eq!(kind(&action), "resolve-masters");
    let registration = run.state.dns_registration.clone().expect("recorded");
    assert_eq!(registration.address, ip(SELF));
}

#[test]
fn a_registering_master_adds_itself_once_nodes_can_join() {
    let mut run = Run::new();
    let master = config(NodeRole::Master, DNS_UPDATE);
    let mut observations = happy_path(NodeRole::Master);
    observations[1] = Observation::RoleParsed(Box::new(master));
    let mut last = Action::Done;
    for observation in observations {
        run.advance(10);
        last = run.feed(observation);
    }
    assert_eq!(
        run.state.phase,
        Phase::RegisterDns,
        "after the join objects"
    );
    let Action::RegisterDns { update } = last else {
        panic!("expected RegisterDns, got {last:?}")
    };
    assert_eq!(update.record_list(), "masters.prod.k8s");
    assert_eq!(
        kind(&run.feed(registered(&["masters.prod.k8s"]))),
        "check-health"
    );
    assert_eq!(run.feed(healthy(NodeRole::Master)), Action::Done);
    assert_eq!(run.state.phase, Phase::Ready);
}

#[test]
fn a_refused_or_unsignable_update_blocks_with_the_reason_and_a_plain_error_backs_off() {
    let (mut run, _) = registering_minion();
    let refused = run.feed(Observation::DnsUpdated(DnsUpdateOutcome::Refused {
        rcode: "NOTAUTH".into(),
        tsig_error: Some("BADSIG".into()),
    }));
    assert_eq!(wait_ms(&refused), BLOCKED_RETRY.as_millis() as u64);
    let reason = wait_reason(&refused);
    assert!(
        reason.contains("10.0.9.9:53 refused") && reason.contains("BADSIG"),
        "{reason}"
    );
    assert_eq!(run.state.phase, Phase::RegisterDns);
    assert!(run.state.dns_registration.is_none());
    run.advance(BLOCKED_RETRY.as_millis() as u64);
    assert_eq!(kind(&run.feed(Observation::Tick)), "register-dns");
    let key = run.feed(Observation::DnsUpdated(DnsUpdateOutcome::KeyFile {
        problem: "the key file /etc/k8s-agent/dns-update.key does not exist".into(),
    }));
    assert!(wait_reason(&key).contains("nothing was sent"), "{key:?}");
    run.advance(BLOCKED_RETRY.as_millis() as u64);
    run.feed(Observation::Tick);
    let error = run.feed(Observation::DnsUpdated(DnsUpdateOutcome::Unreachable {
        message: "no answer from 10.0.9.9:53 within 5 s".into(),
    }));
    assert!(
        wait_ms(&error) < BLOCKED_RETRY.as_millis() as u64,
        "{error:?}"
    );
}

#[test]
fn a_restarted_agent_re_asserts_its_records_and_goes_on_whatever_the_answer() {
    let (mut run, _) = registering_minion();
    run.feed(registered(&["minions.prod.k8s"]));
    for observation in happy_path(NodeRole::Minion).into_iter().skip(3) {
        run.advance(10);
        run.feed(observation);
    }
    assert_eq!(run.state.phase, Phase::Ready);
    // Stopped cleanly (dns-deregister removed the record), started again: put the record back, stay Ready.
    let (state, action) = resumed(run.state.clone());
    assert_eq!(kind(&action), "register-dns");
    let mut again = Run::from(state);
    assert_eq!(
        again.feed(Observation::DnsUpdated(DnsUpdateOutcome::Unreachable {
            message: "no answer".into()
        })),
        Action::Done
    );
    assert_eq!(again.state.phase, Phase::Ready);
    assert_eq!(again.state.dns_update_problem.as_deref(), Some("no answer"));
    // Without a registration on this boot (none configured), a resume does not register.
    let plain = walk_to(NodeRole::Minion, Phase::Ready);
    assert_eq!(resumed(plain).1, Action::Done);
}

#[test]
fn the_registration_keys_are_checked_together() {
    let bad = |extra: &str| {
        parse_role_file(
            Path::new(MINION_FILE),
            NodeRole::Minion,
            &format!(
                "CLUSTER_NAME=prod\nCA_CERT_HASH={PIN}\nBOOTSTRAP_TOKEN={TOKEN}\nWEAVE_CONSENSUS=3\n{extra}"
            ),
        )
        .expect_err(extra)
        .to_string()
    };
    assert!(bad("DNS_UPDATE_TSIG_NAME=k\n").contains("has no DNS_UPDATE_SERVER"));
    assert!(
        bad("DNS_UPDATE_SERVER=10.0.0.1\nDNS_UPDATE_TSIG_FILE=/k\n")
            .contains("DNS_UPDATE_TSIG_NAME")
    );
    assert!(
        bad(&format!("{DNS_UPDATE}DNS_UPDATE_ZONE=example.org\n"))
            .contains("not in the zone example.org")
    );
    assert!(bad("DNS_UPDATE_SERVER=ns1.example\n").contains("is not an IP address"));
    assert!(
        bad(&format!("{DNS_UPDATE}DNS_UPDATE_TSIG_ALGORITHM=hmac-md5\n")).contains("hmac-sha256")
    );
    assert!(bad(&format!("{DNS_UPDATE}DNS_UPDATE_TTL=0\n")).contains("TTL"));
    let core = config(
        NodeRole::Minion,
        &format!("{DNS_UPDATE}DNS_UPDATE_RECORDS=minions, weave-core\nDNS_UPDATE_ZONE=prod.k8s\n"),
    );
    let update = core.dns_update.clone().expect("configured");
    assert_eq!(
        update.record_list(),
        "minions.prod.k8s, weave-core.prod.k8s"
    );
    assert_eq!(update.ttl_secs, crate::dns_update::DEFAULT_TTL_SECS);
    assert!(
        core.redacted_lines().iter().any(
            |l| l == "# registers this node's address in minions.prod.k8s, weave-core.prod.k8s"
        )
    );
}

#[test]
fn a_clock_stepped_back_or_forward_never_stalls_a_wait() {
    let mut run = Run::new();
    run.feed(Observation::Tick);
    run.feed(Observation::RoleParsed(Box::new(config(
        NodeRole::Minion,
        "",
    ))));
    let first = run.feed(Observation::HostChecksFailed {
        failures: vec!["sysctl net.ipv4.ip_forward is 0".into()],
    });
    let delay = wait_ms(&first);
    // The executor slept `delay` (monotonic); meanwhile the wall clock went back an hour (NTP, an operator).
    run.now = run.now + delay - 3_600_000;
    assert_eq!(
        kind(&run.feed(Observation::Tick)),
        "host-checks",
        "retried, not an hour later"
    );
    // Half-way through a wait, an unexpected observation returns the rest of it, no more.
    let second = run.feed(Observation::HostChecksFailed { failures: vec![] });
    let delay = wait_ms(&second);
    run.advance(delay / 2);
    assert!(wait_ms(&run.feed(Observation::Tick)) <= delay);
    // Stepped forward a day: due at once; the phase's patience counts the jump, nothing breaks.
    run.advance(86_400_000);
    assert_eq!(kind(&run.feed(Observation::Tick)), "host-checks");
    let later = run.feed(Observation::HostChecksPassed {
        local_addrs: vec![ip(SELF)],
    });
    assert_eq!(kind(&later), "resolve-masters");
}

// --- the Weave decision across reboots -------------------------------------------------------------------------

/// One boot of a minion, answering every action the way a healthy host would, with `minions` for the minions
/// record and `local` as the node's address, until it writes its Weave env (or 40 steps pass). Returns every
/// action and the state.
fn boot_minion(
    kept: Option<KeptWeave>,
    minions: DnsResult,
    local: &str,
) -> (Vec<Action>, AgentState) {
    let mut run = Run::from(AgentState::new(T0).with_kept_weave(kept));
    let mut actions = vec![run.feed(Observation::Tick)];
    while actions.len() < 40 {
        let observation = match actions.last().expect("an action") {
            Action::ReadRoleFile => Observation::RoleParsed(Box::new(config(NodeRole::Minion, ""))),
            Action::RunHostChecks => Observation::HostChecksPassed {
                local_addrs: vec![ip(local)],
            },
            Action::Resolve {
                query: DnsQuery::Masters,
                ..
            } => Observation::Dns {
                query: DnsQuery::Masters,
                result: masters_answer(),
            },
            Action::Discover { .. } => joined(),
            Action::ProbeMaster { .. } => Observation::MasterProbe(ProbeResult::Healthy),
            Action::Resolve {
                query: DnsQuery::Minions,
                ..
            } => Observation::Dns {
                query: DnsQuery::Minions,
                result: minions.clone(),
            },
            Action::Wait { retry_after, .. } => {
                run.advance(retry_after.as_millis() as u64);
                Observation::Tick
            }
            _ => break,
        };
        run.advance(10);
        actions.push(run.feed(observation));
    }
    (actions, run.state)
}

fn answers(addrs: &[&str]) -> DnsResult {
    DnsResult::Answers {
        addrs: addrs.iter().map(|a| ip(a)).collect(),
        ttl_secs: 0,
    }
}

/// What the first boot kept for the next ones (the `keep` of its WriteWeaveEnv).
fn kept_by(actions: &[Action]) -> KeptWeave {
    match actions.last() {
        Some(Action::WriteWeaveEnv { keep, .. }) => KeptWeave::Found(
            crate::weave::KeptDecision::parse(keep).unwrap_or_else(|e| panic!("{e}: {keep}")),
        ),
        other => panic!("the boot did not write its Weave env: {other:?}"),
    }
}

fn env_of(actions: &[Action]) -> &str {
    match actions.last() {
        Some(Action::WriteWeaveEnv { contents, .. }) => contents,
        other => panic!("the boot did not write its Weave env: {other:?}"),
    }
}

#[test]
fn a_rebooted_core_member_votes_again_with_exactly_the_set_it_voted_with() {
    let (first, _) = boot_minion(None, answers(&["10.0.0.1", SELF, "10.0.0.3"]), SELF);
    assert!(env_of(&first).contains("IPALLOC_INIT=consensus=3\n"));
    // Next boot: the record now lists a fourth minion (a fresh decision would observe — safe — but one that had
    // listed exactly 3 others would vote with another view). It votes as before, without reading the record.
    let (again, state) = boot_minion(
        Some(kept_by(&first)),
        answers(&["10.0.0.1", SELF, "10.0.0.3", "10.0.0.4"]),
        SELF,
    );
    assert!(
        !again.iter().any(|a| kind(a) == "resolve-minions"),
        "{again:?}"
    );
    let env = env_of(&again);
    assert!(env.contains("IPALLOC_INIT=consensus=3\n"), "{env}");
    assert!(
        env.contains("KUBE_PEERS=\"10.0.0.1 10.0.0.2 10.0.0.3\"\n"),
        "{env}"
    );
    assert!(
        env.contains("# After a reboot: voted on an earlier boot"),
        "{env}"
    );
    let decision = state.weave.expect("decided");
    assert!(decision.after_reboot.is_some());
    assert_eq!(kept_by(&again), kept_by(&first).with_note_of(&decision));
}

impl KeptWeave {
    /// The first boot's kept decision with the note a later boot adds (test helper).
    fn with_note_of(self, later: &crate::weave::WeaveDecision) -> KeptWeave {
        match self {
            KeptWeave::Found(mut kept) => {
                kept.decision.after_reboot = later.after_reboot.clone();
                KeptWeave::Found(kept)
            }
            other => other,
        }
    }
}

#[test]
fn a_rebooted_observer_never_votes_even_when_the_record_lists_exactly_n_with_itself() {
    let (first, _) = boot_minion(
        None,
        answers(&["10.0.0.1", SELF, "10.0.0.3", "10.0.0.4"]),
        SELF,
    );
    assert!(env_of(&first).contains("IPALLOC_INIT=observer\n"));
    // Two minions died; the record lists exactly 3, this node among them: a first boot would vote now.
    let fresh = answers(&["10.0.0.1", SELF, "10.0.0.4"]);
    let (first_boot_now, _) = boot_minion(None, fresh.clone(), SELF);
    assert!(env_of(&first_boot_now).contains("IPALLOC_INIT=consensus=3\n"));
    let (again, state) = boot_minion(Some(kept_by(&first)), fresh, SELF);
    let env = env_of(&again);
    assert!(env.contains("IPALLOC_INIT=observer\n"), "{env}");
    assert!(
        env.contains("KUBE_PEERS=\"10.0.0.1 10.0.0.2 10.0.0.4\"\n"),
        "peers are what the record lists now: {env}"
    );
    assert!(
        state
            .weave
            .and_then(|d| d.after_reboot)
            .is_some_and(|why| why.contains("stays an observer")),
    );
}

#[test]
fn a_rebooted_observer_starts_with_fewer_than_n_listed() {
    let (first, _) = boot_minion(
        None,
        answers(&["10.0.0.1", SELF, "10.0.0.3", "10.0.0.4"]),
        SELF,
    );
    let (again, _) = boot_minion(Some(kept_by(&first)), answers(&["10.0.0.4"]), SELF);
    assert!(env_of(&again).contains("IPALLOC_INIT=observer\nKUBE_PEERS=\"10.0.0.4\"\n"));
}

#[test]
fn a_rebooted_core_member_with_another_address_observes() {
    let (first, _) = boot_minion(None, answers(&["10.0.0.1", SELF, "10.0.0.3"]), SELF);
    let (again, state) = boot_minion(
        Some(kept_by(&first)),
        answers(&["10.0.0.1", "10.0.0.3", "10.0.0.9"]),
        "10.0.0.9",
    );
    assert!(env_of(&again).contains("IPALLOC_INIT=observer\n"));
    let why = state.weave.and_then(|d| d.after_reboot).expect("a note");
    assert!(why.contains("10.0.0.2, which is no longer"), "{why}");
}

#[test]
fn a_decision_kept_for_another_cluster_is_set_aside_and_said_so() {
    let (first, _) = boot_minion(
        None,
        answers(&["10.0.0.1", SELF, "10.0.0.3", "10.0.0.4"]),
        SELF,
    );
    let KeptWeave::Found(mut kept) = kept_by(&first) else {
        panic!("found")
    };
    kept.cluster = "staging".into();
    let (again, state) = boot_minion(
        Some(KeptWeave::Found(kept)),
        answers(&["10.0.0.1", SELF, "10.0.0.3"]),
        SELF,
    );
    assert!(env_of(&again).contains("IPALLOC_INIT=consensus=3\n"));
    let why = state.weave.and_then(|d| d.after_reboot).expect("a note");
    assert!(why.contains("cluster staging, not prod"), "{why}");
}

#[test]
fn an_unreadable_kept_decision_blocks_instead_of_deciding_afresh() {
    let reason =
        "/var/lib/k8s-agent/weave-decision.json: not a kept Weave decision: EOF".to_string();
    let (actions, state) = boot_minion(
        Some(KeptWeave::Unreadable { reason }),
        answers(&["10.0.0.1", SELF, "10.0.0.3"]),
        SELF,
    );
    assert!(
        !actions
            .iter()
            .any(|a| matches!(kind(a), "resolve-minions" | "write-weave-env")),
        "{actions:?}"
    );
    assert_eq!(state.phase, WeavePeers);
    let blocking = state.blocking.expect("a reason");
    assert!(
        blocking.starts_with("blocked: /var/lib/k8s-agent/weave-decision.json: not a kept")
            && blocking.contains("does not decide afresh")
            && blocking.contains("restart k8s-agent"),
        "{blocking}"
    );
}

#[test]
fn the_kept_decision_survives_the_state_file_round_trip() {
    let (first, _) = boot_minion(None, answers(&["10.0.0.1", SELF, "10.0.0.3"]), SELF);
    let state = AgentState::new(T0).with_kept_weave(Some(kept_by(&first)));
    let json = serde_json::to_string(&state).expect("json");
    let back: AgentState = serde_json::from_str(&json).expect("parsed");
    assert_eq!(back, state);
}

#[test]
fn a_lost_bus_connection_while_starting_units_is_retried_not_a_failure() {
    let mut run = Run::from(walk_to(NodeRole::Minion, StartUnits));
    let node_units = group(NodeRole::Minion, UnitStage::Node);
    assert!(node_units.len() >= 2, "{node_units:?}");
    let action = run.feed(Observation::UnitFailed {
        already_started: node_units[..1].to_vec(),
        failure: UnitFailure {
            unit: node_units[1].clone(),
            active_state: "unknown".into(),
            sub_state: "unknown".into(),
            result: UNIT_RESULT_BUS_ERROR.into(),
        },
    });
    let Action::Wait {
        reason,
        retry_after,
    } = &action
    else {
        panic!("{action:?}")
    };
    assert!(
        reason.contains("could not be reached over D-Bus") && reason.contains("retrying"),
        "{reason}"
    );
    assert_eq!(run.state.phase, StartUnits);
    assert!(run.state.unit_failures.is_empty());
    run.advance(retry_after.as_millis() as u64);
    assert_eq!(
        run.feed(Observation::Tick),
        Action::StartUnits {
            units: node_units[1..].to_vec()
        },
        "the rest, not the unit already started"
    );
    // A unit's own failure still stops the agent.
    let failed = run.feed(Observation::UnitFailed {
        already_started: vec![],
        failure: kubelet_failed(),
    });
    assert_eq!(kind(&failed), "fail");
}

// ---- Ready means working ----

#[test]
fn a_node_is_ready_only_once_every_component_answers() {
    let mut run = Run::from(walk_to(NodeRole::Minion, Phase::ComponentsHealthy));
    // A unit failure recorded on the way up is history once the node is healthy.
    run.state.unit_failures.push(kubelet_failed());
    let waiting = run.feed(unhealthy(NodeRole::Minion));
    assert_eq!(run.state.phase, Phase::ComponentsHealthy);
    let reason = wait_reason(&waiting);
    assert!(
        reason.starts_with(
            "waiting until the node's components are healthy: kube-proxy: connection refused"
        ),
        "{reason}"
    );
    assert!(
        reason.contains("nf_conntrack_max: read-only file system"),
        "{reason}"
    );
    run.advance(wait_ms(&waiting));
    assert_eq!(kind(&run.feed(Observation::Tick)), "check-health");
    assert_eq!(run.feed(healthy(NodeRole::Minion)), Action::Done);
    assert_eq!(run.state.phase, Phase::Ready);
    assert!(
        run.state.unit_failures.is_empty(),
        "stale failures are not shown once healthy"
    );
    assert_eq!(run.state.blocking, None);
}

#[test]
fn a_ready_node_whose_unit_keeps_restarting_is_waiting_again_until_it_recovers() {
    let mut run = Run::from(walk_to(NodeRole::Minion, Phase::Ready));
    // The executor's recheck finds everything healthy: nothing changes.
    let before = run.state.clone();
    run.advance(30_000);
    assert_eq!(run.feed(healthy(NodeRole::Minion)), Action::Done);
    assert_eq!(run.state.phase, Phase::Ready);
    assert_eq!(run.state.transitions, before.transitions);
    // A recheck finds kube-proxy restarting: waiting again, with kube-proxy's own last line.
    run.advance(30_000);
    let waiting = run.feed(unhealthy(NodeRole::Minion));
    assert_eq!(run.state.phase, Phase::ComponentsHealthy);
    assert!(
        wait_reason(&waiting).contains("kube-proxy.service activating/auto-restart"),
        "{waiting:?}"
    );
    assert_eq!(crate::metrics::condition(&run.state), "waiting");
    // Recovered: Ready again.
    run.advance(wait_ms(&waiting));
    assert_eq!(kind(&run.feed(Observation::Tick)), "check-health");
    assert_eq!(run.feed(healthy(NodeRole::Minion)), Action::Done);
    assert_eq!(run.state.phase, Phase::Ready);
    let phases: Vec<Phase> = run
        .state
        .transitions
        .iter()
        .rev()
        .take(3)
        .map(|t| t.phase)
        .collect();
    assert_eq!(
        phases,
        [Phase::Ready, Phase::ComponentsHealthy, Phase::Ready]
    );
}

#[test]
fn a_ready_minion_stays_ready_while_the_api_server_does_not_answer() {
    let mut run = Run::from(walk_to(NodeRole::Minion, Phase::Ready));
    let Observation::HealthChecked(mut reports) = healthy(NodeRole::Minion) else {
        unreachable!("healthy() gives HealthChecked")
    };
    reports[2].healthy = false;
    reports[2].unknown = true;
    reports[2].detail = "the API server did not answer: connection refused".into();
    run.advance(30_000);
    assert_eq!(
        run.feed(Observation::HealthChecked(reports.clone())),
        Action::Done
    );
    assert_eq!(run.state.phase, Phase::Ready);
    // On the way up the same answer is not enough.
    let mut run = Run::from(walk_to(NodeRole::Minion, Phase::ComponentsHealthy));
    assert_eq!(kind(&run.feed(Observation::HealthChecked(reports))), "wait");
    assert_eq!(run.state.phase, Phase::ComponentsHealthy);
}

#[test]
fn a_restarted_agent_checks_health_again_in_place() {
    let state = walk_to(NodeRole::Master, Phase::ComponentsHealthy);
    let (after, action) = AgentState::resume(state, T0 + 60_000).expect("resumes");
    assert_eq!(after.phase, Phase::ComponentsHealthy);
    assert_eq!(kind(&action), "check-health");
}

#[test]
fn the_master_advertises_the_role_files_address_or_its_only_one() {
    let mut run = Run::new();
    run.feed(Observation::Tick);
    run.feed(Observation::RoleParsed(Box::new(config(
        NodeRole::Master,
        "ADVERTISE_ADDRESS=192.0.2.10\n",
    ))));
    let action = run.feed(Observation::HostChecksPassed {
        local_addrs: vec![ip("10.0.1.1"), ip("10.0.2.1")],
    });
    assert_eq!(
        action,
        Action::EnsurePki {
            endpoint_host: "masters.prod.k8s".into(),
            // The advertised address is a SAN of the API server's certificate, local or not.
            advertise_addrs: vec![ip("10.0.1.1"), ip("10.0.2.1"), ip("192.0.2.10")],
            advertise: crate::advertise::AdvertiseChoice::RoleFile(ip("192.0.2.10")),
        }
    );
    let mut run = Run::new();
    run.feed(Observation::Tick);
    run.feed(Observation::RoleParsed(Box::new(config(
        NodeRole::Master,
        "",
    ))));
    let Action::EnsurePki { advertise, .. } = run.feed(Observation::HostChecksPassed {
        local_addrs: vec![ip("127.0.0.1"), ip("10.0.1.1"), ip("10.0.2.1")],
    }) else {
        panic!("expected EnsurePki")
    };
    assert_eq!(
        advertise.address(),
        None,
        "two addresses: kube-apiserver decides"
    );
}

#[test]
fn an_ha_master_joins_etcd_before_it_starts_the_control_plane() {
    let mut run = Run::new();
    run.feed(Observation::Tick);
    run.feed(Observation::RoleParsed(Box::new(config(
        NodeRole::Master,
        "CONTROL_PLANE_SIZE=3\n",
    ))));
    run.feed(Observation::HostChecksPassed {
        local_addrs: vec![ip("10.0.1.1")],
    });
    let action = run.feed(Observation::PkiEnsured {
        node_name: "master-1".into(),
        written: vec![],
    });
    assert_eq!(run.state.phase, Phase::EtcdMember);
    assert_eq!(
        action,
        Action::EnsureEtcdMember {
            masters: "masters.prod.k8s".into(),
            own: ip("10.0.1.1"),
            name: "master-1".into(),
            cluster: "prod".into(),
            size: 3,
        }
    );
    // Waiting for the lowest master: a short watch, saying why.
    let action = run.feed_then_wait(Observation::Etcd(EtcdProgress::Waiting {
        reason: "waiting for 10.0.1.0".into(),
    }));
    assert!(wait_reason(&action).contains("etcd: waiting for 10.0.1.0"));
    assert_eq!(kind(&run.feed(Observation::Tick)), "ensure-etcd-member");
    // A step taken: looked at again soon, and how etcd started is kept.
    let action = run.feed_then_wait(Observation::Etcd(EtcdProgress::Acted {
        what: "added as learner".into(),
        started_by: Some("join".into()),
    }));
    assert!(wait_ms(&action) <= 1000, "{action:?}");
    assert_eq!(kind(&run.feed(Observation::Tick)), "ensure-etcd-member");
    // Two clusters: blocked, nothing started.
    let action = run.feed_then_wait(Observation::Etcd(EtcdProgress::Blocked {
        reason: "two etcd clusters".into(),
    }));
    assert_eq!(wait_ms(&action), BLOCKED_RETRY.as_millis() as u64);
    assert!(run.state.units_started.is_empty());
    assert_eq!(kind(&run.feed(Observation::Tick)), "ensure-etcd-member");
    let membership = crate::etcd_cluster::EtcdMembership {
        member_id: "2".into(),
        ..Default::default()
    };
    let action = run.feed(Observation::Etcd(EtcdProgress::Ready {
        membership: membership.clone(),
    }));
    assert_eq!(run.state.phase, Phase::StartControlPlane);
    assert_eq!(kind(&action), "start-units");
    let kept = run.state.etcd.as_ref().expect("membership kept");
    assert_eq!(kept.member_id, "2");
    assert_eq!(kept.started_by.as_deref(), Some("join"));
}

#[test]
fn a_single_master_never_touches_etcd_membership() {
    let mut run = Run::new();
    let kinds: Vec<&str> = happy_path(NodeRole::Master)
        .into_iter()
        .map(|o| kind(&run.feed(o)))
        .collect();
    assert!(!kinds.contains(&"ensure-etcd-member"));
    assert!(run.state.etcd.is_none());
}

#[test]
fn an_ha_master_that_registers_itself_does_so_before_etcd_and_only_once() {
    let mut run = Run::new();
    run.feed(Observation::Tick);
    run.feed(Observation::RoleParsed(Box::new(config(
        NodeRole::Master,
        &format!("CONTROL_PLANE_SIZE=3\n{DNS_UPDATE}"),
    ))));
    // The other masters must find it in the record before etcd exists: registered right after the host checks.
    let action = run.feed(Observation::HostChecksPassed {
        local_addrs: vec![ip("10.0.1.1")],
    });
    assert_eq!(kind(&action), "register-dns");
    let action = run.feed(registered(&["masters"]));
    assert_eq!(run.state.phase, Phase::ControlPlanePki);
    assert_eq!(kind(&action), "ensure-pki");
    run.feed(Observation::PkiEnsured {
        node_name: "master-1".into(),
        written: vec![],
    });
    run.feed(Observation::Etcd(EtcdProgress::Ready {
        membership: Default::default(),
    }));
    run.feed(Observation::UnitsStarted(units(NodeRole::Master)));
    run.feed(Observation::MasterProbe(ProbeResult::Healthy));
    // Registered already: from the join objects straight on to the health checks.
    let action = run.feed(objects(ObjectOutcome::Created));
    assert_eq!(kind(&action), "check-health");
}
