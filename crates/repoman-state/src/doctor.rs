//! `doctor`: integrity checks over every store, each finding classified as auto-repairable or
//! needing human review, and the auto-repairs themselves.
//!
//! Checks: the hash chain of the whole log (a break is tampering or corruption: reported with its
//! seq, never rewritten), a torn last line (auto: quarantine the bytes, truncate), the index
//! (present, `PRAGMA quick_check`, schema version, head and row count equal to the log; auto:
//! rebuild), the registry and per-project overrides against their schemas (review), the runtime
//! directory's mode 0700 (auto when we own it), the device id (review).
//!
//! Without `repair`, doctor changes nothing: it inspects the index through its own read-only
//! SQLite connection instead of the self-repairing [`State::with_index`].

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use repoman_core::Env;
use repoman_core::registry::{ProjectOverrides, RegistryFile};
use rusqlite::OptionalExtension;
use serde::Serialize;

use crate::error::StateError;
use crate::index;
use crate::log::{ChainVerifier, Head};
use crate::repair::RepairReport;
use crate::schemas;
use crate::state::{INDEX_FILE, State};

/// What doctor should do.
#[derive(Debug, Clone, Copy, Default)]
pub struct DoctorOptions {
    /// Apply the auto-repairs.
    pub repair: bool,
    /// With `repair`: only say what would be repaired.
    pub dry_run: bool,
    /// Record that a human accepts the lost events found (`events.loss.acknowledged`).
    pub acknowledge_loss: bool,
}

/// Whether a finding can be fixed without a human.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FindingClass {
    AutoRepairable,
    NeedsReview,
}

/// One problem.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// `events.chain`, `events.line`, `events.tail`, `index`, `registry`, `overrides`,
    /// `runtime_dir`, `device_id`.
    pub check: &'static str,
    pub class: FindingClass,
    pub message: String,
    pub path: Option<PathBuf>,
    pub seq: Option<u64>,
    /// What `--repair` does, or what the human should do.
    pub action: String,
    pub repaired: bool,
}

/// One check that ran.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    pub name: &'static str,
    pub ok: bool,
    pub detail: String,
}

/// Durability class of a store (DESIGN.md §4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StoreClass {
    Durable,
    Rebuildable,
    Disposable,
}

/// A place where repoman keeps data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Store {
    pub name: &'static str,
    pub class: StoreClass,
    pub path: PathBuf,
    pub exists: bool,
    pub size: u64,
    pub what: &'static str,
}

/// The doctor's answer (`repoman.doctor/v1`).
#[derive(Debug, Clone, Serialize)]
pub struct DoctorReport {
    pub schema: &'static str,
    pub events: u64,
    pub checks: Vec<Check>,
    pub findings: Vec<Finding>,
    pub stores: Vec<Store>,
    /// Reports written by the repairs applied in this run.
    pub repairs: Vec<RepairReport>,
    pub repair: bool,
    pub dry_run: bool,
}

impl DoctorReport {
    pub fn needs_review(&self) -> bool {
        self.findings
            .iter()
            .any(|f| f.class == FindingClass::NeedsReview && !f.repaired)
    }

    /// Auto-repairable findings not repaired (yet).
    pub fn unrepaired(&self) -> usize {
        self.findings
            .iter()
            .filter(|f| f.class == FindingClass::AutoRepairable && !f.repaired)
            .count()
    }
}

