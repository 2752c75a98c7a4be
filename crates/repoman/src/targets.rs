//! The projects a backup command acts on, and their last manifest: shared by `sync`, `verify`,
//! `restore` and `conflicts`.

use std::path::PathBuf;

use repoman_backup::engine;
use repoman_backup::manifest::Manifest;
use repoman_core::registry::{OVERRIDES_FILE, ProjectEntry, ProjectOverrides, Registry};
use repoman_core::settings::Settings;
use repoman_state::{Event, State, TrustCheck};

use crate::app::App;
use crate::error::CliError;

/// A registered project's backup paths.
#[derive(Debug, Clone)]
pub struct Target {
    pub entry: ProjectEntry,
    pub src: PathBuf,
    pub backup_root: PathBuf,
    pub dst: PathBuf,
    pub excludes: Vec<String>,
}

/// Resolve `names` (or all projects) to their source and backup paths. The repo's
/// `.repoman.toml` `[backup] exclude` counts only in the version a human trusted: the sandbox can
/// write that file, and an exclude it planted would leave files out of the backup (and out of
/// the manifest that proves it) unseen. A file that is untrusted or changed since trusted is
/// warned about, with its last trusted version applied.
pub fn targets(
    app: &App,
    reg: &Registry,
    settings: &Settings,
    names: &[String],
) -> Result<Vec<Target>, CliError> {
    let missing = |e: repoman_core::settings::MissingSetting| {
        CliError::usage(e.to_string()).with_hint(e.hint())
    };
    let local = settings.require_local_repos().map_err(missing)?;
    let backup_root = settings.require_backup_root().map_err(missing)?;
    let entries: Vec<ProjectEntry> = if names.is_empty() {
        reg.projects.clone()
    } else {
        names
            .iter()
            .map(|n| {
                reg.project(n).cloned().ok_or_else(|| {
                    CliError::usage(format!("project `{n}` is not registered"))
                        .with_hint("`repoman list` shows the registered projects")
                })
            })
            .collect::<Result<_, _>>()?
    };
    // A log that cannot be read trusts nothing.
    let trusted = app
        .state_read_only()
        .ok()
        .and_then(|s| s.trusted_configs().ok())
        .unwrap_or_default();
    let mut out = Vec::new();
    for entry in entries {
        let src = local.join(entry.repo.as_str());
        let text = if src.is_dir() {
            ProjectOverrides::read_raw(&src)?
        } else {
            None
        };
        let check = TrustCheck::new(
            entry.name.as_str(),
            text.as_deref(),
            trusted.get(entry.name.as_str()),
        );
        if check.needs_trust() {
            app.ui.warn(&format!(
                "{} ([backup] exclude is taken from the trusted version only)",
                check.summary()
            ));
        }
        let overrides = match &check.applied {
            Some(t) => ProjectOverrides::parse(&src.join(OVERRIDES_FILE), t)?,
            None => ProjectOverrides::default(),
        };
        let mut excludes = settings.backup_exclude.value.clone();
        excludes.extend(overrides.backup.exclude);
        let dst = backup_root.join(entry.repo.as_str());
        out.push(Target {
            entry,
            src,
            backup_root: backup_root.clone(),
            dst,
            excludes,
        });
    }
    Ok(out)
}

/// The last manifest of a project and the event that recorded it (`backup.synced`, or
/// `backup.manifest.updated` after a conflict resolution, whichever is newer).
pub fn last_manifest(
    app: &App,
    state: &State,
    project: &str,
) -> Result<Option<(Manifest, Event)>, CliError> {
    repoman_backup::history::last_manifest(
        state,
        &engine::manifests_dir(&app.paths.state_dir),
        project,
    )
    .map_err(CliError::from)
}
