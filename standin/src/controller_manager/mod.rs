//! The stand-in **kube-controller-manager**: the four controllers a join needs, with the real ones' rules. Not
//! the real kube-controller-manager, and says so.
//!
//! Start-up (each problem is `error: ...` and exit 1; systemd restarts the unit):
//! - `--controllers` is read as upstream (`*` = the on-by-default controllers, `name` enables, `-name` disables,
//!   first match wins, old and new names both accepted, unknown names refused); bootstrapsigner and tokencleaner
//!   are off by default, so without `--controllers=*,bootstrapsigner,...` nothing signs cluster-info and joins hang,
//!   as with the real program;
//! - `--cluster-signing-cert-file` / `--cluster-signing-key-file` (when csrsigning runs) must be a CA and its key;
//!   `--root-ca-file` must hold certificates; `--service-account-private-key-file` must be a private key;
//! - `--kubeconfig` (and `--authentication-kubeconfig`, `--authorization-kubeconfig`) must load; a client
//!   certificate must be for CN `system:kube-controller-manager`; the API server must answer `/healthz` within
//!   10 s and accept the identity (a SelfSubjectReview says `system:kube-controller-manager`).
//!
//! Then every `--stand-in-sync-period` (default 0.5 s; the real one watches) the enabled controllers run, each
//! with its own service-account credentials when `--use-service-account-credentials` is set (the ServiceAccount
//! in kube-system is created when missing, a token requested through the TokenRequest API), as upstream:
//!
//! | controller (service account) | does |
//! |---|---|
//! | bootstrapsigner (bootstrap-signer) | for ConfigMap kube-public/cluster-info: `jws-kubeconfig-<id>` = the detached JWS of `data.kubeconfig` for every bootstrap-token Secret in kube-system named `bootstrap-token-<id>` with matching `token-id`, a `token-secret`, `usage-bootstrap-signing: "true"` and not expired; signatures of other tokens removed; updated only when something changed |
//! | tokencleaner (token-cleaner) | deletes expired bootstrap-token Secrets (uid precondition) |
//! | csrapproving (certificate-controller) | a pending CSR for kubernetes.io/kube-apiserver-client-kubelet that is a kubelet client CSR is approved only if a SubjectAccessReview for its requester allows `create certificatesigningrequests/selfnodeclient` (requester = CN) or `/nodeclient` in certificates.k8s.io |
//! | csrsigning (certificate-controller) | approved, not failed, unissued CSRs of that signer are signed ([`signer`]) or marked Failed (SignerValidationFailure) |

pub mod jws;
pub mod signer;

use crate::common::client::{Client, Reply};
use crate::common::flags::{self, Spec};
use crate::common::kubeconfig::{self, Kubeconfig};
use crate::common::{log, pki, read_small_file, str_at, time};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

/// The name this mode answers to.
pub const NAME: &str = "kube-controller-manager";

