//! Authorization: members of `system:masters` are allowed everything (upstream's privileged-group authorizer),
//! then the `--authorization-mode` authorizers in order (`Node`, `RBAC`, `AlwaysAllow`, `AlwaysDeny`); the first
//! that allows or denies decides, no opinion from all is a 403.
//!
//! RBAC is evaluated from the stored ClusterRoles, ClusterRoleBindings, Roles and RoleBindings (the built-in ones
//! among them, see [`super::policy`]) with upstream's matching rules (`*`, `resource/subresource`, `*/sub`,
//! resourceNames, nonResourceURLs with a trailing `*`). A binding to a missing role adds upstream's reason
//! (`RBAC: clusterrole.rbac.authorization.k8s.io "x" not found`) to the 403.
//!
//! The Node authorizer (users `system:node:<name>` in `system:nodes`) grants upstream's node rules; secrets,
//! configmaps, persistent volumes (claims) and service-account tokens only for objects related to the node's
//! pods (there are none here, so never); leases only `kube-node-lease/<name>`.

use super::authn::User;
use super::policy::node_rules;
use super::store::{Key, Txn};
use serde_json::Value;

/// What is asked.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Attributes {
    pub user: User,
    /// `get`, `list`, `create`, ... for resources; the lower-cased HTTP method for paths.
    pub verb: String,
    pub resource_request: bool,
    pub group: String,
    pub resource: String,
    pub subresource: String,
    pub namespace: String,
    pub name: String,
    pub path: String,
}

enum Decision {
    Allow,
    Deny(String),
    NoOpinion(String),
}

/// Whether `a` is allowed; the reason for a 403 (may be empty).
pub fn authorize(modes: &[String], txn: &Txn<'_>, a: &Attributes) -> Result<(), String> {
    if a.user.groups.iter().any(|g| g == "system:masters") {
        return Ok(());
    }
    let mut reasons = Vec::new();
    for mode in modes {
        let decision = match mode.as_str() {
            "Node" => node(txn, a),
            "RBAC" => rbac(txn, a),
            "AlwaysAllow" => Decision::Allow,
            "AlwaysDeny" => Decision::Deny("Everything is forbidden.".into()),
            _ => Decision::NoOpinion(String::new()),
        };
        match decision {
            Decision::Allow => return Ok(()),
            Decision::Deny(r) => return Err(r),
            Decision::NoOpinion(r) => {
                if !r.is_empty() {
                    reasons.push(r)
                }
            }
        }
    }
    Err(reasons.join("\n"))
}

/// upstream's forbiddenMessage: `User "x" cannot get resource "configmaps" in API group "" in the namespace
/// "kube-public"`, `... at the cluster scope`, or `User "x" cannot get path "/"`.
pub fn forbidden_message(a: &Attributes) -> String {
    if !a.resource_request {
        return format!("User {:?} cannot {} path {:?}", a.user.name, a.verb, a.path);
    }
    let resource = if a.subresource.is_empty() {
        a.resource.clone()
    } else {
        format!("{}/{}", a.resource, a.subresource)
    };
    if a.namespace.is_empty() {
        format!(
            "User {:?} cannot {} resource {resource:?} in API group {:?} at the cluster scope",
            a.user.name, a.verb, a.group
        )
    } else {
        format!(
            "User {:?} cannot {} resource {resource:?} in API group {:?} in the namespace {:?}",
            a.user.name, a.verb, a.group, a.namespace
        )
    }
}

fn strings<'a>(rule: &'a Value, field: &str) -> Vec<&'a str> {
    rule.get(field)
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

