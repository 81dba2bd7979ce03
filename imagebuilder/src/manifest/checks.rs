//! The checks of the manifest's values: Kubernetes version, Go modules and builds, artifacts, URLs, node paths,
//! modes and names. Each turns a `Raw*` value into a checked one or a [`ManifestError`] at the value's span.

use super::*;

pub(super) fn check_kubernetes_version(
    map: &SourceMap<'_>,
    v: &Spanned<String>,
) -> Result<String, ManifestError> {
    let text = v.get_ref();
    let bad = || {
        map.error(
            v.span(),
            ManifestErrorKind::BadKubernetesVersion(text.clone()),
        )
    };
    let parts: Vec<&str> = text.split('.').collect();
    if parts.len() != 3
        || parts
            .iter()
            .any(|p| p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()))
    {
        return Err(bad());
    }
    let major: u32 = parts[0].parse().map_err(|_| bad())?;
    let minor: u32 = parts[1].parse().map_err(|_| bad())?;
    if major != 1 || minor < MIN_KUBERNETES_MINOR {
        return Err(map.error(v.span(), ManifestErrorKind::KubernetesTooOld(text.clone())));
    }
    Ok(text.clone())
}

/// The manifest's Go settings, for the artifacts that build from a module.
pub(super) struct GoContext {
    pub(super) toolchain: Option<String>,
    pub(super) modules: BTreeMap<String, GoModule>,
}

/// Checks one `[[go_module]]`.
pub(super) fn check_go_module(
    map: &SourceMap<'_>,
    spanned: &Spanned<RawGoModule>,
) -> Result<GoModule, ManifestError> {
    let raw = spanned.get_ref();
    let name = raw.name.get_ref().clone();
    if !is_simple_name(&name, false) {
        return Err(map.error(raw.name.span(), ManifestErrorKind::BadName(name)));
    }
    let bad = |span: Range<usize>, reason: String| {
        map.error(
            span,
            ManifestErrorKind::BadGoModule {
                module: name.clone(),
                reason,
            },
        )
    };
    let field = |v: &Spanned<String>, what: &str, check: fn(&str) -> Result<(), String>| {
        check(v.get_ref())
            .map(|()| v.get_ref().clone())
            .map_err(|reason| bad(v.span(), format!("{what} {:?}: {reason}", v.get_ref())))
    };
    let path = field(&raw.path, "path", gomod::check_module_path)?;
    let version = field(&raw.version, "version", gomod::check_module_version)?;
    let sum = field(&raw.sum, "sum", gomod::check_h1)?;
    let replace_local = match &raw.replace_local {
        None => None,
        Some(v) => Some(field(v, "replace_local", gomod::check_module_version)?),
    };
    let tags = raw
        .tags
        .iter()
        .map(|t| field(t, "tag", gomod::check_tag))
        .collect::<Result<Vec<_>, _>>()?;
    let ldflags = raw
        .ldflags
        .iter()
        .map(|f| field(f, "ldflags word", gomod::check_ldflag))
        .collect::<Result<Vec<_>, _>>()?;
    let mut x = BTreeMap::new();
    if let Some(table) = &raw.x {
        for (stamp, value) in table.get_ref() {
            gomod::check_stamp(stamp, value).map_err(|reason| bad(table.span(), reason))?;
            x.insert(stamp.clone(), value.clone());
        }
    }
    let buildmode = match &raw.buildmode {
        None => None,
        Some(v) => Some(field(v, "buildmode", gomod::check_buildmode)?),
    };
    Ok(GoModule {
        name: name.clone(),
        path,
        version,
        sum,
        replace_local,
        cgo: raw.cgo.as_ref().is_some_and(|c| *c.get_ref()),
        tags,
        ldflags,
        x,
        buildmode,
    })
}

