//! The TUI's state and its key-handling state machine. [`handle_key`] is pure: it changes the
//! [`App`] and returns what the event loop should do ([`Action`]); no terminal is involved, so
//! tests drive it with plain [`KeyEvent`]s.

use crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};

use crate::snapshot::{Snapshot, Source};

/// The views, in tab order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum View {
    Projects,
    Backups,
    Toolchains,
    Realm,
    Events,
}

impl View {
    pub const ALL: [View; 5] = [
        View::Projects,
        View::Backups,
        View::Toolchains,
        View::Realm,
        View::Events,
    ];

    pub fn title(self) -> &'static str {
        match self {
            View::Projects => "Projects",
            View::Backups => "Backups",
            View::Toolchains => "Toolchains",
            View::Realm => "Realm",
            View::Events => "Events",
        }
    }

    pub fn index(self) -> usize {
        View::ALL.iter().position(|v| *v == self).unwrap_or(0)
    }

    fn next(self) -> View {
        View::ALL[(self.index() + 1) % View::ALL.len()]
    }

    fn prev(self) -> View {
        View::ALL[(self.index() + View::ALL.len() - 1) % View::ALL.len()]
    }
}

/// A mutating action the user asked for, waiting for `y` (or `n`/Esc).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Confirm {
    pub request: Request,
    /// What the question shows (the plan, a diff).
    pub lines: Vec<String>,
}

/// Work the event loop runs on the user's behalf (after confirmation when it mutates).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// Sync these projects to the backup (all when several).
    Sync(Vec<String>),
    /// Verify these projects' backup copies against their last manifests (quick mode).
    Verify(Vec<String>),
    /// Start a project's sandbox.
    Start(String),
    /// Stop a project's sandbox (cleanly).
    Stop(String),
    /// Pin (`versions` given) or unpin (`None`) `tool` in the manifest `file` of `project`,
    /// writing exactly the `diff` shown (refused when the file changed since).
    Edit {
        project: String,
        tool: String,
        file: String,
        versions: Option<Vec<String>>,
        diff: String,
    },
    /// Trust `project`'s `.repoman.toml` as it was shown: its content hash `hash` (empty
    /// until planned), re-checked before the trust is recorded.
    Trust { project: String, hash: String },
    /// Repair `project`'s drift with `action` (`recreate`, `adopt`, `reapply`: the CLI's
    /// non-destructive default; empty until planned), re-checked before it runs.
    Repair { project: String, action: String },
}

impl Request {
    /// The question asked before it runs.
    pub fn question(&self) -> String {
        match self {
            Request::Sync(names) if names.len() == 1 => format!("sync {} to the backup?", names[0]),
            Request::Sync(names) => format!("sync all {} projects to the backup?", names.len()),
            Request::Verify(names) => format!("verify {}?", names.join(", ")),
            Request::Start(name) => format!("start the sandbox {name}?"),
            Request::Stop(name) => format!("stop the sandbox {name}?"),
            Request::Edit {
                tool,
                versions: Some(v),
                ..
            } => format!("pin {tool} to {}? (the change to write)", v.join(" ")),
            Request::Edit { tool, .. } => format!("unpin {tool}? (the change to write)"),
            Request::Trust { project, .. } => {
                format!("trust this .repoman.toml for {project}? (the change since trusted)")
            }
            Request::Repair { project, action } => format!("repair {project}: {action}?"),
        }
    }

    /// The projects it acts on.
    pub fn names(&self) -> Vec<String> {
        match self {
            Request::Sync(n) | Request::Verify(n) => n.clone(),
            Request::Start(n) | Request::Stop(n) => vec![n.clone()],
            Request::Edit { project, .. }
            | Request::Trust { project, .. }
            | Request::Repair { project, .. } => {
                vec![project.clone()]
            }
        }
    }
}

/// What the event loop does after a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    None,
    Quit,
    /// Reload the snapshot now.
    Refresh,
    /// Start confirmed work.
    Run(Request),
    /// Cancel the running work.
    Cancel,
    /// Suspend the TUI for an interactive shell in this project's sandbox.
    Shell(String),
    /// Plan a manifest edit and show its diff for confirmation (the `diff` is still empty).
    Plan(Request),
}

/// Live progress of the running work.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Job {
    pub title: String,
    /// One line per project: `name: files, bytes, rate` or its result.
    pub lines: Vec<(String, String)>,
    pub finished: bool,
    pub cancelling: bool,
}

