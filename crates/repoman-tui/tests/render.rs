//! Render tests: each view drawn into ratatui's `TestBackend` at 80x24, checked against an insta
//! snapshot of the screen text and, for what matters most, by explicit assertions (so a
//! snapshot accepted by mistake still cannot hide a missing row or error).

mod common;

use common::*;
use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use ratatui::style::{Color, Modifier};
use repoman_tui::app::{Job, View, handle_key};
use repoman_tui::snapshot::Source;

fn key(c: KeyCode) -> KeyEvent {
    KeyEvent::new(c, KeyModifiers::NONE)
}

#[test]
fn empty_estate_every_view() {
    let mut a = app(empty());
    let mut screens = Vec::new();
    for v in View::ALL {
        a.set_view(v);
        screens.push(screen(&a));
    }
    assert!(screens[0].contains("no projects registered; `repoman new NAME` creates one"));
    assert!(screens[1].contains("backup /mnt/backup: mounted"));
    assert!(screens[1].contains("nothing is backed up"));
    assert!(screens[2].contains("no tools declared"));
    assert!(screens[3].contains("no realm"));
    assert!(screens[4].contains("no events recorded yet"));
    for s in &screens {
        // The tab bar, the source and the key hints are always there, and fit in 80 columns.
        assert!(
            s.lines().next().is_some_and(|l| l.contains("1 Projects")
                && l.contains("5 Events")
                && l.ends_with("live")),
            "{s}"
        );
        assert!(
            s.lines()
                .last()
                .is_some_and(|l| l.contains("q quit") && l.contains("? help")),
            "{s}"
        );
        assert_eq!(s.lines().count(), 24);
    }
    insta::assert_snapshot!("empty_projects", screens[0]);
    insta::assert_snapshot!("empty_backups", screens[1]);
    insta::assert_snapshot!("empty_toolchains", screens[2]);
    insta::assert_snapshot!("empty_realm", screens[3]);
    insta::assert_snapshot!("empty_events", screens[4]);
}

#[test]
fn fifty_projects_fit_80x24_and_scroll_to_the_selection() {
    let mut a = app(estate(50));
    let s = screen(&a);
    assert!(s.contains("projects (50/50)"), "{s}");
    assert!(s.contains(">p00"), "the first row is selected: {s}");
    assert!(s.contains("10.0.0.11"), "{s}");
    assert!(s.contains("! config"), "p04 has config drift: {s}");
    assert!(
        !s.contains("p49"),
        "the table does not overflow into the detail: {s}"
    );
    // The detail pane of the selected project: repo, mounts, explain.
    assert!(s.contains("p00  repo /home/dev/src/repo-00"), "{s}");
    assert!(
        s.contains("mount /home/dev/src/repo-00 -> /home/dev/repo-00"),
        "{s}"
    );
    insta::assert_snapshot!("projects_50", s);
    for _ in 0..49 {
        handle_key(&mut a, key(KeyCode::Char('j')));
    }
    let s = screen(&a);
    assert!(s.contains(">p49"), "the selection scrolled into view: {s}");
    assert!(s.contains("p49  repo /home/dev/src/repo-49"), "{s}");
    insta::assert_snapshot!("projects_50_last", s);
}

#[test]
fn project_columns_show_conflicts_and_untrusted_config() {
    let mut a = app(estate(10));
    let s = screen(&a);
    assert_eq!(cell(&s, "p07", "CONFL"), "2", "p07 has 2 conflicts: {s}");
    assert_eq!(cell(&s, "p06", "CONFL"), "", "{s}");
    assert_eq!(cell(&s, "p03", "CONFIG"), "changed", "{s}");
    assert_eq!(cell(&s, "p03", "LAST SYNC"), "never", "{s}");
    assert_eq!(cell(&s, "p00", "LAST SYNC"), "7m ago", "{s}");
    assert_eq!(cell(&s, "p04", "DRIFT"), "! config", "{s}");
    assert_eq!(cell(&s, "p01", "IPV4"), "10.0.0.11", "{s}");
    assert_eq!(cell(&s, "p00", "STATE"), "Stopped", "{s}");
    for _ in 0..3 {
        handle_key(&mut a, key(KeyCode::Down));
    }
    let s = screen(&a);
    assert!(
        s.contains(".repoman.toml changed; t reviews it (`repoman trust p03`)"),
        "{s}"
    );
}

