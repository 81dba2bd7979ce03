//! `k8s-test-json`: the shell tests' reader of the agent's JSON (see the crate docs, `src/lib.rs`).
//!
//! ```text
//! k8s-test-json status NAME [NAME…]   < `k8s-agent status --json` output   one line per NAME
//! k8s-test-json lock NAME [ARG…]      < lock.json                          the value (see `lock_field`)
//! ```
//! Exit status: 0 answered; 1 the input is not JSON of the agent's shape (nothing is printed on stdout); 2 a name
//! or argument this tool does not know.

use k8s_agent::status::StatusReport;
use k8s_test_support::{Error, lock_field, parse_lock, parse_status, status_field};
use std::io::Read;
use std::process::ExitCode;

const USAGE: &str = "usage: k8s-test-json status NAME [NAME...] < status.json\n       k8s-test-json lock NAME [ARG...] < lock.json";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(out) => {
            if !out.is_empty() {
                println!("{out}");
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("k8s-test-json: {e}");
            match e {
                Error::Parse { .. } | Error::Io(_) => ExitCode::from(1),
                Error::UnknownField { .. } | Error::BadArgument(_) => ExitCode::from(2),
            }
        }
    }
}

fn stdin() -> Result<String, Error> {
    let mut text = String::new();
    std::io::stdin()
        .read_to_string(&mut text)
        .map_err(|e| Error::Io(format!("reading stdin: {e}")))?;
    Ok(text)
}

fn run(args: &[String]) -> Result<String, Error> {
    match args {
        [cmd, names @ ..] if cmd == "status" && !names.is_empty() => {
            // A name this tool does not know is refused before the input is read (and whatever it holds).
            let empty = StatusReport::new(None, &[], None, vec![], None, 0);
            for n in names {
                status_field(&empty, n)?;
            }
            let report = parse_status(&stdin()?)?;
            let values = names
                .iter()
                .map(|n| status_field(&report, n))
                .collect::<Result<Vec<_>, _>>()?;
            Ok(values.join("\n"))
        }
        [cmd, name, rest @ ..] if cmd == "lock" => lock_field(&parse_lock(&stdin()?)?, name, rest),
        _ => Err(Error::BadArgument(USAGE.to_string())),
    }
}
