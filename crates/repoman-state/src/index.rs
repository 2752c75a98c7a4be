//! The SQLite index: the current state of objects, actors, schemas, conflicts and every event,
//! derived from the log by replay (DESIGN.md §4 "The index").
//!
//! Invariants:
//! - Everything here can be rebuilt from the log (and the embedded schemas); the file may be
//!   deleted at any time. `meta` records the schema version and the log head (`seq`, `hash`) the
//!   index reflects.
//! - [`apply`] is the only code that turns events into index rows; a rebuild and an incremental
//!   update run the same function, so replaying any sequence of events into a fresh index yields the
//!   same state as applying them one append at a time (a property test checks this).
//! - Writes to the on-disk index happen under the event log's append lock, so there is one writer.

use std::path::Path;

use rusqlite::{Connection, OptionalExtension, Transaction, params};
use serde_json::Value;

use crate::conflict::{self, Conflict, ConflictFilter, ConflictState, Resolution};
use crate::error::StateError;
use crate::event::{Event, object_kind};
use crate::identity::ActorKind;
use crate::log::Head;

/// Bump when the table layout or the meaning of [`apply`] changes: older indexes are rebuilt.
pub const SCHEMA_VERSION: i64 = 5;

const DDL: &str = "
CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE events(
  seq INTEGER PRIMARY KEY, id TEXT NOT NULL, at TEXT NOT NULL, type TEXT NOT NULL,
  object TEXT NOT NULL, actor TEXT NOT NULL, device TEXT NOT NULL, profile TEXT NOT NULL,
  data TEXT NOT NULL, prev TEXT NOT NULL, hash TEXT NOT NULL);
