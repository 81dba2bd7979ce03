//! Role files: the one file cloud-init writes to make a node a master (`/etc/sysconfig/kubernetes-masters`) or a
//! minion (`/etc/sysconfig/kubernetes-minions`), in systemd's `EnvironmentFile=` syntax.
//!
//! Raw → checked, as elsewhere: [`RawRoleFile`] is the file's assignments as written (see [`env_syntax`] for the
//! exact syntax), [`RoleConfig`] is what the agent works with, every value checked ([`values`]). Errors
//! ([`RoleFileError`], `PartialEq` so tests assert the exact one) name the file, the line and carry a hint.
//!
//! Keys (the units' pass-through flags [`keys::UNIT_ARGS`] are kept in [`RoleConfig::extra`] silently; anything
//! else is kept there too and reported as a warning):
//!
//! | key | | |
//! |---|---|---|
//! | `CLUSTER_NAME` | required | one lower-case DNS label (upper case is rejected, not folded — see [`values`]) |
//! | `DNS_DOMAIN` | default `k8s` | lower-case DNS name; the masters are `masters.<cluster>.<domain>` |
//! | `CLOUD_PROVIDER` | optional | kubelet cloud provider; the seeds' `--cloud-provider=aws` form is accepted with a warning |
//! | `KUBELET_HOSTNAME` | optional | node name override; the seeds' `--hostname-override=…` form accepted with a warning |
//! | `ADVERTISE_ADDRESS` | optional | the node's address: a master's API server `--advertise-address`, a minion's kubelet `--node-ip`; default: the node's only global address ([`crate::advertise`]) |
//! | `BOOTSTRAP_TOKEN` | minion: required (https); master: the token it publishes | kubeadm token `[a-z0-9]{6}.[a-z0-9]{16}`, a [`Secret`]: never printed |
//! | `CA_CERT_HASH` | minion: this or `CA_CERT_FILE` | kubeadm CA pin `sha256:<64 hex>` |
//! | `CA_CERT_FILE` | minion: this or `CA_CERT_HASH` | absolute path of the cluster CA certificate |
//! | `MASTER_PROBE` | default `https` | `https` (TLS verified) or `http` (explicit, old/test clusters only) |
//! | `MASTER_PORT` | default 6443 (https) / 8080 (http) | port of the masters' API |
//! | `WEAVE_CONSENSUS` | minion with `CNI=weave`: required | Weave Net consensus size N, identical on every minion (see [`crate::weave`]) |
//! | `CNI` | default `weave` | `weave` (Weave Net from its baked image) or `none` (bring your own pod network) |
//! | `WEAVE_PEERS_RECORD` | default `minions` | the DNS label of the record the Weave decision reads (`<label>.<cluster>.<domain>`): a record of its own for a fixed Weave core (e.g. `weave-core`), so that every node of the other groups, never listed there, is an observer peering with the core, whatever the launch order |
//! | `METRICS_DIR` | default `/var/lib/prometheus/node-exporter` | absolute directory for `k8s-agent.prom` (node_exporter's textfile collector); the default is written only when it exists |
//! | `DNS_UPDATE_SERVER` | optional: turns on self-registration | IP address[:port] of the primary that takes RFC 2136 updates ([`crate::dns_update`]) |
//! | `DNS_UPDATE_ZONE` | default `DNS_DOMAIN` | the zone holding the records |
//! | `DNS_UPDATE_TSIG_NAME` | with `DNS_UPDATE_SERVER`: required | the TSIG key's name |
//! | `DNS_UPDATE_TSIG_ALGORITHM` | default `hmac-sha256` | `hmac-sha256`, `hmac-sha384` or `hmac-sha512` |
//! | `DNS_UPDATE_TSIG_FILE` | with `DNS_UPDATE_SERVER`: required | absolute path of the key file (mode 0600): `tsig-keygen`'s clause or the base64 secret |
//! | `DNS_UPDATE_RECORDS` | default `masters` / `minions` (the role's) | labels (comma- or space-separated) under `<cluster>.<domain>` this node adds its address to, e.g. `minions,weave-core` for a Weave core member |
//! | `DNS_UPDATE_TTL` | default 30 | TTL in seconds of the records added |
//! | `CONTROL_PLANE_SIZE` | master; default 1 | voting etcd members the control plane is built for: 1 (one master, etcd on loopback), 3, 5 or 7 (etcd across the masters over TLS; the same number in every master's user data; [`crate::etcd_cluster`]) |
//! | `ETCD_DEAD_MEMBER_AFTER` | master; default 600 | seconds a voting etcd member must be unreachable before the agent on the etcd leader's master removes it (at least 120: a reboot never reaches it) |
//! | `ETCD_REPLACED_MEMBER_AFTER` | master; default 60 | the same, once more voters than `CONTROL_PLANE_SIZE` exist (a replacement joined; at least 30) |
//!
//! A minion must be able to verify the masters: with `MASTER_PROBE=https` (the default) it needs `CA_CERT_HASH`
//! or `CA_CERT_FILE`, otherwise the file is rejected here rather than the agent blocking later on a TLS error.
//! A key set twice is an error (systemd would silently use the last one). An empty value counts as unset, except
//! for `CLUSTER_NAME`.
//!
//! I/O: only [`discover`] (existence checks) and [`read_role_file`] / [`load`] (one bounded read) touch the
//! file system; everything else is pure over `&str`.

pub mod env_syntax;
pub mod values;

pub use env_syntax::{EnvAssignment, SyntaxProblem};
pub use values::{
    BootstrapToken, CaPin, CloudProvider, ClusterName, Cni, DnsName, HostCheckMode, MasterProbe,
    REDACTED, Secret, ValueProblem,
};

use crate::dns_update::{self, DnsUpdateConfig, TsigAlgorithmName};
use crate::node_role::NodeRole;
use crate::weave::ConsensusSize;
use serde::{Deserialize, Serialize, Serializer};
use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};

