//! What every stand-in shares: the `STAND-IN <name>:` log line, bounded file reads, atomic writes, random
//! identifiers, and the modules below (flags, PKI, time, kubeconfig, HTTPS client, health endpoint).

pub mod client;
pub mod flags;
pub mod health;
pub mod kubeconfig;
pub mod pki;
pub mod time;

use std::io::{Read, Write};
use std::path::Path;
use std::sync::OnceLock;

/// The identity this process runs as (`argv[0]`'s file name), set once by `main`.
static NAME: OnceLock<String> = OnceLock::new();

/// Records the identity used by [`log`]. Later calls are ignored.
pub fn set_name(name: &str) {
    let _ = NAME.set(name.to_string());
}

/// The identity set by [`set_name`] (`k8s-standin` before that).
pub fn name() -> &'static str {
    NAME.get().map_or("k8s-standin", String::as_str)
}

/// Writes one `STAND-IN <name>: <line>` line to stderr (a closed stderr is ignored, never a panic).
pub fn log(line: &str) {
    let _ = writeln!(std::io::stderr().lock(), "STAND-IN {}: {line}", name());
}

/// Logs `error: <message>` and returns exit status 1: how every stand-in refuses to start.
pub fn fail(message: &str) -> std::process::ExitCode {
    log(&format!("error: {message}"));
    std::process::ExitCode::FAILURE
}

/// Sleeps until the process is killed (SIGTERM's default action ends it).
pub fn sleep_forever() -> ! {
    loop {
        std::thread::sleep(std::time::Duration::from_secs(3600));
    }
}

/// Files larger than this are refused: certificates, keys, kubeconfigs and configuration files are a few KiB.
pub const MAX_FILE_BYTES: u64 = 1 << 20;

/// Reads a small file (at most [`MAX_FILE_BYTES`]). The error names `what` (a flag or a role) and the path.
pub fn read_small_file(what: &str, path: &Path) -> Result<Vec<u8>, String> {
    let cannot = |e: std::io::Error| format!("{what} {}: cannot read it ({e})", path.display());
    let file = std::fs::File::open(path).map_err(cannot)?;
    let mut bytes = Vec::new();
    file.take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(cannot)?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(format!(
            "{what} {}: larger than {MAX_FILE_BYTES} bytes, not a file this program reads",
            path.display()
        ));
    }
    Ok(bytes)
}

/// Writes `bytes` to `path` atomically with file mode `mode`: a temporary file in the same directory, fsync,
/// rename over the target, fsync of the directory. A reader sees the old content or the new, never a part.
pub fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> Result<(), String> {
    use std::os::unix::fs::OpenOptionsExt;
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let temporary = dir.join(format!(".{file_name}.tmp.{}", std::process::id()));
    let cannot = |what: &str, e: std::io::Error| format!("cannot {what} {}: {e}", path.display());
    let result = (|| {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(mode)
            .open(&temporary)
            .map_err(|e| cannot("write", e))?;
        file.write_all(bytes).map_err(|e| cannot("write", e))?;
        file.sync_all().map_err(|e| cannot("sync", e))?;
        std::fs::rename(&temporary, path).map_err(|e| cannot("rename into", e))?;
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&temporary);
    }
    result
}

/// `n` random bytes from the system's generator.
pub fn random_bytes(n: usize) -> Vec<u8> {
    use ring::rand::SecureRandom;
    let mut bytes = vec![0u8; n];
    // The system generator does not fail on Linux once booted; a zeroed buffer would still be unique enough
    // for a stand-in's object identifiers, never for keys (keys come from rcgen/ring directly).
    let _ = ring::rand::SystemRandom::new().fill(&mut bytes);
    bytes
}

/// A random RFC 4122 version 4 UUID, as Kubernetes writes `metadata.uid`.
pub fn uuid() -> String {
    let mut b = random_bytes(16);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

/// `n` random characters from the alphabet Kubernetes uses for `generateName` suffixes (no vowels, no 0/1/3).
pub fn random_suffix(n: usize) -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    random_bytes(n)
        .iter()
        .map(|b| ALPHABET[usize::from(*b) % ALPHABET.len()] as char)
        .collect()
}

/// The kernel's host name, lower-cased and trimmed, as the kubelet and kube-proxy derive the node name.
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase()
}

/// Reads a string at a JSON path (`["metadata", "name"]`), `""` when absent or not a string.
pub fn str_at<'a>(value: &'a serde_json::Value, path: &[&str]) -> &'a str {
    let mut v = value;
    for key in path {
        match v.get(key) {
            Some(next) => v = next,
            None => return "",
        }
    }
    v.as_str().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuids_look_like_version_4() {
        let u = uuid();
        assert_eq!(u.len(), 36);
        assert_eq!(&u[14..15], "4");
        assert_ne!(uuid(), u);
    }

    #[test]
    fn suffixes_use_the_kubernetes_alphabet() {
        let s = random_suffix(5);
        assert_eq!(s.len(), 5);
        assert!(
            s.chars().all(|c| "bcdfghjklmnpqrstvwxz2456789".contains(c)),
            "{s}"
        );
    }

    #[test]
    fn atomic_writes_replace_and_set_the_mode() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        write_atomic(&path, b"one", 0o600).unwrap();
        write_atomic(&path, b"two", 0o600).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"two");
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn str_at_walks_objects() {
        let v = serde_json::json!({"metadata": {"name": "x"}});
        assert_eq!(str_at(&v, &["metadata", "name"]), "x");
        assert_eq!(str_at(&v, &["metadata", "namespace"]), "");
        assert_eq!(str_at(&v, &["spec", "x"]), "");
    }
}
