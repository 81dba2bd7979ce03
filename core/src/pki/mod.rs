//! The control plane's PKI in kubeadm's layout (`/etc/kubernetes/pki`, the kubeconfigs in `/etc/kubernetes`):
//! which files to generate, and checks of the files that already exist. Pure: the files are a map of bytes,
//! the time is an argument, the result is a list of files to write (`k8s_agent::edge::pki_files` reads and
//! writes them). Key generation uses ring's system randomness.
//!
//! # What [`plan_control_plane`] does
//!
//! 1. **Checks every file that exists**, in the order of [`control_plane_files`] ([`CONTROL_PLANE_FILES`], then
//!    [`ETCD_FILES`] on an HA control plane), and stops at the first problem ([`PkiError`], one variant per kind
//!    of problem). Nothing that exists is ever replaced: fixing a file, or removing it to have it generated, is
//!    the operator's decision.
//! 2. **Generates what is missing** and returns it as [`PlannedFile`]s, in the same order. Planning again with
//!    those files written returns nothing.
//!
//! | file (under `etc/kubernetes/pki`) | CN | O | usage | signed by | if missing |
//! |---|---|---|---|---|---|
//! | ca.crt / ca.key | (the user's) | | CA | | error: the user supplies the cluster CA (RSA or ECDSA; PKCS#8, PKCS#1 or SEC1 key) |
//! | apiserver | kube-apiserver | | serverAuth | ca | generated; SANs below |
//! | apiserver-kubelet-client | kube-apiserver-kubelet-client | kubeadm:cluster-admins | clientAuth | ca | generated |
//! | front-proxy-ca | front-proxy-ca | | CA | self | generated |
//! | front-proxy-client | front-proxy-client | | clientAuth | front-proxy-ca | generated |
//! | sa.key / sa.pub | | | | | generated (sa.pub alone is derived from an existing sa.key) |
//!
//! apiserver.crt's SANs: DNS node name, `kubernetes`, `kubernetes.default`, `kubernetes.default.svc`,
//! `kubernetes.default.svc.cluster.local`, the endpoint host (`masters.<cluster>.<domain>`); IP the service IP,
//! every advertise address, `127.0.0.1` (the controller manager and scheduler connect over loopback). An
//! existing apiserver.crt must cover the endpoint host, the service IP and 127.0.0.1.
//!
//! | kubeconfig (under `etc/kubernetes`) | user CN | O | server |
//! |---|---|---|---|
//! | admin.conf | kubernetes-admin | kubeadm:cluster-admins | `https://<endpoint host>:6443` |
//! | super-admin.conf | kubernetes-super-admin | system:masters | `https://<endpoint host>:6443` |
//! | controller-manager.conf | system:kube-controller-manager | | `https://127.0.0.1:6443` |
//! | scheduler.conf | system:kube-scheduler | | `https://127.0.0.1:6443` |
//!
//! Each embeds ca.crt, a client certificate (clientAuth, signed by ca) and its key; names as kubeadm's
//! ([`crate::kubeconfig`]). An existing kubeconfig must embed ca.crt, a client certificate signed by it
//! with the CN above and the matching key.
//!
//! # A highly available control plane
//!
//! [`ControlPlaneSpec::control_plane_size`] 1 is the single master above: etcd listens on loopback without
//! TLS, and nothing of etcd's is read, checked or generated (files under `pki/etcd` are ignored). Above 1 the
//! masters share their CAs and the service-account key, and etcd runs across them over mutual TLS:
//!
//! | file (under `etc/kubernetes/pki`) | CN | usage | signed by | if missing |
//! |---|---|---|---|---|
//! | ca, front-proxy-ca, sa.key / sa.pub, etcd/ca ([`SHARED_FILES`]) | (the cluster's) | | | error ([`PkiError::SharedFileMissing`], ca: [`PkiError::CaMissing`]): every master's user data carries the same files; never generated |
//! | etcd/server | node name | serverAuth, clientAuth | etcd/ca | generated; SANs below |
//! | etcd/peer | node name | serverAuth, clientAuth | etcd/ca | generated; SANs below |
//! | etcd/healthcheck-client | kube-etcd-healthcheck-client | clientAuth | etcd/ca | generated |
//! | apiserver-etcd-client | kube-apiserver-etcd-client | clientAuth | etcd/ca | generated |
//!
//! The other leaves and the kubeconfigs are as above (front-proxy-client signed by the shared front-proxy-ca).
//! etcd/server.crt's and etcd/peer.crt's SANs (kubeadm's `GetEtcdAltNames`): DNS node name, `localhost`; IP
//! every advertise address, `127.0.0.1`, `::1`. An existing one must be signed by etcd/ca, valid now, allow
//! serverAuth and clientAuth, match its key and name every advertise address of this node as an IP SAN
//! (otherwise it was made for another node or address: [`PkiError::MissingSans`]). An existing etcd client
//! certificate must be signed by etcd/ca, carry the CN above ([`PkiError::WrongIdentity`]) and match its key.
//! sa.pub must hold sa.key's public key, as on a single master.
//!
//! New keys are ECDSA P-256 (kubeadm's alternative to RSA 2048; ring cannot generate RSA), PKCS#8 PEM.
//! Validity: leaves one year, CAs ten years, notBefore = now − 5 minutes; the certificate profiles (key usages,
//! key identifiers, basic constraints) are kubeadm's, spelled out in `issue.rs`.
//!
//! # Secrets
//!
//! Keys and kubeconfigs are [`PlannedFile::secret`] (mode 0600); certificates and sa.pub are 0644. No error
//! message and no `Debug` output here contains key material: [`PlannedFile`]'s `Debug` shows sizes only.
//! [`ExistingFiles`] is a plain map holding keys: do not format it with `{:?}`.

mod inspect;
mod issue;
#[cfg(test)]
mod tests;

pub use inspect::{
    ca_cert_hash, cert_validity, check_cert_valid_at, check_combined_pem, check_key_matches_cert,
    client_cert_identity, verify_signed_by,
};

use crate::kubeconfig::{self, API_PORT, Kubeconfig, KubeconfigError};
use inspect::{PrivateKey, Usage};
use issue::{Leaf, Signer};
use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

