//! The direction-aware JSON Schema compatibility engine.
//!
//! [`analyze`] compares two schemas both ways (old ⊆ new, new ⊆ old) and returns every change it
//! found, each with a JSON pointer, a kind (`max-length-narrowed`, `property-added`, ...) and whether
//! it narrows (rejects values the old schema accepted) and/or widens (accepts values the old schema
//! rejected). [`Analysis::report`] turns that into a verdict for one [`Mode`]:
//!
//! - **BACKWARD**: the new schema reads data written under the old one. Narrowing breaks.
//! - **FORWARD**: the old schema reads data written under the new one. Widening breaks.
//! - **FULL**: both.
//!
//! TRANSITIVE variants run the same check against every earlier version (see the realm check).
//!
//! Draft-07 (`items: [...]`, `additionalItems`, `dependencies`, `definitions`) and 2020-12
//! (`prefixItems`, `dependentRequired`/`dependentSchemas`, `$defs`, `unevaluated*`) keywords are
//! both understood; local `$ref`s (`#/...`, anchors) are followed, recursively and without looping.
//!
//! Verdicts follow a [`Profile`]. [`Profile::Semantic`] (the default) is validation semantics: a
//! change is breaking for BACKWARD when some document valid under the old schema is invalid under
//! the new one, whether or not the property it names is declared and whatever its `default` says
//! (defaults are annotations). [`Profile::Confluent`] reproduces Confluent Schema Registry, which
//! accepts a `required` name missing from `properties` and a newly required property with a
//! `default`. The only *warnings* left are what the engine cannot decide: a `oneOf` whose
//! alternatives may now overlap (disjointness is proved conservatively).

/// The version of the compatibility rules. Part of every cached verdict's key (the realm check
/// cache), with the crate version: a binary whose rules differ never reuses an older verdict.
/// Bump it with every change to what a diff reports.
pub const ENGINE_VERSION: &str = concat!("compat-rules/4+", env!("CARGO_PKG_VERSION"));

mod engine;
mod flat;

use engine::{DEFAULT_BUDGET, Engine, Pass, Presence, Raw, RawClass};
use flat::Node;
use serde::Serialize;
use serde_json::Value;

/// Errors that stop an analysis (as opposed to incompatibilities, which are results).
#[derive(Debug, thiserror::Error)]
pub enum CompatError {
    #[error(
        "unsupported or unresolvable $ref `{reference}` at {pointer}: only local references (`#/...`, `#anchor`) are supported"
    )]
    Ref { pointer: String, reference: String },
    #[error("schema nesting too deep at {pointer} (more than 256 levels of $ref/allOf)")]
    TooDeep { pointer: String },
    #[error(
        "compatibility analysis gave up after {steps} steps; the schemas are too large or too combinatorial to compare"
    )]
    Budget { steps: u64 },
    #[error("compatibility analysis interrupted")]
    Cancelled,
}

/// Whose rules decide a verdict.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, serde::Deserialize, Hash)]
#[serde(rename_all = "lowercase")]
pub enum Profile {
    /// Validation semantics: breaking iff some old-valid document is new-invalid (BACKWARD).
    #[default]
    Semantic,
    /// Confluent Schema Registry's JSON Schema rules, verdict for verdict.
    Confluent,
}

impl Profile {
    pub fn as_str(self) -> &'static str {
        match self {
            Profile::Semantic => "semantic",
            Profile::Confluent => "confluent",
        }
    }
}

/// Which readers must keep working.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, serde::Deserialize, Hash)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    Backward,
    Forward,
    Full,
}

impl Mode {
    /// The mode a contract's `compatibility {backwards, forwards}` selects; `None` if neither is
    /// required.
    pub fn from_flags(backwards: bool, forwards: bool) -> Option<Mode> {
        match (backwards, forwards) {
            (true, true) => Some(Mode::Full),
            (true, false) => Some(Mode::Backward),
            (false, true) => Some(Mode::Forward),
            (false, false) => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Backward => "backward",
            Mode::Forward => "forward",
            Mode::Full => "full",
        }
    }
}

impl std::str::FromStr for Mode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "backward" | "backwards" => Ok(Mode::Backward),
            "forward" | "forwards" => Ok(Mode::Forward),
            "full" => Ok(Mode::Full),
            other => Err(format!(
                "unknown compatibility mode `{other}` (expected backward, forward or full)"
            )),
        }
    }
}

/// The verdict of one change, or of a whole comparison.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, serde::Deserialize, Hash,
)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Compatible,
    Warning,
    Breaking,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Compatible => "compatible",
            Verdict::Warning => "warning",
            Verdict::Breaking => "breaking",
        }
    }
}

/// One change between two schemas, independent of the mode.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Change {
    /// JSON pointer fragment into the schema (`#/properties/foo/maxLength`).
    pub pointer: String,
    /// `<subject>-<relation>`: e.g. `max-length-narrowed`, `property-added`, `type-changed`.
    pub kind: String,
    pub message: String,
    /// Rejects values the old schema accepted.
    pub narrows: bool,
    /// Accepts values the old schema rejected.
    pub widens: bool,
    pub narrows_warning: bool,
    pub widens_warning: bool,
}

impl Change {
    pub fn verdict(&self, mode: Mode) -> Verdict {
        let back = if self.narrows {
            Verdict::Breaking
        } else if self.narrows_warning {
            Verdict::Warning
        } else {
            Verdict::Compatible
        };
        let fwd = if self.widens {
            Verdict::Breaking
        } else if self.widens_warning {
            Verdict::Warning
        } else {
            Verdict::Compatible
        };
        match mode {
            Mode::Backward => back,
            Mode::Forward => fwd,
            Mode::Full => back.max(fwd),
        }
    }
}

