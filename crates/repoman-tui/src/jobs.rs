//! Work started from the TUI, on a background thread, reporting through the domain
//! [`Progress`] trait into channel messages ([`JobMsg`]) that the event loop folds into the
//! [`App`] ([`apply`]).
//!
//! A sync runs the same domain steps as `repoman sync` with its default flags: resolve the
//! project's paths and trusted backup excludes, [`engine::prepare`] (the mirror guards),
//! [`engine::decide`] (the policy gate, recording its decision and any `backup-diverged`
//! conflict), [`engine::execute`] (rsync, then the manifest), and [`engine::record_synced`] or
//! [`engine::record_failure`]; then one registry write of `last_sync`. A blocked project shows
//! the policy reasons and the unblock command, and does not stop the others. Cancelling sets the
//! job's own [`Cancel`] token: rsync's process group is stopped and a `sync.cancelled` event is
//! recorded, as on Ctrl-C in the CLI.

use std::sync::Mutex;
use std::sync::mpsc::Sender;
use std::thread::JoinHandle;

use repoman_backup::BackupError;
use repoman_backup::engine::{self, Settings as SyncSettings};
use repoman_backup::guards::DeleteLimits;
use repoman_backup::marker::Owner;
use repoman_backup::mount::Expected;
use repoman_core::registry::{OVERRIDES_FILE, ProjectOverrides, RegistryFile};
use repoman_core::settings::Settings;
use repoman_core::{Cancel, Progress, Unit};
use repoman_sandbox::SandboxError;
use repoman_sandbox::lifecycle::Lifecycle;
use repoman_sandbox::repair::RepairAction;
use repoman_sandbox::session::{self, Session};
use repoman_state::{State, StateOptions, TrustCheck};

use crate::app::{App, Job, Request};
use crate::{Context, Msg};

/// What a running job tells the event loop.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobMsg {
    /// A new line of the job's status for `project` (replaces the previous one).
    Line(String, String),
    /// The job ended; a summary for the message line.
    Finished(String),
}

/// A job running on its thread.
#[derive(Debug)]
pub struct Running {
    cancel: Cancel,
    handle: JoinHandle<()>,
}

impl Running {
    /// Ask the job to stop (it records what it stopped and reports `Finished`).
    pub fn cancel(&self) {
        self.cancel.cancel();
    }

    /// Stop the job and wait for it: on quit, nothing is left half-done behind the TUI.
    pub fn cancel_and_wait(self) {
        self.cancel.cancel();
        let _ = self.handle.join();
    }
}

/// Fold a job message into the state; true when the job finished.
pub fn apply(app: &mut App, m: JobMsg) -> bool {
    let Some(job) = &mut app.job else {
        return matches!(m, JobMsg::Finished(_));
    };
    match m {
        JobMsg::Line(name, text) => {
            match job.lines.iter_mut().find(|(n, _)| *n == name) {
                Some(l) => l.1 = text,
                None => job.lines.push((name, text)),
            }
            false
        }
        JobMsg::Finished(summary) => {
            job.finished = true;
            job.cancelling = false;
            app.message = Some(summary);
            true
        }
    }
}

