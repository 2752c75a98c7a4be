//! Content manifests: what a backup copy holds, provably.
//!
//! A manifest lists every entry of a synced tree (path, type, permission bits, size, mtime,
//! BLAKE3 of file content, symlink target) and a Merkle root over them: a leaf hash per entry and,
//! per directory, a hash over its mode and its children's (name, hash) pairs in byte order. The
//! root is the hash of the top directory, so equal roots mean equal trees, and one changed file
//! changes only the hashes on its path. Directory mtimes are recorded nowhere in the root: rsync
//! rewrites them whenever a directory's content changes, and a restore cannot be expected to keep
//! them.
//!
//! Manifests are immutable and content-addressed (restic's tree design): each directory is a tree
//! object `manifests/trees/<xx>/<node hash>.json` listing its entries (sub-directories by their
//! node hash), and `manifests/<root>.json` is a small root record. A new manifest writes only the
//! directories that changed, and every manifest shares the unchanged ones. Loading recomputes
//! every node hash, so a damaged or missing object is detected, never trusted.
//!
//! After a sync, [`Manifest::apply`] derives the new manifest from the previous one and the
//! entries rsync itemized in the run, without walking either tree.
//!
//! The stat cache (under the cache dir; rebuildable) remembers, per path, the working copy's
//! `lstat` (size, mtime, inode, ctime, mode) next to the manifest entry recorded for it. When the
//! working copy's `lstat` is unchanged and rsync did not transfer the path, the entry is reused
//! without reading the file: an unchanged file costs one `lstat`. Otherwise the entry is read from
//! the *content root* (the backup copy after a sync), so the manifest describes the bytes that
//! actually landed on the backup, even if the working copy changed during the run.

use std::collections::{HashMap, HashSet};
use std::fs::Metadata;
use std::io::{self, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use repoman_core::Cancel;
use serde::{Deserialize, Serialize};

use crate::error::BackupError;
use crate::exclude::Excludes;
use crate::paths::{decode_path, encode_path, join};

/// The manifest format tag.
pub const MANIFEST_FORMAT: &str = "repoman.manifest/v1";
/// Files at least this large are hashed with multithreaded BLAKE3, in chunks of
/// [`PARALLEL_CHUNK`] bytes.
const PARALLEL_THRESHOLD: u64 = 1 << 20;
const PARALLEL_CHUNK: usize = 8 << 20;

/// The type of an entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EntryKind {
    File,
    Dir,
    Symlink,
    /// Devices, FIFOs, sockets: recorded by type and mode only.
    Other,
}

impl EntryKind {
    fn of(meta: &Metadata) -> Self {
        let t = meta.file_type();
        if t.is_file() {
            Self::File
        } else if t.is_dir() {
            Self::Dir
        } else if t.is_symlink() {
            Self::Symlink
        } else {
            Self::Other
        }
    }

    fn tag(self) -> u8 {
        match self {
            Self::File => b'f',
            Self::Dir => b'd',
            Self::Symlink => b'l',
            Self::Other => b'o',
        }
    }
}

/// One entry of a manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Relative path (raw bytes, `/`-separated); empty for the top directory.
    pub path: Vec<u8>,
    pub kind: EntryKind,
    /// Permission bits (`0o7777`).
    pub mode: u32,
    /// File length (0 for other kinds).
    pub size: u64,
    /// Modification time (0 for directories).
    pub mtime: i64,
    pub mtime_nsec: u32,
    /// BLAKE3 of the content (files only).
    pub hash: Option<[u8; 32]>,
    /// Symlink target (raw bytes).
    pub target: Option<Vec<u8>>,
}

impl Entry {
    fn from_meta(path: Vec<u8>, meta: &Metadata) -> Self {
        let kind = EntryKind::of(meta);
        let (size, mtime, mtime_nsec) = match kind {
            EntryKind::File => (meta.len(), meta.mtime(), meta.mtime_nsec() as u32),
            EntryKind::Symlink => (0, meta.mtime(), meta.mtime_nsec() as u32),
            _ => (0, 0, 0),
        };
        Self {
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

    /// The leaf hash committed to by the Merkle root.
    pub fn leaf_hash(&self) -> [u8; 32] {
        let mut h = blake3::Hasher::new();
        h.update(b"repoman.leaf.v1\0");
        h.update(&[self.kind.tag()]);
        h.update(&self.mode.to_le_bytes());
        h.update(&self.size.to_le_bytes());
        // Symlink mtimes are not restorable everywhere; files' are (rsync -t).
        if self.kind == EntryKind::File {
            h.update(&self.mtime.to_le_bytes());
            h.update(&self.mtime_nsec.to_le_bytes());
        }
        if let Some(hash) = &self.hash {
            h.update(hash);
        }
        if let Some(t) = &self.target {
            h.update(&(t.len() as u64).to_le_bytes());
            h.update(t);
        }
        *h.finalize().as_bytes()
    }

    /// The hex BLAKE3 of the content, if a file.
    pub fn hash_hex(&self) -> Option<String> {
        self.hash
            .map(|h| blake3::Hash::from(h).to_hex().to_string())
    }
}

/// A manifest of one backup copy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    pub project: String,
    /// Hex Merkle root.
    pub root: String,
    pub created_at: String,
    /// Sorted by path bytes.
    pub entries: Vec<Entry>,
    /// The Merkle node hash of every directory (by path), computed with the root.
    dir_hashes: HashMap<Vec<u8>, [u8; 32]>,
}

/// Counts for display.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    pub files: u64,
    pub dirs: u64,
    pub symlinks: u64,
    pub other: u64,
    pub bytes: u64,
}

impl Manifest {
    /// Assemble from entries (sorted here) and compute the root.
    pub fn from_entries(project: &str, created_at: String, mut entries: Vec<Entry>) -> Self {
        entries.sort_by(|a, b| a.path.cmp(&b.path));
        let tree = Tree::new(&entries);
        let root = blake3::Hash::from(tree.hash_of(b"")).to_hex().to_string();
        let dir_hashes = tree
            .hashes
            .into_iter()
            .map(|(k, v)| (k.to_vec(), v))
            .collect();
        Self {
            project: project.to_owned(),
            root,
            created_at,
            entries,
            dir_hashes,
        }
    }