/// The keys the agent knows.
pub mod keys {
    pub const CLUSTER_NAME: &str = "CLUSTER_NAME";
    pub const DNS_DOMAIN: &str = "DNS_DOMAIN";
    pub const CLOUD_PROVIDER: &str = "CLOUD_PROVIDER";
    pub const KUBELET_HOSTNAME: &str = "KUBELET_HOSTNAME";
    pub const ADVERTISE_ADDRESS: &str = "ADVERTISE_ADDRESS";
    pub const BOOTSTRAP_TOKEN: &str = "BOOTSTRAP_TOKEN";
    pub const CA_CERT_HASH: &str = "CA_CERT_HASH";
    pub const CA_CERT_FILE: &str = "CA_CERT_FILE";
    pub const MASTER_PROBE: &str = "MASTER_PROBE";
    pub const MASTER_PORT: &str = "MASTER_PORT";
    pub const WEAVE_CONSENSUS: &str = "WEAVE_CONSENSUS";
    pub const HOST_CHECKS: &str = "HOST_CHECKS";
    pub const CNI: &str = "CNI";
    pub const METRICS_DIR: &str = "METRICS_DIR";
    pub const WEAVE_PEERS_RECORD: &str = "WEAVE_PEERS_RECORD";
    pub const DNS_UPDATE_SERVER: &str = "DNS_UPDATE_SERVER";
    pub const DNS_UPDATE_ZONE: &str = "DNS_UPDATE_ZONE";
    pub const DNS_UPDATE_TSIG_NAME: &str = "DNS_UPDATE_TSIG_NAME";
    pub const DNS_UPDATE_TSIG_ALGORITHM: &str = "DNS_UPDATE_TSIG_ALGORITHM";
    pub const DNS_UPDATE_TSIG_FILE: &str = "DNS_UPDATE_TSIG_FILE";
    pub const DNS_UPDATE_RECORDS: &str = "DNS_UPDATE_RECORDS";
    pub const DNS_UPDATE_TTL: &str = "DNS_UPDATE_TTL";
    pub const CONTROL_PLANE_SIZE: &str = "CONTROL_PLANE_SIZE";
    pub const ETCD_DEAD_MEMBER_AFTER: &str = "ETCD_DEAD_MEMBER_AFTER";
    pub const ETCD_REPLACED_MEMBER_AFTER: &str = "ETCD_REPLACED_MEMBER_AFTER";
    /// The self-registration keys (all but `DNS_UPDATE_SERVER` need it).
    pub const DNS_UPDATE: &[&str] = &[
        DNS_UPDATE_SERVER,
        DNS_UPDATE_ZONE,
        DNS_UPDATE_TSIG_NAME,
        DNS_UPDATE_TSIG_ALGORITHM,
        DNS_UPDATE_TSIG_FILE,
        DNS_UPDATE_RECORDS,
        DNS_UPDATE_TTL,
    ];
    /// Extra command-line flags the units read from the role file (`$KUBE_APISERVER_ARGS` in `ExecStart=`); the
    /// agent passes them through untouched and does not warn about them.
    pub const UNIT_ARGS: &[&str] = &[
        "KUBE_APISERVER_ARGS",
        "KUBE_CONTROLLER_MANAGER_ARGS",
        "KUBE_SCHEDULER_ARGS",
        "KUBELET_EXTRA_ARGS",
    ];
    /// All of them, in the order `k8s-agent role` prints them.
    pub const ALL: &[&str] = &[
        CLUSTER_NAME,
        DNS_DOMAIN,
        CLOUD_PROVIDER,
        KUBELET_HOSTNAME,
        ADVERTISE_ADDRESS,
        BOOTSTRAP_TOKEN,
        CA_CERT_HASH,
        CA_CERT_FILE,
        MASTER_PROBE,
        MASTER_PORT,
        WEAVE_CONSENSUS,
        WEAVE_PEERS_RECORD,
        HOST_CHECKS,
        CNI,
        METRICS_DIR,
        DNS_UPDATE_SERVER,
        DNS_UPDATE_ZONE,
        DNS_UPDATE_TSIG_NAME,
        DNS_UPDATE_TSIG_ALGORITHM,
        DNS_UPDATE_TSIG_FILE,
        DNS_UPDATE_RECORDS,
        DNS_UPDATE_TTL,
        CONTROL_PLANE_SIZE,
        ETCD_DEAD_MEMBER_AFTER,
        ETCD_REPLACED_MEMBER_AFTER,
    ];
}

/// The record the Weave decision reads when `WEAVE_PEERS_RECORD` is not set: `minions.<cluster>.<domain>`.
pub const DEFAULT_PEERS_RECORD: &str = "minions";

/// `DNS_DOMAIN` when the role file does not set one.
pub const DEFAULT_DNS_DOMAIN: &str = "k8s";
/// The agent reads at most this many bytes of a role file.
pub const MAX_ROLE_FILE_BYTES: usize = 64 * 1024;

/// A role file as written: its assignments in file order (after unquoting), not yet checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawRoleFile {
    /// Where it was read from (used in every error message).
    pub path: PathBuf,
    /// Which role the file's name selects.
    pub role: NodeRole,
    pub entries: Vec<EnvAssignment>,
}

/// Everything that can be wrong with a role file. Each names the file (and line) and has a hint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RoleFileError {
    /// The file exists but could not be read.
    Unreadable { path: PathBuf, message: String },
    /// Not valid `EnvironmentFile=` syntax.
    Syntax {
        path: PathBuf,
        line: usize,
        problem: SyntaxProblem,
    },
    /// A key assigned twice.
    DuplicateKey {
        path: PathBuf,
        key: String,
        first_line: usize,
        line: usize,
    },
    /// A required key is missing (or empty, for keys where empty means unset).
    MissingKey { path: PathBuf, key: &'static str },
    /// A value that does not check. `value` is `<redacted>` for secrets.
    InvalidValue {
        path: PathBuf,
        line: usize,
        key: &'static str,
        value: String,
        problem: ValueProblem,
    },
    /// A minion with `MASTER_PROBE=https` but no CA to verify the masters with.
    NoMasterTrust { path: PathBuf },
    /// `minions.<cluster>.<domain>` would be longer than a DNS name may be.
    EndpointNameTooLong { path: PathBuf, name_len: usize },
}

