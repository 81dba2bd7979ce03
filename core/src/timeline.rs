//! The boot timeline (`k8s-agent status --timeline`): where the boot time went, from the kernel's boot through
//! cloud-init's stages to each phase of the agent, with the reasons each phase waited on. Pure: it is built from the
//! persisted state, the texts of cloud-init's `/run/cloud-init/status.json` and `result.json`, and the kernel's
//! boot time, all read by the caller.
//!
//! cloud-init's files (format `v1`, written by cloud-init itself): `status.json` has one object per stage
//! (`init-local`, `init`, `modules-config`, `modules-final`) with `start` / `finished` (seconds, float, or null),
//! `errors` and `recoverable_errors` (warnings by level); `result.json` is written when cloud-init is done, with the
//! datasource and all errors. The times are Unix seconds in older cloud-init and seconds after the kernel's boot
//! (uptime) in current ones (Debian 13's 25.x): a value before 2001 is taken as uptime.
//! A file that is missing or not in that shape is reported as a note, never an error: the timeline is for reading.

use crate::plan::{AgentState, Phase, WaitReason};
use serde::{Deserialize, Serialize};

/// cloud-init's stages, in the order they run.
pub const CLOUD_INIT_STAGES: [&str; 4] = ["init-local", "init", "modules-config", "modules-final"];

/// The whole timeline, in the shape `status --json` prints under `timeline`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Timeline {
    /// When the node booted (Unix ms: the kernel, or a container's PID 1), the zero of the `+` offsets.
    pub boot_at: Option<u64>,
    pub cloud_init: Vec<CloudInitStage>,
    /// From `result.json`: cloud-init finished; its datasource and errors.
    pub cloud_init_result: Option<CloudInitResult>,
    /// What could not be read (a missing or malformed cloud-init file).
    pub notes: Vec<String>,
    pub phases: Vec<TimelinePhase>,
    /// Agent restarts on this boot.
    pub restarts: u32,
}

/// One cloud-init stage.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CloudInitStage {
    pub stage: String,
    /// Unix ms; `None` when the stage has not started (or finished) yet.
    pub start: Option<u64>,
    pub finished: Option<u64>,
    pub errors: Vec<String>,
    /// `recoverable_errors`, as `LEVEL: message`.
    pub warnings: Vec<String>,
}

/// cloud-init's result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CloudInitResult {
    pub datasource: Option<String>,
    pub errors: Vec<String>,
}

/// One phase of the agent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TimelinePhase {
    pub phase: Phase,
    /// Unix ms.
    pub start: u64,
    pub duration_ms: u64,
    /// True for the phase the node is in (its duration runs until now).
    pub current: bool,
    pub waited: Vec<WaitReason>,
}

/// When things happened at boot (Unix ms).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BootClock {
    /// The kernel's boot: cloud-init's uptime-based times are relative to it.
    pub kernel_boot: Option<u64>,
    /// The node's boot: the kernel's, or a container's PID 1 start.
    pub node_boot: Option<u64>,
}

/// Builds the timeline. `status_json` / `result_json` are the texts of cloud-init's files, `None` when absent.
pub fn build(
    state: Option<&AgentState>,
    status_json: Option<&str>,
    result_json: Option<&str>,
    clock: BootClock,
    now: u64,
) -> Timeline {
    let boot_at = clock.node_boot;
    let mut timeline = Timeline {
        boot_at,
        ..Timeline::default()
    };
    match status_json {
        None => timeline.notes.push(
            "no /run/cloud-init/status.json (cloud-init has not run on this boot)".to_string(),
        ),
        Some(text) => match parse_status(text, clock.kernel_boot) {
            Ok(stages) => timeline.cloud_init = stages,
            Err(e) => timeline
                .notes
                .push(format!("/run/cloud-init/status.json: {e}")),
        },
    }
    if let Some(text) = result_json {
        match parse_result(text) {
            Ok(result) => timeline.cloud_init_result = Some(result),
            Err(e) => timeline
                .notes
                .push(format!("/run/cloud-init/result.json: {e}")),
        }
    }
    if let Some(state) = state {
        timeline.restarts = state.restarts;
        let last = state.transitions.len().saturating_sub(1);
        for (i, t) in state.transitions.iter().enumerate() {
            let current = i == last && !matches!(t.phase, Phase::Ready | Phase::Failed);
            let end = match state.transitions.get(i + 1) {
                Some(next) => next.at,
                None if current => now.max(t.at),
                None => t.at,
            };
            timeline.phases.push(TimelinePhase {
                phase: t.phase,
                start: t.at,
                duration_ms: end.saturating_sub(t.at),
                current,
                waited: t.waited.clone(),
            });
        }
    }
    timeline
}

