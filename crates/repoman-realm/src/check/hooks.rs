//! Validation hooks: the contract's scripts run for exporter/importer checks, argv only, with a
//! timeout, only when this machine trusts the realm at its current commit.

use super::{CheckMode, Checker, Level};
use crate::model::ContractFile;
use crate::realm::RealmError;
use crate::trust::TrustState;
use repoman_core::ObjectId;
use repoman_core::process::{Cmd, ProcessError};
use serde::Serialize;
use std::path::Path;

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum HookStatus {
    Ran,
    Cached,
    SkippedUntrusted,
    SkippedNotCi,
}

#[derive(Debug, Clone, Serialize)]
pub struct HookRun {
    pub contract: String,
    pub role: String,
    pub script: String,
    pub status: HookStatus,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exit: Option<i64>,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub output: String,
}

impl Checker<'_> {
    pub(super) fn hook(
        &mut self,
        c: &ContractFile,
        role: &str,
        script: &str,
        repo: &str,
        dir: &Path,
        domain: &str,
    ) -> Result<(), RealmError> {
        let m = if role == "importer" {
            CheckMode::Importer
        } else {
            CheckMode::Exporter
        };
        let obj = self.realm.contract_object(domain, &c.name);
        let run = |status: HookStatus, exit: Option<i64>, output: String| HookRun {
            contract: c.name.clone(),
            role: role.into(),
            script: script.into(),
            status,
            exit,
            output,
        };
        if role == "ci_only" && !self.opts.ci {
            self.hooks
                .push(run(HookStatus::SkippedNotCi, None, String::new()));
            return Ok(());
        }
        if !self.opts.trust.is_trusted() {
            let why = match &self.opts.trust {
                TrustState::Changed {
                    trusted_commit,
                    head,
                } => format!(
                    "the realm changed since it was trusted (trusted {}, now {})",
                    &trusted_commit[..trusted_commit.len().min(12)],
                    &head[..head.len().min(12)]
                ),
                _ => "this machine does not trust the realm".into(),
            };
            if !self
                .hooks
                .iter()
                .any(|h| h.status == HookStatus::SkippedUntrusted)
            {
                self.find(Level::Warning, m, ObjectId::realm(self.realm.name()).to_string(), "hooks-untrusted", format!("validation hooks not run: {why}; review the realm's hooks, then run `repoman realm admin trust`"));
            }
            self.hooks
                .push(run(HookStatus::SkippedUntrusted, None, String::new()));
            return Ok(());
        }
        let path = dir.join(script);
        let binding_hash = {
            let mut h = blake3::Hasher::new();
            h.update(role.as_bytes());
            h.update(script.as_bytes());
            h.update(&std::fs::read(&path).unwrap_or_default());
            let b = self
                .realm
                .domains
                .get(domain)
                .and_then(|d| d.bindings.get(repo));
            h.update(serde_json::to_string(&b).unwrap_or_default().as_bytes());
            if let Some(b) = b {
                for e in b.exports.iter().filter(|e| e.contract == c.name) {
                    for f in &e.source_files {
                        if let Ok(fh) = self.cache.file_hash(&format!("{repo}/{f}"), dir, f) {
                            h.update(fh.as_bytes());
                        }
                    }
                }
            }
            h.finalize().to_hex().to_string()
        };
        let (code, output, status) = match self.cache.validation(&c.name, &c.version, &binding_hash)
        {
            Some((code, out)) => (Some(code), out, HookStatus::Cached),
            None => {
                let mut cmd = Cmd::new(&path)
                    .current_dir(dir)
                    .timeout(self.opts.hook_timeout)
                    .env("REPOMAN_REALM", &self.realm.root)
                    .env("REPOMAN_CONTRACT", &c.name)
                    .env("REPOMAN_CONTRACT_VERSION", &c.version)
                    .env("REPOMAN_HOOK_ROLE", role);
                if let Some(p) = self.env.get_os("PATH") {
                    cmd = cmd.search_path(p);
                }
                match cmd.output() {
                    Ok(out) => {
                        let code = out.status.code().map_or(-1, i64::from);
                        let mut text = out.stdout_str();
                        text.push_str(&String::from_utf8_lossy(&out.stderr));
                        let text: String = text.trim().chars().take(4000).collect();
                        if (0..=2).contains(&code) {
                            self.cache.store_validation(
                                &c.name,
                                &c.version,
                                &binding_hash,
                                code,
                                &text,
                                self.opts.now,
                            );
                        }
                        (Some(code), text, HookStatus::Ran)
                    }
                    Err(ProcessError::Timeout { after, .. }) => {
                        self.find(Level::Error, m, obj.clone(), "hook-timeout", format!("{role} hook {script} did not finish within {after:?} and was killed"));
                        self.hooks.push(run(HookStatus::Ran, None, String::new()));
                        return Ok(());
                    }
                    Err(e) => {
                        self.find(
                            Level::Error,
                            m,
                            obj.clone(),
                            "hook-failed",
                            format!("{role} hook {script} could not run: {e}"),
                        );
                        self.hooks.push(run(HookStatus::Ran, None, String::new()));
                        return Ok(());
                    }
                }
            }
        };
        let first = output.lines().next().unwrap_or("").to_string();
        match code {
            Some(0) => {}
            Some(2) => {
                self.find(
                    Level::Warning,
                    m,
                    obj.clone(),
                    "hook-warning",
                    format!("{role} hook {script} reported a warning: {first}"),
                );
            }
            Some(1) => {
                self.find(
                    Level::Error,
                    m,
                    obj.clone(),
                    "hook-invalid",
                    format!("{role} hook {script} reported the binding invalid: {first}"),
                );
            }
            other => {
                self.find(
                    Level::Error,
                    m,
                    obj.clone(),
                    "hook-failed",
                    format!("{role} hook {script} exited with {other:?}: {first}"),
                );
            }
        }
        self.hooks.push(run(status, code, output));
        Ok(())
    }
}