CREATE TABLE objects(
  id TEXT PRIMARY KEY, kind TEXT NOT NULL, schema TEXT, profile TEXT NOT NULL, device TEXT NOT NULL,
  state TEXT NOT NULL, first_seq INTEGER NOT NULL, last_seq INTEGER NOT NULL, events INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE actors(
  id TEXT PRIMARY KEY, kind TEXT NOT NULL, capabilities TEXT NOT NULL, trust TEXT NOT NULL,
  first_seq INTEGER NOT NULL, last_seq INTEGER NOT NULL, events INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE conflicts(
  id TEXT PRIMARY KEY, kind TEXT NOT NULL, object TEXT NOT NULL, project TEXT, state TEXT NOT NULL,
  resolution TEXT, detail TEXT NOT NULL, detected_at TEXT NOT NULL, detected_seq INTEGER NOT NULL,
  resolved_at TEXT, resolved_by TEXT) WITHOUT ROWID;
CREATE TABLE schemas(id TEXT PRIMARY KEY, kind TEXT NOT NULL, applies_to TEXT NOT NULL, title TEXT NOT NULL, digest TEXT NOT NULL) WITHOUT ROWID;
";

/// Secondary indexes, created after a bulk rebuild (cheaper than maintaining them row by row).
/// An index entry ends with the rowid, which is `seq`, so `(object, type)` is also ordered by seq.
const INDEXES: &str = "
CREATE INDEX IF NOT EXISTS events_object ON events(object, type);
CREATE INDEX IF NOT EXISTS conflicts_object ON conflicts(object);
";

/// Create the tables in an empty database.
pub fn create_schema(conn: &Connection) -> rusqlite::Result<()> {
    conn.execute_batch(DDL)?;
    conn.execute_batch(INDEXES)?;
    conn.execute(
        "INSERT INTO meta(key, value) VALUES('schema_version', ?1)",
        [SCHEMA_VERSION.to_string()],
    )?;
    write_head(conn, &Head::empty())?;
    load_schemas(conn)
}

/// Create the tables without secondary indexes (for a bulk rebuild; call [`finish_bulk`] after).
pub fn create_schema_bulk(conn: &Connection) -> rusqlite::Result<()> {
    conn.execute_batch(DDL)?;
    conn.execute(
        "INSERT INTO meta(key, value) VALUES('schema_version', ?1)",
        [SCHEMA_VERSION.to_string()],
    )?;
    write_head(conn, &Head::empty())?;
    load_schemas(conn)
}

/// Create the secondary indexes after a bulk load.
pub fn finish_bulk(conn: &Connection) -> rusqlite::Result<()> {
    conn.execute_batch(INDEXES)
}

fn load_schemas(conn: &Connection) -> rusqlite::Result<()> {
    let mut stmt = conn.prepare("INSERT OR REPLACE INTO schemas(id, kind, applies_to, title, digest) VALUES(?1, ?2, ?3, ?4, ?5)")?;
    for s in crate::schemas::list() {
        let kind = serde_json::to_value(s.kind)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        stmt.execute(params![s.id, kind, s.applies_to, s.title, s.digest()])?;
    }
    Ok(())
}

/// The schema version recorded in the index, if readable.
pub fn schema_version(conn: &Connection) -> rusqlite::Result<Option<i64>> {
    conn.query_row(
        "SELECT value FROM meta WHERE key = 'schema_version'",
        [],
        |r| r.get::<_, String>(0),
    )
    .optional()
    .map(|v| v.and_then(|s| s.parse().ok()))
}

/// The log head the index reflects.
pub fn read_head(conn: &Connection) -> rusqlite::Result<Head> {
    let get = |k: &str| {
        conn.prepare_cached("SELECT value FROM meta WHERE key = ?1")?
            .query_row([k], |r| r.get::<_, String>(0))
            .optional()
    };
    let seq = get("head_seq")?.and_then(|s| s.parse().ok()).unwrap_or(0);
    let hash = get("head_hash")?.unwrap_or_else(|| Head::empty().hash);
    Ok(Head { seq, hash })
}

pub fn write_head(conn: &Connection, head: &Head) -> rusqlite::Result<()> {
    conn.execute(
        "INSERT OR REPLACE INTO meta(key, value) VALUES('head_seq', ?1)",
        [head.seq.to_string()],
    )?;
    conn.execute(
        "INSERT OR REPLACE INTO meta(key, value) VALUES('head_hash', ?1)",
        [&head.hash],
    )?;
    Ok(())
}

/// The schema id that governs objects of `kind` unless an event names one (`data.schema`).
pub fn default_schema_for_kind(kind: &str) -> Option<&'static str> {
    match kind {
        "project" => Some("repoman.toml/v1"),
        "backup" => Some("repoman.manifest/v1"),
        "store" => Some("repoman.repair-report/v1"),
        _ => None,
    }
}

fn is_creation(type_: &str) -> bool {
    let last = type_.rsplit('.').next().unwrap_or("");
    matches!(
        last,
        "created" | "registered" | "adopted" | "discovered" | "restored"
    )
}

fn is_deletion(type_: &str) -> bool {
    let last = type_.rsplit('.').next().unwrap_or("");
    matches!(last, "deleted" | "removed" | "unregistered" | "destroyed")
}

/// A borrowed view of one event, as the index applies it. Built from an [`Event`] on the
/// incremental path and straight from a log line's bytes during a rebuild.
#[derive(Debug, Clone, Copy)]
pub struct EventRef<'a> {
    pub seq: u64,
    pub id: &'a str,
    pub at: &'a str,
    pub type_: &'a str,
    pub object: &'a str,
    pub actor: &'a str,
    pub device: &'a str,
    pub profile: &'a str,
    /// The canonical JSON text of `data`.
    pub data_json: &'a str,
    /// `data`, when already parsed.
    pub data: Option<&'a Value>,
    pub prev: &'a str,
    pub hash: &'a str,
}

impl<'a> EventRef<'a> {
    /// View `e`; `id` and `data_json` are its id and data rendered by the caller.
    pub fn of(e: &'a Event, id: &'a str, data_json: &'a str) -> Self {
        Self {
            seq: e.seq,
            id,
            at: &e.at,
            type_: &e.type_,
            object: &e.object,
            actor: &e.actor,
            device: &e.device,
            profile: &e.profile,
            data_json,
            data: Some(&e.data),
            prev: &e.prev,
            hash: &e.hash,
        }
    }

