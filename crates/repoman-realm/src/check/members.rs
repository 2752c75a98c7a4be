//! The member-repo modes: exporter (exported contracts owned here, sources unchanged since the
//! recorded version) and importer (ranges accept the current version).

use super::{CheckMode, Checker, Level};
use crate::realm::{Realm, RealmError};
use crate::version::{self, Range};
use repoman_core::ObjectId;
use std::path::Path;

impl Checker<'_> {
    pub(super) fn exporter_mode(&mut self, repo: &str, dir: &Path) -> Result<(), RealmError> {
        let m = CheckMode::Exporter;
        let realm_name = self.realm.name().to_string();
        for (d, dom) in &self.realm.domains {
            let Some(b) = dom.bindings.get(repo) else {
                continue;
            };
            let bfile = Some(Realm::binding_rel_path(d, repo));
            for e in &b.exports {
                let obj = ObjectId::contract(&realm_name, d, &e.contract).to_string();
                let Some((_, c)) = self.realm.contract(&e.contract) else {
                    self.find(
                        Level::Error,
                        m,
                        obj,
                        "contract-unknown",
                        format!("`{repo}` exports `{}`, which does not exist", e.contract),
                    )
                    .file = bfile.clone();
                    continue;
                };
                let c = c.clone();
                if c.owner != repo {
                    self.find(Level::Error, m, obj.clone(), "ownership", format!("`{repo}` exports `{}`, but the contract is owned by `{}`; only its owner may export it", c.name, c.owner)).file = bfile.clone();
                }
                let mut changed = Vec::new();
                for f in &e.source_files {
                    let hash = match self.cache.file_hash(&format!("{repo}/{f}"), dir, f) {
                        Ok(h) => h,
                        Err(err) => {
                            self.find(
                                Level::Error,
                                m,
                                obj.clone(),
                                "source-missing",
                                format!("declared source file {f} cannot be read: {err}"),
                            )
                            .file = Some(f.clone());
                            continue;
                        }
                    };
                    match e.source_digests.get(f) {
                        Some(recorded) if *recorded == hash => {}
                        Some(_) => changed.push(f.clone()),
                        None => {
                            self.find(Level::Warning, m, obj.clone(), "source-unrecorded", format!("no digest recorded for {f}; re-export with `repoman realm admin binding export`")).file = Some(f.clone());
                        }
                    }
                }
                if !changed.is_empty() {
                    let recorded = e.recorded_version.clone().unwrap_or_else(|| "?".into());
                    let (level, msg) = if recorded == c.version {
                        (
                            Level::Error,
                            format!(
                                "{} changed since {} {} was recorded, but the contract did not; update the contract (`repoman realm admin contract bump {}`) or re-record",
                                changed.join(", "),
                                c.name,
                                c.version,
                                c.name
                            ),
                        )
                    } else {
                        (
                            Level::Warning,
                            format!(
                                "{} changed; digests were recorded for {recorded} and the contract is at {}: re-record with `repoman realm admin binding export {}`",
                                changed.join(", "),
                                c.version,
                                c.name
                            ),
                        )
                    };
                    for f in &changed {
                        let finding =
                            self.find(level, m, obj.clone(), "source-changed", msg.clone());
                        finding.file = Some(f.clone());
                    }
                }
                if let Some(script) = c.validation.exporter.clone() {
                    self.hook(&c, "exporter", &script, repo, dir, d)?;
                }
                for script in c.validation.ci_only.clone() {
                    self.hook(&c, "ci_only", &script, repo, dir, d)?;
                }
            }
        }
        Ok(())
    }

    pub(super) fn importer_mode(&mut self, repo: &str, dir: &Path) -> Result<(), RealmError> {
        let m = CheckMode::Importer;
        let realm_name = self.realm.name().to_string();
        for (d, dom) in &self.realm.domains {
            let Some(b) = dom.bindings.get(repo) else {
                continue;
            };
            let bfile = Some(Realm::binding_rel_path(d, repo));
            for i in &b.imports {
                let obj = ObjectId::contract(&realm_name, d, &i.contract).to_string();
                let Some((_, c)) = self.realm.contract(&i.contract) else {
                    self.find(
                        Level::Error,
                        m,
                        obj,
                        "contract-unknown",
                        format!("`{repo}` imports `{}`, which does not exist", i.contract),
                    )
                    .file = bfile.clone();
                    continue;
                };
                let c = c.clone();
                let range = match Range::parse(&i.version) {
                    Ok(r) => r,
                    Err(e) => {
                        self.find(Level::Error, m, obj.clone(), "range-invalid", e.to_string())
                            .file = bfile.clone();
                        continue;
                    }
                };
                match version::parse_version(&c.version) {
                    Ok(v) if !range.matches(&v) => {
                        self.find(Level::Error, m, obj.clone(), "range-mismatch", format!("`{repo}` imports `{}` {} but the contract is at {}; update the import (and the code behind it)", c.name, i.version, c.version)).file = bfile.clone();
                    }
                    Ok(_) => {}
                    Err(e) => {
                        self.find(
                            Level::Error,
                            m,
                            obj.clone(),
                            "version-invalid",
                            e.to_string(),
                        )
                        .file = bfile.clone();
                    }
                }
                if i.resolved_version.as_deref() != Some(c.version.as_str()) {
                    self.find(Level::Warning, m, obj.clone(), "stale-binding", format!("`{repo}` resolved `{}` at {}, the contract is at {}; re-import with `repoman realm admin binding import {} --version '{}'`", c.name, i.resolved_version.as_deref().unwrap_or("nothing"), c.version, c.name, i.version)).file = bfile.clone();
                }
                if let Some(script) = c.validation.importer.clone() {
                    self.hook(&c, "importer", &script, repo, dir, d)?;
                }
                for script in c.validation.ci_only.clone() {
                    self.hook(&c, "ci_only", &script, repo, dir, d)?;
                }
            }
        }
        Ok(())
    }
}
