//! The published JSON Schemas of the realm files accept what the model writes and refuse typos.

use repoman_realm::model::{
    BindingFile, Compatibility, ContractFile, Evolution, Export, Import, Role,
};
use repoman_realm::schemas;
use serde_json::{Value, json};
use std::collections::BTreeMap;

fn schema(id: &str) -> jsonschema::Validator {
    let s = schemas::all()
        .into_iter()
        .find(|s| s.id == id)
        .unwrap_or_else(|| panic!("schema {id}"));
    jsonschema::validator_for(&s.json).expect("schema compiles")
}

/// What the model writes, read back as YAML-generic JSON.
fn as_yaml_value<T: serde::Serialize>(v: &T) -> Value {
    let text = serde_saphyr::to_string(v).expect("serialize");
    serde_saphyr::from_str(&text).expect("parse back")
}

#[test]
fn every_realm_file_has_a_schema_that_compiles() {
    let ids: Vec<&str> = schemas::all().iter().map(|s| s.id).collect();
    assert_eq!(
        ids,
        [
            "realm.realm",
            "realm.repo",
            "realm.domain",
            "realm.contract",
            "realm.binding",
            "realm.membership"
        ]
    );
    for s in schemas::all() {
        jsonschema::meta::validate(&s.json).unwrap_or_else(|e| panic!("{}: {e}", s.id));
    }
}

#[test]
fn model_output_validates_and_typos_do_not() {
    let c = ContractFile {
        name: "s3-permissions".into(),
        version: "1.4.0".into(),
        owner: "aperture".into(),
        compatibility: Compatibility::default(),
        schema: json!({"type": "object"}),
        validation: Default::default(),
        evolution: vec![Evolution {
            version: "1.4.0".into(),
            changes: vec!["x".into()],
            compatible: Some(true),
        }],
    };
    let v = as_yaml_value(&c);
    assert!(schema("realm.contract").is_valid(&v), "{v}");
    let mut typo = v.clone();
    typo["ownr"] = json!("x");
    assert!(!schema("realm.contract").is_valid(&typo));
    let b = BindingFile {
        repo: "fungal".into(),
        role: Role::Both,
        exports: vec![Export {
            contract: "a".into(),
            source_files: vec!["x.py".into()],
            recorded_version: Some("1.0.0".into()),
            source_digests: BTreeMap::from([("x.py".into(), "ab".into())]),
        }],
        imports: vec![Import {
            contract: "b".into(),
            version: ">=1.0.0 <2.0.0".into(),
            binding: None,
            status: Some("current".into()),
            resolved_version: Some("1.0.0".into()),
        }],
    };
    let v = as_yaml_value(&b);
    assert!(schema("realm.binding").is_valid(&v), "{v}");
    assert!(!schema("realm.binding").is_valid(&json!({"repo": "x", "role": "overlord"})));
}
