//! `repoman daemon run|status|stop|install`: the per-user daemon that speaks the Groove protocol
//! (docs/daemon.md). The daemon itself lives in `repoman-groove`; this file is flags and output.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use clap::{Args, Subcommand};
use repoman_groove::{Client, ClientError, Config};
use serde_json::json;

use crate::app::App;
use crate::error::{CliError, Exit};

/// The repoman daemon: the Groove protocol (method calls and an event stream on
/// `$XDG_RUNTIME_DIR/repoman/groove.sock`), scheduled syncs (`sync_every` in repoman.toml),
/// reconcile, and one endpoint per sandbox for the agent inside it.
///
/// The CLI works the same without it; with it, nothing is done twice (the daemon takes the same
/// locks and runs the same commands). See docs/daemon.md.
///
/// Examples:
///   repoman daemon run                 run in the foreground (what the systemd unit does)
///   repoman daemon install             write a systemd user unit and print how to enable it
///   repoman daemon status --json
///   repoman daemon stop
#[derive(Debug, Subcommand)]
#[command(verbatim_doc_comment)]
pub enum DaemonCommand {
    /// Run the daemon in the foreground until SIGTERM (SIGHUP re-reads repoman.toml).
    Run(RunArgs),
    /// Whether the daemon runs, and what it is doing.
    Status(StatusArgs),
    /// Stop the daemon cleanly (in-flight work finishes or is cancelled).
    Stop(StopArgs),
    /// Write a systemd user unit for the daemon and print how to enable it.
    Install(InstallArgs),
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Do not open the per-sandbox agent endpoints.
    #[arg(long)]
    pub no_agents: bool,
    /// Tests: read "now" for the scheduler from this file (RFC 3339) and tick only on request.
    #[arg(long, hide = true, value_name = "FILE")]
    pub test_clock: Option<PathBuf>,
    /// Tests: only these kinds of scheduled jobs (comma-separated: sync, reconcile, tool-scan).
    #[arg(long, hide = true, value_name = "KINDS", value_delimiter = ',')]
    pub test_jobs: Option<Vec<String>>,
    /// Tests: the default subscriber queue, in events.
    #[arg(long, hide = true, value_name = "N")]
    pub sub_buffer: Option<usize>,
    /// Tests: requests per second (and burst) per sandbox.
    #[arg(long, hide = true, value_name = "N")]
    pub agent_rate: Option<f64>,
    /// Tests: seconds a subscriber's socket may accept nothing before it is disconnected.
    #[arg(long, hide = true, value_name = "SECS")]
    pub sub_write_timeout: Option<u64>,
}

#[derive(Debug, Args)]
pub struct StatusArgs {}

#[derive(Debug, Args)]
pub struct StopArgs {
    /// Seconds to wait for the daemon to finish.
    #[arg(long, default_value_t = 90)]
    pub timeout: u64,
}

#[derive(Debug, Args)]
pub struct InstallArgs {
    /// Print the unit instead of writing it.
    #[arg(long)]
    pub dry_run: bool,
}

pub fn run(app: &App, cmd: DaemonCommand) -> Result<Exit, CliError> {
    match cmd {
        DaemonCommand::Run(a) => run_daemon(app, a),
        DaemonCommand::Status(_) => status(app),
        DaemonCommand::Stop(a) => stop(app, a),
        DaemonCommand::Install(a) => install(app, a),
    }
}

/// A domain error as a CLI error (kind → exit code, with its hint).
fn cli_error(e: &dyn repoman_core::DomainError) -> CliError {
    use repoman_core::ErrorKind;
    let exit = match e.kind() {
        ErrorKind::Failed => Exit::Failure,
        ErrorKind::Usage => Exit::Usage,
        ErrorKind::Blocked => Exit::Blocked,
        ErrorKind::Unavailable => Exit::Unavailable,
        ErrorKind::Interrupted => Exit::Interrupted,
    };
    let err = CliError::new(exit, e.to_string());
    match e.hint() {
        Some(h) => err.with_hint(h),
        None => err,
    }
}

fn run_daemon(app: &App, a: RunArgs) -> Result<Exit, CliError> {
    let exe = std::env::current_exe()
        .map_err(|e| CliError::failed(format!("cannot find the repoman binary: {e}")))?;
    let mut cfg = Config::new(
        app.paths.clone(),
        app.env.clone(),
        exe,
        env!("CARGO_PKG_VERSION"),
    );
    cfg.agents = !a.no_agents;
    if let Some(f) = a.test_clock {
        cfg.clock = repoman_groove::schedule::SchedClock::File(f);
    }
    cfg.jobs = a.test_jobs;
    if let Some(n) = a.sub_buffer {
        cfg.limits.sub_buffer = n.max(1);
    }
    if let Some(r) = a.agent_rate {
        cfg.limits.agent_rate = r;
        cfg.limits.agent_burst = r.max(1.0);
    }
    if let Some(s) = a.sub_write_timeout {
        cfg.limits.sub_write_timeout = Duration::from_secs(s.max(1));
    }
    app.ui.info(&format!(
        "repoman daemon listening on {}",
        cfg.socket_path().display()
    ));
    repoman_groove::daemon::run(cfg).map_err(|e| cli_error(&e))?;
    app.ui.info("repoman daemon stopped");
    Ok(Exit::Success)
}