/// Run every check, and the auto-repairs when asked.
#[tracing::instrument(level = "info", skip_all, fields(repair = opts.repair, dry_run = opts.dry_run))]
pub fn run(state: &State, env: &Env, opts: DoctorOptions) -> Result<DoctorReport, StateError> {
    let mut checks = Vec::new();
    let mut findings = Vec::new();

    let (events, chain_ok) = check_chain(state, &mut checks, &mut findings)?;
    check_tail(state, &mut checks, &mut findings)?;
    let lost_tail = check_lost_tail(state, &mut checks, &mut findings)?;
    if !lost_tail {
        check_index(state, chain_ok, &mut checks, &mut findings);
    }
    check_registry(state, env, &mut checks, &mut findings);
    check_runtime_dir(state, &mut checks, &mut findings);
    check_device_id(state, &mut checks, &mut findings);

    let mut repairs = Vec::new();
    if opts.acknowledge_loss && !opts.dry_run && findings.iter().any(|f| f.check == "events.lost") {
        let before = state.repairs().len();
        let done = state.acknowledge_loss()?;
        for f in findings.iter_mut().filter(|f| f.check == "events.lost") {
            f.repaired = f
                .seq
                .is_some_and(|from| done.iter().any(|&(a, b)| a <= from && from <= b));
        }
        repairs.extend(state.repairs().into_iter().skip(before));
    }
    if opts.repair && !opts.dry_run && !lost_tail {
        apply_repairs(state, chain_ok, &mut findings, &mut repairs)?;
    }
    Ok(DoctorReport {
        schema: "repoman.doctor/v1",
        events,
        checks,
        findings,
        stores: stores(state),
        repairs,
        repair: opts.repair,
        dry_run: opts.dry_run,
    })
}

#[tracing::instrument(level = "debug", skip_all)]
fn check_chain(
    state: &State,
    checks: &mut Vec<Check>,
    findings: &mut Vec<Finding>,
) -> Result<(u64, bool), StateError> {
    let log = state.log();
    if !log.exists() {
        checks.push(Check {
            name: "events.chain",
            ok: true,
            detail: "no event log yet".into(),
        });
        return Ok((0, true));
    }
    let mut verifier = ChainVerifier::new(Head::empty());
    let mut count = 0u64;
    let mut problems = 0usize;
    let mut resync = false;
    for item in log.read_from(1)?.located() {
        match item {
            Ok(l) => {
                count += 1;
                if std::mem::take(&mut resync) {
                    // The line before could not be read: link to what this one claims.
                    verifier.resume(Head {
                        seq: l.event.seq.saturating_sub(1),
                        hash: l.event.prev.clone(),
                    });
                }
                if let Err(e) = verifier.check(&l) {
                    problems += 1;
                    if let StateError::ChainBroken {
                        seq,
                        path,
                        line,
                        reason,
                    } = e
                    {
                        findings.push(Finding {
                            check: "events.chain",
                            class: FindingClass::NeedsReview,
                            message: format!("hash chain broken at seq {seq} ({}:{line}): {reason}", path.display()),
                            path: Some(path),
                            seq: Some(seq),
                            action: "tampering or disk corruption: never rewritten automatically. Compare the segment with a backup copy and restore it; `repoman log` shows the events around this seq".into(),
                            repaired: false,
                        });
                    }
                    // Continue from the bad event so later, independent breaks are reported too.
                    verifier.resume(Head {
                        seq: l.event.seq,
                        hash: l.event.hash.clone(),
                    });
                }
            }
            Err(StateError::CorruptLine { path, line, reason }) => {
                problems += 1;
                findings.push(Finding {
                    check: "events.line",
                    class: FindingClass::NeedsReview,
                    message: format!("{}:{line}: not a valid event ({reason})", path.display()),
                    path: Some(path),
                    seq: Some(verifier.head().seq + 1),
                    action: "a damaged line inside the log: restore the segment from a backup copy"
                        .into(),
                    repaired: false,
                });
                // The next line cannot link to a line we could not read; skip one link check.
                resync = true;
            }
            Err(e) => return Err(e),
        }
        if problems >= 20 {
            break;
        }
    }
    let mut acknowledged = Vec::new();
    for g in verifier.gaps() {
        if verifier.is_acknowledged(g) {
            acknowledged.push(format!("{}-{}", g.from, g.to));
            continue;
        }
        problems += 1;
        findings.push(lost_finding(
            g.from,
            g.to,
            format!(
                "events {} to {} are missing: the log jumps from seq {} to seq {} at {}:{} (a segment was deleted or lost)",
                g.from,
                g.to,
                g.from - 1,
                g.to + 1,
                g.resumes_at.display(),
                g.line
            ),
            Some(g.resumes_at.clone()),
        ));
    }
    let ok = problems == 0;
    let acked = if acknowledged.is_empty() {
        String::new()
    } else {
        format!(" (lost and acknowledged: {})", acknowledged.join(", "))
    };
    checks.push(Check {
        name: "events.chain",
        ok,
        detail: if ok {
            format!("{count} events, one unbroken chain{acked}")
        } else {
            format!("{problems} problem(s) in {count} events{acked}")
        },
    });
    Ok((count, ok))
}

