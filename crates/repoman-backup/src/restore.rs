//! Restore a project from its backup copy and prove the result.
//!
//! The copy is made with rsync (the sync flags, no deletion); then every restored entry is
//! re-hashed and compared with the manifest. For a whole-tree restore the restored tree's Merkle
//! root is recomputed: equal to the manifest's root means the restore is bit-exact, down to
//! permission bits, mtimes, symlink targets and empty directories.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use repoman_core::Cancel;
use serde::Serialize;

use crate::error::BackupError;
use crate::exclude::Excludes;
use crate::manifest::{Manifest, build_full};
use crate::rsync::{Plan, RsyncJob, write_files_from};
use crate::verify::{self, Mode, Report, Scope};

/// What to restore, and where.
#[derive(Debug, Clone)]
pub struct Request {
    /// The backup copy, `<backup_root>/<repo>`.
    pub backup_dir: PathBuf,
    pub target: PathBuf,
    /// Relative paths to restore (empty: everything).
    pub paths: Vec<Vec<u8>>,
    pub force: bool,
    pub dry_run: bool,
    /// For the temporary `--files-from` list.
    pub scratch: PathBuf,
    pub search_path: Option<OsString>,
}

/// What a restore did and whether it is proven.
#[derive(Debug, Clone, Serialize)]
pub struct Outcome {
    pub plan: Plan,
    pub dry_run: bool,
    /// The restored tree's recomputed root (whole-tree restores only).
    pub restored_root: Option<String>,
    pub manifest_root: String,
    pub report: Option<Report>,
}

impl Outcome {
    /// Whether the restore is proven: every restored entry matches the manifest (and, for a whole
    /// tree, the recomputed root equals the manifest root).
    pub fn verified(&self) -> bool {
        !self.dry_run
            && self.report.as_ref().is_some_and(Report::is_clean)
            && self
                .restored_root
                .as_ref()
                .is_none_or(|r| *r == self.manifest_root)
    }
}

fn is_empty_dir(p: &Path) -> Result<bool, BackupError> {
    match std::fs::read_dir(p) {
        Ok(mut rd) => Ok(rd.next().is_none()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(true),
        Err(e) => Err(BackupError::io(p, e)),
    }
}

/// Restore and verify.
pub fn restore(
    req: &Request,
    manifest: &Manifest,
    cancel: &Cancel,
) -> Result<Outcome, BackupError> {
    if !req.backup_dir.is_dir() {
        return Err(BackupError::NoBackup {
            path: req.backup_dir.clone(),
        });
    }
    if !req.force && !is_empty_dir(&req.target)? {
        return Err(BackupError::TargetNotEmpty {
            path: req.target.clone(),
        });
    }
    let mut job = RsyncJob::new(&req.backup_dir, &req.target);
    job.delete = false;
    job.search_path = req.search_path.clone();
    let list = req
        .scratch
        .join(format!("restore-{}.list", std::process::id()));
    if !req.paths.is_empty() {
        repoman_core::paths::ensure_dir(&req.scratch)
            .map_err(|e| BackupError::io(&req.scratch, std::io::Error::other(e.to_string())))?;
        write_files_from(&list, &req.paths).map_err(|e| BackupError::io(&list, e))?;
        job.files_from = Some(list.clone());
    }
    let result = (|| {
        let plan = job.plan(cancel)?;
        if req.dry_run {
            return Ok(Outcome {
                plan,
                dry_run: true,
                restored_root: None,
                manifest_root: manifest.root.clone(),
                report: None,
            });
        }
        if let Some(parent) = req.target.parent() {
            repoman_core::paths::ensure_dir(parent)
                .map_err(|e| BackupError::io(parent, std::io::Error::other(e.to_string())))?;
        }
        job.run(None, cancel, |_| {})?;
        let none = Excludes::default();
        let (scope, restored_root) = if req.paths.is_empty() {
            let m = build_full(&manifest.project, &req.target, &none, cancel, String::new())?;
            (Scope::All, Some(m.root))
        } else {
            (Scope::Paths(&req.paths), None)
        };
        let report = verify::verify(&req.target, manifest, &none, Mode::Full, scope, cancel)?;
        Ok(Outcome {
            plan,
            dry_run: false,
            restored_root,
            manifest_root: manifest.root.clone(),
            report: Some(report),
        })
    })();
    let _ = std::fs::remove_file(&list);
    result
}
