//! mise TOML files (`mise.toml`, `.mise.toml`, `mise.local.toml`, `.config/mise/config.toml`, ...).
//!
//! Reading uses `toml_edit`'s span-carrying [`toml_edit::Document`]. Editing does not re-serialise
//! the document: it splices new bytes into the original text at the spans of the tokens it must
//! change, so every other byte (comments, key/value decor, alignment, inline tables, quoting, line
//! endings) is untouched by construction.
//!
//! `[tools]` values may be a string (`node = "20"`), an array of fallbacks (`["20", "18"]`), an
//! inline table with `version` (`{ version = "20", os = ["linux"] }`) or a sub-table
//! `[tools.node]` with `version`. A new tool is inserted as one `key = "version"` line after the
//! last `[tools]` entry, copying that entry's indentation, spacing around `=` (or the column
//! alignment of `=`), quote style and line ending. Removing that line again restores the original
//! bytes. Only a file without a `[tools]` table gets a new `[tools]` header, which `unpin` removes
//! again with the table's last entry, so `unpin(pin(x)) == x` byte for byte.

use std::ops::Range;
use std::path::{Path, PathBuf};

use toml_edit::{Document, Item, Value};

use crate::error::ToolsError;
use crate::manifest::tool_versions::{validate_tool, validate_version};

/// A declared tool as read from a mise file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MiseEntry {
    pub tool: String,
    pub versions: Vec<String>,
    pub line: usize,
}

/// A parsed mise file: the original text and its span-carrying document.
#[derive(Debug)]
pub struct MiseFile {
    path: PathBuf,
    text: String,
    doc: Document<String>,
}

/// Where a tool's version lives in the text.
enum VersionNode {
    /// A string token (span includes the quotes).
    Str(Range<usize>),
    /// An array; element spans (strings only) and the span of the whole array.
    Array {
        whole: Range<usize>,
        elems: Vec<Range<usize>>,
    },
}

fn line_start(text: &str, at: usize) -> usize {
    text[..at].rfind('\n').map(|i| i + 1).unwrap_or(0)
}

/// End of the line containing `at`, including its line ending (or the end of the text).
fn line_end_incl(text: &str, at: usize) -> usize {
    text[at..]
        .find('\n')
        .map(|i| at + i + 1)
        .unwrap_or(text.len())
}

fn parse_err(path: &Path, text: &str, e: &toml_edit::TomlError) -> ToolsError {
    let (line, column) = e
        .span()
        .map(|s| repoman_core::registry::line_col(text, s.start))
        .unwrap_or((1, 1));
    let message = e
        .message()
        .lines()
        .next()
        .unwrap_or("invalid TOML")
        .trim()
        .to_owned();
    ToolsError::Parse {
        path: path.to_path_buf(),
        line,
        column,
        message,
    }
}

/// Quote `s` the way `like` (an existing string token) is quoted.
fn quote_like(s: &str, like: Option<&str>) -> String {
    let literal = like.is_some_and(|l| l.starts_with('\'') && !l.starts_with("'''"));
    if literal && !s.contains('\'') {
        format!("'{s}'")
    } else {
        let mut out = String::from("\"");
        for c in s.chars() {
            match c {
                '"' => out.push_str("\\\""),
                '\\' => out.push_str("\\\\"),
                c => out.push(c),
            }
        }
        out.push('"');
        out
    }
}

fn key_repr(k: &str) -> String {
    if !k.is_empty()
        && k.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        k.to_owned()
    } else {
        quote_like(k, None)
    }
}

fn versions_of_value(v: &Value) -> Vec<String> {
    match v {
        Value::String(s) => vec![s.value().clone()],
        Value::Array(a) => a
            .iter()
            .filter_map(|e| match e {
                Value::String(s) => Some(s.value().clone()),
                Value::InlineTable(t) => {
                    t.get("version").and_then(Value::as_str).map(str::to_owned)
                }
                _ => None,
            })
            .collect(),
        Value::InlineTable(t) => t.get("version").map(versions_of_value).unwrap_or_default(),
        _ => Vec::new(),
    }
}

