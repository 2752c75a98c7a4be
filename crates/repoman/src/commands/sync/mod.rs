//! `repoman sync`: guarded rsync mirror of working copies onto the backup share, then a content
//! manifest. The helpers the backup commands share (a project's paths, its last manifest) are in
//! `crate::targets`.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use clap::Args;
use repoman_backup::engine::{self, Prepared, Settings as SyncSettings};
use repoman_backup::guards::DeleteLimits;
use repoman_backup::marker::Owner;
use repoman_backup::mount::Expected;
use repoman_backup::{BackupError, conflict};
use repoman_core::registry::{Registry, RegistryFile};
use repoman_core::settings::Settings;
use repoman_core::{Progress, Unit};
use repoman_state::{Effect, State};
use serde_json::{Value, json};

use crate::app::App;
use crate::error::{CliError, Exit};
use crate::targets::{Target, targets};

mod one;
use one::sync_one;

/// Mirror working copies to the backup share: `<local_repos>/<repo>` -> `<backup_root>/<repo>`.
///
/// Each project is planned with `rsync --dry-run --itemize-changes`, checked by the mirror guards
/// (source present and not emptied, backup mounted with the expected filesystem type, destination
/// marker ours, deletions under max_delete, no backup-side changes since the last sync), then
/// mirrored with the same rsync arguments; a BLAKE3 manifest of the result is stored and recorded
/// in a `backup.synced` event. A blocked project does not stop the others; the exit code is the
/// worst outcome (3 blocked, 4 backup not reachable, 130 interrupted).
#[derive(Debug, Args)]
pub struct SyncArgs {
    /// Projects to sync (default: all registered projects).
    pub names: Vec<String>,
    /// Sync every registered project.
    #[arg(long, conflicts_with = "names")]
    pub all: bool,
    /// Plan and check the guards, change nothing (no files, no events).
    #[arg(long)]
    pub dry_run: bool,
    /// Do not delete anything from the backup.
    #[arg(long)]
    pub no_delete: bool,
    /// Allow up to N deletions, or P% of the backup's entries (e.g. `50` or `10%`).
    #[arg(long, value_name = "N|P%", value_parser = parse_max_delete)]
    pub max_delete: Option<MaxDelete>,
    /// Projects synced at the same time (default: twice the CPU count, at least 2, at most 8).
    #[arg(long, value_name = "N", value_parser = crate::cli::parse_jobs)]
    pub jobs: Option<usize>,
    /// Mirror an emptied working copy (deletes the whole backup copy).
    #[arg(long)]
    pub allow_empty_source: bool,
    /// Take over a backup copy without a marker or with another owner's marker.
    #[arg(long)]
    pub adopt: bool,
    /// Give up waiting for another sync of the same project after this many seconds.
    #[arg(long, value_name = "SECS")]
    pub lock_timeout: Option<u64>,
    /// Compare file contents instead of size and mtime: re-copies backup files whose bytes
    /// differ from the working copy's (what `verify --full` reports as `content`).
    #[arg(long)]
    pub checksum: bool,
}

/// A `--max-delete` value, checked when the command line is parsed (before any other work).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum MaxDelete {
    Count(u64),
    Percent(f64),
}

/// clap value parser for `--max-delete N|P%`.
pub fn parse_max_delete(v: &str) -> Result<MaxDelete, String> {
    let bad = || format!("{v:?} is neither a count like 50 nor a percentage like 10%");
    match v.trim().strip_suffix('%') {
        Some(p) => {
            let pct = p.trim().parse::<f64>().map_err(|_| bad())?;
            if (0.0..=100.0).contains(&pct) {
                Ok(MaxDelete::Percent(pct))
            } else {
                Err(format!(
                    "a percentage of the backup's entries is between 0% and 100%, not {v:?}; \
                     `--max-delete 100%` allows deleting everything, a count like 50 caps the number"
                ))
            }
        }
        None => v.trim().parse().map(MaxDelete::Count).map_err(|_| bad()),
    }
}

/// The deletion limits: the registry's, unless `--max-delete` replaces them.
fn limits(settings: &Settings, flag: Option<MaxDelete>) -> DeleteLimits {
    match flag {
        None => DeleteLimits {
            count: settings.max_delete.value,
            percent: settings.max_delete_percent.value,
        },
        Some(MaxDelete::Percent(percent)) => DeleteLimits {
            count: u64::MAX,
            percent,
        },
        Some(MaxDelete::Count(count)) => DeleteLimits {
            count,
            percent: 100.0,
        },
    }
}

/// The overall progress across projects (bytes on the bar, files in its message).
struct Overall {
    bar: indicatif::ProgressBar,
    files_total: AtomicU64,
    files_done: AtomicU64,
}

