//! [`State`]: the handle commands use — the event log plus its self-repairing index.
//!
//! Invariants:
//! - Appends and every write to the on-disk index happen under the log's append lock, after
//!   re-reading the log head from disk, so concurrent processes form one chain.
//! - The index is checked against the log head before each query; if it is behind it catches up
//!   (verifying the chain from its head), and if it is missing, corrupt, of another schema version
//!   or not a prefix of the log it is moved aside and rebuilt, with a repair report and a
//!   `repair.applied` event.
//! - A read-only handle never creates a file or directory when the state directory does not exist:
//!   an absent log is an empty log, served from an in-memory index.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, OnceLock};

use repoman_core::{Clock, Env, ObjectId, ObjectKind, Paths};
use rusqlite::Connection;
use serde_json::{Value, json};

use crate::conflict::{self, Conflict, ConflictFilter, ConflictState, NewConflict, Resolution};
use crate::error::StateError;
use crate::event::{Event, NewEvent};
use crate::identity::{self, ActorKind, ActorRequest, Identity};
use crate::index;
use crate::log::{ChainVerifier, EventLog, Head, Tail};
use crate::policy::{self, Decision, Effect, Operation, Verdict};
use crate::repair::{self, RepairReport};
use crate::schemas;

/// The index file name in the state directory.
pub const INDEX_FILE: &str = "index.db";

/// Index files at most this large get a `PRAGMA quick_check` on every open; larger ones are
/// checked by `repoman doctor` (a full check of a multi-GB index would cost seconds per command).
pub const QUICK_CHECK_MAX_BYTES: u64 = 64 * 1024 * 1024;

/// Options for [`State::open_with`].
#[derive(Debug, Clone)]
pub struct StateOptions {
    pub read_only: bool,
    pub actor: ActorRequest,
    pub segment_max: u64,
    /// Rules [`State::decide`] consults after the built-ins and the TOML rules.
    pub policy: Option<std::sync::Arc<dyn crate::policy::PolicyExtension>>,
}

impl Default for StateOptions {
    fn default() -> Self {
        Self {
            read_only: false,
            actor: ActorRequest::Derived,
            segment_max: crate::log::DEFAULT_SEGMENT_MAX,
            policy: None,
        }
    }
}

/// The event log and its index.
#[derive(Debug)]
pub struct State {
    paths: Paths,
    log: EventLog,
    clock: Clock,
    identity: Identity,
    /// The identity once the device id is stored (if it was not at open).
    persisted: OnceLock<Identity>,
    read_only: bool,
    conn: Mutex<Option<Conn>>,
    repairs: Mutex<Vec<RepairReport>>,
    warnings: Mutex<Vec<String>>,
    policy: Option<std::sync::Arc<dyn crate::policy::PolicyExtension>>,
}

/// Why [`State::append_then`] failed.
#[derive(Debug)]
pub enum AppendThenError<E> {
    /// Recording the event failed: nothing was written anywhere.
    Log(StateError),
    /// The event was recorded, the other write failed; `undone`: the compensating event was
    /// recorded too.
    Write { error: E, undone: bool },
}

/// Events the index saw that are no longer in the log (the log's last segment(s) went missing).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LostTail {
    pub from: u64,
    pub to: u64,
    /// Hash of the last lost event, as the index recorded it.
    pub last_hash: String,
    /// Hash of the log's head (the event before the loss).
    pub before: String,
}

#[derive(Debug)]
struct Conn {
    conn: Connection,
    on_disk: bool,
}

impl State {
    /// For commands that write: stores the device id (creating the state dir) if absent.
    pub fn open(paths: &Paths, env: &Env, clock: Clock) -> Result<State, StateError> {
        Self::open_with(paths, env, clock, StateOptions::default())
    }

    /// For read-only commands: never creates a file or directory (an absent log is an empty log).
    pub fn open_read_only(paths: &Paths, env: &Env, clock: Clock) -> Result<State, StateError> {
        Self::open_with(
            paths,
            env,
            clock,
            StateOptions {
                read_only: true,
                ..StateOptions::default()
            },
        )
    }

    /// Open with explicit options (the daemon's actor, a small segment size in tests).
    pub fn open_with(
        paths: &Paths,
        env: &Env,
        clock: Clock,
        opts: StateOptions,
    ) -> Result<State, StateError> {
        // Nothing is created here: a writer keeps a candidate id, stored with its first event.
        let (device, device_persisted) = match identity::read_device_id(&paths.state_dir)? {
            Some(d) => (d, true),
            None if opts.read_only => ("unrecorded".to_owned(), false),
            None => (clock.new_id().to_string(), false),
        };
        let (actor, actor_kind) = Identity::derive_actor(env, &opts.actor);
        let identity = Identity {
            actor,
            actor_kind,
            device,
            profile: Identity::profile(env),
            device_persisted,
        };
        let log = EventLog::new(paths.state_dir.join("events")).with_segment_max(opts.segment_max);
        Ok(State {
            paths: paths.clone(),
            log,
            clock,
            identity,
            persisted: OnceLock::new(),
            read_only: opts.read_only,
            conn: Mutex::new(None),
            repairs: Mutex::new(Vec::new()),
            warnings: Mutex::new(Vec::new()),
            policy: opts.policy.clone(),
        })
    }

