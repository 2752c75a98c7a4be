//! `repoman realm ...`: realm contracts between repositories (issue 6).
//!
//! `realm diff` runs the compatibility engine on two schema files outside any realm; the other
//! subcommands work on a realm repository (see `docs/realms.md`).

use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{Args, Subcommand, ValueEnum};
use repoman_realm::cache::{self, Cache};
use repoman_realm::check::{self, CheckMode, CheckOptions, CheckReport, Context, Level};
use repoman_realm::compat::{self, DiffReport, Mode, Verdict};
use repoman_realm::git::Git;
use repoman_realm::model::Compatibility;
use repoman_realm::realm::{Realm, RealmError, RealmEvent, find_membership, membership_root};
use repoman_realm::trust;
use repoman_realm::yaml::LoadError;
use serde_json::json;

use crate::app::App;
use crate::error::{CliError, Exit};

#[derive(Debug, Subcommand)]
pub enum RealmCommand {
    /// Compare two JSON Schemas (JSON or YAML files) and report breaking changes.
    ///
    /// Exit 0 when compatible in the chosen mode (warnings included), 1 when breaking, 2 when a file
    /// is unreadable or the arguments are wrong. BACKWARD: NEW reads data written under OLD;
    /// FORWARD: OLD reads data written under NEW; FULL: both.
    Diff(DiffArgs),
    /// Show the realm, its domains, this repo's exports and imports, stale bindings and pending
    /// contract changes (read-only).
    Status(StatusArgs),
    /// Check contracts for CI: exit 0 ok, 1 breaking or invalid, 2 usage.
    ///
    /// In the realm repository the default modes are `contract` and `compatibility`; in a member
    /// repo, `exporter` and `importer` (which also run the contract's validation hooks when this
    /// machine trusts the realm).
    Check(CheckArgs),
    /// Change the realm: init, join/leave, domains, contracts, bindings, trust, cache.
    #[command(subcommand)]
    Admin(AdminCommand),
}

#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Create a realm repository (a git repository).
    Init(InitArgs),
    /// Register a repository in a realm (writes `<repo>/.repoman/realm.yaml`).
    Join(JoinArgs),
    /// Remove this repository from its realm.
    Leave(LeaveArgs),
    /// Manage domains.
    #[command(subcommand)]
    Domain(DomainCommand),
    /// Manage contracts.
    #[command(subcommand)]
    Contract(ContractCommand),
    /// Declare what a repo exports and imports.
    #[command(subcommand)]
    Binding(BindingCommand),
    /// Trust the realm at its current commit, so its validation hooks may run on this machine.
    Trust(TrustArgs),
    /// Inspect or clear the check cache (`<repo>/.repoman/cache.db`).
    #[command(subcommand)]
    Cache(CacheCommand),
}

/// Which realm to act on.
#[derive(Debug, Args, Clone)]
pub struct RealmSel {
    /// The realm: a path to the realm repository, or a name created by `realm admin init`
    /// (default: the realm of the repository in the current directory).
    #[arg(long)]
    pub realm: Option<String>,
}

