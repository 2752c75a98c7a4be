//! The soft groove: events streamed to subscribers as they are appended, read from the event
//! log's segments (the log is the source, so a reconnecting subscriber loses nothing).
//!
//! - One **tailer** thread follows the last segment (inotify on the log directory, with a poll as
//!   a fallback), reads each newly committed line once, and publishes it to the [`Hub`]: a ring
//!   of recent events and one bounded queue per live subscriber.
//! - A subscriber that asks for an older `from_seq` first catches up from the segments on its
//!   own thread, then joins the live queue at exactly the next seq (under the hub lock, so
//!   nothing is skipped or sent twice).
//! - A subscriber whose queue is full is **dropped**: it keeps what was queued, then gets a
//!   `groove.dropped` notification with `resume_from` (the first seq it did not get) and the
//!   connection closes. Memory is bounded by `buffer` events per subscriber plus the ring.
//!
//! Lines are forwarded byte for byte as they are in the log (canonical JSON), so a subscriber can
//! re-verify each event's hash.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{BufRead, BufReader, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use repoman_state::log::EventLog;
use serde::Deserialize;
use serde_json::{Value, json};

/// How many recent events the hub keeps for subscribers joining the live stream.
pub const RING: usize = 8192;

/// The fields a filter looks at, parsed from a log line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Meta {
    pub seq: u64,
    pub type_: String,
    pub object: String,
    pub actor: String,
}

#[derive(Deserialize)]
struct RawMeta<'a> {
    seq: u64,
    #[serde(rename = "type", borrow)]
    type_: std::borrow::Cow<'a, str>,
    #[serde(borrow)]
    object: std::borrow::Cow<'a, str>,
    #[serde(borrow)]
    actor: std::borrow::Cow<'a, str>,
}

/// One committed event: its filter fields and its exact line.
#[derive(Debug)]
pub struct Item {
    pub meta: Meta,
    pub line: Box<str>,
}

impl Item {
    /// Parse a committed line (without its newline).
    pub fn parse(line: &[u8]) -> Option<Item> {
        let m: RawMeta = serde_json::from_slice(line).ok()?;
        Some(Item {
            meta: Meta {
                seq: m.seq,
                type_: m.type_.into_owned(),
                object: m.object.into_owned(),
                actor: m.actor.into_owned(),
            },
            line: std::str::from_utf8(line).ok()?.into(),
        })
    }
}

/// What a subscriber wants. Empty lists match everything; an entry ending in `*` (or, for types,
/// `.`) is a prefix.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    pub types: Vec<String>,
    pub objects: Vec<String>,
    pub actors: Vec<String>,
    /// Forced for agents: only objects that belong to this project.
    pub project: Option<String>,
}

fn pattern_matches(p: &str, v: &str) -> bool {
    if let Some(prefix) = p.strip_suffix('*') {
        v.starts_with(prefix)
    } else if p.ends_with('.') {
        v.starts_with(p)
    } else {
        p == v
    }
}

/// Whether `object` belongs to `project` (`project:P`, `sandbox:P`, `backup:P`, `file:P/...`).
pub fn object_of_project(object: &str, project: &str) -> bool {
    object
        .parse::<repoman_core::ObjectId>()
        .ok()
        .and_then(|o| o.project_name().map(|p| p == project))
        .unwrap_or(false)
}

impl Filter {
    pub fn matches(&self, m: &Meta) -> bool {
        let any = |list: &[String], v: &str| {
            list.is_empty() || list.iter().any(|p| pattern_matches(p, v))
        };
        let actor_ok = self.actors.is_empty()
            || self.actors.iter().any(|p| {
                pattern_matches(p, &m.actor)
                    || (!p.contains(':') && m.actor.split(':').next() == Some(p.as_str()))
            });
        any(&self.types, &m.type_)
            && any(&self.objects, &m.object)
            && actor_ok
            && self
                .project
                .as_deref()
                .is_none_or(|p| object_of_project(&m.object, p))
    }
}

/// A live subscriber's queue.
#[derive(Debug)]
pub struct SubQueue {
    pub items: VecDeque<Arc<Item>>,
    /// Set when the subscriber was dropped: the first seq it did not get.
    pub dropped: Option<u64>,
    pub closed: bool,
}

