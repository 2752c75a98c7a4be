//! One project's sync, in two halves around the policy decision.
//!
//! [`prepare`] takes the per-project lock (held until the [`Prepared`] value is dropped), checks
//! the source, probes the destination off-thread, plans with `rsync --dry-run`, and returns the
//! guard verdicts and diverged files. The caller records the decision (and any conflict) in the
//! state log and calls [`execute`] only when allowed. [`execute`] writes the marker, runs rsync
//! with the plan's arguments (skipped when the plan is empty), then extends the last manifest by
//! what rsync itemized (or, without a usable last manifest, builds one from the working copy's
//! structure with the stat cache, reading changed entries from the backup).

use std::collections::HashSet;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use repoman_core::Cancel;
use repoman_core::fs::FileLock;
use repoman_state::Verdict;
use serde::Serialize;

use crate::conflict::{self, Diverged};
use crate::error::BackupError;
use crate::exclude::Excludes;
use crate::guards::{self, DeleteLimits, SourceState};
use crate::manifest::{BuildInput, BuildStats, Counts, Manifest, StatCache, build};
use crate::marker::{Marker, MarkerRead, Owner};
use crate::probe::{DestinationProbe, MountEntry, probe_destination};
use crate::rsync::{
    DEFAULT_IO_TIMEOUT_SECS, MARKER_FILE, Plan, RsyncJob, RsyncOutcome, RunProgress,
};

/// Settings for one project's sync, resolved by the caller from registry, overrides and flags.
#[derive(Debug, Clone)]
pub struct Settings {
    /// `<local_repos>/<repo>`.
    pub src: PathBuf,
    pub backup_root: PathBuf,
    pub expected_fstype: Option<String>,
    pub probe_timeout: Duration,
    pub delete: bool,
    pub limits: DeleteLimits,
    pub allow_empty_source: bool,
    pub adopt: bool,
    pub excludes: Vec<String>,
    /// Directory of the per-project lock files.
    pub lock_dir: PathBuf,
    pub lock_timeout: Option<Duration>,
    /// The stat cache file of this project.
    pub stat_cache: PathBuf,
    /// `manifests/` under the state dir.
    pub manifests_dir: PathBuf,
    pub search_path: Option<OsString>,
    pub io_timeout_secs: u64,
    /// A sync ran rsync after the last manifest was recorded but did not finish (rsync failed,
    /// or Ctrl-C): the backup may hold files that run moved into place, which the next plan will
    /// not itemize. The manifest is then rebuilt from the tree instead of extended.
    pub manifest_stale: bool,
}

impl Settings {
    pub fn new(
        src: PathBuf,
        backup_root: PathBuf,
        lock_dir: PathBuf,
        stat_cache: PathBuf,
        manifests_dir: PathBuf,
    ) -> Self {
        Self {
            src,
            backup_root,
            expected_fstype: None,
            probe_timeout: crate::probe::DEFAULT_PROBE_TIMEOUT,
            delete: true,
            limits: DeleteLimits {
                count: guards::DEFAULT_MAX_DELETE,
                percent: guards::DEFAULT_MAX_DELETE_PERCENT,
            },
            allow_empty_source: false,
            adopt: false,
            excludes: Vec::new(),
            lock_dir,
            lock_timeout: None,
            stat_cache,
            manifests_dir,
            search_path: None,
            io_timeout_secs: DEFAULT_IO_TIMEOUT_SECS,
            manifest_stale: false,
        }
    }
}

/// A planned sync, holding the project's lock.
#[derive(Debug)]
pub struct Prepared {
    pub owner: Owner,
    pub src: PathBuf,
    /// `<backup_root>/<repo>`.
    pub dst: PathBuf,
    pub mount: Option<MountEntry>,
    pub job: RsyncJob,
    pub plan: Plan,
    pub verdicts: Vec<Verdict>,
    pub diverged: Vec<Diverged>,
    pub marker: MarkerRead,
    pub excludes: Excludes,
    pub last: Option<Manifest>,
    settings: Settings,
    _lock: FileLock,
}

