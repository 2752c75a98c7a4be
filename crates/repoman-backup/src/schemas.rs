//! JSON Schemas of the backup engine's event data and of its manifest format, registered with the
//! state crate's schema registry (so `repoman schema list` shows them and appends are validated).
//! [`schemas`] lists them (the CLI registers them with every other crate's); [`register`] is
//! idempotent.

use repoman_state::schemas::{self, Schema, SchemaKind};
use serde_json::{Value, json};

fn object(required: &[&str], properties: Value) -> Value {
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "required": required,
        "properties": properties,
    })
}

/// The event types of the backup domain (written by the sync, verify, restore and conflicts
/// commands), one schema each in [`schemas`].
pub const EVENT_TYPES: [&str; 7] = [
    "backup.synced",
    "sync.started",
    "sync.cancelled",
    "sync.failed",
    "backup.verified",
    "backup.restored",
    "backup.manifest.updated",
];

/// Register every schema this crate owns ([`schemas`]).
pub fn register() {
    for s in schemas() {
        schemas::register(s);
    }
}

/// Every schema this crate owns: its events' data and the manifest formats.
pub fn schemas() -> Vec<Schema> {
    let mut out = Vec::new();
    let project = json!({"type": "string"});
    let root = json!({"type": "string", "pattern": "^[0-9a-f]{64}$"});
    let count = json!({"type": "integer", "minimum": 0});
    out.push(Schema::event_data(
        "backup.synced",
        "a completed sync: the manifest root of what landed on the backup",
        object(
            &["project", "root", "plan", "rsync"],
            json!({
                "project": project, "root": root, "manifest": {"type": ["string", "null"]},
                "plan": {"type": "object"}, "rsync": {"type": "object"}, "ran": {"type": "boolean"},
                "counts": {"type": "object"}, "manifest_stats": {"type": "object"},
                "manifest_source": {"enum": ["extended", "rebuilt"]},
                "duration_ms": count, "decision_seq": {"type": ["integer", "null"]},
            }),
        ),
    ));
    out.push(Schema::event_data(
        "sync.started",
        "rsync's real run of a sync is about to change the backup; until the matching backup.synced, the last manifest may not describe the backup",
        object(
            &["project"],
            json!({"project": project, "files": count, "bytes": count, "deletes": count}),
        ),
    ));
    out.push(Schema::event_data(
        "sync.cancelled",
        "a sync stopped by Ctrl-C; rsync's process group was stopped",
        object(
            &["project"],
            json!({"project": project, "plan": {"type": "object"}, "note": {"type": "string"}}),
        ),
    ));
    out.push(Schema::event_data(
        "sync.failed",
        "a sync whose rsync run failed, with rsync's exit code explained",
        object(
            &["project", "rsync_exit", "explanation"],
            json!({
                "project": project, "rsync_exit": {"type": "integer"}, "explanation": {"type": "string"}, "error": {"type": "string"},
            }),
        ),
    ));
    out.push(Schema::event_data(
        "backup.verified",
        "a backup copy compared with its last manifest",
        object(
            &["project", "mode", "root", "clean"],
            json!({
                "project": project, "mode": {"enum": ["quick", "full"]}, "root": root, "synced_seq": count,
                "clean": {"type": "boolean"}, "checked": count, "missing": count, "changed": count, "extra": count,
            }),
        ),
    ));
    out.push(Schema::event_data(
        "backup.restored",
        "a restore from the backup and whether it was proven against the manifest",
        object(
            &["project", "target", "root", "verified"],
            json!({
                "project": project, "target": {"type": "string"}, "paths": {"type": "array"}, "root": root,
                "restored_root": {"type": ["string", "null"]}, "synced_seq": count, "verified": {"type": "boolean"},
                "missing": count, "changed": count, "extra": count,
            }),
        ),
    ));
    out.push(Schema::event_data(
        "backup.manifest.updated",
        "the last manifest patched after a conflict resolution changed the backup copy",
        object(
            &["project", "root", "previous_root"],
            json!({
                "project": project, "root": root, "previous_root": root, "reason": {"type": "string"}, "conflict": {"type": "string"},
                "stale": {"type": "boolean"},
            }),
        ),
    ));
    let entry = json!({
        "type": "object",
        "required": ["name", "type"],
        "properties": {
            "name": {"type": "string", "minLength": 1}, "type": {"enum": ["file", "dir", "symlink", "other"]},
            "tree": {"type": "string", "pattern": "^[0-9a-f]{64}$"},
            "mode": {"type": "integer", "minimum": 0, "maximum": 4095}, "size": count,
            "mtime": {"type": "integer"}, "mtime_nsec": {"type": "integer", "minimum": 0},
            "blake3": {"type": "string", "pattern": "^[0-9a-f]{64}$"}, "target": {"type": "string"},
        },
        "additionalProperties": false,
    });
    out.push(Schema {
        id: "repoman.manifest/v1".into(),
        title: "backup content manifest root record (the Merkle root of the synced tree)".into(),
        kind: SchemaKind::Manifest,
        applies_to: "manifests/<root>.json".into(),
        json: json!({
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "$id": "repoman.manifest/v1",
            "type": "object",
            "required": ["schema", "project", "root", "created_at", "counts"],
            "properties": {
                "schema": {"const": "repoman.manifest/v1"}, "project": {"type": "string"}, "root": root,
                "created_at": {"type": "string"}, "counts": {"type": "object"},
            },
        }),
    });
    out.push(Schema {
        id: crate::manifest::TREE_FORMAT.into(),
        title: "one directory of a backup manifest, named by its Merkle node hash".into(),
        kind: SchemaKind::Manifest,
        applies_to: "manifests/trees/<xx>/<hash>.json".into(),
        json: json!({
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "$id": crate::manifest::TREE_FORMAT,
            "type": "object",
            "required": ["schema", "mode", "entries"],
            "properties": {
                "schema": {"const": crate::manifest::TREE_FORMAT},
                "mode": {"type": "integer", "minimum": 0, "maximum": 4095},
                "entries": {"type": "array", "items": entry},
            },
        }),
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stored_manifest_satisfies_the_registered_schema() {
        register();
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("f"), b"x").unwrap();
        std::os::unix::fs::symlink("f", d.path().join("l")).unwrap();
        let m = crate::manifest::build_full(
            "p",
            d.path(),
            &Default::default(),
            &Default::default(),
            "t".into(),
        )
        .unwrap();
        let out = tempfile::tempdir().unwrap();
        let path = m.store(out.path()).unwrap();
        let v: Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
        schemas::validate("repoman.manifest/v1", &v, "manifest").unwrap();
        let tree = out
            .path()
            .join("trees")
            .join(&m.root[..2])
            .join(format!("{}.json", m.root));
        let t: Value = serde_json::from_slice(&std::fs::read(tree).unwrap()).unwrap();
        schemas::validate(crate::manifest::TREE_FORMAT, &t, "manifest tree").unwrap();
        let mut bad = t.clone();
        bad["entries"][0]["mode"] = json!(99999);
        assert!(schemas::validate(crate::manifest::TREE_FORMAT, &bad, "manifest tree").is_err());
        schemas::validate(
            "event.backup.synced/v1",
            &json!({"project": "p", "root": m.root, "plan": {}, "rsync": {"outcome": "complete"}}),
            "event",
        )
        .unwrap();
    }
}
