//! The transitions of [`super::next`] and [`super::AgentState::resume`], and the sentences the agent says.

use super::backoff::RetryPolicy;
use super::state::{AgentState, DnsLookup, KeptWeave, NodeSettings, PhaseTransition};
use super::{
    Action, CLUSTER_CA_FILE, DiscoveryOutcome, DnsQuery, DnsResult, HOST_CHECK_ATTEMPTS,
    ImageOutcome, ImageReport, KubeletCredentials, MASTERS_RERESOLVE_MIN_SECS, ObjectOutcome,
    ObjectReport, Observation, Phase, ProbeResult, UnitFailure,
};
use crate::node_role::NodeRole;
use crate::role_file::{Cni, MasterProbe, MasterTrust, RoleConfig, RoleDiscovery};
use crate::weave::{self, AfterReboot, KeptDecision, WeaveDecision, WeaveOutcome};
use std::net::IpAddr;
use std::time::Duration;

pub(super) struct Step {
    s: AgentState,
    now: u64,
    jitter: f64,
}

impl Step {
    pub(super) fn new(state: AgentState, now: u64, jitter: f64) -> Step {
        Step {
            s: state,
            now,
            jitter,
        }
    }

    pub(super) fn run(mut self, observation: Observation) -> (AgentState, Action) {
        let action = self.observe(observation);
        self.count(&action);
        (self.s, action)
    }

    pub(super) fn resume(mut self) -> (AgentState, Action) {
        self.s.restarts = self.s.restarts.saturating_add(1);
        self.s.attempt = 0;
        self.s.retry_at = None;
        let action = match self.s.phase {
            Phase::Ready => Action::Done,
            Phase::StartControlPlane
            | Phase::StartRuntime
            | Phase::StartUnits
            | Phase::StartKubeProxy
            | Phase::ApiServerReady
            | Phase::JoinObjects
            | Phase::ImportImages
            | Phase::KubeletBootstrap
            | Phase::PodNetwork
            | Phase::ComponentsHealthy
            | Phase::RegisterDns => self.phase_action(),
            Phase::WeavePeers if self.s.weave.is_some() => self.phase_action(),
            Phase::Role
            | Phase::HostCheck
            | Phase::ControlPlanePki
            | Phase::EtcdMember
            | Phase::ResolveMasters
            | Phase::Discovery
            | Phase::MasterHealthy
            | Phase::WeavePeers
            | Phase::Failed => {
                self.s.failure = None;
                self.enter(Phase::Role)
            }
        };
        let action = match (&action, self.reassert_update()) {
            // Resumed in place after this node registered: a clean stop deleted the records; put them back first.
            (
                Action::Done
                | Action::StartUnits { .. }
                | Action::WriteWeaveEnv { .. }
                | Action::ImportImages
                | Action::CheckKubeletCredentials
                | Action::ProbeMaster { .. }
                | Action::CheckHealth { .. }
                | Action::EnsureJoinObjects { .. },
                Some(update),
            ) => {
                self.s.dns_reassert = true;
                Action::RegisterDns { update }
            }
            _ => action,
        };
        self.count(&action);
        (self.s, action)
    }

    /// The registration to re-assert on a restart: configured, and done on this boot before.
    fn reassert_update(&self) -> Option<crate::dns_update::DnsUpdateConfig> {
        self.s.dns_registration.as_ref()?;
        self.node()?.dns_update.clone()
    }

    fn count(&mut self, action: &Action) {
        match action {
            Action::Resolve { .. } => self.s.dns_queries = self.s.dns_queries.saturating_add(1),
            Action::ProbeMaster { .. } => self.s.probes = self.s.probes.saturating_add(1),
            _ => {}
        }
    }

    /// Counts a DNS answer the phase consumed, for the metrics (no decision reads these).
    fn tally_dns(&mut self, record: &str, result: &DnsResult) {
        let kind = crate::metrics::dns_result_kind(result);
        *self
            .s
            .tallies
            .dns
            .entry(record.to_string())
            .or_default()
            .entry(kind.to_string())
            .or_insert(0) += 1;
    }

    /// Counts a master probe the phase consumed, for the metrics.
    fn tally_probe(&mut self, result: &ProbeResult) {
        *self
            .s
            .tallies
            .probes
            .entry(crate::metrics::probe_outcome(result))
            .or_insert(0) += 1;
    }

