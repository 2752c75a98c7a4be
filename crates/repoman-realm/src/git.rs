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

    /// Files under `pathspec` that differ from HEAD (modified, added or untracked).
    pub fn changed_paths(&self, pathspec: &str) -> Result<Vec<String>, GitError> {
        let out = self.run(&[
            "-c",
            "core.quotePath=false",
            "status",
            "--porcelain",
            "--untracked-files=all",
            "--",
            pathspec,
        ])?;
        Ok(out
            .lines()
            .filter(|l| l.len() > 3)
            .map(|l| l[3..].rsplit(" -> ").next().unwrap_or(&l[3..]).to_string())
            .collect())
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

    /// The content, after each commit that changed it, of every file matching `pathspec`, oldest
    /// first: one `git log -p` with whole-file context, so the history of hundreds of files costs
    /// one process instead of one per version. Deleted files are skipped.
    pub fn histories(
        &self,
        pathspec: &str,
    ) -> Result<std::collections::BTreeMap<String, Vec<(String, String)>>, GitError> {
        let out = self.run(&[
            "-c",
            "core.quotePath=false",
            "log",
            "--reverse",
            "--no-renames",
            "--no-color",
            "--format=%x00commit %H",
            "-p",
            "--unified=100000000",
            "--",
            pathspec,
        ])?;
        Ok(parse_histories(&out))
    }

    /// The content of `path` at `commit`.
    pub fn show(&self, commit: &str, path: &str) -> Result<String, GitError> {
        self.run(&["show", &format!("{commit}:{path}")])
    }
}

/// Rebuilds new file contents from `git log -p` output with whole-file context: after the hunk
/// header every line of the new file is there, prefixed with ' ' (unchanged) or '+' (added).
fn parse_histories(out: &str) -> std::collections::BTreeMap<String, Vec<(String, String)>> {
    let mut result: std::collections::BTreeMap<String, Vec<(String, String)>> =
        std::collections::BTreeMap::new();
    let mut commit = String::new();
    let mut current: Option<(String, String)> = None; // (path, content)
    let mut in_hunk = false;
    let mut deleted = false;
    let mut flush = |current: &mut Option<(String, String)>, commit: &str, deleted: bool| {
        if let Some((path, content)) = current.take()
            && !deleted
        {
            result
                .entry(path)
                .or_default()
                .push((commit.to_string(), content));
        }
    };
    for line in out.split('\n') {
        if let Some(c) = line.strip_prefix("\u{0}commit ") {
            flush(&mut current, &commit, deleted);
            commit = c.trim().to_string();
            in_hunk = false;
            continue;
        }
        if line.starts_with("diff --git ") {
            flush(&mut current, &commit, deleted);
            in_hunk = false;
            deleted = false;
            // `diff --git a/PATH b/PATH`: the path after " b/".
            let path = line
                .rsplit_once(" b/")
                .map(|(_, p)| p.to_string())
                .unwrap_or_default();
            current = Some((path, String::new()));
            continue;
        }
        if !in_hunk {
            if line.starts_with("deleted file mode") {
                deleted = true;
            } else if line.starts_with("@@") {
                in_hunk = true;
            }
            continue;
        }
        if let Some((_, content)) = current.as_mut() {
            if let Some(rest) = line.strip_prefix(' ').or_else(|| line.strip_prefix('+')) {
                content.push_str(rest);
                content.push('\n');
            } else if line.starts_with('\\') {
                // "\ No newline at end of file" refers to the line before.
                if content.ends_with('\n') && line.contains("No newline") {
                    content.pop();
                }
            }
        }
    }
    flush(&mut current, &commit, deleted);
    result
}
