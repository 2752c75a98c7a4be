//! The one terminal implementation of [`repoman_core::Progress`], used by every command that runs
//! long domain work (sandboxes, backups, tools).
//!
//! Steps are message lines on stderr (dropped by `--quiet` and `--json`, like
//! [`Ui::info`](crate::ui::Ui::info)). Work begun within a step is an indicatif bar when its total
//! is known, else a spinner, counting items or bytes; [`Progress::detail`] text (Incus'
//! "rootfs: 45% (12.3MB/s)") is shown next to it. Bars and spinners appear only when stderr is a
//! terminal and neither `--quiet`, `--json` nor `--no-progress` was given; without them the work
//! is silent and only the step lines remain.

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use repoman_core::{Progress, Unit};

/// Progress on the terminal. Cheap to share (`Arc`); calls may come from any thread.
#[derive(Debug)]
pub struct CliProgress {
    multi: MultiProgress,
    /// Draw bars and spinners.
    bars: bool,
    /// Print step lines.
    messages: bool,
    current: Mutex<Option<ProgressBar>>,
}

impl CliProgress {
    /// A reporter drawing into `multi` (the one the [`Ui`](crate::ui::Ui) suspends for messages).
    pub fn new(multi: MultiProgress, bars: bool, messages: bool) -> Arc<CliProgress> {
        Arc::new(CliProgress {
            multi,
            bars,
            messages,
            current: Mutex::new(None),
        })
    }

    fn finish_current(&self) {
        if let Ok(mut cur) = self.current.lock()
            && let Some(pb) = cur.take()
        {
            pb.finish_and_clear();
        }
    }

    fn with_bar(&self, f: impl FnOnce(&ProgressBar)) {
        if let Ok(cur) = self.current.lock()
            && let Some(pb) = cur.as_ref()
        {
            f(pb);
        }
    }
}

fn style(total: Option<u64>, unit: Unit) -> ProgressStyle {
    let template = match (total, unit) {
        (Some(_), Unit::Bytes) => {
            "{spinner:.green} {prefix} [{bar:30.cyan/blue}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta} {msg}"
        }
        (Some(_), Unit::Items) => {
            "{spinner:.green} {prefix} [{bar:30.cyan/blue}] {pos}/{len} eta {eta} {msg}"
        }
        (None, Unit::Bytes) => "{spinner:.green} {prefix} {bytes} {bytes_per_sec} {msg}",
        (None, Unit::Items) => "{spinner:.green} {prefix} {msg}",
    };
    ProgressStyle::with_template(template)
        .unwrap_or_else(|_| ProgressStyle::default_spinner())
        .progress_chars("=> ")
}

impl Progress for CliProgress {
    fn step(&self, message: &str) {
        if self.messages {
            self.multi.suspend(|| {
                let _ = writeln!(std::io::stderr().lock(), "{message}");
            });
        }
    }

    fn begin(&self, label: &str, total: Option<u64>, unit: Unit) {
        self.finish_current();
        if !self.bars {
            return;
        }
        let pb = match total {
            Some(n) => ProgressBar::new(n),
            None => ProgressBar::new_spinner(),
        }
        .with_style(style(total, unit))
        .with_prefix(label.to_owned());
        let pb = self.multi.add(pb);
        pb.enable_steady_tick(Duration::from_millis(120));
        if let Ok(mut cur) = self.current.lock() {
            *cur = Some(pb);
        }
    }

    fn position(&self, done: u64) {
        self.with_bar(|pb| pb.set_position(done));
    }

    fn detail(&self, text: &str) {
        self.with_bar(|pb| pb.set_message(text.to_owned()));
    }

    fn end(&self) {
        self.finish_current();
    }
}

impl Drop for CliProgress {
    fn drop(&mut self) {
        self.finish_current();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use indicatif::ProgressDrawTarget;

    fn hidden(bars: bool) -> Arc<CliProgress> {
        CliProgress::new(
            MultiProgress::with_draw_target(ProgressDrawTarget::hidden()),
            bars,
            false,
        )
    }

    fn current(p: &CliProgress) -> Option<(u64, Option<u64>, String, String)> {
        p.current.lock().unwrap().as_ref().map(|pb| {
            (
                pb.position(),
                pb.length(),
                pb.prefix().to_string(),
                pb.message().to_string(),
            )
        })
    }

    #[test]
    fn work_becomes_one_bar_that_moves_and_ends() {
        let p = hidden(true);
        p.begin("rootfs", None, Unit::Bytes);
        p.position(4096);
        p.detail("rootfs: 45% (12.3MB/s)");
        assert_eq!(
            current(&p),
            Some((4096, None, "rootfs".into(), "rootfs: 45% (12.3MB/s)".into()))
        );
        // A second begin replaces the first bar.
        p.begin("files", Some(10), Unit::Items);
        p.position(3);
        assert_eq!(
            current(&p),
            Some((3, Some(10), "files".into(), String::new()))
        );
        p.end();
        assert_eq!(current(&p), None);
        // Calls outside begun work are ignored.
        p.position(5);
        p.detail("late");
        assert_eq!(current(&p), None);
    }

    #[test]
    fn without_bars_nothing_is_drawn() {
        let p = hidden(false);
        p.begin("rootfs", Some(100), Unit::Bytes);
        p.position(50);
        assert_eq!(current(&p), None);
        p.end();
    }
}
