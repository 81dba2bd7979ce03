//! What the API server does per kind beyond storing: defaulting and the registry strategies (what a create or an
//! update may change), validation (422 Invalid with upstream's field paths), and admission (403).
//!
//! | kind | on create | on update | validated |
//! |---|---|---|---|
//! | Namespace | `status.phase: Active`, `spec.finalizers: [kubernetes]`, label `kubernetes.io/metadata.name` | status kept (main), spec kept (/status) | name is a DNS label |
//! | Secret | `stringData` merged into `data` (base64), `type` defaults to `Opaque` | `type` immutable | keys, base64 values, 1 MiB |
//! | ConfigMap | | | keys, string values, `binaryData` base64, no key in both |
//! | Node | | main keeps `status`, /status keeps everything but `status` | |
//! | CertificateSigningRequest | `spec.username/uid/groups/extra` = the requester, `status` cleared | main keeps spec and status; /approval takes only conditions; /status keeps spec and Approved/Denied | `spec.request` a signed PEM CSR, `signerName`, `usages` (known, unique), `expirationSeconds` ≥ 600, conditions (types, statuses, Approved xor Denied, never removed), `status.certificate` PEM certificates set once |
//! | Role, ClusterRole | | | rules: verbs, groups+resources or URLs (cluster-scoped only) |
//! | RoleBinding, ClusterRoleBinding | | `roleRef` immutable | roleRef (group, kind, name), subjects (kind, name, apiGroup, SA namespace) |
//!
//! Admission: NodeRestriction (when enabled) keeps a node to its own Node; CertificateApproval and
//! CertificateSigning require `approve` / `sign` on `signers/<signerName>` (or `<domain>/*`) for /approval and for
//! setting `status.certificate`; CertificateSubjectRestriction refuses `system:masters` client certificates; RBAC
//! escalation prevention: a role's rules must be covered by the creator's, a binding needs `bind` on the role or
//! its rules (members of `system:masters` are exempt, as upstream).

use super::authn::User;
use super::authz::{self, Attributes};
use super::resources::{CERTIFICATES, RBAC, Resource};
use super::status::{self, ApiError, FieldError};
use super::store::{Key, Txn};
use crate::common::{pki, str_at, time};
use base64::Engine as _;
use serde_json::{Map, Value, json};
use x509_parser::prelude::*;

/// What is being done.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Create,
    Update,
    Delete,
}

fn b64decode(s: &str) -> Option<Vec<u8>> {
    base64::engine::general_purpose::STANDARD.decode(s).ok()
}

/// RFC 1123 subdomain.
pub fn is_dns_subdomain(s: &str) -> bool {
    s.len() <= 253 && !s.is_empty() && s.split('.').all(|l| is_dns_label_chars(l) && l.len() <= 63)
}

fn is_dns_label_chars(l: &str) -> bool {
    let b = l.as_bytes();
    !b.is_empty()
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b[0] != b'-'
        && b[b.len() - 1] != b'-'
}

/// RFC 1123 label.
pub fn is_dns_label(s: &str) -> bool {
    s.len() <= 63 && is_dns_label_chars(s)
}

/// A name usable in a URL path segment.
pub fn is_path_segment(s: &str) -> bool {
    !s.is_empty() && s != "." && s != ".." && !s.contains('/') && !s.contains('%')
}

fn is_config_key(k: &str) -> bool {
    !k.is_empty()
        && k.len() <= 253
        && k.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
        && k != "."
        && k != ".."
}

const SUBDOMAIN_MSG: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";
const LABEL_MSG: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')";
const KEY_MSG: &str = "a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')";

/// The checks on `metadata.name` for a kind.
pub fn validate_name(resource: &Resource, name: &str) -> Vec<FieldError> {
    if name.is_empty() {
        return vec![FieldError::required(
            "metadata.name",
            "name or generateName is required",
        )];
    }
    if !is_path_segment(name) {
        return vec![FieldError::invalid(
            "metadata.name",
            name,
            "may not contain '/' or '%' and may not be '.' or '..'",
        )];
    }
    let ok = match (resource.group, resource.name) {
        ("", "namespaces") => {
            if !is_dns_label(name) {
                return vec![FieldError::invalid("metadata.name", name, LABEL_MSG)];
            }
            true
        }
        (RBAC, _) | (CERTIFICATES, _) => true,
        _ => is_dns_subdomain(name),
    };
    if ok {
        Vec::new()
    } else {
        vec![FieldError::invalid("metadata.name", name, SUBDOMAIN_MSG)]
    }
}

