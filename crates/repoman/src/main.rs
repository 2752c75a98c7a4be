//! The `repoman` binary: parse, build the [`App`], run one command, map the result to an exit
//! code. This is the only place that exits the process.

mod app;
mod cli;
mod commands;
mod decision;
mod error;
mod format;
mod incus_cli;
mod progress;
mod prompt;
mod targets;
mod trust_review;
mod ui;

use std::process::ExitCode;

use clap::Parser;
use repoman_core::{Cancel, Clock, Env, Paths};

use crate::app::App;
use crate::cli::{Cli, LogFormat};
use crate::error::{CliError, Exit};
use crate::ui::{Ui, UiConfig};

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            // clap: --help/--version are successes; everything else is a usage error (2).
            return ExitCode::from(if e.use_stderr() {
                Exit::Usage.code()
            } else {
                0
            });
        }
    };
    let env = Env::capture();
    let ui = Ui::new(UiConfig {
        json: cli.global.json,
        quiet: cli.global.quiet,
        no_progress: cli.global.no_progress,
        color: cli.global.color,
        no_color_env: env.is_set("NO_COLOR"),
        yes: cli.global.yes,
        no_input: cli.global.no_input,
    });
    // Tracing lines follow the same colour decision as repoman's own messages on stderr.
    init_tracing(&env, cli.global.log_format, ui.color_stderr());
    let cancel = Cancel::new();
    install_signal_handlers(&cancel);

    let result = Paths::resolve(&env).map_err(CliError::from).map(|paths| {
        let app = App {
            env,
            paths,
            ui,
            clock: Clock::system(),
            cancel,
            settings: std::sync::OnceLock::new(),
        };
        let span = tracing::info_span!("command", name = cli.command.name());
        let _enter = span.enter();
        let out = commands::run(&app, cli.command);
        (app, out)
    });
    let (exit, ui) = match result {
        Ok((app, Ok(exit))) => (exit, Some(app.ui)),
        Ok((app, Err(err))) => {
            if !err.message.is_empty() {
                app.ui.error(&err);
            }
            (err.exit, Some(app.ui))
        }
        Err(err) => {
            let _ = ui_fallback(&err);
            (err.exit, None)
        }
    };
    drop(ui);
    ExitCode::from(exit.code())
}

fn ui_fallback(err: &CliError) -> std::io::Result<()> {
    use std::io::Write;
    writeln!(std::io::stderr(), "error: {err}")
}

/// First Ctrl-C (or SIGTERM) asks the running command to stop cleanly; a second one while the
/// first is pending kills the process groups of repoman's children (rsync, incus, git) and exits
/// at once with 130: the clean stop may still be in its grace period, and nothing of it may
/// outlive repoman. (A handler thread, not a signal handler: killing needs no async-signal-safe
/// code.)
#[allow(
    clippy::exit,
    clippy::disallowed_methods,
    reason = "the second Ctrl-C is the one exit that cannot wait for main to return"
)]
fn install_signal_handlers(cancel: &Cancel) {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let Ok(mut signals) = signal_hook::iterator::Signals::new([SIGINT, SIGTERM]) else {
        // Without handlers the default action applies: the process dies, which setpriv's
        // pdeathsig turns into a SIGTERM for rsync.
        return;
    };
    let cancel = cancel.clone();
    std::thread::spawn(move || {
        for _ in signals.forever() {
            if cancel.is_cancelled() {
                repoman_core::process::kill_live_groups();
                repoman_core::process::run_hard_exit_hooks();
                std::process::exit(130);
            }
            cancel.cancel();
        }
    });
}

fn init_tracing(env: &Env, format: LogFormat, ansi: bool) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_new(env.get("REPOMAN_LOG").unwrap_or("warn"))
        .unwrap_or_else(|_| EnvFilter::new("warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .try_init(),
        LogFormat::Text => builder.with_target(false).try_init(),
    };
}