#[test]
fn incus_down_is_shown_and_the_index_rows_stay() {
    let mut s = estate(3);
    s.source = Source::Index;
    for p in &mut s.projects {
        p.state = "?".into();
        p.ipv4.clear();
    }
    s.incus_error =
        Some("Incus is not reachable at /var/lib/incus/unix.socket: connection refused".into());
    let a = app(s);
    let out = screen(&a);
    assert!(
        out.contains("Incus: Incus is not reachable at /var/lib/incus/unix.socket"),
        "{out}"
    );
    assert!(
        out.contains("p02"),
        "the registry's projects are still listed: {out}"
    );
    assert!(
        out.lines().next().is_some_and(|l| l.ends_with("index")),
        "{out}"
    );
    insta::assert_snapshot!("projects_incus_down", out);
}

#[test]
fn backup_unmounted_is_shown_with_the_last_records() {
    let mut s = estate(4);
    s.backup_error = Some("/mnt/backup is not mounted (expected nfs4); mount the share".into());
    let mut a = app(s);
    a.set_view(View::Backups);
    let out = screen(&a);
    assert!(
        out.contains("backup /mnt/backup: /mnt/backup is not mounted (expected nfs4)"),
        "{out}"
    );
    assert!(out.contains("backups (4/4)"), "{out}");
    assert_eq!(
        cell(&out, "p01", "MANIFEST ROOT"),
        "b300000000001eef",
        "the last recorded manifest root is still shown: {out}"
    );
    insta::assert_snapshot!("backups_unmounted", out);
}

#[test]
fn backups_view_shows_verify_results() {
    let mut a = app(estate(10));
    a.set_view(View::Backups);
    let out = screen(&a);
    assert_eq!(cell(&out, "p08", "RESULT"), "problems", "{out}");
    assert_eq!(cell(&out, "p00", "RESULT"), "ok", "{out}");
    assert_eq!(cell(&out, "p00", "VERIFIED"), "2d ago", "{out}");
    assert_eq!(cell(&out, "p01", "VERIFIED"), "never", "{out}");
    assert_eq!(
        cell(&out, "p01", "RESULT"),
        "-",
        "p01 was never verified: {out}"
    );
    assert_eq!(
        cell(&out, "p03", "MANIFEST ROOT"),
        "-",
        "p03 never synced: {out}"
    );
    assert_eq!(
        cell(&out, "p02", "MANIFEST ROOT"),
        "b300000000003dde",
        "{out}"
    );
    insta::assert_snapshot!("backups_10", out);
}

#[test]
fn toolchains_view_shows_declared_installed_provers_and_ghosts() {
    let mut s = empty();
    s.tools = tools();
    s.provers = vec![
        ("lean".into(), "4.9.0".into()),
        ("z3".into(), "4.13.0".into()),
    ];
    s.ghosts = vec!["go".into(), "lean".into()];
    let mut a = app(s);
    a.set_view(View::Toolchains);
    let out = screen(&a);
    assert!(
        out.contains("nodejs") && out.contains("mismatch") && out.contains("20.11.1"),
        "{out}"
    );
    assert!(out.contains("provers: lean 4.9.0, z3 4.13.0"), "{out}");
    assert!(
        out.contains("installed, declared by no project: go, lean"),
        "{out}"
    );
    insta::assert_snapshot!("toolchains", out);
}

#[test]
fn realm_view_shows_domains_contracts_bindings_stale_and_verdicts() {
    let mut s = empty();
    s.realms = vec![realm()];
    let mut a = app(s);
    a.set_view(View::Realm);
    let out = screen(&a);
    for want in [
        "billing: api -> web, cli",
        "billing/invoice 1.2.0 (owner api)",
        "web imports invoice ^1.0",
        "web resolved invoice 1.1.0, contract is at 1.2.0",
        "contract:acme/billing/invoice compatible",
    ] {
        assert!(out.contains(want), "{want}: {out}");
    }
    insta::assert_snapshot!("realm", out);
}

#[test]
fn events_view_newest_first_with_detail_and_filter() {
    let mut s = empty();
    s.events = events(40);
    let mut a = app(s);
    a.set_view(View::Events);
    let out = screen(&a);
    let first = out.lines().nth(3).unwrap_or_default();
    assert!(first.starts_with(">40"), "newest first: {out}");
    insta::assert_snapshot!("events", out);
    handle_key(&mut a, key(KeyCode::Enter));
    let out = screen(&a);
    assert!(out.contains("event 40 (Enter/Esc closes)"), "{out}");
    assert!(out.contains(&format!("prev {:064x}", 39)), "{out}");
    assert!(out.contains("\"project\": \"p00\""), "{out}");
    insta::assert_snapshot!("event_detail", out);
    handle_key(&mut a, key(KeyCode::Esc));
    for c in "type:sandbox.* actor:daemon".chars() {
        a.filter.push(c);
    }
    let out = screen(&a);
    assert!(
        out.contains("events, newest first (7/40)"),
        "odd seqs divisible by 3 up to 40: {out}"
    );
    assert!(!out.contains("backup.synced"), "{out}");
}

