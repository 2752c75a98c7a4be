//! Index rebuild: replay the whole log into a fresh SQLite file, verifying the chain.
//!
//! Two threads form a pipeline, because a rebuild is bounded by one core otherwise:
//! - the *verifier* reads segments in large chunks and checks every line's chain links and hash.
//!   A line in canonical form (as repoman writes it) is checked on its bytes: `seq`, `prev` and
//!   `hash` are its last top-level members of those names, and its hash is BLAKE3 of the line
//!   minus the `"hash"` member. Any other line is parsed and checked the slow, strict way.
//! - the *writer* (the calling thread) parses each verified line into borrowed fields and applies
//!   it with [`index::apply`] and in-memory registries, re-checking `seq`/`prev` on the parsed
//!   fields, then builds the secondary indexes.
//!
//! Invariant: the writer applies a line only after the verifier has accepted it and every line
//! before it; the first failure (torn bytes are not lines) ends the rebuild with its seq and
//! file:line.

use std::borrow::Cow;
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{SyncSender, sync_channel};

use rusqlite::{Connection, Transaction};

use crate::error::StateError;
use crate::event::Event;
use crate::index;
use crate::log::{EventLog, Head};

const CHUNK_BYTES: usize = 4 << 20;

struct Line {
    start: usize,
    end: usize,
    /// Verified on its bytes (canonical form): `data` can be stored as written.
    fast: bool,
    /// The first event after lost ones (see [`crate::log::ChainVerifier`]): its `prev` links to
    /// an event that is not in the log.
    gap: bool,
    segment: usize,
    line_no: u64,
}

#[derive(Default)]
struct Chunk {
    buf: Vec<u8>,
    lines: Vec<Line>,
}

/// One log line as borrowed fields; `data` stays unparsed text.
#[derive(serde::Deserialize)]
struct RawEvent<'a> {
    seq: u64,
    #[serde(borrow)]
    id: Cow<'a, str>,
    #[serde(borrow)]
    at: Cow<'a, str>,
    #[serde(borrow, rename = "type")]
    type_: Cow<'a, str>,
    #[serde(borrow)]
    object: Cow<'a, str>,
    #[serde(borrow)]
    actor: Cow<'a, str>,
    #[serde(borrow)]
    device: Cow<'a, str>,
    #[serde(borrow)]
    profile: Cow<'a, str>,
    #[serde(borrow)]
    data: &'a serde_json::value::RawValue,
    #[serde(borrow)]
    prev: Cow<'a, str>,
    #[serde(borrow)]
    hash: Cow<'a, str>,
}

/// Position of the last `key` (e.g. `,"hash":"`) in `line`, by a byte scan from the end.
fn rfind(line: &[u8], key: &[u8]) -> Option<usize> {
    let first = key[0];
    (0..line.len().saturating_sub(key.len()))
        .rev()
        .find(|&i| line[i] == first && line[i..].starts_with(key))
}

/// `(seq, prev, hash, byte range of the hash member)` of a canonical line.
type Scanned<'a> = (u64, &'a [u8], &'a [u8], std::ops::Range<usize>);

/// `seq`, `prev` and `hash` of a canonical line, and the byte range of its `,"hash":"…"`.
/// In canonical form these are the last members of those names: every member after them holds
/// a string (whose inner quotes are escaped) or a number.
fn scan_canonical(line: &[u8]) -> Option<Scanned<'_>> {
    const HASH: &[u8] = b",\"hash\":\"";
    const PREV: &[u8] = b",\"prev\":\"";
    const SEQ: &[u8] = b",\"seq\":";
    let h = rfind(line, HASH)?;
    let hash = line.get(h + HASH.len()..h + HASH.len() + 64)?;
    if line.get(h + HASH.len() + 64) != Some(&b'"') {
        return None;
    }
    let p = rfind(line, PREV)?;
    let prev = line.get(p + PREV.len()..p + PREV.len() + 64)?;
    let s = rfind(line, SEQ)? + SEQ.len();
    let digits = line[s..].iter().take_while(|b| b.is_ascii_digit()).count();
    let seq = std::str::from_utf8(&line[s..s + digits])
        .ok()?
        .parse()
        .ok()?;
    Some((seq, prev, hash, h..h + HASH.len() + 65))
}

