//! The backup crate's error type. Every message names the project or path and what to do; the
//! CLI maps [`BackupError::kind`] to an exit code.

use std::path::PathBuf;
use std::time::Duration;

use repoman_core::fs::FsError;
use repoman_core::process::ProcessError;

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
}

fn stderr_suffix(s: &str) -> String {
    let t = s.trim();
    if t.is_empty() {
        String::new()
    } else {
        format!("\nrsync said: {t}")
    }
}

/// How the CLI should classify an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The environment is unavailable (destination not mounted or not reachable): exit 4.
    Environment,
    /// Interrupted: exit 130.
    Interrupted,
    /// Bad configuration or arguments: exit 2.
    Usage,
    /// The operation failed: exit 1.
    Failed,
}

impl BackupError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::Unreachable { .. } | Self::NotMounted { .. } => ErrorKind::Environment,
            Self::Process(ProcessError::NotFound { .. }) => ErrorKind::Environment,
            Self::Cancelled | Self::Process(ProcessError::Cancelled { .. }) => {
                ErrorKind::Interrupted
            }
            Self::Config(_) | Self::TargetNotEmpty { .. } => ErrorKind::Usage,
            _ => ErrorKind::Failed,
        }
    }

    /// A hint for the user, when there is one.
    pub fn hint(&self) -> Option<String> {
        match self {
            Self::NotMounted { hint, .. } => Some(hint.clone()),
            Self::Unreachable { .. } => {
                Some("raise [defaults] probe_timeout_secs if the share is just slow".into())
            }
            _ => None,
        }
    }

    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            source,
        }
    }
}