    fn observe(&mut self, observation: Observation) -> Action {
        use Observation as O;
        let phase = self.s.phase;
        match (phase, observation) {
            (Phase::Role, O::RoleDiscovery(discovery)) => self.on_discovery(discovery),
            (Phase::Role, O::RoleParsed(config)) => self.on_role(&config),
            (Phase::Role, O::RoleInvalid(error)) => self.fail(error.to_string()),
            (Phase::HostCheck, O::HostChecksPassed { local_addrs }) => self.on_host_ok(local_addrs),
            (Phase::HostCheck, O::HostChecksFailed { failures }) => self.on_host_failed(failures),
            (_, O::DnsUpdated(outcome)) if self.s.dns_reassert => self.on_reasserted(outcome),
            (Phase::RegisterDns, O::DnsUpdated(outcome)) => self.on_dns_updated(outcome),
            (
                Phase::ResolveMasters | Phase::Discovery | Phase::MasterHealthy,
                O::Dns {
                    query: DnsQuery::Masters,
                    result,
                },
            ) => self.on_masters(result),
            (Phase::MasterHealthy, O::MasterProbe(result)) => self.on_probe(result),
            (Phase::ControlPlanePki, O::PkiEnsured { node_name, written }) => {
                self.s.node_name = Some(node_name);
                for path in written {
                    if !self.s.pki_written.contains(&path) {
                        self.s.pki_written.push(path);
                    }
                }
                if self.node().is_some_and(|n| n.control_plane.is_ha()) {
                    self.enter(Phase::EtcdMember)
                } else {
                    self.enter(Phase::StartControlPlane)
                }
            }
            (Phase::EtcdMember, O::Etcd(progress)) => self.on_etcd(progress),
            (_, O::EtcdChecked(membership)) => {
                let started_by = self.s.etcd.as_ref().and_then(|e| e.started_by.clone());
                self.s.etcd = Some(crate::etcd_cluster::EtcdMembership {
                    started_by: membership.started_by.clone().or(started_by),
                    ..membership
                });
                self.tick()
            }
            (Phase::ControlPlanePki, O::PkiInvalid { problem }) => {
                let reason = format!(
                    "blocked: {problem} — nothing was started; the agent checks again every {} s",
                    super::backoff::BLOCKED_RETRY.as_secs()
                );
                self.wait(RetryPolicy::Blocked, reason, None)
            }
            (Phase::ApiServerReady, O::MasterProbe(result)) => self.on_own_probe(result),
            (Phase::JoinObjects, O::JoinObjectsEnsured(reports)) => self.on_join_objects(reports),
            (Phase::Discovery, O::Discovered(outcome)) => self.on_discovered(outcome),
            (
                Phase::KubeletBootstrap,
                O::KubeletChecked {
                    node_name,
                    credentials,
                },
            ) => self.on_kubelet(node_name, credentials),
            (Phase::PodNetwork, O::PodNetworkSetUp(outcome)) => self.on_pod_network(outcome),
            (
                Phase::WeavePeers,
                O::Dns {
                    query: DnsQuery::Minions,
                    result,
                },
            ) if self.s.weave.is_none() => self.on_minions(result),
            (Phase::WeavePeers, O::WeaveEnvWritten) if self.s.weave.is_some() => {
                self.enter(Phase::StartRuntime)
            }
            (Phase::ImportImages, O::ImagesImported(reports)) => self.on_images(reports),
            (Phase::ComponentsHealthy, O::HealthChecked(reports)) => self.on_health(reports),
            (Phase::Ready, O::HealthChecked(reports)) => {
                if crate::health::still_ready(&reports) {
                    self.s.health = reports;
                    Action::Done
                } else {
                    // A recheck while Ready failed: back to waiting, saying what.
                    self.transition(Phase::ComponentsHealthy);
                    self.on_health(reports)
                }
            }
            (
                Phase::StartControlPlane
                | Phase::StartRuntime
                | Phase::StartUnits
                | Phase::StartKubeProxy,
                O::UnitsStarted(units),
            ) => self.on_started(units),
            (
                Phase::StartControlPlane
                | Phase::StartRuntime
                | Phase::StartUnits
                | Phase::StartKubeProxy,
                O::UnitFailed {
                    already_started,
                    failure,
                },
            ) => {
                self.record_started(&already_started);
                if failure.is_bus_error() {
                    // The connection, not the unit: the executor connects again; the units not started yet are
                    // started on the retry (those started stay started).
                    let reason = format!(
                        "systemd could not be reached over D-Bus while starting {} (systemd re-executing, or the \
                         bus restarted) — hint: if this lasts, is dbus running? (`systemctl status dbus`); \
                         connecting again and retrying",
                        failure.unit
                    );
                    return self.wait(RetryPolicy::Error, reason, None);
                }
                self.s.unit_failures.push(failure.clone());
                self.fail(unit_failed_reason(&failure))
            }
            (
                _,
                O::UnitFailed {
                    already_started,
                    failure,
                },
            ) => {
                // A unit that failed after it was started (e.g. a signal while Ready): recorded for `status`;
                // systemd's Restart= handles it, the agent does not act.
                self.record_started(&already_started);
                self.s.unit_failures.push(failure);
                self.tick()
            }
            // Tick, or an observation this phase does not expect.
            (_, _) => self.tick(),
        }
    }

    // ---- phase bookkeeping ----

    fn transition(&mut self, phase: Phase) {
        self.s.phase = phase;
        self.s.since = self.now;
        self.s.attempt = 0;
        self.s.retry_at = None;
        self.s.blocking = None;
        self.s
            .transitions
            .push(PhaseTransition::new(phase, self.now));
    }

    fn enter(&mut self, phase: Phase) -> Action {
        self.transition(phase);
        self.phase_action()
    }

    fn fail(&mut self, reason: String) -> Action {
        self.s.failure = Some(reason.clone());
        self.transition(Phase::Failed);
        Action::Fail { reason }
    }

    fn in_phase(&self) -> Duration {
        Duration::from_millis(self.now.saturating_sub(self.s.since))
    }

    fn wait(&mut self, policy: RetryPolicy, reason: String, ttl_secs: Option<u32>) -> Action {
        let delay = policy.delay(self.s.attempt, self.in_phase(), ttl_secs, self.jitter);
        self.s.attempt = self.s.attempt.saturating_add(1);
        self.s.attempts_total = self.s.attempts_total.saturating_add(1);
        self.s.retry_at = Some(self.now.saturating_add(delay.as_millis() as u64));
        self.s.wait_ms = Some(delay.as_millis() as u64);
        self.s.blocking = Some(reason.clone());
        if let Some(current) = self.s.transitions.last_mut() {
            current.record_wait(&reason, self.now);
        }
        Action::Wait {
            reason,
            retry_after: delay,
        }
    }

    fn tick(&mut self) -> Action {
        match self.s.phase {
            Phase::Ready => Action::Done,
            Phase::Failed => Action::Fail {
                reason: self
                    .s
                    .failure
                    .clone()
                    .unwrap_or_else(|| "failed".to_string()),
            },
            _ => match self.s.retry_at {
                // Still waiting — unless the rest is longer than the wait itself: the wall clock was stepped back
                // (the executor sleeps on a monotonic clock), and waiting out the step would stall the node.
                Some(at)
                    if self.now < at && at - self.now <= self.s.wait_ms.unwrap_or(u64::MAX) =>
                {
                    Action::Wait {
                        reason: self
                            .s
                            .blocking
                            .clone()
                            .unwrap_or_else(|| format!("waiting in {}", self.s.phase)),
                        retry_after: Duration::from_millis(at - self.now),
                    }
                }
                _ => {
                    self.s.retry_at = None;
                    self.phase_action()
                }
            },
        }
    }

