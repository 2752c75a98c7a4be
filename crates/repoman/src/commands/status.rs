//! `repoman status`: health of the sandboxes and drift between the registry and Incus, with
//! optional repairs.

use std::time::Duration;

use clap::Args;
use repoman_state::NewEvent;
use serde::Serialize;
use serde_json::{Value, json};

use crate::app::App;
use crate::error::{CliError, Exit};
use repoman_sandbox::SandboxError;
use repoman_sandbox::create;
use repoman_sandbox::drift::{Change, Drift};
use repoman_sandbox::repair;
use repoman_sandbox::session::{self, Session};

/// Health and drift: container state, bind mounts, backup root, last sync, and drift.
///
/// Drift is **missing** (registered, no container), **orphan** (a container in repoman's Incus
/// project that is not registered) or **config** (devices, profiles, environment or image differ
/// from repoman.toml + .repoman.toml). Read-only unless --repair, which asks for confirmation (or
/// takes --yes) and records every repair as an event. Exits 1 when problems remain.
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Only this project (drift elsewhere is still warned about).
    pub name: Option<String>,
    /// Repair the drift found (after confirmation, or with --yes).
    #[arg(long)]
    pub repair: bool,
    /// What --repair does with a missing sandbox (default: ask on a terminal, else recreate).
    #[arg(long, value_enum)]
    pub missing: Option<MissingArg>,
    /// What --repair does with an orphan container (default: ask on a terminal, else adopt).
    #[arg(long, value_enum)]
    pub orphan: Option<OrphanArg>,
    /// With --repair: show the repairs without making them.
    #[arg(long)]
    pub dry_run: bool,
}

/// What --repair does with a missing sandbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum MissingArg {
    /// Create the container again from the registry and `.repoman.toml`.
    Recreate,
    /// Remove the project from the registry (the repo and the backup stay).
    Forget,
    /// Leave it.
    Skip,
}

/// What --repair does with an orphan container.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OrphanArg {
    /// Register it as a project (repo dirname from its `user.repoman.repo` tag, else its name).
    Adopt,
    /// Stop and delete the container.
    Destroy,
    /// Leave it.
    Skip,
}

/// One bind mount of a sandbox.
#[derive(Debug, Serialize)]
struct Mount {
    device: String,
    source: String,
    path: String,
    /// The instance has this device as desired.
    present: bool,
    source_exists: bool,
}

/// One sandbox in `status --json`.
#[derive(Debug, Serialize)]
struct Item {
    name: String,
    registered: bool,
    container: bool,
    state: String,
    repo_path: Option<String>,
    repo_exists: Option<bool>,
    mounts: Vec<Mount>,
    last_sync: Option<String>,
    last_sync_age_secs: Option<i64>,
    drift: Option<Drift>,
    problems: Vec<String>,
}

/// One planned or applied repair.
#[derive(Debug, Serialize)]
struct Repair {
    name: String,
    drift: &'static str,
    action: String,
    applied: bool,
    error: Option<String>,
}

