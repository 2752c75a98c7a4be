//! One project's sync, in steps around the policy decision.
//!
//! [`prepare`] refuses reserved repo names, takes the per-project lock (held until the
//! [`Prepared`] value is dropped), and only then reads the last manifest from the log, so a sync
//! that waited for another one plans from the state that one left. It checks the source, asks
//! the mount guard about the destination, plans with `rsync --dry-run`, and returns the guard
//! verdicts and diverged files. [`decide`] records any conflict and passes the plan through the
//! policy gate. [`execute`] writes the marker, records `sync.started`, runs rsync restricted to
//! the planned paths (skipped when the plan is empty), and builds the manifest: the last one
//! extended by what rsync itemized, or, after an unfinished run, a first sync or `--adopt`, one
//! built from the working copy (see [`crate::manifest::build`]). [`record_synced`] appends
//! `backup.synced` while the lock is still held.

use std::collections::HashSet;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use repoman_core::fs::FileLock;
use repoman_core::registry::PolicyRule;
use repoman_core::{Cancel, Progress, Unit};
use repoman_state::{
    Blocked, ConflictFilter, Decision, Event, GateError, GateMode, NewConflict, NewEvent,
    Operation, State, Verdict, gate,
};
use serde::Serialize;
use serde_json::{Value, json};

use crate::conflict::{self, Diverged};
use crate::error::BackupError;
use crate::exclude::Excludes;
use crate::guards::{self, DeleteLimits, SourceState};
use crate::history;
use crate::manifest::{BuildInput, BuildStats, Counts, Manifest, StatCache, build};
use crate::marker::{Marker, MarkerRead, Owner};
use crate::mount::{Expected, MountGuard};
use crate::probe::MountEntry;
use crate::rsync::{
    Change, DEFAULT_IO_TIMEOUT_SECS, MARKER_FILE, Plan, PlanItem, RESERVED_PREFIX, RsyncJob,
    RsyncOutcome, TEMP_DIR,
};

/// How often the working copy may be found changed under a rebuild before the sync gives up.
const SETTLE_ATTEMPTS: usize = 3;

/// Settings for one project's sync, resolved by the caller from registry, overrides and flags.
#[derive(Debug, Clone)]
pub struct Settings {
    /// `<local_repos>/<repo>`.
    pub src: PathBuf,
    pub backup_root: PathBuf,
    /// What the mount guard expects of the backup root's mount.
    pub mount: Expected,
    pub probe_timeout: Duration,
    pub delete: bool,
    pub limits: DeleteLimits,
    pub allow_empty_source: bool,
    pub adopt: bool,
    /// Compare file contents (`rsync --checksum`): re-copies backup files whose bytes differ
    /// although size and mtime agree (what `verify --full` reports as `content`).
    pub checksum: bool,
    pub excludes: Vec<String>,
    /// Directory of the per-project lock files.
    pub lock_dir: PathBuf,
    pub lock_timeout: Option<Duration>,
    /// The stat cache file of this project.
    pub stat_cache: PathBuf,
    /// `manifests/` under the state dir.
    pub manifests_dir: PathBuf,
    /// A private directory for rsync's `--files-from` lists.
    pub scratch_dir: PathBuf,
    pub search_path: Option<OsString>,
    pub io_timeout_secs: u64,
}

impl Settings {
    pub fn new(
        src: PathBuf,
        backup_root: PathBuf,
        lock_dir: PathBuf,
        stat_cache: PathBuf,
        manifests_dir: PathBuf,
    ) -> Self {
        let scratch_dir = stat_cache
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(std::env::temp_dir);
        Self {
            src,
            backup_root,
            mount: Expected::default(),
            probe_timeout: crate::probe::DEFAULT_PROBE_TIMEOUT,
            delete: true,
            limits: DeleteLimits {
                count: guards::DEFAULT_MAX_DELETE,
                percent: guards::DEFAULT_MAX_DELETE_PERCENT,
            },
            allow_empty_source: false,
            adopt: false,
            checksum: false,
            excludes: Vec::new(),
            lock_dir,
            lock_timeout: None,
            stat_cache,
            manifests_dir,
            scratch_dir,
            search_path: None,
            io_timeout_secs: DEFAULT_IO_TIMEOUT_SECS,
        }
    }
}

