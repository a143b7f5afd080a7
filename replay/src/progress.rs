//! Progress bars for long runs, drawn with `indicatif` on stderr — and only when
//! stderr is a terminal, so nothing ever mixes into the JSON on stdout or into a
//! log file.

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Whether (and where) the tools draw progress. Cheap to clone.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Progress {
    draw: bool,
}

impl Progress {
    /// No progress bars (tests, libraries, pipes).
    pub fn hidden() -> Self {
        Progress { draw: false }
    }

    /// Bars on stderr when stderr is a terminal; hidden otherwise.
    pub fn stderr() -> Self {
        Progress {
            draw: std::io::stderr().is_terminal(),
        }
    }

    /// Whether bars are drawn.
    pub fn is_drawn(&self) -> bool {
        self.draw
    }

    /// A bar of `len` steps labelled `label` (a no-op when hidden).
    pub(crate) fn bar(&self, len: u64, label: &'static str) -> Bar {
        if !self.draw {
            return Bar(None);
        }
        let bar = ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::stderr());
        let style = ProgressStyle::with_template(
            "{prefix:>10} [{elapsed_precise}] {wide_bar} {human_pos}/{human_len} ({per_sec}, eta {eta})",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar());
        bar.set_style(style);
        bar.set_prefix(label);
        bar.enable_steady_tick(Duration::from_millis(250));
        Bar(Some(bar))
    }
}

/// One progress bar; every method is a no-op when progress is hidden.
pub(crate) struct Bar(Option<ProgressBar>);

impl Bar {
    /// Sets the position.
    pub(crate) fn set(&self, pos: u64) {
        if let Some(b) = &self.0 {
            b.set_position(pos);
        }
    }

    /// Sets the length (when it becomes known).
    pub(crate) fn set_len(&self, len: u64) {
        if let Some(b) = &self.0 {
            b.set_length(len);
        }
    }
}

impl Drop for Bar {
    fn drop(&mut self) {
        if let Some(b) = &self.0 {
            b.finish_and_clear();
        }
    }
}