fn v1(text: &str) -> Result<serde_json::Map<String, serde_json::Value>, String> {
    let value: serde_json::Value =
        serde_json::from_str(text).map_err(|e| format!("not JSON ({e})"))?;
    match value.get("v1") {
        Some(serde_json::Value::Object(map)) => Ok(map.clone()),
        _ => Err("no \"v1\" object (not cloud-init's format 1)".to_string()),
    }
}

/// Seconds before this are uptime (seconds after the kernel's boot), not Unix time: 2001-09-09.
const UNIX_SECONDS_FROM: f64 = 1e9;

fn unix_ms(value: Option<&serde_json::Value>, kernel_boot: Option<u64>) -> Option<u64> {
    let secs = value?.as_f64()?;
    if !secs.is_finite() || secs <= 0.0 {
        return None;
    }
    let ms = (secs * 1000.0).round() as u64;
    if secs >= UNIX_SECONDS_FROM {
        Some(ms)
    } else {
        kernel_boot.map(|boot| boot.saturating_add(ms))
    }
}

fn strings(value: Option<&serde_json::Value>) -> Vec<String> {
    match value {
        Some(serde_json::Value::Array(items)) => items
            .iter()
            .map(|i| match i {
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            })
            .collect(),
        _ => Vec::new(),
    }
}

fn warnings(value: Option<&serde_json::Value>) -> Vec<String> {
    match value {
        Some(serde_json::Value::Object(levels)) => levels
            .iter()
            .flat_map(|(level, messages)| {
                strings(Some(messages))
                    .into_iter()
                    .map(move |m| format!("{level}: {m}"))
            })
            .collect(),
        _ => Vec::new(),
    }
}

/// The stages of `status.json`, in run order; stages it does not list are left out. `kernel_boot` turns
/// uptime-based times into Unix ms (without it they are left out).
pub fn parse_status(text: &str, kernel_boot: Option<u64>) -> Result<Vec<CloudInitStage>, String> {
    let v1 = v1(text)?;
    Ok(CLOUD_INIT_STAGES
        .iter()
        .filter_map(|stage| {
            let entry = v1.get(*stage)?.as_object()?;
            Some(CloudInitStage {
                stage: stage.to_string(),
                start: unix_ms(entry.get("start"), kernel_boot),
                finished: unix_ms(entry.get("finished"), kernel_boot),
                errors: strings(entry.get("errors")),
                warnings: warnings(entry.get("recoverable_errors")),
            })
        })
        .collect())
}

/// `result.json`.
pub fn parse_result(text: &str) -> Result<CloudInitResult, String> {
    let v1 = v1(text)?;
    Ok(CloudInitResult {
        datasource: v1
            .get("datasource")
            .and_then(|d| d.as_str())
            .map(str::to_string),
        errors: strings(v1.get("errors")),
    })
}

fn seconds(ms: u64) -> String {
    if ms < 1000 {
        format!("{ms} ms")
    } else {
        format!("{:.1} s", ms as f64 / 1000.0)
    }
}

