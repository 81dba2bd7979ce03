//! API errors as the real API server writes them: a `Status` object (`kind: Status`, `status: Failure`,
//! `message`, `reason`, `details`, `code`) with the messages of k8s.io/apimachinery's `errors` package.

use super::resources::Resource;
use serde_json::{Value, json};

/// An error answer.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    pub code: u16,
    pub reason: &'static str,
    pub message: String,
    pub details: Option<Value>,
}

impl ApiError {
    fn new(code: u16, reason: &'static str, message: String, details: Option<Value>) -> ApiError {
        ApiError {
            code,
            reason,
            message,
            details,
        }
    }

    /// The `Status` object.
    pub fn to_status(&self) -> Value {
        let mut status = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        });
        if let Some(d) = &self.details {
            status["details"] = d.clone();
        }
        status
    }
}

fn details(resource: &Resource, name: &str) -> Value {
    let mut d = json!({"kind": resource.name});
    if !name.is_empty() {
        d["name"] = json!(name);
    }
    if !resource.group.is_empty() {
        d["group"] = json!(resource.group);
    }
    d
}

/// 401, as for any request whose credentials do not authenticate.
pub fn unauthorized() -> ApiError {
    ApiError::new(401, "Unauthorized", "Unauthorized".into(), None)
}

/// 403 for a resource request: `configmaps "cluster-info" is forbidden: <why>`.
pub fn forbidden(resource: &Resource, name: &str, why: &str) -> ApiError {
    forbidden_raw(resource.name, resource.group, name, why)
}

/// 403 for a resource request, the resource given by name and group (it need not be served).
pub fn forbidden_raw(resource: &str, group: &str, name: &str, why: &str) -> ApiError {
    let qualified = if group.is_empty() {
        resource.to_string()
    } else {
        format!("{resource}.{group}")
    };
    let message = if name.is_empty() {
        format!("{qualified} is forbidden: {why}")
    } else {
        format!("{qualified} {name:?} is forbidden: {why}")
    };
    let mut d = json!({"kind": resource});
    if !name.is_empty() {
        d["name"] = json!(name);
    }
    if !group.is_empty() {
        d["group"] = json!(group);
    }
    ApiError::new(403, "Forbidden", message, Some(d))
}

/// 403 for a non-resource path: `forbidden: <why>`.
pub fn forbidden_path(why: &str) -> ApiError {
    ApiError::new(
        403,
        "Forbidden",
        format!("forbidden: {why}"),
        Some(json!({})),
    )
}

/// 404: `configmaps "x" not found`.
pub fn not_found(resource: &Resource, name: &str) -> ApiError {
    ApiError::new(
        404,
        "NotFound",
        format!("{} {name:?} not found", resource.qualified()),
        Some(details(resource, name)),
    )
}

/// 404 for a namespace that does not exist.
pub fn namespace_not_found(namespace: &str) -> ApiError {
    ApiError::new(
        404,
        "NotFound",
        format!("namespaces {namespace:?} not found"),
        Some(json!({"name": namespace, "kind": "namespaces"})),
    )
}

/// 404 for a path under a served API that names no resource.
pub fn no_such_resource() -> ApiError {
    ApiError::new(
        404,
        "NotFound",
        "the server could not find the requested resource".into(),
        Some(json!({})),
    )
}

/// 409: `secrets "x" already exists`.
pub fn already_exists(resource: &Resource, name: &str) -> ApiError {
    ApiError::new(
        409,
        "AlreadyExists",
        format!("{} {name:?} already exists", resource.qualified()),
        Some(details(resource, name)),
    )
}

/// 409 on a stale `resourceVersion`.
pub fn conflict(resource: &Resource, name: &str) -> ApiError {
    conflict_because(
        resource,
        name,
        "the object has been modified; please apply your changes to the latest version and try again",
    )
}

/// 409 with a reason (a failed precondition).
pub fn conflict_because(resource: &Resource, name: &str, why: &str) -> ApiError {
    ApiError::new(
        409,
        "Conflict",
        format!(
            "Operation cannot be fulfilled on {} {name:?}: {why}",
            resource.qualified()
        ),
        Some(details(resource, name)),
    )
}

/// One field error of an Invalid answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    pub field: String,
    /// `FieldValueInvalid`, `FieldValueRequired`, `FieldValueForbidden`, `FieldValueNotSupported`, ...
    pub reason: &'static str,
    /// The whole message, e.g. `spec.usages: Required value`.
    pub message: String,
}

impl FieldError {
    pub fn required(field: &str, detail: &str) -> FieldError {
        let message = if detail.is_empty() {
            format!("{field}: Required value")
        } else {
            format!("{field}: Required value: {detail}")
        };
        FieldError {
            field: field.into(),
            reason: "FieldValueRequired",
            message,
        }
    }

