//! Kubeconfig files: a typed model of what kubectl writes, rendering the ones the agent writes and parsing the
//! ones it reads. Pure: text in, values out.
//!
//! # Model
//!
//! [`Kubeconfig`] mirrors kubectl's `Config` (`apiVersion: v1`, `kind: Config`, named `clusters`, `users` and
//! `contexts`, `current-context`, `preferences: {}`), with kubectl's field names. The `*-data` fields hold the
//! decoded bytes (base64 only in the file, as kubectl's `[]byte`); bad base64 is a parse error. Fields the model
//! does not know (`extensions`, `exec`, `auth-provider`, …) are tolerated on parse and dropped. [`parse`]
//! reads YAML or JSON; [`render`] writes YAML with the keys in kubectl's (alphabetical) order, empty lists as
//! `null` as kubectl writes nil lists, and is byte-stable: the same value always gives the same bytes (the
//! `cluster-info` kubeconfig is signed over its bytes).
//!
//! # Constructors (kubeadm's names)
//!
//! | constructor | used for | cluster / user / context |
//! |---|---|---|
//! | [`Kubeconfig::client_certificate`] | admin.conf, super-admin.conf, controller-manager.conf, scheduler.conf | `kubernetes` / the CN / `<CN>@kubernetes`, cert and key embedded |
//! | [`Kubeconfig::bootstrap_token`] | bootstrap-kubelet.conf | `kubernetes` / `tls-bootstrap-token-user` / `tls-bootstrap-token-user@kubernetes` |
//! | [`Kubeconfig::file_reference`] | kube-proxy.conf on a minion | `kubernetes` / given / `<user>@kubernetes`, `client-certificate` and `client-key` paths ([`KUBELET_CLIENT_PEM`]) |
//! | [`Kubeconfig::cluster_info`] | the `kube-public/cluster-info` ConfigMap | one cluster named `""`, no users or contexts |
//!
//! # Secrets
//!
//! `client-key-data` and `token` are secrets: [`User`]'s `Debug` prints only their length, and no error here
//! quotes the text it failed on (a YAML error's quoted values are elided).

use base64::Engine as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

/// The cluster name kubeadm uses (its `clusterName` default).
pub const CLUSTER_NAME: &str = "kubernetes";

/// The user of kubeadm's bootstrap-kubelet.conf.
pub const TOKEN_USER: &str = "tls-bootstrap-token-user";

/// The combined certificate and key the kubelet keeps after TLS bootstrap (its `--cert-dir` default).
pub const KUBELET_CLIENT_PEM: &str = "/var/lib/kubelet/pki/kubelet-client-current.pem";

/// The API server's port (kubeadm's default).
pub const API_PORT: u16 = 6443;

/// `https://<host>:<port>`, with brackets around an IPv6 literal.
pub fn server_url(host: &str, port: u16) -> String {
    if host.contains(':') && !host.starts_with('[') {
        format!("https://[{host}]:{port}")
    } else {
        format!("https://{host}:{port}")
    }
}

/// A kubeconfig file, as kubectl writes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Kubeconfig {
    #[serde(rename = "apiVersion", default = "api_version_v1")]
    pub api_version: String,
    #[serde(default, with = "null_list")]
    pub clusters: Vec<NamedCluster>,
    #[serde(default, with = "null_list")]
    pub contexts: Vec<NamedContext>,
    #[serde(rename = "current-context", default)]
    pub current_context: String,
    #[serde(default = "kind_config")]
    pub kind: String,
    #[serde(default)]
    pub preferences: Preferences,
    #[serde(default, with = "null_list")]
    pub users: Vec<NamedUser>,
}

/// `preferences: {}` (nothing the agent sets; whatever a parsed file has is dropped).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Preferences {}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NamedCluster {
    pub cluster: Cluster,
    #[serde(default)]
    pub name: String,
}

