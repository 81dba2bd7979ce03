//! The manifest's pins: checksums (`sha256 = …`, `sha512 = …`) and container images (`image` +
//! `manifest_digest`), checked to be well-formed and not mixed with what describes a file or archive.

use super::*;

/// An install table's image pin: `None` when it has neither `image` nor `manifest_digest`; the reference and
/// digest when both are there and well-formed and nothing describes a file or archive beside them; otherwise the
/// error, at the key it is about.
pub(super) fn image_pin(
    map: &SourceMap<'_>,
    name: &str,
    install: &Spanned<RawInstall>,
) -> Result<Option<(String, String)>, ManifestError> {
    let raw = install.get_ref();
    let wrong = |span, reason: String| {
        map.error(
            span,
            ManifestErrorKind::ImageInstall {
                artifact: name.to_string(),
                reason,
            },
        )
    };
    let (reference, digest) = match (&raw.image, &raw.manifest_digest) {
        (None, None) => return Ok(None),
        (None, Some(d)) => {
            return Err(wrong(
                d.span(),
                "manifest_digest only goes with image".into(),
            ));
        }
        (Some(_), None) => {
            return Err(wrong(
                install.span(),
                "an image needs its manifest_digest".into(),
            ));
        }
        (Some(r), Some(d)) => (r, d),
    };
    if let Some((key, span)) = key_beside_image(raw) {
        return Err(wrong(span, format!("`{key}` does not go with `image`")));
    }
    if let Err(reason) = check_image_reference(reference.get_ref()) {
        return Err(map.error(
            reference.span(),
            ManifestErrorKind::BadImageReference {
                reference: reference.get_ref().clone(),
                reason,
            },
        ));
    }
    if !is_sha256_digest(digest.get_ref()) {
        return Err(map.error(
            digest.span(),
            ManifestErrorKind::BadManifestDigest(digest.get_ref().clone()),
        ));
    }
    Ok(Some((
        reference.get_ref().clone(),
        digest.get_ref().clone(),
    )))
}

/// The first install key that does not go with `image` (they describe a file or an archive), and where it is.
pub(super) fn key_beside_image(
    install: &RawInstall,
) -> Option<(&'static str, std::ops::Range<usize>)> {
    [
        install.file.as_ref().map(|v| ("file", v.span())),
        install.dir.as_ref().map(|v| ("dir", v.span())),
        install.members.as_ref().map(|v| ("members", v.span())),
        install.mode.as_ref().map(|v| ("mode", v.span())),
        install
            .replace_content
            .as_ref()
            .map(|v| ("replace_content", v.span())),
    ]
    .into_iter()
    .flatten()
    .next()
}

/// An image artifact without `url`: pulled from the registry its reference names, pinned by `manifest_digest`
/// (and only that: a sha256/sha512/checksum_url would pin an archive that does not exist before the pull).
pub(super) fn registry_image_artifact(
    map: &SourceMap<'_>,
    spanned: &Spanned<RawArtifact>,
    name: String,
) -> Result<Artifact, ManifestError> {
    let raw = spanned.get_ref();
    let Some((reference, digest)) = image_pin(map, &name, &raw.install)? else {
        return Err(map.error(
            spanned.span(),
            ManifestErrorKind::Toml(format!(
                "artifact {name:?}: missing field `url` (only a container image with install.image and \
                 install.manifest_digest may leave it out, to be pulled from its registry)"
            )),
        ));
    };
    let extra_pin = [
        raw.sha256.as_ref(),
        raw.sha512.as_ref(),
        raw.checksum_url.as_ref(),
    ];
    if let Some(pin) = extra_pin.into_iter().flatten().next() {
        return Err(map.error(
            pin.span(),
            ManifestErrorKind::ImageInstall {
                artifact: name,
                reason: "an image pulled from its registry is pinned by manifest_digest alone (sha256, sha512 and \
                         checksum_url pin a downloaded archive: give its url too)"
                    .to_string(),
            },
        ));
    }
    let label = format!(
        "oci://{}@{digest}",
        reference
            .rsplit_once(':')
            .filter(|(_, t)| !t.contains('/'))
            .map_or(reference.as_str(), |(n, _)| n)
    );
    let url = Url::parse(&format!("oci://{reference}")).map_err(|e| {
        map.error(
            raw.install.span(),
            ManifestErrorKind::BadImageReference {
                reference: reference.clone(),
                reason: e.to_string(),
            },
        )
    })?;
    Ok(Artifact {
        install: Install::Image {
            reference,
            manifest_digest: digest.clone(),
            path: format!("{IMAGES_DIR}/{name}.tar"),
        },
        name,
        version: raw.version.get_ref().clone(),
        url,
        source_label: label,
        checksum_label: format!("registry manifest digest {digest}"),
        pin: ChecksumPin::Registry,
        standin: raw.standin,
        go: None,
    })
}

/// `sha256:` + 64 lower-case hex digits.
pub fn is_sha256_digest(d: &str) -> bool {
    d.strip_prefix("sha256:").is_some_and(|h| {
        h.len() == 64
            && h.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}

/// A full image reference as containerd names an imported image: `host[:port]/path:tag` (a digest form
/// `…@sha256:…` is accepted too). Lower-case repository components, no spaces.
pub fn check_image_reference(reference: &str) -> Result<(), String> {
    let (name, tag) = match reference.split_once('@') {
        Some((name, digest)) => {
            if !is_sha256_digest(digest) {
                return Err("the part after '@' is not a sha256 digest".to_string());
            }
            (name, None)
        }
        None => match reference.rsplit_once(':') {
            Some((name, tag)) if !tag.contains('/') => (name, Some(tag)),
            _ => return Err("it has no tag (':3.10.1') or digest".to_string()),
        },
    };
    let Some((host, path)) = name.split_once('/') else {
        return Err("it has no registry host (e.g. registry.k8s.io/)".to_string());
    };
    if !(host.contains('.') || host.contains(':') || host == "localhost") {
        return Err(format!(
            "{host:?} is not a registry host (containerd needs the full name, e.g. docker.io/{host}/…)"
        ));
    }
    let component_ok = |c: &str| {
        !c.is_empty()
            && c.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
    };
    if !path.split('/').all(component_ok) {
        return Err(
            "repository components are lower-case letters, digits, '.', '_', '-'".to_string(),
        );
    }
    if let Some(tag) = tag
        && (tag.is_empty()
            || tag.len() > 128
            || !tag
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b)))
    {
        return Err("the tag is 1–128 of letters, digits, '.', '_', '-'".to_string());
    }
    Ok(())
}

pub(super) fn parse_pinned(
    map: &SourceMap<'_>,
    artifact: &str,
    hex: &Spanned<String>,
    algo: ChecksumAlgo,
) -> Result<Checksum, ManifestError> {
    Checksum::from_hex(algo, hex.get_ref()).map_err(|reason| {
        map.error(
            hex.span(),
            ManifestErrorKind::BadChecksum {
                artifact: artifact.to_string(),
                reason,
            },
        )
    })
}
