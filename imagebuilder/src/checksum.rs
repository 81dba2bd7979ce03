//! Checksums: the `sha256:`/`sha512:` value type, streaming hashers, and parsing of published checksum files
//! (a bare digest as on dl.k8s.io, or `sha256sum`-style `<hex>  <file>` lines as in GitHub releases).

use sha2::{Digest, Sha256, Sha512};
use std::fmt;
use std::io::{self, Read};

/// Which digest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ChecksumAlgo {
    Sha256,
    Sha512,
}

impl ChecksumAlgo {
    /// Lower-case name as used in `sha256:<hex>` and in cache paths.
    pub fn as_str(self) -> &'static str {
        match self {
            ChecksumAlgo::Sha256 => "sha256",
            ChecksumAlgo::Sha512 => "sha512",
        }
    }

    /// SPDX's name of the algorithm.
    pub fn spdx_name(self) -> &'static str {
        match self {
            ChecksumAlgo::Sha256 => "SHA256",
            ChecksumAlgo::Sha512 => "SHA512",
        }
    }

    fn hex_len(self) -> usize {
        match self {
            ChecksumAlgo::Sha256 => 64,
            ChecksumAlgo::Sha512 => 128,
        }
    }
}

/// An expected or computed digest.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Checksum {
    pub algo: ChecksumAlgo,
    /// Lower-case hex.
    pub hex: String,
}

impl Checksum {
    /// Checks and normalises a hex digest for `algo`.
    pub fn from_hex(algo: ChecksumAlgo, hex: &str) -> Result<Checksum, String> {
        let hex = hex.trim();
        if hex.len() != algo.hex_len() {
            return Err(format!(
                "{} digest has {} characters, expected {}",
                algo.as_str(),
                hex.len(),
                algo.hex_len()
            ));
        }
        if !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(format!(
                "{} digest {hex:?} is not hexadecimal",
                algo.as_str()
            ));
        }
        Ok(Checksum {
            algo,
            hex: hex.to_ascii_lowercase(),
        })
    }

    /// A digest whose algorithm is told by its length (64 → sha256, 128 → sha512).
    pub fn from_bare_hex(hex: &str) -> Result<Checksum, String> {
        match hex.trim().len() {
            64 => Checksum::from_hex(ChecksumAlgo::Sha256, hex),
            128 => Checksum::from_hex(ChecksumAlgo::Sha512, hex),
            n => Err(format!(
                "a digest of {n} characters is neither sha256 (64) nor sha512 (128)"
            )),
        }
    }
}

impl fmt::Display for Checksum {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.algo.as_str(), self.hex)
    }
}

/// A running digest of either algorithm.
pub enum Hasher {
    Sha256(Sha256),
    Sha512(Sha512),
}

impl Hasher {
    pub fn new(algo: ChecksumAlgo) -> Hasher {
        match algo {
            ChecksumAlgo::Sha256 => Hasher::Sha256(Sha256::new()),
            ChecksumAlgo::Sha512 => Hasher::Sha512(Sha512::new()),
        }
    }

    pub fn update(&mut self, bytes: &[u8]) {
        match self {
            Hasher::Sha256(h) => h.update(bytes),
            Hasher::Sha512(h) => h.update(bytes),
        }
    }

    pub fn finish(self) -> Checksum {
        match self {
            Hasher::Sha256(h) => Checksum {
                algo: ChecksumAlgo::Sha256,
                hex: hex::encode(h.finalize()),
            },
            Hasher::Sha512(h) => Checksum {
                algo: ChecksumAlgo::Sha512,
                hex: hex::encode(h.finalize()),
            },
        }
    }
}

/// Digest of everything `reader` yields.
pub fn digest_reader(algo: ChecksumAlgo, mut reader: impl Read) -> io::Result<Checksum> {
    let mut hasher = Hasher::new(algo);
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = reader.read(&mut buf)?;
        if n == 0 {
            return Ok(hasher.finish());
        }
        hasher.update(&buf[..n]);
    }
}

