//! The event log and its index with real files and real SQLite.
#![allow(clippy::unwrap_used)]

mod common;

use common::Fixture;
use repoman_core::registry::{PolicyRule, RuleEffect};
use repoman_state::log::{ChainVerifier, Head};
use repoman_state::{
    ActorRequest, ConflictFilter, ConflictState, Effect, NewConflict, NewEvent, Operation,
    Resolution, StateError, StateOptions, Verdict,
};
use serde_json::json;

fn verify_chain(state: &repoman_state::State) -> u64 {
    let mut v = ChainVerifier::new(Head::empty());
    for l in state.log().read_from(1).unwrap().located() {
        v.check(&l.unwrap()).unwrap();
    }
    v.head().seq
}

#[test]
fn appends_form_a_chain_and_identity_is_recorded() {
    let fx = Fixture::new();
    let s = fx.open();
    let a = s
        .append(NewEvent::new(
            "project.registered",
            "project:alpha",
            json!({"repo": "alpha"}),
        ))
        .unwrap();
    let b = s
        .append_batch(vec![
            NewEvent::new("backup.synced", "backup:alpha", json!({"files": 3})),
            NewEvent::new("backup.synced", "backup:alpha", json!({"files": 4})),
        ])
        .unwrap();
    assert_eq!(a.seq, 1);
    assert_eq!(a.prev, repoman_state::event::GENESIS_PREV);
    assert_eq!(b[0].prev, a.hash);
    assert_eq!(b.iter().map(|e| e.seq).collect::<Vec<_>>(), [2, 3]);
    assert!(a.actor.starts_with("human:alice@"), "{}", a.actor);
    assert_eq!(a.profile, "default");
    assert_eq!(a.device, s.identity().device);
    assert_eq!(verify_chain(&s), 3);
    let last = s
        .last_event("backup:alpha", "backup.synced")
        .unwrap()
        .unwrap();
    assert_eq!(last, b[1]);
    assert_eq!(s.last_event("backup:beta", "backup.synced").unwrap(), None);
    // A second handle (another process) continues the same chain.
    let s2 = fx.open();
    assert_eq!(s2.identity().device, s.identity().device);
    let c = s2
        .append(NewEvent::new("project.updated", "project:alpha", json!({})))
        .unwrap();
    assert_eq!((c.seq, c.prev.as_str()), (4, b[1].hash.as_str()));
    assert_eq!(
        s.last_event("project:alpha", "project.updated")
            .unwrap()
            .unwrap()
            .seq,
        4
    );
}

#[test]
fn invalid_events_are_refused_with_the_reason() {
    let fx = Fixture::new();
    let s = fx.open();
    for (t, o, d) in [
        ("Bad", "project:a", json!({})),
        ("a.b", "noColon", json!({})),
        ("a.b", "project:a", json!([1])),
    ] {
        let e = s.append(NewEvent::new(t, o, d)).unwrap_err();
        assert!(matches!(e, StateError::InvalidEvent { .. }), "{e}");
    }
    // A registered schema is enforced: policy.decided needs an effect.
    let e = s
        .append(NewEvent::new(
            "policy.decided",
            "backup:a",
            json!({"operation": "sync", "reasons": []}),
        ))
        .unwrap_err();
    assert!(e.to_string().contains("effect"), "{e}");
    assert_eq!(s.head().unwrap().seq, 0);
}

#[test]
fn segments_rotate_by_size_and_readers_stream_across_them() {
    let fx = Fixture::new();
    let s = fx.open_with(StateOptions {
        segment_max: 2000,
        ..StateOptions::default()
    });
    for i in 0..40 {
        s.append(NewEvent::new(
            "tool.discovered",
            format!("tool:t{i}"),
            json!({"version": "1.0"}),
        ))
        .unwrap();
    }
    let segs = s.log().segments().unwrap();
    assert!(segs.len() > 3, "{segs:?}");
    assert_eq!(segs[0].0, 1);
    assert_eq!(verify_chain(&s), 40);
    let from_30: Vec<u64> = s
        .log()
        .read_from(30)
        .unwrap()
        .map(|e| e.unwrap().seq)
        .collect();
    assert_eq!(from_30, (30..=40).collect::<Vec<_>>());
}

#[test]
fn decide_merges_rules_and_records_blocked_plans() {
    let fx = Fixture::new();
    let s = fx.open();
    let op = Operation {
        name: "sync".into(),
        object: "backup:alpha".into(),
        project: Some("alpha".into()),
    };
    let d = s.decide(&op, vec![], &[]).unwrap();
    assert_eq!(d.effect, Effect::Allow);
    assert_eq!(
        s.last_event("backup:alpha", "policy.decided")
            .unwrap()
            .unwrap()
            .seq,
        d.event_seq.unwrap()
    );
    assert!(
        s.last_event("backup:alpha", "sync.plan.blocked")
            .unwrap()
            .is_none()
    );
    let guard = Verdict {
        rule: "backup.source-empty".into(),
        effect: Effect::Deny,
        reason: "the source is empty".into(),
        unblock: Some("repoman sync alpha --allow-empty".into()),
    };
    let rules = [PolicyRule {
        operation: Some("sync".into()),
        actor: Some("human".into()),
        project: None,
        profile: None,
        effect: RuleEffect::ReviewRequired,
        reason: "syncs need review".into(),
    }];
    let d = s.decide(&op, vec![guard], &rules).unwrap();
    assert_eq!(d.effect, Effect::Deny);
    assert_eq!(d.reasons.len(), 2);
    let blocked = s
        .last_event("backup:alpha", "sync.plan.blocked")
        .unwrap()
        .unwrap();
    assert_eq!(blocked.seq, d.event_seq.unwrap() + 1);
    assert_eq!(blocked.data["decision_seq"], json!(d.event_seq.unwrap()));
    assert_eq!(
        blocked.data["unblock"],
        json!(["repoman sync alpha --allow-empty"])
    );
    assert!(
        blocked.data["explanation"]
            .as_str()
            .unwrap()
            .contains("the source is empty")
    );
}

