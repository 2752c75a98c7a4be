//! `repoman snif install|list|inspect|run|grant|remove`: WebAssembly extensions in a
//! deny-by-default sandbox (docs/snif.md). The domain lives in `repoman-snif`; this file is
//! clap, rendering and error mapping.

use std::path::PathBuf;

use clap::{Args, Subcommand};
use repoman_snif::store::{self, GrantRequest, SnifStore};
use repoman_snif::{Host, SnifError};
use repoman_state::GateMode;
use serde_json::json;

use crate::app::App;
use crate::error::{CliError, Exit};

mod read;
use read::{inspect, list, run_snif};

#[derive(Debug, Subcommand)]
pub enum SnifCommand {
    /// Install (or replace) a SNIF from a directory holding snif.toml, or from the snif.toml.
    ///
    /// The module must import only what its manifest asks for; capabilities stay off until
    /// `repoman snif grant`. Replacing a SNIF with different bytes drops its grants.
    Install(InstallArgs),
    /// List installed SNIFs.
    List,
    /// Show a SNIF's manifest, the imports its module really declares beside what the manifest
    /// claims, and its grants.
    Inspect(NameArg),
    /// Call a SNIF with a JSON input file (`-` for stdin) and print its JSON output.
    Run(RunArgs),
    /// Grant capabilities the SNIF's manifest asks for (added to earlier grants).
    ///
    /// Example: repoman snif grant reader --dir ~/schemas --env LANG=C.UTF-8
    Grant(GrantArgs),
    /// Remove a SNIF and its grants.
    Remove(RemoveArgs),
}

#[derive(Debug, Args)]
pub struct InstallArgs {
    /// A directory with snif.toml and the module, or the snif.toml itself.
    pub path: PathBuf,
    /// Check the SNIF and show what would be installed; write nothing.
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Debug, Args)]
pub struct NameArg {
    /// The SNIF's name.
    pub name: String,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// The SNIF's name.
    pub name: String,
    /// The input JSON (the interface's input payload), or `-` for stdin.
    #[arg(long, value_name = "FILE")]
    pub input: PathBuf,
}

#[derive(Debug, Args)]
pub struct GrantArgs {
    /// The SNIF's name.
    pub name: String,
    /// Pre-open this directory read-only (the `filesystem` capability).
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// Allow the wall and monotonic clocks.
    #[arg(long)]
    pub clock: bool,
    /// Allow random bytes.
    #[arg(long)]
    pub random: bool,
    /// Give the SNIF this environment value (repeatable; only names its manifest lists).
    #[arg(long, value_name = "NAME=VALUE")]
    pub env: Vec<String>,
    /// Revoke every grant first (alone: revoke all).
    #[arg(long)]
    pub revoke: bool,
    /// Show the grants that would result; write nothing.
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Debug, Args)]
pub struct RemoveArgs {
    /// The SNIF's name.
    pub name: String,
    /// Show what would be removed; change nothing.
    #[arg(long)]
    pub dry_run: bool,
}

impl From<SnifError> for CliError {
    fn from(e: SnifError) -> Self {
        if let SnifError::State(s) = e {
            return s.into();
        }
        CliError::domain(&e)
    }
}

pub fn run(app: &App, cmd: SnifCommand) -> Result<Exit, CliError> {
    let store = SnifStore::new(&app.paths);
    match cmd {
        SnifCommand::Install(a) => install(app, &store, a),
        SnifCommand::List => list(app, &store),
        SnifCommand::Inspect(a) => inspect(app, &store, &a.name),
        SnifCommand::Run(a) => run_snif(app, &store, a),
        SnifCommand::Grant(a) => grant(app, &store, a),
        SnifCommand::Remove(a) => remove(app, &store, a),
    }
}

fn mode(dry_run: bool) -> GateMode {
    if dry_run {
        GateMode::DryRun
    } else {
        GateMode::Record
    }
}

fn state_for(app: &App, dry_run: bool) -> Result<repoman_state::State, CliError> {
    if dry_run {
        app.state_read_only()
    } else {
        app.state()
    }
}

