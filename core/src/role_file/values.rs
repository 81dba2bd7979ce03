//! The checked value types a role file is made of: each parses from the raw string or says exactly what is wrong
//! ([`ValueProblem`], which carries the hint). Pure, no I/O.
//!
//! Decisions:
//! - [`ClusterName`] and [`DnsName`] reject upper-case instead of lower-casing it: the name ends up in DNS
//!   names, certificate SANs, AWS tags and file names written by other tools, and silently changing it would make
//!   `Prod` here and `Prod` there two different things. The error suggests the lower-case spelling.
//! - [`Secret`] never prints its value: `Debug`, `Display` and `Serialize` all give `<redacted>`, and it has no
//!   `Deserialize` (a redacted value cannot come back as a fake secret). The value is reachable only through
//!   [`Secret::expose`], so every use is greppable.

use serde::{Deserialize, Serialize, Serializer};
use std::fmt;

/// What is wrong with a value. `Display` says what, [`ValueProblem::hint`] says what to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ValueProblem {
    /// The value is empty but the key needs one.
    Empty,
    /// Not a DNS label: the character that is not allowed.
    LabelBadChar {
        found: char,
    },
    /// A DNS label longer than 63 characters.
    LabelTooLong {
        len: usize,
    },
    /// A DNS label starting or ending with '-'.
    LabelHyphenAtEdge,
    /// Upper-case letters in a name (rejected, see the module doc).
    UpperCase {
        lower: String,
    },
    /// A DNS name with an empty label (`a..b`, a leading or trailing dot).
    EmptyLabel,
    /// A DNS name longer than 253 characters.
    NameTooLong {
        len: usize,
    },
    /// Not a kubeadm bootstrap token (`[a-z0-9]{6}.[a-z0-9]{16}`).
    NotBootstrapToken,
    /// Not `sha256:` followed by 64 hex digits.
    NotCaPin,
    /// A relative path where an absolute one is needed.
    NotAbsolutePath,
    /// `MASTER_PROBE` other than `https` or `http`.
    NotMasterProbe,
    /// Not a TCP port 1..=65535.
    NotPort,
    /// `WEAVE_CONSENSUS` outside 1..=max.
    NotConsensusSize {
        max: u32,
    },
    /// Not a cloud provider name (`[a-z0-9-]+`).
    NotCloudProvider,
    /// `HOST_CHECKS` other than `enforce` or `warn`.
    NotHostCheckMode,
    NotCni,
    /// `DNS_UPDATE_SERVER` that is not an IP address (with an optional port).
    NotDnsServer,
    /// `ADVERTISE_ADDRESS` that is not a unicast IP address.
    NotAdvertiseAddress,
    /// `DNS_UPDATE_TSIG_ALGORITHM` other than hmac-sha256/384/512.
    NotTsigAlgorithm,
    /// `CONTROL_PLANE_SIZE` other than 1, 3, 5 or 7.
    NotControlPlaneSize,
    /// A number of seconds outside min..=max.
    NotSeconds {
        min: u32,
        max: u32,
    },
    /// `DNS_UPDATE_TTL` outside 1..=max.
    NotTtl {
        max: u32,
    },
    /// A `DNS_UPDATE_RECORDS` name that is not inside `DNS_UPDATE_ZONE`.
    OutsideZone {
        name: String,
        zone: String,
    },
}

