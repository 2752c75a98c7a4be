//! The printer: stdout carries data only; messages, warnings, hints and progress go to stderr.
//!
//! Rules (DESIGN.md §5): `--json` switches data to stable JSON and silences decoration;
//! `--quiet` drops info/success messages (warnings and errors stay); progress bars appear only on
//! a terminal and never with `--no-progress`, `--quiet` or `--json`; colour follows `--color`,
//! then `NO_COLOR`, then whether stderr/stdout is a terminal; prompts happen only when stdin and
//! stderr are terminals and neither `--yes` nor `--no-input` was given.

use std::io::{self, IsTerminal, Write};
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Serialize;

use crate::error::{CliError, Exit};

/// `--color` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ColorChoice {
    Auto,
    Always,
    Never,
}

/// Output settings resolved from the global flags and the environment.
#[derive(Debug, Clone)]
pub struct UiConfig {
    pub json: bool,
    pub quiet: bool,
    pub no_progress: bool,
    pub color: ColorChoice,
    pub no_color_env: bool,
    pub yes: bool,
    pub no_input: bool,
}

/// The printer handed to every command.
#[derive(Debug)]
pub struct Ui {
    cfg: UiConfig,
    color_err: bool,
    interactive: bool,
    progress_enabled: bool,
    multi: MultiProgress,
}

/// A styled fragment kind.
#[derive(Debug, Clone, Copy)]
pub enum Tone {
    Good,
    Bad,
    Warn,
    Dim,
}

impl Ui {
    pub fn new(cfg: UiConfig) -> Self {
        let err_tty = io::stderr().is_terminal();
        let color = |tty: bool| match cfg.color {
            ColorChoice::Always => true,
            ColorChoice::Never => false,
            ColorChoice::Auto => tty && !cfg.no_color_env,
        };
        let interactive = io::stdin().is_terminal() && err_tty && !cfg.yes && !cfg.no_input;
        let progress_enabled = err_tty && !cfg.no_progress && !cfg.quiet && !cfg.json;
        let multi = MultiProgress::with_draw_target(if progress_enabled {
            ProgressDrawTarget::stderr_with_hz(10)
        } else {
            ProgressDrawTarget::hidden()
        });
        Self {
            color_err: color(err_tty),
            interactive,
            progress_enabled,
            multi,
            cfg,
        }
    }

    /// Whether `--json` was given.
    pub fn json(&self) -> bool {
        self.cfg.json
    }

    /// Whether stderr gets ANSI colours (`--color`, then `NO_COLOR`, then whether stderr is a
    /// terminal); tracing lines follow it too.
    pub fn color_stderr(&self) -> bool {
        self.color_err
    }

    /// Whether the user can be asked questions.
    pub fn can_prompt(&self) -> bool {
        self.interactive
    }

    /// Colour a fragment for stderr.
    pub fn paint(&self, tone: Tone, text: &str) -> String {
        paint(self.color_err, tone, text)
    }

    /// Write data (a line of text) to stdout.
    pub fn data(&self, text: &str) -> Result<(), CliError> {
        let mut out = io::stdout().lock();
        writeln!(out, "{text}")
            .and_then(|_| out.flush())
            .map_err(stdout_error)
    }

    /// Write a value as pretty JSON to stdout (the `--json` contract).
    pub fn print_json<T: Serialize + ?Sized>(&self, value: &T) -> Result<(), CliError> {
        let text = serde_json::to_string_pretty(value)
            .map_err(|e| CliError::failed(format!("cannot encode JSON output: {e}")))?;
        self.data(&text)
    }

    /// Write one JSON value per line (for streams such as `log --follow --json`).
    pub fn print_json_line<T: Serialize + ?Sized>(&self, value: &T) -> Result<(), CliError> {
        let text = serde_json::to_string(value)
            .map_err(|e| CliError::failed(format!("cannot encode JSON output: {e}")))?;
        self.data(&text)
    }

    fn message(&self, text: &str) {
        // Suspend progress bars so a message never tears a bar.
        self.multi.suspend(|| {
            let _ = writeln!(io::stderr().lock(), "{text}");
        });
    }

    /// A progress/status message (dropped by `--quiet` and `--json`).
    pub fn info(&self, text: &str) {
        if !self.cfg.quiet && !self.cfg.json {
            self.message(text);
        }
    }

    /// A success message (dropped by `--quiet` and `--json`).
    pub fn success(&self, text: &str) {
        if !self.cfg.quiet && !self.cfg.json {
            let mark = self.paint(Tone::Good, "✓");
            self.message(&format!("{mark} {text}"));
        }
    }

    /// A warning (always shown).
    pub fn warn(&self, text: &str) {
        let w = self.paint(Tone::Warn, "warning:");
        self.message(&format!("{w} {text}"));
    }

    /// A hint (always shown, it tells the user what to do next).
    pub fn hint(&self, text: &str) {
        let h = self.paint(Tone::Dim, "hint:");
        self.message(&format!("{h} {text}"));
    }