    /// The action the current phase performs (when no wait is pending).
    fn phase_action(&mut self) -> Action {
        let phase = self.s.phase;
        match phase {
            Phase::Role => Action::ReadRoleFile,
            Phase::HostCheck => Action::RunHostChecks,
            Phase::RegisterDns => match self.node().and_then(|n| n.dns_update.clone()) {
                Some(update) => Action::RegisterDns { update },
                None => {
                    // Not configured (a state from before the role file dropped it): nothing to register.
                    let next = self.after_registration();
                    self.enter(next)
                }
            },
            Phase::Ready => Action::Done,
            Phase::Failed => Action::Fail {
                reason: self
                    .s
                    .failure
                    .clone()
                    .unwrap_or_else(|| "failed".to_string()),
            },
            Phase::StartControlPlane
            | Phase::StartRuntime
            | Phase::StartUnits
            | Phase::StartKubeProxy => {
                if self.s.node.is_none() {
                    return self.lost_settings();
                }
                let units = self.s.units_remaining();
                if units.is_empty() {
                    let next = self.after_units();
                    self.enter(next)
                } else {
                    Action::StartUnits { units }
                }
            }
            Phase::ComponentsHealthy => match self.node().map(|n| n.role) {
                Some(_) => Action::CheckHealth {
                    checks: self.s.health_checks(),
                    connect_to: self.master_addrs(),
                },
                None => self.lost_settings(),
            },
            Phase::ControlPlanePki => match &self.s.node {
                Some(node) => {
                    let advertise =
                        crate::advertise::choose(node.advertise_address, &self.s.local_addrs);
                    let mut sans = self.s.local_addrs.clone();
                    if let Some(a) = advertise.address().filter(|a| !sans.contains(a)) {
                        sans.push(a);
                    }
                    Action::EnsurePki {
                        endpoint_host: node.master_endpoint.host.to_string(),
                        advertise_addrs: sans,
                        advertise,
                    }
                }
                None => self.lost_settings(),
            },
            Phase::EtcdMember => match &self.s.node {
                Some(node) => {
                    let advertise =
                        crate::advertise::choose(node.advertise_address, &self.s.local_addrs);
                    match (advertise.address(), self.s.node_name.clone()) {
                        (Some(own), Some(name)) => Action::EnsureEtcdMember {
                            masters: node.master_endpoint.host.to_string(),
                            own,
                            name,
                            cluster: node.cluster.as_str().to_string(),
                            size: node.control_plane.size,
                        },
                        (None, _) => {
                            let reason = format!(
                                "blocked: etcd across the masters needs this master's address, and {} — set                                  ADVERTISE_ADDRESS in the role file",
                                advertise.describe(node.role)
                            );
                            self.wait(RetryPolicy::Blocked, reason, None)
                        }
                        (_, None) => self.lost_settings(),
                    }
                }
                None => self.lost_settings(),
            },
            Phase::ApiServerReady => match &self.s.node {
                Some(node) => Action::ProbeMaster {
                    url: format!("{}/readyz", own_server(node)),
                    connect_to: vec![IpAddr::from([127, 0, 0, 1])],
                    trust: MasterTrust {
                        ca_cert_hash: None,
                        ca_cert_file: Some(CLUSTER_CA_FILE.into()),
                    },
                },
                None => self.lost_settings(),
            },
            Phase::JoinObjects => match &self.s.node {
                Some(node) => Action::EnsureJoinObjects {
                    server: own_server(node),
                    connect_to: vec![IpAddr::from([127, 0, 0, 1])],
                },
                None => self.lost_settings(),
            },
            Phase::Discovery => {
                let addrs = self.master_addrs();
                if self.s.reresolve_masters || addrs.is_empty() {
                    return self.resolve(DnsQuery::Masters);
                }
                match &self.s.node {
                    Some(node) => Action::Discover {
                        server: format!(
                            "https://{}:{}",
                            node.master_endpoint.host, node.master_endpoint.port
                        ),
                        connect_to: addrs,
                        trust: node.master_trust.clone(),
                        advertise: crate::advertise::choose(
                            node.advertise_address,
                            &self.s.local_addrs,
                        ),
                    },
                    None => self.lost_settings(),
                }
            }
            Phase::KubeletBootstrap => Action::CheckKubeletCredentials,
            Phase::PodNetwork => match self.s.node_name.clone() {
                Some(node) => Action::SetUpPodNetwork {
                    node,
                    connect_to: self.master_addrs(),
                },
                None => self.lost_settings(),
            },
            Phase::ImportImages => Action::ImportImages,
            Phase::ResolveMasters => self.resolve(DnsQuery::Masters),
            Phase::MasterHealthy => {
                let addrs = self.master_addrs();
                if self.s.reresolve_masters || addrs.is_empty() {
                    return self.resolve(DnsQuery::Masters);
                }
                match &self.s.node {
                    Some(node) => Action::ProbeMaster {
                        url: node.master_endpoint.url(),
                        connect_to: addrs,
                        trust: self.probe_trust(node),
                    },
                    None => self.lost_settings(),
                }
            }
            Phase::WeavePeers => match &self.s.weave {
                Some(decision) => self.write_weave_env(decision),
                None => self.weave_first_step(),
            },
        }
    }

    fn on_etcd(&mut self, progress: super::EtcdProgress) -> Action {
        use super::EtcdProgress as P;
        match progress {
            P::Ready { membership } => {
                let started_by = self.s.etcd.as_ref().and_then(|e| e.started_by.clone());
                self.s.etcd = Some(crate::etcd_cluster::EtcdMembership {
                    started_by: membership.started_by.clone().or(started_by),
                    ..membership
                });
                self.enter(Phase::StartControlPlane)
            }
            P::Acted { what, started_by } => {
                if let Some(how) = started_by {
                    self.s.etcd.get_or_insert_with(Default::default).started_by = Some(how);
                }
                // A step was taken: look again soon, without backing off.
                self.s.attempt = 0;
                self.wait(RetryPolicy::Watch, format!("etcd: {what}"), None)
            }
            P::Waiting { reason } => self.wait(RetryPolicy::Watch, format!("etcd: {reason}"), None),
            P::Blocked { reason } => self.wait(
                RetryPolicy::Blocked,
                format!("blocked: etcd: {reason}"),
                None,
            ),
            P::Error { reason } => self.wait(RetryPolicy::Error, format!("etcd: {reason}"), None),
        }
    }

