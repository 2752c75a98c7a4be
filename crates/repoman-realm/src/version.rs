//! Contract versions and version ranges.
//!
//! Versions are semver. Ranges accept both the npm style (`>=1.0.0 <2.0.0`, `1.0.0 - 2.0.0`,
//! `^1.2 || ^2`) and the comma style of the `semver` crate (`>=1.0.0, <2.0.0`); npm-style input is
//! normalised before parsing. Pre-release versions only satisfy a range that names a pre-release of
//! the same `major.minor.patch` (the npm and Cargo rule).
//!
//! Bump rules: a breaking change needs a major bump; below 1.0.0 the minor acts as the major.

use semver::{Version, VersionReq};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VersionError {
    #[error(
        "`{input}` is not a semantic version (expected MAJOR.MINOR.PATCH, e.g. 1.4.0): {reason}"
    )]
    Version { input: String, reason: String },
    #[error("`{input}` is not a version range (e.g. `>=1.0.0 <2.0.0` or `^1.2`): {reason}")]
    Range { input: String, reason: String },
}

pub fn parse_version(s: &str) -> Result<Version, VersionError> {
    Version::parse(s.trim()).map_err(|e| VersionError::Version {
        input: s.to_string(),
        reason: e.to_string(),
    })
}

/// A range: alternatives separated by `||`, each a conjunction of comparators.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Range {
    pub input: String,
    pub alternatives: Vec<VersionReq>,
}

impl Range {
    pub fn parse(input: &str) -> Result<Range, VersionError> {
        let err = |reason: String| VersionError::Range {
            input: input.to_string(),
            reason,
        };
        let mut alternatives = Vec::new();
        for alt in input.split("||") {
            let normalized = normalize(alt);
            if normalized.is_empty() {
                return Err(err("empty alternative".into()));
            }
            alternatives.push(VersionReq::parse(&normalized).map_err(|e| err(e.to_string()))?);
        }
        Ok(Range {
            input: input.to_string(),
            alternatives,
        })
    }

    pub fn matches(&self, v: &Version) -> bool {
        self.alternatives.iter().any(|r| r.matches(v))
    }
}

impl std::fmt::Display for Range {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.input)
    }
}

/// `>=1.0.0 <2.0.0` → `>=1.0.0, <2.0.0`; `>= 1.0.0` → `>=1.0.0`; `1.0.0 - 2.0.0` →
/// `>=1.0.0, <=2.0.0`; comma-separated input is kept.
fn normalize(s: &str) -> String {
    let tokens: Vec<&str> = s
        .split(|c: char| c.is_whitespace() || c == ',')
        .filter(|t| !t.is_empty())
        .collect();
    if tokens.len() == 3 && tokens[1] == "-" {
        return format!(">={}, <={}", tokens[0], tokens[2]);
    }
    let mut comparators: Vec<String> = Vec::new();
    let mut pending_op: Option<&str> = None;
    for t in tokens {
        if t.chars().all(|c| "<>=~^".contains(c)) {
            pending_op = Some(t);
            continue;
        }
        match pending_op.take() {
            Some(op) => comparators.push(format!("{op}{t}")),
            None => comparators.push(t.to_string()),
        }
    }
    if let Some(op) = pending_op {
        comparators.push(op.to_string());
    }
    comparators.join(", ")
}

/// How big a step `old → new` is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Bump {
    Patch,
    Minor,
    Major,
}

/// The bump `old → new` counts as for compatibility purposes (below 1.0.0 the minor is the
/// major); `None` when `new` is not greater than `old`.
pub fn bump(old: &Version, new: &Version) -> Option<Bump> {
    if new <= old {
        return None;
    }
    if new.major != old.major {
        return Some(Bump::Major);
    }
    if old.major == 0 {
        if new.minor != old.minor {
            return Some(Bump::Major);
        }
        return Some(if new.patch != old.patch {
            Bump::Minor
        } else {
            Bump::Patch
        });
    }
    if new.minor != old.minor {
        return Some(Bump::Minor);
    }
    Some(Bump::Patch)
}