/// upstream's RuleAllows.
pub fn rule_allows(rule: &Value, a: &Attributes) -> bool {
    let verbs = strings(rule, "verbs");
    if !verbs.iter().any(|v| *v == "*" || *v == a.verb) {
        return false;
    }
    if !a.resource_request {
        return strings(rule, "nonResourceURLs").iter().any(|u| {
            *u == "*" || *u == a.path || u.strip_suffix('*').is_some_and(|p| a.path.starts_with(p))
        });
    }
    if !strings(rule, "apiGroups")
        .iter()
        .any(|g| *g == "*" || *g == a.group)
    {
        return false;
    }
    let combined = if a.subresource.is_empty() {
        a.resource.clone()
    } else {
        format!("{}/{}", a.resource, a.subresource)
    };
    let resource_ok = strings(rule, "resources").iter().any(|r| {
        *r == "*"
            || *r == combined
            || (!a.subresource.is_empty() && r.strip_prefix("*/") == Some(a.subresource.as_str()))
    });
    if !resource_ok {
        return false;
    }
    let names = strings(rule, "resourceNames");
    names.is_empty() || names.iter().any(|n| *n == a.name)
}

fn subject_applies(subject: &Value, user: &User, binding_namespace: &str) -> bool {
    let name = subject
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or_default();
    match subject
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or_default()
    {
        "User" => user.name == name,
        "Group" => user.groups.iter().any(|g| g == name),
        "ServiceAccount" => {
            let ns = subject
                .get("namespace")
                .and_then(Value::as_str)
                .filter(|n| !n.is_empty())
                .unwrap_or(binding_namespace);
            user.name == format!("system:serviceaccount:{ns}:{name}")
        }
        _ => false,
    }
}

fn binding_applies(binding: &Value, user: &User, namespace: &str) -> bool {
    binding
        .get("subjects")
        .and_then(Value::as_array)
        .is_some_and(|s| s.iter().any(|s| subject_applies(s, user, namespace)))
}

/// The rules that apply to `user` in `namespace` (cluster-wide ones when `namespace` is empty), and the errors
/// (bindings to missing roles).
pub fn rules_for(txn: &Txn<'_>, user: &User, namespace: &str) -> (Vec<Value>, Vec<String>) {
    let mut rules = Vec::new();
    let mut errors = Vec::new();
    let mut add_role = |kind: &str, role_namespace: &str, name: &str| {
        let (resource, ns, what) = match kind {
            "ClusterRole" => ("rbac.authorization.k8s.io/clusterroles", "", "clusterrole"),
            "Role" => ("rbac.authorization.k8s.io/roles", role_namespace, "role"),
            _ => return,
        };
        match txn.get(&Key::new(resource, ns, name)) {
            Some(role) => {
                if let Some(r) = role.get("rules").and_then(Value::as_array) {
                    rules.extend(r.iter().cloned());
                }
            }
            None => errors.push(format!(
                "{what}.rbac.authorization.k8s.io {name:?} not found"
            )),
        }
    };
    for binding in txn.list("rbac.authorization.k8s.io/clusterrolebindings", None) {
        if binding_applies(binding, user, "") {
            let kind = crate::common::str_at(binding, &["roleRef", "kind"]);
            if kind == "ClusterRole" {
                add_role(
                    kind,
                    "",
                    crate::common::str_at(binding, &["roleRef", "name"]),
                );
            }
        }
    }
    if !namespace.is_empty() {
        for binding in txn.list("rbac.authorization.k8s.io/rolebindings", Some(namespace)) {
            if binding_applies(binding, user, namespace) {
                add_role(
                    crate::common::str_at(binding, &["roleRef", "kind"]),
                    namespace,
                    crate::common::str_at(binding, &["roleRef", "name"]),
                );
            }
        }
    }
    (rules, errors)
}

fn rbac(txn: &Txn<'_>, a: &Attributes) -> Decision {
    let (rules, errors) = rules_for(txn, &a.user, &a.namespace);
    if rules.iter().any(|r| rule_allows(r, a)) {
        return Decision::Allow;
    }
    if errors.is_empty() {
        Decision::NoOpinion(String::new())
    } else if errors.len() == 1 {
        Decision::NoOpinion(format!("RBAC: {}", errors[0]))
    } else {
        Decision::NoOpinion(format!("RBAC: [{}]", errors.join(", ")))
    }
}