    /// Where a start phase leads once all its units run.
    fn after_units(&self) -> Phase {
        let tls_join = self
            .node()
            .is_some_and(|n| n.master_endpoint.probe == MasterProbe::Https);
        match self.s.phase {
            Phase::StartControlPlane => Phase::ApiServerReady,
            Phase::StartRuntime => Phase::ImportImages,
            Phase::StartUnits if tls_join => Phase::KubeletBootstrap,
            Phase::StartUnits => Phase::StartKubeProxy,
            _ => Phase::ComponentsHealthy,
        }
    }

    fn on_health(&mut self, reports: Vec<crate::health::HealthReport>) -> Action {
        let healthy = crate::health::all_healthy(&reports);
        let summary = crate::health::failing_summary(&reports);
        self.s.health = reports;
        if healthy {
            // What failed on the way up is history now (the journal keeps it): `status` shows the node as it is.
            self.s.unit_failures.clear();
            return self.enter(Phase::Ready);
        }
        let reason = format!("waiting until the node's components are healthy: {summary}");
        self.wait(RetryPolicy::Watch, reason, None)
    }

    /// The minion's health probe trusts the CA discovery verified (written to [`CLUSTER_CA_FILE`]) and, if the
    /// role file pins one, the pin too; before discovery (MASTER_PROBE=http has none) the role file's trust.
    fn probe_trust(&self, node: &NodeSettings) -> MasterTrust {
        if self.s.discovered_ca_hash.is_some() {
            MasterTrust {
                ca_cert_hash: node.master_trust.ca_cert_hash.clone(),
                ca_cert_file: Some(CLUSTER_CA_FILE.into()),
            }
        } else {
            node.master_trust.clone()
        }
    }

    /// Write the decision: the copy kept for later boots, then the env weave.service reads.
    fn write_weave_env(&self, decision: &WeaveDecision) -> Action {
        let cluster = self
            .node()
            .map(|n| n.cluster.to_string())
            .unwrap_or_default();
        Action::WriteWeaveEnv {
            path: weave::WEAVE_ENV_FILE.to_string(),
            contents: weave::render_env(decision),
            keep: KeptDecision::new(&cluster, decision).render(),
            weave_cni: self.node().is_some_and(|n| n.cni == Cni::Weave),
        }
    }

    /// Take `decision` for this boot (it never changes afterwards) and write it.
    fn weave_decided(&mut self, decision: WeaveDecision) -> Action {
        let action = self.write_weave_env(&decision);
        self.s.weave = Some(decision);
        self.s.retry_at = None;
        self.s.blocking = None;
        action
    }

    /// What an earlier boot's kept decision means now (None: there is none, or this node has no Weave start-up).
    fn after_reboot(&self) -> Option<Result<AfterReboot, String>> {
        let node = self.node()?;
        let n = node.weave_consensus?;
        match self.s.kept_weave.as_ref()? {
            KeptWeave::Unreadable { reason } => Some(Err(reason.clone())),
            KeptWeave::Found(kept) => Some(Ok(weave::after_reboot(
                kept,
                node.cluster.as_str(),
                n,
                &self.s.local_addrs,
            ))),
        }
    }

    /// `WeavePeers` before this boot decided: an earlier boot's vote is cast again at once (no DNS needed, the
    /// view is the one it had); otherwise the record is read.
    fn weave_first_step(&mut self) -> Action {
        match self.after_reboot() {
            Some(Err(reason)) => {
                let reason = format!(
                    "blocked: {reason} — this node may have voted on an earlier boot, so it does not decide afresh; \
                     hint: restore the file, or remove it if this node never ran Weave Net in this cluster, then \
                     restart k8s-agent; checking again every {} s",
                    super::backoff::BLOCKED_RETRY.as_secs()
                );
                self.wait(RetryPolicy::Blocked, reason, None)
            }
            Some(Ok(AfterReboot::VoteAgain(decision))) => self.weave_decided(decision),
            _ => self.resolve(DnsQuery::Minions),
        }
    }

    fn resolve(&mut self, query: DnsQuery) -> Action {
        match &self.s.node {
            Some(node) => Action::Resolve {
                query,
                name: node.name_for(query).to_string(),
            },
            None => self.lost_settings(),
        }
    }

    /// A state that is in a later phase without role settings can only come from a hand-edited or foreign file.
    fn lost_settings(&mut self) -> Action {
        self.fail(format!(
            "the saved state is in phase {} but has no role settings — hint: remove /{} and restart k8s-agent",
            self.s.phase,
            super::STATE_FILE
        ))
    }

    fn node(&self) -> Option<&NodeSettings> {
        self.s.node.as_ref()
    }

    fn name(&self, query: DnsQuery) -> String {
        self.node()
            .map(|n| n.name_for(query).to_string())
            .unwrap_or_else(|| format!("{query:?}"))
    }

    /// The usable addresses of the last masters answer, sorted.
    fn master_addrs(&self) -> Vec<IpAddr> {
        match self.s.masters.as_ref().map(|l| &l.result) {
            Some(DnsResult::Answers { addrs, .. }) => usable_master_addrs(addrs),
            _ => Vec::new(),
        }
    }

    // ---- observations ----

    fn on_discovery(&mut self, discovery: RoleDiscovery) -> Action {
        match discovery {
            RoleDiscovery::NoneYet { .. } => self.wait(RetryPolicy::Watch, discovery.reason(), None),
            // Found but not read: read it now.
            RoleDiscovery::Found { .. } => {
                self.s.retry_at = None;
                Action::ReadRoleFile
            }
            RoleDiscovery::Both { .. } => self.fail(discovery.reason()),
            RoleDiscovery::Unreadable { .. } => self.fail(format!(
                "{} — hint: the agent runs as root; check the path's permissions and that /etc is mounted",
                discovery.reason()
            )),
        }
    }