#[derive(Debug)]
pub struct Sub {
    pub id: u64,
    pub filter: Filter,
    pub buffer: usize,
    pub queue: Mutex<SubQueue>,
    pub cv: Condvar,
}

impl Sub {
    /// Stop the subscription (the connection went away or the daemon stops).
    pub fn close(&self) {
        if let Ok(mut q) = self.queue.lock() {
            q.closed = true;
        }
        self.cv.notify_all();
    }
}

#[derive(Debug, Default)]
struct HubInner {
    subs: Vec<Arc<Sub>>,
    ring: VecDeque<Arc<Item>>,
    /// The last seq published (every event up to it is in the log and was offered to `subs`).
    published: u64,
}

/// The fan-out point between the tailer and the subscribers.
#[derive(Debug, Default)]
pub struct Hub {
    inner: Mutex<HubInner>,
    next_id: AtomicU64,
    pub delivered: AtomicU64,
    pub dropped_total: AtomicU64,
}

impl Hub {
    pub fn new(published: u64) -> Self {
        let hub = Hub::default();
        if let Ok(mut i) = hub.inner.lock() {
            i.published = published;
        }
        hub.next_id.store(1, Ordering::Relaxed);
        hub
    }

    pub fn new_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    pub fn published(&self) -> u64 {
        self.inner.lock().map(|i| i.published).unwrap_or(0)
    }

    pub fn subscriber_count(&self) -> usize {
        self.inner.lock().map(|i| i.subs.len()).unwrap_or(0)
    }

    /// Publish newly committed events, in seq order.
    pub fn publish(&self, items: Vec<Item>) {
        let Ok(mut inner) = self.inner.lock() else {
            return;
        };
        let mut touched: Vec<Arc<Sub>> = Vec::new();
        for item in items {
            if item.meta.seq <= inner.published {
                continue; // already seen (a re-read after rotation)
            }
            let item = Arc::new(item);
            inner.published = item.meta.seq;
            for sub in &inner.subs {
                if !sub.filter.matches(&item.meta) {
                    continue;
                }
                let Ok(mut q) = sub.queue.lock() else {
                    continue;
                };
                if q.dropped.is_some() || q.closed {
                    continue;
                }
                if q.items.len() >= sub.buffer {
                    q.dropped = Some(item.meta.seq);
                    self.dropped_total.fetch_add(1, Ordering::Relaxed);
                } else {
                    q.items.push_back(item.clone());
                }
                drop(q);
                if !touched.iter().any(|t| Arc::ptr_eq(t, sub)) {
                    touched.push(sub.clone());
                }
            }
            if inner.ring.len() >= RING {
                inner.ring.pop_front();
            }
            inner.ring.push_back(item);
        }
        inner.subs.retain(|s| {
            s.queue
                .lock()
                .map(|q| !q.closed && q.dropped.is_none())
                .unwrap_or(false)
        });
        drop(inner);
        for s in touched {
            s.cv.notify_all();
        }
    }

    /// Join the live stream at `cursor` (the next seq the subscriber needs). Succeeds when every
    /// event from `cursor` on is either still to be published or in the ring (then the matching
    /// ones are queued first); otherwise returns the seq up to which the caller must first read
    /// the log itself.
    pub fn join(&self, sub: &Arc<Sub>, cursor: u64) -> Result<(), u64> {
        let Ok(mut inner) = self.inner.lock() else {
            return Err(cursor);
        };
        if cursor <= inner.published {
            let first_in_ring = inner.ring.front().map(|i| i.meta.seq);
            if first_in_ring.is_none_or(|f| f > cursor) {
                return Err(inner.published);
            }
            let backlog: Vec<Arc<Item>> = inner
                .ring
                .iter()
                .filter(|i| i.meta.seq >= cursor && sub.filter.matches(&i.meta))
                .cloned()
                .collect();
            if backlog.len() > sub.buffer {
                return Err(inner.published);
            }
            if let Ok(mut q) = sub.queue.lock() {
                q.items.extend(backlog);
            }
        }
        inner.subs.push(sub.clone());
        drop(inner);
        sub.cv.notify_all();
        Ok(())
    }

