//! `repoman explain OBJECT`: the state-integrity questions answered from recorded state.

use clap::Args;

use crate::app::App;
use crate::error::{CliError, Exit};

/// Explain an object from recorded state (the state-integrity questions)
///
/// Answers, one section each: what is it, which schema governs it, who or what last changed it,
/// which device and profile own it, is it safe to sync, why is it blocked, what conflicts exist,
/// what can be repaired automatically, what requires human review, what data is durable vs
/// rebuildable, can we prove restore integrity.
///
/// Every answer comes from the event log's index, not from a fresh scan; a question that does not
/// apply, or that recorded state cannot answer, says so and why. --json prints the
/// `repoman.explain/v1` shape (see docs/state.md).
///
/// Examples:
///   repoman explain alpha                 (same as project:alpha)
///   repoman explain backup:alpha --json
///   repoman explain store:index
#[derive(Debug, Args)]
#[command(verbatim_doc_comment)]
pub struct ExplainArgs {
    /// The object: `project:NAME` (or just NAME), `backup:NAME`, `sandbox:NAME`, `tool:NAME`,
    /// `contract:REALM/DOMAIN/NAME`, `store:index`, ...
    pub object: String,
}

pub fn run(app: &App, args: ExplainArgs) -> Result<Exit, CliError> {
    let _span = tracing::info_span!("explain", object = %args.object).entered();
    let state = app.state_read_only()?;
    let explanation = repoman_state::explain::explain(&state, &args.object)?;
    app.report_repairs(&state);
    if app.ui.json() {
        app.ui.print_json(&explanation)?;
    } else {
        app.ui.data(explanation.to_text().trim_end())?;
    }
    if !explanation.known {
        app.ui.hint(&format!(
            "nothing is recorded about {}; `repoman log` lists recorded events",
            explanation.object
        ));
    }
    Ok(Exit::Success)
}