    fn on_role(&mut self, config: &RoleConfig) -> Action {
        let settings = NodeSettings::from_role(config);
        if let Some(old) = &self.s.node
            && !old.same_node_as(&settings)
            && (self.s.weave.is_some() || !self.s.units_started.is_empty())
        {
            let reason = format!(
                "{} changed since units were started on this boot (was {} of cluster {}, WEAVE_CONSENSUS {:?}; now \
                 {} of cluster {}, WEAVE_CONSENSUS {:?}) — hint: reboot the node to apply a new role file",
                settings.role_file.display(),
                old.role,
                old.cluster,
                old.weave_consensus.map(|n| n.get()),
                settings.role,
                settings.cluster,
                settings.weave_consensus.map(|n| n.get()),
            );
            return self.fail(reason);
        }
        self.s.warnings = config.warnings.iter().map(|w| w.to_string()).collect();
        self.s.node = Some(settings);
        self.enter(Phase::HostCheck)
    }

    fn on_host_ok(&mut self, local_addrs: Vec<IpAddr>) -> Action {
        self.s.local_addrs = local_addrs;
        self.s.failed_checks.clear();
        match self.node().map(|n| n.role) {
            // A master of an HA control plane registers first: the other masters find it in the masters record
            // before etcd exists (until its API server runs, a client's connection is refused and it tries the next).
            Some(NodeRole::Master) if self.registers() && self.ha() => {
                self.enter(Phase::RegisterDns)
            }
            Some(NodeRole::Master) => self.enter(Phase::ControlPlanePki),
            Some(NodeRole::Minion) if self.registers() => self.enter(Phase::RegisterDns),
            Some(NodeRole::Minion) => self.enter(Phase::ResolveMasters),
            None => self.lost_settings(),
        }
    }

    /// Whether this node registers itself in DNS (`DNS_UPDATE_*`).
    fn registers(&self) -> bool {
        self.node().is_some_and(|n| n.dns_update.is_some())
    }

    /// A master of an HA control plane (`CONTROL_PLANE_SIZE` > 1).
    fn ha(&self) -> bool {
        self.node().is_some_and(|n| n.control_plane.is_ha())
    }

    /// Where `RegisterDns` leads: a minion goes on to find the masters; an HA master (registered early) to its PKI
    /// and etcd; a single master is done.
    fn after_registration(&self) -> Phase {
        match self.node().map(|n| n.role) {
            Some(NodeRole::Master)
                if self.ha()
                    && !self
                        .s
                        .transitions
                        .iter()
                        .any(|t| t.phase == Phase::ControlPlanePki) =>
            {
                Phase::ControlPlanePki
            }
            Some(NodeRole::Master) => Phase::ComponentsHealthy,
            _ => Phase::ResolveMasters,
        }
    }

    fn on_dns_updated(&mut self, outcome: super::DnsUpdateOutcome) -> Action {
        use super::DnsUpdateOutcome as U;
        let Some(update) = self.node().and_then(|n| n.dns_update.clone()) else {
            return self.lost_settings();
        };
        let server = update.server;
        match outcome {
            U::Registered { address, records } => {
                self.record_registration(address, records);
                let next = self.after_registration();
                self.enter(next)
            }
            U::KeyFile { problem } => {
                let reason = format!(
                    "blocked: cannot sign the DNS update for {}: {problem} — nothing was sent; the agent checks again \
                     every {} s",
                    update.record_list(),
                    super::backoff::BLOCKED_RETRY.as_secs()
                );
                self.wait(RetryPolicy::Blocked, reason, None)
            }
            U::Refused { rcode, tsig_error } => {
                let reason = format!(
                    "blocked: {server} refused to add this node to {}: {} — nothing was registered; retrying every \
                     {} s",
                    update.record_list(),
                    crate::dns_update::explain_rcode(&rcode, tsig_error.as_deref()),
                    super::backoff::BLOCKED_RETRY.as_secs()
                );
                self.wait(RetryPolicy::Blocked, reason, None)
            }
            U::Unreachable { message } => {
                let reason = format!(
                    "registering this node in {} at {server} failed: {message} — hint: DNS_UPDATE_SERVER must be the \
                     zone's primary and reachable on UDP and TCP port {}; backing off",
                    update.record_list(),
                    server.port()
                );
                self.wait(RetryPolicy::Error, reason, None)
            }
        }
    }

    /// What this node added to DNS, now (what `dns-deregister` will delete).
    fn record_registration(&mut self, address: IpAddr, records: Vec<String>) {
        self.s.dns_update_problem = None;
        self.s.dns_registration = Some(super::DnsRegistration {
            address,
            records,
            at: self.now,
        });
    }

    /// The outcome of re-asserting the records after a restart: recorded, then the phase goes on either way (a
    /// running node is not stopped for its DNS record; `status` shows the problem).
    fn on_reasserted(&mut self, outcome: super::DnsUpdateOutcome) -> Action {
        use super::DnsUpdateOutcome as U;
        self.s.dns_reassert = false;
        match outcome {
            U::Registered { address, records } => self.record_registration(address, records),
            U::KeyFile { problem } => self.s.dns_update_problem = Some(problem),
            U::Refused { rcode, tsig_error } => {
                self.s.dns_update_problem = Some(crate::dns_update::explain_rcode(
                    &rcode,
                    tsig_error.as_deref(),
                ))
            }
            U::Unreachable { message } => self.s.dns_update_problem = Some(message),
        }
        self.tick()
    }

    fn on_host_failed(&mut self, failures: Vec<String>) -> Action {
        let list = if failures.is_empty() {
            "(no details)".to_string()
        } else {
            failures.join("; ")
        };
        self.s.failed_checks = failures;
        let attempt = self.s.attempt + 1;
        if attempt >= HOST_CHECK_ATTEMPTS {
            return self.fail(format!(
                "host checks failed {attempt} times: {list} — hint: run `k8s-agent check` for details; nothing was \
                 started"
            ));
        }
        let reason = format!(
            "host checks failed (attempt {attempt} of {HOST_CHECK_ATTEMPTS}): {list}; retrying"
        );
        self.wait(RetryPolicy::Error, reason, None)
    }

