//! The baked container images and containerd's view of them, as pure decisions: which images the lock says the node
//! must have ([`wanted`]), what `ctr -n k8s.io images ls` and `images check` show ([`parse_ctr_images`],
//! [`apply_ctr_check`]), and per image whether it is there, complete, with the locked digest and pinned or must be
//! imported ([`needs_import`], [`judge`]). An image record whose content is incomplete (an import that failed half
//! way leaves one: the manifest stored, a layer refused) counts as missing, never as present. The edge
//! (`k8s_agent::edge::images`) runs ctr; nothing here does I/O.

use crate::image_info::ImageLock;
use crate::plan::ImageOutcome;

/// The label that makes containerd's CRI report an image as pinned, so kubelet's image GC never removes it.
pub const PINNED_LABEL: &str = "io.cri-containerd.pinned";
/// Its value.
pub const PINNED_VALUE: &str = "pinned";
/// The containerd namespace kubelet's CRI uses.
pub const K8S_NAMESPACE: &str = "k8s.io";

/// One image the node must have.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WantedImage {
    pub reference: String,
    pub digest: String,
    /// Node path of the archive.
    pub archive: String,
}

/// Every image the lock lists, in manifest order.
pub fn wanted(lock: &ImageLock) -> Vec<WantedImage> {
    lock.images()
        .into_iter()
        .map(|(_, image)| WantedImage {
            reference: image.reference.clone(),
            digest: image.manifest_digest.clone(),
            archive: image.archive.clone(),
        })
        .collect()
}

/// One line of `ctr images ls`, with the content status of `ctr images check` once applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedImage {
    pub reference: String,
    pub digest: String,
    pub labels: Vec<(String, String)>,
    /// `ctr images check`'s STATUS column (`complete (2/2)`, `incomplete (1/2)`); `None` until
    /// [`apply_ctr_check`] ran or when check did not list the image.
    pub content: Option<String>,
}

impl ListedImage {
    /// Labelled `io.cri-containerd.pinned=pinned`.
    pub fn pinned(&self) -> bool {
        self.labels
            .iter()
            .any(|(k, v)| k == PINNED_LABEL && v == PINNED_VALUE)
    }

    /// `ctr images check` found all of its content (manifest, config, layers).
    pub fn complete(&self) -> bool {
        self.content
            .as_deref()
            .is_some_and(|c| c.starts_with("complete"))
    }
}

/// Applies `ctr images check` (columns REF TYPE DIGEST STATUS SIZE UNPACKED; STATUS is `complete (n/n)` or
/// `incomplete (k/n)`) to a listing: each listed image gets its content status.
pub fn apply_ctr_check(listed: &mut [ListedImage], check_output: &str) {
    for line in check_output.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        let Some(digest_at) = words.iter().position(|w| w.starts_with("sha256:")) else {
            continue;
        };
        if digest_at < 2 || words.len() < digest_at + 3 {
            continue;
        }
        let status = format!("{} {}", words[digest_at + 1], words[digest_at + 2]);
        for image in listed.iter_mut().filter(|l| l.reference == words[0]) {
            image.content = Some(status.clone());
        }
    }
}

/// Parses `ctr images ls` (columns REF TYPE DIGEST SIZE PLATFORMS LABELS; SIZE is two words, e.g. `320.0 KiB`;
/// LABELS is `-` or `k=v,k=v`). Lines that do not have that shape are skipped (the header among them).
pub fn parse_ctr_images(output: &str) -> Vec<ListedImage> {
    output
        .lines()
        .filter_map(|line| {
            let words: Vec<&str> = line.split_whitespace().collect();
            let digest_at = words.iter().position(|w| w.starts_with("sha256:"))?;
            if digest_at < 2 || words.len() < digest_at + 2 {
                return None;
            }
            let labels_word = words.last().copied().unwrap_or("-");
            let labels = if labels_word == "-" || labels_word.contains("sha256:") {
                Vec::new()
            } else {
                labels_word
                    .split(',')
                    .filter_map(|kv| kv.split_once('='))
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect()
            };
            Some(ListedImage {
                reference: words[0].to_string(),
                digest: words[digest_at].to_string(),
                labels,
                content: None,
            })
        })
        .collect()
}

/// Whether `image` must be imported: it is not listed, or listed with another digest, or incomplete, or not pinned.
pub fn needs_import(image: &WantedImage, listed: &[ListedImage]) -> bool {
    !listed.iter().any(|l| {
        l.reference == image.reference && l.digest == image.digest && l.complete() && l.pinned()
    })
}

