//! Scheduled work: per-project syncs (`sync_every`, `sync_jitter` in `repoman.toml`), a periodic
//! reconcile and a warm tool scan, with the timing rules kept pure so they are tested with a
//! pinned clock.
//!
//! Rules:
//! - A job's next run is `last + every + jitter`, where `last` is the job's last run *recorded in
//!   the event log* (for a sync, also a manual `repoman sync`: nothing is done twice) and the
//!   jitter is a deterministic offset in `[0, sync_jitter)` derived from the job name and `last`,
//!   so projects synced together drift apart and a restart computes the same time again.
//! - A job that was due several times while the daemon was down (or the machine asleep) runs
//!   **once**: the next run is computed from when it ran, never from a grid of missed slots.
//! - A run that finds the environment unavailable (Incus, the backup share) is retried with
//!   exponential backoff from [`BACKOFF_MIN`] up to the job's period, and each failure is recorded;
//!   any other failure waits for the next period. Nothing crash-loops.

use std::path::PathBuf;
use std::time::Duration;

use jiff::Timestamp;
use repoman_core::ErrorKind;
use serde::Serialize;

/// The first retry after an "unavailable" failure.
pub const BACKOFF_MIN: Duration = Duration::from_secs(60);
/// How often the reconcile runs.
pub const RECONCILE_EVERY: Duration = Duration::from_secs(15 * 60);
/// How often the warm tool scan runs.
pub const TOOL_SCAN_EVERY: Duration = Duration::from_secs(6 * 3600);

pub use repoman_core::registry::parse_duration;

/// What a job does.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum JobKind {
    Sync { project: String },
    Reconcile,
    ToolScan,
}

/// One scheduled job.
#[derive(Debug, Clone, Serialize)]
pub struct Job {
    /// `sync:alpha`, `reconcile`, `tool-scan`.
    pub name: String,
    #[serde(flatten)]
    pub kind: JobKind,
    #[serde(serialize_with = "ser_secs")]
    pub every: Duration,
    #[serde(serialize_with = "ser_secs")]
    pub jitter: Duration,
    /// The last run recorded (any outcome), if any.
    pub last: Option<Timestamp>,
    /// Consecutive "unavailable" failures.
    pub failures: u32,
    /// When it runs next.
    pub next: Timestamp,
}

fn ser_secs<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u64(d.as_secs())
}

/// A deterministic offset in `[0, jitter)` for `name` after `last`.
pub fn jitter_for(name: &str, last: Option<Timestamp>, jitter: Duration) -> Duration {
    let ms = jitter.as_millis() as u64;
    if ms == 0 {
        return Duration::ZERO;
    }
    let mut h = blake3_like(name.as_bytes());
    h ^= last
        .map(|t| t.as_millisecond() as u64)
        .unwrap_or(0)
        .wrapping_mul(0x9E37_79B9_7F4A_7C15);
    h = h.wrapping_mul(0xBF58_476D_1CE4_E5B9);
    Duration::from_millis(h % ms)
}

