//! One request, start to end, in the real API server's order: authenticate (401), work out what is asked
//! (upstream's RequestInfo rules: `/api/v1/...` and `/apis/<group>/<version>/...` with four parts or more are
//! resource requests, everything else a path), authorize (403), then serve: health, version and discovery
//! documents, or the REST operations on [`super::resources::RESOURCES`].
//!
//! REST semantics as upstream: the server sets `metadata.uid`, `resourceVersion`, `creationTimestamp` (and a
//! name from `generateName`); create answers 201, a duplicate 409 AlreadyExists; PUT replaces, a stale
//! `resourceVersion` is 409 Conflict; PATCH takes merge patches (strategic merge patches are applied as merge
//! patches: lists are replaced, not merged) and JSON patches; DELETE honours `preconditions`; lists are
//! `{kind: <Kind>List, apiVersion, metadata: {resourceVersion}, items}` and take `labelSelector` and
//! `fieldSelector` (`metadata.name`, `metadata.namespace`, Secret `type`, CSR `spec.signerName`). JSON and YAML
//! bodies are read; answers are JSON (discovery too, even when the aggregated format is asked for: kubectl falls
//! back to the legacy documents). `watch` is not served (405).

use super::authn::{Authenticator, Outcome, User};
use super::authz::{self, Attributes};
use super::flags::Flags;
use super::http::{Request, Response};
use super::kinds::{self, Op};
use super::resources::{self, AUTHENTICATION, AUTHORIZATION, Resource, Storage};
use super::serviceaccount::Tokens;
use super::status::{self, ApiError, FieldError};
use super::store::{Key, Store, Txn};
use super::tls::ClientCa;
use crate::common::{str_at, time};
use rustls::pki_types::CertificateDer;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

/// The running server's configuration and state.
pub struct Server {
    pub flags: Flags,
    pub store: Store,
    pub client_ca: Option<ClientCa>,
    pub tokens: Tokens,
    pub etcd: Vec<String>,
    pub ready_at: Instant,
    /// `host:port` for `/api`'s serverAddressByClientCIDRs.
    pub address: String,
}

/// What was answered, for the log line.
pub struct Handled {
    pub response: Response,
    /// The user name (`-` when authentication failed).
    pub user: String,
    /// Why a request was refused (never a token or a key).
    pub note: String,
}

fn error(e: &ApiError) -> Response {
    Response::json(e.code, &e.to_status())
}

