//! The `backup-diverged` conflict: detection from the plan, and the file work of resolving it.
//!
//! Detection never walks the backup. For each item the plan would overwrite (content update) or
//! delete, it `lstat`s that one backup path and compares it with the last manifest: after a sync
//! the backup holds exactly the manifest's size and mtime (rsync `-t`), so any difference means
//! the backup side changed since. The working copy's `lstat` (also one call per item) says whether
//! the local side changed too. Either way the sync would destroy the backup-side change, so it is
//! a conflict.
//!
//! Resolution saves the losing side's bytes first, under
//! `<backup_root>/.repoman-conflicts/<repo>/<timestamp>/{backup,local}/<path>`, then copies the
//! winning side with rsync (same attribute handling as a sync). Afterwards the last manifest is
//! patched to the backup's new state ([`patch_manifest`]) so the next sync does not see the
//! resolved files as diverged again.

use std::ffi::OsString;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use repoman_core::Cancel;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::error::BackupError;
use crate::manifest::{Entry, EntryKind, Manifest, hash_file};
use crate::paths::{decode_path, encode_path, join};
use crate::rsync::{Change, ItemKind, Plan, RsyncJob, write_files_from};

/// The conflict kind recorded in the state log.
pub const KIND: &str = "backup-diverged";
/// Directory under the backup root holding saved copies.
pub const CONFLICTS_DIR: &str = ".repoman-conflicts";

/// How one file diverged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Case {
    /// Changed on the backup; the working copy's version is the one from the last sync.
    BackupChanged,
    /// Changed on both sides.
    BothChanged,
    /// Created on both sides since the last sync, with different content.
    BothCreated,
    /// Created on the backup only; the sync would delete it.
    BackupCreated,
    /// Deleted in the working copy, changed on the backup.
    LocalDeletedBackupChanged,
}

/// Size and mtime of one side.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stat {
    pub size: u64,
    pub mtime: i64,
    pub mtime_nsec: u32,
}

impl Stat {
    fn of(m: &std::fs::Metadata) -> Self {
        Self {
            size: m.len(),
            mtime: m.mtime(),
            mtime_nsec: m.mtime_nsec() as u32,
        }
    }
    fn of_entry(e: &Entry) -> Self {
        Self {
            size: e.size,
            mtime: e.mtime,
            mtime_nsec: e.mtime_nsec,
        }
    }
}

/// One diverged file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diverged {
    pub path: Vec<u8>,
    pub case: Case,
    pub local: Option<Stat>,
    pub backup: Option<Stat>,
    pub manifest: Option<Stat>,
}

/// Compare the backup side of each item the plan would overwrite or delete with the manifest.
pub fn detect(
    plan: &Plan,
    manifest: &Manifest,
    src: &Path,
    dst: &Path,
) -> io::Result<Vec<Diverged>> {
    let mut out = Vec::new();
    for item in &plan.items {
        let overwrite = item.change == Change::Update
            && matches!(item.kind, Some(ItemKind::File | ItemKind::Symlink));
        let delete = item.change == Change::Delete;
        if !overwrite && !delete {
            continue;
        }
        let backup_meta = match std::fs::symlink_metadata(join(dst, &item.path)) {
            Ok(m) => m,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        if backup_meta.is_dir() {
            continue; // directories carry no content; their files are items of their own
        }
        let entry = manifest.get(&item.path);
        let backup_changed = match entry {
            None => true,
            Some(e) => differs(e, &backup_meta, &join(dst, &item.path)),
        };
        if !backup_changed {
            continue;
        }
        let local_meta = std::fs::symlink_metadata(join(src, &item.path)).ok();
        let case = match (delete, entry, &local_meta) {
            (true, None, _) => Case::BackupCreated,
            (true, Some(_), _) => Case::LocalDeletedBackupChanged,
            (false, None, _) => Case::BothCreated,
            (false, Some(e), Some(l)) if !differs(e, l, &join(src, &item.path)) => {
                Case::BackupChanged
            }
            (false, Some(_), _) => Case::BothChanged,
        };
        out.push(Diverged {
            path: item.path.clone(),
            case,
            local: local_meta.as_ref().map(Stat::of),
            backup: Some(Stat::of(&backup_meta)),
            manifest: entry.map(Stat::of_entry),
        });
    }
    Ok(out)
}

fn differs(e: &Entry, meta: &std::fs::Metadata, path: &Path) -> bool {
    if meta.file_type().is_symlink() {
        let target = std::fs::read_link(path)
            .ok()
            .map(|t| t.as_os_str().as_bytes().to_vec());
        return e.kind != EntryKind::Symlink || e.target != target;
    }
    e.kind != EntryKind::File
        || e.size != meta.len()
        || e.mtime != meta.mtime()
        || e.mtime_nsec != meta.mtime_nsec() as u32
}

/// The conflict's `detail` for the state log.
pub fn detail(repo: &str, manifest_root: &str, files: &[Diverged]) -> Value {
    json!({
        "repo": repo,
        "manifest_root": manifest_root,
        "files": files.iter().map(|d| json!({
            "path": encode_path(&d.path),
            "case": d.case,
            "local": d.local,
            "backup": d.backup,
            "manifest": d.manifest,
        })).collect::<Vec<_>>(),
    })
}

/// The raw paths listed in a conflict's `detail`.
pub fn paths_from_detail(detail: &Value) -> Vec<Vec<u8>> {
    detail["files"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|f| f["path"].as_str().map(decode_path))
                .collect()
        })
        .unwrap_or_default()
}