fn items(app: &App, s: &Session, only: Option<&str>) -> Vec<Item> {
    let now = app.clock.now();
    let mut out = Vec::new();
    for p in &s.estate.file.registry.projects {
        let name = p.name.as_str();
        if only.is_some_and(|o| o != name) {
            continue;
        }
        let inst = s.observed.instance(name);
        let mut problems = Vec::new();
        let repo_path =
            repoman_sandbox::desired::repo_path(&s.estate.settings, p.repo.as_str()).ok();
        let repo_exists = repo_path.as_ref().map(|r| r.is_dir());
        if repo_exists == Some(false) {
            problems.push("the repo directory does not exist".to_owned());
        }
        let mut mounts = Vec::new();
        if p.container {
            match s.estate.desired(p, None) {
                Ok(d) => {
                    for (dev, want) in &d.devices {
                        let source = want.get("source").cloned().unwrap_or_default();
                        let present = inst.is_some_and(|i| {
                            i.devices.get(dev).is_some_and(|have| {
                                have.get("source") == want.get("source")
                                    && have.get("path") == want.get("path")
                            })
                        });
                        let source_exists = std::path::Path::new(&source).exists();
                        if inst.is_some() && !present {
                            problems.push(format!("bind mount `{dev}` is not on the container"));
                        }
                        if !source_exists {
                            problems.push(format!("bind mount source {source} does not exist"));
                        }
                        mounts.push(Mount {
                            device: dev.clone(),
                            source,
                            path: want.get("path").cloned().unwrap_or_default(),
                            present,
                            source_exists,
                        });
                    }
                }
                Err(e) => problems.push(e.to_string()),
            }
        }
        let drift = s.drift_of(name).cloned();
        if let Some(d) = &drift {
            problems.push(d.summary());
        }
        let age = p
            .last_sync
            .as_deref()
            .and_then(|t| t.parse::<jiff::Timestamp>().ok())
            .map(|t| now.as_second() - t.as_second());
        out.push(Item {
            name: name.to_owned(),
            registered: true,
            container: p.container,
            state: match (p.container, inst) {
                (_, Some(i)) => i.status.clone(),
                (true, None) => "missing".to_owned(),
                (false, None) => "none".to_owned(),
            },
            repo_path: repo_path.map(|p| p.display().to_string()),
            repo_exists,
            mounts,
            last_sync: p.last_sync.clone(),
            last_sync_age_secs: age,
            drift,
            problems,
        });
    }
    for i in &s.observed.instances {
        if s.estate.file.registry.project(&i.name).is_some() || only.is_some_and(|o| o != i.name) {
            continue;
        }
        let drift = s.drift_of(&i.name).cloned();
        out.push(Item {
            name: i.name.clone(),
            registered: false,
            container: true,
            state: i.status.clone(),
            repo_path: i
                .user_config(repoman_sandbox::desired::TAG_REPO)
                .map(str::to_owned),
            repo_exists: None,
            mounts: Vec::new(),
            last_sync: None,
            last_sync_age_secs: None,
            problems: drift.iter().map(Drift::summary).collect(),
            drift,
        });
    }
    out
}

/// The repair for one drift: the flag's choice, else asked on a terminal, else the
/// non-destructive default (recreate a missing sandbox, adopt an orphan).
fn action_name(app: &App, d: &Drift, args: &StatusArgs) -> Result<Option<String>, CliError> {
    let ask = |question: &str, choices: &[&str], default: &str| -> Result<String, CliError> {
        loop {
            let answer = app.ui.input(
                &format!("{question} [{}]", choices.join("/")),
                Some(default),
            )?;
            let answer = answer.trim().to_lowercase();
            if choices.contains(&answer.as_str()) {
                return Ok(answer);
            }
            app.ui
                .warn(&format!("answer one of: {}", choices.join(", ")));
        }
    };
    let chosen = match d {
        Drift::Missing { .. } => match (args.missing, app.ui.can_prompt() && !args.dry_run) {
            (Some(MissingArg::Skip), _) => None,
            (Some(a), _) => Some(format!("{a:?}").to_lowercase()),
            (None, true) => Some(ask(
                &d.summary(),
                &["recreate", "forget", "skip"],
                "recreate",
            )?),
            (None, false) => Some("recreate".to_owned()),
        },
        Drift::Orphan { .. } => match (args.orphan, app.ui.can_prompt() && !args.dry_run) {
            (Some(OrphanArg::Skip), _) => None,
            (Some(a), _) => Some(format!("{a:?}").to_lowercase()),
            (None, true) => Some(ask(&d.summary(), &["adopt", "destroy", "skip"], "adopt")?),
            (None, false) => Some("adopt".to_owned()),
        },
        Drift::Config { changes, .. } if changes.iter().any(Change::reapplicable) => {
            Some("reapply".to_owned())
        }
        _ => None,
    };
    Ok(chosen.filter(|a| a != "skip"))
}