/// Serves one request.
pub fn handle(
    server: &Server,
    request: &Request,
    peer: Option<&[CertificateDer<'static>]>,
) -> Handled {
    // The etcd check of /readyz and /healthz is a TCP connect: made before taking the store's lock, so a slow
    // or absent etcd does not hold up other requests.
    let etcd_up = matches!(request.path().trim_end_matches('/'), "/readyz" | "/healthz")
        .then(|| etcd_ok(server));
    let outcome = server
        .store
        .with(|txn| handle_locked(server, txn, request, peer, etcd_up));
    let mut handled = match outcome {
        Ok(h) => h,
        Err(e) => Handled {
            response: error(&status::internal(e.clone())),
            user: "?".into(),
            note: e,
        },
    };
    handled.response.head_only = request.method == "HEAD";
    handled
}

/// Where a request goes.
enum Route {
    Path,
    Resource {
        resource: Option<&'static Resource>,
        version: String,
        extra: bool,
    },
}

/// upstream's RequestInfo: the attributes and the route.
fn request_info(request: &Request, user: &User) -> (Attributes, Route) {
    let path = request.path().to_string();
    let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
    let mut a = Attributes {
        user: user.clone(),
        verb: request.method.to_ascii_lowercase(),
        path: path.clone(),
        ..Attributes::default()
    };
    let (group, version, rest) = match parts.first() {
        Some(&"api") if parts.len() >= 3 => ("", parts[1], &parts[2..]),
        Some(&"apis") if parts.len() >= 4 => (parts[1], parts[2], &parts[3..]),
        _ => return (a, Route::Path),
    };
    a.resource_request = true;
    a.group = group.to_string();
    let mut rest: Vec<&str> = rest.to_vec();
    if rest[0] == "namespaces" && rest.len() > 1 {
        a.namespace = rest[1].to_string();
        if rest.len() > 2 && !matches!(rest[2], "status" | "finalize") {
            rest = rest[2..].to_vec();
        }
    }
    a.resource = rest[0].to_string();
    if let Some(n) = rest.get(1) {
        a.name = n.to_string();
    }
    if let Some(s) = rest.get(2) {
        a.subresource = s.to_string();
    }
    a.verb = match request.method.as_str() {
        "GET" | "HEAD" if a.name.is_empty() => {
            if request
                .param("watch")
                .is_some_and(|w| w == "true" || w == "1")
            {
                "watch".into()
            } else {
                "list".into()
            }
        }
        "GET" | "HEAD" => "get".into(),
        "POST" => "create".into(),
        "PUT" => "update".into(),
        "PATCH" => "patch".into(),
        "DELETE" if a.name.is_empty() => "deletecollection".into(),
        "DELETE" => "delete".into(),
        _ => String::new(),
    };
    if matches!(a.verb.as_str(), "list" | "watch")
        && let Some(fs) = request.param("fieldSelector")
        && let Some(name) = fs.split(',').find_map(|t| t.strip_prefix("metadata.name="))
        && kinds::is_path_segment(name)
    {
        a.name = name.to_string();
    }
    let resource = resources::find(group, version, &a.resource);
    let extra = rest.len() > 3;
    (
        a,
        Route::Resource {
            resource,
            version: version.to_string(),
            extra,
        },
    )
}

fn handle_locked(
    server: &Server,
    txn: &mut Txn<'_>,
    request: &Request,
    peer: Option<&[CertificateDer<'static>]>,
    etcd_up: Option<bool>,
) -> Handled {
    let authenticator = Authenticator {
        client_ca: server.client_ca.as_ref(),
        bootstrap_tokens: server.flags.enable_bootstrap_token_auth,
        anonymous: server.flags.anonymous_auth,
        tokens: &server.tokens,
    };
    let user = match authenticator.authenticate(txn, request.header("authorization"), peer) {
        Outcome::User(u) => u,
        Outcome::Rejected(why) => {
            return Handled {
                response: error(&status::unauthorized()),
                user: "-".into(),
                note: why,
            };
        }
    };
    let (attributes, route) = request_info(request, &user);
    let mut handled = Handled {
        response: Response::text(500, ""),
        user: user.name.clone(),
        note: String::new(),
    };
    if let Err(reason) = authz::authorize(&server.flags.authorization_modes, txn, &attributes) {
        let mut why = authz::forbidden_message(&attributes);
        if !reason.is_empty() {
            why = format!("{why}: {reason}");
        }
        let e = if attributes.resource_request {
            status::forbidden_raw(
                &attributes.resource,
                &attributes.group,
                &attributes.name,
                &why,
            )
        } else {
            status::forbidden_path(&why)
        };
        handled.response = error(&e);
        return handled;
    }
    let accept = request
        .header("accept")
        .unwrap_or("*/*")
        .to_ascii_lowercase();
    if !accept.contains("json")
        && !accept.contains("yaml")
        && !accept.contains("*/*")
        && accept.contains("protobuf")
    {
        handled.response = error(&status::not_acceptable());
        return handled;
    }
    handled.response = match route {
        Route::Path => non_resource(server, request, etcd_up.unwrap_or(false)),
        Route::Resource {
            resource,
            version,
            extra,
        } => match serve_resource(
            server,
            txn,
            request,
            &attributes,
            resource,
            &version,
            extra,
            &user,
        ) {
            Ok((code, body)) => Response::json(code, &body),
            Err(e) => {
                handled.note = e.message.clone();
                error(&e)
            }
        },
    };
    handled
}

fn version_info() -> Value {
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    };
    json!({
        "major": "1",
        "minor": "33",
        "emulationMajor": "1",
        "emulationMinor": "33",
        "minCompatibilityMajor": "1",
        "minCompatibilityMinor": "32",
        "gitVersion": "v1.33.0-standin+k8s-image-demo",
        "gitCommit": "0000000000000000000000000000000000000000",
        "gitTreeState": "clean",
        "buildDate": "1970-01-01T00:00:00Z",
        "goVersion": "none: STAND-IN kube-apiserver (k8s-image demo), not the real kube-apiserver",
        "compiler": "rustc",
        "platform": format!("linux/{arch}"),
    })
}

fn etcd_ok(server: &Server) -> bool {
    server
        .etcd
        .iter()
        .any(|e| super::checks::reachable(e, Duration::from_millis(300)).is_ok())
}

fn health(server: &Server, request: &Request, which: &str, etcd_up: bool) -> Response {
    let verbose = request.param("verbose").is_some();
    let mut checks = vec![("ping", Ok(()))];
    if which != "livez" {
        checks.push((
            "etcd",
            if etcd_up {
                Ok(())
            } else {
                Err("etcd does not accept connections".to_string())
            },
        ));
    }
    if which == "readyz" {
        let left = server.ready_at.saturating_duration_since(Instant::now());
        let secs = left.as_secs() + u64::from(left.subsec_nanos() > 0);
        checks.push((
            "stand-in-ready-delay",
            if left.is_zero() {
                Ok(())
            } else {
                Err(format!(
                    "STAND-IN kube-apiserver (k8s-image demo): not ready yet, --stand-in-ready-delay has about {secs}s left"
                ))
            },
        ));
    }
    let failed = checks.iter().any(|(_, r)| r.is_err());
    if !failed && !verbose {
        return Response::text(200, "ok");
    }
    let mut body = String::new();
    for (name, result) in &checks {
        match result {
            Ok(()) => body.push_str(&format!("[+]{name} ok\n")),
            Err(why) => body.push_str(&format!("[-]{name} failed: {why}\n")),
        }
    }
    body.push_str(&format!(
        "{which} check {}\n",
        if failed { "failed" } else { "passed" }
    ));
    Response::text(if failed { 500 } else { 200 }, body)
}

fn non_resource(server: &Server, request: &Request, etcd_up: bool) -> Response {
    let path = request.path().trim_end_matches('/');
    let get = matches!(request.method.as_str(), "GET" | "HEAD");
    let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
    let document = match parts.as_slice() {
        ["readyz"] | ["healthz"] | ["livez"] if get => {
            return health(server, request, parts[0], etcd_up);
        }
        ["version"] => Some(version_info()),
        ["api"] => Some(resources::api_versions(&server.address)),
        ["api", "v1"] => resources::api_resource_list("", "v1"),
        ["apis"] => Some(resources::api_group_list()),
        ["apis", group] => resources::api_group(group),
        ["apis", group, version] => resources::api_resource_list(group, version),
        _ => None,
    };
    match document {
        Some(d) if get => Response::json(200, &d),
        Some(_) => Response::text(405, "405: Method Not Allowed\n"),
        None => Response::text(
            404,
            "404 page not found (STAND-IN kube-apiserver, k8s-image demo: not a real Kubernetes API server)\n",
        ),
    }
}

/// Parses a request body (JSON or YAML).
fn body(request: &Request) -> Result<Value, ApiError> {
    let content_type = request
        .header("content-type")
        .unwrap_or("application/json")
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    if request.body.is_empty() {
        return Err(status::bad_request("the request has no body"));
    }
    let value: Value = match content_type.as_str() {
        "application/json"
        | "application/merge-patch+json"
        | "application/strategic-merge-patch+json"
        | "application/json-patch+json" => serde_json::from_slice(&request.body).map_err(|e| {
            status::bad_request(format!("the body of the request is not valid JSON: {e}"))
        })?,
        "application/yaml" => serde_yaml_ng::from_slice(&request.body).map_err(|e| {
            status::bad_request(format!("the body of the request is not valid YAML: {e}"))
        })?,
        "application/vnd.kubernetes.protobuf" => {
            super::protobuf::decode(&request.body).map_err(|e| ApiError {
                code: 415,
                reason: "UnsupportedMediaType",
                message: e,
                details: None,
            })?
        }
        other => return Err(status::unsupported_media_type(other)),
    };
    Ok(value)
}

fn check_kind(
    resource: &Resource,
    object: &Value,
    kind: &str,
    api_version: &str,
) -> Result<(), ApiError> {
    if !object.is_object() {
        return Err(status::bad_request("the body must be a JSON object"));
    }
    let k = str_at(object, &["kind"]);
    if !k.is_empty() && k != kind {
        return Err(status::bad_request(format!(
            "the kind in the data ({k}) does not match the expected kind ({kind}) for {}",
            resource.qualified()
        )));
    }
    let v = str_at(object, &["apiVersion"]);
    if !v.is_empty() && v != api_version {
        return Err(status::bad_request(format!(
            "the API version in the data ({v}) does not match the expected API version ({api_version})"
        )));
    }
    if object
        .get("metadata")
        .is_some_and(|m| !m.is_object() && !m.is_null())
    {
        return Err(status::bad_request("metadata must be an object"));
    }
    Ok(())
}

fn list_kind(resource: &Resource) -> String {
    format!("{}List", resource.kind)
}

/// One requirement of a label selector.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Requirement {
    Eq(String, String),
    Ne(String, String),
    Exists(String),
    NotExists(String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
}

fn split_top_level(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut depth = 0;
    let mut current = String::new();
    for c in s.chars() {
        match c {
            '(' => {
                depth += 1;
                current.push(c)
            }
            ')' => {
                depth -= 1;
                current.push(c)
            }
            ',' if depth == 0 => out.push(std::mem::take(&mut current)),
            _ => current.push(c),
        }
    }
    out.push(current);
    out.into_iter()
        .map(|t| t.trim().to_string())
        .filter(|t| !t.is_empty())
        .collect()
}

fn parse_label_selector(s: &str) -> Result<Vec<Requirement>, String> {
    let mut out = Vec::new();
    for term in split_top_level(s) {
        let set = |rest: &str| -> Result<Vec<String>, String> {
            let inner = rest
                .trim()
                .strip_prefix('(')
                .and_then(|r| r.strip_suffix(')'))
                .ok_or_else(|| format!("unable to parse requirement: {term:?}"))?;
            Ok(inner.split(',').map(|v| v.trim().to_string()).collect())
        };
        if let Some(k) = term.strip_prefix('!') {
            out.push(Requirement::NotExists(k.trim().to_string()));
        } else if let Some((k, v)) = term.split_once("!=") {
            out.push(Requirement::Ne(k.trim().into(), v.trim().into()));
        } else if let Some((k, v)) = term.split_once("==") {
            out.push(Requirement::Eq(k.trim().into(), v.trim().into()));
        } else if let Some((k, v)) = term.split_once('=') {
            out.push(Requirement::Eq(k.trim().into(), v.trim().into()));
        } else if let Some((k, rest)) = term.split_once(" notin ") {
            out.push(Requirement::NotIn(k.trim().into(), set(rest)?));
        } else if let Some((k, rest)) = term.split_once(" in ") {
            out.push(Requirement::In(k.trim().into(), set(rest)?));
        } else if term.contains(' ') || term.contains('(') {
            return Err(format!("unable to parse requirement: {term:?}"));
        } else {
            out.push(Requirement::Exists(term));
        }
    }
    Ok(out)
}

fn labels_match(object: &Value, requirements: &[Requirement]) -> bool {
    let label = |k: &str| {
        object
            .pointer("/metadata/labels")
            .and_then(|l| l.get(k))
            .and_then(Value::as_str)
    };
    requirements.iter().all(|r| match r {
        Requirement::Eq(k, v) => label(k) == Some(v.as_str()),
        Requirement::Ne(k, v) => label(k) != Some(v.as_str()),
        Requirement::Exists(k) => label(k).is_some(),
        Requirement::NotExists(k) => label(k).is_none(),
        Requirement::In(k, vs) => label(k).is_some_and(|l| vs.iter().any(|v| v == l)),
        Requirement::NotIn(k, vs) => label(k).is_none_or(|l| !vs.iter().any(|v| v == l)),
    })
}

fn field_value<'a>(resource: &Resource, object: &'a Value, field: &str) -> Option<&'a str> {
    match (resource.name, field) {
        (_, "metadata.name") => Some(str_at(object, &["metadata", "name"])),
        (_, "metadata.namespace") => Some(str_at(object, &["metadata", "namespace"])),
        ("secrets", "type") => Some(str_at(object, &["type"])),
        ("certificatesigningrequests", "spec.signerName") => {
            Some(str_at(object, &["spec", "signerName"]))
        }
        _ => None,
    }
}

