//! The executor: the only place where the agent's decisions touch the host. It loops `plan::next` → carry out the
//! [`Action`] with an edge (role file, host checks, DNS, HTTPS probe, weave env file, systemd) → report the
//! [`Observation`], persisting the [`AgentState`] atomically to `/run/k8s-agent/state.json` after every step and
//! telling systemd the phase with `sd_notify` `STATUS=` lines.
//!
//! Units are started through the [`UnitControl`] seam: [`crate::systemd::SystemdClient`] in production and in the
//! booted-systemd tests; a recording test double in the fast tests of the executor loop.
//!
//! After `Done` (Ready) or `Fail` the agent stays up and idle until it is told to stop, so `status` keeps reading a
//! current state and systemd does not restart it in a loop; a restarted agent resumes from the persisted state
//! (`AgentState::resume`) without restarting active units or changing the Weave decision.

use crate::checks::{self, HostView, RuleSet, Status};
use crate::dns::DnsResolver;
pub use crate::edge::clock::now_millis;
use crate::edge::join;
use crate::edge::role_file;
use crate::plan::{self, Action, AgentState, Observation, Phase, STATE_FILE, UnitFailure};
use crate::probe::MasterProber;
use crate::role_file::{HostCheckMode, RoleConfig, RoleLoad};
pub use k8s_checks::CHECKS_FILE;
pub use k8s_core::atomic_file::atomic_write;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Starting units and reading their state: systemd over D-Bus in production.
pub trait UnitControl {
    /// Start `units` in order; `Ok(started)` or `Err((started_before, failure))`.
    fn start_units(
        &self,
        units: &[String],
        per_unit_timeout: Duration,
    ) -> impl Future<Output = Result<Vec<String>, (Vec<String>, UnitFailure)>>;

    /// The units' current states (for the metrics' start durations); empty when systemd cannot be asked.
    fn unit_states(&self, units: &[String])
    -> impl Future<Output = Vec<crate::systemd::UnitState>>;

    /// Stop `unit` and wait until it is down (only etcd, before its data of a removed member is moved aside).
    fn stop_unit(&self, unit: &str, timeout: Duration) -> impl Future<Output = Result<(), String>>;
}

impl UnitControl for crate::systemd::SystemdClient {
    fn start_units(
        &self,
        units: &[String],
        per_unit_timeout: Duration,
    ) -> impl Future<Output = Result<Vec<String>, (Vec<String>, UnitFailure)>> {
        crate::systemd::SystemdClient::start_units(self, units, per_unit_timeout)
    }

    fn unit_states(
        &self,
        units: &[String],
    ) -> impl Future<Output = Vec<crate::systemd::UnitState>> {
        crate::systemd::SystemdClient::unit_states(self, units)
    }

    fn stop_unit(&self, unit: &str, timeout: Duration) -> impl Future<Output = Result<(), String>> {
        crate::systemd::SystemdClient::stop_unit(self, unit, timeout)
    }
}

/// systemd, connected on first use: the agent can wait for its role file and masters while D-Bus is not up yet,
/// and a connection failure is reported as a unit failure (`bus-error`) the plan retries, not a crash. After a
/// `bus-error` the connection is dropped and made anew on the next start (zbus does not reconnect by itself, e.g.
/// after dbus restarted).
pub struct LazySystemd {
    address: Option<String>,
    client: tokio::sync::Mutex<Option<std::sync::Arc<crate::systemd::SystemdClient>>>,
}

impl LazySystemd {
    /// `None`: the system bus.
    pub fn new(address: Option<String>) -> LazySystemd {
        LazySystemd {
            address,
            client: tokio::sync::Mutex::new(None),
        }
    }

    /// The connected client, connecting now if needed.
    pub async fn client(
        &self,
    ) -> Result<std::sync::Arc<crate::systemd::SystemdClient>, crate::systemd::SystemdError> {
        let mut guard = self.client.lock().await;
        if let Some(client) = guard.as_ref() {
            return Ok(client.clone());
        }
        let client = std::sync::Arc::new(match &self.address {
            Some(a) => crate::systemd::SystemdClient::at_address(a).await?,
            None => crate::systemd::SystemdClient::system().await?,
        });
        *guard = Some(client.clone());
        Ok(client)
    }
}

impl UnitControl for LazySystemd {
    async fn unit_states(&self, units: &[String]) -> Vec<crate::systemd::UnitState> {
        match self.client().await {
            Ok(client) => client.unit_states(units).await,
            Err(_) => Vec::new(),
        }
    }

