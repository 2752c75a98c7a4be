//! Drawing: a pure function of the [`App`] into a ratatui [`Frame`]. Nothing here reads the
//! clock, the environment or the disk (ages are relative to the snapshot's `now`), so the same
//! state always draws the same cells; the render tests rely on it.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{
    Block, Borders, Cell, Clear, Paragraph, Row, Table, TableState, Tabs, Wrap,
};

use crate::app::{App, View};
use crate::snapshot::Source;

/// Styles, or none of them under `NO_COLOR`.
struct Theme {
    color: bool,
}

impl Theme {
    fn s(&self, s: Style) -> Style {
        if self.color { s } else { Style::default() }
    }
    fn error(&self) -> Style {
        self.s(Style::default().fg(Color::Red).add_modifier(Modifier::BOLD))
    }
    fn warn(&self) -> Style {
        self.s(Style::default().fg(Color::Yellow))
    }
    fn dim(&self) -> Style {
        self.s(Style::default().fg(Color::DarkGray))
    }
    fn header(&self) -> Style {
        self.s(Style::default().add_modifier(Modifier::BOLD))
    }
    /// The selected row: reversed with colours, and marked with `>` either way.
    fn selected(&self) -> Style {
        self.s(Style::default().add_modifier(Modifier::REVERSED))
    }
    fn good(&self) -> Style {
        self.s(Style::default().fg(Color::Green))
    }
}

/// Draw the whole screen.
pub fn render(app: &App, f: &mut Frame) {
    let t = Theme { color: app.color };
    let [tabs, body, status, hints] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Min(3),
        Constraint::Length(1),
        Constraint::Length(1),
    ])
    .areas(f.area());
    render_tabs(app, &t, f, tabs);
    match app.view() {
        View::Projects => projects(app, &t, f, body),
        View::Backups => backups(app, &t, f, body),
        View::Toolchains => toolchains(app, &t, f, body),
        View::Realm => realm(app, &t, f, body),
        View::Events => events(app, &t, f, body),
    }
    if let Some(job) = &app.job {
        let h = (job.lines.len() as u16 + 3).min(body.height);
        let area = Rect {
            y: body.bottom().saturating_sub(h),
            height: h,
            ..body
        };
        f.render_widget(Clear, area);
        let mut lines: Vec<Line> = job
            .lines
            .iter()
            .map(|(n, l)| Line::from(format!("{n}: {l}")))
            .collect();
        lines.push(Line::styled(
            if job.finished {
                "done; Esc closes"
            } else if job.cancelling {
                "cancelling..."
            } else {
                "x or Ctrl-C cancels"
            },
            t.dim(),
        ));
        f.render_widget(
            Paragraph::new(lines).block(Block::bordered().title(job.title.as_str())),
            area,
        );
    }
    render_status(app, &t, f, status);
    render_hints(app, &t, f, hints);
    if let Some(c) = &app.confirm {
        let mut lines = vec![Line::styled(c.request.question(), t.header())];
        lines.extend(c.lines.iter().map(|l| Line::from(l.as_str())));
        lines.push(Line::from(""));
        lines.push(Line::from("y: yes   n/Esc: no"));
        let area = popup(f.area(), 76, lines.len() as u16 + 2);
        f.render_widget(Clear, area);
        f.render_widget(
            Paragraph::new(lines)
                .wrap(Wrap { trim: false })
                .block(Block::bordered().title("confirm")),
            area,
        );
    }
    if app.help {
        help(&t, f);
    }
}

fn popup(outer: Rect, width: u16, height: u16) -> Rect {
    let w = width.min(outer.width);
    let h = height.min(outer.height);
    Rect {
        x: outer.x + (outer.width - w) / 2,
        y: outer.y + (outer.height - h) / 2,
        width: w,
        height: h,
    }
}

