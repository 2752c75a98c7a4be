//! repoman's own cases for the compatibility engine: one per rule, recursive `$ref`s, directions.

use repoman_realm::compat::{CompatError, Mode, Verdict, analyze, analyze_with_budget, diff};
use serde_json::{Value, json};

fn verdict(old: Value, new: Value, mode: Mode) -> Verdict {
    diff(&old, &new, mode).expect("analysis").verdict
}

fn kinds(old: Value, new: Value, mode: Mode) -> Vec<(String, String, Verdict)> {
    diff(&old, &new, mode)
        .expect("analysis")
        .changes
        .into_iter()
        .map(|c| (c.pointer, c.kind, c.verdict))
        .collect()
}

#[test]
fn seed_contract_evolution_adding_optional_arrays_is_backward_compatible() {
    let v1 = json!({"type": "object", "required": ["read"], "properties": {"read": {"type": "array", "items": {"type": "string"}}}});
    let v2 = json!({"type": "object", "required": ["read"], "properties": {
        "read": {"type": "array", "items": {"type": "string"}},
        "write": {"type": "array", "items": {"type": "string"}, "default": []}}});
    // Open model: old data may carry `write` with any value; the default makes it a warning (the
    // seed calls it compatible), without a default it breaks.
    assert_eq!(
        verdict(v1.clone(), v2.clone(), Mode::Backward),
        Verdict::Warning
    );
    let mut no_default = v2.clone();
    no_default["properties"]["write"]
        .as_object_mut()
        .expect("object")
        .remove("default");
    assert_eq!(
        verdict(v1.clone(), no_default, Mode::Backward),
        Verdict::Breaking
    );
    let closed = |mut v: Value| {
        v["additionalProperties"] = json!(false);
        v
    };
    let (c1, c2) = (closed(v1), closed(v2));
    assert_eq!(
        verdict(c1.clone(), c2.clone(), Mode::Backward),
        Verdict::Compatible
    );
    assert_eq!(
        verdict(c1.clone(), c2.clone(), Mode::Forward),
        Verdict::Breaking,
        "an old closed reader rejects `write`"
    );
    assert_eq!(
        verdict(c1.clone(), c2.clone(), Mode::Full),
        Verdict::Breaking
    );
    let changes = kinds(c1, c2, Mode::Backward);
    assert!(
        changes.contains(&(
            "#/properties/write".into(),
            "property-added".into(),
            Verdict::Compatible
        )),
        "{changes:?}"
    );
}

#[test]
fn type_widening_and_narrowing() {
    assert_eq!(
        verdict(
            json!({"type": "integer"}),
            json!({"type": "number"}),
            Mode::Backward
        ),
        Verdict::Compatible
    );
    assert_eq!(
        verdict(
            json!({"type": "integer"}),
            json!({"type": "number"}),
            Mode::Forward
        ),
        Verdict::Breaking
    );
    assert_eq!(
        verdict(
            json!({"type": "string"}),
            json!({"type": ["string", "null"]}),
            Mode::Backward
        ),
        Verdict::Compatible
    );
    let ch = kinds(
        json!({"type": "number"}),
        json!({"type": "integer"}),
        Mode::Backward,
    );
    assert_eq!(
        ch,
        vec![("#/type".into(), "type-narrowed".into(), Verdict::Breaking)]
    );
}

#[test]
fn enum_extension_and_removal() {
    let a = json!({"enum": ["red", "green"]});
    let b = json!({"enum": ["red", "green", "blue"]});
    assert_eq!(
        verdict(a.clone(), b.clone(), Mode::Backward),
        Verdict::Compatible
    );
    assert_eq!(
        verdict(b.clone(), a.clone(), Mode::Backward),
        Verdict::Breaking
    );
    let ch = kinds(b, a, Mode::Backward);
    assert_eq!(ch[0].0, "#/enum");
}

