//! The append-only event log: JSONL segments under `<state>/events/`.
//!
//! Layout: `events/seg-<first seq, 12 digits>.jsonl`. A new segment starts when the current one
//! reaches [`EventLog::segment_max`] bytes (a batch is never split across segments, so a segment
//! may exceed the limit by one batch). `events/.append.lock` serializes appenders across
//! processes.
//!
//! Invariants:
//! - An event is committed when its line, including the `\n`, has been written and fsynced. Bytes
//!   after the last `\n` of the last segment are a *torn tail* from a crash: never an event.
//! - Appends happen only under the lock, after reading the head (last committed event) from disk,
//!   so `seq` and `prev` are right whichever process appended last.
//! - Readers stream line by line; nothing loads a whole segment into memory.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use repoman_core::fs::FileLock;

use crate::error::StateError;
use crate::event::{Event, GENESIS_PREV};

/// Default segment size limit: 64 MiB.
pub const DEFAULT_SEGMENT_MAX: u64 = 64 * 1024 * 1024;

/// The last committed event of the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    pub seq: u64,
    pub hash: String,
}

impl Head {
    /// The head of an empty log.
    pub fn empty() -> Self {
        Self {
            seq: 0,
            hash: GENESIS_PREV.to_owned(),
        }
    }
}

/// Bytes after the last newline of the last segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TornTail {
    pub segment: PathBuf,
    /// Offset of the first torn byte (the length the segment is truncated to).
    pub offset: u64,
    pub len: u64,
}

/// What the tail of the log looks like.
#[derive(Debug, Clone)]
pub struct Tail {
    pub head: Head,
    /// The segment to append to, and its committed length.
    pub segment: Option<(PathBuf, u64)>,
    pub torn: Option<TornTail>,
}

/// A handle on the log directory. Cheap; holds no open files.
#[derive(Debug, Clone)]
pub struct EventLog {
    dir: PathBuf,
    segment_max: u64,
    /// The last tail [`EventLog::tail_for_read`] read, with the identity of its segment.
    memo: std::sync::Arc<std::sync::Mutex<Option<(SegmentId, Tail)>>>,
}

/// What tells one state of a segment file from another without reading it: an append changes
/// the length; anything else that rewrites it changes the ctime (which no process can set).
#[derive(Debug, Clone, PartialEq, Eq)]
struct SegmentId {
    dev: u64,
    ino: u64,
    len: u64,
    mtime_ns: i64,
    ctime_ns: i64,
}

impl SegmentId {
    fn of(path: &Path) -> Option<SegmentId> {
        use std::os::unix::fs::MetadataExt;
        let m = std::fs::metadata(path).ok()?;
        Some(SegmentId {
            dev: m.dev(),
            ino: m.ino(),
            len: m.len(),
            mtime_ns: m.mtime() * 1_000_000_000 + m.mtime_nsec(),
            ctime_ns: m.ctime() * 1_000_000_000 + m.ctime_nsec(),
        })
    }
}

impl EventLog {
    pub fn new(dir: PathBuf) -> Self {
        Self {
            dir,
            segment_max: DEFAULT_SEGMENT_MAX,
            memo: Default::default(),
        }
    }