fn render_tabs(app: &App, t: &Theme, f: &mut Frame, area: Rect) {
    let source = match (app.snapshot.source, app.refreshing, app.daemon) {
        (_, true, _) => "refreshing...",
        (Source::Empty, ..) => "loading...",
        (Source::Index, ..) => "index",
        (Source::Live, _, false) => "live",
        (Source::Live, _, true) => "live+daemon",
    };
    let [left, right] = Layout::horizontal([
        Constraint::Min(10),
        Constraint::Length(source.len() as u16 + 1),
    ])
    .areas(area);
    let titles = View::ALL
        .iter()
        .enumerate()
        .map(|(i, v)| format!("{} {}", i + 1, v.title()));
    f.render_widget(
        Tabs::new(titles)
            .select(app.view_index)
            .highlight_style(
                t.s(Style::default().add_modifier(Modifier::REVERSED | Modifier::BOLD)),
            )
            .divider("|")
            .padding("", ""),
        left,
    );
    f.render_widget(Paragraph::new(source).style(t.dim()).right_aligned(), right);
}

fn render_status(app: &App, t: &Theme, f: &mut Frame, area: Rect) {
    let line = if let Some((row, text)) = &app.pin_input {
        let tool = app.snapshot.tools.get(*row).map_or("", |t| t.tool.as_str());
        Line::from(format!(
            "pin {tool} to: {text}_  (Enter shows the change, Esc cancels)"
        ))
    } else if app.filter_editing {
        Line::from(format!("/{}_", app.filter))
    } else if let Some(m) = &app.message {
        Line::styled(m.as_str(), t.warn())
    } else if !app.filter.is_empty() {
        Line::from(format!("filter: {} (Esc clears)", app.filter))
    } else {
        Line::from("")
    };
    f.render_widget(Paragraph::new(line), area);
}

fn render_hints(app: &App, t: &Theme, f: &mut Frame, area: Rect) {
    let hints: &[(&str, &str)] = if app.filter_editing {
        &[("Enter", "keep"), ("Esc", "clear"), ("type", "to filter")]
    } else if app.pin_input.is_some() {
        &[("Enter", "show the change"), ("Esc", "cancel")]
    } else if app.confirm.is_some() {
        &[("y", "yes"), ("n/Esc", "no")]
    } else if app.job.as_ref().is_some_and(|j| !j.finished) {
        &[("x", "cancel"), ("Tab", "view"), ("q", "quit")]
    } else {
        match app.view() {
            View::Projects => &[
                ("q", "quit"),
                ("Tab", "view"),
                ("s/S", "sync"),
                ("v", "verify"),
                ("u/D", "start/stop"),
                ("e", "shell"),
                ("/", "filter"),
                ("?", "help"),
            ],
            View::Backups => &[
                ("q", "quit"),
                ("Tab", "view"),
                ("j/k", "move"),
                ("s/S", "sync one/all"),
                ("v", "verify"),
                ("/", "filter"),
                ("r", "refresh"),
                ("?", "help"),
            ],
            View::Toolchains => &[
                ("q", "quit"),
                ("Tab", "view"),
                ("j/k", "move"),
                ("p", "pin"),
                ("U", "unpin"),
                ("/", "filter"),
                ("r", "refresh"),
                ("?", "help"),
            ],
            _ => &[
                ("q", "quit"),
                ("Tab", "view"),
                ("j/k", "move"),
                ("Enter", "detail"),
                ("/", "filter"),
                ("r", "refresh"),
                ("?", "help"),
            ],
        }
    };
    let mut spans = Vec::new();
    for (i, (k, what)) in hints.iter().enumerate() {
        if i > 0 {
            spans.push(Span::raw(" "));
        }
        spans.push(Span::styled(*k, t.header()));
        spans.push(Span::raw(format!(" {what}")));
    }
    f.render_widget(Paragraph::new(Line::from(spans)).style(t.dim()), area);
}

fn help(t: &Theme, f: &mut Frame) {
    let keys = [
        ("Tab / Shift-Tab, h/l, arrows", "next / previous view"),
        ("1..5", "jump to a view"),
        ("j/k, Up/Down, PgUp/PgDn", "move the selection"),
        ("g / G", "first / last row"),
        ("Enter", "open / close the detail"),
        ("/", "filter (Events: type:T object:O actor:A)"),
        ("s", "sync the selected project (asks first)"),
        ("S", "sync all projects (asks first)"),
        ("v", "verify the selected project's backup"),
        ("u / D", "start / stop the selected sandbox (asks)"),
        ("e", "a shell in the selected sandbox (suspends)"),
        ("t", "trust a changed .repoman.toml (diff first)"),
        ("R", "repair the selected project's drift (asks)"),
        ("p / U", "pin / unpin the selected tool (diff first)"),
        ("x, Ctrl-C", "cancel the running sync"),
        ("r", "refresh now"),
        ("?", "this help"),
        ("q, Esc", "quit (Esc first closes / clears)"),
    ];
    let lines: Vec<Line> = keys
        .iter()
        .map(|(k, v)| {
            Line::from(vec![
                Span::styled(format!("{k:<29}"), t.header()),
                Span::raw(*v),
            ])
        })
        .collect();
    let area = popup(f.area(), 76, lines.len() as u16 + 2);
    f.render_widget(Clear, area);
    f.render_widget(
        Paragraph::new(lines).block(Block::bordered().title("keys (? or Esc closes)")),
        area,
    );
}

