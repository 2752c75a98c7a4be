//! `repoman update`: re-apply repoman.toml and `.repoman.toml` to an existing sandbox.

use clap::Args;
use serde_json::json;

use crate::app::App;
use crate::error::{CliError, Exit};
use crate::sandbox::drift::{self, Change};
use crate::sandbox::repair;
use crate::sandbox::session::{self, Session};

/// Re-apply the registry and the repo's `.repoman.toml` to a sandbox (shows the diff first).
///
/// Profiles, bind mounts (`[[mount]]`), environment (`[env]`) and repoman's tags are brought to
/// their desired values in one change; devices added by hand are removed. An image change needs
/// the container rebuilt and is only reported. --dry-run shows the diff and changes nothing.
#[derive(Debug, Args)]
pub struct UpdateArgs {
    /// The sandbox.
    pub name: String,
    /// Show the diff without applying it.
    #[arg(long)]
    pub dry_run: bool,
}

pub fn run(app: &App, args: UpdateArgs) -> Result<Exit, CliError> {
    let s = Session::open(app.registry()?, &app.env)?;
    for w in s.drift_warnings(Some(&args.name)) {
        app.ui.warn(&w);
    }
    let t = s.target(&args.name)?;
    let inst = s
        .observed
        .instance(&args.name)
        .ok_or_else(|| CliError::failed("the sandbox vanished"))?;
    let changes = drift::diff(&t.desired, inst);
    let (apply, report): (Vec<&Change>, Vec<&Change>) =
        changes.iter().partition(|c| c.reapplicable());
    for c in &changes {
        app.ui.info(&format!("  {}", c.describe()));
    }
    let json_out = |applied: bool| -> Result<(), CliError> {
        if app.ui.json() {
            app.ui.print_json(&json!({
                "name": args.name,
                "dry_run": args.dry_run,
                "changes": changes,
                "applied": applied,
            }))?;
        }
        Ok(())
    };
    if apply.is_empty() {
        if report.is_empty() {
            app.ui.success(&format!(
                "`{}` matches its configuration: no changes",
                args.name
            ));
        } else {
            app.ui
                .warn("only the image differs; rebuilding a container is not done by `update`");
        }
        json_out(false)?;
        return Ok(Exit::Success);
    }
    let state = if args.dry_run {
        app.state_read_only()?
    } else {
        app.state()?
    };
    session::gate(
        &state,
        &session::op("sandbox.update", &args.name),
        Vec::new(),
        &s.estate.file.registry.policy.rules,
        !args.dry_run,
    )?;
    if args.dry_run {
        json_out(false)?;
        return Ok(Exit::Success);
    }
    if app.ui.can_prompt()
        && !app.ui.confirm(
            &format!("apply {} change(s) to `{}`?", apply.len(), args.name),
            "--yes",
        )?
    {
        return Err(CliError::failed("update cancelled"));
    }
    let ev = repair::reapply(&s.incus, &t.desired, &changes)?;
    state.append(ev)?;
    app.ui.success(&format!(
        "updated `{}` ({} change(s))",
        args.name,
        apply.len()
    ));
    json_out(true)?;
    Ok(Exit::Success)
}