    /// Print an error with its causes and hint.
    pub fn error(&self, err: &CliError) {
        let mut text = format!("{} {}", self.paint(Tone::Bad, "error:"), err.message);
        for d in &err.details {
            text.push_str(&format!("\n  {d}"));
        }
        for c in &err.causes {
            text.push_str(&format!("\n  {} {c}", self.paint(Tone::Dim, "caused by:")));
        }
        if let Some(h) = &err.hint {
            text.push_str(&format!("\n{} {h}", self.paint(Tone::Dim, "hint:")));
        }
        self.message(&text);
    }

    /// The progress reporter for domain work ([`crate::progress::CliProgress`]): step lines
    /// like [`Ui::info`], bars only when progress bars are on.
    pub fn progress(&self) -> std::sync::Arc<crate::progress::CliProgress> {
        crate::progress::CliProgress::new(
            self.multi.clone(),
            self.progress_enabled,
            !self.cfg.quiet && !self.cfg.json,
        )
    }

    /// A progress bar for `len` units of work (hidden when progress is off).
    pub fn progress_bar(&self, len: u64, message: &str, bytes: bool) -> ProgressBar {
        if !self.progress_enabled {
            return ProgressBar::hidden();
        }
        let template = if bytes {
            "{spinner:.green} {msg:20!} [{bar:30.cyan/blue}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}"
        } else {
            "{spinner:.green} {msg:20!} [{bar:30.cyan/blue}] {pos}/{len} eta {eta}"
        };
        let style = ProgressStyle::with_template(template)
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> ");
        let pb = self.multi.add(
            ProgressBar::new(len)
                .with_style(style)
                .with_message(message.to_owned()),
        );
        pb.enable_steady_tick(Duration::from_millis(120));
        pb
    }

    /// Ask a yes/no question. Without a terminal (or with `--no-input`) this is an error that
    /// tells the user which flag answers it; `--yes` answers yes.
    pub fn confirm(&self, prompt: &str, flag_hint: &str) -> Result<bool, CliError> {
        if self.cfg.yes {
            return Ok(true);
        }
        if !self.interactive {
            return Err(CliError::usage(format!(
                "{prompt}: confirmation needed but no terminal to ask on"
            ))
            .with_hint(format!("pass {flag_hint} to confirm non-interactively")));
        }
        self.multi
            .suspend(|| {
                dialoguer::Confirm::new()
                    .with_prompt(prompt)
                    .default(false)
                    .interact()
            })
            .map_err(prompt_error)
    }

    /// Ask a yes/no question on the terminal, ignoring `--yes` (for decisions `--yes` must
    /// never make, like trusting a file the sandbox wrote). Without a terminal: an error.
    pub fn ask_on_terminal(&self, prompt: &str) -> Result<bool, CliError> {
        if !self.interactive {
            return Err(CliError::usage(format!(
                "{prompt}: needs an answer on a terminal"
            )));
        }
        self.multi
            .suspend(|| {
                dialoguer::Confirm::new()
                    .with_prompt(prompt)
                    .default(false)
                    .interact()
            })
            .map_err(prompt_error)
    }

    /// Ask for a line of text (wizard mode). Only call when [`Ui::can_prompt`] is true.
    pub fn input(&self, prompt: &str, default: Option<&str>) -> Result<String, CliError> {
        if !self.interactive {
            return Err(CliError::usage(format!("missing value for {prompt}")));
        }
        self.multi
            .suspend(|| {
                let mut i = dialoguer::Input::<String>::new().with_prompt(prompt);
                if let Some(d) = default {
                    i = i.default(d.to_owned());
                }
                i.interact_text()
            })
            .map_err(prompt_error)
    }
}

impl Ui {
    /// Ask for a line of text until `validate` accepts it: an invalid answer prints the
    /// validation message and asks again (the wizard never aborts on a typo). Only call when
    /// [`Ui::can_prompt`] is true.
    pub fn input_valid<F>(
        &self,
        prompt: &str,
        default: Option<&str>,
        validate: F,
    ) -> Result<String, CliError>
    where
        F: Fn(&str) -> Result<(), String>,
    {
        if !self.interactive {
            return Err(CliError::usage(format!("missing value for {prompt}")));
        }
        self.multi
            .suspend(|| {
                let mut i = dialoguer::Input::<String>::new()
                    .with_prompt(prompt)
                    .validate_with(|s: &String| validate(s));
                if let Some(d) = default {
                    i = i.default(d.to_owned());
                }
                i.interact_text()
            })
            .map_err(prompt_error)
    }
}

fn prompt_error(e: dialoguer::Error) -> CliError {
    match e {
        dialoguer::Error::IO(io) if io.kind() == io::ErrorKind::Interrupted => {
            CliError::interrupted()
        }
        other => CliError::failed(format!("prompt failed: {other}")),
    }
}

fn stdout_error(e: io::Error) -> CliError {
    if e.kind() == io::ErrorKind::BrokenPipe {
        // `repoman log | head`: the reader left; exit quietly.
        CliError::new(Exit::Success, "")
    } else {
        CliError::failed(format!("cannot write to stdout: {e}"))
    }
}

fn paint(enabled: bool, tone: Tone, text: &str) -> String {
    if !enabled {
        return text.to_owned();
    }
    let code = match tone {
        Tone::Good => "32",
        Tone::Bad => "1;31",
        Tone::Warn => "33",
        Tone::Dim => "2",
    };
    format!("\x1b[{code}m{text}\x1b[0m")
}
