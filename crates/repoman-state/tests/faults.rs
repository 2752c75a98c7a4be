//! The log is never written after damage it has not repaired, and lost events are reported, never
//! renumbered over (issue 16): a torn tail met by a read-only command's index rebuild, a deleted
//! last segment, a deleted middle segment, and the human acknowledgement of a loss.

#![allow(clippy::unwrap_used)]

mod common;

use common::Fixture;
use repoman_state::doctor::{self, DoctorOptions, FindingClass};
use repoman_state::log::{ChainVerifier, Head, LOSS_ACKNOWLEDGED};
use repoman_state::{EventQuery, NewEvent, State, StateError, StateOptions};
use serde_json::json;

fn append(s: &State, n: usize) {
    for i in 0..n {
        s.append(NewEvent::new("test.step", "project:alpha", json!({"i": i})))
            .unwrap();
    }
}

fn all_events(s: &State) -> Result<Vec<u64>, StateError> {
    Ok(s.events(&EventQuery::default())?
        .into_iter()
        .map(|e| e.seq)
        .collect())
}

/// Verify the whole log: one chain (gaps only where acknowledged). Returns the head seq.
fn verify_log(s: &State) -> u64 {
    let mut v = ChainVerifier::new(Head::empty());
    for l in s.log().read_from(1).unwrap().located() {
        v.check(&l.unwrap()).unwrap();
    }
    v.finish().unwrap();
    v.head().seq
}

fn doctor(s: &State, env: &repoman_core::Env, opts: DoctorOptions) -> doctor::DoctorReport {
    doctor::run(s, env, opts).unwrap()
}

#[test]
fn a_torn_tail_met_by_a_read_only_rebuild_is_reported_and_nothing_is_appended() {
    let fx = Fixture::new();
    append(&fx.open(), 5);
    let seg = fx.state_dir().join("events/seg-000000000001.jsonl");
    let torn = b"{\"seq\":6,\"partial";
    let mut bytes = std::fs::read(&seg).unwrap();
    bytes.extend_from_slice(torn);
    std::fs::write(&seg, &bytes).unwrap();
    std::fs::remove_file(fx.index()).unwrap();

    // `repoman log` on a read-only handle: the index is rebuilt from the committed events, the
    // torn bytes are reported, and not one byte is appended after them.
    let ro = fx.read_only();
    assert_eq!(all_events(&ro).unwrap(), [1, 2, 3, 4, 5]);
    assert_eq!(std::fs::read(&seg).unwrap(), bytes, "the log was written");
    assert!(
        ro.warnings().iter().any(|w| w.contains("torn byte")),
        "{:?}",
        ro.warnings()
    );
    // doctor sees a torn tail (auto-repairable), not a broken chain.
    let report = doctor(&ro, &fx.env, DoctorOptions::default());
    assert!(!report.needs_review(), "{:?}", report.findings);
    assert!(report.findings.iter().any(|f| f.check == "events.tail"));
    let rw = fx.open();
    let report = doctor(
        &rw,
        &fx.env,
        DoctorOptions {
            repair: true,
            ..Default::default()
        },
    );
    assert_eq!(report.unrepaired(), 0, "{:?}", report.findings);
    append(&rw, 2);
    let head = verify_log(&rw);
    assert!(head >= 7, "{head}");
    let report = doctor(&fx.read_only(), &fx.env, DoctorOptions::default());
    assert!(report.findings.is_empty(), "{:?}", report.findings);
}

#[test]
fn appending_refuses_to_write_after_torn_bytes_it_did_not_quarantine() {
    let fx = Fixture::new();
    let s = fx.open();
    append(&s, 3);
    // Bytes land after the tail between this handle's read of the tail and its write: the
    // writer must notice rather than glue its line to them.
    let seg = fx.state_dir().join("events/seg-000000000001.jsonl");
    let tail = s.log().tail().unwrap();
    let mut f = std::fs::OpenOptions::new().append(true).open(&seg).unwrap();
    std::io::Write::write_all(&mut f, b"{\"torn").unwrap();
    let err = s.log().write_events(&tail, &[]).map(|_| ());
    assert!(err.is_ok(), "nothing to write is fine");
    let ev = repoman_state::Event {
        seq: 4,
        id: uuid::Uuid::nil(),
        at: "2026-01-01T00:00:00.000Z".into(),
        type_: "test.step".into(),
        object: "project:alpha".into(),
        actor: "human:alice@h".into(),
        device: "d".into(),
        profile: "default".into(),
        data: json!({}),
        prev: tail.head.hash.clone(),
        hash: String::new(),
    };
    let err = s.log().write_events(&tail, &[ev]).unwrap_err();
    assert!(matches!(err, StateError::TornTail { .. }), "{err}");
}

fn segmented(fx: &Fixture) -> State {
    fx.open_with(StateOptions {
        segment_max: 1500,
        ..Default::default()
    })
}