/// Checks that `metadata.labels` and `metadata.annotations` are maps of strings (400 otherwise, as a decode error).
pub fn check_metadata_types(object: &Value) -> Result<(), ApiError> {
    for field in ["labels", "annotations"] {
        if let Some(v) = object.pointer(&format!("/metadata/{field}")) {
            let ok = v.is_null()
                || v.as_object()
                    .is_some_and(|m| m.values().all(Value::is_string));
            if !ok {
                return Err(status::bad_request(format!(
                    "json: cannot unmarshal metadata.{field}: it must be a map of strings"
                )));
            }
        }
    }
    Ok(())
}

/// Defaulting and the create strategy.
pub fn prepare_create(
    resource: &Resource,
    object: &mut Value,
    user: &User,
) -> Result<(), ApiError> {
    match (resource.group, resource.name) {
        ("", "namespaces") => {
            let name = str_at(object, &["metadata", "name"]).to_string();
            object["metadata"]["labels"]
                .as_object_mut()
                .map(|l| l.insert("kubernetes.io/metadata.name".into(), json!(name.clone())));
            if object
                .pointer("/metadata/labels")
                .is_none_or(Value::is_null)
            {
                object["metadata"]["labels"] = json!({"kubernetes.io/metadata.name": name});
            }
            if object.pointer("/spec/finalizers").is_none() {
                object["spec"] = json!({"finalizers": ["kubernetes"]});
            }
            object["status"] = json!({"phase": "Active"});
        }
        ("", "secrets") => secret_defaults(object)?,
        ("", "configmaps") => configmap_types(object)?,
        (RBAC, "rolebindings" | "clusterrolebindings") => binding_defaults(object),
        (CERTIFICATES, "certificatesigningrequests") => {
            if !object.get("spec").is_some_and(Value::is_object) {
                object["spec"] = json!({});
            }
            let spec = &mut object["spec"];
            spec["username"] = json!(user.name);
            spec["groups"] = json!(user.groups);
            match user.uid.is_empty() {
                true => {
                    if let Some(m) = spec.as_object_mut() {
                        m.remove("uid");
                    }
                }
                false => spec["uid"] = json!(user.uid),
            }
            match user.extra.is_empty() {
                true => {
                    if let Some(m) = spec.as_object_mut() {
                        m.remove("extra");
                    }
                }
                false => spec["extra"] = json!(user.extra),
            }
            object["status"] = json!({});
        }
        _ => {}
    }
    Ok(())
}

fn secret_defaults(object: &mut Value) -> Result<(), ApiError> {
    if let Some(string_data) = object.get("stringData").cloned() {
        let Some(map) = string_data.as_object() else {
            return Err(status::bad_request(
                "json: cannot unmarshal stringData: it must be a map of strings",
            ));
        };
        if !object.get("data").is_some_and(Value::is_object) {
            object["data"] = json!({});
        }
        for (k, v) in map {
            let Some(text) = v.as_str() else {
                return Err(status::bad_request(format!(
                    "json: cannot unmarshal stringData[{k}]: not a string"
                )));
            };
            object["data"][k] = json!(base64::engine::general_purpose::STANDARD.encode(text));
        }
        if let Some(m) = object.as_object_mut() {
            m.remove("stringData");
        }
    }
    if let Some(data) = object.get("data") {
        let ok = data.is_null()
            || data
                .as_object()
                .is_some_and(|m| m.values().all(|v| v.as_str().and_then(b64decode).is_some()));
        if !ok {
            return Err(status::bad_request(
                "json: cannot unmarshal data: every Secret data value must be a base64 string",
            ));
        }
    }
    if str_at(object, &["type"]).is_empty() {
        object["type"] = json!("Opaque");
    }
    Ok(())
}

/// rbac/v1 defaulting: an empty `roleRef.apiGroup`, and an empty `apiGroup` of a User or Group subject, is
/// rbac.authorization.k8s.io.
fn binding_defaults(object: &mut Value) {
    if let Some(role_ref) = object.get_mut("roleRef").and_then(Value::as_object_mut)
        && role_ref
            .get("apiGroup")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .is_empty()
    {
        role_ref.insert("apiGroup".into(), json!(RBAC));
    }
    if let Some(subjects) = object.get_mut("subjects").and_then(Value::as_array_mut) {
        for s in subjects.iter_mut() {
            let kind = str_at(s, &["kind"]).to_string();
            if let Some(m) = s.as_object_mut()
                && matches!(kind.as_str(), "User" | "Group")
                && m.get("apiGroup")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .is_empty()
            {
                m.insert("apiGroup".into(), json!(RBAC));
            }
        }
    }
}