impl MiseFile {
    /// Parse `text` read from `path`. Malformed TOML is a [`ToolsError::Parse`] with line and
    /// column; a version with an unknown scope is refused like in `.tool-versions`.
    pub fn parse(path: &Path, text: &str) -> Result<Self, ToolsError> {
        // toml_edit 0.23 panics on some malformed inputs (found by cargo-fuzz, `mise_toml`):
        // check the syntax with `toml` first.
        repoman_core::registry::toml_syntax_check(text).map_err(|e| {
            let (line, column) = e
                .span()
                .map(|s| repoman_core::registry::line_col(text, s.start))
                .unwrap_or((1, 1));
            let message = e.message().lines().next().unwrap_or("invalid TOML").trim();
            ToolsError::Parse {
                path: path.to_path_buf(),
                line,
                column,
                message: message.to_owned(),
            }
        })?;
        let doc = Document::parse(text.to_owned()).map_err(|e| parse_err(path, text, &e))?;
        let file = Self {
            path: path.to_path_buf(),
            text: text.to_owned(),
            doc,
        };
        for e in file.entries() {
            for v in &e.versions {
                if let Some((scope, _)) = v.split_once(':')
                    && !crate::manifest::tool_versions::known_scope(scope)
                {
                    return Err(ToolsError::UnknownScope {
                        path: path.to_path_buf(),
                        line: e.line,
                        column: 1,
                        scope: scope.to_owned(),
                        token: v.clone(),
                    });
                }
            }
        }
        Ok(file)
    }

    pub fn render(&self) -> String {
        self.text.clone()
    }

    /// `[tools]` as a table, a dotted `tools.x = ...` table or an inline `tools = { ... }`.
    fn tools(&self) -> Option<&dyn toml_edit::TableLike> {
        self.doc
            .as_table()
            .get("tools")
            .and_then(Item::as_table_like)
    }

    /// `[tools]` when it is a real (header or dotted) table, not an inline one.
    fn tools_table(&self) -> Option<&toml_edit::Table> {
        self.doc.as_table().get("tools").and_then(Item::as_table)
    }

    /// Every `[tools]` entry in file order.
    pub fn entries(&self) -> Vec<MiseEntry> {
        let Some(tools) = self.tools() else {
            return Vec::new();
        };
        let mut out: Vec<(usize, MiseEntry)> = tools
            .iter()
            .filter_map(|(k, item)| {
                let versions = match item {
                    Item::Value(v) => versions_of_value(v),
                    Item::Table(t) => t
                        .get("version")
                        .and_then(Item::as_value)
                        .map(versions_of_value)?,
                    _ => return None,
                };
                let at = tools
                    .key(k)
                    .and_then(toml_edit::Key::span)
                    .map(|s| s.start)
                    .unwrap_or(0);
                let line = repoman_core::registry::line_col(&self.text, at).0;
                Some((
                    at,
                    MiseEntry {
                        tool: k.to_owned(),
                        versions,
                        line,
                    },
                ))
            })
            .collect();
        out.sort_by_key(|(at, _)| *at);
        out.into_iter().map(|(_, e)| e).collect()
    }

