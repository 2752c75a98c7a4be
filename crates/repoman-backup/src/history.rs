//! What the event log says about a project's backup: its last manifest, and whether a sync ran
//! rsync after that manifest and did not finish.
//!
//! The log is the only place this is kept (DESIGN.md §4), so a sync reads it *after* taking the
//! project's lock: a sync that waited for another one starts from the manifest that one recorded.
//!
//! A run that did not finish leaves the backup in a state the last manifest does not describe
//! (files moved into place, deletions done), which the next plan cannot see. It is recognised by
//! a `sync.started` (recorded before rsync runs) newer than the manifest's event, whatever ended
//! the run: a recorded `sync.failed` / `sync.cancelled`, or nothing at all when repoman was
//! killed or the machine lost power.

use std::path::Path;

use repoman_core::ObjectId;
use repoman_state::{Event, State};

use crate::error::BackupError;
use crate::manifest::Manifest;

/// Recorded before rsync's real run starts.
pub const STARTED: &str = "sync.started";
/// Recorded when rsync's run failed.
pub const FAILED: &str = "sync.failed";
/// Recorded when the run was cancelled (Ctrl-C, SIGTERM).
pub const CANCELLED: &str = "sync.cancelled";
/// Recorded with each new manifest of a completed sync.
pub const SYNCED: &str = "backup.synced";
/// Recorded when a conflict resolution patched the manifest.
pub const MANIFEST_UPDATED: &str = "backup.manifest.updated";

/// The object id of a project's backup.
pub fn object(project: &str) -> String {
    ObjectId::backup(project).to_string()
}

/// The last manifest of a project and the event that recorded it (`backup.synced`, or
/// `backup.manifest.updated` after a conflict resolution, whichever is newer).
pub fn last_manifest(
    state: &State,
    manifests_dir: &Path,
    project: &str,
) -> Result<Option<(Manifest, Event)>, BackupError> {
    let object = object(project);
    let a = state.last_event(&object, SYNCED)?;
    let b = state.last_event(&object, MANIFEST_UPDATED)?;
    let ev = match (a, b) {
        (Some(a), Some(b)) => Some(if b.seq > a.seq { b } else { a }),
        (a, b) => a.or(b),
    };
    let Some(ev) = ev else { return Ok(None) };
    let root = ev.data["root"].as_str().unwrap_or_default().to_owned();
    let m = Manifest::load(manifests_dir, &root)?;
    Ok(Some((m, ev)))
}

/// Whether a sync of `project` ran rsync and did not finish after the event `manifest_seq`
/// that recorded the last manifest (or, for a manifest patched by a conflict resolution, before
/// it: the patch starts from the unfinished run's stale manifest).
pub fn unfinished_run_since(
    state: &State,
    project: &str,
    manifest: Option<&Event>,
) -> Result<bool, BackupError> {
    let Some(ev) = manifest else {
        return Ok(false);
    };
    if ev.data["stale"].as_bool() == Some(true) {
        return Ok(true);
    }
    let object = object(project);
    for t in [STARTED, FAILED, CANCELLED] {
        if state
            .last_event(&object, t)?
            .is_some_and(|e| e.seq > ev.seq)
        {
            return Ok(true);
        }
    }
    Ok(false)
}