fn repair_one(app: &App, s: &Session, d: &Drift, action: &str) -> Result<Value, SandboxError> {
    let scope = &s.observed.scope;
    let registry = &app.paths.config_file;
    match (d, action) {
        (Drift::Missing { name }, "recreate") => {
            let entry = s.estate.entry(name)?;
            let desired = s.estate.desired(entry, None)?;
            let spec = create::instance_spec(&desired)?;
            scope
                .with_operation_timeout(Duration::from_secs(600))
                .create_instance(&spec)?;
            if let Err(e) = scope.start(name) {
                // Leave nothing half-made behind: the container that cannot start is removed.
                let _ = repair::destroy_instance(scope, name);
                return Err(e.into());
            }
            Ok(json!({"image": desired.image}))
        }
        (Drift::Missing { name }, "forget") => {
            repair::forget(registry, name)?;
            Ok(json!({}))
        }
        (Drift::Orphan { name, .. }, "adopt") => {
            let inst = s
                .observed
                .instance(name)
                .ok_or_else(|| SandboxError::Missing {
                    name: name.clone(),
                    project: s.estate.incus_project().to_owned(),
                })?;
            let local = s
                .estate
                .settings
                .local_repos
                .as_ref()
                .map(|l| l.value.as_path());
            let entry = repair::adopt(registry, local, inst, app.clock.now_rfc3339())?;
            Ok(json!({"repo": entry.repo.as_str()}))
        }
        (Drift::Orphan { name, .. }, "destroy") => {
            repair::destroy_instance(scope, name)?;
            Ok(json!({}))
        }
        (Drift::Config { name, changes }, "reapply") => {
            let entry = s.estate.entry(name)?;
            let desired = s.estate.desired(entry, None)?;
            let ev = repair::reapply(&s.incus, &desired, changes)?;
            Ok(ev.data)
        }
        _ => Err(SandboxError::Invalid(format!(
            "no repair `{action}` for {}",
            d.summary()
        ))),
    }
}

pub fn run(app: &App, args: StatusArgs) -> Result<Exit, CliError> {
    let s = Session::open(app.registry()?, &app.env)?;
    let only = args.name.as_deref();
    if let Some(n) = only
        && s.estate.file.registry.project(n).is_none()
        && s.observed.instance(n).is_none()
    {
        return Err(SandboxError::UnknownProject(n.to_owned()).into());
    }
    for w in s
        .drift_warnings(only)
        .into_iter()
        .filter(|_| only.is_some())
    {
        app.ui.warn(&w);
    }
    // The same mount guard as `sync`, `verify` and `restore`: the same verdict everywhere.
    let backup = repoman_backup::mount::MountGuard::from_settings(&s.estate.settings).map(|g| {
        let (reachable, error, mount) = match g.check() {
            Ok(m) => (true, None, Some(m.mount)),
            Err(e) => (false, Some(e.to_string()), None),
        };
        json!({"path": g.root(), "reachable": reachable, "error": error, "mount": mount})
    });
    let items = items(app, &s, only);
    let drifts: Vec<&Drift> = s
        .drift
        .iter()
        .filter(|d| only.is_none_or(|o| d.name() == o))
        .collect();

    let mut repairs: Vec<Repair> = Vec::new();
    if args.repair {
        let mut planned: Vec<(&Drift, String)> = Vec::new();
        for d in &drifts {
            if let Some(a) = action_name(app, d, &args)? {
                planned.push((*d, a));
            }
        }
        for (d, a) in &planned {
            app.ui.info(&format!("repair {}: {a}", d.summary()));
        }
        if !planned.is_empty() && !args.dry_run {
            let go = app
                .ui
                .confirm(&format!("apply {} repair(s)?", planned.len()), "--yes")?;
            if !go {
                return Err(CliError::failed("repairs cancelled"));
            }
        }
        let state = if args.dry_run {
            app.state_read_only()?
        } else {
            app.state()?
        };
        for (d, a) in planned {
            let op = session::op("sandbox.repair", d.name());
            let mut rep = Repair {
                name: d.name().to_owned(),
                drift: d.kind(),
                action: a.clone(),
                applied: false,
                error: None,
            };
            if let Err(e) = session::gate(
                &state,
                &op,
                Vec::new(),
                &s.estate.file.registry.policy.rules,
                !args.dry_run,
            ) {
                rep.error = Some(e.to_string());
                repairs.push(rep);
                continue;
            }
            if args.dry_run {
                repairs.push(rep);
                continue;
            }
            match repair_one(app, &s, d, &a) {
                Ok(detail) => {
                    state.append(NewEvent::new(
                        "sandbox.repaired",
                        format!("sandbox:{}", d.name()),
                        json!({"drift": d.kind(), "action": a, "detail": detail}),
                    ))?;
                    app.ui.success(&format!("{}: {a} done", d.name()));
                    rep.applied = true;
                }
                Err(e) => {
                    app.ui.warn(&format!("{}: {a} failed: {e}", d.name()));
                    rep.error = Some(e.to_string());
                }
            }
            repairs.push(rep);
        }
    }
    // After repairs, report the state as it is now (one more listing), not as it was.
    let (s, items) = if repairs.iter().any(|r| r.applied) {
        let s = Session::open(app.registry()?, &app.env)?;
        let items = self::items(app, &s, only);
        (s, items)
    } else {
        (s, items)
    };
    let drifts: Vec<&Drift> = s
        .drift
        .iter()
        .filter(|d| only.is_none_or(|o| d.name() == o))
        .collect();
    let unrepaired = drifts.len();
    let other_problems = items
        .iter()
        .filter(|i| !i.problems.is_empty() && i.drift.is_none())
        .count();
    let backup_bad = backup
        .as_ref()
        .is_some_and(|b| b["reachable"] == json!(false));
    let problems = unrepaired + other_problems + usize::from(backup_bad);

    if app.ui.json() {
        app.ui.print_json(&json!({
            "incus_project": s.estate.incus_project(),
            "project_exists": s.observed.project_exists,
            "backup_root": backup,
            "sandboxes": items,
            "drift": drifts,
            "repairs": repairs,
            "problems": problems,
        }))?;
    } else {
        render(app, &s, &items, backup.as_ref())?;
    }
    Ok(if problems == 0 {
        Exit::Success
    } else {
        Exit::Failure
    })
}