#[test]
fn a_lost_last_segment_is_reported_as_lost_events_and_never_renumbered_over() {
    let fx = Fixture::new();
    let s = segmented(&fx);
    append(&s, 30);
    assert_eq!(all_events(&s).unwrap().len(), 30);
    let segs = s.log().segments().unwrap();
    assert!(segs.len() >= 3, "{segs:?}");
    let (first_lost, last) = segs.last().unwrap().clone();
    std::fs::remove_file(&last).unwrap();
    let lost_to = 30;

    for s in [segmented(&fx), fx.read_only()] {
        let err = all_events(&s).unwrap_err();
        match &err {
            StateError::LostEvents { from, to, .. } => {
                assert_eq!((*from, *to), (first_lost, lost_to), "{err}")
            }
            e => panic!("expected lost events, got {e}"),
        }
        assert!(err.needs_human());
    }
    let s = segmented(&fx);
    let err = s
        .append(NewEvent::new("test.step", "project:alpha", json!({})))
        .unwrap_err();
    assert!(matches!(err, StateError::LostEvents { .. }), "{err}");
    assert_eq!(
        s.head().unwrap().seq,
        first_lost - 1,
        "nothing was appended"
    );

    // doctor keeps saying so (needs a human) and --repair does not paper over it.
    let report = doctor(&s, &fx.env, DoctorOptions::default());
    let f = report
        .findings
        .iter()
        .find(|f| f.check == "events.lost")
        .unwrap();
    assert_eq!(f.class, FindingClass::NeedsReview);
    assert!(
        f.message
            .contains(&format!("events {first_lost} to {lost_to}")),
        "{}",
        f.message
    );
    let report = doctor(
        &s,
        &fx.env,
        DoctorOptions {
            repair: true,
            ..Default::default()
        },
    );
    assert!(report.needs_review());
    assert!(matches!(
        all_events(&s).unwrap_err(),
        StateError::LostEvents { .. }
    ));

    // A human acknowledges: one event, after the lost range, linked to the last lost hash.
    let report = doctor(
        &s,
        &fx.env,
        DoctorOptions {
            acknowledge_loss: true,
            ..Default::default()
        },
    );
    assert!(!report.needs_review(), "{:?}", report.findings);
    let evs = s.events(&EventQuery::default()).unwrap();
    let ack = evs.iter().find(|e| e.type_ == LOSS_ACKNOWLEDGED).unwrap();
    assert_eq!(ack.seq, lost_to + 1, "the lost seqs are never reused");
    assert_eq!(ack.data["from"], first_lost);
    assert_eq!(ack.data["to"], lost_to);
    assert!(evs.iter().all(|e| e.seq < first_lost || e.seq > lost_to));
    append(&s, 1);
    let head = s.head().unwrap().seq;
    assert!(head > lost_to + 1);
    assert_eq!(verify_log(&s), head);
    // A rebuild from the log accepts the acknowledged gap; doctor is healthy again.
    std::fs::remove_file(fx.index()).unwrap();
    let lost = lost_to - first_lost + 1;
    let rebuilt = all_events(&segmented(&fx)).unwrap();
    assert_eq!(
        rebuilt.len() as u64 + lost,
        rebuilt.last().copied().unwrap()
    );
    let report = doctor(&fx.read_only(), &fx.env, DoctorOptions::default());
    assert!(report.findings.is_empty(), "{:?}", report.findings);
}

#[test]
fn a_lost_middle_segment_is_reported_with_its_range_until_acknowledged() {
    let fx = Fixture::new();
    let s = segmented(&fx);
    append(&s, 30);
    let segs = s.log().segments().unwrap();
    assert!(segs.len() >= 3, "{segs:?}");
    let (from, middle) = segs[1].clone();
    let to = segs[2].0 - 1;
    std::fs::remove_file(&middle).unwrap();

    let report = doctor(&fx.read_only(), &fx.env, DoctorOptions::default());
    let f = report
        .findings
        .iter()
        .find(|f| f.check == "events.lost")
        .unwrap_or_else(|| panic!("{:?}", report.findings));
    assert_eq!(f.class, FindingClass::NeedsReview);
    assert!(
        f.message.contains(&format!("events {from} to {to}")),
        "{}",
        f.message
    );
    assert!(
        !report.findings.iter().any(|f| f.check == "events.chain"),
        "a lost segment is not reported as tampering: {:?}",
        report.findings
    );
    // A rebuild refuses to index past the unacknowledged gap.
    std::fs::remove_file(fx.index()).unwrap();
    let err = all_events(&segmented(&fx)).unwrap_err();
    assert!(
        matches!(err, StateError::LostEvents { from: f, to: t, .. } if (f, t) == (from, to)),
        "{err}"
    );
    let report = doctor(
        &segmented(&fx),
        &fx.env,
        DoctorOptions {
            acknowledge_loss: true,
            ..Default::default()
        },
    );
    assert!(!report.needs_review(), "{:?}", report.findings);
    let s = segmented(&fx);
    let n = all_events(&s).unwrap();
    assert_eq!(n.len() as u64 + (to - from + 1), *n.last().unwrap());
    assert!(!n.contains(&from));
    append(&s, 1);
    verify_log(&s);
    let report = doctor(&fx.read_only(), &fx.env, DoctorOptions::default());
    assert!(report.findings.is_empty(), "{:?}", report.findings);
}

