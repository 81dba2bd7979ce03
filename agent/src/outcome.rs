//! How a `k8s-agent` command comes out: the [`Outcome`] of a command that ran to the end (its exit code), the
//! [`CommandError`] of one that could not run (exit [`EXIT_ERROR`], rendered by `main` as `error: …` /
//! `caused by: …` / `hint: …` on stderr), and the two ways a command prints ([`render`], [`print_stdout`]).
//! Used by the clap types ([`crate::cli`]) and the commands ([`crate::commands`]); depends on neither.

use std::io::Write as _;
use std::process::ExitCode;

/// Exit code for a usage error or a command that could not run (clap uses it for usage errors too).
pub const EXIT_ERROR: u8 = 2;

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
