//! What the user sees while a build runs: progress bars on a terminal, plain lines otherwise (CI logs).
//!
//! This is the printer for people; diagnostics go through `tracing`.

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;

/// Where progress goes.
#[derive(Clone)]
pub enum Progress {
    /// Bars on a terminal.
    Bars(MultiProgress),
    /// One line per event on stderr.
    Lines,
    /// Nothing (tests, `--quiet`).
    Quiet,
}

impl Progress {
    /// Bars when stderr is a terminal, lines otherwise; nothing when `quiet`.
    pub fn for_stderr(quiet: bool) -> Progress {
        if quiet {
            Progress::Quiet
        } else if std::io::stderr().is_terminal() {
            Progress::Bars(MultiProgress::with_draw_target(ProgressDrawTarget::stderr()))
        } else {
            Progress::Lines
        }
    }

    /// Prints one event line.
    pub fn line(&self, text: &str) {
        match self {
            Progress::Bars(multi) => {
                let _ = multi.println(text);
            }
            Progress::Lines => eprintln!("{text}"),
            Progress::Quiet => {}
        }
    }

    /// A byte progress bar for a download (hidden unless on a terminal).
    pub fn bar(&self, label: &str, total: Option<u64>) -> ProgressBar {
        match self {
            Progress::Bars(multi) => {
                let bar = match total {
                    Some(t) => ProgressBar::new(t),
                    None => ProgressBar::no_length(),
                };
                let style = ProgressStyle::with_template(
                    "{prefix:>24} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} {eta}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> ");
                let bar = multi.add(bar.with_style(style));
                bar.set_prefix(label.to_string());
                bar
            }
            Progress::Lines | Progress::Quiet => ProgressBar::hidden(),
        }
    }
}