    fn version_node(&self, tool: &str) -> Result<Option<VersionNode>, ToolsError> {
        let Some(tools) = self.tools() else {
            return Ok(None);
        };
        let Some(item) = tools.get(tool) else {
            return Ok(None);
        };
        let unsupported = |what: &str| ToolsError::Unsupported {
            path: self.path.clone(),
            message: format!("`{tool}` in [tools] {what}; edit it by hand"),
        };
        let value = match item {
            Item::Value(Value::InlineTable(t)) => t
                .get("version")
                .ok_or_else(|| unsupported("has no `version` key"))?,
            Item::Value(v) => v,
            Item::Table(t) => t
                .get("version")
                .and_then(Item::as_value)
                .ok_or_else(|| unsupported("has no `version` key"))?,
            _ => return Err(unsupported("is not a string, array or table")),
        };
        let span = value.span().ok_or_else(|| unsupported("has no location"))?;
        match value {
            Value::String(_) => Ok(Some(VersionNode::Str(span))),
            Value::Array(a) => {
                let mut elems = Vec::new();
                for e in a.iter() {
                    match (e, e.span()) {
                        (Value::String(_), Some(s)) => elems.push(s),
                        _ => return Err(unsupported("has an array with non-string versions")),
                    }
                }
                Ok(Some(VersionNode::Array { whole: span, elems }))
            }
            _ => Err(unsupported("has a version that is not a string or array")),
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
        let current = self
            .entries()
            .into_iter()
            .find(|e| e.tool == tool)
            .map(|e| e.versions);
        if current.as_deref() == Some(versions) {
            return Ok(false);
        }
        let new_text = match self.version_node(tool)? {
            Some(node) => self.splice_versions(node, versions),
            None => self.insert(tool, versions)?,
        };
        *self = Self::parse(&self.path, &new_text)?;
        Ok(true)
    }

    fn splice_versions(&self, node: VersionNode, new: &[String]) -> String {
        let t = &self.text;
        let (range, replacement) = match node {
            VersionNode::Str(span) => {
                let like = &t[span.clone()];
                let r = if new.len() == 1 {
                    quote_like(&new[0], Some(like))
                } else {
                    let items: Vec<String> =
                        new.iter().map(|v| quote_like(v, Some(like))).collect();
                    format!("[{}]", items.join(", "))
                };
                (span, r)
            }
            VersionNode::Array { whole, elems } if elems.is_empty() => {
                let items: Vec<String> = new.iter().map(|v| quote_like(v, None)).collect();
                (whole, format!("[{}]", items.join(", ")))
            }
            VersionNode::Array { elems, .. } => {
                let like = &t[elems[0].clone()];
                let default_sep = if elems.len() >= 2 {
                    &t[elems[0].end..elems[1].start]
                } else {
                    ", "
                };
                let mut out = String::new();
                for (k, v) in new.iter().enumerate() {
                    if k > 0 {
                        out.push_str(if k < elems.len() {
                            &t[elems[k - 1].end..elems[k].start]
                        } else {
                            default_sep
                        });
                    }
                    out.push_str(&quote_like(v, Some(like)));
                }
                (elems[0].start..elems[elems.len() - 1].end, out)
            }
        };
        let mut s = String::with_capacity(t.len() + replacement.len());
        s.push_str(&t[..range.start]);
        s.push_str(&replacement);
        s.push_str(&t[range.end..]);
        s
    }

    fn eol_style(&self) -> &'static str {
        let crlf = self.text.matches("\r\n").count();
        let lf = self.text.matches('\n').count() - crlf;
        if crlf > lf { "\r\n" } else { "\n" }
    }

    /// Spans of the `[tools]` entries whose value sits on the key's line: (key span, value span).
    fn value_entries(&self) -> Vec<(Range<usize>, Range<usize>)> {
        let Some(tools) = self.tools() else {
            return Vec::new();
        };
        let mut v: Vec<_> = tools
            .iter()
            .filter_map(|(k, item)| {
                let val = item.as_value()?;
                let key = tools.key(k)?;
                Some((key.span()?, val.span()?))
            })
            .collect();
        v.sort_by_key(|(k, _)| k.start);
        v
    }