// FNV-1a: the jitter only has to spread jobs, not resist anyone.
fn blake3_like(b: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &x in b {
        h ^= x as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

fn add(t: Timestamp, d: Duration) -> Timestamp {
    t.checked_add(jiff::SignedDuration::try_from(d).unwrap_or(jiff::SignedDuration::MAX))
        .unwrap_or(Timestamp::MAX)
}

impl Job {
    /// A job last run at `last` (from the log), as seen by a daemon started at `now`.
    pub fn new(
        name: String,
        kind: JobKind,
        every: Duration,
        jitter: Duration,
        last: Option<Timestamp>,
        now: Timestamp,
    ) -> Self {
        let next = match last {
            Some(l) => add(l, every + jitter_for(&name, Some(l), jitter)),
            // Never run: soon, spread by the jitter.
            None => add(now, jitter_for(&name, None, jitter)),
        };
        Self {
            name,
            kind,
            every,
            jitter,
            last,
            failures: 0,
            next,
        }
    }

    pub fn is_due(&self, now: Timestamp) -> bool {
        self.next <= now
    }

    /// Record a run that ended at `now` with `outcome` (`None`: it worked).
    pub fn finished(&mut self, now: Timestamp, outcome: Option<ErrorKind>) {
        self.last = Some(now);
        match outcome {
            Some(ErrorKind::Unavailable) => {
                self.failures += 1;
                let exp =
                    BACKOFF_MIN.saturating_mul(1u32 << self.failures.saturating_sub(1).min(16));
                self.next = add(now, exp.min(self.every));
            }
            _ => {
                self.failures = 0;
                self.next = add(
                    now,
                    self.every + jitter_for(&self.name, Some(now), self.jitter),
                );
            }
        }
    }
}

/// The daemon's notion of "now": the system clock, or (tests) an RFC 3339 instant read from a
/// file each time, so a test moves time by rewriting the file.
#[derive(Debug, Clone)]
pub enum SchedClock {
    System,
    File(PathBuf),
}

impl SchedClock {
    pub fn now(&self) -> Timestamp {
        match self {
            SchedClock::System => Timestamp::now(),
            SchedClock::File(p) => std::fs::read_to_string(p)
                .ok()
                .and_then(|s| s.trim().parse().ok())
                .unwrap_or(Timestamp::UNIX_EPOCH),
        }
    }

    pub fn is_pinned(&self) -> bool {
        matches!(self, SchedClock::File(_))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("6h").unwrap(), Duration::from_secs(6 * 3600));
        assert_eq!(parse_duration("90s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("1w").unwrap(), Duration::from_secs(604_800));
        for bad in ["", "6", "h", "6 hours", "0h", "-1h", "1.5h"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn due_and_missed_runs_run_once() {
        let every = Duration::from_secs(6 * 3600);
        let last = t("2026-01-01T00:00:00Z");
        let mut j = Job::new(
            "sync:a".into(),
            JobKind::Sync {
                project: "a".into(),
            },
            every,
            Duration::ZERO,
            Some(last),
            last,
        );
        assert_eq!(j.next, t("2026-01-01T06:00:00Z"));
        assert!(!j.is_due(t("2026-01-01T05:59:59Z")));
        // Down for 3 days: due, runs once, and the next run is a period after it ran.
        let now = t("2026-01-04T00:00:00Z");
        assert!(j.is_due(now));
        j.finished(now, None);
        assert!(!j.is_due(now));
        assert_eq!(j.next, t("2026-01-04T06:00:00Z"));
    }

    #[test]
    fn jitter_is_bounded_deterministic_and_spreads_projects() {
        let every = Duration::from_secs(3600);
        let jitter = Duration::from_secs(600);
        let last = t("2026-01-01T00:00:00Z");
        let nexts: Vec<Timestamp> = (0..20)
            .map(|i| {
                Job::new(
                    format!("sync:p{i}"),
                    JobKind::Reconcile,
                    every,
                    jitter,
                    Some(last),
                    last,
                )
                .next
            })
            .collect();
        for n in &nexts {
            assert!(
                *n >= t("2026-01-01T01:00:00Z") && *n < t("2026-01-01T01:10:00Z"),
                "{n}"
            );
        }
        let mut distinct = nexts.clone();
        distinct.sort();
        distinct.dedup();
        assert!(
            distinct.len() > 10,
            "jitter should spread jobs: {distinct:?}"
        );
        let again = Job::new(
            "sync:p0".into(),
            JobKind::Reconcile,
            every,
            jitter,
            Some(last),
            last,
        )
        .next;
        assert_eq!(again, nexts[0]);
    }

    #[test]
    fn unavailable_backs_off_exponentially_up_to_the_period() {
        let every = Duration::from_secs(3600);
        let now = t("2026-01-01T00:00:00Z");
        let mut j = Job::new(
            "reconcile".into(),
            JobKind::Reconcile,
            every,
            Duration::ZERO,
            None,
            now,
        );
        let mut waits = Vec::new();
        let mut at = now;
        for _ in 0..8 {
            j.finished(at, Some(ErrorKind::Unavailable));
            waits.push(j.next.duration_since(at).as_secs());
            at = j.next;
        }
        assert_eq!(waits, [60, 120, 240, 480, 960, 1920, 3600, 3600]);
        j.finished(at, None);
        assert_eq!(j.failures, 0);
        assert_eq!(j.next.duration_since(at).as_secs(), 3600);
        j.finished(j.next, Some(ErrorKind::Blocked));
        assert_eq!(j.failures, 0, "a refusal is not retried early");
    }
}
