//! `repoman config show|migrate`: the effective settings and where each came from, and registry
//! schema upgrades.

use clap::{Args, Subcommand};
use repoman_core::env::ENV_VARS;
use repoman_core::registry::{RegistryFile, SCHEMA_VERSION};
use repoman_core::settings::{Source, Sourced};
use serde_json::json;

use crate::app::App;
use crate::error::{CliError, Exit};

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Show the effective settings, the file they come from, and the environment variables read.
    ///
    /// Precedence: built-in defaults < repoman.toml < environment < flags. LOCAL_REPOS and
    /// NFS_REPOS are fallbacks used only when repoman.toml does not set the value.
    Show(ShowArgs),
    /// Upgrade repoman.toml to the current schema_version, keeping comments and order.
    Migrate(MigrateArgs),
}

#[derive(Debug, Args)]
pub struct ShowArgs {}

#[derive(Debug, Args)]
pub struct MigrateArgs {
    /// Show what would change without writing.
    #[arg(long)]
    pub dry_run: bool,
}

pub fn run(app: &App, cmd: ConfigCommand) -> Result<Exit, CliError> {
    match cmd {
        ConfigCommand::Show(_) => show(app),
        ConfigCommand::Migrate(a) => migrate(app, a),
    }
}

fn show(app: &App) -> Result<Exit, CliError> {
    let reg = app.registry()?;
    let s = app.settings()?;
    if app.ui.json() {
        let env: serde_json::Map<String, serde_json::Value> = ENV_VARS
            .iter()
            .filter_map(|v| {
                app.env
                    .get_os(v.name)
                    .map(|val| (v.name.to_owned(), json!(val.to_string_lossy())))
            })
            .collect();
        app.ui.print_json(&json!({
            "config_file": app.paths.config_file,
            "config_file_exists": reg.exists(),
            "schema_version": reg.registry.schema_version,
            "estate_id": reg.registry.estate_id,
            "paths": {
                "config_dir": app.paths.config_dir,
                "state_dir": app.paths.state_dir,
                "cache_dir": app.paths.cache_dir,
                "runtime_dir": app.paths.runtime_dir,
            },
            "settings": s,
            "projects": reg.registry.projects.len(),
            "environment": env,
        }))?;
        return Ok(Exit::Success);
    }
    let mut rows: Vec<(String, String, Source)> = Vec::new();
    let opt = |name: &str,
               v: &Option<Sourced<std::path::PathBuf>>,
               rows: &mut Vec<(String, String, Source)>| match v {
        Some(v) => rows.push((name.into(), v.value.display().to_string(), v.source.clone())),
        None => rows.push((name.into(), "(not set)".into(), Source::BuiltIn)),
    };
    opt("local_repos", &s.local_repos, &mut rows);
    opt("backup_root", &s.backup_root, &mut rows);
    let mut push = |n: &str, v: String, src: &Source| rows.push((n.into(), v, src.clone()));
    push(
        "incus_project",
        s.incus_project.value.clone(),
        &s.incus_project.source,
    );
    push("pool", s.pool.value.clone(), &s.pool.source);
    match &s.network {
        Some(n) => push("network", n.value.clone(), &n.source),
        None => push("network", "(none)".into(), &Source::BuiltIn),
    }
    match &s.default_image {
        Some(i) => push("default_image", i.value.clone(), &i.source),
        None => push("default_image", "(not set)".into(), &Source::BuiltIn),
    }
    push("profiles", s.profiles.value.join(", "), &s.profiles.source);
    push(
        "mount_path",
        s.mount_path.value.clone(),
        &s.mount_path.source,
    );
    push(
        "max_delete",
        s.max_delete.value.to_string(),
        &s.max_delete.source,
    );
    push(
        "max_delete_percent",
        s.max_delete_percent.value.to_string(),
        &s.max_delete_percent.source,
    );
    push(
        "backup_exclude",
        s.backup_exclude.value.join(", "),
        &s.backup_exclude.source,
    );
    push(
        "probe_timeout",
        format!("{}s", s.probe_timeout.value.as_secs_f64()),
        &s.probe_timeout.source,
    );
    push("profile", s.profile.value.clone(), &s.profile.source);

    let exists = if reg.exists() {
        ""
    } else {
        " (does not exist yet)"
    };
    app.ui.data(&format!(
        "config file: {}{exists}",
        app.paths.config_file.display()
    ))?;
    app.ui
        .data(&format!("state dir:   {}", app.paths.state_dir.display()))?;
    app.ui
        .data(&format!("cache dir:   {}", app.paths.cache_dir.display()))?;
    app.ui
        .data(&format!("runtime dir: {}", app.paths.runtime_dir.display()))?;
    app.ui.data("")?;
    let width = rows.iter().map(|r| r.0.len()).max().unwrap_or(0);
    for (k, v, src) in rows {
        app.ui.data(&format!("{k:width$}  {v}  [{src}]"))?;
    }
    Ok(Exit::Success)
}

fn migrate(app: &App, args: MigrateArgs) -> Result<Exit, CliError> {
    let path = &app.paths.config_file;
    if !path.exists() {
        app.ui.info(&format!(
            "{} does not exist; nothing to migrate",
            path.display()
        ));
        return Ok(Exit::Success);
    }
    if args.dry_run {
        let mut file = RegistryFile::load(path)?;
        let changes = file.migrate();
        report(app, &changes, true)?;
        return Ok(Exit::Success);
    }
    let (changes, _) = RegistryFile::edit(path, None, |f| Ok(f.migrate()))?;
    report(app, &changes, false)?;
    Ok(Exit::Success)
}

fn report(app: &App, changes: &[String], dry_run: bool) -> Result<(), CliError> {
    if app.ui.json() {
        return app.ui.print_json(&json!({
            "schema_version": SCHEMA_VERSION,
            "changes": changes,
            "dry_run": dry_run,
        }));
    }
    if changes.is_empty() {
        app.ui.success(&format!(
            "registry is already at schema_version {SCHEMA_VERSION}; nothing to do"
        ));
    } else {
        for c in changes {
            app.ui.data(c)?;
        }
        if dry_run {
            app.ui.info("dry run: nothing written");
        } else {
            app.ui
                .success(&format!("migrated to schema_version {SCHEMA_VERSION}"));
        }
    }
    Ok(())
}