fn lost_finding(from: u64, to: u64, message: String, path: Option<PathBuf>) -> Finding {
    Finding {
        check: "events.lost",
        class: FindingClass::NeedsReview,
        message,
        path,
        seq: Some(from),
        action: format!(
            "{} event(s) are lost unless a backup of the state directory still has them: restore the missing segment there, or accept the loss with `repoman doctor --acknowledge-loss` (recorded as an event; seqs {from}-{to} are never reused)",
            to - from + 1
        ),
        repaired: false,
    }
}

/// The log's last segment(s) gone: the index remembers events the log no longer has.
fn check_lost_tail(
    state: &State,
    checks: &mut Vec<Check>,
    findings: &mut Vec<Finding>,
) -> Result<bool, StateError> {
    let Some(lost) = state.lost_tail()? else {
        return Ok(false);
    };
    checks.push(Check {
        name: "events.lost",
        ok: false,
        detail: format!("events {} to {} lost", lost.from, lost.to),
    });
    findings.push(lost_finding(
        lost.from,
        lost.to,
        format!(
            "events {} to {} are missing: the index recorded the log up to seq {}, but the log ends at seq {} (its last segment was deleted or lost)",
            lost.from,
            lost.to,
            lost.to,
            lost.from - 1
        ),
        Some(state.log().dir().to_path_buf()),
    ));
    Ok(true)
}

#[tracing::instrument(level = "debug", skip_all)]
fn check_tail(
    state: &State,
    checks: &mut Vec<Check>,
    findings: &mut Vec<Finding>,
) -> Result<(), StateError> {
    if !state.log().exists() {
        checks.push(Check {
            name: "events.tail",
            ok: true,
            detail: "no event log yet".into(),
        });
        return Ok(());
    }
    let tail = match state.log().tail() {
        Ok(t) => t,
        Err(e) => {
            checks.push(Check {
                name: "events.tail",
                ok: false,
                detail: e.to_string(),
            });
            return Ok(());
        }
    };
    match tail.torn {
        Some(t) => {
            checks.push(Check {
                name: "events.tail",
                ok: false,
                detail: "torn last line".into(),
            });
            findings.push(Finding {
                check: "events.tail",
                class: FindingClass::AutoRepairable,
                message: format!("{}: {} byte(s) after the last complete event (an append interrupted by a crash)", t.segment.display(), t.len),
                path: Some(t.segment.clone()),
                seq: Some(tail.head.seq + 1),
                action: "`repoman doctor --repair` moves the torn bytes to the quarantine directory and truncates the segment to its last complete event".into(),
                repaired: false,
            });
        }
        None => checks.push(Check {
            name: "events.tail",
            ok: true,
            detail: format!("ends with a complete event (seq {})", tail.head.seq),
        }),
    }
    Ok(())
}