    /// Direct children of directory `dir`, in name order (a range scan of the sorted entries).
    fn children_of(&self, dir: &[u8]) -> Vec<&Entry> {
        let mut prefix = dir.to_vec();
        if !prefix.is_empty() {
            prefix.push(b'/');
        }
        let start = self
            .entries
            .partition_point(|e| e.path.as_slice() < prefix.as_slice());
        let mut kids: Vec<&Entry> = self.entries[start..]
            .iter()
            .take_while(|e| e.path.starts_with(&prefix))
            .filter(|e| {
                !e.path.is_empty()
                    && e.path.len() > prefix.len()
                    && !e.path[prefix.len()..].contains(&b'/')
            })
            .collect();
        kids.sort_by(|a, b| name_of(&a.path).cmp(name_of(&b.path)));
        kids
    }

    fn dir_id(&self, dir: &[u8]) -> String {
        blake3::Hash::from(self.dir_hashes.get(dir).copied().unwrap_or([0; 32]))
            .to_hex()
            .to_string()
    }

    /// Write the tree objects of `dir` and below that do not exist yet (children first). An
    /// existing object means its whole subtree was stored before: content addressing makes it
    /// identical.
    fn write_missing(
        &self,
        store: &Path,
        dir: &[u8],
        written: &mut Vec<PathBuf>,
    ) -> Result<(), BackupError> {
        let id = self.dir_id(dir);
        let path = tree_path(store, &id);
        if path.exists() {
            return Ok(());
        }
        let kids = self.children_of(dir);
        for k in &kids {
            if k.kind == EntryKind::Dir {
                self.write_missing(store, &k.path, written)?;
            }
        }
        let mode = self.get(dir).map(|e| e.mode).unwrap_or(0);
        let obj = WireTree {
            schema: TREE_FORMAT.into(),
            mode,
            entries: kids
                .iter()
                .map(|e| {
                    WireEntry::new(e, (e.kind == EntryKind::Dir).then(|| self.dir_id(&e.path)))
                })
                .collect(),
        };
        let mut bytes = serde_json::to_vec(&obj).map_err(|e| BackupError::Config(e.to_string()))?;
        bytes.push(b'\n');
        let parent = path.parent().unwrap_or(store);
        repoman_core::paths::ensure_dir(parent)
            .map_err(|e| BackupError::io(parent, io::Error::other(e.to_string())))?;
        // A temporary name keeps a crash from leaving a truncated object under its final name;
        // durability comes from `store` (fsyncs, or one syncfs for many objects).
        let tmp = parent.join(format!(".{id}.tmp-{}", std::process::id()));
        std::fs::write(&tmp, &bytes).map_err(|e| BackupError::io(&tmp, e))?;
        std::fs::rename(&tmp, &path).map_err(|e| BackupError::io(&path, e))?;
        written.push(path);
        Ok(())
    }

    pub fn counts(&self) -> Counts {
        let mut c = Counts::default();
        for e in &self.entries {
            match e.kind {
                EntryKind::File => {
                    c.files += 1;
                    c.bytes += e.size;
                }
                EntryKind::Dir if e.path.is_empty() => {}
                EntryKind::Dir => c.dirs += 1,
                EntryKind::Symlink => c.symlinks += 1,
                EntryKind::Other => c.other += 1,
            }
        }
        c
    }

    /// Entries other than the top directory.
    pub fn len_without_root(&self) -> u64 {
        self.entries.iter().filter(|e| !e.path.is_empty()).count() as u64
    }

    /// Find an entry by path.
    pub fn get(&self, path: &[u8]) -> Option<&Entry> {
        self.entries
            .binary_search_by(|e| e.path.as_slice().cmp(path))
            .ok()
            .map(|i| &self.entries[i])
    }

    /// Where the root file of a manifest is stored.
    pub fn path_in(dir: &Path, root: &str) -> PathBuf {
        dir.join(format!("{root}.json"))
    }

    /// Store under `dir`: one tree object per directory under `trees/`, named by its Merkle node
    /// hash (so unchanged directories are shared by every manifest that contains them), then the
    /// small root file `<root>.json`. Objects are written children first and made durable (one
    /// `syncfs`) before the root file that refers to them is written atomically.
    pub fn store(&self, dir: &Path) -> Result<PathBuf, BackupError> {
        let path = Self::path_in(dir, &self.root);
        if path.exists() {
            return Ok(path);
        }
        let mut written = Vec::new();
        self.write_missing(dir, b"", &mut written)?;
        if written.len() > SYNCFS_THRESHOLD {
            // Many new objects (a first manifest): one filesystem sync beats thousands of fsyncs.
            let f = std::fs::File::open(dir).map_err(|e| BackupError::io(dir, e))?;
            rustix::fs::syncfs(&f).map_err(|e| BackupError::io(dir, e.into()))?;
        } else {
            // Concurrent fsyncs share journal commits: far cheaper than one after another.
            use rayon::prelude::*;
            written.par_iter().try_for_each(|p| {
                std::fs::File::open(p)
                    .and_then(|f| f.sync_all())
                    .map_err(|e| BackupError::io(p, e))
            })?;
            let dirs: HashSet<PathBuf> = written
                .iter()
                .filter_map(|p| p.parent().map(Path::to_path_buf))
                .collect();
            dirs.par_iter().try_for_each(|d| {
                repoman_core::fs::sync_dir(d).map_err(|e| BackupError::io(d, e))
            })?;
        }
        let wire = WireRoot {
            schema: MANIFEST_FORMAT.into(),
            project: self.project.clone(),
            root: self.root.clone(),
            created_at: self.created_at.clone(),
            counts: self.counts(),
        };
        let mut bytes =
            serde_json::to_vec(&wire).map_err(|e| BackupError::Config(e.to_string()))?;
        bytes.push(b'\n');
        repoman_core::fs::write_atomic(&path, &bytes, Some(0o644))?;
        Ok(path)
    }