fn configmap_types(object: &Value) -> Result<(), ApiError> {
    if let Some(data) = object.get("data")
        && !(data.is_null()
            || data
                .as_object()
                .is_some_and(|m| m.values().all(Value::is_string)))
    {
        return Err(status::bad_request(
            "json: cannot unmarshal data: ConfigMap data values must be strings",
        ));
    }
    if let Some(data) = object.get("binaryData") {
        let ok = data.is_null()
            || data
                .as_object()
                .is_some_and(|m| m.values().all(|v| v.as_str().and_then(b64decode).is_some()));
        if !ok {
            return Err(status::bad_request(
                "json: cannot unmarshal binaryData: values must be base64 strings",
            ));
        }
    }
    Ok(())
}

fn conditions(object: &Value) -> Vec<Value> {
    object
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
}

fn of_type<'a>(list: &'a [Value], t: &str) -> Vec<&'a Value> {
    list.iter().filter(|c| str_at(c, &["type"]) == t).collect()
}

fn populate_condition_timestamps(new: &mut Value, old: &Value, now: i64) {
    let old_conditions = conditions(old);
    let Some(list) = new
        .pointer_mut("/status/conditions")
        .and_then(Value::as_array_mut)
    else {
        return;
    };
    for c in list.iter_mut() {
        if str_at(c, &["lastUpdateTime"]).is_empty() {
            c["lastUpdateTime"] = json!(time::rfc3339(now));
        }
        if str_at(c, &["lastTransitionTime"]).is_empty() {
            let previous = old_conditions.iter().find(|o| {
                str_at(o, &["type"]) == str_at(c, &["type"])
                    && str_at(o, &["status"]) == str_at(c, &["status"])
            });
            let t = previous
                .map(|p| str_at(p, &["lastTransitionTime"]).to_string())
                .filter(|t| !t.is_empty())
                .unwrap_or_else(|| time::rfc3339(now));
            c["lastTransitionTime"] = json!(t);
        }
    }
}

/// The update strategy: what of `new` is kept, given `old` and the subresource.
pub fn prepare_update(
    resource: &Resource,
    sub: &str,
    new: &mut Value,
    old: &Value,
    now: i64,
) -> Result<(), ApiError> {
    let keep = |new: &mut Value, field: &str| match old.get(field) {
        Some(v) => new[field] = v.clone(),
        None => {
            if let Some(m) = new.as_object_mut() {
                m.remove(field);
            }
        }
    };
    match (resource.group, resource.name, sub) {
        ("", "secrets", "") => secret_defaults(new)?,
        ("", "configmaps", "") => configmap_types(new)?,
        (RBAC, "rolebindings" | "clusterrolebindings", "") => binding_defaults(new),
        ("", "nodes" | "namespaces" | "services", "") => keep(new, "status"),
        ("", "nodes" | "namespaces" | "services", "status") => {
            let status = new.get("status").cloned();
            *new = old.clone();
            match status {
                Some(s) => new["status"] = s,
                None => {
                    if let Some(m) = new.as_object_mut() {
                        m.remove("status");
                    }
                }
            }
        }
        (CERTIFICATES, "certificatesigningrequests", "") => {
            keep(new, "spec");
            keep(new, "status");
        }
        (CERTIFICATES, "certificatesigningrequests", "approval") => {
            let conds = new.pointer("/status/conditions").cloned();
            *new = old.clone();
            if !new.get("status").is_some_and(Value::is_object) {
                new["status"] = json!({});
            }
            match conds {
                Some(c) => new["status"]["conditions"] = c,
                None => {
                    if let Some(m) = new["status"].as_object_mut() {
                        m.remove("conditions");
                    }
                }
            }
            populate_condition_timestamps(new, old, now);
        }
        (CERTIFICATES, "certificatesigningrequests", "status") => {
            let mut status = new.get("status").cloned().unwrap_or_else(|| json!({}));
            *new = old.clone();
            // Approved and Denied can only change through /approval: keep the old instances.
            let old_conditions = conditions(old);
            let mut list: Vec<Value> = status
                .get("conditions")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .filter(|c| !matches!(str_at(c, &["type"]), "Approved" | "Denied"))
                .collect();
            let kept: Vec<Value> = old_conditions
                .iter()
                .filter(|c| matches!(str_at(c, &["type"]), "Approved" | "Denied"))
                .cloned()
                .collect();
            let mut all = kept;
            all.append(&mut list);
            if all.is_empty() {
                if let Some(m) = status.as_object_mut() {
                    m.remove("conditions");
                }
            } else {
                status["conditions"] = json!(all);
            }
            new["status"] = status;
            populate_condition_timestamps(new, old, now);
        }
        _ => {}
    }
    Ok(())
}