#[derive(Debug, Args)]
pub struct InitArgs {
    /// The realm's name.
    pub name: String,
    /// Where to create it (default: `$XDG_STATE_HOME/repoman/realms/NAME`).
    #[arg(long)]
    pub path: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct JoinArgs {
    /// Validate without writing or committing anything.
    #[arg(long)]
    pub dry_run: bool,
    /// The realm (a path or a name).
    pub realm: String,
    /// A registered project to join (its working copy under `local_repos`).
    #[arg(long, conflicts_with = "repo")]
    pub project: Option<String>,
    /// The repository directory to join (default: the current directory).
    #[arg(long)]
    pub repo: Option<PathBuf>,
    /// The repo's name in the realm (default: the project name or directory name).
    #[arg(long)]
    pub name: Option<String>,
}

#[derive(Debug, Args)]
pub struct LeaveArgs {
    /// Validate without writing or committing anything.
    #[arg(long)]
    pub dry_run: bool,
    /// The repository directory (default: the current directory).
    #[arg(long)]
    pub repo: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum DomainCommand {
    /// Create a domain; the first repo provides, the others consume. Refused if it closes a cycle.
    Create(DomainCreateArgs),
}

#[derive(Debug, Args)]
pub struct DomainCreateArgs {
    pub name: String,
    /// Comma-separated repos: provider first, then consumers.
    #[arg(long, value_delimiter = ',', required = true)]
    pub repos: Vec<String>,
    /// Check (including cycles) without writing.
    #[arg(long)]
    pub dry_run: bool,
    #[command(flatten)]
    pub sel: RealmSel,
}

#[derive(Debug, Subcommand)]
pub enum ContractCommand {
    /// Add a contract to a domain.
    #[command(disable_version_flag = true)]
    Add(ContractAddArgs),
    /// Publish a new schema version; the version must match the computed compatibility.
    #[command(disable_version_flag = true)]
    Bump(ContractBumpArgs),
}

#[derive(Debug, Args)]
pub struct ContractAddArgs {
    /// Validate without writing or committing anything.
    #[arg(long)]
    pub dry_run: bool,
    pub name: String,
    #[arg(long)]
    pub domain: String,
    /// The owning repo (the only one allowed to export it).
    #[arg(long)]
    pub owner: String,
    /// The schema file (JSON or YAML).
    #[arg(long)]
    pub schema: PathBuf,
    #[arg(long, default_value = "1.0.0")]
    pub version: String,
    /// Required compatibility: backward (default), forward, full or none.
    #[arg(long, default_value = "backward")]
    pub compatibility: String,
    /// Check against every earlier version, not only the previous one.
    #[arg(long)]
    pub transitive: bool,
    #[command(flatten)]
    pub sel: RealmSel,
}

#[derive(Debug, Args)]
pub struct ContractBumpArgs {
    pub name: String,
    /// The new schema file (JSON or YAML).
    #[arg(long)]
    pub schema: PathBuf,
    /// The new version (default: the next major for breaking changes, else the next minor).
    #[arg(long)]
    pub version: Option<String>,
    /// A line for the evolution history (repeatable; default: the detected changes).
    #[arg(long = "change")]
    pub changes: Vec<String>,
    /// The owner's working copy, to re-record the exported source digests (default: the current
    /// repository when it is the owner).
    #[arg(long)]
    pub repo: Option<PathBuf>,
    /// Show the version step and the changes without writing.
    #[arg(long)]
    pub dry_run: bool,
    #[command(flatten)]
    pub sel: RealmSel,
}

#[derive(Debug, Subcommand)]
pub enum BindingCommand {
    /// Declare that a repo exports a contract, recording its source files' digests.
    Export(ExportArgs),
    /// Declare that a repo imports a contract within a version range.
    #[command(disable_version_flag = true)]
    Import(ImportArgs),
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    /// Validate without writing or committing anything.
    #[arg(long)]
    pub dry_run: bool,
    pub contract: String,
    /// The exporting repo's directory (default: the current repository).
    #[arg(long)]
    pub repo: Option<PathBuf>,
    /// Comma-separated source files (relative to the repo) that implement the contract.
    #[arg(long, value_delimiter = ',')]
    pub source_files: Vec<String>,
    #[command(flatten)]
    pub sel: RealmSel,
}

#[derive(Debug, Args)]
pub struct ImportArgs {
    /// Validate without writing or committing anything.
    #[arg(long)]
    pub dry_run: bool,
    pub contract: String,
    /// A version range: `>=1.0.0 <2.0.0` or `>=1.0.0, <2.0.0`.
    #[arg(long)]
    pub version: String,
    /// The file in the importing repo that implements the import.
    #[arg(long)]
    pub binding: Option<String>,
    /// The importing repo's directory (default: the current repository).
    #[arg(long)]
    pub repo: Option<PathBuf>,
    #[command(flatten)]
    pub sel: RealmSel,
}

#[derive(Debug, Args)]
pub struct TrustArgs {
    #[command(flatten)]
    pub sel: RealmSel,
}

#[derive(Debug, Subcommand)]
pub enum CacheCommand {
    /// Entries and lifetime hit/miss counts.
    Stats(CacheArgs),
    /// Delete the cache file.
    Clear(CacheArgs),
}

#[derive(Debug, Args)]
pub struct CacheArgs {
    /// The repository (default: the current one).
    #[arg(long)]
    pub repo: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    #[command(flatten)]
    pub sel: RealmSel,
}

/// `realm check` output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CheckFormat {
    Text,
    Json,
    Junit,
    Github,
}

/// `realm check --mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CheckModeArg {
    Exporter,
    Importer,
    Contract,
    Compatibility,
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Which checks (repeatable; default depends on where it runs).
    #[arg(long, value_enum)]
    pub mode: Vec<CheckModeArg>,
    /// Compare this contract version ... (compatibility mode)
    #[arg(long, requires = "to")]
    pub from: Option<String>,
    /// ... with this one.
    #[arg(long, requires = "from")]
    pub to: Option<String>,
    /// Warnings fail the check too.
    #[arg(long)]
    pub strict: bool,
    /// Bypass the cache (nothing read, nothing written).
    #[arg(long)]
    pub no_cache: bool,
    #[arg(long, value_enum, default_value = "text")]
    pub format: CheckFormat,
    /// Seconds a validation hook may run before it is killed.
    #[arg(long, default_value_t = 60)]
    pub hook_timeout: u64,
    #[command(flatten)]
    pub sel: RealmSel,
}

/// Output formats of `realm diff`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DiffFormat {
    Text,
    Json,
}

/// Compatibility modes on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ModeArg {
    Backward,
    Forward,
    Full,
}

impl From<ModeArg> for Mode {
    fn from(m: ModeArg) -> Self {
        match m {
            ModeArg::Backward => Mode::Backward,
            ModeArg::Forward => Mode::Forward,
            ModeArg::Full => Mode::Full,
        }
    }
}

#[derive(Debug, Args)]
pub struct DiffArgs {
    /// The old schema (JSON or YAML).
    pub old: PathBuf,
    /// The new schema (JSON or YAML).
    pub new: PathBuf,
    /// Which readers must keep working.
    #[arg(long, value_enum, default_value = "backward")]
    pub mode: ModeArg,
    /// Output format (`--json` is the same as `--format json`).
    #[arg(long, value_enum, default_value = "text")]
    pub format: DiffFormat,
}

pub fn run(app: &App, cmd: RealmCommand) -> Result<Exit, CliError> {
    match cmd {
        RealmCommand::Diff(a) => diff(app, a),
        RealmCommand::Status(a) => status(app, a),
        RealmCommand::Check(a) => check_cmd(app, a),
        RealmCommand::Admin(c) => admin(app, c),
    }
}

pub(crate) fn load_error(e: LoadError) -> CliError {
    let hint = match &e {
        LoadError::TooLarge { .. } => Some("split the schema, or compare a smaller excerpt"),
        LoadError::Syntax { .. } | LoadError::Invalid { .. } => {
            Some("fix the file at the position shown")
        }
        LoadError::Io { .. } => None,
    };
    let err = CliError::from_error(Exit::Usage, &e);
    match hint {
        Some(h) => err.with_hint(h),
        None => err,
    }
}

fn diff(app: &App, args: DiffArgs) -> Result<Exit, CliError> {
    let old = repoman_realm::yaml::load_value(&args.old).map_err(load_error)?;
    let new = repoman_realm::yaml::load_value(&args.new).map_err(load_error)?;
    let mode: Mode = args.mode.into();
    let report =
        compat::diff(&old, &new, mode).map_err(|e| CliError::from_error(Exit::Usage, &e))?;
    if app.ui.json() || args.format == DiffFormat::Json {
        app.ui.print_json(&json!({
            "old": args.old,
            "new": args.new,
            "mode": report.mode,
            "verdict": report.verdict,
            "changes": report.changes,
        }))?;
    } else {
        for line in render_report(&report) {
            app.ui.data(&line)?;
        }
    }
    Ok(if report.is_breaking() {
        Exit::Failure
    } else {
        Exit::Success
    })
}