/// One project's result, for output.
struct Outcome {
    exit: Exit,
    json: Value,
    line: String,
    details: Vec<String>,
    /// When the project synced: its new `last_sync` (written to the registry once, for all).
    synced_at: Option<String>,
}

pub fn run(app: &App, args: SyncArgs) -> Result<Exit, CliError> {
    let reg = app.registry()?;
    let settings = app.settings()?;
    let targets = targets(app, &reg.registry, &settings, &args.names)?;
    if targets.is_empty() {
        app.ui.warn("no projects registered; nothing to sync");
        return Ok(Exit::Success);
    }
    let limits = limits(&settings, args.max_delete);
    app.paths.ensure_runtime_dir()?;
    let state = if args.dry_run {
        app.state_read_only()?
    } else {
        app.state()?
    };
    let estate_id = if args.dry_run {
        reg.registry
            .estate_id
            .clone()
            .unwrap_or_else(|| "(not yet assigned)".into())
    } else {
        RegistryFile::edit(&app.paths.config_file, None, |f| {
            Ok(f.ensure_estate_id(|| app.clock.new_id().to_string()))
        })?
        .0
    };
    let jobs = args
        .jobs
        .unwrap_or_else(default_jobs)
        .max(1)
        .min(targets.len());
    let names: Vec<String> = targets
        .iter()
        .map(|t| t.entry.name.as_str().to_owned())
        .collect();
    let mut queue: Vec<(usize, Target)> = targets.into_iter().enumerate().collect();
    queue.reverse(); // workers pop from the end: start with the first project
    let queue = Mutex::new(queue);
    let overall = Overall {
        bar: if args.dry_run {
            indicatif::ProgressBar::hidden()
        } else {
            app.ui.progress_bar(0, "all projects", true)
        },
        files_total: AtomicU64::new(0),
        files_done: AtomicU64::new(0),
    };
    let results: Mutex<Vec<(usize, Outcome)>> = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..jobs {
            s.spawn(|| {
                loop {
                    let next = queue.lock().ok().and_then(|mut q| q.pop());
                    let Some((i, t)) = next else { break };
                    let out = sync_one(app, &state, &reg.registry, &settings, &args, limits, &estate_id, &t, &overall)
                        .unwrap_or_else(|e| Outcome {
                            exit: e.exit,
                            json: json!({"project": t.entry.name.as_str(), "status": status_of(e.exit), "error": e.to_string()}),
                            line: format!("{}\t{}", t.entry.name, status_of(e.exit)),
                            details: std::iter::once(format!("{}: {}", t.entry.name, e.message))
                                .chain(e.causes.iter().map(|c| format!("caused by: {c}")))
                                .chain(e.hint.iter().map(|h| format!("hint: {h}")))
                                .collect(),
                            synced_at: None,
                        });
                    if let Ok(mut r) = results.lock() {
                        r.push((i, out));
                    }
                }
            });
        }
    });
    overall.bar.finish_and_clear();
    let mut results = results.into_inner().unwrap_or_else(|p| p.into_inner());
    results.sort_by_key(|(i, _)| *i);
    // One registry write for all projects (the `backup.synced` events are the durable record;
    // `last_sync` is the registry's summary of them).
    let synced: Vec<(String, String)> = results
        .iter()
        .filter_map(|(i, o)| o.synced_at.clone().map(|at| (names[*i].clone(), at)))
        .collect();
    if !synced.is_empty() {
        RegistryFile::edit(&app.paths.config_file, None, |f| {
            for (name, at) in &synced {
                f.set_project_field(name, "last_sync", Some(at))?;
            }
            Ok(())
        })?;
    }
    let mut exit = Exit::Success;
    for (_, o) in &results {
        exit = exit.worst(o.exit);
    }
    if app.ui.json() {
        app.ui.print_json(&json!({"dry_run": args.dry_run, "projects": results.iter().map(|(_, o)| o.json.clone()).collect::<Vec<_>>()}))?;
    } else {
        for (_, o) in &results {
            app.ui.data(&o.line)?;
            for d in &o.details {
                if o.exit == Exit::Success {
                    app.ui.data(&format!("  {d}"))?;
                } else {
                    app.ui.warn(d);
                }
            }
        }
    }
    Ok(exit)
}

/// Twice the CPU count (2..=8). Each project's sync waits on rsync's two walks (stat and open
/// calls), fsyncs and the disk much of the time, so more projects than cores in flight keep the
/// cores busy: on 2 cores, 4 jobs made the 1%-change benchmark ~22 % faster than 2 (see
/// docs/performance.md, `## Backup`).
fn default_jobs() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get() * 2)
        .unwrap_or(2)
        .clamp(2, 8)
}

fn status_of(exit: Exit) -> &'static str {
    match exit {
        Exit::Success => "synced",
        Exit::Blocked => "blocked",
        Exit::Unavailable => "unavailable",
        Exit::Interrupted => "cancelled",
        _ => "failed",
    }
}