/// A tmpfs of `size` over the fixture's state directory, unmounted (lazily) on drop.
struct Tmpfs(std::path::PathBuf);

impl Tmpfs {
    fn over(dir: &std::path::Path, size: &str) -> Self {
        std::fs::create_dir_all(dir).unwrap();
        let st = std::process::Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size}"),
                "repoman-i16-state",
            ])
            .arg(dir)
            .status()
            .unwrap();
        assert!(st.success(), "mount tmpfs needs root");
        Self(dir.to_path_buf())
    }

    fn remount(&self, opts: &str) {
        let st = std::process::Command::new("mount")
            .args(["-o", &format!("remount,{opts}")])
            .arg(&self.0)
            .status()
            .unwrap();
        assert!(st.success());
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .status();
    }
}

fn hint(e: &StateError) -> String {
    use repoman_core::DomainError;
    format!("{e} / hint: {}", e.hint().unwrap_or_default())
}

#[test]
fn a_full_state_filesystem_is_named_as_such_and_the_log_stays_one_chain() {
    let fx = Fixture::new();
    let _fs = Tmpfs::over(fx.state_dir(), "2m");
    let s = fx.open();
    append(&s, 3);
    // Fill the filesystem to the last block.
    let filler = fx.state_dir().join("filler");
    let _ = std::process::Command::new("dd")
        .args(["if=/dev/zero", "bs=4k", "status=none"])
        .arg(format!("of={}", filler.display()))
        .status()
        .unwrap();
    let mut failed = None;
    for i in 0..2000 {
        let big = "x".repeat(4000);
        if let Err(e) = s.append(NewEvent::new(
            "test.step",
            "project:alpha",
            json!({"i": i, "pad": big}),
        )) {
            failed = Some(e);
            break;
        }
    }
    let err = failed.expect("a full filesystem must refuse an append");
    let text = hint(&err);
    assert!(text.contains("full"), "{text}");
    assert!(!text.contains("another"), "{text}");
    // Space again: the next append continues the one chain; nothing half-written is glued to it.
    std::fs::remove_file(&filler).unwrap();
    let s = fx.open();
    if let Err(e) = s.append(NewEvent::new("test.step", "project:alpha", json!({}))) {
        // A short write left torn bytes: refused until doctor --repair quarantines them.
        assert!(matches!(e, StateError::TornTail { .. }), "{e}");
        let report = doctor(
            &s,
            &fx.env,
            DoctorOptions {
                repair: true,
                ..Default::default()
            },
        );
        assert_eq!(report.unrepaired(), 0, "{:?}", report.findings);
        append(&fx.open(), 1);
    }
    let head = verify_log(&fx.open());
    assert_eq!(all_events(&fx.open()).unwrap().len() as u64, head);
}

#[test]
fn a_read_only_state_directory_is_named_read_only_not_locked_and_append_then_undoes() {
    let fx = Fixture::new();
    let fs = Tmpfs::over(fx.state_dir(), "16m");
    append(&fx.open(), 2);
    let before = all_events(&fx.open()).unwrap();
    fs.remount("ro");
    let err = match State::open(&fx.paths, &fx.env, repoman_core::Clock::system()) {
        Err(e) => e,
        Ok(s) => s
            .append(NewEvent::new("test.step", "project:alpha", json!({})))
            .unwrap_err(),
    };
    let text = hint(&err);
    assert!(text.contains("read-only"), "{text}");
    assert!(!text.contains("another"), "{text}");
    // A read-only handle still answers, from an index built in memory (nothing is written),
    // and says why.
    let ro = State::open_read_only(&fx.paths, &fx.env, repoman_core::Clock::system()).unwrap();
    assert_eq!(all_events(&ro).unwrap(), before);
    assert!(
        ro.warnings().iter().any(|w| w.contains("read-only")),
        "{:?}",
        ro.warnings()
    );
    fs.remount("rw");

    // `append_then`: the other store's write fails after the event was recorded (here a
    // read-only registry directory): the compensating event says it did not happen.
    let reg_dir = fx.dir.path().join("config");
    let reg = Tmpfs::over(&reg_dir, "1m");
    reg.remount("ro");
    let s = fx.open();
    let r = s.append_then(
        NewEvent::new("test.step", "project:zz", json!({"what": "registered"})),
        || std::fs::write(reg_dir.join("repoman.toml"), "x"),
        |e| {
            NewEvent::new(
                "test.step",
                "project:zz",
                json!({"what": "undone", "error": e.to_string()}),
            )
        },
    );
    match r {
        Err(repoman_state::AppendThenError::Write { error, undone }) => {
            assert_eq!(error.kind(), std::io::ErrorKind::ReadOnlyFilesystem);
            assert!(undone);
        }
        other => panic!("{other:?}"),
    }
    let evs = s.events(&EventQuery::default()).unwrap();
    let last: Vec<&str> = evs
        .iter()
        .rev()
        .take(2)
        .map(|e| e.data["what"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(last, ["undone", "registered"]);
    verify_log(&s);
}
