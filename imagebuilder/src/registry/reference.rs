//! Image references as containerd names images — `host[:port]/repository[:tag]` — parsed into the registry host,
//! the repository path the distribution API wants, and the tag. Pure: no I/O.
//!
//! The registry host is always written out (as the manifest requires): a first component is a host when it holds a
//! `.` or a `:` or is `localhost`. `docker.io` is the one registry whose API lives elsewhere
//! (`registry-1.docker.io`) and whose one-component repositories get `library/`, as Docker and containerd do.

use super::RegistryError;
use std::fmt;

/// The registry name Docker Hub images are referred to by.
pub const DOCKER_HUB: &str = "docker.io";
/// Where Docker Hub's distribution API answers.
pub const DOCKER_HUB_API_HOST: &str = "registry-1.docker.io";

/// An image by registry, repository and (optionally) tag. The digest an image is pulled by is kept apart, in
/// [`super::pull_to_archive`]'s `manifest_digest`: a reference names the image, the digest pins its bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageRef {
    /// The registry as written in the reference: `registry.k8s.io`, `docker.io`, `localhost:5000`.
    pub registry: String,
    /// The repository path on that registry: `pause`, `weaveworks/weave-kube`, `library/busybox`.
    pub repository: String,
    pub tag: Option<String>,
}

impl ImageRef {
    /// Parses `host[:port]/repository[:tag]`. A reference carrying a digest (`…@sha256:…`) is refused: the digest
    /// is given to the pull separately (see [`ImageRef::parse_pinned`] to split one off).
    pub fn parse(reference: &str) -> Result<ImageRef, RegistryError> {
        match ImageRef::parse_pinned(reference)? {
            (image, None) => Ok(image),
            (_, Some(_)) => Err(bad(
                reference,
                "it carries a digest; give the digest as manifest_digest and the reference without it",
            )),
        }
    }

    /// Parses `host[:port]/repository[:tag][@sha256:<hex>]` and returns the digest part, if any, for the caller to
    /// compare with its pin.
    pub fn parse_pinned(reference: &str) -> Result<(ImageRef, Option<String>), RegistryError> {
        if reference.is_empty() {
            return Err(bad(reference, "it is empty"));
        }
        if let Some(c) = reference
            .chars()
            .find(|c| c.is_whitespace() || c.is_control())
        {
            return Err(bad(reference, &format!("it contains {c:?}")));
        }
        let (name_and_tag, digest) = match reference.split_once('@') {
            Some((name, digest)) => {
                if !super::is_sha256_digest(digest) {
                    return Err(bad(
                        reference,
                        "the part after '@' is not a digest like sha256:<64 lower-case hex>",
                    ));
                }
                (name, Some(digest.to_string()))
            }
            None => (reference, None),
        };
        let Some((host, rest)) = name_and_tag.split_once('/') else {
            return Err(bad(
                reference,
                "it has no registry host (write e.g. registry.k8s.io/pause:3.10.1 or docker.io/library/busybox:1.37)",
            ));
        };
        if !(host.contains('.') || host.contains(':') || host == "localhost") {
            return Err(bad(
                reference,
                &format!(
                    "{host:?} is not a registry host (a host has a '.' or a ':port' or is localhost); \
                     for Docker Hub write docker.io/{name_and_tag}"
                ),
            ));
        }
        check_host(host).map_err(|reason| bad(reference, &reason))?;
        let (repository, tag) = match rest.rsplit_once(':') {
            Some((repository, tag)) if !tag.contains('/') => (repository, Some(tag)),
            _ => (rest, None),
        };
        check_repository(repository).map_err(|reason| bad(reference, &reason))?;
        if let Some(tag) = tag {
            check_tag(tag).map_err(|reason| bad(reference, &reason))?;
        }
        let registry = host.to_string();
        let repository = if is_docker_hub(&registry) && !repository.contains('/') {
            format!("library/{repository}")
        } else {
            repository.to_string()
        };
        if registry.len() + 1 + repository.len() > 255 {
            return Err(bad(reference, "the name is longer than 255 characters"));
        }
        Ok((
            ImageRef {
                registry,
                repository,
                tag: tag.map(str::to_string),
            },
            digest,
        ))
    }

    /// The host (and port) the distribution API answers on.
    pub fn api_host(&self) -> &str {
        if is_docker_hub(&self.registry) {
            DOCKER_HUB_API_HOST
        } else {
            &self.registry
        }
    }

    /// `registry/repository`, the name without tag.
    pub fn name(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }

    /// The name containerd gives the imported image: `registry/repository:tag`, or `registry/repository@digest`
    /// for an untagged reference.
    pub fn containerd_name(&self, manifest_digest: &str) -> String {
        match &self.tag {
            Some(tag) => format!("{}:{tag}", self.name()),
            None => format!("{}@{manifest_digest}", self.name()),
        }
    }
}

impl fmt::Display for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name())?;
        if let Some(tag) = &self.tag {
            write!(f, ":{tag}")?;
        }
        Ok(())
    }
}

fn is_docker_hub(registry: &str) -> bool {
    registry == DOCKER_HUB || registry == "index.docker.io"
}

fn bad(reference: &str, reason: &str) -> RegistryError {
    RegistryError::BadReference {
        reference: reference.to_string(),
        reason: reason.to_string(),
    }
}

