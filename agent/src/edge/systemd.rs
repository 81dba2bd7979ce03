//! The agent's edge to systemd: starting units and reading their state over systemd's D-Bus API
//! (`org.freedesktop.systemd1`), never by running `systemctl`.
//!
//! [`SystemdClient::start_units`] starts units one after the other. For each unit it
//! 1. adds a match rule for the Manager's `JobRemoved` signal and creates the signal stream (one bus round trip, so
//!    the bus delivers every `JobRemoved` emitted from then on),
//! 2. calls `StartUnit(name, "replace")` and keeps the job object path it returns,
//! 3. reads the stream until the `JobRemoved` carrying that job path arrives — a job that finished before
//!    `StartUnit`'s reply was read is therefore never missed, its signal is already queued — bounded by a per-unit
//!    timeout,
//! 4. drops the stream (so no unread signals can hold up the connection) and reads the unit's `LoadState`,
//!    `ActiveState`, `SubState`, `ConditionResult` and its type's `Result` to classify the outcome ([`classify`]).
//!
//! Outcomes worth knowing (verified against systemd 252 in `tests/systemd_nspawn.rs`):
//! - `StartUnit` on a unit that is already active queues a job that completes at once with `done`; the unit is not
//!   restarted (same main PID, same `ActiveEnterTimestamp`).
//! - A failed `Condition*=` (e.g. a role drop-in's `ConditionPathExists=`) is *not* a failed job: the job result is
//!   `done` and the unit stays `inactive (dead)` with `ConditionResult=no`. It is reported as result
//!   `condition-failed`. A failed `Assert*=` gives the job result `assert`.
//! - `StartUnit` on a unit with no unit file is refused with `NoSuchUnit`; it is reported with the unit's load state
//!   (`not-found`, `masked`, `bad-setting`, …) as the result.
//!
//! The `result` of a [`UnitFailure`] is, in this order: the unit's own `Result` property when the job failed and the
//! unit says why (`exit-code`, `signal`, `core-dump`, `timeout`, `start-limit-hit`, …); `condition-failed`; the load
//! state when systemd refused the start; `agent-timeout` when the job did not finish within the agent's per-unit
//! bound (the job stays queued in systemd); `bus-error` when the bus connection failed; otherwise the job result
//! (`failed`, `dependency`, `timeout`, `canceled`, `assert`, `unsupported`, …). [`explain`] turns one into a sentence
//! with a hint.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use systemd_zbus::{JobRemoved, ManagerProxy, Mode};
use zbus::export::futures_core::Stream;
use zbus::message::Type as MessageType;
use zbus::proxy::CacheProperties;
use zbus::zvariant::{ObjectPath, OwnedObjectPath, OwnedValue, Value};
use zbus::{Connection, MatchRule, MessageStream};

use crate::plan::UnitFailure;

const SYSTEMD_SERVICE: &str = "org.freedesktop.systemd1";
const SYSTEMD_PATH: &str = "/org/freedesktop/systemd1";
const MANAGER_INTERFACE: &str = "org.freedesktop.systemd1.Manager";
const UNIT_INTERFACE: &str = "org.freedesktop.systemd1.Unit";
const PROPERTIES_INTERFACE: &str = "org.freedesktop.DBus.Properties";
const JOB_INTERFACE: &str = "org.freedesktop.systemd1.Job";
/// How often a pending start job is looked up, in case its `JobRemoved` signal never comes (systemd sends it only
/// while it is on the bus; a job that finishes while systemd re-executes is announced to nobody).
const JOB_CHECK_INTERVAL: Duration = Duration::from_secs(2);
/// The job result assumed for a job gone without a signal: [`classify`] then reads the unit's state (a failed unit
/// is still a failure, a skipped one still `condition-failed`).
const MISSED_JOB_RESULT: &str = "done";
/// How long a `JobRemoved` is still waited for once systemd said the job is gone.
const MISSED_JOB_GRACE: Duration = Duration::from_millis(500);
/// The system bus's standard address (what `zbus::Connection::system` uses unless `DBUS_SYSTEM_BUS_ADDRESS` is set).
const SYSTEM_BUS_ADDRESS: &str = "unix:path=/run/dbus/system_bus_socket";
/// Bound on every single D-Bus method call (systemd answers in milliseconds unless it hangs).
const METHOD_TIMEOUT: Duration = Duration::from_secs(25);
/// Queue of `JobRemoved` signals waiting to be read. zbus never drops signals: a full queue stops the connection
/// from reading, so the queue is large enough for every job a start can pull in while the `StartUnit` reply is
/// awaited.
const JOB_SIGNAL_QUEUE: usize = 4096;

