//! The agent's Prometheus metrics, rendered from its state as the classic text exposition format (what
//! node_exporter's textfile collector reads: `# HELP`, `# TYPE`, one sample per line). Pure: the edge
//! (`k8s_agent::edge::metrics`) gathers the inputs (the state, the image's name, the boot time, systemd's unit
//! timestamps) and writes the file atomically.
//!
//! A small writer rather than a crate: the OpenMetrics encoders (prometheus-client) write a format node_exporter's
//! textfile parser does not take as is (`# EOF`, counter families without `_total`), and the `prometheus` crate's
//! registry, atomics and protobuf support are far more than a file written at each transition needs — the agent has
//! a 6 MiB budget. Names follow Prometheus's conventions: base units in the name (`_seconds`), counters end in
//! `_total`, labels only of low cardinality (phase, record, result, unit, image).

use crate::plan::{
    AgentState, DnsResult, ImageOutcome, KubeletCredentials, ObjectOutcome, Phase, ProbeResult,
};
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// The file node_exporter reads (its textfile collector takes `*.prom` only).
pub const FILE_NAME: &str = "k8s-agent.prom";
/// Debian's prometheus-node-exporter reads textfiles from here by default.
pub const DEFAULT_DIR: &str = "/var/lib/prometheus/node-exporter";

/// The kind of a metric family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Gauge,
    Counter,
}

/// A text exposition being written: families in the order they are declared, each with its samples.
#[derive(Debug, Default)]
pub struct Exposition {
    out: String,
}

impl Exposition {
    /// Starts a family: `# HELP` and `# TYPE` lines. `name` must be a valid metric name (checked in debug builds).
    pub fn family(&mut self, name: &str, kind: Kind, help: &str) {
        debug_assert!(valid_name(name), "{name}");
        let kind = match kind {
            Kind::Gauge => "gauge",
            Kind::Counter => "counter",
        };
        let help = help.replace('\\', "\\\\").replace('\n', "\\n");
        let _ = writeln!(self.out, "# HELP {name} {help}");
        let _ = writeln!(self.out, "# TYPE {name} {kind}");
    }

    /// One sample of the family just declared.
    pub fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        self.out.push_str(name);
        if !labels.is_empty() {
            self.out.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                debug_assert!(valid_label(k), "{k}");
                if i > 0 {
                    self.out.push(',');
                }
                let _ = write!(self.out, "{k}=\"{}\"", escape_label(v));
            }
            self.out.push('}');
        }
        let _ = writeln!(self.out, " {}", number(value));
    }

    /// The text, ending with a newline.
    pub fn finish(self) -> String {
        self.out
    }
}

fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

fn valid_label(name: &str) -> bool {
    valid_name(name) && !name.contains(':') && !name.starts_with("__")
}

fn escape_label(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

fn number(v: f64) -> String {
    if v.is_nan() {
        "NaN".to_string()
    } else if v.is_infinite() {
        if v > 0.0 { "+Inf" } else { "-Inf" }.to_string()
    } else if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v}")
    }
}

/// What the node image says about itself (from its lock).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageFacts {
    pub name: String,
    pub kubernetes_version: String,
    pub demo: bool,
}

/// How long systemd took to start one unit (InactiveExitTimestamp → ActiveEnterTimestamp).
#[derive(Debug, Clone, PartialEq)]
pub struct UnitTiming {
    pub unit: String,
    pub start_seconds: f64,
}

/// Everything the metrics are made from.
#[derive(Debug, Clone)]
pub struct MetricsInput<'a> {
    pub state: &'a AgentState,
    pub image: Option<ImageFacts>,
    /// When the kernel booted (Unix ms), for boot-to-Ready.
    pub boot_unix_ms: Option<u64>,
    pub units: Vec<UnitTiming>,
    pub now_unix_ms: u64,
    pub agent_version: &'a str,
}

/// The condition a node is in, as one word (`status --json`'s `condition` and the metrics' label).
pub fn condition(state: &AgentState) -> &'static str {
    match state.phase {
        Phase::Ready => "ready",
        Phase::Failed => "failed",
        _ if state
            .blocking
            .as_deref()
            .is_some_and(|b| b.starts_with("blocked")) =>
        {
            "blocked"
        }
        _ => "waiting",
    }
}

