//! Asking for what a sandbox command is missing, shared by the commands that take a sandbox name.

use crate::app::App;
use crate::error::CliError;
use repoman_sandbox::session::{Session, Target};

/// The sandbox name from the arguments, or asked for on a terminal.
pub fn name_or_prompt(app: &App, name: Option<String>) -> Result<String, CliError> {
    match name {
        Some(n) => Ok(n),
        None if app.ui.can_prompt() => app.ui.input_valid("Sandbox name", None, valid_name),
        None => Err(CliError::usage("missing the sandbox NAME")
            .with_hint("`repoman list` shows the sandboxes")),
    }
}

/// A wizard validator: a project (= sandbox) name, with the rule it breaks.
pub fn valid_name(answer: &str) -> Result<(), String> {
    repoman_core::ProjectName::parse(answer)
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// `shell`/`exec`: start a stopped sandbox after confirmation (or `--yes`).
pub fn ensure_running(app: &App, s: &Session, t: &Target) -> Result<(), CliError> {
    if t.status == "Running" {
        return Ok(());
    }
    let name = &t.desired.name;
    if !app.ui.confirm(
        &format!("sandbox `{name}` is {}; start it?", t.status.to_lowercase()),
        "--yes",
    )? {
        return Err(CliError::failed(format!("sandbox `{name}` is not running")));
    }
    let state = app.state()?;
    repoman_sandbox::lifecycle::start_for_exec(s, t, &state)?;
    app.ui.info(&format!("started `{name}`"));
    Ok(())
}
