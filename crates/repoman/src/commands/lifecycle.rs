//! `repoman start|stop|restart`: sandbox lifecycle.

use clap::Args;

use crate::app::App;
use crate::error::{CliError, Exit};
use crate::prompt::name_or_prompt;
use repoman_sandbox::lifecycle::{self, Lifecycle};
use repoman_sandbox::session::{self, Session};

/// Start, stop or restart a sandbox.
#[derive(Debug, Args)]
pub struct LifecycleArgs {
    /// The sandbox (asked for on a terminal when missing).
    pub name: Option<String>,
    /// Stop or restart at once instead of asking the container to shut down cleanly.
    #[arg(long)]
    pub force: bool,
    /// Show what would happen without doing it.
    #[arg(long)]
    pub dry_run: bool,
}

pub fn run(app: &App, args: LifecycleArgs, action: Lifecycle) -> Result<Exit, CliError> {
    let wanted = name_or_prompt(app, args.name.clone())?;
    let s = Session::open(app.registry()?, &app.env)?;
    for w in s.drift_warnings(Some(&wanted)) {
        app.ui.warn(&w);
    }
    let t = s.target(&wanted)?;
    let name = &t.desired.name;
    if !action.needed(&t.status) {
        app.ui
            .success(&format!("`{name}` is already {}", t.status.to_lowercase()));
        return Ok(Exit::Success);
    }
    let op = action.operation(name);
    let rules = &s.estate.file.registry.policy.rules;
    if args.dry_run {
        session::preview(&app.state_read_only()?, &op, rules)?;
        app.ui.info(&format!(
            "would {} `{name}` (now {})",
            action.verb(),
            t.status.to_lowercase()
        ));
        return Ok(Exit::Success);
    }
    let state = app.state()?;
    let approval = session::authorize(&state, op, rules)?;
    lifecycle::run(&s, &t, action, args.force, &state, approval)?;
    app.ui.success(&format!("{} `{name}`", action.past()));
    Ok(Exit::Success)
}
