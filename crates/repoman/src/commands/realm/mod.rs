//! `repoman realm ...`: realm contracts between repositories (issue 6).
//!
//! `realm diff` runs the compatibility engine on two schema files outside any realm; the other
//! subcommands work on a realm repository (see `docs/realms.md`).

mod admin;
mod check;
mod contract;
mod diff;
mod render;
mod status;

use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};
use repoman_core::{ErrorKind, ObjectId};
use repoman_realm::model::Membership;
use repoman_realm::realm::{Realm, RealmError, RealmEvent, find_membership, membership_root};
use repoman_realm::yaml::LoadError;

use crate::app::App;
use crate::error::{CliError, Exit};

pub use admin::AdminCommand;
pub use check::CheckArgs;
pub use diff::DiffArgs;
pub use status::StatusArgs;

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

/// Which realm to act on.
#[derive(Debug, Args, Clone)]
pub struct RealmSel {
    /// The realm: a path to the realm repository, or a name created by `realm admin init`
    /// (default: the realm of the repository in the current directory).
    #[arg(long)]
    pub realm: Option<String>,
}

pub fn run(app: &App, cmd: RealmCommand) -> Result<Exit, CliError> {
    match cmd {
        RealmCommand::Diff(a) => diff::diff(app, a),
        RealmCommand::Status(a) => status::status(app, a),
        RealmCommand::Check(a) => check::check_cmd(app, a),
        RealmCommand::Admin(c) => admin::admin(app, c),
    }
}

pub(super) fn load_error(e: LoadError) -> CliError {
    let hint = match &e {
        LoadError::TooLarge { .. } => Some("split the schema, or compare a smaller excerpt"),
        LoadError::Syntax { .. } | LoadError::Invalid { .. } => {
            Some("fix the file at the position shown")
        }
        LoadError::Io { .. } => None,
    };
    CliError::of_kind(ErrorKind::Usage, &e, hint.map(str::to_owned))
}

pub(super) fn cwd() -> Result<PathBuf, CliError> {
    crate::app::current_dir()
}

pub(super) fn realm_error(e: RealmError) -> CliError {
    let kind = match &e {
        RealmError::Git(_) | RealmError::Write { .. } | RealmError::Io { .. } => ErrorKind::Failed,
        RealmError::Cycle(_) | RealmError::InUse { .. } => ErrorKind::Blocked,
        _ => ErrorKind::Usage,
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
    CliError::of_kind(kind, &e, hint.map(str::to_owned))
}

pub(super) fn default_realm_dir(app: &App, name: &str) -> PathBuf {
    app.paths.state_dir.join("realms").join(name)
}

/// `--realm NAME|PATH`, else the realm of the repository in the current directory (or the realm
/// repository itself when run inside it).
pub(super) fn resolve_realm(app: &App, sel: Option<&str>) -> Result<Realm, CliError> {
    Realm::load(&resolve_realm_root(app, sel)?).map_err(realm_error)
}

/// The realm repository `--realm` names (a path or a realm under the state dir), or the one of
/// the repository in the current directory; not loaded.
pub(super) fn resolve_realm_root(app: &App, sel: Option<&str>) -> Result<PathBuf, CliError> {
    Ok(match sel {
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
    })
}

/// Refuses a member repo `dir` (membership `m`) of another realm than `realm`.
pub(super) fn same_realm(dir: &Path, m: &Membership, realm: &Realm) -> Result<(), CliError> {
    if m.realm == realm.name() {
        return Ok(());
    }
    Err(CliError::usage(format!(
        "{} belongs to realm `{}`, not `{}`",
        dir.display(),
        m.realm,
        realm.name()
    ))
    .with_hint("run it in a repository of that realm, or name the realm with --realm"))
}

/// The member repo for `--repo DIR` (or the current directory): its directory and realm name.
pub(super) fn member(realm: &Realm, repo: Option<&Path>) -> Result<(PathBuf, String), CliError> {
    let start = match repo {
        Some(p) => p.to_path_buf(),
        None => cwd()?,
    };
    let (dir, m) = find_membership(&start).map_err(realm_error)?;
    same_realm(&dir, &m, realm)?;
    Ok((dir, m.repo))
}

pub(super) fn record(app: &App, events: Vec<RealmEvent>) -> Result<(), CliError> {
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

pub(super) fn dry(dry_run: bool) -> &'static str {
    if dry_run { "(dry run) " } else { "" }
}

/// The policy gate for a realm change: the user's `[[policy.rule]]`s and `verdicts` from realm
/// guards, through the one gate (`crate::decision::gate`). A real change records the decision;
/// `--dry-run` records nothing and shows it. Deny or review_required stops with exit 3.
pub(super) fn policy_gate(
    app: &App,
    op: &str,
    object: &ObjectId,
    verdicts: Vec<repoman_state::Verdict>,
    dry_run: bool,
) -> Result<(), CliError> {
    let reg = app.registry()?;
    let state = if dry_run {
        app.state_read_only()?
    } else {
        app.state()?
    };
    let op = crate::decision::operation(op, object);
    crate::decision::gate(
        app,
        &state,
        &op,
        verdicts,
        &reg.registry.policy.rules,
        dry_run,
    )?;
    Ok(())
}
