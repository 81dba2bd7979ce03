//! `k8s-agent`: the on-host agent of the Kubernetes node image. A thin binary over the `k8s_agent` library; the
//! command-line types live in [`cli`].
//!
//! Subcommands: `check [--root DIR] [--json]` runs the image's host checks against a tree (default `/`).
//!
//! Exit codes (also at the end of `--help`):
//! - 0: success — for `check`, every check passed (warnings allowed);
//! - 1: `check` found at least one failed check;
//! - 2: usage error, or the command could not run (e.g. `--root` does not exist). Printed on stderr as
//!   `error: …` with `hint: …` where there is one.

mod cli;

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    // Usage errors exit 2 (clap's code, the same as [`cli::EXIT_ERROR`]); --help and --version exit 0.
    let cli = cli::Cli::parse();
    match cli.command.run() {
        Ok(outcome) => outcome.exit_code(),
        Err(err) => {
            eprint!("{}", err.render());
            ExitCode::from(cli::EXIT_ERROR)
        }
    }
}