/// The node a user is, if it is one (upstream's NodeIdentifier).
pub fn node_name(user: &User) -> Option<&str> {
    let name = user.name.strip_prefix("system:node:")?;
    user.groups
        .iter()
        .any(|g| g == "system:nodes")
        .then_some(name)
}

fn node(_txn: &Txn<'_>, a: &Attributes) -> Decision {
    let Some(node) = node_name(&a.user) else {
        return Decision::NoOpinion(String::new());
    };
    if node.is_empty() {
        return Decision::NoOpinion("unknown node".into());
    }
    if a.resource_request {
        match (a.group.as_str(), a.resource.as_str()) {
            ("", "secrets" | "configmaps" | "persistentvolumeclaims" | "persistentvolumes")
            | ("storage.k8s.io", "volumeattachments")
            | ("resource.k8s.io", "resourceclaims") => {
                if a.verb != "get" {
                    return Decision::NoOpinion(
                        "can only get individual resources of this type".into(),
                    );
                }
                return Decision::NoOpinion(format!(
                    "no relationship found between node '{node}' and this object"
                ));
            }
            ("", "serviceaccounts") if a.subresource == "token" => {
                return Decision::NoOpinion(format!(
                    "no relationship found between node '{node}' and this object"
                ));
            }
            ("coordination.k8s.io", "leases") => {
                if !matches!(
                    a.verb.as_str(),
                    "get" | "create" | "update" | "patch" | "delete"
                ) {
                    return Decision::NoOpinion(
                        "can only get, create, update, patch, or delete a node lease".into(),
                    );
                }
                if a.namespace != "kube-node-lease" {
                    return Decision::NoOpinion(
                        "can only access leases in the \"kube-node-lease\" system namespace".into(),
                    );
                }
                if a.verb != "create" && a.name != node {
                    return Decision::NoOpinion(
                        "can only access node lease with the same name as the requesting node"
                            .into(),
                    );
                }
                return Decision::Allow;
            }
            _ => {}
        }
    }
    if node_rules().iter().any(|r| rule_allows(r, a)) {
        Decision::Allow
    } else {
        Decision::NoOpinion(String::new())
    }
}