/// Text lines for a diff report: a summary line, then one line per change.
pub(crate) fn render_report(report: &DiffReport) -> Vec<String> {
    let count = |v: Verdict| report.changes.iter().filter(|c| c.verdict == v).count();
    let mut lines = vec![format!(
        "{} compatibility: {} ({} breaking, {} warning, {} compatible change{})",
        report.mode.as_str(),
        report.verdict.as_str().to_uppercase(),
        count(Verdict::Breaking),
        count(Verdict::Warning),
        count(Verdict::Compatible),
        if count(Verdict::Compatible) == 1 {
            ""
        } else {
            "s"
        },
    )];
    let width = report
        .changes
        .iter()
        .map(|c| c.pointer.len())
        .max()
        .unwrap_or(0);
    let kind_width = report
        .changes
        .iter()
        .map(|c| c.kind.len())
        .max()
        .unwrap_or(0);
    let mut sorted: Vec<_> = report.changes.iter().collect();
    sorted.sort_by_key(|c| std::cmp::Reverse(c.verdict));
    for c in sorted {
        lines.push(format!(
            "  {:<10} {:<width$}  {:<kind_width$}  {}",
            c.verdict.as_str(),
            c.pointer,
            c.kind,
            c.message,
            width = width,
            kind_width = kind_width
        ));
    }
    lines
}

fn cwd() -> Result<PathBuf, CliError> {
    std::env::current_dir()
        .map_err(|e| CliError::usage(format!("cannot read the current directory: {e}")))
}

pub(crate) fn realm_error(e: RealmError) -> CliError {
    let exit = match &e {
        RealmError::Git(_) | RealmError::Write { .. } | RealmError::Io { .. } => Exit::Failure,
        RealmError::Cycle(_) | RealmError::InUse { .. } => Exit::Blocked,
        _ => Exit::Usage,
    };
    let hint = match &e {
        RealmError::NotAMember { .. } => {
            Some("join a realm with `repoman realm admin join REALM`, or pass --realm")
        }
        RealmError::NotARealm { .. } => {
            Some("create one with `repoman realm admin init NAME`, or pass --realm PATH")
        }
        RealmError::Bump(_) => Some("pass --version with a version that matches the change"),
        RealmError::RangeMismatch { .. } => {
            Some("widen the range, or import the version the range accepts")
        }
        _ => None,
    };
    let err = CliError::from_error(exit, &e);
    match hint {
        Some(h) => err.with_hint(h),
        None => err,
    }
}

fn default_realm_dir(app: &App, name: &str) -> PathBuf {
    app.paths.state_dir.join("realms").join(name)
}

/// `--realm NAME|PATH`, else the realm of the repository in the current directory (or the realm
/// repository itself when run inside it).
fn resolve_realm(app: &App, sel: Option<&str>) -> Result<Realm, CliError> {
    let root = match sel {
        Some(s) => {
            let p = PathBuf::from(s);
            if p.join("realm.yaml").is_file() {
                p
            } else {
                let by_name = default_realm_dir(app, s);
                if by_name.join("realm.yaml").is_file() {
                    by_name
                } else {
                    return Err(CliError::usage(format!(
                        "no realm `{s}` (neither a realm repository path nor a realm under {})",
                        app.paths.state_dir.join("realms").display()
                    ))
                    .with_hint("create it with `repoman realm admin init NAME`"));
                }
            }
        }
        None => {
            let here = cwd()?;
            if here.join("realm.yaml").is_file() {
                here
            } else {
                let (dir, m) = find_membership(&here).map_err(realm_error)?;
                membership_root(&dir, &m)
            }
        }
    };
    Realm::load(&root).map_err(realm_error)
}

/// The member repo for `--repo DIR` (or the current directory): its directory and realm name.
fn member(realm: &Realm, repo: Option<&Path>) -> Result<(PathBuf, String), CliError> {
    let start = match repo {
        Some(p) => p.to_path_buf(),
        None => cwd()?,
    };
    let (dir, m) = find_membership(&start).map_err(realm_error)?;
    if m.realm != realm.name() {
        return Err(CliError::usage(format!(
            "{} belongs to realm `{}`, not `{}`",
            dir.display(),
            m.realm,
            realm.name()
        )));
    }
    Ok((dir, m.repo))
}

fn record(app: &App, events: Vec<RealmEvent>) -> Result<(), CliError> {
    if events.is_empty() {
        return Ok(());
    }
    let state = app.state()?;
    let evs = events
        .into_iter()
        .map(|e| repoman_state::NewEvent::new(e.type_, e.object, e.data))
        .collect();
    state.append_batch(evs)?;
    Ok(())
}

/// Publishes the realm file schemas (`repoman schema show realm.contract`) and the data schema of
/// the realm events.
pub(crate) fn register_schemas() {
    use repoman_state::schemas::{Schema, SchemaKind, register};
    for s in repoman_realm::schemas::all() {
        register(Schema {
            id: s.id.into(),
            title: s.title.into(),
            kind: SchemaKind::Config,
            applies_to: s.applies_to.into(),
            json: s.json,
        });
    }
    register(Schema::event_data(
        "realm.checked",
        "A realm check's outcome",
        json!({"type": "object", "required": ["ok", "modes", "errors", "warnings"],
               "properties": {"ok": {"type": "boolean"}, "modes": {"type": "array", "items": {"type": "string"}},
                              "errors": {"type": "integer"}, "warnings": {"type": "integer"}, "context": {"type": "string"}}}),
    ));
    register(Schema::event_data(
        "contract.checked",
        "One contract compatibility comparison",
        json!({"type": "object", "required": ["from", "to", "mode", "verdict"],
               "properties": {"from": {"type": "string"}, "to": {"type": "string"}, "mode": {"type": "string"},
                              "verdict": {"enum": ["compatible", "warning", "breaking"]}}}),
    ));
}