/// An artifact built from a Go module (`[artifact.go]`).
pub(super) fn go_artifact(
    map: &SourceMap<'_>,
    spanned: &Spanned<RawArtifact>,
    name: String,
    go_spanned: &Spanned<RawArtifactGo>,
    ctx: &GoContext,
) -> Result<Artifact, ManifestError> {
    let raw = spanned.get_ref();
    let go = go_spanned.get_ref();
    let wrong = |span: Range<usize>, reason: &str| {
        map.error(
            span,
            ManifestErrorKind::GoArtifact {
                artifact: name.clone(),
                reason: reason.to_string(),
            },
        )
    };
    let download = [
        raw.url.as_ref().map(|v| v.span()),
        raw.sha256.as_ref().map(|v| v.span()),
        raw.sha512.as_ref().map(|v| v.span()),
        raw.checksum_url.as_ref().map(|v| v.span()),
    ];
    if let Some(span) = download.into_iter().flatten().next() {
        return Err(wrong(
            span,
            "it is built from a Go module, so it has no url, sha256, sha512 or checksum_url (the module's sum pins it)",
        ));
    }
    let Some(toolchain) = &ctx.toolchain else {
        return Err(map.error(
            go_spanned.span(),
            ManifestErrorKind::NoGoToolchain { artifact: name },
        ));
    };
    let Some(module) = ctx.modules.get(go.module.get_ref()) else {
        return Err(map.error(
            go.module.span(),
            ManifestErrorKind::UnknownGoModule {
                artifact: name,
                module: go.module.get_ref().clone(),
            },
        ));
    };
    let check_package = |p: &Spanned<String>| {
        gomod::check_package(p.get_ref()).map_err(|reason| {
            map.error(
                p.span(),
                ManifestErrorKind::GoArtifact {
                    artifact: name.clone(),
                    reason: format!("package {:?}: {reason}", p.get_ref()),
                },
            )
        })
    };
    let install_raw = raw.install.get_ref();
    let beside = [
        install_raw.members.as_ref().map(|v| ("members", v.span())),
        install_raw
            .replace_content
            .as_ref()
            .map(|v| ("replace_content", v.span())),
    ];
    if let Some((key, span)) = beside.into_iter().flatten().next() {
        return Err(wrong(
            span,
            &format!(
                "install.{key} does not go with a Go build (install.file, install.dir or install.image)"
            ),
        ));
    }
    let mode = match &install_raw.mode {
        None => 0o755,
        Some(m) => parse_mode(m.get_ref())
            .ok_or_else(|| map.error(m.span(), ManifestErrorKind::BadMode(m.get_ref().clone())))?,
    };
    let image = image_pin(map, &name, &raw.install)?;
    let (packages, install) = match (
        &go.package,
        &go.packages,
        &install_raw.file,
        &install_raw.dir,
    ) {
        // One program packed as a container image (`/<name>`, its entrypoint), pinned by the digest its
        // reproducible build gives.
        (Some(p), None, None, None) if image.is_some() => {
            check_package(p)?;
            let (reference, manifest_digest) = image.unwrap_or_default();
            let install = Install::Image {
                reference,
                manifest_digest,
                path: format!("{IMAGES_DIR}/{name}.tar"),
            };
            (vec![p.get_ref().clone()], install)
        }
        (_, _, _, _) if image.is_some() => {
            return Err(wrong(
                raw.install.span(),
                "install.image with [artifact.go] packs one program: give `package`, not `packages`, and no install.file or install.dir",
            ));
        }
        (Some(p), None, Some(file), None) => {
            check_package(p)?;
            let install = Install::File {
                path: check_node_path(map, file)?,
                mode,
                replace_content: false,
            };
            (vec![p.get_ref().clone()], install)
        }
        (None, Some(list), None, Some(dir)) => {
            if list.get_ref().is_empty() {
                return Err(wrong(list.span(), "packages lists no package"));
            }
            let mut packages = Vec::new();
            let mut names = Vec::new();
            for p in list.get_ref() {
                check_package(p)?;
                let binary =
                    gomod::binary_name(p.get_ref()).map_err(|reason| wrong(p.span(), &reason))?;
                if names.iter().any(|n| n == binary) {
                    return Err(wrong(
                        p.span(),
                        &format!("two packages would install the same name {binary:?}"),
                    ));
                }
                names.push(binary.to_string());
                packages.push(p.get_ref().clone());
            }
            let install = Install::Programs {
                dir: check_node_path(map, dir)?,
                names,
                mode,
            };
            (packages, install)
        }
        (Some(_), Some(_), _, _) | (None, None, _, _) => {
            return Err(wrong(
                go_spanned.span(),
                "[artifact.go] needs exactly one of package (with install.file) or packages (with install.dir)",
            ));
        }
        (Some(_), None, _, _) => {
            return Err(wrong(
                raw.install.span(),
                "package (one program) is installed with install.file and nothing else",
            ));
        }
        (None, Some(_), _, _) => {
            return Err(wrong(
                raw.install.span(),
                "packages (programs) are installed with install.dir and nothing else",
            ));
        }
    };
    let build = GoBuild {
        toolchain: toolchain.clone(),
        module: module.clone(),
        packages,
        cgo: go.cgo.as_ref().map_or(module.cgo, |c| *c.get_ref()),
    };
    let label = build.source_label();
    let url = Url::parse(&label).map_err(|e| wrong(go_spanned.span(), &e.to_string()))?;
    Ok(Artifact {
        name,
        version: raw.version.get_ref().clone(),
        url,
        source_label: label,
        checksum_label: "manifest (go_module sum)".to_string(),
        pin: ChecksumPin::GoModule,
        standin: raw.standin,
        install,
        go: Some(build),
    })
}

