//! The 263 JSON Schema evolution cases from Confluent Schema Registry's test suite, vendored as
//! test data in `tests/data/confluent/` (see its `NOTICE`). A missing corpus fails, never skips. Every case's verdict is BACKWARD; FORWARD is checked by swapping the schemas and
//! FULL as both.

use repoman_realm::compat::{Mode, Options, Profile, Verdict, analyze, analyze_with};
use serde_json::Value;
use std::path::PathBuf;

const FILES: [&str; 4] = [
    "diff-schema-examples.json",
    "diff-schema-examples-2020-12.json",
    "diff-combined-schema-examples.json",
    "diff-combined-schema-examples-2020-12.json",
];

fn corpus_dir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/confluent");
    for f in FILES {
        assert!(
            dir.join(f).is_file(),
            "conformance corpus file missing: {} (it is vendored in the repository; restore it from git)",
            dir.join(f).display()
        );
    }
    dir
}

struct Case {
    file: &'static str,
    description: String,
    original: Value,
    update: Value,
    compatible: bool,
    pointers: Vec<String>,
}

fn cases() -> Vec<Case> {
    let dir = corpus_dir();
    let mut out = Vec::new();
    for file in FILES {
        let text = std::fs::read_to_string(dir.join(file)).expect("read corpus file");
        let list: Vec<Value> = serde_json::from_str(&text).expect("corpus is JSON");
        for c in list {
            let pointers = c["changes"]
                .as_array()
                .expect("changes")
                .iter()
                .filter_map(|s| {
                    s.as_str()?
                        .split_once(' ')
                        .map(|(_, p)| p.trim_end_matches('/').to_string())
                })
                .collect();
            out.push(Case {
                file,
                description: c["description"].as_str().expect("description").to_string(),
                original: c["original_schema"].clone(),
                update: c["update_schema"].clone(),
                compatible: c["compatible"].as_bool().expect("compatible"),
                pointers,
            });
        }
    }
    out
}

fn confluent(old: &Value, new: &Value) -> repoman_realm::compat::Analysis {
    let opts = Options {
        profile: Profile::Confluent,
        ..Options::default()
    };
    analyze_with(old, new, &opts).expect("analyze (confluent profile)")
}

