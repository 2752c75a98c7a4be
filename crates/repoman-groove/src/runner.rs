//! Methods whose orchestration lives in the `repoman` binary (sync, verify, tools, realm) run
//! that binary as a child, `repoman --json --no-input --no-progress ARGS`: the very code path,
//! locks and policy gate of the CLI, with the caller recorded as the actor.
//!
//! The child's actor comes from `REPOMAN_ACTOR` (`daemon` or `agent:PROJECT`; no value can
//! name a human), set here from the caller the daemon identified at accept time. A human caller
//! on the host socket runs with the daemon's own (human) identity. The child runs in its own
//! process group; when the daemon stops, [`repoman_core::process`] sends it SIGTERM, which the
//! CLI treats as Ctrl-C (its clean cancel path: `sync.cancelled`, nothing half-written).

use repoman_core::ErrorKind;
use repoman_core::process::{Cmd, ProcessError};
use serde_json::{Value, json};

use crate::core::{Caller, Core};
use crate::rpc::RpcError;

/// Who the child records as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunAs {
    /// The human the daemon runs for (a host caller).
    Human,
    /// `daemon:HOST` (scheduled work).
    Daemon,
    /// `agent:PROJECT`.
    Agent(String),
}

impl RunAs {
    pub fn of(caller: &Caller) -> Self {
        match caller.project() {
            Some(p) => RunAs::Agent(p.to_owned()),
            None => RunAs::Human,
        }
    }
}

fn kind_of_exit(code: Option<i32>) -> ErrorKind {
    match code {
        Some(2) => ErrorKind::Usage,
        Some(3) => ErrorKind::Blocked,
        Some(4) => ErrorKind::Unavailable,
        Some(130) | None => ErrorKind::Interrupted,
        _ => ErrorKind::Failed,
    }
}

/// The `error:` message and `hint:` lines the CLI wrote on stderr.
fn parse_stderr(stderr: &str) -> (Option<String>, Option<String>) {
    let mut msg = None;
    let mut hint = None;
    for line in stderr.lines() {
        if let Some(m) = line.strip_prefix("error: ") {
            msg.get_or_insert_with(|| m.to_owned());
        } else if let Some(h) = line.strip_prefix("hint: ") {
            hint = Some(h.to_owned());
        }
    }
    (msg, hint)
}

/// Run `repoman ARGS` as `who`. Exit 0: the JSON it printed. Otherwise an error whose kind
/// follows the exit code, with the message and hint the CLI printed and its JSON output (when
/// it printed any) in `data.output`.
pub fn run_cli(core: &Core, who: &RunAs, args: &[String]) -> Result<Value, RpcError> {
    run_cli_with(core, who, args, false)
}

/// [`run_cli`] for checks: exit 1 with JSON output means "the check found problems", which is an
/// answer (the output says which), not a failed call.
pub fn run_check(core: &Core, who: &RunAs, args: &[String]) -> Result<Value, RpcError> {
    run_cli_with(core, who, args, true)
}

fn run_cli_with(
    core: &Core,
    who: &RunAs,
    args: &[String],
    problems_ok: bool,
) -> Result<Value, RpcError> {
    core.check_running()?;
    let mut cmd = Cmd::new(&core.cfg.exe)
        .args(["--json", "--no-input", "--no-progress", "--color", "never"])
        .args(args)
        .env("NO_COLOR", "1")
        .cancel(&core.cancel);
    match who {
        RunAs::Human => {}
        RunAs::Daemon => cmd = cmd.env("REPOMAN_ACTOR", "daemon"),
        RunAs::Agent(p) => cmd = cmd.env("REPOMAN_ACTOR", format!("agent:{p}")),
    }
    let out = match cmd.output() {
        Ok(o) => o,
        Err(ProcessError::Cancelled { .. }) => {
            return Err(RpcError::domain(
                ErrorKind::Interrupted,
                format!(
                    "`repoman {}` was cancelled: the daemon is stopping",
                    args.join(" ")
                ),
                Some("run it again once the daemon is back".into()),
            ));
        }
        Err(e) => return Err(crate::rpc::from_process(&e)),
    };
    let stdout = String::from_utf8_lossy(&out.stdout);
    let parsed: Option<Value> = serde_json::from_str(stdout.trim()).ok();
    if out.status.success() {
        return Ok(parsed.unwrap_or_else(|| json!({"output": stdout.trim()})));
    }
    if problems_ok
        && out.status.code() == Some(1)
        && let Some(v) = parsed.clone()
    {
        return Ok(v);
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    let (msg, hint) = parse_stderr(&stderr);
    let code = out.status.code();
    let kind = kind_of_exit(code);
    let message = msg.unwrap_or_else(|| {
        format!(
            "`repoman {}` exited with status {}",
            args.join(" "),
            code.map(|c| c.to_string())
                .unwrap_or_else(|| "(signal)".into())
        )
    });
    let mut e = RpcError::domain(kind, message, hint);
    if let Some(Value::Object(d)) = e.data.as_mut() {
        d.insert("exit".into(), json!(code));
        if let Some(p) = parsed {
            d.insert("output".into(), p);
        }
    }
    Err(e)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_map_to_kinds_and_stderr_gives_message_and_hint() {
        assert_eq!(kind_of_exit(Some(1)), ErrorKind::Failed);
        assert_eq!(kind_of_exit(Some(3)), ErrorKind::Blocked);
        assert_eq!(kind_of_exit(Some(4)), ErrorKind::Unavailable);
        assert_eq!(kind_of_exit(None), ErrorKind::Interrupted);
        let (m, h) = parse_stderr(
            "warning: x\nerror: project `z` is not registered\nhint: `repoman list` shows them\n",
        );
        assert_eq!(m.as_deref(), Some("project `z` is not registered"));
        assert_eq!(h.as_deref(), Some("`repoman list` shows them"));
    }
}