impl RoleFileError {
    /// The role file the error is about.
    pub fn path(&self) -> &Path {
        match self {
            RoleFileError::Unreadable { path, .. }
            | RoleFileError::Syntax { path, .. }
            | RoleFileError::DuplicateKey { path, .. }
            | RoleFileError::MissingKey { path, .. }
            | RoleFileError::InvalidValue { path, .. }
            | RoleFileError::NoMasterTrust { path }
            | RoleFileError::EndpointNameTooLong { path, .. } => path,
        }
    }

    /// The line the error is on, when it is about one line.
    pub fn line(&self) -> Option<usize> {
        match self {
            RoleFileError::Syntax { line, .. }
            | RoleFileError::DuplicateKey { line, .. }
            | RoleFileError::InvalidValue { line, .. } => Some(*line),
            _ => None,
        }
    }

    /// What the operator can do about it.
    pub fn hint(&self) -> String {
        match self {
            RoleFileError::Unreadable { .. } => {
                "check that cloud-init wrote it as a regular file (`cloud-init status --long`)".to_string()
            }
            RoleFileError::Syntax { problem, .. } => problem.hint(),
            RoleFileError::DuplicateKey { .. } => {
                "keep one assignment (systemd would silently use the last one)".to_string()
            }
            RoleFileError::MissingKey { key, .. } => match *key {
                keys::WEAVE_CONSENSUS => "add WEAVE_CONSENSUS=<number of minions the group starts with>, the same \
                                          in every minion's user data (README: Weave Net peers)"
                    .to_string(),
                keys::BOOTSTRAP_TOKEN => "add BOOTSTRAP_TOKEN=<6 chars>.<16 chars> ([a-z0-9]), the token the master \
                                          publishes (its user data; `kubeadm token create` on a master makes another)"
                    .to_string(),
                _ => format!("add a line {key}=<value> to the user data that writes this file, e.g. {key}=cncfdemo"),
            },
            RoleFileError::InvalidValue { problem, .. } => problem.hint(),
            RoleFileError::NoMasterTrust { .. } => "add CA_CERT_HASH=sha256:<hex> (`kubeadm token create \
                                                    --print-join-command` prints it) or CA_CERT_FILE=<path>; \
                                                    MASTER_PROBE=http only for an old or test cluster"
                .to_string(),
            RoleFileError::EndpointNameTooLong { .. } => "shorten CLUSTER_NAME or DNS_DOMAIN".to_string(),
        }
    }
}

impl fmt::Display for RoleFileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RoleFileError::Unreadable { path, message } => {
                write!(f, "cannot read {}: {message}", path.display())?
            }
            RoleFileError::Syntax {
                path,
                line,
                problem,
            } => write!(f, "{}:{line}: {problem}", path.display())?,
            RoleFileError::DuplicateKey {
                path,
                key,
                first_line,
                line,
            } => write!(
                f,
                "{key} is set twice in {} (lines {first_line} and {line})",
                path.display()
            )?,
            RoleFileError::MissingKey { path, key } => {
                write!(f, "{} has no {key}", path.display())?
            }
            RoleFileError::InvalidValue {
                path,
                line,
                key,
                value,
                problem,
            } => write!(f, "{key} {value:?} on {}:{line} {problem}", path.display())?,
            RoleFileError::NoMasterTrust { path } => write!(
                f,
                "{} has neither CA_CERT_HASH nor CA_CERT_FILE, so the masters' TLS certificate cannot be verified",
                path.display()
            )?,
            RoleFileError::EndpointNameTooLong { path, name_len } => write!(
                f,
                "the names CLUSTER_NAME and DNS_DOMAIN in {} make are {name_len} characters long, more than the \
                 253 a DNS name may have",
                path.display()
            )?,
        }
        write!(f, " — hint: {}", self.hint())
    }
}

impl std::error::Error for RoleFileError {}

/// Something worth telling the operator about a role file that is nevertheless usable.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum RoleWarning {
    /// A key the agent does not know (kept in [`RoleConfig::extra`]).
    UnknownKey { key: String, line: usize },
    /// A value written as the seeds' kubelet flag (`--cloud-provider=aws`); the bare value is used.
    SeedFlagForm {
        key: &'static str,
        line: usize,
        flag: &'static str,
    },
    /// A minion-only key in a master's file (checked, then ignored).
    NotForRole {
        key: &'static str,
        line: usize,
        role: NodeRole,
    },
    /// A cloud provider current kubelets do not accept.
    CloudProviderNotExternal { line: usize, provider: String },
}

impl fmt::Display for RoleWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RoleWarning::UnknownKey { key, line } => write!(
                f,
                "line {line}: unknown key {key} is ignored by k8s-agent (units that read this file still see it)"
            ),
            RoleWarning::SeedFlagForm { key, line, flag } => write!(
                f,
                "line {line}: {key} is written as the kubelet flag {flag}…; k8s-agent uses the value after '='"
            ),
            RoleWarning::NotForRole { key, line, role } => {
                write!(
                    f,
                    "line {line}: {key} is only used on minions; ignored on a {role}"
                )
            }
            RoleWarning::CloudProviderNotExternal { line, provider } => write!(
                f,
                "line {line}: CLOUD_PROVIDER={provider}: current kubelets accept only 'external' (in-tree cloud \
                 providers were removed)"
            ),
        }
    }
}

/// Where the masters' API is and how to check it: `<scheme>://masters.<cluster>.<domain>:<port><path>`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, serde::Deserialize)]
pub struct MasterEndpoint {
    pub host: DnsName,
    pub port: u16,
    pub probe: MasterProbe,
}

impl MasterEndpoint {
    /// The health URL to probe, e.g. `https://masters.prod.k8s:6443/readyz`.
    pub fn url(&self) -> String {
        format!(
            "{}://{}:{}{}",
            self.probe.scheme(),
            self.host,
            self.port,
            self.probe.path()
        )
    }
}

/// What the masters' TLS certificate is verified against. At least one is set when the probe is HTTPS; when
/// both are, both must match.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default, Serialize, serde::Deserialize)]
pub struct MasterTrust {
    pub ca_cert_hash: Option<CaPin>,
    pub ca_cert_file: Option<PathBuf>,
}