/// A table of `rows` (already filtered) with the selection kept in view.
#[allow(
    clippy::too_many_arguments,
    reason = "one call per view, each naming every part"
)]
fn table<'a>(
    t: &Theme,
    header: &'a [&'a str],
    widths: &'a [Constraint],
    rows: Vec<Row<'a>>,
    selected: usize,
    f: &mut Frame,
    area: Rect,
    title: String,
) {
    let n = rows.len();
    let tbl = Table::new(rows, widths.iter().copied())
        .header(Row::new(header.iter().copied()).style(t.header()))
        .row_highlight_style(t.selected())
        .highlight_symbol(">")
        .column_spacing(1)
        .block(Block::new().borders(Borders::TOP).title(title));
    let mut st = TableState::default();
    if n > 0 {
        st.select(Some(selected.min(n - 1)));
    }
    f.render_stateful_widget(tbl, area, &mut st);
}

/// "3m", "2h", "5d" since `at` (RFC 3339), relative to the snapshot's clock.
pub fn age(now_secs: i64, at: Option<&str>) -> String {
    let Some(at) = at else {
        return "never".to_owned();
    };
    let Ok(ts) = at.parse::<jiff::Timestamp>() else {
        return at.to_owned();
    };
    let d = (now_secs - ts.as_second()).max(0);
    match d {
        0..60 => format!("{d}s ago"),
        60..3600 => format!("{}m ago", d / 60),
        3600..86_400 => format!("{}h ago", d / 3600),
        _ => format!("{}d ago", d / 86_400),
    }
}

fn errors_para<'a>(t: &Theme, errs: &[(&'a str, &'a Option<String>)]) -> Vec<Line<'a>> {
    errs.iter()
        .filter_map(|(what, e)| {
            e.as_ref()
                .map(|e| Line::styled(format!("{what}: {e}"), t.error()))
        })
        .collect()
}

/// Split `area` into error lines on top and the rest.
fn with_errors<'a>(f: &mut Frame, area: Rect, lines: Vec<Line<'a>>) -> Rect {
    if lines.is_empty() {
        return area;
    }
    let h = (lines.len() as u16 * 2).min(area.height / 2).max(1);
    let [top, rest] = Layout::vertical([Constraint::Length(h), Constraint::Min(1)]).areas(area);
    f.render_widget(Paragraph::new(lines).wrap(Wrap { trim: true }), top);
    rest
}

fn empty(t: &Theme, f: &mut Frame, area: Rect, text: &str) {
    f.render_widget(
        Paragraph::new(Line::styled(text.to_owned(), t.dim()))
            .wrap(Wrap { trim: true })
            .block(Block::new().borders(Borders::TOP)),
        area,
    );
}

