//! SNIFs: repoman's extensions, as WebAssembly modules in a deny-by-default sandbox
//! (docs/snif.md).
//!
//! - [`manifest`]: `snif.toml`, what a SNIF is and what it asks for.
//! - [`interface`]: the three interfaces (`contract-validator`, `policy-rule`, `tool-detector`)
//!   and their JSON payloads, with schemas registered by [`schemas`].
//! - [`host`]: the engine (wasmi), the ABI, fuel/deadline/memory/output limits, the module cache.
//! - [`wasi`]: the read-only WASI subset a SNIF may import, each function behind a capability.
//! - [`store`]: installed SNIFs on disk (content-addressed), grants, install/grant/remove as
//!   gated events.
//!
//! Invariant: a SNIF touches nothing of the host but the bytes it is given, unless its manifest
//! asks for a capability and the user granted it; every call ends (result or error naming the
//! SNIF) within its fuel budget and deadline.
//!
//! Library code never prints, prompts or exits.

pub mod error;
pub mod host;
pub mod interface;
pub mod manifest;
pub mod schemas;
pub mod store;
pub mod wasi;

pub use error::SnifError;
pub use host::{CallOutput, Grants, Host, Snif};
pub use interface::Interface;
pub use manifest::{Capability, Limits, Manifest};
pub use store::SnifStore;

use interface::{
    DetectorInput, DetectorOutput, PolicyEffect, PolicyInput, PolicyOutput, ValidatorInput,
    ValidatorOutput,
};

/// Run a `contract-validator` SNIF.
pub fn validate_contract(
    host: &Host,
    snif: &Snif,
    input: &ValidatorInput,
) -> Result<ValidatorOutput, SnifError> {
    host.call_typed(snif, Interface::ContractValidator, input)
}

/// Run a `policy-rule` SNIF.
pub fn evaluate_policy(
    host: &Host,
    snif: &Snif,
    input: &PolicyInput,
) -> Result<PolicyOutput, SnifError> {
    host.call_typed(snif, Interface::PolicyRule, input)
}

/// Run a `tool-detector` SNIF.
pub fn detect_tool(
    host: &Host,
    snif: &Snif,
    input: &DetectorInput,
) -> Result<DetectorOutput, SnifError> {
    host.call_typed(snif, Interface::ToolDetector, input)
}

/// The policy gate's SNIF hook: every installed `policy-rule` SNIF's verdict on `op`, as
/// `snif:NAME` verdicts. A SNIF that fails (trap, budget, malformed output) yields a `deny`
/// naming it: a broken rule must not silently allow.
pub fn policy_verdicts(
    host: &Host,
    snifs: &[Snif],
    op: &repoman_state::Operation,
    identity: &repoman_state::Identity,
    details: &serde_json::Map<String, serde_json::Value>,
) -> Vec<repoman_state::Verdict> {
    use repoman_state::{Effect, Verdict};
    let input = PolicyInput {
        operation: op.name.clone(),
        object: op.object.clone(),
        project: op.project.clone(),
        actor: identity.actor.clone(),
        actor_kind: identity.actor_kind.as_str().to_owned(),
        profile: identity.profile.clone(),
        details: details.clone().into_iter().collect(),
    };
    snifs
        .iter()
        .filter(|s| s.interface == Interface::PolicyRule)
        .map(|s| match evaluate_policy(host, s, &input) {
            Ok(out) => Verdict {
                rule: format!("snif:{}", s.name),
                effect: match out.effect {
                    PolicyEffect::Allow => Effect::Allow,
                    PolicyEffect::Deny => Effect::Deny,
                    PolicyEffect::ReviewRequired => Effect::ReviewRequired,
                },
                reason: out.reason,
                unblock: None,
            },
            Err(e) => Verdict {
                rule: format!("snif:{}", s.name),
                effect: Effect::Deny,
                reason: format!("the policy rule failed, so it denies: {e}"),
                unblock: Some(format!("repoman snif inspect {}", s.name)),
            },
        })
        .collect()
}

/// The installed `policy-rule` SNIFs as the policy gate's extension
/// ([`repoman_state::policy::PolicyExtension`]): every decision of a face that opens its state
/// with it ([`policy_extension`]) consults them after the built-ins and the TOML rules. They are
/// read on the first decision, so a command that decides nothing pays nothing.
#[derive(Debug)]
pub struct SnifPolicy {
    store: SnifStore,
    loaded: std::sync::OnceLock<Loaded>,
}

#[derive(Debug)]
enum Loaded {
    /// No `policy-rule` SNIF is installed.
    Nothing,
    Rules {
        host: Host,
        snifs: Vec<Snif>,
    },
    /// The store could not be read: every decision is denied with the reason (a rule that
    /// cannot be consulted must not silently allow), except the `snif.*` operations, which
    /// manage the SNIFs themselves.
    Unreadable(String),
}

impl SnifPolicy {
    fn loaded(&self) -> &Loaded {
        self.loaded
            .get_or_init(|| match self.store.load_all(Interface::PolicyRule) {
                Ok(snifs) if snifs.is_empty() => Loaded::Nothing,
                Ok(snifs) => match Host::new() {
                    Ok(host) => Loaded::Rules { host, snifs },
                    Err(e) => Loaded::Unreadable(e.to_string()),
                },
                Err(e) => Loaded::Unreadable(e.to_string()),
            })
    }
}

impl repoman_state::policy::PolicyExtension for SnifPolicy {
    fn verdicts(
        &self,
        op: &repoman_state::Operation,
        identity: &repoman_state::Identity,
    ) -> Vec<repoman_state::Verdict> {
        match self.loaded() {
            Loaded::Nothing => Vec::new(),
            Loaded::Rules { host, snifs } => {
                policy_verdicts(host, snifs, op, identity, &serde_json::Map::new())
            }
            Loaded::Unreadable(_) if op.name.starts_with("snif.") => Vec::new(),
            Loaded::Unreadable(e) => vec![repoman_state::Verdict {
                rule: "snif".into(),
                effect: repoman_state::Effect::Deny,
                reason: format!("the installed policy-rule SNIFs cannot be read: {e}"),
                unblock: Some("repoman snif list".into()),
            }],
        }
    }
}

/// The policy extension for the SNIFs installed under `paths` (read on the first decision).
pub fn policy_extension(
    paths: &repoman_core::Paths,
) -> Option<std::sync::Arc<dyn repoman_state::policy::PolicyExtension>> {
    Some(std::sync::Arc::new(SnifPolicy {
        store: SnifStore::new(paths),
        loaded: std::sync::OnceLock::new(),
    }))
}