impl Timeline {
    /// The human rendering: one line per cloud-init stage and agent phase, in time order, `+s` from the kernel's
    /// boot (or from the first event), with the durations and the reasons each phase waited on.
    pub fn render_human(&self) -> String {
        struct Row {
            at: u64,
            what: String,
            took: String,
            detail: Vec<String>,
        }
        let mut rows: Vec<Row> = Vec::new();
        for s in &self.cloud_init {
            let Some(start) = s.start else { continue };
            rows.push(Row {
                at: start,
                what: format!("cloud-init {}", s.stage),
                took: match s.finished {
                    Some(f) => seconds(f.saturating_sub(start)),
                    None => "running".to_string(),
                },
                detail: s
                    .errors
                    .iter()
                    .map(|e| format!("error: {e}"))
                    .chain(s.warnings.iter().map(|w| format!("cloud-init {w}")))
                    .collect(),
            });
        }
        for p in &self.phases {
            rows.push(Row {
                at: p.start,
                what: format!("agent {}", p.phase),
                took: match (p.current, p.phase) {
                    (true, _) => format!("{} so far", seconds(p.duration_ms)),
                    (false, Phase::Ready | Phase::Failed) => String::new(),
                    (false, _) => seconds(p.duration_ms),
                },
                detail: p
                    .waited
                    .iter()
                    .map(|w| {
                        if w.times > 1 {
                            format!("waited ×{}: {}", w.times, w.reason)
                        } else {
                            format!("waited: {}", w.reason)
                        }
                    })
                    .collect(),
            });
        }
        rows.sort_by_key(|r| r.at);
        let zero = self
            .boot_at
            .or_else(|| rows.first().map(|r| r.at))
            .unwrap_or(0);
        let offset = |at: u64| {
            if at >= zero {
                format!("+{:.1}s", (at - zero) as f64 / 1000.0)
            } else {
                format!("-{:.1}s", (zero - at) as f64 / 1000.0)
            }
        };
        let mut out = String::from("timeline");
        if let Some(boot) = self.boot_at {
            out.push_str(&format!(
                " (from the node's boot at {})",
                crate::utc::rfc3339((boot / 1000) as i64)
            ));
        }
        out.push('\n');
        if self.boot_at.is_some() {
            out.push_str(&format!(
                "  {:>8}  node booted (kernel, or a container's PID 1)\n",
                "+0.0s"
            ));
        }
        for r in &rows {
            let line = format!("  {:>8}  {:<28} {}", offset(r.at), r.what, r.took);
            out.push_str(line.trim_end());
            out.push('\n');
            for d in &r.detail {
                out.push_str(&format!("  {:>8}    {d}\n", ""));
            }
        }
        if let Some(result) = &self.cloud_init_result {
            out.push_str(&format!(
                "  cloud-init done: {} ({})\n",
                if result.errors.is_empty() {
                    "no errors".to_string()
                } else {
                    format!(
                        "{} error(s): {}",
                        result.errors.len(),
                        result.errors.join("; ")
                    )
                },
                result.datasource.as_deref().unwrap_or("no datasource")
            ));
        }
        if self.restarts > 0 {
            out.push_str(&format!(
                "  the agent was restarted {} time(s) on this boot\n",
                self.restarts
            ));
        }
        for n in &self.notes {
            out.push_str(&format!("  note: {n}\n"));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::PhaseTransition;

    const STATUS: &str = r#"{"v1": {"datasource": "DataSourceNoCloud [seed=/var/lib/cloud/seed/nocloud]",
        "init": {"errors": [], "finished": 1767225601.5, "start": 1767225601.0,
                 "recoverable_errors": {"WARNING": ["Failed generating key type rsa"]}},
        "init-local": {"errors": [], "finished": 1767225600.9, "start": 1767225600.5},
        "modules-config": {"errors": [], "finished": 1767225602.0, "start": 1767225601.8},
        "modules-final": {"errors": ["bad thing"], "finished": null, "start": 1767225602.1},
        "stage": "modules-final"}}"#;

    fn state() -> AgentState {
        let mut s = AgentState::new(1_767_225_602_000);
        let mut role = PhaseTransition::new(Phase::Role, 1_767_225_602_000);
        role.record_wait("no role file yet", 1_767_225_602_000);
        role.record_wait("no role file yet", 1_767_225_602_200);
        role.record_wait("role file is empty", 1_767_225_602_300);
        s.transitions = vec![
            role,
            PhaseTransition::new(Phase::HostCheck, 1_767_225_602_500),
            PhaseTransition::new(Phase::Ready, 1_767_225_603_000),
        ];
        s.phase = Phase::Ready;
        s
    }

