//! rsync exclude patterns, evaluated the way rsync does, so a manifest lists exactly what rsync
//! copied.
//!
//! Supported (rsync's "pattern matching rules"): `*` (any run of non-`/` bytes), `**` (anything,
//! `/` included), `?`, `[...]` classes (with `!`/`^` negation and ranges), a leading `/` anchoring
//! the pattern at the top of the copy, a trailing `/` matching directories only. A pattern without
//! a `/` (besides a trailing one) and without `**` matches the last path component; other
//! unanchored patterns match any tail of the path that starts at a component boundary. Filter
//! rules (`+ `/`- ` prefixes, merge files) are not supported and are rejected.

use crate::error::BackupError;
use crate::rsync::{MARKER_FILE, PARTIAL_DIR, TEMP_DIR};

#[derive(Debug, Clone)]
struct Pattern {
    glob: Vec<u8>,
    anchored: bool,
    dir_only: bool,
    full_path: bool,
}

/// A set of exclude patterns plus the built-in ones (the marker, rsync's partial directory).
#[derive(Debug, Clone, Default)]
pub struct Excludes {
    patterns: Vec<Pattern>,
    raw: Vec<String>,
}

impl Excludes {
    /// Parse user patterns (from `[defaults] backup_exclude` and `[backup] exclude`).
    pub fn new(patterns: &[String]) -> Result<Self, BackupError> {
        let mut out = Self::default();
        for p in patterns {
            if p.is_empty()
                || p.starts_with("+ ")
                || p.starts_with("- ")
                || p.starts_with(':')
                || p.starts_with(". ")
            {
                return Err(BackupError::Config(format!(
                    "backup exclude pattern {p:?} is not supported: use plain rsync --exclude patterns (no filter-rule prefixes)"
                )));
            }
            out.patterns.push(Pattern::parse(p));
            out.raw.push(p.clone());
        }
        Ok(out)
    }

    /// The user patterns, for rsync `--exclude`.
    pub fn patterns(&self) -> &[String] {
        &self.raw
    }

    /// Whether `rel` (a path relative to the copy's top, no leading `/`) is excluded.
    pub fn is_excluded(&self, rel: &[u8], is_dir: bool) -> bool {
        let name = rel.rsplit(|&b| b == b'/').next().unwrap_or(rel);
        if (is_dir && name == PARTIAL_DIR.as_bytes())
            || rel == MARKER_FILE.as_bytes()
            || (is_dir && rel == TEMP_DIR.as_bytes())
        {
            return true;
        }
        self.patterns.iter().any(|p| p.matches(rel, name, is_dir))
    }
}

impl Excludes {
    /// Whether rsync would leave `rel` out: it or one of its ancestor directories is excluded
    /// (rsync does not descend into an excluded directory).
    pub fn covers(&self, rel: &[u8], is_dir: bool) -> bool {
        if rel.is_empty() {
            return false;
        }
        for (i, b) in rel.iter().enumerate() {
            if *b == b'/' && self.is_excluded(&rel[..i], true) {
                return true;
            }
        }
        self.is_excluded(rel, is_dir)
    }
}

impl Pattern {
    fn parse(p: &str) -> Self {
        let mut s = p.as_bytes();
        let anchored = s.starts_with(b"/");
        if anchored {
            s = &s[1..];
        }
        let dir_only = s.ends_with(b"/");
        if dir_only {
            s = &s[..s.len() - 1];
        }
        let full_path = anchored || s.contains(&b'/') || s.windows(2).any(|w| w == b"**");
        Self {
            glob: s.to_vec(),
            anchored,
            dir_only,
            full_path,
        }
    }

    fn matches(&self, rel: &[u8], name: &[u8], is_dir: bool) -> bool {
        if self.dir_only && !is_dir {
            return false;
        }
        if !self.full_path {
            return glob(&self.glob, name);
        }
        if self.anchored {
            return glob(&self.glob, rel);
        }
        // Any tail starting at a component boundary.
        if glob(&self.glob, rel) {
            return true;
        }
        rel.iter()
            .enumerate()
            .any(|(i, &b)| b == b'/' && glob(&self.glob, &rel[i + 1..]))
    }
}

