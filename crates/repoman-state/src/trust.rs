//! Trust of in-repo configuration (`.repoman.toml`), by content hash (DESIGN.md §5a).
//!
//! A sandbox can write its repository, so the repo's `.repoman.toml` is attacker-controlled
//! input. repoman applies it only in a version a **human** on the host has trusted: a
//! `config.trusted` event on `file:<project>/.repoman.toml` carrying the BLAKE3 hash and the
//! exact text that was reviewed (so the trusted version can be applied, and diffed against, even
//! after the file changed).
//!
//! Invariants:
//! - only a human actor can append `config.trusted` ([`crate::State::append_batch`] refuses it for
//!   agents, CI and the daemon, whoever builds the event);
//! - [`State::trusted_configs`] only ever answers with events whose actor is `human:...`, so a
//!   forged line from another actor in the log is never taken as trust;
//! - the hash is `blake3:<hex>` of the file's bytes; trusting is a statement about bytes, never
//!   about a path.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::json;

use crate::identity::ActorKind;
use crate::{Event, NewEvent, State, StateError};

/// The event type that records trust.
pub const TRUSTED: &str = "config.trusted";
/// The name of the trusted file inside a repo.
pub const FILE: &str = ".repoman.toml";
/// The largest `.repoman.toml` that can be trusted (it is stored in the event).
pub const MAX_BYTES: usize = 64 * 1024;

/// The object a project's trust events are about.
pub fn object(project: &str) -> String {
    format!("file:{project}/{FILE}")
}

/// `blake3:<hex>` of `bytes`.
pub fn content_hash(bytes: &[u8]) -> String {
    format!("blake3:{}", blake3::hash(bytes).to_hex())
}

/// The trusted version of one project's `.repoman.toml`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TrustedConfig {
    pub project: String,
    pub hash: String,
    /// The text that was reviewed and trusted.
    pub content: String,
    pub actor: String,
    pub at: String,
    pub seq: u64,
}

impl TrustedConfig {
    fn from_event(e: &Event) -> Option<Self> {
        if ActorKind::of(&e.actor) != Some(ActorKind::Human) || e.type_ != TRUSTED {
            return None;
        }
        let s = |k: &str| e.data.get(k).and_then(|v| v.as_str()).map(str::to_owned);
        let content = s("content")?;
        let hash = s("hash")?;
        // A record whose text does not match its hash is not trust in anything.
        if content_hash(content.as_bytes()) != hash {
            return None;
        }
        Some(Self {
            project: s("project")?,
            hash,
            content,
            actor: e.actor.clone(),
            at: e.at.clone(),
            seq: e.seq,
        })
    }
}

/// How a repo's current `.repoman.toml` stands against its trusted version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TrustStatus {
    /// The repo has no `.repoman.toml`: nothing to apply.
    Absent,
    /// The file is byte for byte the trusted version: it is applied.
    Trusted,
    /// There is a file but no version was ever trusted: nothing of it is applied.
    Untrusted,
    /// The file differs from the trusted version: the trusted version is applied.
    Changed,
}

/// The verdict on one project's `.repoman.toml`: what is applied, and what to tell the user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TrustCheck {
    pub project: String,
    pub status: TrustStatus,
    /// `blake3:<hex>` of the file as it is now (`None` when absent).
    pub current_hash: Option<String>,
    pub trusted_hash: Option<String>,
    /// The text to apply: the file when trusted, the trusted version when changed, else none.
    #[serde(skip)]
    pub applied: Option<String>,
    /// Unified diff from the trusted version (or from nothing) to the file, when they differ.
    pub diff: Option<String>,
}

impl TrustCheck {
    /// Compare the file's text (`None`: no file) with the trusted version.
    pub fn new(project: &str, current: Option<&str>, trusted: Option<&TrustedConfig>) -> Self {
        let current_hash = current.map(|c| content_hash(c.as_bytes()));
        let trusted_hash = trusted.map(|t| t.hash.clone());
        let (status, applied) = match (current, trusted) {
            (None, _) => (TrustStatus::Absent, None),
            (Some(_), Some(t)) if current_hash.as_deref() == Some(t.hash.as_str()) => {
                (TrustStatus::Trusted, Some(t.content.clone()))
            }
            (Some(_), Some(t)) => (TrustStatus::Changed, Some(t.content.clone())),
            (Some(_), None) => (TrustStatus::Untrusted, None),
        };
        let diff = match (status, current) {
            (TrustStatus::Changed | TrustStatus::Untrusted, Some(c)) => {
                Some(unified_diff(trusted.map_or("", |t| t.content.as_str()), c))
            }
            _ => None,
        };
        Self {
            project: project.to_owned(),
            status,
            current_hash,
            trusted_hash,
            applied,
            diff,
        }
    }

