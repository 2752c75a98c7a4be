//! The policy gate as every command calls it, and how its decision is shown — the same for
//! every domain (sandboxes, backups, realms, tools).
//!
//! [`gate`] runs [`repoman_state::gate`] (recording the decision, or not in a dry run). A block is
//! an error rendered by [`crate::error::CliError::blocked`]: the reasons with their rules and the
//! command that would unblock it. An allowed `--dry-run` says what was decided
//! ([`dry_run_line`]) and, with `--json`, carries it as [`decision_json`].

use repoman_core::ObjectId;
use repoman_core::registry::PolicyRule;
use repoman_state::{Decision, GateMode, Operation, State, Verdict};
use serde_json::{Value, json};

use crate::app::App;
use crate::error::CliError;

/// One [`Verdict::line`] per verdict.
pub fn reason_lines(verdicts: &[Verdict]) -> Vec<String> {
    verdicts.iter().map(Verdict::line).collect()
}

/// The operation `name` on `object`, for a project when the object belongs to one.
pub fn operation(name: &str, object: &ObjectId) -> Operation {
    Operation {
        name: name.to_owned(),
        object: object.to_string(),
        project: object.project_name().map(str::to_owned),
    }
}

/// Ask the policy gate. A dry run records nothing and tells the user (stderr) what was decided;
/// a real run records the decision. Blocked: the error every domain renders the same way.
pub fn gate(
    app: &App,
    state: &State,
    op: &Operation,
    verdicts: Vec<Verdict>,
    rules: &[PolicyRule],
    dry_run: bool,
) -> Result<Decision, CliError> {
    let mode = if dry_run {
        GateMode::DryRun
    } else {
        GateMode::Record
    };
    let d = repoman_state::gate(state, op, verdicts, rules, mode)?;
    if dry_run {
        app.ui.info(&dry_run_line(op, &d));
    }
    Ok(d)
}

/// What `--dry-run` prints (to stderr) about an allowed plan.
pub fn dry_run_line(op: &Operation, d: &Decision) -> String {
    let why = if d.reasons.is_empty() {
        "no guard or rule objected".to_owned()
    } else {
        reason_lines(&d.reasons).join("; ")
    };
    format!(
        "policy: {} for {} on {} ({why}); nothing recorded (dry run)",
        d.effect.as_str(),
        op.name,
        op.object
    )
}

/// The decision as `--json` shows it.
pub fn decision_json(op: &Operation, d: &Decision) -> Value {
    json!({
        "operation": op.name,
        "object": op.object,
        "effect": d.effect.as_str(),
        "reasons": d.reasons,
        "decision_seq": d.event_seq,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_name_the_effect_rule_and_reason() {
        let v = Verdict {
            rule: "user:2".into(),
            effect: repoman_state::Effect::ReviewRequired,
            reason: "pins need a human".into(),
            unblock: None,
        };
        assert_eq!(
            reason_lines(&[v]),
            ["review required (user:2): pins need a human"]
        );
        let op = operation("tools.pin", &ObjectId::file("api", ".tool-versions"));
        assert_eq!(op.project.as_deref(), Some("api"));
        let d = Decision {
            effect: repoman_state::Effect::Allow,
            reasons: vec![],
            event_seq: None,
        };
        assert_eq!(
            dry_run_line(&op, &d),
            "policy: allow for tools.pin on file:api/.tool-versions (no guard or rule objected); nothing recorded (dry run)"
        );
        assert_eq!(decision_json(&op, &d)["effect"], "allow");
    }
}