    /// Close every subscription (daemon shutdown).
    pub fn close_all(&self) {
        if let Ok(mut inner) = self.inner.lock() {
            for s in inner.subs.drain(..) {
                s.close();
            }
        }
    }
}

/// Reads committed lines of one segment from an offset.
#[derive(Debug)]
struct SegmentReader {
    first: u64,
    reader: BufReader<File>,
    offset: u64,
    buf: Vec<u8>,
}

impl SegmentReader {
    fn open(path: PathBuf, first: u64, offset: u64) -> std::io::Result<Self> {
        let mut f = File::open(&path)?;
        f.seek(SeekFrom::Start(offset))?;
        Ok(Self {
            first,
            reader: BufReader::with_capacity(256 * 1024, f),
            offset,
            buf: Vec::with_capacity(1024),
        })
    }

    /// The next committed line, or `None` at the current end (a torn tail is left unread).
    fn next_line(&mut self) -> std::io::Result<Option<&[u8]>> {
        // `buf` keeps a partial (uncommitted) line between calls, re-read from its start.
        self.buf.clear();
        let n = self.reader.read_until(b'\n', &mut self.buf)?;
        if n == 0 {
            return Ok(None);
        }
        if self.buf.last() != Some(&b'\n') {
            // Not committed yet: rewind so the next call reads the line whole.
            self.reader.seek(SeekFrom::Start(self.offset))?;
            return Ok(None);
        }
        self.offset += n as u64;
        Ok(Some(&self.buf[..n - 1]))
    }
}

/// The segments of `log` as (first seq, path).
fn segments(log: &EventLog) -> Vec<(u64, PathBuf)> {
    log.segments().unwrap_or_default()
}

/// Read committed events with seq in `from..=to` (or to the end when `to` is `None`), calling
/// `f` for each; stops early when `f` returns false. Returns the last seq seen.
pub fn read_range(
    log: &EventLog,
    from: u64,
    to: Option<u64>,
    mut f: impl FnMut(Item) -> bool,
) -> std::io::Result<u64> {
    let segs = segments(log);
    let start = segs
        .iter()
        .rposition(|(first, _)| *first <= from)
        .unwrap_or(0);
    let mut last = from.saturating_sub(1);
    for (first, path) in segs.into_iter().skip(start) {
        let mut r = SegmentReader::open(path, first, 0)?;
        while let Some(line) = r.next_line()? {
            let Some(item) = Item::parse(line) else {
                continue;
            };
            if item.meta.seq < from {
                continue;
            }
            if to.is_some_and(|t| item.meta.seq > t) {
                return Ok(last);
            }
            last = item.meta.seq;
            if !f(item) {
                return Ok(last);
            }
        }
    }
    Ok(last)
}

/// The tailer: follows the log and publishes to the hub until `stop` is set.
#[derive(Debug)]
pub struct Tailer {
    log: EventLog,
    hub: Arc<Hub>,
    current: Option<SegmentReader>,
}

impl Tailer {
    /// Start following after the last committed event of `log`.
    pub fn new(log: EventLog, hub: Arc<Hub>) -> Self {
        Self {
            log,
            hub,
            current: None,
        }
    }

    /// Position on the segment holding `after_seq + 1`, skipping events up to `after_seq`.
    fn position(&mut self, after_seq: u64) -> std::io::Result<()> {
        let segs = segments(&self.log);
        let Some(idx) = segs
            .iter()
            .rposition(|(first, _)| *first <= after_seq.max(1))
        else {
            self.current = None;
            return Ok(());
        };
        let (first, path) = segs[idx].clone();
        let mut r = SegmentReader::open(path, first, 0)?;
        loop {
            let before = r.offset;
            match r.next_line()? {
                Some(line) => {
                    if Item::parse(line).is_some_and(|i| i.meta.seq > after_seq) {
                        // Leave this line for `poll`.
                        r.reader.seek(SeekFrom::Start(before))?;
                        r.offset = before;
                        break;
                    }
                }
                None => break,
            }
        }
        self.current = Some(r);
        Ok(())
    }