    fn data_value(&self) -> std::borrow::Cow<'a, Value> {
        match self.data {
            Some(v) => std::borrow::Cow::Borrowed(v),
            None => {
                std::borrow::Cow::Owned(serde_json::from_str(self.data_json).unwrap_or(Value::Null))
            }
        }
    }

    /// Whether applying this event needs fields of `data` (most events need none).
    fn needs_data(&self) -> bool {
        self.type_ == "object.state"
            || self.type_ == conflict::DETECTED
            || self.type_ == conflict::RESOLVED
            || self.data_json.contains("\"schema\"")
    }
}

/// Where [`apply`] reads and writes the objects and actors registries: straight in SQLite
/// ([`SqlRegistries`], incremental updates) or in memory until the end of a rebuild
/// ([`MemRegistries`]). Both go through the same [`apply`], so they cannot disagree.
/// Contract: a getter may hand out the row itself (removing it); whoever gets a row puts it back.
pub trait Registries {
    fn object(&mut self, tx: &Transaction<'_>, id: &str) -> rusqlite::Result<Option<ObjectRow>>;
    fn put_object(&mut self, tx: &Transaction<'_>, row: ObjectRow) -> rusqlite::Result<()>;
    fn actor(&mut self, tx: &Transaction<'_>, id: &str) -> rusqlite::Result<Option<ActorRow>>;
    fn put_actor(&mut self, tx: &Transaction<'_>, row: ActorRow) -> rusqlite::Result<()>;
}

/// Registries read and written in the database.
#[derive(Debug, Default)]
pub struct SqlRegistries;

fn write_object(tx: &Transaction<'_>, row: &ObjectRow) -> rusqlite::Result<()> {
    tx.prepare_cached(
        "INSERT OR REPLACE INTO objects(id, kind, schema, profile, device, state, first_seq, last_seq, events)
         VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
    )?
    .execute(params![
        row.id,
        row.kind,
        row.schema,
        row.profile,
        row.device,
        row.state,
        row.first_seq as i64,
        row.last_seq as i64,
        row.events as i64
    ])?;
    Ok(())
}

fn write_actor(tx: &Transaction<'_>, row: &ActorRow) -> rusqlite::Result<()> {
    tx.prepare_cached(
        "INSERT OR REPLACE INTO actors(id, kind, capabilities, trust, first_seq, last_seq, events)
         VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?
    .execute(params![
        row.id,
        row.kind,
        row.capabilities.join(","),
        row.trust,
        row.first_seq as i64,
        row.last_seq as i64,
        row.events as i64
    ])?;
    Ok(())
}

impl Registries for SqlRegistries {
    fn object(&mut self, tx: &Transaction<'_>, id: &str) -> rusqlite::Result<Option<ObjectRow>> {
        object(tx, id)
    }
    fn put_object(&mut self, tx: &Transaction<'_>, row: ObjectRow) -> rusqlite::Result<()> {
        write_object(tx, &row)
    }
    fn actor(&mut self, tx: &Transaction<'_>, id: &str) -> rusqlite::Result<Option<ActorRow>> {
        actor(tx, id)
    }
    fn put_actor(&mut self, tx: &Transaction<'_>, row: ActorRow) -> rusqlite::Result<()> {
        write_actor(tx, &row)
    }
}

/// Registries kept in memory during a rebuild (which starts from empty tables) and written once
/// by [`MemRegistries::flush`].
#[derive(Debug, Default)]
pub struct MemRegistries {
    objects: std::collections::HashMap<String, ObjectRow>,
    actors: std::collections::HashMap<String, ActorRow>,
    // Keys of rows handed out, reused when the row is put back (saves an allocation per event).
    object_key: Option<String>,
    actor_key: Option<String>,
}

impl MemRegistries {
    pub fn flush(self, tx: &Transaction<'_>) -> rusqlite::Result<()> {
        for row in self.objects.values() {
            write_object(tx, row)?;
        }
        for row in self.actors.values() {
            write_actor(tx, row)?;
        }
        Ok(())
    }
}

impl Registries for MemRegistries {
    // Taking the row out (instead of cloning it) is safe: `apply` puts back every row it gets.
    fn object(&mut self, _tx: &Transaction<'_>, id: &str) -> rusqlite::Result<Option<ObjectRow>> {
        Ok(self.objects.remove_entry(id).map(|(k, row)| {
            self.object_key = Some(k);
            row
        }))
    }
    fn put_object(&mut self, _tx: &Transaction<'_>, row: ObjectRow) -> rusqlite::Result<()> {
        let key = self
            .object_key
            .take()
            .filter(|k| *k == row.id)
            .unwrap_or_else(|| row.id.clone());
        self.objects.insert(key, row);
        Ok(())
    }
    fn actor(&mut self, _tx: &Transaction<'_>, id: &str) -> rusqlite::Result<Option<ActorRow>> {
        Ok(self.actors.remove_entry(id).map(|(k, row)| {
            self.actor_key = Some(k);
            row
        }))
    }
    fn put_actor(&mut self, _tx: &Transaction<'_>, row: ActorRow) -> rusqlite::Result<()> {
        let key = self
            .actor_key
            .take()
            .filter(|k| *k == row.id)
            .unwrap_or_else(|| row.id.clone());
        self.actors.insert(key, row);
        Ok(())
    }
}

/// The statement [`apply`] inserts each event row with.
pub const INSERT_EVENT: &str =
    "INSERT INTO events(seq, id, at, type, object, actor, device, profile, data, prev, hash)
     VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)";

/// Apply one event to the index (inside the caller's transaction). The one place events become
/// rows.
pub fn apply(
    tx: &Transaction<'_>,
    regs: &mut impl Registries,
    e: &EventRef<'_>,
) -> rusqlite::Result<()> {
    let mut insert_event = tx.prepare_cached(INSERT_EVENT)?;
    apply_with(tx, &mut insert_event, regs, e)
}

/// [`apply`] with the event insert already prepared from [`INSERT_EVENT`] (a rebuild holds it
/// for the whole replay instead of looking it up in the statement cache per event).
pub fn apply_with(
    tx: &Transaction<'_>,
    insert_event: &mut rusqlite::Statement<'_>,
    regs: &mut impl Registries,
    e: &EventRef<'_>,
) -> rusqlite::Result<()> {
    insert_event.execute(params![
        e.seq as i64,
        e.id,
        e.at,
        e.type_,
        e.object,
        e.actor,
        e.device,
        e.profile,
        e.data_json,
        e.prev,
        e.hash
    ])?;

    // Actors registry.
    let actor_row = match regs.actor(tx, e.actor)? {
        Some(mut a) => {
            a.last_seq = e.seq;
            a.events += 1;
            a
        }
        None => {
            let kind = ActorKind::of(e.actor);
            ActorRow {
                id: e.actor.to_owned(),
                kind: kind.map_or("unknown", ActorKind::as_str).to_owned(),
                capabilities: kind
                    .map(|k| k.capabilities().iter().map(|c| (*c).to_owned()).collect())
                    .unwrap_or_default(),
                trust: kind.map_or("untrusted", ActorKind::trust).to_owned(),
                first_seq: e.seq,
                last_seq: e.seq,
                events: 1,
            }
        }
    };
    regs.put_actor(tx, actor_row)?;

    // Objects registry.
    let data = if e.needs_data() {
        Some(e.data_value())
    } else {
        None
    };
    let field = |k: &str| {
        data.as_ref()
            .and_then(|d| d.get(k))
            .and_then(Value::as_str)
            .map(str::to_owned)
    };
    let named_schema = field("schema");
    let new_state: Option<String> = if e.type_ == "object.state" {
        field("state")
    } else if e.type_ == conflict::DETECTED {
        Some("conflicted".into())
    } else if is_deletion(e.type_) {
        Some("deleted".into())
    } else if e.type_.ends_with(".quarantined") {
        Some("quarantined".into())
    } else if is_creation(e.type_) {
        Some("active".into())
    } else {
        None
    };
    let owner_change = is_creation(e.type_);
    let row = match regs.object(tx, e.object)? {
        Some(mut o) => {
            if named_schema.is_some() {
                o.schema = named_schema;
            }
            if owner_change {
                o.profile = e.profile.to_owned();
                o.device = e.device.to_owned();
            }
            if let Some(s) = new_state {
                o.state = s;
            }
            o.last_seq = e.seq;
            o.events += 1;
            o
        }
        None => {
            let kind = object_kind(e.object);
            ObjectRow {
                id: e.object.to_owned(),
                kind: kind.to_owned(),
                schema: named_schema.or_else(|| default_schema_for_kind(kind).map(str::to_owned)),
                profile: e.profile.to_owned(),
                device: e.device.to_owned(),
                state: new_state.unwrap_or_else(|| "active".into()),
                first_seq: e.seq,
                last_seq: e.seq,
                events: 1,
            }
        }
    };
    regs.put_object(tx, row)?;

    // Conflicts.
    if e.type_ == conflict::DETECTED {
        let detail = data
            .as_ref()
            .and_then(|d| d.get("detail"))
            .cloned()
            .unwrap_or(Value::Null);
        tx.prepare_cached(
            "INSERT OR REPLACE INTO conflicts(id, kind, object, project, state, resolution, detail, detected_at, detected_seq, resolved_at, resolved_by)
             VALUES(?1, ?2, ?3, ?4, 'pending', NULL, ?5, ?6, ?7, NULL, NULL)",
        )?
        .execute(params![
            e.id,
            field("kind").unwrap_or_default(),
            e.object,
            field("project"),
            crate::event::canonical_json(&detail),
            e.at,
            e.seq as i64
        ])?;
    } else if e.type_ == conflict::RESOLVED {
        let id = field("conflict").unwrap_or_default();
        let res = field("resolution").as_deref().and_then(Resolution::parse);
        if let Some(res) = res {
            let changed = tx
                .prepare_cached(
                    "UPDATE conflicts SET state = ?2, resolution = ?3, resolved_at = ?4, resolved_by = ?5
                     WHERE id = ?1 AND state = 'pending'",
                )?
                .execute(params![id, res.state().as_str(), res.as_str(), e.at, e.actor])?;
            if changed > 0 {
                // The object is conflicted while any conflict about it is pending.
                let target: String =
                    tx.query_row("SELECT object FROM conflicts WHERE id = ?1", [&id], |r| {
                        r.get(0)
                    })?;
                let pending: i64 = tx.query_row(
                    "SELECT COUNT(*) FROM conflicts WHERE object = ?1 AND state = 'pending'",
                    [&target],
                    |r| r.get(0),
                )?;
                if pending == 0
                    && let Some(mut o) = regs.object(tx, &target)?
                {
                    if o.state == "conflicted" {
                        o.state = "active".into();
                    }
                    regs.put_object(tx, o)?;
                }
            }
        }
    }
    Ok(())
}

/// Read an event row.
pub fn event_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Event> {
    let id: String = r.get(1)?;
    let data: String = r.get(8)?;
    Ok(Event {
        seq: r.get::<_, i64>(0)? as u64,
        id: id.parse().unwrap_or_default(),
        at: r.get(2)?,
        type_: r.get(3)?,
        object: r.get(4)?,
        actor: r.get(5)?,
        device: r.get(6)?,
        profile: r.get(7)?,
        data: serde_json::from_str(&data).unwrap_or(Value::Null),
        prev: r.get(9)?,
        hash: r.get(10)?,
    })
}

pub const EVENT_COLUMNS: &str =
    "seq, id, at, type, object, actor, device, profile, data, prev, hash";

/// The last event of `type_` about `object`.
pub fn last_event(conn: &Connection, object: &str, type_: &str) -> rusqlite::Result<Option<Event>> {
    conn.prepare_cached(&format!("SELECT {EVENT_COLUMNS} FROM events WHERE object = ?1 AND type = ?2 ORDER BY seq DESC LIMIT 1"))?
        .query_row([object, type_], event_from_row)
        .optional()
}

fn conflict_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Conflict> {
    let state: String = r.get(4)?;
    let resolution: Option<String> = r.get(5)?;
    let detail: String = r.get(6)?;
    Ok(Conflict {
        id: r.get(0)?,
        kind: r.get(1)?,
        object: r.get(2)?,
        project: r.get(3)?,
        state: ConflictState::parse(&state).unwrap_or(ConflictState::Pending),
        resolution: resolution.as_deref().and_then(Resolution::parse),
        detail: serde_json::from_str(&detail).unwrap_or(Value::Null),
        detected_at: r.get(7)?,
        resolved_at: r.get(8)?,
        resolved_by: r.get(9)?,
    })
}

const CONFLICT_COLUMNS: &str =
    "id, kind, object, project, state, resolution, detail, detected_at, resolved_at, resolved_by";

/// Conflicts matching `filter`, oldest first.
pub fn conflicts(conn: &Connection, filter: &ConflictFilter) -> rusqlite::Result<Vec<Conflict>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {CONFLICT_COLUMNS} FROM conflicts
         WHERE (?1 = 0 OR state = 'pending') AND (?2 IS NULL OR project = ?2) AND (?3 IS NULL OR kind = ?3)
         ORDER BY detected_seq"
    ))?;
    let rows = stmt.query_map(
        params![filter.pending_only, filter.project, filter.kind],
        conflict_from_row,
    )?;
    rows.collect()
}

/// Conflicts about one object, oldest first.
pub fn conflicts_of(conn: &Connection, object: &str) -> rusqlite::Result<Vec<Conflict>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {CONFLICT_COLUMNS} FROM conflicts WHERE object = ?1 ORDER BY detected_seq"
    ))?;
    let rows = stmt.query_map([object], conflict_from_row)?;
    rows.collect()
}

