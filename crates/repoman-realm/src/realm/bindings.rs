//! Bindings: which repo exports a contract (with its source digests) and which imports it within
//! a version range.

use super::{Realm, RealmError, RealmEvent, digests, write_yaml};
use crate::graph::Edge;
use crate::model::{BindingFile, Export, Import};
use crate::version::{self, Range};
use repoman_core::Env;
use serde_json::json;
use std::path::Path;

impl Realm {
    fn binding_mut(&mut self, domain: &str, repo: &str) -> BindingFile {
        self.domains
            .get(domain)
            .and_then(|d| d.bindings.get(repo))
            .cloned()
            .unwrap_or_else(|| BindingFile::new(repo))
    }

    fn save_binding(&mut self, domain: &str, mut b: BindingFile) -> Result<(), RealmError> {
        b.refresh_role();
        write_yaml(&self.root.join(Self::binding_rel_path(domain, &b.repo)), &b)?;
        if let Some(d) = self.domains.get_mut(domain) {
            d.bindings.insert(b.repo.clone(), b);
        }
        Ok(())
    }

    /// `realm admin binding export CONTRACT --repo R --source-files a,b`.
    pub fn export(
        &mut self,
        repo: &str,
        contract: &str,
        source_files: Vec<String>,
        repo_dir: &Path,
        env: &Env,
    ) -> Result<Vec<RealmEvent>, RealmError> {
        self.require_repo(repo)?;
        let (domain, c) = self
            .contract(contract)
            .map(|(d, c)| (d.to_string(), c.clone()))
            .ok_or_else(|| self.unknown("contract", contract))?;
        let new_edges: Vec<Edge> = self
            .importers(contract)
            .into_iter()
            .map(|i| Edge {
                from: repo.into(),
                to: i,
                label: contract.into(),
            })
            .collect();
        self.graph().check_addition(
            &format!("the export of `{contract}` by `{repo}`"),
            &new_edges,
        )?;
        if self.dry_run {
            return Ok(Vec::new());
        }
        let mut b = self.binding_mut(&domain, repo);
        b.exports.retain(|e| e.contract != contract);
        b.exports.push(Export {
            contract: contract.into(),
            source_digests: digests(repo_dir, &source_files)?,
            source_files,
            recorded_version: Some(c.version.clone()),
        });
        self.save_binding(&domain, b)?;
        let commit = self.commit(env, &format!("realm: {repo} exports {contract}"))?;
        Ok(vec![RealmEvent::new(
            "binding.exported",
            self.contract_object(&domain, contract),
            json!({"repo": repo, "version": c.version, "commit": commit}),
        )])
    }

    /// `realm admin binding import CONTRACT --repo R --version RANGE [--binding FILE]`.
    pub fn import(
        &mut self,
        repo: &str,
        contract: &str,
        range: &str,
        binding: Option<String>,
        env: &Env,
    ) -> Result<Vec<RealmEvent>, RealmError> {
        self.require_repo(repo)?;
        let (domain, c) = self
            .contract(contract)
            .map(|(d, c)| (d.to_string(), c.clone()))
            .ok_or_else(|| self.unknown("contract", contract))?;
        let r = Range::parse(range)?;
        let current = version::parse_version(&c.version)?;
        if !r.matches(&current) {
            return Err(RealmError::RangeMismatch {
                contract: contract.into(),
                range: range.into(),
                version: c.version.clone(),
            });
        }
        let new_edges: Vec<Edge> = self
            .exporters(contract)
            .into_iter()
            .map(|e| Edge {
                from: e,
                to: repo.into(),
                label: contract.into(),
            })
            .collect();
        self.graph().check_addition(
            &format!("the import of `{contract}` by `{repo}`"),
            &new_edges,
        )?;
        if self.dry_run {
            return Ok(Vec::new());
        }
        let mut b = self.binding_mut(&domain, repo);
        b.imports.retain(|i| i.contract != contract);
        b.imports.push(Import {
            contract: contract.into(),
            version: range.into(),
            binding,
            status: Some("current".into()),
            resolved_version: Some(c.version.clone()),
        });
        self.save_binding(&domain, b)?;
        let commit = self.commit(env, &format!("realm: {repo} imports {contract} {range}"))?;
        Ok(vec![RealmEvent::new(
            "binding.imported",
            self.contract_object(&domain, contract),
            json!({"repo": repo, "range": range, "resolved_version": c.version, "commit": commit}),
        )])
    }
}
