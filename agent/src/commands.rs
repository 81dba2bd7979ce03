//! The subcommands of the `k8s-agent` binary (`check`, `run`, `status`, `role`, `bundle`, `dns-deregister`):
//! argument types and the thin glue from the command line to the library (checks, executor, status printer, role
//! file reader), plus logging set-up and, when the agent is PID 1, reaping and signal forwarding.

use crate::outcome::{CommandError, Outcome, print_stdout, render};
use clap::Args;
use k8s_agent::checks::CHECKS_FILE;
use k8s_agent::checks::{self, CheckResult};
use k8s_agent::edge::role_file;
use k8s_agent::executor::{self, AgentConfig};
use k8s_agent::image_info::ImageLock;
use k8s_agent::pid1;
use k8s_agent::role_file::{RoleDiscovery, RoleLoad};
use k8s_agent::status::{EXIT_NO_STATE, StatusReport};
use k8s_agent::systemd::SystemdClient;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Root of the tree to check: a staged image tree, or / on a node.
    #[arg(long, value_name = "DIR", default_value = "/")]
    pub root: PathBuf,
    /// Print the report as JSON (see the `checks` module docs for its fields) instead of text.
    #[arg(long)]
    pub json: bool,
    /// Also check the running kernel (default: only when --root is /).
    #[arg(long, conflicts_with = "no_live")]
    pub live: bool,
    /// Check the files only, not the running kernel.
    #[arg(long)]
    pub no_live: bool,
}

impl CheckArgs {
    pub fn run(&self) -> Result<Outcome, CommandError> {
        match std::fs::metadata(&self.root) {
            Ok(meta) if meta.is_dir() => {}
            Ok(_) => {
                return Err(CommandError::new(
                    anyhow::anyhow!("--root {} is not a directory", self.root.display()),
                    "pass the directory the image was staged in, or / on a node".to_owned(),
                ));
            }
            Err(err) => {
                return Err(CommandError::new(
                    anyhow::Error::new(err).context(format!("cannot use --root {}", self.root.display())),
                    "pass the directory the image was staged in, or leave --root out to check this node (/)"
                        .to_owned(),
                ));
            }
        }
        let live = self.live || (!self.no_live && self.root == std::path::Path::new("/"));
        let set = if live {
            checks::RuleSet::Node
        } else {
            checks::RuleSet::Tree
        };
        let report = checks::check(&self.root, set);
        print_stdout(&render(self.json, &report, || report.render_human())?)?;
        Ok(if report.passed() {
            Outcome::Success
        } else {
            Outcome::ChecksFailed
        })
    }
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// The node's root (role files, /run/k8s-agent live under it); / on a node.
    #[arg(long, value_name = "DIR", default_value = "/")]
    pub root: PathBuf,
    /// Ask this name server (IP or IP:PORT) instead of /etc/resolv.conf's.
    #[arg(long, value_name = "ADDR", value_parser = parse_nameserver)]
    pub nameserver: Option<SocketAddr>,
    /// D-Bus address of systemd [default: the system bus].
    #[arg(long, value_name = "ADDRESS")]
    pub bus: Option<String>,
    /// Seconds a master health probe may take.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..=300))]
    pub probe_timeout: u64,
    /// Seconds one unit's start job may take.
    #[arg(long, default_value_t = 300, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub unit_timeout: u64,
}

fn parse_nameserver(text: &str) -> Result<SocketAddr, String> {
    if let Ok(addr) = text.parse::<SocketAddr>() {
        return Ok(addr);
    }
    text.parse::<std::net::IpAddr>()
        .map(|ip| SocketAddr::new(ip, 53))
        .map_err(|_| format!("{text:?} is not an IP address or IP:PORT"))
}

