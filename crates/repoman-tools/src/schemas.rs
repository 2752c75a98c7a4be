//! The JSON Schemas of the `data` of every event the toolchain domain produces, for
//! `repoman_state::schemas::register_all` (appends are validated against them).

use repoman_state::schemas::Schema;
use serde_json::json;

/// The event types of this domain: discoveries (`tools scan`) and manifest edits
/// (`tools pin|unpin`, object `tool:NAME`).
pub const EVENT_TYPES: [&str; 3] = ["tool.discovered", "tool.pinned", "tool.unpinned"];

/// One schema per [`EVENT_TYPES`] entry.
pub fn schemas() -> Vec<Schema> {
    let edit = |verb: &str| {
        json!({
            "type": "object",
            "required": ["file", "created"],
            "properties": {
                "file": {"type": "string", "description": format!("the manifest the tool was {verb} in")},
                "created": {"type": "boolean", "description": "whether the file was created"}
            }
        })
    };
    vec![
        Schema::event_data(
            "tool.discovered",
            "A tool install found by `repoman tools scan`",
            json!({
                "type": "object",
                "required": ["path", "version", "category", "ghost", "origin"],
                "properties": {
                    "path": {"type": "string"},
                    "version": {"type": ["string", "null"]},
                    "category": {"type": "string"},
                    "ghost": {"type": "boolean"},
                    "origin": {"type": "object", "required": ["kind"]}
                }
            }),
        ),
        Schema::event_data(
            "tool.pinned",
            "`repoman tools pin` wrote a manifest",
            edit("pinned"),
        ),
        Schema::event_data(
            "tool.unpinned",
            "`repoman tools unpin` wrote a manifest",
            edit("unpinned"),
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_event_type_has_exactly_one_schema() {
        let types: Vec<String> = schemas().into_iter().map(|s| s.applies_to).collect();
        assert_eq!(types, EVENT_TYPES);
    }
}
