//! `repoman tools status`: each declared tool satisfied, missing or mismatched.

use std::path::PathBuf;

use clap::Args;
use repoman_tools::drift::{self, ToolState};
use serde_json::json;

use super::{ProbeArgs, ctx, current_dir, inventory, project_dir, registered_projects, save_cache};
use crate::app::App;
use crate::error::{CliError, Exit};

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// A registered project (default: the current directory).
    pub project: Option<String>,
    /// Every registered project.
    #[arg(long, conflicts_with = "project")]
    pub all: bool,
    #[command(flatten)]
    pub probe: ProbeArgs,
}

pub(super) fn status(app: &App, a: StatusArgs) -> Result<Exit, CliError> {
    let c = ctx(app)?;
    let projects: Vec<(String, PathBuf)> = if a.all {
        registered_projects(&c)
    } else if let Some(name) = &a.project {
        vec![(name.clone(), project_dir(&c, name)?)]
    } else {
        let cwd = current_dir()?;
        let name = registered_projects(&c)
            .into_iter()
            .find(|(_, d)| *d == cwd)
            .map(|(n, _)| n)
            .unwrap_or_else(|| cwd.display().to_string());
        vec![(name, cwd)]
    };
    let loaded = drift::load_projects(&projects, &c.globals);
    let (inv, mut cache) = inventory(app, &c, &a.probe, false)?;
    save_cache(app, &mut cache);
    let mut bad = false;
    let mut out = Vec::new();
    for p in &loaded {
        let rows = drift::status(p, &inv, &c.rules);
        bad |= rows
            .iter()
            .any(|r| matches!(r.state, ToolState::Missing | ToolState::Mismatch { .. }));
        bad |= !p.manifests.problems.is_empty();
        bad |= rows.iter().any(|r| !r.not_versions.is_empty());
        out.push((p, rows));
    }
    if app.ui.json() {
        let projects: Vec<_> = out
            .iter()
            .map(|(p, rows)| {
                json!({
                    "project": p.project,
                    "dir": p.dir,
                    "manifests": p.manifests.manifests.iter().map(|m| &m.path).collect::<Vec<_>>(),
                    "problems": p.manifests.problems,
                    "tools": rows,
                })
            })
            .collect();
        app.ui.print_json(&json!({ "projects": projects }))?;
    } else {
        let mut table = comfy_table::Table::new();
        table.load_preset(comfy_table::presets::NOTHING);
        table.set_header(["PROJECT", "TOOL", "WANTS", "STATE", "FOUND", "DECLARED IN"]);
        let mut any = false;
        for (p, rows) in &out {
            for prob in &p.manifests.problems {
                app.ui.warn(&prob.message);
            }
            for r in rows {
                any = true;
                for token in &r.not_versions {
                    app.ui.warn(&format!(
                        "{}:{}: `{token}` is not a version of {} (it matches nothing; fix or remove it)",
                        r.file.display(),
                        r.line,
                        r.tool
                    ));
                }
                let found = r.state.found();
                table.add_row([
                    p.project.clone(),
                    r.tool.clone(),
                    r.versions.join(" "),
                    r.state_name().to_owned(),
                    found,
                    format!("{}:{}", r.file.display(), r.line),
                ]);
            }
        }
        if any {
            for line in table.lines() {
                app.ui.data(line.trim_end())?;
            }
        } else {
            app.ui
                .info("no tools declared (no .tool-versions, mise.toml or version files found)");
        }
    }
    Ok(if bad { Exit::Failure } else { Exit::Success })
}