/// Start `req` on a thread.
pub fn start(ctx: &Context, app: &mut App, req: Request, tx: Sender<Msg>) -> Running {
    let cancel = Cancel::new();
    let names = req.names();
    let title = match &req {
        Request::Sync(n) if n.len() == 1 => format!("sync {}", n[0]),
        Request::Sync(n) => format!("sync all ({} projects)", n.len()),
        Request::Verify(n) => format!("verify {}", n.join(", ")),
        Request::Start(n) => format!("start {n}"),
        Request::Stop(n) => format!("stop {n}"),
        Request::Edit {
            tool,
            versions: Some(_),
            ..
        } => format!("pin {tool}"),
        Request::Edit { tool, .. } => format!("unpin {tool}"),
        Request::Trust { project, .. } => format!("trust {project}"),
        Request::Repair { project, action } => format!("repair {project}: {action}"),
    };
    app.job = Some(Job {
        title,
        lines: names
            .iter()
            .map(|n| (n.clone(), "waiting".to_owned()))
            .collect(),
        finished: false,
        cancelling: false,
    });
    let ctx = ctx.clone();
    let c = cancel.clone();
    let handle = std::thread::spawn(move || {
        let send = |m: JobMsg| {
            let _ = tx.send(Msg::Job(m));
        };
        let (what, result) = match &req {
            Request::Sync(names) => ("sync", sync(&ctx, names, &c, &send)),
            Request::Verify(names) => ("verify", verify(&ctx, names, &c, &send)),
            Request::Start(name) => ("start", lifecycle(&ctx, name, Lifecycle::Start, &send)),
            Request::Stop(name) => ("stop", lifecycle(&ctx, name, Lifecycle::Stop, &send)),
            Request::Edit { .. } => ("edit", edit(&ctx, &req, &send)),
            Request::Trust { project, hash } => ("trust", trust(&ctx, project, hash, &send)),
            Request::Repair { project, action } => ("repair", repair(&ctx, project, action, &send)),
        };
        let summary = match result {
            Ok(s) => s,
            Err(e) => format!("{what} failed: {e}"),
        };
        send(JobMsg::Finished(summary));
    });
    Running { cancel, handle }
}

/// A missing setting as the TUI shows it: the error and its hint on one line.
fn missing(e: repoman_core::settings::MissingSetting) -> String {
    format!("{e}; {}", e.hint())
}

fn open_state(ctx: &Context) -> Result<State, String> {
    State::open_with(
        &ctx.paths,
        &ctx.env,
        ctx.clock.clone(),
        StateOptions {
            actor: ctx.actor.clone(),
            // The installed `policy-rule` SNIFs join every decision, as in the CLI.
            policy: repoman_snif::policy_extension(&ctx.paths),
            ..StateOptions::default()
        },
    )
    .map_err(|e| e.to_string())
}

/// The lines of a policy block: each blocking verdict, and what would unblock it.
pub fn block_lines(b: &repoman_state::Blocked) -> String {
    let mut reasons: Vec<String> = b
        .reasons
        .iter()
        .map(|v| {
            let mut l = v.line();
            if let Some(u) = &v.unblock {
                l.push_str(&format!("; to unblock: {u}"));
            }
            l
        })
        .collect();
    if reasons.is_empty() {
        reasons.push(b.effect.as_str().to_owned());
    }
    format!("blocked: {}", reasons.join(" | "))
}

/// `repoman start|stop NAME`: the session, the policy gate (`sandbox.start`/`sandbox.stop`),
/// the lifecycle change and its event.
fn lifecycle(
    ctx: &Context,
    name: &str,
    action: Lifecycle,
    send: &(dyn Fn(JobMsg) + Sync),
) -> Result<String, String> {
    let reg = RegistryFile::load(&ctx.paths.config_file).map_err(|e| e.to_string())?;
    let s = Session::open(reg, &ctx.env).map_err(|e| e.to_string())?;
    let t = s.target(name).map_err(|e| e.to_string())?;
    if !action.needed(&t.status) {
        let line = format!("already {}", t.status.to_lowercase());
        send(JobMsg::Line(name.to_owned(), line.clone()));
        return Ok(format!("{name}: {line}"));
    }
    let state = open_state(ctx)?;
    let rules = &s.estate.file.registry.policy.rules;
    send(JobMsg::Line(
        name.to_owned(),
        format!("{}...", action.verb()),
    ));
    let approval = match session::authorize(&state, action.operation(name), rules) {
        Ok(a) => a,
        Err(SandboxError::Blocked(b)) => {
            let line = block_lines(&b);
            send(JobMsg::Line(name.to_owned(), line.clone()));
            return Ok(format!("{name}: {line}"));
        }
        Err(e) => return Err(e.to_string()),
    };
    repoman_sandbox::lifecycle::run(&s, &t, action, false, &state, approval)
        .map_err(|e| e.to_string())?;
    let line = action.past().to_owned();
    send(JobMsg::Line(name.to_owned(), line.clone()));
    Ok(format!("{name}: {line}"))
}