    /// Load the manifest with `root` from `dir`, recomputing every node hash on the way: a damaged
    /// or missing object is an error, never a silently different manifest.
    pub fn load(dir: &Path, root: &str) -> Result<Self, BackupError> {
        let path = Self::path_in(dir, root);
        let bad = |message: String| BackupError::Manifest {
            path: path.clone(),
            message,
        };
        let bytes = std::fs::read(&path).map_err(|e| BackupError::io(&path, e))?;
        let wire: WireRoot = serde_json::from_slice(&bytes).map_err(|e| bad(e.to_string()))?;
        if wire.schema != MANIFEST_FORMAT {
            return Err(bad(format!("unknown schema {:?}", wire.schema)));
        }
        if wire.root != root {
            return Err(bad(format!(
                "records root {}, expected {root}: the file is damaged",
                wire.root
            )));
        }
        let mut entries = Vec::new();
        load_tree(dir, root, Vec::new(), &mut entries)?;
        let m = Self::from_entries(&wire.project, wire.created_at, entries);
        if m.root != root {
            return Err(bad(format!(
                "content does not match its root (computed {}): the manifest is damaged",
                m.root
            )));
        }
        Ok(m)
    }

    /// The manifest after a sync whose rsync run reported `items`, without walking anything:
    /// rsync itemizes every entry it creates, changes or deletes, so every other entry of the
    /// backup is exactly as in `self`. Changed entries are read from `dst` (file content hashed
    /// only when it was transferred or its size or mtime moved).
    pub fn apply(
        &self,
        items: &[crate::rsync::PlanItem],
        dst: &Path,
        created_at: String,
    ) -> Result<Self, BackupError> {
        use crate::rsync::Change;
        // The changes as an overlay (path -> new entry, or removed) plus removed subtrees, merged
        // with the sorted old entries in one pass: O(entries + items log items).
        let mut overlay: std::collections::BTreeMap<Vec<u8>, Option<Entry>> = Default::default();
        let mut removed_dirs: Vec<Vec<u8>> = Vec::new();
        for item in items {
            let full = join(dst, &item.path);
            let meta = match item.change {
                Change::Delete => None,
                _ => match std::fs::symlink_metadata(&full) {
                    Ok(m) => Some(m),
                    Err(e) if e.kind() == io::ErrorKind::NotFound => None,
                    Err(e) => return Err(BackupError::io(&full, e)),
                },
            };
            let Some(meta) = meta else {
                removed_dirs.push(item.path.clone());
                overlay.insert(item.path.clone(), None);
                continue;
            };
            let mut e = Entry::from_meta(item.path.clone(), &meta);
            let old = match overlay.get(&item.path) {
                Some(o) => o.as_ref(),
                None => self.get(&item.path),
            };
            match e.kind {
                EntryKind::File => {
                    let reuse = matches!(item.change, Change::Attributes)
                        && old.is_some_and(|o| {
                            o.kind == EntryKind::File
                                && o.size == e.size
                                && o.mtime == e.mtime
                                && o.mtime_nsec == e.mtime_nsec
                        });
                    e.hash = match (reuse, old) {
                        (true, Some(o)) => o.hash,
                        _ => Some(
                            hash_file(&full, e.size).map_err(|err| BackupError::io(&full, err))?,
                        ),
                    };
                }
                EntryKind::Symlink => {
                    let t = std::fs::read_link(&full).map_err(|err| BackupError::io(&full, err))?;
                    e.target = Some(t.as_os_str().as_bytes().to_vec());
                }
                _ => {}
            }
            if e.kind != EntryKind::Dir {
                // A directory replaced by something else: its old contents are gone.
                removed_dirs.push(item.path.clone());
            }
            overlay.insert(item.path.clone(), Some(e));
        }
        let removed: HashSet<&[u8]> = removed_dirs.iter().map(Vec::as_slice).collect();
        // Whether an ancestor of `p` was removed (O(depth) lookups).
        let under_removed = |p: &[u8]| {
            !removed.is_empty()
                && p.iter()
                    .enumerate()
                    .any(|(i, &b)| b == b'/' && removed.contains(&p[..i]))
        };
        let mut out = Vec::with_capacity(self.entries.len() + overlay.len());
        for e in &self.entries {
            if overlay.contains_key(&e.path) || under_removed(&e.path) {
                continue;
            }
            out.push(e.clone());
        }
        // Every overlay entry was found on the backup after the run: it is part of the copy.
        out.extend(overlay.into_values().flatten());
        Ok(Self::from_entries(&self.project, created_at, out))
    }
}

/// The Merkle root of sorted entries (hex).
pub fn merkle_root(entries: &[Entry]) -> String {
    let tree = Tree::new(entries);
    blake3::Hash::from(tree.hash_of(b"")).to_hex().to_string()
}

/// The directory structure of a sorted entry list, with every directory's node hash.
struct Tree<'a> {
    entries: &'a [Entry],
    /// Children (entry indexes, sorted by name) per directory path.
    children: HashMap<&'a [u8], Vec<usize>>,
    /// Node hash per directory path.
    hashes: HashMap<&'a [u8], [u8; 32]>,
}

fn name_of(path: &[u8]) -> &[u8] {
    match path.iter().rposition(|&b| b == b'/') {
        Some(s) => &path[s + 1..],
        None => path,
    }
}

impl<'a> Tree<'a> {
    fn new(entries: &'a [Entry]) -> Self {
        let mut children: HashMap<&[u8], Vec<usize>> = HashMap::new();
        let mut root_mode = 0;
        for (i, e) in entries.iter().enumerate() {
            if e.path.is_empty() {
                root_mode = e.mode;
                continue;
            }
            let parent = match e.path.iter().rposition(|&b| b == b'/') {
                Some(p) => &e.path[..p],
                None => &e.path[..0],
            };
            children.entry(parent).or_default().push(i);
        }
        for kids in children.values_mut() {
            kids.sort_by(|&a, &b| name_of(&entries[a].path).cmp(name_of(&entries[b].path)));
        }
        let mut t = Self {
            entries,
            children,
            hashes: HashMap::new(),
        };
        t.compute(b"", root_mode);
        t
    }

