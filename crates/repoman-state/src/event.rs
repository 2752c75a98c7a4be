//! Events: the unit of the append-only log (`repoman.event/v1`, DESIGN.md §4).
//!
//! Invariants:
//! - `hash` is the lowercase hex BLAKE3 of the event's *canonical JSON* without the `hash` key:
//!   object keys sorted by byte order at every depth, no insignificant whitespace, strings and
//!   numbers as serde_json writes them. The canonical form does not depend on the order in which
//!   a writer happened to emit keys, so any tool can re-derive the hash.
//! - `prev` is the `hash` of the event with `seq - 1`; the first event has [`GENESIS_PREV`].
//! - `seq` starts at 1 and increases by exactly one per event across all segments.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The `prev` of the first event in a log.
pub const GENESIS_PREV: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// The schema id of one log line.
pub const EVENT_SCHEMA_ID: &str = "repoman.event/v1";

/// An event to append: what happened, to which object, with typed data. The log fills in the
/// sequence number, id, time, actor, device, profile and chain hashes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewEvent {
    #[serde(rename = "type")]
    pub type_: String,
    pub object: String,
    pub data: Value,
}

impl NewEvent {
    /// Build an event; `data` is usually a `serde_json::json!({...})` object.
    pub fn new(type_: impl Into<String>, object: impl Into<String>, data: Value) -> Self {
        Self {
            type_: type_.into(),
            object: object.into(),
            data,
        }
    }
}

/// A recorded event, exactly as one line of the log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub seq: u64,
    pub id: uuid::Uuid,
    pub at: String,
    #[serde(rename = "type")]
    pub type_: String,
    pub object: String,
    pub actor: String,
    pub device: String,
    pub profile: String,
    pub data: Value,
    pub prev: String,
    pub hash: String,
}

impl Event {
    /// The hash this event should carry: BLAKE3 over its canonical JSON without `hash`.
    pub fn compute_hash(&self) -> String {
        let mut buf = Vec::with_capacity(256);
        self.write_canonical_without_hash(&mut buf);
        blake3::hash(&buf).to_hex().to_string()
    }

    /// Whether `hash` matches the content.
    pub fn hash_is_valid(&self) -> bool {
        self.compute_hash() == self.hash
    }

    /// The kind part of the object id (`project` in `project:alpha`).
    pub fn object_kind(&self) -> &str {
        object_kind(&self.object)
    }

    /// Serialize as one log line (canonical JSON including `hash`, no trailing newline).
    pub fn to_line(&self) -> String {
        let mut buf = Vec::with_capacity(256);
        self.write_canonical(&mut buf, true);
        // Canonical JSON written from `String`s and `Value`s is valid UTF-8 by construction.
        String::from_utf8(buf).unwrap_or_default()
    }

    fn write_canonical_without_hash(&self, out: &mut Vec<u8>) {
        self.write_canonical(out, false);
    }

    // Keys in byte order: actor, at, data, device, hash, id, object, prev, profile, seq, type.
    fn write_canonical(&self, out: &mut Vec<u8>, with_hash: bool) {
        out.push(b'{');
        key(out, "actor", true);
        string(out, &self.actor);
        key(out, "at", false);
        string(out, &self.at);
        key(out, "data", false);
        write_canonical(&self.data, out);
        key(out, "device", false);
        string(out, &self.device);
        if with_hash {
            key(out, "hash", false);
            string(out, &self.hash);
        }
        key(out, "id", false);
        let mut uuid_buf = uuid::Uuid::encode_buffer();
        string(out, self.id.hyphenated().encode_lower(&mut uuid_buf));
        key(out, "object", false);
        string(out, &self.object);
        key(out, "prev", false);
        string(out, &self.prev);
        key(out, "profile", false);
        string(out, &self.profile);
        key(out, "seq", false);
        out.extend_from_slice(self.seq.to_string().as_bytes());
        key(out, "type", false);
        string(out, &self.type_);
        out.push(b'}');
    }
}

/// The kind part of an object id: `project` in `project:alpha`, the whole id if there is no `:`;
/// kinds this version does not know (an older log) are kept ([`ObjectId::kind_str`]).
pub fn object_kind(object: &str) -> &str {
    repoman_core::ObjectId::kind_str(object)
}

fn key(out: &mut Vec<u8>, k: &str, first: bool) {
    if !first {
        out.push(b',');
    }
    string(out, k);
    out.push(b':');
}

fn string(out: &mut Vec<u8>, s: &str) {
    // serde_json's string escaping is the canonical one; writing to a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, s);
}

/// Write `v` as canonical JSON: object keys sorted, no whitespace.
pub fn write_canonical(v: &Value, out: &mut Vec<u8>) {
    match v {
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_unstable_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
            out.push(b'{');
            for (i, (k, val)) in entries.into_iter().enumerate() {
                key(out, k, i == 0);
                write_canonical(val, out);
            }
            out.push(b'}');
        }
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_canonical(item, out);
            }
            out.push(b']');
        }
        scalar => {
            let _ = serde_json::to_writer(&mut *out, scalar);
        }
    }
}

/// Canonical JSON of any value, as a string.
pub fn canonical_json(v: &Value) -> String {
    let mut buf = Vec::new();
    write_canonical(v, &mut buf);
    String::from_utf8(buf).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sample() -> Event {
        Event {
            seq: 1,
            id: uuid::Uuid::nil(),
            at: "2026-01-02T03:04:05.000Z".into(),
            type_: "project.registered".into(),
            object: "project:alpha".into(),
            actor: "human:u@h".into(),
            device: "dev".into(),
            profile: "default".into(),
            data: json!({"z": 1, "a": {"y": [1, {"c": 2, "b": 3}], "x": "é\n"}}),
            prev: GENESIS_PREV.into(),
            hash: String::new(),
        }
    }

    #[test]
    fn canonical_json_sorts_keys_and_has_no_whitespace() {
        let v = json!({"b": 1, "a": [ {"d": null, "c": true} ], "é": "x"});
        assert_eq!(
            canonical_json(&v),
            r#"{"a":[{"c":true,"d":null}],"b":1,"é":"x"}"#
        );
    }

    #[test]
    fn line_round_trips_and_hash_is_independent_of_key_order() {
        let mut e = sample();
        e.hash = e.compute_hash();
        let line = e.to_line();
        let back: Event = serde_json::from_str(&line).unwrap();
        assert_eq!(back, e);
        assert!(back.hash_is_valid());
        // Re-serialising with a different key order must not change the hash.
        let mut reordered: serde_json::Map<String, Value> = serde_json::from_str(&line).unwrap();
        reordered.remove("hash");
        let v = Value::Object(reordered.into_iter().rev().collect());
        assert_eq!(
            blake3::hash(canonical_json(&v).as_bytes())
                .to_hex()
                .to_string(),
            e.hash
        );
    }

    #[test]
    fn any_field_change_breaks_the_hash() {
        let mut e = sample();
        e.hash = e.compute_hash();
        let mut t = e.clone();
        t.actor = "human:mallory@h".into();
        assert!(!t.hash_is_valid());
        let mut t = e.clone();
        t.data = json!({"z": 2});
        assert!(!t.hash_is_valid());
    }
}
