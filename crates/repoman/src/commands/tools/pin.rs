//! `repoman tools pin|unpin`: byte-faithful manifest edits, asked of policy first.

use std::path::PathBuf;

use clap::Args;
use repoman_core::ObjectId;
use repoman_tools::manifest::{self, Edit};
use serde_json::json;

use super::{Ctx, ctx, current_dir, project_dir, registered_projects};
use crate::app::App;
use crate::decision;
use crate::error::{CliError, Exit};

#[derive(Debug, Args)]
pub struct Target {
    /// Edit the manifests of this registered project (default: the current directory).
    #[arg(long, conflicts_with = "global")]
    pub project: Option<String>,
    /// Edit the global manifest (~/.tool-versions, else ~/.config/mise/config.toml).
    #[arg(long)]
    pub global: bool,
    /// Edit exactly this file (`.tool-versions` or a mise `*.toml`).
    #[arg(long, value_name = "F")]
    pub file: Option<PathBuf>,
    /// Print the unified diff instead of writing.
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Debug, Args)]
pub struct PinArgs {
    /// The tool, as the manifest names it (e.g. `nodejs`, `node`, `npm:prettier`).
    pub tool: String,
    /// The version, or several (fallbacks in order).
    #[arg(required = true)]
    pub versions: Vec<String>,
    #[command(flatten)]
    pub target: Target,
}

#[derive(Debug, Args)]
pub struct UnpinArgs {
    /// The tool, as the manifest names it.
    pub tool: String,
    #[command(flatten)]
    pub target: Target,
}

/// The directory whose manifests `pin`/`unpin` edit; `None` for `--global`.
fn target_dir(c: &Ctx, t: &Target) -> Result<Option<PathBuf>, CliError> {
    match (&t.project, t.global) {
        (Some(p), _) => Ok(Some(project_dir(c, p)?)),
        (None, true) => Ok(None),
        (None, false) => Ok(Some(current_dir()?)),
    }
}

fn home(app: &App) -> Result<PathBuf, CliError> {
    app.paths
        .home
        .clone()
        .ok_or_else(|| CliError::usage("HOME is not set; --global needs it"))
}

/// Policy for manifest edits: operation `tools.pin` / `tools.unpin` on `file:PROJECT/PATH` (or
/// `file:/abs/path` outside a project), through the one gate. `--dry-run` evaluates without
/// recording and shows the decision; a real edit records it. Deny or review_required stops
/// before any file is written (exit 3). Returns the decisions for `--json`.
fn gate(
    app: &App,
    c: &Ctx,
    edits: &[Edit],
    what: &str,
    target: &Target,
) -> Result<Vec<serde_json::Value>, CliError> {
    let changed: Vec<&Edit> = edits.iter().filter(|e| e.changed()).collect();
    if changed.is_empty() {
        return Ok(Vec::new());
    }
    let state = if target.dry_run {
        app.state_read_only()?
    } else {
        app.state()?
    };
    let project = match &target.project {
        Some(p) => Some((p.clone(), project_dir(c, p)?)),
        None if target.global => None,
        None => {
            let cwd = current_dir()?;
            registered_projects(c)
                .into_iter()
                .find(|(_, d)| cwd.starts_with(d))
        }
    };
    let op_name = if what == "pinned" {
        "tools.pin"
    } else {
        "tools.unpin"
    };
    let mut decisions = Vec::new();
    for e in changed {
        let object = match &project {
            Some((name, dir)) if e.path.starts_with(dir) => ObjectId::file(
                name,
                e.path
                    .strip_prefix(dir)
                    .unwrap_or(&e.path)
                    .display()
                    .to_string(),
            ),
            _ => ObjectId::host_file(&e.path),
        };
        let op = repoman_state::Operation {
            project: project.as_ref().map(|(n, _)| n.clone()),
            ..decision::operation(op_name, &object)
        };
        let d = decision::gate(
            app,
            &state,
            &op,
            Vec::new(),
            &c.registry.policy.rules,
            target.dry_run,
        )?;
        decisions.push(decision::decision_json(&op, &d));
    }
    Ok(decisions)
}

