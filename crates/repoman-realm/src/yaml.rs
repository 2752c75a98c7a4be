//! Reading YAML and JSON documents from disk with input budgets.
//!
//! Every realm file, and every schema given to `realm diff`, goes through [`load_value`] /
//! [`load`]: a size cap before reading, then serde-saphyr with a parser-event budget and alias
//! limits (a "billion laughs" document is refused, not expanded), duplicate keys refused, and
//! errors reported as `file:line:column: message`.

use serde::de::DeserializeOwned;
use serde_json::Value;
use std::path::Path;

/// Largest file repoman reads as a realm document or schema (16 MiB).
pub const MAX_FILE_BYTES: u64 = 16 * 1024 * 1024;

/// Why a document could not be read.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{path} is {size} bytes, over the {limit}-byte limit for realm documents and schemas")]
    TooLarge { path: String, size: u64, limit: u64 },
    #[error("{path}:{line}:{column}: {message}")]
    Syntax {
        path: String,
        line: u64,
        column: u64,
        message: String,
    },
    #[error("{path}: {message}")]
    Invalid { path: String, message: String },
}

fn options() -> serde_saphyr::Options {
    serde_saphyr::Options {
        budget: Some(serde_saphyr::Budget {
            max_events: 2_000_000,
            max_aliases: 10_000,
            max_anchors: 10_000,
            max_depth: 256,
            ..serde_saphyr::Budget::default()
        }),
        alias_limits: serde_saphyr::options::AliasLimits {
            max_total_replayed_events: 100_000,
            max_replay_stack_depth: 32,
            max_alias_expansions_per_anchor: 1_000,
        },
        with_snippet: false,
        ..serde_saphyr::Options::default()
    }
}

fn read(path: &Path) -> Result<String, LoadError> {
    let shown = path.display().to_string();
    let meta = std::fs::metadata(path).map_err(|source| LoadError::Io {
        path: shown.clone(),
        source,
    })?;
    if meta.len() > MAX_FILE_BYTES {
        return Err(LoadError::TooLarge {
            path: shown,
            size: meta.len(),
            limit: MAX_FILE_BYTES,
        });
    }
    std::fs::read_to_string(path).map_err(|source| LoadError::Io {
        path: shown,
        source,
    })
}

/// Parses YAML text (JSON is YAML) into `T`; `path` names the source in errors.
pub fn parse<T: DeserializeOwned>(path: &Path, text: &str) -> Result<T, LoadError> {
    let shown = path.display().to_string();
    serde_saphyr::from_str_with_options(text, options()).map_err(|e| {
        let message = first_line(&e.to_string());
        match e.location() {
            Some(loc) => LoadError::Syntax {
                path: shown,
                line: loc.line(),
                column: loc.column(),
                message,
            },
            None => LoadError::Invalid {
                path: shown,
                message,
            },
        }
    })
}

fn first_line(s: &str) -> String {
    let line = s.lines().next().unwrap_or(s).trim();
    // The location is reported separately, as `file:line:column`.
    match line.rfind(" at line ") {
        Some(i) => line[..i].to_string(),
        None => line.to_string(),
    }
}

/// Reads a YAML file into `T`.
pub fn load<T: DeserializeOwned>(path: &Path) -> Result<T, LoadError> {
    let text = read(path)?;
    parse(path, &text)
}

/// Reads a JSON or YAML document into a JSON value. `.json` files are parsed as strict JSON (with
/// line and column on errors); everything else as YAML.
pub fn load_value(path: &Path) -> Result<Value, LoadError> {
    let text = read(path)?;
    if path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("json"))
    {
        // serde_json counts columns from 1 but reports 0 when the error is right after a
        // newline (end of input): report that as column 1, as the YAML parser does.
        return serde_json::from_str(&text).map_err(|e| LoadError::Syntax {
            path: path.display().to_string(),
            line: (e.line() as u64).max(1),
            column: (e.column() as u64).max(1),
            message: e
                .to_string()
                .split(" at line")
                .next()
                .unwrap_or_default()
                .to_string(),
        });
    }
    parse(path, &text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn syntax(name: &str, text: &str) -> (u64, u64) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        match load_value(&path) {
            Err(LoadError::Syntax { line, column, .. }) => (line, column),
            other => panic!("{name}: expected a syntax error, got {other:?}"),
        }
    }

    #[test]
    fn json_and_yaml_error_positions_are_one_based() {
        // The stray `]` is the 8th character of line 2.
        let text = "{\"a\": 1,\n\"b\": 2 ]]\n}\n";
        let json = syntax("s.json", text);
        assert_eq!(json, (2, 8));
        let yaml = syntax("s.yaml", text);
        assert_eq!(yaml, json, "YAML and JSON disagree");
        // End of input right after a newline: serde_json says column 0.
        assert_eq!(syntax("eof.json", "{\"a\": 1,\n").1, 1);
        assert!(syntax("eof.json", "{\n").1 >= 1);
    }
}
