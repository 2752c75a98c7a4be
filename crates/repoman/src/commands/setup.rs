//! `repoman setup`: idempotent host setup for sandboxes.

use std::path::PathBuf;

use clap::Args;
use repoman_core::registry::RegistryFile;
use repoman_core::settings::Settings;
use repoman_state::NewEvent;
use serde_json::json;

use crate::app::App;
use crate::error::{CliError, Exit};
use crate::ui::Ui;
use repoman_sandbox::estate::{self, Progress};
use repoman_sandbox::session;
use repoman_sandbox::setup::{self, SetupRequest};

/// Set up this host for sandboxes (safe to run again: a second run changes nothing).
///
/// Validates the working-copy and backup directories, creates repoman's Incus project (own
/// profiles, images shared with the default project), gives its `default` profile a root disk on
/// the storage pool (and a NIC only when --network names a managed network), creates the
/// `[[profile]]`s declared in repoman.toml, and writes the choices to repoman.toml. Missing values
/// are asked for on a terminal. The restricted per-user Incus socket is refused: repoman needs
/// its own Incus project.
#[derive(Debug, Args)]
pub struct SetupArgs {
    /// Directory holding your working copies (default: LOCAL_REPOS).
    #[arg(long, value_name = "DIR")]
    pub local_repos: Option<PathBuf>,
    /// Directory on the backup share (default: NFS_REPOS); must exist and be writable.
    #[arg(long, value_name = "DIR")]
    pub backup_root: Option<PathBuf>,
    /// Incus project for the sandboxes (default: repoman).
    #[arg(long, value_name = "NAME")]
    pub incus_project: Option<String>,
    /// Storage pool for the sandboxes' root disks (default: default).
    #[arg(long, value_name = "POOL")]
    pub pool: Option<String>,
    /// Managed Incus network to attach sandboxes to (default: none).
    #[arg(long, value_name = "NETWORK")]
    pub network: Option<String>,
    /// Default image for new sandboxes: a local alias or fingerprint, or `images:...`.
    #[arg(long, value_name = "IMG")]
    pub image: Option<String>,
    /// Profile applied to every new sandbox besides `default` (repeatable; replaces the list).
    #[arg(long = "profile", value_name = "P")]
    pub profiles: Vec<String>,
    /// Show what would change without changing anything.
    #[arg(long)]
    pub dry_run: bool,
}

/// Progress lines on stderr.
#[derive(Debug)]
pub(crate) struct UiProgress<'a>(pub &'a Ui);

impl Progress for UiProgress<'_> {
    fn step(&self, message: &str) {
        self.0.info(message);
    }
}

/// Fill missing values from the wizard (only on a terminal).
fn wizard(app: &App, args: &mut SetupArgs, settings: &Settings) -> Result<(), CliError> {
    if !app.ui.can_prompt() {
        return Ok(());
    }
    if args.local_repos.is_none() && settings.local_repos.is_none() {
        let default = app
            .paths
            .home
            .as_ref()
            .map(|h| h.join("repos").display().to_string());
        let answer = app
            .ui
            .input("Directory holding your working copies", default.as_deref())?;
        args.local_repos = Some(PathBuf::from(answer));
    }
    if args.backup_root.is_none() && settings.backup_root.is_none() {
        let answer = app.ui.input(
            "Backup directory on the backup share (empty: none for now)",
            Some(""),
        )?;
        if !answer.trim().is_empty() {
            args.backup_root = Some(PathBuf::from(answer));
        }
    }
    if args.image.is_none() && settings.default_image.is_none() {
        let answer = app.ui.input(
            "Default image for new sandboxes (empty: choose per sandbox)",
            Some(""),
        )?;
        if !answer.trim().is_empty() {
            args.image = Some(answer);
        }
    }
    Ok(())
}

