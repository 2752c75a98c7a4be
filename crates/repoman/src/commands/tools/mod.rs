//! `repoman tools status|list|scan|doctor|pin|unpin`: toolchain manifests, discovered tools and
//! the drift between them (docs/tools.md).

mod doctor;
mod list;
mod pin;
mod scan;
mod status;

use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{Args, Subcommand};
use repoman_core::ErrorKind;
use repoman_core::settings::Settings;
use repoman_tools::ToolsError;
use repoman_tools::discover::{self, Inventory, ProbeCache, ScanOptions, ScanReporter};
use repoman_tools::drift;
use repoman_tools::manifest::{self, ManifestSet};
use repoman_tools::rules::Rules;

use crate::app::App;
use crate::error::{CliError, Exit};

pub use doctor::DoctorArgs;
pub use list::ListArgs;
pub use pin::{PinArgs, UnpinArgs};
pub use scan::ScanArgs;
pub use status::StatusArgs;

#[derive(Debug, Subcommand)]
pub enum ToolsCommand {
    /// For each declared tool: satisfied (by which install), missing, or version mismatch.
    ///
    /// Without PROJECT or --all, the manifests that apply to the current directory are checked.
    /// Exits 1 when a declared tool is missing or mismatched.
    Status(StatusArgs),
    /// List discovered tools (identified installs, shims, unidentified executables).
    List(ListArgs),
    /// Scan PATH and the tools directories, probe versions (cached), record `tool.discovered`.
    Scan(ScanArgs),
    /// Find PATH shadowing, duplicate installs, shims ahead of real installs, unreadable dirs.
    Doctor(DoctorArgs),
    /// Pin a tool's version(s) in a manifest, changing only the version token(s).
    ///
    /// Several versions are fallbacks (asdf semantics). Without --file, edits the project file
    /// that declares the tool, else its first committed manifest, else creates `.tool-versions`.
    Pin(PinArgs),
    /// Remove a tool from a manifest (only its line or key).
    Unpin(UnpinArgs),
}

#[derive(Debug, Args)]
pub struct ProbeArgs {
    /// Seconds a version probe may take before it is killed.
    #[arg(long, value_name = "SECS", default_value_t = 3.0)]
    pub timeout: f64,
    /// Number of probes run at once (1 = sequential).
    #[arg(long, value_name = "N", default_value_t = discover::DEFAULT_PARALLELISM, value_parser = crate::cli::parse_jobs)]
    pub jobs: usize,
}

pub fn run(app: &App, cmd: ToolsCommand) -> Result<Exit, CliError> {
    match cmd {
        ToolsCommand::Status(a) => status::status(app, a),
        ToolsCommand::List(a) => list::list(app, a),
        ToolsCommand::Scan(a) => scan::scan_cmd(app, a),
        ToolsCommand::Doctor(a) => doctor::doctor(app, a),
        ToolsCommand::Pin(a) => pin::pin(app, a),
        ToolsCommand::Unpin(a) => pin::unpin(app, a),
    }
}

impl From<ToolsError> for CliError {
    fn from(e: ToolsError) -> Self {
        let kind = match &e {
            ToolsError::Read { .. } | ToolsError::Fs(_) => ErrorKind::Failed,
            ToolsError::Changed { .. } => ErrorKind::Blocked,
            _ => ErrorKind::Usage,
        };
        let hint = match &e {
            ToolsError::Parse { .. } | ToolsError::UnknownScope { .. } => Some(
                "fix the file by hand; repoman does not rewrite a file it cannot read".to_owned(),
            ),
            _ => None,
        };
        CliError::of_kind(kind, &e, hint)
    }
}

/// Progress for the probes.
struct Bar(indicatif::ProgressBar);

impl ScanReporter for Bar {
    fn probing(&self, total: usize) {
        self.0.set_length(total as u64);
    }
    fn probed(&self, _path: &Path) {
        self.0.inc(1);
    }
}

pub(super) struct Ctx {
    pub(super) settings: Settings,
    pub(super) registry: repoman_core::registry::Registry,
    pub(super) rules: Rules,
    pub(super) globals: Vec<PathBuf>,
}

pub(super) fn ctx(app: &App) -> Result<Ctx, CliError> {
    let reg = app.registry()?;
    let settings = app.settings()?;
    let rules = Rules::load(&app.paths.config_dir)?;
    let globals = manifest::global_candidates(
        app.paths.home.as_deref(),
        app.env.get_path("XDG_CONFIG_HOME").as_deref(),
    );
    Ok(Ctx {
        settings,
        registry: reg.registry,
        rules,
        globals,
    })
}

pub(super) fn project_dir(c: &Ctx, name: &str) -> Result<PathBuf, CliError> {
    let p = c.registry.project(name).ok_or_else(|| {
        CliError::usage(format!("project `{name}` is not registered"))
            .with_hint("`repoman list` shows the registered projects")
    })?;
    let local = c.settings.local_repos.as_ref().ok_or_else(|| {
        CliError::usage("local_repos is not set")
            .with_hint("run `repoman setup --local-repos DIR`, or set LOCAL_REPOS")
    })?;
    Ok(local.value.join(p.repo.as_str()))
}

pub(super) fn registered_projects(c: &Ctx) -> Vec<(String, PathBuf)> {
    let Some(local) = &c.settings.local_repos else {
        return Vec::new();
    };
    c.registry
        .projects
        .iter()
        .map(|p| {
            (
                p.name.as_str().to_owned(),
                local.value.join(p.repo.as_str()),
            )
        })
        .collect()
}

pub(super) fn current_dir() -> Result<PathBuf, CliError> {
    crate::app::current_dir()
}

/// Scan with the probe cache, saving it when it changed. Never records events.
pub(super) fn inventory(
    app: &App,
    c: &Ctx,
    probe: &ProbeArgs,
    refresh: bool,
) -> Result<(Inventory, ProbeCache), CliError> {
    let mut opts = ScanOptions::new(
        &app.env,
        app.paths.home.as_deref(),
        c.registry.defaults.tools_dirs.as_deref(),
    );
    if !(probe.timeout > 0.0 && probe.timeout.is_finite()) {
        return Err(CliError::usage(
            "--timeout must be a positive number of seconds",
        ));
    }
    opts.timeout = Duration::from_secs_f64(probe.timeout);
    opts.parallelism = probe.jobs.max(1);
    opts.refresh = refresh;
    let mut cache = ProbeCache::load(&app.paths.cache_dir);
    let bar = Bar(app.ui.progress_bar(0, "probing tools", false));
    let inv = discover::scan(&opts, &c.rules, &mut cache, &bar);
    bar.0.finish_and_clear();
    app.check_cancelled()?;
    Ok((inv, cache))
}

pub(super) fn save_cache(app: &App, cache: &mut ProbeCache) {
    // The cache is rebuildable: failing to save it costs time on the next run, nothing else.
    if let Err(e) = cache.save(&app.paths.cache_dir) {
        app.ui.warn(&format!("cannot save the probe cache: {e}"));
    }
}

pub(super) fn declared(c: &Ctx) -> std::collections::BTreeSet<String> {
    let projects = drift::load_projects(&registered_projects(c), &c.globals);
    let globals = ManifestSet::load_files(&c.globals, manifest::Scope::Global);
    drift::declared_ids(&projects, &globals, &c.rules)
}
