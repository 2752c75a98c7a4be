//! `/etc/subuid` and `/etc/subgid`: the lines Incus needs before a sandbox may map one host id.
//!
//! Incus allows `raw.idmap "both UID GID"` only when the ids are delegated to root:
//! `root:UID:1` in `/etc/subuid` and `root:GID:1` in `/etc/subgid` (incusd reads both files when
//! it starts, so a daemon restart follows a change). Everything here is pure over file contents
//! (plus [`read`]/[`apply`] for the real files), so planning is tested on temp files and
//! `repoman setup --dry-run` shows the exact lines and commands.
//!
//! A range line like `root:1000000:1000000000` that happens to contain the id does not count:
//! Incus maps ranges for the container's own ids, and only a line that delegates the one id lets
//! `raw.idmap` map it.

use std::io;
use std::path::{Path, PathBuf};

use serde::Serialize;

/// The system files.
pub const SUBUID: &str = "/etc/subuid";
pub const SUBGID: &str = "/etc/subgid";

/// Which file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Uid,
    Gid,
}

/// One line to add.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MissingLine {
    pub kind: Kind,
    pub file: PathBuf,
    /// `root:1000:1`
    pub line: String,
}

/// `root:ID:1` (or `0:ID:1`) is present.
pub fn delegates(content: &str, id: u32) -> bool {
    content.lines().any(|l| {
        let mut f = l.trim().split(':');
        matches!(
            (f.next(), f.next(), f.next(), f.next()),
            (Some("root" | "0"), Some(start), Some(count), None)
                if start.trim().parse::<u64>() == Ok(u64::from(id))
                    && count.trim().parse::<u64>() == Ok(1)
        )
    })
}

/// The lines missing for `uid`/`gid`, given the two files' contents (`None`: file absent).
pub fn missing(
    (subuid_path, subuid): (&Path, Option<&str>),
    (subgid_path, subgid): (&Path, Option<&str>),
    uid: u32,
    gid: u32,
) -> Vec<MissingLine> {
    let mut out = Vec::new();
    if !delegates(subuid.unwrap_or(""), uid) {
        out.push(MissingLine {
            kind: Kind::Uid,
            file: subuid_path.to_path_buf(),
            line: format!("root:{uid}:1"),
        });
    }
    if !delegates(subgid.unwrap_or(""), gid) {
        out.push(MissingLine {
            kind: Kind::Gid,
            file: subgid_path.to_path_buf(),
            line: format!("root:{gid}:1"),
        });
    }
    out
}

/// The new content of a file once `line` is added (a missing final newline is supplied).
pub fn with_line(content: &str, line: &str) -> String {
    let mut out = content.to_owned();
    if !out.is_empty() && !out.ends_with('\n') {
        out.push('\n');
    }
    out.push_str(line);
    out.push('\n');
    out
}

/// The shell commands that add the lines, for a user who is not root.
pub fn sudo_commands(lines: &[MissingLine]) -> Vec<String> {
    lines
        .iter()
        .map(|m| {
            format!(
                "echo '{}' | sudo tee -a {} >/dev/null",
                m.line,
                m.file.display()
            )
        })
        .collect()
}

/// Read one file (`None` when absent).
pub fn read(path: &Path) -> io::Result<Option<String>> {
    match std::fs::read_to_string(path) {
        Ok(t) => Ok(Some(t)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Add each missing line to its file (atomically, keeping mode 0644); lines already present are
/// not added twice, so a second run changes nothing. Returns the lines actually written.
pub fn apply(lines: &[MissingLine]) -> Result<Vec<MissingLine>, crate::fs::FsError> {
    let mut written = Vec::new();
    for m in lines {
        let current = read(&m.file).map_err(|source| crate::fs::FsError::Write {
            path: m.file.clone(),
            source,
        })?;
        let current = current.unwrap_or_default();
        let id = m
            .line
            .split(':')
            .nth(1)
            .and_then(|s| s.parse::<u32>().ok())
            .unwrap_or(u32::MAX);
        if delegates(&current, id) {
            continue;
        }
        crate::fs::write_atomic(
            &m.file,
            with_line(&current, &m.line).as_bytes(),
            Some(0o644),
        )?;
        written.push(m.clone());
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_one_id_root_line_delegates() {
        let range = "root:1000000:1000000000\n";
        assert!(!delegates(range, 1000));
        assert!(delegates("root:1000000:1000000000\nroot:1000:1\n", 1000));
        assert!(delegates("0:1000:1", 1000));
        assert!(!delegates("alice:1000:1\n", 1000));
        assert!(!delegates("root:1000:2\n", 1000));
        assert!(!delegates("root:10000:1\n", 1000));
        assert!(!delegates("", 0));
    }

    #[test]
    fn missing_lines_and_the_commands_to_add_them() {
        let (u, g) = (Path::new("/etc/subuid"), Path::new("/etc/subgid"));
        let m = missing(
            (u, Some("root:1000000:1000000000\n")),
            (g, Some("root:1001:1\n")),
            1000,
            1001,
        );
        assert_eq!(
            m,
            [MissingLine {
                kind: Kind::Uid,
                file: u.to_path_buf(),
                line: "root:1000:1".into()
            }]
        );
        assert_eq!(
            sudo_commands(&m),
            ["echo 'root:1000:1' | sudo tee -a /etc/subuid >/dev/null"]
        );
        let both = missing((u, None), (g, None), 1000, 1000);
        assert_eq!(both.len(), 2);
        assert_eq!(both[1].line, "root:1000:1");
        assert_eq!(with_line("a:1:2", "root:5:1"), "a:1:2\nroot:5:1\n");
        assert_eq!(with_line("", "root:5:1"), "root:5:1\n");
    }

    #[test]
    fn apply_on_temp_files_is_idempotent_and_keeps_other_lines() {
        let d = tempfile::tempdir().unwrap();
        let (u, g) = (d.path().join("subuid"), d.path().join("subgid"));
        std::fs::write(&u, "root:1000000:1000000000").unwrap();
        let plan = missing(
            (&u, read(&u).unwrap().as_deref()),
            (&g, read(&g).unwrap().as_deref()),
            1000,
            1000,
        );
        assert_eq!(plan.len(), 2);
        assert_eq!(apply(&plan).unwrap().len(), 2);
        assert_eq!(
            std::fs::read_to_string(&u).unwrap(),
            "root:1000000:1000000000\nroot:1000:1\n"
        );
        assert_eq!(std::fs::read_to_string(&g).unwrap(), "root:1000:1\n");
        // Planned twice (e.g. two setups at once): the second apply writes nothing.
        assert!(apply(&plan).unwrap().is_empty());
        let again = missing(
            (&u, read(&u).unwrap().as_deref()),
            (&g, read(&g).unwrap().as_deref()),
            1000,
            1000,
        );
        assert!(again.is_empty());
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&u).unwrap().permissions().mode() & 0o777,
            0o644
        );
    }
}