impl ValueProblem {
    /// What the operator can do about it.
    pub fn hint(&self) -> String {
        match self {
            ValueProblem::Empty => "give it a value or remove the line".to_string(),
            ValueProblem::LabelBadChar { found } if found.is_whitespace() => {
                "use lower-case letters, digits and '-' (systemd has no trailing comments: a '#' after a value \
                 is part of it)"
                    .to_string()
            }
            ValueProblem::LabelBadChar { .. }
            | ValueProblem::LabelHyphenAtEdge
            | ValueProblem::EmptyLabel => "use lower-case letters, digits and '-'".to_string(),
            ValueProblem::LabelTooLong { .. } => "use at most 63 characters".to_string(),
            ValueProblem::UpperCase { lower } => format!("write it in lower case: {lower}"),
            ValueProblem::NameTooLong { .. } => "use a shorter name (at most 253 characters)".to_string(),
            ValueProblem::NotBootstrapToken => {
                "use a kubeadm token: 6 and 16 lower-case letters or digits joined by '.', as printed by \
                 `kubeadm token create`"
                    .to_string()
            }
            ValueProblem::NotCaPin => {
                "use sha256:<64 hex digits> of the CA's public key, as printed by `kubeadm token create \
                 --print-join-command`"
                    .to_string()
            }
            ValueProblem::NotAbsolutePath => "use an absolute path, e.g. /etc/kubernetes/pki/ca.crt".to_string(),
            ValueProblem::NotMasterProbe => {
                "use https (the default) or http (only for old or test clusters)".to_string()
            }
            ValueProblem::NotPort => "use a TCP port between 1 and 65535, e.g. 6443".to_string(),
            ValueProblem::NotConsensusSize { max } => format!(
                "use the number of minions the group starts with (1..={max}), the same in every minion's user data"
            ),
            ValueProblem::NotCloudProvider => {
                "use the provider name, e.g. external (current kubelets accept only external)".to_string()
            }
            ValueProblem::NotHostCheckMode => {
                "use enforce (the default) or warn (labs and containers whose kernel the node does not own)"
                    .to_string()
            }
            ValueProblem::NotDnsServer => {
                "use the IP address of the primary server that takes updates, optionally with a port \
                 (10.0.0.2, 10.0.0.2:53, [fd00::2]:53): a name would need DNS to find DNS"
                    .to_string()
            }
            ValueProblem::NotAdvertiseAddress => {
                "use this master's own unicast IP address, the one other nodes reach it at (e.g. 10.0.0.10); \
                 leave it out to let the agent choose"
                    .to_string()
            }
            ValueProblem::NotTsigAlgorithm => {
                "use hmac-sha256 (the default, what `tsig-keygen` makes), hmac-sha384 or hmac-sha512".to_string()
            }
            ValueProblem::NotTtl { max } => format!("use a number of seconds from 1 to {max}, e.g. 30"),
            ValueProblem::NotControlPlaneSize => {
                "use 1 (one master), or 3, 5 or 7 masters with etcd across them, the same in every master's user data"
                    .to_string()
            }
            ValueProblem::NotSeconds { min, max } => {
                format!("use a number of seconds from {min} to {max}")
            }
            ValueProblem::OutsideZone { zone, .. } => format!(
                "set DNS_UPDATE_ZONE to the zone that holds the records (it is {zone}), or use record labels \
                 below it"
            ),
            ValueProblem::NotCni => {
                "use weave (the default: Weave Net run from its baked image), bridge (the CNI bridge plugin with routes \
                 the agent makes) or none (bring your own CNI)"
                    .to_string()
            }
        }
    }
}

impl fmt::Display for ValueProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ValueProblem::Empty => f.write_str("is empty"),
            ValueProblem::LabelBadChar { found } => {
                write!(f, "is not a DNS label (contains {found:?})")
            }
            ValueProblem::LabelTooLong { len } => {
                write!(f, "is not a DNS label ({len} characters, at most 63)")
            }
            ValueProblem::LabelHyphenAtEdge => {
                f.write_str("is not a DNS label (starts or ends with '-')")
            }
            ValueProblem::UpperCase { .. } => f.write_str("is not lower-case"),
            ValueProblem::EmptyLabel => f.write_str("is not a DNS name (empty label)"),
            ValueProblem::NameTooLong { len } => {
                write!(f, "is not a DNS name ({len} characters, at most 253)")
            }
            ValueProblem::NotBootstrapToken => f.write_str("is not a bootstrap token"),
            ValueProblem::NotCaPin => f.write_str("is not a CA pin"),
            ValueProblem::NotAbsolutePath => f.write_str("is not an absolute path"),
            ValueProblem::NotMasterProbe => f.write_str("is not a master probe scheme"),
            ValueProblem::NotPort => f.write_str("is not a port"),
            ValueProblem::NotConsensusSize { max } => {
                write!(f, "is not a consensus size (1..={max})")
            }
            ValueProblem::NotCloudProvider => f.write_str("is not a cloud provider name"),
            ValueProblem::NotHostCheckMode => f.write_str("is not a host check mode"),
            ValueProblem::NotCni => f.write_str("is not a pod network this image knows"),
            ValueProblem::NotDnsServer => {
                f.write_str("is not an IP address (with an optional port)")
            }
            ValueProblem::NotAdvertiseAddress => f.write_str("is not a unicast IP address"),
            ValueProblem::NotTsigAlgorithm => {
                f.write_str("is not a TSIG algorithm the agent signs with")
            }
            ValueProblem::NotTtl { max } => write!(f, "is not a TTL (1..={max} s)"),
            ValueProblem::NotControlPlaneSize => {
                f.write_str("is not a control plane size (1, 3, 5 or 7)")
            }
            ValueProblem::NotSeconds { min, max } => {
                write!(f, "is not a number of seconds ({min}..={max})")
            }
            ValueProblem::OutsideZone { name, zone } => {
                write!(f, "makes {name}, which is not in the zone {zone}")
            }
        }
    }
}

