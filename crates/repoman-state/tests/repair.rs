//! Self-repair of the index and the log with real files and real SQLite: each damage is detected,
//! the bad file is moved aside (never deleted), the index is rebuilt, a report and a
//! `repair.applied` event are written, and `explain` answers exactly as before.
#![allow(clippy::unwrap_used)]

mod common;

use std::io::Write;

use common::Fixture;
use repoman_state::doctor::{self, DoctorOptions, FindingClass};
use repoman_state::explain::explain;
use repoman_state::log::{ChainVerifier, Head};
use repoman_state::{Effect, NewConflict, NewEvent, Operation, Verdict};
use serde_json::{Value, json};

/// A small estate: a project with a backup, a blocked sync, a conflict.
fn populate(fx: &Fixture) {
    let s = fx.open();
    s.append(NewEvent::new(
        "project.registered",
        "project:alpha",
        json!({"repo": "alpha"}),
    ))
    .unwrap();
    s.append(NewEvent::new(
        "backup.synced",
        "backup:alpha",
        json!({"manifest": "b3-0123abcd", "files": 12}),
    ))
    .unwrap();
    let op = Operation {
        name: "sync".into(),
        object: "backup:alpha".into(),
        project: Some("alpha".into()),
    };
    let guard = Verdict {
        rule: "backup.max-delete".into(),
        effect: Effect::ReviewRequired,
        reason: "40 deletions exceed max_delete 10".into(),
        unblock: Some("repoman sync alpha --allow-deletes 40".into()),
    };
    s.decide(&op, vec![guard], &[]).unwrap();
    s.record_conflict(NewConflict {
        kind: "backup-diverged".into(),
        object: "backup:alpha".into(),
        project: Some("alpha".into()),
        detail: json!({"paths": ["src/a.rs"]}),
    })
    .unwrap();
}

/// explain's answers without the head it was computed at (a repair appends an event).
fn answers(fx: &Fixture) -> (Value, Vec<repoman_state::repair::RepairReport>) {
    let s = fx.read_only();
    let x = explain(&s, "alpha").unwrap();
    let mut v = serde_json::to_value(&x).unwrap();
    v.as_object_mut().unwrap().remove("as_of_seq");
    (v, s.repairs())
}

fn check_repair(fx: &Fixture, expect_reason: &str, damaged_bytes: Option<Vec<u8>>) {
    let (after, repairs) = answers(fx);
    assert_eq!(repairs.len(), 1, "{repairs:?}");
    let r = &repairs[0];
    assert_eq!(r.store, "index");
    assert!(r.failed.contains(expect_reason), "{}", r.failed);
    assert!(!r.next_action.is_empty() && !r.rebuilt.is_empty() && !r.preserved.is_empty());
    // The report is on disk and matches its schema.
    let path = r.path.clone().unwrap();
    let report: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    repoman_state::schemas::validate("repoman.repair-report/v1", &report, "report").unwrap();
    // The damaged file is kept, byte for byte.
    if let Some(bytes) = damaged_bytes {
        let q = r
            .quarantined
            .iter()
            .find(|q| q.ends_with("index.db"))
            .expect("index.db quarantined");
        assert_eq!(std::fs::read(q).unwrap(), bytes);
    }
    // The repair is an event.
    let s = fx.read_only();
    let ev = s
        .last_event("store:index", "repair.applied")
        .unwrap()
        .unwrap();
    assert_eq!(ev.data["report"], json!(path.display().to_string()));
    // A second open finds nothing to repair.
    let (again, repairs) = answers(fx);
    assert!(repairs.is_empty());
    assert_eq!(again, after);
}

#[test]
fn garbage_in_the_index_is_detected_rebuilt_and_reported() {
    let fx = Fixture::new();
    populate(&fx);
    let (before, _) = answers(&fx);
    let garbage: Vec<u8> = (0..50_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    for suffix in ["-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", fx.index().display()));
    }
    std::fs::write(fx.index(), &garbage).unwrap();
    let (after, _) = answers_checked(&fx, "", Some(garbage));
    assert_eq!(before, after);
}

fn answers_checked(fx: &Fixture, reason: &str, bytes: Option<Vec<u8>>) -> (Value, ()) {
    check_repair(fx, reason, bytes);
    (answers(fx).0, ())
}