/// Which side wins.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Keep {
    Local,
    Backup,
}

/// What a resolution did.
#[derive(Debug, Clone, Serialize)]
pub struct ResolveReport {
    /// Where the losing side's versions were saved.
    pub saved_to: PathBuf,
    pub saved: Vec<String>,
    pub copied: Vec<String>,
    pub removed: Vec<String>,
}

/// Everything resolution needs.
#[derive(Debug)]
pub struct ResolveInput<'a> {
    pub src: &'a Path,
    pub dst: &'a Path,
    pub backup_root: &'a Path,
    pub repo: &'a str,
    /// e.g. `20261122T161523.123Z`.
    pub timestamp: &'a str,
    pub paths: &'a [Vec<u8>],
    /// A directory for the temporary `--files-from` list.
    pub scratch: &'a Path,
    pub search_path: Option<OsString>,
    pub cancel: &'a Cancel,
}

/// Save the losing side's versions, then copy the winning side over.
pub fn resolve(input: &ResolveInput<'_>, keep: Keep) -> Result<ResolveReport, BackupError> {
    let (winner, loser, loser_name) = match keep {
        Keep::Local => (input.src, input.dst, "backup"),
        Keep::Backup => (input.dst, input.src, "local"),
    };
    let saved_to = input
        .backup_root
        .join(CONFLICTS_DIR)
        .join(input.repo)
        .join(input.timestamp)
        .join(loser_name);
    let exists = |root: &Path, p: &Vec<u8>| std::fs::symlink_metadata(join(root, p)).is_ok();
    let on_loser: Vec<Vec<u8>> = input
        .paths
        .iter()
        .filter(|p| exists(loser, p))
        .cloned()
        .collect();
    let on_winner: Vec<Vec<u8>> = input
        .paths
        .iter()
        .filter(|p| exists(winner, p))
        .cloned()
        .collect();
    let gone: Vec<Vec<u8>> = input
        .paths
        .iter()
        .filter(|p| !exists(winner, p))
        .cloned()
        .collect();

    repoman_core::paths::ensure_dir(input.scratch)
        .map_err(|e| BackupError::io(input.scratch, io::Error::other(e.to_string())))?;
    let list = input.scratch.join(format!(
        "conflict-{}-{}.list",
        input.repo,
        std::process::id()
    ));
    let copy = |from: &Path, to: &Path, paths: &[Vec<u8>]| -> Result<(), BackupError> {
        if paths.is_empty() {
            return Ok(());
        }
        repoman_core::paths::ensure_dir(to)
            .map_err(|e| BackupError::io(to, io::Error::other(e.to_string())))?;
        write_files_from(&list, paths).map_err(|e| BackupError::io(&list, e))?;
        let mut job = RsyncJob::new(from, to);
        job.delete = false;
        job.files_from = Some(list.clone());
        job.search_path = input.search_path.clone();
        let r = job.run(None, input.cancel, |_| {});
        let _ = std::fs::remove_file(&list);
        r.map(|_| ())
    };
    // 1. Keep the loser's bytes. 2. Copy the winner over. 3. Remove what the winner does not have.
    copy(loser, &saved_to, &on_loser)?;
    copy(winner, loser, &on_winner)?;
    for p in &gone {
        let path = join(loser, p);
        std::fs::remove_file(&path)
            .or_else(|e| {
                if e.kind() == io::ErrorKind::NotFound {
                    Ok(())
                } else {
                    Err(e)
                }
            })
            .map_err(|e| BackupError::io(&path, e))?;
    }
    let names = |v: &[Vec<u8>]| v.iter().map(|p| encode_path(p)).collect::<Vec<_>>();
    Ok(ResolveReport {
        saved_to,
        saved: names(&on_loser),
        copied: names(&on_winner),
        removed: names(&gone),
    })
}