/// Result reported when the agent's per-unit bound elapsed before systemd finished the start job.
pub const RESULT_AGENT_TIMEOUT: &str = "agent-timeout";
/// Result reported when a `Condition*=` of the unit was not met (job `done`, unit inactive, `ConditionResult=no`).
pub const RESULT_CONDITION_FAILED: &str = "condition-failed";
/// Result reported when the bus connection failed while starting the unit.
pub const RESULT_BUS_ERROR: &str = crate::plan::UNIT_RESULT_BUS_ERROR;
/// Result reported when systemd refused `StartUnit` for a loaded unit (e.g. `RefuseManualStart=yes`).
pub const RESULT_REFUSED: &str = "refused";
/// State reported for fields that could not be read.
pub const UNKNOWN: &str = "unknown";

/// Could not reach systemd.
#[derive(Debug, thiserror::Error)]
pub enum SystemdError {
    #[error("cannot connect to the D-Bus bus at {address}: {source} — hint: {hint}")]
    Connect {
        address: String,
        source: zbus::Error,
        hint: String,
    },
    #[error(
        "connected to the D-Bus bus at {address}, but systemd ({SYSTEMD_SERVICE}) did not answer: {source} — hint: \
         is systemd the init system there (PID 1) and fully started?"
    )]
    NoSystemd {
        address: String,
        source: zbus::Error,
    },
}

pub use k8s_core::unit_state::UnitState;

/// What was read about a unit after a start job (or instead of one).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct UnitProps {
    pub load_state: String,
    pub active_state: String,
    pub sub_state: String,
    /// `ConditionResult`: `false` when a `Condition*=` failed at the last start attempt; `None` if it was not read.
    pub condition_result: Option<bool>,
    /// The unit type's `Result` property; empty when the type has none.
    pub result: String,
    pub active_enter_timestamp_us: u64,
    pub inactive_exit_timestamp_us: u64,
}

impl UnitProps {
    fn unknown() -> UnitProps {
        UnitProps {
            load_state: UNKNOWN.to_owned(),
            active_state: UNKNOWN.to_owned(),
            sub_state: UNKNOWN.to_owned(),
            condition_result: None,
            result: String::new(),
            active_enter_timestamp_us: 0,
            inactive_exit_timestamp_us: 0,
        }
    }

    fn failure(&self, unit: &str, result: &str) -> UnitFailure {
        UnitFailure {
            unit: unit.to_owned(),
            active_state: self.active_state.clone(),
            sub_state: self.sub_state.clone(),
            result: result.to_owned(),
        }
    }
}

/// Decide whether a start whose job finished with `job_result` started the unit.
///
/// `done` is a success unless the unit is `failed` by the time it is read (a `Type=simple` service whose process
/// exited at once), or it is not active and its `ConditionResult` is false (a skipped start: `condition-failed`).
/// Every other job result is a failure; when it is `failed`, the unit's own `Result` (e.g. `exit-code`) is reported
/// instead, as it says more.
pub fn classify(unit: &str, job_result: &str, props: &UnitProps) -> Result<(), UnitFailure> {
    let unit_result = match props.result.as_str() {
        "" | "success" => None,
        specific => Some(specific),
    };
    if job_result == "done" {
        let running = matches!(
            props.active_state.as_str(),
            "active" | "reloading" | "activating" | "refreshing"
        );
        if props.active_state == "failed" {
            return Err(props.failure(unit, unit_result.unwrap_or("failed")));
        }
        if !running && props.condition_result == Some(false) {
            return Err(props.failure(unit, RESULT_CONDITION_FAILED));
        }
        return Ok(());
    }
    let result = match (job_result, unit_result) {
        ("failed", Some(specific)) => specific,
        _ => job_result,
    };
    Err(props.failure(unit, result))
}