    pub fn invalid(field: &str, value: &str, detail: &str) -> FieldError {
        FieldError {
            field: field.into(),
            reason: "FieldValueInvalid",
            message: format!("{field}: Invalid value: {value:?}: {detail}"),
        }
    }

    pub fn forbidden(field: &str, detail: &str) -> FieldError {
        FieldError {
            field: field.into(),
            reason: "FieldValueForbidden",
            message: format!("{field}: Forbidden: {detail}"),
        }
    }

    pub fn not_supported(field: &str, value: &str, supported: &[&str]) -> FieldError {
        let list: Vec<String> = supported.iter().map(|s| format!("{s:?}")).collect();
        FieldError {
            field: field.into(),
            reason: "FieldValueNotSupported",
            message: format!(
                "{field}: Unsupported value: {value:?}: supported values: {}",
                list.join(", ")
            ),
        }
    }
}

/// 422: `ConfigMap "x" is invalid: <errors>`.
pub fn invalid(resource: &Resource, name: &str, errors: &[FieldError]) -> ApiError {
    let joined = if errors.len() == 1 {
        errors[0].message.clone()
    } else {
        format!(
            "[{}]",
            errors
                .iter()
                .map(|e| e.message.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )
    };
    let causes: Vec<Value> = errors
        .iter()
        .map(|e| json!({"reason": e.reason, "message": e.message, "field": e.field}))
        .collect();
    let mut d = json!({"name": name, "kind": resource.kind, "causes": causes});
    if !resource.group.is_empty() {
        d["group"] = json!(resource.group);
    }
    ApiError::new(
        422,
        "Invalid",
        format!(
            "{} {name:?} is invalid: {joined}",
            resource.qualified_kind()
        ),
        Some(d),
    )
}

/// 400.
pub fn bad_request(message: impl Into<String>) -> ApiError {
    ApiError::new(400, "BadRequest", message.into(), None)
}

/// 405.
pub fn method_not_supported(resource: &Resource, method: &str) -> ApiError {
    ApiError::new(
        405,
        "MethodNotAllowed",
        format!(
            "the server does not allow this method on the requested resource ({method} {})",
            resource.qualified()
        ),
        Some(details(resource, "")),
    )
}

/// 406 (protobuf only, which the stand-in does not speak).
pub fn not_acceptable() -> ApiError {
    ApiError::new(
        406,
        "NotAcceptable",
        "only the following media types are accepted: application/json, application/yaml (the STAND-IN kube-apiserver does not speak protobuf)".into(),
        None,
    )
}

/// 415.
pub fn unsupported_media_type(content_type: &str) -> ApiError {
    ApiError::new(
        415,
        "UnsupportedMediaType",
        format!(
            "the body of the request was in an unknown format - accepted media types include: application/json, application/yaml (got {content_type:?}; the STAND-IN kube-apiserver does not speak protobuf)"
        ),
        None,
    )
}

/// 413.
pub fn too_large() -> ApiError {
    ApiError::new(
        413,
        "RequestEntityTooLarge",
        "Request entity too large: limit is 3145728".into(),
        None,
    )
}

/// 500.
pub fn internal(message: impl Into<String>) -> ApiError {
    ApiError::new(
        500,
        "InternalError",
        format!("Internal error occurred: {}", message.into()),
        None,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apiserver::resources::find;

    #[test]
    fn messages_read_like_the_real_ones() {
        let cm = find("", "v1", "configmaps").unwrap();
        let e = forbidden(
            cm,
            "cluster-info",
            "User \"system:anonymous\" cannot get resource \"configmaps\" in API group \"\" in the namespace \"kube-public\"",
        );
        assert_eq!(
            e.message,
            "configmaps \"cluster-info\" is forbidden: User \"system:anonymous\" cannot get resource \"configmaps\" in API group \"\" in the namespace \"kube-public\""
        );
        let s = e.to_status();
        assert_eq!(s["reason"], "Forbidden");
        assert_eq!(s["code"], 403);
        assert_eq!(s["details"]["kind"], "configmaps");
        assert_eq!(not_found(cm, "x").message, "configmaps \"x\" not found");
        let csr = find(
            crate::apiserver::resources::CERTIFICATES,
            "v1",
            "certificatesigningrequests",
        )
        .unwrap();
        let e = invalid(csr, "x", &[FieldError::required("spec.usages", "")]);
        assert_eq!(
            e.message,
            "CertificateSigningRequest.certificates.k8s.io \"x\" is invalid: spec.usages: Required value"
        );
    }
}
