//! `.tool-versions` (asdf format) as a line model that keeps every byte.
//!
//! A file is a list of [`Line`]s, each its content plus its own line ending (`\n`, `\r\n`, a
//! lone `\r` as old Mac files have, or nothing for a last line without a final newline), after an
//! optional UTF-8 byte order mark that is kept as it is. A NUL byte is an error with its position,
//! never dropped. An entry line is
//! `INDENT TOOL SEP VERSION (SEP VERSION)* TRAILING`, where `TRAILING` is whitespace and an
//! optional `# comment`. Several versions are fallbacks, tried in order (asdf semantics).
//!
//! Invariants:
//! - `render(parse(bytes)) == bytes` for every file that parses;
//! - [`ToolVersions::pin`] changes only the version tokens of one line, or inserts one line in
//!   the file's own style (indentation, separator or column alignment, line ending);
//!   [`ToolVersions::unpin`] removes only the lines declaring the tool. Inserting a line and
//!   removing it again restores the original bytes, including a missing final newline;
//! - a version with an unknown `scope:` prefix is a parse error (file:line:column), so repoman never
//!   rewrites a file it does not understand.
//!
//! When a tool is declared on several lines the first one wins, as in asdf.

use std::path::{Path, PathBuf};

use crate::error::ToolsError;

/// Version scopes (`scope:rest`) that asdf or mise understand in a version token.
pub fn known_scope(scope: &str) -> bool {
    matches!(scope, "ref" | "path" | "prefix" | "latest")
        || scope
            .strip_prefix("sub-")
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

/// Check one version token: not empty, no whitespace, not a comment, a known scope.
pub fn validate_version(v: &str) -> Result<(), ToolsError> {
    let bad = |why: &str| ToolsError::Invalid {
        what: "version",
        value: v.to_owned(),
        why: why.to_owned(),
    };
    if v.is_empty() {
        return Err(bad("it is empty"));
    }
    if v.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(bad("it contains whitespace"));
    }
    if v.starts_with('#') {
        return Err(bad("it starts with `#`, which begins a comment"));
    }
    if let Some((scope, _)) = v.split_once(':')
        && !known_scope(scope)
    {
        return Err(bad(&format!(
            "unknown scope `{scope}:` (known: ref:, path:, prefix:, latest:, sub-N:)"
        )));
    }
    Ok(())
}

/// Check a tool name as written in a manifest.
pub fn validate_tool(t: &str) -> Result<(), ToolsError> {
    let bad = |why: &str| ToolsError::Invalid {
        what: "tool name",
        value: t.to_owned(),
        why: why.to_owned(),
    };
    if t.is_empty() {
        return Err(bad("it is empty"));
    }
    if t.chars()
        .any(|c| c.is_whitespace() || c.is_control() || c == '"' || c == '\'' || c == '=')
    {
        return Err(bad("it contains whitespace, a quote or `=`"));
    }
    if t.starts_with('#') {
        return Err(bad("it starts with `#`"));
    }
    Ok(())
}

/// One parsed entry: byte ranges into the line's content.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    tool: std::ops::Range<usize>,
    versions: Vec<std::ops::Range<usize>>,
}

/// One line: content (without its ending) and the ending itself.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Line {
    content: String,
    eol: &'static str,
    entry: Option<Entry>,
}

/// A declared tool as read from the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TvEntry {
    pub tool: String,
    pub versions: Vec<String>,
    /// 1-based line number.
    pub line: usize,
}

/// A parsed `.tool-versions` file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolVersions {
    path: PathBuf,
    /// The file starts with a UTF-8 byte order mark (kept on write, never part of a tool name).
    bom: bool,
    lines: Vec<Line>,
}

fn is_ws(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\r' | '\x0b' | '\x0c')
}

/// Split `content` into (start, end) token ranges, stopping at a token that starts with `#`.
fn tokens(content: &str) -> Vec<std::ops::Range<usize>> {
    let mut out = Vec::new();
    let mut start = None;
    for (i, c) in content.char_indices() {
        match (is_ws(c), start) {
            (true, Some(s)) => {
                out.push(s..i);
                start = None;
            }
            (false, None) => {
                if c == '#' {
                    return out;
                }
                start = Some(i);
            }
            _ => {}
        }
    }
    if let Some(s) = start {
        out.push(s..content.len());
    }
    out
}

