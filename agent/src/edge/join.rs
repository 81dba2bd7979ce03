//! The join steps that touch the host and the network, one function per [`crate::plan::Action`]: each reads
//! what it needs (files under the node root, the role file's secrets), asks the pure core what to do
//! ([`crate::pure::pki`], [`crate::pure::join_objects`], [`crate::pure::discovery`]), talks to the API server
//! ([`crate::edge::kube_api`]), writes files atomically, and reports one [`Observation`]. Secrets (keys, the
//! token) stay in memory here and in the files written 0600; no message, log line or observation holds one.
//!
//! | action | reads | talks to | writes |
//! |---|---|---|---|
//! | [`ensure_pki`] | `/etc/kubernetes/pki/*`, `/etc/kubernetes/*.conf` | — | the missing PKI files and kubeconfigs |
//! | [`ensure_join_objects`] | admin.conf, super-admin.conf | this master's API server over loopback | — |
//! | [`discover`] | `CA_CERT_FILE` (if set) | the masters, anonymously | ca.crt, bootstrap-kubelet.conf, kube-proxy.conf |
//! | [`check_kubelet_credentials`] | kubelet.conf, its client certificate, ca.crt | — | — |

use crate::edge::kube_api::{Created, Identity, KubeApi, KubeApiError, ServerTrust};
use crate::edge::pki_files;
use crate::plan::{
    CLUSTER_CA_FILE, DiscoveryOutcome, KubeletCredentials, ObjectOutcome, ObjectReport, Observation,
};
use crate::pure::addons;
use crate::pure::discovery::{self, DiscoveryTrust};
use crate::pure::join_objects::{self, JoinObject, JoinObjectsSpec};
use crate::pure::kubeconfig::{self, KUBELET_CLIENT_PEM, Kubeconfig};
use crate::pure::pki::{self, ControlPlaneSpec};
use crate::role_file::{BootstrapToken, MasterTrust, Secret};
use k8s_core::atomic_file::atomic_write;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// kubeadm's paths on a joining node (relative to the root).
pub const BOOTSTRAP_KUBELET_CONF: &str = "etc/kubernetes/bootstrap-kubelet.conf";
pub const KUBELET_CONF: &str = "etc/kubernetes/kubelet.conf";
pub const KUBE_PROXY_CONF: &str = "etc/kubernetes/kube-proxy.conf";
/// Where a master records the token Secrets it published (persistent: survives reboots), one empty file each.
pub const PUBLISHED_TOKENS_DIR: &str = "var/lib/k8s-agent/published-tokens";
/// The first address of the service range (`--service-cluster-ip-range=10.96.0.0/12` in the units).
pub const SERVICE_IP: Ipv4Addr = Ipv4Addr::new(10, 96, 0, 1);
/// The group every node's credentials carry.
const NODES_GROUP: &str = "system:nodes";

fn under(root: &Path, path: &str) -> PathBuf {
    root.join(path.trim_start_matches('/'))
}

/// The Kubernetes node name, as kubelet computes it: `KUBELET_HOSTNAME` (kubelet's `--hostname-override`) or the
/// kernel's host name, lower-cased.
pub fn node_name(kubelet_hostname: Option<&str>) -> String {
    match kubelet_hostname.filter(|h| !h.is_empty()) {
        Some(name) => name.to_ascii_lowercase(),
        None => nix::unistd::gethostname()
            .map(|h| h.to_string_lossy().to_ascii_lowercase())
            .unwrap_or_else(|_| "localhost".to_string()),
    }
}

/// `EnsurePki`: check the supplied PKI, write what is missing.
pub fn ensure_pki(
    root: &Path,
    endpoint_host: &str,
    advertise_addrs: &[IpAddr],
    node_name: String,
    now_unix: i64,
    control_plane_size: u32,
) -> Observation {
    let existing = match pki_files::read_existing(root, control_plane_size) {
        Ok(existing) => existing,
        Err(e) => {
            return Observation::PkiInvalid {
                problem: e.to_string(),
            };
        }
    };
    let spec = ControlPlaneSpec {
        node_name: node_name.clone(),
        endpoint_host: endpoint_host.to_string(),
        advertise_addrs: advertise_addrs
            .iter()
            .copied()
            .filter(|a| !a.is_loopback() && !a.is_unspecified())
            .collect(),
        service_ip: IpAddr::V4(SERVICE_IP),
        now_unix,
        control_plane_size,
    };
    let planned = match pki::plan_control_plane(&existing, &spec) {
        Ok(planned) => planned,
        Err(e) => {
            return Observation::PkiInvalid {
                problem: e.to_string(),
            };
        }
    };
    if let Err(e) = pki_files::write_planned(root, &planned) {
        return Observation::PkiInvalid {
            problem: e.to_string(),
        };
    }
    for file in &planned {
        tracing::info!(path = %file.path, mode = format!("{:o}", file.mode), "PKI file written");
    }
    Observation::PkiEnsured {
        node_name,
        written: planned.into_iter().map(|f| f.path).collect(),
    }
}