    fn compute(&mut self, dir: &'a [u8], mode: u32) -> [u8; 32] {
        let kids = self.children.get(dir).cloned().unwrap_or_default();
        let mut child_hashes = Vec::with_capacity(kids.len());
        for &i in &kids {
            let e = &self.entries[i];
            let h = if e.kind == EntryKind::Dir {
                self.compute(&e.path, e.mode)
            } else {
                e.leaf_hash()
            };
            child_hashes.push((name_of(&e.path), h));
        }
        let h = dir_hash(mode, child_hashes.iter().map(|(n, h)| (*n, h)));
        self.hashes.insert(dir, h);
        h
    }

    fn hash_of(&self, dir: &[u8]) -> [u8; 32] {
        self.hashes.get(dir).copied().unwrap_or([0; 32])
    }
}

/// A directory's node hash from its mode and its children's (name, hash) in name order.
fn dir_hash<'n>(mode: u32, children: impl Iterator<Item = (&'n [u8], &'n [u8; 32])>) -> [u8; 32] {
    let mut h = blake3::Hasher::new();
    h.update(b"repoman.dir.v1\0");
    h.update(&mode.to_le_bytes());
    for (name, child) in children {
        h.update(&(name.len() as u64).to_le_bytes());
        h.update(name);
        h.update(child);
    }
    *h.finalize().as_bytes()
}

/// Above this many new tree objects, `store` makes them durable with one `syncfs`.
const SYNCFS_THRESHOLD: usize = 64;

/// The tree object format tag.
pub const TREE_FORMAT: &str = "repoman.manifest-tree/v1";

fn tree_path(store: &Path, id: &str) -> PathBuf {
    store
        .join("trees")
        .join(&id[..2])
        .join(format!("{id}.json"))
}

/// Load the tree object `id` (the directory at `path`) and everything below, checking hashes.
fn load_tree(
    store: &Path,
    id: &str,
    path: Vec<u8>,
    out: &mut Vec<Entry>,
) -> Result<u32, BackupError> {
    let file = tree_path(store, id);
    let bad = |message: String| BackupError::Manifest {
        path: file.clone(),
        message,
    };
    if id.len() != 64 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(bad(format!("invalid tree id {id:?}")));
    }
    let bytes = std::fs::read(&file).map_err(|e| BackupError::io(&file, e))?;
    let obj: WireTree = serde_json::from_slice(&bytes).map_err(|e| bad(e.to_string()))?;
    if obj.schema != TREE_FORMAT {
        return Err(bad(format!("unknown schema {:?}", obj.schema)));
    }
    let mut hashes: Vec<(Vec<u8>, [u8; 32])> = Vec::with_capacity(obj.entries.len());
    for w in obj.entries {
        let name = decode_path(&w.name);
        if name.is_empty() || name.contains(&b'/') || name == b"." || name == b".." {
            return Err(bad(format!("invalid entry name {:?}", w.name)));
        }
        let mut child_path = path.clone();
        if !child_path.is_empty() {
            child_path.push(b'/');
        }
        child_path.extend_from_slice(&name);
        let tree = w.tree.clone();
        let mut e = w.into_entry(child_path.clone()).map_err(&bad)?;
        let h = if e.kind == EntryKind::Dir {
            let child_id = tree.ok_or_else(|| {
                bad(format!(
                    "directory {} has no tree",
                    encode_path(&child_path)
                ))
            })?;
            e.mode = load_tree(store, &child_id, child_path, out)?;
            *blake3::Hash::from_hex(&child_id)
                .map_err(|err| bad(err.to_string()))?
                .as_bytes()
        } else {
            let h = e.leaf_hash();
            out.push(e);
            h
        };
        hashes.push((name, h));
    }
    hashes.sort_by(|a, b| a.0.cmp(&b.0));
    let computed = dir_hash(obj.mode, hashes.iter().map(|(n, h)| (n.as_slice(), h)));
    if blake3::Hash::from(computed).to_hex().as_str() != id {
        return Err(bad(
            "content does not match its hash: the manifest is damaged".into(),
        ));
    }
    out.push(Entry {
        path,
        kind: EntryKind::Dir,
        mode: obj.mode,
        size: 0,
        mtime: 0,
        mtime_nsec: 0,
        hash: None,
        target: None,
    });
    Ok(obj.mode)
}

#[derive(Serialize, Deserialize)]
struct WireRoot {
    schema: String,
    project: String,
    root: String,
    created_at: String,
    counts: Counts,
}

#[derive(Serialize, Deserialize)]
struct WireTree {
    schema: String,
    mode: u32,
    entries: Vec<WireEntry>,
}

#[derive(Serialize, Deserialize)]
struct WireEntry {
    name: String,
    #[serde(rename = "type")]
    kind: EntryKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    mode: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    size: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    mtime: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    mtime_nsec: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    blake3: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    target: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    tree: Option<String>,
}

impl WireEntry {
    fn new(e: &Entry, tree: Option<String>) -> Self {
        let dir = e.kind == EntryKind::Dir;
        let timed = matches!(e.kind, EntryKind::File | EntryKind::Symlink);
        Self {
            name: encode_path(name_of(&e.path)),
            kind: e.kind,
            mode: (!dir).then_some(e.mode),
            size: (e.kind == EntryKind::File).then_some(e.size),
            mtime: timed.then_some(e.mtime),
            mtime_nsec: timed.then_some(e.mtime_nsec),
            blake3: e.hash_hex(),
            target: e.target.as_deref().map(encode_path),
            tree,
        }
    }

    fn into_entry(self, path: Vec<u8>) -> Result<Entry, String> {
        let hash = match &self.blake3 {
            Some(h) => Some(
                *blake3::Hash::from_hex(h)
                    .map_err(|e| format!("entry {}: {e}", self.name))?
                    .as_bytes(),
            ),
            None => None,
        };
        Ok(Entry {
            path,
            kind: self.kind,
            mode: self.mode.unwrap_or(0),
            size: self.size.unwrap_or(0),
            mtime: self.mtime.unwrap_or(0),
            mtime_nsec: self.mtime_nsec.unwrap_or(0),
            hash,
            target: self.target.as_deref().map(decode_path),
        })
    }
}