/// The whole UI state.
#[derive(Debug, Clone, Default)]
pub struct App {
    pub view_index: usize,
    /// Selected row per view (an index into the filtered rows).
    pub selected: [usize; 5],
    pub filter: String,
    pub filter_editing: bool,
    pub help: bool,
    /// The detail of the selected row is open (Enter).
    pub detail: bool,
    pub snapshot: Snapshot,
    /// Colours on (off with `NO_COLOR`).
    pub color: bool,
    /// A one-line message (result of the last action, a refresh error).
    pub message: Option<String>,
    pub confirm: Option<Confirm>,
    pub job: Option<Job>,
    /// A background refresh is running.
    pub refreshing: bool,
    /// The version(s) being typed for a pin: the tool row (snapshot index) and the text.
    pub pin_input: Option<(usize, String)>,
    /// Subscribed to the daemon's event stream: new events arrive as they are appended (else the
    /// log head is polled).
    pub daemon: bool,
}

impl App {
    pub fn new(color: bool) -> Self {
        App {
            color,
            ..App::default()
        }
    }

    pub fn view(&self) -> View {
        View::ALL[self.view_index.min(View::ALL.len() - 1)]
    }

    pub fn set_view(&mut self, v: View) {
        self.view_index = v.index();
        self.detail = false;
    }

    /// Replace the data, keeping the selection on the same row where possible.
    pub fn set_snapshot(&mut self, s: Snapshot) {
        self.snapshot = s;
        for v in View::ALL {
            let n = self.rows(v).len();
            let sel = &mut self.selected[v.index()];
            *sel = (*sel).min(n.saturating_sub(1));
        }
        if self.snapshot.source == Source::Live {
            self.refreshing = false;
        }
    }

    /// The indexes (into the snapshot's list for `v`) of the rows the filter keeps.
    pub fn rows(&self, v: View) -> Vec<usize> {
        let s = &self.snapshot;
        let f = self.filter.trim().to_lowercase();
        let keep = |h: String| f.is_empty() || h.to_lowercase().contains(&f);
        match v {
            View::Projects => idx(s.projects.iter().map(|r| keep(r.haystack()))),
            View::Backups => idx(s.backups.iter().map(|r| keep(r.haystack()))),
            View::Toolchains => idx(s.tools.iter().map(|r| keep(r.haystack()))),
            View::Realm => idx(s.realms.iter().map(|r| keep(r.haystack()))),
            View::Events => idx(s
                .events
                .iter()
                .map(|e| event_matches(&self.filter, &e.type_, &e.object, &e.actor))),
        }
    }

    /// The snapshot index of the selected row of the current view.
    pub fn selected_row(&self) -> Option<usize> {
        let rows = self.rows(self.view());
        rows.get(self.selected[self.view_index]).copied()
    }

    /// The selected project's name (Projects and Backups views).
    pub fn selected_project(&self) -> Option<String> {
        let i = self.selected_row()?;
        match self.view() {
            View::Projects => self
                .snapshot
                .projects
                .get(i)
                .filter(|p| p.registered)
                .map(|p| p.name.clone()),
            View::Backups => self.snapshot.backups.get(i).map(|b| b.project.clone()),
            _ => None,
        }
    }

    fn move_by(&mut self, delta: isize) {
        let n = self.rows(self.view()).len();
        let sel = &mut self.selected[self.view_index];
        if n == 0 {
            *sel = 0;
            return;
        }
        let next = (*sel as isize + delta).clamp(0, n as isize - 1);
        *sel = next as usize;
    }

    fn registered_projects(&self) -> Vec<String> {
        self.snapshot
            .projects
            .iter()
            .filter(|p| p.registered)
            .map(|p| p.name.clone())
            .collect()
    }
}

fn idx(keep: impl Iterator<Item = bool>) -> Vec<usize> {
    keep.enumerate()
        .filter(|(_, k)| *k)
        .map(|(i, _)| i)
        .collect()
}

/// The Events filter: whitespace-separated terms, all of which must match. `type:T`,
/// `object:O` and `actor:A` match that field (a prefix when it ends in `*`, else a substring);
/// a bare term matches any of the three.
pub fn event_matches(filter: &str, type_: &str, object: &str, actor: &str) -> bool {
    let field = |value: &str, pat: &str| {
        let (v, p) = (value.to_lowercase(), pat.to_lowercase());
        match p.strip_suffix('*') {
            Some(prefix) => v.starts_with(prefix),
            None => v.contains(&p),
        }
    };
    filter.split_whitespace().all(|term| {
        if let Some(p) = term.strip_prefix("type:") {
            field(type_, p)
        } else if let Some(p) = term.strip_prefix("object:") {
            field(object, p)
        } else if let Some(p) = term.strip_prefix("actor:") {
            field(actor, p)
        } else {
            field(type_, term) || field(object, term) || field(actor, term)
        }
    })
}

