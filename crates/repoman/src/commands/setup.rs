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

/// The mount holding the backup root, to record for the mount guard (`backup_fstype`,
/// `backup_mount_point`, `backup_device`): when nothing is recorded yet, or when `--backup-root`
/// names the root on this run. Never a root on `/` (that usually means the share is not
/// mounted; recording it would make the guard accept an unmounted share) and never silently a
/// different mount than recorded (an unmounted share leaves the root on the enclosing mount).
fn backup_mount(
    app: &App,
    args: &SetupArgs,
    settings: &Settings,
    file: &repoman_core::registry::RegistryFile,
) -> Option<setup::BackupMount> {
    let root = args
        .backup_root
        .clone()
        .or_else(|| settings.backup_root.as_ref().map(|s| s.value.clone()))?;
    let mount = match repoman_backup::mount::observe(&root, settings.probe_timeout.value) {
        Ok(m) => m,
        Err(e) => {
            tracing::debug!(error = %e, "backup root not observed");
            return None;
        }
    };
    let d = &file.registry.defaults;
    let recorded = d.backup_mount_point.is_some() || d.backup_device.is_some();
    let observed = setup::BackupMount {
        fstype: mount.fstype.clone(),
        mount_point: mount.mount_point.clone(),
        device: mount.source.clone(),
    };
    if mount.mount_point == std::path::Path::new("/") {
        app.ui.warn(&format!(
            "the backup root {} is on the root filesystem ({}), which usually means the backup share is not mounted: its mount is not recorded; mount the share and run setup again (or set [defaults] backup_fstype = {:?} if the root filesystem is really where backups go)",
            root.display(),
            mount.fstype,
            mount.fstype
        ));
        return None;
    }
    let same = d.backup_mount_point.as_deref() == Some(observed.mount_point.as_path())
        && d.backup_device.as_deref() == Some(observed.device.as_str())
        && d.backup_fstype.as_deref() == Some(observed.fstype.as_str());
    if recorded && !same && args.backup_root.is_none() {
        app.ui.warn(&format!(
            "the backup root {} is now on {} ({} from {}), but another mount is recorded; if the share really moved, run `repoman setup --backup-root {}` to record it",
            root.display(),
            observed.mount_point.display(),
            observed.fstype,
            observed.device,
            root.display()
        ));
        return None;
    }
    Some(observed)
}

pub fn run(app: &App, mut args: SetupArgs) -> Result<Exit, CliError> {
    let file = app.registry()?;
    let settings = Settings::resolve(&file.registry, &app.env);
    wizard(app, &mut args, &settings)?;
    let backup_mount = backup_mount(app, &args, &settings, &file);
    let flags = SetupFlags {
        backup_mount,
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