fn admin(app: &App, cmd: AdminCommand) -> Result<Exit, CliError> {
    let env = &app.env;
    match cmd {
        AdminCommand::Init(a) => {
            let dir = a
                .path
                .clone()
                .unwrap_or_else(|| default_realm_dir(app, &a.name));
            let (realm, events) = Realm::init(&dir, &a.name, env).map_err(realm_error)?;
            record(app, events)?;
            if app.ui.json() {
                app.ui
                    .print_json(&json!({"realm": realm.name(), "path": realm.root}))?;
            } else {
                app.ui.success(&format!(
                    "created realm `{}` at {}",
                    realm.name(),
                    realm.root.display()
                ));
                app.ui.hint(&format!(
                    "join repositories with `repoman realm admin join {}`",
                    realm.root.display()
                ));
            }
            Ok(Exit::Success)
        }
        AdminCommand::Join(a) => {
            let mut realm = resolve_realm(app, Some(&a.realm))?;
            realm.dry_run = a.dry_run;
            let (dir, default_name) = match (&a.project, &a.repo) {
                (Some(p), _) => {
                    let reg = app.registry()?;
                    let entry = reg.registry.project(p).ok_or_else(|| {
                        CliError::usage(format!("no project `{p}`"))
                            .with_hint("`repoman list` shows the registered projects")
                    })?;
                    let settings = repoman_core::settings::Settings::resolve(&reg.registry, env);
                    let root = settings.local_repos.map(|s| s.value).ok_or_else(|| {
                        CliError::usage("`local_repos` is not configured").with_hint(
                            "set [defaults] local_repos in repoman.toml, or pass --repo DIR",
                        )
                    })?;
                    (root.join(entry.repo.as_str()), p.clone())
                }
                (None, Some(d)) => (d.clone(), dir_name(d)),
                (None, None) => {
                    let d = cwd()?;
                    let n = dir_name(&d);
                    (d, n)
                }
            };
            let name = a.name.unwrap_or(default_name);
            let events = realm.join(&dir, &name, env).map_err(realm_error)?;
            record(app, events)?;
            app.ui.success(&format!(
                "{}{} joined realm `{}` as `{name}`",
                dry(a.dry_run),
                dir.display(),
                realm.name()
            ));
            Ok(Exit::Success)
        }
        AdminCommand::Leave(a) => {
            let start = match &a.repo {
                Some(p) => p.clone(),
                None => cwd()?,
            };
            let (dir, m) = find_membership(&start).map_err(realm_error)?;
            let mut realm = Realm::load(&membership_root(&dir, &m)).map_err(realm_error)?;
            realm.dry_run = a.dry_run;
            let events = realm.leave(&dir, &m.repo, env).map_err(realm_error)?;
            record(app, events)?;
            app.ui.success(&format!(
                "{}`{}` left realm `{}`",
                dry(a.dry_run),
                m.repo,
                realm.name()
            ));
            Ok(Exit::Success)
        }
        AdminCommand::Domain(DomainCommand::Create(a)) => {
            let mut realm = resolve_realm(app, a.sel.realm.as_deref())?;
            // Validate (names, cycles) first, then ask policy, then write.
            realm
                .create_domain(&a.name, &a.repos, env, true)
                .map_err(realm_error)?;
            if !a.dry_run {
                policy_gate(
                    app,
                    "realm.domain.create",
                    &format!("domain:{}/{}", realm.name(), a.name),
                    Vec::new(),
                )?;
            }
            let events = realm
                .create_domain(&a.name, &a.repos, env, a.dry_run)
                .map_err(realm_error)?;
            record(app, events)?;
            let (provider, consumers) = a
                .repos
                .split_first()
                .map(|(p, c)| (p.clone(), c.join(", ")))
                .unwrap_or_default();
            let verb = if a.dry_run { "would create" } else { "created" };
            app.ui.success(&format!(
                "{verb} domain `{}`: {provider} provides to {consumers}",
                a.name
            ));
            Ok(Exit::Success)
        }
        AdminCommand::Contract(ContractCommand::Add(a)) => {
            let mut realm = resolve_realm(app, a.sel.realm.as_deref())?;
            realm.dry_run = a.dry_run;
            let schema = repoman_realm::yaml::load_value(&a.schema).map_err(load_error)?;
            let compatibility = match a.compatibility.as_str() {
                "none" => Compatibility {
                    backwards: false,
                    forwards: false,
                    transitive: a.transitive,
                },
                other => {
                    let mode: Mode = other.parse().map_err(CliError::usage)?;
                    Compatibility {
                        backwards: mode != Mode::Forward,
                        forwards: mode != Mode::Backward,
                        transitive: a.transitive,
                    }
                }
            };
            if !a.dry_run {
                realm.dry_run = true;
                realm
                    .add_contract(
                        &a.domain,
                        &a.name,
                        &a.owner,
                        &a.version,
                        schema.clone(),
                        compatibility,
                        env,
                    )
                    .map_err(realm_error)?;
                realm.dry_run = false;
                policy_gate(
                    app,
                    "realm.contract.add",
                    &realm.contract_object(&a.domain, &a.name),
                    Vec::new(),
                )?;
            }
            let events = realm
                .add_contract(
                    &a.domain,
                    &a.name,
                    &a.owner,
                    &a.version,
                    schema,
                    compatibility,
                    env,
                )
                .map_err(realm_error)?;
            record(app, events)?;
            app.ui.success(&format!(
                "{}added contract `{}` {} to domain `{}`",
                dry(a.dry_run),
                a.name,
                a.version,
                a.domain
            ));
            Ok(Exit::Success)
        }
        AdminCommand::Contract(ContractCommand::Bump(a)) => {
            let mut realm = resolve_realm(app, a.sel.realm.as_deref())?;
            let schema = repoman_realm::yaml::load_value(&a.schema).map_err(load_error)?;
            let owner = realm.contract(&a.name).map(|(_, c)| c.owner.clone());
            let owner_dir = match &a.repo {
                Some(d) => Some(d.clone()),
                None => cwd()
                    .ok()
                    .and_then(|d| find_membership(&d).ok())
                    .filter(|(_, m)| Some(&m.repo) == owner.as_ref())
                    .map(|(d, _)| d),
            };
            let (preview, _) = realm
                .bump_contract(
                    &a.name,
                    schema.clone(),
                    a.version.as_deref(),
                    Vec::new(),
                    None,
                    env,
                    true,
                )
                .map_err(realm_error)?;
            if !a.dry_run {
                let object = realm
                    .contract(&a.name)
                    .map(|(d, _)| realm.contract_object(d, &a.name))
                    .unwrap_or_default();
                let verdicts = if preview.report.is_breaking() {
                    vec![repoman_state::Verdict {
                        rule: "realm.breaking-change".into(),
                        effect: repoman_state::Effect::Allow,
                        reason: format!(
                            "breaking change ({}) with a major step {} → {}",
                            preview.report.mode.as_str(),
                            preview.from,
                            preview.to
                        ),
                        unblock: None,
                    }]
                } else {
                    Vec::new()
                };
                policy_gate(app, "realm.contract.bump", &object, verdicts)?;
            }
            let (outcome, events) = realm
                .bump_contract(
                    &a.name,
                    schema,
                    a.version.as_deref(),
                    a.changes,
                    owner_dir.as_deref(),
                    env,
                    a.dry_run,
                )
                .map_err(realm_error)?;
            record(app, events)?;
            if app.ui.json() {
                app.ui.print_json(&outcome)?;
            } else {
                for line in render_report(&outcome.report) {
                    app.ui.data(&line)?;
                }
                let verb = if a.dry_run { "would bump" } else { "bumped" };
                app.ui.success(&format!(
                    "{verb} `{}` {} → {}",
                    outcome.contract, outcome.from, outcome.to
                ));
            }
            Ok(Exit::Success)
        }
        AdminCommand::Binding(BindingCommand::Export(a)) => {
            let mut realm = resolve_realm(app, a.sel.realm.as_deref())?;
            realm.dry_run = a.dry_run;
            let (dir, repo) = member(&realm, a.repo.as_deref())?;
            if !a.dry_run {
                realm.dry_run = true;
                realm
                    .export(&repo, &a.contract, a.source_files.clone(), &dir, env)
                    .map_err(realm_error)?;
                realm.dry_run = false;
                policy_gate(
                    app,
                    "realm.binding.export",
                    &format!("binding:{}/{repo}/{}", realm.name(), a.contract),
                    Vec::new(),
                )?;
            }
            let events = realm
                .export(&repo, &a.contract, a.source_files, &dir, env)
                .map_err(realm_error)?;
            record(app, events)?;
            app.ui.success(&format!(
                "{}`{repo}` exports `{}`",
                dry(a.dry_run),
                a.contract
            ));
            Ok(Exit::Success)
        }
        AdminCommand::Binding(BindingCommand::Import(a)) => {
            let mut realm = resolve_realm(app, a.sel.realm.as_deref())?;
            realm.dry_run = a.dry_run;
            let (_, repo) = member(&realm, a.repo.as_deref())?;
            if !a.dry_run {
                realm.dry_run = true;
                realm
                    .import(&repo, &a.contract, &a.version, a.binding.clone(), env)
                    .map_err(realm_error)?;
                realm.dry_run = false;
                policy_gate(
                    app,
                    "realm.binding.import",
                    &format!("binding:{}/{repo}/{}", realm.name(), a.contract),
                    Vec::new(),
                )?;
            }
            let events = realm
                .import(&repo, &a.contract, &a.version, a.binding, env)
                .map_err(realm_error)?;
            record(app, events)?;
            app.ui.success(&format!(
                "{}`{repo}` imports `{}` {}",
                dry(a.dry_run),
                a.contract,
                a.version
            ));
            Ok(Exit::Success)
        }
        AdminCommand::Trust(a) => {
            let realm = resolve_realm(app, a.sel.realm.as_deref())?;
            let head = Git::new(&realm.root, env)
                .head()
                .map_err(|e| realm_error(e.into()))?;
            let hooks: Vec<String> = realm
                .domains
                .values()
                .flat_map(|d| d.contracts.values())
                .flat_map(|c| {
                    c.validation
                        .exporter
                        .iter()
                        .chain(c.validation.importer.iter())
                        .chain(c.validation.ci_only.iter())
                        .map(move |h| format!("{}: {h}", c.name))
                })
                .collect();
            trust::trust(
                &app.paths.state_dir,
                &realm.root,
                &head,
                &app.clock.now_rfc3339(),
            )
            .map_err(|e| CliError::from_error(Exit::Failure, &e))?;
            record(
                app,
                vec![RealmEvent::new(
                    "realm.trusted",
                    format!("realm:{}", realm.name()),
                    json!({"commit": head, "hooks": hooks}),
                )],
            )?;
            if app.ui.json() {
                app.ui
                    .print_json(&json!({"realm": realm.name(), "commit": head, "hooks": hooks}))?;
            } else {
                app.ui.success(&format!(
                    "trusted realm `{}` at {}",
                    realm.name(),
                    &head[..head.len().min(12)]
                ));
                for h in &hooks {
                    app.ui.info(&format!("  hook {h}"));
                }
            }
            Ok(Exit::Success)
        }
        AdminCommand::Cache(CacheCommand::Stats(a)) => {
            let dir = cache_repo(a.repo)?;
            let s = cache::stats(&dir).map_err(|e| CliError::from_error(Exit::Failure, &e))?;
            if app.ui.json() {
                app.ui.print_json(&s)?;
            } else {
                app.ui.data(&format!(
                    "cache      {}{}",
                    s.path.display(),
                    if s.exists { "" } else { " (absent)" }
                ))?;
                app.ui.data(&format!("size       {} bytes", s.bytes))?;
                app.ui.data(&format!("exports    {}", s.export_entries))?;
                app.ui.data(&format!("contracts  {}", s.contract_entries))?;
                app.ui
                    .data(&format!("validation {}", s.validation_entries))?;
                app.ui.data(&format!("diffs      {}", s.compat_entries))?;
                let total = s.hits + s.misses;
                let rate = if total == 0 {
                    0.0
                } else {
                    s.hits as f64 * 100.0 / total as f64
                };
                app.ui.data(&format!(
                    "hits       {} of {} lookups ({rate:.0}%)",
                    s.hits, total
                ))?;
            }
            Ok(Exit::Success)
        }
        AdminCommand::Cache(CacheCommand::Clear(a)) => {
            let dir = cache_repo(a.repo)?;
            let existed = cache::clear(&dir)
                .map_err(|e| CliError::failed(format!("cannot remove the cache: {e}")))?;
            if existed {
                record(
                    app,
                    vec![RealmEvent::new(
                        "realm.cache.cleared",
                        format!("file:{}", cache::cache_path(&dir).display()),
                        json!({}),
                    )],
                )?;
            }
            app.ui.success(if existed {
                "cache cleared"
            } else {
                "no cache to clear"
            });
            Ok(Exit::Success)
        }
    }
}

