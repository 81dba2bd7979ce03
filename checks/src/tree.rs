//! Reading files of a tree rooted at some directory as the node would see them: every node path (`/usr/bin/kubelet`)
//! is resolved component by component under the root, and symlinks — absolute ones included — are followed inside
//! the root, never into the host's `/`. `..` stops at the root, like it does at `/`.

use sha2::{Digest, Sha256};
use std::ffi::OsString;
use std::fs::{File, Metadata};
use std::io::{self, Read};
use std::path::{Component, Path, PathBuf};

/// How many symlinks one lookup may follow before it is treated as a loop (Linux's own limit).
const MAX_SYMLINKS: usize = 40;

/// A tree rooted at a directory: a staged image, or `/` on a node.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Tree<'a> {
    root: &'a Path,
}

impl<'a> Tree<'a> {
    pub(crate) fn new(root: &'a Path) -> Self {
        Tree { root }
    }

    /// Host path of `node_path` with every symlink on the way resolved inside the root. A missing component ends
    /// the resolution; the rest is appended as is, so the caller's I/O reports "not found" for the right path.
    pub(crate) fn resolve(&self, node_path: &str) -> io::Result<PathBuf> {
        self.resolve_inner(node_path, true)
    }

    /// Like [`Tree::resolve`], but a symlink in the last component is not followed (for `lstat`).
    pub(crate) fn resolve_parent(&self, node_path: &str) -> io::Result<PathBuf> {
        self.resolve_inner(node_path, false)
    }

    fn resolve_inner(&self, node_path: &str, follow_last: bool) -> io::Result<PathBuf> {
        let mut pending: Vec<OsString> = components(Path::new(node_path));
        pending.reverse(); // a stack: the next component is at the end
        let mut resolved: Vec<OsString> = Vec::new();
        let mut followed = 0;
        while let Some(name) = pending.pop() {
            if name == ".." {
                resolved.pop();
                continue;
            }
            let candidate = self.join(&resolved).join(&name);
            let is_last = pending.is_empty();
            match std::fs::symlink_metadata(&candidate) {
                Ok(meta) if meta.file_type().is_symlink() && (follow_last || !is_last) => {
                    followed += 1;
                    if followed > MAX_SYMLINKS {
                        return Err(io::Error::other(format!(
                            "too many levels of symbolic links at {}",
                            node_string(&resolved, &name)
                        )));
                    }
                    let target = std::fs::read_link(&candidate)?;
                    if target.is_absolute() {
                        resolved.clear();
                    }
                    let mut more = components(&target);
                    more.reverse();
                    pending.extend(more);
                }
                Ok(_) => resolved.push(name),
                Err(err) if err.kind() == io::ErrorKind::NotFound => {
                    resolved.push(name);
                    resolved.extend(pending.into_iter().rev());
                    return Ok(self.join(&resolved));
                }
                Err(err) => return Err(err),
            }
        }
        Ok(self.join(&resolved))
    }

    fn join(&self, parts: &[OsString]) -> PathBuf {
        let mut path = self.root.to_path_buf();
        path.extend(parts);
        path
    }

    /// `stat` of a node path (symlinks followed inside the root).
    pub(crate) fn metadata(&self, node_path: &str) -> io::Result<Metadata> {
        std::fs::metadata(self.resolve(node_path)?)
    }

    /// `lstat` of a node path: the last component's own metadata.
    pub(crate) fn symlink_metadata(&self, node_path: &str) -> io::Result<Metadata> {
        std::fs::symlink_metadata(self.resolve_parent(node_path)?)
    }

    /// The whole content of a (small, text) file.
    pub(crate) fn read_to_string(&self, node_path: &str) -> io::Result<String> {
        std::fs::read_to_string(self.resolve(node_path)?)
    }

    /// Names in a directory (empty when the directory does not exist), sorted.
    pub(crate) fn read_dir_names(&self, node_path: &str) -> io::Result<Vec<String>> {
        let dir = match std::fs::read_dir(self.resolve(node_path)?) {
            Ok(dir) => dir,
            Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(err) => return Err(err),
        };
        let mut names = Vec::new();
        for entry in dir {
            names.push(entry?.file_name().to_string_lossy().into_owned());
        }
        names.sort();
        Ok(names)
    }

