//! `k8s-agent status`: what an operator on the host reads to learn where the node stands and why. A pure printer
//! over what the agent persisted (`/run/k8s-agent/state.json`, `checks.json`), the image's lock, and the units'
//! live state (read over D-Bus by the caller). Secrets never reach it: the persisted state holds none.
//!
//! Exit codes (stable, for scripts): 0 the node is Ready; 3 it is still coming up (the reason is printed);
//! 4 the agent stopped in `Failed`; 5 there is no state yet (the agent has not run on this boot); 2 the state could
//! not be read.

use crate::checks::{CheckResult, Status};
use crate::image_info::ImageLock;
use crate::plan::{AgentState, DnsLookup, DnsResult, Phase};
use crate::systemd::UnitState;
use k8s_core::utc::time_of_day_ms as utc;
use serde::{Deserialize, Serialize};
use std::borrow::Cow;

/// `status` exit code: Ready.
pub const EXIT_READY: u8 = 0;
/// `status` exit code: still coming up.
pub const EXIT_WAITING: u8 = 3;
/// `status` exit code: the agent stopped (Failed).
pub const EXIT_FAILED: u8 = 4;
/// `status` exit code: no state on this boot yet.
pub const EXIT_NO_STATE: u8 = 5;

/// Everything `status` shows, in the JSON shape `status --json` prints (format version 1).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StatusReport {
    pub format_version: u32,
    /// `ready`, `waiting`, `failed` or `no-state` (a `Cow` so that the report also reads back: the test harness
    /// parses `status --json` into this type).
    pub condition: Cow<'static, str>,
    pub role: Option<String>,
    pub role_file: Option<String>,
    pub cluster: Option<String>,
    pub dns_domain: Option<String>,
    pub phase: Option<Phase>,
    /// When the current phase was entered (unix ms) and how long ago (ms) at `now`.
    pub since: Option<u64>,
    pub since_ago_ms: Option<u64>,
    /// Why it is not further, in words.
    pub blocking: Option<String>,
    pub retry_at: Option<u64>,
    pub failure: Option<String>,
    pub masters: Option<DnsLookup>,
    pub minions: Option<DnsLookup>,
    /// Self-registration over RFC 2136 (`DNS_UPDATE_*`), when configured.
    pub dns_registration: Option<DnsRegistrationView>,
    /// The role file on disk is no longer the one the agent read (set by the caller, which reads the file).
    pub role_file_drift: Option<crate::role_file::RoleFileDrift>,
    pub weave: Option<WeaveView>,
    /// A master of an HA control plane: its etcd membership as last seen, and `CONTROL_PLANE_SIZE`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etcd: Option<EtcdView>,
    /// The pod network the role file chose (`weave`, `bridge`, `none`).
    #[serde(default)]
    pub cni: Option<String>,
    /// `CNI=bridge`, a minion: the pod range its CNI configuration was written for.
    #[serde(default)]
    pub pod_cidr: Option<String>,
    pub units_started: Vec<String>,
    pub units: Vec<UnitState>,
    pub units_error: Option<String>,
    /// Unit failures the agent recorded, except those of units that are active now (a failure the unit recovered
    /// from is history; the journal keeps it).
    pub unit_failures: Vec<crate::plan::UnitFailure>,
    /// The last health checks ([`crate::pure::health`]): what Ready stands on.
    pub health: Vec<crate::pure::health::HealthReport>,
    pub failed_checks: Vec<String>,
    pub check_warnings: Vec<CheckResult>,
    pub warnings: Vec<String>,
    pub image: Option<ImageView>,
    pub transitions: Vec<crate::plan::PhaseTransition>,
    pub restarts: u32,
    pub dns_queries: u64,
    pub probes: u64,
    /// The join: what the node did to become part of the cluster (node name, PKI files written, join objects,
    /// discovery, kubelet's credentials). Never key material or the token.
    pub join: Option<JoinView>,
    /// Where the boot time went: cloud-init's stages and the agent's phases with their wait reasons (set by the
    /// caller, which reads cloud-init's files; `status --timeline` prints it).
    pub timeline: crate::pure::timeline::Timeline,
}