    /// Use a different segment size limit (tests and benchmarks exercise rotation with this).
    pub fn with_segment_max(mut self, bytes: u64) -> Self {
        self.segment_max = bytes.max(1);
        self
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn segment_max(&self) -> u64 {
        self.segment_max
    }

    pub fn lock_path(&self) -> PathBuf {
        self.dir.join(".append.lock")
    }

    /// Whether the log directory exists at all.
    pub fn exists(&self) -> bool {
        self.dir.is_dir()
    }

    /// Take the append lock (creating the log directory). Waits as long as needed: appends are
    /// short, and a holder that dies releases the lock with its file descriptor.
    pub fn lock(&self) -> Result<FileLock, StateError> {
        std::fs::create_dir_all(&self.dir).map_err(StateError::io(&self.dir))?;
        Ok(FileLock::acquire(
            &self.lock_path(),
            "the event log",
            Some(Duration::from_secs(120)),
            || {
                tracing::debug!("waiting for the event log lock");
            },
        )?)
    }

    /// Segments in order, as (first seq, path). Empty when the directory does not exist.
    pub fn segments(&self) -> Result<Vec<(u64, PathBuf)>, StateError> {
        let rd = match std::fs::read_dir(&self.dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(source) => {
                return Err(StateError::Io {
                    path: self.dir.clone(),
                    source,
                });
            }
        };
        let mut out = Vec::new();
        for entry in rd {
            let entry = entry.map_err(StateError::io(&self.dir))?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            if let Some(first) = parse_segment_name(name) {
                out.push((first, entry.path()));
            }
        }
        out.sort_unstable_by_key(|(first, _)| *first);
        Ok(out)
    }

    /// Total bytes of all segments.
    pub fn size(&self) -> Result<u64, StateError> {
        let mut total = 0;
        for (_, p) in self.segments()? {
            total += std::fs::metadata(&p).map_err(StateError::io(&p))?.len();
        }
        Ok(total)
    }

    /// Read the head and the torn tail, if any, without reading whole segments.
    pub fn tail(&self) -> Result<Tail, StateError> {
        let segments = self.segments()?;
        let mut torn = None;
        let mut append_to = None;
        for (i, (_, path)) in segments.iter().enumerate().rev() {
            let is_last = i + 1 == segments.len();
            let mut f = File::open(path).map_err(StateError::io(path))?;
            let len = f.metadata().map_err(StateError::io(path))?.len();
            let (committed_len, last_line) =
                last_line(&mut f, len).map_err(StateError::io(path))?;
            if is_last {
                if committed_len < len {
                    torn = Some(TornTail {
                        segment: path.clone(),
                        offset: committed_len,
                        len: len - committed_len,
                    });
                }
                append_to = Some((path.clone(), committed_len));
            }
            if let Some(line) = last_line {
                let ev: Event =
                    serde_json::from_slice(&line).map_err(|e| StateError::CorruptLine {
                        path: path.clone(),
                        // Counted only on this error path: the last committed line's number is
                        // the count of newlines before its end.
                        line: lines_before(path, committed_len).unwrap_or(0),
                        reason: format!("last line: {e}"),
                    })?;
                return Ok(Tail {
                    head: Head {
                        seq: ev.seq,
                        hash: ev.hash,
                    },
                    segment: append_to,
                    torn,
                });
            }
            // An empty segment (crash right after creating it): look at the one before.
        }
        Ok(Tail {
            head: Head::empty(),
            segment: append_to,
            torn,
        })
    }

    /// [`EventLog::tail`] for readers that only compare the head (is the index up to date?):
    /// one `stat` of the last segment instead of listing the directory and reading the segment's
    /// end, while that segment is unchanged. Reused only for a tail that was whole (nothing torn)
    /// in a segment with room left: a writer appends to that segment (its length changes) and
    /// opens a new one only after it is full, so while its identity holds, so does the tail.
    /// Writers never use this: they read the tail under the append lock.
    pub fn tail_for_read(&self) -> Result<Tail, StateError> {
        let memo = self.memo.lock().ok().and_then(|m| m.clone());
        if let Some((id, tail)) = memo
            && let Some((path, _)) = &tail.segment
            && SegmentId::of(path).as_ref() == Some(&id)
        {
            return Ok(tail);
        }
        let tail = self.tail()?;
        let id = match &tail.segment {
            Some((path, len)) if tail.torn.is_none() && *len < self.segment_max => {
                // Taken after the read: if a writer appended in between, the length differs
                // from the one read and nothing is kept.
                SegmentId::of(path).filter(|id| id.len == *len)
            }
            _ => None,
        };
        if let Ok(mut m) = self.memo.lock() {
            *m = id.map(|id| (id, tail.clone()));
        }
        Ok(tail)
    }

    /// Move the torn tail into `quarantine_dir` and truncate the segment to its last whole event.
    /// Returns the quarantine file. Must be called under the append lock.
    pub fn quarantine_torn(
        &self,
        torn: &TornTail,
        quarantine_dir: &Path,
        stamp: &str,
    ) -> Result<PathBuf, StateError> {
        std::fs::create_dir_all(quarantine_dir).map_err(StateError::io(quarantine_dir))?;
        let mut f = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&torn.segment)
            .map_err(StateError::io(&torn.segment))?;
        f.seek(SeekFrom::Start(torn.offset))
            .map_err(StateError::io(&torn.segment))?;
        let mut bytes = Vec::with_capacity(torn.len as usize);
        f.read_to_end(&mut bytes)
            .map_err(StateError::io(&torn.segment))?;
        let seg_name = torn
            .segment
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let qpath = quarantine_dir.join(format!("{stamp}-torn-{seg_name}.bin"));
        repoman_core::fs::write_atomic(&qpath, &bytes, Some(0o600))?;
        // The bytes are safe in quarantine before the segment loses them.
        f.set_len(torn.offset)
            .map_err(StateError::io(&torn.segment))?;
        f.sync_all().map_err(StateError::io(&torn.segment))?;
        Ok(qpath)
    }