/// Logs go to the journal under systemd (JOURNAL_STREAM set), to stderr otherwise. `K8S_AGENT_LOG` sets the
/// filter (default `info`): a level (`debug`) or `target=level` pairs separated by commas (`info,zbus=warn`) —
/// tracing-subscriber's `Targets`, not `EnvFilter`, whose regular-expression engine would add about 0.4 MiB of code
/// to the agent (and to its resident memory) for span-field filters it does not need.
fn init_logging() {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let info = || {
        tracing_subscriber::filter::Targets::new()
            .with_default(tracing_subscriber::filter::LevelFilter::INFO)
    };
    let filter = match std::env::var("K8S_AGENT_LOG") {
        Ok(text) => text.parse().unwrap_or_else(|e| {
            eprintln!(
                "k8s-agent: K8S_AGENT_LOG={text:?} is not a log filter ({e}); logging at info"
            );
            info()
        }),
        Err(_) => info(),
    };
    let registry = tracing_subscriber::registry().with(filter);
    if std::env::var_os("JOURNAL_STREAM").is_some()
        && let Ok(journald) = tracing_journald::layer()
    {
        let _ = registry
            .with(journald.with_syslog_identifier("k8s-agent".to_string()))
            .try_init();
        return;
    }
    let _ = registry
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                .with_target(false),
        )
        .try_init();
}

/// Resolves when SIGTERM or SIGINT arrives; as PID 1 it forwards SIGTERM/SIGINT/SIGHUP to the children and reaps
/// orphans on SIGCHLD.
async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int), Ok(mut hup), Ok(mut chld)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
        signal(SignalKind::hangup()),
        signal(SignalKind::child()),
    ) else {
        tracing::warn!("cannot install signal handlers; stop the agent with SIGKILL");
        std::future::pending::<()>().await;
        return;
    };
    let is_pid1 = pid1::is_pid1();
    loop {
        tokio::select! {
            _ = term.recv() => {
                if is_pid1 { pid1::forward(nix::sys::signal::Signal::SIGTERM); }
                return;
            }
            _ = int.recv() => {
                if is_pid1 { pid1::forward(nix::sys::signal::Signal::SIGINT); }
                return;
            }
            _ = hup.recv() => {
                if is_pid1 { pid1::forward(nix::sys::signal::Signal::SIGHUP); }
            }
            _ = chld.recv() => {
                if is_pid1 { pid1::reap_zombies(); }
            }
        }
    }
}

/// As PID 1 after shutdown: wait (bounded) for the children to exit, reaping them.
async fn drain_children() {
    if !pid1::is_pid1() {
        return;
    }
    for _ in 0..100 {
        pid1::reap_zombies();
        if pid1::children().is_empty() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    pid1::forward(nix::sys::signal::Signal::SIGKILL);
    pid1::reap_zombies();
}

fn runtime() -> Result<tokio::runtime::Runtime, CommandError> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| {
            CommandError::new(
                anyhow::Error::new(e).context("cannot start the async runtime"),
                None,
            )
        })
}

impl RunArgs {
    pub fn run(&self) -> Result<Outcome, CommandError> {
        init_logging();
        let _ = rustls::crypto::ring::default_provider().install_default();
        let cfg = AgentConfig {
            nameserver: self.nameserver,
            probe_timeout: Duration::from_secs(self.probe_timeout),
            unit_timeout: Duration::from_secs(self.unit_timeout),
            ..AgentConfig::new(self.root.clone())
        };
        let rt = runtime()?;
        rt.block_on(async {
            let systemd = executor::LazySystemd::new(self.bus.clone());
            let result = executor::run_agent(&cfg, &systemd, shutdown_signal()).await;
            drain_children().await;
            match result {
                Ok(state) => {
                    tracing::info!(phase = %state.phase, "stopping");
                    Ok(Outcome::Success)
                }
                Err(e) => Err(CommandError::new(anyhow::Error::new(e), None)),
            }
        })
    }
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// The node's root.
    #[arg(long, value_name = "DIR", default_value = "/")]
    pub root: PathBuf,
    /// Print JSON (stable field names, `format_version` 1).
    #[arg(long)]
    pub json: bool,
    /// D-Bus address of systemd for the units' live state [default: the system bus].
    #[arg(long, value_name = "ADDRESS")]
    pub bus: Option<String>,
    /// Do not ask systemd for the units' live state.
    #[arg(long)]
    pub no_units: bool,
    /// Also print the boot timeline: cloud-init's stages and each phase with its start, duration and the reasons
    /// it waited on (`--json` always has it, under `timeline`).
    #[arg(long)]
    pub timeline: bool,
}

