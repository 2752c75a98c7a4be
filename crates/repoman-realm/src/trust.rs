//! Which realms this machine trusts to run validation hooks, recorded with the realm commit that
//! was trusted (`<state_dir>/realm-trust.json`). A realm whose HEAD moved since is no longer
//! trusted: its hooks may have changed, so a human has to look again (`realm admin trust`).

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrustEntry {
    pub commit: String,
    pub trusted_at: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum TrustState {
    Trusted {
        commit: String,
    },
    Untrusted,
    /// Trusted at another commit.
    Changed {
        trusted_commit: String,
        head: String,
    },
}

impl TrustState {
    pub fn is_trusted(&self) -> bool {
        matches!(self, TrustState::Trusted { .. })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TrustError {
    #[error("cannot read the realm trust store {path}: {message}")]
    Read { path: PathBuf, message: String },
    #[error("cannot write the realm trust store {path}: {message}")]
    Write { path: PathBuf, message: String },
}

pub fn store_path(state_dir: &Path) -> PathBuf {
    state_dir.join("realm-trust.json")
}

fn key(realm_root: &Path) -> String {
    realm_root
        .canonicalize()
        .unwrap_or_else(|_| realm_root.to_path_buf())
        .display()
        .to_string()
}

fn read(state_dir: &Path) -> Result<BTreeMap<String, TrustEntry>, TrustError> {
    let path = store_path(state_dir);
    match std::fs::read_to_string(&path) {
        Ok(text) => serde_json::from_str(&text).map_err(|e| TrustError::Read {
            path,
            message: e.to_string(),
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(BTreeMap::new()),
        Err(e) => Err(TrustError::Read {
            path,
            message: e.to_string(),
        }),
    }
}

/// Is the realm at `realm_root`, at commit `head`, trusted?
pub fn state(state_dir: &Path, realm_root: &Path, head: &str) -> Result<TrustState, TrustError> {
    Ok(match read(state_dir)?.get(&key(realm_root)) {
        None => TrustState::Untrusted,
        Some(e) if e.commit == head => TrustState::Trusted {
            commit: head.to_string(),
        },
        Some(e) => TrustState::Changed {
            trusted_commit: e.commit.clone(),
            head: head.to_string(),
        },
    })
}

/// Trusts the realm at `head`.
pub fn trust(state_dir: &Path, realm_root: &Path, head: &str, now: &str) -> Result<(), TrustError> {
    let mut all = read(state_dir)?;
    all.insert(
        key(realm_root),
        TrustEntry {
            commit: head.to_string(),
            trusted_at: now.to_string(),
        },
    );
    let path = store_path(state_dir);
    std::fs::create_dir_all(state_dir).map_err(|e| TrustError::Write {
        path: path.clone(),
        message: e.to_string(),
    })?;
    let text = serde_json::to_string_pretty(&all).map_err(|e| TrustError::Write {
        path: path.clone(),
        message: e.to_string(),
    })?;
    repoman_core::fs::write_atomic(&path, text.as_bytes(), Some(0o600)).map_err(|e| {
        TrustError::Write {
            path,
            message: e.to_string(),
        }
    })
}