    /// Actor, device id and profile recorded on this handle's events. On a machine where nothing
    /// was recorded yet, the device id is the one that the first append will store.
    pub fn identity(&self) -> &Identity {
        self.persisted.get().unwrap_or(&self.identity)
    }

    /// The identity to record, storing the device id first if needed. Lock must be held.
    fn writer_identity(&self) -> Result<&Identity, StateError> {
        if self.identity.device_persisted {
            return Ok(&self.identity);
        }
        if let Some(i) = self.persisted.get() {
            return Ok(i);
        }
        let device = identity::ensure_device_id(&self.paths.state_dir, &self.identity.device)?;
        let stored = Identity {
            device,
            device_persisted: true,
            ..self.identity.clone()
        };
        Ok(self.persisted.get_or_init(|| stored))
    }

    pub fn state_dir(&self) -> &Path {
        &self.paths.state_dir
    }

    pub fn paths(&self) -> &Paths {
        &self.paths
    }

    pub fn log(&self) -> &EventLog {
        &self.log
    }

    pub fn clock(&self) -> &Clock {
        &self.clock
    }

    pub fn index_path(&self) -> PathBuf {
        self.paths.state_dir.join(INDEX_FILE)
    }

    /// Repairs this handle performed (index rebuilds, torn tails), for the CLI to mention.
    pub fn repairs(&self) -> Vec<RepairReport> {
        self.repairs.lock().map(|r| r.clone()).unwrap_or_default()
    }

    /// Problems this handle found and left alone (a read-only handle never writes the log), for
    /// the CLI to mention.
    pub fn warnings(&self) -> Vec<String> {
        self.warnings.lock().map(|w| w.clone()).unwrap_or_default()
    }

    fn warn(&self, w: String) {
        if let Ok(mut ws) = self.warnings.lock()
            && !ws.contains(&w)
        {
            ws.push(w);
        }
    }

    /// Append one event (validated, chained, fsynced, indexed).
    pub fn append(&self, ev: NewEvent) -> Result<Event, StateError> {
        let mut v = self.append_batch(vec![ev])?;
        v.pop().ok_or_else(|| StateError::InvalidEvent {
            type_: String::new(),
            object: String::new(),
            reason: "nothing appended".into(),
        })
    }

    /// Keep the log and another durable store (the registry) consistent when either write can
    /// fail (a full or read-only filesystem): record `ev` first, then run `write`; if `write`
    /// fails, record `undo` (a compensating event, e.g. `project.unregistered`) so the log says
    /// the change did not happen. If recording `ev` fails, `write` never runs. Returns `write`'s
    /// value, or its error with whether the compensating event was recorded.
    pub fn append_then<T, E>(
        &self,
        ev: NewEvent,
        write: impl FnOnce() -> Result<T, E>,
        undo: impl FnOnce(&E) -> NewEvent,
    ) -> Result<(Event, T), AppendThenError<E>> {
        let recorded = self.append(ev).map_err(AppendThenError::Log)?;
        match write() {
            Ok(t) => Ok((recorded, t)),
            Err(e) => {
                let undone = self.append(undo(&e)).is_ok();
                Err(AppendThenError::Write { error: e, undone })
            }
        }
    }

    /// Append many events with one write and one fsync.
    #[tracing::instrument(level = "debug", skip_all, fields(events = evs.len()))]
    pub fn append_batch(&self, evs: Vec<NewEvent>) -> Result<Vec<Event>, StateError> {
        self.append_batch_actors(evs, Vec::new())
    }

    /// Append many events with one write and one fsync, each recorded as the actor its request
    /// names: [`ActorRequest::Derived`] is this handle's actor, the others `agent:PROJECT` or
    /// `daemon:HOST` (no variant names a human, so this cannot record another human). The
    /// daemon's group commit uses it: events of different callers share one fsync.
    pub fn append_batch_as(
        &self,
        evs: Vec<(ActorRequest, NewEvent)>,
    ) -> Result<Vec<Event>, StateError> {
        let (actors, evs): (Vec<Option<String>>, Vec<NewEvent>) = evs
            .into_iter()
            .map(|(who, ev)| {
                let actor = match who {
                    ActorRequest::Derived => None,
                    other => Some(Identity::derive_actor(&Env::default(), &other).0),
                };
                (actor, ev)
            })
            .unzip();
        self.append_batch_actors(evs, actors)
    }