/// `repoman verify NAMES` (quick): each backup copy against its last manifest, recorded as
/// `backup.verified`.
fn verify(
    ctx: &Context,
    names: &[String],
    cancel: &Cancel,
    send: &(dyn Fn(JobMsg) + Sync),
) -> Result<String, String> {
    use repoman_backup::exclude::Excludes;
    use repoman_backup::mount::MountGuard;
    use repoman_backup::verify::{self, Mode, Scope};
    let reg = RegistryFile::load(&ctx.paths.config_file).map_err(|e| e.to_string())?;
    let settings = Settings::resolve(&reg.registry, &ctx.env);
    let local = settings.require_local_repos().map_err(missing)?;
    let backup_root = settings.require_backup_root().map_err(missing)?;
    let state = open_state(ctx)?;
    let trusted = state.trusted_configs().unwrap_or_default();
    let (mut clean_n, mut bad) = (0, 0);
    for name in names {
        let line = |l: String| send(JobMsg::Line(name.clone(), l));
        let Some(entry) = reg.registry.project(name) else {
            line("not registered".into());
            bad += 1;
            continue;
        };
        let manifests = engine::manifests_dir(&ctx.paths.state_dir);
        let Some((manifest, ev)) = repoman_backup::history::last_manifest(&state, &manifests, name)
            .map_err(|e| e.to_string())?
        else {
            line("never synced; nothing to verify (s syncs it)".into());
            bad += 1;
            continue;
        };
        let guard = MountGuard::new(
            &backup_root,
            Expected::from_settings(&settings),
            settings.probe_timeout.value,
        );
        if let Err(e) = guard.check() {
            line(format!("failed: {e}"));
            bad += 1;
            continue;
        }
        let src = local.join(entry.repo.as_str());
        let excludes = excludes_of(&settings, name, &src, trusted.get(name.as_str()))
            .and_then(|x| Excludes::new(&x).map_err(|e| e.to_string()));
        let excludes = match excludes {
            Ok(x) => x,
            Err(e) => {
                line(format!("failed: {e}"));
                bad += 1;
                continue;
            }
        };
        line("verifying".into());
        let dst = backup_root.join(entry.repo.as_str());
        let report =
            match verify::verify(&dst, &manifest, &excludes, Mode::Quick, Scope::All, cancel) {
                Ok(r) => r,
                Err(e) => {
                    line(format!("failed: {e}"));
                    bad += 1;
                    continue;
                }
            };
        let clean = report.is_clean();
        let object = repoman_core::ObjectId::backup(name).to_string();
        state
            .append(repoman_state::NewEvent::new(
                "backup.verified",
                object,
                serde_json::json!({"project": name, "mode": "quick", "root": manifest.root, "synced_seq": ev.seq, "clean": clean,
                       "checked": report.checked, "missing": report.missing.len(), "changed": report.changed.len(), "extra": report.extra.len()}),
            ))
            .map_err(|e| e.to_string())?;
        line(format!(
            "{}: {} entries checked, {} missing, {} changed, {} extra",
            if clean { "ok" } else { "problems" },
            report.checked,
            report.missing.len(),
            report.changed.len(),
            report.extra.len()
        ));
        if clean {
            clean_n += 1;
        } else {
            bad += 1;
        }
    }
    Ok(format!("verify: {clean_n} ok, {bad} with problems"))
}

fn plan(req: &Request) -> Result<repoman_tools::manifest::Edit, String> {
    use repoman_tools::manifest;
    let Request::Edit {
        tool,
        file,
        versions,
        ..
    } = req
    else {
        return Err("internal: not a manifest edit".into());
    };
    let path = std::path::Path::new(file);
    match versions {
        Some(v) => manifest::plan_pin(path, tool, v),
        None => manifest::plan_unpin(path, tool),
    }
    .map_err(|e| e.to_string())
}

