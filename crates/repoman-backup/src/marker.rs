//! The destination marker `<backup_root>/<repo>/.repoman-backup.json`.
//!
//! It says which estate, project, device and profile own this backup copy. It is written before
//! the first real run, excluded from (and so protected against) rsync's `--delete`, and checked
//! before every sync: a copy owned by someone else is never overwritten without `--adopt`.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::BackupError;

/// The marker's format tag.
pub const MARKER_FORMAT: &str = "repoman.backup-marker/v1";

/// Who owns a backup copy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Marker {
    pub format: String,
    pub estate_id: String,
    pub project: String,
    pub repo: String,
    pub device: String,
    pub profile: String,
    pub created_at: String,
}

/// The result of reading a marker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MarkerRead {
    Missing,
    Present(Marker),
    /// Unreadable or not a marker (the text of the problem).
    Invalid(String),
}

/// The owner this sync acts for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Owner {
    pub estate_id: String,
    pub project: String,
    pub repo: String,
    pub device: String,
    pub profile: String,
}

impl Marker {
    pub fn for_owner(owner: &Owner, created_at: String) -> Self {
        Self {
            format: MARKER_FORMAT.into(),
            estate_id: owner.estate_id.clone(),
            project: owner.project.clone(),
            repo: owner.repo.clone(),
            device: owner.device.clone(),
            profile: owner.profile.clone(),
            created_at,
        }
    }

    /// Read a marker file (blocking: call it from a probe thread for the backup side).
    pub fn read(path: &Path) -> MarkerRead {
        match std::fs::read(path) {
            Ok(bytes) => match serde_json::from_slice::<Marker>(&bytes) {
                Ok(m) if m.format == MARKER_FORMAT => MarkerRead::Present(m),
                Ok(m) => MarkerRead::Invalid(format!("unknown marker format {:?}", m.format)),
                Err(e) => MarkerRead::Invalid(e.to_string()),
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => MarkerRead::Missing,
            Err(e) => MarkerRead::Invalid(e.to_string()),
        }
    }

    /// Write atomically.
    pub fn write(&self, path: &Path) -> Result<(), BackupError> {
        let mut text =
            serde_json::to_string_pretty(self).map_err(|e| BackupError::Config(e.to_string()))?;
        text.push('\n');
        repoman_core::fs::write_atomic(path, text.as_bytes(), Some(0o644))?;
        Ok(())
    }

    /// How this marker differs from `owner`: the list of (field, marker value, ours).
    pub fn mismatches(&self, owner: &Owner) -> Vec<(&'static str, String, String)> {
        let mut out = Vec::new();
        for (field, theirs, ours) in [
            ("estate", &self.estate_id, &owner.estate_id),
            ("project", &self.project, &owner.project),
            ("device", &self.device, &owner.device),
            ("profile", &self.profile, &owner.profile),
        ] {
            if theirs != ours {
                out.push((field, theirs.clone(), ours.clone()));
            }
        }
        out
    }
}