impl ToolVersions {
    /// Parse `text` read from `path` (used in error messages).
    pub fn parse(path: &Path, text: &str) -> Result<Self, ToolsError> {
        let (bom, text) = match text.strip_prefix('\u{feff}') {
            Some(t) => (true, t),
            None => (false, text),
        };
        if let Some(at) = text.find('\0') {
            let before = &text[..at];
            let line = before.matches(['\n', '\r']).count() - before.matches("\r\n").count() + 1;
            let start = before.rfind(['\n', '\r']).map_or(0, |i| i + 1);
            return Err(ToolsError::Parse {
                path: path.to_path_buf(),
                line,
                column: before[start..].chars().count() + 1,
                message: "a NUL byte: a .tool-versions file is text; remove the byte (repoman does not drop it silently)".to_owned(),
            });
        }
        let mut lines = Vec::new();
        let mut rest = text;
        let mut number = 0;
        while !rest.is_empty() {
            number += 1;
            let (raw, eol, next) = match rest.find(['\n', '\r']) {
                Some(i) if rest[i..].starts_with("\r\n") => (&rest[..i], "\r\n", &rest[i + 2..]),
                Some(i) if rest[i..].starts_with('\r') => (&rest[..i], "\r", &rest[i + 1..]),
                Some(i) => (&rest[..i], "\n", &rest[i + 1..]),
                None => (rest, "", ""),
            };
            rest = next;
            let toks = tokens(raw);
            let entry = match toks.split_first() {
                None => None,
                Some((tool, versions)) => {
                    let col = |r: &std::ops::Range<usize>| raw[..r.start].chars().count() + 1;
                    if versions.is_empty() {
                        return Err(ToolsError::Parse {
                            path: path.to_path_buf(),
                            line: number,
                            column: col(tool),
                            message: format!(
                                "`{}` has no version; write `{} VERSION` or remove the line",
                                &raw[tool.clone()],
                                &raw[tool.clone()]
                            ),
                        });
                    }
                    for v in versions {
                        let token = &raw[v.clone()];
                        if let Some((scope, _)) = token.split_once(':')
                            && !known_scope(scope)
                        {
                            return Err(ToolsError::UnknownScope {
                                path: path.to_path_buf(),
                                line: number,
                                column: col(v),
                                scope: scope.to_owned(),
                                token: token.to_owned(),
                            });
                        }
                    }
                    Some(Entry {
                        tool: tool.clone(),
                        versions: versions.to_vec(),
                    })
                }
            };
            lines.push(Line {
                content: raw.to_owned(),
                eol,
                entry,
            });
        }
        Ok(Self {
            path: path.to_path_buf(),
            bom,
            lines,
        })
    }

    /// The file's bytes, exactly.
    pub fn render(&self) -> String {
        let mut s = String::new();
        if self.bom {
            s.push('\u{feff}');
        }
        for l in &self.lines {
            s.push_str(&l.content);
            s.push_str(l.eol);
        }
        s
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Every entry in file order (duplicates included).
    pub fn entries(&self) -> Vec<TvEntry> {
        self.lines
            .iter()
            .enumerate()
            .filter_map(|(i, l)| {
                let e = l.entry.as_ref()?;
                Some(TvEntry {
                    tool: l.content[e.tool.clone()].to_owned(),
                    versions: e
                        .versions
                        .iter()
                        .map(|r| l.content[r.clone()].to_owned())
                        .collect(),
                    line: i + 1,
                })
            })
            .collect()
    }

    fn find(&self, tool: &str) -> Option<usize> {
        self.lines.iter().position(|l| {
            l.entry
                .as_ref()
                .is_some_and(|e| &l.content[e.tool.clone()] == tool)
        })
    }

    /// The line ending most lines use (`\n` when there is none or a tie).
    fn eol_style(&self) -> &'static str {
        let count = |e: &str| self.lines.iter().filter(|l| l.eol == e).count();
        let (lf, crlf, cr) = (count("\n"), count("\r\n"), count("\r"));
        if crlf > lf && crlf >= cr {
            "\r\n"
        } else if cr > lf && cr > crlf {
            "\r"
        } else {
            "\n"
        }
    }

    /// Set `tool`'s versions. Returns whether anything changed.
    pub fn pin(&mut self, tool: &str, versions: &[String]) -> Result<bool, ToolsError> {
        validate_tool(tool)?;
        if versions.is_empty() {
            return Err(ToolsError::Invalid {
                what: "version list",
                value: String::new(),
                why: "give at least one version".into(),
            });
        }
        for v in versions {
            validate_version(v)?;
        }
        match self.find(tool) {
            Some(i) => Ok(self.replace_versions(i, versions)),
            None => {
                self.insert(tool, versions);
                Ok(true)
            }
        }
    }