const USAGES: &[&str] = &[
    "signing",
    "digital signature",
    "content commitment",
    "key encipherment",
    "key agreement",
    "data encipherment",
    "cert sign",
    "crl sign",
    "encipher only",
    "decipher only",
    "any",
    "server auth",
    "client auth",
    "code signing",
    "email protection",
    "s/mime",
    "ipsec end system",
    "ipsec tunnel",
    "ipsec user",
    "timestamping",
    "ocsp signing",
    "microsoft sgc",
    "netscape sgc",
];

/// The PKCS#10 request in a CSR object's `spec.request` (base64 of PEM), with its signature checked.
pub fn csr_der(object: &Value) -> Result<Vec<u8>, String> {
    let request = str_at(object, &["spec", "request"]);
    let pem = b64decode(request).ok_or("not base64")?;
    let block = pki::blocks(&pem)
        .map_err(|e| e.to_string())?
        .into_iter()
        .find(|b| b.label == "CERTIFICATE REQUEST")
        .ok_or("PEM block type must be CERTIFICATE REQUEST")?;
    let (_, csr) = X509CertificationRequest::from_der(&block.der)
        .map_err(|e| format!("x509: malformed certificate request ({e})"))?;
    csr.verify_signature().map_err(|_| {
        "x509: ECDSA/RSA verification failure (the request's signature does not verify)".to_string()
    })?;
    Ok(block.der)
}

fn validate_signer_name(name: &str) -> Option<String> {
    let Some((domain, path)) = name.split_once('/') else {
        return Some(
            "must be a fully qualified domain and path of the form 'example.com/signer-name'"
                .into(),
        );
    };
    if !is_dns_subdomain(domain) {
        return Some(format!(
            "the domain of the signerName is not valid: {SUBDOMAIN_MSG}"
        ));
    }
    if path.is_empty()
        || path.len() > 1000
        || path.contains('/') && path.split('/').any(str::is_empty)
    {
        return Some(
            "validating path: must be a non-empty path of the form 'example.com/signer-name'"
                .into(),
        );
    }
    None
}

fn validate_conditions(object: &Value) -> Vec<FieldError> {
    let mut errors = Vec::new();
    let list = conditions(object);
    let mut seen = Vec::new();
    let (mut approved, mut denied) = (false, false);
    for (i, c) in list.iter().enumerate() {
        let t = str_at(c, &["type"]);
        let s = str_at(c, &["status"]);
        let at = format!("status.conditions[{i}]");
        if t.is_empty() {
            errors.push(FieldError::required(&format!("{at}.type"), ""));
        }
        let true_only = matches!(t, "Approved" | "Denied" | "Failed");
        let allowed: &[&str] = if true_only {
            &["True"]
        } else {
            &["False", "True", "Unknown"]
        };
        if s.is_empty() {
            errors.push(FieldError::required(&format!("{at}.status"), ""));
        } else if !allowed.contains(&s) {
            errors.push(FieldError::not_supported(
                &format!("{at}.status"),
                s,
                allowed,
            ));
        }
        approved |= t == "Approved";
        denied |= t == "Denied";
        if approved && denied && matches!(t, "Approved" | "Denied") {
            errors.push(FieldError::invalid(
                "status.conditions",
                t,
                "Approved and Denied conditions are mutually exclusive",
            ));
        }
        if seen.contains(&t) {
            errors.push(FieldError {
                field: format!("{at}.type"),
                reason: "FieldValueDuplicate",
                message: format!("{at}.type: Duplicate value: {t:?}"),
            });
        }
        seen.push(t);
    }
    errors
}

