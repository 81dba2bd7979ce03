//! Command-line interface of `k8s-agent`: the clap types (one [`Command`] variant per subcommand, one `run()` per
//! command) and the exit codes. What a command prints goes to stdout; errors are returned to `main`, which
//! renders them as `error: …` / `caused by: …` / `hint: …` on stderr.
//!
//! Adding a subcommand: a variant in [`Command`], an args struct with `fn run(&self) -> Result<Outcome,
//! CommandError>`, and an arm in [`Command::run`]. New exit codes are added to [`EXIT_CODES_HELP`] and
//! [`Outcome`], never renumbered.

use clap::{Args, Parser, Subcommand};
use k8s_agent::checks;
use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

/// Exit codes, as shown at the end of `--help`.
pub const EXIT_CODES_HELP: &str = "\
Exit codes:
  0  success (check: every check passed, warnings allowed; status: the node is Ready; role: the role file is valid)
  1  check: at least one check failed; role: the role file is invalid, or both role files exist
  2  usage error, or the command could not run (e.g. --root does not exist)
  3  status: the node is still coming up (the reason is printed)
  4  status: the agent stopped in Failed (the reason is printed)
  5  status: no state on this boot yet; role: no role file yet";

/// Exit code for a usage error or a command that could not run (clap uses it for usage errors too).
pub const EXIT_ERROR: u8 = 2;

#[derive(Debug, Parser)]
#[command(
    name = "k8s-agent",
    version,
    about = "On-host agent of the Kubernetes node image: checks the host and brings the node up",
    after_help = EXIT_CODES_HELP
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check a node image tree (a staged image, or / on a node) against the image's rules; on / also the running
    /// kernel (sysctls in effect, modules, swap, cgroup v2).
    #[command(after_help = EXIT_CODES_HELP)]
    Check(CheckArgs),
    /// The service: read the role file, check the host, wait for the masters, compute Weave's IPAM start-up and
    /// start the role's units over D-Bus. Runs until SIGTERM.
    #[command(after_help = EXIT_CODES_HELP)]
    Run(crate::commands::RunArgs),
    /// Where this node stands and why: role, cluster, phase, what it waits for, DNS answers, Weave peers, units.
    #[command(after_help = EXIT_CODES_HELP)]
    Status(crate::commands::StatusArgs),
    /// Print the role file as the agent reads it (secrets redacted).
    #[command(after_help = EXIT_CODES_HELP)]
    Role(crate::commands::RoleArgs),
    /// Write a support bundle (one tar.gz): status and timeline, state, the agent's and the role units' journals
    /// for this boot, the role file with secrets redacted, check results, the last DNS answers, the image lock,
    /// versions, cloud-init's status. Every secret the node holds is scrubbed out, and checked gone, first.
    #[command(after_help = EXIT_CODES_HELP)]
    Bundle(crate::commands::BundleArgs),
    /// Remove this node's address from the DNS records it added over RFC 2136 (`DNS_UPDATE_*`); the agent's unit
    /// runs it on stop (`ExecStop=`), so a clean stop or shutdown leaves no stale record.
    #[command(after_help = EXIT_CODES_HELP)]
    DnsDeregister(crate::commands::DnsDeregisterArgs),
}

impl Command {
    pub fn run(&self) -> Result<Outcome, CommandError> {
        match self {
            Command::Check(args) => args.run(),
            Command::Run(args) => args.run(),
            Command::Status(args) => args.run(),
            Command::Role(args) => args.run(),
            Command::Bundle(args) => args.run(),
            Command::DnsDeregister(args) => args.run(),
        }
    }
}

/// How a command that ran to the end came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Exit 0.
    Success,
    /// Exit 1: `check` found at least one failure; `role`: invalid role file.
    ChecksFailed,
    /// A documented exit code of `status` / `role` (3, 4, 5).
    Code(u8),
}

impl Outcome {
    pub fn exit_code(self) -> ExitCode {
        match self {
            Outcome::Success => ExitCode::SUCCESS,
            Outcome::ChecksFailed => ExitCode::from(1),
            Outcome::Code(code) => ExitCode::from(code),
        }
    }
}

/// A command could not run (exit 2): what went wrong, and what the user can do about it.
#[derive(Debug)]
pub struct CommandError {
    pub error: anyhow::Error,
    pub hint: Option<String>,
}

impl CommandError {
    pub fn new(error: impl Into<anyhow::Error>, hint: impl Into<Option<String>>) -> Self {
        CommandError {
            error: error.into(),
            hint: hint.into(),
        }
    }

    /// `error: …`, one `caused by: …` per source, then `hint: …`.
    pub fn render(&self) -> String {
        let mut out = format!("error: {}\n", self.error);
        for cause in self.error.chain().skip(1) {
            out.push_str(&format!("  caused by: {cause}\n"));
        }
        if let Some(hint) = &self.hint {
            out.push_str(&format!("hint: {hint}\n"));
        }
        out
    }
}

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

/// The text a command prints: pretty JSON (with a final newline) or the human rendering.
pub fn render(
    json: bool,
    value: &impl serde::Serialize,
    human: impl FnOnce() -> String,
) -> Result<String, CommandError> {
    if !json {
        return Ok(human());
    }
    let mut text = serde_json::to_string_pretty(value).map_err(|err| {
        CommandError::new(anyhow::Error::new(err).context("cannot render JSON"), None)
    })?;
    text.push('\n');
    Ok(text)
}

/// Writes to stdout without panicking when it is closed. A reader that went away (`| head`) is not an error: the
/// exit code still says how the command came out.
pub fn print_stdout(text: &str) -> Result<(), CommandError> {
    let mut stdout = std::io::stdout().lock();
    match stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
    {
        Ok(()) => Ok(()),
        Err(err) if err.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        Err(err) => Err(CommandError::new(
            anyhow::Error::new(err).context("cannot write to stdout"),
            None,
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn check_defaults_to_root_and_text() -> Result<(), clap::Error> {
        let cli = Cli::try_parse_from(["k8s-agent", "check"])?;
        let Command::Check(args) = cli.command else {
            panic!("parsed as another command");
        };
        assert_eq!(args.root, PathBuf::from("/"));
        assert!(!args.json);
        Ok(())
    }

    #[test]
    fn errors_render_with_causes_and_hint() {
        let err = CommandError::new(
            anyhow::Error::new(std::io::Error::from(std::io::ErrorKind::NotFound))
                .context("cannot use --root /x"),
            "pass a directory".to_owned(),
        );
        let text = err.render();
        assert!(
            text.starts_with("error: cannot use --root /x\n  caused by: "),
            "{text}"
        );
        assert!(text.ends_with("hint: pass a directory\n"), "{text}");
    }
}
