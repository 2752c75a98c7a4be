//! `repoman restore`: copy a project back from its backup and prove the copy.

use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

use clap::Args;
use repoman_backup::mount::{Expected, MountGuard};
use repoman_backup::paths::encode_path;
use repoman_backup::restore::{self, Request};
use repoman_state::NewEvent;
use serde_json::json;

use crate::app::App;
use crate::error::{CliError, Exit};
use crate::targets::{last_manifest, targets};

/// Restore a project from its backup copy, then re-hash what was restored against the manifest.
///
/// Without `--to` the working copy is the target. A non-empty target is refused unless `--force`
/// (files are overwritten, nothing is deleted). On success it prints
/// "restore verified: root <hash> matches backup.synced event #<seq>"; otherwise each mismatch,
/// and exits 1.
#[derive(Debug, Args)]
pub struct RestoreArgs {
    /// The project to restore.
    pub name: String,
    /// Restore into this directory instead of the working copy.
    #[arg(long, value_name = "DIR")]
    pub to: Option<PathBuf>,
    /// Restore only these paths (relative to the project); repeatable.
    #[arg(long = "path", value_name = "P")]
    pub paths: Vec<PathBuf>,
    /// Show what would be copied; change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Restore into a non-empty directory.
    #[arg(long)]
    pub force: bool,
}

pub fn run(app: &App, args: RestoreArgs) -> Result<Exit, CliError> {
    let reg = app.registry()?;
    let settings = app.settings()?;
    let t = targets(
        app,
        &reg.registry,
        &settings,
        std::slice::from_ref(&args.name),
    )?
    .remove(0);
    let name = t.entry.name.as_str();
    let state = if args.dry_run {
        app.state_read_only()?
    } else {
        app.state()?
    };
    let (manifest, ev) = last_manifest(app, &state, name)?.ok_or_else(|| {
        CliError::failed(format!("project {name} has no recorded backup"))
            .with_hint(format!("run `repoman sync {name}` first"))
    })?;
    MountGuard::new(
        &t.backup_root,
        Expected::from_settings(&settings),
        settings.probe_timeout.value,
    )
    .check()
    .map_err(CliError::from)?;
    let mut paths = Vec::new();
    for p in &args.paths {
        if p.is_absolute()
            || p.components()
                .any(|c| matches!(c, std::path::Component::ParentDir))
        {
            return Err(CliError::usage(format!(
                "--path {}: give a path relative to the project, without `..`",
                p.display()
            )));
        }
        paths.push(p.as_os_str().as_bytes().trim_end_matches_slash());
    }
    let target = args.to.clone().unwrap_or_else(|| t.src.clone());
    // Paths are bytes: JSON and events carry them as text (`%XX` where not UTF-8).
    let target_text = encode_path(target.as_os_str().as_bytes());
    let paths_text: Vec<String> = args
        .paths
        .iter()
        .map(|p| encode_path(p.as_os_str().as_bytes()))
        .collect();
    let req = Request {
        backup_dir: t.dst.clone(),
        target: target.clone(),
        paths,
        force: args.force,
        dry_run: args.dry_run,
        scratch: app.paths.cache_dir.join("backup"),
        search_path: app.env.get_os("PATH").map(|p| p.to_owned()),
    };
    let outcome = restore::restore(&req, &manifest, &app.cancel).map_err(CliError::from)?;
    if args.dry_run {
        if app.ui.json() {
            app.ui.print_json(
                &json!({"project": name, "dry_run": true, "target": target_text, "plan": outcome.plan,
                "items": outcome.plan.items.iter().map(|i| i.display_path()).collect::<Vec<_>>()}),
            )?;
        } else {
            for i in &outcome.plan.items {
                app.ui.data(&format!("{} {}", i.flags, i.display_path()))?;
            }
            app.ui.info(&format!(
                "dry run: would restore {} entries into {target_text}",
                outcome.plan.items.len(),
            ));
        }
        return Ok(Exit::Success);
    }
    let verified = outcome.verified();
    let report = outcome.report.clone().unwrap_or_default();
    let recorded = state.append(NewEvent::new(
        "backup.restored",
        repoman_core::ObjectId::backup(name).to_string(),
        json!({"project": name, "target": target_text, "paths": paths_text, "root": manifest.root, "restored_root": outcome.restored_root,
               "synced_seq": ev.seq, "verified": verified, "missing": report.missing.len(), "changed": report.changed.len(), "extra": report.extra.len()}),
    ))?;
    let proof = format!(
        "restore verified: root {} matches {} event #{}",
        manifest.root, ev.type_, ev.seq
    );
    if app.ui.json() {
        app.ui.print_json(&json!({"project": name, "target": target_text, "verified": verified, "root": manifest.root,
            "restored_root": outcome.restored_root, "synced_event": {"type": ev.type_, "seq": ev.seq}, "event_seq": recorded.seq, "report": report}))?;
    } else if verified {
        app.ui.data(&proof)?;
    } else {
        for m in &report.missing {
            app.ui.data(&format!("missing: {m}"))?;
        }
        for c in &report.changed {
            app.ui
                .data(&format!("changed: {} ({})", c.path, c.what.join(", ")))?;
        }
        for x in &report.extra {
            app.ui.data(&format!("extra:   {x}"))?;
        }
        if let Some(r) = &outcome.restored_root {
            app.ui.warn(&format!(
                "restored tree root {r} differs from manifest root {}",
                manifest.root
            ));
        }
    }
    Ok(if verified {
        Exit::Success
    } else {
        Exit::Failure
    })
}

trait TrimSlash {
    fn trim_end_matches_slash(&self) -> Vec<u8>;
}

impl TrimSlash for [u8] {
    fn trim_end_matches_slash(&self) -> Vec<u8> {
        let mut v = self.to_vec();
        while v.len() > 1 && v.last() == Some(&b'/') {
            v.pop();
        }
        if v.starts_with(b"./") {
            v.drain(..2);
        }
        v
    }
}