/// Check one DNS label: 1-63 characters of `[a-z0-9-]`, not starting or ending with '-'.
fn check_label(label: &str) -> Result<(), ValueProblem> {
    if label.is_empty() {
        return Err(ValueProblem::EmptyLabel);
    }
    if let Some(found) = label
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || *c == '-'))
    {
        return Err(ValueProblem::LabelBadChar { found });
    }
    if label.len() > 63 {
        return Err(ValueProblem::LabelTooLong { len: label.len() });
    }
    if label.starts_with('-') || label.ends_with('-') {
        return Err(ValueProblem::LabelHyphenAtEdge);
    }
    if label.chars().any(|c| c.is_ascii_uppercase()) {
        return Err(ValueProblem::UpperCase {
            lower: label.to_ascii_lowercase(),
        });
    }
    Ok(())
}

/// The cluster's name: one lower-case DNS label (`CLUSTER_NAME`), e.g. `cncfdemo`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ClusterName(String);

impl ClusterName {
    pub fn parse(value: &str) -> Result<ClusterName, ValueProblem> {
        if value.is_empty() {
            return Err(ValueProblem::Empty);
        }
        check_label(value)?;
        Ok(ClusterName(value.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for ClusterName {
    type Error = String;
    fn try_from(value: String) -> Result<Self, String> {
        ClusterName::parse(&value).map_err(|p| format!("cluster name {value:?} {p}"))
    }
}

impl From<ClusterName> for String {
    fn from(name: ClusterName) -> String {
        name.0
    }
}

impl fmt::Display for ClusterName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A lower-case DNS name without a trailing dot: labels as in [`ClusterName`], at most 253 characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct DnsName(String);

/// The longest DNS name in its text form.
pub const MAX_DNS_NAME_LEN: usize = 253;

impl DnsName {
    pub fn parse(value: &str) -> Result<DnsName, ValueProblem> {
        if value.is_empty() {
            return Err(ValueProblem::Empty);
        }
        // Characters first, so "a b.c" reports the space rather than a label length.
        if let Some(found) = value
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || *c == '-' || *c == '.'))
        {
            return Err(ValueProblem::LabelBadChar { found });
        }
        if value.len() > MAX_DNS_NAME_LEN {
            return Err(ValueProblem::NameTooLong { len: value.len() });
        }
        for label in value.split('.') {
            check_label(label).map_err(|p| match p {
                // Report upper case for the whole name, not one label.
                ValueProblem::UpperCase { .. } => ValueProblem::UpperCase {
                    lower: value.to_ascii_lowercase(),
                },
                other => other,
            })?;
        }
        Ok(DnsName(value.to_string()))
    }

    /// `<label>.<self>`, checked.
    pub fn child(&self, label: &str) -> Result<DnsName, ValueProblem> {
        DnsName::parse(&format!("{label}.{}", self.0))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for DnsName {
    type Error = String;
    fn try_from(value: String) -> Result<Self, String> {
        DnsName::parse(&value).map_err(|p| format!("DNS name {value:?} {p}"))
    }
}

impl From<DnsName> for String {
    fn from(name: DnsName) -> String {
        name.0
    }
}

impl fmt::Display for DnsName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What [`Secret`] prints instead of its value.
pub const REDACTED: &str = "<redacted>";

/// A value that must never be printed, logged or serialised: `Debug`, `Display` and `Serialize` give
/// `<redacted>`. Read it with [`Secret::expose`].
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    /// The secret value itself, for the one place that hands it on (e.g. `kubeadm join --token`).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(REDACTED)
    }
}

/// A kubeadm bootstrap token (`BOOTSTRAP_TOKEN`), `[a-z0-9]{6}.[a-z0-9]{16}`: the join secret. The whole token
/// is a [`Secret`]; only the 6-character token id (which `kubeadm token list` shows too) is printable.
#[derive(Clone, PartialEq, Eq, Serialize)]
pub struct BootstrapToken {
    id: String,
    token: Secret,
}

impl BootstrapToken {
    pub fn parse(value: &str) -> Result<BootstrapToken, ValueProblem> {
        let ok = |part: &str, len: usize| {
            part.len() == len
                && part
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        };
        match value.split_once('.') {
            Some((id, secret)) if ok(id, 6) && ok(secret, 16) => Ok(BootstrapToken {
                id: id.to_string(),
                token: Secret::new(value),
            }),
            _ if value.is_empty() => Err(ValueProblem::Empty),
            _ => Err(ValueProblem::NotBootstrapToken),
        }
    }

    /// The public token id (the part before the '.').
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The whole token, `id.secret`.
    pub fn secret(&self) -> &Secret {
        &self.token
    }

    /// The secret half (after the '.'): the HMAC key of the cluster-info signatures and the Secret's
    /// `token-secret`. Never print it.
    pub fn secret_part(&self) -> &str {
        self.token
            .expose()
            .split_once('.')
            .map_or("", |(_, secret)| secret)
    }
}

impl fmt::Debug for BootstrapToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BootstrapToken({}.{REDACTED})", self.id)
    }
}