    fn insert(&self, tool: &str, versions: &[String]) -> Result<String, ToolsError> {
        let t = &self.text;
        let eol = self.eol_style();
        if self.tools().is_some() && self.tools_table().is_none() {
            return Err(ToolsError::Unsupported {
                path: self.path.clone(),
                message: format!("`tools` is an inline table; add `{tool}` to it by hand"),
            });
        }
        let dotted = self.tools_table().is_some_and(|tb| tb.is_dotted());
        let entries = self.value_entries();
        let explicit_tools = self
            .tools_table()
            .filter(|tb| !tb.is_implicit() && !tb.is_dotted() && tb.span().is_some());
        let (at, line_text) = match (entries.last(), explicit_tools) {
            (Some((key, val)), _) => {
                let ls = line_start(t, key.start);
                let indent = &t[ls..key.start];
                // Whitespace, or the `tools.` prefix of dotted keys (`tools.node = "20"`).
                let indent = if indent.bytes().all(|b| b == b' ' || b == b'\t') || dotted {
                    indent
                } else {
                    ""
                };
                let between = &t[key.end..val.start];
                let between = self
                    .aligned_between(&entries, tool)
                    .unwrap_or_else(|| between.to_owned());
                let like = &t[val.clone()];
                let like = (like.starts_with('"') || like.starts_with('\'')).then_some(like);
                let value = if versions.len() == 1 {
                    quote_like(&versions[0], like)
                } else {
                    let items: Vec<String> = versions.iter().map(|v| quote_like(v, like)).collect();
                    format!("[{}]", items.join(", "))
                };
                let line = format!("{indent}{}{between}{value}", key_repr(tool));
                (line_end_incl(t, val.end), line)
            }
            (None, Some(tb)) => {
                let header = tb.span().unwrap_or(0..0);
                let line = format!("{} = {}", key_repr(tool), value_text(versions));
                (line_end_incl(t, header.start), line)
            }
            (None, None) => {
                // A blank line before the new table, except after a last line without a newline
                // (which only gets its line ending): `unpin` tells the two apart to give back the
                // original bytes when it removes the table's last entry.
                let mut s = t.clone();
                if !s.is_empty() {
                    s.push_str(eol);
                }
                s.push_str(&format!(
                    "[tools]{eol}{} = {}{eol}",
                    key_repr(tool),
                    value_text(versions)
                ));
                return Ok(s);
            }
        };
        let mut s = String::with_capacity(t.len() + line_text.len() + 2);
        s.push_str(&t[..at]);
        if at == t.len() && !t.ends_with('\n') {
            // The anchor line ends the file without a newline: the new line takes that place.
            s.push_str(eol);
            s.push_str(&line_text);
        } else {
            s.push_str(&line_text);
            s.push_str(eol);
        }
        s.push_str(&t[at..]);
        Ok(s)
    }

    /// When all entries put `=` at the same column and at least one pads its key, the text
    /// between a new key and its value that keeps that alignment.
    fn aligned_between(
        &self,
        entries: &[(Range<usize>, Range<usize>)],
        tool: &str,
    ) -> Option<String> {
        if entries.len() < 2 {
            return None;
        }
        let t = &self.text;
        let mut column = None;
        let mut padded = false;
        let mut after_eq = None;
        for (k, v) in entries {
            let between = &t[k.end..v.start];
            let eq = between.find('=')?;
            if !between[..eq].bytes().all(|b| b == b' ') {
                return None;
            }
            padded |= eq > 1;
            let col = t[line_start(t, k.start)..k.end].chars().count() + eq;
            if *column.get_or_insert(col) != col {
                return None;
            }
            after_eq.get_or_insert_with(|| between[eq..].to_owned());
        }
        if !padded {
            return None;
        }
        let (k0, _) = &entries[entries.len() - 1];
        let indent = t[line_start(t, k0.start)..k0.start].chars().count();
        let used = indent + key_repr(tool).chars().count();
        Some(format!(
            "{}{}",
            " ".repeat(column?.saturating_sub(used).max(1)),
            after_eq?
        ))
    }

