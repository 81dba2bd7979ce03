//! The SPDX 2.3 JSON software bill of materials, made from the lock and the staged files.
//!
//! One package for the image, one per artifact (version, download location, the checksum that was verified, and a
//! comment on stand-ins), and one file entry per regular file of the layer outside `/usr/share/k8s-image/`, each
//! with its sha256 and a `CONTAINS` relationship from the artifact that installed it. Everything is derived from the
//! build's inputs (the creation time is `SOURCE_DATE_EPOCH`, the namespace is a hash of the lock), so the SBOM is as
//! reproducible as the layer.

use crate::checksum::sha256_hex;
use crate::stage::Staging;
use k8s_core::image_info::{
    IMAGE_INFO_DIR, ImageLock, LockedGoBuild, SpdxChecksum, SpdxCreationInfo, SpdxDocument,
    SpdxExternalRef, SpdxFile, SpdxPackage, SpdxRelationship, golang_purl, oci_purl,
};
use std::collections::BTreeSet;

/// The SPDX id of a package for an artifact name.
pub fn package_id(name: &str) -> String {
    format!("SPDXRef-Package-{}", spdx_id_part(name))
}

fn spdx_id_part(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '-'
            }
        })
        .collect()
}

/// Builds the SBOM. `lock_json` is the serialised lock, hashed into the document namespace.
pub fn build_sbom(lock: &ImageLock, lock_json: &[u8], staging: &Staging) -> SpdxDocument {
    let image_id = "SPDXRef-Package-image".to_string();
    let no = || "NOASSERTION".to_string();
    let mut packages = vec![SpdxPackage {
        spdx_id: image_id.clone(),
        name: lock.image_name.clone(),
        version_info: lock.kubernetes_version.clone(),
        download_location: no(),
        files_analyzed: false,
        checksums: vec![],
        license_concluded: no(),
        license_declared: no(),
        copyright_text: no(),
        supplier: no(),
        comment: stand_in_comment(lock),
        external_refs: vec![],
    }];
    let mut relationships = vec![SpdxRelationship {
        spdx_element_id: "SPDXRef-DOCUMENT".to_string(),
        relationship_type: "DESCRIBES".to_string(),
        related_spdx_element: image_id.clone(),
    }];
    // Go modules linked into built programs: one package each (path@version), shared by the programs.
    let mut go_modules_listed = BTreeSet::new();
    for artifact in &lock.artifacts {
        let (algo, value) = artifact
            .checksum
            .split_once(':')
            .unwrap_or(("sha256", &artifact.checksum));
        let id = package_id(&artifact.name);
        if let Some(go) = &artifact.go {
            packages.push(go_program_package(
                &id,
                &artifact.name,
                &artifact.version,
                go,
            ));
            relationships.push(SpdxRelationship {
                spdx_element_id: image_id.clone(),
                relationship_type: "CONTAINS".to_string(),
                related_spdx_element: id.clone(),
            });
            for dep in &go.deps {
                let dep_id = format!(
                    "SPDXRef-GoModule-{}",
                    spdx_id_part(&format!("{}@{}", dep.path, dep.version))
                );
                if go_modules_listed.insert(dep_id.clone()) {
                    packages.push(go_package(
                        &dep_id,
                        &dep.path,
                        &dep.version,
                        format!(
                            "Go module, go.sum {}{}",
                            dep.sum.as_deref().unwrap_or("(none)"),
                            dep.replaced_by
                                .as_ref()
                                .map(|r| format!(", replaced by {r}"))
                                .unwrap_or_default()
                        ),
                        golang_purl(&dep.path, &dep.version, None),
                    ));
                }
                relationships.push(SpdxRelationship {
                    spdx_element_id: id.clone(),
                    relationship_type: "STATIC_LINK".to_string(),
                    related_spdx_element: dep_id,
                });
            }
            continue;
        }
        packages.push(SpdxPackage {
            spdx_id: id.clone(),
            name: artifact.name.clone(),
            version_info: artifact.version.clone(),
            // SPDX wants an absolute URL here; builder-made parts and manifest-relative files get NOASSERTION
            // (the comment below keeps the relative location).
            download_location: if artifact.url.starts_with("workspace:") || url::Url::parse(&artifact.url).is_err() {
                no()
            } else {
                artifact.url.clone()
            },
            files_analyzed: false,
            checksums: vec![SpdxChecksum {
                algorithm: algo.to_ascii_uppercase(),
                checksum_value: value.to_string(),
            }],
            license_concluded: no(),
            license_declared: no(),
            copyright_text: no(),
            supplier: no(),
            comment: if artifact.standin {
                Some(format!(
                    "STAND-IN: {} is a placeholder program built by this project for offline demos, not the real upstream binary. Do not run this image as a real node.",
                    artifact.name
                ))
            } else {
                Some(format!("built from {} (checksum from {})", artifact.url, artifact.checksum_source))
            },
            external_refs: artifact
                .image
                .iter()
                .map(|image| SpdxExternalRef {
                    reference_category: "PACKAGE-MANAGER".to_string(),
                    reference_type: "purl".to_string(),
                    reference_locator: oci_purl(&image.reference, &image.manifest_digest),
                })
                .collect(),
        });
        relationships.push(SpdxRelationship {
            spdx_element_id: image_id.clone(),
            relationship_type: "CONTAINS".to_string(),
            related_spdx_element: id,
        });
    }
    let info_prefix = format!("/{IMAGE_INFO_DIR}/");
    let mut files = Vec::new();
    for (node_path, file) in staging.files() {
        if node_path.starts_with(&info_prefix) {
            continue;
        }
        let file_id = format!("SPDXRef-File{}", spdx_id_part(node_path));
        files.push(SpdxFile {
            spdx_id: file_id.clone(),
            file_name: format!(".{node_path}"),
            checksums: vec![SpdxChecksum {
                algorithm: "SHA256".to_string(),
                checksum_value: file.sha256.clone(),
            }],
            license_concluded: no(),
            copyright_text: no(),
        });
        relationships.push(SpdxRelationship {
            spdx_element_id: package_id(&file.owner),
            relationship_type: "CONTAINS".to_string(),
            related_spdx_element: file_id,
        });
    }
    SpdxDocument {
        spdx_version: "SPDX-2.3".to_string(),
        spdx_id: "SPDXRef-DOCUMENT".to_string(),
        name: format!(
            "{}-{}-{}",
            lock.image_name, lock.kubernetes_version, lock.arch
        ),
        data_license: "CC0-1.0".to_string(),
        document_namespace: format!(
            "https://k8s-image.invalid/spdx/{}/{}",
            lock.image_name,
            sha256_hex(lock_json)
        ),
        creation_info: SpdxCreationInfo {
            created: k8s_core::utc::rfc3339_secs(lock.source_date_epoch),
            creators: vec![format!("Tool: imagebuilder-{}", env!("CARGO_PKG_VERSION"))],
        },
        packages,
        files,
        relationships,
    }
}