    async fn stop_unit(&self, unit: &str, timeout: Duration) -> Result<(), String> {
        match self.client().await {
            Ok(client) => client.stop_unit(unit, timeout).await,
            Err(e) => Err(format!("cannot reach systemd: {e}")),
        }
    }

    async fn start_units(
        &self,
        units: &[String],
        per_unit_timeout: Duration,
    ) -> Result<Vec<String>, (Vec<String>, UnitFailure)> {
        match self.client().await {
            Ok(client) => {
                let result = client.start_units(units, per_unit_timeout).await;
                if let Err((_, failure)) = &result
                    && failure.result == crate::systemd::RESULT_BUS_ERROR
                {
                    *self.client.lock().await = None;
                }
                result
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot reach systemd");
                Err((
                    Vec::new(),
                    UnitFailure {
                        unit: units.first().cloned().unwrap_or_default(),
                        active_state: "unknown".to_string(),
                        sub_state: "unknown".to_string(),
                        result: crate::systemd::RESULT_BUS_ERROR.to_string(),
                    },
                ))
            }
        }
    }
}

/// How the agent runs.
#[derive(Debug, Clone)]
pub struct AgentConfig {
    /// The node's root: `/` in production, a directory in tests (role files, state and weave env live under it).
    pub root: PathBuf,
    /// One name server instead of the system's resolv.conf (tests, labs).
    pub nameserver: Option<SocketAddr>,
    pub probe_timeout: Duration,
    pub unit_timeout: Duration,
    /// Where the live host rules look.
    pub host_view: HostView,
    /// Send `sd_notify` messages (when `NOTIFY_SOCKET` is set).
    pub notify: bool,
    /// containerd's client, for importing the baked images.
    pub ctr: PathBuf,
}

impl AgentConfig {
    /// Production defaults for `root`.
    pub fn new(root: PathBuf) -> AgentConfig {
        AgentConfig {
            root,
            nameserver: None,
            probe_timeout: Duration::from_secs(5),
            unit_timeout: Duration::from_secs(300),
            host_view: HostView::default(),
            notify: true,
            ctr: PathBuf::from(crate::edge::images::CTR),
        }
    }

    /// The state file under the root.
    pub fn state_path(&self) -> PathBuf {
        self.root.join(STATE_FILE)
    }
}

/// The agent cannot run at all (as opposed to a node that waits or failed, which is state).
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error("cannot set up DNS: {0}")]
    Dns(String),
    #[error("{path}: the saved state cannot be read: {reason} — hint: {hint}")]
    State {
        path: PathBuf,
        reason: String,
        hint: String,
    },
    #[error(
        "{path}: cannot write: {reason} — hint: check that /run is writable (the unit's RuntimeDirectory=)"
    )]
    Write { path: PathBuf, reason: String },
}

/// A small deterministic PRNG (splitmix64) for backoff jitter: no dependency, seeded from time and pid.
struct Jitter(u64);

impl Jitter {
    fn seeded() -> Jitter {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        Jitter(nanos ^ (u64::from(std::process::id()) << 32))
    }

    /// A number in 0..1.
    fn next(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        (z >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// The Weave decision an earlier boot kept ([`crate::weave::WEAVE_DECISION_FILE`] under `root`), read with a
/// bound. A file that exists but cannot be used is reported, never ignored: the minion then waits, since it may
/// have voted on that boot.
pub fn read_kept_weave(root: &Path) -> Option<plan::KeptWeave> {
    use crate::weave::{KeptDecision, MAX_KEPT_DECISION_BYTES, WEAVE_DECISION_FILE};
    use plan::KeptWeave;
    use std::io::Read;
    let path = root.join(WEAVE_DECISION_FILE);
    let unreadable = |why: String| {
        Some(KeptWeave::Unreadable {
            reason: format!("{}: {why}", path.display()),
        })
    };
    let file = match std::fs::File::open(&path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
        Err(e) => return unreadable(format!("cannot read: {e}")),
    };
    let mut bytes = Vec::new();
    if let Err(e) = file
        .take(MAX_KEPT_DECISION_BYTES + 1)
        .read_to_end(&mut bytes)
    {
        return unreadable(format!("cannot read: {e}"));
    }
    if bytes.len() as u64 > MAX_KEPT_DECISION_BYTES {
        return unreadable(format!("larger than {MAX_KEPT_DECISION_BYTES} bytes"));
    }
    let parsed = std::str::from_utf8(&bytes)
        .map_err(|e| format!("not UTF-8: {e}"))
        .and_then(KeptDecision::parse);
    match parsed {
        Ok(kept) => Some(KeptWeave::Found(kept)),
        Err(why) => unreadable(why),
    }
}

/// Reads the persisted state, if any. A state that exists but cannot be parsed is an error: starting fresh could
/// change a Weave decision weave already runs with.
pub fn read_state(path: &Path) -> Result<Option<AgentState>, AgentError> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(AgentError::State {
                path: path.to_path_buf(),
                reason: e.to_string(),
                hint: "check permissions of /run/k8s-agent".to_string(),
            });
        }
    };
    serde_json::from_str(&text).map(Some).map_err(|e| AgentError::State {
        path: path.to_path_buf(),
        reason: e.to_string(),
        hint: "it was written by another agent version or damaged; reboot the node (the state lives in /run), \
               or remove it only if weave has not started"
            .to_string(),
    })
}

