//! The manifest as written: the serde types (`Raw*`) TOML is read into. They reject unknown keys and keep the
//! source span of every value; nothing here checks a value ([`super::checks`] and [`super::pins`] do).

use super::*;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawManifest {
    pub(super) schema_version: Spanned<i64>,
    pub(super) name: Spanned<String>,
    pub(super) kubernetes_version: Spanned<String>,
    pub(super) arch: Spanned<String>,
    #[serde(default)]
    pub(super) source_date_epoch: Option<Spanned<i64>>,
    #[serde(default)]
    pub(super) base_url: Option<Spanned<String>>,
    #[serde(default)]
    pub(super) host: Option<RawHost>,
    /// The Go toolchain that builds every `[artifact.go]` (required when there is one).
    #[serde(default)]
    pub(super) go: Option<Spanned<RawGo>>,
    #[serde(default, rename = "go_module")]
    pub(super) go_modules: Vec<Spanned<RawGoModule>>,
    #[serde(default, rename = "artifact")]
    pub(super) artifacts: Vec<Spanned<RawArtifact>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawGo {
    pub(super) toolchain: Spanned<String>,
}

/// `[[go_module]]`: a Go module programs are built from, with the settings they share.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawGoModule {
    pub(super) name: Spanned<String>,
    pub(super) path: Spanned<String>,
    pub(super) version: Spanned<String>,
    pub(super) sum: Spanned<String>,
    #[serde(default)]
    pub(super) replace_local: Option<Spanned<String>>,
    #[serde(default)]
    pub(super) cgo: Option<Spanned<bool>>,
    #[serde(default)]
    pub(super) tags: Vec<Spanned<String>>,
    #[serde(default)]
    pub(super) ldflags: Vec<Spanned<String>>,
    #[serde(default)]
    pub(super) x: Option<Spanned<BTreeMap<String, String>>>,
    #[serde(default)]
    pub(super) buildmode: Option<Spanned<String>>,
}

/// `[artifact.go]`: build this artifact from packages of a `[[go_module]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawArtifactGo {
    pub(super) module: Spanned<String>,
    #[serde(default)]
    pub(super) package: Option<Spanned<String>>,
    #[serde(default)]
    pub(super) packages: Option<Spanned<Vec<Spanned<String>>>>,
    #[serde(default)]
    pub(super) cgo: Option<Spanned<bool>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawHost {
    #[serde(default)]
    pub(super) packages: Vec<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawArtifact {
    pub(super) name: Spanned<String>,
    pub(super) version: Spanned<String>,
    /// Where the bytes are; optional only for an image pulled from its registry by digest.
    #[serde(default)]
    pub(super) url: Option<Spanned<String>>,
    #[serde(default)]
    pub(super) sha256: Option<Spanned<String>>,
    #[serde(default)]
    pub(super) sha512: Option<Spanned<String>>,
    #[serde(default)]
    pub(super) checksum_url: Option<Spanned<String>>,
    #[serde(default)]
    pub(super) standin: bool,
    /// Built from a Go module instead of downloaded.
    #[serde(default)]
    pub(super) go: Option<Spanned<RawArtifactGo>>,
    pub(super) install: Spanned<RawInstall>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawInstall {
    #[serde(default)]
    pub(super) file: Option<Spanned<String>>,
    #[serde(default)]
    pub(super) dir: Option<Spanned<String>>,
    #[serde(default)]
    pub(super) members: Option<Spanned<Vec<Spanned<String>>>>,
    #[serde(default)]
    pub(super) mode: Option<Spanned<String>>,
    #[serde(default)]
    pub(super) replace_content: Option<Spanned<bool>>,
    /// A container image archive: its reference (`registry.k8s.io/pause:3.10.1`).
    #[serde(default)]
    pub(super) image: Option<Spanned<String>>,
    /// With `image`: the image's manifest digest (`sha256:<hex>`), checked against the archive at build time.
    #[serde(default)]
    pub(super) manifest_digest: Option<Spanned<String>>,
}
