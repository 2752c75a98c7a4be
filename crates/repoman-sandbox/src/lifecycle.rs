//! Start, stop and restart a sandbox, and the preparation of `shell`/`exec` (starting a stopped
//! sandbox first). Each change is gated and recorded as `sandbox.started|stopped|restarted`, one
//! event shape whoever asked. Every start and restart passes the pre-start hardening check
//! ([`crate::hardening::start`]).

use repoman_state::{Operation, State};
use serde::Serialize;

use crate::error::SandboxError;
use crate::events::{LifecycleChanged, SandboxEvent};
use crate::hardening::{self, StartMode};
use crate::session::{self, Approval, Session, Target};

/// Start / stop / restart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Lifecycle {
    Start,
    Stop,
    Restart,
}

impl Lifecycle {
    pub fn verb(self) -> &'static str {
        match self {
            Lifecycle::Start => "start",
            Lifecycle::Stop => "stop",
            Lifecycle::Restart => "restart",
        }
    }

    /// `started`, `stopped`, `restarted`.
    pub fn past(self) -> &'static str {
        match self {
            Lifecycle::Start => "started",
            Lifecycle::Stop => "stopped",
            Lifecycle::Restart => "restarted",
        }
    }

    /// Whether the action would change anything for an instance in `status`.
    pub fn needed(self, status: &str) -> bool {
        match self {
            Lifecycle::Start => status != "Running",
            Lifecycle::Stop => status != "Stopped",
            Lifecycle::Restart => true,
        }
    }

    /// The operation the policy gate decides on (`sandbox.start`, ...).
    pub fn operation(self, name: &str) -> Operation {
        session::op(&format!("sandbox.{}", self.verb()), name)
    }

    fn event(self, data: LifecycleChanged) -> SandboxEvent {
        match self {
            Lifecycle::Start => SandboxEvent::Started(data),
            Lifecycle::Stop => SandboxEvent::Stopped(data),
            Lifecycle::Restart => SandboxEvent::Restarted(data),
        }
    }
}

/// Run `action` on the sandbox `target` (restarting a stopped one starts it) and record it.
pub fn run(
    session: &Session,
    target: &Target,
    action: Lifecycle,
    force: bool,
    state: &State,
    approval: Approval,
) -> Result<(), SandboxError> {
    let name = &target.desired.name;
    approval.check(
        &action.operation(name).name,
        &repoman_core::ObjectId::sandbox(name),
    )?;
    act(session, target, action, force)?;
    state.append(
        action
            .event(LifecycleChanged {
                project: name.clone(),
                from: target.status.clone(),
                force,
                reason: None,
            })
            .into(),
    )?;
    Ok(())
}

fn act(s: &Session, t: &Target, action: Lifecycle, force: bool) -> Result<(), SandboxError> {
    let (scope, name) = (&s.observed.scope, t.desired.name.as_str());
    let allowed = hardening::Allowed::for_sandbox(&s.estate.file.registry.defaults, &t.desired);
    match action {
        Lifecycle::Start => hardening::start(scope, name, &allowed, StartMode::Start),
        Lifecycle::Stop => Ok(scope.stop(name, force)?),
        Lifecycle::Restart if t.status != "Running" => {
            hardening::start(scope, name, &allowed, StartMode::Start)
        }
        Lifecycle::Restart => hardening::start(scope, name, &allowed, StartMode::Restart { force }),
    }
}

/// `shell`/`exec` on a stopped sandbox: start it (gated as `sandbox.start`) and record
/// `sandbox.started` with reason `exec/shell`. A running sandbox is left alone (`Ok(false)`).
pub fn start_for_exec(
    session: &Session,
    target: &Target,
    state: &State,
) -> Result<bool, SandboxError> {
    if target.status == "Running" {
        return Ok(false);
    }
    let name = &target.desired.name;
    session::authorize(
        state,
        Lifecycle::Start.operation(name),
        &session.estate.file.registry.policy.rules,
    )?;
    hardening::start(
        &session.observed.scope,
        name,
        &hardening::Allowed::for_sandbox(&session.estate.file.registry.defaults, &target.desired),
        StartMode::Start,
    )?;
    state.append(
        SandboxEvent::Started(LifecycleChanged {
            project: name.clone(),
            from: target.status.clone(),
            force: false,
            reason: Some("exec/shell".to_owned()),
        })
        .into(),
    )?;
    Ok(true)
}