/// How to reach and trust an API server. `Debug` shows the CA data's length only.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct Cluster {
    /// Path of a CA file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate_authority: Option<String>,
    /// The CA certificate(s), PEM, embedded.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "base64_bytes"
    )]
    pub certificate_authority_data: Option<Vec<u8>>,
    #[serde(default, skip_serializing_if = "is_false")]
    pub insecure_skip_tls_verify: bool,
    #[serde(default)]
    pub server: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_server_name: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NamedContext {
    pub context: Context,
    #[serde(default)]
    pub name: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Context {
    #[serde(default)]
    pub cluster: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    #[serde(default)]
    pub user: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NamedUser {
    #[serde(default)]
    pub name: String,
    pub user: User,
}

/// Credentials (kubectl's `AuthInfo`). `Debug` redacts the key and the token.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct User {
    /// Path of a client certificate file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_certificate: Option<String>,
    /// The client certificate, PEM, embedded.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "base64_bytes"
    )]
    pub client_certificate_data: Option<Vec<u8>>,
    /// Path of a client key file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_key: Option<String>,
    /// The client key, PEM, embedded. Secret.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "base64_bytes"
    )]
    pub client_key_data: Option<Vec<u8>>,
    /// A bearer token. Secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
}

/// `Debug` of embedded data: its length.
struct Len(usize);

impl fmt::Debug for Len {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "<{} bytes>", self.0)
    }
}

/// `Debug` of a secret: that it is one, and its length.
struct Redacted(usize);

impl fmt::Debug for Redacted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "<redacted, {} bytes>", self.0)
    }
}

impl fmt::Debug for Cluster {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cluster")
            .field("certificate_authority", &self.certificate_authority)
            .field(
                "certificate_authority_data",
                &self
                    .certificate_authority_data
                    .as_ref()
                    .map(|d| Len(d.len())),
            )
            .field("insecure_skip_tls_verify", &self.insecure_skip_tls_verify)
            .field("server", &self.server)
            .field("tls_server_name", &self.tls_server_name)
            .finish()
    }
}

impl fmt::Debug for User {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("User")
            .field("client_certificate", &self.client_certificate)
            .field(
                "client_certificate_data",
                &self.client_certificate_data.as_ref().map(|d| Len(d.len())),
            )
            .field("client_key", &self.client_key)
            .field(
                "client_key_data",
                &self.client_key_data.as_ref().map(|d| Redacted(d.len())),
            )
            .field("token", &self.token.as_ref().map(|t| Redacted(t.len())))
            .finish()
    }
}

/// What is wrong with a kubeconfig's text or its references. `Display` says what, [`KubeconfigError::hint`]
/// what to do. Never quotes a value from the file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KubeconfigError {
    #[error("not valid YAML or JSON of kind Config: {reason}")]
    Syntax { reason: String },
    #[error("current-context {name:?} names no context")]
    ContextNotFound { name: String },
    #[error("the context names cluster {name:?}, which the file does not have")]
    ClusterNotFound { name: String },
    #[error("the context names user {name:?}, which the file does not have")]
    UserNotFound { name: String },
    #[error("no current-context and {contexts} contexts, so which one to use is unclear")]
    NoCurrentContext { contexts: usize },
}

impl KubeconfigError {
    /// What to do about it.
    pub fn hint(&self) -> &'static str {
        match self {
            KubeconfigError::Syntax { .. } => {
                "compare it with what `kubectl config view --raw` prints"
            }
            KubeconfigError::ContextNotFound { .. } => {
                "set current-context to one of the names under contexts"
            }
            KubeconfigError::ClusterNotFound { .. } => "add the cluster or fix the context",
            KubeconfigError::UserNotFound { .. } => "add the user or fix the context",
            KubeconfigError::NoCurrentContext { .. } => "set current-context",
        }
    }
}

/// Renders `config` as YAML, kubectl's key order, byte-stable.
pub fn render(config: &Kubeconfig) -> String {
    // Serializing this model cannot fail: plain strings, bools and sequences, no maps with non-string keys.
    serde_yaml_ng::to_string(config).unwrap_or_default()
}

/// Parses a kubeconfig written as YAML or JSON. Unknown fields are ignored.
pub fn parse(text: &str) -> Result<Kubeconfig, KubeconfigError> {
    let parsed = if text.trim_start().starts_with('{') {
        serde_json::from_str(text).map_err(|e| sanitize(&e.to_string()))
    } else {
        serde_yaml_ng::from_str(text).map_err(|e| sanitize(&e.to_string()))
    };
    let config: Kubeconfig = parsed.map_err(|reason| KubeconfigError::Syntax { reason })?;
    if config.kind != "Config" {
        return Err(KubeconfigError::Syntax {
            reason: "kind is not Config".to_string(),
        });
    }
    Ok(config)
}

