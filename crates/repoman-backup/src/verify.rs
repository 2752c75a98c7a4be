//! Compare a tree (the backup copy, or a restored one) with a manifest.
//!
//! Quick mode compares what `lstat` says (type, permission bits, size, mtime, symlink target);
//! full mode also re-hashes every file (in parallel, mmap for large files) and so finds silent
//! corruption such as one flipped byte.

use std::collections::HashMap;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use rayon::prelude::*;
use repoman_core::Cancel;
use serde::Serialize;

use crate::error::BackupError;
use crate::exclude::Excludes;
use crate::manifest::{Entry, EntryKind, Manifest, hash_file, walk};
use crate::paths::{encode_path, join};

/// Quick (metadata) or full (re-hash) verification.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    Quick,
    Full,
}

/// One difference.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Changed {
    pub path: String,
    /// What differs: `type`, `mode`, `size`, `mtime`, `target`, `content`.
    pub what: Vec<&'static str>,
}

/// The result of a verification.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    pub root: String,
    pub checked: u64,
    pub bytes_hashed: u64,
    pub missing: Vec<String>,
    pub changed: Vec<Changed>,
    pub extra: Vec<String>,
}

impl Report {
    pub fn is_clean(&self) -> bool {
        self.missing.is_empty() && self.changed.is_empty() && self.extra.is_empty()
    }
}

/// Which part of the manifest to check.
#[derive(Debug, Clone, Copy)]
pub enum Scope<'a> {
    /// Everything; files not in the manifest are reported as extra.
    All,
    /// Only these paths and what is below them; extras are not reported.
    Paths(&'a [Vec<u8>]),
}

fn in_scope(scope: Scope<'_>, path: &[u8]) -> bool {
    match scope {
        Scope::All => true,
        Scope::Paths(ps) => ps.iter().any(|p| {
            path == p.as_slice() || (path.starts_with(p) && path.get(p.len()) == Some(&b'/'))
        }),
    }
}

/// Verify the tree at `dir` against `manifest`.
pub fn verify(
    dir: &Path,
    manifest: &Manifest,
    excludes: &Excludes,
    mode: Mode,
    scope: Scope<'_>,
    cancel: &Cancel,
) -> Result<Report, BackupError> {
    let walked = walk(dir, excludes, cancel)?;
    let on_disk: HashMap<&[u8], &std::fs::Metadata> =
        walked.iter().map(|(p, m)| (p.as_slice(), m)).collect();
    let wanted: Vec<&Entry> = manifest
        .entries
        .iter()
        .filter(|e| in_scope(scope, &e.path))
        .collect();
    let results: Vec<(Option<String>, Option<Changed>, u64)> = wanted
        .par_iter()
        .map(|e| -> Result<_, BackupError> {
            if cancel.is_cancelled() {
                return Err(BackupError::Cancelled);
            }
            let Some(meta) = on_disk.get(e.path.as_slice()) else {
                return Ok((Some(encode_path(&e.path)), None, 0));
            };
            let mut what = Vec::new();
            let kind_now = if meta.is_file() {
                EntryKind::File
            } else if meta.is_dir() {
                EntryKind::Dir
            } else if meta.file_type().is_symlink() {
                EntryKind::Symlink
            } else {
                EntryKind::Other
            };
            let mut hashed = 0;
            if kind_now != e.kind {
                what.push("type");
            } else {
                if meta.mode() & 0o7777 != e.mode {
                    what.push("mode");
                }
                let full = join(dir, &e.path);
                match e.kind {
                    EntryKind::File => {
                        if meta.len() != e.size {
                            what.push("size");
                        }
                        if meta.mtime() != e.mtime || meta.mtime_nsec() as u32 != e.mtime_nsec {
                            what.push("mtime");
                        }
                        if mode == Mode::Full && meta.len() == e.size {
                            let h = hash_file(&full, meta.len())
                                .map_err(|err| BackupError::io(&full, err))?;
                            hashed = meta.len();
                            if Some(h) != e.hash {
                                what.push("content");
                            }
                        }
                    }
                    EntryKind::Symlink => {
                        let t =
                            std::fs::read_link(&full).map_err(|err| BackupError::io(&full, err))?;
                        if Some(t.as_os_str().as_bytes()) != e.target.as_deref() {
                            what.push("target");
                        }
                    }
                    _ => {}
                }
            }
            let changed = (!what.is_empty()).then(|| Changed {
                path: encode_path(&e.path),
                what,
            });
            Ok((None, changed, hashed))
        })
        .collect::<Result<_, _>>()?;
    let mut report = Report {
        root: manifest.root.clone(),
        checked: wanted.len() as u64,
        ..Default::default()
    };
    for (missing, changed, hashed) in results {
        report.missing.extend(missing);
        report.changed.extend(changed);
        report.bytes_hashed += hashed;
    }
    if matches!(scope, Scope::All) {
        let mut extra: Vec<String> = walked
            .iter()
            .filter(|(p, _)| manifest.get(p).is_none())
            .map(|(p, _)| encode_path(p))
            .collect();
        extra.sort();
        report.extra = extra;
    }
    report.missing.sort();
    report.changed.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(report)
}
