//! `repoman tui`: one full-screen view of the whole estate.
//!
//! The shape is the ratatui `examples/apps` / gitui one: an [`App`] state, a pure
//! [`render::render`] of it, a pure key state machine ([`app::handle_key`]) returning an
//! [`Action`], and one event loop ([`run`]) that owns the terminal. Data comes from the domain
//! crates through [`load`] into a plain [`Snapshot`]: the first frame is drawn from the registry
//! and the event log's index alone, then a background thread observes Incus, the backup mount,
//! tool manifests and realms and sends the result over a channel; it re-reads the event log's
//! head every couple of seconds (new events appear without a full refresh) and refreshes
//! everything periodically and on `r`.
//!
//! Terminal invariants: raw mode and the alternate screen are left on every way out — a normal
//! quit, an error (the [`TerminalGuard`]'s drop), a panic (ratatui's panic hook) and
//! SIGTERM/SIGINT (the CLI turns them into the [`Cancel`] flag, which the loop polls).
//! Library code never prints; the only terminal writes are ratatui's crossterm backend.

pub mod app;
pub mod jobs;
pub mod load;
pub mod render;
pub mod snapshot;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::time::Duration;

use crossterm::event::{self, Event};
use repoman_core::{Cancel, Clock, Env, Paths};

pub use app::{Action, App, View, handle_key};
pub use snapshot::Snapshot;

/// What the TUI needs from its caller (the `repoman` binary builds it from its own context).
#[derive(Debug, Clone)]
pub struct Context {
    pub env: Env,
    pub paths: Paths,
    pub clock: Clock,
    /// Set by SIGINT/SIGTERM: the loop quits (cancelling running work first).
    pub cancel: Cancel,
    /// Colours (false under `NO_COLOR` or `--color never`).
    pub color: bool,
    /// The actor actions are recorded as (the CLI's `REPOMAN_ACTOR` rule).
    pub actor: repoman_state::ActorRequest,
}

/// Why the TUI could not run.
#[derive(Debug, thiserror::Error)]
pub enum TuiError {
    #[error("terminal: {0}")]
    Terminal(#[from] std::io::Error),
}

/// Messages from the background threads to the event loop.
#[derive(Debug)]
pub enum Msg {
    /// A fresh snapshot (index or live).
    Snapshot(Box<Snapshot>),
    /// New events since the last look: the log head and the recent events, newest first.
    Events(u64, Vec<snapshot::EventRow>),
    /// Progress or the result of running work.
    Job(jobs::JobMsg),
    /// The daemon's event stream was joined (`true`) or lost (`false`).
    Daemon(bool),
}

/// What wakes the refresher before its timer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wake {
    /// Everything (`r`, after an action).
    Full,
    /// A new event was appended (from the daemon's stream): read the recent events now.
    Events,
}

/// Leaves raw mode and the alternate screen when dropped; while it lives, a last-resort exit (a
/// second SIGTERM or SIGINT, which exits without unwinding) restores the terminal first.
#[derive(Debug)]
pub struct TerminalGuard;

/// The terminal is in raw mode on the alternate screen (a [`TerminalGuard`] lives).
static RAW: AtomicBool = AtomicBool::new(false);

fn restore_if_raw() {
    if RAW.swap(false, Ordering::SeqCst) {
        ratatui::restore();
    }
}

impl TerminalGuard {
    fn new() -> Self {
        static HOOK: std::sync::Once = std::sync::Once::new();
        HOOK.call_once(|| repoman_core::process::on_hard_exit(restore_if_raw));
        RAW.store(true, Ordering::SeqCst);
        TerminalGuard
    }
}

impl Drop for TerminalGuard {
    fn drop(&mut self) {
        RAW.store(false, Ordering::SeqCst);
        ratatui::restore();
    }
}

/// How often the log head is looked at without the daemon, and after how many looks everything
/// is refreshed.
const HEAD_POLL: Duration = Duration::from_secs(2);
const FULL_REFRESH_EVERY: u32 = 15;
/// How long to wait before trying the daemon's socket again.
const DAEMON_RETRY: Duration = Duration::from_secs(5);