impl StatusArgs {
    pub fn run(&self) -> Result<Outcome, CommandError> {
        let report = status_report(&self.root, self.bus.as_deref(), self.no_units)?;
        print_stdout(&render(self.json, &report, || {
            if self.timeline {
                format!(
                    "{}\n{}",
                    report.render_human(),
                    report.timeline.render_human()
                )
            } else {
                report.render_human()
            }
        })?)?;
        Ok(match report.exit_code() {
            0 => Outcome::Success,
            code => Outcome::Code(code),
        })
    }
}

/// The status report of the node at `root`: the persisted state and checks, the image's lock, the units' live
/// state over D-Bus (unless `no_units`), and the boot timeline.
pub fn status_report(
    root: &std::path::Path,
    bus: Option<&str>,
    no_units: bool,
) -> Result<StatusReport, CommandError> {
    let state_path = root.join(k8s_agent::plan::STATE_FILE);
    let state = executor::read_state(&state_path)
        .map_err(|e| CommandError::new(anyhow::Error::new(e), None))?;
    let checks: Vec<CheckResult> = std::fs::read(root.join(CHECKS_FILE))
        .ok()
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
        .and_then(|v| serde_json::from_value(v.get("results")?.clone()).ok())
        .unwrap_or_default();
    let lock = ImageLock::read(root).ok();
    let units: Vec<String> = state.as_ref().map(|s| s.role_units()).unwrap_or_default();
    let (unit_states, units_error) = if no_units || units.is_empty() {
        (Vec::new(), None)
    } else {
        let rt = runtime()?;
        rt.block_on(async {
            let connect = async {
                match bus {
                    Some(a) => SystemdClient::at_address(a).await,
                    None => SystemdClient::system().await,
                }
            };
            match tokio::time::timeout(Duration::from_secs(3), connect).await {
                Ok(Ok(client)) => (client.unit_states(&units).await, None),
                Ok(Err(e)) => (Vec::new(), Some(e.to_string())),
                Err(_) => (
                    Vec::new(),
                    Some("systemd did not answer within 3 s".to_string()),
                ),
            }
        })
    };
    let now = executor::now_millis();
    let mut report = StatusReport::new(
        state.as_ref(),
        &checks,
        lock.as_ref(),
        unit_states,
        units_error,
        now,
    );
    if let Some(node) = state.as_ref().and_then(|s| s.node.as_ref()) {
        let path = root.join(node.role_file.strip_prefix("/").unwrap_or(&node.role_file));
        let now = role_file::read_bytes(&path).ok();
        report.role_file_drift =
            k8s_agent::role_file::drift(&node.role_file_sha256, now.as_deref());
    }
    let cloud_init =
        |name: &str| std::fs::read_to_string(root.join("run/cloud-init").join(name)).ok();
    report.timeline = k8s_agent::pure::timeline::build(
        state.as_ref(),
        cloud_init("status.json").as_deref(),
        cloud_init("result.json").as_deref(),
        k8s_agent::pure::timeline::BootClock {
            kernel_boot: k8s_agent::edge::metrics::kernel_boot_unix_ms(),
            node_boot: k8s_agent::edge::metrics::boot_unix_ms(root),
        },
        now,
    );
    Ok(report)
}