/// The drift of `project` and the repair `repoman status --repair` makes without asking (the
/// first, non-destructive choice: recreate a missing sandbox, adopt an orphan, reapply config).
fn drift_and_action(
    s: &Session,
    project: &str,
) -> Result<(repoman_sandbox::drift::Drift, RepairAction), String> {
    let d = s
        .drift_of(project)
        .ok_or_else(|| format!("{project} has no drift (any more)"))?;
    let a = RepairAction::choices(d).first().copied().ok_or_else(|| {
        format!(
            "{}: nothing repoman can repair automatically; see `repoman status {project}`",
            d.summary()
        )
    })?;
    Ok((d.clone(), a))
}

/// What a repair would do, for confirmation: the drift and the action.
pub fn plan_repair(ctx: &Context, project: &str) -> Result<(Request, Vec<String>), String> {
    let reg = RegistryFile::load(&ctx.paths.config_file).map_err(|e| e.to_string())?;
    let s = Session::open(reg, &ctx.env).map_err(|e| e.to_string())?;
    let (d, a) = drift_and_action(&s, project)?;
    let mut lines = vec![d.summary()];
    if let repoman_sandbox::drift::Drift::Config { changes, .. } = &d {
        lines.extend(changes.iter().map(|c| format!("  {}", c.describe())));
    }
    lines.push(format!(
        "repair: {} (`repoman status {project} --repair` does the same)",
        a.as_str()
    ));
    Ok((
        Request::Repair {
            project: project.to_owned(),
            action: a.as_str().to_owned(),
        },
        lines,
    ))
}

/// `repoman status NAME --repair`: a fresh session, the same drift and action as confirmed, the
/// policy gate (`sandbox.repair`), the repair and `sandbox.repaired`.
fn repair(
    ctx: &Context,
    project: &str,
    action: &str,
    send: &(dyn Fn(JobMsg) + Sync),
) -> Result<String, String> {
    let line = |l: String| send(JobMsg::Line(project.to_owned(), l));
    let reg = RegistryFile::load(&ctx.paths.config_file).map_err(|e| e.to_string())?;
    let s = Session::open(reg, &ctx.env).map_err(|e| e.to_string())?;
    let (d, a) = drift_and_action(&s, project)?;
    if a.as_str() != action {
        let l = format!(
            "the drift changed since it was shown ({}); nothing was done",
            d.summary()
        );
        line(l.clone());
        return Ok(l);
    }
    let state = open_state(ctx)?;
    let rules = &s.estate.file.registry.policy.rules;
    line(format!("{action}..."));
    let approval =
        match session::authorize(&state, repoman_sandbox::repair::repair_operation(&d), rules) {
            Ok(ap) => ap,
            Err(SandboxError::Blocked(b)) => {
                let l = block_lines(&b);
                line(l.clone());
                return Ok(format!("{project}: {l}"));
            }
            Err(e) => return Err(e.to_string()),
        };
    let rctx = repoman_sandbox::repair::RepairCtx {
        registry_path: &ctx.paths.config_file,
        state: &state,
        now: ctx.clock.now_rfc3339(),
        progress: std::sync::Arc::new(repoman_core::progress::NoProgress),
    };
    repoman_sandbox::repair::apply_repair(&s, &d, a, &rctx, approval).map_err(|e| e.to_string())?;
    let l = format!("{action} done");
    line(l.clone());
    Ok(format!("{project}: {l}"))
}

/// A project's `.repoman.toml` (path, text) and its check against the trusted version.
fn trust_check(
    ctx: &Context,
    project: &str,
) -> Result<(std::path::PathBuf, Option<String>, TrustCheck), String> {
    let reg = RegistryFile::load(&ctx.paths.config_file).map_err(|e| e.to_string())?;
    let settings = Settings::resolve(&reg.registry, &ctx.env);
    let entry = reg
        .registry
        .project(project)
        .ok_or_else(|| format!("project `{project}` is not registered"))?;
    let dir = repoman_sandbox::desired::repo_path(&settings, entry.repo.as_str())
        .map_err(|e| e.to_string())?;
    let text = ProjectOverrides::read_raw(&dir).map_err(|e| e.to_string())?;
    let state = crate::load::open_state(ctx)?;
    let trusted = state
        .trusted_configs()
        .map_err(|e| format!("cannot read the trusted versions from the event log: {e}"))?;
    let check = TrustCheck::new(project, text.as_deref(), trusted.get(project));
    Ok((dir.join(OVERRIDES_FILE), text, check))
}