pub const PKI_DIR: &str = "etc/kubernetes/pki";
pub const CA_CRT: &str = "etc/kubernetes/pki/ca.crt";
pub const CA_KEY: &str = "etc/kubernetes/pki/ca.key";
pub const APISERVER_CRT: &str = "etc/kubernetes/pki/apiserver.crt";
pub const APISERVER_KEY: &str = "etc/kubernetes/pki/apiserver.key";
pub const APISERVER_KUBELET_CLIENT_CRT: &str = "etc/kubernetes/pki/apiserver-kubelet-client.crt";
pub const APISERVER_KUBELET_CLIENT_KEY: &str = "etc/kubernetes/pki/apiserver-kubelet-client.key";
pub const FRONT_PROXY_CA_CRT: &str = "etc/kubernetes/pki/front-proxy-ca.crt";
pub const FRONT_PROXY_CA_KEY: &str = "etc/kubernetes/pki/front-proxy-ca.key";
pub const FRONT_PROXY_CLIENT_CRT: &str = "etc/kubernetes/pki/front-proxy-client.crt";
pub const FRONT_PROXY_CLIENT_KEY: &str = "etc/kubernetes/pki/front-proxy-client.key";
pub const SA_KEY: &str = "etc/kubernetes/pki/sa.key";
pub const SA_PUB: &str = "etc/kubernetes/pki/sa.pub";
pub const ADMIN_CONF: &str = "etc/kubernetes/admin.conf";
pub const SUPER_ADMIN_CONF: &str = "etc/kubernetes/super-admin.conf";
pub const CONTROLLER_MANAGER_CONF: &str = "etc/kubernetes/controller-manager.conf";
pub const SCHEDULER_CONF: &str = "etc/kubernetes/scheduler.conf";
pub const ETCD_CA_CRT: &str = "etc/kubernetes/pki/etcd/ca.crt";
pub const ETCD_CA_KEY: &str = "etc/kubernetes/pki/etcd/ca.key";
pub const ETCD_SERVER_CRT: &str = "etc/kubernetes/pki/etcd/server.crt";
pub const ETCD_SERVER_KEY: &str = "etc/kubernetes/pki/etcd/server.key";
pub const ETCD_PEER_CRT: &str = "etc/kubernetes/pki/etcd/peer.crt";
pub const ETCD_PEER_KEY: &str = "etc/kubernetes/pki/etcd/peer.key";
pub const ETCD_HEALTHCHECK_CLIENT_CRT: &str = "etc/kubernetes/pki/etcd/healthcheck-client.crt";
pub const ETCD_HEALTHCHECK_CLIENT_KEY: &str = "etc/kubernetes/pki/etcd/healthcheck-client.key";
pub const APISERVER_ETCD_CLIENT_CRT: &str = "etc/kubernetes/pki/apiserver-etcd-client.crt";
pub const APISERVER_ETCD_CLIENT_KEY: &str = "etc/kubernetes/pki/apiserver-etcd-client.key";

/// Every file [`plan_control_plane`] reads or writes, relative to the node root, in the order it checks and
/// plans them.
pub const CONTROL_PLANE_FILES: [&str; 16] = [
    CA_CRT,
    CA_KEY,
    APISERVER_CRT,
    APISERVER_KEY,
    APISERVER_KUBELET_CLIENT_CRT,
    APISERVER_KUBELET_CLIENT_KEY,
    FRONT_PROXY_CA_CRT,
    FRONT_PROXY_CA_KEY,
    FRONT_PROXY_CLIENT_CRT,
    FRONT_PROXY_CLIENT_KEY,
    SA_KEY,
    SA_PUB,
    ADMIN_CONF,
    SUPER_ADMIN_CONF,
    CONTROLLER_MANAGER_CONF,
    SCHEDULER_CONF,
];

/// The files an HA control plane (`control_plane_size > 1`) adds, in the order [`plan_control_plane`] checks
/// and plans them after [`CONTROL_PLANE_FILES`]: the etcd CA (shared, supplied) and the four leaves it signs.
/// With a single master none of them is read.
pub const ETCD_FILES: [&str; 10] = [
    ETCD_CA_CRT,
    ETCD_CA_KEY,
    ETCD_SERVER_CRT,
    ETCD_SERVER_KEY,
    ETCD_PEER_CRT,
    ETCD_PEER_KEY,
    ETCD_HEALTHCHECK_CLIENT_CRT,
    ETCD_HEALTHCHECK_CLIENT_KEY,
    APISERVER_ETCD_CLIENT_CRT,
    APISERVER_ETCD_CLIENT_KEY,
];

/// The files every master of an HA control plane must be given (the same bytes on each) and that are never
/// generated there, in the order they are checked. ca.crt and ca.key are required on a single master too.
pub const SHARED_FILES: [&str; 8] = [
    CA_CRT,
    CA_KEY,
    FRONT_PROXY_CA_CRT,
    FRONT_PROXY_CA_KEY,
    SA_KEY,
    SA_PUB,
    ETCD_CA_CRT,
    ETCD_CA_KEY,
];

/// Every file [`plan_control_plane`] reads or writes for a control plane of `control_plane_size` masters, in
/// the order it checks and plans them: [`CONTROL_PLANE_FILES`], then [`ETCD_FILES`] when the size is above 1.
pub fn control_plane_files(control_plane_size: u32) -> Vec<&'static str> {
    let mut files = CONTROL_PLANE_FILES.to_vec();
    if is_ha(control_plane_size) {
        files.extend(ETCD_FILES);
    }
    files
}

/// Whether a control plane of this size is highly available: more than one master, etcd across them over TLS.
fn is_ha(control_plane_size: u32) -> bool {
    control_plane_size > 1
}

/// Leaf validity: one year (kubeadm's `CertificateValidityPeriod`).
pub const LEAF_VALIDITY_SECS: i64 = 365 * 24 * 3600;
/// CA validity: ten years (kubeadm's `CACertificateValidityPeriod`).
pub const CA_VALIDITY_SECS: i64 = 10 * LEAF_VALIDITY_SECS;
/// notBefore lies this far before now (kubeadm's `CertificateBackdate`), for clocks a little behind.
pub const BACKDATE_SECS: i64 = 5 * 60;

/// The in-cluster names of the API server (DNS SANs of apiserver.crt besides the node and endpoint names).
pub const SERVICE_DNS_NAMES: [&str; 4] = [
    "kubernetes",
    "kubernetes.default",
    "kubernetes.default.svc",
    "kubernetes.default.svc.cluster.local",
];

