//! The deterministic layer: `layer.tar.gz` written from the staged tree.
//!
//! Entries are sorted by path (byte order), every parent directory gets an entry (0755), owners are 0/0 (`root`),
//! modes are the ones recorded when staging, every mtime is the build's `SOURCE_DATE_EPOCH`, and the gzip header
//! carries no name and a zero mtime. The same staged content therefore always gives the same bytes. Paths are
//! relative (`usr/bin/kubelet`) so `tar -xzf layer.tar.gz -C /` applies it; the root directory itself has no entry,
//! so extracting never changes `/`'s mode.

use crate::stage::Staging;
use std::collections::BTreeMap;
use std::io::{self, Write};
use std::path::PathBuf;

enum Entry {
    Dir,
    File { host: PathBuf, mode: u32, size: u64 },
    Symlink { target: String },
}

/// Gzip level used for the layer (zlib's default trade-off between size and time).
pub const GZIP_LEVEL: u32 = 6;

/// Writes the tar.gz of `staging` to `out`.
pub fn write_layer(staging: &Staging, mtime: u64, out: impl Write) -> io::Result<()> {
    let mut entries: BTreeMap<String, Entry> = BTreeMap::new();
    let add_parents = |entries: &mut BTreeMap<String, Entry>, rel: &str| {
        let mut acc = String::new();
        let parts: Vec<&str> = rel.split('/').collect();
        for part in &parts[..parts.len().saturating_sub(1)] {
            if !acc.is_empty() {
                acc.push('/');
            }
            acc.push_str(part);
            entries.entry(acc.clone()).or_insert(Entry::Dir);
        }
    };
    for (node_path, file) in staging.files() {
        let rel = node_path.trim_start_matches('/').to_string();
        add_parents(&mut entries, &rel);
        entries.insert(
            rel,
            Entry::File {
                host: staging.host_path(node_path),
                mode: file.mode,
                size: file.size,
            },
        );
    }
    for (node_path, target) in staging.symlinks() {
        let rel = node_path.trim_start_matches('/').to_string();
        add_parents(&mut entries, &rel);
        entries.insert(
            rel,
            Entry::Symlink {
                target: target.clone(),
            },
        );
    }

    // The same bytes for any thread count (see parallel_gz); at most two 1 MiB blocks per thread in flight.
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let gz =
        crate::parallel_gz::ParallelGz::new(out, GZIP_LEVEL, crate::parallel_gz::BLOCK, threads)?;
    let mut tar = tar::Builder::new(io::BufWriter::with_capacity(1 << 20, gz));
    tar.follow_symlinks(false);
    for (rel, entry) in &entries {
        let mut header = tar::Header::new_gnu();
        header.set_uid(0);
        header.set_gid(0);
        header.set_username("root")?;
        header.set_groupname("root")?;
        header.set_mtime(mtime);
        match entry {
            Entry::Dir => {
                header.set_entry_type(tar::EntryType::Directory);
                header.set_mode(0o755);
                header.set_size(0);
                tar.append_data(&mut header, format!("{rel}/"), io::empty())?;
            }
            Entry::File { host, mode, size } => {
                header.set_entry_type(tar::EntryType::Regular);
                header.set_mode(*mode);
                header.set_size(*size);
                let file = std::fs::File::open(host)?;
                tar.append_data(
                    &mut header,
                    rel,
                    io::BufReader::with_capacity(1 << 20, file),
                )?;
            }
            Entry::Symlink { target } => {
                header.set_entry_type(tar::EntryType::Symlink);
                header.set_mode(0o777);
                header.set_size(0);
                tar.append_link(&mut header, rel, target)?;
            }
        }
    }
    let buffered = tar.into_inner()?;
    let gz = buffered.into_inner().map_err(|e| e.into_error())?;
    gz.finish()?.flush()
}

/// A writer that hashes (sha256) and counts what passes through it.
pub struct HashingWriter<W> {
    inner: W,
    hasher: crate::checksum::Hasher,
    written: u64,
}

impl<W: Write> HashingWriter<W> {
    pub fn new(inner: W) -> Self {
        HashingWriter {
            inner,
            hasher: crate::checksum::Hasher::new(crate::checksum::ChecksumAlgo::Sha256),
            written: 0,
        }
    }

    /// The inner writer, the sha256 hex and the byte count.
    pub fn finish(self) -> (W, String, u64) {
        (self.inner, self.hasher.finish().hex, self.written)
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.written += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}