    /// Whether the file on disk is not what is applied (untrusted or changed since trusted).
    pub fn needs_trust(&self) -> bool {
        matches!(self.status, TrustStatus::Untrusted | TrustStatus::Changed)
    }

    /// One line for the user: what is applied and the command that trusts the file.
    pub fn summary(&self) -> String {
        match self.status {
            TrustStatus::Absent | TrustStatus::Trusted => {
                format!("{FILE} of `{}` is trusted", self.project)
            }
            TrustStatus::Untrusted => format!(
                "{FILE} of `{}` is untrusted: none of it is applied; review it with `repoman trust {}`",
                self.project, self.project
            ),
            TrustStatus::Changed => format!(
                "{FILE} of `{}` changed since trusted: the last trusted version is applied; review the change with `repoman trust {}`",
                self.project, self.project
            ),
        }
    }
}

/// A unified diff of two texts (`--- trusted`/`+++ .repoman.toml` headers, 3 lines of context).
pub fn unified_diff(old: &str, new: &str) -> String {
    similar::TextDiff::from_lines(old, new)
        .unified_diff()
        .context_radius(3)
        .header("trusted", FILE)
        .to_string()
}

impl State {
    /// Record that the human running this process trusts `content` as `project`'s
    /// `.repoman.toml`. Refused for every non-human actor.
    pub fn trust_config(
        &self,
        project: &str,
        content: &str,
        previous_hash: Option<&str>,
    ) -> Result<Event, StateError> {
        if self.identity().actor_kind != ActorKind::Human {
            return Err(StateError::NotPermitted {
                actor: self.identity().actor.clone(),
                action: format!("trust the {FILE} of `{project}`"),
            });
        }
        if content.len() > MAX_BYTES {
            return Err(StateError::InvalidEvent {
                type_: TRUSTED.to_owned(),
                object: object(project),
                reason: format!(
                    "{FILE} is {} bytes; at most {MAX_BYTES} can be trusted",
                    content.len()
                ),
            });
        }
        self.append(NewEvent::new(
            TRUSTED,
            object(project),
            json!({
                "project": project,
                "path": FILE,
                "hash": content_hash(content.as_bytes()),
                "content": content,
                "previous_hash": previous_hash,
            }),
        ))
    }

    /// The trusted `.repoman.toml` of one project, if a human trusted one.
    pub fn trusted_config(&self, project: &str) -> Result<Option<TrustedConfig>, StateError> {
        Ok(self.trusted_configs()?.remove(project))
    }

