//! The `images` rule: the container images baked into the image (`/usr/share/k8s-image/images/*.tar`, listed in the
//! lock with their reference and manifest digest) are there with the sha256 the lock recorded, and the sandbox
//! (pause) image containerd's config names is one of them — otherwise the first pod on an air-gapped node waits on a
//! registry that cannot be reached.
//!
//! The manifest digest inside each archive was verified against the lock at build time (the archive's sha256 pins
//! those bytes); at boot the agent checks the digest containerd reports after the import.

use super::containerd::{CONTAINERD_CONFIG, sandbox_image};
use super::{CheckResult, Context, RuleId, describe_io};

pub(super) fn check(ctx: &Context<'_>) -> Vec<CheckResult> {
    let rule = RuleId::Images;
    let Ok(lock) = &ctx.lock else {
        return vec![CheckResult::warn(
            rule,
            None,
            "not checked: the image lock cannot be read (see image-lock)",
        )];
    };
    let images = lock.images();
    let mut results = Vec::new();
    for (artifact, image) in &images {
        let path = image.archive.as_str();
        let Some(want) = artifact.checksum.strip_prefix("sha256:") else {
            results.push(CheckResult::fail(
                rule,
                Some(path),
                format!(
                    "the lock pins {} with {}, not sha256 — rebuild the image",
                    image.reference, artifact.checksum
                ),
            ));
            continue;
        };
        match ctx.tree.sha256(path) {
            Ok(found) if found.eq_ignore_ascii_case(want) => results.push(CheckResult::pass(
                rule,
                Some(path),
                format!(
                    "{} ({}, {}) is baked with the sha256 the lock records",
                    image.reference,
                    image.manifest_digest,
                    image.platforms.join(", ")
                ),
            )),
            Ok(found) => results.push(CheckResult::fail(
                rule,
                Some(path),
                format!(
                    "has sha256 {found}, the lock says {want} for {} — the archive was changed after the build; \
                     rebuild the image",
                    image.reference
                ),
            )),
            Err(err) => results.push(CheckResult::fail(
                rule,
                Some(path),
                format!(
                    "{} — the image {} the lock lists is not in the tree; rebuild the image",
                    describe_io(&err),
                    image.reference
                ),
            )),
        }
    }
    let sandbox = ctx
        .tree
        .read_to_string(CONTAINERD_CONFIG)
        .ok()
        .and_then(|text| sandbox_image(&text));
    match sandbox {
        Some(reference) if images.iter().any(|(_, i)| i.reference == reference) => {
            results.push(CheckResult::pass(
                rule,
                Some(CONTAINERD_CONFIG),
                format!("the sandbox image {reference} is baked into the image"),
            ));
        }
        Some(reference) => results.push(CheckResult::warn(
            rule,
            Some(CONTAINERD_CONFIG),
            format!(
                "the sandbox image {reference} is not baked into the image ({}): the first pod pulls it from its \
                 registry, so an air-gapped node cannot start pods — add it to the manifest as an image artifact",
                if images.is_empty() {
                    "no images are".to_string()
                } else {
                    format!(
                        "baked: {}",
                        images
                            .iter()
                            .map(|(_, i)| i.reference.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                }
            ),
        )),
        None if !images.is_empty() => results.push(CheckResult::warn(
            rule,
            Some(CONTAINERD_CONFIG),
            "names no sandbox image (sandbox_image / pinned_images.sandbox): containerd's built-in default may not \
             be the baked one",
        )),
        None => {}
    }
    if results.is_empty() {
        results.push(CheckResult::pass(
            rule,
            None,
            "no container images are baked",
        ));
    }
    results
}