impl MasterTrust {
    /// One line for messages: "CA_CERT_HASH sha256:…" and/or "CA_CERT_FILE /path".
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if let Some(pin) = &self.ca_cert_hash {
            parts.push(format!("CA_CERT_HASH {pin}"));
        }
        if let Some(file) = &self.ca_cert_file {
            parts.push(format!("CA_CERT_FILE {}", file.display()));
        }
        if parts.is_empty() {
            "no CA configured".to_string()
        } else {
            parts.join(" and ")
        }
    }
}

/// A checked role file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RoleConfig {
    pub role: NodeRole,
    /// The file it came from.
    pub source: PathBuf,
    pub cluster_name: ClusterName,
    pub dns_domain: DnsName,
    pub cloud_provider: Option<CloudProvider>,
    pub kubelet_hostname: Option<DnsName>,
    /// `ADVERTISE_ADDRESS`: the node's advertised address (API server / kubelet), when the user data chooses it.
    pub advertise_address: Option<std::net::IpAddr>,
    pub bootstrap_token: Option<BootstrapToken>,
    pub ca_cert_hash: Option<CaPin>,
    pub ca_cert_file: Option<PathBuf>,
    /// `masters.<cluster>.<domain>`, the port and the probe scheme.
    pub master_endpoint: MasterEndpoint,
    /// `minions.<cluster>.<domain>` (or `WEAVE_PEERS_RECORD`'s label): its A records are the Weave Net peers.
    pub minions_name: DnsName,
    /// `WEAVE_CONSENSUS` (required on minions, ignored on masters).
    pub weave_consensus: Option<ConsensusSize>,
    /// `HOST_CHECKS`: whether failing live host checks block (default) or only warn.
    pub host_checks: HostCheckMode,
    /// `CNI`: the pod network (default weave).
    pub cni: Cni,
    /// `METRICS_DIR`: where the metrics file goes (`None`: node_exporter's default directory, if it exists).
    pub metrics_dir: Option<PathBuf>,
    /// `DNS_UPDATE_*`: register this node's address over RFC 2136 (`None`: the records are made by others).
    pub dns_update: Option<DnsUpdateConfig>,
    /// `CONTROL_PLANE_SIZE`, `ETCD_*_AFTER` (masters; the defaults on minions).
    pub control_plane: crate::etcd_cluster::ControlPlane,
    /// sha256 (hex) of the file's text as read: `status` compares it with the file now (a role file edited or
    /// removed after the agent read it is reported, never applied silently).
    pub content_sha256: String,
    /// Keys the agent does not know, as written (secret-looking values are redacted when printed).
    #[serde(serialize_with = "serialize_redacted_entries")]
    pub extra: Vec<EnvAssignment>,
    pub warnings: Vec<RoleWarning>,
}

fn serialize_redacted_entries<S: Serializer>(
    entries: &[EnvAssignment],
    serializer: S,
) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeSeq;
    let mut seq = serializer.serialize_seq(Some(entries.len()))?;
    for entry in entries {
        let value = if env_syntax::looks_secret(&entry.key) {
            REDACTED
        } else {
            entry.value.as_str()
        };
        seq.serialize_element(
            &serde_json::json!({ "key": entry.key, "value": value, "line": entry.line }),
        )?;
    }
    seq.end()
}

impl RoleConfig {
    /// What the masters' certificate is verified against.
    pub fn master_trust(&self) -> MasterTrust {
        MasterTrust {
            ca_cert_hash: self.ca_cert_hash.clone(),
            ca_cert_file: self.ca_cert_file.clone(),
        }
    }

    /// The configuration as `KEY=value` lines for `k8s-agent role`, secrets shown as `<redacted>`, defaults and
    /// derived values marked in `#` comments, then unknown keys and warnings as comments.
    pub fn redacted_lines(&self) -> Vec<String> {
        let mut lines = vec![format!(
            "# role: {} (from {})",
            self.role,
            self.source.display()
        )];
        lines.push(format!("{}={}", keys::CLUSTER_NAME, self.cluster_name));
        let domain_note = if self.dns_domain.as_str() == DEFAULT_DNS_DOMAIN {
            "  # default"
        } else {
            ""
        };
        lines.push(format!(
            "{}={}{domain_note}",
            keys::DNS_DOMAIN,
            self.dns_domain
        ));
        if let Some(provider) = &self.cloud_provider {
            lines.push(format!("{}={provider}", keys::CLOUD_PROVIDER));
        }
        if let Some(hostname) = &self.kubelet_hostname {
            lines.push(format!("{}={hostname}", keys::KUBELET_HOSTNAME));
        }
        if let Some(addr) = &self.advertise_address {
            lines.push(format!("{}={addr}", keys::ADVERTISE_ADDRESS));
        }
        if let Some(token) = &self.bootstrap_token {
            lines.push(format!("{}={token}", keys::BOOTSTRAP_TOKEN));
        }
        if let Some(pin) = &self.ca_cert_hash {
            lines.push(format!("{}={pin}", keys::CA_CERT_HASH));
        }
        if let Some(file) = &self.ca_cert_file {
            lines.push(format!("{}={}", keys::CA_CERT_FILE, file.display()));
        }
        if let Some(dir) = &self.metrics_dir {
            lines.push(format!("{}={}", keys::METRICS_DIR, dir.display()));
        }
        if let Some(update) = &self.dns_update {
            lines.push(format!("{}={}", keys::DNS_UPDATE_SERVER, update.server));
            lines.push(format!("{}={}", keys::DNS_UPDATE_ZONE, update.zone));
            lines.push(format!(
                "{}={}",
                keys::DNS_UPDATE_TSIG_NAME,
                update.key_name
            ));
            lines.push(format!(
                "{}={}",
                keys::DNS_UPDATE_TSIG_ALGORITHM,
                update.algorithm
            ));
            lines.push(format!(
                "{}={}  # the secret stays in that file",
                keys::DNS_UPDATE_TSIG_FILE,
                update.key_file.display()
            ));
            lines.push(format!("{}={}", keys::DNS_UPDATE_TTL, update.ttl_secs));
            lines.push(format!(
                "# registers this node's address in {}",
                update.record_list()
            ));
        }
        if self.role == NodeRole::Minion {
            let endpoint = &self.master_endpoint;
            let probe_note = if endpoint.probe == MasterProbe::default() {
                "  # default"
            } else {
                ""
            };
            lines.push(format!(
                "{}={}{probe_note}",
                keys::MASTER_PROBE,
                endpoint.probe
            ));
            let port_note = if endpoint.port == endpoint.probe.default_port() {
                "  # default"
            } else {
                ""
            };
            lines.push(format!(
                "{}={}{port_note}",
                keys::MASTER_PORT,
                endpoint.port
            ));
            if let Some(n) = self.weave_consensus {
                lines.push(format!("{}={n}", keys::WEAVE_CONSENSUS));
            }
            lines.push(format!("# masters probed at {}", endpoint.url()));
            lines.push(format!(
                "# weave peers from the A records of {}",
                self.minions_name
            ));
        }
        let checks_note = if self.host_checks == HostCheckMode::default() {
            "  # default"
        } else {
            ""
        };
        lines.push(format!(
            "{}={}{checks_note}",
            keys::HOST_CHECKS,
            self.host_checks.as_str()
        ));
        for entry in &self.extra {
            let value = if env_syntax::looks_secret(&entry.key) {
                REDACTED
            } else {
                entry.value.as_str()
            };
            lines.push(format!(
                "# line {}: {}={value:?} (unknown key)",
                entry.line, entry.key
            ));
        }
        for warning in &self.warnings {
            lines.push(format!("# warning: {warning}"));
        }
        lines
    }
}