    /// Remove `tool` from `[tools]`. Returns whether anything changed.
    pub fn unpin(&mut self, tool: &str) -> Result<bool, ToolsError> {
        let Some(tools) = self.tools() else {
            return Ok(false);
        };
        let Some(item) = tools.get(tool) else {
            return Ok(false);
        };
        let unsupported = |what: &str| ToolsError::Unsupported {
            path: self.path.clone(),
            message: format!("`{tool}` {what}; remove it by hand"),
        };
        let val = match item {
            Item::Value(v) => v,
            _ => return Err(unsupported("is declared as a table [tools.NAME]")),
        };
        let key = tools.key(tool).ok_or_else(|| unsupported("has no key"))?;
        let (Some(ks), Some(vs)) = (key.span(), val.span()) else {
            return Err(unsupported("has no location"));
        };
        let t = &self.text;
        let start = line_start(t, ks.start);
        let end = line_end_incl(t, vs.end);
        let prefix = t[start..ks.start].trim();
        let dotted_prefix =
            self.tools_table().is_some_and(|tb| tb.is_dotted()) && prefix.ends_with('.');
        if (!prefix.is_empty() && !dotted_prefix) || !after_value_is_trailing(&t[vs.end..end]) {
            return Err(unsupported("shares its line with other TOML"));
        }
        let mut s = String::with_capacity(t.len());
        if end == t.len() && !t.ends_with('\n') && start > 0 {
            // Removing the last line of a file without a final newline: the line before becomes
            // the last one and loses its line ending, as it was before the line was added.
            let cut = if t[..start].ends_with("\r\n") {
                start - 2
            } else {
                start - 1
            };
            s.push_str(&t[..cut]);
        } else {
            s.push_str(&t[..start]);
            s.push_str(&t[end..]);
        }
        let s = drop_table_pin_created(s);
        *self = Self::parse(&self.path, &s)?;
        Ok(true)
    }
}

/// After `unpin` removed an entry: a bare `[tools]` header left empty at the end of the file is
/// the one `pin` added to a file without a `[tools]` table, so it goes too, with the line ending
/// `pin` put before it, and the file is the one it was before the pin (`pin` adds a blank line
/// only after a last line that had its newline). A file that itself ended with an empty `[tools]`
/// table cannot be told apart and loses that header: an empty table means the same as none.
fn drop_table_pin_created(s: String) -> String {
    let Some(body) = s
        .strip_suffix("[tools]\n")
        .or_else(|| s.strip_suffix("[tools]\r\n"))
    else {
        return s;
    };
    let header_at = body.len();
    let is_that_table = Document::parse(s.as_str()).is_ok_and(|d| {
        d.as_table()
            .get("tools")
            .and_then(Item::as_table)
            .is_some_and(|t| {
                t.is_empty() && !t.is_dotted() && t.span().map(|r| r.start) == Some(header_at)
            })
    });
    if !is_that_table {
        return s;
    }
    if body.is_empty() {
        return String::new();
    }
    match body
        .strip_suffix("\r\n")
        .or_else(|| body.strip_suffix('\n'))
    {
        Some(before) => before.to_owned(),
        None => s,
    }
}

/// Whether the rest of a line after a value is whitespace, an optional comment and the ending.
fn after_value_is_trailing(rest: &str) -> bool {
    let r = rest.trim_start_matches([' ', '\t']);
    r.is_empty() || r.starts_with('#') || r == "\n" || r == "\r\n"
}