/// What `repoman trust NAME` shows: the diff from the trusted version (the whole file the first
/// time), with the request to confirm; `Ok(Err(reason))` when there is nothing to trust.
pub fn plan_trust(
    ctx: &Context,
    project: &str,
) -> Result<Result<(Request, String), String>, String> {
    let (path, text, check) = trust_check(ctx, project)?;
    if text.is_none() {
        return Ok(Err(format!(
            "{} does not exist: nothing to trust",
            path.display()
        )));
    }
    if check.status == repoman_state::TrustStatus::Trusted {
        return Ok(Err(format!("{} is trusted already", path.display())));
    }
    let req = Request::Trust {
        project: project.to_owned(),
        hash: check.current_hash.clone().unwrap_or_default(),
    };
    Ok(Ok((req, check.diff.unwrap_or_default())))
}

/// `repoman trust NAME` after the review: only a human; only the file that was shown (same hash);
/// only a file that parses; recorded as `config.trusted`.
fn trust(
    ctx: &Context,
    project: &str,
    hash: &str,
    send: &(dyn Fn(JobMsg) + Sync),
) -> Result<String, String> {
    let line = |l: String| send(JobMsg::Line(project.to_owned(), l));
    let (path, text, check) = trust_check(ctx, project)?;
    let Some(text) = text else {
        return Err(format!(
            "{} does not exist: nothing to trust",
            path.display()
        ));
    };
    if check.current_hash.as_deref() != Some(hash) {
        let l = format!(
            "{} changed since it was shown; nothing was trusted",
            path.display()
        );
        line(l.clone());
        return Ok(l);
    }
    ProjectOverrides::parse(&path, &text).map_err(|e| e.to_string())?;
    let state = open_state(ctx)?;
    if state.identity().actor_kind != repoman_state::ActorKind::Human {
        return Err(format!(
            "{} may not trust the {OVERRIDES_FILE} of `{project}`: only a human can",
            state.identity().actor
        ));
    }
    state
        .trust_config(project, &text, check.trusted_hash.as_deref())
        .map_err(|e| e.to_string())?;
    let l = format!(
        "trusted {} ({hash}); `repoman update {project}` applies it",
        path.display()
    );
    line(l.clone());
    Ok(l)
}

/// The unified diff a pin/unpin would write (empty: nothing to change), as
/// `repoman tools pin|unpin --dry-run` shows it; `req` comes back with it, to be confirmed.
pub fn plan_edit(req: Request) -> Result<(Request, String), String> {
    let diff = plan(&req)?.diff();
    let req = match req {
        Request::Edit {
            project,
            tool,
            file,
            versions,
            ..
        } => Request::Edit {
            project,
            tool,
            file,
            versions,
            diff: diff.clone(),
        },
        other => other,
    };
    Ok((req, diff))
}

