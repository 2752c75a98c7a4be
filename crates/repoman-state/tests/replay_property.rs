//! Property: replaying any sequence of events into a fresh index (the rebuild path, in-memory
//! registries, raw-line fast path) yields the same state as applying them one append at a time
//! (the incremental path, SQL registries).
#![allow(clippy::unwrap_used)]

mod common;

use proptest::prelude::*;
use repoman_core::Clock;
use repoman_state::{ActorRequest, NewEvent, StateOptions, index};
use serde_json::json;

#[derive(Debug, Clone)]
enum Step {
    Plain {
        type_: &'static str,
        object: usize,
        schema: bool,
    },
    State {
        object: usize,
        state: &'static str,
    },
    Conflict {
        object: usize,
    },
    Resolve {
        which: usize,
        resolution: &'static str,
    },
}

fn step() -> impl Strategy<Value = Step> {
    let types = prop::sample::select(vec![
        "project.registered",
        "project.updated",
        "backup.synced",
        "sandbox.created",
        "sandbox.removed",
        "sandbox.quarantined",
        "tool.discovered",
        "policy.decided",
        "sync.plan.blocked",
    ]);
    prop_oneof![
        4 => (types, 0..4usize, any::<bool>()).prop_map(|(type_, object, schema)| Step::Plain { type_, object, schema }),
        1 => (0..4usize, prop::sample::select(vec!["active", "deleted", "quarantined", "conflicted"]))
            .prop_map(|(object, state)| Step::State { object, state }),
        1 => (0..4usize).prop_map(|object| Step::Conflict { object }),
        1 => (0..6usize, prop::sample::select(vec!["keep_local", "keep_backup", "skip"]))
            .prop_map(|(which, resolution)| Step::Resolve { which, resolution }),
    ]
}

const OBJECTS: [&str; 4] = ["project:alpha", "backup:alpha", "sandbox:beta", "tool:z3"];

fn to_event(step: &Step, conflicts: &[String]) -> NewEvent {
    match step {
        Step::Plain {
            type_,
            object,
            schema,
        } => {
            let data = match *type_ {
                "policy.decided" => json!({"operation": "sync", "effect": "allow", "reasons": []}),
                "sync.plan.blocked" => {
                    json!({"operation": "sync", "effect": "deny", "decision_seq": 1, "explanation": "x"})
                }
                _ if *schema => json!({"schema": "custom.thing/v2", "n": 1}),
                _ => json!({"n": 1}),
            };
            NewEvent::new(*type_, OBJECTS[*object], data)
        }
        Step::State { object, state } => {
            NewEvent::new("object.state", OBJECTS[*object], json!({"state": state}))
        }
        Step::Conflict { object } => NewEvent::new(
            "conflict.detected",
            OBJECTS[*object],
            json!({"kind": "backup-diverged", "project": "alpha", "detail": {"b": [1, 2], "a": "x"}}),
        ),
        Step::Resolve { which, resolution } => {
            let id = conflicts
                .get(*which % conflicts.len().max(1))
                .cloned()
                .unwrap_or_else(|| "none".into());
            NewEvent::new(
                "conflict.resolved",
                "backup:alpha",
                json!({"conflict": id, "resolution": resolution, "note": null}),
            )
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, .. ProptestConfig::default() })]

    #[test]
    fn rebuild_equals_incremental(steps in prop::collection::vec((step(), 0..3usize, 1..4usize), 1..40)) {
        let fx = common::Fixture::new();
        let clock = Clock::pinned(common::start());
        let human = repoman_state::State::open_with(&fx.paths, &fx.env, clock.clone(), StateOptions::default()).unwrap();
        let agent = repoman_state::State::open_with(
            &fx.paths,
            &fx.env,
            clock,
            StateOptions { actor: ActorRequest::Agent("alpha".parse().unwrap()), ..StateOptions::default() },
        )
        .unwrap();
        let mut conflicts: Vec<String> = Vec::new();
        let mut pending_batch = Vec::new();
        for (i, (s, who, batch)) in steps.iter().enumerate() {
            let writer = if *who == 0 { &agent } else { &human };
            pending_batch.push(to_event(s, &conflicts));
            // Group some steps into batches; conflict ids are known only after their append.
            if pending_batch.len() >= *batch || matches!(s, Step::Conflict { .. }) || i + 1 == steps.len() {
                for e in writer.append_batch(std::mem::take(&mut pending_batch)).unwrap() {
                    if e.type_ == "conflict.detected" {
                        conflicts.push(e.id.to_string());
                    }
                }
            }
        }
        // Both handles kept the on-disk index up to date incrementally.
        let incremental = human.with_index(index::dump).unwrap();
        let fresh = fx.dir.path().join("fresh.db");
        let head = repoman_state::state::rebuild_index(human.log(), &fresh).unwrap();
        prop_assert_eq!(head, human.head().unwrap());
        let conn = rusqlite::Connection::open(&fresh).unwrap();
        let rebuilt = index::dump(&conn).unwrap();
        prop_assert_eq!(incremental, rebuilt);
    }
}
