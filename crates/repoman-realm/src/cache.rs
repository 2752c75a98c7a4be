//! The realm check cache, `<repo>/.repoman/cache.db` (SQLite, rebuildable, ignored by git).
//!
//! Keys follow the seed (rounds 7 and 12):
//! - `export_cache`: a source file's content hash, keyed by path and reused while its mtime and
//!   size are unchanged (touching a file re-hashes exactly that file);
//! - `contract_cache`: a contract's version history, keyed by the realm commit it was read at;
//! - `validation_cache`: a hook's verdict, keyed by contract, version and a hash of everything the
//!   hook sees (binding, hook script, source digests);
//! - `compat_cache` (ours): a compatibility diff, keyed by the hash of both schemas;
//! - `realm_load` (ours): the loaded realm, keyed by a fingerprint of every file the load reads.
//!
//! Files are sandbox-writable, so "unchanged" is never judged by mtime and size alone (both can be
//! set back with `touch`): a file's identity is its device, inode, size, mode, mtime **and ctime**,
//! which no unprivileged process can set. A file whose ctime is within [`RACY_NS`] of the moment
//! its entry was stored may have been rewritten within the same timestamp tick, so the entry is
//! not trusted (git's "racily clean" rule); the next run stores a fresh one.
//!
//! A cache that cannot be opened or is corrupt is moved aside and recreated: it holds nothing
//! durable. `--no-cache` bypasses it entirely (nothing read, nothing written).

use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;
use std::path::{Path, PathBuf};

/// Bumped when a table changes; an older file's tables are dropped and recreated.
const SCHEMA_VERSION: i64 = 2;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS export_cache (
    file_path TEXT PRIMARY KEY,
    stat TEXT NOT NULL,
    content_hash TEXT NOT NULL,
    cached_at_ns INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS realm_load (
    root TEXT PRIMARY KEY,
    fingerprint TEXT NOT NULL,
    newest_ctime_ns INTEGER NOT NULL,
    stored_at_ns INTEGER NOT NULL,
    realm TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS contract_cache (
    domain TEXT NOT NULL,
    contract TEXT NOT NULL,
    version TEXT NOT NULL,
    schema TEXT NOT NULL,
    realm_commit TEXT NOT NULL,
    PRIMARY KEY (domain, contract, version)
);
CREATE TABLE IF NOT EXISTS validation_cache (
    contract TEXT NOT NULL,
    version TEXT NOT NULL,
    binding_hash TEXT NOT NULL,
    valid INTEGER NOT NULL,
    output TEXT NOT NULL,
    validated_at INTEGER NOT NULL,
    PRIMARY KEY (contract, version, binding_hash)
);
CREATE TABLE IF NOT EXISTS compat_cache (
    key TEXT PRIMARY KEY,
    analysis TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS stats (
    name TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);
";

#[derive(Debug, thiserror::Error)]
#[error("realm cache {path}: {source}")]
pub struct CacheError {
    pub path: PathBuf,
    #[source]
    pub source: rusqlite::Error,
}

/// Hit/miss counters of one run (also accumulated in the `stats` table).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Counters {
    pub hits: u64,
    pub misses: u64,
}

/// The cache, or nothing (`--no-cache`).
#[derive(Debug)]
pub struct Cache {
    conn: Option<Connection>,
    path: PathBuf,
    pub counters: Counters,
}

/// Row counts and lifetime hit/miss totals, for `realm admin cache stats`.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct CacheStats {
    pub path: PathBuf,
    pub exists: bool,
    pub bytes: u64,
    pub export_entries: u64,
    pub contract_entries: u64,
    pub validation_entries: u64,
    pub compat_entries: u64,
    pub realm_entries: u64,
    pub hits: u64,
    pub misses: u64,
}

pub fn cache_path(repo_dir: &Path) -> PathBuf {
    repo_dir.join(".repoman").join("cache.db")
}

const TABLES: [&str; 6] = [
    "export_cache",
    "realm_load",
    "contract_cache",
    "validation_cache",
    "compat_cache",
    "stats",
];

fn open_conn(path: &Path) -> Result<Connection, rusqlite::Error> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    conn.execute_batch("PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;")?;
    // A file that is not a database (or a corrupt header) fails here; damage deeper in the file
    // shows up as query errors, which every lookup treats as a miss.
    let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if version != SCHEMA_VERSION {
        // An older layout: everything in it is rebuildable, so start afresh.
        let tx = conn.unchecked_transaction()?;
        for t in TABLES {
            tx.execute_batch(&format!("DROP TABLE IF EXISTS {t};"))?;
        }
        tx.execute_batch(SCHEMA)?;
        tx.execute_batch(&format!("PRAGMA user_version = {SCHEMA_VERSION};"))?;
        tx.commit()?;
    } else {
        conn.execute_batch(SCHEMA)?;
    }
    Ok(conn)
}

