//! Every environment variable repoman reads, in one list, and a snapshot type to read them.
//!
//! Code never calls `std::env::var` directly: it receives an [`Env`] captured once at start-up.
//! Tests build their own [`Env`] instead of mutating the process environment, which would race
//! with other tests running in parallel threads.

use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString};
use std::path::PathBuf;

/// One environment variable repoman reads, with what it does. `docs/environment.md` and
/// `repoman config show` are generated from [`ENV_VARS`].
#[derive(Debug, Clone, Copy)]
pub struct EnvVar {
    pub name: &'static str,
    pub doc: &'static str,
}

/// The complete list. Adding a variable anywhere in repoman means adding it here.
pub const ENV_VARS: &[EnvVar] = &[
    EnvVar {
        name: "REPOMAN_CONFIG",
        doc: "Path of the registry file (default: $XDG_CONFIG_HOME/repoman/repoman.toml).",
    },
    EnvVar {
        name: "REPOMAN_STATE_DIR",
        doc: "State directory: event log, manifests, index (default: $XDG_STATE_HOME/repoman).",
    },
    EnvVar {
        name: "REPOMAN_CACHE_DIR",
        doc: "Cache directory: probe and stat caches (default: $XDG_CACHE_HOME/repoman).",
    },
    EnvVar {
        name: "REPOMAN_DATA_DIR",
        doc: "Data directory: installed SNIF modules and their grants (default: $XDG_DATA_HOME/repoman).",
    },
    EnvVar {
        name: "REPOMAN_RUNTIME_DIR",
        doc: "Runtime directory: daemon socket, locks (default: $XDG_RUNTIME_DIR/repoman, else /tmp/repoman-$UID).",
    },
    EnvVar {
        name: "REPOMAN_PROFILE",
        doc: "The profile recorded on events and matched by policy rules (default: `default`).",
    },
    EnvVar {
        name: "REPOMAN_ACTOR",
        doc: "Set by the daemon for the commands it runs for a caller: `daemon` or `agent:PROJECT` is recorded as the actor (no value can name a human).",
    },
    EnvVar {
        name: "REPOMAN_LOG",
        doc: "Log level filter for diagnostics on stderr, e.g. `debug` or `repoman_incus=trace` (default: `warn`).",
    },
    EnvVar {
        name: "REPOMAN_LOG_FORMAT",
        doc: "`text` (default) or `json` for structured logs on stderr.",
    },
    EnvVar {
        name: "REPOMAN_TEST_FAIL_AFTER",
        doc: "Tests only: make `repoman new` fail right after the named step (`mkdir`, `create`, `start`, `register`) to exercise its rollback.",
    },
    EnvVar {
        name: "REPOMAN_TEST_INCUS",
        doc: "Tests only: `require` makes real-Incus tests fail instead of skip when Incus is unreachable.",
    },
    EnvVar {
        name: "REPOMAN_STRICT_SCHEMAS",
        doc: "Tests only: `1` refuses to write an event whose type has no registered JSON Schema (the test suite runs with it, so every event type repoman writes is proven to have one).",
    },
    EnvVar {
        name: "REPOMAN_SUBUID_FILE",
        doc: "The subordinate uid file `repoman setup` checks and extends (default: /etc/subuid); for tests and unusual systems.",
    },
    EnvVar {
        name: "REPOMAN_SUBGID_FILE",
        doc: "The subordinate gid file `repoman setup` checks and extends (default: /etc/subgid).",
    },
    EnvVar {
        name: "LOCAL_REPOS",
        doc: "Fallback for `[defaults] local_repos` (the seed script's variable).",
    },
    EnvVar {
        name: "NFS_REPOS",
        doc: "Fallback for `[defaults] backup_root` (the seed script's variable).",
    },
    EnvVar {
        name: "INCUS_SOCKET",
        doc: "Path of the Incus unix socket (as the official client).",
    },
    EnvVar {
        name: "INCUS_DIR",
        doc: "Incus state directory; its `unix.socket` is used when INCUS_SOCKET is unset.",
    },
    EnvVar {
        name: "XDG_CONFIG_HOME",
        doc: "Base of the config directory (default: ~/.config).",
    },
    EnvVar {
        name: "XDG_STATE_HOME",
        doc: "Base of the state directory (default: ~/.local/state).",
    },
    EnvVar {
        name: "XDG_CACHE_HOME",
        doc: "Base of the cache directory (default: ~/.cache).",
    },
    EnvVar {
        name: "XDG_DATA_HOME",
        doc: "Base of the data directory (default: ~/.local/share).",
    },
    EnvVar {
        name: "XDG_RUNTIME_DIR",
        doc: "Base of the runtime directory.",
    },
    EnvVar {
        name: "HOME",
        doc: "The user's home directory.",
    },
    EnvVar {
        name: "USER",
        doc: "The user name recorded in the actor `human:USER@HOST` (else looked up from the uid).",
    },
    EnvVar {
        name: "SUDO_UID",
        doc: "With SUDO_GID: the host user that owns sandbox bind mounts when repoman runs under sudo.",
    },
    EnvVar {
        name: "SUDO_GID",
        doc: "See SUDO_UID.",
    },
    EnvVar {
        name: "SUDO_USER",
        doc: "The invoking user's name when repoman runs under sudo.",
    },
    EnvVar {
        name: "CI",
        doc: "When set, the actor is `ci:NAME` and `ci_only` realm hooks run.",
    },
    EnvVar {
        name: "GITHUB_ACTIONS",
        doc: "Names the CI system in the `ci:` actor (with GITHUB_WORKFLOW).",
    },
    EnvVar {
        name: "NO_COLOR",
        doc: "When set and not empty, disables colour (https://no-color.org).",
    },
    EnvVar {
        name: "PATH",
        doc: "Searched for rsync, git, incus and for tool discovery.",
    },
];