/// How far the node is in joining the cluster.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct JoinView {
    pub node_name: Option<String>,
    /// Master: PKI and kubeconfig files the agent wrote on this boot.
    pub pki_written: Vec<String>,
    /// Master: the join objects and how each fared.
    pub objects: Vec<crate::plan::ObjectReport>,
    /// Minion: the API server and CA hash token discovery verified.
    pub discovered_server: Option<String>,
    pub discovered_ca_hash: Option<String>,
    /// Minion: kubelet's TLS bootstrap result.
    pub kubelet_credentials: Option<crate::plan::KubeletCredentials>,
    /// Minion: the baked container images in containerd (reference, digest, imported / present / …).
    pub images: Vec<crate::plan::ImageReport>,
}

/// Self-registration as shown: where and with which key (never the secret), and what was added.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DnsRegistrationView {
    pub server: String,
    pub zone: String,
    pub key_name: String,
    pub records: Vec<String>,
    /// This node's address as registered, and when (unix ms); `None` while not registered yet.
    pub address: Option<String>,
    pub registered_at: Option<u64>,
    /// Why re-registering after a restart failed, if it did.
    pub problem: Option<String>,
}

/// The Weave decision as shown.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WeaveView {
    pub ipalloc_init: String,
    pub peers: Vec<String>,
    pub consensus: u32,
    pub quorum: u32,
    pub core_member: bool,
    /// Why the decision is what it is, on a boot after the one that first decided.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub after_reboot: Option<String>,
}

/// A master's etcd as shown.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EtcdView {
    pub control_plane_size: u32,
    #[serde(flatten)]
    pub membership: crate::pure::etcd_cluster::EtcdMembership,
}

/// The image as shown.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ImageView {
    pub name: String,
    pub kubernetes_version: String,
    pub standins: Vec<String>,
}

