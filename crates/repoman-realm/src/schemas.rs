//! JSON Schemas of the realm files, published through the state crate's schema registry by the CLI
//! (`repoman schema show realm.contract`). Kept by hand next to [`crate::model`]; a test checks the
//! model's own output against them.

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