/// `status.certificate` (base64 of PEM, as JSON writes `[]byte`).
fn validate_certificate(encoded: &str) -> Option<String> {
    if encoded.is_empty() {
        return None;
    }
    let Some(pem) = b64decode(encoded) else {
        return Some("not base64".into());
    };
    let blocks = match pki::blocks(&pem) {
        Ok(b) => b,
        Err(e) => return Some(e),
    };
    if blocks.is_empty() {
        return Some("must contain at least one CERTIFICATE PEM block".into());
    }
    for b in blocks {
        if b.label != "CERTIFICATE" {
            return Some(format!(
                "only CERTIFICATE PEM blocks are allowed, found {:?}",
                b.label
            ));
        }
        if X509Certificate::from_der(&b.der).is_err() {
            return Some("x509: malformed certificate".into());
        }
    }
    None
}

/// Validation of the whole object (after the strategy). `old` on updates.
pub fn validate(resource: &Resource, object: &Value, old: Option<&Value>) -> Vec<FieldError> {
    let mut errors = validate_name(resource, str_at(object, &["metadata", "name"]));
    match (resource.group, resource.name) {
        ("", "secrets") => {
            let mut total = 0;
            if let Some(m) = object.get("data").and_then(Value::as_object) {
                for (k, v) in m {
                    if !is_config_key(k) {
                        errors.push(FieldError::invalid(&format!("data[{k}]"), k, KEY_MSG));
                    }
                    total += v.as_str().and_then(b64decode).map_or(0, |b| b.len());
                }
            }
            if total > 1 << 20 {
                errors.push(FieldError {
                    field: "data".into(),
                    reason: "FieldValueTooLong",
                    message: "data: Too long: must have at most 1048576 bytes".into(),
                });
            }
            if let Some(old) = old
                && str_at(old, &["type"]) != str_at(object, &["type"])
            {
                errors.push(FieldError::invalid(
                    "type",
                    str_at(object, &["type"]),
                    "field is immutable",
                ));
            }
        }
        ("", "configmaps") => {
            let data = object.get("data").and_then(Value::as_object);
            let binary = object.get("binaryData").and_then(Value::as_object);
            let mut total = 0;
            for (field, map) in [("data", data), ("binaryData", binary)] {
                for (k, v) in map.into_iter().flatten() {
                    if !is_config_key(k) {
                        errors.push(FieldError::invalid(&format!("{field}[{k}]"), k, KEY_MSG));
                    }
                    total += v.as_str().map_or(0, str::len);
                }
            }
            if let (Some(d), Some(b)) = (data, binary) {
                for k in d.keys().filter(|k| b.contains_key(*k)) {
                    errors.push(FieldError::invalid(
                        &format!("data[{k}]"),
                        k,
                        "duplicate of key present in binaryData",
                    ));
                }
            }
            if total > 1 << 20 {
                errors.push(FieldError {
                    field: "data".into(),
                    reason: "FieldValueTooLong",
                    message: "data: Too long: must have at most 1048576 bytes".into(),
                });
            }
        }
        (CERTIFICATES, "certificatesigningrequests") => {
            if let Err(e) = csr_der(object) {
                errors.push(FieldError::invalid("spec.request", "<request data>", &e));
            }
            let usages: Vec<&str> = object
                .pointer("/spec/usages")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .map(|u| u.as_str().unwrap_or("<not a string>"))
                        .collect()
                })
                .unwrap_or_default();
            if usages.is_empty() {
                errors.push(FieldError::required("spec.usages", ""));
            }
            for (i, u) in usages.iter().enumerate() {
                if !USAGES.contains(u) {
                    errors.push(FieldError::not_supported(
                        &format!("spec.usages[{i}]"),
                        u,
                        USAGES,
                    ));
                }
                if usages[..i].contains(u) {
                    errors.push(FieldError {
                        field: format!("spec.usages[{i}]"),
                        reason: "FieldValueDuplicate",
                        message: format!("spec.usages[{i}]: Duplicate value: {u:?}"),
                    });
                }
            }
            let signer = str_at(object, &["spec", "signerName"]);
            if signer.is_empty() {
                errors.push(FieldError::required("spec.signerName", ""));
            } else if signer == "kubernetes.io/legacy-unknown" {
                errors.push(FieldError::invalid(
                    "spec.signerName",
                    signer,
                    "the legacy signerName is not allowed via this API version",
                ));
            } else if let Some(why) = validate_signer_name(signer) {
                errors.push(FieldError::invalid("spec.signerName", signer, &why));
            }
            if let Some(e) = object.pointer("/spec/expirationSeconds") {
                match e.as_i64() {
                    Some(n) if n >= 600 => {}
                    _ => errors.push(FieldError::invalid(
                        "spec.expirationSeconds",
                        &e.to_string(),
                        "may not specify a duration less than 600 seconds (10 minutes)",
                    )),
                }
            }
            errors.extend(validate_conditions(object));
            let cert = str_at(object, &["status", "certificate"]);
            let unchanged = old.is_some_and(|o| str_at(o, &["status", "certificate"]) == cert);
            if !unchanged && let Some(why) = validate_certificate(cert) {
                errors.push(FieldError::invalid(
                    "status.certificate",
                    "<certificate data>",
                    &why,
                ));
            }
            if let Some(old) = old {
                let (new_c, old_c) = (conditions(object), conditions(old));
                for t in ["Approved", "Denied", "Failed"] {
                    if of_type(&new_c, t).len() < of_type(&old_c, t).len() {
                        errors.push(FieldError::forbidden(
                            "status.conditions",
                            &format!("updates may not remove a condition of type {t:?}"),
                        ));
                    }
                }
                let old_cert = str_at(old, &["status", "certificate"]);
                if !old_cert.is_empty() && old_cert != cert {
                    errors.push(FieldError::forbidden(
                        "status.certificate",
                        "updates may not modify existing certificate content",
                    ));
                }
            }
        }
        (RBAC, "roles" | "clusterroles") => {
            let namespaced = resource.namespaced;
            for (i, rule) in object
                .get("rules")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default()
                .iter()
                .enumerate()
            {
                let list = |f: &str| rule.get(f).and_then(Value::as_array).map_or(0, Vec::len);
                let at = format!("rules[{i}]");
                if list("verbs") == 0 {
                    errors.push(FieldError::required(
                        &format!("{at}.verbs"),
                        "verbs must contain at least one value",
                    ));
                }
                if list("nonResourceURLs") > 0 {
                    if namespaced {
                        errors.push(FieldError::invalid(
                            &format!("{at}.nonResourceURLs"),
                            &rule["nonResourceURLs"].to_string(),
                            "namespaced rules cannot apply to non-resource URLs",
                        ));
                    }
                    if list("apiGroups") > 0 || list("resources") > 0 {
                        errors.push(FieldError::invalid(
                            &format!("{at}.nonResourceURLs"),
                            &rule["nonResourceURLs"].to_string(),
                            "rules cannot apply to both regular resources and non-resource URLs",
                        ));
                    }
                } else {
                    if list("apiGroups") == 0 {
                        errors.push(FieldError::required(
                            &format!("{at}.apiGroups"),
                            "resource rules must supply at least one api group",
                        ));
                    }
                    if list("resources") == 0 {
                        errors.push(FieldError::required(
                            &format!("{at}.resources"),
                            "resource rules must supply at least one resource",
                        ));
                    }
                }
            }
        }
        (RBAC, "rolebindings" | "clusterrolebindings") => {
            let cluster = resource.name == "clusterrolebindings";
            let group = str_at(object, &["roleRef", "apiGroup"]);
            let kind = str_at(object, &["roleRef", "kind"]);
            if group != RBAC {
                errors.push(FieldError::not_supported(
                    "roleRef.apiGroup",
                    group,
                    &[RBAC],
                ));
            }
            let kinds: &[&str] = if cluster {
                &["ClusterRole"]
            } else {
                &["ClusterRole", "Role"]
            };
            if !kinds.contains(&kind) {
                errors.push(FieldError::not_supported("roleRef.kind", kind, kinds));
            }
            if str_at(object, &["roleRef", "name"]).is_empty() {
                errors.push(FieldError::required("roleRef.name", ""));
            }
            for (i, s) in object
                .get("subjects")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default()
                .iter()
                .enumerate()
            {
                let at = format!("subjects[{i}]");
                let kind = str_at(s, &["kind"]);
                let api_group = str_at(s, &["apiGroup"]);
                if str_at(s, &["name"]).is_empty() {
                    errors.push(FieldError::required(&format!("{at}.name"), ""));
                }
                match kind {
                    "User" | "Group" => {
                        if api_group != RBAC {
                            errors.push(FieldError::not_supported(
                                &format!("{at}.apiGroup"),
                                api_group,
                                &[RBAC],
                            ));
                        }
                    }
                    "ServiceAccount" => {
                        if !api_group.is_empty() {
                            errors.push(FieldError::not_supported(
                                &format!("{at}.apiGroup"),
                                api_group,
                                &[""],
                            ));
                        }
                        if cluster && str_at(s, &["namespace"]).is_empty() {
                            errors.push(FieldError::required(&format!("{at}.namespace"), ""));
                        }
                    }
                    other => errors.push(FieldError::not_supported(
                        &format!("{at}.kind"),
                        other,
                        &["Group", "ServiceAccount", "User"],
                    )),
                }
            }
            if let Some(old) = old
                && old.get("roleRef") != object.get("roleRef")
            {
                errors.push(FieldError::invalid(
                    "roleRef",
                    &object["roleRef"].to_string(),
                    "cannot change roleRef",
                ));
            }
        }
        _ => {}
    }
    errors
}