/// Why the on-disk index does not reflect the log, or `None` if it does.
pub fn index_problem(state: &State) -> Option<String> {
    let path = state.index_path();
    let log_head = match state.log().tail() {
        Ok(t) => t.head,
        Err(e) => return Some(format!("cannot read the log head: {e}")),
    };
    if !path.exists() {
        return (log_head.seq > 0).then(|| "the index is missing".to_owned());
    }
    let conn = match index::open_existing_read_only(&path) {
        Ok(c) => c,
        Err(e) => return Some(format!("cannot open: {e}")),
    };
    let check: Result<String, _> = conn.query_row("PRAGMA quick_check", [], |r| r.get(0));
    match check {
        Ok(r) if r == "ok" => {}
        Ok(r) => return Some(format!("PRAGMA quick_check: {r}")),
        Err(e) => return Some(format!("not a readable SQLite database: {e}")),
    }
    match index::schema_version(&conn) {
        Ok(Some(v)) if v == index::SCHEMA_VERSION => {}
        Ok(Some(v)) => {
            return Some(format!(
                "index schema version {v}, this repoman needs {}",
                index::SCHEMA_VERSION
            ));
        }
        Ok(None) => return Some("no schema version recorded".into()),
        Err(e) => return Some(format!("unreadable meta table: {e}")),
    }
    let head = match index::read_head(&conn) {
        Ok(h) => h,
        Err(e) => return Some(format!("cannot read the head: {e}")),
    };
    if head.seq > log_head.seq {
        return Some(format!(
            "the index is ahead of the log (index seq {}, log seq {})",
            head.seq, log_head.seq
        ));
    }
    let rows: Result<i64, _> = conn.query_row("SELECT COUNT(*) FROM events", [], |r| r.get(0));
    // Acknowledged lost ranges hold no events.
    let lost: i64 = conn
        .query_row(
            "SELECT COALESCE(SUM(json_extract(data, '$.count')), 0) FROM events WHERE type = ?1",
            [crate::log::LOSS_ACKNOWLEDGED],
            |r| r.get(0),
        )
        .unwrap_or(0);
    match rows {
        Ok(n) if (n + lost) as u64 == head.seq => {}
        Ok(n) => {
            return Some(format!(
                "the index holds {n} events but claims head seq {}",
                head.seq
            ));
        }
        Err(e) => return Some(format!("cannot count events: {e}")),
    }
    if head.seq > 0 {
        let at_head: Result<Option<String>, _> = conn
            .query_row(
                "SELECT hash FROM events WHERE seq = ?1",
                [head.seq as i64],
                |r| r.get(0),
            )
            .optional();
        let log_hash = state
            .log()
            .read_from(head.seq)
            .ok()
            // Damaged lines before it are reported by the chain check, not here.
            .and_then(|r| r.filter_map(Result::ok).next())
            .filter(|e| e.seq == head.seq)
            .map(|e| e.hash);
        match (at_head, log_hash) {
            (Ok(Some(a)), Some(b)) if a == b && a == head.hash => {}
            _ => {
                return Some(format!(
                    "the index's event {} does not match the log",
                    head.seq
                ));
            }
        }
    }
    None
}

#[tracing::instrument(level = "debug", skip_all)]
fn check_index(
    state: &State,
    chain_ok: bool,
    checks: &mut Vec<Check>,
    findings: &mut Vec<Finding>,
) {
    if !state.log().exists() {
        checks.push(Check {
            name: "index",
            ok: true,
            detail: "no event log yet, nothing to index".into(),
        });
        return;
    }
    match index_problem(state) {
        None => {
            let behind = state.log().tail().ok().map(|t| t.head.seq).unwrap_or(0);
            checks.push(Check {
                name: "index",
                ok: true,
                detail: format!(
                    "consistent with the log up to seq {behind} (or catching up on next use)"
                ),
            });
        }
        Some(problem) => {
            checks.push(Check {
                name: "index",
                ok: false,
                detail: problem.clone(),
            });
            let action = if chain_ok {
                "`repoman doctor --repair` (or any repoman command) moves it aside and rebuilds it from the log".to_owned()
            } else {
                "the index can be rebuilt only once the chain break above is resolved".to_owned()
            };
            findings.push(Finding {
                check: "index",
                class: FindingClass::AutoRepairable,
                message: format!("{}: {problem}", state.index_path().display()),
                path: Some(state.index_path()),
                seq: None,
                action,
                repaired: false,
            });
        }
    }
}