    /// The latest human-trusted `.repoman.toml` of every project, by project name.
    pub fn trusted_configs(&self) -> Result<BTreeMap<String, TrustedConfig>, StateError> {
        let events = self.with_index(|conn| {
            let mut stmt = conn.prepare_cached(&format!(
                "SELECT {} FROM events WHERE type = ?1 AND actor LIKE 'human:%' ORDER BY seq",
                crate::index::EVENT_COLUMNS
            ))?;
            let rows = stmt.query_map([TRUSTED], crate::index::event_from_row)?;
            rows.collect::<rusqlite::Result<Vec<Event>>>()
        })?;
        let mut out = BTreeMap::new();
        for e in &events {
            if let Some(t) = TrustedConfig::from_event(e)
                && e.object == object(&t.project)
            {
                out.insert(t.project.clone(), t);
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ActorRequest, StateOptions};
    use repoman_core::{Clock, Env, Paths, ProjectName};

    fn open(home: &std::path::Path, actor: ActorRequest, extra: &[(&str, &str)]) -> State {
        let mut pairs: Vec<(&str, std::path::PathBuf)> =
            vec![("HOME", home.to_path_buf()), ("USER", "alice".into())];
        pairs.extend(extra.iter().map(|(k, v)| (*k, std::path::PathBuf::from(v))));
        let env = Env::from_pairs(pairs.iter().map(|(k, v)| (*k, v.as_path())));
        let paths = Paths::resolve(&env).unwrap();
        State::open_with(
            &paths,
            &env,
            Clock::pinned("2026-01-01T00:00:00Z".parse().unwrap()),
            StateOptions {
                actor,
                ..StateOptions::default()
            },
        )
        .unwrap()
    }

    #[test]
    fn check_says_what_is_applied() {
        let t = TrustedConfig {
            project: "app".into(),
            hash: content_hash(b"a = 1\n"),
            content: "a = 1\n".into(),
            actor: "human:x@h".into(),
            at: "t".into(),
            seq: 1,
        };
        let c = TrustCheck::new("app", None, Some(&t));
        assert_eq!(
            (c.status, c.applied.as_deref()),
            (TrustStatus::Absent, None)
        );
        let c = TrustCheck::new("app", Some("a = 1\n"), Some(&t));
        assert_eq!(c.status, TrustStatus::Trusted);
        assert_eq!(c.applied.as_deref(), Some("a = 1\n"));
        assert!(!c.needs_trust() && c.diff.is_none());
        let c = TrustCheck::new("app", Some("a = 2\n"), Some(&t));
        assert_eq!(c.status, TrustStatus::Changed);
        assert_eq!(c.applied.as_deref(), Some("a = 1\n"));
        let d = c.diff.as_deref().unwrap();
        assert!(d.contains("-a = 1") && d.contains("+a = 2"), "{d}");
        assert!(
            c.summary().contains("changed since trusted"),
            "{}",
            c.summary()
        );
        assert!(c.summary().contains("repoman trust app"));
        let c = TrustCheck::new("app", Some("[[mount]]\n"), None);
        assert_eq!(
            (c.status, c.applied.as_deref()),
            (TrustStatus::Untrusted, None)
        );
        assert!(c.diff.as_deref().unwrap().contains("+[[mount]]"));
        assert!(c.summary().contains("untrusted"));
    }

    #[test]
    fn a_human_trusts_and_the_latest_version_wins() {
        let home = tempfile::tempdir().unwrap();
        let s = open(home.path(), ActorRequest::Derived, &[]);
        assert_eq!(s.trusted_config("app").unwrap(), None);
        s.trust_config("app", "image = \"a\"\n", None).unwrap();
        let first = s.trusted_config("app").unwrap().unwrap();
        assert_eq!(first.hash, content_hash(b"image = \"a\"\n"));
        assert!(first.actor.starts_with("human:alice@"), "{}", first.actor);
        s.trust_config("app", "image = \"b\"\n", Some(&first.hash))
            .unwrap();
        s.trust_config("other", "", None).unwrap();
        let all = s.trusted_configs().unwrap();
        assert_eq!(all["app"].content, "image = \"b\"\n");
        assert_eq!(all["other"].hash, content_hash(b""));
        assert_eq!(all.len(), 2);
    }

    #[test]
    fn agents_ci_and_the_daemon_cannot_trust() {
        let home = tempfile::tempdir().unwrap();
        let agent = open(
            home.path(),
            ActorRequest::Agent(ProjectName::parse("app").unwrap()),
            &[],
        );
        let err = agent.trust_config("app", "x = 1\n", None).unwrap_err();
        assert!(matches!(err, StateError::NotPermitted { .. }), "{err}");
        // Building the event by hand does not get around it.
        let forged = NewEvent::new(
            TRUSTED,
            object("app"),
            json!({"project": "app", "path": FILE, "hash": content_hash(b"x"), "content": "x"}),
        );
        assert!(matches!(
            agent.append(forged.clone()),
            Err(StateError::NotPermitted { .. })
        ));
        let daemon = open(home.path(), ActorRequest::Daemon, &[]);
        assert!(daemon.append(forged.clone()).is_err());
        let ci = open(home.path(), ActorRequest::Derived, &[("CI", "1")]);
        assert!(matches!(
            ci.trust_config("app", "x", None),
            Err(StateError::NotPermitted { .. })
        ));
        let human = open(home.path(), ActorRequest::Derived, &[]);
        assert_eq!(human.trusted_config("app").unwrap(), None);
    }

    #[test]
    fn a_record_whose_text_does_not_match_its_hash_is_ignored() {
        let home = tempfile::tempdir().unwrap();
        let s = open(home.path(), ActorRequest::Derived, &[]);
        let bad = NewEvent::new(
            TRUSTED,
            object("app"),
            json!({"project": "app", "path": FILE, "hash": content_hash(b"other"), "content": "x"}),
        );
        s.append(bad).unwrap();
        assert_eq!(s.trusted_config("app").unwrap(), None);
        let err = s
            .trust_config("app", &"x".repeat(MAX_BYTES + 1), None)
            .unwrap_err();
        assert!(err.to_string().contains("at most"), "{err}");
    }
}
