//! The RBAC objects the real API server bootstraps (plugin/pkg/auth/authorizer/rbac/bootstrappolicy), as far as
//! a join uses them, with their upstream rules. They are created at start when missing (as the real one
//! reconciles them), so they are visible (`kubectl get clusterroles`) and evaluated like any other object.
//!
//! | object | rules / subjects |
//! |---|---|
//! | ClusterRole cluster-admin | `*` on `*`/`*`, `*` on every URL; bound to group system:masters |
//! | system:discovery | get /livez /readyz /healthz /version /version/ /openapi(/*) /api(/*) /apis(/*); bound to system:authenticated |
//! | system:public-info-viewer | get /livez /readyz /healthz /version /version/; bound to system:authenticated + system:unauthenticated |
//! | system:basic-user | create selfsubjectaccessreviews, selfsubjectrulesreviews, selfsubjectreviews; bound to system:authenticated |
//! | system:node-bootstrapper | create/get/list/watch certificatesigningrequests (bound by kubeadm: kubeadm:kubelet-bootstrap) |
//! | system:certificates.k8s.io:certificatesigningrequests:nodeclient / :selfnodeclient | create certificatesigningrequests/nodeclient resp. /selfnodeclient (bound by kubeadm) |
//! | system:node-proxier | list/watch services, endpoints; get/list/watch nodes; events; list/watch endpointslices; bound to user system:kube-proxy |
//! | system:kube-controller-manager | events, leases, secrets/serviceaccounts create+update, delete secrets, get namespaces/secrets/serviceaccounts/configmaps, tokenreviews, subjectaccessreviews, list/watch `*`, serviceaccounts/token; bound to its user |
//! | system:kube-scheduler | the scheduler's reads, bindings, leases, reviews; bound to its user |
//! | system:node | the node rules (binding without subjects, as upstream: the Node authorizer grants them) |
//! | system:controller:certificate-controller | CSRs get/list/watch/delete, /status and /approval update, approve signers kubernetes.io/kube-apiserver-client-kubelet, sign the four kubernetes.io signers, SARs; bound to SA kube-system/certificate-controller |
//! | Role system:controller:bootstrap-signer (kube-system) | get/list/watch secrets; (kube-public) get/list/watch configmaps, update configmaps/cluster-info; bound to SA kube-system/bootstrap-signer |
//! | Role system:controller:token-cleaner (kube-system) | get/list/watch/delete secrets; bound to SA kube-system/token-cleaner |
//! | Role extension-apiserver-authentication-reader (kube-system) | read configmaps/extension-apiserver-authentication; bound to the controller manager and scheduler users |

use serde_json::{Value, json};

const READ: &[&str] = &["get", "list", "watch"];

fn rule(verbs: &[&str], groups: &[&str], resources: &[&str]) -> Value {
    json!({"verbs": verbs, "apiGroups": groups, "resources": resources})
}

fn named_rule(verbs: &[&str], groups: &[&str], resources: &[&str], names: &[&str]) -> Value {
    json!({"verbs": verbs, "apiGroups": groups, "resources": resources, "resourceNames": names})
}

fn urls(verbs: &[&str], urls: &[&str]) -> Value {
    json!({"verbs": verbs, "nonResourceURLs": urls})
}

fn events() -> Value {
    rule(
        &["create", "update", "patch"],
        &["", "events.k8s.io"],
        &["events"],
    )
}

fn metadata(name: &str, namespace: Option<&str>) -> Value {
    let mut m = json!({
        "name": name,
        "labels": {"kubernetes.io/bootstrapping": "rbac-defaults"},
        "annotations": {"rbac.authorization.kubernetes.io/autoupdate": "true"},
    });
    if let Some(ns) = namespace {
        m["namespace"] = json!(ns);
    }
    m
}

fn cluster_role(name: &str, rules: Vec<Value>) -> Value {
    json!({
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "metadata": metadata(name, None),
        "rules": rules,
    })
}

fn role(namespace: &str, name: &str, rules: Vec<Value>) -> Value {
    json!({
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": metadata(name, Some(namespace)),
        "rules": rules,
    })
}

fn group(name: &str) -> Value {
    json!({"kind": "Group", "apiGroup": "rbac.authorization.k8s.io", "name": name})
}

fn user(name: &str) -> Value {
    json!({"kind": "User", "apiGroup": "rbac.authorization.k8s.io", "name": name})
}