#[test]
fn all_263_cases_match_confluent_backward_verdicts_under_the_confluent_profile() {
    let cases = cases();
    assert_eq!(cases.len(), 263, "the corpus has 263 cases");
    let mut failures = Vec::new();
    let (mut compat_total, mut compat_ok, mut incompat_total, mut incompat_ok) = (0, 0, 0, 0);
    for c in &cases {
        let report = confluent(&c.original, &c.update).report(Mode::Backward);
        // Exactly: a case Confluent accepts is `compatible` (not even a warning), one it refuses is
        // `breaking`.
        let ours = report.verdict == Verdict::Compatible;
        if !ours && report.verdict != Verdict::Breaking {
            failures.push(format!(
                "{}: {}: a warning is not a Confluent verdict: {:#?}",
                c.file, c.description, report
            ));
            continue;
        }
        if c.compatible {
            compat_total += 1;
            compat_ok += usize::from(ours);
        } else {
            incompat_total += 1;
            incompat_ok += usize::from(!ours);
        }
        if ours != c.compatible {
            failures.push(format!(
                "{}: {}: expected compatible={} got {:#?}",
                c.file, c.description, c.compatible, report
            ));
        }
    }
    eprintln!(
        "compatible reproduced: {compat_ok}/{compat_total}; incompatible reproduced: {incompat_ok}/{incompat_total}"
    );
    assert!(
        failures.is_empty(),
        "{} mismatches:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// The semantic profile (the default) differs from Confluent only where a document proves Confluent
/// wrong: each such case names a document valid under the old schema and invalid under the new
/// one, checked by a JSON Schema validator. Every other verdict is Confluent's.
#[test]
fn the_semantic_profile_differs_from_confluent_only_where_a_document_proves_it() {
    // (file, description, the witness document) — the list in docs/realms.md.
    let witnesses: [(&str, &str, Value); 2] = [
        (
            "diff-schema-examples.json",
            "Detect required array to be changed",
            serde_json::json!({"foo": "x"}),
        ),
        (
            "diff-schema-examples-2020-12.json",
            "Detect required array to be changed",
            serde_json::json!({"foo": "x"}),
        ),
    ];
    let mut differences = Vec::new();
    for c in cases() {
        let semantic = analyze(&c.original, &c.update)
            .expect("analyze")
            .report(Mode::Backward)
            .verdict
            == Verdict::Breaking;
        if semantic != c.compatible {
            continue;
        }
        differences.push((c.file, c.description.clone()));
        let Some((_, _, doc)) = witnesses
            .iter()
            .find(|(f, d, _)| *f == c.file && *d == c.description)
        else {
            panic!(
                "{}: {}: semantic verdict breaking={semantic} differs from Confluent without a witness",
                c.file, c.description
            );
        };
        assert!(semantic && c.compatible, "semantic may only be stricter");
        let old = jsonschema::validator_for(&c.original).expect("old schema compiles");
        let new = jsonschema::validator_for(&c.update).expect("new schema compiles");
        assert!(
            old.is_valid(doc),
            "{}: witness valid under the old schema",
            c.description
        );
        assert!(
            !new.is_valid(doc),
            "{}: witness invalid under the new schema",
            c.description
        );
    }
    assert_eq!(
        differences.len(),
        witnesses.len(),
        "every listed difference is still a difference: {differences:?}"
    );
}

#[test]
fn forward_is_backward_swapped_and_full_is_both() {
    for c in cases() {
        let there = confluent(&c.original, &c.update);
        let back = confluent(&c.update, &c.original);
        let fwd = there.report(Mode::Forward).verdict == Verdict::Breaking;
        let swapped_back = back.report(Mode::Backward).verdict == Verdict::Breaking;
        assert_eq!(
            fwd, swapped_back,
            "{}: {}: FORWARD must equal BACKWARD of the swapped pair",
            c.file, c.description
        );
        let full = there.report(Mode::Full).verdict == Verdict::Breaking;
        let both = there.report(Mode::Backward).verdict == Verdict::Breaking || fwd;
        assert_eq!(
            full, both,
            "{}: {}: FULL must be BACKWARD and FORWARD",
            c.file, c.description
        );
    }
}

fn canonical(pointer: &str) -> String {
    let mut p = format!("{pointer}/");
    for (from, to) in [
        ("/prefixItems/", "/items/"),
        ("/dependentRequired/", "/dependencies/"),
        ("/dependentSchemas/", "/dependencies/"),
        ("/additionalItems/", "/items/"),
        ("/required/", "/properties/"),
    ] {
        p = p.replace(from, to);
    }
    p.trim_end_matches('/').to_string()
}

#[test]
fn breaking_changes_point_where_confluent_points() {
    // Each incompatible case: at least one of our breaking changes names Confluent's pointer, or a
    // keyword/descendant under it (we point at the keyword: `#/properties/foo/type`). Confluent's
    // loader renames 2020-12 keywords to their draft-07 spelling (`prefixItems` -> `items`,
    // `dependentSchemas` -> `dependencies`, `items` -> `additionalItems`) and reports a newly
    // required property under `properties`; we point into the document as written, so both sides
    // are compared after mapping those spellings together.
    let mut agree = 0;
    let mut total = 0;
    let mut misses = Vec::new();
    for c in cases().into_iter().filter(|c| !c.compatible) {
        total += 1;
        let report = confluent(&c.original, &c.update).report(Mode::Backward);
        let ours: Vec<&str> = report
            .changes
            .iter()
            .filter(|ch| ch.verdict == Verdict::Breaking)
            .map(|ch| ch.pointer.as_str())
            .collect();
        let hit = c.pointers.iter().map(|p| canonical(p)).any(|p| {
            ours.iter()
                .map(|o| canonical(o))
                .any(|o| o == p || o.starts_with(&format!("{p}/")))
        });
        if hit {
            agree += 1;
        } else {
            misses.push(format!(
                "{}: {}: confluent {:?}, ours {:?}",
                c.file, c.description, c.pointers, ours
            ));
        }
    }
    eprintln!(
        "pointer agreement on incompatible cases: {agree}/{total}\n{}",
        misses.join("\n")
    );
    assert_eq!(
        agree, total,
        "every incompatible case must point where Confluent points"
    );
}