#[tracing::instrument(level = "debug", skip_all)]
fn check_registry(state: &State, env: &Env, checks: &mut Vec<Check>, findings: &mut Vec<Finding>) {
    let path = &state.paths().config_file;
    if !path.exists() {
        checks.push(Check {
            name: "registry",
            ok: true,
            detail: format!("{} does not exist (an empty registry)", path.display()),
        });
        return;
    }
    let review = |check: &'static str, path: &Path, message: String| Finding {
        check,
        class: FindingClass::NeedsReview,
        message,
        path: Some(path.to_path_buf()),
        seq: None,
        action: format!(
            "edit {} (`repoman schema show` prints the schema)",
            path.display()
        ),
        repaired: false,
    };
    let before = findings.len();
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let reg = match RegistryFile::load(path) {
        Ok(r) => Some(r),
        Err(e) => {
            findings.push(review("registry", path, e.to_string()));
            None
        }
    };
    if reg.is_some()
        && let Err(e) =
            schemas::validate_toml("repoman.toml/v1", &text, &path.display().to_string())
    {
        findings.push(review("registry", path, e.to_string()));
    }
    let mut overrides_checked = 0;
    if let Some(reg) = reg {
        let settings = repoman_core::settings::Settings::resolve(&reg.registry, env);
        if let Some(root) = settings.local_repos.as_ref().map(|s| s.value.clone()) {
            for p in &reg.registry.projects {
                let repo = root.join(p.repo.as_str());
                let file = repo.join(repoman_core::registry::OVERRIDES_FILE);
                if !file.exists() {
                    continue;
                }
                overrides_checked += 1;
                if let Err(e) = ProjectOverrides::load(&repo) {
                    findings.push(review("overrides", &file, e.to_string()));
                    continue;
                }
                let text = std::fs::read_to_string(&file).unwrap_or_default();
                if let Err(e) = schemas::validate_toml(
                    "repoman-project.toml/v1",
                    &text,
                    &file.display().to_string(),
                ) {
                    findings.push(review("overrides", &file, e.to_string()));
                }
            }
        }
    }
    let ok = findings.len() == before;
    checks.push(Check {
        name: "registry",
        ok,
        detail: if ok {
            format!(
                "{} and {overrides_checked} .repoman.toml file(s) match their schemas",
                path.display()
            )
        } else {
            "does not match its schema".into()
        },
    });
}

#[tracing::instrument(level = "debug", skip_all)]
fn check_runtime_dir(state: &State, checks: &mut Vec<Check>, findings: &mut Vec<Finding>) {
    let dir = &state.paths().runtime_dir;
    let Ok(meta) = std::fs::metadata(dir) else {
        checks.push(Check {
            name: "runtime_dir",
            ok: true,
            detail: format!(
                "{} does not exist (created with mode 0700 when needed)",
                dir.display()
            ),
        });
        return;
    };
    let mode = meta.permissions().mode() & 0o777;
    let ours = meta.uid() == rustix_uid();
    if mode == 0o700 && ours {
        checks.push(Check {
            name: "runtime_dir",
            ok: true,
            detail: format!("{} has mode 0700", dir.display()),
        });
        return;
    }
    checks.push(Check {
        name: "runtime_dir",
        ok: false,
        detail: format!("mode {mode:o}"),
    });
    findings.push(Finding {
        check: "runtime_dir",
        class: if ours {
            FindingClass::AutoRepairable
        } else {
            FindingClass::NeedsReview
        },
        message: format!(
            "{} has mode {mode:o}{}; it holds locks and sockets and must be private (0700)",
            dir.display(),
            if ours {
                ""
            } else {
                " and belongs to another user"
            }
        ),
        path: Some(dir.clone()),
        seq: None,
        action: if ours {
            "`repoman doctor --repair` sets mode 0700".into()
        } else {
            "set REPOMAN_RUNTIME_DIR to a directory you own".into()
        },
        repaired: false,
    });
}

fn rustix_uid() -> u32 {
    rustix::process::getuid().as_raw()
}

#[tracing::instrument(level = "debug", skip_all)]
fn check_device_id(state: &State, checks: &mut Vec<Check>, findings: &mut Vec<Finding>) {
    match crate::identity::read_device_id(state.state_dir()) {
        Ok(Some(id)) => checks.push(Check {
            name: "device_id",
            ok: true,
            detail: id,
        }),
        Ok(None) => checks.push(Check {
            name: "device_id",
            ok: true,
            detail: "not generated yet (on the first recorded event)".into(),
        }),
        Err(e) => {
            checks.push(Check {
                name: "device_id",
                ok: false,
                detail: e.to_string(),
            });
            findings.push(Finding {
                check: "device_id",
                class: FindingClass::NeedsReview,
                message: e.to_string(),
                path: Some(state.state_dir().join(crate::identity::DEVICE_ID_FILE)),
                seq: None,
                action: "if this machine is a copy of another, move the file aside so a new device id is generated".into(),
                repaired: false,
            });
        }
    }
}