/// The background refresher: a live snapshot at once, then the log head every [`HEAD_POLL`]
/// (or, while the daemon's stream wakes it, only when an event arrives) and a live snapshot
/// every [`FULL_REFRESH_EVERY`] polls' worth of time or when asked ([`Wake::Full`]).
fn spawn_refresher(ctx: Context, tx: Sender<Msg>, wake: Receiver<Wake>, daemon: Arc<AtomicBool>) {
    std::thread::spawn(move || {
        let mut head = None;
        let mut full = true;
        let mut last_full = std::time::Instant::now();
        let full_every = HEAD_POLL * FULL_REFRESH_EVERY;
        loop {
            if full {
                let s = load::live(&ctx);
                head = Some(s.head_seq);
                if tx.send(Msg::Snapshot(Box::new(s))).is_err() {
                    return;
                }
                last_full = std::time::Instant::now();
            } else if let Some((h, evs)) = load::events_since(&ctx, head) {
                head = Some(h);
                if tx.send(Msg::Events(h, evs)).is_err() {
                    return;
                }
            }
            // With the daemon's stream an event wakes us; the timer is only the full refresh.
            let wait = if daemon.load(Ordering::Relaxed) {
                full_every.saturating_sub(last_full.elapsed())
            } else {
                HEAD_POLL
            };
            full = match wake.recv_timeout(wait) {
                Ok(Wake::Full) => true,
                Ok(Wake::Events) => false,
                Err(RecvTimeoutError::Timeout) => last_full.elapsed() >= full_every,
                Err(RecvTimeoutError::Disconnected) => return,
            };
        }
    });
}

/// Follows the daemon's event stream (the soft groove's `subscribe`) while a daemon runs:
/// every `groove.event` wakes the refresher, so events appear as they are appended. Without a
/// daemon (or after it goes away) it tries the socket again every [`DAEMON_RETRY`], and the
/// refresher polls meanwhile. Ends when the TUI does (its channels close).
fn spawn_subscriber(ctx: &Context, tx: Sender<Msg>, wake: Sender<Wake>, live: Arc<AtomicBool>) {
    let socket = repoman_groove::core::socket_path(&ctx.paths);
    std::thread::spawn(move || {
        loop {
            if let Ok(mut c) = repoman_groove::client::Client::connect(&socket)
                && c.call("subscribe", serde_json::json!({})).is_ok()
            {
                live.store(true, Ordering::Relaxed);
                if tx.send(Msg::Daemon(true)).is_err() {
                    return;
                }
                // Events appended between the last poll and the subscription.
                let _ = wake.send(Wake::Events);
                while let Ok(n) = c.next_notification() {
                    if n["method"] == "groove.event" && wake.send(Wake::Events).is_err() {
                        return;
                    }
                }
                live.store(false, Ordering::Relaxed);
                if tx.send(Msg::Daemon(false)).is_err() || wake.send(Wake::Events).is_err() {
                    return;
                }
            }
            std::thread::sleep(DAEMON_RETRY);
        }
    });
}