fn install(app: &App, store: &SnifStore, a: InstallArgs) -> Result<Exit, CliError> {
    let host = Host::new()?;
    let reg = app.registry()?;
    let state = state_for(app, a.dry_run)?;
    let plan = store::install(
        &host,
        store,
        &state,
        &reg.registry.policy.rules,
        &a.path,
        mode(a.dry_run),
    )?;
    if app.ui.json() {
        app.ui.print_json(&plan)?;
        return Ok(Exit::Success);
    }
    let verb = match (a.dry_run, &plan.previous) {
        (true, _) => "would install",
        (false, Some(_)) => "replaced",
        (false, None) => "installed",
    };
    app.ui.success(&format!(
        "{verb} {} {} ({}, module {})",
        plan.name,
        plan.version,
        plan.interface,
        &plan.module[..16]
    ));
    if plan.drops_grants {
        app.ui
            .warn("the module changed: its earlier grants are dropped");
    }
    let needs: Vec<&str> = plan
        .imports
        .iter()
        .filter_map(|i| i.capability)
        .filter(|c| *c != repoman_snif::Capability::Stdio)
        .map(|c| c.as_str())
        .collect();
    if !needs.is_empty() {
        app.ui.hint(&format!(
            "it imports functions needing {}; grant them with `repoman snif grant {}`",
            needs.join(", "),
            plan.name
        ));
    }
    Ok(Exit::Success)
}

fn grant(app: &App, store: &SnifStore, a: GrantArgs) -> Result<Exit, CliError> {
    let env = a
        .env
        .iter()
        .map(|kv| {
            kv.split_once('=')
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .ok_or_else(|| CliError::usage(format!("--env {kv:?} must be NAME=VALUE")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let req = GrantRequest {
        dir: a.dir,
        clock: a.clock,
        random: a.random,
        env,
        revoke: a.revoke,
    };
    if !req.revoke && req.dir.is_none() && !req.clock && !req.random && req.env.is_empty() {
        return Err(CliError::usage("nothing to grant").with_hint(
            "name a capability: --dir DIR, --clock, --random, --env NAME=VALUE (or --revoke)",
        ));
    }
    let reg = app.registry()?;
    let state = state_for(app, a.dry_run)?;
    let grants = store::grant(
        store,
        &state,
        &reg.registry.policy.rules,
        &a.name,
        &req,
        mode(a.dry_run),
    )?;
    let env_names: Vec<&str> = grants.env.iter().map(|(k, _)| k.as_str()).collect();
    if app.ui.json() {
        app.ui.print_json(&json!({
            "name": a.name,
            "dry_run": a.dry_run,
            "grants": {
                "filesystem": grants.filesystem,
                "clock": grants.clock,
                "random": grants.random,
                "env": env_names,
            }
        }))?;
        return Ok(Exit::Success);
    }
    app.ui.success(&format!(
        "{} {}: filesystem {}, clock {}, random {}, env [{}]",
        if a.dry_run { "would grant" } else { "granted" },
        a.name,
        grants
            .filesystem
            .as_ref()
            .map_or("none".to_owned(), |p| format!(
                "{} (read-only)",
                p.display()
            )),
        grants.clock,
        grants.random,
        env_names.join(", ")
    ));
    Ok(Exit::Success)
}

fn remove(app: &App, store: &SnifStore, a: RemoveArgs) -> Result<Exit, CliError> {
    let reg = app.registry()?;
    let state = state_for(app, a.dry_run)?;
    let removed = store::remove(
        store,
        &state,
        &reg.registry.policy.rules,
        &a.name,
        mode(a.dry_run),
    )?;
    if app.ui.json() {
        app.ui.print_json(&json!({
            "name": removed.name,
            "module": removed.module,
            "dry_run": a.dry_run,
        }))?;
        return Ok(Exit::Success);
    }
    app.ui.success(&format!(
        "{} {} {}",
        if a.dry_run { "would remove" } else { "removed" },
        removed.name,
        removed.manifest.version
    ));
    Ok(Exit::Success)
}
