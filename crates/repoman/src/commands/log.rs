//! `repoman log`: recorded events, oldest first, with filters and `--follow`.

use std::time::Duration;

use clap::Args;
use repoman_state::explain::normalize_object;
use repoman_state::{Event, EventQuery};

use crate::app::App;
use crate::error::{CliError, Exit};

/// Show recorded events (the hash-chained event log), oldest first
///
/// Reads the index, which is rebuilt from the log if needed; never creates state on a fresh
/// machine. With --json: a JSON array of events (`repoman.event/v1` objects); with --follow
/// --json: one event per line.
///
/// Examples:
///   repoman log                          the last 50 events
///   repoman log alpha                    events about project:alpha
///   repoman log backup:alpha --type 'backup.*' --since 2d
///   repoman log --actor agent --limit 10
///   repoman log --follow --json          stream new events as JSON lines
#[derive(Debug, Args)]
#[command(verbatim_doc_comment)]
pub struct LogArgs {
    /// Only events about this object: `project:alpha`, `backup:alpha`, ... (a bare name means
    /// `project:NAME`).
    pub object: Option<String>,
    /// Only this event type; a trailing `*` matches a prefix (`backup.*`).
    #[arg(long = "type", value_name = "TYPE")]
    pub type_: Option<String>,
    /// Only this actor (`human:alice@laptop`), actor kind (`human`, `agent`, `daemon`, `ci`), or
    /// prefix ending in `*`.
    #[arg(long)]
    pub actor: Option<String>,
    /// Only events since this time: RFC 3339 (`2026-11-01T00:00:00Z`) or an age (`30m`, `2h`,
    /// `3d`, `1w`).
    #[arg(long)]
    pub since: Option<String>,
    /// Show at most this many (the most recent). Default 50; 0 shows all.
    #[arg(long, short = 'n')]
    pub limit: Option<u64>,
    /// Keep running and print new events as they are recorded (Ctrl-C stops).
    #[arg(long, short = 'f')]
    pub follow: bool,
}

pub fn run(app: &App, args: LogArgs) -> Result<Exit, CliError> {
    let state = app.state_read_only()?;
    let since = args
        .since
        .as_deref()
        .map(|s| parse_since(app, s))
        .transpose()?;
    let limit = match args.limit {
        Some(0) => None,
        Some(n) => Some(n),
        None => Some(50),
    };
    let mut q = EventQuery {
        object: args.object.as_deref().map(normalize_object),
        type_: args.type_.clone(),
        actor: args.actor.clone(),
        since,
        after_seq: None,
        limit,
    };
    let events = state.events(&q)?;
    app.report_repairs(&state);
    if app.ui.json() && !args.follow {
        app.ui.print_json(&events)?;
    } else {
        for e in &events {
            print_event(app, e)?;
        }
    }
    if !args.follow {
        return Ok(Exit::Success);
    }
    let mut last = events
        .last()
        .map(|e| e.seq)
        .unwrap_or_else(|| state.head().map(|h| h.seq).unwrap_or(0));
    q.limit = None;
    loop {
        app.check_cancelled()?;
        std::thread::sleep(Duration::from_millis(200));
        if state.head()?.seq <= last {
            continue;
        }
        q.after_seq = Some(last);
        for e in state.events(&q)? {
            last = last.max(e.seq);
            print_event(app, &e)?;
        }
        if let Ok(h) = state.head() {
            last = last.max(h.seq);
        }
    }
}

fn print_event(app: &App, e: &Event) -> Result<(), CliError> {
    if app.ui.json() {
        return app.ui.print_json_line(e);
    }
    let mut data = serde_json::to_string(&e.data).unwrap_or_default();
    if data == "{}" {
        data.clear();
    }
    if data.chars().count() > 100 {
        data = data.chars().take(99).collect::<String>() + "…";
    }
    let line = format!(
        "{:>6}  {}  {:<22} {:<22} {}  {}",
        e.seq, e.at, e.type_, e.object, e.actor, data
    );
    app.ui.data(line.trim_end())
}

/// An RFC 3339 instant, or an age like `30m`, `2h`, `3d`, `1w`, as the RFC 3339 UTC string
/// events use (so it compares as text with `at`).
fn parse_since(app: &App, s: &str) -> Result<String, CliError> {
    if let Ok(ts) = s.parse::<jiff::Timestamp>() {
        return Ok(repoman_core::clock::format_rfc3339(ts));
    }
    let bad = || {
        CliError::usage(format!(
            "--since {s:?}: expected an RFC 3339 time (2026-11-01T00:00:00Z) or an age such as 30m, 2h, 3d, 1w"
        ))
    };
    let split = s.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
    let (n, unit) = s.split_at(split);
    let n: i64 = n.parse().map_err(|_| bad())?;
    let secs = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 604_800,
        _ => return Err(bad()),
    };
    let now = app.clock.now();
    let then = now
        .checked_sub(jiff::SignedDuration::from_secs(n.saturating_mul(secs)))
        .map_err(|_| bad())?;
    Ok(repoman_core::clock::format_rfc3339(then))
}
