//! Policy decisions: domain guard verdicts merged with the user's `[[policy.rule]]`s.
//!
//! Merging rule: the most restrictive effect wins (`deny` > `review_required` > `allow`). A user
//! `allow` rule is recorded as a reason but never overrides a guard's deny or review: guards
//! protect data (DESIGN.md §6), rules only add restrictions or document intent.
//!
//! Every decision is recorded as `policy.decided`; a deny or review also records
//! `<operation>.plan.blocked` (e.g. `sync.plan.blocked`), both in one batch (one fsync).

use repoman_core::registry::{PolicyRule, RuleEffect};
use serde::{Deserialize, Serialize};

use crate::identity::Identity;

/// What a plan wants to do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Operation {
    /// `sync`, `sandbox.create`, `realm.contract.bump`, ...
    pub name: String,
    /// The object acted on, e.g. `backup:alpha`.
    pub object: String,
    pub project: Option<String>,
}

/// The effect of a verdict or decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Effect {
    Allow,
    ReviewRequired,
    Deny,
}

impl Effect {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Allow => "allow",
            Self::ReviewRequired => "review_required",
            Self::Deny => "deny",
        }
    }

    /// Whether the plan must stop.
    pub fn blocks(self) -> bool {
        self != Self::Allow
    }
}

impl From<RuleEffect> for Effect {
    fn from(e: RuleEffect) -> Self {
        match e {
            RuleEffect::Allow => Self::Allow,
            RuleEffect::Deny => Self::Deny,
            RuleEffect::ReviewRequired => Self::ReviewRequired,
        }
    }
}

/// One guard's or rule's judgement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Verdict {
    /// `backup.source-empty`, or `user:N` for the N-th (1-based) `[[policy.rule]]`.
    pub rule: String,
    pub effect: Effect,
    pub reason: String,
    /// The command that would unblock the plan, if any.
    pub unblock: Option<String>,
}

impl Verdict {
    /// How every face shows a verdict: `denied (RULE): REASON`, `review required (RULE): REASON`
    /// or `allowed (RULE): REASON`.
    pub fn line(&self) -> String {
        let what = match self.effect {
            Effect::Deny => "denied",
            Effect::ReviewRequired => "review required",
            Effect::Allow => "allowed",
        };
        format!("{what} ({}): {}", self.rule, self.reason)
    }
}

/// The merged decision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decision {
    pub effect: Effect,
    /// Every verdict that contributed (guards first, then matching user rules).
    pub reasons: Vec<Verdict>,
    /// Seq of the `policy.decided` event; `None` when the decision was not recorded (a dry
    /// run, or an allowed no-op under [`crate::gate::GateMode::RecordIfBlocked`]).
    pub event_seq: Option<u64>,
}

impl Decision {
    /// The verdicts that block (deny or review), for the CLI to print.
    pub fn blocking(&self) -> impl Iterator<Item = &Verdict> {
        self.reasons.iter().filter(|v| v.effect.blocks())
    }
}

fn matches(pattern: Option<&str>, value: Option<&str>) -> bool {
    match pattern {
        None | Some("*") => true,
        Some(p) => match (p.strip_suffix('*'), value) {
            (Some(prefix), Some(v)) => v.starts_with(prefix),
            (None, Some(v)) => v == p,
            (_, None) => false,
        },
    }
}

/// Whether a user rule applies to `op` run by `identity`.
pub fn rule_matches(rule: &PolicyRule, op: &Operation, identity: &Identity) -> bool {
    matches(rule.operation.as_deref(), Some(&op.name))
        && matches(rule.actor.as_deref(), Some(identity.actor_kind.as_str()))
        && matches(rule.project.as_deref(), op.project.as_deref())
        && matches(rule.profile.as_deref(), Some(&identity.profile))
}

/// Merge verdicts and matching rules (pure; [`crate::State::decide`] records the result).
/// Rules from outside this crate (extensions: `policy-rule` SNIFs), consulted by
/// [`crate::State::decide`] after the built-in guards and the user's TOML rules. Their verdicts
/// join the decision like any other (the strictest effect wins) and are recorded with it.
pub trait PolicyExtension: std::fmt::Debug + Send + Sync {
    fn verdicts(&self, op: &Operation, identity: &Identity) -> Vec<Verdict>;
}

pub fn evaluate(
    op: &Operation,
    mut verdicts: Vec<Verdict>,
    rules: &[PolicyRule],
    identity: &Identity,
) -> (Effect, Vec<Verdict>) {
    for (i, rule) in rules.iter().enumerate() {
        if rule_matches(rule, op, identity) {
            verdicts.push(Verdict {
                rule: format!("user:{}", i + 1),
                effect: rule.effect.into(),
                reason: rule.reason.clone(),
                unblock: None,
            });
        }
    }
    let effect = verdicts
        .iter()
        .map(|v| v.effect)
        .max()
        .unwrap_or(Effect::Allow);
    (effect, verdicts)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::ActorKind;

    fn ident(kind: ActorKind) -> Identity {
        Identity {
            actor: format!("{}:x", kind.as_str()),
            actor_kind: kind,
            device: "d".into(),
            profile: "work".into(),
            device_persisted: true,
        }
    }

    fn rule(
        op: Option<&str>,
        actor: Option<&str>,
        project: Option<&str>,
        effect: RuleEffect,
    ) -> PolicyRule {
        PolicyRule {
            operation: op.map(Into::into),
            actor: actor.map(Into::into),
            project: project.map(Into::into),
            profile: None,
            effect,
            reason: "r".into(),
        }
    }

    #[test]
    fn most_restrictive_wins_and_allow_never_overrides_a_guard() {
        let op = Operation {
            name: "sync".into(),
            object: "backup:a".into(),
            project: Some("a".into()),
        };
        let guard = Verdict {
            rule: "backup.source-empty".into(),
            effect: Effect::Deny,
            reason: "empty".into(),
            unblock: None,
        };
        let rules = [rule(Some("sync"), None, None, RuleEffect::Allow)];
        let (e, reasons) = evaluate(&op, vec![guard], &rules, &ident(ActorKind::Human));
        assert_eq!(e, Effect::Deny);
        assert_eq!(reasons.len(), 2);
        assert_eq!(reasons[1].rule, "user:1");
    }

    #[test]
    fn rules_match_on_operation_prefix_actor_kind_and_project() {
        let op = Operation {
            name: "sandbox.remove".into(),
            object: "sandbox:a".into(),
            project: Some("a".into()),
        };
        let rules = [
            rule(Some("sandbox.*"), Some("agent"), None, RuleEffect::Deny),
            rule(Some("sync"), None, None, RuleEffect::Deny),
            rule(None, None, Some("b"), RuleEffect::Deny),
            rule(
                Some("sandbox.*"),
                Some("human"),
                Some("a"),
                RuleEffect::ReviewRequired,
            ),
        ];
        let (e, reasons) = evaluate(&op, vec![], &rules, &ident(ActorKind::Human));
        assert_eq!(e, Effect::ReviewRequired);
        assert_eq!(
            reasons.iter().map(|r| r.rule.as_str()).collect::<Vec<_>>(),
            ["user:4"]
        );
        let (e, _) = evaluate(&op, vec![], &rules, &ident(ActorKind::Agent));
        assert_eq!(e, Effect::Deny);
        let (e, _) = evaluate(&op, vec![], &[], &ident(ActorKind::Agent));
        assert_eq!(e, Effect::Allow);
    }
}
