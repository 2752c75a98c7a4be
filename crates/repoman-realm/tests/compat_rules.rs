//! repoman's own cases for the compatibility engine: one per rule, recursive `$ref`s, directions.

use repoman_realm::compat::{
    CompatError, Mode, Options, Profile, Verdict, analyze, analyze_with, analyze_with_budget, diff,
};
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
    // Open model: old data may carry `write` with any value (`{"read": [], "write": 5}`), so it
    // breaks with or without a default (a default is an annotation; the seed's contract is closed).
    assert_eq!(
        verdict(v1.clone(), v2.clone(), Mode::Backward),
        Verdict::Breaking
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
fn required_without_declaration_or_with_default_breaks_under_the_semantic_profile() {
    let old = json!({"properties": {"a": {"type": "string"}}});
    let plain = json!({"properties": {"a": {"type": "string"}}, "required": ["a"]});
    let undeclared = json!({"properties": {"a": {"type": "string"}}, "required": ["z"]});
    let with_default =
        json!({"properties": {"a": {"type": "string", "default": "x"}}, "required": ["a"]});
    let in_all_of =
        json!({"properties": {"a": {"type": "string"}}, "allOf": [{"required": ["x"]}]});
    // `{}` is valid under `old` and invalid under each new schema: a JSON Schema validator agrees.
    let doc = json!({});
    let validator = |s: &Value| jsonschema::validator_for(s).expect("schema compiles");
    assert!(validator(&old).is_valid(&doc));
    for new in [&plain, &undeclared, &with_default, &in_all_of] {
        assert!(!validator(new).is_valid(&doc), "{new}");
        let r = diff(&old, new, Mode::Backward).expect("diff");
        assert_eq!(r.verdict, Verdict::Breaking, "{new}: {r:?}");
        // FORWARD (the old schema reads new data) is fine: removing `required` only widens.
        let f = diff(&old, new, Mode::Forward).expect("diff");
        assert_ne!(f.verdict, Verdict::Breaking, "{new}: {f:?}");
    }
    let pointers = kinds(old.clone(), in_all_of.clone(), Mode::Backward);
    assert!(
        pointers.iter().any(|(p, k, v)| p == "#/allOf/0/required/x"
            && k == "required-added"
            && *v == Verdict::Breaking),
        "{pointers:?}"
    );
}

#[test]
fn the_confluent_profile_accepts_undeclared_and_defaulted_required_properties() {
    let confluent = |old: &Value, new: &Value| {
        let opts = Options {
            profile: Profile::Confluent,
            ..Options::default()
        };
        analyze_with(old, new, &opts)
            .expect("analysis")
            .report(Mode::Backward)
            .verdict
    };
    let old = json!({"properties": {"a": {"type": "string"}}});
    let undeclared = json!({"properties": {"a": {"type": "string"}}, "required": ["z"]});
    let with_default =
        json!({"properties": {"a": {"type": "string", "default": "x"}}, "required": ["a"]});
    let plain = json!({"properties": {"a": {"type": "string"}}, "required": ["a"]});
    assert_eq!(confluent(&old, &undeclared), Verdict::Compatible);
    assert_eq!(confluent(&old, &with_default), Verdict::Compatible);
    assert_eq!(confluent(&old, &plain), Verdict::Breaking);
}

#[test]
fn a_cancelled_token_ends_the_analysis() {
    let props: serde_json::Map<String, Value> = (0..5_000)
        .map(|i| (format!("p{i}"), json!({"type": "string", "maxLength": 10})))
        .collect();
    let old = json!({"type": "object", "properties": props});
    let mut new = old.clone();
    for v in new["properties"]
        .as_object_mut()
        .expect("props")
        .values_mut()
    {
        v["maxLength"] = json!(11);
    }
    let cancel = repoman_core::Cancel::new();
    cancel.cancel();
    let opts = Options {
        cancel: Some(cancel),
        ..Options::default()
    };
    let err = analyze_with(&old, &new, &opts).expect_err("cancelled");
    assert!(matches!(err, CompatError::Cancelled), "{err:?}");
    // The same analysis without the token finishes.
    assert!(analyze_with(&old, &new, &Options::default()).is_ok());
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

/// Found by `a_document_that_stops_validating_is_never_compatible` (each pair: a document valid
/// under the old schema and invalid under the new one, yet the engine said `compatible`).
#[test]
fn regressions_from_the_document_property() {
    let cases = [
        // The type beside an `anyOf` was compared after the `anyOf` was set aside, and the
        // recursion stack took that copy for the pair being proved.
        (
            json!({}),
            json!({"type": "string", "anyOf": [{}]}),
            json!(null),
        ),
        (
            json!(true),
            json!({"allOf": [{"type": "string"}, {"anyOf": [true]}]}),
            json!(null),
        ),
        // A nested `oneOf` whose alternatives overlap everywhere: its warning was dropped.
        (
            json!({"type": "boolean"}),
            json!({"oneOf": [{"oneOf": [true, true]}]}),
            json!(false),
        ),
        // `not` of a `oneOf` whose alternatives overlap: integers match both, so the old schema
        // accepts them; the implication between the two `not`s treated `oneOf` like `anyOf`.
        (
            json!({"not": {"oneOf": [{"type": "integer"}, true]}}),
            json!({"not": true}),
            json!(0),
        ),
        // A second copy of an old alternative was taken for the old one.
        (
            json!({"oneOf": [{}]}),
            json!({"oneOf": [{}, {}]}),
            json!(null),
        ),
    ];
    for (old, new, doc) in cases {
        let vo = jsonschema::validator_for(&old).expect("old compiles");
        let vn = jsonschema::validator_for(&new).expect("new compiles");
        assert!(
            vo.is_valid(&doc) && !vn.is_valid(&doc),
            "{old} -> {new}: {doc}"
        );
        assert_ne!(
            verdict(old.clone(), new.clone(), Mode::Backward),
            Verdict::Compatible,
            "{old} -> {new} rejects {doc}"
        );
    }
}
