//! `repoman exec`: run a command in a sandbox, streaming its output, exiting with its code.

use std::ffi::OsStr;
use std::os::unix::process::CommandExt;
use std::process::Stdio;

use clap::Args;
use repoman_core::process::resolve_program;

use crate::app::App;
use crate::error::{CliError, Exit};
use crate::prompt::{ensure_running, name_or_prompt};
use repoman_sandbox::session::{self, Session};

/// Run a command in a sandbox as your user, in the repo directory, and exit with its status.
///
/// No terminal is allocated and stdin is empty; stdout and stderr stream as the command writes
/// them. A stopped sandbox is started after confirmation (or with --yes). repoman then replaces
/// itself with the `incus` CLI (`incus --force-local exec --mode non-interactive --user UID --group GID --cwd
/// REPO`, argv only), so the exit status is exactly the command's.
#[derive(Debug, Args)]
pub struct ExecArgs {
    /// The sandbox (asked for on a terminal when missing).
    pub name: Option<String>,
    /// The command and its arguments (after `--`).
    #[arg(last = true, required = true, value_name = "CMD")]
    pub command: Vec<String>,
}

pub fn run(app: &App, args: ExecArgs) -> Result<Exit, CliError> {
    let name = name_or_prompt(app, args.name.clone())?;
    let s = Session::open(app.registry()?, &app.env)?;
    for w in s.drift_warnings(Some(&name)) {
        app.ui.warn(&w);
    }
    let t = s.target(&name)?;
    ensure_running(app, &s, &t)?;
    let argv = session::incus_exec_argv(&t, false, &args.command);
    // repoman's part is done (reconciled, started, recorded); the process becomes `incus exec`, so
    // output streams straight to our stdout/stderr and the command's exit code is ours, exactly.
    let program = resolve_program(OsStr::new("incus"), app.env.get_os("PATH"))?;
    let err = std::process::Command::new(&program)
        .args(crate::incus_cli::INCUS_CLI_FLAGS)
        .args(&argv)
        .env(
            "INCUS_SOCKET",
            repoman_incus::socket::resolve(&app.env).path,
        )
        .stdin(Stdio::null())
        .exec();
    Err(CliError::failed(format!(
        "cannot run {}: {err}",
        program.display()
    )))
}
