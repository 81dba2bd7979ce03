//! Writing the metrics file: gathers what [`crate::pure::metrics::render`] needs that is not in the state (the
//! image's name from its lock, the kernel's boot time from `/proc/stat`, systemd's start timestamps of the role
//! units) and writes `k8s-agent.prom` atomically (temporary file + rename in the same directory, so node_exporter's
//! textfile collector never reads half a file; the temporary name does not end in `.prom`).
//!
//! Where: `METRICS_DIR` from the role file (created if missing), else Debian's node_exporter default
//! `/var/lib/prometheus/node-exporter` — only when that directory exists (a node without node_exporter gets no
//! file). A failed write is logged and never stops the agent: metrics are for watching, not for deciding.

use crate::image_info::ImageLock;
use crate::plan::AgentState;
use crate::pure::metrics::{self, ImageFacts, MetricsInput, UnitTiming};
use k8s_core::atomic_file::atomic_write;
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

/// When this node booted (Unix ms): the kernel's boot (realtime clock minus `CLOCK_BOOTTIME`, millisecond
/// precise, unlike `/proc/stat`'s `btime`), or — in a container (systemd's container interface: `/run/systemd/container`
/// exists) — when the container's PID 1 started (`/proc/1/stat` field 22, clock ticks after the kernel's boot), since
/// the kernel booted long before the node did. `root` is the node's root (`/` on a node).
pub fn boot_unix_ms(root: &Path) -> Option<u64> {
    let kernel_boot = kernel_boot_unix_ms()?;
    if !root.join("run/systemd/container").exists() {
        return Some(kernel_boot);
    }
    let stat = std::fs::read_to_string(root.join("proc/1/stat")).ok()?;
    let ticks = pid1_start_ticks(&stat)?;
    let hz = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .filter(|hz| *hz > 0)? as u64;
    Some(kernel_boot + ticks.saturating_mul(1000) / hz)
}

/// When the kernel booted (Unix ms): the realtime clock minus `CLOCK_BOOTTIME`. cloud-init's stage times are
/// seconds after this.
pub fn kernel_boot_unix_ms() -> Option<u64> {
    use nix::time::{ClockId, clock_gettime};
    let ms = |t: nix::sys::time::TimeSpec| {
        (t.tv_sec() as u64).saturating_mul(1000) + (t.tv_nsec() as u64) / 1_000_000
    };
    let now = ms(clock_gettime(ClockId::CLOCK_REALTIME).ok()?);
    let since_boot = ms(clock_gettime(ClockId::CLOCK_BOOTTIME).ok()?);
    now.checked_sub(since_boot)
}

/// Field 22 (`starttime`) of a `/proc/PID/stat` line; the command name (field 2) may hold spaces and parentheses,
/// so fields are counted after its last `)`.
fn pid1_start_ticks(stat: &str) -> Option<u64> {
    let after_comm = &stat[stat.rfind(')')? + 1..];
    // After the name come field 3 (state) onwards: starttime is the 20th of those.
    after_comm.split_whitespace().nth(19)?.parse().ok()
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
    fn pid1_start_time_is_read_after_the_command_name() {
        let stat =
            "1 (systemd (odd) name) S 0 1 1 0 -1 4194560 51 0 0 0 3 9 0 0 20 0 1 0 1329937 22 33";
        assert_eq!(pid1_start_ticks(stat), Some(1_329_937));
        assert_eq!(pid1_start_ticks("1 (init) S 0"), None);
        assert_eq!(pid1_start_ticks("garbage"), None);
    }

    #[test]
    fn boot_time_is_the_kernel_boot_outside_a_container_and_pid1_start_inside() {
        let root = tempfile::tempdir().expect("tempdir");
        let kernel = boot_unix_ms(root.path()).expect("kernel boot time");
        let now = crate::edge::clock::now_millis();
        assert!(kernel <= now);
        std::fs::create_dir_all(root.path().join("run/systemd")).expect("dir");
        std::fs::create_dir_all(root.path().join("proc/1")).expect("dir");
        std::fs::write(
            root.path().join("run/systemd/container"),
            "systemd-nspawn\n",
        )
        .expect("marker");
        std::fs::write(
            root.path().join("proc/1/stat"),
            "1 (systemd) S 0 1 1 0 -1 4194560 51 0 0 0 3 9 0 0 20 0 1 0 500 22 33",
        )
        .expect("stat");
        let hz = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
            .ok()
            .flatten()
            .expect("CLK_TCK") as u64;
        let container = boot_unix_ms(root.path()).expect("container start");
        let expected = kernel + 500 * 1000 / hz;
        assert!(
            container.abs_diff(expected) <= 2,
            "{container} vs {expected}"
        );
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
