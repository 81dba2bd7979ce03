//! The resources the stand-in serves, and the discovery documents made from them (legacy, non-aggregated
//! discovery: `/api`, `/api/v1`, `/apis`, `/apis/<group>`, `/apis/<group>/<version>`).

use serde_json::{Value, json};

/// How a resource is served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Storage {
    /// Objects kept in the store (get, list, create, update, patch, delete).
    Stored,
    /// A review: `create` only, answered and not kept.
    Review,
}

/// One resource.
#[derive(Debug)]
pub struct Resource {
    pub group: &'static str,
    pub version: &'static str,
    pub name: &'static str,
    pub singular: &'static str,
    pub kind: &'static str,
    pub namespaced: bool,
    pub short_names: &'static [&'static str],
    /// Subresources served, with their verbs.
    pub subresources: &'static [(&'static str, &'static [&'static str])],
    pub storage: Storage,
}

const RW: &[&str] = &["create", "delete", "get", "list", "patch", "update"];
const UPDATE: &[&str] = &["get", "patch", "update"];

impl Resource {
    /// The store key's resource part: `configmaps`, `rbac.authorization.k8s.io/clusterroles`.
    pub fn key(&self) -> String {
        if self.group.is_empty() {
            self.name.to_string()
        } else {
            format!("{}/{}", self.group, self.name)
        }
    }

    /// `v1`, `rbac.authorization.k8s.io/v1`.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_string()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// The qualified resource in messages: `configmaps`, `clusterrolebindings.rbac.authorization.k8s.io`.
    pub fn qualified(&self) -> String {
        if self.group.is_empty() {
            self.name.to_string()
        } else {
            format!("{}.{}", self.name, self.group)
        }
    }

    /// The qualified kind in validation messages: `ConfigMap`, `CertificateSigningRequest.certificates.k8s.io`.
    pub fn qualified_kind(&self) -> String {
        if self.group.is_empty() {
            self.kind.to_string()
        } else {
            format!("{}.{}", self.kind, self.group)
        }
    }

    fn verbs(&self) -> &'static [&'static str] {
        match self.storage {
            Storage::Stored => RW,
            Storage::Review => &["create"],
        }
    }

    /// Whether `sub` is a subresource of this resource.
    pub fn has_subresource(&self, sub: &str) -> bool {
        self.subresources.iter().any(|(s, _)| *s == sub)
    }
}

macro_rules! resource {
    ($group:expr, $name:expr, $singular:expr, $kind:expr, $ns:expr, $short:expr, $subs:expr, $storage:expr) => {
        Resource {
            group: $group,
            version: "v1",
            name: $name,
            singular: $singular,
            kind: $kind,
            namespaced: $ns,
            short_names: $short,
            subresources: $subs,
            storage: $storage,
        }
    };
}

pub const RBAC: &str = "rbac.authorization.k8s.io";
pub const CERTIFICATES: &str = "certificates.k8s.io";
pub const AUTHENTICATION: &str = "authentication.k8s.io";
pub const AUTHORIZATION: &str = "authorization.k8s.io";
pub const DISCOVERY: &str = "discovery.k8s.io";
pub const COORDINATION: &str = "coordination.k8s.io";

/// Every resource served.
pub static RESOURCES: &[Resource] = &[
    resource!(
        "",
        "namespaces",
        "namespace",
        "Namespace",
        false,
        &["ns"],
        &[("status", UPDATE)],
        Storage::Stored
    ),
    resource!(
        "",
        "secrets",
        "secret",
        "Secret",
        true,
        &[],
        &[],
        Storage::Stored
    ),
    resource!(
        "",
        "configmaps",
        "configmap",
        "ConfigMap",
        true,
        &["cm"],
        &[],
        Storage::Stored
    ),
    resource!(
        "",
        "nodes",
        "node",
        "Node",
        false,
        &["no"],
        &[("status", UPDATE)],
        Storage::Stored
    ),
    resource!(
        "",
        "services",
        "service",
        "Service",
        true,
        &["svc"],
        &[("status", UPDATE)],
        Storage::Stored
    ),
    resource!(
        "",
        "endpoints",
        "endpoints",
        "Endpoints",
        true,
        &["ep"],
        &[],
        Storage::Stored
    ),
    resource!(
        "",
        "events",
        "event",
        "Event",
        true,
        &["ev"],
        &[],
        Storage::Stored
    ),
    resource!(
        "",
        "serviceaccounts",
        "serviceaccount",
        "ServiceAccount",
        true,
        &["sa"],
        &[("token", &["create"])],
        Storage::Stored
    ),
    resource!(
        RBAC,
        "clusterroles",
        "clusterrole",
        "ClusterRole",
        false,
        &[],
        &[],
        Storage::Stored
    ),
    resource!(
        RBAC,
        "clusterrolebindings",
        "clusterrolebinding",
        "ClusterRoleBinding",
        false,
        &[],
        &[],
        Storage::Stored
    ),
    resource!(
        RBAC,
        "roles",
        "role",
        "Role",
        true,
        &[],
        &[],
        Storage::Stored
    ),
    resource!(
        RBAC,
        "rolebindings",
        "rolebinding",
        "RoleBinding",
        true,
        &[],
        &[],
        Storage::Stored
    ),
    resource!(
        CERTIFICATES,
        "certificatesigningrequests",
        "certificatesigningrequest",
        "CertificateSigningRequest",
        false,
        &["csr"],
        &[("approval", UPDATE), ("status", UPDATE)],
        Storage::Stored
    ),
    resource!(
        AUTHENTICATION,
        "selfsubjectreviews",
        "selfsubjectreview",
        "SelfSubjectReview",
        false,
        &[],
        &[],
        Storage::Review
    ),
    resource!(
        AUTHENTICATION,
        "tokenreviews",
        "tokenreview",
        "TokenReview",
        false,
        &[],
        &[],
        Storage::Review
    ),
    resource!(
        AUTHORIZATION,
        "subjectaccessreviews",
        "subjectaccessreview",
        "SubjectAccessReview",
        false,
        &[],
        &[],
        Storage::Review
    ),
    resource!(
        AUTHORIZATION,
        "selfsubjectaccessreviews",
        "selfsubjectaccessreview",
        "SelfSubjectAccessReview",
        false,
        &[],
        &[],
        Storage::Review
    ),
    resource!(
        DISCOVERY,
        "endpointslices",
        "endpointslice",
        "EndpointSlice",
        true,
        &[],
        &[],
        Storage::Stored
    ),
    resource!(
        COORDINATION,
        "leases",
        "lease",
        "Lease",
        true,
        &[],
        &[],
        Storage::Stored
    ),
];