/// `repoman tools pin|unpin`: re-plan, refuse unless it is the diff that was confirmed, the
/// policy gate (`tools.pin`/`tools.unpin` on `file:PROJECT/PATH`), the byte-faithful write
/// (refused if the file changed since it was read), and `tool.pinned`/`tool.unpinned`.
fn edit(ctx: &Context, req: &Request, send: &(dyn Fn(JobMsg) + Sync)) -> Result<String, String> {
    let Request::Edit {
        project,
        tool,
        file,
        versions,
        diff,
    } = req
    else {
        return Err("internal: not a manifest edit".into());
    };
    let line = |l: String| send(JobMsg::Line(project.clone(), l));
    let e = plan(req)?;
    if e.diff() != *diff {
        let l = format!("{file} changed since the diff was shown; nothing was written");
        line(l.clone());
        return Ok(l);
    }
    let (what, op_name) = if versions.is_some() {
        ("pinned", "tools.pin")
    } else {
        ("unpinned", "tools.unpin")
    };
    let reg = RegistryFile::load(&ctx.paths.config_file).map_err(|e| e.to_string())?;
    let settings = Settings::resolve(&reg.registry, &ctx.env);
    let dir = reg
        .registry
        .project(project)
        .and_then(|p| working_copy(&settings, p.repo.as_str()));
    let object = match dir.as_deref().and_then(|d| e.path.strip_prefix(d).ok()) {
        Some(rel) => repoman_core::ObjectId::file(project.as_str(), rel.display().to_string()),
        None => repoman_core::ObjectId::host_file(&e.path),
    };
    let op = repoman_state::Operation {
        name: op_name.to_owned(),
        object: object.to_string(),
        project: Some(project.clone()),
    };
    let state = open_state(ctx)?;
    match repoman_state::gate(
        &state,
        &op,
        Vec::new(),
        &reg.registry.policy.rules,
        repoman_state::GateMode::Record,
    ) {
        Ok(_) => {}
        Err(repoman_state::GateError::Blocked(b)) => {
            let l = block_lines(&b);
            line(l.clone());
            return Ok(format!("{tool}: {l}"));
        }
        Err(e) => return Err(e.to_string()),
    }
    if !e.apply().map_err(|e| e.to_string())? {
        line("nothing to change".into());
        return Ok(format!("{tool}: nothing to change"));
    }
    state
        .append(repoman_state::NewEvent::new(
            format!("tool.{what}"),
            repoman_core::ObjectId::tool(tool.as_str()),
            serde_json::json!({ "file": e.path, "created": e.create }),
        ))
        .map_err(|e| e.to_string())?;
    let l = format!("{what} {tool} in {file}");
    line(l.clone());
    Ok(l)
}

fn working_copy(settings: &Settings, repo: &str) -> Option<std::path::PathBuf> {
    settings.local_repos.as_ref().map(|l| l.value.join(repo))
}

/// The `incus exec` of `repoman shell NAME`: a login shell as the user, in the repo directory.
/// The sandbox must be running (the TUI does not start it on the way; `u` does).
pub fn shell_command(ctx: &Context, name: &str) -> Result<repoman_core::process::Cmd, String> {
    let reg = RegistryFile::load(&ctx.paths.config_file).map_err(|e| e.to_string())?;
    let s = Session::open(reg, &ctx.env).map_err(|e| e.to_string())?;
    let t = s.target(name).map_err(|e| e.to_string())?;
    if t.status != "Running" {
        return Err(format!(
            "the sandbox {name} is {}; start it first (u)",
            t.status.to_lowercase()
        ));
    }
    let shell = s.login_shell(name, t.desired.uid);
    let argv = session::incus_exec_argv(&t, true, &[shell, "-l".to_owned()]);
    Ok(repoman_core::process::Cmd::new("incus")
        // As the CLI: talk to the socket repoman resolved, never the user's default remote.
        .args(["--force-local"])
        .args(&argv)
        .env(
            "INCUS_SOCKET",
            repoman_incus::socket::resolve(&ctx.env).path,
        )
        .interactive())
}

use repoman_core::progress::human_bytes;

/// One project's progress as channel messages: `files N/M, X of Y, R/s`.
struct ChannelProgress<'a> {
    name: String,
    send: &'a (dyn Fn(JobMsg) + Sync),
    started: std::time::Instant,
    inner: Mutex<(u64, u64, String)>,
}