impl RawRoleFile {
    /// Parse the syntax only. Pure.
    pub fn parse(path: &Path, role: NodeRole, text: &str) -> Result<RawRoleFile, RoleFileError> {
        let entries = env_syntax::parse_env_file(text).map_err(|e| RoleFileError::Syntax {
            path: path.to_path_buf(),
            line: e.line,
            problem: e.problem,
        })?;
        Ok(RawRoleFile {
            path: path.to_path_buf(),
            role,
            entries,
        })
    }

    /// Check every value and build the [`RoleConfig`]. Pure.
    pub fn check(&self) -> Result<RoleConfig, RoleFileError> {
        let mut by_key: HashMap<&str, &EnvAssignment> = HashMap::new();
        for entry in &self.entries {
            if let Some(first) = by_key.insert(entry.key.as_str(), entry) {
                return Err(RoleFileError::DuplicateKey {
                    path: self.path.clone(),
                    key: entry.key.clone(),
                    first_line: first.line,
                    line: entry.line,
                });
            }
        }
        let checker = Checker {
            raw: self,
            by_key: &by_key,
        };
        let mut warnings = Vec::new();

        let cluster_name = match by_key.get(keys::CLUSTER_NAME) {
            Some(entry) => checker.value(keys::CLUSTER_NAME, entry, ClusterName::parse)?,
            None => return Err(checker.missing(keys::CLUSTER_NAME)),
        };
        let dns_domain = match checker.set(keys::DNS_DOMAIN) {
            Some(entry) => checker.value(keys::DNS_DOMAIN, entry, DnsName::parse)?,
            None => DnsName::parse(DEFAULT_DNS_DOMAIN)
                .map_err(|p| checker.invalid_default(keys::DNS_DOMAIN, p))?,
        };
        let cloud_provider = match checker.set(keys::CLOUD_PROVIDER) {
            Some(entry) => {
                let value = strip_seed_flag(
                    entry,
                    keys::CLOUD_PROVIDER,
                    "--cloud-provider=",
                    &mut warnings,
                );
                let provider =
                    checker.value_of(keys::CLOUD_PROVIDER, entry, value, CloudProvider::parse)?;
                if provider.as_str() != "external" {
                    warnings.push(RoleWarning::CloudProviderNotExternal {
                        line: entry.line,
                        provider: provider.to_string(),
                    });
                }
                Some(provider)
            }
            None => None,
        };
        let kubelet_hostname = match checker.set(keys::KUBELET_HOSTNAME) {
            Some(entry) => {
                let value = strip_seed_flag(
                    entry,
                    keys::KUBELET_HOSTNAME,
                    "--hostname-override=",
                    &mut warnings,
                );
                Some(checker.value_of(keys::KUBELET_HOSTNAME, entry, value, DnsName::parse)?)
            }
            None => None,
        };
        let advertise_address = match checker.set(keys::ADVERTISE_ADDRESS) {
            Some(entry) => Some(checker.value(keys::ADVERTISE_ADDRESS, entry, |v| {
                v.parse::<std::net::IpAddr>()
                    .ok()
                    .filter(crate::advertise::is_advertisable)
                    .ok_or(ValueProblem::NotAdvertiseAddress)
            })?),
            None => None,
        };
        let bootstrap_token = match checker.set(keys::BOOTSTRAP_TOKEN) {
            Some(entry) => {
                Some(checker.value(keys::BOOTSTRAP_TOKEN, entry, BootstrapToken::parse)?)
            }
            None => None,
        };
        let ca_cert_hash = match checker.set(keys::CA_CERT_HASH) {
            Some(entry) => Some(checker.value(keys::CA_CERT_HASH, entry, CaPin::parse)?),
            None => None,
        };
        let absolute = |v: &str| {
            let path = PathBuf::from(v);
            if path.is_absolute() {
                Ok(path)
            } else {
                Err(ValueProblem::NotAbsolutePath)
            }
        };
        let ca_cert_file = match checker.set(keys::CA_CERT_FILE) {
            Some(entry) => Some(checker.value(keys::CA_CERT_FILE, entry, absolute)?),
            None => None,
        };
        let metrics_dir = match checker.set(keys::METRICS_DIR) {
            Some(entry) => Some(checker.value(keys::METRICS_DIR, entry, absolute)?),
            None => None,
        };
        let probe = match checker.set(keys::MASTER_PROBE) {
            Some(entry) => checker.value(keys::MASTER_PROBE, entry, MasterProbe::parse)?,
            None => MasterProbe::default(),
        };
        let port = match checker.set(keys::MASTER_PORT) {
            Some(entry) => checker.value(keys::MASTER_PORT, entry, |v| match v.parse::<u16>() {
                Ok(port) if port > 0 && !v.starts_with('+') => Ok(port),
                _ => Err(ValueProblem::NotPort),
            })?,
            None => probe.default_port(),
        };
        let weave_consensus = match checker.set(keys::WEAVE_CONSENSUS) {
            Some(entry) => Some(checker.value(keys::WEAVE_CONSENSUS, entry, |v| {
                let max = crate::weave::MAX_MINION_RECORDS as u32;
                v.parse::<u32>()
                    .ok()
                    .filter(|_| v.bytes().all(|b| b.is_ascii_digit()))
                    .and_then(|n| ConsensusSize::new(n).ok())
                    .ok_or(ValueProblem::NotConsensusSize { max })
            })?),
            None => None,
        };

        let host_checks = match checker.set(keys::HOST_CHECKS) {
            Some(entry) => checker.value(keys::HOST_CHECKS, entry, HostCheckMode::parse)?,
            None => HostCheckMode::default(),
        };
        let cni = match checker.set(keys::CNI) {
            Some(entry) => checker.value(keys::CNI, entry, Cni::parse)?,
            None => Cni::default(),
        };

        let peers_record = match checker.set(keys::WEAVE_PEERS_RECORD) {
            Some(entry) => checker
                .value(keys::WEAVE_PEERS_RECORD, entry, ClusterName::parse)?
                .as_str()
                .to_string(),
            None => DEFAULT_PEERS_RECORD.to_string(),
        };
        let cluster_dns = dns_domain.child(cluster_name.as_str());
        let minions_name = cluster_dns
            .as_ref()
            .ok()
            .and_then(|d| d.child(&peers_record).ok());
        let masters_name = cluster_dns
            .as_ref()
            .ok()
            .and_then(|d| d.child("masters").ok());
        let (Some(minions_name), Some(masters_name)) = (minions_name, masters_name) else {
            return Err(RoleFileError::EndpointNameTooLong {
                path: self.path.clone(),
                name_len: peers_record.len().max("masters".len())
                    + 1
                    + cluster_name.as_str().len()
                    + 1
                    + dns_domain.as_str().len(),
            });
        };

        let dns_update = checker.dns_update(self.role, &dns_domain, &cluster_name)?;
        let mut control_plane = crate::etcd_cluster::ControlPlane::default();
        if let Some(entry) = checker.set(keys::CONTROL_PLANE_SIZE) {
            control_plane.size = checker.value(keys::CONTROL_PLANE_SIZE, entry, |v| {
                v.parse::<u32>()
                    .ok()
                    .filter(|n| v.bytes().all(|b| b.is_ascii_digit()) && [1, 3, 5, 7].contains(n))
                    .ok_or(ValueProblem::NotControlPlaneSize)
            })?;
        }
        for (key, min, slot) in [
            (
                keys::ETCD_DEAD_MEMBER_AFTER,
                crate::etcd_cluster::MIN_DEAD_MEMBER_AFTER_SECS,
                &mut control_plane.dead_member_after_secs,
            ),
            (
                keys::ETCD_REPLACED_MEMBER_AFTER,
                crate::etcd_cluster::MIN_REPLACED_MEMBER_AFTER_SECS,
                &mut control_plane.replaced_member_after_secs,
            ),
        ] {
            if let Some(entry) = checker.set(key) {
                *slot = checker.value(key, entry, |v| {
                    v.parse::<u32>()
                        .ok()
                        .filter(|n| {
                            v.bytes().all(|b| b.is_ascii_digit()) && *n >= min && *n <= 86_400
                        })
                        .ok_or(ValueProblem::NotSeconds { min, max: 86_400 })
                })?;
            }
        }

        match self.role {
            NodeRole::Minion => {
                for key in [
                    keys::CONTROL_PLANE_SIZE,
                    keys::ETCD_DEAD_MEMBER_AFTER,
                    keys::ETCD_REPLACED_MEMBER_AFTER,
                ] {
                    if let Some(entry) = checker.set(key) {
                        warnings.push(RoleWarning::NotForRole {
                            key,
                            line: entry.line,
                            role: self.role,
                        });
                    }
                }
                if weave_consensus.is_none() && cni == Cni::Weave {
                    return Err(checker.missing(keys::WEAVE_CONSENSUS));
                }
                if probe == MasterProbe::Https && ca_cert_hash.is_none() && ca_cert_file.is_none() {
                    return Err(RoleFileError::NoMasterTrust {
                        path: self.path.clone(),
                    });
                }
                if probe == MasterProbe::Https && bootstrap_token.is_none() {
                    return Err(checker.missing(keys::BOOTSTRAP_TOKEN));
                }
            }
            NodeRole::Master => {
                for key in [
                    keys::WEAVE_CONSENSUS,
                    keys::MASTER_PROBE,
                    keys::MASTER_PORT,
                    keys::KUBELET_HOSTNAME,
                ] {
                    if let Some(entry) = checker.set(key) {
                        warnings.push(RoleWarning::NotForRole {
                            key,
                            line: entry.line,
                            role: self.role,
                        });
                    }
                }
            }
        }

        let extra: Vec<EnvAssignment> = self
            .entries
            .iter()
            .filter(|e| !keys::ALL.contains(&e.key.as_str()))
            .cloned()
            .collect();
        for entry in extra
            .iter()
            .filter(|e| !keys::UNIT_ARGS.contains(&e.key.as_str()))
        {
            warnings.push(RoleWarning::UnknownKey {
                key: entry.key.clone(),
                line: entry.line,
            });
        }
        warnings.sort_by_key(warning_line);

        Ok(RoleConfig {
            role: self.role,
            source: self.path.clone(),
            cluster_name,
            dns_domain,
            cloud_provider,
            kubelet_hostname,
            advertise_address,
            bootstrap_token,
            ca_cert_hash,
            ca_cert_file,
            master_endpoint: MasterEndpoint {
                host: masters_name,
                port,
                probe,
            },
            minions_name,
            weave_consensus,
            host_checks,
            cni,
            metrics_dir,
            dns_update,
            control_plane,
            content_sha256: String::new(),
            extra,
            warnings,
        })
    }
}