/// Every controller upstream knows (1.33): canonical name, old name, off by default.
const CONTROLLERS: &[(&str, &str, bool)] = &[
    (
        "serviceaccount-token-controller",
        "serviceaccount-token",
        false,
    ),
    ("endpoints-controller", "endpoint", false),
    ("endpointslice-controller", "endpointslice", false),
    (
        "endpointslice-mirroring-controller",
        "endpointslicemirroring",
        false,
    ),
    (
        "replicationcontroller-controller",
        "replicationcontroller",
        false,
    ),
    ("pod-garbage-collector-controller", "podgc", false),
    ("resourcequota-controller", "resourcequota", false),
    ("namespace-controller", "namespace", false),
    ("serviceaccount-controller", "serviceaccount", false),
    ("garbage-collector-controller", "garbagecollector", false),
    ("daemonset-controller", "daemonset", false),
    ("job-controller", "job", false),
    ("deployment-controller", "deployment", false),
    ("replicaset-controller", "replicaset", false),
    (
        "horizontal-pod-autoscaler-controller",
        "horizontalpodautoscaling",
        false,
    ),
    ("disruption-controller", "disruption", false),
    ("statefulset-controller", "statefulset", false),
    ("cronjob-controller", "cronjob", false),
    (
        "certificatesigningrequest-signing-controller",
        "csrsigning",
        false,
    ),
    (
        "certificatesigningrequest-approving-controller",
        "csrapproving",
        false,
    ),
    (
        "certificatesigningrequest-cleaner-controller",
        "csrcleaner",
        false,
    ),
    ("ttl-controller", "ttl", false),
    ("bootstrap-signer-controller", "bootstrapsigner", true),
    ("token-cleaner-controller", "tokencleaner", true),
    ("node-ipam-controller", "nodeipam", false),
    ("node-lifecycle-controller", "nodelifecycle", false),
    ("taint-eviction-controller", "", false),
    (
        "persistentvolume-binder-controller",
        "persistentvolume-binder",
        false,
    ),
    (
        "persistentvolume-attach-detach-controller",
        "attachdetach",
        false,
    ),
    (
        "persistentvolume-expander-controller",
        "persistentvolume-expander",
        false,
    ),
    (
        "clusterrole-aggregation-controller",
        "clusterrole-aggregation",
        false,
    ),
    (
        "persistentvolumeclaim-protection-controller",
        "pvc-protection",
        false,
    ),
    (
        "persistentvolume-protection-controller",
        "pv-protection",
        false,
    ),
    ("ttl-after-finished-controller", "ttl-after-finished", false),
    (
        "root-ca-certificate-publisher-controller",
        "root-ca-cert-publisher",
        false,
    ),
    ("ephemeral-volume-controller", "ephemeral-volume", false),
    (
        "storageversion-garbage-collector-controller",
        "storage-version-gc",
        false,
    ),
    (
        "resourceclaim-controller",
        "resource-claim-controller",
        false,
    ),
    (
        "legacy-serviceaccount-token-cleaner-controller",
        "legacy-service-account-token-cleaner",
        false,
    ),
    ("validatingadmissionpolicy-status-controller", "", false),
    ("service-cidr-controller", "", false),
    ("storage-version-migrator-controller", "", true),
    ("selinux-warning-controller", "", true),
    ("service-lb-controller", "service", false),
    ("node-route-controller", "route", false),
    (
        "cloud-node-lifecycle-controller",
        "cloud-node-lifecycle",
        false,
    ),
    (
        "kube-apiserver-serving-clustertrustbundle-publisher-controller",
        "",
        true,
    ),
    ("device-taint-eviction-controller", "", true),
];

const BOOTSTRAP_SIGNER: &str = "bootstrap-signer-controller";
const TOKEN_CLEANER: &str = "token-cleaner-controller";
const CSR_APPROVING: &str = "certificatesigningrequest-approving-controller";
const CSR_SIGNING: &str = "certificatesigningrequest-signing-controller";

fn canonical(name: &str) -> Option<&'static str> {
    CONTROLLERS
        .iter()
        .find(|(n, alias, _)| *n == name || (!alias.is_empty() && *alias == name))
        .map(|(n, _, _)| *n)
}

/// The enabled controllers for a `--controllers` list (upstream's IsControllerEnabled for each known one: the
/// first explicit `name` or `-name` decides, else `*` enables the on-by-default ones).
pub fn enabled_controllers(list: &[String]) -> Result<Vec<&'static str>, String> {
    let mut choices: Vec<(bool, &'static str)> = Vec::new();
    let mut star = false;
    for item in list {
        if item == "*" {
            star = true;
            continue;
        }
        let (enable, name) = match item.strip_prefix('-') {
            Some(n) => (false, n),
            None => (true, item.as_str()),
        };
        let c = canonical(name).ok_or_else(|| {
            format!("--controllers: {name:?} is not in the list of known controllers")
        })?;
        choices.push((enable, c));
    }
    Ok(CONTROLLERS
        .iter()
        .filter(
            |(name, _, off_by_default)| match choices.iter().find(|(_, c)| c == name) {
                Some((enable, _)) => *enable,
                None => star && !*off_by_default,
            },
        )
        .map(|(n, _, _)| *n)
        .collect())
}

