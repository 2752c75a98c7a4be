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
}

/// Leaves raw mode and the alternate screen when dropped.
#[derive(Debug)]
pub struct TerminalGuard;

impl Drop for TerminalGuard {
    fn drop(&mut self) {
        ratatui::restore();
    }
}

/// How often the log head is looked at, and after how many looks everything is refreshed.
const HEAD_POLL: Duration = Duration::from_secs(2);
const FULL_REFRESH_EVERY: u32 = 15;

/// The background refresher: a live snapshot at once, then the log head every [`HEAD_POLL`]
/// and a live snapshot every [`FULL_REFRESH_EVERY`] polls or when asked (`refresh`).
fn spawn_refresher(ctx: Context, tx: Sender<Msg>, refresh: Receiver<()>) {
    std::thread::spawn(move || {
        let mut head = None;
        let mut polls = 0;
        let mut full = true;
        loop {
            if full {
                let s = load::live(&ctx);
                head = Some(s.head_seq);
                if tx.send(Msg::Snapshot(Box::new(s))).is_err() {
                    return;
                }
                polls = 0;
            } else if let Some((h, evs)) = load::events_since(&ctx, head) {
                head = Some(h);
                if tx.send(Msg::Events(h, evs)).is_err() {
                    return;
                }
            }
            full = match refresh.recv_timeout(HEAD_POLL) {
                Ok(()) => true,
                Err(RecvTimeoutError::Timeout) => {
                    polls += 1;
                    polls >= FULL_REFRESH_EVERY
                }
                Err(RecvTimeoutError::Disconnected) => return,
            };
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
    let guard = TerminalGuard;
    let mut terminal = ratatui::try_init()?;
    let (tx, rx) = mpsc::channel();
    let (refresh_tx, refresh_rx) = mpsc::channel();
    spawn_refresher(ctx.clone(), tx.clone(), refresh_rx);
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
                Msg::Job(j) => {
                    let done = jobs::apply(&mut app, j);
                    if done {
                        running = None;
                        let _ = refresh_tx.send(());
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
                let _ = refresh_tx.send(());
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
                let _ = refresh_tx.send(());
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