#[test]
fn a_deleted_index_is_rebuilt_and_reported() {
    let fx = Fixture::new();
    populate(&fx);
    let (before, _) = answers(&fx);
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", fx.index().display()));
    }
    let (after, _) = answers_checked(&fx, "missing", None);
    assert_eq!(before, after);
}

#[test]
fn an_index_of_an_older_schema_is_rebuilt_and_reported() {
    let fx = Fixture::new();
    populate(&fx);
    let (before, _) = answers(&fx);
    {
        let c = rusqlite::Connection::open(fx.index()).unwrap();
        c.execute(
            "UPDATE meta SET value = '1' WHERE key = 'schema_version'",
            [],
        )
        .unwrap();
        c.execute("DROP TABLE conflicts", []).unwrap();
    }
    let (after, _) = answers_checked(&fx, "schema version 1", None);
    assert_eq!(before, after);
}

#[test]
fn an_index_ahead_of_the_log_is_rebuilt_and_one_behind_catches_up_silently() {
    let fx = Fixture::new();
    populate(&fx);
    let (before, _) = answers(&fx);
    {
        let c = rusqlite::Connection::open(fx.index()).unwrap();
        c.execute("UPDATE meta SET value = '999' WHERE key = 'head_seq'", [])
            .unwrap();
    }
    let (after, _) = answers_checked(&fx, "ahead of the log", None);
    assert_eq!(before, after);

    // Behind: an event written to the log without the index (a crash between the two writes).
    let s = fx.open();
    let tail = s.log().tail().unwrap();
    let id = s.identity().clone();
    let mut e = repoman_state::Event {
        seq: tail.head.seq + 1,
        id: uuid::Uuid::now_v7(),
        at: "2026-03-04T06:00:00.000Z".into(),
        type_: "backup.synced".into(),
        object: "backup:alpha".into(),
        actor: id.actor,
        device: id.device,
        profile: id.profile,
        data: json!({"manifest": "b3-ffff"}),
        prev: tail.head.hash.clone(),
        hash: String::new(),
    };
    e.hash = e.compute_hash();
    s.log()
        .write_events(&tail, std::slice::from_ref(&e))
        .unwrap();
    drop(s);
    let s = fx.read_only();
    assert_eq!(
        s.last_event("backup:alpha", "backup.synced")
            .unwrap()
            .unwrap(),
        e
    );
    assert!(
        s.repairs().is_empty(),
        "catching up is not a repair: {:?}",
        s.repairs()
    );
}

fn append_lines(fx: &Fixture, n: usize) -> repoman_state::State {
    let s = fx.open();
    for i in 0..n {
        s.append(NewEvent::new(
            "tool.discovered",
            format!("tool:t{i}"),
            json!({"version": format!("1.{i}")}),
        ))
        .unwrap();
    }
    s
}