/// The working copy's `lstat` fields that decide whether a file is unchanged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LocalStat {
    pub kind: u8,
    pub mode: u32,
    pub size: u64,
    pub mtime: i64,
    pub mtime_nsec: u32,
    pub ino: u64,
    pub ctime: i64,
    pub ctime_nsec: u32,
}

impl LocalStat {
    pub fn of(meta: &Metadata) -> Self {
        Self {
            kind: EntryKind::of(meta).tag(),
            mode: meta.mode(),
            size: meta.len(),
            mtime: meta.mtime(),
            mtime_nsec: meta.mtime_nsec() as u32,
            ino: meta.ino(),
            ctime: meta.ctime(),
            ctime_nsec: meta.ctime_nsec() as u32,
        }
    }
}

/// Per path: the local stat and the entry recorded for it.
#[derive(Debug, Clone, Default)]
pub struct StatCache {
    pub map: HashMap<Vec<u8>, (LocalStat, Entry)>,
}

const CACHE_MAGIC: &[u8] = b"repoman-statcache-v1\n";

impl StatCache {
    /// Load; a missing or unreadable cache is an empty one (it is rebuildable).
    pub fn load(path: &Path) -> Self {
        std::fs::read(path)
            .ok()
            .and_then(|b| Self::decode(&b))
            .unwrap_or_default()
    }

    /// Save atomically.
    pub fn save(&self, path: &Path) -> Result<(), BackupError> {
        if let Some(dir) = path.parent() {
            repoman_core::paths::ensure_dir(dir)
                .map_err(|e| BackupError::io(dir, io::Error::other(e.to_string())))?;
        }
        repoman_core::fs::write_atomic(path, &self.encode(), Some(0o600))?;
        Ok(())
    }

    fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.map.len() * 128);
        out.extend_from_slice(CACHE_MAGIC);
        for (path, (s, e)) in &self.map {
            put_bytes(&mut out, path);
            out.push(s.kind);
            out.extend_from_slice(&s.mode.to_le_bytes());
            out.extend_from_slice(&s.size.to_le_bytes());
            out.extend_from_slice(&s.mtime.to_le_bytes());
            out.extend_from_slice(&s.mtime_nsec.to_le_bytes());
            out.extend_from_slice(&s.ino.to_le_bytes());
            out.extend_from_slice(&s.ctime.to_le_bytes());
            out.extend_from_slice(&s.ctime_nsec.to_le_bytes());
            out.push(e.kind.tag());
            out.extend_from_slice(&e.mode.to_le_bytes());
            out.extend_from_slice(&e.size.to_le_bytes());
            out.extend_from_slice(&e.mtime.to_le_bytes());
            out.extend_from_slice(&e.mtime_nsec.to_le_bytes());
            match &e.hash {
                Some(h) => {
                    out.push(1);
                    out.extend_from_slice(h);
                }
                None => out.push(0),
            }
            match &e.target {
                Some(t) => {
                    out.push(1);
                    put_bytes(&mut out, t);
                }
                None => out.push(0),
            }
        }
        out
    }

    fn decode(b: &[u8]) -> Option<Self> {
        let mut r = Reader(b.strip_prefix(CACHE_MAGIC)?);
        let mut map = HashMap::new();
        while !r.0.is_empty() {
            let path = r.bytes()?;
            let s = LocalStat {
                kind: r.u8()?,
                mode: r.u32()?,
                size: r.u64()?,
                mtime: r.u64()? as i64,
                mtime_nsec: r.u32()?,
                ino: r.u64()?,
                ctime: r.u64()? as i64,
                ctime_nsec: r.u32()?,
            };
            let kind = match r.u8()? {
                b'f' => EntryKind::File,
                b'd' => EntryKind::Dir,
                b'l' => EntryKind::Symlink,
                _ => EntryKind::Other,
            };
            let mode = r.u32()?;
            let size = r.u64()?;
            let mtime = r.u64()? as i64;
            let mtime_nsec = r.u32()?;
            let hash = if r.u8()? == 1 {
                Some(r.take(32)?.try_into().ok()?)
            } else {
                None
            };
            let target = if r.u8()? == 1 { Some(r.bytes()?) } else { None };
            let e = Entry {
                path: path.clone(),
                kind,
                mode,
                size,
                mtime,
                mtime_nsec,
                hash,
                target,
            };
            map.insert(path, (s, e));
        }
        Some(Self { map })
    }
}

fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    out.extend_from_slice(&(b.len() as u32).to_le_bytes());
    out.extend_from_slice(b);
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Some(a)
    }
    fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }
    fn u32(&mut self) -> Option<u32> {
        self.take(4)
            .and_then(|b| b.try_into().ok())
            .map(u32::from_le_bytes)
    }
    fn u64(&mut self) -> Option<u64> {
        self.take(8)
            .and_then(|b| b.try_into().ok())
            .map(u64::from_le_bytes)
    }
    fn bytes(&mut self) -> Option<Vec<u8>> {
        let n = self.u32()? as usize;
        self.take(n).map(<[u8]>::to_vec)
    }
}

/// Walk `root` in parallel (not following symlinks), skipping excluded entries and everything
/// below excluded directories. Returns (relative path, lstat) including the top directory.
pub fn walk(
    root: &Path,
    excludes: &Excludes,
    cancel: &Cancel,
) -> Result<Vec<(Vec<u8>, Metadata)>, BackupError> {
    let top = std::fs::symlink_metadata(root).map_err(|e| BackupError::io(root, e))?;
    let out = Mutex::new(vec![(Vec::new(), top)]);
    let err: Mutex<Option<BackupError>> = Mutex::new(None);
    rayon::scope(|s| walk_dir(s, root, Vec::new(), excludes, cancel, &out, &err));
    if let Some(e) = err.into_inner().unwrap_or_else(|p| p.into_inner()) {
        return Err(e);
    }
    if cancel.is_cancelled() {
        return Err(BackupError::Cancelled);
    }
    Ok(out.into_inner().unwrap_or_else(|p| p.into_inner()))
}

