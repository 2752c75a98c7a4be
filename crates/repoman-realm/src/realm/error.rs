//! Errors of realm loading and admin changes.

use crate::compat;
use crate::git::GitError;
use crate::graph::CycleError;
use crate::version::{BumpError, VersionError};
use crate::yaml::LoadError;
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum RealmError {
    #[error(transparent)]
    Load(Box<LoadError>),
    #[error(transparent)]
    Git(Box<GitError>),
    #[error("cannot write {path}: {message}")]
    Write { path: PathBuf, message: String },
    #[error("{path} is not a realm repository (no realm.yaml)")]
    NotARealm { path: PathBuf },
    #[error("{path} is already a realm repository")]
    AlreadyARealm { path: PathBuf },
    #[error("{dir} is not a member of any realm (no .repoman/realm.yaml)")]
    NotAMember { dir: PathBuf },
    #[error("{what} `{name}` does not exist in realm `{realm}`")]
    Unknown {
        what: &'static str,
        name: String,
        realm: String,
    },
    #[error("{what} `{name}` already exists in realm `{realm}`")]
    Exists {
        what: &'static str,
        name: String,
        realm: String,
    },
    #[error("{path}: {message}")]
    Invalid { path: PathBuf, message: String },
    #[error("invalid name `{name}`: {message}")]
    Name { name: String, message: String },
    #[error(transparent)]
    Cycle(Box<CycleError>),
    #[error(transparent)]
    Version(#[from] VersionError),
    #[error(transparent)]
    Bump(#[from] BumpError),
    #[error(transparent)]
    Compat(#[from] compat::CompatError),
    #[error("repo `{repo}` is still used by {users}; remove those first")]
    InUse { repo: String, users: String },
    #[error("the range `{range}` of the import does not accept {contract} {version}")]
    RangeMismatch {
        contract: String,
        range: String,
        version: String,
    },
    #[error("the schema of `{contract}` is identical to version {version}; nothing to bump")]
    NothingChanged { contract: String, version: String },
    #[error("the schema of `{contract}` is not a valid JSON Schema: {message}")]
    BadSchema { contract: String, message: String },
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

impl From<LoadError> for RealmError {
    fn from(e: LoadError) -> Self {
        RealmError::Load(Box::new(e))
    }
}

impl From<GitError> for RealmError {
    fn from(e: GitError) -> Self {
        RealmError::Git(Box::new(e))
    }
}

impl From<CycleError> for RealmError {
    fn from(e: CycleError) -> Self {
        RealmError::Cycle(Box::new(e))
    }
}
