//! The API objects a master creates so that nodes can join, as kubeadm's `bootstrap-token` and `cluster-info`
//! phases make them (names and contents follow kubeadm, so `kubeadm token create --print-join-command` and
//! `kubeadm join` work against this cluster unchanged). Pure: typed objects from k8s-openapi in, JSON out, and
//! the comparison with what the API server already holds. The executor sends them (`k8s_agent::edge::kube_api`).
//!
//! | object | what it lets happen |
//! |---|---|
//! | ClusterRoleBinding `kubeadm:cluster-admins` (group kubeadm:cluster-admins → cluster-admin) | admin.conf (and the API server's kubelet client certificate) has rights; made with super-admin.conf when admin.conf is still forbidden, as kubeadm does |
//! | Secret `kube-system/bootstrap-token-<id>` (type `bootstrap.kubernetes.io/token`) | the token authenticates as `system:bootstrap:<id>` in `system:bootstrappers` + `system:bootstrappers:kubeadm:default-node-token`, and cluster-info gets signed for it |
//! | ClusterRoleBinding `kubeadm:kubelet-bootstrap` (system:node-bootstrapper → the token group) | a token holder may create CSRs |
//! | ClusterRoleBinding `kubeadm:node-autoapprove-bootstrap` (…:nodeclient → the token group) | the controller manager approves a joining kubelet's first client certificate |
//! | ClusterRoleBinding `kubeadm:node-autoapprove-certificate-rotation` (…:selfnodeclient → system:nodes) | and its renewals |
//! | ClusterRoleBinding `k8s-image:node-proxier` (system:node-proxier → system:nodes) | kube-proxy, a host unit on minions, runs with the kubelet's own client certificate (see below) |
//! | ConfigMap `kube-public/cluster-info` (key `kubeconfig`: server + CA) | token discovery; the bootstrapsigner adds `jws-kubeconfig-<id>` |
//! | Role + RoleBinding `kube-public/kubeadm:bootstrap-signer-clusterinfo` (get configmaps/cluster-info → system:anonymous) | joining nodes read it before they have any credential |
//! | ConfigMap `kube-system/k8s-agent-published-bootstrap-token-<id>` (the token ID only; made after the Secret) | the cluster remembers that a master published the token: one the operator or tokencleaner deleted is never made again, by any master ([`published_token_record`]) |
//!
//! kube-proxy's credentials: kubeadm runs kube-proxy as a DaemonSet with a service-account token; here it is a
//! systemd unit on every minion. The two ways JOIN.md lists each have a price: a separate `system:kube-proxy`
//! client certificate would have to be issued and renewed on every minion by something that holds the CA (the
//! minion does not); the kubelet's certificate is issued by the TLS bootstrap and rotated by kubelet itself, and
//! binding `system:node-proxier` to the group `system:nodes` gives every node's identity read access to services,
//! endpoints and endpoint slices and the right to write events — which a node can mostly do through the Node
//! authorizer already. This agent takes the second.
//!
//! Comparison ([`JoinObject::difference`]): an existing object that says the same (the fields that matter: a
//! Secret's type and data, a binding's roleRef and subjects, a Role's rules, cluster-info's `kubeconfig`) is fine;
//! anything else is reported, never overwritten (an operator or kubeadm may have made it on purpose).

use crate::role_file::BootstrapToken;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use k8s_openapi::api::rbac::v1::{
    ClusterRoleBinding, PolicyRule, Role, RoleBinding, RoleRef, Subject,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde_json::Value;
use std::collections::BTreeMap;
use std::fmt;

/// The group kubeadm puts its default tokens in (`auth-extra-groups`).
pub const DEFAULT_NODE_TOKEN_GROUP: &str = "system:bootstrappers:kubeadm:default-node-token";
/// The group admin.conf's certificate carries.
pub const CLUSTER_ADMINS_GROUP: &str = "kubeadm:cluster-admins";
/// The ClusterRoleBinding that gives it cluster-admin.
pub const CLUSTER_ADMINS_BINDING: &str = "kubeadm:cluster-admins";
const RBAC_GROUP: &str = "rbac.authorization.k8s.io";
/// The namespace and name of the ConfigMap kubeadm publishes for discovery, and its data key holding the kubeconfig.
pub const CLUSTER_INFO_NAMESPACE: &str = "kube-public";
pub const CLUSTER_INFO_NAME: &str = "cluster-info";
pub const KUBECONFIG_KEY: &str = "kubeconfig";
const NODES_GROUP: &str = "system:nodes";

/// What the objects are made from.
#[derive(Debug, Clone)]
pub struct JoinObjectsSpec<'a> {
    pub token: &'a BootstrapToken,
    /// The kubeconfig cluster-info publishes (rendered by [`crate::kubeconfig`]).
    pub cluster_info_kubeconfig: String,
    /// RFC 3339 expiration of the token, if it has one.
    pub token_expiration: Option<String>,
}