impl ChannelProgress<'_> {
    fn emit(&self) {
        let Ok(g) = self.inner.lock() else { return };
        let (done, total, files) = (g.0, g.1, g.2.clone());
        drop(g);
        let secs = self.started.elapsed().as_secs_f64().max(0.001);
        let rate = (done as f64 / secs) as u64;
        (self.send)(JobMsg::Line(
            self.name.clone(),
            format!(
                "files {files}, {} of {}, {}/s",
                human_bytes(done),
                human_bytes(total),
                human_bytes(rate)
            ),
        ));
    }
}

impl Progress for ChannelProgress<'_> {
    fn step(&self, message: &str) {
        (self.send)(JobMsg::Line(self.name.clone(), message.to_owned()));
    }
    fn begin(&self, _label: &str, total: Option<u64>, _unit: Unit) {
        if let Ok(mut g) = self.inner.lock() {
            g.1 = total.unwrap_or(0);
        }
        self.emit();
    }
    fn position(&self, done: u64) {
        if let Ok(mut g) = self.inner.lock() {
            g.0 = done;
        }
        self.emit();
    }
    fn detail(&self, text: &str) {
        // The transfer's detail is "N/M files".
        if let Ok(mut g) = self.inner.lock() {
            g.2 = text.trim_end_matches(" files").to_owned();
        }
        self.emit();
    }
}

/// Sync `names` one after the other; the summary line.
fn sync(
    ctx: &Context,
    names: &[String],
    cancel: &Cancel,
    send: &(dyn Fn(JobMsg) + Sync),
) -> Result<String, String> {
    let e = |e: &dyn std::fmt::Display| e.to_string();
    let reg = RegistryFile::load(&ctx.paths.config_file).map_err(|x| e(&x))?;
    let settings = Settings::resolve(&reg.registry, &ctx.env);
    let local = settings.require_local_repos().map_err(missing)?;
    let backup_root = settings.require_backup_root().map_err(missing)?;
    ctx.paths.ensure_runtime_dir().map_err(|x| e(&x))?;
    let state = open_state(ctx)?;
    let trusted = state.trusted_configs().unwrap_or_default();
    let estate_id = RegistryFile::edit(&ctx.paths.config_file, None, |f| {
        Ok(f.ensure_estate_id(|| ctx.clock.new_id().to_string()))
    })
    .map_err(|x| e(&x))?
    .0;
    let limits = DeleteLimits {
        count: settings.max_delete.value,
        percent: settings.max_delete_percent.value,
    };
    let (mut synced, mut blocked, mut failed) = (Vec::new(), 0, 0);
    for name in names {
        if cancel.is_cancelled() {
            send(JobMsg::Line(
                name.clone(),
                "cancelled before it started".into(),
            ));
            continue;
        }
        let Some(entry) = reg.registry.project(name) else {
            send(JobMsg::Line(name.clone(), "not registered".into()));
            failed += 1;
            continue;
        };
        let src = local.join(entry.repo.as_str());
        // Only the trusted version of `.repoman.toml` may exclude files from the backup.
        let excludes = match excludes_of(&settings, name, &src, trusted.get(name.as_str())) {
            Ok(x) => x,
            Err(msg) => {
                send(JobMsg::Line(name.clone(), format!("failed: {msg}")));
                failed += 1;
                continue;
            }
        };
        let mut s = SyncSettings::new(
            src,
            backup_root.clone(),
            ctx.paths.runtime_dir.join("locks"),
            engine::stat_cache_path(&ctx.paths.cache_dir, name),
            engine::manifests_dir(&ctx.paths.state_dir),
        );
        s.mount = Expected::from_settings(&settings);
        s.probe_timeout = settings.probe_timeout.value;
        s.limits = limits;
        s.excludes = excludes;
        s.search_path = ctx.env.get_os("PATH").map(|p| p.to_owned());
        let owner = Owner {
            estate_id: estate_id.clone(),
            project: name.clone(),
            repo: entry.repo.as_str().to_owned(),
            device: state.identity().device.clone(),
            profile: state.identity().profile.clone(),
        };
        send(JobMsg::Line(name.clone(), "planning".into()));
        match sync_one(&state, &reg, owner, s, cancel, send) {
            Ok(Outcome::Synced(at)) => synced.push((name.clone(), at)),
            Ok(Outcome::Blocked) => blocked += 1,
            Err(msg) => {
                send(JobMsg::Line(name.clone(), msg));
                failed += 1;
            }
        }
    }
    if !synced.is_empty() {
        RegistryFile::edit(&ctx.paths.config_file, None, |f| {
            for (name, at) in &synced {
                f.set_project_field(name, "last_sync", Some(at))?;
            }
            Ok(())
        })
        .map_err(|x| e(&x))?;
    }
    let mut summary = format!("sync: {} synced", synced.len());
    if blocked > 0 {
        summary.push_str(&format!(", {blocked} blocked"));
    }
    if failed > 0 {
        summary.push_str(&format!(", {failed} failed"));
    }
    if cancel.is_cancelled() {
        summary.push_str(" (cancelled)");
    }
    Ok(summary)
}