/// Gaps (lost events) met during a replay, and the acknowledgements of lost ranges.
#[derive(Debug, Default)]
struct Gaps {
    gaps: Vec<(u64, u64, PathBuf, u64)>,
    acks: Vec<(u64, u64)>,
}

impl Gaps {
    /// After the last line: every gap must be acknowledged.
    fn finish(&self) -> Result<(), StateError> {
        for (from, to, path, line) in &self.gaps {
            if !self.acks.iter().any(|&(f, t)| f <= *from && *to <= t) {
                return Err(StateError::LostEvents {
                    from: *from,
                    to: *to,
                    detail: format!(
                        "the chain resumes at seq {} in {}:{line}",
                        to + 1,
                        path.display()
                    ),
                });
            }
        }
        Ok(())
    }
}

const ACK_TYPE: &[u8] = b"\"type\":\"events.loss.acknowledged\"";

/// Check one line against the chain; returns whether the fast (byte) path verified it, and
/// whether it resumes the chain after a gap.
fn verify_line(
    line: &[u8],
    head: &mut Head,
    segment: &Path,
    line_no: u64,
    gaps: &mut Gaps,
) -> Result<(bool, bool), StateError> {
    if let Some((seq, prev, hash, range)) = scan_canonical(line)
        && seq == head.seq + 1
        && prev == head.hash.as_bytes()
    {
        let mut h = blake3::Hasher::new();
        h.update(&line[..range.start]);
        h.update(&line[range.end..]);
        if h.finalize().to_hex().as_bytes() == hash {
            head.seq = seq;
            head.hash.clear();
            head.hash
                .push_str(std::str::from_utf8(hash).unwrap_or_default());
            // Acknowledgements matter only once a gap was seen (they follow their gap).
            if !gaps.gaps.is_empty()
                && memchr::memmem::find(line, ACK_TYPE).is_some()
                && let Ok(e) = serde_json::from_slice::<Event>(line)
                && let Some(r) = crate::log::acknowledged_range(&e)
            {
                gaps.acks.push(r);
            }
            return Ok((true, false));
        }
    }
    // The strict path: parse, then check links and the hash of the canonical form.
    let e: Event = serde_json::from_slice(line).map_err(|err| StateError::CorruptLine {
        path: segment.to_path_buf(),
        line: line_no,
        reason: err.to_string(),
    })?;
    let broken = |reason: String| StateError::ChainBroken {
        seq: e.seq,
        path: segment.to_path_buf(),
        line: line_no,
        reason,
    };
    let ack = crate::log::acknowledged_range(&e);
    let gap = e.seq > head.seq + 1
        && ((line_no == 1 && crate::log::segment_first_seq(segment) == Some(e.seq))
            || ack == Some((head.seq + 1, e.seq - 1)));
    if e.seq != head.seq + 1 && !gap {
        return Err(broken(format!(
            "expected seq {}, found {}",
            head.seq + 1,
            e.seq
        )));
    }
    if !gap && e.prev != head.hash {
        return Err(broken(format!(
            "prev does not match the hash of seq {}",
            head.seq
        )));
    }
    let computed = e.compute_hash();
    if computed != e.hash {
        return Err(broken(format!(
            "content does not match its hash (recorded {}, computed {})",
            &e.hash[..e.hash.len().min(12)],
            &computed[..12]
        )));
    }
    if gap {
        gaps.gaps
            .push((head.seq + 1, e.seq - 1, segment.to_path_buf(), line_no));
    }
    if let Some(r) = ack {
        gaps.acks.push(r);
    }
    *head = Head {
        seq: e.seq,
        hash: e.hash,
    };
    Ok((false, gap))
}

/// Bytes read from a segment per `read` call, straight into the chunk being filled.
const READ_BYTES: u64 = 1 << 20;