/// Seconds spent in each phase on this boot (the current one until `now`), from the transitions.
pub fn phase_seconds(state: &AgentState, now_unix_ms: u64) -> BTreeMap<Phase, f64> {
    let mut spent = BTreeMap::new();
    for (i, t) in state.transitions.iter().enumerate() {
        let end = state
            .transitions
            .get(i + 1)
            .map_or(now_unix_ms.max(t.at), |next| next.at);
        *spent.entry(t.phase).or_insert(0.0) += end.saturating_sub(t.at) as f64 / 1000.0;
    }
    spent
}

/// The result kind of a DNS answer, as a label value.
pub fn dns_result_kind(result: &DnsResult) -> &'static str {
    match result {
        DnsResult::Answers { .. } => "answers",
        DnsResult::NxDomain { .. } => "nxdomain",
        DnsResult::NoRecords { .. } => "no-records",
        DnsResult::ServFail => "servfail",
        DnsResult::Timeout => "timeout",
        DnsResult::Other { .. } => "other",
    }
}

/// The outcome of a master probe, as a label value (`http-503` for a status: a handful of values at most).
pub fn probe_outcome(result: &ProbeResult) -> String {
    match result {
        ProbeResult::Healthy => "healthy".to_string(),
        ProbeResult::HttpStatus { status } => format!("http-{status}"),
        ProbeResult::TlsUntrusted { .. } => "tls-untrusted".to_string(),
        ProbeResult::Unreachable { .. } => "unreachable".to_string(),
        ProbeResult::Timeout => "timeout".to_string(),
    }
}

