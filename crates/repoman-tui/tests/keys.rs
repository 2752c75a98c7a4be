//! The key state machine, driven with plain key events: no terminal.

mod common;

use common::*;
use crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};
use repoman_core::progress::human_bytes;
use repoman_tui::app::{Action, App, Job, Request, View, event_matches, handle_key};
use repoman_tui::jobs::{JobMsg, apply};
use repoman_tui::snapshot::ProjectRow;

fn k(c: KeyCode) -> KeyEvent {
    KeyEvent::new(c, KeyModifiers::NONE)
}

fn ch(c: char) -> KeyEvent {
    k(KeyCode::Char(c))
}

fn press(a: &mut App, keys: &str) -> Vec<Action> {
    keys.chars().map(|c| handle_key(a, ch(c))).collect()
}

#[test]
fn tab_and_shift_tab_cycle_the_views_and_wrap() {
    let mut a = app(estate(3));
    let mut seen = Vec::new();
    for _ in 0..6 {
        seen.push(a.view());
        assert_eq!(handle_key(&mut a, k(KeyCode::Tab)), Action::None);
    }
    assert_eq!(
        seen,
        [
            View::Projects,
            View::Backups,
            View::Toolchains,
            View::Realm,
            View::Events,
            View::Projects
        ]
    );
    handle_key(&mut a, k(KeyCode::BackTab));
    assert_eq!(a.view(), View::Projects, "six Tabs then one Shift-Tab");
    handle_key(&mut a, k(KeyCode::BackTab));
    assert_eq!(a.view(), View::Events, "Shift-Tab wraps backwards");
    press(&mut a, "l");
    assert_eq!(a.view(), View::Projects);
    press(&mut a, "h");
    assert_eq!(a.view(), View::Events);
    press(&mut a, "3");
    assert_eq!(a.view(), View::Toolchains);
    handle_key(&mut a, k(KeyCode::Left));
    assert_eq!(a.view(), View::Backups);
}

#[test]
fn moving_is_clamped_and_per_view() {
    let mut a = app(estate(5));
    press(&mut a, "kkk");
    assert_eq!(a.selected[0], 0, "k at the top stays");
    press(&mut a, "jjjjjjjj");
    assert_eq!(a.selected[0], 4, "j at the bottom stays");
    press(&mut a, "g");
    assert_eq!(a.selected[0], 0);
    press(&mut a, "G");
    assert_eq!(a.selected[0], 4);
    handle_key(&mut a, k(KeyCode::Up));
    assert_eq!(a.selected[0], 3);
    handle_key(&mut a, k(KeyCode::Tab));
    assert_eq!(a.selected[1], 0, "each view keeps its own selection");
    handle_key(&mut a, k(KeyCode::Down));
    assert_eq!((a.selected[0], a.selected[1]), (3, 1));
    // An empty view has nothing to move.
    press(&mut a, "4jj");
    assert_eq!(a.selected[3], 0);
}

#[test]
fn filter_typing_does_not_trigger_keys_and_esc_clears() {
    let mut a = app(estate(30));
    press(&mut a, "jj");
    assert_eq!(press(&mut a, "/"), [Action::None]);
    assert!(a.filter_editing);
    // `q`, `j` and `?` are text while the filter is edited.
    let acts = press(&mut a, "p1q");
    assert!(acts.iter().all(|x| *x == Action::None));
    assert_eq!(a.filter, "p1q");
    assert!(!a.help);
    handle_key(&mut a, k(KeyCode::Backspace));
    assert_eq!(a.filter, "p1");
    assert_eq!(a.selected[0], 0, "editing the filter resets the selection");
    handle_key(&mut a, k(KeyCode::Enter));
    assert!(!a.filter_editing);
    let names: Vec<&str> = a
        .rows(View::Projects)
        .iter()
        .map(|&i| a.snapshot.projects[i].name.as_str())
        .collect();
    assert_eq!(
        names,
        [
            "p10", "p11", "p12", "p13", "p14", "p15", "p16", "p17", "p18", "p19"
        ]
    );
    // Esc first clears the filter, and only then quits.
    assert_eq!(handle_key(&mut a, k(KeyCode::Esc)), Action::None);
    assert_eq!(a.filter, "");
    assert_eq!(a.rows(View::Projects).len(), 30);
    assert_eq!(handle_key(&mut a, k(KeyCode::Esc)), Action::Quit);
    // Esc while editing throws the filter away.
    press(&mut a, "/zz");
    handle_key(&mut a, k(KeyCode::Esc));
    assert!(!a.filter_editing);
    assert_eq!(a.filter, "");
}