/// A chunk buffer with room for a full chunk plus one read, so filling it never reallocates.
fn chunk_with(tail: &[u8]) -> Chunk {
    let mut buf = Vec::with_capacity(CHUNK_BYTES + 2 * READ_BYTES as usize);
    buf.extend_from_slice(tail);
    Chunk {
        buf,
        lines: Vec::new(),
    }
}

fn verifier(segments: &[PathBuf], out: SyncSender<Result<Chunk, StateError>>) {
    let mut head = Head::empty();
    let mut gaps = Gaps::default();
    let mut chunk = chunk_with(&[]);
    for (si, path) in segments.iter().enumerate() {
        let mut file = match File::open(path) {
            Ok(f) => f,
            Err(source) => {
                let _ = out.send(Err(StateError::Io {
                    path: path.clone(),
                    source,
                }));
                return;
            }
        };
        let mut line_no = 0u64;
        // `chunk.buf[..pos]` holds complete, verified lines; the bytes after it are the start of
        // a line whose newline has not been read yet.
        let mut pos = chunk.buf.len();
        loop {
            // Read into the chunk itself (no intermediate buffer to copy lines out of).
            match (&mut file).take(READ_BYTES).read_to_end(&mut chunk.buf) {
                Ok(0) => {
                    // A torn tail (bytes after the last newline): not a committed event.
                    chunk.buf.truncate(pos);
                    break;
                }
                Ok(_) => {}
                Err(source) => {
                    let _ = out.send(Err(StateError::Io {
                        path: path.clone(),
                        source,
                    }));
                    return;
                }
            }
            while let Some(nl) = memchr::memchr(b'\n', &chunk.buf[pos..]) {
                let (start, end) = (pos, pos + nl);
                pos = end + 1;
                line_no += 1;
                match verify_line(&chunk.buf[start..end], &mut head, path, line_no, &mut gaps) {
                    Ok((fast, gap)) => chunk.lines.push(Line {
                        start,
                        end,
                        fast,
                        gap,
                        segment: si,
                        line_no,
                    }),
                    Err(e) => {
                        let _ = out.send(Err(e));
                        return;
                    }
                }
            }
            if pos >= CHUNK_BYTES {
                // Send the complete lines; the partial line starts the next chunk.
                let next = chunk_with(&chunk.buf[pos..]);
                chunk.buf.truncate(pos);
                if out.send(Ok(std::mem::replace(&mut chunk, next))).is_err() {
                    return; // the writer failed and stopped listening
                }
                pos = 0;
            }
        }
    }
    if let Err(e) = gaps.finish() {
        let _ = out.send(Err(e));
        return;
    }
    let _ = out.send(Ok(chunk));
}

/// Apply one verified line.
#[allow(clippy::too_many_arguments)]
fn apply_line(
    tx: &Transaction<'_>,
    insert_event: &mut rusqlite::Statement<'_>,
    regs: &mut index::MemRegistries,
    head: &mut Head,
    line: &[u8],
    (fast, gap): (bool, bool),
    segment: &Path,
    line_no: u64,
) -> Result<(), StateError> {
    let corrupt = |reason: String| StateError::CorruptLine {
        path: segment.to_path_buf(),
        line: line_no,
        reason,
    };
    let index_err = |source| StateError::Index {
        path: segment.to_path_buf(),
        source,
    };
    let raw: RawEvent<'_> = serde_json::from_slice(line).map_err(|e| corrupt(e.to_string()))?;
    let links = if gap {
        raw.seq > head.seq + 1
    } else {
        raw.seq == head.seq + 1 && *raw.prev == *head.hash
    };
    if !links {
        return Err(StateError::ChainBroken {
            seq: raw.seq,
            path: segment.to_path_buf(),
            line: line_no,
            reason: format!("does not continue seq {}", head.seq),
        });
    }
    if fast {
        let e = index::EventRef {
            seq: raw.seq,
            id: &raw.id,
            at: &raw.at,
            type_: &raw.type_,
            object: &raw.object,
            actor: &raw.actor,
            device: &raw.device,
            profile: &raw.profile,
            data_json: raw.data.get(),
            data: None,
            prev: &raw.prev,
            hash: &raw.hash,
        };
        index::apply_with(tx, insert_event, regs, &e).map_err(index_err)?;
    } else {
        let ev: Event = serde_json::from_slice(line).map_err(|e| corrupt(e.to_string()))?;
        let (id, data) = (ev.id.to_string(), crate::event::canonical_json(&ev.data));
        let e = index::EventRef::of(&ev, &id, &data);
        index::apply_with(tx, insert_event, regs, &e).map_err(index_err)?;
    }
    head.seq = raw.seq;
    head.hash.clear();
    head.hash.push_str(&raw.hash);
    Ok(())
}

