//! `repoman tools list`: discovered tools, by category, ghosts.

use clap::Args;
use repoman_tools::discover::Outcome;
use repoman_tools::rules::Category;
use serde_json::json;

use super::{ProbeArgs, ctx, declared, inventory, save_cache};
use crate::app::App;
use crate::error::{CliError, Exit};

#[derive(Debug, Args)]
pub struct ListArgs {
    /// Only tools of this category (runtime, compiler, package-manager, prover, solver,
    /// build-tool, editor).
    #[arg(long, value_name = "C")]
    pub category: Option<String>,
    /// Only ghosts: installed tools no registered project (nor a global manifest) declares.
    #[arg(long)]
    pub ghosts: bool,
    #[command(flatten)]
    pub probe: ProbeArgs,
}

pub(super) fn list(app: &App, a: ListArgs) -> Result<Exit, CliError> {
    let c = ctx(app)?;
    let category = match &a.category {
        Some(s) => Some(Category::parse(s).ok_or_else(|| {
            CliError::usage(format!("unknown category `{s}`")).with_hint(
                "use runtime, compiler, package-manager, prover, solver, build-tool or editor",
            )
        })?),
        None => None,
    };
    let (inv, mut cache) = inventory(app, &c, &a.probe, false)?;
    save_cache(app, &mut cache);
    let declared = declared(&c);
    let rows: Vec<_> = inv
        .installs
        .iter()
        .filter(|i| category.is_none_or(|c| i.category == c))
        .map(|i| (i, !declared.contains(&i.id)))
        .filter(|(_, ghost)| !a.ghosts || *ghost)
        .collect();
    if app.ui.json() {
        let installs: Vec<_> = rows
            .iter()
            .map(|(i, ghost)| {
                let mut v = serde_json::to_value(i).unwrap_or_default();
                v["ghost"] = json!(ghost);
                v
            })
            .collect();
        let show_rest = category.is_none() && !a.ghosts;
        app.ui.print_json(&json!({
            "installs": installs,
            "shims": if show_rest { json!(inv.shims) } else { json!([]) },
            "unidentified": if show_rest { json!(inv.unidentified) } else { json!([]) },
            "stats": inv.stats,
        }))?;
        return Ok(Exit::Success);
    }
    let mut table = comfy_table::Table::new();
    table.load_preset(comfy_table::presets::NOTHING);
    table.set_header(["TOOL", "CATEGORY", "VERSION", "PATH", "GHOST"]);
    for (i, ghost) in &rows {
        let version = match &i.outcome {
            Outcome::Ok => i.version.clone().unwrap_or_default(),
            Outcome::TimedOut { .. } => "(timed out)".into(),
            _ => "(probe failed)".into(),
        };
        table.add_row([
            i.id.clone(),
            i.category.as_str().to_owned(),
            version,
            i.path.display().to_string(),
            if *ghost {
                "ghost".into()
            } else {
                String::new()
            },
        ]);
    }
    for line in table.lines() {
        app.ui.data(line.trim_end())?;
    }
    if category.is_none() && !a.ghosts {
        for s in &inv.shims {
            let to: Vec<String> = s
                .resolves_to
                .iter()
                .map(|p| p.display().to_string())
                .collect();
            app.ui.data(&format!(
                "shim  {} ({:?}, not run) -> {}",
                s.path.display(),
                s.kind,
                if to.is_empty() {
                    "no install found".into()
                } else {
                    to.join(", ")
                }
            ))?;
        }
        for u in &inv.unidentified {
            app.ui
                .data(&format!("unidentified  {}", u.path.display()))?;
        }
    }
    Ok(Exit::Success)
}