/// A parser's message with every quoted stretch elided (it may quote a token or key from the file).
fn sanitize(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut quoted = false;
    for c in message.chars() {
        match (c, quoted) {
            ('"', false) => {
                quoted = true;
                out.push_str("\"…");
            }
            ('"', true) => {
                quoted = false;
                out.push('"');
            }
            (_, false) => out.push(c),
            (_, true) => {}
        }
    }
    out
}

impl Kubeconfig {
    fn empty() -> Kubeconfig {
        Kubeconfig {
            api_version: api_version_v1(),
            clusters: Vec::new(),
            contexts: Vec::new(),
            current_context: String::new(),
            kind: kind_config(),
            preferences: Preferences {},
            users: Vec::new(),
        }
    }

    /// One cluster (`kubernetes`), one user, one context `<user>@kubernetes`, current.
    fn single(server: &str, ca_pem: &[u8], user_name: &str, user: User) -> Kubeconfig {
        let context_name = format!("{user_name}@{CLUSTER_NAME}");
        Kubeconfig {
            clusters: vec![NamedCluster {
                name: CLUSTER_NAME.to_string(),
                cluster: Cluster {
                    certificate_authority_data: Some(ca_pem.to_vec()),
                    server: server.to_string(),
                    ..Cluster::default()
                },
            }],
            contexts: vec![NamedContext {
                name: context_name.clone(),
                context: Context {
                    cluster: CLUSTER_NAME.to_string(),
                    namespace: None,
                    user: user_name.to_string(),
                },
            }],
            current_context: context_name,
            users: vec![NamedUser {
                name: user_name.to_string(),
                user,
            }],
            ..Kubeconfig::empty()
        }
    }

    /// A client-certificate kubeconfig with everything embedded (kubeadm's admin.conf and friends). `user_name`
    /// is the certificate's CN, as kubeadm names the user.
    pub fn client_certificate(
        server: &str,
        ca_pem: &[u8],
        user_name: &str,
        cert_pem: &[u8],
        key_pem: &[u8],
    ) -> Kubeconfig {
        let user = User {
            client_certificate_data: Some(cert_pem.to_vec()),
            client_key_data: Some(key_pem.to_vec()),
            ..User::default()
        };
        Kubeconfig::single(server, ca_pem, user_name, user)
    }

    /// kubeadm's bootstrap-kubelet.conf: server and CA from cluster-info, the bootstrap token as
    /// `tls-bootstrap-token-user`.
    pub fn bootstrap_token(server: &str, ca_pem: &[u8], token: &str) -> Kubeconfig {
        let user = User {
            token: Some(token.to_string()),
            ..User::default()
        };
        Kubeconfig::single(server, ca_pem, TOKEN_USER, user)
    }

    /// A kubeconfig whose credentials are files (`client-certificate`, `client-key`), CA data embedded. For
    /// kube-proxy on a minion both paths are [`KUBELET_CLIENT_PEM`].
    pub fn file_reference(
        server: &str,
        ca_pem: &[u8],
        user_name: &str,
        cert_path: &str,
        key_path: &str,
    ) -> Kubeconfig {
        let user = User {
            client_certificate: Some(cert_path.to_string()),
            client_key: Some(key_path.to_string()),
            ..User::default()
        };
        Kubeconfig::single(server, ca_pem, user_name, user)
    }

    /// The kubeconfig kubeadm publishes in `kube-public/cluster-info`: one cluster named `""` with the server
    /// and the CA, no users or contexts.
    pub fn cluster_info(server: &str, ca_pem: &[u8]) -> Kubeconfig {
        Kubeconfig {
            clusters: vec![NamedCluster {
                name: String::new(),
                cluster: Cluster {
                    certificate_authority_data: Some(ca_pem.to_vec()),
                    server: server.to_string(),
                    ..Cluster::default()
                },
            }],
            ..Kubeconfig::empty()
        }
    }

    /// The context in use: `current-context`, or the only context when that is empty. `None` when the file
    /// has no contexts at all (as cluster-info).
    pub fn current_context(&self) -> Result<Option<&NamedContext>, KubeconfigError> {
        if !self.current_context.is_empty() {
            return self
                .contexts
                .iter()
                .find(|c| c.name == self.current_context)
                .map(Some)
                .ok_or_else(|| KubeconfigError::ContextNotFound {
                    name: self.current_context.clone(),
                });
        }
        match self.contexts.as_slice() {
            [] => Ok(None),
            [only] => Ok(Some(only)),
            many => Err(KubeconfigError::NoCurrentContext {
                contexts: many.len(),
            }),
        }
    }