    fn replace_versions(&mut self, i: usize, new: &[String]) -> bool {
        let line = &self.lines[i];
        let Some(entry) = &line.entry else {
            return false;
        };
        let c = &line.content;
        let old: Vec<&str> = entry.versions.iter().map(|r| &c[r.clone()]).collect();
        if old.iter().copied().eq(new.iter().map(String::as_str)) {
            return false;
        }
        let v = &entry.versions;
        let first_sep = &c[entry.tool.end..v[0].start];
        let default_sep = if v.len() >= 2 {
            c[v[0].end..v[1].start].to_owned()
        } else if first_sep.contains('\t') {
            "\t".to_owned()
        } else {
            " ".to_owned()
        };
        let mut out = String::with_capacity(c.len() + 16);
        out.push_str(&c[..v[0].start]);
        for (k, ver) in new.iter().enumerate() {
            if k > 0 {
                if k < v.len() {
                    out.push_str(&c[v[k - 1].end..v[k].start]);
                } else {
                    out.push_str(&default_sep);
                }
            }
            out.push_str(ver);
        }
        out.push_str(&c[v[v.len() - 1].end..]);
        let eol = line.eol;
        let path = self.path.clone();
        // Re-parse the one line so the ranges stay right; it cannot fail (tokens were validated).
        if let Ok(parsed) = Self::parse(&path, &out)
            && let Some(mut l) = parsed.lines.into_iter().next()
        {
            l.eol = eol;
            self.lines[i] = l;
        }
        true
    }

    /// Append a line for a new tool after the last entry, in the style of that entry.
    fn insert(&mut self, tool: &str, versions: &[String]) {
        let reference = self.lines.iter().rposition(|l| l.entry.is_some());
        let (indent, first_sep, next_sep) = match reference {
            Some(r) => {
                let l = &self.lines[r];
                let e = l
                    .entry
                    .as_ref()
                    .map(|e| (e.tool.clone(), e.versions.clone()));
                match e {
                    Some((t, v)) => {
                        let indent = l.content[..t.start].to_owned();
                        let sep = l.content[t.end..v[0].start].to_owned();
                        let next = if v.len() >= 2 {
                            l.content[v[0].end..v[1].start].to_owned()
                        } else if sep.contains('\t') {
                            "\t".to_owned()
                        } else {
                            " ".to_owned()
                        };
                        (indent, self.aligned_sep(tool).unwrap_or(sep), next)
                    }
                    None => (String::new(), " ".to_owned(), " ".to_owned()),
                }
            }
            None => (String::new(), " ".to_owned(), " ".to_owned()),
        };
        let mut content = indent;
        content.push_str(tool);
        content.push_str(&first_sep);
        content.push_str(&versions.join(&next_sep));
        let eol = self.eol_style();
        let at = reference.map(|r| r + 1).unwrap_or(self.lines.len());
        let mut new_eol = eol;
        if at == self.lines.len() {
            // Appending at the very end: keep the file's choice about a final newline.
            match self.lines.last_mut() {
                Some(last) if last.eol.is_empty() => {
                    last.eol = eol;
                    new_eol = "";
                }
                _ => {}
            }
        }
        let path = self.path.clone();
        if let Ok(parsed) = Self::parse(&path, &content)
            && let Some(mut l) = parsed.lines.into_iter().next()
        {
            l.eol = new_eol;
            self.lines.insert(at, l);
        }
    }

    /// When every entry puts its first version at the same column using spaces (and at least one
    /// pads with more than one space), the separator that puts `tool`'s version there too.
    fn aligned_sep(&self, tool: &str) -> Option<String> {
        let entries: Vec<(&Line, &Entry)> = self
            .lines
            .iter()
            .filter_map(|l| l.entry.as_ref().map(|e| (l, e)))
            .collect();
        if entries.len() < 2 {
            return None;
        }
        let col = |l: &Line, e: &Entry| l.content[..e.versions[0].start].chars().count();
        let (l0, e0) = entries[0];
        let column = col(l0, e0);
        let mut padded = false;
        for (l, e) in &entries {
            let sep = &l.content[e.tool.end..e.versions[0].start];
            if col(l, e) != column || !sep.bytes().all(|b| b == b' ') {
                return None;
            }
            padded |= sep.len() > 1;
        }
        if !padded {
            return None;
        }
        let indent = &l0.content[..e0.tool.start];
        let used = indent.chars().count() + tool.chars().count();
        Some(" ".repeat(column.saturating_sub(used).max(1)))
    }