    /// Read everything newly committed and publish it. Returns how many events were published.
    pub fn poll(&mut self) -> std::io::Result<usize> {
        if self.current.is_none() {
            self.position(self.hub.published())?;
            if self.current.is_none() {
                return Ok(0);
            }
        }
        let mut published = 0;
        loop {
            let mut batch = Vec::new();
            if let Some(r) = self.current.as_mut() {
                while batch.len() < 1024 {
                    match r.next_line()? {
                        Some(line) => {
                            if let Some(i) = Item::parse(line) {
                                batch.push(i);
                            }
                        }
                        None => break,
                    }
                }
            }
            if !batch.is_empty() {
                published += batch.len();
                self.hub.publish(batch);
                continue;
            }
            // At the end of this segment: move on if a newer one exists (appends only go to the
            // newest, so this one is final once a successor exists; read it to the end first).
            let Some(cur) = self.current.as_ref() else {
                break;
            };
            let next = segments(&self.log)
                .into_iter()
                .find(|(first, _)| *first > cur.first);
            match next {
                Some((first, path)) => {
                    let mut tail = Vec::new();
                    if let Some(r) = self.current.as_mut() {
                        while let Some(line) = r.next_line()? {
                            if let Some(i) = Item::parse(line) {
                                tail.push(i);
                            }
                        }
                    }
                    if !tail.is_empty() {
                        published += tail.len();
                        self.hub.publish(tail);
                    }
                    self.current = Some(SegmentReader::open(path, first, 0)?);
                }
                None => break,
            }
        }
        Ok(published)
    }

    /// Follow the log until `stop`: wake on inotify events in the log directory, or every
    /// `poll_every` when inotify is unavailable or nothing happened.
    pub fn run(mut self, stop: Arc<AtomicBool>, poll_every: Duration) {
        let notify = Notify::new(self.log.dir());
        while !stop.load(Ordering::Relaxed) {
            if let Err(e) = self.poll() {
                tracing::warn!(error = %e, "reading the event log failed; retrying");
                self.current = None;
            }
            match &notify {
                Some(n) => n.wait(poll_every),
                None => std::thread::sleep(poll_every),
            }
        }
        // A last read so that events committed before the stop reach the subscribers.
        let _ = self.poll();
    }
}

/// inotify on the log directory (IN_MODIFY, IN_CREATE, IN_MOVED_TO).
struct Notify {
    fd: std::os::fd::OwnedFd,
}

impl Notify {
    fn new(dir: &Path) -> Option<Self> {
        use rustix::fs::inotify;
        let fd =
            inotify::init(inotify::CreateFlags::CLOEXEC | inotify::CreateFlags::NONBLOCK).ok()?;
        inotify::add_watch(
            &fd,
            dir,
            inotify::WatchFlags::MODIFY
                | inotify::WatchFlags::CREATE
                | inotify::WatchFlags::MOVED_TO,
        )
        .ok()?;
        Some(Self { fd })
    }

    fn wait(&self, timeout: Duration) {
        use rustix::event::{PollFd, PollFlags, Timespec, poll};
        let mut fds = [PollFd::new(&self.fd, PollFlags::IN)];
        let ts = Timespec {
            tv_sec: timeout.as_secs() as i64,
            tv_nsec: timeout.subsec_nanos() as i64,
        };
        if matches!(poll(&mut fds, Some(&ts)), Ok(n) if n > 0) {
            // Drain the events; what changed is re-read from the files.
            let mut buf = [0u8; 4096];
            while matches!(rustix::io::read(&self.fd, &mut buf), Ok(n) if n > 0) {}
        }
    }
}

/// The notification line for one event (the log line embedded as is).
pub fn event_line(subscription: u64, item: &Item) -> String {
    format!(
        "{{\"jsonrpc\":\"2.0\",\"method\":\"groove.event\",\"params\":{{\"subscription\":{subscription},\"seq\":{},\"event\":{}}}}}\n",
        item.meta.seq, item.line
    )
}

/// The notification line that ends a dropped subscription.
pub fn dropped_line(subscription: u64, resume_from: u64, reason: &str) -> String {
    let mut s = crate::rpc::notification(
        "groove.dropped",
        &json!({"subscription": subscription, "resume_from": resume_from, "reason": reason}),
    );
    s.push('\n');
    s
}