/// A snapshot of the environment variables repoman cares about.
#[derive(Debug, Clone, Default)]
pub struct Env {
    vars: BTreeMap<String, OsString>,
}

impl Env {
    /// Capture the current process environment (only the variables listed in [`ENV_VARS`]).
    pub fn capture() -> Self {
        let vars = ENV_VARS
            .iter()
            .filter_map(|v| std::env::var_os(v.name).map(|value| (v.name.to_owned(), value)))
            .collect();
        Self { vars }
    }

    /// An environment built from explicit pairs (tests, subprocess environments).
    pub fn from_pairs<K: Into<String>, V: Into<OsString>>(
        pairs: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        Self {
            vars: pairs
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        }
    }

    /// Set (or replace) one variable in this snapshot.
    pub fn set(&mut self, name: impl Into<String>, value: impl Into<OsString>) -> &mut Self {
        self.vars.insert(name.into(), value.into());
        self
    }

    /// Remove one variable from this snapshot.
    pub fn remove(&mut self, name: &str) -> &mut Self {
        self.vars.remove(name);
        self
    }

    /// The raw value, if set.
    pub fn get_os(&self, name: &str) -> Option<&OsStr> {
        self.vars.get(name).map(OsString::as_os_str)
    }

    /// The value if set, valid UTF-8 and not empty.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.get_os(name)
            .and_then(OsStr::to_str)
            .filter(|s| !s.is_empty())
    }

    /// The value as a path if set and not empty.
    pub fn get_path(&self, name: &str) -> Option<PathBuf> {
        self.get_os(name)
            .filter(|s| !s.is_empty())
            .map(PathBuf::from)
    }

    /// Whether the variable is set to a non-empty value.
    pub fn is_set(&self, name: &str) -> bool {
        self.get_os(name).is_some_and(|v| !v.is_empty())
    }

    /// All captured variables, for `repoman config show`.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &OsStr)> {
        self.vars.iter().map(|(k, v)| (k.as_str(), v.as_os_str()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_listed_variable_is_documented_once() {
        let mut names: Vec<_> = ENV_VARS.iter().map(|v| v.name).collect();
        names.sort_unstable();
        let before = names.len();
        names.dedup();
        assert_eq!(before, names.len(), "duplicate entry in ENV_VARS");
        assert!(ENV_VARS.iter().all(|v| !v.doc.is_empty()));
    }

    #[test]
    fn empty_values_count_as_unset() {
        let env = Env::from_pairs([("NO_COLOR", ""), ("HOME", "/h")]);
        assert!(!env.is_set("NO_COLOR"));
        assert_eq!(env.get("HOME"), Some("/h"));
        assert_eq!(env.get_path("NO_COLOR"), None);
    }
}

#[cfg(test)]
mod docs_tests {
    use super::ENV_VARS;

    #[test]
    fn docs_environment_md_lists_every_variable() {
        let page = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../docs/environment.md"
        ))
        .expect("docs/environment.md exists");
        let missing: Vec<_> = ENV_VARS
            .iter()
            .filter(|v| !page.contains(&format!("`{}`", v.name)))
            .map(|v| v.name)
            .collect();
        assert!(
            missing.is_empty(),
            "docs/environment.md does not document {missing:?}"
        );
    }
}