fn service_account(namespace: &str, name: &str) -> Value {
    json!({"kind": "ServiceAccount", "name": name, "namespace": namespace})
}

fn cluster_binding(name: &str, role: &str, subjects: Vec<Value>) -> Value {
    let mut b = json!({
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRoleBinding",
        "metadata": metadata(name, None),
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
    });
    if !subjects.is_empty() {
        b["subjects"] = json!(subjects);
    }
    b
}

fn role_binding(namespace: &str, name: &str, role: &str, subjects: Vec<Value>) -> Value {
    json!({
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": metadata(name, Some(namespace)),
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": role},
        "subjects": subjects,
    })
}

/// Upstream NodeRules(): what the Node authorizer grants a node outside its graph-checked resources.
pub fn node_rules() -> Vec<Value> {
    vec![
        rule(&["create"], &["authentication.k8s.io"], &["tokenreviews"]),
        rule(
            &["create"],
            &["authorization.k8s.io"],
            &["subjectaccessreviews", "localsubjectaccessreviews"],
        ),
        rule(READ, &[""], &["services"]),
        rule(&["create", "get", "list", "watch"], &[""], &["nodes"]),
        rule(&["update", "patch"], &[""], &["nodes/status"]),
        rule(&["update", "patch"], &[""], &["nodes"]),
        rule(&["create", "update", "patch"], &[""], &["events"]),
        rule(READ, &[""], &["pods"]),
        rule(&["create", "delete"], &[""], &["pods"]),
        rule(&["update", "patch"], &[""], &["pods/status"]),
        rule(&["create"], &[""], &["pods/eviction"]),
        rule(&["get", "list", "watch"], &[""], &["secrets", "configmaps"]),
        rule(
            &["get"],
            &[""],
            &["persistentvolumeclaims", "persistentvolumes"],
        ),
        rule(&["get"], &[""], &["endpoints"]),
        rule(
            &["create", "get", "list", "watch"],
            &["certificates.k8s.io"],
            &["certificatesigningrequests"],
        ),
        rule(
            &["get", "create", "update", "patch", "delete"],
            &["coordination.k8s.io"],
            &["leases"],
        ),
        rule(&["get"], &["storage.k8s.io"], &["volumeattachments"]),
        rule(&["create"], &[""], &["serviceaccounts/token"]),
        rule(
            &["get", "update", "patch"],
            &[""],
            &["persistentvolumeclaims/status"],
        ),
        rule(
            &["get", "watch", "list"],
            &["storage.k8s.io"],
            &["csidrivers"],
        ),
        rule(
            &["get", "create", "update", "patch", "delete"],
            &["storage.k8s.io"],
            &["csinodes"],
        ),
        rule(READ, &["node.k8s.io"], &["runtimeclasses"]),
    ]
}