/// Both directions of a comparison.
#[derive(Clone, Debug)]
pub struct Analysis {
    pub changes: Vec<Change>,
}

/// One change as reported for a mode.
#[derive(Clone, Debug, Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct ReportedChange {
    pub pointer: String,
    pub kind: String,
    pub verdict: Verdict,
    pub message: String,
}

/// The result of comparing two schemas in one mode.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct DiffReport {
    pub mode: Mode,
    pub verdict: Verdict,
    pub changes: Vec<ReportedChange>,
}

impl DiffReport {
    pub fn is_breaking(&self) -> bool {
        self.verdict == Verdict::Breaking
    }
}

impl Analysis {
    pub fn report(&self, mode: Mode) -> DiffReport {
        let changes: Vec<ReportedChange> = self
            .changes
            .iter()
            .map(|c| ReportedChange {
                pointer: c.pointer.clone(),
                kind: c.kind.clone(),
                verdict: c.verdict(mode),
                message: c.message.clone(),
            })
            .collect();
        let verdict = changes
            .iter()
            .map(|c| c.verdict)
            .max()
            .unwrap_or(Verdict::Compatible);
        DiffReport {
            mode,
            verdict,
            changes,
        }
    }
}

fn relation(pass: Pass, presence: Presence) -> &'static str {
    match (pass, presence) {
        (_, Presence::Both) if pass == Pass::OldInNew => "narrowed",
        (_, Presence::Both) => "widened",
        (Pass::OldInNew, Presence::OnlyB) | (Pass::NewInOld, Presence::OnlyA) => "added",
        _ => "removed",
    }
}

fn run(pass: Pass, opts: &Options, a: &Value, b: &Value) -> Result<Vec<Raw>, CompatError> {
    let mut engine = Engine::new(pass, opts);
    engine.record_annotations = pass == Pass::OldInNew;
    let mut out = Vec::new();
    engine.subset_nodes(&[Node::root(a)], &[Node::root(b)], &mut out)?;
    Ok(out)
}

/// Compares `old` and `new` in both directions, under [`Profile::Semantic`].
pub fn analyze(old: &Value, new: &Value) -> Result<Analysis, CompatError> {
    analyze_with(old, new, &Options::default())
}

/// [`analyze`] with an explicit step budget (each direction).
pub fn analyze_with_budget(old: &Value, new: &Value, budget: u64) -> Result<Analysis, CompatError> {
    analyze_with(
        old,
        new,
        &Options {
            budget,
            ..Options::default()
        },
    )
}

/// How an analysis runs.
#[derive(Clone, Debug)]
pub struct Options {
    pub profile: Profile,
    /// Steps per direction before [`CompatError::Budget`].
    pub budget: u64,
    /// Polled while comparing: a cancelled token ends the analysis with [`CompatError::Cancelled`].
    pub cancel: Option<repoman_core::Cancel>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            profile: Profile::Semantic,
            budget: DEFAULT_BUDGET,
            cancel: None,
        }
    }
}

/// [`analyze`] with a profile, a budget and a cancellation token.
pub fn analyze_with(old: &Value, new: &Value, opts: &Options) -> Result<Analysis, CompatError> {
    let narrowing = run(Pass::OldInNew, opts, old, new)?;
    let widening = run(Pass::NewInOld, opts, new, old)?;
    let mut changes: Vec<Change> = Vec::new();
    let mut subjects: Vec<&'static str> = Vec::new();
    for (pass, raws) in [(Pass::OldInNew, narrowing), (Pass::NewInOld, widening)] {
        for r in raws {
            let existing = changes
                .iter()
                .zip(subjects.iter())
                .position(|(c, s)| c.pointer == r.pointer && *s == r.subject);
            let (hard, warn) = match r.class {
                RawClass::Failure => (true, false),
                RawClass::Warning => (false, true),
                RawClass::Info => (false, false),
            };
            match existing {
                Some(i) => {
                    let c = &mut changes[i];
                    if pass == Pass::NewInOld && (c.narrows || c.narrows_warning) && (hard || warn)
                    {
                        c.kind = format!("{}-changed", r.subject);
                    }
                    if pass == Pass::OldInNew {
                        c.narrows |= hard;
                        c.narrows_warning |= warn;
                    } else {
                        c.widens |= hard;
                        c.widens_warning |= warn;
                    }
                }
                None => {
                    let kind = if r.class == RawClass::Info {
                        match r.presence {
                            Presence::Both => format!("{}-changed", r.subject),
                            Presence::OnlyA => format!("{}-removed", r.subject),
                            Presence::OnlyB => format!("{}-added", r.subject),
                        }
                    } else {
                        format!("{}-{}", r.subject, relation(pass, r.presence))
                    };
                    let (narrows, widens) = if pass == Pass::OldInNew {
                        (hard, false)
                    } else {
                        (false, hard)
                    };
                    let (nw, ww) = if pass == Pass::OldInNew {
                        (warn, false)
                    } else {
                        (false, warn)
                    };
                    changes.push(Change {
                        pointer: r.pointer,
                        kind,
                        message: r.detail,
                        narrows,
                        widens,
                        narrows_warning: nw,
                        widens_warning: ww,
                    });
                    subjects.push(r.subject);
                }
            }
        }
    }
    Ok(Analysis { changes })
}

/// Compares two schemas in one mode (semantic profile).
pub fn diff(old: &Value, new: &Value, mode: Mode) -> Result<DiffReport, CompatError> {
    Ok(analyze(old, new)?.report(mode))
}