type WalkOut = Mutex<Vec<(Vec<u8>, Metadata)>>;

fn walk_dir<'s>(
    s: &rayon::Scope<'s>,
    root: &'s Path,
    rel: Vec<u8>,
    excludes: &'s Excludes,
    cancel: &'s Cancel,
    out: &'s WalkOut,
    err: &'s Mutex<Option<BackupError>>,
) {
    if cancel.is_cancelled() {
        return;
    }
    let dir = join(root, &rel);
    let fail = |e: BackupError| {
        if let Ok(mut slot) = err.lock() {
            slot.get_or_insert(e);
        }
    };
    let rd = match std::fs::read_dir(&dir) {
        Ok(rd) => rd,
        Err(e) => return fail(BackupError::io(&dir, e)),
    };
    let mut local = Vec::new();
    for ent in rd {
        let ent = match ent {
            Ok(e) => e,
            Err(e) => return fail(BackupError::io(&dir, e)),
        };
        let name = ent.file_name();
        let mut path = rel.clone();
        if !path.is_empty() {
            path.push(b'/');
        }
        path.extend_from_slice(name.as_bytes());
        let meta = match ent.metadata() {
            Ok(m) => m,
            // Deleted between readdir and lstat: it is simply not part of the tree.
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return fail(BackupError::io(ent.path(), e)),
        };
        let is_dir = meta.is_dir();
        if excludes.is_excluded(&path, is_dir) {
            continue;
        }
        if is_dir {
            let sub = path.clone();
            s.spawn(move |s| walk_dir(s, root, sub, excludes, cancel, out, err));
        }
        local.push((path, meta));
    }
    if let Ok(mut o) = out.lock() {
        o.extend(local);
    }
}

/// Hash a file's content with BLAKE3 (large files in chunks hashed on all cores).
///
/// The file is read, never mapped: a mapped file that the sandbox truncates while it is hashed
/// kills repoman with SIGBUS, and read faults on a mapped tmpfs file fill its holes (a sparse
/// image on a tmpfs backup would be inflated to its full size). It is opened without following a
/// final symlink and without blocking on a FIFO (the sandbox may swap either in after the walk),
/// and anything but a regular file is refused.
pub fn hash_file(path: &Path, size: u64) -> io::Result<[u8; 32]> {
    use rustix::fs::{Mode, OFlags};
    let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::NOCTTY;
    let fd =
        rustix::fs::open(path, flags | OFlags::CLOEXEC, Mode::empty()).map_err(|e| match e {
            rustix::io::Errno::LOOP => io::Error::new(
                io::ErrorKind::InvalidInput,
                "became a symbolic link while being read; it is not followed",
            ),
            e => io::Error::from(e),
        })?;
    let f = std::fs::File::from(fd);
    if !f.metadata()?.is_file() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "is not a regular file (a FIFO, device or socket swapped in after the walk); it is not read",
        ));
    }
    let mut h = blake3::Hasher::new();
    if size >= PARALLEL_THRESHOLD {
        let mut f = f;
        let mut buf = vec![0u8; PARALLEL_CHUNK];
        loop {
            let n = read_full(&mut f, &mut buf)?;
            if n == 0 {
                break;
            }
            h.update_rayon(&buf[..n]);
        }
    } else {
        let mut buf = Vec::with_capacity(size as usize + 1);
        { f }.read_to_end(&mut buf)?;
        h.update(&buf);
    }
    Ok(*h.finalize().as_bytes())
}

/// Fill `buf` as far as the file goes (a short read is not the end of a regular file).
fn read_full(f: &mut std::fs::File, buf: &mut [u8]) -> io::Result<usize> {
    let mut done = 0;
    while done < buf.len() {
        match f.read(&mut buf[done..]) {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(done)
}

/// What [`build`] needs.
#[derive(Debug)]
pub struct BuildInput<'a> {
    pub project: &'a str,
    /// The tree whose structure and bytes are listed (the working copy).
    pub walk_root: &'a Path,
    /// The copy the manifest must match (the backup after a sync; or `walk_root`).
    pub content_root: &'a Path,
    pub excludes: &'a Excludes,
    pub cache: Option<&'a StatCache>,
    /// Paths rsync transferred (or changed the attributes of) in this run: rsync checked their
    /// bytes on arrival, so they are read from `content_root`, and never reused from the cache.
    pub force: &'a HashSet<Vec<u8>>,
    pub cancel: &'a Cancel,
    pub created_at: String,
}

/// How much work a build did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct BuildStats {
    pub entries: u64,
    pub reused: u64,
    pub hashed: u64,
    pub bytes_hashed: u64,
}

/// What [`build`] produced.
#[derive(Debug)]
pub struct Built {
    pub manifest: Manifest,
    /// The next stat cache: only entries that describe the working copy's current `lstat`.
    pub cache: StatCache,
    pub stats: BuildStats,
    /// Paths whose working-copy and backup versions did not agree (the working copy changed
    /// while the sync ran, or rsync left the backup's version in place): the manifest cannot
    /// prove them. The caller copies them again and rebuilds.
    pub unsettled: Vec<Vec<u8>>,
}

/// Whether a recorded entry is what the working copy's `lstat` shows (so the pair may be cached).
fn entry_matches_stat(e: &Entry, s: &LocalStat) -> bool {
    e.kind.tag() == s.kind
        && e.mode == s.mode & 0o7777
        && match e.kind {
            EntryKind::File => {
                e.size == s.size && e.mtime == s.mtime && e.mtime_nsec == s.mtime_nsec
            }
            EntryKind::Symlink => e.mtime == s.mtime && e.mtime_nsec == s.mtime_nsec,
            _ => true,
        }
}

/// Whether the backup's `lstat` agrees with the working copy's where rsync's quick check looks
/// (type, permission bits, and for files size and mtime).
fn same_as_backup(local: &Metadata, backup: &Metadata) -> bool {
    let (l, b) = (EntryKind::of(local), EntryKind::of(backup));
    l == b
        && local.mode() & 0o7777 == backup.mode() & 0o7777
        && (l != EntryKind::File
            || (local.len() == backup.len()
                && local.mtime() == backup.mtime()
                && local.mtime_nsec() == backup.mtime_nsec()))
}