fn warning_line(warning: &RoleWarning) -> usize {
    match warning {
        RoleWarning::UnknownKey { line, .. }
        | RoleWarning::SeedFlagForm { line, .. }
        | RoleWarning::NotForRole { line, .. }
        | RoleWarning::CloudProviderNotExternal { line, .. } => *line,
    }
}

/// The seeds wrote kubelet flags into the role file (`CLOUD_PROVIDER=--cloud-provider=aws`); take the value.
fn strip_seed_flag<'a>(
    entry: &'a EnvAssignment,
    key: &'static str,
    flag: &'static str,
    warnings: &mut Vec<RoleWarning>,
) -> &'a str {
    match entry.value.strip_prefix(flag) {
        Some(rest) => {
            warnings.push(RoleWarning::SeedFlagForm {
                key,
                line: entry.line,
                flag,
            });
            rest
        }
        None => &entry.value,
    }
}

struct Checker<'a> {
    raw: &'a RawRoleFile,
    by_key: &'a HashMap<&'a str, &'a EnvAssignment>,
}

impl Checker<'_> {
    /// The `DNS_UPDATE_*` keys: `None` when `DNS_UPDATE_SERVER` is unset (then no other may be set).
    fn dns_update(
        &self,
        role: NodeRole,
        dns_domain: &DnsName,
        cluster: &ClusterName,
    ) -> Result<Option<DnsUpdateConfig>, RoleFileError> {
        let Some(server_entry) = self.set(keys::DNS_UPDATE_SERVER) else {
            if keys::DNS_UPDATE.iter().any(|key| self.set(key).is_some()) {
                return Err(self.missing(keys::DNS_UPDATE_SERVER));
            }
            return Ok(None);
        };
        let server = self.value(keys::DNS_UPDATE_SERVER, server_entry, |v| {
            dns_update::parse_server(v).ok_or(ValueProblem::NotDnsServer)
        })?;
        let zone_entry = self.set(keys::DNS_UPDATE_ZONE);
        let zone = match zone_entry {
            Some(entry) => self.value(keys::DNS_UPDATE_ZONE, entry, DnsName::parse)?,
            None => dns_domain.clone(),
        };
        let key_name = match self.set(keys::DNS_UPDATE_TSIG_NAME) {
            Some(entry) => self.value(keys::DNS_UPDATE_TSIG_NAME, entry, |v| {
                DnsName::parse(v.trim_end_matches('.'))
            })?,
            None => return Err(self.missing(keys::DNS_UPDATE_TSIG_NAME)),
        };
        let algorithm = match self.set(keys::DNS_UPDATE_TSIG_ALGORITHM) {
            Some(entry) => self.value(keys::DNS_UPDATE_TSIG_ALGORITHM, entry, |v| {
                TsigAlgorithmName::parse(v).ok_or(ValueProblem::NotTsigAlgorithm)
            })?,
            None => TsigAlgorithmName::default(),
        };
        let key_file = match self.set(keys::DNS_UPDATE_TSIG_FILE) {
            Some(entry) => self.value(keys::DNS_UPDATE_TSIG_FILE, entry, |v| {
                let path = PathBuf::from(v);
                if path.is_absolute() {
                    Ok(path)
                } else {
                    Err(ValueProblem::NotAbsolutePath)
                }
            })?,
            None => return Err(self.missing(keys::DNS_UPDATE_TSIG_FILE)),
        };
        let ttl_secs = match self.set(keys::DNS_UPDATE_TTL) {
            Some(entry) => self.value(keys::DNS_UPDATE_TTL, entry, |v| {
                let max = dns_update::MAX_TTL_SECS;
                v.parse::<u32>()
                    .ok()
                    .filter(|n| (1..=max).contains(n) && v.bytes().all(|b| b.is_ascii_digit()))
                    .ok_or(ValueProblem::NotTtl { max })
            })?,
            None => dns_update::DEFAULT_TTL_SECS,
        };
        let cluster_dns = dns_domain
            .child(cluster.as_str())
            .map_err(|p| self.invalid_default(keys::DNS_UPDATE_RECORDS, p))?;
        let default_label = match role {
            NodeRole::Master => "masters",
            NodeRole::Minion => DEFAULT_PEERS_RECORD,
        };
        let records_entry = self.set(keys::DNS_UPDATE_RECORDS);
        let labels: Vec<&str> = match records_entry {
            Some(entry) => entry
                .value
                .split([',', ' ', '\t'])
                .filter(|l| !l.is_empty())
                .collect(),
            None => vec![default_label],
        };
        let mut records: Vec<DnsName> = Vec::new();
        for label in labels {
            let record = match records_entry {
                Some(entry) => self.value_of(keys::DNS_UPDATE_RECORDS, entry, label, |l| {
                    ClusterName::parse(l).and_then(|l| cluster_dns.child(l.as_str()))
                })?,
                None => cluster_dns
                    .child(label)
                    .map_err(|p| self.invalid_default(keys::DNS_UPDATE_RECORDS, p))?,
            };
            if !dns_update::in_zone(&record, &zone) {
                let entry = zone_entry.or(records_entry).unwrap_or(server_entry);
                let key = if zone_entry.is_some() {
                    keys::DNS_UPDATE_ZONE
                } else {
                    keys::DNS_UPDATE_RECORDS
                };
                return Err(RoleFileError::InvalidValue {
                    path: self.raw.path.clone(),
                    line: entry.line,
                    key,
                    value: entry.value.clone(),
                    problem: ValueProblem::OutsideZone {
                        name: record.to_string(),
                        zone: zone.to_string(),
                    },
                });
            }
            if !records.contains(&record) {
                records.push(record);
            }
        }
        Ok(Some(DnsUpdateConfig {
            server,
            zone,
            key_name,
            algorithm,
            key_file,
            records,
            ttl_secs,
        }))
    }

    /// The assignment of an optional key, unless it is empty (empty means unset).
    fn set(&self, key: &str) -> Option<&EnvAssignment> {
        self.by_key
            .get(key)
            .copied()
            .filter(|e| !e.value.is_empty())
    }

    fn value<T>(
        &self,
        key: &'static str,
        entry: &EnvAssignment,
        parse: impl FnOnce(&str) -> Result<T, ValueProblem>,
    ) -> Result<T, RoleFileError> {
        self.value_of(key, entry, &entry.value, parse)
    }

    fn value_of<T>(
        &self,
        key: &'static str,
        entry: &EnvAssignment,
        value: &str,
        parse: impl FnOnce(&str) -> Result<T, ValueProblem>,
    ) -> Result<T, RoleFileError> {
        parse(value).map_err(|problem| RoleFileError::InvalidValue {
            path: self.raw.path.clone(),
            line: entry.line,
            key,
            value: if env_syntax::looks_secret(key) {
                REDACTED.to_string()
            } else {
                entry.value.clone()
            },
            problem,
        })
    }

    fn missing(&self, key: &'static str) -> RoleFileError {
        RoleFileError::MissingKey {
            path: self.raw.path.clone(),
            key,
        }
    }

    fn invalid_default(&self, key: &'static str, problem: ValueProblem) -> RoleFileError {
        RoleFileError::InvalidValue {
            path: self.raw.path.clone(),
            line: 0,
            key,
            value: String::new(),
            problem,
        }
    }
}

