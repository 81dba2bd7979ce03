//! The OCI image layout tar a pull writes, deterministically: the same blobs give the same bytes.
//!
//! Members, in this order: `oci-layout`, `index.json`, then `blobs/sha256/<hex>` sorted by hex. Every member is a
//! regular file with mode 0644, uid/gid 0, no user or group names and mtime 0, in ustar headers; there are no
//! directory entries and no other metadata. `index.json` is compact JSON with fixed field order, listing one
//! descriptor with its annotations sorted by name.

use crate::layer::HashingWriter;
use serde::Serialize;
use std::collections::BTreeMap;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// `oci-layout`'s content.
pub const OCI_LAYOUT: &[u8] = br#"{"imageLayoutVersion":"1.0.0"}"#;
/// The annotation containerd names an imported image by.
pub const ANNOTATION_CONTAINERD_NAME: &str = "io.containerd.image.name";
/// The OCI annotation for the tag.
pub const ANNOTATION_REF_NAME: &str = "org.opencontainers.image.ref.name";

/// Where a blob's bytes are.
#[derive(Debug)]
pub enum BlobSource {
    Bytes(Vec<u8>),
    /// A verified download of exactly `size` bytes.
    File {
        path: PathBuf,
        size: u64,
    },
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct LayoutIndex<'a> {
    schema_version: u32,
    media_type: &'static str,
    manifests: [LayoutDescriptor<'a>; 1],
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct LayoutDescriptor<'a> {
    media_type: &'a str,
    digest: &'a str,
    size: u64,
    annotations: BTreeMap<&'static str, &'a str>,
}

/// `index.json` naming one manifest (or index) with containerd's image name and, if any, the tag.
pub fn render_index_json(
    media_type: &str,
    digest: &str,
    size: u64,
    containerd_name: &str,
    tag: Option<&str>,
) -> Vec<u8> {
    let mut annotations = BTreeMap::new();
    annotations.insert(ANNOTATION_CONTAINERD_NAME, containerd_name);
    if let Some(tag) = tag {
        annotations.insert(ANNOTATION_REF_NAME, tag);
    }
    let index = LayoutIndex {
        schema_version: 2,
        media_type: super::document::OCI_INDEX,
        manifests: [LayoutDescriptor {
            media_type,
            digest,
            size,
            annotations,
        }],
    };
    // Serialising plain strings, numbers and maps cannot fail.
    serde_json::to_vec(&index).unwrap_or_default()
}

/// Writes the layout tar to `out` (created or truncated, mode 0644, synced) and returns its sha256 hex and size.
/// `blobs` maps sha256 hex → bytes.
pub fn write_layout_tar(
    out: &Path,
    index_json: &[u8],
    blobs: &BTreeMap<String, BlobSource>,
) -> io::Result<(String, u64)> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o644)
        .open(out)?;
    file.set_permissions(std::fs::Permissions::from_mode(0o644))?;
    let writer = HashingWriter::new(io::BufWriter::with_capacity(1 << 20, file));
    let mut tar = tar::Builder::new(writer);
    append(&mut tar, "oci-layout", OCI_LAYOUT.len() as u64, OCI_LAYOUT)?;
    append(&mut tar, "index.json", index_json.len() as u64, index_json)?;
    for (hex, source) in blobs {
        let name = format!("blobs/sha256/{hex}");
        match source {
            BlobSource::Bytes(bytes) => append(&mut tar, &name, bytes.len() as u64, &bytes[..])?,
            BlobSource::File { path, size } => {
                let file = std::fs::File::open(path)?;
                if file.metadata()?.len() != *size {
                    return Err(io::Error::other(format!(
                        "{} changed size after it was verified",
                        path.display()
                    )));
                }
                append(&mut tar, &name, *size, file)?;
            }
        }
    }
    let writer = tar.into_inner()?;
    let (buffered, sha256, bytes) = writer.finish();
    let file = buffered.into_inner().map_err(|e| e.into_error())?;
    file.sync_all()?;
    Ok((sha256, bytes))
}

