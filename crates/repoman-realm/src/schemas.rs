//! JSON Schemas of the realm files and of the `data` of every event this crate produces,
//! published through the state crate's schema registry ([`registered`], which the CLI hands to
//! `repoman_state::schemas::register_all`; `repoman schema show realm.contract`). Kept by hand
//! next to [`crate::model`] and [`crate::realm`]; tests check the model's own output and the
//! events the realm writes against them.

use repoman_state::schemas::{Schema, SchemaKind};
use serde_json::{Value, json};

/// One published schema: id, title, the file it governs, the schema.
#[derive(Debug, Clone)]
pub struct FileSchema {
    pub id: &'static str,
    pub title: &'static str,
    pub applies_to: &'static str,
    pub json: Value,
}

fn string_list() -> Value {
    json!({"type": "array", "items": {"type": "string"}})
}

pub fn all() -> Vec<FileSchema> {
    let draft = "https://json-schema.org/draft/2020-12/schema";
    vec![
        FileSchema {
            id: "realm.realm",
            title: "Realm metadata",
            applies_to: "realm.yaml",
            json: json!({"$schema": draft, "title": "realm.yaml", "type": "object", "additionalProperties": false,
                "required": ["name"],
                "properties": {"name": {"type": "string", "minLength": 1}, "version": {"type": "string"},
                    "governance": {"type": "object"}, "trust": {"type": "object"}}}),
        },
        FileSchema {
            id: "realm.repo",
            title: "A repository registered in a realm",
            applies_to: "repos/<repo>.yaml",
            json: json!({"$schema": draft, "title": "repos/<repo>.yaml", "type": "object", "additionalProperties": false,
                "required": ["name"],
                "properties": {"name": {"type": "string", "minLength": 1}, "path": {"type": "string"},
                    "url": {"type": "string"}, "maintainers": string_list()}}),
        },
        FileSchema {
            id: "realm.domain",
            title: "A coordination domain: one provider, its consumers",
            applies_to: "domains/<domain>/domain.yaml",
            json: json!({"$schema": draft, "title": "domain.yaml", "type": "object", "additionalProperties": false,
                "required": ["name", "provider"],
                "properties": {"name": {"type": "string", "minLength": 1}, "provider": {"type": "string"},
                    "consumers": string_list(), "description": {"type": "string"}}}),
        },
        FileSchema {
            id: "realm.contract",
            title: "A contract: JSON Schema, semver, owner, compatibility, validation hooks, evolution",
            applies_to: "domains/<domain>/contracts/<name>.yaml",
            json: json!({"$schema": draft, "title": "contract", "type": "object", "additionalProperties": false,
            "required": ["name", "version", "owner", "schema"],
            "properties": {
                "name": {"type": "string", "minLength": 1},
                "version": {"type": "string", "pattern": "^\\d+\\.\\d+\\.\\d+"},
                "owner": {"type": "string"},
                "compatibility": {"type": "object", "additionalProperties": false,
                    "properties": {"backwards": {"type": "boolean"}, "forwards": {"type": "boolean"}, "transitive": {"type": "boolean"}}},
                "schema": {"type": ["object", "boolean"]},
                "validation": {"type": "object", "additionalProperties": false,
                    "properties": {"exporter": {"type": "string"}, "importer": {"type": "string"}, "ci_only": string_list()}},
                "evolution": {"type": "array", "items": {"type": "object", "additionalProperties": false,
                    "required": ["version"],
                    "properties": {"version": {"type": "string"}, "changes": string_list(), "compatible": {"type": "boolean"}}}}
            }}),
        },
        FileSchema {
            id: "realm.binding",
            title: "What one repo exports and imports in a domain",
            applies_to: "domains/<domain>/bindings/<repo>.yaml",
            json: json!({"$schema": draft, "title": "binding", "type": "object", "additionalProperties": false,
            "required": ["repo", "role"],
            "properties": {
                "repo": {"type": "string"},
                "role": {"enum": ["provider", "consumer", "both"]},
                "exports": {"type": "array", "items": {"type": "object", "additionalProperties": false, "required": ["contract"],
                    "properties": {"contract": {"type": "string"}, "source_files": string_list(),
                        "recorded_version": {"type": "string"},
                        "source_digests": {"type": "object", "additionalProperties": {"type": "string"}}}}},
                "imports": {"type": "array", "items": {"type": "object", "additionalProperties": false, "required": ["contract", "version"],
                    "properties": {"contract": {"type": "string"}, "version": {"type": "string"}, "binding": {"type": "string"},
                        "status": {"type": "string"}, "resolved_version": {"type": "string"}}}}
            }}),
        },
        FileSchema {
            id: "realm.membership",
            title: "A repo's realm membership",
            applies_to: "<repo>/.repoman/realm.yaml",
            json: json!({"$schema": draft, "title": ".repoman/realm.yaml", "type": "object", "additionalProperties": false,
                "required": ["realm", "path", "repo"],
                "properties": {"realm": {"type": "string"}, "path": {"type": "string"}, "repo": {"type": "string"}}}),
        },
    ]
}