impl StatusReport {
    /// Builds the report. `state` is `None` when the agent has not written one yet.
    pub fn new(
        state: Option<&AgentState>,
        check_results: &[CheckResult],
        lock: Option<&ImageLock>,
        units: Vec<UnitState>,
        units_error: Option<String>,
        now_millis: u64,
    ) -> StatusReport {
        let image = lock.map(|l| ImageView {
            name: l.image_name.clone(),
            kubernetes_version: l.kubernetes_version.clone(),
            standins: l.standins().iter().map(|s| s.to_string()).collect(),
        });
        let check_warnings: Vec<CheckResult> = check_results
            .iter()
            .filter(|r| r.status == Status::Warn)
            .cloned()
            .collect();
        let Some(state) = state else {
            return StatusReport {
                format_version: 1,
                condition: Cow::Borrowed("no-state"),
                role: None,
                role_file: None,
                cluster: None,
                dns_domain: None,
                phase: None,
                since: None,
                since_ago_ms: None,
                blocking: Some(
                    "the agent has not run on this boot yet (no /run/k8s-agent/state.json)"
                        .to_string(),
                ),
                retry_at: None,
                failure: None,
                masters: None,
                minions: None,
                dns_registration: None,
                role_file_drift: None,
                weave: None,
                etcd: None,
                cni: None,
                pod_cidr: None,
                units_started: vec![],
                units,
                units_error,
                unit_failures: vec![],
                health: vec![],
                failed_checks: vec![],
                check_warnings,
                warnings: vec![],
                image,
                transitions: vec![],
                restarts: 0,
                dns_queries: 0,
                probes: 0,
                join: None,
                timeline: Default::default(),
            };
        };
        let condition = match state.phase {
            Phase::Ready => "ready",
            Phase::Failed => "failed",
            _ => "waiting",
        };
        let unit_failures = state
            .unit_failures
            .iter()
            .filter(|f| {
                !units
                    .iter()
                    .any(|u| u.unit == f.unit && u.active_state == "active")
            })
            .cloned()
            .collect();
        let weave = state.weave.as_ref().map(|d| WeaveView {
            ipalloc_init: d.ipalloc_init.to_string(),
            peers: d.peers.addrs().iter().map(|a| a.to_string()).collect(),
            consensus: d.n.get(),
            quorum: d.quorum(),
            core_member: d.is_core(),
            after_reboot: d.after_reboot.clone(),
        });
        let cni = state.node.as_ref().map(|n| n.cni.as_str().to_string());
        let pod_cidr = state.pod_cidr.map(|c| c.to_string());
        StatusReport {
            format_version: 1,
            cni,
            pod_cidr,
            condition: Cow::Borrowed(condition),
            role: state.node.as_ref().map(|n| n.role.to_string()),
            role_file: state
                .node
                .as_ref()
                .map(|n| n.role_file.display().to_string()),
            cluster: state.node.as_ref().map(|n| n.cluster.to_string()),
            dns_domain: state.node.as_ref().map(|n| n.dns_domain.to_string()),
            phase: Some(state.phase),
            since: Some(state.since),
            since_ago_ms: Some(now_millis.saturating_sub(state.since)),
            blocking: if state.phase == Phase::Ready {
                None
            } else {
                state.blocking.clone()
            },
            retry_at: state.retry_at,
            failure: state.failure.clone(),
            masters: state.masters.clone(),
            minions: state.minions.clone(),
            dns_registration: state
                .node
                .as_ref()
                .and_then(|n| n.dns_update.as_ref())
                .map(|u| DnsRegistrationView {
                    server: u.server.to_string(),
                    zone: u.zone.to_string(),
                    key_name: u.key_name.to_string(),
                    records: u.records.iter().map(|r| r.to_string()).collect(),
                    address: state
                        .dns_registration
                        .as_ref()
                        .map(|r| r.address.to_string()),
                    registered_at: state.dns_registration.as_ref().map(|r| r.at),
                    problem: state.dns_update_problem.clone(),
                }),
            role_file_drift: None,
            weave,
            etcd: state.etcd.clone().map(|membership| EtcdView {
                control_plane_size: state
                    .node
                    .as_ref()
                    .map(|n| n.control_plane.size)
                    .unwrap_or(1),
                membership,
            }),
            units_started: state.units_started.clone(),
            units,
            units_error,
            unit_failures,
            health: state.health.clone(),
            failed_checks: state.failed_checks.clone(),
            check_warnings,
            warnings: state.warnings.clone(),
            image,
            transitions: state.transitions.clone(),
            restarts: state.restarts,
            dns_queries: state.dns_queries,
            probes: state.probes,
            join: join_view(state),
            timeline: Default::default(),
        }
    }

    /// The exit code for this report.
    pub fn exit_code(&self) -> u8 {
        match &*self.condition {
            "ready" => EXIT_READY,
            "failed" => EXIT_FAILED,
            "no-state" => EXIT_NO_STATE,
            _ => EXIT_WAITING,
        }
    }