/// [`replay`] on the calling thread only: verify and apply each line in turn.
fn replay_serial(log: &EventLog, conn: &mut Connection) -> Result<Head, StateError> {
    let tx = conn.transaction().map_err(|e| StateError::Index {
        path: log.dir().to_path_buf(),
        source: e,
    })?;
    let idx = |e| StateError::Index {
        path: log.dir().to_path_buf(),
        source: e,
    };
    let mut regs = index::MemRegistries::default();
    let mut verified = Head::empty();
    let mut head = Head::empty();
    let mut gaps = Gaps::default();
    {
        let mut insert = tx.prepare(index::INSERT_EVENT).map_err(idx)?;
        log.read_from(1)?.for_each_raw(|line, segment, line_no| {
            let how = verify_line(line, &mut verified, segment, line_no, &mut gaps)?;
            apply_line(
                &tx,
                &mut insert,
                &mut regs,
                &mut head,
                line,
                how,
                segment,
                line_no,
            )
        })?;
    }
    gaps.finish()?;
    regs.flush(&tx).map_err(idx)?;
    index::write_head(&tx, &head).map_err(idx)?;
    tx.commit().map_err(idx)?;
    Ok(head)
}

/// Replay every committed event of `log` into `conn` (empty tables, inside one transaction).
fn replay(log: &EventLog, conn: &mut Connection) -> Result<Head, StateError> {
    let segments: Vec<PathBuf> = log.segments()?.into_iter().map(|(_, p)| p).collect();
    let tx = conn.transaction().map_err(|e| StateError::Index {
        path: log.dir().to_path_buf(),
        source: e,
    })?;
    let idx = |e| StateError::Index {
        path: log.dir().to_path_buf(),
        source: e,
    };
    let mut regs = index::MemRegistries::default();
    let mut head = Head::empty();
    let mut insert = tx.prepare(index::INSERT_EVENT).map_err(idx)?;
    let result = std::thread::scope(|scope| {
        let (send, recv) = sync_channel::<Result<Chunk, StateError>>(4);
        let segs = &segments;
        scope.spawn(move || verifier(segs, send));
        for msg in recv {
            let chunk = msg?;
            for l in &chunk.lines {
                apply_line(
                    &tx,
                    &mut insert,
                    &mut regs,
                    &mut head,
                    &chunk.buf[l.start..l.end],
                    (l.fast, l.gap),
                    &segments[l.segment],
                    l.line_no,
                )?;
            }
        }
        Ok::<(), StateError>(())
    });
    result?;
    drop(insert);
    regs.flush(&tx).map_err(idx)?;
    index::write_head(&tx, &head).map_err(idx)?;
    tx.commit().map_err(idx)?;
    Ok(head)
}

/// Build a fresh index at `path` from the whole log, verifying the chain. Writes to a temporary
/// file and renames it into place, so a crash mid-rebuild leaves no half-built index.
#[tracing::instrument(level = "info", skip_all, fields(path = %path.display()))]
pub fn rebuild_index(log: &EventLog, path: &Path) -> Result<Head, StateError> {
    rebuild_index_with(log, path, true)
}

