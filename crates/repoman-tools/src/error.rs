//! The one error type of this crate. Messages name the file (with line and column where a
//! parse failed) and say what to do.

use std::io;
use std::path::PathBuf;

/// Errors reading or editing manifests and discovering tools.
#[derive(Debug, thiserror::Error)]
pub enum ToolsError {
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: io::Error },
    #[error("{path}:{line}:{column}: {message}")]
    Parse {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
    #[error(
        "{path}:{line}:{column}: unknown version scope `{scope}:` in `{token}` (known: ref:, path:, prefix:, latest:, sub-N:); fix the line by hand, nothing was written"
    )]
    UnknownScope {
        path: PathBuf,
        line: usize,
        column: usize,
        scope: String,
        token: String,
    },
    #[error("invalid {what} `{value}`: {why}")]
    Invalid {
        what: &'static str,
        value: String,
        why: String,
    },
    #[error("{path}: {message}")]
    Unsupported { path: PathBuf, message: String },
    #[error("{path} changed on disk since it was read; run the command again")]
    Changed { path: PathBuf },
    #[error(
        "{0} is not a manifest repoman can edit (use `.tool-versions` or a mise `*.toml` file)"
    )]
    NotEditable(PathBuf),
    #[error("invalid discovery rules in {path}: {message}")]
    Rules { path: PathBuf, message: String },
    #[error(transparent)]
    Fs(#[from] repoman_core::fs::FsError),
}

impl ToolsError {
    pub(crate) fn read(path: impl Into<PathBuf>, source: io::Error) -> Self {
        Self::Read {
            path: path.into(),
            source,
        }
    }
}