/// Go's `time.ParseDuration` for h, m, s, ms (what `--cluster-signing-duration` is written in).
pub fn parse_go_duration(s: &str) -> Option<i64> {
    let mut total = 0f64;
    let mut rest = s.trim();
    if rest.is_empty() {
        return None;
    }
    if rest == "0" {
        return Some(0);
    }
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if digits == 0 {
            return None;
        }
        let n: f64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let (unit, len) = if rest.starts_with("ms") {
            (0.001, 2)
        } else if rest.starts_with('h') {
            (3600.0, 1)
        } else if rest.starts_with('m') {
            (60.0, 1)
        } else if rest.starts_with('s') {
            (1.0, 1)
        } else {
            return None;
        };
        total += n * unit;
        rest = &rest[len..];
    }
    Some(total as i64)
}

/// Logs a message at most once per 30 s per key (a controller that keeps failing does not flood the journal).
struct Quiet {
    last: HashMap<String, Instant>,
}

impl Quiet {
    fn log(&mut self, key: &str, line: &str) {
        let now = Instant::now();
        match self.last.get(key) {
            Some(t) if now.duration_since(*t) < Duration::from_secs(30) => {}
            _ => {
                self.last.insert(key.to_string(), now);
                log(line);
            }
        }
    }
}

/// The clients the controllers act with.
struct Credentials {
    base: Client,
    service_accounts: bool,
    cached: HashMap<String, (Client, i64)>,
}

impl Credentials {
    /// The client for a controller's service account (or the base identity).
    fn client(&mut self, account: &str) -> Result<Client, String> {
        if !self.service_accounts {
            return Ok(self.base.clone());
        }
        let now = time::now();
        if let Some((c, expiry)) = self.cached.get(account)
            && *expiry > now + 60
        {
            return Ok(c.clone());
        }
        let path = format!("/api/v1/namespaces/kube-system/serviceaccounts/{account}");
        let r = self.base.get(&path)?;
        if r.status == 404 {
            let sa = json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": account, "namespace": "kube-system"}});
            let c = self.base.call(
                "POST",
                "/api/v1/namespaces/kube-system/serviceaccounts",
                Some(&sa),
            )?;
            if c.status != 201 && c.status != 409 {
                return Err(format!(
                    "cannot create ServiceAccount kube-system/{account}: {} {}",
                    c.status,
                    c.message()
                ));
            }
        } else if r.status != 200 {
            return Err(format!(
                "cannot read ServiceAccount kube-system/{account}: {} {}",
                r.status,
                r.message()
            ));
        }
        let request = json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": {"expirationSeconds": 3600}});
        let t = self
            .base
            .call("POST", &format!("{path}/token"), Some(&request))?;
        if t.status != 201 {
            return Err(format!(
                "cannot get a token for ServiceAccount kube-system/{account}: {} {}",
                t.status,
                t.message()
            ));
        }
        let token = str_at(&t.body, &["status", "token"]).to_string();
        let client = self.base.with_token(&token);
        self.cached
            .insert(account.to_string(), (client.clone(), now + 3600));
        Ok(client)
    }

    fn forget(&mut self, account: &str) {
        self.cached.remove(account);
    }
}

fn ok(reply: &Reply, what: &str) -> Result<(), String> {
    if (200..300).contains(&reply.status) {
        Ok(())
    } else {
        Err(format!("{what}: {} {}", reply.status, reply.message()))
    }
}

fn b64(s: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(s)
}

fn secret_text(secret: &Value, key: &str) -> String {
    crate::apiserver::authn::secret_data(secret, key)
}

fn bootstrap_token_secrets(client: &Client) -> Result<Vec<Value>, String> {
    let r = client.get("/api/v1/namespaces/kube-system/secrets?fieldSelector=type%3Dbootstrap.kubernetes.io%2Ftoken")?;
    ok(&r, "list kube-system secrets")?;
    Ok(r.body
        .get("items")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default())
}