/// One conflict by id.
pub fn conflict(conn: &Connection, id: &str) -> rusqlite::Result<Option<Conflict>> {
    conn.prepare_cached(&format!(
        "SELECT {CONFLICT_COLUMNS} FROM conflicts WHERE id = ?1"
    ))?
    .query_row([id], conflict_from_row)
    .optional()
}

/// A row of the objects registry.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ObjectRow {
    pub id: String,
    pub kind: String,
    pub schema: Option<String>,
    pub profile: String,
    pub device: String,
    pub state: String,
    pub first_seq: u64,
    pub last_seq: u64,
    pub events: u64,
}

pub fn object(conn: &Connection, id: &str) -> rusqlite::Result<Option<ObjectRow>> {
    conn.prepare_cached("SELECT id, kind, schema, profile, device, state, first_seq, last_seq, events FROM objects WHERE id = ?1")?
        .query_row([id], |r| {
            Ok(ObjectRow {
                id: r.get(0)?,
                kind: r.get(1)?,
                schema: r.get(2)?,
                profile: r.get(3)?,
                device: r.get(4)?,
                state: r.get(5)?,
                first_seq: r.get::<_, i64>(6)? as u64,
                last_seq: r.get::<_, i64>(7)? as u64,
                events: r.get::<_, i64>(8)? as u64,
            })
        })
        .optional()
}

