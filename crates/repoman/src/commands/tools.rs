//! `repoman tools status|list|scan|doctor|pin|unpin`: toolchain manifests, discovered tools and
//! the drift between them (docs/tools.md).

use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{Args, Subcommand};
use repoman_core::settings::Settings;
use repoman_tools::ToolsError;
use repoman_tools::discover::{self, Inventory, Outcome, ProbeCache, ScanOptions, ScanReporter};
use repoman_tools::drift::{self, Severity, ToolState};
use repoman_tools::manifest::{self, Edit, ManifestSet};
use repoman_tools::remote::{RemoteExec, RemoteOutput, RemoteScanOptions, scan_remote};
use repoman_tools::rules::{Category, Rules};
use serde_json::json;

use crate::app::App;
use crate::error::{CliError, Exit};

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

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// A registered project (default: the current directory).
    pub project: Option<String>,
    /// Every registered project.
    #[arg(long, conflicts_with = "project")]
    pub all: bool,
    #[command(flatten)]
    pub probe: ProbeArgs,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// Only tools of this category (runtime, compiler, package-manager, prover, solver,
    /// build-tool, editor).
    #[arg(long, value_name = "C")]
    pub category: Option<String>,
    /// Only ghosts: installed tools no registered project (nor a global manifest) declares.
    #[arg(long)]
    pub ghosts: bool,
    #[command(flatten)]
    pub probe: ProbeArgs,
}

#[derive(Debug, Args)]
pub struct ScanArgs {
    /// Ignore cached probe results and probe every tool again.
    #[arg(long)]
    pub refresh: bool,
    /// Scan inside this project's sandbox container (through Incus exec) and compare with what
    /// the project's manifests declare. Nothing is cached or recorded for sandbox scans.
    #[arg(long, value_name = "NAME", conflicts_with = "refresh")]
    pub sandbox: Option<String>,
    #[command(flatten)]
    pub probe: ProbeArgs,
}

#[derive(Debug, Args)]
pub struct DoctorArgs {
    #[command(flatten)]
    pub probe: ProbeArgs,
}

#[derive(Debug, Args)]
pub struct Target {
    /// Edit the manifests of this registered project (default: the current directory).
    #[arg(long, conflicts_with = "global")]
    pub project: Option<String>,
    /// Edit the global manifest (~/.tool-versions, else ~/.config/mise/config.toml).
    #[arg(long)]
    pub global: bool,
    /// Edit exactly this file (`.tool-versions` or a mise `*.toml`).
    #[arg(long, value_name = "F")]
    pub file: Option<PathBuf>,
    /// Print the unified diff instead of writing.
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Debug, Args)]
pub struct PinArgs {
    /// The tool, as the manifest names it (e.g. `nodejs`, `node`, `npm:prettier`).
    pub tool: String,
    /// The version, or several (fallbacks in order).
    #[arg(required = true)]
    pub versions: Vec<String>,
    #[command(flatten)]
    pub target: Target,
}

#[derive(Debug, Args)]
pub struct UnpinArgs {
    /// The tool, as the manifest names it.
    pub tool: String,
    #[command(flatten)]
    pub target: Target,
}

pub fn run(app: &App, cmd: ToolsCommand) -> Result<Exit, CliError> {
    match cmd {
        ToolsCommand::Status(a) => status(app, a),
        ToolsCommand::List(a) => list(app, a),
        ToolsCommand::Scan(a) => scan_cmd(app, a),
        ToolsCommand::Doctor(a) => doctor(app, a),
        ToolsCommand::Pin(a) => pin(app, a),
        ToolsCommand::Unpin(a) => unpin(app, a),
    }
}

impl From<ToolsError> for CliError {
    fn from(e: ToolsError) -> Self {
        let exit = match &e {
            ToolsError::Read { .. } | ToolsError::Fs(_) => Exit::Failure,
            ToolsError::Changed { .. } => Exit::Blocked,
            _ => Exit::Usage,
        };
        let err = CliError::from_error(exit, &e);
        match &e {
            ToolsError::Parse { .. } | ToolsError::UnknownScope { .. } => err
                .with_hint("fix the file by hand; repoman does not rewrite a file it cannot read"),
            _ => err,
        }
    }
}

