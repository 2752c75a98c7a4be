//! One file per command. Each exposes an args struct (its doc comment is the help text) and
//! `run(app, args) -> Result<Exit, CliError>`. Register a command with one `mod` line, one
//! [`Command`] variant and one arm in [`run`] and [`Command::name`].

use clap::Subcommand;

use crate::app::App;
use crate::error::{CliError, Exit};

mod completions;
mod config;
mod conflicts;
mod daemon;
mod doctor;
mod exec;
mod explain;
mod groove;
mod lifecycle;
mod list;
pub(crate) mod log;
mod man;
mod new;
mod realm;
mod remove;
mod restore;
mod schema;
mod setup;
mod shell;
mod snif;
mod status;
mod sync;
mod tools;
pub(crate) mod trust;
mod tui;
mod update;
mod verify;

/// The subcommands. A variant has no doc comment of its own when its args struct has one: the
/// struct's doc comment is the help (`--help`, the man page), and a variant's comment would
/// replace it. Only variants that share an args struct (start/stop/restart) or wrap a
/// subcommand enum keep one.
#[derive(Debug, Subcommand)]
pub enum Command {
    Setup(setup::SetupArgs),
    New(new::NewArgs),
    List(list::ListArgs),
    Status(status::StatusArgs),
    Shell(shell::ShellArgs),
    Exec(exec::ExecArgs),
    /// Start a sandbox.
    Start(lifecycle::LifecycleArgs),
    /// Stop a sandbox.
    Stop(lifecycle::LifecycleArgs),
    /// Restart a sandbox.
    Restart(lifecycle::LifecycleArgs),
    Update(update::UpdateArgs),
    Trust(trust::TrustArgs),
    Remove(remove::RemoveArgs),
    /// Show or migrate the configuration.
    #[command(subcommand)]
    Config(config::ConfigCommand),
    Completions(completions::CompletionsArgs),
    #[command(hide = true)]
    GenerateMan(man::ManArgs),
    Log(log::LogArgs),
    Explain(explain::ExplainArgs),
    Doctor(doctor::DoctorArgs),
    /// List or print the JSON Schemas of repoman's file formats and events
    ///
    /// The schemas validate repoman.toml and .repoman.toml (`repoman doctor`) and event data
    /// on append.
    ///
    /// Examples:
    ///   repoman schema list
    ///   repoman schema show repoman.toml/v1 > repoman.schema.json
    #[command(subcommand, verbatim_doc_comment)]
    Schema(schema::SchemaCommand),
    Sync(sync::SyncArgs),
    Verify(verify::VerifyArgs),
    Restore(restore::RestoreArgs),
    Conflicts(conflicts::ConflictsArgs),
    /// Realm contracts between repositories: diff, check, status, admin.
    #[command(subcommand)]
    Realm(realm::RealmCommand),
    /// Toolchains: manifests (pin/unpin), discovered tools and provers, drift.
    #[command(subcommand)]
    Tools(tools::ToolsCommand),
    /// The daemon: Groove protocol, scheduled syncs, agent endpoints (run, status, stop, install).
    #[command(subcommand)]
    Daemon(daemon::DaemonCommand),
    /// The Groove protocol: print its schema, or call a method of the running daemon.
    #[command(subcommand)]
    Groove(groove::GrooveCommand),
    /// SNIFs: WebAssembly extensions (validators, policy rules, tool detectors), deny by default.
    #[command(subcommand)]
    Snif(snif::SnifCommand),
    Tui(tui::TuiArgs),
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
            Command::Setup(_) => "setup",
            Command::New(_) => "new",
            Command::List(_) => "list",
            Command::Status(_) => "status",
            Command::Shell(_) => "shell",
            Command::Exec(_) => "exec",
            Command::Start(_) => "start",
            Command::Stop(_) => "stop",
            Command::Restart(_) => "restart",
            Command::Update(_) => "update",
            Command::Trust(_) => "trust",
            Command::Remove(_) => "remove",
            Command::Sync(_) => "sync",
            Command::Verify(_) => "verify",
            Command::Restore(_) => "restore",
            Command::Conflicts(_) => "conflicts",
            Command::Realm(_) => "realm",
            Command::Tools(_) => "tools",
            Command::Daemon(_) => "daemon",
            Command::Groove(_) => "groove",
            Command::Snif(_) => "snif",
            Command::Tui(_) => "tui",
        }
    }
}

/// Register every domain's JSON Schemas (event data, manifests, realm files) with the state
/// crate, once per process, before any command runs: appends are validated against them, and
/// `repoman schema list|show` and `repoman doctor` see all of them whichever command runs.
pub fn register_schemas() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        repoman_state::schemas::register_all(
            [
                repoman_backup::schemas::schemas(),
                repoman_realm::schemas(),
                repoman_tools::schemas(),
                repoman_groove::schemas(),
                repoman_snif::schemas::all(),
            ]
            .into_iter()
            .flatten(),
        );
        repoman_sandbox::register_schemas();
    });
}

/// Dispatch to the command.
pub fn run(app: &App, command: Command) -> Result<Exit, CliError> {
    register_schemas();
    if app.env.get("REPOMAN_STRICT_SCHEMAS") == Some("1") {
        repoman_state::schemas::require_event_schemas(true);
    }
    match command {
        Command::Config(c) => config::run(app, c),
        Command::Completions(a) => completions::run(app, a),
        Command::GenerateMan(a) => man::run(app, a),
        Command::Log(a) => log::run(app, a),
        Command::Explain(a) => explain::run(app, a),
        Command::Doctor(a) => doctor::run(app, a),
        Command::Schema(c) => schema::run(app, c),
        Command::Setup(a) => setup::run(app, a),
        Command::New(a) => new::run(app, a),
        Command::List(a) => list::run(app, a),
        Command::Status(a) => status::run(app, a),
        Command::Shell(a) => shell::run(app, a),
        Command::Exec(a) => exec::run(app, a),
        Command::Start(a) => lifecycle::run(app, a, repoman_sandbox::Lifecycle::Start),
        Command::Stop(a) => lifecycle::run(app, a, repoman_sandbox::Lifecycle::Stop),
        Command::Restart(a) => lifecycle::run(app, a, repoman_sandbox::Lifecycle::Restart),
        Command::Update(a) => update::run(app, a),
        Command::Trust(a) => trust::run(app, a),
        Command::Remove(a) => remove::run(app, a),
        Command::Sync(a) => sync::run(app, a),
        Command::Verify(a) => verify::run(app, a),
        Command::Restore(a) => restore::run(app, a),
        Command::Conflicts(a) => conflicts::run(app, a),
        Command::Realm(c) => realm::run(app, c),
        Command::Tools(c) => tools::run(app, c),
        Command::Daemon(c) => daemon::run(app, c),
        Command::Groove(c) => groove::run(app, c),
        Command::Snif(c) => snif::run(app, c),
        Command::Tui(a) => tui::run(app, a),
    }
}