fn sd_status(cfg: &AgentConfig, text: &str) {
    if cfg.notify {
        let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Status(text)]);
    }
}

/// One line for `systemctl status k8s-agent`.
pub fn status_line(state: &AgentState) -> String {
    match state.phase {
        Phase::Ready => "ready".to_string(),
        Phase::Failed => format!(
            "failed: {}",
            state.failure.as_deref().unwrap_or("see k8s-agent status")
        ),
        phase => match &state.blocking {
            Some(reason) => format!("{phase}: {reason}"),
            None => phase.to_string(),
        },
    }
}

/// This node's addresses (every interface, loopback excluded), from `getifaddrs`.
pub fn local_addrs() -> Vec<IpAddr> {
    let mut out = Vec::new();
    if let Ok(addrs) = nix::ifaddrs::getifaddrs() {
        for ifa in addrs {
            let Some(addr) = ifa.address else { continue };
            let ip = if let Some(v4) = addr.as_sockaddr_in() {
                IpAddr::V4(v4.ip())
            } else if let Some(v6) = addr.as_sockaddr_in6() {
                IpAddr::V6(v6.ip())
            } else {
                continue;
            };
            if !ip.is_loopback() && !out.contains(&ip) {
                out.push(ip);
            }
        }
    }
    out.sort();
    out
}

/// Unix seconds now.
fn now_secs() -> i64 {
    (now_millis() / 1000) as i64
}

/// The role file as last read, read again if this agent process has not read it yet (after a restart that
/// resumed past the `Role` phase). `None` when it cannot be read now; the join steps then report what is missing.
fn role_config<'a>(
    cfg: &AgentConfig,
    cached: &'a mut Option<RoleConfig>,
) -> Option<&'a RoleConfig> {
    if cached.is_none()
        && let RoleLoad::Parsed(config) = role_file::load(&cfg.root)
    {
        *cached = Some(*config);
    }
    cached.as_ref()
}

/// The metrics file for node_exporter (`crate::edge::metrics`), at every transition. Never fails the agent.
async fn write_metrics<U: UnitControl>(
    cfg: &AgentConfig,
    units: &U,
    state: &AgentState,
    role: &mut Option<RoleConfig>,
    timings: &mut (Vec<String>, Vec<crate::pure::metrics::UnitTiming>),
) {
    let configured = role_config(cfg, role).and_then(|r| r.metrics_dir.clone());
    let Some(dir) = crate::edge::metrics::target_dir(&cfg.root, configured.as_deref()) else {
        return;
    };
    if timings.0 != state.units_started {
        let states = units.unit_states(&state.units_started).await;
        *timings = (
            state.units_started.clone(),
            crate::edge::metrics::unit_timings(&states),
        );
    }
    match crate::edge::metrics::write(
        &dir,
        state,
        crate::edge::metrics::image_facts(&cfg.root),
        crate::edge::metrics::boot_unix_ms(&cfg.root),
        timings.1.clone(),
        now_millis(),
    ) {
        Ok(path) => tracing::debug!(path = %path.display(), "metrics written"),
        Err(e) => tracing::warn!(dir = %dir.display(), error = %e, "cannot write the metrics file"),
    }
}