#[allow(clippy::too_many_arguments)]
fn allowed(
    txn: &Txn<'_>,
    modes: &[String],
    user: &User,
    verb: &str,
    group: &str,
    resource: &str,
    namespace: &str,
    name: &str,
) -> bool {
    let a = Attributes {
        user: user.clone(),
        verb: verb.into(),
        resource_request: true,
        group: group.into(),
        resource: resource.into(),
        namespace: namespace.into(),
        name: name.into(),
        ..Attributes::default()
    };
    authz::authorize(modes, txn, &a).is_ok()
}

fn signer_authorized(
    txn: &Txn<'_>,
    modes: &[String],
    user: &User,
    verb: &str,
    signer: &str,
) -> bool {
    if allowed(txn, modes, user, verb, CERTIFICATES, "signers", "", signer) {
        return true;
    }
    let domain = signer.split('/').next().unwrap_or_default();
    allowed(
        txn,
        modes,
        user,
        verb,
        CERTIFICATES,
        "signers",
        "",
        &format!("{domain}/*"),
    )
}

fn escalation_message(user: &User, rules: &[Value]) -> String {
    let shown: Vec<String> = rules.iter().map(Value::to_string).collect();
    format!(
        "user {:?} (groups={:?}) is attempting to grant RBAC permissions not currently held:\n{}",
        user.name,
        user.groups,
        shown.join("\n")
    )
}