/// A copy of `manifest` whose entries for `paths` describe the backup as it is now (hashed), with
/// any missing ancestor directories added, and entries of paths gone from the backup removed.
pub fn patch_manifest(
    manifest: &Manifest,
    dst: &Path,
    paths: &[Vec<u8>],
    created_at: String,
) -> Result<Manifest, BackupError> {
    let mut entries: Vec<Entry> = manifest
        .entries
        .iter()
        .filter(|e| !paths.contains(&e.path))
        .cloned()
        .collect();
    let mut have: std::collections::HashSet<Vec<u8>> =
        entries.iter().map(|e| e.path.clone()).collect();
    for p in paths {
        let full = join(dst, p);
        let meta = match std::fs::symlink_metadata(&full) {
            Ok(m) => m,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(BackupError::io(&full, e)),
        };
        let mut e = entry_from(p.clone(), &meta);
        if e.kind == EntryKind::File {
            e.hash = Some(hash_file(&full, e.size).map_err(|err| BackupError::io(&full, err))?);
        } else if e.kind == EntryKind::Symlink {
            e.target = Some(
                std::fs::read_link(&full)
                    .map_err(|err| BackupError::io(&full, err))?
                    .as_os_str()
                    .as_bytes()
                    .to_vec(),
            );
        }
        // Ancestors the manifest does not know (a file created in a new backup-side directory).
        let mut anc = p.clone();
        while let Some(i) = anc.iter().rposition(|&b| b == b'/') {
            anc.truncate(i);
            if have.insert(anc.clone()) {
                let dir = join(dst, &anc);
                let m =
                    std::fs::symlink_metadata(&dir).map_err(|err| BackupError::io(&dir, err))?;
                entries.push(entry_from(anc.clone(), &m));
            }
        }
        have.insert(p.clone());
        entries.push(e);
    }
    Ok(Manifest::from_entries(
        &manifest.project,
        created_at,
        entries,
    ))
}

fn entry_from(path: Vec<u8>, meta: &std::fs::Metadata) -> Entry {
    let kind = if meta.is_file() {
        EntryKind::File
    } else if meta.is_dir() {
        EntryKind::Dir
    } else if meta.file_type().is_symlink() {
        EntryKind::Symlink
    } else {
        EntryKind::Other
    };
    let (size, mtime, mtime_nsec) = match kind {
        EntryKind::File => (meta.len(), meta.mtime(), meta.mtime_nsec() as u32),
        EntryKind::Symlink => (0, meta.mtime(), meta.mtime_nsec() as u32),
        _ => (0, 0, 0),
    };
    Entry {
        path,
        kind,
        mode: meta.mode() & 0o7777,
        size,
        mtime,
        mtime_nsec,
        hash: None,
        target: None,
    }
}

/// The raw bytes of a path, for callers that build path lists.
pub fn raw(p: &str) -> Vec<u8> {
    std::ffi::OsStr::new(p).as_bytes().to_vec()
}