pub fn run(app: &App, mut args: SetupArgs) -> Result<Exit, CliError> {
    let file = app.registry()?;
    let settings = Settings::resolve(&file.registry, &app.env);
    wizard(app, &mut args, &settings)?;

    let local_repos = args
        .local_repos
        .clone()
        .or_else(|| settings.local_repos.as_ref().map(|s| s.value.clone()));
    let backup_root = args
        .backup_root
        .clone()
        .or_else(|| settings.backup_root.as_ref().map(|s| s.value.clone()));
    let incus_project = args
        .incus_project
        .clone()
        .unwrap_or_else(|| settings.incus_project.value.clone());
    repoman_core::ProjectName::parse(&incus_project)
        .map_err(|e| CliError::usage(format!("--incus-project: {e}")))?;
    let pool = args
        .pool
        .clone()
        .unwrap_or_else(|| settings.pool.value.clone());
    let network = args
        .network
        .clone()
        .or_else(|| settings.network.as_ref().map(|s| s.value.clone()));
    let image = args
        .image
        .clone()
        .or_else(|| settings.default_image.as_ref().map(|s| s.value.clone()));
    let profiles = if args.profiles.is_empty() {
        settings.profiles.value.clone()
    } else {
        args.profiles.clone()
    };

    // Every effective value is written, so the registry alone describes the estate (values from
    // LOCAL_REPOS/NFS_REPOS become explicit); unchanged values are not rewritten.
    let mut registry_strings: Vec<(&'static str, String)> = Vec::new();
    let mut push_path = |key: &'static str, p: &Option<PathBuf>| {
        if let Some(p) = p {
            registry_strings.push((key, p.display().to_string()));
        }
    };
    push_path("local_repos", &local_repos);
    push_path("backup_root", &backup_root);
    registry_strings.push(("incus_project", incus_project.clone()));
    registry_strings.push(("pool", pool.clone()));
    if let Some(n) = &network {
        registry_strings.push(("network", n.clone()));
    }
    if let Some(i) = &image {
        registry_strings.push(("default_image", i.clone()));
    }
    let req = SetupRequest {
        local_repos,
        backup_root,
        incus_project: incus_project.clone(),
        pool,
        network,
        image,
        profiles: profiles.clone(),
        profile_defs: file.registry.profiles.clone(),
        probe_timeout: settings.probe_timeout.value,
        registry_strings,
        registry_profiles: (!args.profiles.is_empty()).then_some(profiles),
        owner: Some(repoman_core::identity::host_user(&app.env, None)),
    };

    let incus = estate::connect(&app.env)?;
    let plan = setup::plan(&incus, &req, &file)?;
    for w in &plan.warnings {
        app.ui.warn(w);
    }
    let render = |changed: bool| -> Result<(), CliError> {
        if app.ui.json() {
            app.ui.print_json(&json!({
                "dry_run": args.dry_run,
                "changed": changed,
                "incus_project": incus_project,
                "steps": plan.steps,
                "warnings": plan.warnings,
            }))
        } else {
            Ok(())
        }
    };
    if plan.steps.is_empty() {
        app.ui.success(&format!(
            "no changes: this host is set up (Incus project `{incus_project}`)"
        ));
        render(false)?;
        return Ok(Exit::Success);
    }
    let heading = if args.dry_run {
        "setup would:"
    } else {
        "setup will:"
    };
    app.ui.info(heading);
    for s in &plan.steps {
        app.ui.info(&format!("  {}", s.describe()));
    }
    let state = if args.dry_run {
        app.state_read_only()?
    } else {
        app.state()?
    };
    let op = repoman_state::Operation {
        name: "sandbox.setup".to_owned(),
        object: format!("incus-project:{incus_project}"),
        project: None,
    };
    session::gate(
        &state,
        &op,
        Vec::new(),
        &file.registry.policy.rules,
        !args.dry_run,
    )?;
    if args.dry_run {
        render(false)?;
        return Ok(Exit::Success);
    }
    let done = setup::apply_incus(&incus, &req, &plan, &UiProgress(&app.ui))?;
    let written = setup::apply_registry(&app.paths.config_file, &req, || {
        app.clock.new_id().to_string()
    })?;
    let registry_steps: Vec<_> = plan
        .steps
        .iter()
        .filter(|s| {
            matches!(
                s,
                setup::SetupStep::SetDefault { .. } | setup::SetupStep::SetEstateId
            )
        })
        .collect();
    state.append(NewEvent::new(
        "sandbox.setup.applied",
        format!("incus-project:{incus_project}"),
        json!({"incus_project": incus_project, "steps": done, "registry": registry_steps, "registry_written": written}),
    ))?;
    let reg = RegistryFile::load(&app.paths.config_file)?;
    app.ui.success(&format!(
        "host set up: Incus project `{incus_project}`, registry {}",
        reg.path.display()
    ));
    render(true)?;
    Ok(Exit::Success)
}