/// Evaluates the user's `[[policy.rule]]`s (and `verdicts` from realm guards) for a realm change,
/// records the decision, and stops with exit 3 when it denies or needs review.
fn policy_gate(
    app: &App,
    op: &str,
    object: &str,
    verdicts: Vec<repoman_state::Verdict>,
) -> Result<(), CliError> {
    use repoman_state::{Effect, Operation};
    let reg = app.registry()?;
    let state = app.state()?;
    let op = Operation {
        name: op.into(),
        object: object.into(),
        project: None,
    };
    let d = state.decide(&op, verdicts, &reg.registry.policy.rules)?;
    if d.effect.blocks() {
        let reasons: Vec<String> = d
            .reasons
            .iter()
            .filter(|v| v.effect.blocks())
            .map(|v| {
                format!(
                    "{} ({}): {}",
                    if v.effect == Effect::Deny {
                        "denied"
                    } else {
                        "review required"
                    },
                    v.rule,
                    v.reason
                )
            })
            .collect();
        return Err(CliError::new(
            Exit::Blocked,
            format!(
                "{} on {} is blocked by policy:\n  {}",
                op.name,
                op.object,
                reasons.join("\n  ")
            ),
        ));
    }
    Ok(())
}

fn dry(dry_run: bool) -> &'static str {
    if dry_run { "(dry run) " } else { "" }
}