    /// Remove every line declaring `tool`. Returns whether anything changed.
    pub fn unpin(&mut self, tool: &str) -> bool {
        let before = self.lines.len();
        let last_had_no_eol = self.lines.last().is_some_and(|l| l.eol.is_empty());
        self.lines.retain(|l| {
            l.entry
                .as_ref()
                .is_none_or(|e| &l.content[e.tool.clone()] != tool)
        });
        if self.lines.len() == before {
            return false;
        }
        // The file ended without a newline and its last line went: the new last line ends the
        // file the same way.
        if last_had_no_eol
            && let Some(last) = self.lines.last_mut()
            && !last.eol.is_empty()
        {
            last.eol = "";
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> ToolVersions {
        ToolVersions::parse(Path::new(".tool-versions"), s).unwrap()
    }

    #[test]
    fn cr_only_line_endings_keep_every_tool_on_pin() {
        let text = "nodejs 20.1.0\rpython 3.12\rruby 3.3\r";
        let mut t = p(text);
        assert_eq!(t.render(), text);
        assert!(t.pin("python", &["3.13".into()]).unwrap());
        assert_eq!(t.render(), "nodejs 20.1.0\rpython 3.13\rruby 3.3\r");
        assert!(t.pin("go", &["1.23".into()]).unwrap());
        assert_eq!(
            t.render(),
            "nodejs 20.1.0\rpython 3.13\rruby 3.3\rgo 1.23\r",
            "a new line takes the file's own line ending"
        );
        assert!(t.unpin("go"));
        assert_eq!(t.render(), "nodejs 20.1.0\rpython 3.13\rruby 3.3\r");
    }

    #[test]
    fn a_byte_order_mark_is_kept_and_is_not_part_of_the_first_tool() {
        let text = "\u{feff}nodejs 20.1.0\npython 3.12\n";
        let mut t = p(text);
        assert_eq!(t.render(), text);
        assert!(t.pin("nodejs", &["22.0.0".into()]).unwrap());
        assert_eq!(t.render(), "\u{feff}nodejs 22.0.0\npython 3.12\n");
        assert_eq!(
            t.render().matches("nodejs").count(),
            1,
            "no second entry for the first tool"
        );
    }

    #[test]
    fn a_nul_byte_is_an_error_with_its_position() {
        let err = ToolVersions::parse(
            Path::new(".tool-versions"),
            "nodejs 20.1.0\r\npython 3.\u{0}12\n",
        )
        .unwrap_err();
        match err {
            ToolsError::Parse {
                line,
                column,
                message,
                ..
            } => {
                assert_eq!((line, column), (2, 10), "{message}");
                assert!(message.contains("NUL"), "{message}");
            }
            other => panic!("expected a parse error, got {other}"),
        }
    }

    #[test]
    fn round_trips_every_byte() {
        for s in [
            "",
            "\n",
            "a 1",
            "a 1\r\nb\t2 3  # c \r\n\n# x\n  ",
            "\t nodejs  20.1.0\t18  \n",
        ] {
            assert_eq!(p(s).render(), s);
        }
    }

    #[test]
    fn reads_fallbacks_and_comments() {
        let t = p("# top\nnodejs 20.1.0 18 # lts\npython\tsystem\nrust ref:abc path:/x\n");
        let e = t.entries();
        assert_eq!(e[0].tool, "nodejs");
        assert_eq!(e[0].versions, ["20.1.0", "18"]);
        assert_eq!(e[0].line, 2);
        assert_eq!(e[1].versions, ["system"]);
        assert_eq!(e[2].versions, ["ref:abc", "path:/x"]);
    }

    #[test]
    fn unknown_scope_is_located() {
        let e =
            ToolVersions::parse(Path::new("/p/.tool-versions"), "a 1\nnode  foo:20\n").unwrap_err();
        assert_eq!(
            e.to_string().split(" (known").next().unwrap(),
            "/p/.tool-versions:2:7: unknown version scope `foo:` in `foo:20`"
        );
        let e = ToolVersions::parse(Path::new("t"), "x\n")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("t:1:1: `x` has no version"), "{e}");
    }

    #[test]
    fn pin_changes_only_version_tokens() {
        let mut t = p("nodejs  20.1.0\t18 # keep\r\npython 3.12\r\n");
        assert!(t.pin("nodejs", &["22.0.0".into()]).unwrap());
        assert_eq!(t.render(), "nodejs  22.0.0 # keep\r\npython 3.12\r\n");
        assert!(
            t.pin("nodejs", &["22.0.0".into(), "20".into(), "18".into()])
                .unwrap()
        );
        assert_eq!(t.render(), "nodejs  22.0.0 20 18 # keep\r\npython 3.12\r\n");
        assert!(!t.pin("python", &["3.12".into()]).unwrap());
    }

    #[test]
    fn new_tool_follows_alignment_and_endings() {
        let mut t = p("nodejs    20\npython    3.12\n# end\n");
        t.pin("go", &["1.22".into()]).unwrap();
        assert_eq!(
            t.render(),
            "nodejs    20\npython    3.12\ngo        1.22\n# end\n"
        );
        let mut t = p("a\t1\r\nb\t2");
        t.pin("c", &["3".into()]).unwrap();
        assert_eq!(t.render(), "a\t1\r\nb\t2\r\nc\t3");
        assert!(t.unpin("c"));
        assert_eq!(t.render(), "a\t1\r\nb\t2");
    }
}