pub(super) fn check_artifact(
    map: &SourceMap<'_>,
    spanned: &Spanned<RawArtifact>,
    base_url: Option<&Url>,
    relative_base: Option<&str>,
    go: &GoContext,
) -> Result<Artifact, ManifestError> {
    let raw = spanned.get_ref();
    let name = raw.name.get_ref().clone();
    if !is_simple_name(&name, false) {
        return Err(map.error(raw.name.span(), ManifestErrorKind::BadName(name)));
    }
    if raw.version.get_ref().trim().is_empty() {
        return Err(map.error(
            raw.version.span(),
            ManifestErrorKind::Toml("version must not be empty".to_string()),
        ));
    }
    if let Some(go_spanned) = &raw.go {
        return go_artifact(map, spanned, name, go_spanned, go);
    }
    let Some(raw_url) = &raw.url else {
        return registry_image_artifact(map, spanned, name);
    };
    let url = resolve_url(map, raw_url, base_url)?;
    let source_label = display_label(raw_url.get_ref(), &url, relative_base);

    let pins = [
        raw.sha256.is_some(),
        raw.sha512.is_some(),
        raw.checksum_url.is_some(),
    ];
    let found = pins.iter().filter(|p| **p).count();
    if found != 1 {
        return Err(map.error(
            spanned.span(),
            ManifestErrorKind::ChecksumCount {
                artifact: name,
                found,
            },
        ));
    }
    let pin = if let Some(h) = &raw.sha256 {
        ChecksumPin::Fixed(parse_pinned(map, &name, h, ChecksumAlgo::Sha256)?)
    } else if let Some(h) = &raw.sha512 {
        ChecksumPin::Fixed(parse_pinned(map, &name, h, ChecksumAlgo::Sha512)?)
    } else if let Some(u) = &raw.checksum_url {
        ChecksumPin::Published(resolve_url(map, u, base_url)?)
    } else {
        unreachable!("exactly one pin was counted above")
    };
    let checksum_label = match (&pin, &raw.checksum_url) {
        (ChecksumPin::Published(resolved), Some(u)) => {
            display_label(u.get_ref(), resolved, relative_base)
        }
        _ => "manifest".to_string(),
    };

    let install_raw = raw.install.get_ref();
    let mode = match &install_raw.mode {
        None => 0o755,
        Some(m) => parse_mode(m.get_ref())
            .ok_or_else(|| map.error(m.span(), ManifestErrorKind::BadMode(m.get_ref().clone())))?,
    };
    let image = image_pin(map, &name, &raw.install)?;
    let install = match (image, &install_raw.file, &install_raw.dir) {
        (Some((reference, manifest_digest)), _, _) => Install::Image {
            reference,
            manifest_digest,
            path: format!("{IMAGES_DIR}/{name}.tar"),
        },
        (None, Some(file), None) => {
            if let Some(members) = &install_raw.members {
                return Err(map.error(
                    members.span(),
                    ManifestErrorKind::MembersWithoutDir { artifact: name },
                ));
            }
            Install::File {
                path: check_node_path(map, file)?,
                mode,
                replace_content: install_raw
                    .replace_content
                    .as_ref()
                    .is_some_and(|r| *r.get_ref()),
            }
        }
        (None, None, Some(dir)) => {
            if let Some(r) = &install_raw.replace_content {
                return Err(map.error(
                    r.span(),
                    ManifestErrorKind::ReplaceWithoutFile { artifact: name },
                ));
            }
            let dir_path = check_node_path(map, dir)?;
            let format = archive_format(url.path()).ok_or_else(|| {
                map.error(
                    raw_url.span(),
                    ManifestErrorKind::UnknownArchiveFormat {
                        artifact: name.clone(),
                        url: url.to_string(),
                    },
                )
            })?;
            let Some(members_raw) = &install_raw.members else {
                return Err(map.error(
                    raw.install.span(),
                    ManifestErrorKind::NoMembers { artifact: name },
                ));
            };
            if members_raw.get_ref().is_empty() {
                return Err(map.error(
                    members_raw.span(),
                    ManifestErrorKind::NoMembers { artifact: name },
                ));
            }
            let mut members = Vec::new();
            let mut basenames = BTreeSet::new();
            for m in members_raw.get_ref() {
                let member = m.get_ref();
                let reason = if member.is_empty() || member.ends_with('/') {
                    Some("is not a file name")
                } else if member.starts_with('/') {
                    Some("is absolute")
                } else if member.split('/').any(|c| c == "..") {
                    Some("contains '..'")
                } else if !basenames.insert(member_basename(member).to_string()) {
                    Some("has the same file name as another member of this artifact")
                } else {
                    None
                };
                if let Some(reason) = reason {
                    return Err(map.error(
                        m.span(),
                        ManifestErrorKind::BadMember {
                            member: member.clone(),
                            reason: reason.to_string(),
                        },
                    ));
                }
                members.push(member.clone());
            }
            Install::Archive {
                format,
                dir: dir_path,
                members,
                mode,
            }
        }
        _ => {
            return Err(map.error(
                raw.install.span(),
                ManifestErrorKind::InstallKind { artifact: name },
            ));
        }
    };

    Ok(Artifact {
        name,
        version: raw.version.get_ref().clone(),
        url,
        source_label,
        checksum_label,
        pin,
        standin: raw.standin,
        install,
        go: None,
    })
}

