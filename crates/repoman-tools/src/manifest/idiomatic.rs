//! Idiomatic version files: one tool each, read-only.
//!
//! `.nvmrc` / `.node-version` (node; a leading `v` is kept as written), `.python-version` (python;
//! several lines are fallbacks), `.ruby-version`, `.go-version`, `rust-toolchain` (plain channel)
//! and `rust-toolchain.toml` (`[toolchain] channel`). Blank lines and `#` comments are skipped.

use std::path::Path;

use crate::error::ToolsError;
use crate::manifest::Declaration;

/// File name and the tool it declares.
pub const FILES: &[(&str, &str)] = &[
    (".nvmrc", "node"),
    (".node-version", "node"),
    (".python-version", "python"),
    (".ruby-version", "ruby"),
    (".go-version", "go"),
    ("rust-toolchain.toml", "rust"),
    ("rust-toolchain", "rust"),
];

/// The tool an idiomatic file name declares.
pub fn tool_for(name: &str) -> Option<&'static str> {
    FILES.iter().find(|(f, _)| *f == name).map(|(_, t)| *t)
}

/// Parse an idiomatic file. `None` when it declares nothing (empty or comments only).
pub fn parse(path: &Path, text: &str) -> Result<Option<Declaration>, ToolsError> {
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default();
    let Some(tool) = tool_for(name) else {
        return Ok(None);
    };
    if name == "rust-toolchain.toml" {
        let doc: toml_edit::Document<String> = toml_edit::Document::parse(text.to_owned())
            .map_err(|e| {
                let (line, column) = e
                    .span()
                    .map(|s| repoman_core::registry::line_col(text, s.start))
                    .unwrap_or((1, 1));
                ToolsError::Parse {
                    path: path.to_path_buf(),
                    line,
                    column,
                    message: e
                        .message()
                        .lines()
                        .next()
                        .unwrap_or("invalid TOML")
                        .to_owned(),
                }
            })?;
        let channel = doc
            .as_table()
            .get("toolchain")
            .and_then(|t| t.get("channel"));
        let Some(item) = channel else { return Ok(None) };
        let line = item
            .span()
            .map(|s| repoman_core::registry::line_col(text, s.start).0)
            .unwrap_or(1);
        return Ok(item.as_str().map(|c| Declaration {
            tool: tool.into(),
            versions: vec![c.to_owned()],
            line,
        }));
    }
    let mut versions = Vec::new();
    let mut first_line = 0;
    for (i, l) in text.lines().enumerate() {
        let l = l.split('#').next().unwrap_or("").trim();
        if l.is_empty() {
            continue;
        }
        if first_line == 0 {
            first_line = i + 1;
        }
        versions.extend(l.split_whitespace().map(str::to_owned));
        if tool != "python" {
            break;
        }
    }
    Ok((!versions.is_empty()).then(|| Declaration {
        tool: tool.into(),
        versions,
        line: first_line,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_each_kind() {
        let d = |n: &str, t: &str| {
            parse(Path::new(n), t)
                .unwrap()
                .map(|d| (d.tool, d.versions, d.line))
        };
        assert_eq!(
            d(".nvmrc", "# c\nv20.11.0\n"),
            Some(("node".into(), vec!["v20.11.0".into()], 2))
        );
        assert_eq!(
            d(".python-version", "3.12\n3.11\n"),
            Some(("python".into(), vec!["3.12".into(), "3.11".into()], 1))
        );
        assert_eq!(
            d("rust-toolchain.toml", "[toolchain]\nchannel = \"1.80\"\n"),
            Some(("rust".into(), vec!["1.80".into()], 2))
        );
        assert_eq!(d(".ruby-version", "\n"), None);
        assert!(parse(Path::new("rust-toolchain.toml"), "[toolchain\n").is_err());
    }
}