/// A row of the actors registry.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ActorRow {
    pub id: String,
    pub kind: String,
    pub capabilities: Vec<String>,
    pub trust: String,
    pub first_seq: u64,
    pub last_seq: u64,
    pub events: u64,
}

pub fn actor(conn: &Connection, id: &str) -> rusqlite::Result<Option<ActorRow>> {
    conn.prepare_cached("SELECT id, kind, capabilities, trust, first_seq, last_seq, events FROM actors WHERE id = ?1")?
        .query_row([id], |r| {
            let caps: String = r.get(2)?;
            Ok(ActorRow {
                id: r.get(0)?,
                kind: r.get(1)?,
                capabilities: caps.split(',').filter(|s| !s.is_empty()).map(str::to_owned).collect(),
                trust: r.get(3)?,
                first_seq: r.get::<_, i64>(4)? as u64,
                last_seq: r.get::<_, i64>(5)? as u64,
                events: r.get::<_, i64>(6)? as u64,
            })
        })
        .optional()
}

/// A deterministic dump of every derived table (for tests comparing two indexes).
pub fn dump(conn: &Connection) -> rusqlite::Result<Vec<String>> {
    let mut out = Vec::new();
    for (table, order) in [
        ("meta", "key"),
        ("events", "seq"),
        ("objects", "id"),
        ("actors", "id"),
        ("conflicts", "id"),
        ("schemas", "id"),
    ] {
        let mut stmt = conn.prepare(&format!("SELECT * FROM {table} ORDER BY {order}"))?;
        let n = stmt.column_count();
        let mut rows = stmt.query([])?;
        while let Some(r) = rows.next()? {
            let mut cells = Vec::with_capacity(n);
            for i in 0..n {
                let v: rusqlite::types::Value = r.get(i)?;
                cells.push(format!("{v:?}"));
            }
            out.push(format!("{table}: {}", cells.join(" | ")));
        }
    }
    Ok(out)
}