    /// Lower-case hex sha256 of a regular file, read in chunks.
    pub(crate) fn sha256(&self, node_path: &str) -> io::Result<String> {
        let path = self.resolve(node_path)?;
        let mut file = File::open(&path)?;
        if !file.metadata()?.is_file() {
            return Err(io::Error::other("not a regular file"));
        }
        let mut hasher = Sha256::new();
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = match file.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
                Err(err) => return Err(err),
            };
            hasher.update(&buf[..n]);
        }
        Ok(hex::encode(hasher.finalize()))
    }
}

/// The normal components of a path, `..` kept (it is resolved against what was resolved so far), `.` and the root
/// dropped.
fn components(path: &Path) -> Vec<OsString> {
    path.components()
        .filter_map(|c| match c {
            Component::Normal(name) => Some(name.to_os_string()),
            Component::ParentDir => Some(OsString::from("..")),
            Component::CurDir | Component::RootDir | Component::Prefix(_) => None,
        })
        .collect()
}

fn node_string(resolved: &[OsString], name: &OsString) -> String {
    let mut out = String::new();
    for part in resolved.iter().chain(std::iter::once(name)) {
        out.push('/');
        out.push_str(&part.to_string_lossy());
    }
    out
}

/// `usr/bin/kubelet`, `./usr/bin/kubelet` or `/usr/bin/kubelet` → `/usr/bin/kubelet`.
pub(crate) fn node_path(path: &str) -> String {
    let trimmed = path.trim_start_matches("./").trim_start_matches('/');
    format!("/{trimmed}")
}

/// True when a path from a document (lock, SBOM) names a file inside the tree without `..` or empty components.
pub(crate) fn is_clean_relative(path: &str) -> bool {
    let rel = path.trim_start_matches("./").trim_start_matches('/');
    !rel.is_empty()
        && rel
            .split('/')
            .all(|part| !part.is_empty() && part != "." && part != "..")
}

/// Is any execute bit set on this file?
pub(crate) fn is_executable(meta: &Metadata) -> bool {
    use std::os::unix::fs::PermissionsExt;
    meta.permissions().mode() & 0o111 != 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn absolute_symlinks_resolve_inside_the_root() -> io::Result<()> {
        let dir = tempfile::tempdir()?;
        let root = dir.path();
        std::fs::create_dir_all(root.join("usr/lib"))?;
        std::fs::write(root.join("usr/lib/target"), "in tree")?;
        std::fs::create_dir_all(root.join("etc"))?;
        symlink("/usr/lib/target", root.join("etc/link"))?;
        symlink("../../../../../../etc/hostname", root.join("etc/escape"))?;
        symlink("/usr", root.join("usr-link"))?;
        let tree = Tree::new(root);
        assert_eq!(tree.read_to_string("/etc/link")?, "in tree");
        assert_eq!(tree.read_to_string("usr-link/lib/target")?, "in tree");
        // `..` stops at the root: the host's /etc/hostname is never read.
        assert_eq!(tree.resolve("/etc/escape")?, root.join("etc/hostname"));
        assert!(tree.symlink_metadata("/etc/link")?.file_type().is_symlink());
        Ok(())
    }

    #[test]
    fn symlink_loops_are_errors() -> io::Result<()> {
        let dir = tempfile::tempdir()?;
        symlink("/b", dir.path().join("a"))?;
        symlink("/a", dir.path().join("b"))?;
        assert!(Tree::new(dir.path()).resolve("/a").is_err());
        Ok(())
    }

    #[test]
    fn node_paths_and_clean_paths() {
        assert_eq!(node_path("./usr/bin/kubelet"), "/usr/bin/kubelet");
        assert_eq!(node_path("usr/bin/kubelet"), "/usr/bin/kubelet");
        assert_eq!(node_path("/usr/bin/kubelet"), "/usr/bin/kubelet");
        assert!(is_clean_relative("./usr/bin/kubelet"));
        assert!(is_clean_relative("/usr/bin/kubelet"));
        assert!(!is_clean_relative("./usr/../etc/passwd"));
        assert!(!is_clean_relative("./"));
        assert!(!is_clean_relative("usr//bin"));
    }
}