    fn on_masters(&mut self, result: DnsResult) -> Action {
        self.tally_dns("masters", &result);
        let name = self.name(DnsQuery::Masters);
        self.s.masters = Some(DnsLookup {
            name: name.clone(),
            result: result.clone(),
            at: self.now,
        });
        let (ttl, what) = match &result {
            DnsResult::Answers { addrs, .. } if !usable_master_addrs(addrs).is_empty() => {
                self.s.reresolve_masters = false;
                return if self.s.phase == Phase::ResolveMasters {
                    let tls_join = self
                        .node()
                        .is_some_and(|n| n.master_endpoint.probe == MasterProbe::Https);
                    self.enter(if tls_join {
                        Phase::Discovery
                    } else {
                        Phase::MasterHealthy
                    })
                } else {
                    self.s.retry_at = None;
                    self.phase_action()
                };
            }
            DnsResult::Answers { addrs, ttl_secs } => (
                Some(*ttl_secs),
                format!("it lists no usable address ({})", join_addrs(addrs)),
            ),
            DnsResult::NxDomain { negative_ttl_secs }
            | DnsResult::NoRecords { negative_ttl_secs } => (*negative_ttl_secs, result.describe()),
            DnsResult::ServFail | DnsResult::Timeout | DnsResult::Other { .. } => {
                // The resolver is in trouble: back off; in MasterHealthy keep probing the last known addresses.
                let reason = format!(
                    "resolving {name} failed: {} — hint: check the DNS servers in /etc/resolv.conf; backing off",
                    result.describe()
                );
                return self.wait(RetryPolicy::Error, reason, None);
            }
        };
        if matches!(self.s.phase, Phase::MasterHealthy | Phase::Discovery) {
            // The record is gone (the master group lost its healthy instance): back to waiting for it.
            self.transition(Phase::ResolveMasters);
        }
        let reason = format!(
            "waiting for {name} to resolve: {what} — the DNS record is created when the master group has a \
             healthy instance"
        );
        self.wait(RetryPolicy::Watch, reason, ttl)
    }

    fn on_probe(&mut self, result: ProbeResult) -> Action {
        self.tally_probe(&result);
        let url = self
            .node()
            .map(|n| n.master_endpoint.url())
            .unwrap_or_default();
        match result {
            ProbeResult::Healthy => {
                if self.node().is_some_and(|n| {
                    n.cni == Cni::None || (n.cni == Cni::Bridge && n.weave_consensus.is_none())
                }) {
                    // Bring-your-own pod network (or the bridge without a Weave decision to keep): no Weave
                    // start-up to compute, no Weave CNI config to write.
                    self.enter(Phase::StartRuntime)
                } else {
                    self.enter(Phase::WeavePeers)
                }
            }
            ProbeResult::HttpStatus { status } => {
                let reason = format!(
                    "waiting for the API server at {url} to become ready: it answered HTTP {status}"
                );
                self.wait(RetryPolicy::Watch, reason, None)
            }
            ProbeResult::TlsUntrusted { message } => {
                let (trust, role_file, host) = match self.node() {
                    Some(n) => (
                        n.master_trust.describe(),
                        n.role_file.display().to_string(),
                        n.master_endpoint.host.to_string(),
                    ),
                    None => Default::default(),
                };
                let reason = format!(
                    "blocked: the API server at {url} is not trusted ({message}); checked against {trust} — this \
                     does not fix itself: make CA_CERT_HASH / CA_CERT_FILE in {role_file} match the cluster CA \
                     (`kubeadm token create --print-join-command` prints the hash) and make {host} a SAN of the API \
                     server certificate (kubeadm: controlPlaneEndpoint), then `systemctl restart k8s-agent`; \
                     retrying every {} s",
                    super::backoff::BLOCKED_RETRY.as_secs()
                );
                self.wait(RetryPolicy::Blocked, reason, None)
            }
            ProbeResult::Unreachable { message } => {
                self.maybe_reresolve();
                self.wait(
                    RetryPolicy::Watch,
                    format!("waiting for the API server at {url}: {message}"),
                    None,
                )
            }
            ProbeResult::Timeout => {
                self.maybe_reresolve();
                let reason = format!(
                    "waiting for the API server at {url}: no answer within the probe timeout"
                );
                self.wait(RetryPolicy::Watch, reason, None)
            }
        }
    }

    /// After a failed connection, resolve again before the next probe if the answer has expired (TTL, but at
    /// least [`MASTERS_RERESOLVE_MIN_SECS`]): the master may have been replaced.
    fn maybe_reresolve(&mut self) {
        if let Some(lookup) = &self.s.masters {
            let ttl = lookup
                .ttl_secs()
                .unwrap_or(0)
                .max(MASTERS_RERESOLVE_MIN_SECS);
            if self.now >= lookup.at.saturating_add(u64::from(ttl) * 1000) {
                self.s.reresolve_masters = true;
            }
        }
    }

    /// The master's probe of its own API server (loopback, verified against its CA).
    fn on_own_probe(&mut self, result: ProbeResult) -> Action {
        self.tally_probe(&result);
        let url = self
            .node()
            .map(|n| format!("{}/readyz", own_server(n)))
            .unwrap_or_default();
        match result {
            ProbeResult::Healthy => self.enter(Phase::JoinObjects),
            ProbeResult::HttpStatus { status } => {
                let reason = format!(
                    "waiting for this master's API server ({url} over 127.0.0.1) to become ready: it answered \
                     HTTP {status}"
                );
                self.wait(RetryPolicy::Watch, reason, None)
            }
            ProbeResult::Unreachable { message } => {
                let reason = format!(
                    "waiting for this master's API server ({url} over 127.0.0.1): {message} — `journalctl -u \
                     kube-apiserver` says why it does not listen"
                );
                self.wait(RetryPolicy::Watch, reason, None)
            }
            ProbeResult::Timeout => {
                let reason = format!(
                    "waiting for this master's API server ({url} over 127.0.0.1): no answer within the probe \
                     timeout"
                );
                self.wait(RetryPolicy::Watch, reason, None)
            }
            ProbeResult::TlsUntrusted { message } => {
                let reason = format!(
                    "blocked: this master's API server certificate does not verify against /{CLUSTER_CA_FILE} \
                     ({message}) — /etc/kubernetes/pki/apiserver.crt must be signed by ca.crt and name the endpoint; \
                     remove it to have the agent make a new one, then `systemctl restart k8s-agent`; retrying every \
                     {} s",
                    super::backoff::BLOCKED_RETRY.as_secs()
                );
                self.wait(RetryPolicy::Blocked, reason, None)
            }
        }
    }