/// Open an existing index file read-only. A WAL database in a read-only directory cannot be
/// read the normal way (SQLite wants to create its `-shm` file there), so when a first read
/// fails the file is opened as immutable, which is what it is in such a directory.
pub fn open_existing_read_only(path: &Path) -> rusqlite::Result<Connection> {
    use rusqlite::OpenFlags;
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags)?;
    let readable: rusqlite::Result<i64> =
        conn.query_row("SELECT count(*) FROM sqlite_master", [], |r| r.get(0));
    match readable {
        Ok(_) => Ok(conn),
        Err(e) => {
            let uri = format!("file:{}?immutable=1", path.display());
            Connection::open_with_flags(uri, flags | OpenFlags::SQLITE_OPEN_URI).or(Err(e))
        }
    }
}

/// Open an index file with the settings repoman uses (WAL, relaxed sync: the index is rebuildable).
pub fn open_conn(path: &Path) -> Result<Connection, StateError> {
    let conn = Connection::open(path).map_err(StateError::index(path))?;
    conn.busy_timeout(std::time::Duration::from_secs(30))
        .map_err(StateError::index(path))?;
    // `explain` alone runs ~20 distinct statements; with rusqlite's default of 16 cached ones
    // a long-lived connection (the daemon's) would parse and plan some on every call.
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    Ok(conn)
}

