//! `repoman remove`: destroy a sandbox; the repo and the backup are never touched.

use clap::Args;
use serde_json::json;

use crate::app::App;
use crate::error::{CliError, Exit};
use crate::prompt::name_or_prompt;
use repoman_sandbox::remove;
use repoman_sandbox::session::{self, Session};

/// Destroy a project's sandbox and unregister the project, after confirmation.
///
/// The repo directory and the backup are never touched. With --keep-repo the project stays
/// registered without a sandbox (backups, realms and toolchains still apply; `repoman new NAME`
/// adds a sandbox again).
#[derive(Debug, Args)]
pub struct RemoveArgs {
    /// The project (asked for on a terminal when missing).
    pub name: Option<String>,
    /// Keep the project registered (without a sandbox).
    #[arg(long)]
    pub keep_repo: bool,
    /// Show what would happen without doing it.
    #[arg(long)]
    pub dry_run: bool,
}

pub fn run(app: &App, args: RemoveArgs) -> Result<Exit, CliError> {
    let wanted = name_or_prompt(app, args.name.clone())?;
    let s = Session::open(app.registry()?, &app.env)?;
    for w in s.drift_warnings(Some(&wanted)) {
        app.ui.warn(&w);
    }
    let name = wanted.as_str();
    let plan = remove::plan_remove(&s, name, args.keep_repo)?;
    let lines = plan.describe();
    app.ui.info(if args.dry_run {
        "remove would:"
    } else {
        "remove will:"
    });
    for p in &lines {
        app.ui.info(&format!("  {p}"));
    }
    let out = |done: bool| -> Result<(), CliError> {
        if app.ui.json() {
            app.ui.print_json(
                &json!({"name": name, "dry_run": args.dry_run, "removed": done, "plan": lines}),
            )?;
        }
        Ok(())
    };
    let rules = &s.estate.file.registry.policy.rules;
    if args.dry_run {
        session::preview(&app.state_read_only()?, &plan.operation(), rules)?;
        out(false)?;
        return Ok(Exit::Success);
    }
    let state = app.state()?;
    let approval = session::authorize(&state, plan.operation(), rules)?;
    if !app
        .ui
        .confirm(&format!("remove the sandbox `{name}`?"), "--yes")?
    {
        return Err(CliError::failed("remove cancelled"));
    }
    remove::execute_remove(&s, &plan, &app.paths.config_file, &state, approval)?;
    app.ui.success(&format!(
        "removed `{name}`{}; the repo was left untouched",
        if plan.keep_repo {
            " (still registered, without a sandbox)"
        } else {
            ""
        }
    ));
    out(true)?;
    Ok(Exit::Success)
}
