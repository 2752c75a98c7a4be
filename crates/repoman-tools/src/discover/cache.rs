//! The probe cache (`<cache_dir>/tools/probes.json`): probe results keyed by file identity and
//! directory listings keyed by directory identity, so a warm scan runs no process.

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::Outcome;
use crate::error::ToolsError;

/// Identity of a file's contents for the cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct FileKey {
    pub dev: u64,
    pub ino: u64,
    pub size: u64,
    pub mtime_ns: i128,
}

impl FileKey {
    pub(super) fn of(m: &std::fs::Metadata) -> Self {
        Self {
            dev: m.dev(),
            ino: m.ino(),
            size: m.size(),
            mtime_ns: i128::from(m.mtime()) * 1_000_000_000 + i128::from(m.mtime_nsec()),
        }
    }
}

/// One cached probe result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CacheEntry {
    pub key: FileKey,
    pub rule: String,
    pub version: Option<String>,
    pub outcome: Outcome,
}

/// The probe cache, `<cache_dir>/tools/probes.json`. Rebuildable: a missing or unreadable file
/// is an empty cache.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ProbeCache {
    #[serde(default)]
    pub entries: BTreeMap<PathBuf, CacheEntry>,
    /// What was last reported as `tool.discovered` per path: (version, ghost).
    #[serde(default)]
    pub reported: BTreeMap<PathBuf, (Option<String>, bool)>,
    /// Directory listings, so a warm scan reads no unchanged directory.
    #[serde(default)]
    pub dirs: BTreeMap<PathBuf, DirListing>,
    #[serde(skip)]
    pub(super) dirty: bool,
}

impl ProbeCache {
    pub fn file(cache_dir: &Path) -> PathBuf {
        cache_dir.join("tools").join("probes.json")
    }

    /// Load the cache; anything wrong with the file gives an empty cache.
    pub fn load(cache_dir: &Path) -> Self {
        std::fs::read(Self::file(cache_dir))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default()
    }

    pub fn is_dirty(&self) -> bool {
        self.dirty
    }

    pub fn mark_dirty(&mut self) {
        self.dirty = true;
    }

    /// Write the cache atomically if it changed. Returns whether it wrote.
    pub fn save(&mut self, cache_dir: &Path) -> Result<bool, ToolsError> {
        if !self.dirty {
            return Ok(false);
        }
        let path = Self::file(cache_dir);
        if let Some(dir) = path.parent() {
            repoman_core::paths::ensure_dir(dir)
                .map_err(|e| ToolsError::read(dir, std::io::Error::other(e.to_string())))?;
        }
        let bytes = serde_json::to_vec(self)
            .map_err(|e| ToolsError::read(&path, std::io::Error::other(e)))?;
        repoman_core::fs::write_atomic(&path, &bytes, None)?;
        self.dirty = false;
        Ok(true)
    }
}

/// One directory's entries as last read, valid while the directory's (device, inode, mtime) is
/// unchanged: adding, removing or renaming an entry changes the directory's mtime.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DirListing {
    pub dev: u64,
    pub ino: u64,
    pub mtime_ns: i128,
    /// (UTF-8 name, kind): `d` a real directory, `l` a symlink, `f` anything else.
    pub entries: Vec<(String, char)>,
}