/// One bootstrapsigner pass.
fn bootstrap_signer(client: &Client) -> Result<Option<String>, String> {
    let r = client.get("/api/v1/namespaces/kube-public/configmaps/cluster-info")?;
    if r.status == 404 {
        return Ok(None);
    }
    ok(&r, "get kube-public/cluster-info")?;
    let mut cm = r.body;
    let Some(content) = cm
        .pointer("/data/kubeconfig")
        .and_then(Value::as_str)
        .map(str::to_string)
    else {
        return Ok(None);
    };
    let now = time::now();
    let mut tokens: Vec<(String, String)> = Vec::new();
    for s in bootstrap_token_secrets(client)? {
        let name = str_at(&s, &["metadata", "name"]);
        let Some(name_id) = name.strip_prefix("bootstrap-token-").filter(|id| {
            id.len() == 6
                && id
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        }) else {
            continue;
        };
        let id = secret_text(&s, "token-id");
        let secret = secret_text(&s, "token-secret");
        if id.is_empty() || id != name_id || secret.is_empty() {
            continue;
        }
        if crate::apiserver::authn::token_expired(&s, now)
            || secret_text(&s, "usage-bootstrap-signing") != "true"
        {
            continue;
        }
        tokens.push((id, secret));
    }
    let data = cm["data"]
        .as_object_mut()
        .ok_or("cluster-info has no data")?;
    let old: HashMap<String, String> = data
        .iter()
        .filter_map(|(k, v)| {
            k.strip_prefix("jws-kubeconfig-")
                .map(|id| (id.to_string(), v.as_str().unwrap_or_default().to_string()))
        })
        .collect();
    data.retain(|k, _| !k.starts_with("jws-kubeconfig-"));
    let mut changed = Vec::new();
    for (id, secret) in &tokens {
        let sig = jws::detached_signature(&content, id, secret);
        if old.get(id) != Some(&sig) {
            changed.push(format!("signed for token {id}"));
        }
        data.insert(format!("jws-kubeconfig-{id}"), json!(sig));
    }
    for id in old.keys() {
        if !tokens.iter().any(|(t, _)| t == id) {
            changed.push(format!("removed the signature of token {id}"));
        }
    }
    if changed.is_empty() {
        return Ok(None);
    }
    let u = client.call(
        "PUT",
        "/api/v1/namespaces/kube-public/configmaps/cluster-info",
        Some(&cm),
    )?;
    ok(&u, "update kube-public/cluster-info")?;
    Ok(Some(format!(
        "bootstrapsigner: kube-public/cluster-info: {}",
        changed.join(", ")
    )))
}

/// One tokencleaner pass.
fn token_cleaner(client: &Client) -> Result<Vec<String>, String> {
    let now = time::now();
    let mut done = Vec::new();
    for s in bootstrap_token_secrets(client)? {
        if !crate::apiserver::authn::token_expired(&s, now) {
            continue;
        }
        let name = str_at(&s, &["metadata", "name"]);
        let options = json!({"apiVersion": "v1", "kind": "DeleteOptions", "preconditions": {"uid": str_at(&s, &["metadata", "uid"])}});
        let r = client.call(
            "DELETE",
            &format!("/api/v1/namespaces/kube-system/secrets/{name}"),
            Some(&options),
        )?;
        if r.status != 404 {
            ok(&r, &format!("delete kube-system/{name}"))?;
            done.push(format!(
                "tokencleaner: deleted expired bootstrap token Secret kube-system/{name}"
            ));
        }
    }
    Ok(done)
}

fn condition(csr: &Value, t: &str) -> bool {
    csr.pointer("/status/conditions")
        .and_then(Value::as_array)
        .is_some_and(|c| {
            c.iter()
                .any(|c| str_at(c, &["type"]) == t && str_at(c, &["status"]) == "True")
        })
}