#[test]
fn help_confirm_and_job_overlays() {
    let mut a = app(estate(3));
    handle_key(&mut a, key(KeyCode::Char('?')));
    let out = screen(&a);
    assert!(
        out.contains("keys (? or Esc closes)") && out.contains("sync all projects (asks first)"),
        "{out}"
    );
    insta::assert_snapshot!("help", out);
    handle_key(&mut a, key(KeyCode::Esc));
    handle_key(&mut a, key(KeyCode::Char('j')));
    handle_key(&mut a, key(KeyCode::Char('s')));
    let out = screen(&a);
    assert!(
        out.contains("sync p01 to the backup?") && out.contains("y: yes   n/Esc: no"),
        "{out}"
    );
    insta::assert_snapshot!("confirm_sync", out);
    a.confirm = None;
    a.job = Some(Job {
        title: "sync all (3 projects)".into(),
        lines: vec![
            (
                "p00".into(),
                "synced: 12 files, 3.0 KiB transferred, root 00000000deadbeef (event 130)".into(),
            ),
            (
                "p01".into(),
                "files 4/10, 1.5 MiB of 3.0 MiB, 750.0 KiB/s".into(),
            ),
            (
                "p02".into(),
                "blocked: denied (guard:mount): /mnt/backup is not mounted".into(),
            ),
        ],
        finished: false,
        cancelling: false,
    });
    let out = screen(&a);
    assert!(
        out.contains("p01: files 4/10, 1.5 MiB of 3.0 MiB, 750.0 KiB/s"),
        "{out}"
    );
    assert!(out.contains("x or Ctrl-C cancels"), "{out}");
    insta::assert_snapshot!("sync_progress", out);
}

#[test]
fn no_color_draws_no_style_and_color_marks_the_selection() {
    let mut a = app(estate(5));
    let plain = draw(&a, 80, 24);
    for cell in plain.content() {
        assert_eq!(cell.fg, Color::Reset, "NO_COLOR: no foreground colour");
        assert_eq!(cell.bg, Color::Reset, "NO_COLOR: no background colour");
        assert!(cell.modifier.is_empty(), "NO_COLOR: no bold/reverse");
    }
    a.color = true;
    let coloured = draw(&a, 80, 24);
    // Row 3 (after tabs, the table's top border and its header) is the selected p00.
    assert!(coloured[(1, 3)].modifier.contains(Modifier::REVERSED));
    assert_eq!(
        text(&plain),
        text(&coloured),
        "colour changes styles, never text"
    );
}

#[test]
fn a_small_terminal_does_not_panic() {
    let a = app(estate(50));
    for (w, h) in [(20, 5), (40, 10), (80, 24), (1, 1)] {
        let _ = draw(&a, w, h);
    }
}

#[test]
fn pin_input_and_the_diff_to_confirm() {
    let mut s = empty();
    s.tools = tools();
    let mut a = app(s);
    a.set_view(View::Toolchains);
    handle_key(&mut a, key(KeyCode::Char('j')));
    handle_key(&mut a, key(KeyCode::Char('p')));
    let out = screen(&a);
    assert!(
        out.contains("pin nodejs to: 20.11.1_  (Enter shows the change, Esc cancels)"),
        "{out}"
    );
    assert!(
        out.lines()
            .last()
            .is_some_and(|l| l.contains("Enter show the change")),
        "{out}"
    );
    a.pin_input = None;
    a.confirm = Some(repoman_tui::app::Confirm {
        request: repoman_tui::app::Request::Edit {
            project: "api".into(),
            tool: "nodejs".into(),
            file: "/home/dev/src/api/.tool-versions".into(),
            versions: Some(vec!["20.11.1".into()]),
            diff: String::new(),
        },
        lines: vec![
            "--- /home/dev/src/api/.tool-versions".into(),
            "+++ /home/dev/src/api/.tool-versions".into(),
            "@@ -1,2 +1,2 @@".into(),
            " rust 1.88.0".into(),
            "-nodejs 22.1.0".into(),
            "+nodejs 20.11.1".into(),
        ],
    });
    let out = screen(&a);
    assert!(
        out.contains("pin nodejs to 20.11.1? (the change to write)"),
        "{out}"
    );
    assert!(
        out.contains("-nodejs 22.1.0") && out.contains("+nodejs 20.11.1"),
        "{out}"
    );
    insta::assert_snapshot!("pin_diff", out);
}