fn excludes_of(
    settings: &Settings,
    name: &str,
    src: &std::path::Path,
    trusted: Option<&repoman_state::TrustedConfig>,
) -> Result<Vec<String>, String> {
    let text = if src.is_dir() {
        ProjectOverrides::read_raw(src).map_err(|e| e.to_string())?
    } else {
        None
    };
    let check = TrustCheck::new(name, text.as_deref(), trusted);
    let overrides = match &check.applied {
        Some(t) => {
            ProjectOverrides::parse(&src.join(OVERRIDES_FILE), t).map_err(|e| e.to_string())?
        }
        None => ProjectOverrides::default(),
    };
    let mut excludes = settings.backup_exclude.value.clone();
    excludes.extend(overrides.backup.exclude);
    Ok(excludes)
}

enum Outcome {
    Synced(String),
    Blocked,
}

fn sync_one(
    state: &State,
    reg: &RegistryFile,
    owner: Owner,
    s: SyncSettings,
    cancel: &Cancel,
    send: &(dyn Fn(JobMsg) + Sync),
) -> Result<Outcome, String> {
    let name = owner.project.clone();
    let prep = engine::prepare(s, owner, state, cancel, || {
        send(JobMsg::Line(
            name.clone(),
            "waiting for another sync to finish".into(),
        ));
    })
    .map_err(|e| format!("failed: {e}"))?;
    let decided = engine::decide(state, &prep, &reg.registry.policy.rules, false)
        .map_err(|e| format!("failed: {e}"))?;
    let decision = match decided.result {
        Ok(d) => d,
        Err(b) => {
            send(JobMsg::Line(name, block_lines(&b)));
            return Ok(Outcome::Blocked);
        }
    };
    let progress = ChannelProgress {
        name: name.clone(),
        send,
        started: std::time::Instant::now(),
        inner: Mutex::new((
            0,
            prep.plan.bytes,
            format!("0/{}", prep.plan.files_to_transfer),
        )),
    };
    progress.emit();
    let created_at = state.clock().now_rfc3339();
    let report = match engine::execute(&prep, state, created_at.clone(), cancel, &progress) {
        Ok(r) => r,
        Err(err) => {
            let recorded = engine::record_failure(state, &prep, &err);
            return Err(match (&err, recorded) {
                (_, Err(re)) => format!("failed: {err}; and recording it failed: {re}"),
                (BackupError::Cancelled, _) => {
                    "cancelled (the backup is usable; sync again to finish)".to_owned()
                }
                _ => format!("failed: {err}"),
            });
        }
    };
    let ev = engine::record_synced(state, &prep, &report, decision.event_seq)
        .map_err(|e| format!("synced, but recording it failed: {e}"))?;
    drop(prep);
    send(JobMsg::Line(
        name,
        format!(
            "synced: {} files, {} transferred, root {} (event {})",
            report.plan.files_to_transfer,
            human_bytes(report.plan.bytes),
            report
                .manifest_root
                .get(..16)
                .unwrap_or(&report.manifest_root),
            ev.seq
        ),
    ));
    Ok(Outcome::Synced(created_at))
}
