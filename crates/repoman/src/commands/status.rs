//! `repoman status`: health of the sandboxes and drift between the registry and Incus, with
//! optional repairs.

use std::sync::Arc;

use clap::Args;
use serde_json::json;

use crate::app::App;
use crate::error::{CliError, Exit};
use repoman_core::Progress;
use repoman_sandbox::drift::Drift;
use repoman_sandbox::health::{self, BackupRoot, Item};
use repoman_sandbox::repair::{self, RepairAction, RepairCtx, RepairReport};
use repoman_sandbox::session::{self, Session};

/// Health and drift: container state, bind mounts, backup root, last sync, and drift.
///
/// Drift is **missing** (registered, no container), **orphan** (a container in repoman's Incus
/// project that is not registered) or **config** (devices, profiles, environment or image differ
/// from repoman.toml + .repoman.toml). Config drift that weakens the sandbox (an old `shift=true`
/// mount, a missing `raw.idmap`, missing resource limits, the guest API on) is **security drift**,
/// marked `[security: ...]` (`"security"` in --json). Read-only unless --repair, which asks for confirmation (or
/// takes --yes) and records every repair as an event. Exits 1 when problems remain. Only the
/// trusted version of each `.repoman.toml` counts (a file changed since `repoman trust` is
/// reported, never applied).
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

impl MissingArg {
    fn action(self) -> Option<RepairAction> {
        match self {
            MissingArg::Recreate => Some(RepairAction::Recreate),
            MissingArg::Forget => Some(RepairAction::Forget),
            MissingArg::Skip => None,
        }
    }
}

impl OrphanArg {
    fn action(self) -> Option<RepairAction> {
        match self {
            OrphanArg::Adopt => Some(RepairAction::Adopt),
            OrphanArg::Destroy => Some(RepairAction::Destroy),
            OrphanArg::Skip => None,
        }
    }
}

/// The repair for one drift: the flag's choice, else asked on a terminal, else the
/// non-destructive default (recreate a missing sandbox, adopt an orphan).
fn choose(app: &App, d: &Drift, args: &StatusArgs) -> Result<Option<RepairAction>, CliError> {
    let choices = RepairAction::choices(d);
    let Some(default) = choices.first().copied() else {
        return Ok(None);
    };
    let flag = match d {
        Drift::Missing { .. } => args.missing.map(MissingArg::action),
        Drift::Orphan { .. } => args.orphan.map(OrphanArg::action),
        _ => None,
    };
    if let Some(chosen) = flag {
        return Ok(chosen);
    }
    // Config drift has one repair: no question.
    if choices.len() == 1 || !app.ui.can_prompt() || args.dry_run {
        return Ok(Some(default));
    }
    let mut names: Vec<&str> = choices.iter().map(|c| c.as_str()).collect();
    names.push("skip");
    loop {
        let answer = app.ui.input(
            &format!("{} [{}]", d.summary(), names.join("/")),
            Some(default.as_str()),
        )?;
        let answer = answer.trim().to_lowercase();
        if answer == "skip" {
            return Ok(None);
        }
        if let Some(a) = RepairAction::parse(&answer).filter(|a| choices.contains(a)) {
            return Ok(Some(a));
        }
        app.ui.warn(&format!("answer one of: {}", names.join(", ")));
    }
}

