//! `repoman schema list|show`: the JSON Schemas of every durable format repoman owns.

use clap::{Args, Subcommand};
use serde_json::json;

use crate::app::App;
use crate::error::{CliError, Exit};

/// List or print the embedded JSON Schemas (repoman.toml, .repoman.toml, events and their data,
/// manifests, repair reports). They validate files on load and events on append.
///
/// Examples:
///   repoman schema list
///   repoman schema show repoman.toml/v1 > repoman.schema.json
///   repoman schema show event.policy.decided/v1
#[derive(Debug, Subcommand)]
pub enum SchemaCommand {
    /// List every schema: id, kind, what it governs, title.
    List(ListArgs),
    /// Print one schema as JSON.
    Show(ShowArgs),
}

#[derive(Debug, Args)]
pub struct ListArgs {}

#[derive(Debug, Args)]
pub struct ShowArgs {
    /// The schema id, as listed by `repoman schema list`.
    pub id: String,
}

pub fn run(app: &App, cmd: SchemaCommand) -> Result<Exit, CliError> {
    match cmd {
        SchemaCommand::List(_) => {
            let all = repoman_state::schemas::list();
            if app.ui.json() {
                let rows: Vec<_> = all
                    .iter()
                    .map(|s| json!({"id": s.id, "kind": s.kind, "applies_to": s.applies_to, "title": s.title, "digest": s.digest()}))
                    .collect();
                app.ui.print_json(&rows)?;
            } else {
                let w = all.iter().map(|s| s.id.len()).max().unwrap_or(0);
                let wa = all.iter().map(|s| s.applies_to.len()).max().unwrap_or(0);
                for s in &all {
                    app.ui
                        .data(&format!("{:<w$}  {:<wa$}  {}", s.id, s.applies_to, s.title))?;
                }
            }
            Ok(Exit::Success)
        }
        SchemaCommand::Show(a) => {
            let s = repoman_state::schemas::get(&a.id).ok_or_else(|| {
                CliError::usage(format!("no schema with id {:?}", a.id))
                    .with_hint("`repoman schema list` shows the known ids")
            })?;
            app.ui.print_json(&s.json)?;
            Ok(Exit::Success)
        }
    }
}
