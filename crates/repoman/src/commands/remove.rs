//! `repoman remove`: destroy a sandbox; the repo and the backup are never touched.

use std::time::Duration;

use clap::Args;
use repoman_core::registry::RegistryFile;
use repoman_state::NewEvent;
use serde_json::json;

use crate::app::App;
use crate::error::{CliError, Exit};
use repoman_sandbox::SandboxError;
use repoman_sandbox::repair;
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
    let wanted = super::update::name_or_prompt(app, args.name.clone())?;
    let s = Session::open(app.registry()?, &app.env)?;
    for w in s.drift_warnings(Some(&wanted)) {
        app.ui.warn(&w);
    }
    let name = wanted.as_str();
    let entry = s.estate.entry(name)?.clone();
    let instance = s.observed.instance(name).filter(|_| entry.container);
    let repo_path =
        repoman_sandbox::desired::repo_path(&s.estate.settings, entry.repo.as_str()).ok();
    let mut plan = Vec::new();
    if let Some(i) = instance {
        plan.push(format!(
            "stop and delete the container `{name}` ({})",
            i.status.to_lowercase()
        ));
    }
    if args.keep_repo {
        if entry.container {
            plan.push(format!(
                "keep project `{name}` registered, without a sandbox"
            ));
        }
    } else {
        plan.push(format!("unregister project `{name}` from repoman.toml"));
    }
    if let Some(r) = &repo_path {
        plan.push(format!(
            "leave the repo {} and its backup untouched",
            r.display()
        ));
    }
    app.ui.info(if args.dry_run {
        "remove would:"
    } else {
        "remove will:"
    });
    for p in &plan {
        app.ui.info(&format!("  {p}"));
    }
    let state = if args.dry_run {
        app.state_read_only()?
    } else {
        app.state()?
    };
    session::gate(
        &state,
        &session::op("sandbox.remove", name),
        Vec::new(),
        &s.estate.file.registry.policy.rules,
        !args.dry_run,
    )?;
    let out = |done: bool| -> Result<(), CliError> {
        if app.ui.json() {
            app.ui.print_json(
                &json!({"name": name, "dry_run": args.dry_run, "removed": done, "plan": plan}),
            )?;
        }
        Ok(())
    };
    if args.dry_run {
        out(false)?;
        return Ok(Exit::Success);
    }
    if !app
        .ui
        .confirm(&format!("remove the sandbox `{name}`?"), "--yes")?
    {
        return Err(CliError::failed("remove cancelled"));
    }
    let had_container = instance.is_some();
    if had_container {
        repair::destroy_instance(&s.observed.scope, name)?;
    }
    let keep = args.keep_repo;
    RegistryFile::edit(&app.paths.config_file, Some(Duration::from_secs(10)), |f| {
        if keep {
            f.set_project_container(name, false).map(|_| ())
        } else {
            f.remove_project(name).map(|_| ())
        }
    })
    .map_err(SandboxError::from)?;
    let mut events = Vec::new();
    if had_container {
        events.push(NewEvent::new(
            "sandbox.removed",
            format!("sandbox:{name}"),
            json!({"project": name, "incus_project": s.estate.incus_project(), "repo_path": repo_path}),
        ));
    }
    if !keep {
        events.push(NewEvent::new(
            "project.unregistered",
            format!("project:{name}"),
            json!({"repo": entry.repo.as_str(), "repo_path": repo_path}),
        ));
    }
    state.append_batch(events)?;
    app.ui.success(&format!(
        "removed `{name}`{}; the repo was left untouched",
        if keep {
            " (still registered, without a sandbox)"
        } else {
            ""
        }
    ));
    out(true)?;
    Ok(Exit::Success)
}