    #[test]
    fn cloud_init_stages_come_in_run_order_with_millisecond_times() {
        let stages = parse_status(STATUS, None).expect("parses");
        let names: Vec<&str> = stages.iter().map(|s| s.stage.as_str()).collect();
        assert_eq!(names, CLOUD_INIT_STAGES);
        assert_eq!(stages[0].start, Some(1_767_225_600_500));
        assert_eq!(stages[3].finished, None);
        assert_eq!(stages[3].errors, vec!["bad thing".to_string()]);
        assert_eq!(
            stages[1].warnings,
            vec!["WARNING: Failed generating key type rsa".to_string()]
        );
    }

    #[test]
    fn uptime_based_times_count_from_the_kernel_boot() {
        let text = r#"{"v1": {"init": {"errors": [], "start": 13325.55, "finished": 13325.73}}}"#;
        let stages = parse_status(text, Some(1_000_000)).expect("parses");
        assert_eq!(stages[0].start, Some(1_000_000 + 13_325_550));
        assert_eq!(stages[0].finished, Some(1_000_000 + 13_325_730));
        assert_eq!(parse_status(text, None).expect("parses")[0].start, None);
    }

    #[test]
    fn malformed_cloud_init_files_are_notes_not_errors() {
        let t = build(
            None,
            Some("{"),
            Some(r#"{"v2": {}}"#),
            BootClock::default(),
            0,
        );
        assert_eq!(t.notes.len(), 2, "{:?}", t.notes);
        assert!(t.notes[0].contains("status.json: not JSON"));
        assert!(t.notes[1].contains("result.json: no \"v1\" object"));
        let t = build(None, None, None, BootClock::default(), 0);
        assert!(t.notes[0].contains("cloud-init has not run"));
    }

    #[test]
    fn phases_have_durations_and_their_wait_reasons() {
        let t = build(
            Some(&state()),
            Some(STATUS),
            None,
            BootClock {
                kernel_boot: None,
                node_boot: Some(1_767_225_599_000),
            },
            0,
        );
        assert_eq!(t.phases.len(), 3);
        assert_eq!(t.phases[0].duration_ms, 500);
        assert_eq!(t.phases[0].waited.len(), 2);
        assert_eq!(t.phases[0].waited[0].times, 2);
        assert!(!t.phases[2].current, "Ready is an end, not a running phase");
        let text = t.render_human();
        assert!(text.contains("+0.0s  node booted"), "{text}");
        assert!(text.contains("+1.5s  cloud-init init-local"), "{text}");
        assert!(text.contains("waited ×2: no role file yet"), "{text}");
        assert!(text.contains("+3.0s  agent role"), "{text}");
        assert!(text.contains("error: bad thing"), "{text}");
        let lines: Vec<&str> = text.lines().collect();
        let at = |what: &str| lines.iter().position(|l| l.contains(what)).expect(what);
        assert!(at("cloud-init modules-config") < at("agent role"));
        assert!(
            at("agent role") < at("cloud-init modules-final"),
            "sorted by start time"
        );
        assert!(at("agent role") < at("agent host-check"));
    }

    #[test]
    fn the_current_phase_runs_until_now() {
        let mut s = state();
        s.transitions.pop();
        s.phase = Phase::HostCheck;
        let t = build(
            Some(&s),
            None,
            None,
            BootClock::default(),
            1_767_225_604_500,
        );
        assert!(t.phases[1].current);
        assert_eq!(t.phases[1].duration_ms, 2_000);
        assert!(t.render_human().contains("2.0 s so far"));
        assert_eq!(seconds(265), "265 ms");
    }

    #[test]
    fn wait_reasons_are_bounded() {
        let mut p = PhaseTransition::new(Phase::Role, 0);
        for i in 0..100 {
            p.record_wait(&format!("reason {i}"), i);
        }
        assert_eq!(p.waited.len(), PhaseTransition::MAX_WAIT_REASONS);
        assert_eq!(
            p.waited.last().map(|w| w.reason.as_str()),
            Some("reason 99")
        );
    }
}