/// One object, typed.
#[derive(Clone, PartialEq)]
pub enum JoinObject {
    Secret(Box<Secret>),
    ClusterRoleBinding(Box<ClusterRoleBinding>),
    ConfigMap(Box<ConfigMap>),
    Role(Box<Role>),
    RoleBinding(Box<RoleBinding>),
}

impl fmt::Debug for JoinObject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the Secret's data.
        write!(f, "JoinObject({})", self.describe())
    }
}

fn meta(name: &str, namespace: Option<&str>) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.to_string()),
        namespace: namespace.map(str::to_string),
        ..ObjectMeta::default()
    }
}

fn group(name: &str) -> Subject {
    Subject {
        kind: "Group".to_string(),
        name: name.to_string(),
        api_group: Some(RBAC_GROUP.to_string()),
        namespace: None,
    }
}

fn cluster_role_binding(name: &str, role: &str, subjects: Vec<Subject>) -> JoinObject {
    JoinObject::ClusterRoleBinding(Box::new(ClusterRoleBinding {
        metadata: meta(name, None),
        role_ref: RoleRef {
            api_group: RBAC_GROUP.to_string(),
            kind: "ClusterRole".to_string(),
            name: role.to_string(),
        },
        subjects: Some(subjects),
    }))
}

/// `kubeadm:cluster-admins`: made first (with super-admin.conf if admin.conf is still forbidden).
pub fn cluster_admins_binding() -> JoinObject {
    cluster_role_binding(
        CLUSTER_ADMINS_BINDING,
        "cluster-admin",
        vec![group(CLUSTER_ADMINS_GROUP)],
    )
}

/// The bootstrap token Secret.
pub fn bootstrap_token_secret(token: &BootstrapToken, expiration: Option<&str>) -> JoinObject {
    let mut data: BTreeMap<String, ByteString> = BTreeMap::new();
    let mut put = |k: &str, v: &str| {
        data.insert(k.to_string(), ByteString(v.as_bytes().to_vec()));
    };
    put("token-id", token.id());
    put("token-secret", token.secret_part());
    put("usage-bootstrap-authentication", "true");
    put("usage-bootstrap-signing", "true");
    put("auth-extra-groups", DEFAULT_NODE_TOKEN_GROUP);
    put(
        "description",
        "k8s-agent: the join token from the master's user data (BOOTSTRAP_TOKEN)",
    );
    if let Some(e) = expiration {
        put("expiration", e);
    }
    JoinObject::Secret(Box::new(Secret {
        metadata: meta(
            &format!("bootstrap-token-{}", token.id()),
            Some("kube-system"),
        ),
        type_: Some("bootstrap.kubernetes.io/token".to_string()),
        data: Some(data),
        ..Secret::default()
    }))
}

/// The prefix of the cluster's record that a bootstrap-token Secret was published ([`published_token_record`]).
pub const PUBLISHED_TOKEN_RECORD_PREFIX: &str = "k8s-agent-published-";