    /// Write already-chained events (one write, one fsync). Must be called under the append lock
    /// with events that continue `tail.head`. Rotates to a new segment when the current one is full.
    pub fn write_events(&self, tail: &Tail, events: &[Event]) -> Result<(), StateError> {
        let Some(first) = events.first() else {
            return Ok(());
        };
        let mut buf = Vec::with_capacity(events.len() * 320);
        for ev in events {
            buf.extend_from_slice(ev.to_line().as_bytes());
            buf.push(b'\n');
        }
        // Never append after bytes that are not a committed event: the new line would be glued
        // to the torn one and the chain would be broken for good.
        if let Some((p, len)) = &tail.segment {
            let now = std::fs::metadata(p).map_err(StateError::io(p))?.len();
            if now != *len {
                return Err(StateError::TornTail {
                    path: p.clone(),
                    len: now.saturating_sub(*len),
                });
            }
        }
        let (path, new_file) = match &tail.segment {
            Some((p, len)) if *len < self.segment_max => (p.clone(), false),
            _ => (self.dir.join(segment_name(first.seq)), true),
        };
        std::fs::create_dir_all(&self.dir).map_err(StateError::io(&self.dir))?;
        let mut f = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(StateError::io(&path))?;
        f.write_all(&buf).map_err(StateError::io(&path))?;
        f.sync_data().map_err(StateError::io(&path))?;
        if new_file {
            repoman_core::fs::sync_dir(&self.dir).map_err(StateError::io(&self.dir))?;
        }
        Ok(())
    }

    /// Stream every committed event from `from_seq` on (1 = all).
    pub fn read_from(&self, from_seq: u64) -> Result<LogReader, StateError> {
        let mut segments = self.segments()?;
        // Skip whole segments that end before `from_seq`: a segment ends where the next begins.
        let keep_from = segments
            .iter()
            .rposition(|(first, _)| *first <= from_seq)
            .unwrap_or(0);
        segments.drain(..keep_from);
        Ok(LogReader {
            segments: segments.into_iter().map(|(_, p)| p).collect(),
            pos: 0,
            current: None,
            from_seq,
            line_buf: Vec::new(),
        })
    }
}

/// The file name of the segment whose first event has `first_seq`.
pub fn segment_name(first_seq: u64) -> String {
    format!("seg-{first_seq:012}.jsonl")
}

fn parse_segment_name(name: &str) -> Option<u64> {
    name.strip_prefix("seg-")?
        .strip_suffix(".jsonl")?
        .parse()
        .ok()
}

/// Find the committed length (up to and including the last `\n`) and the last whole line.
fn last_line(f: &mut File, len: u64) -> std::io::Result<(u64, Option<Vec<u8>>)> {
    // Lines are ~500 bytes: a small first window almost always holds the last two newlines.
    let mut window = 8 * 1024u64;
    loop {
        let start = len.saturating_sub(window);
        f.seek(SeekFrom::Start(start))?;
        let mut buf = Vec::with_capacity((len - start) as usize);
        Read::by_ref(f).take(len - start).read_to_end(&mut buf)?;
        let Some(last_nl) = buf.iter().rposition(|&b| b == b'\n') else {
            if start == 0 {
                return Ok((0, None));
            }
            window *= 4;
            continue;
        };
        let committed = start + last_nl as u64 + 1;
        match buf[..last_nl].iter().rposition(|&b| b == b'\n') {
            Some(prev_nl) => return Ok((committed, Some(buf[prev_nl + 1..last_nl].to_vec()))),
            None if start == 0 => return Ok((committed, Some(buf[..last_nl].to_vec()))),
            None => window *= 4,
        }
    }
}

/// A committed event with where it was read from.
#[derive(Debug, Clone)]
pub struct Located {
    pub event: Event,
    pub segment: PathBuf,
    /// 1-based line number within the segment.
    pub line: u64,
    /// Byte offset of the line within the segment.
    pub offset: u64,
}

/// Streams events segment by segment. A torn tail (no final newline) is not yielded.
#[derive(Debug)]
pub struct LogReader {
    segments: Vec<PathBuf>,
    pos: usize,
    current: Option<(BufReader<File>, PathBuf, u64, u64)>,
    from_seq: u64,
    line_buf: Vec<u8>,
}

