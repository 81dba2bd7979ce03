//! The control plane's PKI files on disk: reading the ones that exist under the node's root into
//! [`ExistingFiles`] for [`crate::pure::pki::plan_control_plane`], and writing its [`PlannedFile`]s. Every
//! error names the file; nothing read or written is logged (only paths, modes and sizes).
//!
//! - [`read_existing`] reads exactly the files of [`control_plane_files`] (the control plane's size decides
//!   whether etcd's are among them) that exist, each at most [`MAX_FILE_BYTES`]; a missing file is simply absent
//!   from the map, anything else unreadable is an error.
//! - [`write_planned`] writes each file atomically ([`k8s_core::atomic_file::atomic_write`]: temp file, fsync,
//!   rename) with its mode (0600 for keys and kubeconfigs: the mode is set before the contents are written).
//!   Missing directories are created 0755, as kubeadm creates `/etc/kubernetes/pki`; existing ones are left as
//!   they are. The plan only lists missing files, so nothing the user supplied is overwritten.

use crate::pure::pki::{ExistingFiles, PlannedFile, control_plane_files};
use k8s_core::atomic_file::atomic_write;
use std::io::{self, Read};
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// The largest PKI file read (certificates, keys and kubeconfigs are a few KiB).
pub const MAX_FILE_BYTES: u64 = 1 << 20;

/// Reads the files of the PKI table for a control plane of `control_plane_size` masters that exist under
/// `root` (with 1, etcd's files are not read even if present). Errors name the file: unreadable, not a regular
/// file, or larger than [`MAX_FILE_BYTES`].
pub fn read_existing(root: &Path, control_plane_size: u32) -> io::Result<ExistingFiles> {
    let mut files = ExistingFiles::new();
    for rel in control_plane_files(control_plane_size) {
        let path = root.join(rel);
        if let Some(bytes) = read_bounded(&path)? {
            files.insert(rel.to_string(), bytes);
        }
    }
    Ok(files)
}

fn named(path: &Path, e: io::Error) -> io::Error {
    io::Error::new(e.kind(), format!("{}: {e}", path.display()))
}

/// The file's bytes, `None` if it does not exist.
fn read_bounded(path: &Path) -> io::Result<Option<Vec<u8>>> {
    let file = match std::fs::File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(named(path, e)),
    };
    let meta = file.metadata().map_err(|e| named(path, e))?;
    if !meta.is_file() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{}: not a regular file", path.display()),
        ));
    }
    let mut bytes = Vec::new();
    file.take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| named(path, e))?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "{}: larger than {MAX_FILE_BYTES} bytes, not a certificate, key or kubeconfig",
                path.display()
            ),
        ));
    }
    Ok(Some(bytes))
}