/// A one-line explanation of a failure, with a hint where to look.
pub fn explain(failure: &UnitFailure) -> String {
    let unit = &failure.unit;
    let state = format!(
        "ActiveState={} SubState={}",
        failure.active_state, failure.sub_state
    );
    match failure.result.as_str() {
        "not-found" => format!(
            "{unit} does not exist: systemd has no unit file of that name ({state}) — hint: is it installed in the image \
             (/usr/lib/systemd/system)? `systemctl cat {unit}`"
        ),
        "masked" => format!(
            "{unit} is masked ({state}) — hint: `systemctl unmask {unit}` if that is not intended"
        ),
        "bad-setting" | "error" => format!(
            "{unit} could not be loaded (load state {}) — hint: `systemd-analyze verify {unit}`, `journalctl -b | \
             grep {unit}`",
            failure.result
        ),
        RESULT_CONDITION_FAILED => format!(
            "{unit} was not started: a Condition*= of it is not met ({state}) — hint: role units carry \
             ConditionPathExists= on the role file; is this the node's role? `systemctl show -p Conditions {unit}`"
        ),
        RESULT_AGENT_TIMEOUT => format!(
            "{unit}: its start job did not finish within the agent's bound ({state}); systemd keeps the job — hint: \
             `systemctl list-jobs`, `journalctl -u {unit}`"
        ),
        RESULT_BUS_ERROR => {
            format!(
                "{unit}: systemd could not be reached over D-Bus while starting it (re-executing, or the bus \
                 restarted) — hint: is dbus running?"
            )
        }
        "dependency" => format!(
            "{unit} was not started because a unit it requires failed ({state}) — hint: `systemctl list-dependencies \
             {unit}`, `systemctl --failed`"
        ),
        result => {
            format!("{unit} did not start ({state} Result={result}) — hint: `journalctl -u {unit}`")
        }
    }
}

/// A connection to systemd's D-Bus API.
#[derive(Debug)]
pub struct SystemdClient {
    conn: Connection,
    manager: ManagerProxy<'static>,
    address: String,
    version: String,
    subscribed: AtomicBool,
}

impl SystemdClient {
    /// The system bus (what the agent uses on a node).
    pub async fn system() -> Result<SystemdClient, SystemdError> {
        let address = std::env::var("DBUS_SYSTEM_BUS_ADDRESS")
            .unwrap_or_else(|_| SYSTEM_BUS_ADDRESS.to_owned());
        let hint = "is dbus running (dbus.socket / dbus.service) and does the agent run as root? `--bus ADDRESS` \
                    names another bus"
            .to_owned();
        let builder = zbus::conn::Builder::system().map_err(|source| SystemdError::Connect {
            address: address.clone(),
            source,
            hint: hint.clone(),
        })?;
        SystemdClient::connect(address, builder, hint).await
    }

    /// A bus at an explicit address, e.g. `unix:path=/proc/<pid>/root/run/dbus/system_bus_socket` (tests, and a
    /// `--bus` flag).
    pub async fn at_address(address: &str) -> Result<SystemdClient, SystemdError> {
        let hint = if address.contains("/proc/") {
            "is the container running and booted (its dbus.service started)? the socket is reachable through \
             /proc/<pid>/root only for root"
        } else {
            "check the address (e.g. unix:path=/run/dbus/system_bus_socket) and that dbus listens there"
        }
        .to_owned();
        let builder =
            zbus::conn::Builder::address(address).map_err(|source| SystemdError::Connect {
                address: address.to_owned(),
                source,
                hint: hint.clone(),
            })?;
        SystemdClient::connect(address.to_owned(), builder, hint).await
    }