/// Plan one project's sync.
pub fn prepare(
    settings: Settings,
    owner: Owner,
    last: Option<Manifest>,
    cancel: &Cancel,
    on_wait: impl FnOnce(),
) -> Result<Prepared, BackupError> {
    let lock_path = settings
        .lock_dir
        .join(format!("sync-{}.lock", owner.project));
    repoman_core::paths::ensure_dir(&settings.lock_dir)
        .map_err(|e| BackupError::io(&settings.lock_dir, std::io::Error::other(e.to_string())))?;
    let lock = FileLock::acquire(
        &lock_path,
        &format!("the backup of project {}", owner.project),
        settings.lock_timeout,
        on_wait,
    )?;
    let excludes = Excludes::new(&settings.excludes)?;
    let src = settings.src.clone();

    let state = match std::fs::symlink_metadata(&src) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => SourceState::Missing,
        Err(e) => return Err(BackupError::io(&src, e)),
        Ok(m) if !m.is_dir() => SourceState::NotADirectory,
        Ok(_) => match std::fs::read_dir(&src)
            .map_err(|e| BackupError::io(&src, e))?
            .next()
        {
            None => SourceState::Empty,
            Some(_) => SourceState::HasContent,
        },
    };

    let probe: DestinationProbe = probe_destination(
        &settings.backup_root,
        &owner.repo,
        settings.expected_fstype.as_deref(),
        settings.probe_timeout,
    )?;
    let dst = probe.root.join(&owner.repo);
    let mut job = RsyncJob::new(&src, &dst);
    job.delete = settings.delete;
    job.excludes = excludes.patterns().to_vec();
    job.search_path = settings.search_path.clone();
    job.io_timeout_secs = settings.io_timeout_secs;

    let mut verdicts = Vec::new();
    verdicts.extend(guards::source(
        &owner.project,
        &src,
        state,
        last.as_ref(),
        settings.delete,
        settings.allow_empty_source,
    ));
    verdicts.extend(guards::marker(
        &owner.project,
        &probe.marker,
        &owner,
        probe.repo_dir_has_content,
        settings.adopt,
    ));

    let source_ok = matches!(state, SourceState::Empty | SourceState::HasContent);
    let plan = if source_ok {
        job.plan(cancel)?
    } else {
        Plan::default()
    };
    verdicts.extend(guards::deletions(
        &owner.project,
        &plan,
        last.as_ref(),
        settings.limits,
    ));

    // Only a copy we own can have diverged from our manifest; a foreign one is blocked above.
    let diverged = match (&last, &probe.marker) {
        (Some(m), MarkerRead::Present(_)) if source_ok => {
            // One lstat per planned item: allow more time for big plans on a slow share.
            let detect_timeout = settings.probe_timeout * (1 + (plan.items.len() / 1000) as u32);
            let (plan2, m2, src2, dst2) = (plan.clone(), m.clone(), src.clone(), dst.clone());
            crate::probe::with_timeout(&settings.backup_root, detect_timeout, move || {
                conflict::detect(&plan2, &m2, &src2, &dst2)
            })?
            .map_err(|e| BackupError::io(&dst, e))?
        }
        _ => Vec::new(),
    };

    Ok(Prepared {
        owner,
        src,
        dst,
        mount: Some(probe.mount),
        job,
        plan,
        verdicts,
        diverged,
        marker: probe.marker,
        excludes,
        last,
        settings,
        _lock: lock,
    })
}

/// What a completed sync did.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub project: String,
    pub plan: Plan,
    pub outcome: RsyncOutcome,
    /// Whether rsync ran (an empty plan skips it).
    pub ran: bool,
    pub manifest_root: String,
    pub manifest_path: PathBuf,
    pub counts: Counts,
    pub manifest_stats: BuildStats,
    pub rsync_warnings: String,
    pub duration_ms: u64,
    /// Time spent building and storing the manifest.
    pub manifest_ms: u64,
}

