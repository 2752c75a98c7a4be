//! `repoman setup`: idempotent host setup for sandboxes.

use std::path::PathBuf;

use clap::Args;
use repoman_core::settings::Settings;
use serde_json::json;

use crate::app::App;
use crate::error::{CliError, Exit};
use repoman_sandbox::session;
use repoman_sandbox::setup::{self, SetupFlags};

/// Set up this host for sandboxes (safe to run again: a second run changes nothing).
///
/// Validates the working-copy and backup directories, delegates your uid and gid to Incus
/// (`root:UID:1` in /etc/subuid and /etc/subgid, then restarts the Incus daemon, which reads them
/// only at start; not root: prints the commands and exits 4), creates repoman's Incus project as
/// a restricted project (unprivileged, no nesting, no raw config, disks only from local_repos and
/// the `[[mount_root]]`s, only your ids mappable, no host devices; re-tightened when loosened),
/// gives its `default` profile a root disk on the storage pool (and a NIC only when --network
/// names a managed network), creates the `[[profile]]`s declared in repoman.toml, and writes the
/// choices to repoman.toml. Missing values are asked for on a terminal. The restricted per-user
/// Incus socket is refused: repoman needs its own Incus project.
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
    let flags = SetupFlags {
        local_repos: args.local_repos.clone(),
        backup_root: args.backup_root.clone(),
        incus_project: args.incus_project.clone(),
        pool: args.pool.clone(),
        network: args.network.clone(),
        image: args.image.clone(),
        profiles: args.profiles.clone(),
    };
    let req = setup::resolve(&file, &settings, &app.env, &flags)?;
    let incus_project = req.incus_project.clone();
    if !args.dry_run {
        setup::precheck(&req)?;
    }

    let incus = repoman_sandbox::estate::connect(&app.env)?;
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
    app.ui.info(if args.dry_run {
        "setup would:"
    } else {
        "setup will:"
    });
    for s in &plan.steps {
        app.ui.info(&format!("  {}", s.describe()));
    }
    let rules = &file.registry.policy.rules;
    if args.dry_run {
        session::preview(&app.state_read_only()?, &req.operation(), rules)?;
        render(false)?;
        return Ok(Exit::Success);
    }
    let state = app.state()?;
    let approval = session::authorize(&state, req.operation(), rules)?;
    let progress = app.ui.progress();
    let ctx = setup::SetupCtx {
        registry_path: &app.paths.config_file,
        state: &state,
        progress: &*progress,
    };
    setup::apply(&incus, &req, &plan, &ctx, approval, || {
        app.clock.new_id().to_string()
    })?;
    app.ui.success(&format!(
        "host set up: Incus project `{incus_project}`, registry {}",
        app.paths.config_file.display()
    ));
    render(true)?;
    Ok(Exit::Success)
}
