//! `repoman conflicts`: list conflicts, and resolve `backup-diverged` ones (humans only).

use clap::{ArgGroup, Args, Subcommand};
use repoman_backup::conflict::{self, Keep, ResolveInput};
use repoman_backup::engine;
use repoman_backup::history;
use repoman_backup::mount::{Expected, MountGuard};
use repoman_state::{ActorKind, ConflictFilter, ConflictState, NewEvent, Resolution};
use serde_json::json;

use crate::app::App;
use crate::error::{CliError, Exit};
use crate::targets::{last_manifest, targets};

/// List pending conflicts (with `--all`, resolved ones too), or resolve one.
///
/// A `backup-diverged` conflict means files changed on the backup since the last sync, so the
/// next mirror would destroy those changes. Resolve it with `repoman conflicts resolve ID` and
/// one of `--keep-local`, `--keep-backup` or `--skip`; the losing side's bytes are saved under
/// `<backup_root>/.repoman-conflicts/<repo>/<timestamp>/`.
#[derive(Debug, Args)]
pub struct ConflictsArgs {
    #[command(subcommand)]
    pub command: Option<ConflictsCommand>,
    /// Include resolved and skipped conflicts.
    #[arg(long)]
    pub all: bool,
    /// Only this project's conflicts.
    #[arg(long, value_name = "NAME")]
    pub project: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum ConflictsCommand {
    /// Resolve a conflict (human actors only).
    Resolve(ResolveArgs),
}

/// Resolve one conflict.
///
/// --keep-local: save the backup's versions, then copy the working copy's over them.
/// --keep-backup: save the working copy's versions, then copy the backup's into the working copy.
/// --skip: change nothing and close the conflict; the next sync detects any divergence again.
#[derive(Debug, Args)]
#[command(group(ArgGroup::new("resolution").required(true).args(["keep_local", "keep_backup", "skip"])))]
pub struct ResolveArgs {
    /// The conflict id (from `repoman conflicts`).
    pub id: String,
    /// Keep the working copy's versions (the backup's are saved first).
    #[arg(long)]
    pub keep_local: bool,
    /// Keep the backup's versions (the working copy's are saved first).
    #[arg(long)]
    pub keep_backup: bool,
    /// Change nothing and close the conflict; the next sync checks again.
    #[arg(long)]
    pub skip: bool,
    /// Show which files would be saved and copied, and change nothing.
    #[arg(long)]
    pub dry_run: bool,
}

pub fn run(app: &App, args: ConflictsArgs) -> Result<Exit, CliError> {
    match args.command {
        Some(ConflictsCommand::Resolve(r)) => resolve(app, r),
        None => list(app, args.all, args.project),
    }
}

fn list(app: &App, all: bool, project: Option<String>) -> Result<Exit, CliError> {
    let state = app.state_read_only()?;
    let conflicts = state.conflicts(ConflictFilter {
        pending_only: !all,
        project,
        kind: None,
    })?;
    if app.ui.json() {
        app.ui.print_json(&json!({"conflicts": conflicts}))?;
        return Ok(Exit::Success);
    }
    if conflicts.is_empty() {
        app.ui.info("no pending conflicts");
        return Ok(Exit::Success);
    }
    for c in &conflicts {
        app.ui.data(&format!(
            "{}\t{}\t{}\t{}\tdetected {}",
            c.id,
            c.kind,
            c.object,
            c.state.as_str(),
            c.detected_at
        ))?;
        if let Some(files) = c.detail["files"].as_array() {
            for f in files {
                app.ui.data(&format!(
                    "  {}\t{}",
                    f["case"].as_str().unwrap_or(""),
                    f["path"].as_str().unwrap_or("")
                ))?;
            }
        }
    }
    if conflicts.iter().any(|c| c.state == ConflictState::Pending) {
        app.ui
            .hint("repoman conflicts resolve ID --keep-local|--keep-backup|--skip");
    }
    Ok(Exit::Success)
}

fn resolve(app: &App, args: ResolveArgs) -> Result<Exit, CliError> {
    let state = app.state()?;
    if state.identity().actor_kind != ActorKind::Human {
        return Err(CliError::new(
            Exit::Blocked,
            format!(
                "{} may not resolve conflicts; a human has to decide",
                state.identity().actor
            ),
        )
        .with_hint("run the command yourself, outside the agent/CI/daemon context"));
    }
    let c = state
        .conflicts(ConflictFilter {
            pending_only: false,
            project: None,
            kind: None,
        })?
        .into_iter()
        .find(|c| c.id == args.id)
        .ok_or_else(|| {
            CliError::usage(format!("no conflict with id {:?}", args.id))
                .with_hint("`repoman conflicts` lists the pending ones")
        })?;
    if c.state != ConflictState::Pending {
        return Err(CliError::new(
            Exit::Blocked,
            format!("conflict {} is already {}", c.id, c.state.as_str()),
        ));
    }
    let resolution = if args.keep_local {
        Resolution::KeepLocal
    } else if args.keep_backup {
        Resolution::KeepBackup
    } else {
        Resolution::Skip
    };
    if args.dry_run {
        let paths: Vec<String> = conflict::paths_from_detail(&c.detail)
            .iter()
            .map(|p| String::from_utf8_lossy(p).into_owned())
            .collect();
        let (save, copy) = match resolution {
            Resolution::KeepLocal => ("backup", "working copy -> backup"),
            Resolution::KeepBackup => ("working copy", "backup -> working copy"),
            Resolution::Skip => ("nothing", "nothing"),
        };
        if app.ui.json() {
            app.ui.print_json(&json!({
                "conflict": c.id,
                "resolution": resolution.as_str(),
                "dry_run": true,
                "paths": paths,
                "saves": save,
                "copies": copy,
            }))?;
        } else {
            app.ui.data(&format!(
                "would resolve conflict {} ({}) with {}: save the {save}'s versions, then copy {copy}",
                c.id,
                c.kind,
                resolution.as_str()
            ))?;
            for p in &paths {
                app.ui.data(&format!("  {p}"))?;
            }
            app.ui.info("dry run: nothing changed");
        }
        return Ok(Exit::Success);
    }
    if c.kind != conflict::KIND || resolution == Resolution::Skip {
        let done = state.resolve_conflict(&c.id, resolution, json!({}))?;
        return report(app, &done.id, resolution, json!({}));
    }
    let project = c
        .project
        .clone()
        .ok_or_else(|| CliError::failed(format!("conflict {} names no project", c.id)))?;
    let reg = app.registry()?;
    let settings = app.settings()?;
    let t = targets(
        app,
        &reg.registry,
        &settings,
        std::slice::from_ref(&project),
    )?
    .remove(0);
    MountGuard::new(
        &t.backup_root,
        Expected::from_settings(&settings),
        settings.probe_timeout.value,
    )
    .check()
    .map_err(CliError::from)?;
    // Hold the project's sync lock: nothing may mirror while both sides are being rewritten.
    let _lock = engine::lock(&app.paths.runtime_dir.join("locks"), &project, None, || {
        app.ui.info(&format!(
            "waiting for a running sync of {project} to finish..."
        ));
    })
    .map_err(CliError::from)?;
    let paths = conflict::paths_from_detail(&c.detail);
    let ts = app.clock.now().strftime("%Y%m%dT%H%M%S%.3fZ").to_string();
    let input = ResolveInput {
        src: &t.src,
        dst: &t.dst,
        backup_root: &t.backup_root,
        repo: t.entry.repo.as_str(),
        timestamp: &ts,
        paths: &paths,
        scratch: &app.paths.cache_dir.join("backup"),
        search_path: app.env.get_os("PATH").map(|p| p.to_owned()),
        cancel: &app.cancel,
    };
    let keep = if resolution == Resolution::KeepLocal {
        Keep::Local
    } else {
        Keep::Backup
    };
    let done = conflict::resolve(&input, keep).map_err(CliError::from)?;
    // The backup copy of these paths changed (keep-local) or is now the accepted version
    // (keep-backup): record a manifest that says so, or the next sync would flag them again.
    let mut note = json!({"saved_to": done.saved_to, "saved": done.saved, "copied": done.copied, "removed": done.removed});
    if let Some((m, ev)) = last_manifest(app, &state, &project)? {
        let patched = conflict::patch_manifest(&m, &t.dst, &paths, app.clock.now_rfc3339())
            .map_err(CliError::from)?;
        patched
            .store(&engine::manifests_dir(&app.paths.state_dir))
            .map_err(CliError::from)?;
        // A manifest patched from one an unfinished run left stale stays stale: the next sync
        // rebuilds it.
        let stale =
            history::unfinished_run_since(&state, &project, Some(&ev)).map_err(CliError::from)?;
        state.append(NewEvent::new(
            history::MANIFEST_UPDATED,
            history::object(&project),
            json!({"project": project, "root": patched.root, "previous_root": m.root, "reason": "conflict resolved", "conflict": c.id, "stale": stale}),
        ))?;
        note["root"] = json!(patched.root);
    }
    let closed = state.resolve_conflict(&c.id, resolution, note.clone())?;
    report(app, &closed.id, resolution, note)
}

fn report(
    app: &App,
    id: &str,
    resolution: Resolution,
    note: serde_json::Value,
) -> Result<Exit, CliError> {
    if app.ui.json() {
        app.ui.print_json(
            &json!({"conflict": id, "resolution": resolution.as_str(), "detail": note}),
        )?;
    } else {
        app.ui
            .data(&format!("{id}\tresolved\t{}", resolution.as_str()))?;
        if let Some(dir) = note["saved_to"].as_str() {
            app.ui.data(&format!("  saved copies: {dir}"))?;
        }
    }
    Ok(Exit::Success)
}
