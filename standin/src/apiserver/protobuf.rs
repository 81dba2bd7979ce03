//! Protobuf request bodies, for the few kinds a client sends that way: kubectl's typed clients post
//! SelfSubjectReview (`kubectl auth whoami`), SelfSubjectAccessReview (`kubectl auth can-i`), SubjectAccessReview
//! and TokenReview as `application/vnd.kubernetes.protobuf`. The body is Kubernetes' envelope (`k8s\0` then a
//! `runtime.Unknown`: typeMeta = 1 {apiVersion = 1, kind = 2}, raw = 2), decoded here into the JSON the rest of
//! the server handles, with the field numbers of k8s.io/api's generated.proto. Answers stay JSON (client-go
//! decodes by the answer's Content-Type). Any other protobuf body is refused (415).

use serde_json::{Map, Value, json};

/// One field of a protobuf message.
enum Field<'a> {
    Varint,
    Bytes(&'a [u8]),
    Fixed,
}

fn varint(input: &[u8], at: &mut usize) -> Result<u64, String> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let b = *input.get(*at).ok_or("truncated varint")?;
        *at += 1;
        value |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Ok(value);
        }
    }
    Err("varint too long".into())
}

/// The fields of a message, in order.
fn fields(input: &[u8]) -> Result<Vec<(u64, Field<'_>)>, String> {
    let mut out = Vec::new();
    let mut at = 0;
    while at < input.len() {
        let key = varint(input, &mut at)?;
        let field = match key & 7 {
            0 => {
                varint(input, &mut at)?;
                Field::Varint
            }
            1 => {
                at += 8;
                Field::Fixed
            }
            2 => {
                let n = usize::try_from(varint(input, &mut at)?).map_err(|_| "length too large")?;
                let end = at
                    .checked_add(n)
                    .filter(|e| *e <= input.len())
                    .ok_or("truncated field")?;
                let bytes = &input[at..end];
                at = end;
                Field::Bytes(bytes)
            }
            5 => {
                at += 4;
                Field::Fixed
            }
            other => return Err(format!("unsupported wire type {other}")),
        };
        if at > input.len() {
            return Err("truncated field".into());
        }
        out.push((key >> 3, field));
    }
    Ok(out)
}

fn text(bytes: &[u8]) -> Result<String, String> {
    String::from_utf8(bytes.to_vec()).map_err(|_| "a string field is not UTF-8".to_string())
}

/// A message of string fields (`names[i]` is field i+1; repeated ones become lists).
fn strings(input: &[u8], names: &[(&str, bool)]) -> Result<Value, String> {
    let mut out = Map::new();
    for (number, field) in fields(input)? {
        let Some((name, repeated)) = usize::try_from(number)
            .ok()
            .and_then(|n| n.checked_sub(1))
            .and_then(|i| names.get(i))
        else {
            continue;
        };
        if let Field::Bytes(b) = field {
            let s = Value::String(text(b)?);
            if *repeated {
                if let Some(a) = out
                    .entry(name.to_string())
                    .or_insert_with(|| json!([]))
                    .as_array_mut()
                {
                    a.push(s);
                }
            } else {
                out.insert(name.to_string(), s);
            }
        }
    }
    Ok(Value::Object(out))
}

const RESOURCE_ATTRIBUTES: &[(&str, bool)] = &[
    ("namespace", false),
    ("verb", false),
    ("group", false),
    ("version", false),
    ("resource", false),
    ("subresource", false),
    ("name", false),
];
const NON_RESOURCE_ATTRIBUTES: &[(&str, bool)] = &[("path", false), ("verb", false)];

/// SubjectAccessReviewSpec (`with_subject`) or SelfSubjectAccessReviewSpec.
fn access_spec(input: &[u8], with_subject: bool) -> Result<Value, String> {
    let mut spec = Map::new();
    for (number, field) in fields(input)? {
        let Field::Bytes(b) = field else { continue };
        match number {
            1 => {
                spec.insert(
                    "resourceAttributes".into(),
                    strings(b, RESOURCE_ATTRIBUTES)?,
                );
            }
            2 => {
                spec.insert(
                    "nonResourceAttributes".into(),
                    strings(b, NON_RESOURCE_ATTRIBUTES)?,
                );
            }
            3 if with_subject => {
                spec.insert("user".into(), json!(text(b)?));
            }
            4 if with_subject => {
                let group = json!(text(b)?);
                if let Some(a) = spec
                    .entry("groups")
                    .or_insert_with(|| json!([]))
                    .as_array_mut()
                {
                    a.push(group);
                }
            }
            5 if with_subject => {
                let entry = fields(b)?;
                let mut key = String::new();
                let mut items = Vec::new();
                for (n, f) in entry {
                    if let Field::Bytes(v) = f {
                        match n {
                            1 => key = text(v)?,
                            2 => {
                                for (m, g) in fields(v)? {
                                    if let (1, Field::Bytes(item)) = (m, g) {
                                        items.push(json!(text(item)?));
                                    }
                                }
                            }
                            _ => {}
                        }
                    }
                }
                spec.entry("extra").or_insert_with(|| json!({}))[key] = json!(items);
            }
            6 if with_subject => {
                spec.insert("uid".into(), json!(text(b)?));
            }
            _ => {}
        }
    }
    Ok(Value::Object(spec))
}

