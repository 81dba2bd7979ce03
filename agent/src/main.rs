//! `k8s-agent`: the on-host agent of the Kubernetes node image. A thin binary over the `k8s_agent` library; the
//! command-line types live in [`cli`].
//!
//! Subcommands: `run` (the service), `status [--json]`, `check [--root DIR] [--json]`, `role`.
//!
//! Exit codes (also at the end of `--help`):
//! - 0: success — `check`: every check passed (warnings allowed); `status`: Ready; `role`: valid;
//! - 1: `check` found at least one failed check; `role`: invalid role file or both role files;
//! - 2: usage error, or the command could not run (e.g. `--root` does not exist). Printed on stderr as
//!   `error: …` with `hint: …` where there is one;
//! - 3: `status`: still coming up; 4: `status`: Failed; 5: `status`: no state yet, `role`: no role file yet.

mod cli;
mod commands;
mod outcome;

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    // Usage errors exit 2 (clap's code, the same as [`outcome::EXIT_ERROR`]); --help and --version exit 0.
    let cli = cli::Cli::parse();
    match cli.command.run() {
        Ok(outcome) => outcome.exit_code(),
        Err(err) => {
            eprint!("{}", err.render());
            ExitCode::from(outcome::EXIT_ERROR)
        }
    }
}