#[derive(Debug, Args)]
pub struct BundleArgs {
    /// The node's root.
    #[arg(long, value_name = "DIR", default_value = "/")]
    pub root: PathBuf,
    /// Where to write the tar.gz [default: ./k8s-agent-bundle-<host>-<UTC time>.tar.gz].
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// D-Bus address of systemd for the units' live state [default: the system bus].
    #[arg(long, value_name = "ADDRESS")]
    pub bus: Option<String>,
    /// Do not ask systemd for the units' live state.
    #[arg(long)]
    pub no_units: bool,
}

impl BundleArgs {
    pub fn run(&self) -> Result<Outcome, CommandError> {
        let report = status_report(&self.root, self.bus.as_deref(), self.no_units)?;
        let now = executor::now_millis();
        let out = match &self.out {
            Some(path) => path.clone(),
            None => PathBuf::from(format!(
                "k8s-agent-bundle-{}-{}.tar.gz",
                k8s_agent::edge::bundle::host_name(&self.root),
                k8s_agent::pure::utc::compact((now / 1000) as i64)
            )),
        };
        let written = k8s_agent::edge::bundle::write(&self.root, &report, &out, now).map_err(|e| {
            CommandError::new(
                anyhow::anyhow!("{e}"),
                "nothing was written; fix what the message names (or pass --out to another directory)"
                    .to_string(),
            )
        })?;
        print_stdout(&written.render_human())?;
        Ok(Outcome::Success)
    }
}

#[derive(Debug, Args)]
pub struct RoleArgs {
    /// The node's root.
    #[arg(long, value_name = "DIR", default_value = "/")]
    pub root: PathBuf,
}

impl RoleArgs {
    pub fn run(&self) -> Result<Outcome, CommandError> {
        match role_file::load(&self.root) {
            RoleLoad::Parsed(config) => {
                print_stdout(&(config.redacted_lines().join("\n") + "\n"))?;
                Ok(Outcome::Success)
            }
            RoleLoad::Invalid(e) => {
                eprintln!("error: {e}");
                Ok(Outcome::ChecksFailed)
            }
            RoleLoad::NotRead(d @ RoleDiscovery::NoneYet { .. }) => {
                eprintln!("{}", d.reason());
                Ok(Outcome::Code(EXIT_NO_STATE))
            }
            RoleLoad::NotRead(d) => {
                eprintln!("error: {}", d.reason());
                Ok(Outcome::ChecksFailed)
            }
        }
    }
}

#[derive(Debug, Args)]
pub struct DnsDeregisterArgs {
    /// The node's root.
    #[arg(long, value_name = "DIR", default_value = "/")]
    pub root: PathBuf,
}

impl DnsDeregisterArgs {
    /// Deletes what the state says this node added (`ExecStop=` of k8s-agent.service). Nothing registered (or no
    /// `DNS_UPDATE_*`) is a success with nothing to do.
    pub fn run(&self) -> Result<Outcome, CommandError> {
        let path = self.root.join(k8s_agent::plan::STATE_FILE);
        let state = executor::read_state(&path)
            .map_err(|e| CommandError::new(anyhow::anyhow!("{e}"), None))?;
        let registered = state.as_ref().and_then(|s| {
            let update = s.node.as_ref()?.dns_update.as_ref()?;
            Some((update, s.dns_registration.as_ref()?))
        });
        let Some((update, registration)) = registered else {
            print_stdout(
                "nothing to remove: this node did not register itself in DNS on this boot\n",
            )?;
            return Ok(Outcome::Success);
        };
        let rt = runtime()?;
        match rt.block_on(k8s_agent::edge::dns_update::deregister(
            &self.root,
            update,
            registration,
        )) {
            Ok(lines) => {
                print_stdout(&(lines.join("\n") + "\n"))?;
                Ok(Outcome::Success)
            }
            Err(reason) => Err(CommandError::new(
                anyhow::anyhow!(
                    "removing {} from {} failed: {reason}",
                    registration.address,
                    registration.records.join(", ")
                ),
                format!(
                    "the record stays until something removes it: `nsupdate -k <key file>` with `update delete <name> A {}`",
                    registration.address
                ),
            )),
        }
    }
}