fn value_text(versions: &[String]) -> String {
    if versions.len() == 1 {
        quote_like(&versions[0], None)
    } else {
        let items: Vec<String> = versions.iter().map(|v| quote_like(v, None)).collect();
        format!("[{}]", items.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> MiseFile {
        MiseFile::parse(Path::new("mise.toml"), s).unwrap()
    }

    #[test]
    fn reads_all_value_shapes() {
        let f = p(
            "[tools]\nnode = \"20\"\npython = ['3.12', '3.11']\ngo = { version = \"1.22\", os = [\"linux\"] }\n[tools.rust]\nversion = \"1.80\"\n",
        );
        let e = f.entries();
        let got: Vec<(&str, Vec<&str>)> = e
            .iter()
            .map(|e| {
                (
                    e.tool.as_str(),
                    e.versions.iter().map(String::as_str).collect(),
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                ("node", vec!["20"]),
                ("python", vec!["3.12", "3.11"]),
                ("go", vec!["1.22"]),
                ("rust", vec!["1.80"])
            ]
        );
        assert_eq!(e[3].line, 5);
    }

    #[test]
    fn pin_splices_only_the_token() {
        let mut f = p(
            "[tools]\nnode   =   'lts'   # pinned\ngo = { version = \"1.21\" , os = [\"linux\"] }\npy = [ \"3.12\" ,  \"3.11\" ]\n",
        );
        f.pin("node", &["22".into()]).unwrap();
        f.pin("go", &["1.22".into()]).unwrap();
        f.pin("py", &["3.13".into()]).unwrap();
        assert_eq!(
            f.render(),
            "[tools]\nnode   =   '22'   # pinned\ngo = { version = \"1.22\" , os = [\"linux\"] }\npy = [ \"3.13\" ]\n"
        );
        f.pin("py", &["3.13".into(), "3.12".into()]).unwrap();
        assert!(
            f.render().contains("py = [ \"3.13\", \"3.12\" ]"),
            "{}",
            f.render()
        );
    }

    #[test]
    fn dotted_and_inline_tools_tables() {
        let s = "tools.node = \"20\"\n[env]\nA = \"1\"\n";
        let mut f = p(s);
        assert_eq!(f.entries()[0].versions, ["20"]);
        f.pin("node", &["22".into()]).unwrap();
        assert_eq!(f.render(), "tools.node = \"22\"\n[env]\nA = \"1\"\n");
        f.pin("go", &["1.22".into()]).unwrap();
        assert_eq!(
            f.render(),
            "tools.node = \"22\"\ntools.go = \"1.22\"\n[env]\nA = \"1\"\n"
        );
        f.unpin("go").unwrap();
        assert_eq!(f.render(), "tools.node = \"22\"\n[env]\nA = \"1\"\n");

        let mut f = p("tools = { node = \"20\" }\n");
        assert_eq!(f.entries()[0].versions, ["20"]);
        f.pin("node", &["21".into()]).unwrap();
        assert_eq!(f.render(), "tools = { node = \"21\" }\n");
        assert!(
            f.pin("go", &["1".into()])
                .unwrap_err()
                .to_string()
                .contains("inline table")
        );
        assert!(f.unpin("node").is_err());
        assert_eq!(f.render(), "tools = { node = \"21\" }\n");
    }

    #[test]
    fn malformed_toml_is_located() {
        let e = MiseFile::parse(Path::new("/x/mise.toml"), "[tools]\nnode = \"20\nx = 1\n")
            .unwrap_err();
        let s = e.to_string();
        assert!(s.starts_with("/x/mise.toml:2:"), "{s}");
    }

    #[test]
    fn insert_and_remove_restore_bytes() {
        for s in [
            "[tools]\r\nnode = \"20\" # c\r\n\r\n[env]\r\nA = \"1\"\r\n",
            "[tools]\nnode = \"20\"",
            "# head\n[tools]\n\n[env]\n",
            "[tools]\n  node    = '20'\n  python  = '3'\n",
        ] {
            let mut f = p(s);
            f.pin("zig", &["0.13".into()]).unwrap();
            assert_ne!(f.render(), s);
            f.unpin("zig").unwrap();
            assert_eq!(f.render(), s);
        }
        let mut f = p("[tools]\n  node    = '20'\n  python  = '3'\n");
        f.pin("go", &["1".into()]).unwrap();
        assert_eq!(
            f.render(),
            "[tools]\n  node    = '20'\n  python  = '3'\n  go      = '1'\n"
        );
    }

    #[test]
    fn fuzz_found_toml_inputs_are_errors_not_panics() {
        // cargo-fuzz `mise_toml`: toml_edit 0.23 panicked on these ("all items have spans").
        for input in ["==*#+\r.==.{", "==={%={A\r[]...\x04\x00\x00.\t\x00"] {
            let err = MiseFile::parse(Path::new(".mise.toml"), input).unwrap_err();
            assert!(err.to_string().contains(".mise.toml:1:"), "{err}");
        }
    }
}