impl LogReader {
    /// Call `f` with each committed line's bytes (without the newline), its segment and 1-based
    /// line number, in order, without parsing. The fastest way through the log (index rebuild).
    pub fn for_each_raw(
        mut self,
        mut f: impl FnMut(&[u8], &Path, u64) -> Result<(), StateError>,
    ) -> Result<(), StateError> {
        let mut buf = Vec::with_capacity(4096);
        for path in std::mem::take(&mut self.segments)
            .into_iter()
            .skip(self.pos)
        {
            let file = File::open(&path).map_err(StateError::io(&path))?;
            let mut reader = BufReader::with_capacity(1024 * 1024, file);
            let mut line_no = 0u64;
            loop {
                buf.clear();
                let n = reader
                    .read_until(b'\n', &mut buf)
                    .map_err(StateError::io(&path))?;
                if n == 0 || buf.last() != Some(&b'\n') {
                    break; // end of segment, or a torn tail (not committed)
                }
                line_no += 1;
                f(&buf[..n - 1], &path, line_no)?;
            }
        }
        Ok(())
    }

    fn next_located(&mut self) -> Option<Result<Located, StateError>> {
        loop {
            if self.current.is_none() {
                let path = self.segments.get(self.pos)?.clone();
                self.pos += 1;
                match File::open(&path) {
                    Ok(f) => {
                        self.current = Some((BufReader::with_capacity(256 * 1024, f), path, 0, 0))
                    }
                    Err(source) => return Some(Err(StateError::Io { path, source })),
                }
            }
            let (reader, path, line_no, offset) = self.current.as_mut()?;
            self.line_buf.clear();
            match reader.read_until(b'\n', &mut self.line_buf) {
                Ok(0) => {
                    self.current = None;
                    continue;
                }
                Ok(n) => {
                    let at = *offset;
                    *offset += n as u64;
                    *line_no += 1;
                    if self.line_buf.last() != Some(&b'\n') {
                        // A torn tail: not committed, so not an event. `doctor` reports it.
                        self.current = None;
                        continue;
                    }
                    let line = &self.line_buf[..n - 1];
                    let event: Event = match serde_json::from_slice(line) {
                        Ok(e) => e,
                        Err(e) => {
                            return Some(Err(StateError::CorruptLine {
                                path: path.clone(),
                                line: *line_no,
                                reason: e.to_string(),
                            }));
                        }
                    };
                    if event.seq < self.from_seq {
                        continue;
                    }
                    return Some(Ok(Located {
                        event,
                        segment: path.clone(),
                        line: *line_no,
                        offset: at,
                    }));
                }
                Err(source) => {
                    return Some(Err(StateError::Io {
                        path: path.clone(),
                        source,
                    }));
                }
            }
        }
    }

    /// Iterate with positions (for `doctor` and chain verification).
    pub fn located(self) -> LocatedIter {
        LocatedIter(self)
    }
}

impl Iterator for LogReader {
    type Item = Result<Event, StateError>;
    fn next(&mut self) -> Option<Self::Item> {
        self.next_located().map(|r| r.map(|l| l.event))
    }
}

/// [`LogReader`] yielding [`Located`] events.
#[derive(Debug)]
pub struct LocatedIter(LogReader);

impl Iterator for LocatedIter {
    type Item = Result<Located, StateError>;
    fn next(&mut self) -> Option<Self::Item> {
        self.0.next_located()
    }
}

/// The type of the event that records a human's acceptance of lost events.
pub const LOSS_ACKNOWLEDGED: &str = "events.loss.acknowledged";

/// A range of seqs missing from the log.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Gap {
    pub from: u64,
    pub to: u64,
    /// Hash of the last event before the gap.
    pub before: String,
    /// Where the chain resumes (segment and line).
    pub resumes_at: PathBuf,
    pub line: u64,
}

/// The `(from, to)` range an acknowledgement event covers.
pub fn acknowledged_range(e: &Event) -> Option<(u64, u64)> {
    if e.type_ != LOSS_ACKNOWLEDGED {
        return None;
    }
    Some((e.data["from"].as_u64()?, e.data["to"].as_u64()?))
}

/// The first seq a segment file holds, from its name.
pub fn segment_first_seq(path: &Path) -> Option<u64> {
    parse_segment_name(path.file_name()?.to_str()?)
}

/// Checks that events form one chain: consecutive seqs, `prev` links, valid hashes. A jump in
/// `seq` is accepted as a *gap* (lost events, never tampering inside a segment) only where a
/// whole segment can have gone missing (at the first line of a segment whose name says it starts
/// there) or at an acknowledgement that names exactly that range; [`ChainVerifier::finish`]
/// then requires every gap to be acknowledged by an event somewhere in the log.
#[derive(Debug, Clone)]
pub struct ChainVerifier {
    head: Head,
    gaps: Vec<Gap>,
    acks: Vec<(u64, u64)>,
}