/// Runs the boot rules; with `HOST_CHECKS=warn` failures become warnings (reported by `status`, not blocking).
/// Writes the report for `status`.
fn run_host_checks(cfg: &AgentConfig, mode: HostCheckMode) -> Observation {
    let mut report = checks::check_with_host(&cfg.root, RuleSet::Boot, &cfg.host_view);
    if mode == HostCheckMode::Warn {
        for r in &mut report.results {
            if r.status == Status::Fail {
                r.status = Status::Warn;
                r.message = format!("{} (HOST_CHECKS=warn: not blocking)", r.message);
            }
        }
    }
    if let Ok(json) = serde_json::to_vec_pretty(&report)
        && let Err(e) = atomic_write(&cfg.root.join(CHECKS_FILE), &json, 0o644)
    {
        tracing::warn!(error = %e, "cannot write the check report");
    }
    if report.passed() {
        Observation::HostChecksPassed {
            local_addrs: local_addrs(),
        }
    } else {
        Observation::HostChecksFailed {
            failures: report
                .failures()
                .map(|r| match &r.path {
                    Some(p) => format!("{} {}: {}", r.rule, p, r.message),
                    None => format!("{}: {}", r.rule, r.message),
                })
                .collect(),
        }
    }
}

/// [`crate::pure::advertise::NODE_ENV_FILE`]: the address the node advertises, for the unit that reads it.
fn write_node_env(
    cfg: &AgentConfig,
    advertise: &crate::pure::advertise::AdvertiseChoice,
    role: crate::node_role::NodeRole,
) -> Result<(), AgentError> {
    let env = cfg.root.join(crate::pure::advertise::NODE_ENV_FILE);
    atomic_write(&env, advertise.render_env(role).as_bytes(), 0o644).map_err(|e| {
        AgentError::Write {
            path: env.clone(),
            reason: e.to_string(),
        }
    })?;
    tracing::info!("{}", advertise.describe(role));
    Ok(())
}

/// [`crate::pure::pod_resolv::DROP_IN_FILE`]: the resolver configuration kubelet hands to pods, from the host's
/// `/etc/resolv.conf` and systemd-resolved's upstream file (written, or removed when kubelet's default is right).
fn write_pod_resolv_conf(cfg: &AgentConfig) -> Result<(), AgentError> {
    use crate::pure::pod_resolv;
    let read =
        |path: &str| std::fs::read_to_string(cfg.root.join(path.trim_start_matches('/'))).ok();
    let choice = pod_resolv::choose(
        &read("/etc/resolv.conf").unwrap_or_default(),
        read(pod_resolv::RESOLVED_UPSTREAM).as_deref(),
    );
    let drop_in = cfg.root.join(pod_resolv::DROP_IN_FILE);
    let written = match choice.drop_in() {
        Some(text) => atomic_write(&drop_in, text.as_bytes(), 0o644),
        None => match std::fs::remove_file(&drop_in) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        },
    };
    written.map_err(|e| AgentError::Write {
        path: drop_in.clone(),
        reason: e.to_string(),
    })?;
    match choice {
        pod_resolv::PodResolvConf::LoopbackOnly => tracing::warn!("{}", choice.describe()),
        _ => tracing::info!("{}", choice.describe()),
    }
    Ok(())
}

/// `CheckHealth` (and the rechecks while Ready): the checks, with the live state of the units they name.
async fn check_health<U: UnitControl>(
    cfg: &AgentConfig,
    units: &U,
    resolver: &DnsResolver,
    checks: &[crate::pure::health::HealthCheck],
    connect_to: &[std::net::IpAddr],
    own_addrs: &[std::net::IpAddr],
    routes_settled: &mut bool,
) -> Observation {
    use crate::pure::health::{HealthCheck, HealthReport};
    let mut settled = true;
    let names: Vec<String> = checks
        .iter()
        .filter_map(|c| match c {
            HealthCheck::Endpoint { unit, .. } => Some(unit.clone()),
            HealthCheck::NodeReady { .. } | HealthCheck::PodRoutes { .. } => None,
        })
        .collect();
    let states = units.unit_states(&names).await;
    let (routes, others): (Vec<_>, Vec<_>) = checks
        .iter()
        .cloned()
        .partition(|c| matches!(c, HealthCheck::PodRoutes { .. }));
    let mut reports =
        crate::edge::health::check(&cfg.root, &others, connect_to, &states, cfg.probe_timeout)
            .await;
    for check in routes {
        let HealthCheck::PodRoutes {
            minions,
            kubeconfig,
            node,
        } = &check
        else {
            continue;
        };
        // The routes follow the minions' record as it is now (not the snapshot Weave's decision kept).
        let (healthy, unknown, detail) = match resolver.lookup_a(minions).await {
            plan::DnsResult::Answers { addrs, .. } => {
                // A master connects to its own API server; a minion to the masters.
                let to = match node {
                    Some(_) => connect_to.to_vec(),
                    None => vec![std::net::IpAddr::from([127, 0, 0, 1])],
                };
                match crate::edge::pod_network::sync_routes(
                    &cfg.root,
                    kubeconfig,
                    node.as_deref(),
                    &to,
                    &addrs,
                    own_addrs,
                    cfg.probe_timeout,
                )
                .await
                {
                    Ok((line, done)) => {
                        settled &= done;
                        (true, false, line)
                    }
                    Err(crate::edge::pod_network::SyncError::NoAnswer(why)) => (false, true, why),
                    Err(crate::edge::pod_network::SyncError::Other(why)) => (false, false, why),
                }
            }
            // No minion in DNS (none yet, or a cluster of masters only): no route to make.
            plan::DnsResult::NxDomain { .. } | plan::DnsResult::NoRecords { .. } => (
                true,
                false,
                format!("{minions} has no records: no pod routes to make"),
            ),
            other => (
                false,
                true,
                format!("{minions} did not resolve ({other:?}): routes left as they are"),
            ),
        };
        reports.push(HealthReport {
            check,
            healthy,
            unknown,
            detail,
        });
    }
    for r in reports.iter().filter(|r| !r.healthy) {
        tracing::info!(check = %r.check.label(), detail = %r.detail, "not healthy");
    }
    *routes_settled = settled;
    Observation::HealthChecked(reports)
}