/// Apply one key to the state.
pub fn handle_key(app: &mut App, key: KeyEvent) -> Action {
    if key.kind == KeyEventKind::Release {
        return Action::None;
    }
    let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
    if ctrl && matches!(key.code, KeyCode::Char('c')) {
        // Ctrl-C cancels running work first; with nothing running it quits.
        if app.job.as_ref().is_some_and(|j| !j.finished) {
            return cancel_job(app);
        }
        return Action::Quit;
    }
    if app.help {
        if matches!(
            key.code,
            KeyCode::Char('?') | KeyCode::Esc | KeyCode::Char('q') | KeyCode::Enter
        ) {
            app.help = false;
        }
        return Action::None;
    }
    if let Some(c) = app.confirm.take() {
        return match key.code {
            KeyCode::Char('y') | KeyCode::Char('Y') => {
                app.message = None;
                Action::Run(c.request)
            }
            KeyCode::Char('n') | KeyCode::Esc | KeyCode::Char('q') => {
                app.message = Some("cancelled; nothing was changed".to_owned());
                Action::None
            }
            _ => {
                app.confirm = Some(c);
                Action::None
            }
        };
    }
    if let Some((row, mut text)) = app.pin_input.take() {
        match key.code {
            KeyCode::Enter => {
                let versions: Vec<String> = text.split_whitespace().map(str::to_owned).collect();
                if versions.is_empty() {
                    app.message = Some("type a version to pin (Esc cancels)".into());
                    app.pin_input = Some((row, text));
                    return Action::None;
                }
                return match app.snapshot.tools.get(row) {
                    Some(t) => Action::Plan(Request::Edit {
                        project: t.project.clone(),
                        tool: t.tool.clone(),
                        file: t.file.clone(),
                        versions: Some(versions),
                        diff: String::new(),
                    }),
                    None => Action::None,
                };
            }
            KeyCode::Esc => {
                app.message = Some("cancelled; nothing was changed".into());
                return Action::None;
            }
            KeyCode::Backspace => {
                text.pop();
            }
            KeyCode::Char(c) if !ctrl => text.push(c),
            _ => {}
        }
        app.pin_input = Some((row, text));
        return Action::None;
    }
    if app.filter_editing {
        match key.code {
            KeyCode::Enter => app.filter_editing = false,
            KeyCode::Esc => {
                app.filter.clear();
                app.filter_editing = false;
            }
            KeyCode::Backspace => {
                app.filter.pop();
            }
            KeyCode::Char(c) if !ctrl => app.filter.push(c),
            _ => {}
        }
        app.selected[app.view_index] = 0;
        return Action::None;
    }
    if let Some(job) = &app.job {
        if !job.finished {
            // While work runs, only cancelling, moving and switching views make sense.
            if matches!(key.code, KeyCode::Char('x') | KeyCode::Esc) {
                return cancel_job(app);
            }
        } else if matches!(key.code, KeyCode::Esc | KeyCode::Enter) {
            app.job = None;
            return Action::None;
        }
    }
    match key.code {
        KeyCode::Char('q') => return Action::Quit,
        KeyCode::Esc => {
            if app.detail {
                app.detail = false;
            } else if !app.filter.is_empty() {
                app.filter.clear();
            } else {
                return Action::Quit;
            }
        }
        KeyCode::Char('?') => app.help = true,
        KeyCode::Char('/') => {
            app.filter_editing = true;
        }
        KeyCode::Tab | KeyCode::Right | KeyCode::Char('l') => {
            let v = app.view().next();
            app.set_view(v);
        }
        KeyCode::BackTab | KeyCode::Left | KeyCode::Char('h') => {
            let v = app.view().prev();
            app.set_view(v);
        }
        KeyCode::Char(c @ '1'..='5') => {
            let i = c as usize - '1' as usize;
            app.set_view(View::ALL[i]);
        }
        KeyCode::Down | KeyCode::Char('j') => app.move_by(1),
        KeyCode::Up | KeyCode::Char('k') => app.move_by(-1),
        KeyCode::PageDown => app.move_by(10),
        KeyCode::PageUp => app.move_by(-10),
        KeyCode::Home | KeyCode::Char('g') => app.selected[app.view_index] = 0,
        KeyCode::End | KeyCode::Char('G') => app.move_by(isize::MAX / 2),
        KeyCode::Enter if app.selected_row().is_some() => app.detail = !app.detail,
        KeyCode::Char('r') => {
            app.refreshing = true;
            return Action::Refresh;
        }
        KeyCode::Char('s') if job_idle(app) => {
            if let Some(name) = app.selected_project() {
                ask(app, Request::Sync(vec![name]));
            } else {
                app.message = Some("select a registered project to sync (S syncs all)".into());
            }
        }
        KeyCode::Char('v') if job_idle(app) => match app.selected_project() {
            // Verifying reads the backup and records a `backup.verified`: no question, as in
            // the CLI.
            Some(name) => return Action::Run(Request::Verify(vec![name])),
            None => app.message = Some("select a registered project to verify".into()),
        },
        KeyCode::Char('u') | KeyCode::Char('D') if job_idle(app) => {
            let sandbox = (app.view() == View::Projects)
                .then(|| app.selected_project())
                .flatten();
            match sandbox {
                Some(name) if key.code == KeyCode::Char('u') => ask(app, Request::Start(name)),
                Some(name) => ask(app, Request::Stop(name)),
                None => {
                    app.message = Some(
                        "select a registered project in Projects to start or stop its sandbox"
                            .into(),
                    )
                }
            }
        }
        KeyCode::Char('e') if job_idle(app) => {
            match (app.view() == View::Projects)
                .then(|| app.selected_project())
                .flatten()
            {
                Some(name) => return Action::Shell(name),
                None => {
                    app.message = Some(
                        "select a registered project in Projects to open a shell in its sandbox"
                            .into(),
                    )
                }
            }
        }
        KeyCode::Char('p') | KeyCode::Char('U')
            if job_idle(app) && app.view() == View::Toolchains =>
        {
            let Some(i) = app.selected_row() else {
                app.message = Some("no declared tool selected".into());
                return Action::None;
            };
            let t = &app.snapshot.tools[i];
            if key.code == KeyCode::Char('U') {
                return Action::Plan(Request::Edit {
                    project: t.project.clone(),
                    tool: t.tool.clone(),
                    file: t.file.clone(),
                    versions: None,
                    diff: String::new(),
                });
            }
            // Offer the installed version when it differs from the declared one.
            let installed = t.found.split([',', ' ']).next().unwrap_or("").trim();
            let prefill = if t.state == "mismatch" && !installed.is_empty() {
                installed.to_owned()
            } else {
                t.wants.clone()
            };
            app.pin_input = Some((i, prefill));
        }
        KeyCode::Char('R') if job_idle(app) && app.view() == View::Projects => {
            // An orphan is repaired too (adopted), so any selected row counts.
            let name = app
                .selected_row()
                .and_then(|i| app.snapshot.projects.get(i))
                .map(|p| (p.name.clone(), p.drift.is_some()));
            match name {
                Some((project, true)) => {
                    return Action::Plan(Request::Repair {
                        project,
                        action: String::new(),
                    });
                }
                Some((project, false)) => {
                    app.message = Some(format!("{project} has no drift to repair"))
                }
                None => app.message = Some("no project selected".into()),
            }
        }
        KeyCode::Char('t') if job_idle(app) && app.view() == View::Projects => {
            match app.selected_project() {
                Some(project) => {
                    return Action::Plan(Request::Trust {
                        project,
                        hash: String::new(),
                    });
                }
                None => {
                    app.message =
                        Some("select a registered project to trust its .repoman.toml".into())
                }
            }
        }
        KeyCode::Char('S') if job_idle(app) => {
            let all = app.registered_projects();
            if all.is_empty() {
                app.message = Some("no projects registered; nothing to sync".into());
            } else {
                ask(app, Request::Sync(all));
            }
        }
        _ => {}
    }
    Action::None
}

fn job_idle(app: &App) -> bool {
    app.job.as_ref().is_none_or(|j| j.finished)
}

fn ask(app: &mut App, request: Request) {
    let lines = match &request {
        Request::Sync(names) => names.iter().map(|n| format!("  {n}")).collect(),
        _ => Vec::new(),
    };
    app.confirm = Some(Confirm { request, lines });
}

fn cancel_job(app: &mut App) -> Action {
    if let Some(j) = &mut app.job {
        j.cancelling = true;
    }
    Action::Cancel
}