fn render(app: &App, s: &Session, items: &[Item], backup: Option<&Value>) -> Result<(), CliError> {
    app.ui.data(&format!(
        "Incus project: {}{}",
        s.estate.incus_project(),
        if s.observed.project_exists {
            ""
        } else {
            " (does not exist: run `repoman setup`)"
        }
    ))?;
    match backup {
        Some(b) => app.ui.data(&format!(
            "backup root: {} ({})",
            b["path"].as_str().unwrap_or("?"),
            if b["reachable"] == json!(true) {
                format!(
                    "mounted: {} at {}",
                    b["mount"]["fstype"].as_str().unwrap_or("?"),
                    b["mount"]["mount_point"].as_str().unwrap_or("?")
                )
            } else {
                format!("UNAVAILABLE: {}", b["error"].as_str().unwrap_or("?"))
            }
        ))?,
        None => app.ui.data("backup root: not configured")?,
    }
    for i in items {
        let sync = match (i.last_sync.as_deref(), i.last_sync_age_secs) {
            (Some(t), Some(age)) => format!("last sync {t} ({} ago)", human_age(age)),
            _ => "never synced".to_owned(),
        };
        app.ui.data("")?;
        app.ui.data(&format!(
            "{}: {}{}  {sync}",
            i.name,
            i.state,
            if i.registered {
                ""
            } else {
                " (not registered)"
            }
        ))?;
        if let Some(r) = &i.repo_path {
            app.ui.data(&format!("  repo: {r}"))?;
        }
        for m in &i.mounts {
            let mark = if m.present && m.source_exists {
                "ok"
            } else if !m.source_exists {
                "SOURCE MISSING"
            } else {
                "NOT MOUNTED"
            };
            app.ui.data(&format!(
                "  mount {}: {} -> {} [{mark}]",
                m.device, m.source, m.path
            ))?;
        }
        if let Some(d) = &i.drift {
            app.ui.data(&format!("  drift: {}", d.summary()))?;
            if let Drift::Config { changes, .. } = d {
                for c in changes {
                    app.ui.data(&format!("    {}", c.describe()))?;
                }
            }
        }
        for p in i
            .problems
            .iter()
            .filter(|p| i.drift.as_ref().is_none_or(|d| **p != d.summary()))
        {
            app.ui.data(&format!("  problem: {p}"))?;
        }
    }
    Ok(())
}

fn human_age(secs: i64) -> String {
    match secs {
        s if s < 120 => format!("{s}s"),
        s if s < 7200 => format!("{}m", s / 60),
        s if s < 172_800 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86400),
    }
}
