//! The one progress interface every domain reports through (DESIGN.md §2: domain crates never
//! print). The CLI implements it once with indicatif, the TUI with channel messages, the daemon
//! with events on its stream; tests record the calls.
//!
//! The shape: an operation is a sequence of **steps** (a line each: "creating container api");
//! within a step, **work** of a known or unknown size may run, measured in items or bytes, whose
//! position moves forward and which ends once. Calls come from any thread (a rayon pool hashing
//! files, a thread waiting on an Incus operation), so implementations are `Send + Sync` and
//! cheap; a reporter must never fail or block the work it reports on.

/// What a unit of work counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Unit {
    /// Files, events, instances, tools, cases: anything counted one by one.
    Items,
    /// Bytes transferred, hashed or downloaded.
    Bytes,
}

/// Receives progress. Every method has a no-op default, so a reporter implements only what it
/// shows.
pub trait Progress: Send + Sync {
    /// A new step begins; `message` is a short present-tense phrase without a trailing period.
    fn step(&self, message: &str) {
        let _ = message;
    }

    /// Work begins within the current step: `label` names it ("hashing", "rootfs"), `total` is
    /// its size when known.
    fn begin(&self, label: &str, total: Option<u64>, unit: Unit) {
        let _ = (label, total, unit);
    }

    /// The work begun last is at `done` (absolute, never decreasing) of its total.
    fn position(&self, done: u64) {
        let _ = done;
    }

    /// Free text about the work begun last, e.g. Incus' "rootfs: 45% (12.3MB/s)".
    fn detail(&self, text: &str) {
        let _ = text;
    }

    /// The work begun last ended (whether it succeeded or not).
    fn end(&self) {}
}

/// Reports nothing.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoProgress;

impl Progress for NoProgress {}

/// Forward through references and shared pointers, so callers can pass `&dyn Progress` or an
/// `Arc<dyn Progress>` wherever a reporter is taken.
macro_rules! forward_progress {
    ($($ptr:ty),*) => {$(
        impl<P: Progress + ?Sized> Progress for $ptr {
            fn step(&self, message: &str) {
                (**self).step(message)
            }
            fn begin(&self, label: &str, total: Option<u64>, unit: Unit) {
                (**self).begin(label, total, unit)
            }
            fn position(&self, done: u64) {
                (**self).position(done)
            }
            fn detail(&self, text: &str) {
                (**self).detail(text)
            }
            fn end(&self) {
                (**self).end()
            }
        }
    )*};
}

forward_progress!(&P, std::sync::Arc<P>);

/// A reporter that records every call, for tests of the domain crates (and of faces that
/// forward progress).
#[derive(Debug, Default)]
pub struct Recorder {
    calls: std::sync::Mutex<Vec<Call>>,
}

/// One recorded call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Call {
    Step(String),
    Begin(String, Option<u64>, Unit),
    Position(u64),
    Detail(String),
    End,
}

impl Recorder {
    /// The calls so far, in order.
    pub fn calls(&self) -> Vec<Call> {
        self.calls.lock().map(|c| c.clone()).unwrap_or_default()
    }

    /// The step messages so far.
    pub fn steps(&self) -> Vec<String> {
        self.calls()
            .into_iter()
            .filter_map(|c| match c {
                Call::Step(s) => Some(s),
                _ => None,
            })
            .collect()
    }

    fn push(&self, c: Call) {
        if let Ok(mut calls) = self.calls.lock() {
            calls.push(c);
        }
    }
}

impl Progress for Recorder {
    fn step(&self, message: &str) {
        self.push(Call::Step(message.to_owned()))
    }
    fn begin(&self, label: &str, total: Option<u64>, unit: Unit) {
        self.push(Call::Begin(label.to_owned(), total, unit))
    }
    fn position(&self, done: u64) {
        self.push(Call::Position(done))
    }
    fn detail(&self, text: &str) {
        self.push(Call::Detail(text.to_owned()))
    }
    fn end(&self) {
        self.push(Call::End)
    }
}

/// Bytes as `12.3 MiB` (binary units; whole bytes below 1 KiB).
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn work(p: &dyn Progress) {
        p.step("hashing api");
        p.begin("files", Some(2), Unit::Items);
        p.position(1);
        p.position(2);
        p.end();
    }

    #[test]
    fn recorder_sees_calls_through_references_and_arcs() {
        let r = std::sync::Arc::new(Recorder::default());
        work(&r);
        work(&&*r);
        assert_eq!(r.steps(), ["hashing api", "hashing api"]);
        assert_eq!(
            r.calls()[..5],
            [
                Call::Step("hashing api".into()),
                Call::Begin("files".into(), Some(2), Unit::Items),
                Call::Position(1),
                Call::Position(2),
                Call::End
            ]
        );
        work(&NoProgress);
    }
}
