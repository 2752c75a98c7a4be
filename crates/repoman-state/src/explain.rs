//! `explain`: answers the state-integrity acceptance questions about one object, from the index
//! alone (no filesystem scan of the object itself).
//!
//! Each [`Section`] answers one question with a status: `answered`, `not_applicable` (the
//! question does not apply to this kind of object, with the reason) or `unknown` (nothing recorded
//! that would answer it, with the reason). The JSON shape (`repoman.explain/v1`) is stable.

use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;
use serde_json::{Value, json};

use crate::conflict::ConflictState;
use crate::error::StateError;
use repoman_core::{ObjectId, ObjectKind};

use crate::event::{Event, object_kind};
use crate::index::{self, EVENT_COLUMNS, event_from_row};
use crate::state::State;

/// The acceptance questions, in order: (id, question).
pub const QUESTIONS: &[(&str, &str)] = &[
    ("what", "What is this object?"),
    ("schema", "Which schema governs it?"),
    ("last_change", "Who or what last changed it?"),
    ("owner", "Which device and profile own it?"),
    ("safe_to_sync", "Is it safe to sync?"),
    ("blocked", "Why is it blocked?"),
    ("conflicts", "What conflicts exist?"),
    ("auto_repair", "What can be repaired automatically?"),
    ("needs_review", "What requires human review?"),
    ("durability", "What data is durable vs rebuildable?"),
    ("restore_integrity", "Can we prove restore integrity?"),
];

/// How a question was answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Answered,
    NotApplicable,
    Unknown,
}

/// One answered question.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Section {
    pub id: &'static str,
    pub question: &'static str,
    pub status: Status,
    /// One or more sentences for humans.
    pub answer: String,
    /// The facts behind the answer (event seqs, ids, paths) for scripts.
    pub facts: Value,
}

/// The whole explanation.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Explanation {
    pub schema: &'static str,
    pub object: String,
    /// Whether any event about the object (or a related one) is recorded.
    pub known: bool,
    /// The log head the answers reflect.
    pub as_of_seq: u64,
    /// Objects whose events contributed (e.g. `backup:alpha` for `project:alpha`).
    pub related: Vec<String>,
    pub sections: Vec<Section>,
}

impl Explanation {
    /// Human text: one heading per question.
    pub fn to_text(&self) -> String {
        let mut out = format!("{} (as of event {})\n", self.object, self.as_of_seq);
        for s in &self.sections {
            let tag = match s.status {
                Status::Answered => "",
                Status::NotApplicable => "[not applicable] ",
                Status::Unknown => "[unknown] ",
            };
            out.push_str(&format!(
                "\n{}\n  {tag}{}\n",
                s.question,
                s.answer.replace('\n', "\n  ")
            ));
        }
        out
    }
}

/// Accept `alpha` as `project:alpha`; an id is taken as is ([`ObjectId::from_user`]).
pub fn normalize_object(arg: &str) -> String {
    ObjectId::from_user(arg)
}

/// Objects whose state bears on `object`'s answers: a project's backup and sandbox, and a
/// backup's or sandbox's project. Objects of unknown kinds (an older log) have none.
fn related_objects(object: &str) -> Vec<String> {
    let Ok(id) = object.parse::<ObjectId>() else {
        return Vec::new();
    };
    let kinds: &[ObjectKind] = match id.kind() {
        ObjectKind::Project => &[ObjectKind::Backup, ObjectKind::Sandbox],
        ObjectKind::Backup | ObjectKind::Sandbox => &[ObjectKind::Project],
        _ => &[],
    };
    kinds
        .iter()
        .filter_map(|k| id.sibling(*k))
        .map(|o| o.to_string())
        .collect()
}

fn sync_applies(kind: &str) -> bool {
    matches!(kind, "project" | "backup")
}

fn backup_object(object: &str) -> Option<String> {
    let id = object.parse::<ObjectId>().ok()?;
    match id.kind() {
        ObjectKind::Project | ObjectKind::Backup => {
            id.sibling(ObjectKind::Backup).map(|b| b.to_string())
        }
        _ => None,
    }
}

fn one_event(
    conn: &Connection,
    sql: &str,
    p: impl rusqlite::Params,
) -> rusqlite::Result<Option<Event>> {
    conn.prepare_cached(sql)?
        .query_row(p, event_from_row)
        .optional()
}