/// The whole exposition.
pub fn render(input: &MetricsInput<'_>) -> String {
    let s = input.state;
    let mut e = Exposition::default();

    e.family(
        "k8s_agent_info",
        Kind::Gauge,
        "The agent: its version and the node's role and cluster (always 1).",
    );
    let role = s
        .node
        .as_ref()
        .map(|n| n.role.to_string())
        .unwrap_or_default();
    let cluster = s
        .node
        .as_ref()
        .map(|n| n.cluster.to_string())
        .unwrap_or_default();
    e.sample(
        "k8s_agent_info",
        &[
            ("version", input.agent_version),
            ("role", &role),
            ("cluster", &cluster),
            ("node_name", s.node_name.as_deref().unwrap_or("")),
        ],
        1.0,
    );

    if let Some(image) = &input.image {
        e.family(
            "k8s_agent_node_image_info",
            Kind::Gauge,
            "The node image the agent runs from (always 1); demo=\"true\" marks an image with stand-ins.",
        );
        e.sample(
            "k8s_agent_node_image_info",
            &[
                ("image", &image.name),
                ("kubernetes_version", &image.kubernetes_version),
                ("demo", if image.demo { "true" } else { "false" }),
            ],
            1.0,
        );
    }

    if let Some(etcd) = &s.etcd {
        e.family(
            "k8s_agent_etcd_member_info",
            Kind::Gauge,
            "This master's etcd member (HA control plane): its role (voter or learner), whether it leads, and how it \
             started on this boot (bootstrap, join, restart); always 1.",
        );
        e.sample(
            "k8s_agent_etcd_member_info",
            &[
                ("role", if etcd.learner { "learner" } else { "voter" }),
                ("leader", if etcd.leader { "true" } else { "false" }),
                ("started_by", etcd.started_by.as_deref().unwrap_or("")),
                ("member_id", &etcd.member_id),
            ],
            1.0,
        );
        e.family(
            "k8s_agent_etcd_members",
            Kind::Gauge,
            "etcd members as this master last saw them, by role (voter, learner) and state (healthy, unreachable).",
        );
        for role in ["voter", "learner"] {
            for state in ["healthy", "unreachable"] {
                let n = etcd
                    .members
                    .iter()
                    .filter(|m| {
                        m.learner == (role == "learner") && m.healthy == (state == "healthy")
                    })
                    .count();
                e.sample(
                    "k8s_agent_etcd_members",
                    &[("role", role), ("state", state)],
                    n as f64,
                );
            }
        }
        e.family(
            "k8s_agent_etcd_member_removals_total",
            Kind::Counter,
            "Dead etcd members this master's agent removed (as the etcd leader's master) on this boot.",
        );
        e.sample(
            "k8s_agent_etcd_member_removals_total",
            &[],
            etcd.removals.len() as f64,
        );
    }

    e.family(
        "k8s_agent_phase",
        Kind::Gauge,
        "1 for the phase the node is in, 0 for every other phase.",
    );
    for phase in Phase::ALL {
        let name = phase.to_string();
        e.sample(
            "k8s_agent_phase",
            &[("phase", &name)],
            f64::from(u8::from(phase == s.phase)),
        );
    }

    e.family(
        "k8s_agent_condition",
        Kind::Gauge,
        "1 for the node's condition (ready, waiting, blocked on a configuration error, failed), 0 for the others.",
    );
    let now_condition = condition(s);
    for c in ["ready", "waiting", "blocked", "failed"] {
        e.sample(
            "k8s_agent_condition",
            &[("condition", c)],
            f64::from(u8::from(c == now_condition)),
        );
    }

    e.family(
        "k8s_agent_phase_seconds",
        Kind::Gauge,
        "Seconds spent in each phase on this boot (the current phase until the file was written).",
    );
    for (phase, seconds) in phase_seconds(s, input.now_unix_ms) {
        let name = phase.to_string();
        e.sample("k8s_agent_phase_seconds", &[("phase", &name)], seconds);
    }

    e.family(
        "k8s_agent_phase_since_timestamp_seconds",
        Kind::Gauge,
        "When the node entered its current phase (Unix seconds).",
    );
    e.sample(
        "k8s_agent_phase_since_timestamp_seconds",
        &[],
        s.since as f64 / 1000.0,
    );

    let ready_at = s
        .transitions
        .iter()
        .find(|t| t.phase == Phase::Ready)
        .map(|t| t.at);
    if let Some(ready) = ready_at {
        if let Some(boot) = input.boot_unix_ms {
            e.family(
                "k8s_agent_boot_to_ready_seconds",
                Kind::Gauge,
                "Seconds from the node's boot (the kernel's, or a container's PID 1) to the node being Ready.",
            );
            e.sample(
                "k8s_agent_boot_to_ready_seconds",
                &[],
                ready.saturating_sub(boot) as f64 / 1000.0,
            );
        }
        if let Some(first) = s.transitions.first() {
            e.family(
                "k8s_agent_start_to_ready_seconds",
                Kind::Gauge,
                "Seconds from the agent's first phase on this boot to the node being Ready.",
            );
            e.sample(
                "k8s_agent_start_to_ready_seconds",
                &[],
                ready.saturating_sub(first.at) as f64 / 1000.0,
            );
        }
    }

    e.family(
        "k8s_agent_dns_queries_total",
        Kind::Counter,
        "DNS lookups of the masters and minions records on this boot, by result.",
    );
    for (record, results) in &s.tallies.dns {
        for (result, count) in results {
            e.sample(
                "k8s_agent_dns_queries_total",
                &[("record", record), ("result", result)],
                *count as f64,
            );
        }
    }

    e.family(
        "k8s_agent_master_probes_total",
        Kind::Counter,
        "Health probes of the API server on this boot, by outcome.",
    );
    for (outcome, count) in &s.tallies.probes {
        e.sample(
            "k8s_agent_master_probes_total",
            &[("outcome", outcome)],
            *count as f64,
        );
    }

    e.family(
        "k8s_agent_restarts_total",
        Kind::Counter,
        "Times the agent was started again on this boot and resumed from its saved state.",
    );
    e.sample("k8s_agent_restarts_total", &[], f64::from(s.restarts));

    e.family(
        "k8s_agent_unit_started",
        Kind::Gauge,
        "1 for each role unit the agent has started on this boot.",
    );
    for unit in &s.units_started {
        e.sample("k8s_agent_unit_started", &[("unit", unit)], 1.0);
    }
    if !input.units.is_empty() {
        e.family(
            "k8s_agent_unit_start_seconds",
            Kind::Gauge,
            "How long systemd took to start each role unit (leaving inactive → active).",
        );
        for u in &input.units {
            e.sample(
                "k8s_agent_unit_start_seconds",
                &[("unit", &u.unit)],
                u.start_seconds,
            );
        }
    }
    e.family(
        "k8s_agent_unit_failures_total",
        Kind::Counter,
        "Role units that failed to start on this boot.",
    );
    let mut failures: BTreeMap<&str, u64> = BTreeMap::new();
    for f in &s.unit_failures {
        *failures.entry(f.unit.as_str()).or_insert(0) += 1;
    }
    for (unit, count) in failures {
        e.sample(
            "k8s_agent_unit_failures_total",
            &[("unit", unit)],
            count as f64,
        );
    }

    if !s.join_objects.is_empty() {
        e.family(
            "k8s_agent_join_object",
            Kind::Gauge,
            "Master: 1 for each join object with how it fared (created, unchanged, differs, skipped, failed).",
        );
        for o in &s.join_objects {
            let outcome = match &o.outcome {
                ObjectOutcome::Created => "created",
                ObjectOutcome::Unchanged => "unchanged",
                ObjectOutcome::Differs { .. } => "differs",
                ObjectOutcome::Skipped { .. } => "skipped",
                ObjectOutcome::Failed { .. } => "failed",
            };
            e.sample(
                "k8s_agent_join_object",
                &[("object", &o.object), ("outcome", outcome)],
                1.0,
            );
        }
    }
    if s.node
        .as_ref()
        .is_some_and(|n| n.role == crate::node_role::NodeRole::Master)
    {
        e.family(
            "k8s_agent_pki_files_written",
            Kind::Gauge,
            "Master: PKI and kubeconfig files the agent made on this boot.",
        );
        e.sample(
            "k8s_agent_pki_files_written",
            &[],
            s.pki_written.len() as f64,
        );
    }
    if s.discovered_ca_hash.is_some() || s.kubelet_credentials.is_some() {
        e.family(
            "k8s_agent_join_step",
            Kind::Gauge,
            "Minion: 1 for each join step done (discovery: cluster CA verified; kubelet-certificate: kubelet's \
             client certificate issued), 0 while not.",
        );
        e.sample(
            "k8s_agent_join_step",
            &[("step", "discovery")],
            f64::from(u8::from(s.discovered_ca_hash.is_some())),
        );
        e.sample(
            "k8s_agent_join_step",
            &[("step", "kubelet-certificate")],
            f64::from(u8::from(matches!(
                s.kubelet_credentials,
                Some(KubeletCredentials::Issued { .. })
            ))),
        );
    }

    if !s.images.is_empty() {
        e.family(
            "k8s_agent_image",
            Kind::Gauge,
            "Minion: 1 for each baked container image with the outcome of its import (imported, present, \
             wrong-digest, failed).",
        );
        for i in &s.images {
            let outcome = match &i.outcome {
                ImageOutcome::Imported { .. } => "imported",
                ImageOutcome::Present => "present",
                ImageOutcome::WrongDigest { .. } => "wrong-digest",
                ImageOutcome::Failed { .. } => "failed",
            };
            e.sample(
                "k8s_agent_image",
                &[
                    ("image", &i.reference),
                    ("digest", &i.digest),
                    ("outcome", outcome),
                ],
                1.0,
            );
        }
        e.family(
            "k8s_agent_image_import_seconds",
            Kind::Gauge,
            "Minion: how long importing and pinning each baked image took (absent when it was already there).",
        );
        for i in &s.images {
            if let ImageOutcome::Imported { millis } = i.outcome {
                e.sample(
                    "k8s_agent_image_import_seconds",
                    &[("image", &i.reference)],
                    millis as f64 / 1000.0,
                );
            }
        }
    }

    e.family(
        "k8s_agent_metrics_written_timestamp_seconds",
        Kind::Gauge,
        "When this file was written (Unix seconds): at every change of the agent's state.",
    );
    e.sample(
        "k8s_agent_metrics_written_timestamp_seconds",
        &[],
        input.now_unix_ms as f64 / 1000.0,
    );
    e.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_and_help_are_escaped() {
        let mut e = Exposition::default();
        e.family("x_total", Kind::Counter, "a \\ b\nc");
        e.sample("x_total", &[("a", "q\"\\\nz")], 3.0);
        e.sample("x_total", &[], 0.25);
        e.sample("x_total", &[], f64::NAN);
        assert_eq!(
            e.finish(),
            "# HELP x_total a \\\\ b\\nc\n# TYPE x_total counter\nx_total{a=\"q\\\"\\\\\\nz\"} 3\nx_total 0.25\nx_total NaN\n"
        );
    }

    #[test]
    fn names_are_checked() {
        assert!(valid_name("k8s_agent_phase"));
        assert!(!valid_name("8k"));
        assert!(!valid_name("a-b"));
        assert!(valid_label("phase"));
        assert!(!valid_label("__name__"));
    }
}
