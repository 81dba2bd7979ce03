//! What the fetch and Go-build steps hand to staging: an artifact whose bytes are verified and in the cache
//! ([`FetchedArtifact`]), where they came from ([`FetchedFrom`]), and the programs built from a Go module
//! ([`GoBuilt`]). Data only: `fetch` and `gobuild` both make these, `stage` reads them, and neither step has to
//! import the other's module for them.

use crate::checksum::Checksum;
use crate::manifest::Artifact;
use k8s_core::image_info::LockedGoBuild;
use std::collections::BTreeMap;
use std::path::PathBuf;

/// Where a fetched blob came from (for the progress line).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FetchedFrom {
    Cache,
    Network,
}

/// An artifact whose bytes are verified and in the cache.
#[derive(Debug, Clone)]
pub struct FetchedArtifact {
    pub artifact: Artifact,
    pub blob: PathBuf,
    pub checksum: Checksum,
    pub checksum_source: String,
    pub from: FetchedFrom,
    /// A program built from a Go module: the programs by name and the lock's record of the build.
    pub go: Option<GoBuilt>,
}

/// Programs built (or found built) for one artifact.
#[derive(Debug, Clone)]
pub struct GoBuilt {
    /// Program name → its file in the cache.
    pub programs: BTreeMap<String, PathBuf>,
    pub lock: LockedGoBuild,
    pub from: FetchedFrom,
}