/// How long the agent waits for etcd.service's start job (etcd reports ready once it has joined; a member
/// without quorum never does, and the step looks again instead of waiting for systemd's timeout).
const ETCD_START_WAIT: Duration = Duration::from_secs(30);

struct EtcdStarter<'a, U: UnitControl>(&'a U);

impl<U: UnitControl> crate::edge::etcd::StartEtcd for EtcdStarter<'_, U> {
    async fn stop_etcd(&self) -> Result<(), String> {
        self.0.stop_unit("etcd.service", ETCD_START_WAIT).await
    }

    async fn start_etcd(&self) -> Result<(), String> {
        match self
            .0
            .start_units(&["etcd.service".to_string()], ETCD_START_WAIT)
            .await
        {
            Ok(_) => Ok(()),
            Err((_, failure)) => Err(format!(
                "{} {} ({}/{})",
                failure.unit, failure.result, failure.active_state, failure.sub_state
            )),
        }
    }
}

/// `EnsureEtcdMember`: look, decide ([`crate::pure::etcd_cluster::decide`]), do the one step.
#[allow(clippy::too_many_arguments)]
async fn ensure_etcd_member<U: UnitControl>(
    cfg: &AgentConfig,
    units: &U,
    resolver: &DnsResolver,
    masters: &str,
    own: std::net::IpAddr,
    name: &str,
    cluster: &str,
    size: u32,
) -> Observation {
    use crate::edge::etcd;
    let client = match etcd::EtcdClient::load(&cfg.root, etcd::REQUEST_TIMEOUT) {
        Ok(c) => c,
        Err(reason) => return Observation::Etcd(plan::EtcdProgress::Error { reason }),
    };
    let addrs = match resolver.lookup_a(masters).await {
        plan::DnsResult::Answers { addrs, .. } => addrs,
        _ => Vec::new(),
    };
    let view = etcd::look(&cfg.root, &client, own, size, addrs).await;
    let step = crate::pure::etcd_cluster::decide(&view);
    tracing::info!(?step, "etcd step");
    let progress = etcd::perform(
        &cfg.root,
        &client,
        &EtcdStarter(units),
        &view,
        step,
        name,
        cluster,
        now_secs().max(0) as u64,
    )
    .await;
    Observation::Etcd(progress)
}

/// While Ready, a master of an HA control plane looks at its etcd membership and, as the leader's master, removes
/// a member that has been dead long enough.
async fn recheck_etcd(cfg: &AgentConfig, state: &AgentState) -> Option<Observation> {
    use crate::edge::etcd;
    let node = state.node.as_ref()?;
    if node.role != crate::node_role::NodeRole::Master || !node.control_plane.is_ha() {
        return None;
    }
    let client = etcd::EtcdClient::load(&cfg.root, etcd::REQUEST_TIMEOUT).ok()?;
    let now = now_secs().max(0) as u64;
    match etcd::membership(&client, state.etcd.as_ref(), now).await {
        Ok(view) => Some(Observation::EtcdChecked(
            etcd::remove_dead(&client, view, &node.control_plane, now).await,
        )),
        Err(e) => {
            tracing::info!(error = %e, "etcd membership not readable");
            None
        }
    }
}

