//! Conflicts: situations only a human may settle (the first kind, `backup-diverged`, comes from
//! the backup engine).
//!
//! A conflict is born by a `conflict.detected` event and settled by a `conflict.resolved` event
//! (resolution `keep_local`, `keep_backup` or `skip`; `skip` leaves it in state `skipped`). Its id
//! is the UUID of the detecting event. Only `human:` actors may resolve.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Event types of the conflict life cycle.
pub const DETECTED: &str = "conflict.detected";
pub const RESOLVED: &str = "conflict.resolved";

/// A conflict to record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewConflict {
    /// e.g. `backup-diverged`.
    pub kind: String,
    pub object: String,
    pub project: Option<String>,
    pub detail: Value,
}

/// Where a conflict stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConflictState {
    Pending,
    Resolved,
    Skipped,
}

impl ConflictState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Resolved => "resolved",
            Self::Skipped => "skipped",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "pending" => Some(Self::Pending),
            "resolved" => Some(Self::Resolved),
            "skipped" => Some(Self::Skipped),
            _ => None,
        }
    }
}

/// How a human settled a conflict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Resolution {
    KeepLocal,
    KeepBackup,
    Skip,
}

impl Resolution {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::KeepLocal => "keep_local",
            Self::KeepBackup => "keep_backup",
            Self::Skip => "skip",
        }
    }

    /// Accepts `keep_local` and the CLI spelling `keep-local`.
    pub fn parse(s: &str) -> Option<Self> {
        match s.replace('-', "_").as_str() {
            "keep_local" => Some(Self::KeepLocal),
            "keep_backup" => Some(Self::KeepBackup),
            "skip" => Some(Self::Skip),
            _ => None,
        }
    }

    /// The state a conflict is in after this resolution.
    pub fn state(self) -> ConflictState {
        match self {
            Self::Skip => ConflictState::Skipped,
            _ => ConflictState::Resolved,
        }
    }
}

/// A recorded conflict, as the index knows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Conflict {
    pub id: String,
    pub kind: String,
    pub object: String,
    pub project: Option<String>,
    pub state: ConflictState,
    pub resolution: Option<Resolution>,
    pub detail: Value,
    pub detected_at: String,
    pub resolved_at: Option<String>,
    pub resolved_by: Option<String>,
}

/// Which conflicts to list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConflictFilter {
    pub pending_only: bool,
    pub project: Option<String>,
    pub kind: Option<String>,
}

impl ConflictFilter {
    pub fn accepts(&self, c: &Conflict) -> bool {
        (!self.pending_only || c.state == ConflictState::Pending)
            && self
                .project
                .as_ref()
                .is_none_or(|p| c.project.as_ref() == Some(p))
            && self.kind.as_ref().is_none_or(|k| &c.kind == k)
    }
}