/// [`rebuild_index`] with the verifier on its own thread (`pipelined`) or not (benchmarks
/// compare the two).
pub fn rebuild_index_with(
    log: &EventLog,
    path: &Path,
    pipelined: bool,
) -> Result<Head, StateError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let tmp = dir.join(format!(
        ".{}.rebuild-{}",
        crate::state::INDEX_FILE,
        std::process::id()
    ));
    let _ = std::fs::remove_file(&tmp);
    let result = (|| {
        let mut conn = Connection::open(&tmp).map_err(StateError::index(&tmp))?;
        // A half-built file is deleted on failure and renamed into place on success, so the
        // rebuild needs neither a journal nor fsyncs until the end.
        conn.execute_batch(
            "PRAGMA journal_mode = OFF; PRAGMA synchronous = OFF; PRAGMA cache_size = -131072;
             PRAGMA temp_store = MEMORY; PRAGMA locking_mode = EXCLUSIVE;",
        )
        .map_err(StateError::index(&tmp))?;
        index::create_schema_bulk(&conn).map_err(StateError::index(&tmp))?;
        let head = if pipelined {
            replay(log, &mut conn)?
        } else {
            replay_serial(log, &mut conn)?
        };
        index::finish_bulk(&conn).map_err(StateError::index(&tmp))?;
        conn.execute_batch("PRAGMA synchronous = FULL; PRAGMA journal_mode = DELETE;")
            .map_err(StateError::index(&tmp))?;
        conn.close().map_err(|(_, e)| StateError::Index {
            path: tmp.clone(),
            source: e,
        })?;
        // Make the finished file durable before it replaces anything.
        File::open(&tmp)
            .and_then(|f| f.sync_all())
            .map_err(StateError::io(&tmp))?;
        Ok(head)
    })();
    match result {
        Ok(head) => {
            std::fs::rename(&tmp, path).map_err(StateError::io(path))?;
            let _ = repoman_core::fs::sync_dir(dir);
            Ok(head)
        }
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            Err(e)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::GENESIS_PREV;
    use serde_json::json;

    fn event(seq: u64, prev: &str, data: serde_json::Value) -> Event {
        let mut e = Event {
            seq,
            id: uuid::Uuid::nil(),
            at: "2026-01-01T00:00:00.000Z".into(),
            type_: "a.b".into(),
            object: "x:,\"hash\":\"y,\"seq\":3".into(),
            actor: "human:u@h".into(),
            device: "d".into(),
            profile: "p".into(),
            data,
            prev: prev.into(),
            hash: String::new(),
        };
        e.hash = e.compute_hash();
        e
    }

    #[test]
    fn canonical_lines_take_the_fast_path_even_with_lookalike_members_in_data() {
        let e = event(
            1,
            GENESIS_PREV,
            json!({"hash": "h", "prev": "p", "seq": 99, "z": ",\"seq\":5"}),
        );
        let line = e.to_line();
        let mut head = Head::empty();
        assert!(
            verify_line(
                line.as_bytes(),
                &mut head,
                Path::new("s"),
                1,
                &mut Gaps::default()
            )
            .unwrap()
            .0
        );
        assert_eq!(
            head,
            Head {
                seq: 1,
                hash: e.hash.clone()
            }
        );
    }

    #[test]
    fn non_canonical_lines_are_checked_strictly() {
        let e = event(1, GENESIS_PREV, json!({"a": 1}));
        // Same event, keys in another order and with spaces: valid, but not on the fast path.
        let mut v: serde_json::Map<String, serde_json::Value> =
            serde_json::from_str(&e.to_line()).unwrap();
        let reordered: serde_json::Map<_, _> = std::mem::take(&mut v).into_iter().rev().collect();
        let line = serde_json::to_string_pretty(&reordered)
            .unwrap()
            .replace('\n', " ");
        let mut head = Head::empty();
        assert!(
            !verify_line(
                line.as_bytes(),
                &mut head,
                Path::new("s"),
                1,
                &mut Gaps::default()
            )
            .unwrap()
            .0
        );
        // A changed value fails on both paths.
        let bad = e.to_line().replace("\"a\":1", "\"a\":2");
        let err = verify_line(
            bad.as_bytes(),
            &mut Head::empty(),
            Path::new("s"),
            7,
            &mut Gaps::default(),
        )
        .unwrap_err();
        assert!(
            matches!(
                err,
                StateError::ChainBroken {
                    seq: 1,
                    line: 7,
                    ..
                }
            ),
            "{err}"
        );
    }
}