    /// The human rendering.
    pub fn render_human(&self) -> String {
        let mut out = String::new();
        let mut line = |k: &str, v: String| out.push_str(&format!("{k:<9} {v}\n"));
        if let Some(image) = &self.image {
            let demo = if image.standins.is_empty() {
                String::new()
            } else {
                format!(" — DEMO IMAGE: stand-ins for {}", image.standins.join(", "))
            };
            line(
                "image",
                format!(
                    "{} (Kubernetes {}){demo}",
                    image.name, image.kubernetes_version
                ),
            );
        }
        let role = match (&self.role, &self.role_file) {
            (Some(r), Some(f)) => format!("{r} (from {f})"),
            _ => "unknown (no role file read yet)".to_string(),
        };
        line("role", role);
        if let (Some(drift), Some(f)) = (&self.role_file_drift, &self.role_file) {
            line("WARNING", drift.describe(std::path::Path::new(f)));
        }
        if let Some(c) = &self.cluster {
            line(
                "cluster",
                format!("{c} (domain {})", self.dns_domain.as_deref().unwrap_or("?")),
            );
        }
        let phase = match (self.phase, self.since, self.since_ago_ms) {
            (Some(p), Some(since), Some(ago)) => {
                format!("{p} since {} ({} ago)", utc(since), human_ms(ago))
            }
            _ => "none".to_string(),
        };
        line(
            "phase",
            format!("{} — {}", self.condition.to_uppercase(), phase),
        );
        if let Some(b) = &self.blocking {
            line("waiting", b.clone());
        }
        if let Some(f) = &self.failure {
            line("failure", f.clone());
        }
        for (label, lookup) in [("masters", &self.masters), ("minions", &self.minions)] {
            if let Some(l) = lookup {
                line(label, describe_lookup(l));
            }
        }
        if let Some(d) = &self.dns_registration {
            let what = match (&d.address, d.registered_at) {
                (Some(address), Some(at)) => format!(
                    "registered {address} in {} at {} (TSIG {}) at {}",
                    d.records.join(", "),
                    d.server,
                    d.key_name,
                    utc(at)
                ),
                _ => format!(
                    "not registered yet in {} at {} (TSIG {})",
                    d.records.join(", "),
                    d.server,
                    d.key_name
                ),
            };
            line("dns", what);
            if let Some(problem) = &d.problem {
                line(
                    "dns",
                    format!("re-registering after a restart failed: {problem}"),
                );
            }
        }
        let bridge = self.cni.as_deref() == Some("bridge");
        if bridge {
            line(
                "pod-net",
                match &self.pod_cidr {
                    Some(c) => format!(
                        "CNI=bridge: pods on {c} (bridge cni0), routes to the other nodes' pods made by the agent — \
                         not Weave Net (its Go module cannot be fetched here)"
                    ),
                    None => "CNI=bridge: routes to the nodes' pods made by the agent — not Weave Net (its Go \
                             module cannot be fetched here)"
                        .to_string(),
                },
            );
        }
        if let Some(w) = &self.weave {
            line(
                "weave",
                format!(
                    "IPALLOC_INIT={} peers {} (consensus {}, quorum {}, this node {} the core){}",
                    w.ipalloc_init,
                    w.peers.join(" "),
                    w.consensus,
                    w.quorum,
                    if w.core_member { "is in" } else { "is not in" },
                    if bridge {
                        " — the agent's decision, NOT APPLIED: CNI=bridge, Weave Net is not running"
                    } else {
                        ""
                    }
                ),
            );
            if let Some(why) = &w.after_reboot {
                line("weave", format!("after a reboot: {why}"));
            }
        }
        if let Some(e) = &self.etcd {
            let m = &e.membership;
            let learners = m.members.len() - m.voters();
            line(
                "etcd",
                format!(
                    "{}{} — member {} of cluster {}; {} of {} voters healthy, {learners} learner(s) \
                     (CONTROL_PLANE_SIZE {}){}; checked {}",
                    if m.learner { "learner" } else { "voter" },
                    if m.leader { ", LEADER" } else { "" },
                    m.member_id,
                    m.cluster_id,
                    m.healthy_voters(),
                    m.voters(),
                    e.control_plane_size,
                    m.started_by
                        .as_deref()
                        .map(|b| format!("; started by {b} on this boot"))
                        .unwrap_or_default(),
                    utc(m.checked_at_unix.saturating_mul(1000)),
                ),
            );
            for member in &m.members {
                let health = match member.unreachable_since {
                    _ if member.healthy => "healthy".to_string(),
                    Some(since) => format!("UNREACHABLE since {}", utc(since.saturating_mul(1000))),
                    None => "UNREACHABLE".to_string(),
                };
                line(
                    "member",
                    format!(
                        "{} {} {}{} {health}{}",
                        member.name,
                        member.peer_url,
                        if member.learner { "learner" } else { "voter" },
                        if member.leader { " leader" } else { "" },
                        if member.own { " (this master)" } else { "" },
                    ),
                );
            }
            if let Some(note) = &m.note {
                line("etcd", note.clone());
            }
            for r in &m.removals {
                line(
                    "removed",
                    format!(
                        "{} {} (member {}) at {}: {}",
                        r.name,
                        r.peer_url,
                        r.id,
                        utc(r.at_unix.saturating_mul(1000)),
                        r.reason
                    ),
                );
            }
        }
        if let Some(j) = &self.join {
            if let Some(name) = &j.node_name {
                line("node", name.clone());
            }
            if !j.pki_written.is_empty() {
                line(
                    "pki",
                    format!("made {} (the rest was supplied)", j.pki_written.join(", ")),
                );
            }
            for o in &j.objects {
                let outcome = match &o.outcome {
                    crate::plan::ObjectOutcome::Created => "created".to_string(),
                    crate::plan::ObjectOutcome::Unchanged => "present".to_string(),
                    crate::plan::ObjectOutcome::Differs { what } => format!("DIFFERS: {what}"),
                    crate::plan::ObjectOutcome::Skipped { why } => format!("skipped: {why}"),
                    crate::plan::ObjectOutcome::Failed { reason } => format!("FAILED: {reason}"),
                };
                line("object", format!("{:<64} {outcome}", o.object));
            }
            if let (Some(server), Some(hash)) = (&j.discovered_server, &j.discovered_ca_hash) {
                line(
                    "joined",
                    format!("{server} (cluster-info signed with the token; CA {hash})"),
                );
            }
            for i in &j.images {
                let outcome = match &i.outcome {
                    crate::plan::ImageOutcome::Imported { millis } => {
                        format!("imported and pinned in {millis} ms")
                    }
                    crate::plan::ImageOutcome::Present => "present, pinned".to_string(),
                    crate::plan::ImageOutcome::WrongDigest { found } => {
                        format!("WRONG DIGEST: the baked archive holds {found}")
                    }
                    crate::plan::ImageOutcome::Failed { reason } => format!("FAILED: {reason}"),
                };
                line("image", format!("{} {} {outcome}", i.reference, i.digest));
            }
            if let Some(k) = &j.kubelet_credentials {
                let text = match k {
                    crate::plan::KubeletCredentials::Issued { subject, not_after } => {
                        format!("client certificate {subject}, valid until {not_after}")
                    }
                    crate::plan::KubeletCredentials::NotYet { reason } => {
                        format!("not yet: {reason}")
                    }
                    crate::plan::KubeletCredentials::Wrong { reason } => {
                        format!("UNUSABLE: {reason}")
                    }
                };
                line("kubelet", text);
            }
        }
        if let Some(e) = &self.units_error {
            line("units", format!("cannot read unit states: {e}"));
        }
        for u in &self.units {
            line(
                "unit",
                format!(
                    "{:<32} {}/{} result={}",
                    u.unit, u.active_state, u.sub_state, u.result
                ),
            );
        }
        if self.units.is_empty() && self.units_error.is_none() && !self.units_started.is_empty() {
            line(
                "units",
                format!("started: {}", self.units_started.join(", ")),
            );
        }
        for h in &self.health {
            let mark = if h.healthy { "ok  " } else { "FAIL" };
            line(
                "health",
                format!("{mark} {:<24} {}", h.check.label(), h.detail),
            );
        }
        for f in &self.unit_failures {
            line(
                "failed",
                format!(
                    "{} {}/{} result={}",
                    f.unit, f.active_state, f.sub_state, f.result
                ),
            );
        }
        for c in &self.failed_checks {
            line("check", format!("FAIL {c}"));
        }
        for w in &self.check_warnings {
            line(
                "check",
                format!(
                    "WARN {}{}: {}",
                    w.rule,
                    w.path
                        .as_deref()
                        .map(|p| format!(" {p}"))
                        .unwrap_or_default(),
                    w.message
                ),
            );
        }
        for w in &self.warnings {
            line("warning", w.clone());
        }
        if self.restarts > 0 {
            line("restarts", self.restarts.to_string());
        }
        out
    }
}