/// Match `text` against a glob (`*`, `**`, `?`, `[...]`).
fn glob(pat: &[u8], text: &[u8]) -> bool {
    match pat.first() {
        None => text.is_empty(),
        Some(b'*') => {
            let double = pat.get(1) == Some(&b'*');
            let rest = if double { &pat[2..] } else { &pat[1..] };
            for i in 0..=text.len() {
                if glob(rest, &text[i..]) {
                    return true;
                }
                if i < text.len() && !double && text[i] == b'/' {
                    return false;
                }
            }
            false
        }
        Some(b'?') => !text.is_empty() && text[0] != b'/' && glob(&pat[1..], &text[1..]),
        Some(b'[') => {
            let Some((matched, consumed)) = class(&pat[1..], text.first().copied()) else {
                // No closing bracket: a literal '['.
                return text.first() == Some(&b'[') && glob(&pat[1..], &text[1..]);
            };
            matched && glob(&pat[1 + consumed..], &text[1..])
        }
        Some(b'\\') if pat.len() > 1 => {
            text.first() == Some(&pat[1]) && glob(&pat[2..], &text[1..])
        }
        Some(&c) => text.first() == Some(&c) && glob(&pat[1..], &text[1..]),
    }
}

/// Evaluate a `[...]` class (pattern starts after `[`). Returns (matched, bytes consumed incl. `]`).
fn class(pat: &[u8], c: Option<u8>) -> Option<(bool, usize)> {
    let mut i = 0;
    let negate = matches!(pat.first(), Some(b'!' | b'^'));
    if negate {
        i += 1;
    }
    let mut matched = false;
    let mut first = true;
    while i < pat.len() {
        let b = pat[i];
        if b == b']' && !first {
            let ok = c.is_some_and(|c| c != b'/') && (matched != negate);
            return Some((ok, i + 1));
        }
        first = false;
        if i + 2 < pat.len() && pat[i + 1] == b'-' && pat[i + 2] != b']' {
            if let Some(c) = c
                && (b..=pat[i + 2]).contains(&c)
            {
                matched = true;
            }
            i += 3;
        } else {
            if c == Some(b) {
                matched = true;
            }
            i += 1;
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn covers_looks_at_every_ancestor() {
        let ex = Excludes::new(&["target/".to_owned(), "*.tmp".to_owned()]).unwrap();
        assert!(ex.covers(b"target", true));
        assert!(ex.covers(b"target/debug/bin", false));
        assert!(ex.covers(b"src/x.tmp", false));
        assert!(
            !ex.covers(b"target", false),
            "a file named target is not a directory"
        );
        assert!(!ex.covers(b"src/target.rs", false));
        assert!(!ex.covers(b"", true));
    }

    fn ex(p: &[&str]) -> Excludes {
        Excludes::new(&p.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap()
    }

    #[test]
    fn follows_rsync_rules() {
        let e = ex(&["target/", "*.o", "/build", "docs/*.tmp", "a/**/z", "[ab]c?"]);
        assert!(e.is_excluded(b"target", true));
        assert!(e.is_excluded(b"x/target", true));
        assert!(
            !e.is_excluded(b"target", false),
            "trailing slash: directories only"
        );
        assert!(e.is_excluded(b"x/y.o", false));
        assert!(e.is_excluded(b"build", true));
        assert!(!e.is_excluded(b"x/build", true), "leading slash anchors");
        assert!(e.is_excluded(b"docs/a.tmp", false));
        assert!(e.is_excluded(b"p/docs/a.tmp", false));
        assert!(
            !e.is_excluded(b"docs/sub/a.tmp", false),
            "* does not cross /"
        );
        assert!(e.is_excluded(b"a/1/2/z", false));
        assert!(e.is_excluded(b"bcd", false));
        assert!(!e.is_excluded(b"dcd", false));
        assert!(e.is_excluded(b".repoman-backup.json", false));
        assert!(!e.is_excluded(b"sub/.repoman-backup.json", false));
        assert!(e.is_excluded(b"sub/.repoman-partial", true));
        assert!(e.is_excluded(b".repoman-tmp", true));
        assert!(!e.is_excluded(b"sub/.repoman-tmp", true));
    }

    #[test]
    fn filter_rules_are_rejected() {
        assert!(Excludes::new(&["- foo".to_string()]).is_err());
    }
}