fn read_entry(path: &[u8], full: &Path, meta: &Metadata) -> Result<Entry, BackupError> {
    let mut entry = Entry::from_meta(path.to_vec(), meta);
    match entry.kind {
        EntryKind::File => {
            entry.hash = Some(hash_file(full, entry.size).map_err(|e| BackupError::io(full, e))?);
        }
        EntryKind::Symlink => {
            let t = std::fs::read_link(full).map_err(|e| BackupError::io(full, e))?;
            entry.target = Some(t.as_os_str().as_bytes().to_vec());
        }
        _ => {}
    }
    Ok(entry)
}

enum Outcome {
    Entry(Entry, LocalStat, bool),
    /// Not part of the copy (created in the working copy after rsync ran).
    Absent,
    Unsettled(Vec<u8>),
}

/// Build a manifest of the working copy that the content root is proven to hold.
///
/// Per entry of the working copy (walked in parallel):
/// - unchanged since the stat cache recorded it (same `lstat`) and not touched by this run:
///   the cached entry, without reading anything;
/// - transferred by this run (`force`): read and hashed from the content root, whose bytes
///   rsync verified on arrival;
/// - otherwise: hashed from the **working copy**, then accepted only if the working copy did not
///   change while it was read and the backup's `lstat` agrees with it (rsync's quick check in
///   this run left it alone because of that). The backup's bytes are never trusted unproven: a
///   backup file that rotted in place (same size and mtime) is recorded with the working copy's
///   hash, so `verify --full` reports it instead of certifying it.
pub fn build(input: &BuildInput<'_>) -> Result<Built, BackupError> {
    use rayon::prelude::*;
    let walked = walk(input.walk_root, input.excludes, input.cancel)?;
    let same_root = input.walk_root == input.content_root;
    let results: Vec<Outcome> = walked
        .par_iter()
        .map(|(path, local_meta)| -> Result<Outcome, BackupError> {
            if input.cancel.is_cancelled() {
                return Err(BackupError::Cancelled);
            }
            let local = LocalStat::of(local_meta);
            let forced = input.force.contains(path);
            if !forced
                && let Some((cached_stat, entry)) = input.cache.and_then(|c| c.map.get(path))
                && *cached_stat == local
                && entry_matches_stat(entry, &local)
            {
                return Ok(Outcome::Entry(entry.clone(), local, false));
            }
            let local_path = join(input.walk_root, path);
            if same_root {
                let entry = read_entry(path, &local_path, local_meta)?;
                return Ok(Outcome::Entry(entry, local, true));
            }
            let content_path = join(input.content_root, path);
            let backup_meta = match std::fs::symlink_metadata(&content_path) {
                Ok(m) => m,
                // Created in the working copy after rsync ran: not in the backup (yet).
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Outcome::Absent),
                Err(e) => return Err(BackupError::io(&content_path, e)),
            };
            if forced {
                let entry = read_entry(path, &content_path, &backup_meta)?;
                return Ok(Outcome::Entry(entry, local, true));
            }
            if !same_as_backup(local_meta, &backup_meta) {
                return Ok(Outcome::Unsettled(path.clone()));
            }
            let entry = match read_entry(path, &local_path, local_meta) {
                Ok(e) => e,
                Err(BackupError::Io { source, .. }) if source.kind() == io::ErrorKind::NotFound => {
                    return Ok(Outcome::Unsettled(path.clone()));
                }
                Err(e) => return Err(e),
            };
            // The bytes just read are the ones the stat describes only if nothing changed.
            match std::fs::symlink_metadata(&local_path) {
                Ok(after) if LocalStat::of(&after) == local => {
                    Ok(Outcome::Entry(entry, local, true))
                }
                _ => Ok(Outcome::Unsettled(path.clone())),
            }
        })
        .collect::<Result<_, _>>()?;
    let mut stats = BuildStats::default();
    let mut cache = StatCache::default();
    let mut entries = Vec::with_capacity(results.len());
    let mut unsettled = Vec::new();
    for r in results {
        let (entry, local, hashed) = match r {
            Outcome::Entry(e, l, h) => (e, l, h),
            Outcome::Absent => continue,
            Outcome::Unsettled(p) => {
                unsettled.push(p);
                continue;
            }
        };
        stats.entries += 1;
        if hashed {
            stats.hashed += 1;
            if entry.kind == EntryKind::File {
                stats.bytes_hashed += entry.size;
            }
        } else {
            stats.reused += 1;
        }
        // An entry read from the backup for a working-copy file that changed since rsync sent
        // it describes other bytes than that file now holds: it must not be reused next time.
        if entry_matches_stat(&entry, &local) {
            cache.map.insert(entry.path.clone(), (local, entry.clone()));
        }
        entries.push(entry);
    }
    unsettled.sort();
    Ok(Built {
        manifest: Manifest::from_entries(input.project, input.created_at.clone(), entries),
        cache,
        stats,
        unsettled,
    })
}

/// Build a manifest of one tree, hashing everything (no cache).
pub fn build_full(
    project: &str,
    root: &Path,
    excludes: &Excludes,
    cancel: &Cancel,
    created_at: String,
) -> Result<Manifest, BackupError> {
    let none = HashSet::new();
    let input = BuildInput {
        project,
        walk_root: root,
        content_root: root,
        excludes,
        cache: None,
        force: &none,
        cancel,
        created_at,
    };
    Ok(build(&input)?.manifest)
}

/// Write raw bytes of a manifest's entry list for debugging (`repoman verify --json` does not use it).
pub fn write_listing(m: &Manifest, mut w: impl Write) -> io::Result<()> {
    for e in &m.entries {
        writeln!(
            w,
            "{:?} {:o} {} {}",
            e.kind,
            e.mode,
            e.size,
            encode_path(&e.path)
        )?;
    }
    Ok(())
}

