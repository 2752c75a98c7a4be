//! Realm YAML (realm.yaml, repo, domain and contract files): parsing never panics and stays
//! within the parser budgets (no alias blow-up).
#![no_main]
use libfuzzer_sys::fuzz_target;
use repoman_realm::model::{ContractFile, DomainFile, RealmFile, RepoFile};
use repoman_realm::yaml;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let p = Path::new("realm.yaml");
    let _ = yaml::parse::<serde_json::Value>(p, text);
    let _ = yaml::parse::<RealmFile>(p, text);
    let _ = yaml::parse::<RepoFile>(p, text);
    let _ = yaml::parse::<DomainFile>(p, text);
    let _ = yaml::parse::<ContractFile>(p, text);
});