/// upstream's escalation check (`ConfirmNoEscalation`): every rule of `servant` must be covered by some rule of
/// `owner`, taken apart into single verb/group/resource/name tuples (`*` only covered by `*`).
pub fn covers(owner: &[Value], servant: &[Value]) -> bool {
    servant.iter().all(|rule| {
        let verbs = strings(rule, "verbs");
        let urls = strings(rule, "nonResourceURLs");
        if !urls.is_empty() {
            return verbs.iter().all(|v| {
                urls.iter().all(|u| {
                    owner.iter().any(|o| {
                        strings(o, "verbs").iter().any(|ov| *ov == "*" || ov == v)
                            && strings(o, "nonResourceURLs").iter().any(|ou| {
                                *ou == "*"
                                    || ou == u
                                    || ou.strip_suffix('*').is_some_and(|p| u.starts_with(p))
                            })
                    })
                })
            });
        }
        let groups = strings(rule, "apiGroups");
        let resources = strings(rule, "resources");
        let names = strings(rule, "resourceNames");
        let names: Vec<&str> = if names.is_empty() { vec![""] } else { names };
        verbs.iter().all(|v| {
            groups.iter().all(|g| {
                resources.iter().all(|r| {
                    names.iter().all(|n| {
                        owner.iter().any(|o| {
                            let on = strings(o, "resourceNames");
                            strings(o, "verbs").iter().any(|ov| *ov == "*" || ov == v)
                                && strings(o, "apiGroups")
                                    .iter()
                                    .any(|og| *og == "*" || og == g)
                                && strings(o, "resources").iter().any(|or| {
                                    *or == "*"
                                        || or == r
                                        || (or.starts_with("*/")
                                            && r.split_once('/').map(|x| x.1)
                                                == or.strip_prefix("*/"))
                                })
                                && (on.is_empty() || (!n.is_empty() && on.contains(n)))
                        })
                    })
                })
            })
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn attrs(verb: &str, group: &str, resource: &str, sub: &str, name: &str) -> Attributes {
        Attributes {
            verb: verb.into(),
            resource_request: true,
            group: group.into(),
            resource: resource.into(),
            subresource: sub.into(),
            name: name.into(),
            ..Attributes::default()
        }
    }

    #[test]
    fn rules_match_like_upstream() {
        let r = json!({"verbs": ["get"], "apiGroups": [""], "resources": ["configmaps"], "resourceNames": ["cluster-info"]});
        assert!(rule_allows(
            &r,
            &attrs("get", "", "configmaps", "", "cluster-info")
        ));
        assert!(!rule_allows(
            &r,
            &attrs("get", "", "configmaps", "", "other")
        ));
        assert!(!rule_allows(&r, &attrs("list", "", "configmaps", "", "")));
        assert!(!rule_allows(
            &r,
            &attrs("get", "apps", "configmaps", "", "cluster-info")
        ));
        let sub = json!({"verbs": ["create"], "apiGroups": ["certificates.k8s.io"], "resources": ["certificatesigningrequests/nodeclient"]});
        assert!(rule_allows(
            &sub,
            &attrs(
                "create",
                "certificates.k8s.io",
                "certificatesigningrequests",
                "nodeclient",
                ""
            )
        ));
        assert!(!rule_allows(
            &sub,
            &attrs(
                "create",
                "certificates.k8s.io",
                "certificatesigningrequests",
                "",
                ""
            )
        ));
        let star = json!({"verbs": ["*"], "apiGroups": ["*"], "resources": ["*/status"]});
        assert!(rule_allows(
            &star,
            &attrs("update", "", "nodes", "status", "x")
        ));
        assert!(!rule_allows(&star, &attrs("update", "", "nodes", "", "x")));
        let urls = json!({"verbs": ["get"], "nonResourceURLs": ["/api", "/api/*"]});
        let path = |p: &str| Attributes {
            verb: "get".into(),
            path: p.into(),
            ..Attributes::default()
        };
        assert!(rule_allows(&urls, &path("/api")));
        assert!(rule_allows(&urls, &path("/api/v1")));
        assert!(!rule_allows(&urls, &path("/apis")));
    }

    #[test]
    fn messages_follow_upstream() {
        let mut a = attrs("get", "", "configmaps", "", "cluster-info");
        a.user = User::anonymous();
        a.namespace = "kube-public".into();
        assert_eq!(
            forbidden_message(&a),
            "User \"system:anonymous\" cannot get resource \"configmaps\" in API group \"\" in the namespace \"kube-public\""
        );
        a.namespace.clear();
        assert!(forbidden_message(&a).ends_with("at the cluster scope"));
        let p = Attributes {
            user: User::anonymous(),
            verb: "get".into(),
            path: "/".into(),
            ..Attributes::default()
        };
        assert_eq!(
            forbidden_message(&p),
            "User \"system:anonymous\" cannot get path \"/\""
        );
    }

    #[test]
    fn escalation_needs_covering_rules() {
        let admin = vec![
            json!({"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]}),
            json!({"verbs": ["*"], "nonResourceURLs": ["*"]}),
        ];
        let role = vec![
            json!({"verbs": ["get"], "apiGroups": [""], "resources": ["configmaps"], "resourceNames": ["cluster-info"]}),
        ];
        assert!(covers(&admin, &role));
        let reader =
            vec![json!({"verbs": ["get", "list"], "apiGroups": [""], "resources": ["configmaps"]})];
        assert!(covers(&reader, &role));
        assert!(!covers(&role, &reader));
        assert!(!covers(&reader, &admin));
    }

    #[test]
    fn nodes_are_recognised() {
        let mut u = User {
            name: "system:node:n1".into(),
            groups: vec!["system:nodes".into()],
            ..User::default()
        };
        assert_eq!(node_name(&u), Some("n1"));
        u.groups.clear();
        assert_eq!(node_name(&u), None);
    }
}
