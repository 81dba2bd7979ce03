//! The cluster DNS a master deploys — pure: CoreDNS's API objects as kubeadm's `addon/coredns` phase makes them
//! (cmd/kubeadm/app/phases/addons/dns/manifests.go, Kubernetes 1.37), rendered as JSON for the image the node
//! image bakes. The edge that creates them is `k8s_agent::edge::join` (after the join objects).
//!
//! | object | what |
//! |---|---|
//! | ServiceAccount `kube-system/coredns` | CoreDNS's identity |
//! | ClusterRole `system:coredns` | list/watch endpoints, services, pods, namespaces, endpointslices |
//! | ClusterRoleBinding `system:coredns` | the role → the service account |
//! | ConfigMap `kube-system/coredns` | the Corefile: `cluster.local` from the API, the rest forwarded to the node's resolver |
//! | Deployment `kube-system/coredns` | 2 replicas spread over nodes, kubeadm's probes, resources and security context |
//! | Service `kube-system/kube-dns` | [`DNS_SERVICE_IP`] (kubelet's `clusterDNS`), ports 53/UDP, 53/TCP, 9153/TCP |
//!
//! One difference from kubeadm: upstream's image gives `/coredns` the file capability `cap_net_bind_service`, and
//! the image built here has no file capabilities (imagebuilder's OCI writer sets no extended attributes), so the pod
//! lowers its own network namespace's unprivileged port floor to 53 instead (`net.ipv4.ip_unprivileged_port_start`,
//! a namespaced sysctl kubelet allows by default). It still runs as user 65532 with every capability dropped except
//! `NET_BIND_SERVICE`, and a read-only root.
//!
//! Objects that exist already are left as they are (an operator's Corefile survives a master's reboot); kubeadm's
//! phase would update them.

use serde_json::{Value, json};

/// The `kube-dns` Service's address: the 10th of the service range (10.96.0.0/12), kubelet's `clusterDNS`
/// (files/etc/kubernetes/kubelet/config.yaml).
pub const DNS_SERVICE_IP: &str = "10.96.0.10";
/// The cluster domain (kubelet's `clusterDomain`).
pub const CLUSTER_DOMAIN: &str = "cluster.local";
/// The name the image lock gives CoreDNS's image (the artifact's name).
pub const COREDNS_ARTIFACT: &str = "coredns";

/// One object to create: where to POST it, where it lives, and its JSON.
#[derive(Debug, Clone, PartialEq)]
pub struct AddonObject {
    /// `Kind namespace/name` (status).
    pub describe: String,
    /// The collection to POST to, e.g. `/apis/apps/v1/namespaces/kube-system/deployments`.
    pub collection: String,
    /// The object itself, e.g. `/apis/apps/v1/namespaces/kube-system/deployments/coredns`.
    pub path: String,
    pub body: Value,
}

fn object(
    api: &str,
    kind: &str,
    plural: &str,
    namespace: Option<&str>,
    body: Value,
) -> AddonObject {
    let name = body["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let prefix = if api == "v1" {
        "/api/v1".to_string()
    } else {
        format!("/apis/{api}")
    };
    let collection = match namespace {
        Some(ns) => format!("{prefix}/namespaces/{ns}/{plural}"),
        None => format!("{prefix}/{plural}"),
    };
    AddonObject {
        describe: match namespace {
            Some(ns) => format!("{kind} {ns}/{name}"),
            None => format!("{kind} {name}"),
        },
        path: format!("{collection}/{name}"),
        collection,
        body,
    }
}

/// The Corefile kubeadm writes for `domain`.
pub fn corefile(domain: &str) -> String {
    format!(
        ".:53 {{\n    errors\n    health {{\n       lameduck 5s\n    }}\n    ready\n    kubernetes {domain} in-addr.arpa ip6.arpa {{\n       pods insecure\n       fallthrough in-addr.arpa ip6.arpa\n       ttl 30\n    }}\n    prometheus :9153\n    forward . /etc/resolv.conf {{\n       max_concurrent 1000\n    }}\n    cache 30 {{\n       disable success {domain}\n       disable denial {domain}\n    }}\n    loop\n    reload\n    loadbalance\n}}\n"
    )
}

