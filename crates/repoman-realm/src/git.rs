//! The `git` CLI, through `repoman_core::process::Cmd` (argv only, null stdin, timeout), for the
//! realm repository: init, commit, HEAD, and a file's history.

use repoman_core::Env;
use repoman_core::process::{Cmd, ProcessError};
use std::path::{Path, PathBuf};
use std::time::Duration;

const GIT_TIMEOUT: Duration = Duration::from_secs(120);

#[derive(Debug, thiserror::Error)]
#[error("git {args} in {dir} failed: {source}")]
pub struct GitError {
    pub dir: PathBuf,
    pub args: String,
    #[source]
    pub source: Box<ProcessError>,
}

/// Runs git in one directory with the caller's PATH.
#[derive(Debug, Clone)]
pub struct Git {
    dir: PathBuf,
    path_var: Option<std::ffi::OsString>,
    identity: Option<(String, String)>,
}

impl Git {
    pub fn new(dir: &Path, env: &Env) -> Self {
        let user = repoman_core::identity::user_name(env);
        let host = repoman_core::identity::host_name();
        Git {
            dir: dir.to_path_buf(),
            path_var: env.get_os("PATH").map(ToOwned::to_owned),
            identity: Some((user.clone(), format!("{user}@{host}"))),
        }
    }

    fn cmd(&self, args: &[&str]) -> Cmd {
        let mut c = Cmd::new("git")
            .current_dir(&self.dir)
            .timeout(GIT_TIMEOUT)
            .args(args);
        if let Some(p) = &self.path_var {
            c = c.search_path(p);
        }
        c
    }

    fn run(&self, args: &[&str]) -> Result<String, GitError> {
        self.cmd(args)
            .run()
            .map(|o| o.stdout_str())
            .map_err(|source| GitError {
                dir: self.dir.clone(),
                args: args.join(" "),
                source: Box::new(source),
            })
    }

    pub fn init(&self) -> Result<(), GitError> {
        self.run(&["init", "--quiet"])?;
        Ok(())
    }

    /// Stages everything under the realm and commits (no-op when nothing changed).
    pub fn commit_all(&self, message: &str) -> Result<Option<String>, GitError> {
        self.run(&["add", "--all", "."])?;
        let status = self.run(&["status", "--porcelain"])?;
        if status.trim().is_empty() {
            return Ok(None);
        }
        let mut args: Vec<String> = Vec::new();
        // Use the user's identity when configured; otherwise a local one, so a fresh machine (or CI)
        // can still record realm changes.
        let has_identity = self
            .run(&["config", "user.email"])
            .is_ok_and(|s| !s.trim().is_empty());
        if !has_identity && let Some((name, email)) = &self.identity {
            args.extend([
                "-c".into(),
                format!("user.name={name}"),
                "-c".into(),
                format!("user.email={email}"),
            ]);
        }
        args.extend([
            "commit".into(),
            "--quiet".into(),
            "--no-verify".into(),
            "-m".into(),
            message.into(),
        ]);
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        self.run(&refs)?;
        self.head().map(Some)
    }

    pub fn head(&self) -> Result<String, GitError> {
        Ok(self.run(&["rev-parse", "HEAD"])?.trim().to_string())
    }

    /// Is there anything uncommitted?
    pub fn dirty(&self) -> Result<bool, GitError> {
        Ok(!self.run(&["status", "--porcelain"])?.trim().is_empty())
    }

    /// Commits that touched `path`, oldest first.
    pub fn file_history(&self, path: &str) -> Result<Vec<String>, GitError> {
        let out = self.run(&["log", "--format=%H", "--reverse", "--", path])?;
        Ok(out
            .lines()
            .map(str::to_string)
            .filter(|l| !l.is_empty())
            .collect())
    }

    /// The content of `path` at `commit`.
    pub fn show(&self, commit: &str, path: &str) -> Result<String, GitError> {
        self.run(&["show", &format!("{commit}:{path}")])
    }
}