    fn append_batch_actors(
        &self,
        evs: Vec<NewEvent>,
        actors: Vec<Option<String>>,
    ) -> Result<Vec<Event>, StateError> {
        if self.read_only && !self.log.exists() {
            return Err(StateError::NoState(self.paths.state_dir.clone()));
        }
        for ev in &evs {
            validate_new_event(ev)?;
            // Trust in in-repo configuration is a human's statement only (see `trust`).
            if ev.type_ == crate::trust::TRUSTED && self.identity.actor_kind != ActorKind::Human {
                return Err(StateError::NotPermitted {
                    actor: self.identity.actor.clone(),
                    action: format!("record {} for {}", ev.type_, ev.object),
                });
            }
        }
        if evs.is_empty() {
            return Ok(Vec::new());
        }
        let _lock = self.log.lock()?;
        let mut tail = self.log.tail()?;
        let mut prefix = Vec::new();
        if let Some(torn) = tail.torn.clone() {
            prefix.push(self.repair_torn_locked(&torn)?);
            tail = self.log.tail()?;
        }
        let mut guard = self.conn_guard()?;
        let repairs_before = self.repairs().len();
        self.ensure_index_locked(&mut guard, &tail)?;
        if self.repairs().len() != repairs_before {
            tail = self.log.tail()?; // the rebuild appended `repair.applied`
        }
        let n = evs.len();
        // Repair events in front are this handle's; `actors` lines up with the caller's events.
        let actors: Vec<Option<String>> = std::iter::repeat_n(None, prefix.len())
            .chain(actors.into_iter().chain(std::iter::repeat(None)).take(n))
            .collect();
        let mut written = self.write_locked_as(
            &mut guard,
            &tail,
            prefix.into_iter().chain(evs).collect(),
            &actors,
        )?;
        // The caller gets its own events, not the repair event recorded in front of them.
        Ok(written.split_off(written.len() - n))
    }

    /// Chain `evs` after `tail`, write them, apply them to the index. Lock must be held.
    fn write_locked(
        &self,
        guard: &mut MutexGuard<'_, Option<Conn>>,
        tail: &Tail,
        evs: Vec<NewEvent>,
    ) -> Result<Vec<Event>, StateError> {
        self.write_locked_as(guard, tail, evs, &[])
    }

    /// [`Self::write_locked`] with a per-event actor (`None`, or past the end: this handle's).
    fn write_locked_as(
        &self,
        guard: &mut MutexGuard<'_, Option<Conn>>,
        tail: &Tail,
        evs: Vec<NewEvent>,
        actors: &[Option<String>],
    ) -> Result<Vec<Event>, StateError> {
        let who = self.writer_identity()?;
        let mut head = tail.head.clone();
        let mut out = Vec::with_capacity(evs.len());
        for (i, ev) in evs.into_iter().enumerate() {
            let actor = match actors.get(i) {
                Some(Some(a)) => a.clone(),
                _ => who.actor.clone(),
            };
            let mut e = Event {
                seq: head.seq + 1,
                id: self.clock.new_id(),
                at: self.clock.now_rfc3339(),
                type_: ev.type_,
                object: ev.object,
                actor,
                device: who.device.clone(),
                profile: who.profile.clone(),
                data: ev.data,
                prev: head.hash.clone(),
                hash: String::new(),
            };
            e.hash = e.compute_hash();
            head = Head {
                seq: e.seq,
                hash: e.hash.clone(),
            };
            out.push(e);
        }
        self.log.write_events(tail, &out)?;
        if let Some(c) = guard.as_mut() {
            // The log is the truth and is already durable; a failing index update is repaired on
            // the next open (the index is then behind the log and catches up).
            if let Err(e) = apply_events(&mut c.conn, &out, &head) {
                tracing::warn!(error = %e, "index update failed; it will catch up on next use");
                **guard = None;
            }
        }
        Ok(out)
    }

