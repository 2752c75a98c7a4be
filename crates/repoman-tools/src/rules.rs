//! Table-driven tool identification rules.
//!
//! The built-in table is `rules/builtin.toml`, embedded at compile time. Users extend it with
//! `<config_dir>/tools.d/*.toml` files in the same format, read in file-name order; a user rule
//! with an existing `id` replaces the built-in one. Rules are data, so every field is validated
//! on load (category, regex) with the file named in the error.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::ToolsError;

const BUILTIN: &str = include_str!("../rules/builtin.toml");

/// The default version pattern: the first dotted number, with an optional pre-release tail.
pub const DEFAULT_VERSION_REGEX: &str = r"(\d+(?:\.\d+)+(?:[-+~][0-9A-Za-z.]+)?)";

/// What kind of tool a rule identifies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Category {
    Runtime,
    Compiler,
    PackageManager,
    Prover,
    Solver,
    BuildTool,
    Editor,
}

impl Category {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Runtime => "runtime",
            Self::Compiler => "compiler",
            Self::PackageManager => "package-manager",
            Self::Prover => "prover",
            Self::Solver => "solver",
            Self::BuildTool => "build-tool",
            Self::Editor => "editor",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [
            Self::Runtime,
            Self::Compiler,
            Self::PackageManager,
            Self::Prover,
            Self::Solver,
            Self::BuildTool,
            Self::Editor,
        ]
        .into_iter()
        .find(|c| c.as_str() == s)
    }
}

/// One rule as written in TOML.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    id: String,
    category: Category,
    #[serde(default)]
    names: Vec<String>,
    #[serde(default)]
    aliases: Vec<String>,
    #[serde(default)]
    version_args: Vec<String>,
    version_regex: Option<String>,
    #[serde(default)]
    files: Vec<String>,
    #[serde(default)]
    runner: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default, rename = "rule")]
    rules: Vec<RawRule>,
}

/// A validated rule.
#[derive(Debug, Clone)]
pub struct Rule {
    pub id: String,
    pub category: Category,
    pub names: Vec<String>,
    pub aliases: Vec<String>,
    pub version_args: Vec<String>,
    /// The version pattern (compiled on first use: compiling ~70 Unicode-aware patterns costs
    /// more than a whole warm scan, and most runs probe nothing).
    pub version_regex: String,
    compiled: std::sync::OnceLock<Option<regex::Regex>>,
    pub files: Vec<String>,
    pub runner: Vec<String>,
    /// Where the rule came from (`builtin` or a file path).
    pub origin: String,
}

impl Rule {
    /// A fingerprint of what a probe depends on, so cached results die with a changed rule.
    pub fn fingerprint(&self) -> String {
        format!(
            "{}|{}|{}|{}",
            self.id,
            self.version_args.join("\u{1f}"),
            self.version_regex,
            self.runner.join("\u{1f}")
        )
    }

    /// The compiled pattern (`None` only for an invalid built-in pattern, which a unit test rules
    /// out; user patterns are checked when loaded).
    pub fn regex(&self) -> Option<&regex::Regex> {
        self.compiled
            .get_or_init(|| regex::Regex::new(&self.version_regex).ok())
            .as_ref()
    }

    /// Extract the version from probe output (stdout, then stderr).
    pub fn extract_version(&self, stdout: &str, stderr: &str) -> Option<String> {
        for text in [stdout, stderr] {
            if let Some(c) = self.regex()?.captures(text) {
                let m = c.get(1).or_else(|| c.get(0))?;
                return Some(m.as_str().to_owned());
            }
        }
        None
    }
}

/// The rule table with lookups by executable name, file name and manifest name.
#[derive(Debug, Clone, Default)]
pub struct Rules {
    rules: Vec<Rule>,
    by_exe: HashMap<String, usize>,
    by_file: HashMap<String, usize>,
    by_manifest_name: HashMap<String, usize>,
}

impl Rules {
    /// The built-in rules only.
    pub fn builtin() -> Result<Self, ToolsError> {
        let mut r = Self::default();
        r.add_text(Path::new("builtin"), BUILTIN)?;
        Ok(r)
    }