fn dir_name(d: &Path) -> String {
    d.canonicalize()
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_else(|| "repo".into())
}

/// The repo whose cache to use: `--repo`, else the member repo (or realm repo) around the cwd.
fn cache_repo(repo: Option<PathBuf>) -> Result<PathBuf, CliError> {
    if let Some(r) = repo {
        return Ok(r);
    }
    let here = cwd()?;
    if here.join("realm.yaml").is_file() {
        return Ok(here);
    }
    find_membership(&here).map(|(d, _)| d).map_err(realm_error)
}

fn status(app: &App, args: StatusArgs) -> Result<Exit, CliError> {
    let realm = resolve_realm(app, args.sel.realm.as_deref())?;
    let git = Git::new(&realm.root, &app.env);
    let head = git.head().ok();
    let me = cwd()
        .ok()
        .and_then(|d| find_membership(&d).ok())
        .filter(|(_, m)| m.realm == realm.name())
        .map(|(_, m)| m.repo);
    // One `git status` for every contract file, not one `git show` per contract.
    let changed = git.changed_paths("domains").unwrap_or_default();
    let pending: Vec<String> = realm
        .domains
        .iter()
        .flat_map(|(d, dom)| dom.contracts.keys().map(move |c| (d.clone(), c.clone())))
        .filter(|(d, c)| head.is_none() || changed.contains(&Realm::contract_rel_path(d, c)))
        .map(|(_, c)| c)
        .collect();
    let mut exports = Vec::new();
    let mut imports = Vec::new();
    let mut stale = Vec::new();
    for (d, dom) in &realm.domains {
        for b in dom.bindings.values() {
            let mine = me.as_deref() == Some(b.repo.as_str());
            for e in &b.exports {
                let current = realm.contract(&e.contract).map(|(_, c)| c.version.clone());
                if mine || me.is_none() {
                    exports.push(json!({"repo": b.repo, "domain": d, "contract": e.contract, "version": current, "recorded_version": e.recorded_version}));
                }
            }
            for i in &b.imports {
                let current = realm.contract(&i.contract).map(|(_, c)| c.version.clone());
                if mine || me.is_none() {
                    imports.push(json!({"repo": b.repo, "domain": d, "contract": i.contract, "range": i.version, "resolved_version": i.resolved_version, "current_version": current}));
                }
                if current.is_some() && i.resolved_version != current {
                    stale.push(json!({"repo": b.repo, "contract": i.contract, "resolved_version": i.resolved_version, "current_version": current}));
                }
            }
        }
    }
    let domains: Vec<_> = realm
        .domains
        .values()
        .map(|d| json!({"name": d.file.name, "provider": d.file.provider, "consumers": d.file.consumers, "contracts": d.contracts.values().map(|c| json!({"name": c.name, "version": c.version, "owner": c.owner})).collect::<Vec<_>>()}))
        .collect();
    let out = json!({
        "realm": realm.name(), "path": realm.root, "commit": head, "repo": me,
        "repos": realm.repos.keys().collect::<Vec<_>>(),
        "domains": domains, "exports": exports, "imports": imports,
        "stale_bindings": stale, "pending_contract_changes": pending,
    });
    if app.ui.json() {
        app.ui.print_json(&out)?;
        return Ok(Exit::Success);
    }
    app.ui.data(&format!(
        "realm {} ({}) at {}",
        realm.name(),
        head.as_deref()
            .map_or("no commits", |h| &h[..h.len().min(12)]),
        realm.root.display()
    ))?;
    if let Some(r) = &me {
        app.ui.data(&format!("this repo: {r}"))?;
    }
    for d in realm.domains.values() {
        app.ui.data(&format!(
            "domain {}: {} → {}",
            d.file.name,
            d.file.provider,
            d.file.consumers.join(", ")
        ))?;
        for c in d.contracts.values() {
            app.ui.data(&format!(
                "  contract {} {} (owner {})",
                c.name, c.version, c.owner
            ))?;
        }
    }
    for e in &exports {
        app.ui.data(&format!(
            "export  {} {} @ {}",
            e["repo"].as_str().unwrap_or(""),
            e["contract"].as_str().unwrap_or(""),
            e["version"].as_str().unwrap_or("?")
        ))?;
    }
    for i in &imports {
        app.ui.data(&format!(
            "import  {} {} {} (resolved {}, current {})",
            i["repo"].as_str().unwrap_or(""),
            i["contract"].as_str().unwrap_or(""),
            i["range"].as_str().unwrap_or(""),
            i["resolved_version"].as_str().unwrap_or("-"),
            i["current_version"].as_str().unwrap_or("?")
        ))?;
    }
    for s in &stale {
        app.ui.data(&format!(
            "stale   {} resolved {} {}, contract is at {}",
            s["repo"].as_str().unwrap_or(""),
            s["contract"].as_str().unwrap_or(""),
            s["resolved_version"].as_str().unwrap_or("-"),
            s["current_version"].as_str().unwrap_or("?")
        ))?;
    }
    for p in &pending {
        app.ui.data(&format!(
            "pending contract change: {p} (uncommitted in the realm repository)"
        ))?;
    }
    Ok(Exit::Success)
}