/// What the caller may do under RBAC, cluster-wide plus in `namespace`.
fn held_rules(txn: &Txn<'_>, user: &User, namespace: &str) -> Vec<Value> {
    let mut rules = authz::rules_for(txn, user, "").0;
    if !namespace.is_empty() {
        rules.extend(authz::rules_for(txn, user, namespace).0);
    }
    if authz::node_name(user).is_some() {
        rules.extend(super::policy::node_rules());
    }
    rules
}

/// Admission, after validation. `node_restriction`: whether NodeRestriction is enabled.
#[allow(clippy::too_many_arguments)]
pub fn admit(
    resource: &Resource,
    op: Op,
    sub: &str,
    object: &Value,
    old: Option<&Value>,
    user: &User,
    txn: &Txn<'_>,
    modes: &[String],
    node_restriction: bool,
) -> Result<(), ApiError> {
    let name = str_at(object, &["metadata", "name"]);
    let masters = user.groups.iter().any(|g| g == "system:masters");
    match (resource.group, resource.name) {
        ("", "nodes") if node_restriction => {
            if let Some(node) = authz::node_name(user)
                && node != name
            {
                return Err(status::forbidden(
                    resource,
                    name,
                    &format!("node {node:?} is not allowed to modify node {name:?}"),
                ));
            }
        }
        (CERTIFICATES, "certificatesigningrequests") if op != Op::Delete => {
            let signer = str_at(object, &["spec", "signerName"]);
            if op == Op::Create
                && signer == "kubernetes.io/kube-apiserver-client"
                && let Ok(der) = csr_der(object)
                && let Ok((_, csr)) = X509CertificationRequest::from_der(&der)
                && csr
                    .certification_request_info
                    .subject
                    .iter_organization()
                    .any(|o| o.as_str() == Ok("system:masters"))
            {
                return Err(status::forbidden(
                    resource,
                    name,
                    "use of kubernetes.io/kube-apiserver-client signer with system:masters group is not allowed",
                ));
            }
            if sub == "approval" && !signer_authorized(txn, modes, user, "approve", signer) {
                return Err(status::forbidden(
                    resource,
                    name,
                    &format!("user not permitted to approve requests with signerName {signer:?}"),
                ));
            }
            let changed = old.is_some_and(|o| {
                str_at(o, &["status", "certificate"]) != str_at(object, &["status", "certificate"])
            });
            if sub == "status" && changed && !signer_authorized(txn, modes, user, "sign", signer) {
                return Err(status::forbidden(
                    resource,
                    name,
                    &format!("user not permitted to sign requests with signerName {signer:?}"),
                ));
            }
        }
        (RBAC, "roles" | "clusterroles") if op != Op::Delete && !masters => {
            let namespace = str_at(object, &["metadata", "namespace"]);
            if allowed(
                txn,
                modes,
                user,
                "escalate",
                RBAC,
                resource.name,
                namespace,
                name,
            ) {
                return Ok(());
            }
            let rules = object
                .get("rules")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            if !authz::covers(&held_rules(txn, user, namespace), &rules) {
                return Err(status::forbidden(
                    resource,
                    name,
                    &escalation_message(user, &rules),
                ));
            }
        }
        (RBAC, "rolebindings" | "clusterrolebindings") if op != Op::Delete && !masters => {
            let namespace = str_at(object, &["metadata", "namespace"]);
            let kind = str_at(object, &["roleRef", "kind"]);
            let role_name = str_at(object, &["roleRef", "name"]);
            let (role_resource, role_ns) = if kind == "Role" {
                ("roles", namespace)
            } else {
                ("clusterroles", "")
            };
            if allowed(
                txn,
                modes,
                user,
                "bind",
                RBAC,
                role_resource,
                role_ns,
                role_name,
            ) {
                return Ok(());
            }
            let key = Key::new(&format!("{RBAC}/{role_resource}"), role_ns, role_name);
            let Some(role) = txn.get(&key) else {
                let r = super::resources::find(RBAC, "v1", role_resource)
                    .ok_or_else(|| status::internal("no role resource"))?;
                return Err(status::not_found(r, role_name));
            };
            let rules = role
                .get("rules")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            if !authz::covers(&held_rules(txn, user, namespace), &rules) {
                return Err(status::forbidden(
                    resource,
                    name,
                    &escalation_message(user, &rules),
                ));
            }
        }
        _ => {}
    }
    Ok(())
}

