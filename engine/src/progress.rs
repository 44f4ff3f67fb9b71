//! Progress of long work for a person at a terminal: a bar where the amount of work is
//! known, a spinner naming the step where it is not. Off unless asked for, and even then
//! drawn only when stderr is a terminal: logs, pipes, tests and a server under a
//! supervisor see nothing extra.

use std::borrow::Cow;
use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

/// Whether progress is shown; shared, so a server can show its start-up and then stop.
#[derive(Debug, Default)]
pub struct Progress {
    shown: AtomicBool,
}

impl Progress {
    /// Shown when stderr is a terminal.
    pub fn on_terminal() -> Self {
        let progress = Self::default();
        progress.show(true);
        progress
    }

    /// Shows progress from now on (where stderr is a terminal), or stops showing it.
    pub fn show(&self, shown: bool) {
        self.shown
            .store(shown && std::io::stderr().is_terminal(), Ordering::Relaxed);
    }

    /// A bar over `len` units of work, called `what`.
    pub fn bar(&self, len: u64, what: &'static str) -> ProgressBar {
        if !self.shown.load(Ordering::Relaxed) {
            return ProgressBar::hidden();
        }
        let bar = ProgressBar::new(len).with_message(what);
        bar.set_style(
            ProgressStyle::with_template(
                "{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} {msg} (eta {eta})",
            )
            .expect("a valid template"),
        );
        bar.enable_steady_tick(Duration::from_millis(200));
        bar
    }

    /// A spinner saying which step is under way, for work of unknown length.
    pub fn step(&self, message: impl Into<Cow<'static, str>>) -> ProgressBar {
        if !self.shown.load(Ordering::Relaxed) {
            return ProgressBar::hidden();
        }
        let spinner = ProgressBar::new_spinner().with_message(message);
        spinner.set_style(
            ProgressStyle::with_template("{spinner} [{elapsed_precise}] {msg}")
                .expect("a valid template"),
        );
        spinner.enable_steady_tick(Duration::from_millis(200));
        spinner
    }
}
