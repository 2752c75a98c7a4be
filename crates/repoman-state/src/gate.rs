//! The one policy gate every mutating plan passes through, whichever face asked for it (CLI,
//! daemon, TUI) and whichever domain it belongs to (sandboxes, backups, realms, tools).
//!
//! A domain builds an [`Operation`] and its guards' [`Verdict`]s; [`gate`] merges them with the
//! user's `[[policy.rule]]`s ([`crate::policy::evaluate`]), records the decision unless told not
//! to, and returns either the allowed [`Decision`] or [`Blocked`], which carries everything a
//! face needs to explain the block the same way: the blocking reasons with their rules, and the
//! commands that would unblock the plan.

use std::fmt;

use repoman_core::registry::PolicyRule;
use repoman_core::{DomainError, ErrorKind};

use crate::policy::{Decision, Effect, Operation, Verdict};
use crate::{State, StateError};

/// Whether the gate records its decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GateMode {
    /// Record every decision (`policy.decided`, and `<op>.plan.blocked` when blocked).
    Record,
    /// Record only a block: for plans that turned out to change nothing, so a no-op does not
    /// write an event, while a refusal is still on record.
    RecordIfBlocked,
    /// `--dry-run`: evaluate and record nothing.
    DryRun,
}

/// A plan the policy stopped (deny or review_required).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Blocked {
    pub operation: String,
    pub object: String,
    /// `Deny` or `ReviewRequired`.
    pub effect: Effect,
    /// The verdicts that block, guards first, then user rules.
    pub reasons: Vec<Verdict>,
    /// Every verdict that contributed, including allows (what `--json` shows).
    pub all_reasons: Vec<Verdict>,
    /// Seq of the recorded `policy.decided` event (`None` in a dry run).
    pub decision_seq: Option<u64>,
}

impl Blocked {
    /// "denied" or "waiting for review".
    pub fn verb(&self) -> &'static str {
        if self.effect == Effect::Deny {
            "denied"
        } else {
            "waiting for review"
        }
    }

    /// The commands that would unblock the plan, without duplicates, in verdict order.
    pub fn unblock(&self) -> Vec<&str> {
        let mut out: Vec<&str> = Vec::new();
        for u in self.reasons.iter().filter_map(|v| v.unblock.as_deref()) {
            if !out.contains(&u) {
                out.push(u);
            }
        }
        out
    }

    /// One line per blocking reason ([`Verdict::line`]).
    pub fn reason_lines(&self) -> Vec<String> {
        self.reasons.iter().map(Verdict::line).collect()
    }
}

impl fmt::Display for Blocked {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} on {} is blocked by policy ({}): {}",
            self.operation,
            self.object,
            self.verb(),
            self.reason_lines().join("; ")
        )
    }
}

impl std::error::Error for Blocked {}

impl DomainError for Blocked {
    fn kind(&self) -> ErrorKind {
        ErrorKind::Blocked
    }

    fn hint(&self) -> Option<String> {
        let unblock = self.unblock();
        if !unblock.is_empty() {
            return Some(format!("to unblock: {}", unblock.join(" or ")));
        }
        Some(if self.effect == Effect::Deny {
            "a `[[policy.rule]]` or a guard denies this; `repoman explain` shows why".to_owned()
        } else {
            "a human has to review this; `repoman explain` shows what is waiting".to_owned()
        })
    }
}