    async fn connect(
        address: String,
        builder: zbus::conn::Builder<'static>,
        hint: String,
    ) -> Result<SystemdClient, SystemdError> {
        let conn = builder
            .method_timeout(METHOD_TIMEOUT)
            .build()
            .await
            .map_err(|source| SystemdError::Connect {
                address: address.clone(),
                source,
                hint,
            })?;
        let no_systemd = |source| SystemdError::NoSystemd {
            address: address.clone(),
            source,
        };
        let manager = ManagerProxy::builder(&conn)
            .cache_properties(CacheProperties::No)
            .build()
            .await
            .map_err(no_systemd)?;
        let version = manager.version().await.map_err(no_systemd)?;
        tracing::debug!(%address, %version, "connected to systemd");
        Ok(SystemdClient {
            conn,
            manager,
            address,
            version,
            subscribed: AtomicBool::new(false),
        })
    }

    /// The bus address this client talks to.
    pub fn address(&self) -> &str {
        &self.address
    }

    /// systemd's version string (the Manager's `Version` property), e.g. `252.39-1~deb12u2`.
    pub fn systemd_version(&self) -> &str {
        &self.version
    }

    /// The underlying bus connection (for calls this module does not wrap).
    pub fn connection(&self) -> &Connection {
        &self.conn
    }

    /// Start `units` in order, each with `StartUnit(name, "replace")`, waiting for its job to finish (at most
    /// `per_unit_timeout` each). A unit already active is not restarted. Returns the units started, or the units
    /// started before the first one that did not start, and that one's failure.
    pub async fn start_units(
        &self,
        units: &[String],
        per_unit_timeout: Duration,
    ) -> Result<Vec<String>, (Vec<String>, UnitFailure)> {
        let mut started = Vec::with_capacity(units.len());
        for unit in units {
            match self.start_unit(unit, per_unit_timeout).await {
                Ok(()) => started.push(unit.clone()),
                Err(failure) => {
                    tracing::warn!(address = %self.address, "{}", explain(&failure));
                    return Err((started, failure));
                }
            }
        }
        Ok(started)
    }