/// Plan, confirm, gate and apply the repairs of `drifts`.
fn repairs(
    app: &App,
    s: &Session,
    drifts: &[&Drift],
    args: &StatusArgs,
) -> Result<Vec<RepairReport>, CliError> {
    let mut planned: Vec<(&Drift, RepairAction)> = Vec::new();
    for d in drifts {
        if let Some(a) = choose(app, d, args)? {
            planned.push((*d, a));
        }
    }
    for (d, a) in &planned {
        app.ui
            .info(&format!("repair {}: {}", d.summary(), a.as_str()));
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
    let rules = &s.estate.file.registry.policy.rules;
    let progress: Arc<dyn Progress> = app.ui.progress();
    let ctx = RepairCtx {
        registry_path: &app.paths.config_file,
        state: &state,
        now: app.clock.now_rfc3339(),
        progress,
    };
    let mut out = Vec::new();
    for (d, a) in planned {
        let mut rep = RepairReport {
            name: d.name().to_owned(),
            drift: d.kind(),
            action: a.as_str().to_owned(),
            applied: false,
            error: None,
        };
        let op = repair::repair_operation(d);
        let gated = if args.dry_run {
            session::preview(&state, &op, rules).map(|_| None)
        } else {
            session::authorize(&state, op, rules).map(Some)
        };
        match gated {
            Err(e) => rep.error = Some(e.to_string()),
            Ok(None) => {}
            Ok(Some(approval)) => match repair::apply_repair(s, d, a, &ctx, approval) {
                Ok(_) => {
                    app.ui
                        .success(&format!("{}: {} done", d.name(), a.as_str()));
                    rep.applied = true;
                }
                // A repair that could not record its event is not a repair that failed.
                Err(e @ repoman_sandbox::SandboxError::State(_)) => return Err(e.into()),
                Err(e) => {
                    app.ui
                        .warn(&format!("{}: {} failed: {e}", d.name(), a.as_str()));
                    rep.error = Some(e.to_string());
                }
            },
        }
        out.push(rep);
    }
    Ok(out)
}

pub fn run(app: &App, args: StatusArgs) -> Result<Exit, CliError> {
    let s = Session::open(app.registry()?, &app.env)?;
    let only = args.name.as_deref();
    if let Some(n) = only {
        s.require_known(n)?;
    }
    let untrusted = crate::trust_review::warn_untrusted(app, &s.estate, only, only.is_some());
    for w in s
        .drift_warnings(only)
        .into_iter()
        .filter(|_| only.is_some())
    {
        app.ui.warn(&w);
    }
    // The same mount guard as `sync`, `verify` and `restore`: the same verdict everywhere.
    let backup = repoman_backup::mount::MountGuard::from_settings(&s.estate.settings).map(|g| {
        let error = g.check().err().map(|e| e.to_string());
        BackupRoot {
            path: g.root().to_path_buf(),
            reachable: error.is_none(),
            error,
        }
    });
    let mut reports = Vec::new();
    if args.repair {
        let drifts: Vec<&Drift> = s
            .drift
            .iter()
            .filter(|d| only.is_none_or(|o| d.name() == o))
            .collect();
        reports = repairs(app, &s, &drifts, &args)?;
    }
    // After repairs, report the state as it is now (one more listing), not as it was.
    let s = if reports.iter().any(|r| r.applied) {
        Session::open(app.registry()?, &app.env)?
    } else {
        s
    };
    let h = health::health(&s, only, app.clock.now().as_second(), backup);
    if app.ui.json() {
        app.ui.print_json(&json!({
            "incus_project": h.incus_project,
            "project_exists": h.project_exists,
            "backup_root": h.backup_root,
            "sandboxes": h.sandboxes,
            "drift": h.drift,
            "restrictions": h.restrictions,
            "restrictions_error": h.restrictions_error,
            "repairs": reports,
            "config_trust": untrusted,
            "problems": h.problems,
        }))?;
    } else {
        render(app, &h)?;
    }
    Ok(if h.problems == 0 {
        Exit::Success
    } else {
        Exit::Failure
    })
}

fn render(app: &App, h: &health::Health) -> Result<(), CliError> {
    app.ui.data(&format!(
        "Incus project: {}{}",
        h.incus_project,
        if h.project_exists {
            ""
        } else {
            " (does not exist: run `repoman setup`)"
        }
    ))?;
    // A project that is not restricted at all is one line, not one per key.
    match h.restrictions.iter().find(|d| d.key == "restricted") {
        Some(_) => app.ui.data(&format!(
            "  problem: the Incus project is not restricted (made before repoman restricted it, or loosened by hand): {} of its restrictions differ",
            h.restrictions.len()
        ))?,
        None => {
            for d in &h.restrictions {
                app.ui.data(&format!("  problem: {}", d.describe()))?;
            }
        }
    }
    if let Some(e) = &h.restrictions_error {
        app.ui.data(&format!("  problem: {e}"))?;
    }
    if !h.restrictions.is_empty() {
        app.ui
            .data("  (`repoman setup` restricts the project again; `--dry-run` shows how)")?;
    }
    match &h.backup_root {
        Some(b) => app.ui.data(&backup_line(b))?,
        None => app.ui.data("backup root: not configured")?,
    }
    for i in &h.sandboxes {
        render_item(app, i)?;
    }
    Ok(())
}

fn backup_line(b: &BackupRoot) -> String {
    format!(
        "backup root: {} ({})",
        b.path.display(),
        if b.reachable {
            "reachable".to_owned()
        } else {
            format!("UNREACHABLE: {}", b.error.as_deref().unwrap_or("?"))
        }
    )
}

fn render_item(app: &App, i: &Item) -> Result<(), CliError> {
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