/// Prepared statements kept per index connection.
pub const STATEMENT_CACHE: usize = 64;

/// Filters for listing events (`repoman log`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventQuery {
    /// Exact object id.
    pub object: Option<String>,
    /// Exact type, or a prefix ending in `*` (`backup.*`).
    pub type_: Option<String>,
    /// Exact actor, an actor kind (`human`), or a prefix ending in `*`.
    pub actor: Option<String>,
    /// Only events at or after this RFC 3339 UTC instant (same format as `at`).
    pub since: Option<String>,
    /// Only events with a seq greater than this.
    pub after_seq: Option<u64>,
    /// At most this many, the most recent ones.
    pub limit: Option<u64>,
}

fn like_pattern(p: &str) -> String {
    let escaped = p
        .replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_");
    match escaped.strip_suffix('*') {
        Some(prefix) => format!("{prefix}%"),
        None => escaped,
    }
}

/// Events matching `q`, in seq order (the last `limit` ones when a limit is given).
pub fn query_events(conn: &Connection, q: &EventQuery) -> rusqlite::Result<Vec<Event>> {
    let actor = q.actor.as_ref().map(|a| {
        if a.contains(':') || a.ends_with('*') {
            like_pattern(a)
        } else {
            format!("{}:%", like_pattern(a))
        }
    });
    let sql = format!(
        "SELECT {EVENT_COLUMNS} FROM events
         WHERE (?1 IS NULL OR object = ?1)
           AND (?2 IS NULL OR type LIKE ?2 ESCAPE '\\')
           AND (?3 IS NULL OR actor LIKE ?3 ESCAPE '\\')
           AND (?4 IS NULL OR at >= ?4)
           AND seq > ?5
         ORDER BY seq DESC LIMIT ?6"
    );
    let mut stmt = conn.prepare_cached(&sql)?;
    let limit = q.limit.map_or(-1, |l| l as i64);
    let rows = stmt.query_map(
        params![
            q.object,
            q.type_.as_deref().map(like_pattern),
            actor,
            q.since,
            q.after_seq.unwrap_or(0) as i64,
            limit
        ],
        event_from_row,
    )?;
    let mut v: Vec<Event> = rows.collect::<rusqlite::Result<_>>()?;
    v.reverse();
    Ok(v)
}