/// How close to the moment an entry was stored a file's ctime may be before the entry is not
/// trusted: a rewrite within the same timestamp tick keeps the ctime, so an entry stored in that
/// tick could describe the earlier bytes. One second covers every local filesystem's timestamp
/// granularity (FAT's two-second mtime is not a ctime).
pub const RACY_NS: i64 = 1_000_000_000;

/// The wall clock in nanoseconds since the epoch (never the command's injected clock: racy
/// entries are judged against the kernel's file timestamps).
pub fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i64)
}

/// What identifies one version of a file without reading it: device, inode, mode, size, mtime
/// and ctime (the last cannot be set by an unprivileged process), and its ctime alone.
fn stat_key(meta: &std::fs::Metadata) -> (String, i64) {
    use std::os::unix::fs::MetadataExt;
    let ctime = meta.ctime() * 1_000_000_000 + meta.ctime_nsec();
    let key = format!(
        "{}:{}:{:o}:{}:{}.{:09}:{}",
        meta.dev(),
        meta.ino(),
        meta.mode(),
        meta.len(),
        meta.mtime(),
        meta.mtime_nsec(),
        ctime
    );
    (key, ctime)
}

/// The identity of every file in a list (paths in order, each with its [`stat_key`]), hashed;
/// and the newest ctime among them, for the racy rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fingerprint {
    pub hash: String,
    pub newest_ctime_ns: i64,
}

impl Fingerprint {
    /// `None` when a file cannot be stat'ed (it vanished): nothing is cached then.
    pub fn of<'a>(paths: impl IntoIterator<Item = &'a Path>) -> Option<Fingerprint> {
        let mut h = blake3::Hasher::new();
        let mut newest = i64::MIN;
        for p in paths {
            // The load follows symbolic links, so the fingerprint describes what they point to.
            let meta = std::fs::metadata(p).ok()?;
            let (key, ctime) = stat_key(&meta);
            h.update(p.as_os_str().as_encoded_bytes());
            h.update(b"\0");
            h.update(key.as_bytes());
            h.update(b"\n");
            newest = newest.max(ctime);
        }
        Some(Fingerprint {
            hash: h.finalize().to_hex().to_string(),
            newest_ctime_ns: newest,
        })
    }
}

impl Cache {
    /// No cache: every lookup misses and nothing is stored.
    pub fn disabled(repo_dir: &Path) -> Cache {
        Cache {
            conn: None,
            path: cache_path(repo_dir),
            counters: Counters::default(),
        }
    }

