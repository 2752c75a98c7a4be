//! Repair reports: what failed, what was preserved, rebuilt or quarantined, and what the user
//! should do next. Each report is a JSON file under `<state>/repairs/` (schema
//! `repoman.repair-report/v1`) and is referenced by the `repair.applied` event recorded with it.
//!
//! Moved-aside files go to `<state>/quarantine/`, never deleted: a repair must not lose bytes.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::StateError;

pub const REPORT_SCHEMA: &str = "repoman.repair-report/v1";

/// One repair, as written to `<state>/repairs/<stamp>-<store>.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RepairReport {
    pub schema: String,
    pub at: String,
    /// `index` or `events`.
    pub store: String,
    /// What was wrong.
    pub failed: String,
    pub preserved: Vec<String>,
    pub rebuilt: Vec<String>,
    pub quarantined: Vec<String>,
    pub next_action: String,
    /// Where this report was written (not part of the file).
    #[serde(skip)]
    pub path: Option<PathBuf>,
}

impl RepairReport {
    pub fn new(at: &str, store: &str, failed: impl Into<String>) -> Self {
        Self {
            schema: REPORT_SCHEMA.to_owned(),
            at: at.to_owned(),
            store: store.to_owned(),
            failed: failed.into(),
            preserved: Vec::new(),
            rebuilt: Vec::new(),
            quarantined: Vec::new(),
            next_action: String::new(),
            path: None,
        }
    }

    /// Write the report atomically under `<state_dir>/repairs/`.
    pub fn write(&mut self, state_dir: &Path) -> Result<PathBuf, StateError> {
        let dir = state_dir.join("repairs");
        std::fs::create_dir_all(&dir).map_err(StateError::io(&dir))?;
        let path = dir.join(format!("{}-{}.json", file_stamp(&self.at), self.store));
        let text = serde_json::to_string_pretty(self).unwrap_or_default();
        repoman_core::fs::write_atomic(&path, format!("{text}\n").as_bytes(), Some(0o644))?;
        self.path = Some(path.clone());
        Ok(path)
    }
}

/// `2026-01-02T03:04:05.678Z` -> `20260102T030405.678Z`, safe in file names and sortable.
pub fn file_stamp(at: &str) -> String {
    at.chars().filter(|c| *c != '-' && *c != ':').collect()
}

/// Move `path` into `<state_dir>/quarantine/` under a stamped name. Returns the new path, or
/// `None` when `path` does not exist.
pub fn quarantine_file(
    state_dir: &Path,
    path: &Path,
    stamp: &str,
) -> Result<Option<PathBuf>, StateError> {
    if std::fs::symlink_metadata(path).is_err() {
        return Ok(None);
    }
    let dir = state_dir.join("quarantine");
    std::fs::create_dir_all(&dir).map_err(StateError::io(&dir))?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut target = dir.join(format!("{}-{name}", file_stamp(stamp)));
    let mut n = 1;
    while target.exists() {
        target = dir.join(format!("{}-{n}-{name}", file_stamp(stamp)));
        n += 1;
    }
    std::fs::rename(path, &target).map_err(StateError::io(path))?;
    Ok(Some(target))
}