impl ChainVerifier {
    /// Verify a chain that continues `head` (use [`Head::empty`] for a whole log).
    pub fn new(head: Head) -> Self {
        Self {
            head,
            gaps: Vec::new(),
            acks: Vec::new(),
        }
    }

    /// Continue from `head` (after a problem was reported), keeping the gaps and
    /// acknowledgements seen so far.
    pub fn resume(&mut self, head: Head) {
        self.head = head;
    }

    /// Gaps seen so far.
    pub fn gaps(&self) -> &[Gap] {
        &self.gaps
    }

    /// Whether a gap is covered by an acknowledgement seen so far.
    pub fn is_acknowledged(&self, g: &Gap) -> bool {
        self.acks.iter().any(|&(f, t)| f <= g.from && g.to <= t)
    }

    /// Gaps no acknowledgement covers (yet).
    pub fn unacknowledged(&self) -> Vec<&Gap> {
        self.gaps
            .iter()
            .filter(|g| !self.is_acknowledged(g))
            .collect()
    }

    /// After the last event: every gap must be acknowledged.
    pub fn finish(&self) -> Result<(), StateError> {
        match self.unacknowledged().first() {
            Some(g) => Err(StateError::LostEvents {
                from: g.from,
                to: g.to,
                detail: format!(
                    "the chain resumes at seq {} in {}:{}",
                    g.to + 1,
                    g.resumes_at.display(),
                    g.line
                ),
            }),
            None => Ok(()),
        }
    }

    pub fn head(&self) -> &Head {
        &self.head
    }

    /// Check the next event; on success it becomes the head.
    pub fn check(&mut self, l: &Located) -> Result<(), StateError> {
        let e = &l.event;
        let broken = |reason: String| StateError::ChainBroken {
            seq: e.seq,
            path: l.segment.clone(),
            line: l.line,
            reason,
        };
        let gap = e.seq > self.head.seq + 1
            && ((l.line == 1 && segment_first_seq(&l.segment) == Some(e.seq))
                || acknowledged_range(e) == Some((self.head.seq + 1, e.seq - 1)));
        if e.seq != self.head.seq + 1 && !gap {
            return Err(broken(format!(
                "expected seq {}, found {}",
                self.head.seq + 1,
                e.seq
            )));
        }
        if !gap && e.prev != self.head.hash {
            return Err(broken(format!(
                "prev {} does not match the hash {} of seq {}",
                short(&e.prev),
                short(&self.head.hash),
                self.head.seq
            )));
        }
        let computed = e.compute_hash();
        if computed != e.hash {
            return Err(broken(format!(
                "content does not match its hash (recorded {}, computed {})",
                short(&e.hash),
                short(&computed)
            )));
        }
        if gap {
            self.gaps.push(Gap {
                from: self.head.seq + 1,
                to: e.seq - 1,
                before: self.head.hash.clone(),
                resumes_at: l.segment.clone(),
                line: l.line,
            });
        }
        if let Some(r) = acknowledged_range(e) {
            self.acks.push(r);
        }
        self.head = Head {
            seq: e.seq,
            hash: e.hash.clone(),
        };
        Ok(())
    }
}

fn short(h: &str) -> &str {
    h.get(..12).unwrap_or(h)
}

/// How many lines end in the first `upto` bytes of `path` (the 1-based number of the line that
/// ends at `upto`).
fn lines_before(path: &Path, upto: u64) -> std::io::Result<u64> {
    let mut f = File::open(path)?.take(upto);
    let mut buf = vec![0u8; 64 * 1024];
    let mut n = 0u64;
    loop {
        let got = f.read(&mut buf)?;
        if got == 0 {
            return Ok(n);
        }
        n += buf[..got].iter().filter(|&&b| b == b'\n').count() as u64;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_corrupt_last_line_is_cited_by_its_real_line_number() {
        let dir = tempfile::tempdir().unwrap();
        let seg = dir.path().join(segment_name(1));
        // Three lines; the third (the last committed one) is not an event.
        std::fs::write(&seg, b"{}\n{}\n{\"not\": \"an event\"}\n").unwrap();
        let log = EventLog::new(dir.path().to_path_buf());
        match log.tail() {
            Err(StateError::CorruptLine { line, path, .. }) => {
                assert_eq!(line, 3);
                assert_eq!(path, seg);
            }
            other => panic!("expected a corrupt line, got {other:?}"),
        }
    }
}