#[tracing::instrument(level = "debug", skip_all)]
fn apply_repairs(
    state: &State,
    chain_ok: bool,
    findings: &mut [Finding],
    repairs: &mut Vec<RepairReport>,
) -> Result<(), StateError> {
    let before = state.repairs().len();
    if findings.iter().any(|f| f.check == "events.tail") && state.repair_torn_tail()?.is_some() {
        for f in findings.iter_mut().filter(|f| f.check == "events.tail") {
            f.repaired = true;
        }
    }
    if chain_ok && findings.iter().any(|f| f.check == "index") {
        // The torn-tail repair may already have rebuilt the index on its way.
        if let Some(problem) = index_problem(state) {
            state.rebuild_index(&problem)?;
        }
        if index_problem(state).is_none() {
            for f in findings.iter_mut().filter(|f| f.check == "index") {
                f.repaired = true;
            }
        }
    }
    for f in findings
        .iter_mut()
        .filter(|f| f.check == "runtime_dir" && f.class == FindingClass::AutoRepairable)
    {
        let dir = &state.paths().runtime_dir;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .map_err(StateError::io(dir))?;
        f.repaired = true;
    }
    repairs.extend(state.repairs().into_iter().skip(before));
    Ok(())
}

fn size_of(path: &Path) -> u64 {
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return 0;
    };
    if !meta.is_dir() {
        return meta.len();
    }
    std::fs::read_dir(path)
        .map(|rd| rd.flatten().map(|e| size_of(&e.path())).sum())
        .unwrap_or(0)
}

/// Every store with its class, path and size.
pub fn stores(state: &State) -> Vec<Store> {
    let p = state.paths();
    let sd = &p.state_dir;
    let index_size = |path: &Path| -> u64 {
        ["", "-wal", "-shm"]
            .iter()
            .map(|s| size_of(Path::new(&format!("{}{s}", path.display()))))
            .sum()
    };
    let mut out = vec![
        (Store {
            name: "registry",
            class: StoreClass::Durable,
            path: p.config_file.clone(),
            exists: false,
            size: 0,
            what: "the registry, edited by you and repoman",
        }),
        (Store {
            name: "events",
            class: StoreClass::Durable,
            path: sd.join("events"),
            exists: false,
            size: 0,
            what: "the append-only, hash-chained event log",
        }),
        (Store {
            name: "manifests",
            class: StoreClass::Durable,
            path: sd.join("manifests"),
            exists: false,
            size: 0,
            what: "backup content manifests (evidence for restores)",
        }),
        (Store {
            name: "device_id",
            class: StoreClass::Durable,
            path: sd.join(crate::identity::DEVICE_ID_FILE),
            exists: false,
            size: 0,
            what: "this device's id, recorded on every event",
        }),
        (Store {
            name: "repairs",
            class: StoreClass::Durable,
            path: sd.join("repairs"),
            exists: false,
            size: 0,
            what: "repair reports",
        }),
        (Store {
            name: "quarantine",
            class: StoreClass::Durable,
            path: sd.join("quarantine"),
            exists: false,
            size: 0,
            what: "bytes moved aside by repairs, kept for review",
        }),
        (Store {
            name: "index",
            class: StoreClass::Rebuildable,
            path: sd.join(INDEX_FILE),
            exists: false,
            size: 0,
            what: "SQLite index derived from the event log",
        }),
        (Store {
            name: "cache",
            class: StoreClass::Rebuildable,
            path: p.cache_dir.clone(),
            exists: false,
            size: 0,
            what: "probe and stat caches",
        }),
        (Store {
            name: "runtime",
            class: StoreClass::Disposable,
            path: p.runtime_dir.clone(),
            exists: false,
            size: 0,
            what: "locks, sockets, sessions",
        }),
    ];
    for s in &mut out {
        s.exists = s.path.exists();
        s.size = if s.name == "index" {
            index_size(&s.path)
        } else {
            size_of(&s.path)
        };
    }
    out
}
