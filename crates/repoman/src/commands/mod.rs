//! One file per command. Each exposes an args struct (its doc comment is the help text) and
//! `run(app, args) -> Result<Exit, CliError>`. Register a command with one `mod` line, one
//! [`Command`] variant and one arm in [`run`] and [`Command::name`].

use clap::Subcommand;

use crate::app::App;
use crate::error::{CliError, Exit};

mod completions;
mod config;
mod doctor;
mod explain;
pub(crate) mod log;
mod man;
mod realm;
mod schema;

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Show or migrate the configuration.
    #[command(subcommand)]
    Config(config::ConfigCommand),
    /// Print a shell completion script.
    Completions(completions::CompletionsArgs),
    /// Write the man pages (for packagers and `scripts/gen-man`).
    #[command(hide = true)]
    GenerateMan(man::ManArgs),
    /// Show recorded events (the hash-chained event log).
    Log(log::LogArgs),
    /// Explain an object from recorded state (the state-integrity questions).
    Explain(explain::ExplainArgs),
    /// Check the event log, index, registry and directories; repair what is safe to repair.
    Doctor(doctor::DoctorArgs),
    /// List or print the JSON Schemas of repoman's file formats and events.
    #[command(subcommand)]
    Schema(schema::SchemaCommand),
    /// Realm contracts between repositories: diff, check, status, admin.
    #[command(subcommand)]
    Realm(realm::RealmCommand),
}

impl Command {
    /// The command's name, for logs.
    pub fn name(&self) -> &'static str {
        match self {
            Command::Config(_) => "config",
            Command::Completions(_) => "completions",
            Command::GenerateMan(_) => "generate-man",
            Command::Log(_) => "log",
            Command::Explain(_) => "explain",
            Command::Doctor(_) => "doctor",
            Command::Schema(_) => "schema",
            Command::Realm(_) => "realm",
        }
    }
}

/// Dispatch to the command.
pub fn run(app: &App, command: Command) -> Result<Exit, CliError> {
    match command {
        Command::Config(c) => config::run(app, c),
        Command::Completions(a) => completions::run(app, a),
        Command::GenerateMan(a) => man::run(app, a),
        Command::Log(a) => log::run(app, a),
        Command::Explain(a) => explain::run(app, a),
        Command::Doctor(a) => doctor::run(app, a),
        Command::Schema(c) => schema::run(app, c),
        Command::Realm(c) => realm::run(app, c),
    }
}