/// Decodes an enveloped protobuf body of one of the review kinds into its JSON form.
pub fn decode(body: &[u8]) -> Result<Value, String> {
    let raw_envelope = body
        .strip_prefix(b"k8s\0")
        .ok_or("not a Kubernetes protobuf envelope (no k8s\\0 prefix)")?;
    let (mut api_version, mut kind, mut raw) = (String::new(), String::new(), &[][..]);
    for (number, field) in fields(raw_envelope)? {
        match (number, field) {
            (1, Field::Bytes(type_meta)) => {
                for (n, f) in fields(type_meta)? {
                    match (n, f) {
                        (1, Field::Bytes(v)) => api_version = text(v)?,
                        (2, Field::Bytes(v)) => kind = text(v)?,
                        _ => {}
                    }
                }
            }
            (2, Field::Bytes(r)) => raw = r,
            _ => {}
        }
    }
    let mut spec = json!({});
    for (number, field) in fields(raw)? {
        let (2, Field::Bytes(b)) = (number, field) else {
            continue;
        };
        spec = match (api_version.as_str(), kind.as_str()) {
            ("authorization.k8s.io/v1", "SubjectAccessReview") => access_spec(b, true)?,
            ("authorization.k8s.io/v1", "SelfSubjectAccessReview") => access_spec(b, false)?,
            ("authentication.k8s.io/v1", "TokenReview") => {
                strings(b, &[("token", false), ("audiences", true)])?
            }
            _ => json!({}),
        };
    }
    match (api_version.as_str(), kind.as_str()) {
        ("authentication.k8s.io/v1", "SelfSubjectReview") => {
            Ok(json!({"apiVersion": api_version, "kind": kind}))
        }
        ("authorization.k8s.io/v1", "SubjectAccessReview" | "SelfSubjectAccessReview")
        | ("authentication.k8s.io/v1", "TokenReview") => {
            Ok(json!({"apiVersion": api_version, "kind": kind, "spec": spec}))
        }
        _ => Err(format!(
            "the STAND-IN kube-apiserver reads protobuf only for reviews (SelfSubjectReview, SelfSubjectAccessReview, SubjectAccessReview, TokenReview), not {api_version} {kind}; send JSON"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bytes_field(number: u64, b: &[u8]) -> Vec<u8> {
        let mut out = vec![((number << 3) | 2) as u8, b.len() as u8];
        out.extend_from_slice(b);
        out
    }

    fn envelope(api_version: &str, kind: &str, raw: &[u8]) -> Vec<u8> {
        let mut type_meta = bytes_field(1, api_version.as_bytes());
        type_meta.extend(bytes_field(2, kind.as_bytes()));
        let mut unknown = bytes_field(1, &type_meta);
        unknown.extend(bytes_field(2, raw));
        unknown.extend(bytes_field(4, b"application/vnd.kubernetes.protobuf"));
        let mut out = b"k8s\0".to_vec();
        out.extend(unknown);
        out
    }

    #[test]
    fn self_subject_access_reviews_decode() {
        let mut attrs = bytes_field(1, b"kube-system");
        attrs.extend(bytes_field(2, b"list"));
        attrs.extend(bytes_field(5, b"secrets"));
        let spec = bytes_field(1, &attrs);
        let object = bytes_field(2, &spec);
        let v = decode(&envelope(
            "authorization.k8s.io/v1",
            "SelfSubjectAccessReview",
            &object,
        ))
        .unwrap();
        assert_eq!(
            v["spec"]["resourceAttributes"],
            json!({"namespace": "kube-system", "verb": "list", "resource": "secrets"})
        );
    }

    #[test]
    fn subject_access_reviews_keep_user_groups_and_extra() {
        let mut spec = bytes_field(3, b"u");
        spec.extend(bytes_field(4, b"g1"));
        spec.extend(bytes_field(4, b"g2"));
        let mut entry = bytes_field(1, b"k");
        entry.extend(bytes_field(2, &bytes_field(1, b"v")));
        spec.extend(bytes_field(5, &entry));
        spec.extend(bytes_field(2, &bytes_field(1, b"/healthz")));
        let v = decode(&envelope(
            "authorization.k8s.io/v1",
            "SubjectAccessReview",
            &bytes_field(2, &spec),
        ))
        .unwrap();
        assert_eq!(v["spec"]["user"], "u");
        assert_eq!(v["spec"]["groups"], json!(["g1", "g2"]));
        assert_eq!(v["spec"]["extra"], json!({"k": ["v"]}));
        assert_eq!(v["spec"]["nonResourceAttributes"]["path"], "/healthz");
    }

    #[test]
    fn other_kinds_and_garbage_are_refused() {
        assert!(
            decode(&envelope("v1", "ConfigMap", &[]))
                .unwrap_err()
                .contains("only for reviews")
        );
        assert!(decode(b"{}").is_err());
        assert!(decode(b"k8s\0\x0a\x05ab").is_err());
        let v = decode(&envelope(
            "authentication.k8s.io/v1",
            "SelfSubjectReview",
            &[],
        ))
        .unwrap();
        assert_eq!(v["kind"], "SelfSubjectReview");
    }
}
