//! `repoman update`: re-apply repoman.toml and `.repoman.toml` to an existing sandbox.

use clap::Args;
use serde_json::json;

use crate::app::App;
use crate::error::{CliError, Exit};
use crate::prompt::name_or_prompt;
use repoman_sandbox::session::{self, Session};
use repoman_sandbox::update::{self, UpdatePlan};

/// Re-apply the registry and the repo's `.repoman.toml` to a sandbox (shows the diff first).
///
/// Only the trusted version of `.repoman.toml` is applied: when the file changed since it was
/// trusted (`repoman trust NAME`), the last trusted version is, and the change is shown.
/// Profiles, bind mounts (`[[mount]]`), environment (`[env]`) and repoman's tags are brought to
/// their desired values in one change; devices added by hand are removed. A different image needs
/// --rebuild: the container's root filesystem is replaced from the new image (after
/// confirmation; the repo and extra mounts are bind mounts and are not touched). Security drift
/// (an old `shift=true` mount, a missing `raw.idmap`, missing resource limits, the guest API on)
/// is marked `[security: ...]` in the diff; a running sandbox whose `raw.idmap` or guest API
/// changes is restarted. --dry-run shows the diff and changes nothing.
#[derive(Debug, Args)]
pub struct UpdateArgs {
    /// The sandbox (asked for on a terminal when missing).
    pub name: Option<String>,
    /// Also rebuild the container when its image differs (replaces its root filesystem).
    #[arg(long)]
    pub rebuild: bool,
    /// Show the diff without applying it.
    #[arg(long)]
    pub dry_run: bool,
}

fn json_out(
    app: &App,
    plan: &UpdatePlan,
    dry_run: bool,
    applied: bool,
    untrusted: &[repoman_state::TrustCheck],
) -> Result<(), CliError> {
    if app.ui.json() {
        app.ui.print_json(&json!({
            "name": plan.name,
            "config_trust": untrusted,
            "dry_run": dry_run,
            "changes": repoman_sandbox::drift::labeled(&plan.changes),
            "security": plan.changes.iter().any(|c| c.security().is_some()),
            "rebuild": plan.rebuild,
            "restart": plan.restart,
            "applied": applied,
        }))?;
    }
    Ok(())
}

pub fn run(app: &App, args: UpdateArgs) -> Result<Exit, CliError> {
    let name = name_or_prompt(app, args.name.clone())?;
    let s = Session::open(app.registry()?, &app.env)?;
    for w in s.drift_warnings(Some(&name)) {
        app.ui.warn(&w);
    }
    let untrusted = crate::trust_review::warn_untrusted(app, &s.estate, Some(&name), true);
    let plan = update::plan_update(&s, &name, args.rebuild)?;
    for c in &plan.changes {
        app.ui.info(&format!("  {}", c.describe()));
    }
    if plan.restart && !plan.is_noop() {
        app.ui.info(&format!(
            "  restart `{name}`: raw.idmap and the guest API take effect when it starts"
        ));
    }
    if plan.is_noop() {
        if plan.image_differs() {
            app.ui.warn(
                "only the image differs; `repoman update NAME --rebuild` rebuilds the container",
            );
        } else {
            app.ui
                .success(&format!("`{name}` matches its configuration: no changes"));
        }
        json_out(app, &plan, args.dry_run, false, &untrusted)?;
        return Ok(Exit::Success);
    }
    let rules = &s.estate.file.registry.policy.rules;
    if args.dry_run {
        session::preview(&app.state_read_only()?, &plan.operation(), rules)?;
        json_out(app, &plan, true, false, &untrusted)?;
        return Ok(Exit::Success);
    }
    let state = app.state()?;
    let approval = session::authorize(&state, plan.operation(), rules)?;
    if plan.rebuild {
        // Replacing a root filesystem loses whatever was installed in it: always confirm.
        let prompt = format!(
            "rebuild `{name}` from `{}`? Its root filesystem is replaced (the repo is not touched)",
            plan.desired.image
        );
        if !app.ui.confirm(&prompt, "--yes")? {
            return Err(CliError::failed("update cancelled"));
        }
    } else if app.ui.can_prompt()
        && !app.ui.confirm(
            &format!("apply {} change(s) to `{name}`?", plan.reapplicable()),
            "--yes",
        )?
    {
        return Err(CliError::failed("update cancelled"));
    }
    update::execute_update(&s, &plan, &state, approval, app.ui.progress())?;
    if plan.rebuild {
        app.ui
            .success(&format!("rebuilt `{name}` from `{}`", plan.desired.image));
    } else {
        app.ui.success(&format!(
            "updated `{name}` ({} change(s))",
            plan.reapplicable()
        ));
    }
    json_out(app, &plan, false, true, &untrusted)?;
    Ok(Exit::Success)
}
