//! `repoman tools doctor`: PATH shadowing, duplicate installs, shims ahead of real installs.

use clap::Args;
use repoman_tools::drift::{self, Severity};
use serde_json::json;

use super::{ProbeArgs, ctx, inventory, save_cache};
use crate::app::App;
use crate::error::{CliError, Exit};

#[derive(Debug, Args)]
pub struct DoctorArgs {
    #[command(flatten)]
    pub probe: ProbeArgs,
}

pub(super) fn doctor(app: &App, a: DoctorArgs) -> Result<Exit, CliError> {
    let c = ctx(app)?;
    let (inv, mut cache) = inventory(app, &c, &a.probe, false)?;
    save_cache(app, &mut cache);
    let findings = drift::doctor(&inv);
    let warn = findings.iter().any(|f| f.severity == Severity::Warning);
    if app.ui.json() {
        app.ui.print_json(&json!({ "findings": findings }))?;
    } else if findings.is_empty() {
        app.ui.success("no problems found");
    } else {
        for f in &findings {
            let tag = if f.severity == Severity::Warning {
                "warning"
            } else {
                "info"
            };
            app.ui.data(&format!("{tag}[{}]: {}", f.kind, f.message))?;
        }
    }
    Ok(if warn { Exit::Failure } else { Exit::Success })
}