/// The resource `name` in `group`/`version`.
pub fn find(group: &str, version: &str, name: &str) -> Option<&'static Resource> {
    RESOURCES
        .iter()
        .find(|r| r.group == group && r.version == version && r.name == name)
}

/// The resource of a kind.
#[cfg(test)]
pub fn by_kind(group: &str, kind: &str) -> Option<&'static Resource> {
    RESOURCES
        .iter()
        .find(|r| r.group == group && r.kind == kind)
}

/// The groups served under `/apis`, in discovery order.
pub fn groups() -> Vec<&'static str> {
    let mut out: Vec<&'static str> = Vec::new();
    for r in RESOURCES {
        if !r.group.is_empty() && !out.contains(&r.group) {
            out.push(r.group);
        }
    }
    out
}

/// `GET /api`.
pub fn api_versions(server_address: &str) -> Value {
    json!({
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}],
    })
}

fn group_doc(group: &str) -> Value {
    let gv = json!({"groupVersion": format!("{group}/v1"), "version": "v1"});
    json!({
        "name": group,
        "versions": [gv.clone()],
        "preferredVersion": gv,
    })
}

/// `GET /apis`.
pub fn api_group_list() -> Value {
    let groups: Vec<Value> = groups().into_iter().map(group_doc).collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

/// `GET /apis/<group>`, if served.
pub fn api_group(group: &str) -> Option<Value> {
    if !groups().contains(&group) {
        return None;
    }
    let mut doc = group_doc(group);
    doc["kind"] = json!("APIGroup");
    doc["apiVersion"] = json!("v1");
    Some(doc)
}

/// `GET /api/v1` (group `""`) or `/apis/<group>/<version>`, if served.
pub fn api_resource_list(group: &str, version: &str) -> Option<Value> {
    let mut resources = Vec::new();
    for r in RESOURCES
        .iter()
        .filter(|r| r.group == group && r.version == version)
    {
        let mut entry = json!({
            "name": r.name,
            "singularName": r.singular,
            "namespaced": r.namespaced,
            "kind": r.kind,
            "verbs": r.verbs(),
        });
        if !r.short_names.is_empty() {
            entry["shortNames"] = json!(r.short_names);
        }
        resources.push(entry);
        for (sub, verbs) in r.subresources {
            let kind = match (r.name, *sub) {
                ("serviceaccounts", "token") => "TokenRequest",
                _ => r.kind,
            };
            let mut entry = json!({
                "name": format!("{}/{sub}", r.name),
                "singularName": "",
                "namespaced": r.namespaced,
                "kind": kind,
                "verbs": verbs,
            });
            if kind == "TokenRequest" {
                entry["group"] = json!(AUTHENTICATION);
                entry["version"] = json!("v1");
            }
            resources.push(entry);
        }
    }
    if resources.is_empty() {
        return None;
    }
    let group_version = if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    };
    Some(json!({
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": group_version,
        "resources": resources,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_is_consistent() {
        for r in RESOURCES {
            assert_eq!(
                find(r.group, r.version, r.name).map(|f| f.kind),
                Some(r.kind)
            );
            assert_eq!(by_kind(r.group, r.kind).map(|f| f.name), Some(r.name));
        }
        assert_eq!(
            find("", "v1", "configmaps").unwrap().qualified(),
            "configmaps"
        );
        assert_eq!(
            find(RBAC, "v1", "clusterrolebindings").unwrap().qualified(),
            "clusterrolebindings.rbac.authorization.k8s.io"
        );
    }

    #[test]
    fn discovery_lists_every_group_and_resource() {
        let groups = api_group_list();
        let names: Vec<&str> = groups["groups"]
            .as_array()
            .unwrap()
            .iter()
            .map(|g| g["name"].as_str().unwrap())
            .collect();
        assert!(
            names.contains(&RBAC) && names.contains(&CERTIFICATES),
            "{names:?}"
        );
        let core = api_resource_list("", "v1").unwrap();
        let names: Vec<&str> = core["resources"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["name"].as_str().unwrap())
            .collect();
        assert!(
            names.contains(&"nodes/status") && names.contains(&"secrets"),
            "{names:?}"
        );
        assert!(api_resource_list("apps", "v1").is_none());
        assert!(api_group("apps").is_none());
    }
}
