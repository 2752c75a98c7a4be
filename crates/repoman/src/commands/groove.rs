//! `repoman groove schema|call`: the Groove protocol from the command line (docs/daemon.md).

use clap::{Args, Subcommand};
use repoman_groove::Client;
use serde_json::Value;

use crate::app::App;
use crate::error::{CliError, Exit};

/// The Groove protocol: print its schema, or call a method of the running daemon.
///
/// Examples:
///   repoman groove schema > groove.openrpc.json
///   repoman groove call whoami
///   repoman groove call log.query '{"type": "backup.*", "limit": 5}'
#[derive(Debug, Subcommand)]
#[command(verbatim_doc_comment)]
pub enum GrooveCommand {
    /// Print the OpenRPC document of every method (what `rpc.discover` serves).
    Schema(SchemaArgs),
    /// Call one method of the running daemon and print its result as JSON.
    Call(CallArgs),
}

#[derive(Debug, Args)]
pub struct SchemaArgs {}

#[derive(Debug, Args)]
pub struct CallArgs {
    /// The method, e.g. `whoami`, `log.query`, `sync`.
    pub method: String,
    /// Its parameters as a JSON object (default `{}`).
    pub params: Option<String>,
}

pub fn run(app: &App, cmd: GrooveCommand) -> Result<Exit, CliError> {
    match cmd {
        GrooveCommand::Schema(_) => {
            app.ui
                .print_json(&repoman_groove::methods::openrpc(env!("CARGO_PKG_VERSION")))?;
            Ok(Exit::Success)
        }
        GrooveCommand::Call(a) => {
            let params: Value = match a.params.as_deref() {
                None => Value::Object(Default::default()),
                Some(s) => serde_json::from_str(s)
                    .map_err(|e| CliError::usage(format!("the parameters are not JSON: {e}")))?,
            };
            let socket = repoman_groove::core::socket_path(&app.paths);
            let result = Client::connect(&socket)
                .and_then(|mut c| c.call(&a.method, params))
                .map_err(|e| cli_error(&e))?;
            app.ui.print_json(&result)?;
            Ok(Exit::Success)
        }
    }
}

/// A domain error as a CLI error (kind → exit code, with its hint).
fn cli_error(e: &dyn repoman_core::DomainError) -> CliError {
    use repoman_core::ErrorKind;
    let exit = match e.kind() {
        ErrorKind::Failed => Exit::Failure,
        ErrorKind::Usage => Exit::Usage,
        ErrorKind::Blocked => Exit::Blocked,
        ErrorKind::Unavailable => Exit::Unavailable,
        ErrorKind::Interrupted => Exit::Interrupted,
    };
    let err = CliError::new(exit, e.to_string());
    match e.hint() {
        Some(h) => err.with_hint(h),
        None => err,
    }
}