#[test]
fn help_overlay_swallows_keys_until_closed() {
    let mut a = app(estate(3));
    press(&mut a, "?");
    assert!(a.help);
    assert_eq!(press(&mut a, "jS"), [Action::None, Action::None]);
    assert_eq!(a.selected[0], 0, "keys under the help do nothing");
    assert!(a.confirm.is_none());
    assert_eq!(
        press(&mut a, "q"),
        [Action::None],
        "q closes the help, it does not quit"
    );
    assert!(!a.help);
    assert_eq!(press(&mut a, "q"), [Action::Quit]);
}

#[test]
fn esc_closes_the_detail_before_quitting() {
    let mut a = app(estate(3));
    handle_key(&mut a, k(KeyCode::Enter));
    assert!(a.detail);
    assert_eq!(handle_key(&mut a, k(KeyCode::Esc)), Action::None);
    assert!(!a.detail);
    assert_eq!(handle_key(&mut a, k(KeyCode::Esc)), Action::Quit);
    // Enter on an empty view opens nothing.
    let mut e = app(empty());
    handle_key(&mut e, k(KeyCode::Enter));
    assert!(!e.detail);
}

#[test]
fn ctrl_c_quits_or_cancels_running_work() {
    let ctrl_c = KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL);
    let mut a = app(estate(3));
    press(&mut a, "/ab");
    assert_eq!(
        handle_key(&mut a, ctrl_c),
        Action::Quit,
        "even while typing a filter"
    );
    let mut a = app(estate(3));
    a.job = Some(Job {
        title: "sync".into(),
        ..Job::default()
    });
    assert_eq!(handle_key(&mut a, ctrl_c), Action::Cancel);
    assert!(a.job.as_ref().is_some_and(|j| j.cancelling));
    assert_eq!(press(&mut a, "x"), [Action::Cancel]);
    assert_eq!(
        press(&mut a, "s"),
        [Action::None],
        "no second sync while one runs"
    );
    assert!(a.confirm.is_none());
    apply(
        &mut a,
        JobMsg::Finished("sync: 0 synced (cancelled)".into()),
    );
    assert_eq!(
        handle_key(&mut a, ctrl_c),
        Action::Quit,
        "finished work: Ctrl-C quits"
    );
}

#[test]
fn sync_asks_first_and_runs_only_on_yes() {
    let mut a = app(estate(3));
    press(&mut a, "j");
    assert_eq!(press(&mut a, "s"), [Action::None]);
    let c = a.confirm.clone().expect("a question");
    assert_eq!(c.request, Request::Sync(vec!["p01".into()]));
    assert_eq!(c.request.question(), "sync p01 to the backup?");
    // Other keys leave the question open; n answers no.
    assert_eq!(press(&mut a, "jq"), [Action::None, Action::None]);
    assert!(a.confirm.is_none(), "q answers no");
    assert_eq!(a.message.as_deref(), Some("cancelled; nothing was changed"));
    press(&mut a, "s");
    assert_eq!(press(&mut a, "j"), [Action::None]);
    assert!(a.confirm.is_some(), "j does not answer");
    assert_eq!(
        press(&mut a, "y"),
        [Action::Run(Request::Sync(vec!["p01".into()]))]
    );
    assert!(a.confirm.is_none());
}

#[test]
fn sync_all_takes_registered_projects_only() {
    let mut s = estate(3);
    s.projects.push(ProjectRow {
        name: "orphan1".into(),
        registered: false,
        state: "Running".into(),
        ..ProjectRow::default()
    });
    let mut a = app(s);
    press(&mut a, "G");
    press(&mut a, "s");
    assert!(a.confirm.is_none(), "an orphan cannot be synced");
    assert!(
        a.message
            .as_deref()
            .is_some_and(|m| m.contains("S syncs all"))
    );
    press(&mut a, "S");
    let req = a.confirm.clone().map(|c| c.request);
    assert_eq!(
        req,
        Some(Request::Sync(vec![
            "p00".into(),
            "p01".into(),
            "p02".into()
        ]))
    );
    assert_eq!(
        Request::Sync(vec!["a".into(), "b".into()]).question(),
        "sync all 2 projects to the backup?"
    );
    // From the Backups view, `s` syncs the selected backup's project.
    let mut a = app(estate(3));
    press(&mut a, "2jjs");
    assert_eq!(
        a.confirm.map(|c| c.request),
        Some(Request::Sync(vec!["p02".into()]))
    );
    // Nothing registered: nothing to ask.
    let mut e = app(empty());
    press(&mut e, "S");
    assert!(e.confirm.is_none());
}