    fn on_join_objects(&mut self, reports: Vec<ObjectReport>) -> Action {
        let failed: Vec<String> = reports
            .iter()
            .filter_map(|r| match &r.outcome {
                ObjectOutcome::Failed { reason } => Some(format!("{}: {reason}", r.object)),
                _ => None,
            })
            .collect();
        let differs: Vec<String> = reports
            .iter()
            .filter_map(|r| match &r.outcome {
                ObjectOutcome::Differs { what } => Some(what.clone()),
                _ => None,
            })
            .collect();
        self.s.join_objects = reports;
        if !failed.is_empty() {
            let reason = format!(
                "creating the join objects over the API failed: {}; retrying",
                failed.join("; ")
            );
            return self.wait(RetryPolicy::Error, reason, None);
        }
        if !differs.is_empty() {
            let reason = format!(
                "blocked: {} — nodes may not be able to join until this is resolved; checking again every {} s",
                differs.join("; "),
                super::backoff::BLOCKED_RETRY.as_secs()
            );
            return self.wait(RetryPolicy::Blocked, reason, None);
        }
        if self.registers() && self.s.dns_registration.is_none() {
            self.enter(Phase::RegisterDns)
        } else {
            self.enter(Phase::ComponentsHealthy)
        }
    }

    fn on_discovered(&mut self, outcome: DiscoveryOutcome) -> Action {
        match outcome {
            DiscoveryOutcome::Joined { server, ca_hash } => {
                self.s.discovered_server = Some(server);
                self.s.discovered_ca_hash = Some(ca_hash);
                self.enter(Phase::MasterHealthy)
            }
            DiscoveryOutcome::Waiting { reason } => {
                self.wait(RetryPolicy::Watch, format!("discovery: {reason}"), None)
            }
            DiscoveryOutcome::Unreachable { reason } => {
                self.maybe_reresolve();
                self.wait(RetryPolicy::Watch, format!("discovery: {reason}"), None)
            }
            DiscoveryOutcome::Refused { reason } => {
                let role_file = self
                    .node()
                    .map(|n| n.role_file.display().to_string())
                    .unwrap_or_default();
                let reason = format!(
                    "blocked: discovery: {reason} — this does not fix itself: fix {role_file}, then `systemctl \
                     restart k8s-agent`; retrying every {} s",
                    super::backoff::BLOCKED_RETRY.as_secs()
                );
                self.wait(RetryPolicy::Blocked, reason, None)
            }
        }
    }

    fn on_images(&mut self, reports: Vec<ImageReport>) -> Action {
        let failed: Vec<String> = reports
            .iter()
            .filter_map(|r| match &r.outcome {
                ImageOutcome::Failed { reason } => Some(format!("{}: {reason}", r.reference)),
                _ => None,
            })
            .collect();
        let wrong: Vec<String> = reports
            .iter()
            .filter_map(|r| match &r.outcome {
                ImageOutcome::WrongDigest { found } => Some(format!(
                    "{} is {found} in its baked archive, the image's lock says {}",
                    r.reference, r.digest
                )),
                _ => None,
            })
            .collect();
        self.s.images = reports;
        if !wrong.is_empty() {
            let reason = format!(
                "blocked: {} — the archive under /usr/share/k8s-image/images/ is not the one this image was built \
                 with (replaced or damaged after the build; `k8s-agent check` compares it with the lock): rebuild or \
                 re-provision the node; nothing that runs containers was started; checking again every {} s",
                wrong.join("; "),
                super::backoff::BLOCKED_RETRY.as_secs()
            );
            return self.wait(RetryPolicy::Blocked, reason, None);
        }
        if !failed.is_empty() {
            let reason = format!(
                "importing the baked container images into containerd failed: {} — `journalctl -u containerd`; \
                 retrying",
                failed.join("; ")
            );
            return self.wait(RetryPolicy::Error, reason, None);
        }
        self.enter(Phase::StartUnits)
    }

    fn on_pod_network(&mut self, outcome: crate::pod_network::SetUpOutcome) -> Action {
        use crate::pod_network::SetUpOutcome;
        match outcome {
            SetUpOutcome::Ready { pod_cidr } => {
                self.s.pod_cidr = Some(pod_cidr);
                self.enter(Phase::StartKubeProxy)
            }
            SetUpOutcome::NotYet { reason } => self.wait(
                RetryPolicy::Watch,
                format!("waiting to set up the pod network (CNI=bridge): {reason}"),
                None,
            ),
            SetUpOutcome::Failed { reason } => self.wait(
                RetryPolicy::Error,
                format!("setting up the pod network (CNI=bridge) failed: {reason}; retrying"),
                None,
            ),
        }
    }

    fn on_kubelet(&mut self, node_name: String, credentials: KubeletCredentials) -> Action {
        self.s.node_name = Some(node_name);
        self.s.kubelet_credentials = Some(credentials.clone());
        match credentials {
            KubeletCredentials::Issued { .. } => {
                if self.node().is_some_and(|n| n.cni == Cni::Bridge) {
                    self.enter(Phase::PodNetwork)
                } else {
                    self.enter(Phase::StartKubeProxy)
                }
            }
            KubeletCredentials::NotYet { reason } => self.wait(
                RetryPolicy::Watch,
                format!("waiting for kubelet's TLS bootstrap: {reason}"),
                None,
            ),
            KubeletCredentials::Wrong { reason } => {
                let reason = format!(
                    "blocked: kubelet's credentials are not usable: {reason}; checking again every {} s",
                    super::backoff::BLOCKED_RETRY.as_secs()
                );
                self.wait(RetryPolicy::Blocked, reason, None)
            }
        }
    }