/// A client-certificate identity and the CA from a kubeconfig with embedded data (admin.conf and friends).
fn kubeconfig_client(
    root: &Path,
    path: &str,
    server: &str,
    connect_to: &[IpAddr],
    timeout: Duration,
) -> Result<KubeApi, String> {
    let file = under(root, path);
    let text = std::fs::read_to_string(&file)
        .map_err(|e| format!("cannot read {}: {e}", file.display()))?;
    let config = kubeconfig::parse(&text).map_err(|e| format!("{}: {e}", file.display()))?;
    let cluster = config
        .current_cluster()
        .map_err(|e| format!("{}: {e}", file.display()))?;
    let user = config
        .current_user()
        .map_err(|e| format!("{}: {e}", file.display()))?;
    let ca = cluster
        .certificate_authority_data
        .clone()
        .ok_or_else(|| format!("{} embeds no certificate-authority-data", file.display()))?;
    let (Some(cert), Some(key)) = (&user.client_certificate_data, &user.client_key_data) else {
        return Err(format!(
            "{} embeds no client-certificate-data / client-key-data",
            file.display()
        ));
    };
    let key = Secret::new(String::from_utf8_lossy(key).into_owned());
    KubeApi::new(
        server,
        connect_to,
        &ServerTrust::CaPem(ca),
        &Identity::ClientCertificate {
            cert_pem: cert.clone(),
            key_pem: key,
        },
        timeout,
    )
    .map_err(|e| e.to_string())
}

/// Creates one object; an AlreadyExists is compared with what the server holds.
async fn ensure_object(api: &KubeApi, object: &JoinObject) -> Result<ObjectOutcome, KubeApiError> {
    match api
        .create(&object.collection_path(), object.to_json())
        .await?
    {
        Created::New => Ok(ObjectOutcome::Created),
        Created::AlreadyExists => {
            let body = api.get(&object.object_path()).await?.unwrap_or_default();
            let existing: serde_json::Value =
                serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null);
            Ok(match object.difference(&existing) {
                None => ObjectOutcome::Unchanged,
                Some(what) => ObjectOutcome::Differs { what },
            })
        }
    }
}

/// Records that the token Secret is published: this master's marker file and the cluster's ConfigMap
/// ([`join_objects::published_token_record`]), both kept if already there. A failure is logged, not fatal: the
/// Secret is in place, and the next pass records it again.
async fn record_published(admin: &KubeApi, marker: &Path, record: Option<&JoinObject>) {
    if !marker.exists()
        && let Err(e) = atomic_write(marker, b"", 0o600)
    {
        tracing::warn!(path = %marker.display(), error = %e, "cannot record the published token");
    }
    if let Some(record) = record
        && let Err(e) = admin
            .create(&record.collection_path(), record.to_json())
            .await
    {
        tracing::warn!(object = %record.describe(), error = %e, "cannot record the published token in the cluster");
    }
}

fn report(object: &JoinObject, outcome: ObjectOutcome) -> ObjectReport {
    ObjectReport {
        object: object.describe(),
        outcome,
    }
}