/// `name[:port]`: DNS labels (letters, digits, `-`, `.`) and an optional numeric port.
fn check_host(host: &str) -> Result<(), String> {
    let (name, port) = match host.rsplit_once(':') {
        Some((name, port)) => (name, Some(port)),
        None => (host, None),
    };
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    if name.is_empty() || !name.split('.').all(label_ok) {
        return Err(format!("{host:?} is not a valid registry host name"));
    }
    if let Some(port) = port
        && port.parse::<u16>().map_or(true, |p| p == 0)
    {
        return Err(format!("{port:?} in {host:?} is not a port number"));
    }
    Ok(())
}

/// Path components of lower-case letters and digits, separated inside a component by `.`, `_`, `__` or dashes
/// (the distribution spec's grammar).
fn check_repository(repository: &str) -> Result<(), String> {
    if repository.is_empty() {
        return Err("the repository is empty".to_string());
    }
    for component in repository.split('/') {
        if !repository_component_ok(component) {
            return Err(format!(
                "{component:?} is not a valid repository component (lower-case letters and digits, \
                 joined by '.', '_', '__' or '-')"
            ));
        }
    }
    Ok(())
}

fn repository_component_ok(component: &str) -> bool {
    let bytes = component.as_bytes();
    let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    let (Some(&first), Some(&last)) = (bytes.first(), bytes.last()) else {
        return false;
    };
    if !alnum(first) || !alnum(last) {
        return false;
    }
    // Each run of separators between alphanumerics must be ".", "_", "__" or one or more "-".
    let mut i = 0;
    while i < bytes.len() {
        if alnum(bytes[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < bytes.len() && !alnum(bytes[i]) {
            i += 1;
        }
        let run = &component[start..i];
        let ok = run == "." || run == "_" || run == "__" || run.bytes().all(|b| b == b'-');
        if !ok {
            return false;
        }
    }
    true
}

/// `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`.
fn check_tag(tag: &str) -> Result<(), String> {
    let ok = !tag.is_empty()
        && tag.len() <= 128
        && tag
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.' || b == b'-')
        && !tag.starts_with(['.', '-']);
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{tag:?} is not a valid tag (letters, digits, '_', '.', '-', at most 128, not starting with '.' or '-')"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(r: &str) -> (String, String, Option<String>) {
        let i = ImageRef::parse(r).unwrap_or_else(|e| panic!("{r}: {e}"));
        (i.registry, i.repository, i.tag)
    }

    #[test]
    fn parses_the_references_the_manifest_uses() {
        let s = |v: &str| v.to_string();
        assert_eq!(
            parsed("registry.k8s.io/pause:3.10.1"),
            (s("registry.k8s.io"), s("pause"), Some(s("3.10.1")))
        );
        assert_eq!(
            parsed("docker.io/weaveworks/weave-kube:2.8.1"),
            (s("docker.io"), s("weaveworks/weave-kube"), Some(s("2.8.1")))
        );
        assert_eq!(
            parsed("localhost:5000/pause:3.10.1"),
            (s("localhost:5000"), s("pause"), Some(s("3.10.1")))
        );
        assert_eq!(
            parsed("docker.io/busybox:1.37"),
            (s("docker.io"), s("library/busybox"), Some(s("1.37")))
        );
        assert_eq!(
            parsed("127.0.0.1:5000/a/b/c"),
            (s("127.0.0.1:5000"), s("a/b/c"), None)
        );
        assert_eq!(
            parsed("ghcr.io/x__y/a-b.c_d--e:v1_2-3"),
            (s("ghcr.io"), s("x__y/a-b.c_d--e"), Some(s("v1_2-3")))
        );
    }

    #[test]
    fn api_host_and_names() {
        let hub = ImageRef::parse("docker.io/busybox:1.37").expect("parses");
        assert_eq!(hub.api_host(), "registry-1.docker.io");
        assert_eq!(
            hub.containerd_name("sha256:x"),
            "docker.io/library/busybox:1.37"
        );
        assert_eq!(hub.to_string(), "docker.io/library/busybox:1.37");
        let k8s = ImageRef::parse("registry.k8s.io/pause").expect("parses");
        assert_eq!(k8s.api_host(), "registry.k8s.io");
        assert_eq!(
            k8s.containerd_name("sha256:abc"),
            "registry.k8s.io/pause@sha256:abc"
        );
    }

    #[test]
    fn a_digest_in_the_reference_is_split_off_or_refused() {
        let d = format!("sha256:{}", "a".repeat(64));
        let r = format!("registry.k8s.io/pause:3.10.1@{d}");
        let (image, digest) = ImageRef::parse_pinned(&r).expect("parses");
        assert_eq!(digest.as_deref(), Some(d.as_str()));
        assert_eq!(image.tag.as_deref(), Some("3.10.1"));
        assert!(matches!(
            ImageRef::parse(&r),
            Err(RegistryError::BadReference { .. })
        ));
    }

    #[test]
    fn refuses_malformed_references() {
        for r in [
            "",
            "pause:3.10.1",
            "weaveworks/weave-kube:2.8.1",
            "registry.k8s.io/",
            "registry.k8s.io/Pause:1",
            "registry.k8s.io/pause:",
            "registry.k8s.io/pause:-x",
            "registry.k8s.io/pa..use",
            "registry.k8s.io/pause/",
            "registry.k8s.io//pause",
            "registry.k8s.io/pause:3.10 ",
            "localhost:0/pause",
            "localhost:99999/pause",
            "bad_host.io/pause",
            "registry.k8s.io/pause@sha256:abc",
            "registry.k8s.io/pause@3.10.1",
        ] {
            assert!(
                matches!(ImageRef::parse(r), Err(RegistryError::BadReference { .. })),
                "{r:?} should be refused"
            );
        }
    }
}
