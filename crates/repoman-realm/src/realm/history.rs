//! Contract versions from the realm's git history.

use super::{Realm, RealmError};
use crate::model::ContractFile;
use crate::yaml;
use repoman_core::Env;
use serde::Serialize;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;

impl Realm {
    /// The histories of every contract, from one `git log` (see [`Git::histories`]).
    pub fn all_contract_histories(
        &self,
        env: &Env,
    ) -> Result<BTreeMap<String, Vec<HistoricVersion>>, RealmError> {
        let raw = self.git(env).histories("domains/*/contracts/*.yaml")?;
        let mut out = BTreeMap::new();
        for (domain, dom) in &self.domains {
            for name in dom.contracts.keys() {
                let rel = Self::contract_rel_path(domain, name);
                let commits = raw.get(&rel).map(Vec::as_slice).unwrap_or_default();
                out.insert(
                    rel.clone(),
                    self.assemble_history(
                        name,
                        &rel,
                        commits.iter().map(|(c, t)| (c.clone(), t.clone())),
                    ),
                );
            }
        }
        Ok(out)
    }

    fn assemble_history(
        &self,
        name: &str,
        rel: &str,
        commits: impl Iterator<Item = (String, String)>,
    ) -> Vec<HistoricVersion> {
        let mut out: Vec<HistoricVersion> = Vec::new();
        for (commit, text) in commits {
            let Ok(c) = yaml::parse::<ContractFile>(Path::new(rel), &text) else {
                continue;
            };
            out.retain(|h| h.version != c.version);
            out.push(HistoricVersion {
                version: c.version,
                schema: c.schema,
                commit: Some(commit),
            });
        }
        if let Some((_, current)) = self.contract(name) {
            let same_as_last = out
                .last()
                .is_some_and(|h| h.version == current.version && h.schema == current.schema);
            if !same_as_last {
                out.retain(|h| h.version != current.version);
                out.push(HistoricVersion {
                    version: current.version.clone(),
                    schema: current.schema.clone(),
                    commit: None,
                });
            }
        }
        out
    }

    /// Versions of a contract in the realm's git history, oldest first (one entry per version,
    /// the last commit that had it), plus the working-tree file when it differs from HEAD.
    pub fn contract_history(
        &self,
        domain: &str,
        name: &str,
        env: &Env,
    ) -> Result<Vec<HistoricVersion>, RealmError> {
        let rel = Self::contract_rel_path(domain, name);
        let git = self.git(env);
        let mut commits = Vec::new();
        for commit in git.file_history(&rel)? {
            if let Ok(text) = git.show(&commit, &rel) {
                commits.push((commit, text));
            }
        }
        Ok(self.assemble_history(name, &rel, commits.into_iter()))
    }
}

/// One version of a contract from history (`commit` is `None` for uncommitted changes).
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct HistoricVersion {
    pub version: String,
    pub schema: Value,
    pub commit: Option<String>,
}