/// Run the TUI until the user quits (or a signal asks it to).
pub fn run(ctx: Context) -> Result<(), TuiError> {
    let mut app = App::new(ctx.color);
    // The first frame: registry + index only.
    app.set_snapshot(load::index(&ctx));
    app.refreshing = true;
    // The guard first: if entering the alternate screen fails after raw mode was enabled, the
    // error return still leaves raw mode.
    let guard = TerminalGuard::new();
    let mut terminal = ratatui::try_init()?;
    let (tx, rx) = mpsc::channel();
    let (refresh_tx, refresh_rx) = mpsc::channel();
    let daemon = Arc::new(AtomicBool::new(false));
    spawn_refresher(ctx.clone(), tx.clone(), refresh_rx, daemon.clone());
    spawn_subscriber(&ctx, tx.clone(), refresh_tx.clone(), daemon);
    let mut running: Option<jobs::Running> = None;
    let mut dirty = true;
    loop {
        if dirty {
            terminal.draw(|f| render::render(&app, f))?;
            dirty = false;
        }
        if ctx.cancel.is_cancelled() {
            if let Some(r) = running.take() {
                r.cancel_and_wait();
            }
            break;
        }
        while let Ok(m) = rx.try_recv() {
            dirty = true;
            match m {
                Msg::Snapshot(s) => app.set_snapshot(*s),
                Msg::Events(head, evs) => {
                    app.snapshot.head_seq = head;
                    app.snapshot.events = evs;
                    let s = std::mem::take(&mut app.snapshot);
                    app.set_snapshot(s);
                }
                Msg::Daemon(on) => app.daemon = on,
                Msg::Job(j) => {
                    let done = jobs::apply(&mut app, j);
                    if done {
                        running = None;
                        let _ = refresh_tx.send(Wake::Full);
                        app.refreshing = true;
                    }
                }
            }
        }
        if !event::poll(Duration::from_millis(100))? {
            // Ages ("12s ago") follow the clock between refreshes.
            let now = ctx.clock.now().as_second();
            if now != app.snapshot.now_secs {
                app.snapshot.now_secs = now;
                dirty = true;
            }
            continue;
        }
        let action = match event::read()? {
            Event::Key(k) => handle_key(&mut app, k),
            Event::Resize(..) => Action::None,
            _ => continue,
        };
        dirty = true;
        match action {
            Action::None => {}
            Action::Quit => {
                if let Some(r) = running.take() {
                    r.cancel_and_wait();
                }
                break;
            }
            Action::Refresh => {
                let _ = refresh_tx.send(Wake::Full);
            }
            Action::Run(req) => {
                running = Some(jobs::start(&ctx, &mut app, req, tx.clone()));
            }
            Action::Shell(name) => {
                app.message = Some(match jobs::shell_command(&ctx, &name) {
                    Err(e) => format!("shell: {e}"),
                    Ok(cmd) => {
                        // Suspend: the shell gets a normal terminal, then the TUI takes it back.
                        ratatui::restore();
                        let out = cmd.output();
                        crossterm::terminal::enable_raw_mode()?;
                        crossterm::execute!(
                            std::io::stdout(),
                            crossterm::terminal::EnterAlternateScreen
                        )?;
                        terminal.clear()?;
                        match out {
                            Ok(o) => format!("shell in {name} exited ({})", o.status),
                            Err(e) => format!("shell in {name}: {e}"),
                        }
                    }
                });
                let _ = refresh_tx.send(Wake::Full);
            }
            Action::Plan(app::Request::Repair { project, .. }) => {
                match jobs::plan_repair(&ctx, &project) {
                    Err(e) => app.message = Some(e),
                    Ok((req, lines)) => {
                        app.confirm = Some(app::Confirm {
                            request: req,
                            lines,
                        })
                    }
                }
            }
            Action::Plan(app::Request::Trust { project, .. }) => {
                match jobs::plan_trust(&ctx, &project) {
                    Err(e) | Ok(Err(e)) => app.message = Some(e),
                    Ok(Ok((req, diff))) => {
                        app.confirm = Some(app::Confirm {
                            request: req,
                            lines: diff.lines().map(str::to_owned).collect(),
                        })
                    }
                }
            }
            Action::Plan(req) => match jobs::plan_edit(req) {
                Err(e) => app.message = Some(e),
                Ok((_, diff)) if diff.is_empty() => {
                    app.message = Some("nothing to change; no file would be written".into())
                }
                Ok((req, diff)) => {
                    app.confirm = Some(app::Confirm {
                        request: req,
                        lines: diff
                            .lines()
                            .map(|l| l.trim_end_matches('\r').to_owned())
                            .collect(),
                    })
                }
            },
            Action::Cancel => {
                if let Some(r) = &running {
                    r.cancel();
                }
            }
        }
    }
    drop(guard);
    Ok(())
}