    /// Built-in rules plus `<config_dir>/tools.d/*.toml` (missing directory: none).
    pub fn load(config_dir: &Path) -> Result<Self, ToolsError> {
        let mut r = Self::builtin()?;
        let dir = config_dir.join("tools.d");
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(r),
            Err(e) => return Err(ToolsError::read(&dir, e)),
        };
        let mut files: Vec<PathBuf> = entries
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "toml"))
            .collect();
        files.sort();
        for f in files {
            let text = std::fs::read_to_string(&f).map_err(|e| ToolsError::read(&f, e))?;
            r.add_text(&f, &text)?;
        }
        Ok(r)
    }

    fn add_text(&mut self, path: &Path, text: &str) -> Result<(), ToolsError> {
        let raw: RawFile = toml::from_str(text).map_err(|e: toml::de::Error| {
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
                    .unwrap_or("invalid rule")
                    .to_owned(),
            }
        })?;
        for rr in raw.rules {
            let rule_err = |m: String| ToolsError::Rules {
                path: path.to_path_buf(),
                message: m,
            };
            if rr.id.is_empty() {
                return Err(rule_err("a rule has an empty `id`".into()));
            }
            if rr.names.is_empty() && rr.files.is_empty() {
                return Err(rule_err(format!(
                    "rule `{}` has neither `names` nor `files`",
                    rr.id
                )));
            }
            if !rr.files.is_empty() && rr.runner.is_empty() {
                return Err(rule_err(format!(
                    "rule `{}` has `files` but no `runner`",
                    rr.id
                )));
            }
            let pattern = rr.version_regex.as_deref().unwrap_or(DEFAULT_VERSION_REGEX);
            let compiled = std::sync::OnceLock::new();
            if path != Path::new("builtin") {
                let re = regex::Regex::new(pattern)
                    .map_err(|e| rule_err(format!("rule `{}`: bad version_regex: {e}", rr.id)))?;
                let _ = compiled.set(Some(re));
            }
            let version_regex = pattern.to_owned();
            let origin = if path == Path::new("builtin") {
                "builtin".to_owned()
            } else {
                path.display().to_string()
            };
            let rule = Rule {
                id: rr.id,
                category: rr.category,
                names: rr.names,
                aliases: rr.aliases,
                version_args: rr.version_args,
                version_regex,
                compiled,
                files: rr.files,
                runner: rr.runner,
                origin,
            };
            match self.rules.iter().position(|r| r.id == rule.id) {
                Some(i) => self.rules[i] = rule,
                None => self.rules.push(rule),
            }
        }
        self.reindex();
        Ok(())
    }

    fn reindex(&mut self) {
        self.by_exe.clear();
        self.by_file.clear();
        self.by_manifest_name.clear();
        for (i, r) in self.rules.iter().enumerate() {
            for n in &r.names {
                self.by_exe.insert(n.clone(), i);
            }
            for f in &r.files {
                self.by_file.insert(f.clone(), i);
            }
        }
        // Manifest names: ids first, then aliases, then executable names, so an id always wins.
        for (i, r) in self.rules.iter().enumerate() {
            for n in r.names.iter().chain(&r.aliases) {
                self.by_manifest_name.insert(n.clone(), i);
            }
        }
        for (i, r) in self.rules.iter().enumerate() {
            self.by_manifest_name.insert(r.id.clone(), i);
        }
    }

    pub fn all(&self) -> &[Rule] {
        &self.rules
    }

    pub fn get(&self, id: &str) -> Option<&Rule> {
        self.rules.iter().find(|r| r.id == id)
    }

    /// The rule whose `names` include this executable file name.
    pub fn for_exe(&self, name: &str) -> Option<&Rule> {
        self.by_exe.get(name).map(|&i| &self.rules[i])
    }

    /// The rule whose `files` include this file name.
    pub fn for_file(&self, name: &str) -> Option<&Rule> {
        self.by_file.get(name).map(|&i| &self.rules[i])
    }

    /// The rule a manifest's tool name refers to (`nodejs`, `core:node`, `asdf:nodejs` → node).
    pub fn for_manifest_name(&self, name: &str) -> Option<&Rule> {
        let bare = match name.split_once(':') {
            Some(("core" | "asdf" | "vfox" | "aqua" | "ubi" | "github", rest)) => {
                rest.rsplit('/').next().unwrap_or(rest)
            }
            _ => name,
        };
        self.by_manifest_name.get(bare).map(|&i| &self.rules[i])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_rules_cover_the_provers_and_solvers() {
        let r = Rules::builtin().unwrap();
        for id in [
            "rocq",
            "coq",
            "lean",
            "lake",
            "elan",
            "isabelle",
            "agda",
            "idris2",
            "fstar",
            "dafny",
            "why3",
            "tlaplus",
            "z3",
            "cvc5",
            "alt-ergo",
            "vampire",
            "eprover",
            "gnatprove",
            "kani",
            "verus",
            "node",
            "python",
            "go",
            "rust",
        ] {
            assert!(r.get(id).is_some(), "missing rule {id}");
        }
        assert_eq!(r.for_exe("coqc").unwrap().id, "coq");
        assert_eq!(r.for_file("tla2tools.jar").unwrap().id, "tlaplus");
        assert_eq!(r.for_manifest_name("nodejs").unwrap().id, "node");
        assert_eq!(r.for_manifest_name("core:node").unwrap().id, "node");
        assert_eq!(r.for_manifest_name("golang").unwrap().id, "go");
        assert!(r.for_manifest_name("npm:prettier").is_none());
    }

    #[test]
    fn every_builtin_pattern_compiles() {
        for r in Rules::builtin().unwrap().all() {
            assert!(
                r.regex().is_some(),
                "rule {}: bad version_regex {}",
                r.id,
                r.version_regex
            );
        }
    }

    #[test]
    fn version_regexes_read_real_banners() {
        let r = Rules::builtin().unwrap();
        let v = |id: &str, out: &str, err: &str| r.get(id).unwrap().extract_version(out, err);
        assert_eq!(v("node", "v20.11.1\n", ""), Some("20.11.1".into()));
        assert_eq!(v("python", "", "Python 3.11.2\n"), Some("3.11.2".into()));
        assert_eq!(
            v("go", "go version go1.22.1 linux/amd64\n", ""),
            Some("1.22.1".into())
        );
        assert_eq!(
            v("java", "", "openjdk version \"21.0.2\" 2024-01-16\n"),
            Some("21.0.2".into())
        );
        assert_eq!(v("isabelle", "Isabelle2024\n", ""), Some("2024".into()));
        assert_eq!(
            v(
                "lean",
                "Lean (version 4.9.0, x86_64-unknown-linux-gnu, commit 8f9843a, Release)\n",
                ""
            ),
            Some("4.9.0".into())
        );
        assert_eq!(
            v("z3", "Z3 version 4.12.5 - 64 bit\n", ""),
            Some("4.12.5".into())
        );
        assert_eq!(
            v(
                "cvc5",
                "This is cvc5 version 1.1.2 [git tag 1.1.2 branch HEAD]\n",
                ""
            ),
            Some("1.1.2".into())
        );
        assert_eq!(
            v(
                "coq",
                "The Coq Proof Assistant, version 8.18.0\ncompiled with OCaml 4.14.1\n",
                ""
            ),
            Some("8.18.0".into())
        );
        assert_eq!(
            v("agda", "Agda version 2.6.4.1\n", ""),
            Some("2.6.4.1".into())
        );
        assert_eq!(
            v("fstar", "F* 2024.01.13~dev\nplatform=Linux_x86_64\n", ""),
            Some("2024.01.13~dev".into())
        );
        assert_eq!(
            v("why3", "Why3 platform, version 1.7.1\n", ""),
            Some("1.7.1".into())
        );
        assert_eq!(
            v(
                "vampire",
                "Vampire 4.8 (commit 8d999c135 on 2023-07-12)\n",
                ""
            ),
            Some("4.8".into())
        );
        assert_eq!(
            v("eprover", "E 3.0.03 Shangri-La\n", ""),
            Some("3.0.03".into())
        );
        assert_eq!(
            v("tlaplus", "TLC2 Version 2.18 of Day Month 20??\n", ""),
            Some("2.18".into())
        );
        assert_eq!(v("dafny", "4.4.0\n", ""), Some("4.4.0".into()));
        assert_eq!(
            v("idris2", "Idris 2, version 0.7.0\n", ""),
            Some("0.7.0".into())
        );
        assert_eq!(v("git", "git version 2.39.5\n", ""), Some("2.39.5".into()));
    }

    #[test]
    fn user_rules_extend_and_override_with_located_errors() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().join("tools.d");
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(
            d.join("a.toml"),
            "[[rule]]\nid = \"mytool\"\ncategory = \"prover\"\nnames = [\"mt\"]\nversion_args = [\"ver\"]\n\n[[rule]]\nid = \"z3\"\ncategory = \"solver\"\nnames = [\"z3-custom\"]\n",
        )
        .unwrap();
        let r = Rules::load(dir.path()).unwrap();
        assert_eq!(r.for_exe("mt").unwrap().id, "mytool");
        assert_eq!(r.for_exe("z3-custom").unwrap().id, "z3");
        assert!(
            r.for_exe("z3").is_none(),
            "the user rule replaces the built-in one"
        );
        std::fs::write(
            d.join("b.toml"),
            "[[rule]]\nid = \"x\"\ncategory = \"wizard\"\nnames = [\"x\"]\n",
        )
        .unwrap();
        let e = Rules::load(dir.path()).unwrap_err().to_string();
        assert!(e.contains("b.toml:3:"), "{e}");
        std::fs::write(
            d.join("b.toml"),
            "[[rule]]\nid = \"x\"\ncategory = \"solver\"\nnames = [\"x\"]\nversion_regex = \"(\"\n",
        )
        .unwrap();
        let e = Rules::load(dir.path()).unwrap_err().to_string();
        assert!(
            e.contains("b.toml") && e.contains("bad version_regex"),
            "{e}"
        );
    }
}