/// The path of a project's sync lock file (the one place its name is built: `sync`, `conflicts
/// resolve` and anything else that must not run while the backup copy changes take it).
pub fn lock_path(lock_dir: &Path, project: &str) -> PathBuf {
    lock_dir.join(format!("sync-{project}.lock"))
}

/// Take a project's sync lock (creating the lock directory), waiting as `timeout` says.
pub fn lock(
    lock_dir: &Path,
    project: &str,
    timeout: Option<Duration>,
    on_wait: impl FnOnce(),
) -> Result<FileLock, BackupError> {
    repoman_core::paths::ensure_dir(lock_dir)
        .map_err(|e| BackupError::io(lock_dir, std::io::Error::other(e.to_string())))?;
    Ok(FileLock::acquire(
        &lock_path(lock_dir, project),
        &format!("the backup of project {project}"),
        timeout,
        on_wait,
    )?)
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
    /// The last manifest, read from the log under the lock.
    pub last: Option<Manifest>,
    /// The event that recorded it.
    pub last_event: Option<Event>,
    /// A sync ran rsync after the last manifest and did not finish: the backup may hold changes
    /// the plan does not show, so the manifest is rebuilt from the tree instead of extended.
    pub manifest_stale: bool,
    settings: Settings,
    _lock: FileLock,
}

impl Prepared {
    /// The settings this sync runs with.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// The state object of this project's backup.
    pub fn object(&self) -> String {
        history::object(&self.owner.project)
    }
}