/// RFC 7386 JSON merge patch.
pub fn merge_patch(target: &mut Value, patch: &Value) {
    let Value::Object(p) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    if let Value::Object(t) = target {
        for (k, v) in p {
            if v.is_null() {
                t.remove(k);
            } else {
                merge_patch(t.entry(k.clone()).or_insert(Value::Null), v);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(is_dns_subdomain("bootstrap-token-abcdef"));
        assert!(is_dns_subdomain("a.b-c"));
        assert!(!is_dns_subdomain("Upper"));
        assert!(!is_dns_subdomain("-a"));
        assert!(!is_dns_subdomain("a..b"));
        assert!(is_dns_label("kube-public"));
        assert!(!is_dns_label("a.b"));
        assert!(is_path_segment("kubeadm:kubelet-bootstrap"));
        assert!(!is_path_segment(".."));
        assert!(!is_path_segment("a/b"));
    }

    #[test]
    fn merge_patch_follows_rfc_7386() {
        let mut t = json!({"a": "b", "c": {"d": "e", "f": "g"}});
        merge_patch(&mut t, &json!({"a": "z", "c": {"f": null}}));
        assert_eq!(t, json!({"a": "z", "c": {"d": "e"}}));
        let mut t = json!({"a": [1, 2]});
        merge_patch(&mut t, &json!({"a": [3]}));
        assert_eq!(t, json!({"a": [3]}));
    }

    #[test]
    fn string_data_is_merged_into_data() {
        let mut s = json!({"metadata": {"name": "x"}, "stringData": {"token-id": "abcdef"}, "data": {"a": "Yg=="}});
        secret_defaults(&mut s).unwrap();
        assert_eq!(s["data"]["token-id"], "YWJjZGVm");
        assert_eq!(s["data"]["a"], "Yg==");
        assert!(s.get("stringData").is_none());
        assert_eq!(s["type"], "Opaque");
        let mut bad = json!({"data": {"a": "not base64!"}});
        assert!(secret_defaults(&mut bad).is_err());
    }

    #[test]
    fn signer_names() {
        assert_eq!(
            validate_signer_name("kubernetes.io/kube-apiserver-client-kubelet"),
            None
        );
        assert!(validate_signer_name("nodomain").is_some());
        assert!(validate_signer_name("Bad_Domain/x").is_some());
        assert!(validate_signer_name("example.com/").is_some());
    }
}