/// What the control plane's certificates are made for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ControlPlaneSpec {
    /// The node name (a DNS SAN of apiserver.crt).
    pub node_name: String,
    /// The control-plane endpoint, `masters.<cluster>.<domain>`: a DNS SAN of apiserver.crt and the server of
    /// admin.conf and super-admin.conf.
    pub endpoint_host: String,
    /// The addresses the API server advertises (IP SANs).
    pub advertise_addrs: Vec<IpAddr>,
    /// The first address of the service range (10.96.0.1 by default), the `kubernetes` Service's IP.
    pub service_ip: IpAddr,
    /// Now, Unix seconds: certificates are checked against it and issued from it.
    pub now_unix: i64,
    /// How many masters the control plane is built for (`CONTROL_PLANE_SIZE`). 1: a single master, etcd local
    /// without TLS, no etcd files. Above 1: the shared files ([`SHARED_FILES`]) must be supplied, and the etcd
    /// leaves ([`ETCD_FILES`]) are checked and generated.
    pub control_plane_size: u32,
}

/// Files that exist, keyed by path relative to the node root (`etc/kubernetes/pki/ca.crt`). Holds keys: do
/// not format it with `{:?}`.
pub type ExistingFiles = BTreeMap<String, Vec<u8>>;

/// A file to write. `Debug` shows its size, never its contents.
#[derive(Clone, PartialEq, Eq)]
pub struct PlannedFile {
    /// Relative to the node root, e.g. `etc/kubernetes/pki/apiserver.crt`.
    pub path: String,
    pub contents: Vec<u8>,
    /// 0600 for keys and kubeconfigs, 0644 for certificates and sa.pub.
    pub mode: u32,
    /// Holds a private key: never log or print the contents.
    pub secret: bool,
}

impl fmt::Debug for PlannedFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PlannedFile")
            .field("path", &self.path)
            .field("contents", &format_args!("<{} bytes>", self.contents.len()))
            .field("mode", &format_args!("{:#o}", self.mode))
            .field("secret", &self.secret)
            .finish()
    }
}

impl PlannedFile {
    fn secret_file(path: &str, contents: String) -> PlannedFile {
        PlannedFile {
            path: path.to_string(),
            contents: contents.into_bytes(),
            mode: 0o600,
            secret: true,
        }
    }

    fn public_file(path: &str, contents: String) -> PlannedFile {
        PlannedFile {
            path: path.to_string(),
            contents: contents.into_bytes(),
            mode: 0o644,
            secret: false,
        }
    }
}

/// What a file was expected to hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Content {
    Certificate,
    PrivateKey,
    PublicKey,
    Kubeconfig,
}

impl fmt::Display for Content {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Content::Certificate => "a PEM certificate",
            Content::PrivateKey => "a PEM private key",
            Content::PublicKey => "a PEM public key",
            Content::Kubeconfig => "a kubeconfig",
        })
    }
}

/// Everything that can be wrong with the PKI's files. Each names the file (relative to the node root, or a
/// generic label from the helper functions — see [`PkiError::at`]); `Display` is one sentence and a hint
/// ([`PkiError::hint`]). Never holds key material.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PkiError {
    /// ca.crt or ca.key is missing: the cluster CA is the user's.
    CaMissing { path: String },
    /// A file every master of an HA control plane must be given is missing ([`SHARED_FILES`]: front-proxy-ca,
    /// sa.key / sa.pub, etcd/ca): generating it would give this master keys the others do not have.
    SharedFileMissing { path: String },
    /// A certificate without its key, or a key without its certificate (or sa.pub without sa.key).
    HalfPair { present: String, missing: String },
    /// front-proxy-client exists but front-proxy-ca does not: it cannot be checked, nor would a new CA match.
    IssuerMissing { path: String, issuer: String },
    /// Not PEM, or no block of the expected kind, or the block does not parse.
    Unparsable {
        path: String,
        expected: Content,
        reason: String,
    },
    /// The private key is not the certificate's (or sa.pub's) key.
    KeyMismatch { key: String, cert: String },
    /// Not issued by the CA: issuer name, key identifier or signature.
    NotSignedBy {
        path: String,
        ca: String,
        reason: String,
    },
    /// The CA certificate cannot sign certificates (no CA:TRUE, or keyUsage without keyCertSign).
    NotACa { path: String },
    Expired {
        path: String,
        not_after: i64,
        now: i64,
    },
    NotYetValid {
        path: String,
        not_before: i64,
        now: i64,
    },
    /// apiserver.crt does not cover names and addresses clients connect to.
    MissingSans { path: String, missing: Vec<String> },
    /// The extended key usage does not allow what the certificate is for.
    WrongUsage { path: String, needed: &'static str },
    /// A kubeconfig that is unusable as a kubeconfig.
    Kubeconfig {
        path: String,
        problem: KubeconfigError,
    },
    /// A kubeconfig without embedded client certificate and key.
    NoClientCertificate { path: String },
    /// A kubeconfig whose certificate-authority-data is not ca.crt.
    WrongCaData { path: String },
    /// A kubeconfig's client certificate is for another user.
    WrongIdentity {
        path: String,
        expected: String,
        found: String,
    },
    /// A CA whose subject the issuer cannot copy byte for byte (multi-valued RDNs, repeated attributes, …).
    UnsupportedCa { path: String, reason: String },
    /// Generating a key or certificate failed (a bug, or a node name that is not a DNS name).
    Generate { path: String, reason: String },
}

fn is_cluster_ca(path: &str) -> bool {
    path == CA_CRT || path == CA_KEY
}

/// etcd/server.crt or etcd/peer.crt: made for one node and its addresses.
fn is_etcd_member(path: &str) -> bool {
    path == ETCD_SERVER_CRT || path == ETCD_PEER_CRT
}

