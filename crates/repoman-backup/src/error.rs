//! The backup crate's error type. Every message names the project or path and what to do; it
//! implements [`DomainError`], whose [`ErrorKind`] every face maps to its exit code.

use std::path::PathBuf;
use std::time::Duration;

use repoman_core::fs::FsError;
use repoman_core::process::ProcessError;
use repoman_core::{DomainError, ErrorKind};
use repoman_state::StateError;

use crate::rsync::RsyncOutcome;

/// Errors from syncing, verifying and restoring.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error("backup root {path} not reachable within {}s (a stale NFS mount or a hung automounter); check the mount and try again", .after.as_secs())]
    Unreachable { path: PathBuf, after: Duration },
    #[error("backup root {path} is not mounted as expected: {reason}")]
    NotMounted {
        path: PathBuf,
        reason: String,
        hint: String,
    },
    #[error("{}{}", .outcome.explain(), stderr_suffix(.stderr))]
    Rsync {
        outcome: RsyncOutcome,
        stage: &'static str,
        stderr: String,
    },
    #[error(transparent)]
    Process(#[from] ProcessError),
    #[error("interrupted")]
    Cancelled,
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Lock(#[from] FsError),
    #[error("{path}: not a valid repoman manifest: {message}")]
    Manifest { path: PathBuf, message: String },
    #[error("no manifest recorded for project `{project}`: run `repoman sync {project}` first")]
    NoManifest { project: String },
    #[error(
        "restore target {path} is not empty; pass --force to restore into it (files are overwritten, none deleted) or choose another --to DIR"
    )]
    TargetNotEmpty { path: PathBuf },
    #[error("backup copy {path} does not exist; nothing to restore")]
    NoBackup { path: PathBuf },
    #[error("{0}")]
    Config(String),
    #[error(
        "repo `{repo}` of project {project} uses a name reserved for repoman under the backup root (names starting with `.repoman`): mirroring it would overwrite repoman's own files there"
    )]
    ReservedName { project: String, repo: String },
    #[error(
        "the working copy kept changing while project {project} was synced ({} path(s), e.g. {}); the backup is complete up to those files",
        .paths.len(), .paths.first().map(String::as_str).unwrap_or("")
    )]
    Unsettled { project: String, paths: Vec<String> },
    #[error(transparent)]
    State(#[from] StateError),
}

fn stderr_suffix(s: &str) -> String {
    let t = s.trim();
    if t.is_empty() {
        String::new()
    } else {
        format!("\nrsync said: {t}")
    }
}

impl DomainError for BackupError {
    fn kind(&self) -> ErrorKind {
        match self {
            Self::Unreachable { .. } | Self::NotMounted { .. } => ErrorKind::Unavailable,
            Self::Process(ProcessError::NotFound { .. }) => ErrorKind::Unavailable,
            Self::Cancelled | Self::Process(ProcessError::Cancelled { .. }) => {
                ErrorKind::Interrupted
            }
            Self::Config(_) | Self::TargetNotEmpty { .. } | Self::ReservedName { .. } => {
                ErrorKind::Usage
            }
            Self::State(e) => e.kind(),
            _ => ErrorKind::Failed,
        }
    }

    fn hint(&self) -> Option<String> {
        match self {
            Self::NotMounted { hint, .. } => Some(hint.clone()),
            Self::Unreachable { .. } => {
                Some("raise [defaults] probe_timeout_secs if the share is just slow".into())
            }
            Self::ReservedName { project, .. } => Some(format!(
                "give project {project} another repo directory name (`repo = \"...\"` in repoman.toml)"
            )),
            Self::Unsettled { project, .. } => Some(format!(
                "let the working copy settle (stop the build or editor writing to it), then `repoman sync {project}`"
            )),
            Self::State(e) => e.hint(),
            _ => None,
        }
    }
}

impl BackupError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            source,
        }
    }
}