#[test]
fn numeric_string_and_array_constraints() {
    assert_eq!(
        verdict(
            json!({"type": "number", "exclusiveMinimum": 0}),
            json!({"type": "number", "minimum": 0}),
            Mode::Backward
        ),
        Verdict::Compatible
    );
    assert_eq!(
        verdict(
            json!({"type": "number", "minimum": 0}),
            json!({"type": "number", "exclusiveMinimum": 0}),
            Mode::Backward
        ),
        Verdict::Breaking
    );
    assert_eq!(
        verdict(
            json!({"type": "integer"}),
            json!({"type": "integer", "multipleOf": 1}),
            Mode::Backward
        ),
        Verdict::Compatible
    );
    assert_eq!(
        verdict(
            json!({"type": "string", "format": "uuid"}),
            json!({"type": "string"}),
            Mode::Backward
        ),
        Verdict::Compatible
    );
    assert_eq!(
        verdict(
            json!({"type": "string"}),
            json!({"type": "string", "format": "uuid"}),
            Mode::Backward
        ),
        Verdict::Breaking
    );
    // A closed tuple of two items already satisfies maxItems: 2.
    let tuple = json!({"type": "array", "prefixItems": [{"type": "string"}, {"type": "number"}], "items": false});
    assert_eq!(
        verdict(
            tuple.clone(),
            json!({"type": "array", "maxItems": 2}),
            Mode::Backward
        ),
        Verdict::Compatible
    );
    assert_eq!(
        verdict(
            json!({"type": "array"}),
            json!({"type": "array", "uniqueItems": true}),
            Mode::Backward
        ),
        Verdict::Breaking
    );
}

#[test]
fn oneof_alternatives_are_matched_per_type() {
    let old = json!({"type": ["string", "number"]});
    let new = json!({"oneOf": [{"type": "string"}, {"type": "number"}]});
    assert_eq!(
        verdict(old.clone(), new.clone(), Mode::Backward),
        Verdict::Compatible
    );
    let narrower = json!({"oneOf": [{"type": "string"}]});
    let ch = kinds(old, narrower, Mode::Backward);
    assert!(
        ch.iter()
            .any(|c| c.0 == "#/oneOf" && c.2 == Verdict::Breaking),
        "{ch:?}"
    );
}

#[test]
fn dependent_required_and_schemas() {
    let old = json!({"properties": {"a": {}, "b": {}}});
    let new = json!({"properties": {"a": {}, "b": {}}, "dependentRequired": {"a": ["b"]}});
    let ch = kinds(old.clone(), new.clone(), Mode::Backward);
    assert_eq!(
        ch,
        vec![(
            "#/dependentRequired/a".into(),
            "dependent-required-added".into(),
            Verdict::Breaking
        )]
    );
    assert_eq!(verdict(new, old, Mode::Backward), Verdict::Compatible);
    let s_old = json!({"dependentSchemas": {"a": {"properties": {"c": {}}, "required": ["b"]}}});
    let s_new =
        json!({"dependentSchemas": {"a": {"properties": {"c": {}}, "required": ["b", "c"]}}});
    assert_eq!(verdict(s_old, s_new, Mode::Backward), Verdict::Breaking);
}

#[test]
fn required_without_declaration_or_with_default_is_a_warning() {
    let old = json!({"properties": {"a": {"type": "string"}}});
    let undeclared = json!({"properties": {"a": {"type": "string"}}, "required": ["z"]});
    let r = diff(&old, &undeclared, Mode::Backward).expect("diff");
    assert_eq!(r.verdict, Verdict::Warning, "{r:?}");
    let with_default =
        json!({"properties": {"a": {"type": "string", "default": "x"}}, "required": ["a"]});
    assert_eq!(
        verdict(old.clone(), with_default, Mode::Backward),
        Verdict::Warning
    );
    let plain = json!({"properties": {"a": {"type": "string"}}, "required": ["a"]});
    assert_eq!(verdict(old, plain, Mode::Backward), Verdict::Breaking);
}

fn linked_list(value_type: &str) -> Value {
    json!({
        "$defs": {"node": {"type": "object", "properties": {
            "value": {"type": value_type},
            "next": {"$ref": "#/$defs/node"}}}},
        "$ref": "#/$defs/node"
    })
}

#[test]
fn recursive_refs_terminate_and_compare_structurally() {
    assert_eq!(
        verdict(
            linked_list("integer"),
            linked_list("number"),
            Mode::Backward
        ),
        Verdict::Compatible
    );
    let r = diff(
        &linked_list("number"),
        &linked_list("integer"),
        Mode::Backward,
    )
    .expect("diff");
    assert_eq!(r.verdict, Verdict::Breaking);
    assert!(
        r.changes
            .iter()
            .any(|c| c.pointer == "#/properties/value/type"),
        "{r:?}"
    );
    // A tree whose recursion goes through an array and a oneOf.
    let tree = |leaf: &str| {
        json!({"definitions": {"t": {"oneOf": [{"type": leaf}, {"type": "array", "items": {"$ref": "#/definitions/t"}}]}},
               "$ref": "#/definitions/t"})
    };
    assert_eq!(
        verdict(tree("integer"), tree("number"), Mode::Backward),
        Verdict::Compatible
    );
    assert_eq!(
        verdict(tree("number"), tree("integer"), Mode::Backward),
        Verdict::Breaking
    );
}