/// "or remove … to have it generated", for the file `path` names (a kubeconfig field names its kubeconfig).
fn remedy(path: &str) -> String {
    let file = path.split_once(" (").map_or(path, |(file, _)| file);
    if is_cluster_ca(file) {
        return "the cluster CA cannot be generated: supply ca.crt and ca.key in the master's user data".to_string();
    }
    if file == ETCD_CA_CRT || file == ETCD_CA_KEY {
        return format!(
            "the etcd CA cannot be generated: supply the cluster's {ETCD_CA_CRT} and {ETCD_CA_KEY} in the \
             master's user data"
        );
    }
    const HA_NOTE: &str = " (on a single master; the masters of an HA control plane all need the same files, from \
                           their user data)";
    if file == SA_KEY || file == SA_PUB {
        return format!("or remove {SA_KEY} and {SA_PUB} to have both generated{HA_NOTE}");
    }
    let known = CONTROL_PLANE_FILES.contains(&file) || ETCD_FILES.contains(&file);
    let note = if file == FRONT_PROXY_CA_CRT || file == FRONT_PROXY_CA_KEY {
        HA_NOTE
    } else {
        ""
    };
    let pair = if let Some(stem) = file.strip_suffix(".crt") {
        Some(format!("{stem}.key"))
    } else {
        file.strip_suffix(".key").map(|stem| format!("{stem}.crt"))
    };
    match pair {
        Some(pair) if known => {
            format!("or remove {file} and {pair} to have both generated{note}")
        }
        _ if known => {
            format!("or remove {file} to have it written anew")
        }
        // A generic label from a helper function: the caller knows what to do with the file.
        _ => format!("or replace {file}"),
    }
}

impl PkiError {
    /// The file the error is about (for [`PkiError::KeyMismatch`], the key).
    pub fn path(&self) -> &str {
        match self {
            PkiError::HalfPair { present: path, .. } | PkiError::KeyMismatch { key: path, .. } => {
                path
            }
            PkiError::CaMissing { path }
            | PkiError::SharedFileMissing { path }
            | PkiError::IssuerMissing { path, .. }
            | PkiError::Unparsable { path, .. }
            | PkiError::NotSignedBy { path, .. }
            | PkiError::NotACa { path }
            | PkiError::Expired { path, .. }
            | PkiError::NotYetValid { path, .. }
            | PkiError::MissingSans { path, .. }
            | PkiError::WrongUsage { path, .. }
            | PkiError::Kubeconfig { path, .. }
            | PkiError::NoClientCertificate { path }
            | PkiError::WrongCaData { path }
            | PkiError::WrongIdentity { path, .. }
            | PkiError::UnsupportedCa { path, .. }
            | PkiError::Generate { path, .. } => path,
        }
    }

    /// The same error naming `path` wherever it named [`PkiError::path`]: the helper functions take bytes and
    /// name a generic "certificate"; the caller knows the file, e.g.
    /// `client_cert_identity(&pem).map_err(|e| e.at("/var/lib/kubelet/pki/kubelet-client-current.pem"))`.
    pub fn at(mut self, path: &str) -> PkiError {
        let old = self.path().to_string();
        let relabel = |field: &mut String| {
            if *field == old {
                *field = path.to_string();
            }
        };
        match &mut self {
            PkiError::HalfPair { present, missing } => {
                relabel(present);
                relabel(missing);
            }
            PkiError::KeyMismatch { key, cert } => {
                relabel(key);
                relabel(cert);
            }
            PkiError::IssuerMissing { path, issuer } => {
                relabel(path);
                relabel(issuer);
            }
            PkiError::NotSignedBy { path, ca, .. } => {
                relabel(path);
                relabel(ca);
            }
            PkiError::CaMissing { path }
            | PkiError::SharedFileMissing { path }
            | PkiError::Unparsable { path, .. }
            | PkiError::NotACa { path }
            | PkiError::Expired { path, .. }
            | PkiError::NotYetValid { path, .. }
            | PkiError::MissingSans { path, .. }
            | PkiError::WrongUsage { path, .. }
            | PkiError::Kubeconfig { path, .. }
            | PkiError::NoClientCertificate { path }
            | PkiError::WrongCaData { path }
            | PkiError::WrongIdentity { path, .. }
            | PkiError::UnsupportedCa { path, .. }
            | PkiError::Generate { path, .. } => relabel(path),
        }
        self
    }

    /// What the operator can do about it.
    pub fn hint(&self) -> String {
        let remove = remedy;
        match self {
            PkiError::CaMissing { .. } => "write the cluster CA as /etc/kubernetes/pki/ca.crt and ca.key (mode 0600) \
                                           in the master's user data; `openssl req -x509 -newkey rsa:2048 -nodes \
                                           -subj /CN=kubernetes -days 3650 -keyout ca.key -out ca.crt` makes one"
                .to_string(),
            PkiError::SharedFileMissing { path } => format!(
                "every master of an HA control plane (CONTROL_PLANE_SIZE above 1 in the role file) needs the same \
                 {path} in its user data, like ca.crt and ca.key; `packer/render-user-data.sh new-cluster` \
                 makes the shared files once per cluster"
            ),
            PkiError::HalfPair { present, missing } => {
                format!("supply {missing} as well, or remove {present} to have both generated")
            }
            PkiError::IssuerMissing { path, issuer } => format!(
                "supply {issuer} and its key, or remove {path} and its key to have all of them generated"
            ),
            PkiError::Unparsable { path, expected, .. } => {
                format!("replace it with {expected} as openssl or kubeadm write it; {}", remove(path))
            }
            PkiError::KeyMismatch { key, .. } => {
                format!("supply the key that belongs to the certificate; {}", remove(key))
            }
            PkiError::NotSignedBy { path, ca, .. } => format!(
                "it was issued by another CA than {ca}: supply the CA that issued it, {}",
                remove(path)
            ),
            PkiError::NotACa { .. } => {
                "supply a CA certificate (basicConstraints CA:TRUE, keyUsage keyCertSign), not a leaf".to_string()
            }
            PkiError::Expired { path, .. } if is_cluster_ca(path) => {
                "the cluster CA expired: a new CA means new certificates and kubeconfigs on every node".to_string()
            }
            PkiError::Expired { path, .. } => format!("renew it (`kubeadm certs renew`), {}", remove(path)),
            PkiError::NotYetValid { .. } => {
                "check the node's clock (`timedatectl`); certificates from the future are not trusted".to_string()
            }
            PkiError::MissingSans { path, .. } if is_etcd_member(path) => format!(
                "it was made for another node or address: etcd's peers and clients reach this master at every \
                 advertise address; {}",
                remove(path).trim_start_matches("or ")
            ),
            PkiError::MissingSans { path, .. } => format!(
                "reissue it with these names (the controller manager and scheduler connect over 127.0.0.1, pods \
                 over the service IP, everything else over the endpoint), {}",
                remove(path)
            ),
            PkiError::WrongUsage { path, needed } => {
                format!("reissue it with extendedKeyUsage {needed}, {}", remove(path))
            }
            PkiError::Kubeconfig { path, problem } => format!("{}; or remove {path} to have it written", problem.hint()),
            PkiError::NoClientCertificate { path } => format!(
                "embed client-certificate-data and client-key-data, or remove {path} to have it written"
            ),
            PkiError::WrongCaData { path } => format!(
                "its certificate-authority-data must be ca.crt; remove {path} to have it written anew"
            ),
            PkiError::WrongIdentity { path, expected, .. } if path.ends_with(".crt") => {
                format!("reissue it for {expected}, {}", remove(path))
            }
            PkiError::WrongIdentity { path, expected, .. } => {
                format!("remove {path} to have it written for {expected}")
            }
            PkiError::UnsupportedCa { .. } => {
                "reissue the CA with a plain subject (one attribute per RDN, e.g. CN=kubernetes)".to_string()
            }
            PkiError::Generate { .. } => "check the node name is a DNS name; otherwise report a bug".to_string(),
        }
    }
}

