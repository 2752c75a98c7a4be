//! `repoman realm admin domain|contract|binding ...`: changes to the realm's contents, each asked
//! of policy before it is written.

use std::path::PathBuf;

use clap::{Args, Subcommand};
use repoman_core::ObjectId;
use repoman_realm::compat::Mode;
use repoman_realm::model::Compatibility;
use repoman_realm::realm::{Realm, find_membership};

use super::render::render_report;
use super::{
    RealmSel, cwd, dry, load_error, member, policy_gate, realm_error, record, resolve_realm,
};
use crate::app::App;
use crate::error::{CliError, Exit};

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

pub(super) fn domain(app: &App, cmd: DomainCommand) -> Result<Exit, CliError> {
    let env = &app.env;
    match cmd {
        DomainCommand::Create(a) => {
            let mut realm = resolve_realm(app, a.sel.realm.as_deref())?;
            // Validate (names, cycles) first, then ask policy, then write.
            realm
                .create_domain(&a.name, &a.repos, env, true)
                .map_err(realm_error)?;
            policy_gate(
                app,
                "realm.domain.create",
                &ObjectId::domain(realm.name(), &a.name),
                Vec::new(),
                a.dry_run,
            )?;
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
    }
}

pub(super) fn contract(app: &App, cmd: ContractCommand) -> Result<Exit, CliError> {
    let env = &app.env;
    match cmd {
        ContractCommand::Add(a) => {
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
            }
            policy_gate(
                app,
                "realm.contract.add",
                &ObjectId::contract(realm.name(), &a.domain, &a.name),
                Vec::new(),
                a.dry_run,
            )?;
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
        ContractCommand::Bump(a) => {
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
            {
                let object = ObjectId::contract(
                    realm.name(),
                    realm.contract(&a.name).map(|(d, _)| d).unwrap_or_default(),
                    &a.name,
                );
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
                policy_gate(app, "realm.contract.bump", &object, verdicts, a.dry_run)?;
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
    }
}

pub(super) fn binding(app: &App, cmd: BindingCommand) -> Result<Exit, CliError> {
    let env = &app.env;
    match cmd {
        BindingCommand::Export(a) => {
            let mut realm = resolve_realm(app, a.sel.realm.as_deref())?;
            realm.dry_run = a.dry_run;
            let (dir, repo) = member(&realm, a.repo.as_deref())?;
            if !a.dry_run {
                realm.dry_run = true;
                realm
                    .export(&repo, &a.contract, a.source_files.clone(), &dir, env)
                    .map_err(realm_error)?;
                realm.dry_run = false;
            }
            policy_gate(
                app,
                "realm.binding.export",
                &binding_object(&realm, &repo, &a.contract),
                Vec::new(),
                a.dry_run,
            )?;
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
        BindingCommand::Import(a) => {
            let mut realm = resolve_realm(app, a.sel.realm.as_deref())?;
            realm.dry_run = a.dry_run;
            let (_, repo) = member(&realm, a.repo.as_deref())?;
            if !a.dry_run {
                realm.dry_run = true;
                realm
                    .import(&repo, &a.contract, &a.version, a.binding.clone(), env)
                    .map_err(realm_error)?;
                realm.dry_run = false;
            }
            policy_gate(
                app,
                "realm.binding.import",
                &binding_object(&realm, &repo, &a.contract),
                Vec::new(),
                a.dry_run,
            )?;
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
    }
}

/// The binding of `repo` to the domain of `contract` (`binding:REALM/DOMAIN/REPO`, the shape
/// `realm check` records too).
fn binding_object(realm: &Realm, repo: &str, contract: &str) -> ObjectId {
    ObjectId::binding(
        realm.name(),
        realm.contract(contract).map(|(d, _)| d).unwrap_or_default(),
        repo,
    )
}
