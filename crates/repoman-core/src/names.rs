//! Project (= Incus instance) names and repo directory names (DESIGN.md §4 "Names").
//!
//! A [`ProjectName`] is also an Incus instance name and a DNS label: 1–63 ASCII letters, digits
//! and `-`, not starting with a digit or `-`, not ending with `-`. Uppercase is refused rather
//! than folded, so the name a user typed is the name they will see in `incus list`.
//!
//! A [`RepoDirName`] is one path component under `local_repos`: never `/`, `..`, `.`, NUL, or
//! empty, so joining it to a directory can never escape that directory; and never a name starting
//! with `.repoman` (reserved under the backup root).

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize};

/// Why a name was refused. The message says what is allowed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("project name is empty; {RULE}")]
    Empty,
    #[error("project name {name:?} is {len} characters long; at most 63 are allowed")]
    TooLong { name: String, len: usize },
    #[error("project name {name:?} contains {ch:?}; {RULE}")]
    BadChar { name: String, ch: char },
    #[error("project name {name:?} uses uppercase {ch:?}; use lowercase ({RULE})")]
    Uppercase { name: String, ch: char },
    #[error("project name {name:?} starts with {ch:?}; it must start with a letter")]
    BadStart { name: String, ch: char },
    #[error("project name {name:?} ends with '-'; it must end with a letter or digit")]
    BadEnd { name: String },
    #[error("repo directory name is empty; give a single directory name such as `my-app`")]
    DirEmpty,
    #[error(
        "repo directory name {0:?} is not allowed; give a single directory name such as `my-app`"
    )]
    DirSpecial(String),
    #[error(
        "repo directory name {name:?} contains {what}; it must be a single path component (no '/', no NUL)"
    )]
    DirBadChar { name: String, what: &'static str },
    #[error(
        "repo directory name {0:?} starts with `.repoman`, which is reserved for repoman's own files under the backup root (saved conflict copies, markers, temporary files); choose another name"
    )]
    DirReserved(String),
}

const RULE: &str = "use 1-63 lowercase ASCII letters, digits and '-', starting with a letter and not ending with '-'";

/// Repo directory names starting with this are refused: the backup root holds repoman's own
/// directories under such names (`.repoman-conflicts`), and a project mirrored there would
/// delete them.
pub const RESERVED_DIR_PREFIX: &str = ".repoman";

/// A validated project name; also the sandbox's Incus instance name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct ProjectName(String);

impl ProjectName {
    /// Validate `name`.
    pub fn parse(name: &str) -> Result<Self, NameError> {
        let len = name.chars().count();
        let first = name.chars().next().ok_or(NameError::Empty)?;
        if len > 63 {
            return Err(NameError::TooLong {
                name: name.to_owned(),
                len,
            });
        }
        for ch in name.chars() {
            if ch.is_ascii_uppercase() {
                return Err(NameError::Uppercase {
                    name: name.to_owned(),
                    ch,
                });
            }
            if !(ch.is_ascii_lowercase() || ch.is_ascii_digit() || ch == '-') {
                return Err(NameError::BadChar {
                    name: name.to_owned(),
                    ch,
                });
            }
        }
        if !first.is_ascii_lowercase() {
            return Err(NameError::BadStart {
                name: name.to_owned(),
                ch: first,
            });
        }
        if name.ends_with('-') {
            return Err(NameError::BadEnd {
                name: name.to_owned(),
            });
        }
        Ok(Self(name.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ProjectName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::str::FromStr for ProjectName {
    type Err = NameError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl<'de> Deserialize<'de> for ProjectName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// A validated single-component directory name under `local_repos` / `backup_root`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct RepoDirName(String);

impl RepoDirName {
    /// Validate `name`. Unicode is allowed (directory names are bytes to the kernel); separators,
    /// NUL, `.` and `..` are not.
    pub fn parse(name: &str) -> Result<Self, NameError> {
        if name.is_empty() {
            return Err(NameError::DirEmpty);
        }
        if name == "." || name == ".." {
            return Err(NameError::DirSpecial(name.to_owned()));
        }
        if name.contains('/') {
            return Err(NameError::DirBadChar {
                name: name.to_owned(),
                what: "'/'",
            });
        }
        if name.contains('\0') {
            return Err(NameError::DirBadChar {
                name: name.to_owned(),
                what: "a NUL byte",
            });
        }
        if name.chars().any(char::is_control) {
            return Err(NameError::DirBadChar {
                name: name.to_owned(),
                what: "a control character",
            });
        }
        if name.starts_with(RESERVED_DIR_PREFIX) {
            return Err(NameError::DirReserved(name.to_owned()));
        }
        Ok(Self(name.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RepoDirName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::str::FromStr for RepoDirName {
    type Err = NameError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl<'de> Deserialize<'de> for RepoDirName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn examples_from_the_issue() {
        for bad in [
            "../x",
            "UPPER",
            &"a".repeat(64),
            "-x",
            "",
            "héllo",
            "x-",
            "1abc",
            "a_b",
            "a.b",
        ] {
            assert!(
                ProjectName::parse(bad).is_err(),
                "{bad:?} should be refused"
            );
        }
        for good in ["a", "my-app", "a1", &"a".repeat(63), "x-1-y"] {
            assert!(
                ProjectName::parse(good).is_ok(),
                "{good:?} should be accepted"
            );
        }
        assert!(RepoDirName::parse("a/b").is_err());
        assert!(RepoDirName::parse("..").is_err());
        assert!(RepoDirName::parse(".").is_err());
        assert!(RepoDirName::parse("My Repo").is_ok());
        assert!(RepoDirName::parse(".repoman-conflicts").is_err());
        assert!(RepoDirName::parse(".repomanx").is_err());
        assert!(RepoDirName::parse(".repo").is_ok());
    }

    #[test]
    fn messages_say_what_is_allowed() {
        let msg = ProjectName::parse("UPPER").unwrap_err().to_string();
        assert!(msg.contains("lowercase"), "{msg}");
        let msg = ProjectName::parse(&"a".repeat(64)).unwrap_err().to_string();
        assert!(msg.contains("at most 63"), "{msg}");
        let msg = RepoDirName::parse("a/b").unwrap_err().to_string();
        assert!(msg.contains("single path component"), "{msg}");
    }

    proptest! {
        #[test]
        fn valid_names_are_accepted(name in "[a-z][a-z0-9-]{0,61}[a-z0-9]") {
            prop_assert!(ProjectName::parse(&name).is_ok());
        }

        #[test]
        fn accepted_names_obey_every_rule(name in "\\PC{0,70}") {
            if let Ok(n) = ProjectName::parse(&name) {
                let s = n.as_str();
                prop_assert!(!s.is_empty() && s.len() <= 63);
                prop_assert!(s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'));
                prop_assert!(s.as_bytes()[0].is_ascii_lowercase());
                prop_assert!(!s.ends_with('-'));
            }
        }

        #[test]
        fn accepted_dirnames_stay_one_component(name in "\\PC{0,40}") {
            if let Ok(d) = RepoDirName::parse(&name) {
                let joined = std::path::Path::new("/base").join(d.as_str());
                prop_assert_eq!(joined.parent(), Some(std::path::Path::new("/base")));
                prop_assert_eq!(joined.file_name().and_then(|f| f.to_str()), Some(d.as_str()));
            }
        }
    }
}
