//! `repoman new`: register a project and create its sandbox.

use clap::Args;
use repoman_core::registry::ProjectEntry;
use repoman_core::{ProjectName, RepoDirName};
use serde_json::json;

use crate::app::App;
use crate::error::{CliError, Exit};
use repoman_sandbox::SandboxError;
use repoman_sandbox::create::{self, CreateCtx, CreatePlan};
use repoman_sandbox::desired;
use repoman_sandbox::estate::Estate;
use repoman_sandbox::session::{self, Session};

use super::setup::UiProgress;

/// Create a project's sandbox: a container in repoman's Incus project with the repo mounted.
///
/// The container is named NAME; the repo is `<local_repos>/<DIRNAME>` (DIRNAME defaults to NAME,
/// created after confirmation when missing) and is bind-mounted at `/home/<user>/<DIRNAME>` with
/// ids shifted so your uid/gid own the files inside. The repo's `.repoman.toml` adds image,
/// profiles, `[[mount]]`s and `[env]`. Any failure rolls back: no container, no registry entry.
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
        let name = app
            .ui
            .input("Project name (also the container name)", None)?;
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
    // The sandbox is tagged with the estate id; a registry without one gets it on registration.
    let estate_id = match &estate.file.registry.estate_id {
        Some(id) => id.clone(),
        None => app.clock.new_id().to_string(),
    };
    estate.file.registry.estate_id = Some(estate_id.clone());
    wizard(app, &mut args, &estate)?;
    let raw_name = args.name.clone().unwrap_or_default();
    let name = ProjectName::parse(&raw_name)?;
    let existing = estate.file.registry.project(name.as_str()).cloned();
    let repo = match (&args.repo, &existing) {
        (Some(r), Some(e)) if r != e.repo.as_str() => {
            return Err(CliError::usage(format!(
                "project `{name}` is registered with repo `{}`, not `{r}`",
                e.repo
            )));
        }
        (Some(r), _) => RepoDirName::parse(r)?,
        (None, Some(e)) => e.repo.clone(),
        (None, None) => RepoDirName::parse(name.as_str())?,
    };
    if let Some(e) = &existing
        && (args.no_container || e.container)
    {
        let what = if e.container {
            "with a sandbox"
        } else {
            "without a sandbox"
        };
        let err = SandboxError::Exists(format!("project `{name}` is already registered {what}"));
        return Err(CliError::from(err).with_hint(format!("`repoman status {name}` shows it")));
    }
    let repo_path = desired::repo_path(&estate.settings, repo.as_str())?;
    let create_repo_dir = !repo_path.exists();

    if existing.is_some() && !args.profiles.is_empty() {
        return Err(CliError::usage(format!(
            "project `{name}` is already registered; --profile only applies to new projects"
        ))
        .with_hint("add the profiles to `profiles` in its [[project]] entry or in the repo's .repoman.toml"));
    }
    let entry = match &existing {
        // Adding a sandbox to a project registered --no-container: --image is recorded as for a
        // new project (the register step writes it), so later drift checks agree.
        Some(e) => ProjectEntry {
            image: args.image.clone().or_else(|| e.image.clone()),
            ..e.clone()
        },
        None => ProjectEntry {
            name: name.clone(),
            repo: repo.clone(),
            container: !args.no_container,
            image: args.image.clone(),
            profiles: args.profiles.clone(),
            created_at: Some(app.clock.now_rfc3339()),
            last_sync: None,
        },
    };
    let mut desired = None;
    let mut sess = None;
    if !args.no_container {
        let d = estate.desired(&entry, None)?;
        for src in d.mount_sources.iter().skip(1) {
            if !src.exists() {
                return Err(SandboxError::Invalid(format!(
                    "mount source {} (from {}) does not exist",
                    src.display(),
                    repo_path.join(".repoman.toml").display()
                ))
                .into());
            }
        }
        let s = Session::open(app.registry()?, &app.env)?;
        for w in s.drift_warnings(Some(name.as_str())) {
            app.ui.warn(&w);
        }
        s.require_project()?;
        if s.observed.instance(name.as_str()).is_some() {
            return Err(CliError::usage(format!(
                "a container named `{name}` already exists in the Incus project `{}` but is not registered (an orphan)",
                s.estate.incus_project()
            ))
            .with_hint(format!("`repoman status {name} --repair --orphan adopt` registers it")));
        }
        desired = Some(d);
        sess = Some(s);
    }
    let plan = CreatePlan {
        name: name.to_string(),
        incus_project: estate.incus_project().to_owned(),
        create_repo_dir,
        create_instance: !args.no_container,
        start: !args.no_start,
        register: existing.is_none(),
        entry: ProjectEntry {
            container: !args.no_container,
            ..entry
        },
        repo_path: repo_path.clone(),
        desired,
        previous_image: existing.as_ref().and_then(|e| e.image.clone()),
        estate_id,
        owner: estate.host_user(Some(&repo_path)),
    };

    let state = if args.dry_run {
        app.state_read_only()?
    } else {
        app.state()?
    };
    let op = session::op(
        if args.no_container {
            "project.register"
        } else {
            "sandbox.create"
        },
        name.as_str(),
    );
    session::gate(
        &state,
        &op,
        Vec::new(),
        &estate.file.registry.policy.rules,
        !args.dry_run,
    )?;

    app.ui.info(if args.dry_run {
        "new would:"
    } else {
        "new will:"
    });
    for line in plan.describe() {
        app.ui.info(&format!("  {line}"));
    }
    if args.dry_run {
        if app.ui.json() {
            app.ui.print_json(&json!({"dry_run": true, "plan": plan}))?;
        }
        return Ok(Exit::Success);
    }
    if create_repo_dir
        && !app.ui.confirm(
            &format!("create the repo directory {}?", repo_path.display()),
            "--yes",
        )?
    {
        return Err(CliError::failed(
            "cancelled: the repo directory does not exist",
        ));
    }
    let Some(sess) = sess else {
        // --no-container needs no Incus.
        return register_only(app, &plan, &state);
    };
    let ctx = CreateCtx {
        scope: &sess.observed.scope,
        registry_path: &app.paths.config_file,
        state: &state,
        env: &app.env,
        cancel: &app.cancel,
    };
    create::execute(&plan, &ctx, &UiProgress(&app.ui))?;
    finish(app, &plan)
}

/// `--no-container`: registering a project needs no Incus.
fn register_only(
    app: &App,
    plan: &CreatePlan,
    state: &repoman_state::State,
) -> Result<Exit, CliError> {
    let entry = plan.entry.clone();
    if plan.create_repo_dir {
        repoman_sandbox::estate::make_dir_for(&plan.repo_path, &plan.owner)?;
    }
    repoman_core::registry::RegistryFile::edit(
        &app.paths.config_file,
        Some(std::time::Duration::from_secs(10)),
        |f| {
            f.ensure_estate_id(|| plan.estate_id.clone());
            f.add_project(&entry)
        },
    )?;
    state.append(repoman_state::NewEvent::new(
        "project.registered",
        format!("project:{}", plan.name),
        json!({"repo": plan.entry.repo.as_str(), "repo_path": plan.repo_path, "container": false}),
    ))?;
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