/// Parse subscription filter params (`types`, `objects`, `actors`: strings or lists of strings).
pub fn filter_from_params(p: &serde_json::Map<String, Value>) -> Result<Filter, String> {
    let list = |key: &str| -> Result<Vec<String>, String> {
        match p.get(key) {
            None | Some(Value::Null) => Ok(Vec::new()),
            Some(Value::String(s)) => Ok(vec![s.clone()]),
            Some(Value::Array(a)) => a
                .iter()
                .map(|v| {
                    v.as_str()
                        .map(str::to_owned)
                        .ok_or_else(|| format!("`{key}` must hold strings"))
                })
                .collect(),
            Some(_) => Err(format!("`{key}` must be a string or a list of strings")),
        }
    };
    Ok(Filter {
        types: list("types")?,
        objects: list("objects")?,
        actors: list("actors")?,
        project: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(seq: u64, t: &str, o: &str, a: &str) -> Meta {
        Meta {
            seq,
            type_: t.into(),
            object: o.into(),
            actor: a.into(),
        }
    }

    #[test]
    fn filters() {
        let m = meta(1, "backup.synced", "backup:alpha", "human:u@h");
        assert!(Filter::default().matches(&m));
        let f = Filter {
            types: vec!["backup.".into()],
            ..Filter::default()
        };
        assert!(f.matches(&m));
        let f = Filter {
            types: vec!["backup.*".into(), "x.y".into()],
            actors: vec!["human".into()],
            ..Filter::default()
        };
        assert!(f.matches(&m));
        let f = Filter {
            actors: vec!["agent".into()],
            ..Filter::default()
        };
        assert!(!f.matches(&m));
        let f = Filter {
            project: Some("alpha".into()),
            ..Filter::default()
        };
        assert!(f.matches(&m));
        assert!(!f.matches(&meta(2, "x.y", "backup:alphabet", "a:b")));
        assert!(!f.matches(&meta(2, "x.y", "store:index", "a:b")));
        assert!(
            !Filter {
                objects: vec!["project:alpha".into()],
                ..Filter::default()
            }
            .matches(&m)
        );
    }

    fn item(seq: u64) -> Item {
        Item {
            meta: meta(seq, "note.x", "project:a", "human:u@h"),
            line: format!("{{\"seq\":{seq}}}").into(),
        }
    }

    fn sub(hub: &Hub, buffer: usize) -> Arc<Sub> {
        Arc::new(Sub {
            id: hub.new_id(),
            filter: Filter::default(),
            buffer,
            queue: Mutex::new(SubQueue {
                items: VecDeque::new(),
                dropped: None,
                closed: false,
            }),
            cv: Condvar::new(),
        })
    }

    #[test]
    fn a_full_queue_drops_with_the_first_missing_seq_and_others_keep_receiving() {
        let hub = Hub::new(0);
        let slow = sub(&hub, 3);
        let fast = sub(&hub, 100);
        hub.join(&slow, 1).unwrap();
        hub.join(&fast, 1).unwrap();
        hub.publish((1..=5).map(item).collect());
        let q = slow.queue.lock().unwrap();
        assert_eq!(q.items.len(), 3);
        assert_eq!(q.dropped, Some(4));
        drop(q);
        assert_eq!(fast.queue.lock().unwrap().items.len(), 5);
        assert_eq!(
            hub.subscriber_count(),
            1,
            "the dropped subscriber left the hub"
        );
    }

    #[test]
    fn joining_from_the_ring_or_needing_the_log() {
        let hub = Hub::new(0);
        hub.publish((1..=10).map(item).collect());
        let s = sub(&hub, 100);
        hub.join(&s, 4).unwrap();
        let seqs: Vec<u64> = s
            .queue
            .lock()
            .unwrap()
            .items
            .iter()
            .map(|i| i.meta.seq)
            .collect();
        assert_eq!(seqs, (4..=10).collect::<Vec<_>>());
        let hub = Hub::new(50);
        let s = sub(&hub, 100);
        assert_eq!(
            hub.join(&s, 10),
            Err(50),
            "events 10..=50 are only in the log"
        );
        hub.join(&s, 51).unwrap();
    }
}