pub(super) fn resolve_url(
    map: &SourceMap<'_>,
    raw: &Spanned<String>,
    base: Option<&Url>,
) -> Result<Url, ManifestError> {
    let text = raw.get_ref();
    let bad = |reason: String| {
        map.error(
            raw.span(),
            ManifestErrorKind::BadUrl {
                url: text.clone(),
                reason,
            },
        )
    };
    let url = match Url::parse(text) {
        Ok(u) => u,
        Err(url::ParseError::RelativeUrlWithoutBase) => match base {
            Some(b) => b.join(text).map_err(|e| bad(e.to_string()))?,
            None => {
                return Err(bad(
                    "it is relative and the manifest has no base_url".to_string()
                ));
            }
        },
        Err(e) => return Err(bad(e.to_string())),
    };
    match url.scheme() {
        "http" | "https" | "file" => {}
        other => return Err(bad(format!("scheme {other:?} is not http, https or file"))),
    }
    if url.scheme() != "file" && url.host_str().is_none_or(str::is_empty) {
        return Err(bad("it has no host".to_string()));
    }
    Ok(url)
}

/// A relative `base_url` is a directory relative to the manifest file.
pub(super) fn resolve_base_url(manifest_path: &Path, base: &str) -> Result<Url, String> {
    let mut url = match Url::parse(base) {
        Ok(u) => u,
        Err(url::ParseError::RelativeUrlWithoutBase) => {
            let dir = manifest_path.parent().unwrap_or(Path::new("."));
            let dir = if dir.as_os_str().is_empty() {
                Path::new(".")
            } else {
                dir
            };
            let abs = normalise_lexically(
                &std::path::absolute(dir.join(base)).map_err(|e| e.to_string())?,
            );
            Url::from_directory_path(&abs)
                .map_err(|()| format!("{} is not an absolute directory", abs.display()))?
        }
        Err(e) => return Err(e.to_string()),
    };
    if !url.path().ends_with('/') {
        let p = format!("{}/", url.path());
        url.set_path(&p);
    }
    Ok(url)
}