fn projects(app: &App, t: &Theme, f: &mut Frame, area: Rect) {
    let s = &app.snapshot;
    let area = with_errors(
        f,
        area,
        errors_para(
            t,
            &[
                ("registry", &s.registry_error),
                ("Incus", &s.incus_error),
                ("state", &s.state_error),
            ],
        ),
    );
    let rows = app.rows(View::Projects);
    if s.projects.is_empty() {
        return empty(
            t,
            f,
            area,
            "no projects registered; `repoman new NAME` creates one",
        );
    }
    let detail_h = if app.detail {
        area.height.saturating_sub(4)
    } else {
        (area.height / 2).min(9)
    };
    let [top, bottom] =
        Layout::vertical([Constraint::Min(3), Constraint::Length(detail_h)]).areas(area);
    let sel = app.selected[View::Projects.index()];
    let body: Vec<Row> = rows
        .iter()
        .map(|&i| {
            let p = &s.projects[i];
            let state_style = match p.state.as_str() {
                "Running" => t.good(),
                "missing" | "Error" => t.error(),
                _ => Style::default(),
            };
            Row::new(vec![
                Cell::from(p.name.as_str()),
                Cell::from(p.state.as_str()).style(state_style),
                Cell::from(if p.ipv4.is_empty() {
                    "-".to_owned()
                } else {
                    p.ipv4.join(",")
                }),
                Cell::from(age(s_now(app), p.last_sync.as_deref())),
                Cell::from(
                    p.drift
                        .clone()
                        .map(|d| format!("! {d}"))
                        .unwrap_or_default(),
                )
                .style(t.warn()),
                Cell::from(if p.conflicts > 0 {
                    p.conflicts.to_string()
                } else {
                    String::new()
                })
                .style(t.error()),
                Cell::from(p.untrusted.clone().unwrap_or_default()).style(t.warn()),
            ])
        })
        .collect();
    const HEADER: [&str; 7] = [
        "NAME",
        "STATE",
        "IPV4",
        "LAST SYNC",
        "DRIFT",
        "CONFL",
        "CONFIG",
    ];
    const WIDTHS: [Constraint; 7] = [
        Constraint::Min(10),
        Constraint::Length(8),
        Constraint::Length(15),
        Constraint::Length(9),
        Constraint::Length(9),
        Constraint::Length(5),
        Constraint::Length(9),
    ];
    let title = format!("projects ({}/{})", rows.len(), s.projects.len());
    table(t, &HEADER, &WIDTHS, body, sel, f, top, title);
    let Some(p) = app.selected_row().and_then(|i| s.projects.get(i)) else {
        return;
    };
    let mut lines = vec![Line::from(format!(
        "{}  repo {}",
        p.name,
        p.repo_path.as_deref().unwrap_or(&p.repo)
    ))];
    if !p.registered {
        lines.push(Line::styled(
            "not registered (an orphan container); `repoman status --repair` adopts or removes it",
            t.warn(),
        ));
    }
    if let Some(u) = &p.untrusted {
        lines.push(Line::styled(
            format!(
                ".repoman.toml {u}; t reviews it (`repoman trust {}`)",
                p.name
            ),
            t.warn(),
        ));
    }
    for m in &p.mounts {
        lines.push(Line::from(format!("mount {m}")));
    }
    lines.extend(p.explain.iter().map(|l| Line::from(l.as_str())));
    f.render_widget(
        Paragraph::new(lines).wrap(Wrap { trim: false }).block(
            Block::new()
                .borders(Borders::TOP)
                .title("detail (Enter enlarges)"),
        ),
        bottom,
    );
}

fn s_now(app: &App) -> i64 {
    app.snapshot.now_secs
}

fn backups(app: &App, t: &Theme, f: &mut Frame, area: Rect) {
    let s = &app.snapshot;
    let mut top_lines = errors_para(t, &[("state", &s.state_error)]);
    match (&s.backup_root, &s.backup_error) {
        (None, _) => top_lines.push(Line::styled(
            "backup_root is not set; `repoman setup` sets it",
            t.warn(),
        )),
        (Some(root), Some(e)) => {
            top_lines.push(Line::styled(format!("backup {root}: {e}"), t.error()))
        }
        (Some(root), None) if s.source == Source::Live => {
            top_lines.push(Line::styled(format!("backup {root}: mounted"), t.good()))
        }
        (Some(root), None) => top_lines.push(Line::from(format!("backup {root}: not checked yet"))),
    }
    let area = with_errors(f, area, top_lines);
    if s.backups.is_empty() {
        return empty(t, f, area, "no projects registered; nothing is backed up");
    }
    let rows = app.rows(View::Backups);
    let body: Vec<Row> = rows
        .iter()
        .map(|&i| {
            let b = &s.backups[i];
            let res_style = match b.verify_result.as_deref() {
                Some("ok") => t.good(),
                Some(_) => t.error(),
                None => Style::default(),
            };
            Row::new(vec![
                Cell::from(b.project.as_str()),
                Cell::from(age(s.now_secs, b.last_sync.as_deref())),
                Cell::from(age(s.now_secs, b.last_verify.as_deref())),
                Cell::from(b.verify_result.clone().unwrap_or_else(|| "-".into())).style(res_style),
                Cell::from(
                    b.manifest_root
                        .as_deref()
                        .map(|r| r.chars().take(16).collect::<String>())
                        .unwrap_or_else(|| "-".into()),
                ),
            ])
        })
        .collect();
    const HEADER: [&str; 5] = [
        "PROJECT",
        "LAST SYNC",
        "VERIFIED",
        "RESULT",
        "MANIFEST ROOT",
    ];
    const WIDTHS: [Constraint; 5] = [
        Constraint::Min(10),
        Constraint::Length(9),
        Constraint::Length(9),
        Constraint::Length(8),
        Constraint::Length(16),
    ];
    let title = format!("backups ({}/{})", rows.len(), s.backups.len());
    table(
        t,
        &HEADER,
        &WIDTHS,
        body,
        app.selected[View::Backups.index()],
        f,
        area,
        title,
    );
}