fn fields_match(resource: &Resource, object: &Value, selector: &str) -> Result<bool, ApiError> {
    for term in selector.split(',').map(str::trim).filter(|t| !t.is_empty()) {
        let (field, value, equal) = if let Some((f, v)) = term.split_once("!=") {
            (f, v, false)
        } else if let Some((f, v)) = term.split_once("==") {
            (f, v, true)
        } else if let Some((f, v)) = term.split_once('=') {
            (f, v, true)
        } else {
            return Err(status::bad_request(format!(
                "invalid field selector: {term:?}"
            )));
        };
        let actual = field_value(resource, object, field.trim()).ok_or_else(|| {
            status::bad_request(format!("field label not supported: {}", field.trim()))
        })?;
        if (actual == value.trim()) != equal {
            return Ok(false);
        }
    }
    Ok(true)
}

#[allow(clippy::too_many_arguments)]
fn serve_resource(
    server: &Server,
    txn: &mut Txn<'_>,
    request: &Request,
    a: &Attributes,
    resource: Option<&'static Resource>,
    version: &str,
    extra: bool,
    user: &User,
) -> Result<(u16, Value), ApiError> {
    let Some(resource) = resource.filter(|_| !extra) else {
        return Err(status::no_such_resource());
    };
    let _ = version;
    let is_namespace_kind = resource.group.is_empty() && resource.name == "namespaces";
    let namespace = if is_namespace_kind {
        ""
    } else {
        a.namespace.as_str()
    };
    if !resource.namespaced && !namespace.is_empty() {
        return Err(status::no_such_resource());
    }
    if !a.subresource.is_empty() && !resource.has_subresource(&a.subresource) {
        return Err(status::no_such_resource());
    }
    if resource.storage == Storage::Review {
        return match a.verb.as_str() {
            "create" => review(server, txn, request, resource, user),
            _ => Err(status::method_not_supported(resource, &request.method)),
        };
    }
    let named = !a.name.is_empty() && !matches!(a.verb.as_str(), "list" | "watch");
    if resource.namespaced && namespace.is_empty() && (named || a.verb == "create") {
        return Err(status::method_not_supported(resource, &request.method));
    }
    match a.verb.as_str() {
        "get" => {
            if a.subresource == "token" {
                return Err(status::method_not_supported(resource, &request.method));
            }
            let key = Key::new(&resource.key(), namespace, &a.name);
            txn.get(&key)
                .cloned()
                .map(|o| (200, o))
                .ok_or_else(|| status::not_found(resource, &a.name))
        }
        "list" => list(txn, request, resource, namespace),
        "watch" => Err(ApiError {
            code: 405,
            reason: "MethodNotAllowed",
            message: "the STAND-IN kube-apiserver (k8s-image demo) does not serve watch; poll with list instead".into(),
            details: None,
        }),
        "create" if a.subresource == "token" => token_request(server, txn, request, resource, namespace, &a.name),
        "create" if a.subresource.is_empty() && a.name.is_empty() => {
            create(server, txn, request, resource, namespace, user)
        }
        "update" | "patch" if !a.name.is_empty() && a.subresource != "token" => {
            update(server, txn, request, resource, namespace, &a.name, &a.subresource, user, a.verb == "patch")
        }
        "delete" if a.subresource.is_empty() => delete(server, txn, request, resource, namespace, &a.name, user),
        _ => Err(status::method_not_supported(resource, &request.method)),
    }
}

