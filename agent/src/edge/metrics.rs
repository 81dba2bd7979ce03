//! Writing the metrics file: gathers what [`crate::pure::metrics::render`] needs that is not in the state (the
//! image's name from its lock, the kernel's boot time from `/proc/stat`, systemd's start timestamps of the role
//! units) and writes `k8s-agent.prom` atomically (temporary file + rename in the same directory, so node_exporter's
//! textfile collector never reads half a file; the temporary name does not end in `.prom`).
//!
//! Where: `METRICS_DIR` from the role file (created if missing), else Debian's node_exporter default
//! `/var/lib/prometheus/node-exporter` — only when that directory exists (a node without node_exporter gets no
//! file). A failed write is logged and never stops the agent: metrics are for watching, not for deciding.

use crate::executor::atomic_write;
use crate::image_info::ImageLock;
use crate::plan::AgentState;
use crate::pure::metrics::{self, ImageFacts, MetricsInput, UnitTiming};
use std::path::{Path, PathBuf};

/// Where the metrics go under `root`: `Some(dir)` to write, `None` to skip (default directory absent).
pub fn target_dir(root: &Path, configured: Option<&Path>) -> Option<PathBuf> {
    match configured {
        Some(dir) => Some(root.join(dir.strip_prefix("/").unwrap_or(dir))),
        None => {
            let dir = root.join(metrics::DEFAULT_DIR.trim_start_matches('/'));
            dir.is_dir().then_some(dir)
        }
    }
}

/// The node image's name, version and demo mark, from its lock.
pub fn image_facts(root: &Path) -> Option<ImageFacts> {
    let lock = ImageLock::read(root).ok()?;
    Some(ImageFacts {
        demo: lock.artifacts.iter().any(|a| a.standin),
        name: lock.image_name,
        kubernetes_version: lock.kubernetes_version,
    })
}

/// The kernel's boot time (Unix ms) from `btime` in `<root>/proc/stat`.
pub fn boot_unix_ms(root: &Path) -> Option<u64> {
    let stat = std::fs::read_to_string(root.join("proc/stat")).ok()?;
    stat.lines()
        .find_map(|l| l.strip_prefix("btime "))
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(|secs| secs * 1000)
}

/// systemd's start durations from the units' timestamps (µs): only units that did start.
pub fn unit_timings(states: &[crate::systemd::UnitState]) -> Vec<UnitTiming> {
    states
        .iter()
        .filter(|u| {
            u.inactive_exit_timestamp_us > 0
                && u.active_enter_timestamp_us >= u.inactive_exit_timestamp_us
        })
        .map(|u| UnitTiming {
            unit: u.unit.clone(),
            start_seconds: (u.active_enter_timestamp_us - u.inactive_exit_timestamp_us) as f64
                / 1e6,
        })
        .collect()
}

/// Renders and writes the file into `dir`. Errors are returned for the caller to log.
pub fn write(
    dir: &Path,
    state: &AgentState,
    image: Option<ImageFacts>,
    boot_unix_ms: Option<u64>,
    units: Vec<UnitTiming>,
    now_unix_ms: u64,
) -> std::io::Result<PathBuf> {
    let text = metrics::render(&MetricsInput {
        state,
        image,
        boot_unix_ms,
        units,
        now_unix_ms,
        agent_version: env!("CARGO_PKG_VERSION"),
    });
    let path = dir.join(metrics::FILE_NAME);
    atomic_write(&path, text.as_bytes(), 0o644)?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_directory_is_used_only_when_it_exists() {
        let root = tempfile::tempdir().expect("tempdir");
        assert_eq!(target_dir(root.path(), None), None);
        std::fs::create_dir_all(root.path().join("var/lib/prometheus/node-exporter")).expect("dir");
        assert_eq!(
            target_dir(root.path(), None),
            Some(root.path().join("var/lib/prometheus/node-exporter"))
        );
        assert_eq!(
            target_dir(root.path(), Some(Path::new("/srv/metrics"))),
            Some(root.path().join("srv/metrics"))
        );
    }

    #[test]
    fn boot_time_comes_from_btime() {
        let root = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir_all(root.path().join("proc")).expect("dir");
        std::fs::write(
            root.path().join("proc/stat"),
            "cpu  1 2 3\nbtime 1764620000\nprocesses 5\n",
        )
        .expect("stat");
        assert_eq!(boot_unix_ms(root.path()), Some(1_764_620_000_000));
    }

    #[test]
    fn only_started_units_get_a_duration() {
        let unit = |name: &str, exit: u64, enter: u64| crate::systemd::UnitState {
            unit: name.into(),
            load_state: "loaded".into(),
            active_state: "active".into(),
            sub_state: "running".into(),
            result: "success".into(),
            active_enter_timestamp_us: enter,
            inactive_exit_timestamp_us: exit,
        };
        let t = unit_timings(&[
            unit("a.service", 1_000_000, 1_250_000),
            unit("b.service", 0, 0),
            unit("c.service", 2_000_000, 1_000_000),
        ]);
        assert_eq!(
            t,
            vec![UnitTiming {
                unit: "a.service".into(),
                start_seconds: 0.25
            }]
        );
    }
}
