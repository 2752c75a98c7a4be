//! The state crate's error type. Every message names the file, event or object involved and, where
//! there is one, what the user should do next.

use std::io;
use std::path::PathBuf;

use repoman_core::{DomainError, ErrorKind};

/// Errors of the event log, index, policy and conflicts.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("cannot access {path}: {source}")]
    Io { path: PathBuf, source: io::Error },

    #[error(transparent)]
    Paths(#[from] repoman_core::paths::PathsError),

    #[error(transparent)]
    Lock(#[from] repoman_core::fs::FsError),

    #[error(
        "{path} holds {value:?}, which is not a device id (a UUID); move it aside and repoman will generate a new one"
    )]
    BadDeviceId { path: PathBuf, value: String },

    #[error(
        "{path}:{line}: not a valid event ({reason}); run `repoman doctor` to see what can be repaired"
    )]
    CorruptLine {
        path: PathBuf,
        line: u64,
        reason: String,
    },

    #[error(
        "the event log's hash chain is broken at seq {seq} ({path}:{line}): {reason}. This is tampering or disk corruption; it is never rewritten automatically. Run `repoman doctor` and restore the segment from a backup"
    )]
    ChainBroken {
        seq: u64,
        path: PathBuf,
        line: u64,
        reason: String,
    },

    #[error("invalid event {type_} for {object}: {reason}")]
    InvalidEvent {
        type_: String,
        object: String,
        reason: String,
    },

    #[error("{what} does not match schema {schema}: {errors}")]
    SchemaViolation {
        what: String,
        schema: String,
        errors: String,
    },

    #[error("no schema with id {0:?}; `repoman schema list` shows the known ids")]
    UnknownSchema(String),

    #[error("the index {path} failed: {source}")]
    Index {
        path: PathBuf,
        source: rusqlite::Error,
    },

    #[error("{actor} may not {action}: only a human may; ask the owner of this machine to run it")]
    NotPermitted { actor: String, action: String },

    #[error("no conflict with id {0:?}; `repoman conflicts` lists the pending ones")]
    ConflictNotFound(String),

    #[error("conflict {id} is already {state}; nothing to resolve")]
    ConflictClosed { id: String, state: String },

    #[error("the state directory {0} does not exist yet; nothing has been recorded")]
    NoState(PathBuf),
}

impl StateError {
    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(io::Error) -> StateError {
        let path = path.into();
        move |source| StateError::Io { path, source }
    }

    pub(crate) fn index(path: impl Into<PathBuf>) -> impl FnOnce(rusqlite::Error) -> StateError {
        let path = path.into();
        move |source| StateError::Index { path, source }
    }

    /// Whether this error means a human must look (chain break, permission): CLI exit 3.
    pub fn needs_human(&self) -> bool {
        self.kind() == ErrorKind::Blocked
    }
}

impl DomainError for StateError {
    fn kind(&self) -> ErrorKind {
        match self {
            Self::ChainBroken { .. } | Self::NotPermitted { .. } | Self::ConflictClosed { .. } => {
                ErrorKind::Blocked
            }
            Self::InvalidEvent { .. }
            | Self::SchemaViolation { .. }
            | Self::UnknownSchema(_)
            | Self::ConflictNotFound(_) => ErrorKind::Usage,
            Self::Paths(e) => e.kind(),
            Self::Lock(e) => e.kind(),
            // Storage failures (I/O, the index, a corrupt line, an unreadable device id) and
            // anything added later: the operation failed.
            _ => ErrorKind::Failed,
        }
    }

    fn hint(&self) -> Option<String> {
        match self {
            Self::CorruptLine { .. } => Some(
                "run `repoman doctor` (and `repoman doctor --repair` for what it can fix)"
                    .to_owned(),
            ),
            Self::Lock(_) => Some(
                "another repoman process holds the lock; retry when it has finished".to_owned(),
            ),
            Self::Index { .. } => {
                Some("run `repoman doctor --repair`; the index is rebuilt from the log".to_owned())
            }
            Self::Paths(e) => e.hint(),
            _ => None,
        }
    }
}