/// Whether a file type is one a manifest records as `Other`.
pub fn is_special(meta: &Metadata) -> bool {
    let t = meta.file_type();
    t.is_block_device() || t.is_char_device() || t.is_fifo() || t.is_socket()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn tree() -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("a/b")).unwrap();
        std::fs::create_dir_all(d.path().join("empty")).unwrap();
        std::fs::write(d.path().join("a/b/f"), b"hello").unwrap();
        std::fs::write(
            d.path()
                .join(std::ffi::OsStr::from_bytes(b"odd\xff name\n")),
            b"x",
        )
        .unwrap();
        std::os::unix::fs::symlink("a/b/f", d.path().join("link")).unwrap();
        d
    }

    #[test]
    fn root_is_stable_and_sensitive() {
        let d = tree();
        let c = Cancel::new();
        let ex = Excludes::default();
        let m1 = build_full("p", d.path(), &ex, &c, "t".into()).unwrap();
        let m2 = build_full("p", d.path(), &ex, &c, "t2".into()).unwrap();
        assert_eq!(m1.root, m2.root);
        assert_eq!(m1.counts().files, 2);
        assert_eq!(m1.counts().dirs, 3);
        assert_eq!(m1.counts().symlinks, 1);
        std::fs::set_permissions(
            d.path().join("a/b/f"),
            std::fs::Permissions::from_mode(0o600),
        )
        .unwrap();
        let m3 = build_full("p", d.path(), &ex, &c, "t".into()).unwrap();
        assert_ne!(m1.root, m3.root, "mode is part of the root");
        std::fs::create_dir(d.path().join("empty/more")).unwrap();
        let m4 = build_full("p", d.path(), &ex, &c, "t".into()).unwrap();
        assert_ne!(m3.root, m4.root, "empty directories count");
    }

    #[test]
    fn store_and_load_round_trip_share_unchanged_trees_and_detect_damage() {
        let d = tree();
        let (ex, c) = (Excludes::default(), Cancel::new());
        let m = build_full("p", d.path(), &ex, &c, "t".into()).unwrap();
        let dir = tempfile::tempdir().unwrap();
        m.store(dir.path()).unwrap();
        let back = Manifest::load(dir.path(), &m.root).unwrap();
        assert_eq!(back, m);
        let objects = |p: &Path| {
            walk(&p.join("trees"), &ex, &c)
                .unwrap()
                .into_iter()
                .filter(|(_, m)| m.is_file())
                .count()
        };
        let before = objects(dir.path());
        assert_eq!(before, 4, "one object per directory: top, a, a/b, empty");
        // One changed file rewrites only the directories on its path.
        std::fs::write(d.path().join("a/b/f"), b"HELLO!").unwrap();
        let m2 = build_full("p", d.path(), &ex, &c, "t".into()).unwrap();
        m2.store(dir.path()).unwrap();
        assert_eq!(objects(dir.path()), before + 3);
        assert_eq!(Manifest::load(dir.path(), &m2.root).unwrap(), m2);
        // Damage in any object is detected.
        let damaged = walk(&dir.path().join("trees"), &ex, &c)
            .unwrap()
            .into_iter()
            .map(|(p, _)| {
                dir.path()
                    .join("trees")
                    .join(std::ffi::OsStr::from_bytes(&p))
            })
            .find(|p| std::fs::read_to_string(p).is_ok_and(|t| t.contains("\"size\":5")))
            .unwrap();
        let text = std::fs::read_to_string(&damaged)
            .unwrap()
            .replace("\"size\":5", "\"size\":6");
        std::fs::write(&damaged, text).unwrap();
        let e = Manifest::load(dir.path(), &m.root).unwrap_err().to_string();
        assert!(e.contains("damaged"), "{e}");
    }

    #[test]
    fn stat_cache_makes_unchanged_files_free() {
        let d = tree();
        let c = Cancel::new();
        let ex = Excludes::default();
        let none = HashSet::new();
        let mk = |cache: Option<&StatCache>| {
            build(&BuildInput {
                project: "p",
                walk_root: d.path(),
                content_root: d.path(),
                excludes: &ex,
                cache,
                force: &none,
                cancel: &c,
                created_at: "t".into(),
            })
            .unwrap()
        };
        let b = mk(None);
        let (m1, cache, s1) = (b.manifest, b.cache, b.stats);
        assert_eq!(s1.reused, 0);
        let cache_file = d.path().join("../cache.bin");
        cache.save(&cache_file).unwrap();
        let cache = StatCache::load(&cache_file);
        let b = mk(Some(&cache));
        let (m2, s2) = (b.manifest, b.stats);
        assert_eq!(m1.root, m2.root);
        assert_eq!(s2.hashed, 0, "{s2:?}");
        std::fs::write(d.path().join("a/b/f"), b"HELLO").unwrap();
        let b = mk(Some(&cache));
        let (m3, s3) = (b.manifest, b.stats);
        assert_ne!(m3.root, m1.root);
        assert!(s3.hashed >= 1 && s3.reused >= 4, "{s3:?}");
        let _ = std::fs::remove_file(cache_file);
    }

    #[test]
    fn hash_file_refuses_links_and_fifos_without_blocking() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("f");
        std::fs::write(&f, "abc").unwrap();
        assert_eq!(hash_file(&f, 3).unwrap(), *blake3::hash(b"abc").as_bytes());
        let big = d.path().join("big");
        std::fs::write(&big, vec![7u8; PARALLEL_THRESHOLD as usize]).unwrap();
        assert_eq!(
            hash_file(&big, PARALLEL_THRESHOLD).unwrap(),
            *blake3::hash(&vec![7u8; PARALLEL_THRESHOLD as usize]).as_bytes()
        );
        let link = d.path().join("link");
        std::os::unix::fs::symlink(&f, &link).unwrap();
        let e = hash_file(&link, 3).unwrap_err();
        assert!(e.to_string().contains("symbolic link"), "{e}");
        let fifo = d.path().join("fifo");
        rustix::fs::mknodat(
            rustix::fs::CWD,
            &fifo,
            rustix::fs::FileType::Fifo,
            rustix::fs::Mode::from_raw_mode(0o600),
            0,
        )
        .unwrap();
        let e = hash_file(&fifo, 0).unwrap_err();
        assert!(e.to_string().contains("not a regular file"), "{e}");
    }
}
