//! The built-in mirror guards (DESIGN.md §6) as policy verdicts.
//!
//! Each guard has a stable rule name (`backup.*`), a reason that names the project and the facts,
//! and the command that would unblock it. Mount and reachability problems are not verdicts but
//! errors (exit 4): there is nothing to decide while the destination is not there.

use repoman_state::{Effect, Verdict};

use crate::manifest::Manifest;
use crate::marker::{MarkerRead, Owner};
use crate::rsync::Plan;

/// The source (working copy) as found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceState {
    Missing,
    NotADirectory,
    Empty,
    HasContent,
}

/// Deletion limits.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DeleteLimits {
    /// Largest number of deletions allowed without review.
    pub count: u64,
    /// Largest share of the last manifest's entries (percent).
    pub percent: f64,
}

/// Default `max_delete`.
pub const DEFAULT_MAX_DELETE: u64 = 1000;
/// Default `max_delete_percent`.
pub const DEFAULT_MAX_DELETE_PERCENT: f64 = 25.0;
/// Below this many deletions the percentage limit does not apply (deleting 2 of 4 files in a
/// small project is ordinary work, not a sign of an emptied source).
pub const PERCENT_MIN_DELETES: u64 = 10;

fn deny(rule: &str, reason: String, unblock: Option<String>) -> Verdict {
    Verdict {
        rule: rule.into(),
        effect: Effect::Deny,
        reason,
        unblock,
    }
}

/// Source checks.
pub fn source(
    project: &str,
    src: &std::path::Path,
    state: SourceState,
    last: Option<&Manifest>,
    deleting: bool,
    allow_empty: bool,
) -> Option<Verdict> {
    match state {
        SourceState::Missing => Some(deny(
            "backup.source-missing",
            format!(
                "working copy {} of project {project} does not exist; mirroring it would empty the backup",
                src.display()
            ),
            Some(format!("repoman restore {project}")),
        )),
        SourceState::NotADirectory => Some(deny(
            "backup.source-not-dir",
            format!(
                "working copy {} of project {project} is not a directory",
                src.display()
            ),
            None,
        )),
        SourceState::Empty
            if deleting && !allow_empty && last.is_some_and(|m| m.len_without_root() > 0) =>
        {
            let n = last.map(Manifest::len_without_root).unwrap_or(0);
            Some(deny(
                "backup.source-empty",
                format!(
                    "working copy {} of project {project} is empty, but the last backup has {n} entries; mirroring would delete them all",
                    src.display()
                ),
                Some(format!("repoman sync {project} --allow-empty-source")),
            ))
        }
        _ => None,
    }
}

/// Marker checks. `has_content`: the backup copy has entries besides the marker.
pub fn marker(
    project: &str,
    read: &MarkerRead,
    owner: &Owner,
    has_content: bool,
    adopt: bool,
) -> Option<Verdict> {
    if adopt {
        return None;
    }
    match read {
        MarkerRead::Missing if has_content => Some(deny(
            "backup.marker-missing",
            format!(
                "the backup copy of project {project} has files but no {} marker: it may belong to another estate or a manual copy",
                crate::rsync::MARKER_FILE
            ),
            Some(format!("repoman sync {project} --adopt")),
        )),
        MarkerRead::Missing => None,
        MarkerRead::Invalid(why) => Some(deny(
            "backup.marker-invalid",
            format!("the backup marker of project {project} is unreadable: {why}"),
            Some(format!("repoman sync {project} --adopt")),
        )),
        MarkerRead::Present(m) => {
            let diffs = m.mismatches(owner);
            (!diffs.is_empty()).then(|| {
                let what = diffs
                    .iter()
                    .map(|(f, theirs, ours)| format!("{f} {theirs:?} (this is {ours:?})"))
                    .collect::<Vec<_>>()
                    .join(", ");
                deny(
                    "backup.marker-foreign",
                    format!(
                        "the backup copy of project {project} belongs to another owner: {what}"
                    ),
                    Some(format!("repoman sync {project} --adopt")),
                )
            })
        }
    }
}

/// Deletion limits.
pub fn deletions(
    project: &str,
    plan: &Plan,
    last: Option<&Manifest>,
    limits: DeleteLimits,
) -> Option<Verdict> {
    let n = plan.deletes;
    let total = last.map(Manifest::len_without_root).unwrap_or(0);
    let pct = if total > 0 {
        n as f64 * 100.0 / total as f64
    } else {
        0.0
    };
    let over_count = n > limits.count;
    let over_pct = n >= PERCENT_MIN_DELETES && total > 0 && pct > limits.percent;
    if !over_count && !over_pct {
        return None;
    }
    let reason = if over_count {
        format!(
            "the sync of project {project} would delete {n} entries from the backup, over max_delete {}",
            limits.count
        )
    } else {
        format!(
            "the sync of project {project} would delete {n} of {total} entries ({pct:.1}%), over max_delete_percent {}%",
            limits.percent
        )
    };
    Some(Verdict {
        rule: "backup.max-delete".into(),
        effect: Effect::ReviewRequired,
        reason,
        unblock: Some(if over_count {
            format!("repoman sync {project} --max-delete {n}")
        } else {
            format!("repoman sync {project} --max-delete {}%", pct.ceil())
        }),
    })
}

/// The verdict for a recorded `backup-diverged` conflict.
pub fn diverged(project: &str, conflict_id: &str, files: usize) -> Verdict {
    deny(
        "backup.diverged",
        format!(
            "{files} file(s) of project {project} changed on the backup since the last sync; syncing would destroy those changes"
        ),
        Some(format!(
            "repoman conflicts resolve {conflict_id} --keep-local|--keep-backup|--skip"
        )),
    )
}