/// Why a version step does not fit the change.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BumpError {
    #[error("version {new} is not greater than {old}")]
    NotIncreasing { old: Version, new: Version },
    #[error("{old} → {new} has breaking changes and needs a major bump (to {suggested} or later){}", if old.major == 0 { "; below 1.0.0 the minor acts as the major" } else { "" })]
    NeedsMajor {
        old: Version,
        new: Version,
        suggested: Version,
    },
}

/// Checks a step against whether the schema change is breaking.
pub fn check_bump(old: &Version, new: &Version, breaking: bool) -> Result<Bump, BumpError> {
    let b = bump(old, new).ok_or_else(|| BumpError::NotIncreasing {
        old: old.clone(),
        new: new.clone(),
    })?;
    if breaking && b != Bump::Major {
        return Err(BumpError::NeedsMajor {
            old: old.clone(),
            new: new.clone(),
            suggested: next(old, true),
        });
    }
    Ok(b)
}

/// The next version after `v`: the next "major" (minor below 1.0.0) when breaking, else the next
/// minor (patch below 1.0.0).
pub fn next(v: &Version, breaking: bool) -> Version {
    match (v.major, breaking) {
        (0, true) => Version::new(0, v.minor + 1, 0),
        (0, false) => Version::new(0, v.minor, v.patch + 1),
        (m, true) => Version::new(m + 1, 0, 0),
        (m, false) => Version::new(m, v.minor + 1, 0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> Version {
        parse_version(s).expect("version")
    }

    #[test]
    fn ranges_with_and_without_commas_agree() {
        for input in [
            ">=1.0.0 <2.0.0",
            ">=1.0.0, <2.0.0",
            ">= 1.0.0 < 2.0.0",
            ">=1.0.0,<2.0.0",
            "1.0.0 - 1.99.99",
        ] {
            let r = Range::parse(input).expect(input);
            assert!(r.matches(&v("1.0.0")), "{input}");
            assert!(r.matches(&v("1.4.0")), "{input}");
            assert!(!r.matches(&v("2.0.0")), "{input}");
            assert!(!r.matches(&v("0.9.0")), "{input}");
        }
        let alt = Range::parse("^1.2 || ^3").expect("alternatives");
        assert!(alt.matches(&v("3.1.0")) && alt.matches(&v("1.2.5")) && !alt.matches(&v("2.0.0")));
        assert!(Range::parse(">=1.0.0 <<2").is_err());
        assert!(Range::parse("").is_err());
    }

    #[test]
    fn pre_releases_only_match_ranges_that_name_them() {
        let r = Range::parse(">=1.0.0 <2.0.0").expect("range");
        assert!(!r.matches(&v("1.5.0-beta.1")));
        assert!(!r.matches(&v("2.0.0-rc.1")));
        let pre = Range::parse(">=1.5.0-beta.1 <2.0.0").expect("range");
        assert!(pre.matches(&v("1.5.0-beta.2")));
        assert!(!pre.matches(&v("1.6.0-beta.1")));
        assert!(pre.matches(&v("1.6.0")));
    }

    #[test]
    fn zero_x_minor_acts_as_major() {
        assert_eq!(bump(&v("0.3.1"), &v("0.4.0")), Some(Bump::Major));
        assert_eq!(bump(&v("0.3.1"), &v("0.3.2")), Some(Bump::Minor));
        assert_eq!(bump(&v("1.3.1"), &v("1.4.0")), Some(Bump::Minor));
        assert_eq!(bump(&v("1.3.1"), &v("2.0.0")), Some(Bump::Major));
        assert_eq!(bump(&v("1.3.1"), &v("1.3.1")), None);
        assert!(check_bump(&v("0.3.1"), &v("0.3.2"), true).is_err());
        assert!(check_bump(&v("0.3.1"), &v("0.4.0"), true).is_ok());
        let e = check_bump(&v("1.3.0"), &v("1.4.0"), true).expect_err("needs major");
        assert_eq!(
            e.to_string(),
            "1.3.0 → 1.4.0 has breaking changes and needs a major bump (to 2.0.0 or later)"
        );
        assert!(check_bump(&v("1.3.0"), &v("1.2.0"), false).is_err());
        assert_eq!(next(&v("0.2.3"), true), v("0.3.0"));
        assert_eq!(next(&v("1.2.3"), false), v("1.3.0"));
    }
}