/// The cluster's own record that a master of this cluster published `secret` (a bootstrap-token Secret): ConfigMap
/// `kube-system/k8s-agent-published-bootstrap-token-<id>`, holding only the token ID (public: it is the Secret's
/// name). Every master looks for it before it makes the Secret, so a token the operator deleted (rotated) or
/// tokencleaner removed (expired) stays deleted even when a new master — a replacement, with the same user data and
/// none of the first master's files — starts. `None` for any other object.
pub fn published_token_record(secret: &JoinObject) -> Option<JoinObject> {
    let JoinObject::Secret(s) = secret else {
        return None;
    };
    let name = s.metadata.name.as_deref()?;
    let id = name.strip_prefix("bootstrap-token-")?;
    let mut metadata = meta(
        &format!("{PUBLISHED_TOKEN_RECORD_PREFIX}{name}"),
        s.metadata.namespace.as_deref(),
    );
    metadata.labels = Some(BTreeMap::from([(
        "app.kubernetes.io/managed-by".to_string(),
        "k8s-agent".to_string(),
    )]));
    Some(JoinObject::ConfigMap(Box::new(ConfigMap {
        metadata,
        data: Some(BTreeMap::from([("token-id".to_string(), id.to_string())])),
        ..ConfigMap::default()
    })))
}

/// Every object, in the order the master creates them.
pub fn master_objects(spec: &JoinObjectsSpec<'_>) -> Vec<JoinObject> {
    let token_group = || group(DEFAULT_NODE_TOKEN_GROUP);
    let mut cluster_info_data = BTreeMap::new();
    cluster_info_data.insert(
        KUBECONFIG_KEY.to_string(),
        spec.cluster_info_kubeconfig.clone(),
    );
    vec![
        cluster_admins_binding(),
        bootstrap_token_secret(spec.token, spec.token_expiration.as_deref()),
        cluster_role_binding(
            "kubeadm:kubelet-bootstrap",
            "system:node-bootstrapper",
            vec![token_group()],
        ),
        cluster_role_binding(
            "kubeadm:node-autoapprove-bootstrap",
            "system:certificates.k8s.io:certificatesigningrequests:nodeclient",
            vec![token_group()],
        ),
        cluster_role_binding(
            "kubeadm:node-autoapprove-certificate-rotation",
            "system:certificates.k8s.io:certificatesigningrequests:selfnodeclient",
            vec![group(NODES_GROUP)],
        ),
        cluster_role_binding(
            "k8s-image:node-proxier",
            "system:node-proxier",
            vec![group(NODES_GROUP)],
        ),
        JoinObject::ConfigMap(Box::new(ConfigMap {
            metadata: meta(CLUSTER_INFO_NAME, Some(CLUSTER_INFO_NAMESPACE)),
            data: Some(cluster_info_data),
            ..ConfigMap::default()
        })),
        JoinObject::Role(Box::new(Role {
            metadata: meta("kubeadm:bootstrap-signer-clusterinfo", Some("kube-public")),
            rules: Some(vec![PolicyRule {
                api_groups: Some(vec![String::new()]),
                resources: Some(vec!["configmaps".to_string()]),
                resource_names: Some(vec!["cluster-info".to_string()]),
                verbs: vec!["get".to_string()],
                non_resource_urls: None,
            }]),
        })),
        JoinObject::RoleBinding(Box::new(RoleBinding {
            metadata: meta("kubeadm:bootstrap-signer-clusterinfo", Some("kube-public")),
            role_ref: RoleRef {
                api_group: RBAC_GROUP.to_string(),
                kind: "Role".to_string(),
                name: "kubeadm:bootstrap-signer-clusterinfo".to_string(),
            },
            subjects: Some(vec![Subject {
                kind: "User".to_string(),
                name: "system:anonymous".to_string(),
                api_group: Some(RBAC_GROUP.to_string()),
                namespace: None,
            }]),
        })),
    ]
}

impl JoinObject {
    fn metadata(&self) -> &ObjectMeta {
        match self {
            JoinObject::Secret(o) => &o.metadata,
            JoinObject::ClusterRoleBinding(o) => &o.metadata,
            JoinObject::ConfigMap(o) => &o.metadata,
            JoinObject::Role(o) => &o.metadata,
            JoinObject::RoleBinding(o) => &o.metadata,
        }
    }

    /// The object's name.
    pub fn name(&self) -> &str {
        self.metadata().name.as_deref().unwrap_or_default()
    }

    /// `Kind namespace/name` for messages and status.
    pub fn describe(&self) -> String {
        let kind = match self {
            JoinObject::Secret(_) => "Secret",
            JoinObject::ClusterRoleBinding(_) => "ClusterRoleBinding",
            JoinObject::ConfigMap(_) => "ConfigMap",
            JoinObject::Role(_) => "Role",
            JoinObject::RoleBinding(_) => "RoleBinding",
        };
        match &self.metadata().namespace {
            Some(ns) => format!("{kind} {ns}/{}", self.name()),
            None => format!("{kind} {}", self.name()),
        }
    }

