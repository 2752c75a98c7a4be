//! `repoman new`: register a project and create its sandbox.

use clap::Args;
use serde_json::json;

use crate::app::App;
use crate::error::{CliError, Exit};
use repoman_sandbox::create::{self, CreateCtx, CreatePlan, NewRequest};
use repoman_sandbox::estate::Estate;
use repoman_sandbox::session::{self, Session};

/// Create a project's sandbox: a container in repoman's Incus project with the repo mounted.
///
/// The container is named NAME; the repo is `<local_repos>/<DIRNAME>` (DIRNAME defaults to NAME,
/// created after confirmation when missing) and is bind-mounted at `/home/<user>/<DIRNAME>`; only
/// your uid/gid are mapped (raw.idmap), so you own the files inside and root inside is not host
/// root. The repo's `.repoman.toml` adds image, profiles, `[[mount]]`s and `[env]` once trusted:
/// on first use it is shown and you are asked to trust it (on a terminal; without one, run
/// `repoman trust NAME` first). Any failure rolls back: no container, no registry entry.
/// With --no-container only the project is registered (backups, realms and toolchains still
/// apply); a later `repoman new NAME` adds its sandbox.
#[derive(Debug, Args)]
pub struct NewArgs {
    /// Project name, also the container name (lowercase letters, digits, `-`).
    pub name: Option<String>,
    /// Repo directory name under local_repos (default: NAME).
    #[arg(long, value_name = "DIRNAME")]
    pub repo: Option<String>,
    /// Image: a local alias or fingerprint, or `images:...` (recorded for this project).
    #[arg(long, value_name = "IMG")]
    pub image: Option<String>,
    /// Extra profile for this project (repeatable; recorded for this project).
    #[arg(long = "profile", value_name = "P")]
    pub profiles: Vec<String>,
    /// Create the container but do not start it.
    #[arg(long)]
    pub no_start: bool,
    /// Register the project without a sandbox.
    #[arg(long)]
    pub no_container: bool,
    /// Show the plan without changing anything.
    #[arg(long)]
    pub dry_run: bool,
}

fn wizard(app: &App, args: &mut NewArgs, estate: &Estate) -> Result<(), CliError> {
    if args.name.is_none() {
        if !app.ui.can_prompt() {
            return Err(CliError::usage("missing the project NAME")
                .with_hint("repoman new NAME [--repo DIRNAME]"));
        }
        let name = app.ui.input_valid(
            "Project name (also the container name)",
            None,
            crate::prompt::valid_name,
        )?;
        args.name = Some(name);
    }
    if app.ui.can_prompt()
        && !args.no_container
        && args.image.is_none()
        && estate.settings.default_image.is_none()
    {
        let answer = app
            .ui
            .input("Image (local alias, fingerprint or images:...)", None)?;
        args.image = Some(answer);
    }
    Ok(())
}

pub fn run(app: &App, mut args: NewArgs) -> Result<Exit, CliError> {
    let mut estate = Estate::new(app.registry()?, &app.env);
    wizard(app, &mut args, &estate)?;
    if !args.no_container {
        // First use: the repo's .repoman.toml is applied only once a human has trusted it.
        let name = args.name.clone().unwrap_or_default();
        crate::trust_review::review_for_new(
            app,
            &mut estate,
            &name,
            args.repo.as_deref(),
            args.dry_run,
        )?;
    }
    let req = NewRequest {
        name: args.name.clone().unwrap_or_default(),
        repo: args.repo.clone(),
        image: args.image.clone(),
        profiles: args.profiles.clone(),
        start: !args.no_start,
        container: !args.no_container,
    };
    let draft = create::draft(estate, &req, &app.clock)?;
    let sess = if draft.needs_incus() {
        let s = Session::open(app.registry()?, &app.env)?;
        for w in s.drift_warnings(Some(draft.name())) {
            app.ui.warn(&w);
        }
        Some(s)
    } else {
        None
    };
    let prepared = create::plan_create(draft, sess)?;
    let plan = &prepared.plan;

    let approval = if args.dry_run {
        session::preview(&app.state_read_only()?, &plan.operation(), &prepared.rules)?;
        None
    } else {
        let state = app.state()?;
        Some((
            session::authorize(&state, plan.operation(), &prepared.rules)?,
            state,
        ))
    };
    app.ui.info(if args.dry_run {
        "new would:"
    } else {
        "new will:"
    });
    for line in plan.describe() {
        app.ui.info(&format!("  {line}"));
    }
    let Some((approval, state)) = approval else {
        if app.ui.json() {
            app.ui.print_json(&json!({"dry_run": true, "plan": plan}))?;
        }
        return Ok(Exit::Success);
    };
    if plan.create_repo_dir
        && !app.ui.confirm(
            &format!("create the repo directory {}?", plan.repo_path.display()),
            "--yes",
        )?
    {
        return Err(CliError::failed(
            "cancelled: the repo directory does not exist",
        ));
    }
    let ctx = CreateCtx {
        registry_path: &app.paths.config_file,
        state: &state,
        env: &app.env,
        cancel: &app.cancel,
    };
    create::execute_create(&prepared, &ctx, approval, app.ui.progress())?;
    finish(app, plan)
}

fn finish(app: &App, plan: &CreatePlan) -> Result<Exit, CliError> {
    if plan.create_instance {
        app.ui.success(&format!(
            "sandbox `{}` ready; `repoman shell {}` opens a shell in {}",
            plan.name,
            plan.name,
            plan.desired
                .as_ref()
                .map(|d| d.mount_path.as_str())
                .unwrap_or("the repo")
        ));
    } else {
        app.ui.success(&format!(
            "project `{}` registered without a sandbox",
            plan.name
        ));
    }
    if app.ui.json() {
        app.ui
            .print_json(&json!({"dry_run": false, "plan": plan}))?;
    }
    Ok(Exit::Success)
}