    fn conn_guard(&self) -> Result<MutexGuard<'_, Option<Conn>>, StateError> {
        self.conn.lock().map_err(|_| StateError::InvalidEvent {
            type_: String::new(),
            object: String::new(),
            reason: "state handle poisoned by an earlier panic".into(),
        })
    }

    /// Make the cached connection reflect the log whose tail is `tail`. Lock must be held.
    fn ensure_index_locked(
        &self,
        guard: &mut MutexGuard<'_, Option<Conn>>,
        tail: &Tail,
    ) -> Result<(), StateError> {
        let path = self.index_path();
        if guard.as_ref().is_some_and(|c| !c.on_disk) {
            **guard = None;
        }
        if guard.is_none() {
            if !path.exists() && tail.head.seq == 0 {
                // First use: a fresh index, nothing to report.
                let conn = index::open_conn(&path)?;
                index::create_schema(&conn).map_err(StateError::index(&path))?;
                set_wal(&conn);
                **guard = Some(Conn {
                    conn,
                    on_disk: true,
                });
                return Ok(());
            }
            if !path.exists() {
                return self.rebuild_locked(guard, "the index is missing");
            }
            match self.check_index_file(&path) {
                Ok(conn) => {
                    **guard = Some(Conn {
                        conn,
                        on_disk: true,
                    })
                }
                Err(reason) => return self.rebuild_locked(guard, &reason),
            }
        }
        let Some(c) = guard.as_mut() else {
            return Ok(());
        };
        let idx_head = index::read_head(&c.conn).map_err(StateError::index(&path))?;
        if idx_head == tail.head {
            return Ok(());
        }
        if idx_head.seq < tail.head.seq && self.log_has(&idx_head)? {
            return self.catch_up(c, &idx_head);
        }
        if let Some(lost) = lost_tail_of(&c.conn, &tail.head)? {
            // The index saw events the log no longer has: never rebuild over them (that would
            // forget they existed) and never append (that would reuse their seqs).
            return Err(StateError::LostEvents {
                from: lost.from,
                to: lost.to,
                detail: format!(
                    "the index recorded the log up to seq {}, the log now ends at seq {}: its last segment is missing",
                    lost.to, tail.head.seq
                ),
            });
        }
        let reason = if idx_head.seq > tail.head.seq {
            format!(
                "the index is ahead of the log (index at seq {}, log at seq {})",
                idx_head.seq, tail.head.seq
            )
        } else {
            format!(
                "the index (seq {}, hash {}) is not a prefix of the log",
                idx_head.seq,
                &idx_head.hash[..idx_head.hash.len().min(12)]
            )
        };
        **guard = None;
        self.rebuild_locked(guard, &reason)
    }

    /// Open an existing index file and check it; `Err` carries why it must be rebuilt.
    fn check_index_file(&self, path: &Path) -> Result<Connection, String> {
        let conn = index::open_conn(path).map_err(|e| format!("cannot open: {e}"))?;
        let version = index::schema_version(&conn).map_err(|e| format!("unreadable ({e})"))?;
        match version {
            Some(v) if v == index::SCHEMA_VERSION => {}
            Some(v) => {
                return Err(format!(
                    "index schema version {v}, this repoman needs {}",
                    index::SCHEMA_VERSION
                ));
            }
            None => return Err("no schema version recorded".into()),
        }
        let size = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
        if size <= QUICK_CHECK_MAX_BYTES {
            let r: String = conn
                .query_row("PRAGMA quick_check", [], |r| r.get(0))
                .map_err(|e| format!("quick_check failed: {e}"))?;
            if r != "ok" {
                return Err(format!("PRAGMA quick_check: {r}"));
            }
        }
        index::read_head(&conn).map_err(|e| format!("cannot read the head ({e})"))?;
        Ok(conn)
    }

    /// Whether the log holds an event with `head.seq` and `head.hash` (seq 0 always matches).
    fn log_has(&self, head: &Head) -> Result<bool, StateError> {
        if head.seq == 0 {
            return Ok(head.hash == Head::empty().hash);
        }
        match self.log.read_from(head.seq)?.next() {
            Some(Ok(e)) => Ok(e.seq == head.seq && e.hash == head.hash),
            Some(Err(_)) | None => Ok(false),
        }
    }

    #[tracing::instrument(level = "debug", skip_all, fields(from_seq = from.seq))]
    fn catch_up(&self, c: &mut Conn, from: &Head) -> Result<(), StateError> {
        let path = self.index_path();
        let mut verifier = ChainVerifier::new(from.clone());
        let tx = c.conn.transaction().map_err(StateError::index(&path))?;
        for l in self.log.read_from(from.seq + 1)?.located() {
            let l = l?;
            verifier.check(&l)?;
            let data = crate::event::canonical_json(&l.event.data);
            let id = l.event.id.to_string();
            index::apply(
                &tx,
                &mut index::SqlRegistries,
                &index::EventRef::of(&l.event, &id, &data),
            )
            .map_err(StateError::index(&path))?;
        }
        verifier.finish()?;
        index::write_head(&tx, verifier.head()).map_err(StateError::index(&path))?;
        tx.commit().map_err(StateError::index(&path))?;
        Ok(())
    }

    /// Move the index aside, rebuild it from the log, report, record `repair.applied`.
    fn rebuild_locked(
        &self,
        guard: &mut MutexGuard<'_, Option<Conn>>,
        reason: &str,
    ) -> Result<(), StateError> {
        let at = self.clock.now_rfc3339();
        let path = self.index_path();
        tracing::warn!(reason, "rebuilding the index from the event log");
        let mut report = RepairReport::new(&at, "index", reason);
        **guard = None;
        for suffix in ["", "-wal", "-shm", "-journal"] {
            let p = PathBuf::from(format!("{}{suffix}", path.display()));
            if let Some(q) = repair::quarantine_file(&self.paths.state_dir, &p, &at)? {
                report.quarantined.push(q.display().to_string());
            }
        }
        let head = rebuild_index(&self.log, &path)?;
        report.preserved.push(format!(
            "event log {} ({} events, head seq {})",
            self.log.dir().display(),
            head.seq,
            head.seq
        ));
        report
            .rebuilt
            .push(format!("{} from {} events", path.display(), head.seq));
        report.next_action = "none: the index was rebuilt from the event log; the moved-aside file can be deleted once you no longer need it for diagnosis".into();
        let conn = index::open_conn(&path)?;
        set_wal(&conn);
        **guard = Some(Conn {
            conn,
            on_disk: true,
        });
        let mut tail = self.log.tail()?;
        let mut evs = Vec::new();
        if let Some(torn) = tail.torn.clone() {
            if self.read_only {
                // A read-only command stays read-only: the index is rebuilt (it is rebuildable),
                // but nothing is appended after the torn bytes, and they stay for doctor.
                self.warn(torn_warning(&torn));
                report.next_action.push_str(
                    "; `repair.applied` was not recorded because the log ends with torn bytes: run `repoman doctor --repair`",
                );
                report.write(&self.paths.state_dir)?;
                if let Ok(mut r) = self.repairs.lock() {
                    r.push(report);
                }
                return Ok(());
            }
            evs.push(self.repair_torn_locked(&torn)?);
            tail = self.log.tail()?;
        }
        let report_path = report.write(&self.paths.state_dir)?;
        evs.push(NewEvent::new(
            "repair.applied",
            "store:index",
            json!({"store": "index", "failed": reason, "report": report_path.display().to_string(), "quarantined": report.quarantined}),
        ));
        self.write_locked(guard, &tail, evs)?;
        if let Ok(mut r) = self.repairs.lock() {
            r.push(report);
        }
        Ok(())
    }

    /// Quarantine a torn tail and return the `repair.applied` event to record. Lock must be held.
    fn repair_torn_locked(&self, torn: &crate::log::TornTail) -> Result<NewEvent, StateError> {
        let at = self.clock.now_rfc3339();
        let q = self.log.quarantine_torn(
            torn,
            &self.paths.state_dir.join("quarantine"),
            &repair::file_stamp(&at),
        )?;
        let reason = format!(
            "torn last line in {} ({} bytes after the last complete event; a crash during an append)",
            torn.segment.display(),
            torn.len
        );
        let mut report = RepairReport::new(&at, "events", &reason);
        report.preserved.push(format!(
            "every complete event in {}",
            torn.segment.display()
        ));
        report.quarantined.push(q.display().to_string());
        report.next_action = "none: the torn bytes were never a committed event; they are kept in quarantine for inspection".into();
        let report_path = report.write(&self.paths.state_dir)?;
        if let Ok(mut r) = self.repairs.lock() {
            r.push(report);
        }
        Ok(NewEvent::new(
            "repair.applied",
            "store:events",
            json!({"store": "events", "failed": reason, "report": report_path.display().to_string(), "quarantined": [q.display().to_string()]}),
        ))
    }

    /// Repair a torn tail now (for `doctor --repair`). Returns the report, or `None` if not torn.
    pub fn repair_torn_tail(&self) -> Result<Option<RepairReport>, StateError> {
        if !self.log.exists() {
            return Ok(None);
        }
        let _lock = self.log.lock()?;
        let tail = self.log.tail()?;
        let Some(torn) = tail.torn.clone() else {
            return Ok(None);
        };
        let ev = self.repair_torn_locked(&torn)?;
        let tail = self.log.tail()?;
        let mut guard = self.conn_guard()?;
        self.ensure_index_locked(&mut guard, &tail)?;
        let tail = self.log.tail()?;
        self.write_locked(&mut guard, &tail, vec![ev])?;
        Ok(self.repairs().pop())
    }

    /// Force a rebuild of the index (for `doctor --repair` when it found an inconsistency).
    pub fn rebuild_index(&self, reason: &str) -> Result<RepairReport, StateError> {
        let _lock = self.log.lock()?;
        let mut guard = self.conn_guard()?;
        self.rebuild_locked(&mut guard, reason)?;
        self.repairs()
            .pop()
            .ok_or_else(|| StateError::NoState(self.paths.state_dir.clone()))
    }

    /// Events the on-disk index saw that the log no longer holds, if any (read-only).
    pub fn lost_tail(&self) -> Result<Option<LostTail>, StateError> {
        let path = self.index_path();
        if !path.exists() {
            return Ok(None);
        }
        let head = self.log.tail()?.head;
        let Ok(conn) = index::open_existing_read_only(&path) else {
            return Ok(None);
        };
        lost_tail_of(&conn, &head)
    }

    /// A human accepts that events are lost: record `events.loss.acknowledged` for each lost
    /// range (the missing last segment(s) the index knew about, and every unacknowledged gap in
    /// the chain), then rebuild the index. An acknowledgement after a lost tail takes the seq
    /// after the last lost event and links to its hash, so no seq is ever used twice. Returns
    /// the ranges acknowledged.
    pub fn acknowledge_loss(&self) -> Result<Vec<(u64, u64)>, StateError> {
        if self.identity.actor_kind != ActorKind::Human {
            return Err(StateError::NotPermitted {
                actor: self.identity.actor.clone(),
                action: "acknowledge lost events".into(),
            });
        }
        if !self.log.exists() {
            return Ok(Vec::new());
        }
        let _lock = self.log.lock()?;
        let mut guard = self.conn_guard()?;
        *guard = None;
        let mut tail = self.log.tail()?;
        if let Some(torn) = tail.torn.clone() {
            return Err(StateError::TornTail {
                path: torn.segment,
                len: torn.len,
            });
        }
        let mut done = Vec::new();
        // Gaps inside the log.
        let mut verifier = ChainVerifier::new(Head::empty());
        for l in self.log.read_from(1)?.located() {
            verifier.check(&l?)?;
        }
        let gaps: Vec<(u64, u64, String)> = verifier
            .unacknowledged()
            .iter()
            .map(|g| (g.from, g.to, g.before.clone()))
            .collect();
        if !gaps.is_empty() {
            let evs = gaps
                .iter()
                .map(|(from, to, before)| {
                    loss_event(*from, *to, before, "a segment inside the log is missing")
                })
                .collect();
            self.write_locked(&mut guard, &tail, evs)?;
            done.extend(gaps.iter().map(|(f, t, _)| (*f, *t)));
            tail = self.log.tail()?;
        }
        // The lost tail (only the index knows about it).
        if let Some(lost) = self.lost_tail()? {
            let after_loss = Tail {
                head: Head {
                    seq: lost.to,
                    hash: lost.last_hash.clone(),
                },
                ..tail.clone()
            };
            let ev = loss_event(
                lost.from,
                lost.to,
                &lost.before,
                "the last segment(s) of the log are missing",
            );
            self.write_locked(&mut guard, &after_loss, vec![ev])?;
            done.push((lost.from, lost.to));
        }
        if !done.is_empty() {
            let reason = format!(
                "lost events acknowledged: {}",
                done.iter()
                    .map(|(f, t)| format!("{f}-{t}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            self.rebuild_locked(&mut guard, &reason)?;
        }
        Ok(done)
    }

    /// Run `f` on an index that reflects the current log (repairing or catching up first).
    pub fn with_index<T>(
        &self,
        f: impl FnOnce(&Connection) -> rusqlite::Result<T>,
    ) -> Result<T, StateError> {
        let path = self.index_path();
        let mut guard = self.conn_guard()?;
        if !self.log.exists() {
            // Nothing recorded yet: an empty in-memory index, no files.
            if guard.is_none() {
                let conn = Connection::open_in_memory().map_err(StateError::index(&path))?;
                index::create_schema(&conn).map_err(StateError::index(&path))?;
                *guard = Some(Conn {
                    conn,
                    on_disk: false,
                });
            }
        } else {
            let tail = self.log.tail_for_read()?;
            if let Some(t) = &tail.torn {
                self.warn(torn_warning(t));
            }
            // An in-memory index (a read-only state directory) is fresh the same way: it was
            // built from the log up to its recorded head.
            let fresh = match guard.as_ref() {
                Some(c) => index::read_head(&c.conn)
                    .map(|h| h == tail.head)
                    .unwrap_or(false),
                None => false,
            };
            if !fresh {
                if tail.head.seq == 0 && !path.exists() {
                    let conn = Connection::open_in_memory().map_err(StateError::index(&path))?;
                    index::create_schema(&conn).map_err(StateError::index(&path))?;
                    *guard = Some(Conn {
                        conn,
                        on_disk: false,
                    });
                } else {
                    match self.log.lock() {
                        Ok(_lock) => {
                            let tail = self.log.tail()?;
                            self.ensure_index_locked(&mut guard, &tail)?;
                        }
                        Err(e) if self.read_only && unwritable(&e) => {
                            // A read-only state directory (a snapshot, a read-only mount, another
                            // user's state): read the log into an index in memory for this
                            // command. The chain is verified as always; nothing is written.
                            self.warn(format!(
                                "the state directory {} is read-only: the index was built in memory from the log for this command",
                                self.paths.state_dir.display()
                            ));
                            let conn =
                                Connection::open_in_memory().map_err(StateError::index(&path))?;
                            index::create_schema(&conn).map_err(StateError::index(&path))?;
                            let mut c = Conn {
                                conn,
                                on_disk: false,
                            };
                            self.catch_up(&mut c, &Head::empty())?;
                            *guard = Some(c);
                        }
                        Err(e) => return Err(e),
                    }
                }
            }
        }
        let c = guard
            .as_ref()
            .ok_or_else(|| StateError::NoState(self.paths.state_dir.clone()))?;
        f(&c.conn).map_err(StateError::index(&path))
    }

    /// Events matching `q`, in seq order (from the index).
    pub fn events(&self, q: &index::EventQuery) -> Result<Vec<Event>, StateError> {
        self.with_index(|c| index::query_events(c, q))
    }

    /// The head of the log (seq 0 when empty).
    pub fn head(&self) -> Result<Head, StateError> {
        Ok(self.log.tail()?.head)
    }

    /// Last event of `type_` about `object`, from the index.
    pub fn last_event(&self, object: &str, type_: &str) -> Result<Option<Event>, StateError> {
        self.with_index(|c| index::last_event(c, object, type_))
    }

    /// Merge guard verdicts with user rules, record `policy.decided` and, when blocked,
    /// `<operation>.plan.blocked`.
    /// The effect of `op` and every reason, without recording anything: the guards' `verdicts`,
    /// then the user's `rules`, then the policy extension's (the installed `policy-rule` SNIFs).
    /// [`State::decide`] records this; a dry run shows it.
    pub fn evaluate(
        &self,
        op: &Operation,
        verdicts: Vec<Verdict>,
        rules: &[repoman_core::registry::PolicyRule],
    ) -> (Effect, Vec<Verdict>) {
        let (mut effect, mut reasons) = policy::evaluate(op, verdicts, rules, self.identity());
        if let Some(ext) = &self.policy {
            for v in ext.verdicts(op, self.identity()) {
                effect = effect.max(v.effect);
                reasons.push(v);
            }
        }
        (effect, reasons)
    }

    pub fn decide(
        &self,
        op: &Operation,
        verdicts: Vec<Verdict>,
        rules: &[repoman_core::registry::PolicyRule],
    ) -> Result<Decision, StateError> {
        let (effect, reasons) = self.evaluate(op, verdicts, rules);
        let mut evs = vec![NewEvent::new(
            "policy.decided",
            op.object.clone(),
            json!({"operation": op.name, "project": op.project, "effect": effect.as_str(), "reasons": reasons}),
        )];
        if effect.blocks() {
            let blocking: Vec<&Verdict> = reasons.iter().filter(|v| v.effect.blocks()).collect();
            let explanation = format!(
                "{} of {} is {}: {}",
                op.name,
                op.object,
                if effect == Effect::Deny {
                    "denied"
                } else {
                    "waiting for review"
                },
                blocking
                    .iter()
                    .map(|v| format!("{} ({})", v.reason, v.rule))
                    .collect::<Vec<_>>()
                    .join("; ")
            );
            let unblock: Vec<&str> = blocking
                .iter()
                .filter_map(|v| v.unblock.as_deref())
                .collect();
            // `decision_seq` is set under the lock once the decision's seq is known.
            evs.push(NewEvent::new(
                format!("{}.plan.blocked", op.name),
                op.object.clone(),
                json!({"operation": op.name, "project": op.project, "effect": effect.as_str(), "decision_seq": 1, "explanation": explanation, "unblock": unblock}),
            ));
        }
        let written = self.append_decision(evs)?;
        let event_seq = written.first().map(|e| e.seq);
        Ok(Decision {
            effect,
            reasons,
            event_seq,
        })
    }

    /// Append a decision batch, pointing the blocked event at the decision's seq.
    fn append_decision(&self, mut evs: Vec<NewEvent>) -> Result<Vec<Event>, StateError> {
        for ev in &evs {
            validate_new_event(ev)?;
        }
        let _lock = self.log.lock()?;
        let mut tail = self.log.tail()?;
        let mut prefix = Vec::new();
        if let Some(torn) = tail.torn.clone() {
            prefix.push(self.repair_torn_locked(&torn)?);
            tail = self.log.tail()?;
        }
        let mut guard = self.conn_guard()?;
        self.ensure_index_locked(&mut guard, &tail)?;
        tail = self.log.tail()?;
        let decision_seq = tail.head.seq + prefix.len() as u64 + 1;
        if let Some(blocked) = evs.get_mut(1)
            && let Some(obj) = blocked.data.as_object_mut()
        {
            obj.insert("decision_seq".into(), json!(decision_seq));
        }
        let n = evs.len();
        let mut written =
            self.write_locked(&mut guard, &tail, prefix.into_iter().chain(evs).collect())?;
        Ok(written.split_off(written.len() - n))
    }

    /// Record a conflict (`conflict.detected`); its id is the event's id.
    pub fn record_conflict(&self, c: NewConflict) -> Result<Conflict, StateError> {
        let ev = self.append(NewEvent::new(
            conflict::DETECTED,
            c.object.clone(),
            json!({"kind": c.kind, "project": c.project, "detail": c.detail}),
        ))?;
        let id = ev.id.to_string();
        self.with_index(|conn| index::conflict(conn, &id))?
            .ok_or(StateError::ConflictNotFound(id))
    }

    /// Conflicts matching `filter`, oldest first.
    pub fn conflicts(&self, filter: ConflictFilter) -> Result<Vec<Conflict>, StateError> {
        self.with_index(|c| index::conflicts(c, &filter))
    }

    /// Settle a pending conflict. Humans only.
    pub fn resolve_conflict(
        &self,
        id: &str,
        resolution: Resolution,
        note: Value,
    ) -> Result<Conflict, StateError> {
        if self.identity.actor_kind != ActorKind::Human {
            return Err(StateError::NotPermitted {
                actor: self.identity.actor.clone(),
                action: format!("resolve conflict {id}"),
            });
        }
        let existing = self
            .with_index(|c| index::conflict(c, id))?
            .ok_or_else(|| StateError::ConflictNotFound(id.to_owned()))?;
        if existing.state != ConflictState::Pending {
            return Err(StateError::ConflictClosed {
                id: id.to_owned(),
                state: existing.state.as_str().to_owned(),
            });
        }
        self.append(NewEvent::new(
            conflict::RESOLVED,
            existing.object.clone(),
            json!({"conflict": id, "resolution": resolution.as_str(), "note": note}),
        ))?;
        self.with_index(|c| index::conflict(c, id))?
            .ok_or_else(|| StateError::ConflictNotFound(id.to_owned()))
    }
}

fn torn_warning(t: &crate::log::TornTail) -> String {
    format!(
        "the event log ends with {} torn byte(s) in {} (a crash during an append); nothing was written after them. Run `repoman doctor --repair`",
        t.len,
        t.segment.display()
    )
}

fn loss_event(from: u64, to: u64, before: &str, why: &str) -> NewEvent {
    NewEvent::new(
        crate::log::LOSS_ACKNOWLEDGED,
        "store:events",
        json!({"from": from, "to": to, "before": before, "count": to - from + 1, "reason": why}),
    )
}

/// The events an index (at `conn`) saw beyond the log's `head`, when the log is a prefix of
/// what the index saw (its event at the log's head seq has the log's head hash).
fn lost_tail_of(conn: &Connection, head: &Head) -> Result<Option<LostTail>, StateError> {
    let idx = index::read_head(conn).map_err(|e| StateError::Index {
        path: PathBuf::from(INDEX_FILE),
        source: e,
    })?;
    if idx.seq <= head.seq {
        return Ok(None);
    }
    let hash_at = |seq: u64| -> Option<String> {
        conn.query_row(
            "SELECT hash FROM events WHERE seq = ?1",
            [seq as i64],
            |r| r.get(0),
        )
        .ok()
    };
    // Only an index that holds the events it claims (its head row is there, with its hash) is
    // evidence of lost events; anything else is a damaged index, rebuilt from the log.
    let consistent = hash_at(idx.seq).as_deref() == Some(idx.hash.as_str());
    let prefix = head.seq == 0 || hash_at(head.seq).as_deref() == Some(head.hash.as_str());
    Ok((consistent && prefix).then(|| LostTail {
        from: head.seq + 1,
        to: idx.seq,
        last_hash: idx.hash.clone(),
        before: head.hash.clone(),
    }))
}

fn set_wal(conn: &Connection) {
    // WAL lets readers in other processes proceed while one appender writes; NORMAL sync is enough
    // for a file that can always be rebuilt.
    let _ = conn.pragma_update(None, "journal_mode", "WAL");
    let _ = conn.pragma_update(None, "synchronous", "NORMAL");
}

/// Apply written events to an index connection and move its head.
fn apply_events(conn: &mut Connection, evs: &[Event], head: &Head) -> rusqlite::Result<()> {
    let tx = conn.transaction()?;
    for e in evs {
        let (id, data) = (e.id.to_string(), crate::event::canonical_json(&e.data));
        index::apply(
            &tx,
            &mut index::SqlRegistries,
            &index::EventRef::of(e, &id, &data),
        )?;
    }
    index::write_head(&tx, head)?;
    tx.commit()
}

/// Build a fresh index at `path` from the whole log, verifying the chain (see [`crate::replay`]).
pub fn rebuild_index(log: &EventLog, path: &Path) -> Result<Head, StateError> {
    crate::replay::rebuild_index(log, path)
}

fn is_word(s: &str) -> bool {
    let mut chars = s.chars();
    chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
}

/// Check an event before it is written: dotted lowercase type, `kind:id` object, object data,
/// and the registered schema of its type if any.
pub fn validate_new_event(ev: &NewEvent) -> Result<(), StateError> {
    validate_event_with(ev, schemas::event_schemas_required())
}

/// [`validate_new_event`], with `require_schema` in place of the process-wide switch.
fn validate_event_with(ev: &NewEvent, require_schema: bool) -> Result<(), StateError> {
    let bad = |reason: String| StateError::InvalidEvent {
        type_: ev.type_.clone(),
        object: ev.object.clone(),
        reason,
    };
    let parts: Vec<&str> = ev.type_.split('.').collect();
    if parts.len() < 2 || !parts.iter().all(|p| is_word(p)) {
        return Err(bad(
            "the type must be dotted lowercase words, e.g. `backup.synced`".into(),
        ));
    }
    // Known kinds must have their shape (`ObjectId`); a kind this version does not know is
    // accepted as `kind:id` so extensions and older writers are not refused.
    let kind = ObjectId::kind_str(&ev.object);
    let rest = &ev.object[kind.len()..];
    let known_kind = kind.parse::<ObjectKind>().is_ok();
    let well_formed = if known_kind {
        ev.object.parse::<ObjectId>().is_ok()
    } else {
        is_word(kind) && rest.len() > 1
    };
    if !well_formed || ev.object.contains('\n') {
        return Err(bad(match ev.object.parse::<ObjectId>() {
            Err(e) if known_kind => e.to_string(),
            _ => "the object must be `kind:id`, e.g. `project:alpha`".into(),
        }));
    }
    if !ev.data.is_object() {
        return Err(bad("data must be a JSON object".into()));
    }
    match schemas::for_event_type(&ev.type_) {
        Some(id) => schemas::validate(
            &id,
            &ev.data,
            &format!("data of event {} for {}", ev.type_, ev.object),
        )?,
        None if require_schema => {
            return Err(bad(format!(
                "no schema is registered for event type `{}` (REPOMAN_STRICT_SCHEMAS=1 requires one; the crate that writes it registers `event.{}/v1`)",
                ev.type_, ev.type_
            )));
        }
        None => {}
    }
    Ok(())
}

/// The lock could not be taken because the state directory cannot be written (read-only
/// filesystem, no write permission), as opposed to another process holding it.
fn unwritable(e: &StateError) -> bool {
    let source = match e {
        StateError::Lock(
            repoman_core::fs::FsError::LockOpen { source, .. }
            | repoman_core::fs::FsError::Write { source, .. },
        )
        | StateError::Io { source, .. } => source,
        _ => return false,
    };
    matches!(
        source.kind(),
        std::io::ErrorKind::ReadOnlyFilesystem | std::io::ErrorKind::PermissionDenied
    )
}

#[cfg(test)]
mod strict_schema_tests {
    use super::*;

    #[test]
    fn a_type_without_a_schema_is_refused_only_when_schemas_are_required() {
        let ev = NewEvent::new(
            "nobody.registered",
            "project:alpha",
            serde_json::json!({"x": 1}),
        );
        validate_event_with(&ev, false).unwrap();
        let e = validate_event_with(&ev, true).unwrap_err().to_string();
        assert!(
            e.contains("no schema is registered for event type `nobody.registered`"),
            "{e}"
        );
    }
}