impl fmt::Display for BootstrapToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{REDACTED}", self.id)
    }
}

/// kubeadm's CA pin (`CA_CERT_HASH`): `sha256:` and the SHA-256 of the cluster CA certificate's
/// SubjectPublicKeyInfo. Not a secret (it is a hash of a public key). Hex digits are accepted in either case
/// (kubeadm does) and stored lower-case.
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct CaPin([u8; 32]);

impl fmt::Debug for CaPin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CaPin({self})")
    }
}

impl CaPin {
    pub fn parse(value: &str) -> Result<CaPin, ValueProblem> {
        if value.is_empty() {
            return Err(ValueProblem::Empty);
        }
        let hex_part = value
            .strip_prefix("sha256:")
            .ok_or(ValueProblem::NotCaPin)?;
        let mut bytes = [0u8; 32];
        if hex_part.len() != 64 {
            return Err(ValueProblem::NotCaPin);
        }
        hex::decode_to_slice(hex_part, &mut bytes).map_err(|_| ValueProblem::NotCaPin)?;
        Ok(CaPin(bytes))
    }

    /// The SHA-256 digest the CA's SubjectPublicKeyInfo must have.
    pub fn sha256(&self) -> &[u8; 32] {
        &self.0
    }

    /// True when `spki_der` (a DER SubjectPublicKeyInfo) hashes to this pin.
    pub fn matches_spki(&self, spki_der: &[u8]) -> bool {
        use sha2::{Digest, Sha256};
        Sha256::digest(spki_der).as_slice() == self.0.as_slice()
    }
}

impl TryFrom<String> for CaPin {
    type Error = String;
    fn try_from(value: String) -> Result<Self, String> {
        CaPin::parse(&value).map_err(|p| format!("CA pin {value:?} {p}"))
    }
}

impl From<CaPin> for String {
    fn from(pin: CaPin) -> String {
        pin.to_string()
    }
}

impl fmt::Display for CaPin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sha256:{}", hex::encode(self.0))
    }
}

/// What failing live host checks do (`HOST_CHECKS`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum HostCheckMode {
    /// A failing host check stops the node from coming up (the default).
    #[default]
    Enforce,
    /// Failing host checks are reported (`k8s-agent status`) but do not block: for labs and containers that do
    /// not own their kernel (swap, cgroup version, modules are the host's) or are not built from the image.
    Warn,
}

impl HostCheckMode {
    pub fn parse(value: &str) -> Result<HostCheckMode, ValueProblem> {
        match value {
            "enforce" => Ok(HostCheckMode::Enforce),
            "warn" => Ok(HostCheckMode::Warn),
            "" => Err(ValueProblem::Empty),
            _ => Err(ValueProblem::NotHostCheckMode),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            HostCheckMode::Enforce => "enforce",
            HostCheckMode::Warn => "warn",
        }
    }
}

