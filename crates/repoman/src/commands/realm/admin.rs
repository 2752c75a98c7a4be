//! `repoman realm admin ...`: init, join/leave, trust and the check cache; the domain, contract
//! and binding changes are in `contract.rs`.

use repoman_core::{ErrorKind, ObjectId};
use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};
use repoman_realm::cache;
use repoman_realm::git::Git;
use repoman_realm::realm::{Realm, RealmEvent, find_membership, membership_root};
use repoman_realm::trust;
use serde_json::json;

use super::contract::{self, BindingCommand, ContractCommand, DomainCommand};
use super::{RealmSel, cwd, default_realm_dir, dry, realm_error, record, resolve_realm};
use crate::app::App;
use crate::error::{CliError, Exit};

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

pub(super) fn admin(app: &App, cmd: AdminCommand) -> Result<Exit, CliError> {
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
                    let settings = app.settings()?;
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
        AdminCommand::Domain(c) => contract::domain(app, c),
        AdminCommand::Contract(c) => contract::contract(app, c),
        AdminCommand::Binding(c) => contract::binding(app, c),
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
            .map_err(|e| CliError::of_kind(ErrorKind::Failed, &e, None))?;
            record(
                app,
                vec![RealmEvent::new(
                    "realm.trusted",
                    ObjectId::realm(realm.name()).to_string(),
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
            let s =
                cache::stats(&dir).map_err(|e| CliError::of_kind(ErrorKind::Failed, &e, None))?;
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
                app.ui.data(&format!("realm load {}", s.realm_entries))?;
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
                        ObjectId::host_file(&cache::cache_path(&dir)).to_string(),
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