#[test]
fn a_torn_last_line_is_found_by_doctor_and_repaired_keeping_the_bytes() {
    let fx = Fixture::new();
    let s = append_lines(&fx, 5);
    let seg = s.log().segments().unwrap().pop().unwrap().1;
    let torn = br#"{"actor":"human:alice@h","at":"2026-03-04T05:06:07.100Z","data":{"ver"#;
    std::fs::OpenOptions::new()
        .append(true)
        .open(&seg)
        .unwrap()
        .write_all(torn)
        .unwrap();
    drop(s);

    let ro = fx.read_only();
    let report = doctor::run(&ro, &fx.env, DoctorOptions::default()).unwrap();
    let f = report
        .findings
        .iter()
        .find(|f| f.check == "events.tail")
        .unwrap();
    assert_eq!(f.class, FindingClass::AutoRepairable);
    assert_eq!(f.seq, Some(6));
    assert!(!report.needs_review());
    assert_eq!(report.unrepaired(), 1);
    // Dry run changes nothing.
    let len = std::fs::metadata(&seg).unwrap().len();
    doctor::run(
        &ro,
        &fx.env,
        DoctorOptions {
            repair: true,
            dry_run: true,
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(std::fs::metadata(&seg).unwrap().len(), len);

    let rw = fx.open();
    let report = doctor::run(
        &rw,
        &fx.env,
        DoctorOptions {
            repair: true,
            dry_run: false,
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(report.unrepaired(), 0, "{:?}", report.findings);
    let r = report.repairs.iter().find(|r| r.store == "events").unwrap();
    assert_eq!(std::fs::read(&r.quarantined[0]).unwrap(), torn.to_vec());
    let text = std::fs::read_to_string(&seg).unwrap();
    assert!(text.ends_with('\n'));
    // The chain is whole and records the repair.
    let mut v = ChainVerifier::new(Head::empty());
    for l in rw.log().read_from(1).unwrap().located() {
        v.check(&l.unwrap()).unwrap();
    }
    assert_eq!(v.head().seq, 6);
    assert_eq!(
        rw.last_event("store:events", "repair.applied")
            .unwrap()
            .unwrap()
            .seq,
        6
    );
    let again = doctor::run(&rw, &fx.env, DoctorOptions::default()).unwrap();
    assert!(again.findings.is_empty(), "{:?}", again.findings);
}

#[test]
fn an_append_after_a_crash_repairs_the_torn_tail_first() {
    let fx = Fixture::new();
    let s = append_lines(&fx, 3);
    let seg = s.log().segments().unwrap().pop().unwrap().1;
    std::fs::OpenOptions::new()
        .append(true)
        .open(&seg)
        .unwrap()
        .write_all(b"{\"act")
        .unwrap();
    let e = s
        .append(NewEvent::new("project.updated", "project:alpha", json!({})))
        .unwrap();
    assert_eq!(e.seq, 5, "seq 4 is the repair.applied event");
    assert_eq!(
        s.last_event("store:events", "repair.applied")
            .unwrap()
            .unwrap()
            .seq,
        4
    );
    assert_eq!(s.repairs().len(), 1);
}

#[test]
fn a_flipped_byte_is_a_chain_break_with_its_seq_and_is_never_rewritten() {
    let fx = Fixture::new();
    let s = append_lines(&fx, 10);
    let seg = s.log().segments().unwrap().pop().unwrap().1;
    drop(s);
    let mut bytes = std::fs::read(&seg).unwrap();
    // Change the version recorded by seq 6: "1.5" -> "1.6" (still valid JSON).
    let needle = br#""version":"1.5""#;
    let pos = bytes
        .windows(needle.len())
        .position(|w| w == needle)
        .unwrap();
    bytes[pos + needle.len() - 2] = b'6';
    std::fs::write(&seg, &bytes).unwrap();

    let ro = fx.read_only();
    let report = doctor::run(&ro, &fx.env, DoctorOptions::default()).unwrap();
    let f = report
        .findings
        .iter()
        .find(|f| f.check == "events.chain")
        .unwrap();
    assert_eq!(f.seq, Some(6));
    assert_eq!(f.class, FindingClass::NeedsReview);
    assert!(report.needs_review());
    let rw = fx.open();
    let report = doctor::run(
        &rw,
        &fx.env,
        DoctorOptions {
            repair: true,
            dry_run: false,
            ..Default::default()
        },
    )
    .unwrap();
    assert!(report.needs_review());
    assert_eq!(
        std::fs::read(&seg).unwrap(),
        bytes,
        "the log must not be rewritten"
    );
    // A rebuild refuses to build on a broken chain and says where.
    std::fs::remove_file(fx.index()).unwrap();
    let err = fx
        .read_only()
        .last_event("tool:t1", "tool.discovered")
        .unwrap_err();
    assert!(
        err.needs_human() && err.to_string().contains("seq 6"),
        "{err}"
    );
}

#[test]
fn a_damaged_line_inside_the_log_is_one_finding_with_its_line() {
    let fx = Fixture::new();
    let s = append_lines(&fx, 6);
    let seg = s.log().segments().unwrap().pop().unwrap().1;
    drop(s);
    let text = std::fs::read_to_string(&seg).unwrap();
    let mut lines: Vec<&str> = text.lines().collect();
    lines[2] = "{\"this is\": not json";
    std::fs::write(&seg, lines.join("\n") + "\n").unwrap();
    let report = doctor::run(&fx.read_only(), &fx.env, DoctorOptions::default()).unwrap();
    let found: Vec<_> = report.findings.iter().map(|f| (f.check, f.seq)).collect();
    assert_eq!(found, [("events.line", Some(3))], "{:?}", report.findings);
    assert!(
        report.findings[0].message.contains(":3:"),
        "{}",
        report.findings[0].message
    );
    assert!(report.needs_review());
}