/// The pod network (`CNI`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Cni {
    /// Weave Net, the seeds' choice: the agent computes its IPAM start-up, writes its CNI configuration and starts
    /// weave.service (the baked weave-kube image, run by containerd). The default.
    #[default]
    Weave,
    /// The routed bridge ([`crate::pod_network`]): the CNI reference plugins (`bridge` + `host-local` on the
    /// node's podCIDR), routes to the other nodes' pods made by the agent from the minions' DNS record. For images
    /// without Weave Net (its module cannot be fetched here); the Weave decision is still computed when
    /// `WEAVE_CONSENSUS` is set, and not applied.
    Bridge,
    /// Bring your own: the agent writes no CNI configuration, computes no Weave start-up and starts no weave.
    None,
}

impl Cni {
    pub fn parse(value: &str) -> Result<Cni, ValueProblem> {
        match value {
            "weave" => Ok(Cni::Weave),
            "none" => Ok(Cni::None),
            "bridge" => Ok(Cni::Bridge),
            "" => Err(ValueProblem::Empty),
            _ => Err(ValueProblem::NotCni),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Cni::Weave => "weave",
            Cni::None => "none",
            Cni::Bridge => "bridge",
        }
    }
}

/// How a minion checks that the masters answer (`MASTER_PROBE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum MasterProbe {
    /// `GET https://<endpoint>:6443/readyz`, TLS verified against the cluster CA (the default).
    #[default]
    Https,
    /// `GET http://<endpoint>:8080/healthz` without TLS: only when the role file says `MASTER_PROBE=http`
    /// (old or test clusters; the insecure port was removed from Kubernetes).
    PlainHttp,
}

impl MasterProbe {
    pub fn parse(value: &str) -> Result<MasterProbe, ValueProblem> {
        match value {
            "https" => Ok(MasterProbe::Https),
            "http" => Ok(MasterProbe::PlainHttp),
            "" => Err(ValueProblem::Empty),
            _ => Err(ValueProblem::NotMasterProbe),
        }
    }

    /// URL scheme.
    pub fn scheme(self) -> &'static str {
        match self {
            MasterProbe::Https => "https",
            MasterProbe::PlainHttp => "http",
        }
    }

    /// The port used when `MASTER_PORT` is not set.
    pub fn default_port(self) -> u16 {
        match self {
            MasterProbe::Https => 6443,
            MasterProbe::PlainHttp => 8080,
        }
    }

    /// The health path: `/readyz` (anonymous on current API servers) or the old `/healthz`.
    pub fn path(self) -> &'static str {
        match self {
            MasterProbe::Https => "/readyz",
            MasterProbe::PlainHttp => "/healthz",
        }
    }
}

impl fmt::Display for MasterProbe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.scheme())
    }
}

/// A cloud provider name for the kubelet (`CLOUD_PROVIDER`), `[a-z0-9-]+`. Current kubelets accept only
/// `external`; other names are kept (with a warning) for old images.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct CloudProvider(String);