impl fmt::Display for PkiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PkiError::CaMissing { path } => {
                write!(f, "{path} is missing; the cluster CA is not generated")?
            }
            PkiError::SharedFileMissing { path } => write!(
                f,
                "{path} is missing; a highly available control plane does not generate it"
            )?,
            PkiError::HalfPair { present, missing } => {
                write!(f, "{present} exists but {missing} does not")?
            }
            PkiError::IssuerMissing { path, issuer } => {
                write!(f, "{path} exists but its CA {issuer} does not")?
            }
            PkiError::Unparsable {
                path,
                expected,
                reason,
            } => write!(f, "{path} is not {expected}: {reason}")?,
            PkiError::KeyMismatch { key, cert } if key == cert => write!(
                f,
                "the private key in {key} does not belong to its certificate"
            )?,
            PkiError::KeyMismatch { key, cert } => write!(f, "{key} is not the key of {cert}")?,
            PkiError::NotSignedBy { path, ca, reason } => {
                write!(f, "{path} was not issued by {ca}: {reason}")?
            }
            PkiError::NotACa { path } => write!(f, "{path} is not a CA certificate")?,
            PkiError::Expired {
                path,
                not_after,
                now,
            } => write!(
                f,
                "{path} expired at {} (now {})",
                crate::utc::human(*not_after),
                crate::utc::human(*now)
            )?,
            PkiError::NotYetValid {
                path,
                not_before,
                now,
            } => write!(
                f,
                "{path} is valid only from {} (now {})",
                crate::utc::human(*not_before),
                crate::utc::human(*now)
            )?,
            PkiError::MissingSans { path, missing } => {
                write!(f, "{path} does not cover {}", missing.join(", "))?
            }
            PkiError::WrongUsage { path, needed } => {
                write!(f, "{path} does not allow {needed} (extendedKeyUsage)")?
            }
            PkiError::Kubeconfig { path, problem } => write!(f, "{path}: {problem}")?,
            PkiError::NoClientCertificate { path } => write!(
                f,
                "{path} embeds no client certificate and key for its current user"
            )?,
            PkiError::WrongCaData { path } => write!(
                f,
                "{path} does not embed ca.crt as its certificate-authority-data"
            )?,
            PkiError::WrongIdentity {
                path,
                expected,
                found,
            } => write!(f, "{path} authenticates as {found:?}, not {expected:?}")?,
            PkiError::UnsupportedCa { path, reason } => {
                write!(f, "{path} cannot be used to issue certificates: {reason}")?
            }
            PkiError::Generate { path, reason } => write!(f, "generating {path} failed: {reason}")?,
        }
        write!(f, " — hint: {}", self.hint())
    }
}

impl std::error::Error for PkiError {}

/// Which CA signs a leaf.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ca {
    Cluster,
    FrontProxy,
    Etcd,
}

impl Ca {
    /// The CA's certificate file.
    fn cert_path(self) -> &'static str {
        match self {
            Ca::Cluster => CA_CRT,
            Ca::FrontProxy => FRONT_PROXY_CA_CRT,
            Ca::Etcd => ETCD_CA_CRT,
        }
    }

    /// This CA among the three (a checked pair or a signer), if there is one.
    fn pick<T>(self, cluster: Option<T>, front_proxy: Option<T>, etcd: Option<T>) -> Option<T> {
        match self {
            Ca::Cluster => cluster,
            Ca::FrontProxy => front_proxy,
            Ca::Etcd => etcd,
        }
    }
}

/// A leaf's common name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cn {
    Fixed(&'static str),
    /// The node name (kubeadm's `setCommonNameToNodeName`, for etcd's server and peer certificates).
    NodeName,
}

/// What a leaf's subject alternative names are made of, and what an existing one must cover.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sans {
    None,
    /// See [`apiserver_sans`]; an existing one must cover the endpoint, the service IP and 127.0.0.1.
    Apiserver,
    /// See [`etcd_member_sans`]; an existing one must name every advertise address as an IP SAN.
    EtcdMember,
}

/// A leaf certificate of the table.
struct LeafFile {
    cert: &'static str,
    key: &'static str,
    cn: Cn,
    org: Option<&'static str>,
    usage: Usage,
    issued_by: Ca,
    sans: Sans,
}

impl LeafFile {
    /// The leaf exists (or is to be issued) but its CA does not.
    fn issuer_missing(&self) -> PkiError {
        PkiError::IssuerMissing {
            path: self.cert.to_string(),
            issuer: self.issued_by.cert_path().to_string(),
        }
    }
}

const LEAVES: [LeafFile; 3] = [
    LeafFile {
        cert: APISERVER_CRT,
        key: APISERVER_KEY,
        cn: Cn::Fixed("kube-apiserver"),
        org: None,
        usage: Usage::Server,
        issued_by: Ca::Cluster,
        sans: Sans::Apiserver,
    },
    LeafFile {
        cert: APISERVER_KUBELET_CLIENT_CRT,
        key: APISERVER_KUBELET_CLIENT_KEY,
        cn: Cn::Fixed("kube-apiserver-kubelet-client"),
        org: Some("kubeadm:cluster-admins"),
        usage: Usage::Client,
        issued_by: Ca::Cluster,
        sans: Sans::None,
    },
    LeafFile {
        cert: FRONT_PROXY_CLIENT_CRT,
        key: FRONT_PROXY_CLIENT_KEY,
        cn: Cn::Fixed("front-proxy-client"),
        org: None,
        usage: Usage::Client,
        issued_by: Ca::FrontProxy,
        sans: Sans::None,
    },
];