/// The JSON Schema of `tool.discovered` event data.
pub(crate) fn register_schemas() {
    repoman_state::schemas::register(repoman_state::schemas::Schema::event_data(
        "tool.discovered",
        "A tool install found by `repoman tools scan`",
        json!({
            "type": "object",
            "required": ["path", "version", "category", "ghost", "origin"],
            "properties": {
                "path": {"type": "string"},
                "version": {"type": ["string", "null"]},
                "category": {"type": "string"},
                "ghost": {"type": "boolean"},
                "origin": {"type": "object", "required": ["kind"]}
            }
        }),
    ));
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

struct Ctx {
    settings: Settings,
    registry: repoman_core::registry::Registry,
    rules: Rules,
    globals: Vec<PathBuf>,
}

fn ctx(app: &App) -> Result<Ctx, CliError> {
    let reg = app.registry()?;
    let settings = Settings::resolve(&reg.registry, &app.env);
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

fn project_dir(c: &Ctx, name: &str) -> Result<PathBuf, CliError> {
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

fn registered_projects(c: &Ctx) -> Vec<(String, PathBuf)> {
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

fn current_dir() -> Result<PathBuf, CliError> {
    std::env::current_dir()
        .map_err(|e| CliError::failed(format!("cannot read the current directory: {e}")))
}

/// Scan with the probe cache, saving it when it changed. Never records events.
fn inventory(
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

fn save_cache(app: &App, cache: &mut ProbeCache) {
    // The cache is rebuildable: failing to save it costs time on the next run, nothing else.
    if let Err(e) = cache.save(&app.paths.cache_dir) {
        app.ui.warn(&format!("cannot save the probe cache: {e}"));
    }
}

fn status(app: &App, a: StatusArgs) -> Result<Exit, CliError> {
    let c = ctx(app)?;
    let projects: Vec<(String, PathBuf)> = if a.all {
        registered_projects(&c)
    } else if let Some(name) = &a.project {
        vec![(name.clone(), project_dir(&c, name)?)]
    } else {
        let cwd = current_dir()?;
        let name = registered_projects(&c)
            .into_iter()
            .find(|(_, d)| *d == cwd)
            .map(|(n, _)| n)
            .unwrap_or_else(|| cwd.display().to_string());
        vec![(name, cwd)]
    };
    let loaded = drift::load_projects(&projects, &c.globals);
    let (inv, mut cache) = inventory(app, &c, &a.probe, false)?;
    save_cache(app, &mut cache);
    let mut bad = false;
    let mut out = Vec::new();
    for p in &loaded {
        let rows = drift::status(p, &inv, &c.rules);
        bad |= rows
            .iter()
            .any(|r| matches!(r.state, ToolState::Missing | ToolState::Mismatch { .. }));
        bad |= !p.manifests.problems.is_empty();
        out.push((p, rows));
    }
    if app.ui.json() {
        let projects: Vec<_> = out
            .iter()
            .map(|(p, rows)| {
                json!({
                    "project": p.project,
                    "dir": p.dir,
                    "manifests": p.manifests.manifests.iter().map(|m| &m.path).collect::<Vec<_>>(),
                    "problems": p.manifests.problems,
                    "tools": rows,
                })
            })
            .collect();
        app.ui.print_json(&json!({ "projects": projects }))?;
    } else {
        let mut table = comfy_table::Table::new();
        table.load_preset(comfy_table::presets::NOTHING);
        table.set_header(["PROJECT", "TOOL", "WANTS", "STATE", "FOUND", "DECLARED IN"]);
        let mut any = false;
        for (p, rows) in &out {
            for prob in &p.manifests.problems {
                app.ui.warn(&prob.message);
            }
            for r in rows {
                any = true;
                let found = found_cell(&r.state);
                table.add_row([
                    p.project.clone(),
                    r.tool.clone(),
                    r.versions.join(" "),
                    r.state_name().to_owned(),
                    found,
                    format!("{}:{}", r.file.display(), r.line),
                ]);
            }
        }
        if any {
            for line in table.lines() {
                app.ui.data(line.trim_end())?;
            }
        } else {
            app.ui
                .info("no tools declared (no .tool-versions, mise.toml or version files found)");
        }
    }
    Ok(if bad { Exit::Failure } else { Exit::Success })
}

fn declared(c: &Ctx) -> std::collections::BTreeSet<String> {
    let projects = drift::load_projects(&registered_projects(c), &c.globals);
    let globals = ManifestSet::load_files(&c.globals, manifest::Scope::Global);
    drift::declared_ids(&projects, &globals, &c.rules)
}

fn list(app: &App, a: ListArgs) -> Result<Exit, CliError> {
    let c = ctx(app)?;
    let category = match &a.category {
        Some(s) => Some(Category::parse(s).ok_or_else(|| {
            CliError::usage(format!("unknown category `{s}`")).with_hint(
                "use runtime, compiler, package-manager, prover, solver, build-tool or editor",
            )
        })?),
        None => None,
    };
    let (inv, mut cache) = inventory(app, &c, &a.probe, false)?;
    save_cache(app, &mut cache);
    let declared = declared(&c);
    let rows: Vec<_> = inv
        .installs
        .iter()
        .filter(|i| category.is_none_or(|c| i.category == c))
        .map(|i| (i, !declared.contains(&i.id)))
        .filter(|(_, ghost)| !a.ghosts || *ghost)
        .collect();
    if app.ui.json() {
        let installs: Vec<_> = rows
            .iter()
            .map(|(i, ghost)| {
                let mut v = serde_json::to_value(i).unwrap_or_default();
                v["ghost"] = json!(ghost);
                v
            })
            .collect();
        let show_rest = category.is_none() && !a.ghosts;
        app.ui.print_json(&json!({
            "installs": installs,
            "shims": if show_rest { json!(inv.shims) } else { json!([]) },
            "unidentified": if show_rest { json!(inv.unidentified) } else { json!([]) },
            "stats": inv.stats,
        }))?;
        return Ok(Exit::Success);
    }
    let mut table = comfy_table::Table::new();
    table.load_preset(comfy_table::presets::NOTHING);
    table.set_header(["TOOL", "CATEGORY", "VERSION", "PATH", "GHOST"]);
    for (i, ghost) in &rows {
        let version = match &i.outcome {
            Outcome::Ok => i.version.clone().unwrap_or_default(),
            Outcome::TimedOut { .. } => "(timed out)".into(),
            _ => "(probe failed)".into(),
        };
        table.add_row([
            i.id.clone(),
            i.category.as_str().to_owned(),
            version,
            i.path.display().to_string(),
            if *ghost {
                "ghost".into()
            } else {
                String::new()
            },
        ]);
    }
    for line in table.lines() {
        app.ui.data(line.trim_end())?;
    }
    if category.is_none() && !a.ghosts {
        for s in &inv.shims {
            let to: Vec<String> = s
                .resolves_to
                .iter()
                .map(|p| p.display().to_string())
                .collect();
            app.ui.data(&format!(
                "shim  {} ({:?}, not run) -> {}",
                s.path.display(),
                s.kind,
                if to.is_empty() {
                    "no install found".into()
                } else {
                    to.join(", ")
                }
            ))?;
        }
        for u in &inv.unidentified {
            app.ui
                .data(&format!("unidentified  {}", u.path.display()))?;
        }
    }
    Ok(Exit::Success)
}

fn scan_cmd(app: &App, a: ScanArgs) -> Result<Exit, CliError> {
    let c = ctx(app)?;
    if let Some(name) = &a.sandbox {
        return scan_sandbox(app, &c, name, &a.probe);
    }
    let (inv, mut cache) = inventory(app, &c, &a.probe, a.refresh)?;
    let declared = declared(&c);
    let events = drift::discovered_events(&inv, &declared, &mut cache);
    if !events.is_empty() {
        let state = app.state()?;
        state.append_batch(
            events
                .iter()
                .map(|e| {
                    repoman_state::NewEvent::new(e.type_.clone(), e.object.clone(), e.data.clone())
                })
                .collect(),
        )?;
    }
    // Only after the events are in the log, so a failed append reports them again next time.
    save_cache(app, &mut cache);
    let ghosts = inv
        .installs
        .iter()
        .filter(|i| !declared.contains(&i.id))
        .count();
    if app.ui.json() {
        app.ui.print_json(&json!({
            "stats": inv.stats,
            "installs": inv.installs.len(),
            "ghosts": ghosts,
            "shims": inv.shims.len(),
            "unidentified": inv.unidentified.len(),
            "problems": inv.problems,
            "events": events.len(),
        }))?;
    } else {
        let s = &inv.stats;
        app.ui.data(&format!(
            "{} tools found ({} ghosts), {} shims, {} unidentified; {} probed, {} cached, {} timed out, {} failed in {} ms",
            inv.installs.len(),
            ghosts,
            inv.shims.len(),
            inv.unidentified.len(),
            s.probed,
            s.cached,
            s.timed_out,
            s.failed,
            s.elapsed_ms
        ))?;
        for p in &inv.problems {
            app.ui
                .warn(&format!("cannot read {}: {}", p.path.display(), p.message));
        }
    }
    Ok(Exit::Success)
}

fn doctor(app: &App, a: DoctorArgs) -> Result<Exit, CliError> {
    let c = ctx(app)?;
    let (inv, mut cache) = inventory(app, &c, &a.probe, false)?;
    save_cache(app, &mut cache);
    let findings = drift::doctor(&inv);
    let warn = findings.iter().any(|f| f.severity == Severity::Warning);
    if app.ui.json() {
        app.ui.print_json(&json!({ "findings": findings }))?;
    } else if findings.is_empty() {
        app.ui.success("no problems found");
    } else {
        for f in &findings {
            let tag = if f.severity == Severity::Warning {
                "warning"
            } else {
                "info"
            };
            app.ui.data(&format!("{tag}[{}]: {}", f.kind, f.message))?;
        }
    }
    Ok(if warn { Exit::Failure } else { Exit::Success })
}

/// The directory whose manifests `pin`/`unpin` edit; `None` for `--global`.
fn target_dir(c: &Ctx, t: &Target) -> Result<Option<PathBuf>, CliError> {
    match (&t.project, t.global) {
        (Some(p), _) => Ok(Some(project_dir(c, p)?)),
        (None, true) => Ok(None),
        (None, false) => Ok(Some(current_dir()?)),
    }
}

fn home(app: &App) -> Result<PathBuf, CliError> {
    app.paths
        .home
        .clone()
        .ok_or_else(|| CliError::usage("HOME is not set; --global needs it"))
}

/// Policy for manifest edits: operation `tools.pin` / `tools.unpin` on `file:PROJECT/PATH` (or
/// `file:/abs/path` outside a project). `--dry-run` evaluates without recording; a real edit
/// records the decision. Deny or review_required stops before any file is written (exit 3).
fn gate(app: &App, c: &Ctx, edits: &[Edit], what: &str, target: &Target) -> Result<(), CliError> {
    let changed: Vec<&Edit> = edits.iter().filter(|e| e.changed()).collect();
    if changed.is_empty() {
        return Ok(());
    }
    let state = if target.dry_run {
        app.state_read_only()?
    } else {
        app.state()?
    };
    let project = match &target.project {
        Some(p) => Some((p.clone(), project_dir(c, p)?)),
        None if target.global => None,
        None => {
            let cwd = current_dir()?;
            registered_projects(c)
                .into_iter()
                .find(|(_, d)| cwd.starts_with(d))
        }
    };
    let op_name = if what == "pinned" {
        "tools.pin"
    } else {
        "tools.unpin"
    };
    for e in changed {
        let object = match &project {
            Some((name, dir)) if e.path.starts_with(dir) => format!(
                "file:{name}/{}",
                e.path.strip_prefix(dir).unwrap_or(&e.path).display()
            ),
            _ => format!("file:{}", e.path.display()),
        };
        let op = repoman_state::Operation {
            name: op_name.to_owned(),
            object,
            project: project.as_ref().map(|(n, _)| n.clone()),
        };
        let (effect, reasons) = if target.dry_run {
            repoman_state::policy::evaluate(
                &op,
                Vec::new(),
                &c.registry.policy.rules,
                state.identity(),
            )
        } else {
            let d = state.decide(&op, Vec::new(), &c.registry.policy.rules)?;
            (d.effect, d.reasons)
        };
        if effect.blocks() {
            let why: Vec<String> = reasons
                .iter()
                .filter(|v| v.effect.blocks())
                .map(|v| format!("{} ({}: {})", v.reason, v.rule, v.effect.as_str()))
                .collect();
            let err = CliError::new(
                Exit::Blocked,
                format!(
                    "{op_name} on {} is blocked by policy: {}",
                    op.object,
                    why.join("; ")
                ),
            );
            return Err(match reasons.iter().find_map(|v| v.unblock.clone()) {
                Some(u) => err.with_hint(u),
                None => {
                    err.with_hint("a human can change the [[policy.rule]] entries in repoman.toml")
                }
            });
        }
    }
    Ok(())
}

fn finish_edits(
    app: &App,
    edits: &[Edit],
    dry_run: bool,
    what: &str,
    tool: &str,
) -> Result<Exit, CliError> {
    if dry_run {
        if app.ui.json() {
            let v: Vec<_> = edits
                .iter()
                .map(|e| json!({"file": e.path, "changed": e.changed(), "create": e.create && e.changed(), "diff": e.diff()}))
                .collect();
            app.ui.print_json(&json!({ "dry_run": true, "edits": v }))?;
        } else {
            for e in edits {
                let d = e.diff();
                if d.is_empty() {
                    app.ui.info(&format!("{}: unchanged", e.path.display()));
                } else {
                    // Byte-faithful: a CRLF file shows CRLF lines.
                    app.ui.data(d.strip_suffix('\n').unwrap_or(&d))?;
                }
            }
        }
        return Ok(Exit::Success);
    }
    let mut written = Vec::new();
    for e in edits {
        if e.apply()? {
            written.push(e);
        }
    }
    if !written.is_empty() {
        let state = app.state()?;
        state.append_batch(
            written
                .iter()
                .map(|e| {
                    repoman_state::NewEvent::new(
                        format!("tool.{what}"),
                        format!("tool:{tool}"),
                        json!({ "file": e.path, "created": e.create }),
                    )
                })
                .collect(),
        )?;
    }
    if app.ui.json() {
        let v: Vec<_> = edits
            .iter()
            .map(|e| json!({"file": e.path, "changed": e.changed()}))
            .collect();
        app.ui
            .print_json(&json!({ "dry_run": false, "edits": v }))?;
    } else if written.is_empty() {
        app.ui.info("nothing to change; no file was written");
    } else {
        for e in &written {
            app.ui
                .success(&format!("{what} {tool} in {}", e.path.display()));
        }
    }
    Ok(Exit::Success)
}

fn pin(app: &App, a: PinArgs) -> Result<Exit, CliError> {
    let c = ctx(app)?;
    let file = match (&a.target.file, target_dir(&c, &a.target)?) {
        (Some(f), _) => f.clone(),
        (None, Some(dir)) => manifest::pin_target(&dir, &a.tool)?,
        (None, None) => {
            manifest::global_target(&home(app)?, app.env.get_path("XDG_CONFIG_HOME").as_deref())
        }
    };
    let edit = manifest::plan_pin(&file, &a.tool, &a.versions)?;
    let edits = [edit];
    gate(app, &c, &edits, "pinned", &a.target)?;
    finish_edits(app, &edits, a.target.dry_run, "pinned", &a.tool)
}

fn unpin(app: &App, a: UnpinArgs) -> Result<Exit, CliError> {
    let c = ctx(app)?;
    let files = match (&a.target.file, target_dir(&c, &a.target)?) {
        (Some(f), _) => vec![f.clone()],
        (None, Some(dir)) => manifest::unpin_targets(&dir, &a.tool)?,
        (None, None) => {
            let h = home(app)?;
            manifest::global_candidates(Some(&h), app.env.get_path("XDG_CONFIG_HOME").as_deref())
                .into_iter()
                .filter(|p| p.is_file())
                .collect()
        }
    };
    let edits = files
        .iter()
        .map(|f| manifest::plan_unpin(f, &a.tool))
        .collect::<Result<Vec<_>, _>>()?;
    if !edits.iter().any(Edit::changed) && !a.target.dry_run {
        app.ui.info(&format!(
            "`{}` is not declared in {}",
            a.tool,
            if files.is_empty() {
                "any manifest here".to_owned()
            } else {
                files
                    .iter()
                    .map(|f| f.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            }
        ));
    }
    gate(app, &c, &edits, "unpinned", &a.target)?;
    finish_edits(app, &edits, a.target.dry_run, "unpinned", &a.tool)
}

/// Incus exec as the remote channel of a sandbox scan.
struct IncusExec {
    scope: repoman_incus::ProjectScope,
    instance: String,
    wait: Duration,
}

impl RemoteExec for IncusExec {
    fn exec(&self, argv: &[String]) -> Result<RemoteOutput, String> {
        let spec = repoman_incus::ExecSpec::new(argv.iter().cloned()).timeout(self.wait);
        let out = self
            .scope
            .exec(&self.instance, &spec)
            .map_err(|e| e.to_string())?;
        Ok(RemoteOutput {
            code: out.exit_code,
            stdout: out.stdout,
            stderr: out.stderr,
        })
    }
}

fn scan_sandbox(app: &App, c: &Ctx, name: &str, probe: &ProbeArgs) -> Result<Exit, CliError> {
    let dir = project_dir(c, name)?;
    if !(probe.timeout > 0.0 && probe.timeout.is_finite()) {
        return Err(CliError::usage(
            "--timeout must be a positive number of seconds",
        ));
    }
    let incus = repoman_incus::Incus::connect(&app.env).map_err(|e| {
        CliError::from_error(Exit::Unavailable, &e)
            .with_hint("is Incus running? `scripts/incus-lab` sets it up")
    })?;
    let opts = RemoteScanOptions {
        timeout: Duration::from_secs_f64(probe.timeout),
        parallelism: probe.jobs.clamp(1, 16),
        ..Default::default()
    };
    let exec = IncusExec {
        scope: incus.project(c.registry.incus_project()),
        instance: name.to_owned(),
        // The tool is killed inside the container at --timeout; the exec call itself gets slack.
        wait: opts.timeout + Duration::from_secs(10),
    };
    let spinner = app.ui.progress_bar(0, "scanning sandbox", false);
    let inv = scan_remote(&exec, &opts, &c.rules);
    spinner.finish_and_clear();
    let inv = inv.map_err(|e| {
        CliError::new(
            Exit::Unavailable,
            format!("cannot scan sandbox `{name}`: {e}"),
        )
        .with_hint(format!(
            "`repoman start {name}` starts it; `repoman list` shows its state"
        ))
    })?;
    let loaded = drift::load_projects(&[(name.to_owned(), dir)], &c.globals);
    let rows = drift::status(&loaded[0], &inv, &c.rules);
    let bad = rows
        .iter()
        .any(|r| matches!(r.state, ToolState::Missing | ToolState::Mismatch { .. }));
    if app.ui.json() {
        app.ui
            .print_json(&json!({ "sandbox": name, "inventory": inv, "status": rows }))?;
    } else {
        app.ui.data(&format!(
            "sandbox {name}: {} tools found, {} shims, {} unidentified; {} timed out, {} failed in {} ms",
            inv.installs.len(),
            inv.shims.len(),
            inv.unidentified.len(),
            inv.stats.timed_out,
            inv.stats.failed,
            inv.stats.elapsed_ms
        ))?;
        let mut table = comfy_table::Table::new();
        table.load_preset(comfy_table::presets::NOTHING);
        table.set_header(["TOOL", "WANTS", "IN SANDBOX", "FOUND"]);
        for r in &rows {
            let found = found_cell(&r.state);
            table.add_row([
                r.tool.clone(),
                r.versions.join(" "),
                r.state_name().to_owned(),
                found,
            ]);
        }
        for line in table.lines() {
            app.ui.data(line.trim_end())?;
        }
    }
    Ok(if bad { Exit::Failure } else { Exit::Success })
}

/// The FOUND column of `tools status`: which install satisfies a declaration, or what exists.
fn found_cell(state: &ToolState) -> String {
    match state {
        ToolState::Satisfied { by, version, .. } => {
            format!("{} {}", version.as_deref().unwrap_or("?"), by.display())
        }
        ToolState::Mismatch { installed } => installed
            .iter()
            .map(|i| i.version.clone().unwrap_or_else(|| "?".into()))
            .collect::<Vec<_>>()
            .join(", "),
        ToolState::Missing => "-".into(),
        ToolState::Unknown => "(no discovery rule)".into(),
    }
}