fn list(
    txn: &Txn<'_>,
    request: &Request,
    resource: &Resource,
    namespace: &str,
) -> Result<(u16, Value), ApiError> {
    let labels = match request.param("labelSelector") {
        Some(s) => parse_label_selector(&s).map_err(status::bad_request)?,
        None => Vec::new(),
    };
    let fields = request.param("fieldSelector").unwrap_or_default();
    let ns = (!namespace.is_empty()).then_some(namespace);
    let mut items = Vec::new();
    for object in txn.list(&resource.key(), ns) {
        if labels_match(object, &labels) && fields_match(resource, object, &fields)? {
            items.push(object.clone());
        }
    }
    Ok((
        200,
        json!({
            "kind": list_kind(resource),
            "apiVersion": resource.api_version(),
            "metadata": {"resourceVersion": txn.revision().to_string()},
            "items": items,
        }),
    ))
}

fn invalid_or(resource: &Resource, name: &str, errors: Vec<FieldError>) -> Result<(), ApiError> {
    if errors.is_empty() {
        Ok(())
    } else {
        Err(status::invalid(resource, name, &errors))
    }
}

fn create(
    server: &Server,
    txn: &mut Txn<'_>,
    request: &Request,
    resource: &'static Resource,
    namespace: &str,
    user: &User,
) -> Result<(u16, Value), ApiError> {
    let mut object = body(request)?;
    check_kind(resource, &object, resource.kind, &resource.api_version())?;
    kinds::check_metadata_types(&object)?;
    object["kind"] = json!(resource.kind);
    object["apiVersion"] = json!(resource.api_version());
    if !object.get("metadata").is_some_and(Value::is_object) {
        object["metadata"] = json!({});
    }
    let body_namespace = str_at(&object, &["metadata", "namespace"]).to_string();
    if resource.namespaced {
        if !body_namespace.is_empty() && body_namespace != namespace {
            return Err(status::bad_request(
                "the namespace of the provided object does not match the namespace sent on the request",
            ));
        }
        object["metadata"]["namespace"] = json!(namespace);
        if txn.get(&Key::new("namespaces", "", namespace)).is_none() {
            return Err(status::namespace_not_found(namespace));
        }
    } else if let Some(m) = object["metadata"].as_object_mut() {
        m.remove("namespace");
    }
    let mut name = str_at(&object, &["metadata", "name"]).to_string();
    let generate = str_at(&object, &["metadata", "generateName"]).to_string();
    if name.is_empty() && !generate.is_empty() {
        for _ in 0..8 {
            let candidate = format!("{generate}{}", crate::common::random_suffix(5));
            if txn
                .get(&Key::new(&resource.key(), namespace, &candidate))
                .is_none()
            {
                name = candidate;
                break;
            }
        }
        object["metadata"]["name"] = json!(name);
    }
    let meta = object["metadata"]
        .as_object_mut()
        .ok_or_else(|| status::internal("metadata"))?;
    for f in [
        "resourceVersion",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "managedFields",
        "selfLink",
    ] {
        meta.remove(f);
    }
    meta.insert("uid".into(), json!(crate::common::uuid()));
    meta.insert(
        "creationTimestamp".into(),
        json!(time::rfc3339(time::now())),
    );
    kinds::prepare_create(resource, &mut object, user)?;
    invalid_or(resource, &name, kinds::validate(resource, &object, None))?;
    kinds::admit(
        resource,
        Op::Create,
        "",
        &object,
        None,
        user,
        txn,
        &server.flags.authorization_modes,
        node_restriction(server),
    )?;
    let key = Key::new(&resource.key(), namespace, &name);
    if txn.get(&key).is_some() {
        return Err(status::already_exists(resource, &name));
    }
    Ok((201, txn.put(key, object)))
}