/// Runs the agent until `shutdown` completes. Returns the last state.
pub async fn run_agent<U: UnitControl>(
    cfg: &AgentConfig,
    units: &U,
    shutdown: impl Future<Output = ()>,
) -> Result<AgentState, AgentError> {
    let resolver = match cfg.nameserver {
        Some(addr) => DnsResolver::with_nameserver(addr),
        None => DnsResolver::from_system(),
    }
    .map_err(|e| AgentError::Dns(e.to_string()))?;
    let prober = MasterProber::new(cfg.probe_timeout);
    let state_path = cfg.state_path();
    let mut jitter = Jitter::seeded();
    let mut host_check_mode = HostCheckMode::default();

    // The role file as last read: the join steps need its secrets (token), which the persisted state never holds.
    let mut role: Option<RoleConfig> = None;
    let now = now_millis();
    // Read on every start, so that removing or restoring the file and restarting the agent takes effect.
    let kept_weave = read_kept_weave(&cfg.root);
    let (mut state, mut action) = match read_state(&state_path)? {
        Some(mut persisted) => {
            if persisted.weave.is_none() {
                persisted.kept_weave = kept_weave;
            }
            tracing::info!(phase = %persisted.phase, "resuming from the saved state");
            AgentState::resume(persisted, now).map_err(|e| AgentError::State {
                path: state_path.clone(),
                reason: e.to_string(),
                hint: "reboot the node".to_string(),
            })?
        }
        None => plan::next(
            &AgentState::new(now).with_kept_weave(kept_weave),
            Observation::Tick,
            now,
            jitter.next(),
        ),
    };
    if cfg.notify {
        let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Ready]);
    }
    tokio::pin!(shutdown);
    let mut last_written: Option<AgentState> = None;
    // The role units' start durations, read from systemd when the set of started units changes.
    let mut unit_timings: (Vec<String>, Vec<crate::pure::metrics::UnitTiming>) = Default::default();
    // When the node became Ready, as last logged (a recheck that finds it healthy says nothing).
    let mut last_ready_logged: Option<u64> = None;
    // The last pod-route sync left nothing out (CNI=bridge; true otherwise).
    let mut routes_settled = true;

    loop {
        if last_written.as_ref() != Some(&state) {
            let mut json = serde_json::to_vec_pretty(&state).unwrap_or_default();
            json.push(b'\n');
            atomic_write(&state_path, &json, 0o644).map_err(|e| AgentError::Write {
                path: state_path.clone(),
                reason: e.to_string(),
            })?;
            sd_status(cfg, &status_line(&state));
            write_metrics(cfg, units, &state, &mut role, &mut unit_timings).await;
            last_written = Some(state.clone());
        }
        tracing::debug!(phase = %state.phase, ?action, "next action");
        let observation = match action {
            Action::Wait {
                reason,
                retry_after,
            } => {
                tracing::debug!(%reason, ?retry_after, "waiting");
                tokio::select! {
                    () = tokio::time::sleep(retry_after) => Observation::Tick,
                    () = &mut shutdown => return Ok(state),
                }
            }
            Action::ReadRoleFile => {
                let load = role_file::load(&cfg.root);
                if let RoleLoad::Parsed(config) = &load {
                    host_check_mode = config.host_checks;
                    role = Some(config.as_ref().clone());
                    tracing::info!(role = %config.role, cluster = %config.cluster_name, "role file read");
                }
                Observation::from(load)
            }
            Action::RunHostChecks => run_host_checks(cfg, host_check_mode),
            Action::RegisterDns { update } => {
                Observation::DnsUpdated(crate::edge::dns_update::register(&cfg.root, &update).await)
            }
            Action::Resolve { query, name } => {
                let result = resolver.lookup_a(&name).await;
                tracing::debug!(%name, ?result, "resolved");
                Observation::Dns { query, result }
            }
            Action::ProbeMaster {
                url,
                connect_to,
                mut trust,
            } => {
                // Relative trust paths (the cluster CA the agent keeps) are under the root.
                if let Some(file) = &trust.ca_cert_file
                    && file.is_relative()
                {
                    trust.ca_cert_file = Some(cfg.root.join(file));
                }
                let result = prober.probe(&url, &connect_to, &trust).await;
                tracing::debug!(%url, ?result, "probed");
                Observation::MasterProbe(result)
            }
            Action::WriteWeaveEnv {
                path,
                contents,
                keep,
                weave_cni,
            } => {
                // The copy for later boots first: a decision weave ran with is never lost to a reboot.
                let kept = cfg.root.join(crate::weave::WEAVE_DECISION_FILE);
                atomic_write(&kept, keep.as_bytes(), 0o644).map_err(|e| AgentError::Write {
                    path: kept.clone(),
                    reason: e.to_string(),
                })?;
                let target = cfg.root.join(&path);
                // weave.service runs the image the image's lock bakes as `weave-kube` (its default otherwise).
                let image = crate::image_info::ImageLock::read(&cfg.root)
                    .ok()
                    .and_then(|lock| crate::weave::weave_image(&lock));
                let contents = match image {
                    Some(reference) => format!("{contents}WEAVE_IMAGE={reference}\n"),
                    None => contents,
                };
                atomic_write(&target, contents.as_bytes(), 0o644).map_err(|e| {
                    AgentError::Write {
                        path: target.clone(),
                        reason: e.to_string(),
                    }
                })?;
                tracing::info!(path = %target.display(), "weave env written");
                // With CNI=bridge the decision is kept and shown; Weave's CNI configuration is not written.
                if weave_cni {
                    let cni = cfg.root.join(crate::weave::WEAVE_CNI_CONFIG);
                    atomic_write(&cni, crate::weave::render_cni_config().as_bytes(), 0o644)
                        .map_err(|e| AgentError::Write {
                            path: cni.clone(),
                            reason: e.to_string(),
                        })?;
                }
                Observation::WeaveEnvWritten
            }
            Action::EnsurePki {
                endpoint_host,
                advertise_addrs,
                advertise,
            } => {
                write_node_env(cfg, &advertise, crate::node_role::NodeRole::Master)?;
                let config = role_config(cfg, &mut role);
                let name = join::node_name(
                    config
                        .and_then(|c| c.kubelet_hostname.as_ref())
                        .map(|h| h.as_str()),
                );
                join::ensure_pki(
                    &cfg.root,
                    &endpoint_host,
                    &advertise_addrs,
                    name,
                    now_secs(),
                    state.node.as_ref().map_or(1, |n| n.control_plane.size),
                )
            }
            Action::EnsureJoinObjects { server, connect_to } => {
                let token = role_config(cfg, &mut role).and_then(|c| c.bootstrap_token.clone());
                join::ensure_join_objects(
                    &cfg.root,
                    &server,
                    &connect_to,
                    token.as_ref(),
                    cfg.probe_timeout,
                )
                .await
            }
            Action::Discover {
                server,
                connect_to,
                trust,
                advertise,
            } => {
                write_node_env(cfg, &advertise, crate::node_role::NodeRole::Minion)?;
                write_pod_resolv_conf(cfg)?;
                let config = role_config(cfg, &mut role);
                let token = config.and_then(|c| c.bootstrap_token.clone());
                let name = join::node_name(
                    config
                        .and_then(|c| c.kubelet_hostname.as_ref())
                        .map(|h| h.as_str()),
                );
                join::discover(
                    &cfg.root,
                    &server,
                    &connect_to,
                    &trust,
                    token.as_ref(),
                    &name,
                    cfg.probe_timeout,
                )
                .await
            }
            Action::ImportImages => {
                crate::edge::images::import_images(&cfg.root, &cfg.ctr, cfg.unit_timeout).await
            }
            Action::CheckKubeletCredentials => {
                let config = role_config(cfg, &mut role);
                let name = join::node_name(
                    config
                        .and_then(|c| c.kubelet_hostname.as_ref())
                        .map(|h| h.as_str()),
                );
                join::check_kubelet_credentials(&cfg.root, &name, now_secs())
            }
            Action::EnsureEtcdMember {
                masters,
                own,
                name,
                cluster,
                size,
            } => {
                ensure_etcd_member(cfg, units, &resolver, &masters, own, &name, &cluster, size)
                    .await
            }
            Action::StartUnits { units: names } => {
                tracing::info!(units = ?names, "starting units");
                match units.start_units(&names, cfg.unit_timeout).await {
                    Ok(started) => Observation::UnitsStarted(started),
                    Err((already_started, failure)) => {
                        tracing::warn!(unit = %failure.unit, result = %failure.result, "unit did not start");
                        Observation::UnitFailed {
                            already_started,
                            failure,
                        }
                    }
                }
            }
            Action::CheckHealth { checks, connect_to } => {
                check_health(
                    cfg,
                    units,
                    &resolver,
                    &checks,
                    &connect_to,
                    &state.local_addrs,
                    &mut routes_settled,
                )
                .await
            }
            Action::SetUpPodNetwork { node, connect_to } => Observation::PodNetworkSetUp(
                crate::edge::pod_network::set_up(&cfg.root, &node, &connect_to, cfg.probe_timeout)
                    .await,
            ),
            Action::Done => {
                if state.phase == Phase::Ready && last_ready_logged != Some(state.since) {
                    tracing::info!("node is ready");
                    last_ready_logged = Some(state.since);
                }
                // Ready is kept, not assumed: the same checks again after a while (a few loopback requests);
                // sooner while a node DNS lists has no pod route yet (CNI=bridge).
                let recheck = if routes_settled {
                    crate::pure::health::READY_RECHECK
                } else {
                    crate::pure::pod_network::UNSETTLED_RESYNC
                };
                tokio::select! {
                    () = tokio::time::sleep(recheck) => {}
                    () = &mut shutdown => return Ok(state),
                }
                if let Some(seen) = recheck_etcd(cfg, &state).await {
                    (state, _) = plan::next(&state, seen, now_millis(), jitter.next());
                }
                let checks = state.health_checks();
                let connect_to = match state.masters.as_ref().map(|l| &l.result) {
                    Some(plan::DnsResult::Answers { addrs, .. }) => addrs.clone(),
                    _ => Vec::new(),
                };
                check_health(
                    cfg,
                    units,
                    &resolver,
                    &checks,
                    &connect_to,
                    &state.local_addrs,
                    &mut routes_settled,
                )
                .await
            }
            Action::Fail { reason } => {
                tracing::error!(%reason, "the agent stopped bringing the node up");
                (&mut shutdown).await;
                return Ok(state);
            }
        };
        let now = now_millis();
        (state, action) = plan::next(&state, observation, now, jitter.next());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_stays_in_range_and_varies() {
        let mut j = Jitter(42);
        let values: Vec<f64> = (0..1000).map(|_| j.next()).collect();
        assert!(values.iter().all(|v| (0.0..1.0).contains(v)));
        let mean = values.iter().sum::<f64>() / values.len() as f64;
        assert!((0.4..0.6).contains(&mean), "{mean}");
    }

    #[test]
    fn the_kept_weave_decision_is_read_bounded_and_a_bad_one_is_reported() {
        use crate::plan::KeptWeave;
        use crate::weave::{
            ConsensusSize, IpallocInit, KeptDecision, WEAVE_DECISION_FILE, WeaveDecision,
            WeavePeers,
        };
        let dir = tempfile::tempdir().expect("tempdir");
        assert_eq!(read_kept_weave(dir.path()), None, "no file: a first boot");
        let path = dir.path().join(WEAVE_DECISION_FILE);
        let n = ConsensusSize::new(1).expect("n");
        let addr = "10.0.0.2".parse().expect("addr");
        let decision = WeaveDecision {
            ipalloc_init: IpallocInit::Consensus(n),
            n,
            peers: WeavePeers::new(vec![addr]),
            decided_from: vec![addr],
            decided_at: 1,
            self_addr: Some(addr),
            after_reboot: None,
        };
        let kept = KeptDecision::new("prod", &decision);
        atomic_write(&path, kept.render().as_bytes(), 0o644).expect("write");
        assert_eq!(read_kept_weave(dir.path()), Some(KeptWeave::Found(kept)));
        let unreadable = |contents: &[u8]| {
            std::fs::write(&path, contents).expect("write");
            match read_kept_weave(dir.path()) {
                Some(KeptWeave::Unreadable { reason }) => reason,
                other => panic!("{other:?}"),
            }
        };
        let reason = unreadable(b"{\"schema_version\": 1");
        assert!(
            reason.starts_with(&path.display().to_string()) && reason.contains("not a kept"),
            "{reason}"
        );
        assert!(unreadable(b"\xff\xfe").contains("not UTF-8"));
        let big = vec![b' '; (crate::weave::MAX_KEPT_DECISION_BYTES + 1) as usize];
        assert!(unreadable(&big).contains("larger than"));
    }

    #[test]
    fn a_damaged_state_is_an_error_not_a_fresh_start() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("state.json");
        assert!(read_state(&path).expect("missing is fine").is_none());
        std::fs::write(&path, "{ not json").expect("write");
        let err = read_state(&path).expect_err("damaged");
        assert!(err.to_string().contains("reboot the node"), "{err}");
    }
}
