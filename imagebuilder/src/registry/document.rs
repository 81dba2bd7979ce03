//! The registry documents a pull reads — OCI image index / Docker manifest list, OCI image manifest / Docker
//! manifest v2, and the image config's platform — parsed into checked values, and the choice of the platform's
//! manifest from an index. Pure: no I/O.
//!
//! Only what the pull needs is read; unknown fields are ignored (registries and builders add annotations,
//! `artifactType`, `subject`, …), and the documents themselves are stored byte for byte as fetched. Every digest
//! read from a document is checked to be `sha256:<64 lower-case hex>` before it is used in a URL or a file name.

use serde::Deserialize;
use std::fmt;

pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";

/// The `Accept` header of a manifest request: every type this pull can read.
pub const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.index.v1+json, \
     application/vnd.oci.image.manifest.v1+json, \
     application/vnd.docker.distribution.manifest.list.v2+json, \
     application/vnd.docker.distribution.manifest.v2+json";

/// A platform as an index or a config names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Platform {
    pub os: String,
    pub architecture: String,
    pub variant: Option<String>,
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

/// A checked content descriptor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Descriptor {
    pub media_type: Option<String>,
    /// `sha256:<64 lower-case hex>`.
    pub digest: String,
    pub size: u64,
    pub platform: Option<Platform>,
}

impl Descriptor {
    /// The hex part of the digest (checked at parse time).
    pub fn hex(&self) -> &str {
        self.digest.strip_prefix("sha256:").unwrap_or(&self.digest)
    }
}

/// A parsed manifest document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Document {
    /// An OCI image index or a Docker manifest list.
    Index {
        media_type: String,
        manifests: Vec<Descriptor>,
    },
    /// An OCI image manifest or a Docker manifest v2.
    Manifest {
        media_type: String,
        config: Descriptor,
        layers: Vec<Descriptor>,
    },
}