    /// Whether this object holds a secret (its JSON must never be logged).
    pub fn is_secret(&self) -> bool {
        matches!(self, JoinObject::Secret(_))
    }

    /// The collection URL path to POST it to, e.g. `/api/v1/namespaces/kube-system/secrets`.
    pub fn collection_path(&self) -> String {
        let ns = self.metadata().namespace.as_deref().unwrap_or_default();
        match self {
            JoinObject::Secret(_) => format!("/api/v1/namespaces/{ns}/secrets"),
            JoinObject::ConfigMap(_) => format!("/api/v1/namespaces/{ns}/configmaps"),
            JoinObject::ClusterRoleBinding(_) => {
                "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings".to_string()
            }
            JoinObject::Role(_) => {
                format!("/apis/rbac.authorization.k8s.io/v1/namespaces/{ns}/roles")
            }
            JoinObject::RoleBinding(_) => {
                format!("/apis/rbac.authorization.k8s.io/v1/namespaces/{ns}/rolebindings")
            }
        }
    }

    /// The object's own URL path (GET it).
    pub fn object_path(&self) -> String {
        format!("{}/{}", self.collection_path(), self.name())
    }

    /// The JSON body of the create request (apiVersion and kind included).
    pub fn to_json(&self) -> Vec<u8> {
        let value = self.to_value();
        let mut out = serde_json::to_vec_pretty(&value).unwrap_or_default();
        out.push(b'\n');
        out
    }

    fn to_value(&self) -> Value {
        let v = match self {
            JoinObject::Secret(o) => serde_json::to_value(o.as_ref()),
            JoinObject::ClusterRoleBinding(o) => serde_json::to_value(o.as_ref()),
            JoinObject::ConfigMap(o) => serde_json::to_value(o.as_ref()),
            JoinObject::Role(o) => serde_json::to_value(o.as_ref()),
            JoinObject::RoleBinding(o) => serde_json::to_value(o.as_ref()),
        };
        v.unwrap_or(Value::Null)
    }

    /// `None` when `existing` (the API server's JSON of the object with this name) says the same as this one in
    /// the fields that matter; otherwise what differs, in words (never a secret value).
    pub fn difference(&self, existing: &Value) -> Option<String> {
        let want = self.to_value();
        let fields: &[&str] = match self {
            JoinObject::Secret(_) => &["type", "data"],
            JoinObject::ClusterRoleBinding(_) | JoinObject::RoleBinding(_) => {
                &["roleRef", "subjects"]
            }
            JoinObject::Role(_) => &["rules"],
            JoinObject::ConfigMap(_) => &["data.kubeconfig"],
        };
        let mut differs = Vec::new();
        for field in fields {
            let get = |v: &Value| {
                field
                    .split('.')
                    .try_fold(v, |v, k| v.get(k))
                    .cloned()
                    .map(normalise)
            };
            if get(&want) != get(existing) {
                differs.push(*field);
            }
        }
        if differs.is_empty() {
            None
        } else {
            Some(format!(
                "{} exists and differs in {} — it is left as it is; delete it (or fix it) if this agent's version \
                 is the one you want",
                self.describe(),
                differs.join(", ")
            ))
        }
    }
}

