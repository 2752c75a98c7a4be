//! Properties of the compatibility engine on generated schemas: every schema is compatible with
//! itself in every mode; FORWARD is BACKWARD of the swapped pair; FULL is both; and a schema is
//! always BACKWARD-compatible with a widened copy of itself (a constraint removed).

use proptest::prelude::*;
use repoman_realm::compat::{Mode, Verdict, analyze};
use serde_json::{Value, json};

fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(json!({"type": "string"})),
        (0u64..20).prop_map(|n| json!({"type": "string", "maxLength": n})),
        (0u64..20).prop_map(|n| json!({"type": "string", "minLength": n})),
        Just(json!({"type": "integer"})),
        Just(json!({"type": "number"})),
        (-5i64..5, 5i64..20)
            .prop_map(|(a, b)| json!({"type": "integer", "minimum": a, "maximum": b})),
        Just(json!({"type": "boolean"})),
        Just(json!({"type": "null"})),
        Just(json!({"enum": ["a", "b", "c"]})),
        Just(json!({"const": 1})),
        Just(json!(true)),
        Just(json!({})),
    ]
}

fn schema() -> impl Strategy<Value = Value> {
    leaf().prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            (
                prop::collection::btree_map("[a-d]", inner.clone(), 0..4),
                any::<bool>(),
                prop::collection::vec("[a-d]", 0..2)
            )
                .prop_map(|(props, closed, required)| {
                    let mut s =
                        json!({"type": "object", "properties": props, "required": required});
                    if closed {
                        s["additionalProperties"] = json!(false);
                    }
                    s
                }),
            inner
                .clone()
                .prop_map(|i| json!({"type": "array", "items": i})),
            prop::collection::vec(inner.clone(), 1..3).prop_map(|v| json!({"oneOf": v})),
            prop::collection::vec(inner.clone(), 1..3).prop_map(|v| json!({"anyOf": v})),
            prop::collection::vec(inner.clone(), 1..3).prop_map(|v| json!({"allOf": v})),
            inner.prop_map(|i| json!({"not": i})),
        ]
    })
}

/// Drops one constraint somewhere: the result accepts at least what the input accepted.
fn widen(v: &Value) -> Value {
    match v {
        Value::Object(m) => {
            let mut m = m.clone();
            for k in [
                "maxLength",
                "minLength",
                "minimum",
                "maximum",
                "required",
                "enum",
                "const",
            ] {
                if m.remove(k).is_some() {
                    return Value::Object(m);
                }
            }
            if let Some(Value::Object(props)) = m.get("properties").cloned() {
                let mut props = props;
                if let Some(k) = props.keys().next().cloned() {
                    let w = widen(&props[&k]);
                    props.insert(k, w);
                    m.insert("properties".into(), Value::Object(props));
                }
            } else if let Some(items) = m.get("items").cloned() {
                m.insert("items".into(), widen(&items));
            }
            Value::Object(m)
        }
        other => other.clone(),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn a_schema_is_compatible_with_itself(s in schema()) {
        // Wrapped in `allOf` (and behind a `$ref`) so no identical-subtree shortcut applies.
        let wrapped = json!({"allOf": [{"$ref": "#/$defs/s"}], "$defs": {"s": s.clone()}});
        for (a, b) in [(&s, &wrapped), (&wrapped, &s)] {
            let r = analyze(a, b).expect("analysis");
            for mode in [Mode::Backward, Mode::Forward, Mode::Full] {
                prop_assert_ne!(r.report(mode).verdict, Verdict::Breaking, "{} vs {}: {:?}", a, b, r.changes);
            }
        }
    }

    #[test]
    fn forward_is_swapped_backward_and_full_is_both(a in schema(), b in schema()) {
        let there = analyze(&a, &b).expect("analysis");
        let back = analyze(&b, &a).expect("analysis");
        let fwd = there.report(Mode::Forward).verdict == Verdict::Breaking;
        prop_assert_eq!(fwd, back.report(Mode::Backward).verdict == Verdict::Breaking);
        let full = there.report(Mode::Full).verdict == Verdict::Breaking;
        prop_assert_eq!(full, fwd || there.report(Mode::Backward).verdict == Verdict::Breaking);
    }

    #[test]
    fn removing_a_leaf_constraint_never_breaks_backward(s in schema()) {
        // `not` flips the direction, so only schemas without it are widened this simply.
        prop_assume!(!s.to_string().contains("\"not\""));
        let w = widen(&s);
        let r = analyze(&s, &w).expect("analysis").report(Mode::Backward);
        prop_assert_ne!(r.verdict, Verdict::Breaking, "{} -> {}: {:?}", s, w, r.changes);
    }
}

/// Small JSON documents over the names and values the generated schemas use.
fn document() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(json!(null)),
        any::<bool>().prop_map(|b| json!(b)),
        (-6i64..25).prop_map(|n| json!(n)),
        Just(json!(1.5)),
        "[abc]{0,3}".prop_map(|s| json!(s)),
        "[a-z]{9,22}".prop_map(|s| json!(s)),
    ];
    leaf.prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..3).prop_map(Value::Array),
            prop::collection::btree_map("[a-e]", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4096))]

    /// The semantic profile's promise: when some document is valid under the old schema and
    /// invalid under the new one (a JSON Schema validator decides), BACKWARD is not `compatible`.
    #[test]
    fn a_document_that_stops_validating_is_never_compatible(
        old in schema(),
        new in schema(),
        docs in prop::collection::vec(document(), 8),
    ) {
        let (Ok(vo), Ok(vn)) = (jsonschema::validator_for(&old), jsonschema::validator_for(&new)) else {
            return Ok(());
        };
        let Some(witness) = docs.iter().find(|d| vo.is_valid(d) && !vn.is_valid(d)) else {
            return Ok(());
        };
        let r = analyze(&old, &new).expect("analysis").report(Mode::Backward);
        prop_assert_ne!(r.verdict, Verdict::Compatible, "{} -> {} rejects {}: {:?}", old, new, witness, r.changes);
    }
}