/// Parse and check role file text. Pure; `path` is only used in messages.
pub fn parse_role_file(
    path: &Path,
    role: NodeRole,
    text: &str,
) -> Result<RoleConfig, RoleFileError> {
    let mut config = RawRoleFile::parse(path, role, text)?.check()?;
    config.content_sha256 = content_sha256(text.as_bytes());
    Ok(config)
}

/// sha256 of a role file's bytes, hex (what [`RoleConfig::content_sha256`] holds).
pub fn content_sha256(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    hex::encode(sha2::Sha256::digest(bytes))
}

/// How the role file on disk compares with the one the agent read: `None` when it is the same.
pub fn drift(read_sha256: &str, now: Option<&[u8]>) -> Option<RoleFileDrift> {
    if read_sha256.is_empty() {
        return None; // a state from before the agent recorded it
    }
    match now {
        None => Some(RoleFileDrift::Removed),
        Some(bytes) => {
            let current = content_sha256(bytes);
            (current != read_sha256).then(|| RoleFileDrift::Changed {
                was: read_sha256.to_string(),
                now: current,
            })
        }
    }
}

/// A role file that is no longer what the agent read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum RoleFileDrift {
    Changed { was: String, now: String },
    Removed,
}

impl RoleFileDrift {
    /// The sentence `status` shows, for the role file at `path`.
    pub fn describe(&self, path: &Path) -> String {
        let what = match self {
            RoleFileDrift::Changed { was, now } => format!(
                "{} changed after the agent read it (sha256 {}… then, {}… now)",
                path.display(),
                &was[..12.min(was.len())],
                &now[..12.min(now.len())]
            ),
            RoleFileDrift::Removed => {
                format!("{} was removed after the agent read it", path.display())
            }
        };
        format!(
            "{what}: this node keeps running with what it read — reboot the node to apply a new role file (a restart \
             of k8s-agent re-reads it, and stops rather than mix a different cluster, role or consensus with the \
             units already running)"
        )
    }
}