/// Fields the API server fills with defaults are compared as if absent (e.g. an empty `apiGroup` on a Subject).
fn normalise(v: Value) -> Value {
    match v {
        Value::Object(map) => Value::Object(
            map.into_iter()
                .filter(|(_, v)| !matches!(v, Value::Null))
                .map(|(k, v)| (k, normalise(v)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.into_iter().map(normalise).collect()),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token() -> BootstrapToken {
        BootstrapToken::parse("abcdef.0123456789abcdef").expect("token")
    }

    fn spec(token: &BootstrapToken) -> JoinObjectsSpec<'_> {
        JoinObjectsSpec {
            token,
            cluster_info_kubeconfig: "apiVersion: v1\nkind: Config\n".to_string(),
            token_expiration: None,
        }
    }

    #[test]
    fn the_published_record_names_the_token_and_holds_no_secret() {
        let t = token();
        let secret = bootstrap_token_secret(&t, None);
        let record = published_token_record(&secret).expect("a record for a token Secret");
        assert_eq!(
            record.describe(),
            "ConfigMap kube-system/k8s-agent-published-bootstrap-token-abcdef"
        );
        assert_eq!(
            record.object_path(),
            "/api/v1/namespaces/kube-system/configmaps/k8s-agent-published-bootstrap-token-abcdef"
        );
        assert!(!record.is_secret());
        let json = String::from_utf8(record.to_json()).expect("utf-8");
        assert!(json.contains("\"token-id\": \"abcdef\""), "{json}");
        assert!(
            !json.contains(t.secret_part()),
            "the record must not hold the secret: {json}"
        );
        assert!(
            json.contains("\"app.kubernetes.io/managed-by\": \"k8s-agent\""),
            "{json}"
        );
        // Only for a token Secret.
        assert!(published_token_record(&cluster_admins_binding()).is_none());
    }

    #[test]
    fn objects_are_kubeadms_in_order() {
        let t = token();
        let names: Vec<String> = master_objects(&spec(&t))
            .iter()
            .map(|o| o.describe())
            .collect();
        assert_eq!(
            names,
            [
                "ClusterRoleBinding kubeadm:cluster-admins",
                "Secret kube-system/bootstrap-token-abcdef",
                "ClusterRoleBinding kubeadm:kubelet-bootstrap",
                "ClusterRoleBinding kubeadm:node-autoapprove-bootstrap",
                "ClusterRoleBinding kubeadm:node-autoapprove-certificate-rotation",
                "ClusterRoleBinding k8s-image:node-proxier",
                "ConfigMap kube-public/cluster-info",
                "Role kube-public/kubeadm:bootstrap-signer-clusterinfo",
                "RoleBinding kube-public/kubeadm:bootstrap-signer-clusterinfo",
            ]
        );
    }

    #[test]
    fn an_object_equals_itself_as_the_server_returns_it() {
        let t = token();
        for object in master_objects(&spec(&t)) {
            let mut served: Value = serde_json::from_slice(&object.to_json()).expect("json");
            served["metadata"]["uid"] = Value::from("1234");
            served["metadata"]["resourceVersion"] = Value::from("7");
            if let JoinObject::ConfigMap(_) = object {
                served["data"]["jws-kubeconfig-abcdef"] = Value::from("x..y");
            }
            assert_eq!(object.difference(&served), None, "{}", object.describe());
        }
    }

    #[test]
    fn a_different_object_is_reported_without_its_secret() {
        let t = token();
        let objects = master_objects(&spec(&t));
        let secret = &objects[1];
        let mut served: Value = serde_json::from_slice(&secret.to_json()).expect("json");
        served["data"]["token-secret"] = Value::from("ZmZmZmZmZmZmZmZmZmZmZg==");
        let diff = secret.difference(&served).expect("differs");
        assert!(diff.contains("data"), "{diff}");
        assert!(!diff.contains("0123456789abcdef"));
        let crb = &objects[2];
        let mut served: Value = serde_json::from_slice(&crb.to_json()).expect("json");
        served["roleRef"]["name"] = Value::from("cluster-admin");
        assert!(
            crb.difference(&served)
                .expect("differs")
                .contains("roleRef")
        );
    }

    #[test]
    fn debug_never_shows_the_secret() {
        let t = token();
        let objects = master_objects(&spec(&t));
        let text = format!("{objects:?}");
        assert!(!text.contains("0123456789abcdef"), "{text}");
        assert!(objects[1].is_secret());
    }

    #[test]
    fn paths_are_the_rest_api_paths() {
        let t = token();
        let objects = master_objects(&spec(&t));
        assert_eq!(
            objects[1].object_path(),
            "/api/v1/namespaces/kube-system/secrets/bootstrap-token-abcdef"
        );
        assert_eq!(
            objects[0].collection_path(),
            "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings"
        );
        assert_eq!(
            objects[8].object_path(),
            "/apis/rbac.authorization.k8s.io/v1/namespaces/kube-public/rolebindings/kubeadm:bootstrap-signer-clusterinfo"
        );
    }
}