fn append<W: Write>(
    tar: &mut tar::Builder<W>,
    name: &str,
    size: u64,
    data: impl io::Read,
) -> io::Result<()> {
    let mut header = tar::Header::new_ustar();
    header.set_path(name)?;
    header.set_entry_type(tar::EntryType::Regular);
    header.set_size(size);
    header.set_mode(0o644);
    header.set_uid(0);
    header.set_gid(0);
    header.set_mtime(0);
    header.set_cksum();
    // A short reader would shift every later member: tar::Builder copies exactly what the reader yields.
    let mut counted = CountingReader {
        inner: data,
        read: 0,
    };
    tar.append(&header, &mut counted)?;
    if counted.read != size {
        return Err(io::Error::other(format!(
            "{name}: {} bytes were written for a member of {size} bytes",
            counted.read
        )));
    }
    Ok(())
}

struct CountingReader<R> {
    inner: R,
    read: u64,
}

impl<R: io::Read> io::Read for CountingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read += n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_json_is_compact_and_ordered() {
        let json = render_index_json(
            "application/vnd.oci.image.index.v1+json",
            "sha256:ab",
            12,
            "registry.k8s.io/pause:3.10.1",
            Some("3.10.1"),
        );
        assert_eq!(
            String::from_utf8(json).expect("utf-8"),
            r#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{"mediaType":"application/vnd.oci.image.index.v1+json","digest":"sha256:ab","size":12,"annotations":{"io.containerd.image.name":"registry.k8s.io/pause:3.10.1","org.opencontainers.image.ref.name":"3.10.1"}}]}"#
        );
    }

    #[test]
    fn same_blobs_same_bytes_and_plain_headers() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file_blob = dir.path().join("blob");
        std::fs::write(&file_blob, b"layer bytes").expect("write");
        let blobs = || {
            let mut b = BTreeMap::new();
            b.insert("bb".to_string(), BlobSource::Bytes(b"manifest".to_vec()));
            b.insert(
                "aa".to_string(),
                BlobSource::File {
                    path: file_blob.clone(),
                    size: 11,
                },
            );
            b
        };
        let (one, two) = (dir.path().join("1.tar"), dir.path().join("2.tar"));
        let a = write_layout_tar(&one, b"{}", &blobs()).expect("write 1");
        let b = write_layout_tar(&two, b"{}", &blobs()).expect("write 2");
        assert_eq!(a, b);
        let bytes = std::fs::read(&one).expect("read");
        assert_eq!(std::fs::read(&two).expect("read"), bytes);
        assert_eq!(a.0, crate::checksum::sha256_hex(&bytes));
        assert_eq!(a.1, bytes.len() as u64);
        let mut archive = tar::Archive::new(&bytes[..]);
        let mut names = Vec::new();
        for entry in archive.entries().expect("entries") {
            let entry = entry.expect("entry");
            let h = entry.header();
            assert_eq!(h.mode().expect("mode"), 0o644);
            assert_eq!(h.mtime().expect("mtime"), 0);
            assert_eq!((h.uid().expect("uid"), h.gid().expect("gid")), (0, 0));
            assert_eq!(h.username_bytes(), Some(&b""[..]));
            names.push(entry.path().expect("path").display().to_string());
        }
        assert_eq!(
            names,
            [
                "oci-layout",
                "index.json",
                "blobs/sha256/aa",
                "blobs/sha256/bb"
            ]
        );
    }

    #[test]
    fn a_blob_that_changed_size_is_an_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("blob");
        std::fs::write(&path, b"12345").expect("write");
        let mut blobs = BTreeMap::new();
        blobs.insert("aa".to_string(), BlobSource::File { path, size: 4 });
        assert!(write_layout_tar(&dir.path().join("o.tar"), b"{}", &blobs).is_err());
    }
}
