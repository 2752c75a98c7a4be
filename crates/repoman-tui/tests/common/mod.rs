//! Snapshots built by hand and a screen dump of [`render`] into ratatui's `TestBackend`.

#![allow(dead_code)]

use ratatui::Terminal;
use ratatui::backend::TestBackend;
use ratatui::buffer::Buffer;
use repoman_tui::app::App;
use repoman_tui::render::render;
use repoman_tui::snapshot::{BackupRow, EventRow, ProjectRow, RealmRow, Snapshot, Source, ToolRow};

/// 2026-12-01T12:00:00Z: the clock every fixture is relative to.
pub fn now() -> i64 {
    "2026-12-01T12:00:00Z"
        .parse::<jiff::Timestamp>()
        .expect("a valid timestamp")
        .as_second()
}

/// `secs` before [`now`], as RFC 3339.
pub fn ago(secs: i64) -> String {
    jiff::Timestamp::from_second(now() - secs)
        .expect("in range")
        .to_string()
}

pub fn draw(app: &App, w: u16, h: u16) -> Buffer {
    let mut t = Terminal::new(TestBackend::new(w, h)).expect("a test terminal");
    t.draw(|f| render(app, f)).expect("drawn");
    t.backend().buffer().clone()
}

/// The screen as text, one line per row (trailing spaces trimmed).
pub fn text(buf: &Buffer) -> String {
    let a = buf.area;
    (0..a.height)
        .map(|y| {
            (0..a.width)
                .map(|x| buf[(x, y)].symbol())
                .collect::<String>()
                .trim_end()
                .to_owned()
        })
        .collect::<Vec<_>>()
        .join("\n")
}

pub fn screen(app: &App) -> String {
    text(&draw(app, 80, 24))
}

pub fn app(s: Snapshot) -> App {
    let mut a = App::new(false);
    a.set_snapshot(s);
    a
}

pub fn empty() -> Snapshot {
    Snapshot {
        source: Source::Live,
        now_secs: now(),
        backup_root: Some("/mnt/backup".into()),
        ..Snapshot::default()
    }
}

/// `n` projects: p00, p01, ...; every third stopped, every fifth with config drift, p07 with
/// two conflicts, p03 with a changed `.repoman.toml`.
pub fn estate(n: usize) -> Snapshot {
    let mut s = empty();
    for i in 0..n {
        let name = format!("p{i:02}");
        let running = i % 3 != 0;
        s.projects.push(ProjectRow {
            name: name.clone(),
            registered: true,
            state: if running { "Running" } else { "Stopped" }.into(),
            ipv4: if running {
                vec![format!("10.0.0.{}", i + 10)]
            } else {
                vec![]
            },
            repo: format!("repo-{i:02}"),
            repo_path: Some(format!("/home/dev/src/repo-{i:02}")),
            last_sync: (i % 4 != 3).then(|| ago(60 * (i as i64 + 1) * 7)),
            drift: (i % 5 == 4).then(|| "config".into()),
            conflicts: if i == 7 { 2 } else { 0 },
            untrusted: (i == 3).then(|| "changed".into()),
            mounts: vec![format!(
                "/home/dev/src/repo-{i:02} -> /home/dev/repo-{i:02}"
            )],
            explain: vec![
                format!("project:{name} (as of event 120)"),
                "is it safe to sync: yes, the last sync was allowed".into(),
            ],
        });
        s.backups.push(BackupRow {
            project: name.clone(),
            last_sync: (i % 4 != 3).then(|| ago(60 * (i as i64 + 1) * 7)),
            last_verify: (i % 2 == 0).then(|| ago(86_400 * 2)),
            verify_result: (i % 2 == 0).then(|| if i == 8 { "problems" } else { "ok" }.into()),
            manifest_root: (i % 4 != 3).then(|| format!("b3{:014x}{}", i * 7919, "0".repeat(48))),
        });
    }
    s.head_seq = 120;
    s
}

pub fn tools() -> Vec<ToolRow> {
    let row = |p: &str, t: &str, w: &str, st: &str, f: &str| ToolRow {
        project: p.into(),
        tool: t.into(),
        wants: w.into(),
        state: st.into(),
        found: f.into(),
        declared_in: ".tool-versions:1".into(),
        file: format!("/home/dev/src/{p}/.tool-versions"),
        dir: format!("/home/dev/src/{p}"),
    };
    vec![
        row(
            "api",
            "rust",
            "1.88.0",
            "satisfied",
            "1.88.0 /usr/bin/rustc",
        ),
        row("api", "nodejs", "22.1.0", "mismatch", "20.11.1"),
        row("web", "python", "3.12", "missing", "-"),
    ]
}

pub fn realm() -> RealmRow {
    RealmRow {
        name: "acme".into(),
        path: "/home/dev/.local/state/repoman/realms/acme".into(),
        domains: vec!["billing: api -> web, cli".into()],
        contracts: vec!["billing/invoice 1.2.0 (owner api)".into()],
        bindings: vec![
            "api exports invoice".into(),
            "web imports invoice ^1.0".into(),
        ],
        stale: vec!["web resolved invoice 1.1.0, contract is at 1.2.0".into()],
        verdicts: vec!["2026-12-01T11:00:00 contract:acme/billing/invoice compatible".into()],
    }
}

pub fn events(n: u64) -> Vec<EventRow> {
    (1..=n)
        .rev()
        .map(|seq| EventRow {
            seq,
            at: format!("2026-12-01T11:{:02}:00.000Z", seq % 60),
            type_: if seq % 2 == 0 {
                "backup.synced"
            } else {
                "sandbox.started"
            }
            .into(),
            object: if seq % 2 == 0 {
                format!("backup:p{:02}", seq % 10)
            } else {
                format!("sandbox:p{:02}", seq % 10)
            },
            actor: if seq % 3 == 0 {
                "daemon:host".into()
            } else {
                "human:dev@host".into()
            },
            data: format!("{{\n  \"project\": \"p{:02}\"\n}}", seq % 10),
            prev: format!("{:064x}", seq - 1),
            hash: format!("{seq:064x}"),
        })
        .collect()
}

/// The table row of `name` (the first column, after the selection mark).
pub fn row(screen: &str, name: &str) -> String {
    screen
        .lines()
        .find(|l| l.trim_start_matches(['>', ' ']).split_whitespace().next() == Some(name))
        .unwrap_or_default()
        .to_owned()
}

/// The cell of `name`'s row under the column `header` (from the header's first character to
/// the next header's), trimmed.
pub fn cell(screen: &str, name: &str, header: &str) -> String {
    let head: Vec<char> = screen
        .lines()
        .find(|l| l.contains(header))
        .unwrap_or_default()
        .chars()
        .collect();
    let h: Vec<char> = header.chars().collect();
    let Some(start) = (0..head.len()).find(|&i| head[i..].starts_with(&h)) else {
        return String::new();
    };
    let mut end = start + h.len();
    while end < head.len() && head[end] == ' ' {
        end += 1;
    }
    if end >= head.len() {
        end = usize::MAX;
    }
    row(screen, name)
        .chars()
        .skip(start)
        .take(end.saturating_sub(start))
        .collect::<String>()
        .trim()
        .to_owned()
}