fn node_restriction(server: &Server) -> bool {
    server
        .flags
        .admission_plugins
        .iter()
        .any(|p| p == "NodeRestriction")
}

/// RFC 6902 JSON patch (add, remove, replace, test, copy, move).
fn json_patch(target: &mut Value, ops: &Value) -> Result<(), String> {
    let ops = ops.as_array().ok_or("a JSON patch must be an array")?;
    fn unescape(t: &str) -> String {
        t.replace("~1", "/").replace("~0", "~")
    }
    fn split(path: &str) -> Result<(String, String), String> {
        let (parent, last) = path
            .rsplit_once('/')
            .ok_or_else(|| format!("bad path {path:?}"))?;
        Ok((parent.to_string(), unescape(last)))
    }
    fn add(target: &mut Value, path: &str, value: Value) -> Result<(), String> {
        if path.is_empty() {
            *target = value;
            return Ok(());
        }
        let (parent, last) = split(path)?;
        match target
            .pointer_mut(&parent)
            .ok_or_else(|| format!("no {parent:?}"))?
        {
            Value::Object(m) => {
                m.insert(last, value);
                Ok(())
            }
            Value::Array(a) => {
                let i = if last == "-" {
                    a.len()
                } else {
                    last.parse().map_err(|_| format!("bad index {last:?}"))?
                };
                if i > a.len() {
                    return Err(format!("index {i} out of range"));
                }
                a.insert(i, value);
                Ok(())
            }
            _ => Err(format!("{parent:?} is not a container")),
        }
    }
    fn remove(target: &mut Value, path: &str) -> Result<Value, String> {
        let (parent, last) = split(path)?;
        match target
            .pointer_mut(&parent)
            .ok_or_else(|| format!("no {parent:?}"))?
        {
            Value::Object(m) => m.remove(&last).ok_or_else(|| format!("no {path:?}")),
            Value::Array(a) => {
                let i: usize = last.parse().map_err(|_| format!("bad index {last:?}"))?;
                if i >= a.len() {
                    return Err(format!("index {i} out of range"));
                }
                Ok(a.remove(i))
            }
            _ => Err(format!("{parent:?} is not a container")),
        }
    }
    for op in ops {
        let path = str_at(op, &["path"]);
        let value = op.get("value").cloned().unwrap_or(Value::Null);
        match str_at(op, &["op"]) {
            "add" => add(target, path, value)?,
            "remove" => {
                remove(target, path)?;
            }
            "replace" => {
                remove(target, path)?;
                add(target, path, value)?;
            }
            "test" => {
                if target.pointer(path) != Some(&value) {
                    return Err(format!("test failed at {path:?}"));
                }
            }
            "copy" | "move" => {
                let from = str_at(op, &["from"]);
                let v = if str_at(op, &["op"]) == "move" {
                    remove(target, from)?
                } else {
                    target
                        .pointer(from)
                        .cloned()
                        .ok_or_else(|| format!("no {from:?}"))?
                };
                add(target, path, v)?;
            }
            other => return Err(format!("unknown JSON patch operation {other:?}")),
        }
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn update(
    server: &Server,
    txn: &mut Txn<'_>,
    request: &Request,
    resource: &'static Resource,
    namespace: &str,
    name: &str,
    sub: &str,
    user: &User,
    patch: bool,
) -> Result<(u16, Value), ApiError> {
    let key = Key::new(&resource.key(), namespace, name);
    let old = txn
        .get(&key)
        .cloned()
        .ok_or_else(|| status::not_found(resource, name))?;
    let mut object = if patch {
        let content_type = request
            .header("content-type")
            .unwrap_or_default()
            .to_ascii_lowercase();
        let p = body(request)?;
        let mut target = old.clone();
        if content_type.starts_with("application/json-patch+json") {
            json_patch(&mut target, &p)
                .map_err(|e| status::bad_request(format!("the JSON patch does not apply: {e}")))?;
        } else if content_type.starts_with("application/merge-patch+json")
            || content_type.starts_with("application/strategic-merge-patch+json")
        {
            if !p.is_object() {
                return Err(status::bad_request("a merge patch must be a JSON object"));
            }
            kinds::merge_patch(&mut target, &p);
        } else {
            return Err(status::unsupported_media_type(&content_type));
        }
        target
    } else {
        body(request)?
    };
    let (kind, api_version) = (resource.kind, resource.api_version());
    check_kind(resource, &object, kind, &api_version)?;
    kinds::check_metadata_types(&object)?;
    object["kind"] = json!(kind);
    object["apiVersion"] = json!(api_version);
    if !object.get("metadata").is_some_and(Value::is_object) {
        object["metadata"] = json!({});
    }
    let body_name = str_at(&object, &["metadata", "name"]);
    if !body_name.is_empty() && body_name != name {
        return Err(status::bad_request(format!(
            "the name of the object ({body_name}) does not match the name on the URL ({name})"
        )));
    }
    if resource.namespaced {
        let body_namespace = str_at(&object, &["metadata", "namespace"]);
        if !body_namespace.is_empty() && body_namespace != namespace {
            return Err(status::bad_request(
                "the namespace of the provided object does not match the namespace sent on the request",
            ));
        }
    }
    let asked = str_at(&object, &["metadata", "resourceVersion"]).to_string();
    if !asked.is_empty() && asked != str_at(&old, &["metadata", "resourceVersion"]) {
        return Err(status::conflict(resource, name));
    }
    for field in ["uid", "creationTimestamp", "name", "namespace"] {
        match old.pointer(&format!("/metadata/{field}")) {
            Some(v) => object["metadata"][field] = v.clone(),
            None => {
                if let Some(m) = object["metadata"].as_object_mut() {
                    m.remove(field);
                }
            }
        }
    }
    kinds::prepare_update(resource, sub, &mut object, &old, time::now())?;
    invalid_or(
        resource,
        name,
        kinds::validate(resource, &object, Some(&old)),
    )?;
    kinds::admit(
        resource,
        Op::Update,
        sub,
        &object,
        Some(&old),
        user,
        txn,
        &server.flags.authorization_modes,
        node_restriction(server),
    )?;
    Ok((200, txn.put(key, object)))
}

fn delete(
    server: &Server,
    txn: &mut Txn<'_>,
    request: &Request,
    resource: &'static Resource,
    namespace: &str,
    name: &str,
    user: &User,
) -> Result<(u16, Value), ApiError> {
    let key = Key::new(&resource.key(), namespace, name);
    let old = txn
        .get(&key)
        .cloned()
        .ok_or_else(|| status::not_found(resource, name))?;
    if !request.body.is_empty() {
        let options = body(request)?;
        let uid = str_at(&options, &["preconditions", "uid"]);
        let old_uid = str_at(&old, &["metadata", "uid"]);
        if !uid.is_empty() && uid != old_uid {
            return Err(status::conflict_because(
                resource,
                name,
                &format!(
                    "Precondition failed: UID in precondition: {uid}, UID in object meta: {old_uid}"
                ),
            ));
        }
        let rv = str_at(&options, &["preconditions", "resourceVersion"]);
        let old_rv = str_at(&old, &["metadata", "resourceVersion"]);
        if !rv.is_empty() && rv != old_rv {
            return Err(status::conflict_because(
                resource,
                name,
                &format!(
                    "Precondition failed: ResourceVersion in precondition: {rv}, ResourceVersion in object meta: {old_rv}"
                ),
            ));
        }
    }
    if resource.group.is_empty() && resource.name == "namespaces" {
        if matches!(name, "default" | "kube-system" | "kube-public") {
            return Err(status::forbidden(
                resource,
                name,
                "this namespace may not be deleted",
            ));
        }
        for r in resources::RESOURCES.iter().filter(|r| r.namespaced) {
            let keys: Vec<Key> = txn
                .list(&r.key(), Some(name))
                .iter()
                .map(|o| Key::new(&r.key(), name, str_at(o, &["metadata", "name"])))
                .collect();
            for k in keys {
                txn.delete(&k);
            }
        }
    }
    kinds::admit(
        resource,
        Op::Delete,
        "",
        &old,
        Some(&old),
        user,
        txn,
        &server.flags.authorization_modes,
        node_restriction(server),
    )?;
    txn.delete(&key);
    let mut details =
        json!({"name": name, "kind": resource.name, "uid": str_at(&old, &["metadata", "uid"])});
    if !resource.group.is_empty() {
        details["group"] = json!(resource.group);
    }
    Ok((
        200,
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "details": details}),
    ))
}