/// `EnsureJoinObjects`: kubeadm's bootstrap-token and cluster-info phases over the API, as admin.conf (and
/// super-admin.conf for `kubeadm:cluster-admins` while admin.conf is still forbidden, as kubeadm does).
pub async fn ensure_join_objects(
    root: &Path,
    server: &str,
    connect_to: &[IpAddr],
    token: Option<&BootstrapToken>,
    timeout: Duration,
) -> Observation {
    let failed_all = |reason: String| {
        Observation::JoinObjectsEnsured(vec![ObjectReport {
            object: "(all)".to_string(),
            outcome: ObjectOutcome::Failed { reason },
        }])
    };
    let admin = match kubeconfig_client(root, pki::ADMIN_CONF, server, connect_to, timeout) {
        Ok(api) => api,
        Err(e) => return failed_all(e),
    };
    let ca_pem = match std::fs::read(under(root, CLUSTER_CA_FILE)) {
        Ok(pem) => pem,
        Err(e) => return failed_all(format!("cannot read /{CLUSTER_CA_FILE}: {e}")),
    };
    let cluster_info = kubeconfig::render(&Kubeconfig::cluster_info(server, &ca_pem));
    let placeholder;
    let spec_token = match token {
        Some(t) => t,
        None => {
            // The Secret is skipped below; the other objects do not depend on the token.
            placeholder = BootstrapToken::parse("aaaaaa.aaaaaaaaaaaaaaaa").ok();
            match &placeholder {
                Some(t) => t,
                None => return failed_all("internal: no placeholder token".to_string()),
            }
        }
    };
    let objects = join_objects::master_objects(&JoinObjectsSpec {
        token: spec_token,
        cluster_info_kubeconfig: cluster_info,
        token_expiration: None,
    });
    let mut reports = Vec::with_capacity(objects.len());
    for object in &objects {
        if object.is_secret() && token.is_none() {
            reports.push(report(
                object,
                ObjectOutcome::Skipped {
                    why: "no BOOTSTRAP_TOKEN in the master's role file: create a token with `kubeadm token \
                          create` (admin.conf) for minions to join"
                        .to_string(),
                },
            ));
            continue;
        }
        // The token is published once: a Secret the operator (or tokencleaner) deleted after that stays deleted,
        // or rotating the token would be undone by the next reboot of this master — or by a new master (an HA
        // replacement has the same user data and none of this master's files), hence the cluster's own record too.
        let published_marker = root.join(PUBLISHED_TOKENS_DIR).join(object.name());
        let record = join_objects::published_token_record(object);
        let published_before = match (&record, published_marker.exists()) {
            (Some(_), true) => Ok(Some(format!(
                "this master published it before and it was deleted since (rotated or expired): not made again — \
                 remove /{PUBLISHED_TOKENS_DIR}/{} and {} to publish it again",
                object.name(),
                record.as_ref().map(|r| r.describe()).unwrap_or_default()
            ))),
            (Some(r), false) => match admin.get(&r.object_path()).await {
                Ok(Some(_)) => Ok(Some(format!(
                    "a master of this cluster published it before and it was deleted since (rotated or expired; \
                     {} records it): not made again — delete that ConfigMap to publish it again",
                    r.describe()
                ))),
                Ok(None) => Ok(None),
                Err(e) => Err(e),
            },
            (None, _) => Ok(None),
        };
        let published_before = match published_before {
            Ok(p) => p,
            Err(e) => {
                reports.push(report(
                    object,
                    ObjectOutcome::Failed {
                        reason: e.to_string(),
                    },
                ));
                continue;
            }
        };
        if let Some(why) = published_before {
            let outcome = match admin.get(&object.object_path()).await {
                Ok(Some(_)) => ensure_object(&admin, object).await,
                Ok(None) => Ok(ObjectOutcome::Skipped { why }),
                Err(e) => Err(e),
            };
            let outcome = outcome.unwrap_or_else(|e| ObjectOutcome::Failed {
                reason: e.to_string(),
            });
            if matches!(outcome, ObjectOutcome::Created | ObjectOutcome::Unchanged) {
                record_published(&admin, &published_marker, record.as_ref()).await;
            }
            reports.push(report(object, outcome));
            continue;
        }
        let mut outcome = ensure_object(&admin, object).await;
        if object.name() == join_objects::CLUSTER_ADMINS_BINDING
            && matches!(&outcome, Err(e) if e.code() == Some(403))
        {
            tracing::info!(
                "admin.conf is not bound to cluster-admin yet: creating {} with super-admin.conf",
                join_objects::CLUSTER_ADMINS_BINDING
            );
            outcome =
                match kubeconfig_client(root, pki::SUPER_ADMIN_CONF, server, connect_to, timeout) {
                    Ok(super_admin) => ensure_object(&super_admin, object).await,
                    Err(e) => {
                        reports.push(report(object, ObjectOutcome::Failed { reason: e }));
                        continue;
                    }
                };
        }
        let outcome = outcome.unwrap_or_else(|e| ObjectOutcome::Failed {
            reason: e.to_string(),
        });
        tracing::info!(object = %object.describe(), ?outcome, "join object");
        if object.is_secret()
            && matches!(outcome, ObjectOutcome::Created | ObjectOutcome::Unchanged)
        {
            record_published(&admin, &published_marker, record.as_ref()).await;
        }
        reports.push(report(object, outcome));
    }
    // The cluster DNS, as kubeadm's addon phase deploys it, when the image bakes CoreDNS's image.
    let coredns = crate::image_info::ImageLock::read(root)
        .ok()
        .and_then(|lock| lock.image_reference(addons::COREDNS_ARTIFACT));
    match coredns {
        Some(image) => {
            for object in addons::coredns_objects(&image) {
                let outcome = ensure_addon(&admin, &object).await;
                tracing::info!(object = %object.describe, ?outcome, "addon object");
                reports.push(ObjectReport {
                    object: object.describe,
                    outcome,
                });
            }
        }
        None => reports.push(ObjectReport {
            object: "CoreDNS (cluster DNS)".to_string(),
            outcome: ObjectOutcome::Skipped {
                why: "the image bakes no coredns image: deploy a cluster DNS yourself".to_string(),
            },
        }),
    }
    Observation::JoinObjectsEnsured(reports)
}