#[test]
fn refresh_and_key_release_events() {
    let mut a = app(estate(2));
    assert_eq!(press(&mut a, "r"), [Action::Refresh]);
    assert!(a.refreshing);
    let mut release = ch('q');
    release.kind = KeyEventKind::Release;
    assert_eq!(
        handle_key(&mut a, release),
        Action::None,
        "a key release is not a press"
    );
}

#[test]
fn events_filter_terms() {
    let m = |f: &str| event_matches(f, "backup.synced", "backup:alpha", "human:dev@host");
    assert!(m(""));
    assert!(m("alpha"));
    assert!(m("type:backup.*"));
    assert!(m("type:backup"), "without `*`, a substring");
    assert!(m("type:synced"));
    assert!(!m("type:synced*"), "with `*`, a prefix");
    assert!(!m("type:sandbox.*"));
    assert!(m("object:backup:alpha actor:human"));
    assert!(!m("object:beta"));
    assert!(!m("alpha actor:daemon"), "every term must match");
    assert!(
        !m("ACTOR:HUMAN"),
        "field names are lower case: this is a bare term"
    );
}

#[test]
fn job_messages_fold_into_the_job() {
    let mut a = app(estate(2));
    a.job = Some(Job {
        title: "sync all".into(),
        lines: vec![
            ("p00".into(), "waiting".into()),
            ("p01".into(), "waiting".into()),
        ],
        ..Job::default()
    });
    assert!(!apply(
        &mut a,
        JobMsg::Line("p01".into(), "planning".into())
    ));
    assert!(!apply(&mut a, JobMsg::Line("p02".into(), "late".into())));
    let j = a.job.clone().expect("a job");
    assert_eq!(
        j.lines,
        [
            ("p00".to_owned(), "waiting".to_owned()),
            ("p01".to_owned(), "planning".to_owned()),
            ("p02".to_owned(), "late".to_owned())
        ]
    );
    assert!(apply(&mut a, JobMsg::Finished("sync: 2 synced".into())));
    assert!(a.job.as_ref().is_some_and(|j| j.finished));
    assert_eq!(a.message.as_deref(), Some("sync: 2 synced"));
    // Esc closes a finished job's pane.
    handle_key(&mut a, k(KeyCode::Esc));
    assert!(a.job.is_none());
    assert_eq!(human_bytes(0), "0 B");
    assert_eq!(human_bytes(1536), "1.5 KiB");
    assert_eq!(human_bytes(3 * 1024 * 1024), "3.0 MiB");
}

#[test]
fn new_data_keeps_the_selection_in_range() {
    let mut a = app(estate(10));
    press(&mut a, "G");
    assert_eq!(a.selected[0], 9);
    a.set_snapshot(estate(4));
    assert_eq!(a.selected[0], 3, "clamped to the new last row");
    assert_eq!(a.selected_project().as_deref(), Some("p03"));
    a.set_snapshot(empty());
    assert_eq!(a.selected[0], 0);
    assert_eq!(a.selected_project(), None);
}

#[test]
fn verify_runs_at_once_and_start_stop_ask_first() {
    let mut a = app(estate(3));
    press(&mut a, "j");
    assert_eq!(
        press(&mut a, "v"),
        [Action::Run(Request::Verify(vec!["p01".into()]))]
    );
    assert!(
        a.confirm.is_none(),
        "verifying changes nothing: no question"
    );
    press(&mut a, "u");
    let c = a.confirm.clone().map(|c| c.request);
    assert_eq!(c, Some(Request::Start("p01".into())));
    assert_eq!(
        press(&mut a, "y"),
        [Action::Run(Request::Start("p01".into()))]
    );
    press(&mut a, "D");
    assert_eq!(
        a.confirm.as_ref().map(|c| c.request.question()),
        Some("stop the sandbox p01?".to_owned())
    );
    assert_eq!(press(&mut a, "n"), [Action::None]);
    assert!(a.confirm.is_none());
    // Start/stop act on sandboxes: only from Projects.
    press(&mut a, "2u");
    assert!(a.confirm.is_none());
    assert!(
        a.message
            .as_deref()
            .is_some_and(|m| m.contains("in Projects"))
    );
    // Lower-case d does nothing (a stop is never one slip away).
    press(&mut a, "1d");
    assert!(a.confirm.is_none());
}