fn token_request(
    server: &Server,
    txn: &mut Txn<'_>,
    request: &Request,
    resource: &'static Resource,
    namespace: &str,
    name: &str,
) -> Result<(u16, Value), ApiError> {
    let account = txn
        .get(&Key::new("serviceaccounts", namespace, name))
        .cloned()
        .ok_or_else(|| status::not_found(resource, name))?;
    let mut review = body(request)?;
    check_kind(
        resource,
        &review,
        "TokenRequest",
        "authentication.k8s.io/v1",
    )?;
    let audiences: Vec<String> = review
        .pointer("/spec/audiences")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .filter(|a: &Vec<String>| !a.is_empty())
        .unwrap_or_else(|| server.flags.api_audiences.clone());
    let seconds = review
        .pointer("/spec/expirationSeconds")
        .and_then(Value::as_i64)
        .unwrap_or(3600);
    if seconds < 600 {
        return Err(status::invalid(
            resource,
            name,
            &[FieldError::invalid(
                "spec.expirationSeconds",
                &seconds.to_string(),
                "may not specify a duration less than 10 minutes",
            )],
        ));
    }
    let seconds = seconds.min(48 * 3600);
    let now = time::now();
    let token = server
        .tokens
        .issue(
            namespace,
            name,
            str_at(&account, &["metadata", "uid"]),
            &audiences,
            seconds,
            now,
        )
        .map_err(status::internal)?;
    review["apiVersion"] = json!("authentication.k8s.io/v1");
    review["kind"] = json!("TokenRequest");
    review["metadata"] =
        json!({"name": name, "namespace": namespace, "creationTimestamp": time::rfc3339(now)});
    review["spec"]["audiences"] = json!(audiences);
    review["spec"]["expirationSeconds"] = json!(seconds);
    review["status"] = json!({"token": token, "expirationTimestamp": time::rfc3339(now + seconds)});
    Ok((201, review))
}