fn usages(csr: &Value) -> Vec<String> {
    csr.pointer("/spec/usages")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

fn csr_request_der(csr: &Value) -> Result<Vec<u8>, String> {
    use base64::Engine as _;
    let pem = base64::engine::general_purpose::STANDARD
        .decode(str_at(csr, &["spec", "request"]))
        .map_err(|_| "spec.request is not base64".to_string())?;
    pki::blocks(&pem)?
        .into_iter()
        .find(|b| b.label == "CERTIFICATE REQUEST")
        .map(|b| b.der)
        .ok_or_else(|| "no CERTIFICATE REQUEST block".to_string())
}

fn list_csrs(client: &Client) -> Result<Vec<Value>, String> {
    let r = client.get("/apis/certificates.k8s.io/v1/certificatesigningrequests")?;
    ok(&r, "list certificatesigningrequests")?;
    Ok(r.body
        .get("items")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default())
}

/// One csrapproving pass: approved CSR names, and CSRs recognised but not allowed (for the log).
fn csr_approver(client: &Client) -> Result<(Vec<String>, Vec<String>), String> {
    let mut approved = Vec::new();
    let mut refused = Vec::new();
    for mut csr in list_csrs(client)? {
        let name = str_at(&csr, &["metadata", "name"]).to_string();
        if !str_at(&csr, &["status", "certificate"]).is_empty()
            || condition(&csr, "Approved")
            || condition(&csr, "Denied")
        {
            continue;
        }
        if str_at(&csr, &["spec", "signerName"]) != signer::KUBELET_CLIENT_SIGNER {
            continue;
        }
        let Ok(der) = csr_request_der(&csr) else {
            continue;
        };
        let Ok(subject) = signer::csr_subject(&der) else {
            continue;
        };
        if signer::validate_kubelet_client(&subject, &usages(&csr)).is_err() {
            continue;
        }
        let username = str_at(&csr, &["spec", "username"]).to_string();
        let mut tried = Vec::new();
        let recognizers: [(&str, bool, &str); 2] = [
            (
                "selfnodeclient",
                username == subject.common_name,
                "Auto approving self kubelet client certificate after SubjectAccessReview.",
            ),
            (
                "nodeclient",
                true,
                "Auto approving kubelet client certificate after SubjectAccessReview.",
            ),
        ];
        let mut decided = false;
        for (subresource, applies, message) in recognizers {
            if !applies {
                continue;
            }
            tried.push(subresource);
            let mut spec = json!({
                "user": username,
                "groups": csr.pointer("/spec/groups").cloned().unwrap_or(json!([])),
                "resourceAttributes": {
                    "group": "certificates.k8s.io",
                    "resource": "certificatesigningrequests",
                    "verb": "create",
                    "subresource": subresource,
                    "version": "*",
                },
            });
            if let Some(uid) = csr.pointer("/spec/uid") {
                spec["uid"] = uid.clone();
            }
            if let Some(extra) = csr.pointer("/spec/extra") {
                spec["extra"] = extra.clone();
            }
            let sar = json!({"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview", "spec": spec});
            let r = client.call(
                "POST",
                "/apis/authorization.k8s.io/v1/subjectaccessreviews",
                Some(&sar),
            )?;
            ok(&r, "create subjectaccessreview")?;
            if r.body.pointer("/status/allowed").and_then(Value::as_bool) == Some(true) {
                let list = csr["status"]["conditions"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default();
                let mut list = list;
                list.push(json!({"type": "Approved", "status": "True", "reason": "AutoApproved", "message": message}));
                csr["status"]["conditions"] = json!(list);
                let u = client.call(
                    "PUT",
                    &format!(
                        "/apis/certificates.k8s.io/v1/certificatesigningrequests/{name}/approval"
                    ),
                    Some(&csr),
                )?;
                ok(&u, &format!("approve {name}"))?;
                approved.push(name.clone());
                decided = true;
                break;
            }
        }
        if !decided && !tried.is_empty() {
            refused.push(format!(
                "csrapproving: recognized csr {name:?} as {tried:?} but subject access review was not approved"
            ));
        }
    }
    Ok((approved, refused))
}

/// One csrsigning pass.
fn csr_signer(client: &Client, signer: &signer::Signer) -> Result<Vec<String>, String> {
    let mut done = Vec::new();
    for mut csr in list_csrs(client)? {
        let name = str_at(&csr, &["metadata", "name"]).to_string();
        if !condition(&csr, "Approved")
            || condition(&csr, "Failed")
            || !str_at(&csr, &["status", "certificate"]).is_empty()
        {
            continue;
        }
        if str_at(&csr, &["spec", "signerName"]) != signer::KUBELET_CLIENT_SIGNER {
            continue;
        }
        let path = format!("/apis/certificates.k8s.io/v1/certificatesigningrequests/{name}/status");
        let der = csr_request_der(&csr)?;
        let valid = signer::csr_subject(&der)
            .and_then(|s| signer::validate_kubelet_client(&s, &usages(&csr)));
        if let Err(why) = valid {
            let mut list = csr["status"]["conditions"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            list.push(json!({"type": "Failed", "status": "True", "reason": "SignerValidationFailure", "message": why, "lastUpdateTime": time::rfc3339(time::now())}));
            csr["status"]["conditions"] = json!(list);
            let u = client.call("PUT", &path, Some(&csr))?;
            ok(&u, &format!("mark {name} failed"))?;
            done.push(format!(
                "csrsigning: {name}: Failed (SignerValidationFailure: {why})"
            ));
            continue;
        }
        let expiration = csr
            .pointer("/spec/expirationSeconds")
            .and_then(Value::as_i64);
        let pem = signer.sign(&der, &usages(&csr), expiration, time::now())?;
        csr["status"]["certificate"] = json!(b64(&pem));
        let u = client.call("PUT", &path, Some(&csr))?;
        ok(&u, &format!("issue {name}"))?;
        done.push(format!(
            "csrsigning: issued a certificate for {name} ({})",
            str_at(&csr, &["spec", "username"])
        ));
    }
    Ok(done)
}

const VALUES: &[&str] = &[
    "kubeconfig",
    "authentication-kubeconfig",
    "authorization-kubeconfig",
    "controllers",
    "cluster-signing-cert-file",
    "cluster-signing-key-file",
    "cluster-signing-duration",
    "root-ca-file",
    "service-account-private-key-file",
    "stand-in-sync-period",
];
const BOOLS: &[&str] = &[
    "use-service-account-credentials",
    "leader-elect",
    "allocate-node-cidrs",
];

/// Waits (up to 10 s, as upstream's WaitForAPIServer) for `/healthz`, then checks who the API server says we are.
pub fn check_identity(client: &Client, shown: &str, expected: &str) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match client.get("/healthz") {
            Ok(r) if r.status == 200 => break,
            Ok(r) if r.status == 401 || r.status == 403 => {
                return Err(format!(
                    "the API server rejects {shown}: {} {}",
                    r.status,
                    r.message()
                ));
            }
            Ok(r) if Instant::now() >= deadline => {
                return Err(format!(
                    "failed to wait for apiserver being healthy: /healthz answered {} {}",
                    r.status,
                    r.message()
                ));
            }
            Err(e) if Instant::now() >= deadline => {
                return Err(format!("failed to wait for apiserver being healthy: {e}"));
            }
            _ => std::thread::sleep(Duration::from_millis(500)),
        }
    }
    let review = json!({"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"});
    let r = client.call(
        "POST",
        "/apis/authentication.k8s.io/v1/selfsubjectreviews",
        Some(&review),
    )?;
    if r.status != 201 {
        return Err(format!(
            "the API server rejects {shown}: {} {}",
            r.status,
            r.message()
        ));
    }
    let user = str_at(&r.body, &["status", "userInfo", "username"]);
    if user != expected {
        return Err(format!("{shown} authenticates as {user:?}, not {expected}"));
    }
    Ok(())
}

/// Loads a kubeconfig whose client certificate must be for `expected` (when it is a certificate).
pub fn identity_kubeconfig(
    flag: &str,
    path: &std::path::Path,
    expected: &str,
) -> Result<Kubeconfig, String> {
    let k = kubeconfig::load(flag, path)?;
    if let Some(cn) = k.client_common_name()
        && cn != expected
    {
        return Err(format!(
            "{flag} {}: the client certificate is for CN {cn:?}, not {expected}",
            path.display()
        ));
    }
    Ok(k)
}

/// Runs the stand-in controller manager; returns only on a start-up error.
pub fn run(args: &[String]) -> ExitCode {
    match start(args) {
        Ok(never) => never,
        Err(e) => crate::common::fail(&e),
    }
}

fn start(args: &[String]) -> Result<ExitCode, String> {
    let p = flags::parse(
        &Spec {
            program: NAME,
            values: VALUES,
            bools: BOOLS,
        },
        args,
    )?;
    let mut list = p.list("controllers");
    if list.is_empty() {
        list.push("*".into());
    }
    let enabled = enabled_controllers(&list)?;
    let on = |c: &str| enabled.contains(&c);
    let path = |name: &str| p.last(name).filter(|v| !v.is_empty()).map(PathBuf::from);
    let duration = match p.last("cluster-signing-duration") {
        Some(d) => parse_go_duration(d)
            .filter(|d| *d > 0)
            .ok_or_else(|| format!("invalid argument {d:?} for --cluster-signing-duration"))?,
        None => 365 * 24 * 3600,
    };
    let signer = if on(CSR_SIGNING) {
        let (Some(cert), Some(key)) = (
            path("cluster-signing-cert-file"),
            path("cluster-signing-key-file"),
        ) else {
            return Err(
                "csrsigning needs --cluster-signing-cert-file and --cluster-signing-key-file"
                    .into(),
            );
        };
        let cert_pem = read_small_file("--cluster-signing-cert-file", &cert)?;
        let key_pem = read_small_file("--cluster-signing-key-file", &key)?;
        Some(
            signer::Signer::new(&cert_pem, &key_pem, duration).map_err(|e| {
                format!(
                    "--cluster-signing-cert-file {} and --cluster-signing-key-file {}: {e}",
                    cert.display(),
                    key.display()
                )
            })?,
        )
    } else {
        None
    };
    if let Some(root) = path("root-ca-file") {
        let bytes = read_small_file("--root-ca-file", &root)?;
        pki::certificates(&bytes).map_err(|e| format!("--root-ca-file {}: {e}", root.display()))?;
    }
    if let Some(sa) = path("service-account-private-key-file") {
        let bytes = read_small_file("--service-account-private-key-file", &sa)?;
        pki::private_key(&bytes)
            .map_err(|e| format!("--service-account-private-key-file {}: {e}", sa.display()))?;
    }
    let kubeconfig_path = path("kubeconfig")
        .ok_or("--kubeconfig is required by the stand-in (it runs no in-cluster configuration)")?;
    let k = identity_kubeconfig(
        "--kubeconfig",
        &kubeconfig_path,
        "system:kube-controller-manager",
    )?;
    for flag in ["authentication-kubeconfig", "authorization-kubeconfig"] {
        if let Some(other) = path(flag) {
            identity_kubeconfig(
                &format!("--{flag}"),
                &other,
                "system:kube-controller-manager",
            )?;
        }
    }
    let client = Client::from_kubeconfig(&k)?;
    check_identity(
        &client,
        &format!("--kubeconfig {}", kubeconfig_path.display()),
        "system:kube-controller-manager",
    )?;
    let period = match p.last("stand-in-sync-period") {
        Some(v) => v
            .parse::<f64>()
            .ok()
            .filter(|s| s.is_finite() && *s > 0.0 && *s <= 60.0)
            .map(Duration::from_secs_f64)
            .ok_or_else(|| {
                format!("invalid argument {v:?} for --stand-in-sync-period (seconds, 0 < s <= 60)")
            })?,
        None => Duration::from_millis(500),
    };
    let service_accounts = p.bool("use-service-account-credentials", false)?;
    let ours = [BOOTSTRAP_SIGNER, TOKEN_CLEANER, CSR_APPROVING, CSR_SIGNING];
    let running: Vec<&str> = enabled
        .iter()
        .copied()
        .filter(|c| ours.contains(c))
        .collect();
    let skipped = enabled.len() - running.len();
    log(&format!(
        "running {} against {} as system:kube-controller-manager{} ({skipped} other enabled controllers are not implemented by the stand-in)",
        running.join(", "),
        client.server(),
        if service_accounts {
            ", each controller with its service account's token"
        } else {
            ""
        },
    ));
    if !on(BOOTSTRAP_SIGNER) {
        log(
            "bootstrapsigner is not enabled (--controllers): kube-public/cluster-info will not be signed, and joins with bootstrap tokens will wait for it",
        );
    }
    let mut credentials = Credentials {
        base: client,
        service_accounts,
        cached: HashMap::new(),
    };
    let mut quiet = Quiet {
        last: HashMap::new(),
    };
    loop {
        if on(BOOTSTRAP_SIGNER) {
            pass(
                &mut credentials,
                &mut quiet,
                "bootstrap-signer",
                "bootstrapsigner",
                &mut |c| Ok(bootstrap_signer(c)?.into_iter().collect()),
            );
        }
        if on(TOKEN_CLEANER) {
            pass(
                &mut credentials,
                &mut quiet,
                "token-cleaner",
                "tokencleaner",
                &mut |c| token_cleaner(c),
            );
        }
        if on(CSR_APPROVING) {
            let mut refusals = Vec::new();
            pass(
                &mut credentials,
                &mut quiet,
                "certificate-controller",
                "csrapproving",
                &mut |c| {
                    let (approved, refused) = csr_approver(c)?;
                    refusals = refused;
                    Ok(approved
                        .iter()
                        .map(|n| format!("csrapproving: approved {n}"))
                        .collect())
                },
            );
            for r in refusals {
                quiet.log(&r, &r);
            }
        }
        if let Some(s) = &signer {
            pass(
                &mut credentials,
                &mut quiet,
                "certificate-controller",
                "csrsigning",
                &mut |c| csr_signer(c, s),
            );
        }
        std::thread::sleep(period);
    }
}

/// One controller pass with `account`'s client; its lines are logged, a failure at most every 30 s.
fn pass(
    credentials: &mut Credentials,
    quiet: &mut Quiet,
    account: &str,
    what: &str,
    f: &mut dyn FnMut(&Client) -> Result<Vec<String>, String>,
) {
    match credentials.client(account).and_then(|c| f(&c)) {
        Ok(lines) => lines.iter().for_each(|l| log(l)),
        Err(e) => {
            if e.contains(": 401 ") {
                credentials.forget(account);
            }
            quiet.log(what, &format!("{what}: {e}"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn controllers_are_chosen_like_upstream() {
        let on = enabled_controllers(&list(&["*"])).unwrap();
        assert!(on.contains(&CSR_APPROVING) && on.contains(&CSR_SIGNING));
        assert!(!on.contains(&BOOTSTRAP_SIGNER) && !on.contains(&TOKEN_CLEANER));
        let on = enabled_controllers(&list(&["*", "bootstrapsigner", "tokencleaner"])).unwrap();
        assert!(on.contains(&BOOTSTRAP_SIGNER) && on.contains(&TOKEN_CLEANER));
        let on = enabled_controllers(&list(&["*", "-csrsigning"])).unwrap();
        assert!(!on.contains(&CSR_SIGNING) && on.contains(&CSR_APPROVING));
        let on = enabled_controllers(&list(&["bootstrap-signer-controller"])).unwrap();
        assert_eq!(on, vec![BOOTSTRAP_SIGNER]);
        assert!(
            enabled_controllers(&list(&["*", "magic"]))
                .unwrap_err()
                .contains("\"magic\" is not in the list")
        );
    }

    #[test]
    fn go_durations() {
        assert_eq!(parse_go_duration("8760h0m0s"), Some(31_536_000));
        assert_eq!(parse_go_duration("1h30m"), Some(5400));
        assert_eq!(parse_go_duration("45s"), Some(45));
        assert_eq!(parse_go_duration("1500ms"), Some(1));
        assert_eq!(parse_go_duration("10"), None);
        assert_eq!(parse_go_duration("h"), None);
    }
}