fn join_view(state: &AgentState) -> Option<JoinView> {
    let view = JoinView {
        node_name: state.node_name.clone(),
        pki_written: state.pki_written.clone(),
        objects: state.join_objects.clone(),
        discovered_server: state.discovered_server.clone(),
        discovered_ca_hash: state.discovered_ca_hash.clone(),
        kubelet_credentials: state.kubelet_credentials.clone(),
        images: state.images.clone(),
    };
    let empty = view.node_name.is_none()
        && view.images.is_empty()
        && view.pki_written.is_empty()
        && view.objects.is_empty()
        && view.discovered_server.is_none()
        && view.kubelet_credentials.is_none();
    (!empty).then_some(view)
}

fn describe_lookup(l: &DnsLookup) -> String {
    let what = match &l.result {
        DnsResult::Answers { addrs, ttl_secs } => format!(
            "{} (TTL {ttl_secs} s)",
            addrs
                .iter()
                .map(|a| a.to_string())
                .collect::<Vec<_>>()
                .join(" ")
        ),
        other => other.describe(),
    };
    format!("{} → {what} at {}", l.name, utc(l.at))
}

fn human_ms(ms: u64) -> String {
    if ms < 10_000 {
        format!("{:.1} s", ms as f64 / 1000.0)
    } else if ms < 3_600_000 {
        format!("{} min {} s", ms / 60_000, (ms / 1000) % 60)
    } else {
        format!("{} h {} min", ms / 3_600_000, (ms / 60_000) % 60)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_state_is_its_own_condition_and_exit_code() {
        let r = StatusReport::new(None, &[], None, vec![], None, 0);
        assert_eq!(r.condition, "no-state");
        assert_eq!(r.exit_code(), EXIT_NO_STATE);
        assert!(r.render_human().contains("has not run on this boot"));
    }

    #[test]
    fn waiting_state_shows_phase_and_reason() {
        let mut state = AgentState::new(1_000);
        state.blocking = Some("waiting for the role file".to_string());
        let r = StatusReport::new(Some(&state), &[], None, vec![], None, 6_000);
        assert_eq!(r.exit_code(), EXIT_WAITING);
        let text = r.render_human();
        assert!(
            text.contains("WAITING — role since 00:00:01.000Z (5.0 s ago)"),
            "{text}"
        );
        assert!(
            text.contains("waiting   waiting for the role file"),
            "{text}"
        );
    }

    #[test]
    fn the_join_is_shown_without_secrets() {
        let mut state = AgentState::new(1_000);
        state.node_name = Some("minion1".into());
        state.discovered_server = Some("https://masters.local.k8s:6443".into());
        state.discovered_ca_hash = Some(format!("sha256:{}", "ab".repeat(32)));
        state.kubelet_credentials = Some(crate::plan::KubeletCredentials::Issued {
            subject: "system:node:minion1".into(),
            not_after: "2027-12-01T00:00:00Z".into(),
        });
        state.join_objects = vec![crate::plan::ObjectReport {
            object: "Secret kube-system/bootstrap-token-abcdef".into(),
            outcome: crate::plan::ObjectOutcome::Created,
        }];
        let r = StatusReport::new(Some(&state), &[], None, vec![], None, 2_000);
        let text = r.render_human();
        assert!(text.contains("node      minion1"), "{text}");
        assert!(
            text.contains(
                "kubelet   client certificate system:node:minion1, valid until 2027-12-01T00:00:00Z"
            ),
            "{text}"
        );
        assert!(
            text.contains("joined    https://masters.local.k8s:6443"),
            "{text}"
        );
        assert!(
            text.contains("Secret kube-system/bootstrap-token-abcdef"),
            "{text}"
        );
        let json = serde_json::to_string(&r).expect("json");
        assert!(json.contains("\"kubelet_credentials\""), "{json}");
    }
}