impl Document {
    pub fn media_type(&self) -> &str {
        match self {
            Document::Index { media_type, .. } | Document::Manifest { media_type, .. } => {
                media_type
            }
        }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawDocument {
    schema_version: Option<u32>,
    media_type: Option<String>,
    manifests: Option<Vec<RawDescriptor>>,
    config: Option<RawDescriptor>,
    layers: Option<Vec<RawDescriptor>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawDescriptor {
    media_type: Option<String>,
    digest: String,
    size: u64,
    platform: Option<RawPlatform>,
}

#[derive(Deserialize)]
struct RawPlatform {
    os: String,
    architecture: String,
    variant: Option<String>,
}

#[derive(Deserialize)]
struct RawConfig {
    os: Option<String>,
    architecture: Option<String>,
    variant: Option<String>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Index,
    Manifest,
}

fn kind_of(media_type: &str) -> Option<Kind> {
    match media_type {
        OCI_INDEX | DOCKER_MANIFEST_LIST => Some(Kind::Index),
        OCI_MANIFEST | DOCKER_MANIFEST => Some(Kind::Manifest),
        _ => None,
    }
}

/// `sha256:` + 64 lower-case hex digits.
pub fn is_sha256_digest(d: &str) -> bool {
    d.strip_prefix("sha256:").is_some_and(|h| {
        h.len() == 64
            && h.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}

/// Parses a manifest or index. The type comes from the document's `mediaType`, else from the response's
/// `Content-Type`, else from its shape (`manifests` → index; `config` + `layers` → manifest), as the OCI spec
/// allows `mediaType` to be absent.
pub fn parse_document(bytes: &[u8], content_type: Option<&str>) -> Result<Document, String> {
    let raw: RawDocument = serde_json::from_slice(bytes)
        .map_err(|e| format!("it is not a manifest or index document: {e}"))?;
    match raw.schema_version {
        Some(2) => {}
        Some(1) => {
            return Err(
                "it is a Docker schema 1 manifest, which is deprecated and not supported"
                    .to_string(),
            );
        }
        Some(v) => return Err(format!("it has schemaVersion {v}; only 2 is supported")),
        None => return Err("it has no schemaVersion".to_string()),
    }
    let content_type = content_type
        .map(|c| c.split(';').next().unwrap_or(c).trim())
        .filter(|c| kind_of(c).is_some());
    let media_type = match (&raw.media_type, content_type) {
        (Some(m), _) => {
            if kind_of(m).is_none() {
                return Err(format!(
                    "its mediaType {m:?} is neither an image index nor an image manifest"
                ));
            }
            m.clone()
        }
        (None, Some(c)) => c.to_string(),
        (None, None) if raw.manifests.is_some() => OCI_INDEX.to_string(),
        (None, None) if raw.config.is_some() => OCI_MANIFEST.to_string(),
        (None, None) => {
            return Err("it is neither an image index nor an image manifest".to_string());
        }
    };
    match kind_of(&media_type) {
        Some(Kind::Index) => {
            let manifests = raw
                .manifests
                .ok_or_else(|| format!("the {media_type} has no manifests"))?
                .into_iter()
                .map(checked)
                .collect::<Result<Vec<_>, _>>()?;
            Ok(Document::Index {
                media_type,
                manifests,
            })
        }
        Some(Kind::Manifest) => {
            let config = checked(
                raw.config
                    .ok_or_else(|| format!("the {media_type} has no config"))?,
            )?;
            let layers = raw
                .layers
                .ok_or_else(|| format!("the {media_type} has no layers"))?
                .into_iter()
                .map(checked)
                .collect::<Result<Vec<_>, _>>()?;
            Ok(Document::Manifest {
                media_type,
                config,
                layers,
            })
        }
        None => Err(format!("unsupported media type {media_type:?}")),
    }
}

fn checked(raw: RawDescriptor) -> Result<Descriptor, String> {
    if !is_sha256_digest(&raw.digest) {
        return Err(format!(
            "descriptor digest {:?} is not sha256:<64 lower-case hex> (only sha256 is supported)",
            raw.digest
        ));
    }
    Ok(Descriptor {
        media_type: raw.media_type,
        digest: raw.digest,
        size: raw.size,
        platform: raw.platform.map(|p| Platform {
            os: p.os,
            architecture: p.architecture,
            variant: p.variant.filter(|v| !v.is_empty()),
        }),
    })
}

/// The platform an image config declares (`os`, `architecture`, `variant`).
pub fn config_platform(bytes: &[u8]) -> Result<Platform, String> {
    let raw: RawConfig =
        serde_json::from_slice(bytes).map_err(|e| format!("the image config is not JSON: {e}"))?;
    match (raw.os, raw.architecture) {
        (Some(os), Some(architecture)) => Ok(Platform {
            os,
            architecture,
            variant: raw.variant.filter(|v| !v.is_empty()),
        }),
        _ => Err("the image config names no os and architecture".to_string()),
    }
}

/// Picks the `linux/<arch>` image manifest of an index: one without a variant if there is one, else the first.
/// Nested indexes are not followed. On failure, returns the platforms the index lists.
pub fn select_platform<'a>(
    manifests: &'a [Descriptor],
    arch: &str,
) -> Result<&'a Descriptor, Vec<String>> {
    let candidates: Vec<&Descriptor> = manifests
        .iter()
        .filter(|d| {
            d.media_type
                .as_deref()
                .is_none_or(|m| kind_of(m) != Some(Kind::Index))
        })
        .filter(|d| {
            d.platform
                .as_ref()
                .is_some_and(|p| p.os == "linux" && p.architecture == arch)
        })
        .collect();
    candidates
        .iter()
        .find(|d| d.platform.as_ref().is_some_and(|p| p.variant.is_none()))
        .or(candidates.first())
        .copied()
        .ok_or_else(|| {
            manifests
                .iter()
                .map(|d| match &d.platform {
                    Some(p) => p.to_string(),
                    None => "(no platform)".to_string(),
                })
                .collect()
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digest(c: char) -> String {
        format!("sha256:{}", c.to_string().repeat(64))
    }

    fn index(entries: &[(&str, &str, Option<&str>, char)]) -> String {
        let manifests: Vec<_> = entries
            .iter()
            .map(|(os, arch, variant, c)| {
                let mut platform = serde_json::json!({"os": os, "architecture": arch});
                if let Some(v) = variant {
                    platform["variant"] = serde_json::json!(v);
                }
                serde_json::json!({"mediaType": OCI_MANIFEST, "digest": digest(*c), "size": 10, "platform": platform})
            })
            .collect();
        serde_json::json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": manifests})
            .to_string()
    }

    fn manifests_of(doc: &str) -> Vec<Descriptor> {
        match parse_document(doc.as_bytes(), None) {
            Ok(Document::Index { manifests, .. }) => manifests,
            other => panic!("not an index: {other:?}"),
        }
    }

    #[test]
    fn selects_linux_arch_preferring_no_variant() {
        let m = manifests_of(&index(&[
            ("linux", "arm64", Some("v8"), 'a'),
            ("linux", "amd64", None, 'b'),
            ("linux", "arm64", None, 'c'),
            ("windows", "amd64", None, 'd'),
        ]));
        assert_eq!(
            select_platform(&m, "amd64").map(|d| &d.digest),
            Ok(&digest('b'))
        );
        assert_eq!(
            select_platform(&m, "arm64").map(|d| &d.digest),
            Ok(&digest('c'))
        );
        let m = manifests_of(&index(&[
            ("linux", "arm64", Some("v8"), 'a'),
            ("linux", "arm64", Some("v9"), 'b'),
        ]));
        assert_eq!(
            select_platform(&m, "arm64").map(|d| &d.digest),
            Ok(&digest('a'))
        );
    }

    #[test]
    fn a_missing_platform_lists_what_there_is() {
        let m = manifests_of(&index(&[
            ("windows", "amd64", None, 'a'),
            ("linux", "arm", Some("v7"), 'b'),
        ]));
        assert_eq!(
            select_platform(&m, "amd64"),
            Err(vec![
                "windows/amd64".to_string(),
                "linux/arm/v7".to_string()
            ])
        );
    }

    #[test]
    fn media_type_from_field_header_or_shape() {
        let body = format!(
            r#"{{"schemaVersion":2,"config":{{"digest":"{}","size":2}},"layers":[]}}"#,
            digest('a')
        );
        let doc = parse_document(body.as_bytes(), None).expect("parses");
        assert_eq!(doc.media_type(), OCI_MANIFEST);
        let doc = parse_document(
            body.as_bytes(),
            Some("application/vnd.docker.distribution.manifest.v2+json; charset=utf-8"),
        )
        .expect("parses");
        assert_eq!(doc.media_type(), DOCKER_MANIFEST);
        let doc = parse_document(br#"{"schemaVersion":2,"manifests":[]}"#, Some("text/plain"))
            .expect("parses");
        assert_eq!(doc.media_type(), OCI_INDEX);
    }

    #[test]
    fn refuses_what_it_cannot_use() {
        let bad_digest = r#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{"digest":"sha256:../../etc","size":1}]}"#;
        let sha512 = format!(
            r#"{{"schemaVersion":2,"manifests":[{{"digest":"sha512:{}","size":1}}]}}"#,
            "a".repeat(128)
        );
        for (doc, says) in [
            ("not json", "not a manifest"),
            (r#"{"schemaVersion":1,"fsLayers":[]}"#, "schema 1"),
            (r#"{"schemaVersion":2,"mediaType":"text/html"}"#, "neither"),
            (r#"{"schemaVersion":2}"#, "neither"),
            (
                r#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","layers":[]}"#,
                "no config",
            ),
            (bad_digest, "not sha256"),
            (&sha512, "not sha256"),
            (
                r#"{"schemaVersion":2,"manifests":[{"digest":"x","size":-1}]}"#,
                "not a manifest",
            ),
        ] {
            let err = parse_document(doc.as_bytes(), None).expect_err(doc);
            assert!(err.contains(says), "{doc}: {err}");
        }
    }

    #[test]
    fn config_platform_reads_os_arch_variant() {
        assert_eq!(
            config_platform(br#"{"os":"linux","architecture":"arm64","variant":"v8","rootfs":{}}"#)
                .map(|p| p.to_string()),
            Ok("linux/arm64/v8".to_string())
        );
        assert!(config_platform(br#"{"rootfs":{}}"#).is_err());
    }
}