/// Lower-case hex sha256 of a byte slice.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Finds the digest for `file_name` in a published checksum file.
///
/// Accepted forms: a file holding only a digest (optionally followed by a file name, as dl.k8s.io and
/// `sha256sum` write them), or several `<hex> [ *]<file>` lines, of which the one naming `file_name` (compared by
/// its last path component) is used. BSD-style `SHA256 (file) = hex` lines are accepted too.
pub fn find_in_checksum_file(text: &str, file_name: &str) -> Result<Checksum, String> {
    let mut entries: Vec<(Option<String>, &str)> = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some((name, hex)) = parse_bsd_line(line) {
            entries.push((Some(name), hex));
            continue;
        }
        let mut parts = line.splitn(2, char::is_whitespace);
        let hex = parts.next().unwrap_or_default();
        let name = parts
            .next()
            .map(|n| n.trim_start().trim_start_matches('*').trim().to_string())
            .filter(|n| !n.is_empty());
        entries.push((name, hex));
    }
    let wanted = last_component(file_name);
    if let Some((_, hex)) = entries
        .iter()
        .find(|(name, _)| name.as_deref().is_some_and(|n| last_component(n) == wanted))
    {
        return Checksum::from_bare_hex(hex);
    }
    match entries.as_slice() {
        [(None, hex)] => Checksum::from_bare_hex(hex),
        [] => Err("the checksum file is empty".to_string()),
        [(Some(name), hex)] if entries.len() == 1 && name == "-" => Checksum::from_bare_hex(hex),
        _ => Err(format!(
            "the checksum file has no line for {wanted:?} (it names: {})",
            entries
                .iter()
                .filter_map(|(n, _)| n.as_deref())
                .take(8)
                .collect::<Vec<_>>()
                .join(", ")
        )),
    }
}

fn parse_bsd_line(line: &str) -> Option<(String, &str)> {
    let rest = line
        .strip_prefix("SHA256 (")
        .or_else(|| line.strip_prefix("SHA512 ("))?;
    let (name, hex) = rest.split_once(") = ")?;
    Some((name.to_string(), hex.trim()))
}

fn last_component(name: &str) -> &str {
    name.rsplit('/').next().unwrap_or(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
    const B: &str = "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824";

    #[test]
    fn bare_digest_as_on_dl_k8s_io() {
        let c = find_in_checksum_file(&format!("{A}\n"), "kubelet").unwrap();
        assert_eq!(c.to_string(), format!("sha256:{A}"));
    }

    #[test]
    fn sha256sum_lines_pick_the_named_file() {
        let text = format!("{A}  runc.amd64\n{B} *runc.arm64\n");
        assert_eq!(find_in_checksum_file(&text, "runc.arm64").unwrap().hex, B);
        assert_eq!(find_in_checksum_file(&text, "runc.amd64").unwrap().hex, A);
        let err = find_in_checksum_file(&text, "runc.riscv64").unwrap_err();
        assert!(err.contains("no line for \"runc.riscv64\""), "{err}");
    }

    #[test]
    fn single_named_line_for_another_file_is_not_trusted() {
        let err =
            find_in_checksum_file(&format!("{A}  other.tar.gz\n"), "mine.tar.gz").unwrap_err();
        assert!(err.contains("no line for"), "{err}");
    }

    #[test]
    fn bsd_style_and_uppercase_hex() {
        let text = format!("SHA256 (etcd.tar.gz) = {}\n", A.to_uppercase());
        assert_eq!(find_in_checksum_file(&text, "etcd.tar.gz").unwrap().hex, A);
    }

    #[test]
    fn bad_digests_are_rejected() {
        assert!(find_in_checksum_file("abc\n", "x").is_err());
        assert!(find_in_checksum_file("", "x").is_err());
        assert!(Checksum::from_hex(ChecksumAlgo::Sha256, &"g".repeat(64)).is_err());
        let long = "a".repeat(128);
        assert_eq!(
            Checksum::from_bare_hex(&long).unwrap().algo,
            ChecksumAlgo::Sha512
        );
    }

    #[test]
    fn digest_of_empty_input() {
        assert_eq!(
            digest_reader(ChecksumAlgo::Sha256, &b""[..]).unwrap().hex,
            A
        );
        assert_eq!(sha256_hex(b"hello"), B);
    }
}