#[test]
fn ref_cycles_without_structure_do_not_loop() {
    let cyclic = json!({"definitions": {"a": {"$ref": "#/definitions/b"}, "b": {"$ref": "#/definitions/a"}}, "$ref": "#/definitions/a"});
    let self_ref = json!({"$ref": "#"});
    assert_eq!(
        verdict(cyclic.clone(), self_ref.clone(), Mode::Full),
        Verdict::Compatible
    );
    assert_eq!(
        verdict(json!({"type": "string"}), cyclic, Mode::Backward),
        Verdict::Compatible
    );
    assert_eq!(
        verdict(self_ref, json!({"type": "string"}), Mode::Backward),
        Verdict::Breaking
    );
}

#[test]
fn remote_refs_are_refused_with_the_pointer() {
    let err = analyze(&json!({"$ref": "https://example.com/s.json"}), &json!({}))
        .expect_err("remote ref");
    match err {
        CompatError::Ref { pointer, reference } => {
            assert_eq!(pointer, "#");
            assert_eq!(reference, "https://example.com/s.json");
        }
        other => panic!("unexpected {other}"),
    }
}

#[test]
fn combinatorial_schemas_hit_the_budget_instead_of_running_forever() {
    // A conjunction of 12 two-way anyOfs expands into 4,096 alternatives.
    let parts: Vec<Value> = (0..12).map(|i| json!({"anyOf": [{"type": "string", "minLength": i}, {"type": "string", "maxLength": 100 + i}]})).collect();
    let s = json!({"allOf": parts});
    let target = json!({"oneOf": [{"type": "number", "minimum": 100}, {"type": "boolean"}]});
    let err = analyze_with_budget(&s, &target, 1_000).expect_err("budget");
    assert!(matches!(err, CompatError::Budget { steps: 1_000 }), "{err}");
}

#[test]
fn annotations_are_reported_but_compatible() {
    let ch = kinds(
        json!({"title": "a", "type": "string"}),
        json!({"title": "b", "type": "string"}),
        Mode::Full,
    );
    assert_eq!(
        ch,
        vec![(
            "#/title".into(),
            "title-changed".into(),
            Verdict::Compatible
        )]
    );
}

#[test]
fn conditionals_are_checked_conservatively() {
    let cond = json!({"if": {"properties": {"k": {"const": "a"}}}, "then": {"required": ["x"]}});
    assert_eq!(
        verdict(cond.clone(), cond.clone(), Mode::Full),
        Verdict::Compatible
    );
    assert_eq!(
        verdict(json!({}), cond.clone(), Mode::Backward),
        Verdict::Breaking
    );
    assert_eq!(
        verdict(cond, json!({}), Mode::Backward),
        Verdict::Compatible
    );
}

#[test]
fn a_new_overlapping_one_of_alternative_is_a_warning() {
    let old = json!({"oneOf": [{"type": "string", "maxLength": 5}]});
    let overlapping =
        json!({"oneOf": [{"type": "string", "maxLength": 5}, {"type": "string", "pattern": "^a"}]});
    let r = diff(&old, &overlapping, Mode::Backward).expect("diff");
    assert_eq!(r.verdict, Verdict::Warning, "{r:?}");
    assert!(
        r.changes
            .iter()
            .any(|c| c.kind == "one-of-overlap-added" && c.pointer == "#/oneOf"),
        "{r:?}"
    );
    // Disjoint by type: no warning.
    let by_type = json!({"oneOf": [{"type": "string", "maxLength": 5}, {"type": "integer"}]});
    assert_eq!(
        verdict(old.clone(), by_type, Mode::Backward),
        Verdict::Compatible
    );
    // A discriminated union gaining a variant: no warning.
    let variant = |k: &str| json!({"type": "object", "required": ["kind"], "properties": {"kind": {"const": k}, "v": {"type": "string"}}});
    let u1 = json!({"oneOf": [variant("a")]});
    let u2 = json!({"oneOf": [variant("a"), variant("b")]});
    assert_eq!(verdict(u1, u2, Mode::Backward), Verdict::Compatible);
}