    fn on_minions(&mut self, result: DnsResult) -> Action {
        self.tally_dns("minions", &result);
        let name = self.name(DnsQuery::Minions);
        self.s.minions = Some(DnsLookup {
            name: name.clone(),
            result: result.clone(),
            at: self.now,
        });
        let Some(n) = self.node().and_then(|node| node.weave_consensus) else {
            return self.fail(format!(
                "no WEAVE_CONSENSUS for this minion — hint: add it to {}",
                self.node()
                    .map(|n| n.role_file.display().to_string())
                    .unwrap_or_default()
            ));
        };
        let waiting = format!("waiting for {name} to list WEAVE_CONSENSUS={n} minions");
        match &result {
            DnsResult::Answers { addrs, ttl_secs } => match weave::validate_minion_answer(addrs) {
                Err(error) => self.wait(RetryPolicy::Blocked, format!("{waiting}: {error}"), None),
                Ok(answer) => {
                    self.s.minion_answer_notes =
                        answer.notes.iter().map(|note| note.to_string()).collect();
                    let afresh = match self.after_reboot() {
                        Some(Ok(AfterReboot::Observe(why))) if !answer.addrs.is_empty() => {
                            let decision = weave::observe_after_reboot(
                                n,
                                &answer,
                                &self.s.local_addrs,
                                self.now,
                                &why,
                            );
                            return self.weave_decided(decision);
                        }
                        Some(Ok(AfterReboot::DecideAfresh(why))) => Some(why),
                        _ => None,
                    };
                    match weave::decide(n, &answer, &self.s.local_addrs, self.now) {
                        WeaveOutcome::Decided(mut decision) => {
                            decision.after_reboot = afresh;
                            self.weave_decided(decision)
                        }
                        WeaveOutcome::NotEnoughMinions { listed, .. } => {
                            let reason = format!(
                                "{waiting}: it lists {listed} ({}) — the record lists the minion group's healthy \
                                 instances",
                                join_v4(&answer.addrs)
                            );
                            self.wait(RetryPolicy::Watch, reason, Some(*ttl_secs))
                        }
                        WeaveOutcome::NoLocalIpv4 => self.fail(format!(
                            "{name} lists {} minions but this node has no IPv4 address of its own (host check \
                             reported: {}), so it cannot tell whether it is in the Weave Net core — hint: check the \
                             network configuration, then restart k8s-agent",
                            answer.addrs.len(),
                            join_addrs(&self.s.local_addrs)
                        )),
                    }
                }
            },
            DnsResult::NxDomain { negative_ttl_secs }
            | DnsResult::NoRecords { negative_ttl_secs } => {
                let reason = format!(
                    "{waiting}: {} — the record lists the minion group's healthy instances",
                    result.describe()
                );
                self.wait(RetryPolicy::Watch, reason, *negative_ttl_secs)
            }
            DnsResult::ServFail | DnsResult::Timeout | DnsResult::Other { .. } => {
                let reason = format!(
                    "resolving {name} failed: {} — hint: check the DNS servers in /etc/resolv.conf; backing off",
                    result.describe()
                );
                self.wait(RetryPolicy::Error, reason, None)
            }
        }
    }

    fn record_started(&mut self, units: &[String]) -> bool {
        let before = self.s.units_started.len();
        for unit in units {
            if !self.s.units_started.contains(unit) {
                self.s.units_started.push(unit.clone());
            }
        }
        self.s.units_started.len() > before
    }

    fn on_started(&mut self, units: Vec<String>) -> Action {
        let progressed = self.record_started(&units);
        let remaining = self.s.units_remaining();
        if remaining.is_empty() {
            let next = self.after_units();
            return self.enter(next);
        }
        if !progressed {
            let reason = format!(
                "systemd reported no progress starting {}; retrying",
                remaining.join(", ")
            );
            return self.wait(RetryPolicy::Error, reason, None);
        }
        self.s.retry_at = None;
        Action::StartUnits { units: remaining }
    }
}

/// `https://<endpoint host>:<port>` of this master (its own API server, which it reaches over loopback).
fn own_server(node: &NodeSettings) -> String {
    let port = match node.master_endpoint.probe {
        MasterProbe::Https => node.master_endpoint.port,
        MasterProbe::PlainHttp => 6443,
    };
    format!("https://{}:{port}", node.master_endpoint.host)
}

fn unit_failed_reason(failure: &UnitFailure) -> String {
    format!(
        "{unit} did not start (ActiveState={} SubState={} Result={}) — hint: see `journalctl -u {unit}`; after \
         fixing it, `systemctl restart k8s-agent` starts the remaining units",
        failure.active_state,
        failure.sub_state,
        failure.result,
        unit = failure.unit,
    )
}

/// Addresses a probe can connect to: no unspecified, multicast or broadcast addresses; sorted, deduplicated.
fn usable_master_addrs(addrs: &[IpAddr]) -> Vec<IpAddr> {
    let mut usable: Vec<IpAddr> = addrs
        .iter()
        .copied()
        .filter(|a| {
            !a.is_unspecified()
                && !a.is_multicast()
                && !matches!(a, IpAddr::V4(v4) if v4.is_broadcast())
        })
        .collect();
    usable.sort();
    usable.dedup();
    usable
}

fn join_addrs(addrs: &[IpAddr]) -> String {
    if addrs.is_empty() {
        return "none".to_string();
    }
    addrs
        .iter()
        .map(|a| a.to_string())
        .collect::<Vec<_>>()
        .join(" ")
}

fn join_v4(addrs: &[std::net::Ipv4Addr]) -> String {
    if addrs.is_empty() {
        return "none".to_string();
    }
    addrs
        .iter()
        .map(|a| a.to_string())
        .collect::<Vec<_>>()
        .join(" ")
}
