//! Group commit: events appended through the daemon by concurrent callers share one write and
//! one fsync ([`repoman_state::State::append_batch_as`]); each caller is answered only after its
//! event is durable.
//!
//! One committer thread takes everything queued, appends it as one batch and answers each caller;
//! while it waits for the disk, new requests queue up and form the next batch, so the batch size
//! follows the load by itself (1 writer: one fsync per event; 100 writers: ~100 events per fsync).
//!
//! Invariants: an event is validated before it is queued (a bad event fails alone, never its
//! batch); after [`Committer::shutdown`] nothing new is accepted, and everything already queued is
//! committed and answered before the thread ends, so a stop never leaves a caller without an
//! answer for an event that was written (or with one for an event that was not).

use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;

use repoman_core::ErrorKind;
use repoman_state::{ActorRequest, Event, NewEvent, State};

use crate::rpc::RpcError;

/// The most events written in one batch.
pub const MAX_BATCH: usize = 4096;

type Reply = mpsc::SyncSender<Result<Event, RpcError>>;

#[derive(Debug, Default)]
struct Queue {
    pending: Vec<(ActorRequest, NewEvent, Reply)>,
    stopping: bool,
}

#[derive(Debug, Default)]
struct Shared {
    queue: Mutex<Queue>,
    cv: Condvar,
    batches: std::sync::atomic::AtomicU64,
    events: std::sync::atomic::AtomicU64,
}

/// The group-commit queue and its thread.
#[derive(Debug)]
pub struct Committer {
    shared: Arc<Shared>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl Committer {
    /// Start the committer thread over `state`.
    pub fn start(state: Arc<State>) -> Self {
        let shared = Arc::new(Shared::default());
        let s = shared.clone();
        let thread = std::thread::Builder::new()
            .name("groove-commit".into())
            .spawn(move || run(&s, &state))
            .ok();
        Self {
            shared,
            thread: Mutex::new(thread),
        }
    }

    /// Append one event as `actor` and wait until it is durable.
    pub fn append(&self, actor: ActorRequest, ev: NewEvent) -> Result<Event, RpcError> {
        repoman_state::state::validate_new_event(&ev)
            .map_err(|e| RpcError::domain(ErrorKind::Usage, e.to_string(), None))?;
        let (tx, rx) = mpsc::sync_channel(1);
        {
            let mut q =
                self.shared.queue.lock().map_err(|_| {
                    RpcError::new(crate::rpc::INTERNAL_ERROR, "commit queue poisoned")
                })?;
            if q.stopping {
                return Err(stopping());
            }
            q.pending.push((actor, ev, tx));
        }
        self.shared.cv.notify_one();
        rx.recv().unwrap_or_else(|_| Err(stopping()))
    }

    /// (batches written, events written) so far.
    pub fn stats(&self) -> (u64, u64) {
        use std::sync::atomic::Ordering::Relaxed;
        (
            self.shared.batches.load(Relaxed),
            self.shared.events.load(Relaxed),
        )
    }

    /// Refuse new appends, commit and answer what is queued, and wait for the thread.
    pub fn shutdown(&self) {
        if let Ok(mut q) = self.shared.queue.lock() {
            q.stopping = true;
        }
        self.shared.cv.notify_all();
        if let Some(t) = self.thread.lock().ok().and_then(|mut t| t.take()) {
            let _ = t.join();
        }
    }
}

impl Drop for Committer {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn stopping() -> RpcError {
    RpcError::domain(
        ErrorKind::Interrupted,
        "the daemon is stopping; the event was not recorded",
        Some("retry once the daemon is running again".into()),
    )
}

fn run(shared: &Shared, state: &State) {
    use std::sync::atomic::Ordering::Relaxed;
    loop {
        let batch = {
            let Ok(mut q) = shared.queue.lock() else {
                return;
            };
            while q.pending.is_empty() && !q.stopping {
                q = match shared.cv.wait(q) {
                    Ok(q) => q,
                    Err(_) => return,
                };
            }
            if q.pending.is_empty() {
                return; // stopping, and nothing left to commit
            }
            let n = q.pending.len().min(MAX_BATCH);
            q.pending.drain(..n).collect::<Vec<_>>()
        };
        let (evs, replies): (Vec<_>, Vec<_>) =
            batch.into_iter().map(|(a, e, r)| ((a, e), r)).unzip();
        let n = evs.len() as u64;
        match state.append_batch_as(evs) {
            Ok(written) => {
                shared.batches.fetch_add(1, Relaxed);
                shared.events.fetch_add(n, Relaxed);
                for (ev, reply) in written.into_iter().zip(replies) {
                    let _ = reply.send(Ok(ev));
                }
            }
            Err(e) => {
                let err = crate::rpc::from_state(&e);
                for reply in replies {
                    let _ = reply.send(Err(err.clone()));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use repoman_core::{Clock, Env, Paths, ProjectName};
    use serde_json::json;

    #[test]
    fn concurrent_appends_share_batches_and_keep_their_actors() {
        let home = tempfile::tempdir().unwrap();
        let env = Env::from_pairs([("HOME", home.path().as_os_str()), ("USER", "t".as_ref())]);
        let paths = Paths::resolve(&env).unwrap();
        let state = Arc::new(State::open(&paths, &env, Clock::system()).unwrap());
        let c = Arc::new(Committer::start(state.clone()));
        let handles: Vec<_> = (0..16)
            .map(|i| {
                let c = c.clone();
                std::thread::spawn(move || {
                    let who = if i % 2 == 0 {
                        ActorRequest::Derived
                    } else {
                        ActorRequest::Agent(ProjectName::parse("alpha").unwrap())
                    };
                    (0..20)
                        .map(|j| {
                            c.append(
                                who.clone(),
                                NewEvent::new(
                                    "note.added",
                                    "project:alpha",
                                    json!({"i": i, "j": j}),
                                ),
                            )
                            .unwrap()
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        let mut all: Vec<Event> = handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect();
        all.sort_by_key(|e| e.seq);
        assert_eq!(all.len(), 320);
        assert!(all.windows(2).all(|w| w[1].seq == w[0].seq + 1));
        for e in &all {
            let i = e.data["i"].as_u64().unwrap();
            let want = if i % 2 == 0 {
                "human:t@"
            } else {
                "agent:alpha"
            };
            assert!(e.actor.starts_with(want), "{} {}", e.actor, i);
        }
        let bad = c.append(ActorRequest::Derived, NewEvent::new("Bad", "x", json!({})));
        assert_eq!(bad.unwrap_err().code, crate::rpc::USAGE);
        let (batches, events) = c.stats();
        assert_eq!(events, 320);
        assert!(batches <= 320);
        c.shutdown();
        let late = c.append(
            ActorRequest::Derived,
            NewEvent::new("note.added", "project:a", json!({})),
        );
        assert_eq!(late.unwrap_err().code, crate::rpc::INTERRUPTED);
        assert_eq!(state.head().unwrap().seq, 320);
    }
}