/// Bytes → text, with the size limit and the UTF-8 check (and the line of the first bad byte). Pure.
pub fn decode_role_file(path: &Path, bytes: &[u8]) -> Result<String, RoleFileError> {
    if bytes.len() > MAX_ROLE_FILE_BYTES {
        return Err(RoleFileError::Syntax {
            path: path.to_path_buf(),
            line: 1,
            problem: SyntaxProblem::TooLarge {
                limit: MAX_ROLE_FILE_BYTES,
            },
        });
    }
    String::from_utf8(bytes.to_vec()).map_err(|e| {
        let good = &bytes[..e.utf8_error().valid_up_to()];
        RoleFileError::Syntax {
            path: path.to_path_buf(),
            line: 1 + good.iter().filter(|b| **b == b'\n').count(),
            problem: SyntaxProblem::NotUtf8,
        }
    })
}

/// Which role file is there.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum RoleDiscovery {
    /// Neither file exists (yet): cloud-init writes it late in boot.
    NoneYet { master: PathBuf, minion: PathBuf },
    /// Exactly one exists.
    Found { path: PathBuf, role: NodeRole },
    /// Both exist: refuse, start nothing.
    Both { master: PathBuf, minion: PathBuf },
    /// Whether a file exists could not be determined (e.g. permissions).
    Unreadable { path: PathBuf, message: String },
}

impl RoleDiscovery {
    /// A sentence for the operator.
    pub fn reason(&self) -> String {
        match self {
            RoleDiscovery::NoneYet { master, minion } => format!(
                "cloud-init has not written a role file yet (neither {} nor {} exists)",
                master.display(),
                minion.display()
            ),
            RoleDiscovery::Found { path, role } => {
                format!("{} makes this node a {role}", path.display())
            }
            RoleDiscovery::Both { master, minion } => format!(
                "both {} and {} exist: a node is either a master or a minion, so nothing was started — remove the \
                 wrong one (check the instance's user data) and restart k8s-agent",
                master.display(),
                minion.display()
            ),
            RoleDiscovery::Unreadable { path, message } => {
                format!("cannot tell whether {} exists: {message}", path.display())
            }
        }
    }
}

/// The outcome of the role-file edge's `load` (`k8s_agent::edge::role_file`): what it reports to the plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RoleLoad {
    /// No single role file to read ([`RoleDiscovery::Found`] never appears here).
    NotRead(RoleDiscovery),
    Parsed(Box<RoleConfig>),
    Invalid(RoleFileError),
}

#[cfg(test)]
mod tests;