/// Run a prepared, allowed sync.
pub fn execute(
    prep: &Prepared,
    created_at: String,
    cancel: &Cancel,
    mut on_progress: impl FnMut(RunProgress),
) -> Result<Report, BackupError> {
    let start = Instant::now();
    std::fs::create_dir_all(&prep.dst).map_err(|e| BackupError::io(&prep.dst, e))?;
    let write_marker = prep.settings.adopt || !matches!(prep.marker, MarkerRead::Present(_));
    if write_marker {
        Marker::for_owner(&prep.owner, created_at.clone()).write(&prep.dst.join(MARKER_FILE))?;
    }
    let (outcome, items, ran, warnings) = if prep.plan.is_empty() {
        (RsyncOutcome::Complete, Vec::new(), false, String::new())
    } else {
        let r = prep
            .job
            .run(Some(prep.plan.deletes), cancel, &mut on_progress)?;
        (r.outcome, r.items, true, r.stderr)
    };
    let manifest_start = Instant::now();
    // Extend the last manifest by what rsync itemized when it describes this very copy (our
    // marker, not adopted, no unfinished run since) and the run completed; otherwise walk the working copy with the stat
    // cache and read what changed from the backup.
    let extendable = matches!(prep.marker, MarkerRead::Present(_))
        && !prep.settings.adopt
        && !prep.settings.manifest_stale
        && outcome == RsyncOutcome::Complete;
    let (manifest, stats) = match (&prep.last, extendable) {
        (Some(last), true) => {
            let m = last.apply(&items, &prep.dst, created_at)?;
            let hashed: Vec<&crate::rsync::PlanItem> = items
                .iter()
                .filter(|i| {
                    i.kind == Some(crate::rsync::ItemKind::File)
                        && !matches!(
                            i.change,
                            crate::rsync::Change::Delete | crate::rsync::Change::Attributes
                        )
                })
                .collect();
            let entries = m.entries.len() as u64;
            let stats = BuildStats {
                entries,
                reused: entries.saturating_sub(hashed.len() as u64),
                hashed: hashed.len() as u64,
                bytes_hashed: hashed.iter().map(|i| i.size).sum(),
            };
            (m, stats)
        }
        _ => {
            let force: HashSet<Vec<u8>> = items
                .iter()
                .filter(|i| i.change != crate::rsync::Change::Delete)
                .map(|i| i.path.clone())
                .collect();
            let cache = StatCache::load(&prep.settings.stat_cache);
            let input = BuildInput {
                project: &prep.owner.project,
                walk_root: &prep.src,
                content_root: &prep.dst,
                excludes: &prep.excludes,
                cache: Some(&cache),
                force: &force,
                cancel,
                created_at,
            };
            let (m, next_cache, stats) = build(&input)?;
            next_cache.save(&prep.settings.stat_cache)?;
            (m, stats)
        }
    };
    let manifest_path = manifest.store(&prep.settings.manifests_dir)?;
    Ok(Report {
        project: prep.owner.project.clone(),
        plan: prep.plan.clone(),
        outcome,
        ran,
        manifest_root: manifest.root.clone(),
        manifest_path,
        counts: manifest.counts(),
        manifest_stats: stats,
        rsync_warnings: warnings,
        duration_ms: start.elapsed().as_millis() as u64,
        manifest_ms: manifest_start.elapsed().as_millis() as u64,
    })
}

/// The stat cache file of a project under the cache dir.
pub fn stat_cache_path(cache_dir: &Path, project: &str) -> PathBuf {
    cache_dir
        .join("backup")
        .join(format!("{project}.statcache"))
}

/// The manifests directory under the state dir.
pub fn manifests_dir(state_dir: &Path) -> PathBuf {
    state_dir.join("manifests")
}