#[test]
fn conflicts_are_recorded_listed_and_resolved_by_humans_only() {
    let fx = Fixture::new();
    let agent = fx.open_with(StateOptions {
        actor: ActorRequest::Agent("alpha".parse().unwrap()),
        ..StateOptions::default()
    });
    let c = agent
        .record_conflict(NewConflict {
            kind: "backup-diverged".into(),
            object: "backup:alpha".into(),
            project: Some("alpha".into()),
            detail: json!({"paths": ["a.txt"]}),
        })
        .unwrap();
    assert_eq!(c.state, ConflictState::Pending);
    let e = agent
        .resolve_conflict(&c.id, Resolution::KeepLocal, json!({}))
        .unwrap_err();
    assert!(
        matches!(e, StateError::NotPermitted { .. }) && e.needs_human(),
        "{e}"
    );
    let human = fx.open();
    assert_eq!(
        human
            .conflicts(ConflictFilter {
                pending_only: true,
                ..Default::default()
            })
            .unwrap()
            .len(),
        1
    );
    assert!(
        human
            .conflicts(ConflictFilter {
                project: Some("beta".into()),
                ..Default::default()
            })
            .unwrap()
            .is_empty()
    );
    let r = human
        .resolve_conflict(&c.id, Resolution::Skip, json!({"why": "later"}))
        .unwrap();
    assert_eq!(r.state, ConflictState::Skipped);
    assert_eq!(r.resolution, Some(Resolution::Skip));
    assert!(r.resolved_by.unwrap().starts_with("human:alice@"));
    assert!(
        human
            .conflicts(ConflictFilter {
                pending_only: true,
                ..Default::default()
            })
            .unwrap()
            .is_empty()
    );
    let e = human
        .resolve_conflict(&c.id, Resolution::KeepLocal, json!({}))
        .unwrap_err();
    assert!(matches!(e, StateError::ConflictClosed { .. }), "{e}");
    assert!(matches!(
        human.resolve_conflict("nope", Resolution::Skip, json!({})),
        Err(StateError::ConflictNotFound(_))
    ));
}

#[test]
fn read_only_open_on_a_fresh_home_creates_nothing() {
    let fx = Fixture::new();
    let s = fx.read_only();
    assert_eq!(s.last_event("project:a", "x.y").unwrap(), None);
    assert!(s.conflicts(ConflictFilter::default()).unwrap().is_empty());
    assert_eq!(s.head().unwrap().seq, 0);
    assert!(
        s.append(NewEvent::new("a.b", "project:a", json!({})))
            .is_err()
    );
    assert_eq!(common::files_under(fx.dir.path()), Vec::<String>::new());
}

#[test]
fn opening_for_writing_creates_nothing_until_the_first_append() {
    let fx = Fixture::new();
    let s = fx.open();
    let candidate = s.identity().device.clone();
    assert!(!s.identity().device_persisted);
    assert!(s.conflicts(ConflictFilter::default()).unwrap().is_empty());
    assert_eq!(common::files_under(fx.dir.path()), Vec::<String>::new());
    let e = s
        .append(NewEvent::new("project.registered", "project:a", json!({})))
        .unwrap();
    assert_eq!(e.device, candidate);
    assert!(s.identity().device_persisted);
    let stored = std::fs::read_to_string(fx.state_dir().join("device-id")).unwrap();
    assert_eq!(stored.trim(), candidate);
    assert_eq!(fx.open().identity().device, candidate);
}

#[test]
fn a_reader_sees_every_append_by_another_handle_and_the_tail_memo_never_hides_one() {
    // The reader keeps its last tail while the segment is unchanged; another handle (another
    // process's view) appends, and the reader's next query must include the event.
    let fx = Fixture::new();
    let reader = fx.open();
    let writer = fx.open();
    for i in 0..20u64 {
        let ev = writer
            .append(NewEvent::new(
                "backup.synced",
                "backup:alpha",
                json!({"files": i}),
            ))
            .unwrap();
        let last = reader.last_event("backup:alpha", "backup.synced").unwrap();
        assert_eq!(last.map(|e| e.seq), Some(ev.seq), "after append {i}");
        // Unchanged: the same answer again (from the remembered tail).
        let again = reader.last_event("backup:alpha", "backup.synced").unwrap();
        assert_eq!(again.map(|e| e.seq), Some(ev.seq));
    }
    // The segment rewritten in place with the same length (not an append): its ctime changes,
    // so the remembered tail is not trusted and the reader reads the log again. Here the last
    // line is cut off and padded back, so the log's tail is now the event before it.
    let seg = reader.log().segments().unwrap().pop().unwrap().1;
    let bytes = std::fs::read(&seg).unwrap();
    let body = &bytes[..bytes.len() - 1];
    let cut = body.iter().rposition(|b| *b == b'\n').unwrap() + 1;
    let mut forged = bytes[..cut].to_vec();
    forged.resize(bytes.len(), b' ');
    std::thread::sleep(std::time::Duration::from_millis(20));
    std::fs::write(&seg, &forged).unwrap();
    let tail = reader.log().tail_for_read().unwrap();
    assert_eq!(tail.head.seq, 19, "the rewritten log's last whole event");
    assert!(tail.torn.is_some(), "the padding is a torn tail");
}