fn check_cmd(app: &App, args: CheckArgs) -> Result<Exit, CliError> {
    let realm = resolve_realm(app, args.sel.realm.as_deref())?;
    let here = cwd()?;
    let same = |a: &Path, b: &Path| a.canonicalize().ok() == b.canonicalize().ok();
    let (ctx, repo_dir) = if same(&here, &realm.root)
        || args.sel.realm.is_some() && find_membership(&here).is_err()
    {
        (Context::Realm, realm.root.clone())
    } else {
        let (dir, repo) = member(&realm, None)?;
        (
            Context::Member {
                repo,
                dir: dir.clone(),
            },
            dir,
        )
    };
    let head = Git::new(&realm.root, &app.env)
        .head()
        .map_err(|e| realm_error(e.into()))?;
    let trust_state = trust::state(&app.paths.state_dir, &realm.root, &head)
        .map_err(|e| CliError::from_error(Exit::Failure, &e))?;
    let modes = args
        .mode
        .iter()
        .map(|m| match m {
            CheckModeArg::Exporter => CheckMode::Exporter,
            CheckModeArg::Importer => CheckMode::Importer,
            CheckModeArg::Contract => CheckMode::Contract,
            CheckModeArg::Compatibility => CheckMode::Compatibility,
        })
        .collect();
    let opts = CheckOptions {
        modes,
        from: args.from.clone(),
        to: args.to.clone(),
        strict: args.strict,
        ci: app
            .env
            .get("CI")
            .is_some_and(|v| !v.is_empty() && v != "false" && v != "0"),
        trust: trust_state,
        hook_timeout: Duration::from_secs(args.hook_timeout.max(1)),
        now: app.clock.now().as_second(),
    };
    let mut cache = if args.no_cache {
        Cache::disabled(&repo_dir)
    } else {
        Cache::open(&repo_dir).unwrap_or_else(|_| Cache::disabled(&repo_dir))
    };
    let report = check::check(&realm, &ctx, &opts, &app.env, &mut cache).map_err(realm_error)?;
    record_check(app, &realm, &report)?;
    let format = if app.ui.json() {
        CheckFormat::Json
    } else {
        args.format
    };
    match format {
        CheckFormat::Json => app.ui.print_json(&report)?,
        CheckFormat::Text => {
            for line in render_check_text(&report) {
                app.ui.data(&line)?;
            }
        }
        CheckFormat::Junit => app.ui.data(&render_junit(&report))?,
        CheckFormat::Github => {
            for line in render_github(&report) {
                app.ui.data(&line)?;
            }
        }
    }
    Ok(if report.ok {
        Exit::Success
    } else {
        Exit::Failure
    })
}

fn record_check(app: &App, realm: &Realm, report: &CheckReport) -> Result<(), CliError> {
    let mut events = vec![RealmEvent::new(
        "realm.checked",
        format!("realm:{}", realm.name()),
        json!({"ok": report.ok, "modes": report.modes, "errors": report.errors, "warnings": report.warnings, "context": report.context, "strict": report.strict}),
    )];
    for d in &report.compatibility {
        let obj = realm
            .contract(&d.contract)
            .map(|(dom, _)| realm.contract_object(dom, &d.contract))
            .unwrap_or_else(|| format!("contract:{}/?/{}", realm.name(), d.contract));
        events.push(RealmEvent::new(
            "contract.checked",
            obj,
            json!({"from": d.from, "to": d.to, "mode": d.mode, "verdict": d.verdict}),
        ));
    }
    record(app, events)
}

fn level_str(l: Level) -> &'static str {
    match l {
        Level::Error => "error",
        Level::Warning => "warning",
        Level::Info => "info",
    }
}