fn finish_edits(
    app: &App,
    edits: &[Edit],
    decisions: Vec<serde_json::Value>,
    dry_run: bool,
    what: &str,
    tool: &str,
) -> Result<Exit, CliError> {
    if dry_run {
        if app.ui.json() {
            let v: Vec<_> = edits
                .iter()
                .map(|e| json!({"file": e.path, "changed": e.changed(), "create": e.create && e.changed(), "diff": e.diff()}))
                .collect();
            app.ui
                .print_json(&json!({ "dry_run": true, "edits": v, "decisions": decisions }))?;
        } else {
            for e in edits {
                let d = e.diff();
                if d.is_empty() {
                    app.ui.info(&format!("{}: unchanged", e.path.display()));
                } else {
                    // Byte-faithful: a CRLF file shows CRLF lines.
                    app.ui.data(d.strip_suffix('\n').unwrap_or(&d))?;
                }
            }
        }
        return Ok(Exit::Success);
    }
    let mut written = Vec::new();
    for e in edits {
        if e.apply()? {
            written.push(e);
        }
    }
    if !written.is_empty() {
        let state = app.state()?;
        state.append_batch(
            written
                .iter()
                .map(|e| {
                    repoman_state::NewEvent::new(
                        format!("tool.{what}"),
                        ObjectId::tool(tool),
                        json!({ "file": e.path, "created": e.create }),
                    )
                })
                .collect(),
        )?;
    }
    if app.ui.json() {
        let v: Vec<_> = edits
            .iter()
            .map(|e| json!({"file": e.path, "changed": e.changed()}))
            .collect();
        app.ui
            .print_json(&json!({ "dry_run": false, "edits": v, "decisions": decisions }))?;
    } else if written.is_empty() {
        app.ui.info("nothing to change; no file was written");
    } else {
        for e in &written {
            app.ui
                .success(&format!("{what} {tool} in {}", e.path.display()));
        }
    }
    Ok(Exit::Success)
}

pub(super) fn pin(app: &App, a: PinArgs) -> Result<Exit, CliError> {
    let c = ctx(app)?;
    let file = match (&a.target.file, target_dir(&c, &a.target)?) {
        (Some(f), _) => f.clone(),
        (None, Some(dir)) => manifest::pin_target(&dir, &a.tool)?,
        (None, None) => {
            manifest::global_target(&home(app)?, app.env.get_path("XDG_CONFIG_HOME").as_deref())
        }
    };
    let edit = manifest::plan_pin(&file, &a.tool, &a.versions)?;
    let edits = [edit];
    let decisions = gate(app, &c, &edits, "pinned", &a.target)?;
    finish_edits(app, &edits, decisions, a.target.dry_run, "pinned", &a.tool)
}

pub(super) fn unpin(app: &App, a: UnpinArgs) -> Result<Exit, CliError> {
    let c = ctx(app)?;
    let files = match (&a.target.file, target_dir(&c, &a.target)?) {
        (Some(f), _) => vec![f.clone()],
        (None, Some(dir)) => manifest::unpin_targets(&dir, &a.tool)?,
        (None, None) => {
            let h = home(app)?;
            manifest::global_candidates(Some(&h), app.env.get_path("XDG_CONFIG_HOME").as_deref())
                .into_iter()
                .filter(|p| p.is_file())
                .collect()
        }
    };
    let edits = files
        .iter()
        .map(|f| manifest::plan_unpin(f, &a.tool))
        .collect::<Result<Vec<_>, _>>()?;
    if !edits.iter().any(Edit::changed) && !a.target.dry_run {
        app.ui.info(&format!(
            "`{}` is not declared in {}",
            a.tool,
            if files.is_empty() {
                "any manifest here".to_owned()
            } else {
                files
                    .iter()
                    .map(|f| f.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            }
        ));
    }
    let decisions = gate(app, &c, &edits, "unpinned", &a.target)?;
    finish_edits(
        app,
        &edits,
        decisions,
        a.target.dry_run,
        "unpinned",
        &a.tool,
    )
}