/// Creates an addon object unless it exists (an existing one is left as it is: an operator may have changed it).
async fn ensure_addon(api: &KubeApi, object: &addons::AddonObject) -> ObjectOutcome {
    let created = match api.get(&object.path).await {
        Ok(Some(_)) => return ObjectOutcome::Unchanged,
        Ok(None) => {
            api.create(
                &object.collection,
                serde_json::to_vec(&object.body).unwrap_or_default(),
            )
            .await
        }
        Err(e) => Err(e),
    };
    match created {
        Ok(_) => ObjectOutcome::Created,
        Err(e) => ObjectOutcome::Failed {
            reason: e.to_string(),
        },
    }
}

fn waiting(reason: impl Into<String>) -> Observation {
    Observation::Discovered(DiscoveryOutcome::Waiting {
        reason: reason.into(),
    })
}

fn refused(reason: impl Into<String>) -> Observation {
    Observation::Discovered(DiscoveryOutcome::Refused {
        reason: reason.into(),
    })
}

/// Maps an API error of a discovery fetch to what the plan does with it.
fn fetch_failed(e: KubeApiError, server: &str, verified: bool) -> Observation {
    match e {
        KubeApiError::Unreachable(message) => {
            Observation::Discovered(DiscoveryOutcome::Unreachable { reason: message })
        }
        KubeApiError::Timeout { url } => Observation::Discovered(DiscoveryOutcome::Unreachable {
            reason: format!("no answer from {url} in time"),
        }),
        KubeApiError::Tls(message) if verified => refused(format!(
            "the API server at {server} is not trusted with the CA cluster-info names ({message}): its certificate \
             must be signed by that CA and name the endpoint"
        )),
        KubeApiError::Tls(message) => refused(message),
        KubeApiError::Status { code: 403, .. } => waiting(format!(
            "anonymous reads of kube-public/cluster-info at {server} are forbidden (HTTP 403) — the master allows \
             them once it made RoleBinding kube-public/kubeadm:bootstrap-signer-clusterinfo"
        )),
        KubeApiError::Status { code: 401, .. } => refused(format!(
            "{server} refuses anonymous requests (HTTP 401): discovery needs the API server's anonymous auth \
             (kube-apiserver --anonymous-auth=true, the default)"
        )),
        other => waiting(other.to_string()),
    }
}