fn render_check_text(r: &CheckReport) -> Vec<String> {
    let mut lines = Vec::new();
    for d in &r.compatibility {
        // As in the design seed: one line per change, then the result and what the step allows.
        lines.push(format!(
            "checking {} {} → {} ({})",
            d.contract,
            d.from,
            d.to,
            d.mode.as_str()
        ));
        for ch in &d.changes {
            let mark = match ch.verdict {
                Verdict::Compatible => "✓",
                Verdict::Warning => "!",
                Verdict::Breaking => "✗",
            };
            lines.push(format!(
                "  {mark} {} {}: {} - {}",
                ch.pointer,
                ch.kind,
                ch.message,
                ch.verdict.as_str().to_uppercase()
            ));
        }
        let step = match (
            repoman_realm::version::parse_version(&d.from),
            repoman_realm::version::parse_version(&d.to),
        ) {
            (Ok(a), Ok(b)) => match repoman_realm::version::bump(&a, &b) {
                Some(repoman_realm::version::Bump::Major) => "major version step",
                Some(repoman_realm::version::Bump::Minor) => "minor version step",
                Some(repoman_realm::version::Bump::Patch) => "patch version step",
                None => "version did not increase",
            },
            _ => "unparsable versions",
        };
        let ok = d.verdict != Verdict::Breaking || step == "major version step";
        lines.push(format!(
            "  Result: {} ({step} {})",
            d.verdict.as_str().to_uppercase(),
            if ok { "OK" } else { "NOT OK" }
        ));
    }
    let mut sorted: Vec<_> = r.findings.iter().collect();
    sorted.sort_by_key(|f| std::cmp::Reverse(f.level));
    for f in sorted {
        let at = f
            .pointer
            .as_ref()
            .map(|p| format!(" at {p}"))
            .unwrap_or_default();
        lines.push(format!(
            "{:<7} [{}] {} {}: {}{at}",
            level_str(f.level),
            f.mode.as_str(),
            f.object,
            f.rule,
            f.message
        ));
    }
    for h in &r.hooks {
        let status = match h.status {
            check::HookStatus::Ran => {
                format!("exit {}", h.exit.map_or("none".into(), |c| c.to_string()))
            }
            check::HookStatus::Cached => format!(
                "exit {} (cached)",
                h.exit.map_or("none".into(), |c| c.to_string())
            ),
            check::HookStatus::SkippedUntrusted => "skipped: realm not trusted".into(),
            check::HookStatus::SkippedNotCi => "skipped: CI only".into(),
        };
        lines.push(format!(
            "hook    {} {} {}: {status}",
            h.contract, h.role, h.script
        ));
    }
    let modes: Vec<&str> = r.modes.iter().map(|m| m.as_str()).collect();
    lines.push(format!(
        "realm check ({}) {}: {} ({} error{}, {} warning{}{})",
        modes.join(", "),
        r.realm,
        if r.ok { "OK" } else { "FAILED" },
        r.errors,
        if r.errors == 1 { "" } else { "s" },
        r.warnings,
        if r.warnings == 1 { "" } else { "s" },
        if r.strict { ", strict" } else { "" }
    ));
    lines
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&apos;")
}

fn render_junit(r: &CheckReport) -> String {
    let failing =
        |f: &check::Finding| f.level == Level::Error || (r.strict && f.level == Level::Warning);
    let relevant: Vec<_> = r
        .findings
        .iter()
        .filter(|f| f.level != Level::Info)
        .collect();
    let failures = relevant.iter().filter(|f| failing(f)).count();
    let tests = relevant.len() + r.compatibility.len() + 1;
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    out.push_str(&format!(
        "<testsuites name=\"repoman realm check\" tests=\"{tests}\" failures=\"{failures}\">\n"
    ));
    out.push_str(&format!(
        "  <testsuite name=\"realm {}\" tests=\"{tests}\" failures=\"{failures}\">\n",
        xml_escape(&r.realm)
    ));
    for d in &r.compatibility {
        out.push_str(&format!(
            "    <testcase classname=\"compatibility\" name=\"{} {} → {} ({})\"/>\n",
            xml_escape(&d.contract),
            xml_escape(&d.from),
            xml_escape(&d.to),
            d.mode.as_str()
        ));
    }
    for f in relevant {
        let name = xml_escape(&format!("{} {}", f.object, f.rule));
        if failing(f) {
            out.push_str(&format!(
                "    <testcase classname=\"{}\" name=\"{name}\">\n      <failure type=\"{}\" message=\"{}\">{}</failure>\n    </testcase>\n",
                f.mode.as_str(),
                level_str(f.level),
                xml_escape(&f.message),
                xml_escape(&format!("{}{}", f.message, f.pointer.as_ref().map(|p| format!(" at {p}")).unwrap_or_default()))
            ));
        } else {
            out.push_str(&format!("    <testcase classname=\"{}\" name=\"{name}\">\n      <system-out>{}</system-out>\n    </testcase>\n", f.mode.as_str(), xml_escape(&format!("warning: {}", f.message))));
        }
    }
    out.push_str(&format!(
        "    <testcase classname=\"summary\" name=\"realm check\"{}\n",
        if r.ok {
            "/>"
        } else {
            "><failure type=\"summary\" message=\"realm check failed\"/></testcase>"
        }
    ));
    out.push_str("  </testsuite>\n</testsuites>");
    out
}

fn gh_escape(s: &str) -> String {
    s.replace('%', "%25")
        .replace('\r', "%0D")
        .replace('\n', "%0A")
}

fn gh_prop(s: &str) -> String {
    gh_escape(s).replace(':', "%3A").replace(',', "%2C")
}

fn render_github(r: &CheckReport) -> Vec<String> {
    let mut lines = Vec::new();
    for f in &r.findings {
        let cmd = match f.level {
            Level::Error => "error",
            Level::Warning if r.strict => "error",
            Level::Warning => "warning",
            Level::Info => "notice",
        };
        let mut props = vec![format!(
            "title={}",
            gh_prop(&format!("realm {} ({})", f.rule, f.mode.as_str()))
        )];
        if let Some(file) = &f.file {
            props.insert(0, format!("file={}", gh_prop(file)));
        }
        let at = f
            .pointer
            .as_ref()
            .map(|p| format!(" at {p}"))
            .unwrap_or_default();
        lines.push(format!(
            "::{cmd} {}::{}",
            props.join(","),
            gh_escape(&format!("{}: {}{at}", f.object, f.message))
        ));
    }
    lines.push(format!(
        "::notice title=realm check::{} {} ({} errors, {} warnings)",
        r.realm,
        if r.ok { "OK" } else { "FAILED" },
        r.errors,
        r.warnings
    ));
    lines
}
