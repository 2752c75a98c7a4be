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