    /// The cluster of the current context; without contexts, the only cluster (as in cluster-info).
    pub fn current_cluster(&self) -> Result<&Cluster, KubeconfigError> {
        let name = match self.current_context()? {
            Some(context) => context.context.cluster.clone(),
            None if self.clusters.len() == 1 => return Ok(&self.clusters[0].cluster),
            None => String::new(),
        };
        self.clusters
            .iter()
            .find(|c| c.name == name)
            .map(|c| &c.cluster)
            .ok_or(KubeconfigError::ClusterNotFound { name })
    }

    /// The user of the current context; without contexts, the only user.
    pub fn current_user(&self) -> Result<&User, KubeconfigError> {
        let name = match self.current_context()? {
            Some(context) => context.context.user.clone(),
            None if self.users.len() == 1 => return Ok(&self.users[0].user),
            None => String::new(),
        };
        self.users
            .iter()
            .find(|u| u.name == name)
            .map(|u| &u.user)
            .ok_or(KubeconfigError::UserNotFound { name })
    }
}

fn api_version_v1() -> String {
    "v1".to_string()
}

fn kind_config() -> String {
    "Config".to_string()
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// A list written `null` when empty (as kubectl writes a nil list), read from `null`, absent or a sequence.
mod null_list {
    use super::*;

    pub fn serialize<S: Serializer, T: Serialize>(list: &[T], s: S) -> Result<S::Ok, S::Error> {
        if list.is_empty() {
            s.serialize_none()
        } else {
            s.collect_seq(list)
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
        d: D,
    ) -> Result<Vec<T>, D::Error> {
        Ok(Option::<Vec<T>>::deserialize(d)?.unwrap_or_default())
    }
}

/// `*-data` fields: standard base64 in the file, bytes in the model. Errors never quote the text.
mod base64_bytes {
    use super::*;
    use base64::engine::general_purpose::STANDARD;

    pub fn serialize<S: Serializer>(data: &Option<Vec<u8>>, s: S) -> Result<S::Ok, S::Error> {
        match data {
            Some(bytes) => s.serialize_str(&STANDARD.encode(bytes)),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<u8>>, D::Error> {
        let Some(text) = Option::<String>::deserialize(d)? else {
            return Ok(None);
        };
        let compact: String = text.chars().filter(|c| !c.is_ascii_whitespace()).collect();
        STANDARD
            .decode(compact.as_bytes())
            .map(Some)
            .map_err(|_| serde::de::Error::custom("a *-data field is not standard base64"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CA_PEM: &[u8] =
        b"-----BEGIN CERTIFICATE-----\nMIIBfakeCAcertificateForTests\n-----END CERTIFICATE-----\n";
    const CERT_PEM: &[u8] =
        b"-----BEGIN CERTIFICATE-----\nMIIBfakeClientCertificate\n-----END CERTIFICATE-----\n";
    const KEY_PEM: &[u8] =
        b"-----BEGIN PRIVATE KEY-----\nMIGHAgEAsecretkeymaterial\n-----END PRIVATE KEY-----\n";
    const TOKEN: &str = "abcdef.0123456789abcdef";

    fn golden(name: &str) -> String {
        let path = format!("{}/tests/golden/pki/{name}", env!("CARGO_MANIFEST_DIR"));
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    fn b64(bytes: &[u8]) -> String {
        base64::engine::general_purpose::STANDARD.encode(bytes)
    }

    #[test]
    fn client_certificate_kubeconfig_renders_as_kubectl_writes_it() {
        let config = Kubeconfig::client_certificate(
            "https://masters.prod.k8s:6443",
            CA_PEM,
            "kubernetes-admin",
            CERT_PEM,
            KEY_PEM,
        );
        let expected = format!(
            "apiVersion: v1\n\
             clusters:\n\
             - cluster:\n    certificate-authority-data: {}\n    server: https://masters.prod.k8s:6443\n  name: kubernetes\n\
             contexts:\n\
             - context:\n    cluster: kubernetes\n    user: kubernetes-admin\n  name: kubernetes-admin@kubernetes\n\
             current-context: kubernetes-admin@kubernetes\n\
             kind: Config\n\
             preferences: {{}}\n\
             users:\n\
             - name: kubernetes-admin\n  user:\n    client-certificate-data: {}\n    client-key-data: {}\n",
            b64(CA_PEM),
            b64(CERT_PEM),
            b64(KEY_PEM)
        );
        assert_eq!(render(&config), expected);
    }

    #[test]
    fn every_constructor_round_trips_through_render_and_parse() {
        let configs = [
            Kubeconfig::client_certificate(
                "https://a:6443",
                CA_PEM,
                "kubernetes-admin",
                CERT_PEM,
                KEY_PEM,
            ),
            Kubeconfig::bootstrap_token("https://a:6443", CA_PEM, TOKEN),
            Kubeconfig::file_reference(
                "https://a:6443",
                CA_PEM,
                "system:kube-proxy",
                KUBELET_CLIENT_PEM,
                KUBELET_CLIENT_PEM,
            ),
            Kubeconfig::cluster_info("https://a:6443", CA_PEM),
        ];
        for config in configs {
            let text = render(&config);
            assert_eq!(parse(&text), Ok(config.clone()), "{text}");
            let json = serde_json::to_string(&config).unwrap();
            assert_eq!(parse(&json), Ok(config), "{json}");
        }
    }

    #[test]
    fn bootstrap_token_kubeconfig_uses_kubeadms_names() {
        let config = Kubeconfig::bootstrap_token("https://masters.prod.k8s:6443", CA_PEM, TOKEN);
        assert_eq!(
            config.current_context,
            "tls-bootstrap-token-user@kubernetes"
        );
        assert_eq!(config.users[0].name, "tls-bootstrap-token-user");
        assert_eq!(config.current_user().unwrap().token.as_deref(), Some(TOKEN));
        assert_eq!(
            config.current_cluster().unwrap().server,
            "https://masters.prod.k8s:6443"
        );
        assert_eq!(
            config
                .current_cluster()
                .unwrap()
                .certificate_authority_data
                .as_deref(),
            Some(CA_PEM)
        );
        assert!(render(&config).contains(&format!("    token: {TOKEN}\n")));
    }

    #[test]
    fn file_reference_kubeconfig_names_the_files_and_embeds_the_ca() {
        let config = Kubeconfig::file_reference(
            "https://masters.prod.k8s:6443",
            CA_PEM,
            "system:kube-proxy",
            KUBELET_CLIENT_PEM,
            KUBELET_CLIENT_PEM,
        );
        let text = render(&config);
        assert!(text.contains(
            "    client-certificate: /var/lib/kubelet/pki/kubelet-client-current.pem\n    client-key: \
             /var/lib/kubelet/pki/kubelet-client-current.pem\n"
        ));
        assert!(!text.contains("client-key-data"));
        assert!(text.contains(&format!("certificate-authority-data: {}", b64(CA_PEM))));
    }

    #[test]
    fn cluster_info_rendering_is_byte_stable_and_matches_the_golden_file() {
        let config = Kubeconfig::cluster_info(&server_url("masters.prod.k8s", API_PORT), CA_PEM);
        let first = render(&config);
        assert_eq!(first, render(&config.clone()));
        assert_eq!(first, render(&parse(&first).unwrap()));
        assert_eq!(first, golden("cluster-info.yaml"));
        assert_eq!(
            config.current_cluster().unwrap().server,
            "https://masters.prod.k8s:6443"
        );
        assert_eq!(config.current_context(), Ok(None));
        assert_eq!(
            config.current_user(),
            Err(KubeconfigError::UserNotFound {
                name: String::new()
            })
        );
    }

    #[test]
    fn kubeadms_cluster_info_text_parses() {
        // As `kubectl -n kube-public get cm cluster-info -o jsonpath='{.data.kubeconfig}'` shows it.
        let text = format!(
            "apiVersion: v1\nclusters:\n- cluster:\n    certificate-authority-data: {}\n    server: \
             https://10.0.0.1:6443\n  name: \"\"\ncontexts: null\ncurrent-context: \"\"\nkind: Config\n\
             preferences: {{}}\nusers: null\n",
            b64(CA_PEM)
        );
        let config = parse(&text).unwrap();
        assert_eq!(
            config,
            Kubeconfig::cluster_info("https://10.0.0.1:6443", CA_PEM)
        );
    }

    #[test]
    fn unknown_fields_are_tolerated() {
        let text = format!(
            "apiVersion: v1\nkind: Config\nextensions: []\npreferences:\n  colors: true\nclusters:\n- cluster:\n    \
             server: https://x:6443\n    certificate-authority-data: {}\n    extensions: []\n    proxy-url: \
             http://p\n  name: c\ncontexts:\n- context:\n    cluster: c\n    user: u\n    namespace: kube-system\n  \
             name: ctx\ncurrent-context: ctx\nusers:\n- name: u\n  user:\n    exec:\n      command: aws\n    \
             token: t0k\n",
            b64(CA_PEM)
        );
        let config = parse(&text).unwrap();
        assert_eq!(config.current_user().unwrap().token.as_deref(), Some("t0k"));
        assert_eq!(config.current_cluster().unwrap().server, "https://x:6443");
        assert_eq!(
            config
                .current_context()
                .unwrap()
                .unwrap()
                .context
                .namespace
                .as_deref(),
            Some("kube-system")
        );
    }

    #[test]
    fn resolution_errors_are_exact() {
        let mut config = Kubeconfig::bootstrap_token("https://a:6443", CA_PEM, TOKEN);
        config.current_context = "nope".to_string();
        assert_eq!(
            config.current_user(),
            Err(KubeconfigError::ContextNotFound {
                name: "nope".to_string()
            })
        );
        config.current_context = String::new();
        assert!(config.current_user().is_ok(), "the only context is used");
        config.contexts.push(config.contexts[0].clone());
        assert_eq!(
            config.current_cluster(),
            Err(KubeconfigError::NoCurrentContext { contexts: 2 })
        );
        config.contexts.pop();
        config.contexts[0].context.cluster = "other".to_string();
        assert_eq!(
            config.current_cluster(),
            Err(KubeconfigError::ClusterNotFound {
                name: "other".to_string()
            })
        );
        config.contexts[0].context.user = "nobody".to_string();
        assert_eq!(
            config.current_user(),
            Err(KubeconfigError::UserNotFound {
                name: "nobody".to_string()
            })
        );
    }

    #[test]
    fn bad_text_is_a_syntax_error_that_quotes_nothing() {
        for text in [
            "kind: Config\nusers:\n- name: u\n  user:\n    client-key-data: \"not base64 s3cr3t!\"\n",
            "kind: Config\nusers: \"s3cr3t\"\n",
            "kind: Pod\n",
            "{\"kind\": \"Config\", \"users\": \"s3cr3t\"}",
            ": : :",
        ] {
            let err = parse(text).unwrap_err();
            assert!(matches!(err, KubeconfigError::Syntax { .. }), "{err:?}");
            assert!(!err.to_string().contains("s3cr3t"), "{err}");
            assert!(!format!("{err:?}").contains("s3cr3t"), "{err:?}");
        }
    }

    #[test]
    fn debug_never_shows_the_key_or_the_token() {
        let configs = [
            Kubeconfig::client_certificate(
                "https://a:6443",
                CA_PEM,
                "kubernetes-admin",
                CERT_PEM,
                KEY_PEM,
            ),
            Kubeconfig::bootstrap_token("https://a:6443", CA_PEM, TOKEN),
        ];
        for config in configs {
            let debug = format!("{config:?} {:#?}", config.users);
            for secret in [
                "PRIVATE KEY".to_string(),
                "secretkeymaterial".to_string(),
                b64(KEY_PEM),
                TOKEN.to_string(),
                "0123456789abcdef".to_string(),
                format!("{:?}", KEY_PEM),
                format!("{:?}", &KEY_PEM[..8]),
            ] {
                assert!(!debug.contains(&secret), "{secret} in {debug}");
            }
            assert!(debug.contains("redacted"), "{debug}");
        }
    }

    #[test]
    fn server_url_brackets_ipv6() {
        assert_eq!(
            server_url("masters.a.k8s", 6443),
            "https://masters.a.k8s:6443"
        );
        assert_eq!(server_url("10.0.0.1", 6443), "https://10.0.0.1:6443");
        assert_eq!(server_url("fd00::1", 6443), "https://[fd00::1]:6443");
    }
}