#[test]
fn e_opens_a_shell_only_for_a_registered_project_in_projects() {
    let mut a = app(estate(3));
    press(&mut a, "jj");
    assert_eq!(press(&mut a, "e"), [Action::Shell("p02".into())]);
    press(&mut a, "2");
    assert_eq!(press(&mut a, "e"), [Action::None]);
    assert!(
        a.message
            .as_deref()
            .is_some_and(|m| m.contains("in Projects"))
    );
    let mut e = app(empty());
    assert_eq!(press(&mut e, "e"), [Action::None]);
}

#[test]
fn pin_asks_for_versions_then_plans_and_unpin_plans_at_once() {
    let mut s = estate(1);
    s.tools = tools();
    let mut a = app(s);
    press(&mut a, "p");
    assert!(a.pin_input.is_none(), "p does nothing outside Toolchains");
    press(&mut a, "3j");
    assert_eq!(press(&mut a, "p"), [Action::None]);
    // nodejs wants 22.1.0, 20.11.1 is installed: the installed version is offered.
    assert_eq!(a.pin_input, Some((1, "20.11.1".to_owned())));
    // Typing edits the text; `q` is text here, not quit.
    handle_key(&mut a, k(KeyCode::Backspace));
    assert_eq!(
        press(&mut a, "9 q"),
        [Action::None, Action::None, Action::None]
    );
    assert_eq!(a.pin_input, Some((1, "20.11.9 q".to_owned())));
    for _ in 0..2 {
        handle_key(&mut a, k(KeyCode::Backspace));
    }
    let act = handle_key(&mut a, k(KeyCode::Enter));
    assert_eq!(
        act,
        Action::Plan(Request::Edit {
            project: "api".into(),
            tool: "nodejs".into(),
            file: "/home/dev/src/api/.tool-versions".into(),
            versions: Some(vec!["20.11.9".into()]),
            diff: String::new(),
        })
    );
    assert!(a.pin_input.is_none());
    // An empty version is not a pin.
    press(&mut a, "p");
    a.pin_input = a.pin_input.take().map(|(r, _)| (r, String::new()));
    assert_eq!(handle_key(&mut a, k(KeyCode::Enter)), Action::None);
    assert!(a.pin_input.is_some(), "still asking");
    handle_key(&mut a, k(KeyCode::Esc));
    assert!(a.pin_input.is_none());
    // A satisfied tool offers its declared version; U plans an unpin.
    press(&mut a, "k");
    press(&mut a, "p");
    assert_eq!(a.pin_input, Some((0, "1.88.0".to_owned())));
    handle_key(&mut a, k(KeyCode::Esc));
    let act = press(&mut a, "U");
    assert!(
        matches!(&act[0], Action::Plan(Request::Edit { tool, versions: None, .. }) if tool == "rust"),
        "{act:?}"
    );
}

#[test]
fn t_plans_a_trust_review_in_projects_only() {
    let mut a = app(estate(3));
    press(&mut a, "jjj");
    assert_eq!(
        press(&mut a, "t"),
        [Action::Plan(Request::Trust {
            project: "p02".into(),
            hash: String::new()
        })]
    );
    assert_eq!(press(&mut a, "2t"), [Action::None, Action::None]);
}

#[test]
fn capital_r_plans_a_repair_only_where_there_is_drift() {
    let mut a = app(estate(5));
    assert_eq!(press(&mut a, "R"), [Action::None], "p00 has no drift");
    assert_eq!(a.message.as_deref(), Some("p00 has no drift to repair"));
    press(&mut a, "jjjj");
    assert_eq!(
        press(&mut a, "R"),
        [Action::Plan(Request::Repair {
            project: "p04".into(),
            action: String::new()
        })]
    );
    assert_eq!(
        press(&mut a, "r"),
        [Action::Refresh],
        "lower-case r only refreshes"
    );
    assert_eq!(
        Request::Repair {
            project: "p04".into(),
            action: "reapply".into()
        }
        .question(),
        "repair p04: reapply?"
    );
}