    /// Opens (creating) `<repo>/.repoman/cache.db`; a corrupt file is moved aside and recreated.
    pub fn open(repo_dir: &Path) -> Result<Cache, CacheError> {
        let path = cache_path(repo_dir);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| CacheError {
                path: path.clone(),
                source: rusqlite::Error::ToSqlConversionFailure(Box::new(e)),
            })?;
        }
        let conn = match open_conn(&path) {
            Ok(c) => c,
            Err(_) => {
                let aside = path.with_extension("db.corrupt");
                let _ = std::fs::rename(&path, &aside);
                for ext in ["db-wal", "db-shm"] {
                    let _ = std::fs::remove_file(path.with_extension(ext));
                }
                open_conn(&path).map_err(|source| CacheError {
                    path: path.clone(),
                    source,
                })?
            }
        };
        Ok(Cache {
            conn: Some(conn),
            path,
            counters: Counters::default(),
        })
    }

    pub fn enabled(&self) -> bool {
        self.conn.is_some()
    }

    fn hit(&mut self, hit: bool) {
        if self.conn.is_some() {
            if hit {
                self.counters.hits += 1;
            } else {
                self.counters.misses += 1;
            }
        }
    }

    /// The content hash of the file `rel` in the repo `dir`, reusing the cached one while the
    /// file's identity (device, inode, mode, size, mtime, ctime) is unchanged. The repo is sandbox-writable: a symlink is not followed, `..` is
    /// refused, and a FIFO or device is refused without blocking
    /// ([`crate::realm::read_source_file`]).
    pub fn file_hash(&mut self, key: &str, dir: &Path, rel: &str) -> std::io::Result<String> {
        let path = dir.join(rel);
        let meta = std::fs::symlink_metadata(&path)?;
        if !meta.is_file() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "is not a regular file (a symbolic link, FIFO, device or directory); it is not read",
            ));
        }
        let started = now_ns();
        let (stat, ctime) = stat_key(&meta);
        if let Some(conn) = &self.conn {
            let cached: Option<String> = conn
                .prepare_cached("SELECT content_hash FROM export_cache WHERE file_path = ?1 AND stat = ?2 AND ?3 + ?4 < cached_at_ns")
                .and_then(|mut st| st.query_row(params![key, stat, ctime, RACY_NS], |r| r.get(0)).optional())
                .ok()
                .flatten();
            if let Some(h) = cached {
                self.hit(true);
                return Ok(h);
            }
        }
        self.hit(false);
        // Stat before reading: a change after the stat has a newer ctime, so the entry stored
        // under the old identity is never reused for the new bytes.
        let hash = blake3::hash(&crate::realm::read_source_file(dir, rel)?)
            .to_hex()
            .to_string();
        if let Some(conn) = &self.conn {
            let _ = conn.execute(
                "INSERT OR REPLACE INTO export_cache (file_path, stat, content_hash, cached_at_ns) VALUES (?1, ?2, ?3, ?4)",
                params![key, stat, hash, started],
            );
        }
        Ok(hash)
    }

    /// The cached load of the realm at `root`, when its fingerprint is unchanged and no file
    /// was racily new when it was stored.
    pub fn realm_load(&mut self, root: &str, fp: &Fingerprint) -> Option<String> {
        let conn = self.conn.as_ref()?;
        let v: Option<String> = conn
            .prepare_cached("SELECT realm FROM realm_load WHERE root = ?1 AND fingerprint = ?2 AND newest_ctime_ns + ?3 < stored_at_ns")
            .and_then(|mut st| st.query_row(params![root, fp.hash, RACY_NS], |r| r.get(0)).optional())
            .ok()
            .flatten();
        self.hit(v.is_some());
        v
    }

    /// Stores a load whose fingerprint was taken at `started_ns` (before any file was read).
    pub fn store_realm_load(&mut self, root: &str, fp: &Fingerprint, started_ns: i64, json: &str) {
        if let Some(conn) = &self.conn {
            let _ = conn.execute(
                "INSERT OR REPLACE INTO realm_load (root, fingerprint, newest_ctime_ns, stored_at_ns, realm) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![root, fp.hash, fp.newest_ctime_ns, started_ns, json],
            );
        }
    }

    /// Cached history of a contract read at `realm_commit`, as JSON.
    pub fn contract_history(
        &mut self,
        domain: &str,
        contract: &str,
        realm_commit: &str,
    ) -> Option<String> {
        let conn = self.conn.as_ref()?;
        let v: Option<String> = conn
            .prepare_cached("SELECT schema FROM contract_cache WHERE domain = ?1 AND contract = ?2 AND version = '*history*' AND realm_commit = ?3")
            .and_then(|mut st| st.query_row(params![domain, contract, realm_commit], |r| r.get(0)).optional())
            .ok()
            .flatten();
        self.hit(v.is_some());
        v
    }

    pub fn store_contract_history(
        &mut self,
        domain: &str,
        contract: &str,
        realm_commit: &str,
        json: &str,
    ) {
        if let Some(conn) = &self.conn {
            let _ = conn.execute(
                "INSERT OR REPLACE INTO contract_cache (domain, contract, version, schema, realm_commit) VALUES (?1, ?2, '*history*', ?3, ?4)",
                params![domain, contract, json, realm_commit],
            );
        }
    }

    /// A cached hook verdict: (exit code, output).
    pub fn validation(
        &mut self,
        contract: &str,
        version: &str,
        binding_hash: &str,
    ) -> Option<(i64, String)> {
        let conn = self.conn.as_ref()?;
        let v = conn
            .query_row(
                "SELECT valid, output FROM validation_cache WHERE contract = ?1 AND version = ?2 AND binding_hash = ?3",
                params![contract, version, binding_hash],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
            .ok()
            .flatten();
        self.hit(v.is_some());
        v
    }

    pub fn store_validation(
        &mut self,
        contract: &str,
        version: &str,
        binding_hash: &str,
        code: i64,
        output: &str,
        now: i64,
    ) {
        if let Some(conn) = &self.conn {
            let _ = conn.execute(
                "INSERT OR REPLACE INTO validation_cache (contract, version, binding_hash, valid, output, validated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![contract, version, binding_hash, code, output, now],
            );
        }
    }

    pub fn compat(&mut self, key: &str) -> Option<String> {
        let conn = self.conn.as_ref()?;
        let v = conn
            .query_row(
                "SELECT analysis FROM compat_cache WHERE key = ?1",
                params![key],
                |r| r.get(0),
            )
            .optional()
            .ok()
            .flatten();
        self.hit(v.is_some());
        v
    }

    pub fn store_compat(&mut self, key: &str, analysis: &str) {
        if let Some(conn) = &self.conn {
            let _ = conn.execute(
                "INSERT OR REPLACE INTO compat_cache (key, analysis) VALUES (?1, ?2)",
                params![key, analysis],
            );
        }
    }

    /// Adds this run's counters to the lifetime totals.
    pub fn flush_counters(&mut self) {
        if let Some(conn) = &self.conn {
            for (name, v) in [
                ("hits", self.counters.hits),
                ("misses", self.counters.misses),
            ] {
                let _ = conn.execute(
                    "INSERT INTO stats (name, value) VALUES (?1, ?2) ON CONFLICT(name) DO UPDATE SET value = value + ?2",
                    params![name, v as i64],
                );
            }
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// `realm admin cache stats` (never creates the file).
pub fn stats(repo_dir: &Path) -> Result<CacheStats, CacheError> {
    let path = cache_path(repo_dir);
    let mut s = CacheStats {
        path: path.clone(),
        exists: path.is_file(),
        bytes: std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0),
        export_entries: 0,
        contract_entries: 0,
        validation_entries: 0,
        compat_entries: 0,
        realm_entries: 0,
        hits: 0,
        misses: 0,
    };
    if !s.exists {
        return Ok(s);
    }
    let conn = open_conn(&path).map_err(|source| CacheError {
        path: path.clone(),
        source,
    })?;
    let count = |t: &str| -> u64 {
        conn.query_row(&format!("SELECT COUNT(*) FROM {t}"), [], |r| {
            r.get::<_, i64>(0)
        })
        .unwrap_or(0) as u64
    };
    s.export_entries = count("export_cache");
    s.contract_entries = count("contract_cache");
    s.validation_entries = count("validation_cache");
    s.compat_entries = count("compat_cache");
    s.realm_entries = count("realm_load");
    let stat = |n: &str| -> u64 {
        conn.query_row("SELECT value FROM stats WHERE name = ?1", params![n], |r| {
            r.get::<_, i64>(0)
        })
        .unwrap_or(0) as u64
    };
    s.hits = stat("hits");
    s.misses = stat("misses");
    Ok(s)
}

/// `realm admin cache clear`: removes the cache file (and its WAL); returns whether one existed.
pub fn clear(repo_dir: &Path) -> std::io::Result<bool> {
    let path = cache_path(repo_dir);
    let existed = path.exists();
    for p in [
        path.clone(),
        path.with_extension("db-wal"),
        path.with_extension("db-shm"),
    ] {
        match std::fs::remove_file(&p) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    Ok(existed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set_mtime(p: &Path, t: std::time::SystemTime) {
        std::fs::File::options()
            .write(true)
            .open(p)
            .and_then(|f| f.set_modified(t))
            .expect("set mtime");
    }

    #[test]
    fn a_same_size_rewrite_with_the_old_mtime_changes_the_fingerprint() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("a.yaml");
        std::fs::write(&p, "a: 1\n").expect("write");
        let mtime = std::fs::metadata(&p)
            .and_then(|m| m.modified())
            .expect("mtime");
        let before = Fingerprint::of([p.as_path()]).expect("fingerprint");
        // Past any timestamp tick, so the rewrite gets a new ctime.
        std::thread::sleep(std::time::Duration::from_millis(30));
        std::fs::write(&p, "a: 2\n").expect("write");
        set_mtime(&p, mtime);
        let after = Fingerprint::of([p.as_path()]).expect("fingerprint");
        assert_ne!(before.hash, after.hash);
        assert!(after.newest_ctime_ns > before.newest_ctime_ns);
        // The same file, unchanged, fingerprints the same; a vanished one not at all.
        assert_eq!(Fingerprint::of([p.as_path()]), Some(after));
        assert_eq!(Fingerprint::of([dir.path().join("gone").as_path()]), None);
    }

    #[test]
    fn an_entry_stored_in_the_tick_of_its_files_last_change_is_not_trusted() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("a.yaml");
        std::fs::write(&p, "a: 1\n").expect("write");
        let fp = Fingerprint::of([p.as_path()]).expect("fingerprint");
        let mut cache = Cache::open(dir.path()).expect("open");
        // Stored right after the change: a rewrite in the same tick would keep this fingerprint.
        cache.store_realm_load("r", &fp, fp.newest_ctime_ns + RACY_NS / 2, "{}");
        assert_eq!(cache.realm_load("r", &fp), None);
        // Stored well after it: trusted.
        cache.store_realm_load("r", &fp, fp.newest_ctime_ns + RACY_NS + 1, "{}");
        assert_eq!(cache.realm_load("r", &fp).as_deref(), Some("{}"));
        // Another fingerprint never matches.
        let other = Fingerprint {
            hash: "x".into(),
            ..fp
        };
        assert_eq!(cache.realm_load("r", &other), None);
        assert_eq!(cache.counters, Counters { hits: 1, misses: 2 });
    }

    #[test]
    fn a_cache_in_the_old_layout_is_rebuilt_not_misread() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = cache_path(dir.path());
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        {
            // The layout before ctime joined the key: mtime and size only.
            let old = Connection::open(&path).expect("open");
            old.execute_batch(
                "CREATE TABLE export_cache (file_path TEXT PRIMARY KEY, mtime INTEGER NOT NULL,
                 size INTEGER NOT NULL, content_hash TEXT NOT NULL, exports TEXT,
                 cached_at INTEGER NOT NULL);
                 INSERT INTO export_cache VALUES ('r/a', 1, 5, 'stale', NULL, 1);",
            )
            .expect("old layout");
        }
        std::fs::write(dir.path().join("a"), "fresh").expect("write");
        let mut cache = Cache::open(dir.path()).expect("open");
        let hash = cache.file_hash("r/a", dir.path(), "a").expect("hash");
        assert_eq!(hash, blake3::hash(b"fresh").to_hex().to_string());
        assert_eq!(stats(dir.path()).expect("stats").export_entries, 1);
    }
}