fn status(app: &App) -> Result<Exit, CliError> {
    let socket = repoman_groove::core::socket_path(&app.paths);
    let answer = Client::connect(&socket).and_then(|mut c| c.call("daemon.status", json!({})));
    match answer {
        Ok(v) => {
            if app.ui.json() {
                app.ui.print_json(&json!({"running": true, "status": v}))?;
            } else {
                app.ui.data(&format!(
                    "running\tpid {}\tsince {}\tsocket {}\thead {}\tsubscribers {}\tconnections {}",
                    v["pid"],
                    v["started_at"].as_str().unwrap_or(""),
                    v["socket"].as_str().unwrap_or(""),
                    v["head"],
                    v["subscribers"],
                    v["connections"]
                ))?;
            }
            Ok(Exit::Success)
        }
        Err(e) => {
            let held = repoman_groove::daemon::lock_held(&app.paths);
            let state = if held { "not answering" } else { "not running" };
            if app.ui.json() {
                app.ui.print_json(
                    &json!({"running": held, "answering": false, "error": e.to_string()}),
                )?;
            } else {
                app.ui.data(state)?;
            }
            if held {
                app.ui.hint(&format!(
                    "the daemon holds its lock but does not answer on {}",
                    socket.display()
                ));
            } else {
                app.ui
                    .hint("start it with `repoman daemon run` (or `repoman daemon install`)");
            }
            Ok(Exit::Failure)
        }
    }
}

fn stop(app: &App, a: StopArgs) -> Result<Exit, CliError> {
    let socket = repoman_groove::core::socket_path(&app.paths);
    match Client::connect(&socket).and_then(|mut c| c.call("daemon.stop", json!({}))) {
        Ok(_) => {}
        Err(ClientError::Connect { .. }) if !repoman_groove::daemon::lock_held(&app.paths) => {
            app.ui.info("the daemon is not running");
            if app.ui.json() {
                app.ui
                    .print_json(&json!({"stopped": false, "running": false}))?;
            }
            return Ok(Exit::Success);
        }
        Err(ClientError::Connect { .. }) => {
            // It holds the lock but does not answer: ask with SIGTERM.
            if let Some(pid) = repoman_groove::daemon::pid(&app.paths).and_then(rustix_pid) {
                let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
            }
        }
        Err(e) => return Err(cli_error(&e)),
    }
    let deadline = Instant::now() + Duration::from_secs(a.timeout);
    while repoman_groove::daemon::lock_held(&app.paths) {
        if Instant::now() > deadline {
            return Err(CliError::failed(format!(
                "the daemon did not stop within {} s",
                a.timeout
            ))
            .with_hint("`repoman daemon status` shows whether it still runs"));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    if app.ui.json() {
        app.ui.print_json(&json!({"stopped": true}))?;
    } else {
        app.ui.success("the daemon stopped");
    }
    Ok(Exit::Success)
}

fn rustix_pid(raw: i32) -> Option<rustix::process::Pid> {
    rustix::process::Pid::from_raw(raw)
}

fn install(app: &App, a: InstallArgs) -> Result<Exit, CliError> {
    let exe = std::env::current_exe()
        .map_err(|e| CliError::failed(format!("cannot find the repoman binary: {e}")))?;
    let unit = repoman_groove::daemon::systemd_unit(&exe, &app.paths);
    let path = repoman_groove::daemon::unit_path(&app.env)
        .ok_or_else(|| CliError::usage("cannot find the systemd user directory: HOME is unset"))?;
    if a.dry_run {
        if app.ui.json() {
            app.ui
                .print_json(&json!({"path": path, "unit": unit, "written": false}))?;
        } else {
            app.ui.info(&format!("would write {}:", path.display()));
            app.ui.data(unit.trim_end())?;
        }
        return Ok(Exit::Success);
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|e| CliError::failed(format!("cannot create {}: {e}", dir.display())))?;
    }
    repoman_core::fs::write_atomic(&path, unit.as_bytes(), Some(0o644)).map_err(CliError::from)?;
    if app.ui.json() {
        app.ui
            .print_json(&json!({"path": path, "unit": unit, "written": true}))?;
    } else {
        app.ui.data(&path.display().to_string())?;
        app.ui.success(&format!("wrote {}", path.display()));
        app.ui.hint("enable and start it: systemctl --user daemon-reload && systemctl --user enable --now repoman.service");
        app.ui
            .hint("to keep it running while you are logged out: loginctl enable-linger $USER");
    }
    Ok(Exit::Success)
}