/// CoreDNS's objects, in the order they are created, for the image `image` (a reference the node image bakes).
pub fn coredns_objects(image: &str) -> Vec<AddonObject> {
    let labels = json!({"k8s-app": "kube-dns"});
    vec![
        object(
            "v1",
            "ServiceAccount",
            "serviceaccounts",
            Some("kube-system"),
            json!({
                "apiVersion": "v1", "kind": "ServiceAccount",
                "metadata": {"name": "coredns", "namespace": "kube-system"}
            }),
        ),
        object(
            "rbac.authorization.k8s.io/v1",
            "ClusterRole",
            "clusterroles",
            None,
            json!({
                "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
                "metadata": {"name": "system:coredns"},
                "rules": [
                    {"apiGroups": [""], "resources": ["endpoints", "services", "pods", "namespaces"],
                     "verbs": ["list", "watch"]},
                    {"apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"],
                     "verbs": ["list", "watch"]}
                ]
            }),
        ),
        object(
            "rbac.authorization.k8s.io/v1",
            "ClusterRoleBinding",
            "clusterrolebindings",
            None,
            json!({
                "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
                "metadata": {"name": "system:coredns"},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                            "name": "system:coredns"},
                "subjects": [{"kind": "ServiceAccount", "name": "coredns", "namespace": "kube-system"}]
            }),
        ),
        object(
            "v1",
            "ConfigMap",
            "configmaps",
            Some("kube-system"),
            json!({
                "apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": "coredns", "namespace": "kube-system"},
                "data": {"Corefile": corefile(CLUSTER_DOMAIN)}
            }),
        ),
        object(
            "apps/v1",
            "Deployment",
            "deployments",
            Some("kube-system"),
            json!({
                "apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": {"name": "coredns", "namespace": "kube-system", "labels": labels},
                "spec": {
                    "replicas": 2,
                    "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1}},
                    "selector": {"matchLabels": labels},
                    "template": {
                        "metadata": {"labels": labels},
                        "spec": {
                            "priorityClassName": "system-cluster-critical",
                            "serviceAccountName": "coredns",
                            "affinity": {"podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [{
                                "weight": 100,
                                "podAffinityTerm": {
                                    "labelSelector": {"matchExpressions": [
                                        {"key": "k8s-app", "operator": "In", "values": ["kube-dns"]}]},
                                    "topologyKey": "kubernetes.io/hostname"
                                }
                            }]}},
                            "tolerations": [
                                {"key": "CriticalAddonsOnly", "operator": "Exists"},
                                {"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}
                            ],
                            "nodeSelector": {"kubernetes.io/os": "linux"},
                            "securityContext": {"sysctls": [
                                {"name": "net.ipv4.ip_unprivileged_port_start", "value": "53"}
                            ]},
                            "containers": [{
                                "name": "coredns",
                                "image": image,
                                "imagePullPolicy": "IfNotPresent",
                                "resources": {"limits": {"memory": "170Mi"},
                                              "requests": {"cpu": "100m", "memory": "70Mi"}},
                                "args": ["-conf", "/etc/coredns/Corefile"],
                                "volumeMounts": [{"name": "config-volume", "mountPath": "/etc/coredns",
                                                  "readOnly": true}],
                                "ports": [
                                    {"containerPort": 53, "name": "dns", "protocol": "UDP"},
                                    {"containerPort": 53, "name": "dns-tcp", "protocol": "TCP"},
                                    {"containerPort": 9153, "name": "metrics", "protocol": "TCP"},
                                    {"containerPort": 8080, "name": "liveness-probe", "protocol": "TCP"},
                                    {"containerPort": 8181, "name": "readiness-probe", "protocol": "TCP"}
                                ],
                                "livenessProbe": {
                                    "httpGet": {"path": "/health", "port": "liveness-probe", "scheme": "HTTP"},
                                    "initialDelaySeconds": 60, "timeoutSeconds": 5,
                                    "successThreshold": 1, "failureThreshold": 5
                                },
                                "readinessProbe": {
                                    "httpGet": {"path": "/ready", "port": "readiness-probe", "scheme": "HTTP"}
                                },
                                "securityContext": {
                                    "allowPrivilegeEscalation": false,
                                    "capabilities": {"add": ["NET_BIND_SERVICE"], "drop": ["ALL"]},
                                    "readOnlyRootFilesystem": true
                                }
                            }],
                            "dnsPolicy": "Default",
                            "volumes": [{"name": "config-volume", "configMap": {
                                "name": "coredns", "items": [{"key": "Corefile", "path": "Corefile"}]
                            }}]
                        }
                    }
                }
            }),
        ),
        object(
            "v1",
            "Service",
            "services",
            Some("kube-system"),
            json!({
                "apiVersion": "v1", "kind": "Service",
                "metadata": {
                    "name": "kube-dns", "namespace": "kube-system",
                    "labels": {"k8s-app": "kube-dns", "kubernetes.io/cluster-service": "true",
                               "kubernetes.io/name": "CoreDNS"},
                    "annotations": {"prometheus.io/port": "9153", "prometheus.io/scrape": "true"}
                },
                "spec": {
                    "selector": labels,
                    "clusterIP": DNS_SERVICE_IP,
                    "ports": [
                        {"name": "dns", "port": 53, "protocol": "UDP", "targetPort": 53},
                        {"name": "dns-tcp", "port": 53, "protocol": "TCP", "targetPort": 53},
                        {"name": "metrics", "port": 9153, "protocol": "TCP", "targetPort": 9153}
                    ]
                }
            }),
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn coredns_is_deployed_as_kubeadm_does_with_the_baked_image() {
        let objects = coredns_objects("localhost/k8s-image/coredns:v1.14.6");
        let names: Vec<&str> = objects.iter().map(|o| o.describe.as_str()).collect();
        assert_eq!(
            names,
            [
                "ServiceAccount kube-system/coredns",
                "ClusterRole system:coredns",
                "ClusterRoleBinding system:coredns",
                "ConfigMap kube-system/coredns",
                "Deployment kube-system/coredns",
                "Service kube-system/kube-dns"
            ]
        );
        let deployment = &objects[4];
        assert_eq!(
            deployment.collection,
            "/apis/apps/v1/namespaces/kube-system/deployments"
        );
        assert_eq!(
            deployment.path,
            "/apis/apps/v1/namespaces/kube-system/deployments/coredns"
        );
        let container = &deployment.body["spec"]["template"]["spec"]["containers"][0];
        assert_eq!(container["image"], "localhost/k8s-image/coredns:v1.14.6");
        assert_eq!(
            container["securityContext"]["capabilities"]["drop"][0],
            "ALL"
        );
        let service = &objects[5];
        assert_eq!(
            service.collection,
            "/api/v1/namespaces/kube-system/services"
        );
        assert_eq!(service.body["spec"]["clusterIP"], DNS_SERVICE_IP);
        assert_eq!(
            objects[1].path,
            "/apis/rbac.authorization.k8s.io/v1/clusterroles/system:coredns"
        );
    }

    #[test]
    fn the_corefile_serves_the_cluster_domain_and_forwards_the_rest() {
        let text = corefile("cluster.local");
        assert!(text.contains("kubernetes cluster.local in-addr.arpa ip6.arpa {"));
        assert!(text.contains("forward . /etc/resolv.conf"));
        assert!(text.contains("disable success cluster.local"));
        assert!(text.starts_with(".:53 {") && text.ends_with("}\n"));
    }
}
