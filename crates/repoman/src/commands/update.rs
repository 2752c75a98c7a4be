//! `repoman update`: re-apply repoman.toml and `.repoman.toml` to an existing sandbox.

use clap::Args;
use serde_json::json;

use crate::app::App;
use crate::error::{CliError, Exit};
use repoman_sandbox::drift::{self, Change};
use repoman_sandbox::repair;
use repoman_sandbox::session::{self, Session};

/// Re-apply the registry and the repo's `.repoman.toml` to a sandbox (shows the diff first).
///
/// Profiles, bind mounts (`[[mount]]`), environment (`[env]`) and repoman's tags are brought to
/// their desired values in one change; devices added by hand are removed. A different image needs
/// --rebuild: the container's root filesystem is replaced from the new image (after
/// confirmation; the repo and extra mounts are bind mounts and are not touched). --dry-run shows
/// the diff and changes nothing.
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

/// The sandbox name from the arguments, or asked for on a terminal (shared by the commands that
/// take one).
pub(crate) fn name_or_prompt(app: &App, name: Option<String>) -> Result<String, CliError> {
    match name {
        Some(n) => Ok(n),
        None if app.ui.can_prompt() => app.ui.input("Sandbox name", None),
        None => Err(CliError::usage("missing the sandbox NAME")
            .with_hint("`repoman list` shows the sandboxes")),
    }
}

pub fn run(app: &App, args: UpdateArgs) -> Result<Exit, CliError> {
    let name = name_or_prompt(app, args.name.clone())?;
    let s = Session::open(app.registry()?, &app.env)?;
    for w in s.drift_warnings(Some(&name)) {
        app.ui.warn(&w);
    }
    let t = s.target(&name)?;
    let inst = s
        .observed
        .instance(&name)
        .ok_or_else(|| CliError::failed("the sandbox vanished"))?;
    let changes = drift::diff(&t.desired, inst);
    let (apply, image): (Vec<&Change>, Vec<&Change>) =
        changes.iter().partition(|c| c.reapplicable());
    let rebuild = args.rebuild && !image.is_empty();
    for c in &changes {
        app.ui.info(&format!("  {}", c.describe()));
    }
    let json_out = |applied: bool| -> Result<(), CliError> {
        if app.ui.json() {
            app.ui.print_json(&json!({
                "name": name,
                "dry_run": args.dry_run,
                "changes": changes,
                "rebuild": rebuild,
                "applied": applied,
            }))?;
        }
        Ok(())
    };
    if apply.is_empty() && !rebuild {
        if image.is_empty() {
            app.ui
                .success(&format!("`{name}` matches its configuration: no changes"));
        } else {
            app.ui.warn(
                "only the image differs; `repoman update NAME --rebuild` rebuilds the container",
            );
        }
        json_out(false)?;
        return Ok(Exit::Success);
    }
    let state = if args.dry_run {
        app.state_read_only()?
    } else {
        app.state()?
    };
    let op = if rebuild {
        "sandbox.rebuild"
    } else {
        "sandbox.update"
    };
    session::gate(
        &state,
        &session::op(op, &name),
        Vec::new(),
        &s.estate.file.registry.policy.rules,
        !args.dry_run,
    )?;
    if args.dry_run {
        json_out(false)?;
        return Ok(Exit::Success);
    }
    if rebuild {
        // Replacing a root filesystem loses whatever was installed in it: always confirm.
        let prompt = format!(
            "rebuild `{name}` from `{}`? Its root filesystem is replaced (the repo is not touched)",
            t.desired.image
        );
        if !app.ui.confirm(&prompt, "--yes")? {
            return Err(CliError::failed("update cancelled"));
        }
        let from = inst.user_config(repoman_sandbox::desired::TAG_IMAGE);
        let ev = repair::rebuild(
            &s.incus,
            &s.observed.scope,
            &t.desired,
            inst.is_running(),
            from,
        )?;
        state.append(ev)?;
        app.ui
            .success(&format!("rebuilt `{name}` from `{}`", t.desired.image));
    } else {
        if app.ui.can_prompt()
            && !app.ui.confirm(
                &format!("apply {} change(s) to `{name}`?", apply.len()),
                "--yes",
            )?
        {
            return Err(CliError::failed("update cancelled"));
        }
        let ev = repair::reapply(&s.incus, &t.desired, &changes)?;
        state.append(ev)?;
        app.ui
            .success(&format!("updated `{name}` ({} change(s))", apply.len()));
    }
    json_out(true)?;
    Ok(Exit::Success)
}