/// The leaves etcd/ca signs on an HA control plane (kubeadm's `KubeadmCertEtcd*` profiles).
const ETCD_LEAVES: [LeafFile; 4] = [
    LeafFile {
        cert: ETCD_SERVER_CRT,
        key: ETCD_SERVER_KEY,
        cn: Cn::NodeName,
        org: None,
        usage: Usage::ServerAndClient,
        issued_by: Ca::Etcd,
        sans: Sans::EtcdMember,
    },
    LeafFile {
        cert: ETCD_PEER_CRT,
        key: ETCD_PEER_KEY,
        cn: Cn::NodeName,
        org: None,
        usage: Usage::ServerAndClient,
        issued_by: Ca::Etcd,
        sans: Sans::EtcdMember,
    },
    LeafFile {
        cert: ETCD_HEALTHCHECK_CLIENT_CRT,
        key: ETCD_HEALTHCHECK_CLIENT_KEY,
        cn: Cn::Fixed("kube-etcd-healthcheck-client"),
        org: None,
        usage: Usage::Client,
        issued_by: Ca::Etcd,
        sans: Sans::None,
    },
    LeafFile {
        cert: APISERVER_ETCD_CLIENT_CRT,
        key: APISERVER_ETCD_CLIENT_KEY,
        cn: Cn::Fixed("kube-apiserver-etcd-client"),
        org: None,
        usage: Usage::Client,
        issued_by: Ca::Etcd,
        sans: Sans::None,
    },
];

/// Where a kubeconfig points.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Server {
    Endpoint,
    Loopback,
}

struct KubeconfigFile {
    path: &'static str,
    cn: &'static str,
    org: Option<&'static str>,
    server: Server,
}

const KUBECONFIGS: [KubeconfigFile; 4] = [
    KubeconfigFile {
        path: ADMIN_CONF,
        cn: "kubernetes-admin",
        org: Some("kubeadm:cluster-admins"),
        server: Server::Endpoint,
    },
    KubeconfigFile {
        path: SUPER_ADMIN_CONF,
        cn: "kubernetes-super-admin",
        org: Some("system:masters"),
        server: Server::Endpoint,
    },
    KubeconfigFile {
        path: CONTROLLER_MANAGER_CONF,
        cn: "system:kube-controller-manager",
        org: None,
        server: Server::Loopback,
    },
    KubeconfigFile {
        path: SCHEDULER_CONF,
        cn: "system:kube-scheduler",
        org: None,
        server: Server::Loopback,
    },
];

/// A CA read from its two files and checked.
struct CheckedCa {
    cert_path: &'static str,
    cert_der: Vec<u8>,
    key: PrivateKey,
}

/// The files of the control plane's PKI that are missing, generated; every existing one checked first. See
/// the module documentation for the table, the checks and the profiles.
pub fn plan_control_plane(
    existing: &ExistingFiles,
    spec: &ControlPlaneSpec,
) -> Result<Vec<PlannedFile>, PkiError> {
    let now = spec.now_unix;
    let ha = is_ha(spec.control_plane_size);

    // 1. Check everything that exists.
    let ca = match check_ca_pair(existing, CA_CRT, CA_KEY, now) {
        Err(PkiError::HalfPair { missing, .. }) => {
            return Err(PkiError::CaMissing { path: missing });
        }
        other => other?.ok_or_else(|| PkiError::CaMissing {
            path: CA_CRT.to_string(),
        })?,
    };
    if ha && let Some(path) = SHARED_FILES.iter().find(|p| !existing.contains_key(**p)) {
        return Err(PkiError::SharedFileMissing {
            path: path.to_string(),
        });
    }
    let front_proxy_ca = check_ca_pair(existing, FRONT_PROXY_CA_CRT, FRONT_PROXY_CA_KEY, now)?;
    for leaf in &LEAVES {
        let issuer = leaf
            .issued_by
            .pick(Some(&ca), front_proxy_ca.as_ref(), None);
        check_leaf_pair(existing, leaf, issuer, spec)?;
    }
    check_service_account(existing)?;
    for kubeconfig in &KUBECONFIGS {
        check_kubeconfig(existing, kubeconfig, &ca.cert_der, now)?;
    }
    // With a single master nothing of etcd's is read: etcd listens on loopback without TLS.
    let etcd_ca = match ha {
        true => check_ca_pair(existing, ETCD_CA_CRT, ETCD_CA_KEY, now)?,
        false => None,
    };
    if let Some(etcd_ca) = &etcd_ca {
        for leaf in &ETCD_LEAVES {
            check_leaf_pair(existing, leaf, Some(etcd_ca), spec)?;
        }
    }

    // 2. Generate what is missing.
    let mut planned = Vec::new();
    let ca_pem = inspect::pem_encode("CERTIFICATE", &ca.cert_der);
    let ca_signer = Signer::existing(ca.cert_path, ca.cert_der, ca.key)?;
    let front_proxy_signer = match front_proxy_ca {
        Some(checked) => Signer::existing(checked.cert_path, checked.cert_der, checked.key)?,
        None => {
            let (signer, key_pem) = Signer::new_ca(FRONT_PROXY_CA_CRT, "front-proxy-ca", now)?;
            planned.push(PlannedFile::public_file(
                FRONT_PROXY_CA_CRT,
                signer.cert_pem(),
            ));
            planned.push(PlannedFile::secret_file(FRONT_PROXY_CA_KEY, key_pem));
            signer
        }
    };
    for leaf in &LEAVES {
        let signer = leaf
            .issued_by
            .pick(Some(&ca_signer), Some(&front_proxy_signer), None);
        issue_missing_leaf(existing, leaf, signer, spec, &mut planned)?;
    }
    match existing.get(SA_KEY) {
        None => {
            let (key_pem, pub_pem) = issue::key_pair_pems(SA_KEY)?;
            planned.push(PlannedFile::secret_file(SA_KEY, key_pem));
            planned.push(PlannedFile::public_file(SA_PUB, pub_pem));
        }
        Some(key) if !existing.contains_key(SA_PUB) => {
            let key = inspect::private_key(SA_KEY, key)?;
            planned.push(PlannedFile::public_file(
                SA_PUB,
                rcgen::KeyPair::public_key_pem(&key.pair),
            ));
        }
        Some(_) => {}
    }
    for kubeconfig in &KUBECONFIGS {
        if existing.contains_key(kubeconfig.path) {
            continue;
        }
        let server = match kubeconfig.server {
            Server::Endpoint => kubeconfig::server_url(&spec.endpoint_host, API_PORT),
            Server::Loopback => kubeconfig::server_url("127.0.0.1", API_PORT),
        };
        let issued = ca_signer.issue(
            kubeconfig.path,
            &Leaf {
                cn: kubeconfig.cn,
                org: kubeconfig.org,
                usage: Usage::Client,
                dns: &[],
                ips: &[],
            },
            now,
        )?;
        let config = Kubeconfig::client_certificate(
            &server,
            ca_pem.as_bytes(),
            kubeconfig.cn,
            issued.cert_pem.as_bytes(),
            issued.key_pem.as_bytes(),
        );
        planned.push(PlannedFile::secret_file(
            kubeconfig.path,
            kubeconfig::render(&config),
        ));
    }
    if let Some(etcd_ca) = etcd_ca {
        let etcd_signer = Signer::existing(etcd_ca.cert_path, etcd_ca.cert_der, etcd_ca.key)?;
        for leaf in &ETCD_LEAVES {
            issue_missing_leaf(existing, leaf, Some(&etcd_signer), spec, &mut planned)?;
        }
    }
    let order = control_plane_files(spec.control_plane_size);
    planned.sort_by_key(|file| order.iter().position(|p| *p == file.path));
    Ok(planned)
}