/// How a URL is recorded: as written when it is relative to a relative `base_url` (so the record does not depend
/// on where the manifest was checked out), else the resolved URL.
pub(super) fn display_label(
    as_written: &str,
    resolved: &Url,
    relative_base: Option<&str>,
) -> String {
    match (relative_base, Url::parse(as_written)) {
        (Some(base), Err(url::ParseError::RelativeUrlWithoutBase)) => format!("{base}{as_written}"),
        _ => resolved.to_string(),
    }
}

/// Removes `.` and `..` components without touching the file system.
pub(super) fn normalise_lexically(path: &Path) -> PathBuf {
    use std::path::Component;
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

pub(super) fn check_node_path(
    map: &SourceMap<'_>,
    raw: &Spanned<String>,
) -> Result<String, ManifestError> {
    let p = raw.get_ref();
    let reason = if !p.starts_with('/') {
        Some("is not absolute")
    } else if p == "/" {
        Some("is the root directory")
    } else if p
        .split('/')
        .skip(1)
        .any(|c| c.is_empty() || c == "." || c == "..")
    {
        Some("is not normalised (empty, '.' or '..' components, or a trailing '/')")
    } else {
        None
    };
    match reason {
        Some(reason) => Err(map.error(
            raw.span(),
            ManifestErrorKind::BadInstallPath {
                path: p.clone(),
                reason: reason.to_string(),
            },
        )),
        None => Ok(p.clone()),
    }
}

/// Parses an octal permission string like `"0755"`.
pub fn parse_mode(text: &str) -> Option<u32> {
    if text.is_empty() || text.len() > 4 || !text.bytes().all(|b| (b'0'..=b'7').contains(&b)) {
        return None;
    }
    u32::from_str_radix(text, 8).ok()
}

pub(super) fn archive_format(url_path: &str) -> Option<ArchiveFormat> {
    let lower = url_path.to_ascii_lowercase();
    if lower.ends_with(".tar.gz") || lower.ends_with(".tgz") {
        Some(ArchiveFormat::TarGz)
    } else if lower.ends_with(".tar") {
        Some(ArchiveFormat::Tar)
    } else {
        None
    }
}

pub(super) fn is_simple_name(name: &str, allow_dot_underscore: bool) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && name.bytes().all(|b| {
            b.is_ascii_lowercase()
                || b.is_ascii_digit()
                || b == b'-'
                || (allow_dot_underscore && (b == b'.' || b == b'_'))
        })
        && name
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_alphanumeric())
}

pub(super) fn is_debian_package_name(name: &str) -> bool {
    name.len() >= 2
        && name
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        && name.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'+' | b'-' | b'.')
        })
}
