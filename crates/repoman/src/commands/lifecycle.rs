//! `repoman start|stop|restart`: sandbox lifecycle.

use clap::Args;
use repoman_state::NewEvent;
use serde_json::json;

use crate::app::App;
use crate::error::{CliError, Exit};
use repoman_sandbox::SandboxError;
use repoman_sandbox::repair::Lifecycle;
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
    let wanted = super::update::name_or_prompt(app, args.name.clone())?;
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
    let state = if args.dry_run {
        app.state_read_only()?
    } else {
        app.state()?
    };
    let op = session::op(&format!("sandbox.{}", action.verb()), name);
    session::gate(
        &state,
        &op,
        Vec::new(),
        &s.estate.file.registry.policy.rules,
        !args.dry_run,
    )?;
    if args.dry_run {
        app.ui.info(&format!(
            "would {} `{name}` (now {})",
            action.verb(),
            t.status.to_lowercase()
        ));
        return Ok(Exit::Success);
    }
    action
        .run(&s.observed.scope, name, &t.status, args.force)
        .map_err(SandboxError::from)?;
    state.append(NewEvent::new(
        action.event(),
        format!("sandbox:{name}"),
        json!({"project": name, "from": t.status, "force": args.force}),
    ))?;
    app.ui.success(&format!(
        "{} `{name}`",
        match action {
            Lifecycle::Start => "started",
            Lifecycle::Stop => "stopped",
            Lifecycle::Restart => "restarted",
        }
    ));
    Ok(Exit::Success)
}