/// The leaf's certificate and key, issued by `signer`, appended to `planned` — unless the certificate exists
/// (then it was checked, key included).
fn issue_missing_leaf(
    existing: &ExistingFiles,
    leaf: &LeafFile,
    signer: Option<&Signer>,
    spec: &ControlPlaneSpec,
    planned: &mut Vec<PlannedFile>,
) -> Result<(), PkiError> {
    if existing.contains_key(leaf.cert) {
        return Ok(());
    }
    let signer = signer.ok_or_else(|| leaf.issuer_missing())?;
    let cn = match leaf.cn {
        Cn::Fixed(cn) => cn,
        Cn::NodeName => spec.node_name.as_str(),
    };
    let (dns, ips) = match leaf.sans {
        Sans::None => (vec![], vec![]),
        Sans::Apiserver => apiserver_sans(spec),
        Sans::EtcdMember => etcd_member_sans(spec),
    };
    let issued = signer.issue(
        leaf.cert,
        &Leaf {
            cn,
            org: leaf.org,
            usage: leaf.usage,
            dns: &dns,
            ips: &ips,
        },
        spec.now_unix,
    )?;
    planned.push(PlannedFile::public_file(leaf.cert, issued.cert_pem));
    planned.push(PlannedFile::secret_file(leaf.key, issued.key_pem));
    Ok(())
}

/// etcd/server.crt's and etcd/peer.crt's SANs (kubeadm's `GetEtcdAltNames` / `GetEtcdPeerAltNames`): DNS the node
/// name and `localhost`; IP every advertise address, `127.0.0.1`, `::1`; without duplicates.
fn etcd_member_sans(spec: &ControlPlaneSpec) -> (Vec<String>, Vec<IpAddr>) {
    let mut dns: Vec<String> = Vec::new();
    for name in [spec.node_name.as_str(), "localhost"] {
        if !name.is_empty() && !dns.iter().any(|n| n.eq_ignore_ascii_case(name)) {
            dns.push(name.to_string());
        }
    }
    let mut ips: Vec<IpAddr> = Vec::new();
    let loopbacks = [
        IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(Ipv6Addr::LOCALHOST),
    ];
    for ip in spec.advertise_addrs.iter().chain(loopbacks.iter()) {
        if !ips.contains(ip) {
            ips.push(*ip);
        }
    }
    (dns, ips)
}

/// apiserver.crt's SANs: DNS names and IP addresses, in kubeadm's order, without duplicates.
fn apiserver_sans(spec: &ControlPlaneSpec) -> (Vec<String>, Vec<IpAddr>) {
    let mut dns = vec![spec.node_name.clone()];
    dns.extend(SERVICE_DNS_NAMES.iter().map(|s| s.to_string()));
    dns.push(spec.endpoint_host.clone());
    let mut unique_dns: Vec<String> = Vec::new();
    for name in dns {
        if !name.is_empty() && !unique_dns.iter().any(|n| n.eq_ignore_ascii_case(&name)) {
            unique_dns.push(name);
        }
    }
    let mut ips = vec![spec.service_ip];
    ips.extend(spec.advertise_addrs.iter().copied());
    ips.push(IpAddr::V4(Ipv4Addr::LOCALHOST));
    let mut unique_ips: Vec<IpAddr> = Vec::new();
    for ip in ips {
        if !unique_ips.contains(&ip) {
            unique_ips.push(ip);
        }
    }
    (unique_dns, unique_ips)
}

/// A CA pair: both absent → `None`; one absent → [`PkiError::HalfPair`]; both present → parsed, the key
/// matching, a CA, valid now.
fn check_ca_pair(
    existing: &ExistingFiles,
    cert_path: &'static str,
    key_path: &'static str,
    now: i64,
) -> Result<Option<CheckedCa>, PkiError> {
    let (cert, key) = match (existing.get(cert_path), existing.get(key_path)) {
        (None, None) => return Ok(None),
        (Some(_), None) => return Err(half_pair(cert_path, key_path)),
        (None, Some(_)) => return Err(half_pair(key_path, cert_path)),
        (Some(cert), Some(key)) => (cert, key),
    };
    let cert_der = inspect::first_cert_der(cert_path, cert)?;
    let key = inspect::private_key(key_path, key)?;
    if !inspect::key_matches_cert_der(&key, &cert_der) {
        return Err(PkiError::KeyMismatch {
            key: key_path.to_string(),
            cert: cert_path.to_string(),
        });
    }
    if !inspect::is_ca(&cert_der) {
        return Err(PkiError::NotACa {
            path: cert_path.to_string(),
        });
    }
    inspect::check_valid_at(cert_path, &cert_der, now)?;
    Ok(Some(CheckedCa {
        cert_path,
        cert_der,
        key,
    }))
}

fn half_pair(present: &str, missing: &str) -> PkiError {
    PkiError::HalfPair {
        present: present.to_string(),
        missing: missing.to_string(),
    }
}