fn last_of(conn: &Connection, object: &str, type_: &str) -> rusqlite::Result<Option<Event>> {
    index::last_event(conn, object, type_)
}

/// The last event about `object` whose type matches the LIKE pattern `type_like`. The pattern is
/// part of the SQL text, not a bound parameter: SQLite plans a LIKE against a parameter for the
/// value bound, so a cached statement would be parsed and planned again at every call that binds
/// a different pattern.
fn last_matching(
    conn: &Connection,
    object: &str,
    type_like: &'static str,
) -> rusqlite::Result<Option<Event>> {
    debug_assert!(!type_like.contains('\''), "a literal pattern");
    one_event(
        conn,
        &format!(
            "SELECT {EVENT_COLUMNS} FROM events WHERE object = ?1 AND type LIKE '{type_like}' ORDER BY seq DESC LIMIT 1"
        ),
        params![object],
    )
}

fn ev_ref(e: &Event) -> Value {
    json!({"seq": e.seq, "type": e.type_, "at": e.at, "actor": e.actor})
}

fn section(id: &'static str, status: Status, answer: impl Into<String>, facts: Value) -> Section {
    let question = QUESTIONS
        .iter()
        .find(|(q, _)| *q == id)
        .map_or("", |(_, q)| q);
    Section {
        id,
        question,
        status,
        answer: answer.into(),
        facts,
    }
}

/// Explain `object` from the index.
#[tracing::instrument(level = "info", skip(state))]
pub fn explain(state: &State, object: &str) -> Result<Explanation, StateError> {
    let object = normalize_object(object);
    let state_dir = state.state_dir().to_path_buf();
    let events_dir = state.log().dir().to_path_buf();
    let this_device = state.identity().device.clone();
    state.with_index(|conn| {
        // One read transaction: every answer comes from the same snapshot of the index, and
        // the database is locked once instead of once per query (~10 of them).
        let tx = conn.unchecked_transaction()?;
        let ex = build(&tx, &object, &state_dir, &events_dir, &this_device)?;
        tx.commit()?;
        Ok(ex)
    })
}

