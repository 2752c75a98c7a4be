//! The realm check cache, `<repo>/.repoman/cache.db` (SQLite, rebuildable, ignored by git).
//!
//! Keys follow the seed (rounds 7 and 12):
//! - `export_cache`: a source file's content hash, keyed by path and reused while its mtime and
//!   size are unchanged (touching a file re-hashes exactly that file);
//! - `contract_cache`: a contract's version history, keyed by the realm commit it was read at;
//! - `validation_cache`: a hook's verdict, keyed by contract, version and a hash of everything the
//!   hook sees (binding, hook script, source digests);
//! - `compat_cache` (ours): a compatibility diff, keyed by the hash of both schemas.
//!
//! A cache that cannot be opened or is corrupt is moved aside and recreated: it holds nothing
//! durable. `--no-cache` bypasses it entirely (nothing read, nothing written).

use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;
use std::path::{Path, PathBuf};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS export_cache (
    file_path TEXT PRIMARY KEY,
    mtime INTEGER NOT NULL,
    size INTEGER NOT NULL,
    content_hash TEXT NOT NULL,
    exports TEXT,
    cached_at INTEGER NOT NULL
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
    pub hits: u64,
    pub misses: u64,
}

pub fn cache_path(repo_dir: &Path) -> PathBuf {
    repo_dir.join(".repoman").join("cache.db")
}

fn open_conn(path: &Path) -> Result<Connection, rusqlite::Error> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    conn.execute_batch("PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;")?;
    // A file that is not a database (or a corrupt header) fails here; damage deeper in the file
    // shows up as query errors, which every lookup treats as a miss.
    conn.execute_batch(SCHEMA)?;
    Ok(conn)
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

    /// The content hash of the file `rel` in the repo `dir`, reusing the cached one while mtime
    /// and size are unchanged. The repo is sandbox-writable: a symlink is not followed, `..` is
    /// refused, and a FIFO or device is refused without blocking
    /// ([`crate::realm::read_source_file`]).
    pub fn file_hash(
        &mut self,
        key: &str,
        dir: &Path,
        rel: &str,
        now: i64,
    ) -> std::io::Result<String> {
        let path = dir.join(rel);
        let meta = std::fs::symlink_metadata(&path)?;
        if !meta.is_file() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "is not a regular file (a symbolic link, FIFO, device or directory); it is not read",
            ));
        }
        let mtime = meta
            .modified()
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_nanos() as i64);
        let size = meta.len() as i64;
        if let Some(conn) = &self.conn {
            let cached: Option<String> = conn
                .prepare_cached("SELECT content_hash FROM export_cache WHERE file_path = ?1 AND mtime = ?2 AND size = ?3")
                .and_then(|mut st| st.query_row(params![key, mtime, size], |r| r.get(0)).optional())
                .ok()
                .flatten();
            if let Some(h) = cached {
                self.hit(true);
                return Ok(h);
            }
        }
        self.hit(false);
        let hash = blake3::hash(&crate::realm::read_source_file(dir, rel)?)
            .to_hex()
            .to_string();
        if let Some(conn) = &self.conn {
            let _ = conn.execute(
                "INSERT OR REPLACE INTO export_cache (file_path, mtime, size, content_hash, exports, cached_at) VALUES (?1, ?2, ?3, ?4, NULL, ?5)",
                params![key, mtime, size, hash, now],
            );
        }
        Ok(hash)
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