/// A leaf pair that exists: parsed, the key matching, issued by its CA, valid now, the usage allowed; for
/// apiserver.crt the names clients connect with covered, for etcd's server and peer certificates every advertise
/// address, for etcd's clients the common name of the table.
fn check_leaf_pair(
    existing: &ExistingFiles,
    leaf: &LeafFile,
    issuer: Option<&CheckedCa>,
    spec: &ControlPlaneSpec,
) -> Result<(), PkiError> {
    let (cert, key) = match (existing.get(leaf.cert), existing.get(leaf.key)) {
        (None, None) => return Ok(()),
        (Some(_), None) => return Err(half_pair(leaf.cert, leaf.key)),
        (None, Some(_)) => return Err(half_pair(leaf.key, leaf.cert)),
        (Some(cert), Some(key)) => (cert, key),
    };
    let Some(issuer) = issuer else {
        return Err(leaf.issuer_missing());
    };
    let cert_der = inspect::first_cert_der(leaf.cert, cert)?;
    let key = inspect::private_key(leaf.key, key)?;
    check_client_or_server(
        leaf.cert,
        leaf.key,
        &cert_der,
        &key,
        issuer.cert_path,
        &issuer.cert_der,
        leaf.usage,
        spec.now_unix,
    )?;
    let (dns, ips) = inspect::sans(&cert_der);
    let mut missing = Vec::new();
    match leaf.sans {
        Sans::None => {}
        Sans::Apiserver => {
            if !inspect::dns_covers(&dns, &spec.endpoint_host) {
                missing.push(spec.endpoint_host.clone());
            }
            for ip in [spec.service_ip, IpAddr::V4(Ipv4Addr::LOCALHOST)] {
                if !ips.contains(&ip) {
                    missing.push(ip.to_string());
                }
            }
        }
        Sans::EtcdMember => {
            for ip in &spec.advertise_addrs {
                if !ips.contains(ip) {
                    missing.push(ip.to_string());
                }
            }
        }
    }
    if !missing.is_empty() {
        return Err(PkiError::MissingSans {
            path: leaf.cert.to_string(),
            missing,
        });
    }
    // etcd's clients are told apart by their common name; the cluster CA's leaves keep today's checks.
    if let (Ca::Etcd, Cn::Fixed(expected)) = (leaf.issued_by, leaf.cn) {
        let (cn, _) = inspect::identity_of(&cert_der);
        if cn != expected {
            return Err(PkiError::WrongIdentity {
                path: leaf.cert.to_string(),
                expected: expected.to_string(),
                found: cn,
            });
        }
    }
    Ok(())
}

/// The checks every leaf gets: key, issuer, validity, usage.
#[allow(clippy::too_many_arguments)]
fn check_client_or_server(
    cert_path: &str,
    key_path: &str,
    cert_der: &[u8],
    key: &PrivateKey,
    issuer_path: &str,
    issuer_der: &[u8],
    usage: Usage,
    now: i64,
) -> Result<(), PkiError> {
    if !inspect::key_matches_cert_der(key, cert_der) {
        return Err(PkiError::KeyMismatch {
            key: key_path.to_string(),
            cert: cert_path.to_string(),
        });
    }
    inspect::issued_by(cert_der, issuer_der).map_err(|reason| PkiError::NotSignedBy {
        path: cert_path.to_string(),
        ca: issuer_path.to_string(),
        reason,
    })?;
    inspect::check_valid_at(cert_path, cert_der, now)?;
    if !inspect::allows(cert_der, usage) {
        return Err(PkiError::WrongUsage {
            path: cert_path.to_string(),
            needed: usage.name(),
        });
    }
    Ok(())
}

/// sa.key and sa.pub: sa.pub without sa.key is a half pair; sa.key alone is fine (sa.pub is derived); both must
/// hold the same key.
fn check_service_account(existing: &ExistingFiles) -> Result<(), PkiError> {
    match (existing.get(SA_KEY), existing.get(SA_PUB)) {
        (None, None) => Ok(()),
        (None, Some(_)) => Err(half_pair(SA_PUB, SA_KEY)),
        (Some(key), public) => {
            let key = inspect::private_key(SA_KEY, key)?;
            if let Some(public) = public {
                let bits = inspect::public_key_bits(SA_PUB, public)?;
                if bits != rcgen::PublicKeyData::der_bytes(&key.pair) {
                    return Err(PkiError::KeyMismatch {
                        key: SA_KEY.to_string(),
                        cert: SA_PUB.to_string(),
                    });
                }
            }
            Ok(())
        }
    }
}

/// A kubeconfig that exists: parses, embeds ca.crt, a client certificate issued by it for the expected CN, valid
/// now, allowing clientAuth, and the matching key.
fn check_kubeconfig(
    existing: &ExistingFiles,
    file: &KubeconfigFile,
    ca_der: &[u8],
    now: i64,
) -> Result<(), PkiError> {
    let Some(bytes) = existing.get(file.path) else {
        return Ok(());
    };
    let path = file.path;
    let problem = |problem: KubeconfigError| PkiError::Kubeconfig {
        path: path.to_string(),
        problem,
    };
    let text = std::str::from_utf8(bytes).map_err(|_| PkiError::Unparsable {
        path: path.to_string(),
        expected: Content::Kubeconfig,
        reason: "not UTF-8 text".to_string(),
    })?;
    let config = kubeconfig::parse(text).map_err(problem)?;
    let cluster = config.current_cluster().map_err(problem)?;
    let user = config.current_user().map_err(problem)?;

    let ca_field = format!("{path} (certificate-authority-data)");
    let embeds_ca = match &cluster.certificate_authority_data {
        Some(data) => inspect::cert_ders(&ca_field, data)?
            .iter()
            .any(|der| der == ca_der),
        None => false,
    };
    if !embeds_ca {
        return Err(PkiError::WrongCaData {
            path: path.to_string(),
        });
    }
    let (Some(cert), Some(key)) = (&user.client_certificate_data, &user.client_key_data) else {
        return Err(PkiError::NoClientCertificate {
            path: path.to_string(),
        });
    };
    let cert_field = format!("{path} (client-certificate-data)");
    let key_field = format!("{path} (client-key-data)");
    let cert_der = inspect::first_cert_der(&cert_field, cert)?;
    let key = inspect::private_key(&key_field, key)?;
    check_client_or_server(
        &cert_field,
        &key_field,
        &cert_der,
        &key,
        CA_CRT,
        ca_der,
        Usage::Client,
        now,
    )?;
    let (cn, _) = inspect::identity_of(&cert_der);
    if cn != file.cn {
        return Err(PkiError::WrongIdentity {
            path: path.to_string(),
            expected: file.cn.to_string(),
            found: cn,
        });
    }
    Ok(())
}