/// The outcome for `image` given the listing after the import (`imported_millis`: how long the import took, `None`
/// when nothing was imported).
pub fn judge(
    image: &WantedImage,
    listed: &[ListedImage],
    imported_millis: Option<u64>,
) -> ImageOutcome {
    match listed.iter().find(|l| l.reference == image.reference) {
        None => ImageOutcome::Failed {
            reason: format!(
                "containerd does not list {} after importing {} — is the archive's image name {}? (`ctr -n k8s.io \
                 images ls`)",
                image.reference, image.archive, image.reference
            ),
        },
        Some(l) if l.digest != image.digest => ImageOutcome::WrongDigest {
            found: l.digest.clone(),
        },
        Some(l) if !l.complete() => ImageOutcome::Failed {
            reason: format!(
                "containerd holds only part of {}'s content after importing {} ({}) — the archive is damaged or \
                 truncated: rebuild the image (imagebuilder verifies every blob) or check the disk",
                image.reference,
                image.archive,
                l.content
                    .as_deref()
                    .unwrap_or("not listed by `ctr images check`")
            ),
        },
        Some(l) if !l.pinned() => ImageOutcome::Failed {
            reason: format!(
                "{} is not labelled {PINNED_LABEL}={PINNED_VALUE} after the import",
                image.reference
            ),
        },
        Some(_) => match imported_millis {
            Some(millis) => ImageOutcome::Imported { millis },
            None => ImageOutcome::Present,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // `ctr -n k8s.io images ls` of containerd 1.7.24 (the header, a pinned image, an unpinned one, no labels).
    const LISTING: &str = "\
REF                          TYPE                                       DIGEST                                                                  SIZE      PLATFORMS   LABELS
registry.k8s.io/pause:3.10.1 application/vnd.oci.image.index.v1+json    sha256:278fb9dbcca9518083ad1e11276933a2e96f23de604a3a08cc3c80002767d24c 314.0 KiB linux/amd64 io.cri-containerd.image=managed,io.cri-containerd.pinned=pinned
docker.io/weaveworks/weave-kube:2.8.1 application/vnd.docker.distribution.manifest.list.v2+json sha256:d797338e7beb17222e10757b71400d8471bdbd9be13b5da38ce2ebf597fb4e63 84.9 MiB linux/amd64 io.cri-containerd.image=managed
example.org/x:1 application/vnd.oci.image.manifest.v1+json sha256:0000000000000000000000000000000000000000000000000000000000000000 1.0 KiB linux/amd64 -
";

    // `ctr -n k8s.io images check` of containerd 1.7.24 after a refused layer: the manifest is stored, the layer is not.
    const CHECK: &str = "\
REF                          TYPE                                       DIGEST                                                                  STATUS           SIZE              UNPACKED
registry.k8s.io/pause:3.10.1 application/vnd.oci.image.index.v1+json    sha256:278fb9dbcca9518083ad1e11276933a2e96f23de604a3a08cc3c80002767d24c complete (2/2)   314.0 KiB/314.0 KiB true
docker.io/weaveworks/weave-kube:2.8.1 application/vnd.docker.distribution.manifest.list.v2+json sha256:d797338e7beb17222e10757b71400d8471bdbd9be13b5da38ce2ebf597fb4e63 incomplete (1/2) 377.0 B/84.9 MiB false
";

    fn checked() -> Vec<ListedImage> {
        let mut listed = parse_ctr_images(LISTING);
        apply_ctr_check(&mut listed, CHECK);
        listed
    }

    fn pause() -> WantedImage {
        WantedImage {
            reference: "registry.k8s.io/pause:3.10.1".into(),
            digest: "sha256:278fb9dbcca9518083ad1e11276933a2e96f23de604a3a08cc3c80002767d24c"
                .into(),
            archive: "/usr/share/k8s-image/images/pause.tar".into(),
        }
    }

    #[test]
    fn the_listing_is_parsed_with_two_word_sizes_and_labels() {
        let listed = parse_ctr_images(LISTING);
        assert_eq!(listed.len(), 3);
        assert_eq!(listed[0].reference, "registry.k8s.io/pause:3.10.1");
        assert!(listed[0].pinned());
        assert!(!listed[1].pinned());
        assert!(listed[2].labels.is_empty());
        assert_eq!(
            parse_ctr_images("REF TYPE DIGEST SIZE PLATFORMS LABELS\n"),
            vec![]
        );
    }

    #[test]
    fn an_image_there_pinned_with_the_locked_digest_is_not_imported_again() {
        let listed = checked();
        assert!(!needs_import(&pause(), &listed));
        assert_eq!(judge(&pause(), &listed, None), ImageOutcome::Present);
        let mut other = pause();
        other.digest = format!("sha256:{}", "1".repeat(64));
        assert!(needs_import(&other, &listed));
        assert_eq!(
            judge(&other, &listed, Some(5)),
            ImageOutcome::WrongDigest {
                found: pause().digest
            }
        );
        let weave = WantedImage {
            reference: "docker.io/weaveworks/weave-kube:2.8.1".into(),
            digest: "sha256:d797338e7beb17222e10757b71400d8471bdbd9be13b5da38ce2ebf597fb4e63"
                .into(),
            archive: "/usr/share/k8s-image/images/weave-kube.tar".into(),
        };
        assert!(needs_import(&weave, &listed), "not pinned yet");
        assert!(matches!(
            judge(&weave, &listed, Some(1)),
            ImageOutcome::Failed { .. }
        ));
        let missing = WantedImage {
            reference: "registry.k8s.io/nothing:1".into(),
            ..pause()
        };
        assert!(matches!(
            judge(&missing, &listed, Some(1)),
            ImageOutcome::Failed { .. }
        ));
    }

    #[test]
    fn an_incomplete_image_is_imported_again_and_fails_when_it_stays_incomplete() {
        let mut listed = checked();
        assert_eq!(listed[0].content.as_deref(), Some("complete (2/2)"));
        assert_eq!(listed[1].content.as_deref(), Some("incomplete (1/2)"));
        assert_eq!(listed[2].content, None, "not in check's output");
        listed[1]
            .labels
            .push((PINNED_LABEL.into(), PINNED_VALUE.into()));
        let weave = WantedImage {
            reference: "docker.io/weaveworks/weave-kube:2.8.1".into(),
            digest: listed[1].digest.clone(),
            archive: "/usr/share/k8s-image/images/weave-kube.tar".into(),
        };
        assert!(needs_import(&weave, &listed), "pinned, but incomplete");
        match judge(&weave, &listed, Some(3)) {
            ImageOutcome::Failed { reason } => {
                assert!(reason.contains("incomplete (1/2)"), "{reason}");
                assert!(reason.contains("weave-kube.tar"), "{reason}");
            }
            other => panic!("{other:?}"),
        }
        let unchecked = parse_ctr_images(LISTING);
        assert!(
            needs_import(&pause(), &unchecked),
            "never present without a check"
        );
    }
}