/// Plan one project's sync.
pub fn prepare(
    settings: Settings,
    owner: Owner,
    state: &State,
    cancel: &Cancel,
    on_wait: impl FnOnce(),
) -> Result<Prepared, BackupError> {
    if owner.repo.starts_with(RESERVED_PREFIX) {
        return Err(BackupError::ReservedName {
            project: owner.project.clone(),
            repo: owner.repo.clone(),
        });
    }
    let lock = lock(
        &settings.lock_dir,
        &owner.project,
        settings.lock_timeout,
        on_wait,
    )?;
    // Under the lock: whatever a sync we waited for recorded is visible now.
    let (last, last_event) =
        match history::last_manifest(state, &settings.manifests_dir, &owner.project)? {
            Some((m, ev)) => (Some(m), Some(ev)),
            None => (None, None),
        };
    let manifest_stale = history::unfinished_run_since(state, &owner.project, last_event.as_ref())?;
    let excludes = Excludes::new(&settings.excludes)?;
    let src = settings.src.clone();

    let source_state = match std::fs::symlink_metadata(&src) {
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

    let guard = MountGuard::new(
        &settings.backup_root,
        settings.mount.clone(),
        settings.probe_timeout,
    );
    let probe = guard.probe(&owner.repo)?;
    let dst = probe.root.join(&owner.repo);
    let mut job = RsyncJob::new(&src, &dst);
    job.delete = settings.delete;
    job.excludes = excludes.patterns().to_vec();
    job.search_path = settings.search_path.clone();
    job.io_timeout_secs = settings.io_timeout_secs;
    job.checksum = settings.checksum;

    let mut verdicts = Vec::new();
    verdicts.extend(guards::source(
        &owner.project,
        &src,
        source_state,
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

    let source_ok = matches!(source_state, SourceState::Empty | SourceState::HasContent);
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
            let factor = 1 + (plan.items.len() / 1000) as u32;
            let (plan2, m2, src2, dst2) = (plan.clone(), m.clone(), src.clone(), dst.clone());
            guard
                .off_thread(factor, move || conflict::detect(&plan2, &m2, &src2, &dst2))?
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
        last_event,
        manifest_stale,
        settings,
        _lock: lock,
    })
}

/// What the policy said about a prepared sync.
#[derive(Debug)]
pub struct Decided {
    /// The `backup-diverged` conflict behind a block, when there is one (recorded, or reused
    /// when still pending; a dry run records nothing).
    pub conflict_id: Option<String>,
    /// Allowed (with the recorded decision's seq), or blocked.
    pub result: Result<Decision, Blocked>,
}

/// Whether the sync would change nothing on the backup (empty plan, our marker, no guard
/// objecting): such a sync is evaluated but only recorded when something blocks it.
pub fn changes_nothing(prep: &Prepared) -> bool {
    prep.plan.is_empty()
        && prep.verdicts.is_empty()
        && prep.diverged.is_empty()
        && matches!(prep.marker, MarkerRead::Present(_))
        && !prep.settings.adopt
}

/// Record a `backup-diverged` conflict (if the plan found one) and pass the plan through the
/// policy gate with the user's `rules`.
pub fn decide(
    state: &State,
    prep: &Prepared,
    rules: &[PolicyRule],
    dry_run: bool,
) -> Result<Decided, BackupError> {
    let name = &prep.owner.project;
    let object = prep.object();
    let mut verdicts = prep.verdicts.clone();
    let mut conflict_id = None;
    if !prep.diverged.is_empty() {
        let root = prep
            .last
            .as_ref()
            .map(|m| m.root.clone())
            .unwrap_or_default();
        let id = if dry_run {
            "(not recorded in a dry run)".to_owned()
        } else {
            let filter = ConflictFilter {
                pending_only: true,
                project: Some(name.clone()),
                kind: Some(conflict::KIND.into()),
            };
            match state
                .conflicts(filter)?
                .into_iter()
                .find(|c| c.object == object)
            {
                Some(c) => c.id,
                None => {
                    state
                        .record_conflict(NewConflict {
                            kind: conflict::KIND.into(),
                            object: object.clone(),
                            project: Some(name.clone()),
                            detail: conflict::detail(&prep.owner.repo, &root, &prep.diverged),
                        })?
                        .id
                }
            }
        };
        verdicts.push(guards::diverged(name, &id, prep.diverged.len()));
        conflict_id = Some(id);
    }
    let op = Operation {
        name: "sync".into(),
        object,
        project: Some(name.clone()),
    };
    let mode = if dry_run {
        GateMode::DryRun
    } else if changes_nothing(prep) {
        GateMode::RecordIfBlocked
    } else {
        GateMode::Record
    };
    let result = match gate(state, &op, verdicts, rules, mode) {
        Ok(d) => Ok(d),
        Err(GateError::Blocked(b)) => Err(b),
        Err(GateError::State(e)) => return Err(e.into()),
    };
    Ok(Decided {
        conflict_id,
        result,
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
    /// How the manifest was made: `extended` (the last one plus what rsync itemized) or
    /// `rebuilt` (from the working copy).
    pub manifest_source: &'static str,
    pub rsync_warnings: String,
    pub duration_ms: u64,
    /// Time spent building and storing the manifest.
    pub manifest_ms: u64,
}

/// Run a prepared, allowed sync. Progress: the transfer, in bytes (with the files done as its
/// detail), then the manifest as a step.
pub fn execute(
    prep: &Prepared,
    state: &State,
    created_at: String,
    cancel: &Cancel,
    progress: &dyn Progress,
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
        let tmp = prep.dst.join(TEMP_DIR);
        std::fs::create_dir_all(&tmp).map_err(|e| BackupError::io(&tmp, e))?;
        // From here on the backup may change: until `backup.synced`, the next sync knows the
        // last manifest may not describe it (whatever ends this run, even kill -9).
        state.append(NewEvent::new(
            history::STARTED,
            prep.object(),
            json!({"project": prep.owner.project, "files": prep.plan.files_to_transfer, "bytes": prep.plan.bytes, "deletes": prep.plan.deletes}),
        ))?;
        let mut job = prep.job.clone();
        job.temp_dir = true;
        let files = prep.plan.files_to_transfer;
        progress.begin("transfer", Some(prep.plan.bytes), Unit::Bytes);
        let r = job.run_planned(&prep.plan, &prep.settings.scratch_dir, cancel, |p| {
            progress.position(p.bytes_done);
            progress.detail(&format!("{}/{files} files", p.files_done.min(files)));
        });
        progress.end();
        let r = r?;
        // Empty after a run that finished; what a killed run left stays for the next one.
        let _ = std::fs::remove_dir(&tmp);
        (r.outcome, r.items, true, r.stderr)
    };
    let manifest_start = Instant::now();
    progress.step("recording the manifest");
    // Extend the last manifest by what rsync itemized when it describes this very copy (our
    // marker, not adopted, no unfinished run since) and the run completed; otherwise build one
    // from the working copy.
    // A last manifest listing a path the excludes now leave out was made with other excludes:
    // rsync neither copies nor deletes such a path, so extending would keep an entry that verify
    // (which walks with today's excludes) then misses. Rebuild instead.
    let excludes_changed = prep.last.as_ref().is_some_and(|last| {
        last.entries.iter().any(|e| {
            prep.excludes
                .covers(&e.path, e.kind == crate::manifest::EntryKind::Dir)
        })
    });
    let extendable = matches!(prep.marker, MarkerRead::Present(_))
        && !prep.settings.adopt
        && !prep.manifest_stale
        && !excludes_changed
        && outcome == RsyncOutcome::Complete;
    // The extension assumes the backup held exactly the last manifest's paths: a path the backup
    // lost that the working copy then deleted too shows in no item, and would stay listed. So
    // an extended manifest must list exactly the paths the dry run saw in the source; if it
    // does not, the backup diverged from the last manifest and the manifest is rebuilt.
    let extended = match (&prep.last, extendable) {
        (Some(last), true) => {
            let m = last.apply(&items, &prep.dst, created_at.clone())?;
            lists_the_source(&m, &prep.plan).then_some(m)
        }
        _ => None,
    };
    let (manifest, stats, source) = match extended {
        Some(m) => {
            let stats = extend_stats(&items, m.entries.len() as u64);
            (m, stats, "extended")
        }
        None => {
            let (m, stats) = rebuild(prep, &items, created_at, cancel)?;
            (m, stats, "rebuilt")
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
        manifest_source: source,
        rsync_warnings: warnings,
        duration_ms: start.elapsed().as_millis() as u64,
        manifest_ms: manifest_start.elapsed().as_millis() as u64,
    })
}

/// Whether `m` lists exactly the source's paths as the dry run saw them (the top directory aside).
fn lists_the_source(m: &Manifest, plan: &Plan) -> bool {
    let listed = m
        .entries
        .iter()
        .map(|e| e.path.as_slice())
        .filter(|p| !p.is_empty());
    listed.eq(plan.source_paths())
}

fn extend_stats(items: &[PlanItem], entries: u64) -> BuildStats {
    let hashed: Vec<&PlanItem> = items
        .iter()
        .filter(|i| {
            i.kind == Some(crate::rsync::ItemKind::File)
                && !matches!(i.change, Change::Delete | Change::Attributes)
        })
        .collect();
    BuildStats {
        entries,
        reused: entries.saturating_sub(hashed.len() as u64),
        hashed: hashed.len() as u64,
        bytes_hashed: hashed.iter().map(|i| i.size).sum(),
    }
}

/// Whether rsync wrote this item's content in the run (and so checked it on arrival). An
/// attributes-only item (`.f...p.....`: a chmod, an owner) passed rsync's quick check: its
/// backup bytes are unproven and must not be hashed as the working copy's, or a backup file
/// that rotted in place and was chmod-ed in the working copy would be certified.
fn content_sent(i: &PlanItem) -> bool {
    !matches!(i.change, Change::Delete | Change::Attributes)
}

/// Build the manifest from the working copy (see [`build`]); paths found unsettled (changed
/// while the sync ran) are copied again and the build repeated, a few times at most.
fn rebuild(
    prep: &Prepared,
    items: &[PlanItem],
    created_at: String,
    cancel: &Cancel,
) -> Result<(Manifest, BuildStats), BackupError> {
    let mut force: HashSet<Vec<u8>> = items
        .iter()
        .filter(|i| content_sent(i))
        .map(|i| i.path.clone())
        .collect();
    let mut cache = StatCache::load(&prep.settings.stat_cache);
    let mut job = prep.job.clone();
    job.temp_dir = true;
    job.delete = false;
    let mut attempt = 0;
    loop {
        attempt += 1;
        let input = BuildInput {
            project: &prep.owner.project,
            walk_root: &prep.src,
            content_root: &prep.dst,
            excludes: &prep.excludes,
            cache: Some(&cache),
            force: &force,
            cancel,
            created_at: created_at.clone(),
        };
        let built = build(&input)?;
        if built.unsettled.is_empty() {
            built.cache.save(&prep.settings.stat_cache)?;
            return Ok((built.manifest, built.stats));
        }
        if attempt == SETTLE_ATTEMPTS {
            return Err(BackupError::Unsettled {
                project: prep.owner.project.clone(),
                paths: built
                    .unsettled
                    .iter()
                    .map(|p| crate::paths::encode_path(p))
                    .collect(),
            });
        }
        tracing::info!(
            paths = built.unsettled.len(),
            "working copy and backup disagree on some paths; copying them again"
        );
        // Copy them again: rsync decides what differs, and what it sends is then read from the
        // backup (checked on arrival). `--checksum` so a same-size, same-mtime difference (the
        // working copy edited back within one second, or a backup file that is not what it
        // seems) is sent too.
        let mut plan = Plan::default();
        for p in &built.unsettled {
            plan.items.push(PlanItem {
                change: Change::Update,
                kind: None,
                path: p.clone(),
                size: 0,
                flags: String::new(),
            });
        }
        let mut again = job.clone();
        again.checksum = true;
        let tmp = prep.dst.join(TEMP_DIR);
        std::fs::create_dir_all(&tmp).map_err(|e| BackupError::io(&tmp, e))?;
        let r = again.run_planned(&plan, &prep.settings.scratch_dir, cancel, |_| {})?;
        let _ = std::fs::remove_dir(&tmp);
        if !r.outcome.is_usable() {
            return Err(BackupError::Rsync {
                outcome: r.outcome,
                stage: "run",
                stderr: r.stderr,
            });
        }
        force.extend(built.unsettled.iter().cloned());
        force.extend(r.items.into_iter().filter(content_sent).map(|i| i.path));
        cache = built.cache;
    }
}

/// Append `backup.synced` for a completed sync (call it before dropping `prep`: the lock makes
/// the next sync of this project see this manifest).
pub fn record_synced(
    state: &State,
    prep: &Prepared,
    report: &Report,
    decision_seq: Option<u64>,
) -> Result<Event, BackupError> {
    let plan_json = serde_json::to_value(&prep.plan).unwrap_or(Value::Null);
    Ok(state.append(NewEvent::new(
        history::SYNCED,
        prep.object(),
        json!({
            "project": prep.owner.project,
            "root": report.manifest_root,
            "manifest": report.manifest_path.file_name().map(|f| f.to_string_lossy().into_owned()),
            "manifest_source": report.manifest_source,
            "plan": plan_json,
            "rsync": report.outcome,
            "ran": report.ran,
            "counts": report.counts,
            "manifest_stats": report.manifest_stats,
            "duration_ms": report.duration_ms,
            "decision_seq": decision_seq,
        }),
    ))?)
}

/// Record why an allowed sync did not complete (`sync.cancelled` or `sync.failed`). Errors that
/// happened before the backup was touched need no record and are passed over.
pub fn record_failure(
    state: &State,
    prep: &Prepared,
    err: &BackupError,
) -> Result<(), BackupError> {
    let plan_json = serde_json::to_value(&prep.plan).unwrap_or(Value::Null);
    let project = &prep.owner.project;
    let ev = match err {
        BackupError::Cancelled => NewEvent::new(
            history::CANCELLED,
            prep.object(),
            json!({"project": project, "plan": plan_json, "note": "rsync's process group was stopped; files already moved into place are complete, partial ones stay in rsync's partial directory"}),
        ),
        BackupError::Rsync { outcome, .. } => NewEvent::new(
            history::FAILED,
            prep.object(),
            json!({"project": project, "rsync_exit": outcome.code(), "explanation": outcome.explain(), "error": err.to_string()}),
        ),
        BackupError::Unsettled { .. } => NewEvent::new(
            history::FAILED,
            prep.object(),
            json!({"project": project, "rsync_exit": 0, "explanation": "the working copy kept changing", "error": err.to_string()}),
        ),
        _ => return Ok(()),
    };
    state.append(ev)?;
    Ok(())
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
