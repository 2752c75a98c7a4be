//! The SNIF formats' JSON Schemas, registered with `repoman_state::schemas` like every other
//! repoman format: the manifest (`repoman-snif.toml/v1`), each interface's input and output
//! (`snif.<interface>.{input,output}/v1`) and the data of `snif.installed`, `snif.granted` and
//! `snif.removed`.

use repoman_state::schemas::{self, Schema, SchemaKind};
use serde_json::Value;

/// Schema id of `snif.toml`.
pub const MANIFEST_SCHEMA_ID: &str = "repoman-snif.toml/v1";

fn parse(text: &str) -> Value {
    // Embedded and tested to parse; a broken one would reject everything, never accept.
    serde_json::from_str(text).unwrap_or(Value::Bool(false))
}

/// Every SNIF schema.
pub fn all() -> Vec<Schema> {
    let s = |id: &str, title: &str, kind, applies_to: &str, text: &str| Schema {
        id: id.to_owned(),
        title: title.to_owned(),
        kind,
        applies_to: applies_to.to_owned(),
        json: parse(text),
    };
    let io = |id: &str, title: &str, text: &str| {
        s(id, title, SchemaKind::Interface, "snif call payload", text)
    };
    vec![
        s(
            MANIFEST_SCHEMA_ID,
            "A SNIF manifest",
            SchemaKind::Config,
            "snif.toml",
            include_str!("../schemas/snif.toml.json"),
        ),
        io(
            "snif.contract-validator.input/v1",
            "Input of a contract-validator SNIF",
            include_str!("../schemas/contract-validator.input.json"),
        ),
        io(
            "snif.contract-validator.output/v1",
            "Output of a contract-validator SNIF",
            include_str!("../schemas/contract-validator.output.json"),
        ),
        io(
            "snif.policy-rule.input/v1",
            "Input of a policy-rule SNIF",
            include_str!("../schemas/policy-rule.input.json"),
        ),
        io(
            "snif.policy-rule.output/v1",
            "Output of a policy-rule SNIF",
            include_str!("../schemas/policy-rule.output.json"),
        ),
        io(
            "snif.tool-detector.input/v1",
            "Input of a tool-detector SNIF",
            include_str!("../schemas/tool-detector.input.json"),
        ),
        io(
            "snif.tool-detector.output/v1",
            "Output of a tool-detector SNIF",
            include_str!("../schemas/tool-detector.output.json"),
        ),
        Schema::event_data(
            "snif.installed",
            "A SNIF was installed (or replaced)",
            parse(include_str!("../schemas/event.snif.installed.json")),
        ),
        Schema::event_data(
            "snif.granted",
            "A SNIF's grants changed",
            parse(include_str!("../schemas/event.snif.granted.json")),
        ),
        Schema::event_data(
            "snif.removed",
            "A SNIF was removed",
            parse(include_str!("../schemas/event.snif.removed.json")),
        ),
    ]
}

/// Register every SNIF schema (idempotent; the CLI calls it once before dispatch, and the host
/// calls it before it validates a payload).
pub fn register() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| all().into_iter().for_each(schemas::register));
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_schema_parses_and_compiles() {
        for s in super::all() {
            assert!(s.json.is_object(), "{} does not parse", s.id);
        }
        super::register();
        for s in super::all() {
            // Validating anything compiles the schema; a broken schema is an error here.
            let r = repoman_state::schemas::validate(&s.id, &serde_json::json!({}), "x");
            if let Err(e) = r {
                assert!(!e.to_string().contains("itself"), "{}: {e}", s.id);
            }
        }
    }
}