/// `Discover`: kubeadm's token discovery, then the node's join files.
pub async fn discover(
    root: &Path,
    server: &str,
    connect_to: &[IpAddr],
    trust: &MasterTrust,
    token: Option<&BootstrapToken>,
    node_name: &str,
    timeout: Duration,
) -> Observation {
    let Some(token) = token else {
        return refused(
            "the minion's role file has no BOOTSTRAP_TOKEN (kubeadm's `--token`): add it to the user data",
        );
    };
    let mut discovery_trust = DiscoveryTrust {
        pin: trust.ca_cert_hash.clone(),
        ca_file_certs: Vec::new(),
    };
    let first_trust = match &trust.ca_cert_file {
        Some(path) => {
            let file = if path.is_absolute() {
                path.clone()
            } else {
                root.join(path)
            };
            match std::fs::read(&file) {
                Ok(pem) => {
                    discovery_trust.ca_file_certs =
                        discovery::pem_certificates(&String::from_utf8_lossy(&pem));
                    ServerTrust::CaPem(pem)
                }
                Err(e) => {
                    return refused(format!("cannot read CA_CERT_FILE {}: {e}", file.display()));
                }
            }
        }
        None => ServerTrust::AnyCertificate,
    };
    let path = format!(
        "/api/v1/namespaces/{}/configmaps/{}",
        discovery::CLUSTER_INFO_NAMESPACE,
        discovery::CLUSTER_INFO_NAME
    );

    // 1–3: unverified (or CA-file verified) fetch, signature, pin.
    let anonymous = match KubeApi::new(
        server,
        connect_to,
        &first_trust,
        &Identity::Anonymous,
        timeout,
    ) {
        Ok(api) => api,
        Err(e) => return refused(e.to_string()),
    };
    let body = match anonymous.get(&path).await {
        Ok(Some(body)) => body,
        Ok(None) => {
            return waiting(format!(
                "{server} has no kube-public/cluster-info yet (HTTP 404) — the master creates it once its API \
                 server is up"
            ));
        }
        Err(e) => return fetch_failed(e, server, false),
    };
    let verified = match discovery::cluster_info_data(&body)
        .and_then(|data| discovery::verify_cluster_info(&data, token, &discovery_trust))
    {
        Ok(verified) => verified,
        Err(e) if e.needs_operator() => return refused(e.to_string()),
        Err(e) => return waiting(e.to_string()),
    };

    // 4: the same again, now verified against the CA just found.
    let pinned = match KubeApi::new(
        server,
        connect_to,
        &ServerTrust::CaPem(verified.ca_pem.clone().into_bytes()),
        &Identity::Anonymous,
        timeout,
    ) {
        Ok(api) => api,
        Err(e) => return refused(e.to_string()),
    };
    let again = match pinned.get(&path).await {
        Ok(Some(body)) => body,
        Ok(None) => {
            return waiting(format!(
                "{server}: cluster-info disappeared between two fetches"
            ));
        }
        Err(e) => return fetch_failed(e, server, true),
    };
    if let Err(e) = discovery::cluster_info_data(&again)
        .and_then(|data| discovery::same_cluster_info(&verified, &data))
    {
        return waiting(e.to_string());
    }
    let ca_hash = match pki::ca_cert_hash(verified.ca_pem.as_bytes()) {
        Ok(hash) => hash,
        Err(e) => return refused(e.to_string()),
    };

    // The node's join files (kubeadm's names): the CA, kubelet's bootstrap kubeconfig, kube-proxy's kubeconfig.
    let ca = verified.ca_pem.as_bytes();
    let bootstrap = kubeconfig::render(&Kubeconfig::bootstrap_token(
        &verified.server,
        ca,
        token.secret().expose(),
    ));
    let proxy = kubeconfig::render(&Kubeconfig::file_reference(
        &verified.server,
        ca,
        &format!("system:node:{node_name}"),
        KUBELET_CLIENT_PEM,
        KUBELET_CLIENT_PEM,
    ));
    for (path, contents, mode) in [
        (CLUSTER_CA_FILE, ca.to_vec(), 0o644),
        (BOOTSTRAP_KUBELET_CONF, bootstrap.into_bytes(), 0o600),
        (KUBE_PROXY_CONF, proxy.into_bytes(), 0o600),
    ] {
        let file = under(root, path);
        if let Err(e) = atomic_write(&file, &contents, mode) {
            return refused(format!("cannot write {}: {e}", file.display()));
        }
        tracing::info!(path = %file.display(), mode = format!("{mode:o}"), "join file written");
    }
    Observation::Discovered(DiscoveryOutcome::Joined {
        server: verified.server,
        ca_hash,
    })
}

/// `CheckKubeletCredentials`: kubelet.conf, its client certificate (CN `system:node:<node>`, O `system:nodes`,
/// signed by the cluster CA, key matching, valid now).
pub fn check_kubelet_credentials(root: &Path, node_name: &str, now_unix: i64) -> Observation {
    let credentials = kubelet_credentials(root, node_name, now_unix);
    Observation::KubeletChecked {
        node_name: node_name.to_string(),
        credentials,
    }
}

