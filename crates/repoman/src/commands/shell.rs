//! `repoman shell`: an interactive login shell in a sandbox.

use clap::Args;
use repoman_core::process::Cmd;

use crate::app::App;
use crate::error::{CliError, Exit};
use crate::prompt::{ensure_running, name_or_prompt};
use repoman_sandbox::session::{self, Session};

/// Open an interactive login shell in a sandbox, as your user, in the repo directory.
///
/// HOME and USER are set; a stopped sandbox is started after confirmation. With `-- CMD...` the
/// command runs on a terminal instead of the shell. Runs the `incus` CLI for the terminal
/// (`incus --force-local exec --user UID --group GID --cwd REPO --env HOME=...`), argv only.
#[derive(Debug, Args)]
pub struct ShellArgs {
    /// The sandbox (asked for on a terminal when missing).
    pub name: Option<String>,
    /// A command to run instead of the login shell.
    #[arg(last = true, value_name = "CMD")]
    pub command: Vec<String>,
}

pub fn run(app: &App, args: ShellArgs) -> Result<Exit, CliError> {
    let name = name_or_prompt(app, args.name.clone())?;
    let s = Session::open(app.registry()?, &app.env)?;
    for w in s.drift_warnings(Some(&name)) {
        app.ui.warn(&w);
    }
    let t = s.target(&name)?;
    ensure_running(app, &s, &t)?;
    let command = if args.command.is_empty() {
        vec![s.login_shell(&name, t.desired.uid), "-l".to_owned()]
    } else {
        args.command.clone()
    };
    let argv = session::incus_exec_argv(&t, true, &command);
    let output = Cmd::new("incus")
        .args(crate::incus_cli::INCUS_CLI_FLAGS)
        .args(&argv)
        .env(
            "INCUS_SOCKET",
            repoman_incus::socket::resolve(&app.env).path,
        )
        .interactive()
        .output()?;
    Ok(Exit::of_child(output.status))
}
