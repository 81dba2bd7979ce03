//! Command-line interface of `k8s-agent`: the clap types (one [`Command`] variant per subcommand, one `run()` per
//! command) and the exit codes. What a command prints goes to stdout; errors are returned to `main`, which
//! renders them as `error: …` / `caused by: …` / `hint: …` on stderr.
//!
//! Adding a subcommand: a variant in [`Command`], an args struct in [`crate::commands`] with `fn run(&self) ->
//! Result<Outcome, CommandError>`, and an arm in [`Command::run`]. New exit codes are added to [`EXIT_CODES_HELP`]
//! and [`Outcome`], never renumbered.

use crate::outcome::{CommandError, Outcome};
use clap::{Parser, Subcommand};

/// Exit codes, as shown at the end of `--help`.
pub const EXIT_CODES_HELP: &str = "\
Exit codes:
  0  success (check: every check passed, warnings allowed; status: the node is Ready; role: the role file is valid)
  1  check: at least one check failed; role: the role file is invalid, or both role files exist
  2  usage error, or the command could not run (e.g. --root does not exist)
  3  status: the node is still coming up (the reason is printed)
  4  status: the agent stopped in Failed (the reason is printed)
  5  status: no state on this boot yet; role: no role file yet";

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
    Check(crate::commands::CheckArgs),
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

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;
    use std::path::PathBuf;

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
}