/// Every schema this crate owns, as the state crate registers them: the realm files, then the
/// data of each event type a realm change or check produces.
pub fn registered() -> Vec<Schema> {
    let mut out: Vec<Schema> = all()
        .into_iter()
        .map(|s| Schema {
            id: s.id.into(),
            title: s.title.into(),
            kind: SchemaKind::Config,
            applies_to: s.applies_to.into(),
            json: s.json,
        })
        .collect();
    out.extend(event_schemas());
    out
}

/// The event types this crate (and the `realm` commands on its behalf) write.
pub const EVENT_TYPES: [&str; 12] = [
    "realm.created",
    "realm.joined",
    "realm.left",
    "realm.domain.created",
    "realm.trusted",
    "realm.cache.cleared",
    "realm.checked",
    "contract.added",
    "contract.bumped",
    "contract.checked",
    "binding.exported",
    "binding.imported",
];

fn event_schemas() -> Vec<Schema> {
    let string = json!({"type": "string"});
    // `null` when the realm repository had nothing to commit.
    let commit = json!({"type": ["string", "null"]});
    let object = |required: &[&str], properties: Value| json!({"type": "object", "required": required, "properties": properties});
    vec![
        Schema::event_data(
            "realm.created",
            "A realm repository was created (`realm admin init`)",
            object(
                &["path", "commit"],
                json!({"path": string, "commit": commit}),
            ),
        ),
        Schema::event_data(
            "realm.joined",
            "A repository joined the realm",
            object(
                &["repo", "path", "commit"],
                json!({"repo": string, "path": string, "commit": commit}),
            ),
        ),
        Schema::event_data(
            "realm.left",
            "A repository left the realm",
            object(
                &["repo", "commit"],
                json!({"repo": string, "commit": commit}),
            ),
        ),
        Schema::event_data(
            "realm.domain.created",
            "A domain was created: the first repo provides, the others consume",
            object(
                &["repos", "commit"],
                json!({"repos": string_list(), "commit": commit}),
            ),
        ),
        Schema::event_data(
            "realm.trusted",
            "This machine trusts the realm's hooks at a commit",
            object(
                &["commit", "hooks"],
                json!({"commit": string, "hooks": string_list()}),
            ),
        ),
        Schema::event_data(
            "realm.cache.cleared",
            "A repository's realm check cache was removed",
            json!({"type": "object"}),
        ),
        Schema::event_data(
            "realm.checked",
            "A realm check's outcome",
            object(
                &["ok", "modes", "errors", "warnings"],
                json!({"ok": {"type": "boolean"}, "modes": string_list(),
                       "errors": {"type": "integer"}, "warnings": {"type": "integer"},
                       "context": string, "strict": {"type": "boolean"}}),
            ),
        ),
        Schema::event_data(
            "contract.added",
            "A contract was added to a domain",
            object(
                &["version", "owner", "commit"],
                json!({"version": string, "owner": string, "commit": commit}),
            ),
        ),
        Schema::event_data(
            "contract.bumped",
            "A contract was published at a new version",
            object(
                &["from", "to", "breaking", "mode", "commit"],
                json!({"from": string, "to": string, "breaking": {"type": "boolean"},
                       "mode": string, "commit": commit}),
            ),
        ),
        Schema::event_data(
            "contract.checked",
            "One contract compatibility comparison",
            object(
                &["from", "to", "mode", "verdict"],
                json!({"from": string, "to": string, "mode": string,
                       "verdict": {"enum": ["compatible", "warning", "breaking"]}}),
            ),
        ),
        Schema::event_data(
            "binding.exported",
            "A repository exports a contract",
            object(
                &["repo", "version", "commit"],
                json!({"repo": string, "version": string, "commit": commit}),
            ),
        ),
        Schema::event_data(
            "binding.imported",
            "A repository imports a contract within a version range",
            object(
                &["repo", "range", "resolved_version", "commit"],
                json!({"repo": string, "range": string, "resolved_version": string,
                       "commit": commit}),
            ),
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_event_type_has_exactly_one_schema() {
        let ids: Vec<String> = registered()
            .into_iter()
            .filter(|s| s.kind == SchemaKind::EventData)
            .map(|s| s.applies_to)
            .collect();
        assert_eq!(ids, EVENT_TYPES);
    }
}