impl CloudProvider {
    pub fn parse(value: &str) -> Result<CloudProvider, ValueProblem> {
        if value.is_empty() {
            return Err(ValueProblem::Empty);
        }
        if !value
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        {
            return Err(ValueProblem::NotCloudProvider);
        }
        Ok(CloudProvider(value.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for CloudProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_names() {
        for ok in ["cncfdemo", "prod-1", "a", "0", &"x".repeat(63)] {
            assert_eq!(
                ClusterName::parse(ok).map(|n| n.to_string()),
                Ok(ok.to_string())
            );
        }
        assert_eq!(
            ClusterName::parse("Prod_1"),
            Err(ValueProblem::LabelBadChar { found: '_' })
        );
        assert_eq!(
            ClusterName::parse("Prod"),
            Err(ValueProblem::UpperCase {
                lower: "prod".into()
            })
        );
        assert_eq!(
            ClusterName::parse("-a"),
            Err(ValueProblem::LabelHyphenAtEdge)
        );
        assert_eq!(
            ClusterName::parse("a-"),
            Err(ValueProblem::LabelHyphenAtEdge)
        );
        assert_eq!(ClusterName::parse(""), Err(ValueProblem::Empty));
        assert_eq!(
            ClusterName::parse(&"x".repeat(64)),
            Err(ValueProblem::LabelTooLong { len: 64 })
        );
        assert_eq!(
            ClusterName::parse("a.b"),
            Err(ValueProblem::LabelBadChar { found: '.' })
        );
        assert_eq!(
            ClusterName::parse("prod # x"),
            Err(ValueProblem::LabelBadChar { found: ' ' })
        );
        assert!(
            ValueProblem::LabelBadChar { found: ' ' }
                .hint()
                .contains("trailing comments")
        );
    }

    #[test]
    fn dns_names() {
        for ok in ["k8s", "cluster.local", "a-b.c-d.e", "internal.example.com"] {
            assert!(DnsName::parse(ok).is_ok(), "{ok}");
        }
        assert_eq!(DnsName::parse("k8s."), Err(ValueProblem::EmptyLabel));
        assert_eq!(DnsName::parse(".k8s"), Err(ValueProblem::EmptyLabel));
        assert_eq!(DnsName::parse("a..b"), Err(ValueProblem::EmptyLabel));
        assert_eq!(
            DnsName::parse("K8s.Local"),
            Err(ValueProblem::UpperCase {
                lower: "k8s.local".into()
            })
        );
        assert_eq!(
            DnsName::parse("a_b.c"),
            Err(ValueProblem::LabelBadChar { found: '_' })
        );
        let long = vec!["a".repeat(60); 5].join(".");
        assert_eq!(
            DnsName::parse(&long),
            Err(ValueProblem::NameTooLong { len: 304 })
        );
        let name = DnsName::parse("k8s")
            .and_then(|d| d.child("prod"))
            .map(|d| d.to_string());
        assert_eq!(name, Ok("prod.k8s".to_string()));
    }

    #[test]
    fn secret_never_prints_its_value() {
        let secret = Secret::new("hunter2-very-secret");
        assert_eq!(format!("{secret:?}"), "<redacted>");
        assert_eq!(format!("{secret}"), "<redacted>");
        assert_eq!(
            serde_json::to_string(&secret).ok(),
            Some("\"<redacted>\"".to_string())
        );
        assert_eq!(secret.expose(), "hunter2-very-secret");
    }

    #[test]
    fn bootstrap_tokens() {
        let token = BootstrapToken::parse("abcdef.0123456789abcdef");
        let token = match token {
            Ok(t) => t,
            Err(e) => panic!("{e}"),
        };
        assert_eq!(token.id(), "abcdef");
        assert_eq!(token.secret().expose(), "abcdef.0123456789abcdef");
        for shown in [
            format!("{token:?}"),
            format!("{token}"),
            serde_json::to_string(&token).unwrap_or_default(),
        ] {
            assert!(!shown.contains("0123456789abcdef"), "{shown}");
            assert!(shown.contains("<redacted>"), "{shown}");
        }
        for bad in [
            "abcdef0123456789abcdef",
            "ABCDEF.0123456789abcdef",
            "abcde.0123456789abcdef",
            "abcdef.0123",
        ] {
            assert_eq!(
                BootstrapToken::parse(bad),
                Err(ValueProblem::NotBootstrapToken),
                "{bad}"
            );
        }
        assert_eq!(BootstrapToken::parse(""), Err(ValueProblem::Empty));
    }

    #[test]
    fn ca_pins() {
        let hex64 = "0123456789ABCDEF".repeat(4);
        let pin = CaPin::parse(&format!("sha256:{hex64}")).map(|p| p.to_string());
        assert_eq!(pin, Ok(format!("sha256:{}", hex64.to_lowercase())));
        assert_eq!(CaPin::parse(&hex64), Err(ValueProblem::NotCaPin));
        assert_eq!(CaPin::parse("sha256:abcd"), Err(ValueProblem::NotCaPin));
        assert_eq!(
            CaPin::parse(&format!("sha256:{}", "g".repeat(64))),
            Err(ValueProblem::NotCaPin)
        );
        assert_eq!(
            CaPin::parse(&format!("sha1:{hex64}")),
            Err(ValueProblem::NotCaPin)
        );
        // The pin is the SHA-256 of the SPKI bytes.
        use sha2::{Digest, Sha256};
        let spki = b"not really DER, but bytes";
        let pin = CaPin::parse(&format!("sha256:{}", hex::encode(Sha256::digest(spki))));
        assert_eq!(pin.map(|p| p.matches_spki(spki)), Ok(true));
    }

    #[test]
    fn master_probe_scheme() {
        assert_eq!(MasterProbe::parse("https"), Ok(MasterProbe::Https));
        assert_eq!(MasterProbe::parse("http"), Ok(MasterProbe::PlainHttp));
        assert_eq!(
            MasterProbe::parse("HTTP"),
            Err(ValueProblem::NotMasterProbe)
        );
        assert_eq!(MasterProbe::default(), MasterProbe::Https);
    }
}