    /// `StopUnit(name, "replace")`, then wait (at most `timeout`) until the unit is neither active nor activating
    /// nor deactivating. Only for etcd's data to be moved aside after its member was removed from the cluster.
    pub async fn stop_unit(&self, unit: &str, timeout: Duration) -> Result<(), String> {
        self.manager
            .stop_unit(unit, Mode::Replace)
            .await
            .map_err(|e| format!("StopUnit {unit}: {e}"))?;
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let props = self.unit_props(unit).await.map_err(|e| e.to_string())?;
            if !matches!(
                props.active_state.as_str(),
                "active" | "activating" | "deactivating" | "reloading"
            ) {
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(format!(
                    "{unit} is still {} after {timeout:?}",
                    props.active_state
                ));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Current state of each unit (for `k8s-agent status`). Units systemd cannot be asked about are reported with
    /// `unknown` states.
    pub async fn unit_states(&self, units: &[String]) -> Vec<UnitState> {
        let mut states = Vec::with_capacity(units.len());
        for unit in units {
            let props = match self.unit_props(unit).await {
                Ok(props) => props,
                Err(error) => {
                    tracing::warn!(address = %self.address, %unit, %error, "cannot read the unit's state from systemd");
                    UnitProps::unknown()
                }
            };
            states.push(UnitState {
                unit: unit.clone(),
                load_state: props.load_state,
                active_state: props.active_state,
                sub_state: props.sub_state,
                result: props.result,
                active_enter_timestamp_us: props.active_enter_timestamp_us,
                inactive_exit_timestamp_us: props.inactive_exit_timestamp_us,
            });
        }
        states
    }

    /// `Subscribe` once per connection, so systemd broadcasts job signals to it (systemd also sends `JobRemoved` to
    /// the client that queued the job, so a failure here is logged, not fatal).
    async fn ensure_subscribed(&self) {
        if self.subscribed.load(Ordering::Relaxed) {
            return;
        }
        match self.manager.subscribe().await {
            Ok(()) => self.subscribed.store(true, Ordering::Relaxed),
            Err(error)
                if error_name(&error) == Some("org.freedesktop.systemd1.AlreadySubscribed") =>
            {
                self.subscribed.store(true, Ordering::Relaxed);
            }
            Err(error) => {
                tracing::warn!(address = %self.address, %error, "systemd Subscribe failed")
            }
        }
    }

    async fn start_unit(&self, unit: &str, timeout: Duration) -> Result<(), UnitFailure> {
        self.ensure_subscribed().await;
        let outcome = tokio::time::timeout(timeout, self.run_start_job(unit)).await;
        match outcome {
            Ok(Ok(job_result)) => {
                let props = self
                    .unit_props(unit)
                    .await
                    .map_err(|error| self.bus_failure(unit, &error))?;
                tracing::debug!(%unit, %job_result, ?props, "start job finished");
                classify(unit, &job_result, &props)
            }
            Ok(Err(StartError::Refused(error))) => {
                let props = self
                    .unit_props(unit)
                    .await
                    .unwrap_or_else(|_| UnitProps::unknown());
                tracing::warn!(address = %self.address, %unit, %error, "systemd refused to start the unit");
                let result = match props.load_state.as_str() {
                    "loaded" | "" | UNKNOWN => match error_name(&error) {
                        Some("org.freedesktop.systemd1.NoSuchUnit") => "not-found",
                        Some("org.freedesktop.systemd1.UnitMasked") => "masked",
                        _ => RESULT_REFUSED,
                    },
                    load_state => load_state,
                };
                let mut failure = props.failure(unit, result);
                if props.active_state == UNKNOWN {
                    "inactive".clone_into(&mut failure.active_state);
                    "dead".clone_into(&mut failure.sub_state);
                }
                Err(failure)
            }
            Ok(Err(StartError::Bus(error))) => Err(self.bus_failure(unit, &error)),
            Err(_elapsed) => {
                let props = self
                    .unit_props(unit)
                    .await
                    .unwrap_or_else(|_| UnitProps::unknown());
                Err(props.failure(unit, RESULT_AGENT_TIMEOUT))
            }
        }
    }

    /// Listen for `JobRemoved`, `StartUnit`, and wait for the signal of the job it returned; its result.
    async fn run_start_job(&self, unit: &str) -> Result<String, StartError> {
        let rule = MatchRule::builder()
            .msg_type(MessageType::Signal)
            .sender(SYSTEMD_SERVICE)
            .and_then(|b| b.path(SYSTEMD_PATH))
            .and_then(|b| b.interface(MANAGER_INTERFACE))
            .and_then(|b| b.member("JobRemoved"))
            .map_err(StartError::Bus)?
            .build();
        // The match is registered with the bus before this returns: from here on no JobRemoved is lost.
        let mut signals = MessageStream::for_match_rule(rule, &self.conn, Some(JOB_SIGNAL_QUEUE))
            .await
            .map_err(StartError::Bus)?;
        let job = self
            .manager
            .start_unit(unit, Mode::Replace)
            .await
            .map_err(|error| {
                if systemd_refused(&error) {
                    StartError::Refused(error)
                } else {
                    StartError::Bus(error)
                }
            })?;
        tracing::debug!(%unit, job = %job.as_str(), "start job queued");
        // A deadline, not a sleep per message: other jobs' signals must not keep postponing the check.
        let mut check_at = tokio::time::Instant::now() + JOB_CHECK_INTERVAL;
        let mut job_gone = false;
        loop {
            let next = tokio::select! {
                biased;
                next = next_message(&mut signals) => next,
                () = tokio::time::sleep_until(check_at) => {
                    if job_gone {
                        // Gone without its JobRemoved (sent while systemd re-executed, off the bus): judged from
                        // the unit's state by `classify`, as a finished job.
                        tracing::info!(%unit, job = %job.as_str(),
                            "the start job is gone and its JobRemoved signal was not seen (did systemd re-execute?); \
                             judging the start by the unit's state");
                        return Ok(MISSED_JOB_RESULT.to_owned());
                    }
                    job_gone = self.job_exists(&job).await == Some(false);
                    // Once systemd said the job is gone, only a JobRemoved already on its way is waited for: systemd
                    // sends the signal before the answer that says the job is gone, so it is in the stream by now if
                    // it was sent at all.
                    check_at = tokio::time::Instant::now()
                        + if job_gone { MISSED_JOB_GRACE } else { JOB_CHECK_INTERVAL };
                    continue;
                }
            };
            let message = match next {
                Some(Ok(message)) => message,
                Some(Err(error)) => return Err(StartError::Bus(error)),
                None => {
                    return Err(StartError::Bus(zbus::Error::InputOutput(
                        std::sync::Arc::new(std::io::Error::new(
                            std::io::ErrorKind::UnexpectedEof,
                            "the bus connection closed",
                        )),
                    )));
                }
            };
            let Some(signal) = JobRemoved::from_message(message) else {
                continue;
            };
            let Ok(args) = signal.args() else { continue };
            if args.job().as_str() == job.as_str() {
                return Ok(args.result().to_string());
            }
        }
    }

    /// Whether systemd still has the job: `Some(false)` when it says the object is unknown, `None` when it cannot
    /// be asked (off the bus for a moment).
    async fn job_exists(&self, job: &ObjectPath<'_>) -> Option<bool> {
        match self.get_property(job, JOB_INTERFACE, "State").await {
            Ok(_) => Some(true),
            Err(error) => match error_name(&error) {
                Some(
                    "org.freedesktop.DBus.Error.UnknownObject"
                    | "org.freedesktop.DBus.Error.UnknownInterface"
                    | "org.freedesktop.systemd1.NoSuchJob",
                ) => Some(false),
                _ => None,
            },
        }
    }

    fn bus_failure(&self, unit: &str, error: &zbus::Error) -> UnitFailure {
        tracing::error!(address = %self.address, %unit, %error, "D-Bus error talking to systemd");
        UnitProps::unknown().failure(unit, RESULT_BUS_ERROR)
    }

    /// `LoadUnit` (loads the unit if it is not, which never starts it) and read its state.
    async fn unit_props(&self, unit: &str) -> zbus::Result<UnitProps> {
        let path: OwnedObjectPath = self.manager.load_unit(unit).await?;
        let all = self.get_all(&path, UNIT_INTERFACE).await?;
        let text = |key: &str| all.get(key).and_then(value_str).unwrap_or_default();
        let mut props = UnitProps {
            load_state: text("LoadState"),
            active_state: text("ActiveState"),
            sub_state: text("SubState"),
            condition_result: all.get("ConditionResult").and_then(value_bool),
            result: String::new(),
            active_enter_timestamp_us: all
                .get("ActiveEnterTimestamp")
                .and_then(value_u64)
                .unwrap_or(0),
            inactive_exit_timestamp_us: all
                .get("InactiveExitTimestamp")
                .and_then(value_u64)
                .unwrap_or(0),
        };
        if let Some(interface) = type_interface(unit) {
            // Not every loaded unit of a type has every property (e.g. a not-found unit); absent means "".
            if let Ok(value) = self.get_property(&path, interface, "Result").await {
                props.result = value_str(&value).unwrap_or_default();
            }
        }
        Ok(props)
    }

    async fn get_all(
        &self,
        path: &ObjectPath<'_>,
        interface: &str,
    ) -> zbus::Result<HashMap<String, OwnedValue>> {
        let reply = self
            .conn
            .call_method(
                Some(SYSTEMD_SERVICE),
                path,
                Some(PROPERTIES_INTERFACE),
                "GetAll",
                &(interface,),
            )
            .await?;
        reply.body().deserialize()
    }

    async fn get_property(
        &self,
        path: &ObjectPath<'_>,
        interface: &str,
        name: &str,
    ) -> zbus::Result<OwnedValue> {
        let reply = self
            .conn
            .call_method(
                Some(SYSTEMD_SERVICE),
                path,
                Some(PROPERTIES_INTERFACE),
                "Get",
                &(interface, name),
            )
            .await?;
        reply.body().deserialize()
    }
}

enum StartError {
    /// systemd answered `StartUnit` with an error (no such unit, masked, refused, …).
    Refused(zbus::Error),
    /// The bus failed.
    Bus(zbus::Error),
}

async fn next_message(stream: &mut MessageStream) -> Option<zbus::Result<zbus::Message>> {
    std::future::poll_fn(|cx| Pin::new(&mut *stream).poll_next(cx)).await
}

/// Whether an error answer to a call to systemd is systemd's own refusal (no such unit, masked, access denied, …)
/// rather than the bus answering for a systemd that is not there.
///
/// While systemd re-executes (`systemctl daemon-reexec`, a package upgrade) it leaves the bus for a moment, and
/// dbus-daemon answers calls to it itself: `NoReply` for a call systemd had not answered when it left,
/// `ServiceUnknown`/`NameHasNoOwner` while its name has no owner. Those say nothing about the unit and pass once
/// systemd is back, so they are bus errors (retried), not the unit's failure.
fn systemd_refused(error: &zbus::Error) -> bool {
    match error {
        zbus::Error::MethodError(name, _, message) => {
            is_refusal(name.as_str(), message.header().sender().map(|s| s.as_str()))
        }
        zbus::Error::FDO(fdo) => is_refusal(zbus::DBusError::name(fdo.as_ref()).as_str(), None),
        _ => false,
    }
}

/// The decision behind [`systemd_refused`], on the error's name and the sender of the error message.
fn is_refusal(error_name: &str, sender: Option<&str>) -> bool {
    const ANSWERED_BY_THE_BUS: &[&str] = &[
        "org.freedesktop.DBus.Error.NoReply",
        "org.freedesktop.DBus.Error.ServiceUnknown",
        "org.freedesktop.DBus.Error.NameHasNoOwner",
        "org.freedesktop.DBus.Error.Disconnected",
        "org.freedesktop.DBus.Error.Timeout",
        "org.freedesktop.DBus.Error.TimedOut",
        "org.freedesktop.DBus.Error.LimitsExceeded",
        "org.freedesktop.DBus.Error.NoMemory",
    ];
    if sender == Some("org.freedesktop.DBus") {
        // dbus-daemon itself answered: systemd never saw the call.
        return false;
    }
    !(ANSWERED_BY_THE_BUS.contains(&error_name)
        || error_name.starts_with("org.freedesktop.DBus.Error.Spawn."))
}

fn error_name(error: &zbus::Error) -> Option<&str> {
    match error {
        zbus::Error::MethodError(name, _, _) => Some(name.as_str()),
        _ => None,
    }
}

/// The D-Bus interface holding a unit type's `Result` property.
fn type_interface(unit: &str) -> Option<&'static str> {
    let (_, suffix) = unit.rsplit_once('.')?;
    Some(match suffix {
        "service" => "org.freedesktop.systemd1.Service",
        "socket" => "org.freedesktop.systemd1.Socket",
        "mount" => "org.freedesktop.systemd1.Mount",
        "swap" => "org.freedesktop.systemd1.Swap",
        "timer" => "org.freedesktop.systemd1.Timer",
        "path" => "org.freedesktop.systemd1.Path",
        "automount" => "org.freedesktop.systemd1.Automount",
        "scope" => "org.freedesktop.systemd1.Scope",
        _ => return None,
    })
}

fn value_str(value: &OwnedValue) -> Option<String> {
    match &**value {
        Value::Str(s) => Some(s.as_str().to_owned()),
        Value::Value(inner) => match &**inner {
            Value::Str(s) => Some(s.as_str().to_owned()),
            _ => None,
        },
        _ => None,
    }
}

fn value_bool(value: &OwnedValue) -> Option<bool> {
    match &**value {
        Value::Bool(b) => Some(*b),
        _ => None,
    }
}

fn value_u64(value: &OwnedValue) -> Option<u64> {
    match &**value {
        Value::U64(n) => Some(*n),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn props(active: &str, sub: &str, condition: Option<bool>, result: &str) -> UnitProps {
        UnitProps {
            load_state: "loaded".into(),
            active_state: active.into(),
            sub_state: sub.into(),
            condition_result: condition,
            result: result.into(),
            active_enter_timestamp_us: 0,
            inactive_exit_timestamp_us: 0,
        }
    }

    #[test]
    fn errors_the_bus_gives_for_an_absent_systemd_are_not_refusals() {
        // systemd's own answers: the unit's failure.
        for name in [
            "org.freedesktop.systemd1.NoSuchUnit",
            "org.freedesktop.systemd1.UnitMasked",
            "org.freedesktop.DBus.Error.AccessDenied",
            "org.freedesktop.DBus.Error.InvalidArgs",
        ] {
            assert!(is_refusal(name, Some(":1.0")), "{name}");
        }
        // dbus-daemon answering for a systemd that is re-executing (seen with `systemctl daemon-reexec`).
        for name in [
            "org.freedesktop.DBus.Error.NoReply",
            "org.freedesktop.DBus.Error.ServiceUnknown",
            "org.freedesktop.DBus.Error.NameHasNoOwner",
            "org.freedesktop.DBus.Error.Spawn.ChildExited",
        ] {
            assert!(!is_refusal(name, Some(":1.0")), "{name}");
            assert!(!is_refusal(name, None), "{name}");
        }
        // Whatever dbus-daemon itself sends, systemd never saw the call.
        assert!(!is_refusal(
            "org.freedesktop.DBus.Error.AccessDenied",
            Some("org.freedesktop.DBus")
        ));
    }

    fn failure(active: &str, sub: &str, result: &str) -> UnitFailure {
        UnitFailure {
            unit: "u.service".into(),
            active_state: active.into(),
            sub_state: sub.into(),
            result: result.into(),
        }
    }

    #[test]
    fn done_and_active_is_started() {
        assert_eq!(
            classify(
                "u.service",
                "done",
                &props("active", "running", Some(true), "success")
            ),
            Ok(())
        );
        assert_eq!(
            classify(
                "u.service",
                "done",
                &props("active", "exited", Some(true), "success")
            ),
            Ok(())
        );
    }

    #[test]
    fn done_oneshot_without_remain_after_exit_is_started() {
        assert_eq!(
            classify(
                "u.service",
                "done",
                &props("inactive", "dead", Some(true), "success")
            ),
            Ok(())
        );
    }

    #[test]
    fn done_with_failed_condition_is_condition_failed() {
        assert_eq!(
            classify(
                "u.service",
                "done",
                &props("inactive", "dead", Some(false), "success")
            ),
            Err(failure("inactive", "dead", RESULT_CONDITION_FAILED))
        );
    }

    #[test]
    fn done_active_with_stale_condition_is_started() {
        assert_eq!(
            classify(
                "u.service",
                "done",
                &props("active", "running", Some(false), "success")
            ),
            Ok(())
        );
    }

    #[test]
    fn done_but_failed_by_now_reports_unit_result() {
        assert_eq!(
            classify(
                "u.service",
                "done",
                &props("failed", "failed", Some(true), "exit-code")
            ),
            Err(failure("failed", "failed", "exit-code"))
        );
    }

    #[test]
    fn failed_job_reports_the_units_own_result() {
        assert_eq!(
            classify(
                "u.service",
                "failed",
                &props("failed", "failed", Some(true), "exit-code")
            ),
            Err(failure("failed", "failed", "exit-code"))
        );
        assert_eq!(
            classify(
                "u.target",
                "failed",
                &props("inactive", "dead", Some(true), "")
            ),
            Err(UnitFailure {
                unit: "u.target".into(),
                ..failure("inactive", "dead", "failed")
            })
        );
    }

    #[test]
    fn other_job_results_are_reported_as_such() {
        for job in ["dependency", "timeout", "canceled", "assert", "skipped"] {
            assert_eq!(
                classify(
                    "u.service",
                    job,
                    &props("inactive", "dead", Some(true), "success")
                ),
                Err(failure("inactive", "dead", job))
            );
        }
    }

    #[test]
    fn explain_names_unit_and_gives_a_hint() {
        let text = explain(&failure("inactive", "dead", "not-found"));
        assert!(text.contains("u.service does not exist"), "{text}");
        assert!(text.contains("hint:"), "{text}");
        let text = explain(&failure("inactive", "dead", RESULT_CONDITION_FAILED));
        assert!(text.contains("Condition"), "{text}");
    }

    #[test]
    fn result_interface_by_unit_type() {
        assert_eq!(
            type_interface("kubelet.service"),
            Some("org.freedesktop.systemd1.Service")
        );
        assert_eq!(type_interface("multi-user.target"), None);
        assert_eq!(type_interface("noextension"), None);
    }
}
