//! The one source of time and ids.
//!
//! Production code uses [`Clock::system`]. Tests use [`Clock::pinned`], which starts at a fixed
//! instant and advances by one millisecond per reading, so event timestamps and UUIDv7 ids are
//! reproducible and still strictly increasing.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use jiff::Timestamp;
use uuid::Uuid;

/// A clock and id generator. Cheap to clone; clones share the pinned counter.
#[derive(Debug, Clone)]
pub struct Clock(Inner);

#[derive(Debug, Clone)]
enum Inner {
    System,
    Pinned(Arc<AtomicI64>),
}

impl Clock {
    /// The real wall clock.
    pub fn system() -> Self {
        Self(Inner::System)
    }

    /// A deterministic clock starting at `start`, advancing 1 ms per call to [`Clock::now`].
    pub fn pinned(start: Timestamp) -> Self {
        Self(Inner::Pinned(Arc::new(AtomicI64::new(
            start.as_millisecond(),
        ))))
    }

    /// The current instant (millisecond precision, as recorded in events).
    pub fn now(&self) -> Timestamp {
        match &self.0 {
            Inner::System => {
                let now = Timestamp::now();
                Timestamp::from_millisecond(now.as_millisecond()).unwrap_or(now)
            }
            Inner::Pinned(ms) => {
                let v = ms.fetch_add(1, Ordering::SeqCst);
                Timestamp::from_millisecond(v).unwrap_or(Timestamp::UNIX_EPOCH)
            }
        }
    }

    /// RFC 3339 UTC with milliseconds, e.g. `2026-11-22T16:10:23.123Z`.
    pub fn now_rfc3339(&self) -> String {
        format_rfc3339(self.now())
    }

    /// A new UUIDv7. With a pinned clock the id is derived from the pinned time and a counter,
    /// so it is reproducible.
    pub fn new_id(&self) -> Uuid {
        match &self.0 {
            Inner::System => Uuid::now_v7(),
            Inner::Pinned(_) => {
                let ms = self.now().as_millisecond() as u64;
                // The "random" part is derived from the time, so the same pin gives the same ids.
                let mut tail = [0u8; 10];
                tail[2..].copy_from_slice(&ms.to_be_bytes());
                uuid::Builder::from_unix_timestamp_millis(ms, &tail).into_uuid()
            }
        }
    }
}

/// Format a timestamp as RFC 3339 UTC with exactly three fractional digits.
pub fn format_rfc3339(ts: Timestamp) -> String {
    format!("{ts:.3}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pinned_clock_is_reproducible_and_monotonic() {
        let start: Timestamp = "2026-01-02T03:04:05Z".parse().unwrap();
        let a = Clock::pinned(start);
        let b = Clock::pinned(start);
        assert_eq!(a.now_rfc3339(), "2026-01-02T03:04:05.000Z");
        assert_eq!(a.now_rfc3339(), "2026-01-02T03:04:05.001Z");
        b.now();
        b.now();
        let (ia, ib) = (a.new_id(), b.new_id());
        assert_eq!(ia, ib);
        assert_eq!(ia.get_version_num(), 7);
        assert!(a.new_id() > ia);
    }

    #[test]
    fn system_clock_has_millisecond_precision() {
        let s = Clock::system().now_rfc3339();
        assert!(
            s.ends_with('Z') && s.len() == "2026-01-02T03:04:05.000Z".len(),
            "{s}"
        );
    }
}
