//! k8s-test-support: what the shell tests (tests/local/*.sh, tests/faults/*.sh, bench/*.sh) read from JSON, read
//! through the agent's own types instead of Python heredocs: `k8s-agent status --json` into
//! [`k8s_agent::status::StatusReport`], the image's `lock.json` into [`k8s_core::image_info::ImageLock`]. A field
//! that is renamed in those types breaks this crate's build (every name the scripts use is a `match` arm here),
//! and JSON of another shape is refused when it is read, not turned into an empty string.
//!
//! The values print the way the Python helpers printed them (`tests/local/lib.sh`'s old `field`): a missing or
//! null value is the empty string, a number in decimal, a phase or outcome by its JSON name. A list prints its
//! items separated by one space (where Python printed its `repr`, the scripts only test for emptiness).

use k8s_agent::plan::{ImageOutcome, Phase};
use k8s_agent::status::StatusReport;
use k8s_core::image_info::{ImageLock, LockedArtifact};
use serde::Serialize;
use std::fmt::Write as _;
use std::path::Path;

/// Why a question could not be answered.
#[derive(Debug)]
pub enum Error {
    /// The input is not JSON of the type's shape.
    Parse { what: &'static str, error: String },
    /// A field name this tool does not know (the message lists the known ones).
    UnknownField { what: &'static str, name: String },
    /// An argument that names a phase, an artifact, … that is not one.
    BadArgument(String),
    /// Reading a file (`lock size` of the layer tree).
    Io(String),
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::Parse { what, error } => write!(f, "{what}: not what the agent writes: {error}"),
            Error::UnknownField { what, name } => {
                let known = match *what {
                    "status" => STATUS_FIELDS.join(", "),
                    _ => LOCK_FIELDS.join(", "),
                };
                write!(f, "unknown {what} field '{name}' (known: {known})")
            }
            Error::BadArgument(m) | Error::Io(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for Error {}

/// Parses `k8s-agent status --json` output.
pub fn parse_status(text: &str) -> Result<StatusReport, Error> {
    serde_json::from_str(text).map_err(|e| Error::Parse {
        what: "status --json",
        error: e.to_string(),
    })
}

/// Parses an image's `lock.json`.
pub fn parse_lock(text: &str) -> Result<ImageLock, Error> {
    serde_json::from_str(text).map_err(|e| Error::Parse {
        what: "lock.json",
        error: e.to_string(),
    })
}

/// The names [`status_field`] answers (`transition_at.PHASE` for any phase).
pub const STATUS_FIELDS: &[&str] = &[
    "condition",
    "phase",
    "blocking",
    "failure",
    "restarts",
    "pod_cidr",
    "dns_registration.registered_at",
    "units_started",
    "units_started.count",
    "join.pki_written",
    "join.images.outcome",
    "join.images.0.digest",
    "join.images.reference",
    "join.images.millis",
    "etcd.role",
    "etcd.leader",
    "etcd.member_id",
    "etcd.cluster_id",
    "etcd.started_by",
    "etcd.voters",
    "etcd.healthy_voters",
    "etcd.learners",
    "etcd.removals",
    "etcd.note",
    "transition_at.PHASE",
];

/// A value of the etcd membership ("" when the node shows none: a minion, a single master).
fn etcd(
    r: &StatusReport,
    value: impl Fn(&k8s_core::etcd_cluster::EtcdMembership) -> String,
) -> String {
    r.etcd
        .as_ref()
        .map(|e| value(&e.membership))
        .unwrap_or_default()
}

/// One value of the status report, by name, printed as the scripts expect it.
///
/// `transition_at.PHASE` is when the node last entered PHASE (unix ms; `0` when it never did), the value the old
/// `{t["phase"]: t["at"] for t in transitions}.get(PHASE, 0)` gave.
pub fn status_field(r: &StatusReport, name: &str) -> Result<String, Error> {
    let join = r.join.as_ref();
    Ok(match name {
        "condition" => r.condition.to_string(),
        "etcd.role" => etcd(r, |m| {
            if m.learner { "learner" } else { "voter" }.to_string()
        }),
        "etcd.leader" => etcd(r, |m| m.leader.to_string()),
        "etcd.member_id" => etcd(r, |m| m.member_id.clone()),
        "etcd.cluster_id" => etcd(r, |m| m.cluster_id.clone()),
        "etcd.started_by" => etcd(r, |m| m.started_by.clone().unwrap_or_default()),
        "etcd.voters" => etcd(r, |m| m.voters().to_string()),
        "etcd.healthy_voters" => etcd(r, |m| m.healthy_voters().to_string()),
        "etcd.learners" => etcd(r, |m| (m.members.len() - m.voters()).to_string()),
        // One line a removal: NAME PEER_URL REASON.
        "etcd.removals" => etcd(r, |m| {
            m.removals
                .iter()
                .map(|x| format!("{} {} {}", x.name, x.peer_url, x.reason))
                .collect::<Vec<_>>()
                .join("\n")
        }),
        "etcd.note" => etcd(r, |m| m.note.clone().unwrap_or_default()),
        "phase" => r.phase.map(json_name).unwrap_or_default(),
        "blocking" => r.blocking.clone().unwrap_or_default(),
        "failure" => r.failure.clone().unwrap_or_default(),
        "restarts" => r.restarts.to_string(),
        "pod_cidr" => r.pod_cidr.clone().unwrap_or_default(),
        "dns_registration.registered_at" => r
            .dns_registration
            .as_ref()
            .and_then(|d| d.registered_at)
            .map(|at| at.to_string())
            .unwrap_or_default(),
        "units_started" => r.units_started.join(" "),
        "units_started.count" => r.units_started.len().to_string(),
        "join.pki_written" => join.map(|j| j.pki_written.join(" ")).unwrap_or_default(),
        "join.images.outcome" => join
            .map(|j| {
                j.images
                    .iter()
                    .map(|i| outcome_name(&i.outcome))
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .unwrap_or_default(),
        "join.images.reference" => join
            .map(|j| {
                j.images
                    .iter()
                    .map(|i| i.reference.as_str())
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .unwrap_or_default(),
        // The import time of each image (ms), -1 for one not imported on this boot.
        "join.images.millis" => join
            .map(|j| {
                j.images
                    .iter()
                    .map(|i| match i.outcome {
                        ImageOutcome::Imported { millis } => millis.to_string(),
                        _ => "-1".to_string(),
                    })
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .unwrap_or_default(),
        "join.images.0.digest" => join
            .and_then(|j| j.images.first())
            .map(|i| i.digest.clone())
            .unwrap_or_default(),
        _ => match name.strip_prefix("transition_at.") {
            Some(phase) => last_transition_at(r, parse_phase(phase)?)
                .unwrap_or(0)
                .to_string(),
            None => {
                return Err(Error::UnknownField {
                    what: "status",
                    name: name.to_string(),
                });
            }
        },
    })
}

/// When the node last entered `phase` (unix ms).
pub fn last_transition_at(r: &StatusReport, phase: Phase) -> Option<u64> {
    r.transitions
        .iter()
        .rev()
        .find(|t| t.phase == phase)
        .map(|t| t.at)
}

/// When the node first entered `phase` (unix ms).
pub fn first_transition_at(r: &StatusReport, phase: Phase) -> Option<u64> {
    r.transitions
        .iter()
        .find(|t| t.phase == phase)
        .map(|t| t.at)
}

/// A phase by its JSON name (`import-images`).
pub fn parse_phase(name: &str) -> Result<Phase, Error> {
    serde_json::from_value(serde_json::Value::String(name.to_string()))
        .map_err(|_| Error::BadArgument(format!("'{name}' is not a phase of the agent")))
}

/// The JSON name of a value that serialises to a string (a phase), or of an internally tagged enum's variant.
fn json_name<T: Serialize>(value: T) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(s)) => s,
        Ok(other) => other.to_string(),
        Err(e) => format!("<{e}>"),
    }
}

/// An image import's outcome by its JSON name (`imported`, `present`, `wrong-digest`, `failed`).
pub fn outcome_name(outcome: &ImageOutcome) -> String {
    match serde_json::to_value(outcome) {
        Ok(v) => v
            .get("outcome")
            .and_then(|o| o.as_str())
            .unwrap_or_default()
            .to_string(),
        Err(e) => format!("<{e}>"),
    }
}

/// The names [`lock_field`] answers; those with an argument take the artifact's name.
pub const LOCK_FIELDS: &[&str] = &[
    "kubernetes_version",
    "images",
    "go_artifacts",
    "go_module NAME",
    "files NAME",
    "size_mb NAME TREE",
];

/// One value of the lock, by name, printed as the scripts expect it:
/// - `kubernetes_version`: as recorded (`1.35.0`);
/// - `images`: a `REFERENCE MANIFEST_DIGEST` line per baked container image, in lock order;
/// - `go_artifacts`: the names of the artifacts built from Go modules, one a line;
/// - `go_module NAME`: `MODULE@VERSION` of that artifact's Go build;
/// - `files NAME`: `PATH=SHA256` of every file the artifact installed, on one line;
/// - `size_mb NAME TREE`: the megabytes (10^6, one decimal) of those files in the unpacked layer at TREE.
///
/// An artifact named twice answers once per artifact, on a line each (the old loops did that); a name no artifact
/// has answers nothing.
pub fn lock_field(lock: &ImageLock, name: &str, args: &[String]) -> Result<String, Error> {
    let arg = |i: usize| -> Result<&str, Error> {
        args.get(i)
            .map(String::as_str)
            .ok_or_else(|| Error::BadArgument(format!("lock {name}: missing argument {}", i + 1)))
    };
    let named = |artifact: &str| -> Vec<&LockedArtifact> {
        lock.artifacts
            .iter()
            .filter(|a| a.name == artifact)
            .collect()
    };
    let mut out = String::new();
    match name {
        "kubernetes_version" => out.push_str(&lock.kubernetes_version),
        "images" => {
            let lines: Vec<String> = lock
                .artifacts
                .iter()
                .filter_map(|a| a.image.as_ref())
                .map(|i| format!("{} {}", i.reference, i.manifest_digest))
                .collect();
            out.push_str(&lines.join("\n"));
        }
        "go_artifacts" => {
            let lines: Vec<&str> = lock
                .artifacts
                .iter()
                .filter(|a| a.go.is_some())
                .map(|a| a.name.as_str())
                .collect();
            out.push_str(&lines.join("\n"));
        }
        "go_module" => {
            let lines: Vec<String> = named(arg(0)?)
                .iter()
                .filter_map(|a| a.go.as_ref())
                .map(|g| format!("{}@{}", g.module, g.version))
                .collect();
            out.push_str(&lines.join("\n"));
        }
        "files" => {
            let lines: Vec<String> = named(arg(0)?)
                .iter()
                .map(|a| {
                    a.files
                        .iter()
                        .map(|f| format!("{}={}", f.path, f.sha256))
                        .collect::<Vec<_>>()
                        .join(" ")
                })
                .collect();
            out.push_str(&lines.join("\n"));
        }
        "size_mb" => {
            let tree = arg(1)?;
            let mut lines = Vec::new();
            for a in named(arg(0)?) {
                let mut bytes: u64 = 0;
                for f in &a.files {
                    // The lock's paths are absolute in the image: TREE + PATH, as the old `sys.argv[3] + f["path"]`.
                    let path = format!("{tree}{}", f.path);
                    let meta = std::fs::metadata(Path::new(&path))
                        .map_err(|e| Error::Io(format!("{path}: {e}")))?;
                    bytes += meta.len();
                }
                let mut line = String::new();
                let _ = write!(line, "{:.1}", bytes as f64 / 1e6);
                lines.push(line);
            }
            out.push_str(&lines.join("\n"));
        }
        _ => {
            return Err(Error::UnknownField {
                what: "lock",
                name: name.to_string(),
            });
        }
    }
    Ok(out)
}