fn build(
    conn: &Connection,
    object: &str,
    state_dir: &std::path::Path,
    events_dir: &std::path::Path,
    this_device: &str,
) -> rusqlite::Result<Explanation> {
    let kind = object_kind(object).to_owned();
    let head = index::read_head(conn)?;
    let row = index::object(conn, object)?;
    let related: Vec<String> = related_objects(object)
        .into_iter()
        .filter(|o| index::object(conn, o).ok().flatten().is_some())
        .collect();
    let known = row.is_some() || !related.is_empty();
    let mut sections = Vec::new();
    let nothing = format!("no event about {object} is recorded");

    // What is it?
    match &row {
        Some(r) => {
            let first = one_event(
                conn,
                &format!("SELECT {EVENT_COLUMNS} FROM events WHERE seq = ?1"),
                [r.first_seq as i64],
            )?;
            let since = first
                .as_ref()
                .map(|e| format!(", first recorded by {} at {} ({})", e.type_, e.at, e.actor))
                .unwrap_or_default();
            sections.push(section(
                "what",
                Status::Answered,
                format!("a {kind} object, state {}{since}; {} events recorded", r.state, r.events),
                json!({"kind": kind, "state": r.state, "events": r.events, "first_seq": r.first_seq, "last_seq": r.last_seq}),
            ));
        }
        None if !related.is_empty() => sections.push(section(
            "what",
            Status::Answered,
            format!(
                "a {kind} object with no events of its own; related objects recorded: {}",
                related.join(", ")
            ),
            json!({"kind": kind, "state": null, "events": 0}),
        )),
        None => sections.push(section(
            "what",
            Status::Unknown,
            format!("{nothing}; it may not exist or never have been touched by repoman"),
            json!({"kind": kind}),
        )),
    }

    // Schema.
    let schema_id = row
        .as_ref()
        .and_then(|r| r.schema.clone())
        .or_else(|| index::default_schema_for_kind(&kind).map(str::to_owned));
    match schema_id {
        Some(id) => {
            let title: Option<String> = conn.prepare_cached("SELECT title FROM schemas WHERE id = ?1")?.query_row([&id], |r| r.get(0)).optional()?;
            let answer = match &title {
                Some(t) => format!("{id} ({t}); `repoman schema show {id}` prints it"),
                None => format!("{id} (not embedded in this repoman)"),
            };
            sections.push(section("schema", Status::Answered, answer, json!({"schema": id, "embedded": title.is_some()})));
        }
        None => sections.push(section(
            "schema",
            Status::NotApplicable,
            format!("{kind} objects are not stored in a file format repoman owns; their event data is validated per event type"),
            json!({"schema": null}),
        )),
    }

    // Last change.
    let last = match &row {
        Some(r) => one_event(
            conn,
            &format!("SELECT {EVENT_COLUMNS} FROM events WHERE seq = ?1"),
            [r.last_seq as i64],
        )?,
        None => None,
    };
    match &last {
        Some(e) => sections.push(section(
            "last_change",
            Status::Answered,
            format!(
                "{} by {} on device {} (profile {}) at {}, event {}",
                e.type_, e.actor, e.device, e.profile, e.at, e.seq
            ),
            json!({"event": ev_ref(e), "device": e.device, "profile": e.profile}),
        )),
        None => sections.push(section(
            "last_change",
            Status::Unknown,
            nothing.clone(),
            Value::Null,
        )),
    }

    // Owner.
    match &row {
        Some(r) => {
            let here = if r.device == this_device {
                " (this device)"
            } else {
                " (another device)"
            };
            sections.push(section(
                "owner",
                Status::Answered,
                format!("device {}{here}, profile {}", r.device, r.profile),
                json!({"device": r.device, "profile": r.profile, "this_device": r.device == this_device}),
            ));
        }
        None => sections.push(section(
            "owner",
            Status::Unknown,
            nothing.clone(),
            Value::Null,
        )),
    }

    // Conflicts (of this object and related ones), needed by several answers.
    let mut conflicts = index::conflicts_of(conn, object)?;
    for o in &related {
        conflicts.extend(index::conflicts_of(conn, o)?);
    }
    let pending: Vec<_> = conflicts
        .iter()
        .filter(|c| c.state == ConflictState::Pending)
        .collect();

    // Blocked: the latest blocked plan, unless a later decision for the same object allowed.
    let mut blocked: Option<Event> = None;
    for o in std::iter::once(object.to_owned()).chain(related.iter().cloned()) {
        if let Some(b) = last_matching(conn, &o, "%.plan.blocked")? {
            let later_allow = one_event(
                conn,
                &format!("SELECT {EVENT_COLUMNS} FROM events WHERE object = ?1 AND type = 'policy.decided' AND seq > ?2 ORDER BY seq DESC LIMIT 1"),
                params![o, b.seq as i64],
            )?
            .is_some_and(|d| d.data.get("effect").and_then(Value::as_str) == Some("allow"));
            if !later_allow && blocked.as_ref().is_none_or(|x| x.seq < b.seq) {
                blocked = Some(b);
            }
        }
    }

    // Safe to sync?
    let obj_state = row.as_ref().map(|r| r.state.clone());
    if !sync_applies(&kind) {
        sections.push(section(
            "safe_to_sync",
            Status::NotApplicable,
            format!("{kind} objects are not synced by repoman"),
            Value::Null,
        ));
    } else if !known {
        sections.push(section(
            "safe_to_sync",
            Status::Unknown,
            format!("{nothing}; a sync would start without a recorded baseline"),
            Value::Null,
        ));
    } else {
        let mut reasons = Vec::new();
        if let Some(s) = obj_state.as_deref().filter(|s| *s != "active") {
            reasons.push(format!("the object is {s}"));
        }
        if !pending.is_empty() {
            reasons.push(format!("{} pending conflict(s)", pending.len()));
        }
        if let Some(b) = &blocked {
            reasons.push(format!(
                "the last {} plan was blocked (event {})",
                b.data
                    .get("operation")
                    .and_then(Value::as_str)
                    .unwrap_or("?"),
                b.seq
            ));
        }
        let last_sync = match backup_object(object) {
            Some(b) => last_of(conn, &b, "backup.synced")?,
            None => None,
        };
        let synced = last_sync
            .as_ref()
            .map(|e| format!("last synced at {} (event {})", e.at, e.seq))
            .unwrap_or_else(|| "never synced".into());
        if reasons.is_empty() {
            sections.push(section(
                "safe_to_sync",
                Status::Answered,
                format!("yes, as far as recorded state shows: no pending conflict, no blocked plan; {synced}. The sync's own guards still check the source and destination"),
                json!({"safe": true, "last_sync": last_sync.as_ref().map(ev_ref)}),
            ));
        } else {
            sections.push(section(
                "safe_to_sync",
                Status::Answered,
                format!("no: {}; {synced}", reasons.join("; ")),
                json!({"safe": false, "reasons": reasons, "last_sync": last_sync.as_ref().map(ev_ref)}),
            ));
        }
    }

    // Why blocked?
    match &blocked {
        Some(b) => {
            let explanation = b
                .data
                .get("explanation")
                .and_then(Value::as_str)
                .unwrap_or("(no explanation recorded)");
            let unblock: Vec<String> = b
                .data
                .get("unblock")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(Value::as_str)
                        .map(str::to_owned)
                        .collect()
                })
                .unwrap_or_default();
            let how = if unblock.is_empty() {
                String::new()
            } else {
                format!("\nto unblock: {}", unblock.join(" ; "))
            };
            sections.push(section(
                "blocked",
                Status::Answered,
                format!("{explanation} (event {}, {}){how}", b.seq, b.at),
                json!({"blocked": true, "event": ev_ref(b), "effect": b.data.get("effect"), "decision_seq": b.data.get("decision_seq"), "unblock": unblock}),
            ));
        }
        None if known => sections.push(section(
            "blocked",
            Status::Answered,
            "not blocked: no blocked plan is recorded since the last allowed decision",
            json!({"blocked": false}),
        )),
        None => sections.push(section(
            "blocked",
            Status::Unknown,
            nothing.clone(),
            Value::Null,
        )),
    }

    // Conflicts.
    if conflicts.is_empty() {
        let status = if known {
            Status::Answered
        } else {
            Status::Unknown
        };
        let answer = if known {
            "none recorded".to_owned()
        } else {
            nothing.clone()
        };
        sections.push(section(
            "conflicts",
            status,
            answer,
            json!({"pending": 0, "conflicts": []}),
        ));
    } else {
        let lines: Vec<String> = conflicts
            .iter()
            .map(|c| {
                let how = c
                    .resolution
                    .map(|r| {
                        format!(
                            " ({} by {})",
                            r.as_str(),
                            c.resolved_by.as_deref().unwrap_or("?")
                        )
                    })
                    .unwrap_or_default();
                format!(
                    "{} {} on {}: {}{how}, detected {}",
                    c.id,
                    c.kind,
                    c.object,
                    c.state.as_str(),
                    c.detected_at
                )
            })
            .collect();
        sections.push(section(
            "conflicts",
            Status::Answered,
            format!(
                "{} pending of {}:\n{}",
                pending.len(),
                conflicts.len(),
                lines.join("\n")
            ),
            json!({"pending": pending.len(), "conflicts": conflicts}),
        ));
    }

    // Auto-repairable.
    let repairs: i64 = conn
        .prepare_cached(
            "SELECT COUNT(*) FROM events WHERE object = ?1 AND type = 'repair.applied'",
        )?
        .query_row([object], |r| r.get(0))?;
    let mut auto = vec![
        "its index rows (registry entries, last events, conflicts) are rebuilt from the event log whenever the index is missing, corrupt or out of step".to_owned(),
    ];
    if repairs > 0 {
        auto.push(format!("{repairs} automatic repair(s) of it are recorded (`repoman log {object} --type repair.applied`)"));
    }
    if pending.is_empty() && blocked.is_none() {
        auto.push("nothing about it is waiting for a repair".to_owned());
    } else {
        auto.push("its conflicts and blocked plans are not auto-repairable (see below)".to_owned());
    }
    sections.push(section(
        "auto_repair",
        if known {
            Status::Answered
        } else {
            Status::Unknown
        },
        if known {
            auto.join("; ")
        } else {
            nothing.clone()
        },
        json!({"rebuildable": ["index rows"], "repairs_recorded": repairs}),
    ));

    // Needs review.
    let mut review = Vec::new();
    for c in &pending {
        review.push(format!(
            "conflict {} ({}) on {}: resolve with keep-local, keep-backup or skip",
            c.id, c.kind, c.object
        ));
    }
    if let Some(b) = &blocked {
        review.push(format!(
            "blocked plan (event {}): {}",
            b.seq,
            b.data
                .get("effect")
                .and_then(Value::as_str)
                .unwrap_or("deny")
        ));
    }
    if let Some(s) = obj_state.as_deref().filter(|s| *s == "quarantined") {
        review.push(format!("the object is {s}"));
    }
    if review.is_empty() {
        let status = if known {
            Status::Answered
        } else {
            Status::Unknown
        };
        let answer = if known {
            "nothing: no pending conflict or blocked plan".to_owned()
        } else {
            nothing.clone()
        };
        sections.push(section(
            "needs_review",
            status,
            answer,
            json!({"items": []}),
        ));
    } else {
        sections.push(section(
            "needs_review",
            Status::Answered,
            review.join("\n"),
            json!({"items": review}),
        ));
    }

    // Durability.
    let events_about: i64 = row.as_ref().map_or(0, |r| r.events as i64);
    let manifest = match backup_object(object) {
        Some(b) => last_of(conn, &b, "backup.synced")?.and_then(|e| manifest_ref(&e)),
        None => None,
    };
    let mut related_events = 0u64;
    for o in &related {
        related_events += index::object(conn, o)?.map_or(0, |r| r.events);
    }
    let related_note = if related.is_empty() {
        String::new()
    } else {
        format!(" and {related_events} about {}", related.join(", "))
    };
    let mut durable = vec![format!(
        "{events_about} event(s) about it{related_note} in the event log {}",
        events_dir.display()
    )];
    if kind == "project" {
        durable.push("its [[project]] entry in repoman.toml".into());
        durable.push("its working copy and .repoman.toml (in the repository)".into());
    }
    if let Some(m) = &manifest {
        durable.push(format!(
            "backup manifest {m} under {}",
            state_dir.join("manifests").display()
        ));
    }
    let rebuildable = vec![format!(
        "its rows in {}",
        state_dir.join(crate::state::INDEX_FILE).display()
    )];
    sections.push(section(
        "durability",
        if known {
            Status::Answered
        } else {
            Status::Unknown
        },
        format!(
            "durable: {}.\nrebuildable: {}",
            durable.join("; "),
            rebuildable.join("; ")
        ),
        json!({"durable": durable, "rebuildable": rebuildable}),
    ));

    // Restore integrity.
    match backup_object(object) {
        None => sections.push(section(
            "restore_integrity",
            Status::NotApplicable,
            format!("{kind} objects have no backup"),
            Value::Null,
        )),
        Some(b) => {
            let synced = last_of(conn, &b, "backup.synced")?;
            let verified = last_matching(conn, &b, "backup.verif%")?;
            match (&synced, manifest.as_ref()) {
                (Some(s), Some(m)) => {
                    let ver = match &verified {
                        Some(v) if v.seq > s.seq => {
                            // `backup.verified` records `clean`; `ok` / `result` are accepted from other writers.
                            let ok = v
                                .data
                                .get("clean")
                                .or_else(|| v.data.get("ok"))
                                .and_then(Value::as_bool)
                                .or_else(|| v.data.get("result").and_then(Value::as_str).map(|r| r == "ok"));
                            match ok {
                                Some(true) => format!("verified against it at {} (event {})", v.at, v.seq),
                                Some(false) => format!("the last verification FAILED at {} (event {})", v.at, v.seq),
                                None => format!("verified at {} (event {}), result not recorded", v.at, v.seq),
                            }
                        }
                        _ => "not verified since that sync: run `repoman verify`".into(),
                    };
                    sections.push(section(
                        "restore_integrity",
                        Status::Answered,
                        format!("yes, provably: the sync at {} (event {}) recorded manifest {m}; {ver}", s.at, s.seq),
                        json!({"manifest": m, "synced": ev_ref(s), "verified": verified.as_ref().map(ev_ref)}),
                    ));
                }
                (Some(s), None) => sections.push(section(
                    "restore_integrity",
                    Status::Answered,
                    format!("no: the last sync (event {}) recorded no content manifest, so a restore cannot be proven bit-exact", s.seq),
                    json!({"manifest": null, "synced": ev_ref(s)}),
                )),
                (None, _) => sections.push(section("restore_integrity", Status::Unknown, format!("no sync of {b} is recorded"), json!({"manifest": null}))),
            }
        }
    }

    Ok(Explanation {
        schema: "repoman.explain/v1",
        object: object.to_owned(),
        known,
        as_of_seq: head.seq,
        related,
        sections,
    })
}

/// The manifest id a backup event refers to (`data.manifest` or `data.manifest_root`).
fn manifest_ref(e: &Event) -> Option<String> {
    ["manifest", "manifest_root", "root"]
        .iter()
        .find_map(|k| e.data.get(*k).and_then(Value::as_str))
        .map(str::to_owned)
}