/// Creates the missing directories from `root` down to `dir`, each 0755 whatever the umask; existing ones are
/// left as they are.
fn create_dirs(root: &Path, dir: &Path) -> io::Result<()> {
    let mut missing = Vec::new();
    let mut at = dir;
    while !at.exists() {
        missing.push(at);
        match at.parent() {
            Some(parent) if at != root => at = parent,
            _ => break,
        }
    }
    for dir in missing.into_iter().rev() {
        match std::fs::DirBuilder::new().mode(0o755).create(dir) {
            Ok(()) => std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755))?,
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Writing a planned file failed.
#[derive(Debug, thiserror::Error)]
#[error("cannot write {}: {source} — hint: check that {} is writable (the agent runs as root)", path.display(), dir.display())]
pub struct WriteError {
    pub path: PathBuf,
    dir: PathBuf,
    #[source]
    pub source: io::Error,
}

/// Writes `files` under `root`, each atomically with its mode, creating missing directories 0755. Stops at
/// the first failure (the files written before it stay: they are complete, and the next plan keeps them).
pub fn write_planned(root: &Path, files: &[PlannedFile]) -> Result<(), WriteError> {
    for file in files {
        let path = root.join(file.path.trim_start_matches('/'));
        let dir = path.parent().unwrap_or(root).to_path_buf();
        let fail = |source: io::Error| WriteError {
            path: path.clone(),
            dir: dir.clone(),
            source,
        };
        create_dirs(root, &dir).map_err(fail)?;
        atomic_write(&path, &file.contents, file.mode).map_err(fail)?;
        tracing::info!(
            path = %path.display(),
            mode = format_args!("{:o}", file.mode),
            bytes = file.contents.len(),
            "wrote PKI file"
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).unwrap().permissions().mode() & 0o7777
    }

    #[test]
    fn reads_only_the_table_files_that_exist() {
        let root = tempfile::tempdir().unwrap();
        let pki = root.path().join("etc/kubernetes/pki");
        std::fs::create_dir_all(&pki).unwrap();
        std::fs::write(pki.join("ca.crt"), b"cert").unwrap();
        std::fs::write(pki.join("ca.key"), b"key").unwrap();
        std::fs::write(pki.join("unrelated.crt"), b"x").unwrap();
        std::fs::write(root.path().join("etc/kubernetes/admin.conf"), b"conf").unwrap();
        let files = read_existing(root.path(), 1).unwrap();
        assert_eq!(
            files.keys().collect::<Vec<_>>(),
            [
                "etc/kubernetes/admin.conf",
                "etc/kubernetes/pki/ca.crt",
                "etc/kubernetes/pki/ca.key"
            ]
        );
        assert_eq!(files["etc/kubernetes/pki/ca.key"], b"key");
        assert!(
            read_existing(&root.path().join("nowhere"), 1)
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn etcd_files_are_read_only_for_an_ha_control_plane() {
        let root = tempfile::tempdir().unwrap();
        let etcd = root.path().join("etc/kubernetes/pki/etcd");
        std::fs::create_dir_all(&etcd).unwrap();
        std::fs::write(root.path().join("etc/kubernetes/pki/ca.crt"), b"cert").unwrap();
        std::fs::write(etcd.join("ca.crt"), b"etcd cert").unwrap();
        std::fs::write(etcd.join("ca.key"), b"etcd key").unwrap();
        std::fs::write(
            root.path()
                .join("etc/kubernetes/pki/apiserver-etcd-client.crt"),
            b"client",
        )
        .unwrap();
        let single = read_existing(root.path(), 1).unwrap();
        assert_eq!(
            single.keys().collect::<Vec<_>>(),
            ["etc/kubernetes/pki/ca.crt"]
        );
        let ha = read_existing(root.path(), 3).unwrap();
        assert_eq!(
            ha.keys().collect::<Vec<_>>(),
            [
                "etc/kubernetes/pki/apiserver-etcd-client.crt",
                "etc/kubernetes/pki/ca.crt",
                "etc/kubernetes/pki/etcd/ca.crt",
                "etc/kubernetes/pki/etcd/ca.key",
            ]
        );
        assert_eq!(ha["etc/kubernetes/pki/etcd/ca.key"], b"etcd key");
    }

    #[test]
    fn an_oversized_file_is_an_error_naming_it() {
        let root = tempfile::tempdir().unwrap();
        let pki = root.path().join("etc/kubernetes/pki");
        std::fs::create_dir_all(&pki).unwrap();
        std::fs::write(
            pki.join("apiserver.crt"),
            vec![b'a'; MAX_FILE_BYTES as usize + 1],
        )
        .unwrap();
        let err = read_existing(root.path(), 1).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        assert!(
            err.to_string().contains("etc/kubernetes/pki/apiserver.crt"),
            "{err}"
        );
        std::fs::write(
            pki.join("apiserver.crt"),
            vec![b'a'; MAX_FILE_BYTES as usize],
        )
        .unwrap();
        assert_eq!(read_existing(root.path(), 1).unwrap().len(), 1);
    }

    #[test]
    fn a_directory_in_place_of_a_file_is_an_error_naming_it() {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(root.path().join("etc/kubernetes/pki/sa.key")).unwrap();
        let err = read_existing(root.path(), 1).unwrap_err();
        assert!(
            err.to_string().contains("etc/kubernetes/pki/sa.key"),
            "{err}"
        );
    }

    #[test]
    fn writes_with_modes_and_0755_directories() {
        let root = tempfile::tempdir().unwrap();
        let files = [
            PlannedFile {
                path: "etc/kubernetes/pki/sa.key".to_string(),
                contents: b"secret".to_vec(),
                mode: 0o600,
                secret: true,
            },
            PlannedFile {
                path: "etc/kubernetes/pki/sa.pub".to_string(),
                contents: b"public".to_vec(),
                mode: 0o644,
                secret: false,
            },
        ];
        write_planned(root.path(), &files).unwrap();
        let pki = root.path().join("etc/kubernetes/pki");
        assert_eq!(std::fs::read(pki.join("sa.key")).unwrap(), b"secret");
        assert_eq!(mode(&pki.join("sa.key")), 0o600);
        assert_eq!(mode(&pki.join("sa.pub")), 0o644);
        assert_eq!(mode(&pki), 0o755);
        assert_eq!(mode(&root.path().join("etc/kubernetes")), 0o755);
        let leftovers: Vec<_> = std::fs::read_dir(&pki)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .filter(|n| n.to_string_lossy().contains(".tmp-"))
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
        assert_eq!(read_existing(root.path(), 1).unwrap().len(), 2);
    }

    #[test]
    fn a_write_failure_names_the_file() {
        let root = tempfile::tempdir().unwrap();
        // A file where the directory should be.
        std::fs::create_dir_all(root.path().join("etc")).unwrap();
        std::fs::write(root.path().join("etc/kubernetes"), b"").unwrap();
        let files = [PlannedFile {
            path: "etc/kubernetes/pki/ca.crt".to_string(),
            contents: b"x".to_vec(),
            mode: 0o644,
            secret: false,
        }];
        let err = write_planned(root.path(), &files).unwrap_err();
        assert!(
            err.to_string().contains("etc/kubernetes/pki/ca.crt"),
            "{err}"
        );
        assert_eq!(err.path, root.path().join("etc/kubernetes/pki/ca.crt"));
    }
}