/// Every bootstrap object: (resource key, object).
pub fn objects() -> Vec<(&'static str, Value)> {
    let cr = "rbac.authorization.k8s.io/clusterroles";
    let crb = "rbac.authorization.k8s.io/clusterrolebindings";
    let r = "rbac.authorization.k8s.io/roles";
    let rb = "rbac.authorization.k8s.io/rolebindings";
    let certs = "certificates.k8s.io";
    vec![
        (
            cr,
            cluster_role(
                "cluster-admin",
                vec![rule(&["*"], &["*"], &["*"]), urls(&["*"], &["*"])],
            ),
        ),
        (
            cr,
            cluster_role(
                "system:discovery",
                vec![urls(
                    &["get"],
                    &[
                        "/livez",
                        "/readyz",
                        "/healthz",
                        "/version",
                        "/version/",
                        "/openapi",
                        "/openapi/*",
                        "/api",
                        "/api/*",
                        "/apis",
                        "/apis/*",
                    ],
                )],
            ),
        ),
        (
            cr,
            cluster_role(
                "system:public-info-viewer",
                vec![urls(
                    &["get"],
                    &["/livez", "/readyz", "/healthz", "/version", "/version/"],
                )],
            ),
        ),
        (
            cr,
            cluster_role(
                "system:basic-user",
                vec![
                    rule(
                        &["create"],
                        &["authorization.k8s.io"],
                        &["selfsubjectaccessreviews", "selfsubjectrulesreviews"],
                    ),
                    rule(
                        &["create"],
                        &["authentication.k8s.io"],
                        &["selfsubjectreviews"],
                    ),
                ],
            ),
        ),
        (
            cr,
            cluster_role(
                "system:node-bootstrapper",
                vec![rule(
                    &["create", "get", "list", "watch"],
                    &[certs],
                    &["certificatesigningrequests"],
                )],
            ),
        ),
        (
            cr,
            cluster_role(
                "system:certificates.k8s.io:certificatesigningrequests:nodeclient",
                vec![rule(
                    &["create"],
                    &[certs],
                    &["certificatesigningrequests/nodeclient"],
                )],
            ),
        ),
        (
            cr,
            cluster_role(
                "system:certificates.k8s.io:certificatesigningrequests:selfnodeclient",
                vec![rule(
                    &["create"],
                    &[certs],
                    &["certificatesigningrequests/selfnodeclient"],
                )],
            ),
        ),
        (
            cr,
            cluster_role(
                "system:certificates.k8s.io:kube-apiserver-client-kubelet-approver",
                vec![named_rule(
                    &["approve"],
                    &[certs],
                    &["signers"],
                    &["kubernetes.io/kube-apiserver-client-kubelet"],
                )],
            ),
        ),
        (
            cr,
            cluster_role(
                "system:node-proxier",
                vec![
                    rule(&["list", "watch"], &[""], &["services", "endpoints"]),
                    rule(&["get", "list", "watch"], &[""], &["nodes"]),
                    events(),
                    rule(
                        &["list", "watch"],
                        &["discovery.k8s.io"],
                        &["endpointslices"],
                    ),
                ],
            ),
        ),
        (
            cr,
            cluster_role(
                "system:kube-controller-manager",
                vec![
                    events(),
                    rule(&["create"], &["coordination.k8s.io"], &["leases"]),
                    named_rule(
                        &["get", "update"],
                        &["coordination.k8s.io"],
                        &["leases"],
                        &["kube-controller-manager"],
                    ),
                    rule(&["create"], &[""], &["secrets", "serviceaccounts"]),
                    rule(&["delete"], &[""], &["secrets"]),
                    rule(
                        &["get"],
                        &[""],
                        &["namespaces", "secrets", "serviceaccounts", "configmaps"],
                    ),
                    rule(&["update"], &[""], &["secrets", "serviceaccounts"]),
                    rule(&["create"], &["authentication.k8s.io"], &["tokenreviews"]),
                    rule(
                        &["create"],
                        &["authorization.k8s.io"],
                        &["subjectaccessreviews"],
                    ),
                    rule(&["list", "watch"], &["*"], &["*"]),
                    rule(&["create"], &[""], &["serviceaccounts/token"]),
                ],
            ),
        ),
        (
            cr,
            cluster_role(
                "system:kube-scheduler",
                vec![
                    events(),
                    rule(&["create"], &["coordination.k8s.io"], &["leases"]),
                    named_rule(
                        &["get", "update"],
                        &["coordination.k8s.io"],
                        &["leases"],
                        &["kube-scheduler"],
                    ),
                    rule(READ, &[""], &["nodes"]),
                    rule(&["get", "list", "watch", "delete"], &[""], &["pods"]),
                    rule(&["create"], &[""], &["pods/binding", "bindings"]),
                    rule(&["patch", "update"], &[""], &["pods/status"]),
                    rule(READ, &[""], &["services", "replicationcontrollers"]),
                    rule(READ, &["apps", "extensions"], &["replicasets"]),
                    rule(READ, &["apps"], &["statefulsets"]),
                    rule(READ, &["policy"], &["poddisruptionbudgets"]),
                    rule(
                        READ,
                        &[""],
                        &["persistentvolumeclaims", "persistentvolumes"],
                    ),
                    rule(&["create"], &["authentication.k8s.io"], &["tokenreviews"]),
                    rule(
                        &["create"],
                        &["authorization.k8s.io"],
                        &["subjectaccessreviews"],
                    ),
                    rule(READ, &["storage.k8s.io"], &["csinodes"]),
                    rule(READ, &[""], &["namespaces"]),
                    rule(READ, &["storage.k8s.io"], &["csidrivers"]),
                    rule(READ, &["storage.k8s.io"], &["csistoragecapacities"]),
                ],
            ),
        ),
        (cr, cluster_role("system:node", node_rules())),
        (
            cr,
            cluster_role(
                "system:controller:certificate-controller",
                vec![
                    rule(
                        &["get", "list", "watch", "delete"],
                        &[certs],
                        &["certificatesigningrequests"],
                    ),
                    rule(
                        &["update"],
                        &[certs],
                        &[
                            "certificatesigningrequests/status",
                            "certificatesigningrequests/approval",
                        ],
                    ),
                    named_rule(
                        &["approve"],
                        &[certs],
                        &["signers"],
                        &["kubernetes.io/kube-apiserver-client-kubelet"],
                    ),
                    named_rule(
                        &["sign"],
                        &[certs],
                        &["signers"],
                        &[
                            "kubernetes.io/legacy-unknown",
                            "kubernetes.io/kube-apiserver-client",
                            "kubernetes.io/kube-apiserver-client-kubelet",
                            "kubernetes.io/kubelet-serving",
                        ],
                    ),
                    rule(
                        &["create"],
                        &["authorization.k8s.io"],
                        &["subjectaccessreviews"],
                    ),
                    events(),
                ],
            ),
        ),
        (
            crb,
            cluster_binding(
                "cluster-admin",
                "cluster-admin",
                vec![group("system:masters")],
            ),
        ),
        (
            crb,
            cluster_binding(
                "system:discovery",
                "system:discovery",
                vec![group("system:authenticated")],
            ),
        ),
        (
            crb,
            cluster_binding(
                "system:basic-user",
                "system:basic-user",
                vec![group("system:authenticated")],
            ),
        ),
        (
            crb,
            cluster_binding(
                "system:public-info-viewer",
                "system:public-info-viewer",
                vec![
                    group("system:authenticated"),
                    group("system:unauthenticated"),
                ],
            ),
        ),
        (
            crb,
            cluster_binding(
                "system:node-proxier",
                "system:node-proxier",
                vec![user("system:kube-proxy")],
            ),
        ),
        (
            crb,
            cluster_binding(
                "system:kube-controller-manager",
                "system:kube-controller-manager",
                vec![user("system:kube-controller-manager")],
            ),
        ),
        (
            crb,
            cluster_binding(
                "system:kube-scheduler",
                "system:kube-scheduler",
                vec![user("system:kube-scheduler")],
            ),
        ),
        (crb, cluster_binding("system:node", "system:node", vec![])),
        (
            crb,
            cluster_binding(
                "system:controller:certificate-controller",
                "system:controller:certificate-controller",
                vec![service_account("kube-system", "certificate-controller")],
            ),
        ),
        (
            r,
            role(
                "kube-system",
                "extension-apiserver-authentication-reader",
                vec![named_rule(
                    READ,
                    &[""],
                    &["configmaps"],
                    &["extension-apiserver-authentication"],
                )],
            ),
        ),
        (
            r,
            role(
                "kube-system",
                "system:controller:bootstrap-signer",
                vec![rule(READ, &[""], &["secrets"])],
            ),
        ),
        (
            r,
            role(
                "kube-system",
                "system:controller:token-cleaner",
                vec![
                    rule(&["get", "list", "watch", "delete"], &[""], &["secrets"]),
                    events(),
                ],
            ),
        ),
        (
            r,
            role(
                "kube-public",
                "system:controller:bootstrap-signer",
                vec![
                    rule(READ, &[""], &["configmaps"]),
                    named_rule(&["update"], &[""], &["configmaps"], &["cluster-info"]),
                    events(),
                ],
            ),
        ),
        (
            rb,
            role_binding(
                "kube-system",
                "system::extension-apiserver-authentication-reader",
                "extension-apiserver-authentication-reader",
                vec![
                    user("system:kube-controller-manager"),
                    user("system:kube-scheduler"),
                ],
            ),
        ),
        (
            rb,
            role_binding(
                "kube-system",
                "system:controller:bootstrap-signer",
                "system:controller:bootstrap-signer",
                vec![service_account("kube-system", "bootstrap-signer")],
            ),
        ),
        (
            rb,
            role_binding(
                "kube-system",
                "system:controller:token-cleaner",
                "system:controller:token-cleaner",
                vec![service_account("kube-system", "token-cleaner")],
            ),
        ),
        (
            rb,
            role_binding(
                "kube-public",
                "system:controller:bootstrap-signer",
                "system:controller:bootstrap-signer",
                vec![service_account("kube-system", "bootstrap-signer")],
            ),
        ),
    ]
}

/// The namespaces that exist from the start.
pub const NAMESPACES: &[&str] = &["default", "kube-node-lease", "kube-public", "kube-system"];