fn attributes_from_spec(spec: &Value, user: User) -> Result<Attributes, String> {
    let resource = spec.get("resourceAttributes").filter(|v| v.is_object());
    let non_resource = spec.get("nonResourceAttributes").filter(|v| v.is_object());
    match (resource, non_resource) {
        (Some(r), None) => Ok(Attributes {
            user,
            verb: str_at(r, &["verb"]).into(),
            resource_request: true,
            group: str_at(r, &["group"]).into(),
            resource: str_at(r, &["resource"]).into(),
            subresource: str_at(r, &["subresource"]).into(),
            namespace: str_at(r, &["namespace"]).into(),
            name: str_at(r, &["name"]).into(),
            path: String::new(),
        }),
        (None, Some(n)) => Ok(Attributes {
            user,
            verb: str_at(n, &["verb"]).into(),
            path: str_at(n, &["path"]).into(),
            ..Attributes::default()
        }),
        _ => Err(
            "exactly one of nonResourceAttributes or resourceAttributes must be specified".into(),
        ),
    }
}

fn review(
    server: &Server,
    txn: &mut Txn<'_>,
    request: &Request,
    resource: &'static Resource,
    user: &User,
) -> Result<(u16, Value), ApiError> {
    let mut object = body(request)?;
    let api_version = resource.api_version();
    check_kind(resource, &object, resource.kind, &api_version)?;
    object["apiVersion"] = json!(api_version);
    object["kind"] = json!(resource.kind);
    object["metadata"] = json!({"creationTimestamp": time::rfc3339(time::now())});
    let spec = object.get("spec").cloned().unwrap_or_else(|| json!({}));
    match (resource.group, resource.name) {
        (AUTHENTICATION, "selfsubjectreviews") => {
            object["status"] = json!({"userInfo": user.to_json()});
        }
        (AUTHENTICATION, "tokenreviews") => {
            let token = str_at(&spec, &["token"]);
            if token.is_empty() {
                return Err(status::invalid(
                    resource,
                    "",
                    &[FieldError::required("spec.token", "")],
                ));
            }
            let authenticator = Authenticator {
                client_ca: None,
                bootstrap_tokens: server.flags.enable_bootstrap_token_auth,
                anonymous: false,
                tokens: &server.tokens,
            };
            let header = format!("Bearer {token}");
            object["status"] = match authenticator.authenticate(txn, Some(&header), None) {
                Outcome::User(u) => {
                    json!({"authenticated": true, "user": u.to_json(), "audiences": server.flags.api_audiences})
                }
                Outcome::Rejected(_) => {
                    json!({"authenticated": false, "error": "invalid bearer token"})
                }
            };
        }
        (AUTHORIZATION, "subjectaccessreviews") => {
            let name = str_at(&spec, &["user"]).to_string();
            let groups: Vec<String> = spec
                .get("groups")
                .and_then(Value::as_array)
                .map(|g| {
                    g.iter()
                        .filter_map(Value::as_str)
                        .map(str::to_string)
                        .collect()
                })
                .unwrap_or_default();
            if name.is_empty() && groups.is_empty() {
                return Err(status::invalid(
                    resource,
                    "",
                    &[FieldError::invalid(
                        "spec.user",
                        "",
                        "at least one of user or group must be specified",
                    )],
                ));
            }
            let extra = spec
                .get("extra")
                .and_then(|e| serde_json::from_value(e.clone()).ok())
                .unwrap_or_default();
            let subject = User {
                name,
                uid: str_at(&spec, &["uid"]).into(),
                groups,
                extra,
            };
            let a = attributes_from_spec(&spec, subject).map_err(|e| {
                status::invalid(
                    resource,
                    "",
                    &[FieldError::invalid("spec.resourceAttributes", "", &e)],
                )
            })?;
            object["status"] = access_status(server, txn, &a);
        }
        (AUTHORIZATION, "selfsubjectaccessreviews") => {
            let a = attributes_from_spec(&spec, user.clone()).map_err(|e| {
                status::invalid(
                    resource,
                    "",
                    &[FieldError::invalid("spec.resourceAttributes", "", &e)],
                )
            })?;
            object["status"] = access_status(server, txn, &a);
        }
        _ => return Err(status::no_such_resource()),
    }
    Ok((201, object))
}