/// Why the gate did not let a plan through.
#[derive(Debug, thiserror::Error)]
pub enum GateError {
    #[error(transparent)]
    Blocked(#[from] Blocked),
    /// Recording the decision failed.
    #[error(transparent)]
    State(#[from] StateError),
}

impl DomainError for GateError {
    fn kind(&self) -> ErrorKind {
        match self {
            GateError::Blocked(b) => b.kind(),
            GateError::State(e) => e.kind(),
        }
    }

    fn hint(&self) -> Option<String> {
        match self {
            GateError::Blocked(b) => b.hint(),
            GateError::State(e) => e.hint(),
        }
    }
}

impl GateError {
    /// The block, when the plan was stopped by policy (rather than by a storage failure).
    pub fn blocked(&self) -> Option<&Blocked> {
        match self {
            GateError::Blocked(b) => Some(b),
            GateError::State(_) => None,
        }
    }
}

/// Evaluate `op` with the guards' `verdicts` and the user's `rules`, as the state's actor, and
/// record the decision as `mode` says. Allowed: the decision (with its event seq when recorded).
/// Denied or waiting for review: [`GateError::Blocked`].
pub fn gate(
    state: &State,
    op: &Operation,
    verdicts: Vec<Verdict>,
    rules: &[PolicyRule],
    mode: GateMode,
) -> Result<Decision, GateError> {
    let decision = match mode {
        GateMode::Record => state.decide(op, verdicts, rules)?,
        GateMode::RecordIfBlocked | GateMode::DryRun => {
            let (effect, reasons) = state.evaluate(op, verdicts.clone(), rules);
            if effect.blocks() && mode == GateMode::RecordIfBlocked {
                state.decide(op, verdicts, rules)?
            } else {
                Decision {
                    effect,
                    reasons,
                    event_seq: None,
                }
            }
        }
    };
    if !decision.effect.blocks() {
        return Ok(decision);
    }
    Err(GateError::Blocked(Blocked {
        operation: op.name.clone(),
        object: op.object.clone(),
        effect: decision.effect,
        reasons: decision.blocking().cloned().collect(),
        all_reasons: decision.reasons,
        decision_seq: decision.event_seq,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use repoman_core::registry::RuleEffect;
    use repoman_core::{Clock, Env, Paths};

    fn state(home: &std::path::Path) -> State {
        let env = Env::from_pairs([("HOME", home), ("USER", std::path::Path::new("t"))]);
        let paths = Paths::resolve(&env).unwrap();
        State::open(
            &paths,
            &env,
            Clock::pinned("2026-01-01T00:00:00Z".parse().unwrap()),
        )
        .unwrap()
    }

    fn op() -> Operation {
        Operation {
            name: "sync".into(),
            object: "backup:alpha".into(),
            project: Some("alpha".into()),
        }
    }

    fn deny(unblock: Option<&str>) -> Verdict {
        Verdict {
            rule: "backup.source-empty".into(),
            effect: Effect::Deny,
            reason: "the source is empty".into(),
            unblock: unblock.map(Into::into),
        }
    }

    fn events(s: &State, ty: &str) -> usize {
        s.events(&crate::EventQuery {
            type_: Some(ty.into()),
            ..Default::default()
        })
        .unwrap()
        .len()
    }

    #[test]
    fn allowed_plans_pass_and_are_recorded_only_in_record_mode() {
        let home = tempfile::tempdir().unwrap();
        let s = state(home.path());
        let d = gate(&s, &op(), vec![], &[], GateMode::DryRun).unwrap();
        assert_eq!((d.effect, d.event_seq), (Effect::Allow, None));
        let d = gate(&s, &op(), vec![], &[], GateMode::RecordIfBlocked).unwrap();
        assert_eq!(d.event_seq, None);
        assert_eq!(events(&s, "policy.decided"), 0);
        let d = gate(&s, &op(), vec![], &[], GateMode::Record).unwrap();
        assert!(d.event_seq.is_some());
        assert_eq!(events(&s, "policy.decided"), 1);
    }

    #[test]
    fn a_block_names_reasons_rules_and_the_unblock_command() {
        let home = tempfile::tempdir().unwrap();
        let s = state(home.path());
        let rules = [PolicyRule {
            operation: Some("sync".into()),
            actor: None,
            project: None,
            profile: None,
            effect: RuleEffect::ReviewRequired,
            reason: "syncs need review".into(),
        }];
        let err = gate(
            &s,
            &op(),
            vec![deny(Some("repoman sync alpha --allow-empty"))],
            &rules,
            GateMode::DryRun,
        )
        .unwrap_err();
        let b = err.blocked().unwrap().clone();
        assert_eq!(b.effect, Effect::Deny);
        assert_eq!(b.reasons.len(), 2);
        assert_eq!(b.decision_seq, None);
        assert_eq!(events(&s, "policy.decided"), 0, "a dry run records nothing");
        assert_eq!(
            b.to_string(),
            "sync on backup:alpha is blocked by policy (denied): denied (backup.source-empty): \
             the source is empty; review required (user:1): syncs need review"
        );
        assert_eq!(b.kind(), ErrorKind::Blocked);
        assert_eq!(
            b.hint().unwrap(),
            "to unblock: repoman sync alpha --allow-empty"
        );

        let err = gate(&s, &op(), vec![deny(None)], &[], GateMode::RecordIfBlocked).unwrap_err();
        let b = err.blocked().unwrap();
        let seq = b.decision_seq.expect("a block is recorded");
        assert_eq!(events(&s, "policy.decided"), 1);
        assert_eq!(events(&s, "sync.plan.blocked"), 1);
        assert!(b.hint().unwrap().contains("repoman explain"));
        assert!(seq > 0);
    }

    #[test]
    fn review_required_alone_blocks_with_a_review_hint() {
        let home = tempfile::tempdir().unwrap();
        let s = state(home.path());
        let v = Verdict {
            effect: Effect::ReviewRequired,
            ..deny(None)
        };
        let err = gate(&s, &op(), vec![v], &[], GateMode::DryRun).unwrap_err();
        let b = err.blocked().unwrap();
        assert_eq!(b.verb(), "waiting for review");
        assert!(b.hint().unwrap().contains("review"));
    }
}
