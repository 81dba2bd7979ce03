//! The role file's edge: the one place the agent reads `/etc/sysconfig/kubernetes-{masters,minions}` (which file
//! is there, its bytes, bounded by [`MAX_ROLE_FILE_BYTES`]). Parsing and checking are pure
//! ([`k8s_core::role_file`]); the executor, `k8s-agent role`/`status` and the support bundle all read through
//! [`load`] (or [`read_bytes`] for the drift check).

use k8s_core::node_role::{MASTER_ROLE_FILE, MINION_ROLE_FILE, NodeRole};
use k8s_core::role_file::{
    MAX_ROLE_FILE_BYTES, RoleConfig, RoleDiscovery, RoleFileError, RoleLoad, decode_role_file,
    parse_role_file,
};
use std::io::Read;
use std::path::Path;

/// The bytes of a role file, at most [`MAX_ROLE_FILE_BYTES`] + 1 (one more than allowed, so that an oversized file
/// is seen as one by [`decode_role_file`]).
pub fn read_bytes(path: &Path) -> std::io::Result<Vec<u8>> {
    let file = std::fs::File::open(path)?;
    let mut bytes = Vec::new();
    file.take(MAX_ROLE_FILE_BYTES as u64 + 1)
        .read_to_end(&mut bytes)?;
    Ok(bytes)
}

/// Read (at most [`MAX_ROLE_FILE_BYTES`]) and check one role file.
pub fn read_role_file(path: &Path, role: NodeRole) -> Result<RoleConfig, RoleFileError> {
    let unreadable = |message: String| RoleFileError::Unreadable {
        path: path.to_path_buf(),
        message,
    };
    let bytes = read_bytes(path).map_err(|e| unreadable(e.to_string()))?;
    let text = decode_role_file(path, &bytes)?;
    parse_role_file(path, role, &text)
}

/// Look for the role files under `root` (`/` on a node). Existence checks only.
pub fn discover(root: &Path) -> RoleDiscovery {
    let master = root.join(MASTER_ROLE_FILE);
    let minion = root.join(MINION_ROLE_FILE);
    let master_exists = match master.try_exists() {
        Ok(exists) => exists,
        Err(e) => {
            return RoleDiscovery::Unreadable {
                path: master,
                message: e.to_string(),
            };
        }
    };
    let minion_exists = match minion.try_exists() {
        Ok(exists) => exists,
        Err(e) => {
            return RoleDiscovery::Unreadable {
                path: minion,
                message: e.to_string(),
            };
        }
    };
    match (master_exists, minion_exists) {
        (true, true) => RoleDiscovery::Both { master, minion },
        (true, false) => RoleDiscovery::Found {
            path: master,
            role: NodeRole::Master,
        },
        (false, true) => RoleDiscovery::Found {
            path: minion,
            role: NodeRole::Minion,
        },
        (false, false) => RoleDiscovery::NoneYet { master, minion },
    }
}

/// [`discover`], then [`read_role_file`] when exactly one role file exists.
pub fn load(root: &Path) -> RoleLoad {
    match discover(root) {
        RoleDiscovery::Found { path, role } => match read_role_file(&path, role) {
            Ok(config) => RoleLoad::Parsed(Box::new(config)),
            Err(e) => RoleLoad::Invalid(e),
        },
        other => RoleLoad::NotRead(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_core::node_role::{MASTER_ROLE_FILE, MINION_ROLE_FILE};
    use k8s_core::role_file::RoleFileError;

    fn write(root: &Path, rel: &str, text: &str) {
        let path = root.join(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).unwrap_or_else(|e| panic!("{e}"));
        }
        std::fs::write(path, text).unwrap_or_else(|e| panic!("{e}"));
    }

    fn tempdir() -> tempfile::TempDir {
        tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn none_yet() {
        let root = tempdir();
        let found = discover(root.path());
        assert!(matches!(found, RoleDiscovery::NoneYet { .. }), "{found:?}");
        assert!(
            found
                .reason()
                .starts_with("cloud-init has not written a role file yet")
        );
        assert_eq!(load(root.path()), RoleLoad::NotRead(found));
    }

    #[test]
    fn found_each_role() {
        for role in NodeRole::ALL {
            let root = tempdir();
            write(
                root.path(),
                role.role_file(),
                "CLUSTER_NAME=a\nWEAVE_CONSENSUS=1\nMASTER_PROBE=http\n",
            );
            assert_eq!(
                discover(root.path()),
                RoleDiscovery::Found {
                    path: root.path().join(role.role_file()),
                    role
                }
            );
            match load(root.path()) {
                RoleLoad::Parsed(config) => assert_eq!(config.role, role),
                other => panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn both_is_refused() {
        let root = tempdir();
        write(root.path(), MASTER_ROLE_FILE, "CLUSTER_NAME=a\n");
        write(root.path(), MINION_ROLE_FILE, "CLUSTER_NAME=a\n");
        let found = discover(root.path());
        assert_eq!(
            found,
            RoleDiscovery::Both {
                master: root.path().join(MASTER_ROLE_FILE),
                minion: root.path().join(MINION_ROLE_FILE)
            }
        );
        assert!(
            found.reason().contains("nothing was started"),
            "{}",
            found.reason()
        );
    }

    #[test]
    fn a_malformed_file_is_an_error_naming_the_real_path() {
        let root = tempdir();
        write(
            root.path(),
            MINION_ROLE_FILE,
            "CLUSTER_NAME=a\nthis is not an assignment\n",
        );
        match load(root.path()) {
            RoleLoad::Invalid(RoleFileError::Syntax { path, line: 2, .. }) => {
                assert_eq!(path, root.path().join(MINION_ROLE_FILE))
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_directory_in_place_of_the_file_is_unreadable() {
        let root = tempdir();
        std::fs::create_dir_all(root.path().join(MASTER_ROLE_FILE))
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(matches!(
            load(root.path()),
            RoleLoad::Invalid(RoleFileError::Unreadable { .. })
        ));
    }
}