fn toolchains(app: &App, t: &Theme, f: &mut Frame, area: Rect) {
    let s = &app.snapshot;
    let mut extra = Vec::new();
    if !s.provers.is_empty() {
        extra.push(Line::from(format!(
            "provers: {}",
            s.provers
                .iter()
                .map(|(n, v)| format!("{n} {v}"))
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    if !s.ghosts.is_empty() {
        extra.push(Line::styled(
            format!("installed, declared by no project: {}", s.ghosts.join(", ")),
            t.dim(),
        ));
    }
    let area = with_errors(f, area, errors_para(t, &[("tools", &s.tools_error)]));
    let extra_h = (extra.len() as u16 * 2).min(area.height / 3);
    let [main, foot] =
        Layout::vertical([Constraint::Min(3), Constraint::Length(extra_h)]).areas(area);
    f.render_widget(Paragraph::new(extra).wrap(Wrap { trim: true }), foot);
    if s.tools.is_empty() {
        let text = if s.source == Source::Live {
            "no tools declared (no .tool-versions, mise.toml or version files found)"
        } else {
            "reading tool manifests..."
        };
        return empty(t, f, main, text);
    }
    let rows = app.rows(View::Toolchains);
    let body: Vec<Row> = rows
        .iter()
        .map(|&i| {
            let r = &s.tools[i];
            let st = match r.state.as_str() {
                "satisfied" | "ok" => t.good(),
                "missing" | "mismatch" => t.error(),
                _ => Style::default(),
            };
            Row::new(vec![
                Cell::from(r.project.as_str()),
                Cell::from(r.tool.as_str()),
                Cell::from(r.wants.as_str()),
                Cell::from(r.state.as_str()).style(st),
                Cell::from(r.found.as_str()),
            ])
        })
        .collect();
    const HEADER: [&str; 5] = ["PROJECT", "TOOL", "WANTS", "STATE", "FOUND"];
    const WIDTHS: [Constraint; 5] = [
        Constraint::Length(14),
        Constraint::Length(12),
        Constraint::Length(12),
        Constraint::Length(10),
        Constraint::Min(10),
    ];
    let title = format!("declared tools ({}/{})", rows.len(), s.tools.len());
    table(
        t,
        &HEADER,
        &WIDTHS,
        body,
        app.selected[View::Toolchains.index()],
        f,
        main,
        title,
    );
}

fn realm(app: &App, t: &Theme, f: &mut Frame, area: Rect) {
    let s = &app.snapshot;
    let area = with_errors(f, area, errors_para(t, &[("realm", &s.realm_error)]));
    if s.realms.is_empty() {
        let text = if s.source == Source::Live {
            "no realm (none under the state directory, and the current directory is not a member); `repoman realm admin init NAME` creates one"
        } else {
            "reading realms..."
        };
        return empty(t, f, area, text);
    }
    let rows = app.rows(View::Realm);
    let list_h = (rows.len() as u16 + 2).min(area.height / 3).max(3);
    let [top, bottom] =
        Layout::vertical([Constraint::Length(list_h), Constraint::Min(3)]).areas(area);
    let body: Vec<Row> = rows
        .iter()
        .map(|&i| {
            let r = &s.realms[i];
            Row::new(vec![
                Cell::from(r.name.as_str()),
                Cell::from(r.domains.len().to_string()),
                Cell::from(r.contracts.len().to_string()),
                Cell::from(r.stale.len().to_string()).style(if r.stale.is_empty() {
                    Style::default()
                } else {
                    t.warn()
                }),
                Cell::from(r.path.as_str()),
            ])
        })
        .collect();
    const HEADER: [&str; 5] = ["REALM", "DOMAINS", "CONTRACTS", "STALE", "PATH"];
    const WIDTHS: [Constraint; 5] = [
        Constraint::Length(14),
        Constraint::Length(7),
        Constraint::Length(9),
        Constraint::Length(5),
        Constraint::Min(10),
    ];
    table(
        t,
        &HEADER,
        &WIDTHS,
        body,
        app.selected[View::Realm.index()],
        f,
        top,
        "realms".into(),
    );
    let Some(r) = app.selected_row().and_then(|i| s.realms.get(i)) else {
        return;
    };
    let mut lines = Vec::new();
    let mut section = |title: &str, items: &[String], style: Style| {
        lines.push(Line::styled(title.to_owned(), t.header()));
        if items.is_empty() {
            lines.push(Line::styled("  (none)", t.dim()));
        }
        lines.extend(items.iter().map(|i| Line::styled(format!("  {i}"), style)));
    };
    section("domains", &r.domains, Style::default());
    section("contracts", &r.contracts, Style::default());
    section("bindings", &r.bindings, Style::default());
    section("stale imports", &r.stale, t.warn());
    section("last check verdicts", &r.verdicts, Style::default());
    f.render_widget(
        Paragraph::new(lines).block(Block::new().borders(Borders::TOP).title(r.name.as_str())),
        bottom,
    );
}

fn events(app: &App, t: &Theme, f: &mut Frame, area: Rect) {
    let s = &app.snapshot;
    let area = with_errors(f, area, errors_para(t, &[("state", &s.state_error)]));
    if s.events.is_empty() {
        return empty(t, f, area, "no events recorded yet");
    }
    let rows = app.rows(View::Events);
    let body: Vec<Row> = rows
        .iter()
        .map(|&i| {
            let e = &s.events[i];
            Row::new(vec![
                Cell::from(e.seq.to_string()),
                // `MM-DD HH:MM:SS`: the year is in the detail.
                Cell::from(e.at.get(5..19).unwrap_or(&e.at).replace('T', " ")),
                Cell::from(e.type_.as_str()),
                Cell::from(e.object.as_str()),
                Cell::from(e.actor.as_str()),
            ])
        })
        .collect();
    const HEADER: [&str; 5] = ["SEQ", "AT (UTC)", "TYPE", "OBJECT", "ACTOR"];
    const WIDTHS: [Constraint; 5] = [
        Constraint::Length(5),
        Constraint::Length(14),
        Constraint::Length(25),
        Constraint::Length(16),
        Constraint::Min(8),
    ];
    let title = format!("events, newest first ({}/{})", rows.len(), s.events.len());
    table(
        t,
        &HEADER,
        &WIDTHS,
        body,
        app.selected[View::Events.index()],
        f,
        area,
        title,
    );
    if !app.detail {
        return;
    }
    let Some(e) = app.selected_row().and_then(|i| s.events.get(i)) else {
        return;
    };
    let mut lines = vec![
        Line::from(format!("seq {}  at {}", e.seq, e.at)),
        Line::from(format!("type {}", e.type_)),
        Line::from(format!("object {}", e.object)),
        Line::from(format!("actor {}", e.actor)),
        Line::from(format!("prev {}", e.prev)),
        Line::from(format!("hash {}", e.hash)),
        Line::styled("data", t.header()),
    ];
    lines.extend(e.data.lines().map(|l| Line::from(l.to_owned())));
    let outer = f.area();
    let area = popup(
        outer,
        outer.width.saturating_sub(4),
        outer.height.saturating_sub(4),
    );
    f.render_widget(Clear, area);
    f.render_widget(
        Paragraph::new(lines)
            .wrap(Wrap { trim: false })
            .block(Block::bordered().title(format!("event {} (Enter/Esc closes)", e.seq))),
        area,
    );
}