/// The package of a program built from a Go module: no download location (it was built, not fetched), the module's
/// purl, and how it was built.
fn go_program_package(id: &str, name: &str, version: &str, go: &LockedGoBuild) -> SpdxPackage {
    let package = match go.packages.as_slice() {
        [one] => Some(one.as_str()),
        _ => None,
    };
    go_package(
        id,
        name,
        version,
        format!(
            "built from Go module {}@{} (go.sum {}), package(s) {}, with {} for {}, CGO_ENABLED={}{}, flags: {}; {} \
             modules linked (STATIC_LINK relationships)",
            go.module,
            go.version,
            go.sum,
            go.packages.join(" "),
            go.go_version,
            go.target,
            u8::from(go.cgo_enabled),
            go.cc
                .as_ref()
                .map(|cc| format!(" ({cc})"))
                .unwrap_or_default(),
            go.flags.join(" "),
            go.deps.len()
        ),
        golang_purl(&go.module, &go.version, package),
    )
}

/// A package with no download location and no checksum of its own (built here, or linked into what was built),
/// identified by its purl.
fn go_package(id: &str, name: &str, version: &str, comment: String, purl: String) -> SpdxPackage {
    let no = || "NOASSERTION".to_string();
    SpdxPackage {
        spdx_id: id.to_string(),
        name: name.to_string(),
        version_info: version.to_string(),
        download_location: no(),
        files_analyzed: false,
        checksums: vec![],
        license_concluded: no(),
        license_declared: no(),
        copyright_text: no(),
        supplier: no(),
        comment: Some(comment),
        external_refs: vec![SpdxExternalRef {
            reference_category: "PACKAGE-MANAGER".to_string(),
            reference_type: "purl".to_string(),
            reference_locator: purl,
        }],
    }
}

fn stand_in_comment(lock: &ImageLock) -> Option<String> {
    let standins = lock.standins();
    (!standins.is_empty()).then(|| {
        format!(
            "DEMO IMAGE: contains stand-in programs in place of {}; it must never be used as a real node.",
            standins.join(", ")
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spdx_ids_are_sanitised() {
        assert_eq!(
            package_id("cni_plugins v1"),
            "SPDXRef-Package-cni-plugins-v1"
        );
    }
}