fn access_status(server: &Server, txn: &Txn<'_>, a: &Attributes) -> Value {
    match authz::authorize(&server.flags.authorization_modes, txn, a) {
        Ok(()) => json!({"allowed": true}),
        Err(reason) if reason.is_empty() => json!({"allowed": false}),
        Err(reason) => json!({"allowed": false, "reason": reason}),
    }
}

/// Creates what the real API server has from its first start: the namespaces and the bootstrap RBAC objects
/// (each only when missing, so changes made through the API are kept).
pub fn bootstrap(store: &Store) -> Result<usize, String> {
    store.with(|txn| {
        let mut created = 0;
        let now = time::rfc3339(time::now());
        let mut add = |txn: &mut Txn<'_>, resource: &str, mut object: Value| {
            let namespace = str_at(&object, &["metadata", "namespace"]).to_string();
            let name = str_at(&object, &["metadata", "name"]).to_string();
            let key = Key::new(resource, &namespace, &name);
            if txn.get(&key).is_none() {
                object["metadata"]["uid"] = json!(crate::common::uuid());
                object["metadata"]["creationTimestamp"] = json!(now);
                txn.put(key, object);
                created += 1;
            }
        };
        for ns in super::policy::NAMESPACES {
            add(
                txn,
                "namespaces",
                json!({
                    "apiVersion": "v1",
                    "kind": "Namespace",
                    "metadata": {"name": ns, "labels": {"kubernetes.io/metadata.name": ns}},
                    "spec": {"finalizers": ["kubernetes"]},
                    "status": {"phase": "Active"},
                }),
            );
        }
        for (resource, object) in super::policy::objects() {
            add(txn, resource, object);
        }
        created
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_selectors() {
        let o = json!({"metadata": {"labels": {"a": "1", "b": "2"}}});
        let m = |s: &str| labels_match(&o, &parse_label_selector(s).unwrap());
        assert!(m("a=1"));
        assert!(m("a==1,b=2"));
        assert!(!m("a=2"));
        assert!(m("a!=2"));
        assert!(m("a"));
        assert!(!m("!a"));
        assert!(m("!c"));
        assert!(m("a in (1,3)"));
        assert!(!m("a notin (1,3)"));
        assert!(m(""));
        assert!(parse_label_selector("a in 1").is_err());
    }

    #[test]
    fn request_info_follows_upstream() {
        let req = |m: &str, t: &str| Request {
            method: m.into(),
            target: t.into(),
            ..Request::default()
        };
        let u = User::anonymous();
        let (a, _) = request_info(
            &req(
                "GET",
                "/api/v1/namespaces/kube-public/configmaps/cluster-info",
            ),
            &u,
        );
        assert_eq!(
            (
                a.verb.as_str(),
                a.namespace.as_str(),
                a.resource.as_str(),
                a.name.as_str()
            ),
            ("get", "kube-public", "configmaps", "cluster-info")
        );
        let (a, _) = request_info(&req("GET", "/api/v1/namespaces/kube-public"), &u);
        assert_eq!(
            (a.resource.as_str(), a.name.as_str(), a.namespace.as_str()),
            ("namespaces", "kube-public", "kube-public")
        );
        let (a, _) = request_info(
            &req(
                "PUT",
                "/apis/certificates.k8s.io/v1/certificatesigningrequests/x/approval",
            ),
            &u,
        );
        assert_eq!(
            (a.verb.as_str(), a.subresource.as_str(), a.group.as_str()),
            ("update", "approval", "certificates.k8s.io")
        );
        let (a, _) = request_info(
            &req("GET", "/api/v1/nodes?fieldSelector=metadata.name%3Dn1"),
            &u,
        );
        assert_eq!((a.verb.as_str(), a.name.as_str()), ("list", "n1"));
        let (a, _) = request_info(&req("HEAD", "/readyz"), &u);
        assert_eq!((a.verb.as_str(), a.resource_request), ("head", false));
        let (a, _) = request_info(&req("GET", "/apis/rbac.authorization.k8s.io/v1"), &u);
        assert!(!a.resource_request);
        let (a, _) = request_info(&req("DELETE", "/api/v1/namespaces/x/secrets"), &u);
        assert_eq!(a.verb, "deletecollection");
    }

    #[test]
    fn json_patches_apply() {
        let mut t = json!({"metadata": {"labels": {"a": "1"}}, "list": [1, 2]});
        json_patch(
            &mut t,
            &json!([
                {"op": "add", "path": "/metadata/labels/b", "value": "2"},
                {"op": "replace", "path": "/list/0", "value": 9},
                {"op": "remove", "path": "/metadata/labels/a"},
                {"op": "add", "path": "/list/-", "value": 3},
                {"op": "test", "path": "/list/1", "value": 2}
            ]),
        )
        .unwrap();
        assert_eq!(
            t,
            json!({"metadata": {"labels": {"b": "2"}}, "list": [9, 2, 3]})
        );
        assert!(
            json_patch(
                &mut t,
                &json!([{"op": "test", "path": "/list/0", "value": 1}])
            )
            .is_err()
        );
    }
}