fn kubelet_credentials(root: &Path, node_name: &str, now_unix: i64) -> KubeletCredentials {
    let not_yet = |reason: String| KubeletCredentials::NotYet { reason };
    let wrong = |reason: String| KubeletCredentials::Wrong { reason };
    let conf = under(root, KUBELET_CONF);
    let text = match std::fs::read_to_string(&conf) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return not_yet(format!(
                "kubelet has not written /{KUBELET_CONF} yet — it is asking for a client certificate with \
                 /{BOOTSTRAP_KUBELET_CONF}; the controller manager approves and signs it (`kubectl get csr` on a \
                 master shows it; `journalctl -u kubelet` here)"
            ));
        }
        Err(e) => return wrong(format!("cannot read /{KUBELET_CONF}: {e}")),
    };
    let config = match kubeconfig::parse(&text) {
        Ok(c) => c,
        Err(e) => return wrong(format!("/{KUBELET_CONF}: {e}")),
    };
    let user = match config.current_user() {
        Ok(u) => u.clone(),
        Err(e) => return wrong(format!("/{KUBELET_CONF}: {e}")),
    };
    let (cert_pem, key_pem) = match (&user.client_certificate_data, &user.client_certificate) {
        (Some(data), _) => (
            data.clone(),
            user.client_key_data.clone().unwrap_or_default(),
        ),
        (None, Some(path)) => {
            let file = under(root, path);
            match std::fs::read(&file) {
                Ok(pem) => {
                    let key = match &user.client_key {
                        Some(k) if k != path => std::fs::read(under(root, k)).unwrap_or_default(),
                        _ => pem.clone(),
                    };
                    (pem, key)
                }
                Err(e) => {
                    return not_yet(format!(
                        "/{KUBELET_CONF} names {path}, which cannot be read yet: {e}"
                    ));
                }
            }
        }
        (None, None) => {
            return wrong(format!("/{KUBELET_CONF} has no client certificate"));
        }
    };
    let (cn, groups) = match pki::client_cert_identity(&cert_pem) {
        Ok(identity) => identity,
        Err(e) => return wrong(format!("kubelet's client certificate: {e}")),
    };
    let want = format!("system:node:{node_name}");
    if cn != want {
        return wrong(format!(
            "kubelet's client certificate is for {cn:?}, but this node is {want:?} — the node name must equal the \
             certificate's CN (Node authorizer): set KUBELET_HOSTNAME in the role file to the name kubelet uses, \
             or remove /{KUBELET_CONF} and /var/lib/kubelet/pki/kubelet-client-* to bootstrap again"
        ));
    }
    if !groups.iter().any(|g| g == NODES_GROUP) {
        return wrong(format!(
            "kubelet's client certificate has groups {groups:?}, not {NODES_GROUP}"
        ));
    }
    let ca = match std::fs::read(under(root, CLUSTER_CA_FILE)) {
        Ok(ca) => ca,
        Err(e) => return wrong(format!("cannot read /{CLUSTER_CA_FILE}: {e}")),
    };
    if let Err(e) = pki::verify_signed_by(&cert_pem, &ca) {
        return wrong(format!(
            "kubelet's client certificate is not signed by the cluster CA: {e}"
        ));
    }
    if let Err(e) = pki::check_key_matches_cert(&cert_pem, &key_pem) {
        return wrong(format!("kubelet's client certificate and key: {e}"));
    }
    if let Err(e) = pki::check_cert_valid_at(&cert_pem, now_unix) {
        return wrong(format!("kubelet's client certificate: {e}"));
    }
    let not_after = pki::cert_validity(&cert_pem)
        .map(|(_, end)| crate::pure::utc::rfc3339(end))
        .unwrap_or_default();
    KubeletCredentials::Issued {
        subject: want,
        not_after,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_names_are_lower_case() {
        assert_eq!(node_name(Some("Node-1")), "node-1");
        assert!(!node_name(None).is_empty());
    }

    #[test]
    fn missing_kubelet_conf_is_not_yet_and_says_where_to_look() {
        let dir = tempfile::tempdir().expect("tempdir");
        match kubelet_credentials(dir.path(), "n1", 0) {
            KubeletCredentials::NotYet { reason } => {
                assert!(reason.contains("kubectl get csr"), "{reason}")
            }
            other => panic!("{other:?}"),
        }
    }
}
