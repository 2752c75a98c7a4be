//! The subset check: does every instance valid under schema `a` stay valid under schema `b`?
//!
//! BACKWARD compatibility is `old ⊆ new` (the new reader accepts what old writers wrote); FORWARD is
//! `new ⊆ old`. The check is sound in the "breaking" direction only up to the keywords it models and
//! conservative otherwise: when it cannot prove containment (two different regexes, an `if` it cannot
//! discharge) it reports a change rather than staying silent.
//!
//! Invariants:
//! - recursion through `$ref` is coinductive: a pair of conjunctions already being compared is
//!   assumed contained, which is exactly right for recursive types and never loops;
//! - work is bounded by a step budget; running out is reported as an incompatibility, never as
//!   compatible;
//! - failures are recorded as [`Raw`] changes naming the JSON pointer of the constraint involved.

mod arrays;
mod combinators;
mod objects;
mod scalars;
mod values;

use super::CompatError;
use super::flat::{
    ALL, ARR, BOOL, FRAC, Flat, INT, NULL, NUMBER, Node, OBJ, STR, Site, is_true, join, type_names,
    value_bits,
};
use regex::Regex;
use serde_json::Value;
use std::collections::HashMap;

/// What identifies a conjunction on the recursion stack: the schema nodes it was built from, plus
/// what the engine narrowed in a copy of it (disjunctions set aside, a type class or an enum value
/// split off). Without the second part, comparing a copy with its `anyOf` set aside met the
/// original pair on the stack and was assumed contained: `{}` ⊆ `{type: string, anyOf: [{}]}`.
fn recursion_key(f: &Flat<'_>) -> Vec<usize> {
    let mut key = f.ids.clone();
    key.sort_unstable();
    key.push(usize::MAX);
    key.push(f.disj.len());
    key.push(f.types.as_ref().map_or(usize::MAX, |t| usize::from(t.0)));
    for (vals, _) in &f.enums {
        key.push(usize::MAX - 1);
        key.extend(vals.iter().map(|v| std::ptr::from_ref::<Value>(v) as usize));
    }
    key
}

/// Which side of the comparison is the old schema.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Pass {
    /// `a` is the old schema, `b` the new one: failures narrow.
    OldInNew,
    /// `a` is the new schema, `b` the old one: failures widen.
    NewInOld,
}

/// Whether a constraint (or property, item) exists on one side or both.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Presence {
    OnlyA,
    OnlyB,
    Both,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum RawClass {
    /// `a ⊄ b` because of this constraint.
    Failure,
    /// Possibly not contained; reported, not failing (see the kind's docs).
    Warning,
    /// Annotation only (title, description, default...).
    Info,
}

#[derive(Clone, Debug)]
pub(crate) struct Raw {
    pub pointer: String,
    pub subject: &'static str,
    pub presence: Presence,
    pub class: RawClass,
    pub detail: String,
}

pub(crate) const DEFAULT_BUDGET: u64 = 200_000;

pub(crate) struct Engine {
    pub pass: Pass,
    pub profile: super::Profile,
    cancel: Option<repoman_core::Cancel>,
    regexes: HashMap<String, Option<Regex>>,
    steps: u64,
    budget: u64,
    stack: Vec<(Vec<usize>, Vec<usize>)>,
    pub record_annotations: bool,
    /// Above zero while proving an implication that must hold exactly (no warnings allowed), where
    /// a possibly overlapping `oneOf` fails instead of warning.
    exact: u32,
}

struct Failure {
    site: Site,
    subject: &'static str,
    detail: String,
}

fn fmt_num(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v}")
    }
}

impl Engine {
    pub(crate) fn new(pass: Pass, opts: &super::Options) -> Self {
        Engine {
            pass,
            profile: opts.profile,
            cancel: opts.cancel.clone(),
            regexes: HashMap::new(),
            steps: 0,
            budget: opts.budget,
            stack: Vec::new(),
            record_annotations: false,
            exact: 0,
        }
    }

    /// "old → new" for a pair of descriptions given as (a, b).
    fn arrow(&self, a: &str, b: &str) -> String {
        match self.pass {
            Pass::OldInNew => format!("{a} → {b}"),
            Pass::NewInOld => format!("{b} → {a}"),
        }
    }

    fn regex(&mut self, pattern: &str) -> Option<&Regex> {
        self.regexes
            .entry(pattern.to_string())
            .or_insert_with(|| {
                regex::RegexBuilder::new(pattern)
                    .size_limit(1 << 20)
                    .build()
                    .ok()
            })
            .as_ref()
    }

    fn tick(&mut self) -> Result<(), CompatError> {
        self.steps += 1;
        if self.steps > self.budget {
            return Err(CompatError::Budget { steps: self.budget });
        }
        if self.steps.is_multiple_of(1024) && self.cancel.as_ref().is_some_and(|c| c.is_cancelled())
        {
            return Err(CompatError::Cancelled);
        }
        Ok(())
    }

    /// A lower bound (`minLength`, `minProperties`, `minItems`) that B sets above A's (A's
    /// absent bound is 0). Returns whether A's values all still satisfy it.
    fn raised_min(
        &self,
        a: Option<&(u64, Site)>,
        b: Option<&(u64, Site)>,
        subject: &'static str,
        keyword: &str,
        out: &mut Vec<Raw>,
    ) -> bool {
        let Some((n, site)) = b else { return true };
        let m = a.map_or(0, |x| x.0);
        if m >= *n {
            return true;
        }
        let presence = if a.is_some() {
            Presence::Both
        } else {
            Presence::OnlyB
        };
        let detail = format!("{keyword} {}", self.arrow(&m.to_string(), &n.to_string()));
        Self::push(out, site, subject, presence, detail);
        false
    }

    /// An upper bound (`maxLength`, `maxProperties`, `maxItems`) that B sets below A's
    /// effective bound `a_max` (`None`: unbounded). `a_declared` says whether A states the
    /// keyword itself. Returns whether A's values all still satisfy it.
    fn lowered_max(
        &self,
        a_max: Option<u64>,
        a_declared: bool,
        b: Option<&(u64, Site)>,
        subject: &'static str,
        keyword: &str,
        out: &mut Vec<Raw>,
    ) -> bool {
        let Some((n, site)) = b else { return true };
        if a_max.is_some_and(|m| m <= *n) {
            return true;
        }
        let a = a_max.map_or("none".into(), |m| m.to_string());
        let presence = if a_declared {
            Presence::Both
        } else {
            Presence::OnlyB
        };
        let detail = format!("{keyword} {}", self.arrow(&a, &n.to_string()));
        Self::push(out, site, subject, presence, detail);
        false
    }

    fn push(
        out: &mut Vec<Raw>,
        site: &str,
        subject: &'static str,
        presence: Presence,
        detail: String,
    ) {
        out.push(Raw {
            pointer: site.to_string(),
            subject,
            presence,
            class: RawClass::Failure,
            detail,
        });
    }

    pub(crate) fn subset_nodes<'a>(
        &mut self,
        a: &[Node<'a>],
        b: &[Node<'a>],
        out: &mut Vec<Raw>,
    ) -> Result<bool, CompatError> {
        if b.iter().all(|n| is_true(n.v)) {
            return Ok(true);
        }
        // Identical subtrees without references are trivially contained (and common: most of a
        // schema does not change between versions).
        if a.len() == 1 && b.len() == 1 && a[0].v == b[0].v && !contains_ref(a[0].v, 0) {
            return Ok(true);
        }
        let fa = Flat::of(a)?;
        let fb = Flat::of(b)?;
        self.subset_flat(&fa, &fb, out)
    }

    fn silent_nodes<'a>(&mut self, a: &[Node<'a>], b: &[Node<'a>]) -> Result<bool, CompatError> {
        let mut scratch = Vec::new();
        self.subset_nodes(a, b, &mut scratch)
    }

    fn subset_flat<'a>(
        &mut self,
        fa: &Flat<'a>,
        fb: &Flat<'a>,
        out: &mut Vec<Raw>,
    ) -> Result<bool, CompatError> {
        self.tick()?;
        let key = (recursion_key(fa), recursion_key(fb));
        if self.stack.contains(&key) {
            return Ok(true);
        }
        if self.stack.len() > 512 {
            return Err(CompatError::TooDeep {
                pointer: fb
                    .annotations
                    .as_ref()
                    .map(|a| a.0.to_string())
                    .unwrap_or_default(),
            });
        }
        self.stack.push(key);
        let r = self.subset_flat_inner(fa, fb, out);
        self.stack.pop();
        r
    }

    fn unsat(&mut self, fa: &Flat<'_>) -> bool {
        if fa.is_false.is_some() {
            return true;
        }
        let types = fa.types.as_ref().map_or(ALL, |t| t.0);
        if types == 0 {
            return true;
        }
        if let Some(vals) = fa.enum_values()
            && !vals
                .iter()
                .any(|v| types & value_bits(v) != 0 || (types & FRAC != 0 && value_bits(v) == INT))
        {
            return true;
        }
        false
    }

    fn annotations(&self, fa: &Flat<'_>, fb: &Flat<'_>, out: &mut Vec<Raw>) {
        let (Some((_, ma)), Some((sb, mb))) = (&fa.annotations, &fb.annotations) else {
            return;
        };
        for (key, subject) in [
            ("title", "title"),
            ("description", "description"),
            ("$id", "id"),
            ("id", "id"),
            ("default", "default"),
            ("deprecated", "deprecated"),
            ("readOnly", "read-only"),
            ("writeOnly", "write-only"),
            ("examples", "examples"),
        ] {
            let (va, vb) = (ma.get(key), mb.get(key));
            if va != vb {
                let presence = match (va, vb) {
                    (Some(_), Some(_)) => Presence::Both,
                    (Some(_), None) => Presence::OnlyA,
                    _ => Presence::OnlyB,
                };
                out.push(Raw {
                    pointer: join(sb, key).to_string(),
                    subject,
                    presence,
                    class: RawClass::Info,
                    detail: format!("{key} changed"),
                });
            }
        }
    }

    fn subset_flat_inner<'a>(
        &mut self,
        fa: &Flat<'a>,
        fb: &Flat<'a>,
        out: &mut Vec<Raw>,
    ) -> Result<bool, CompatError> {
        if self.record_annotations {
            self.annotations(fa, fb, out);
        }
        if self.unsat(fa) || fb.is_trivial() {
            return Ok(true);
        }
        if let Some(site) = &fb.is_false {
            Self::push(
                out,
                site,
                "schema",
                Presence::OnlyB,
                "the schema is `false` and rejects every value".into(),
            );
            return Ok(false);
        }
        if let Some((first, rest_disj)) = fa.disj.split_first() {
            let mut rest = fa.clone();
            rest.disj = rest_disj.to_vec();
            rest.expanded.push(first.site.clone());
            rest.expanded_branches.push((
                first.site.clone(),
                first.branches.iter().map(|b| b.v).collect(),
            ));
            let mut ok = true;
            for br in &first.branches {
                let mut part = rest.clone();
                part.merge(Flat::of(std::slice::from_ref(br))?);
                if !self.subset_flat(&part, fb, out)? {
                    ok = false;
                }
            }
            return Ok(ok);
        }
        if !fb.disj.is_empty() {
            let mut core = fb.clone();
            let disjs = std::mem::take(&mut core.disj);
            let mut ok = self.subset_flat(fa, &core, out)?;
            for d in &disjs {
                let covered = self.covered(fa, &d.branches, out)?;
                if covered
                    && d.kw == "oneOf"
                    && (self.pass == Pass::OldInNew || self.exact > 0)
                    && !self.one_of_overlap(fa, d, out)?
                {
                    ok = false;
                }
                if !covered {
                    let presence = if fa.expanded.contains(&d.site) {
                        Presence::Both
                    } else {
                        Presence::OnlyB
                    };
                    let subject = if d.kw == "oneOf" { "one-of" } else { "any-of" };
                    Self::push(
                        out,
                        &d.site,
                        subject,
                        presence,
                        format!(
                            "no alternative of `{}` accepts every value the other side allows",
                            d.kw
                        ),
                    );
                    ok = false;
                }
            }
            return Ok(ok);
        }
        self.keywords(fa, fb, out)
    }

    /// A slot (a property, an item position, additional properties...) present on one side only is
    /// summarised as one change; present on both, its own changes are reported.
    #[allow(clippy::too_many_arguments)]
    fn slot<'a>(
        &mut self,
        a: &[Node<'a>],
        b: &[Node<'a>],
        pointer: &str,
        subject: &'static str,
        presence: Presence,
        out: &mut Vec<Raw>,
    ) -> Result<bool, CompatError> {
        if presence == Presence::Both {
            return self.subset_nodes(a, b, out);
        }
        let mut scratch = Vec::new();
        let ok = self.subset_nodes(a, b, &mut scratch)?;
        if ok {
            out.extend(scratch.into_iter().filter(|r| r.class == RawClass::Warning));
        } else {
            let why = scratch
                .iter()
                .find(|r| r.class == RawClass::Failure)
                .map(|r| format!(" ({} at {})", r.detail, r.pointer))
                .unwrap_or_default();
            let what = match (subject, presence, self.pass) {
                ("property", Presence::OnlyB, Pass::OldInNew)
                | ("property", Presence::OnlyA, Pass::NewInOld) => {
                    "property added where the old schema allowed other values"
                }
                ("property", _, _) => {
                    "property removed; the remaining schema does not accept its old values"
                }
                ("item", Presence::OnlyB, Pass::OldInNew)
                | ("item", Presence::OnlyA, Pass::NewInOld) => {
                    "tuple item added where the old schema allowed other values"
                }
                ("item", _, _) => {
                    "tuple item removed; the remaining schema does not accept its old values"
                }
                _ => "constraint changed",
            };
            out.push(Raw {
                pointer: pointer.to_string(),
                subject,
                presence,
                class: RawClass::Failure,
                detail: format!("{what}{why}"),
            });
        }
        Ok(ok)
    }

    fn keywords<'a>(
        &mut self,
        fa: &Flat<'a>,
        fb: &Flat<'a>,
        out: &mut Vec<Raw>,
    ) -> Result<bool, CompatError> {
        let ta0 = fa.types.as_ref().map_or(ALL, |t| t.0);
        if let Some(vals) = fa.enum_values() {
            // A finite writer: check each value.
            let mut ok = true;
            for v in vals {
                if ta0 & value_bits(v) == 0 && !(ta0 & FRAC != 0 && value_bits(v) == INT) {
                    continue;
                }
                if self.value_fails(v, fa, 0)?.is_some() {
                    continue;
                }
                if let Some(f) = self.value_fails(v, fb, 0)? {
                    let presence = presence_of(fa, f.subject);
                    out.push(Raw {
                        pointer: f.site.to_string(),
                        subject: f.subject,
                        presence,
                        class: RawClass::Failure,
                        detail: format!("value {v} is no longer accepted: {}", f.detail),
                    });
                    ok = false;
                }
            }
            return Ok(ok);
        }
        let mut ok = true;
        let mut ta = ta0;
        if let Some((tb, site)) = &fb.types {
            let extra = ta & !tb;
            if extra != 0 {
                let presence = if fa.types.is_some() {
                    Presence::Both
                } else {
                    Presence::OnlyB
                };
                let a_desc = if fa.types.is_some() {
                    type_names(ta)
                } else {
                    "any type".into()
                };
                Self::push(
                    out,
                    site,
                    "type",
                    presence,
                    format!("type {}", self.arrow(&a_desc, &type_names(*tb))),
                );
                ok = false;
            }
            ta &= tb;
        }
        if ta == 0 {
            return Ok(ok);
        }
        if ta & !(NULL | BOOL) == 0 {
            // Finitely many values: check them one by one.
            let candidates = [Value::Null, Value::Bool(true), Value::Bool(false)];
            for v in candidates.iter().filter(|v| ta & value_bits(v) != 0) {
                if self.value_fails(v, fa, 0)?.is_some() {
                    continue;
                }
                if let Some(f) = self.value_fails(v, fb, 0)? {
                    let presence = presence_of(fa, f.subject);
                    Self::push(
                        out,
                        &f.site,
                        f.subject,
                        presence,
                        format!("value {v} is no longer accepted: {}", f.detail),
                    );
                    ok = false;
                }
            }
            return Ok(ok);
        }
        if let Some((_, site)) = fb.enums.first() {
            Self::push(
                out,
                site,
                "enum",
                Presence::OnlyB,
                "values are now restricted to a fixed set".into(),
            );
            ok = false;
        }
        if ta & STR != 0 {
            ok &= self.strings(fa, fb, out);
        }
        if ta & NUMBER != 0 {
            ok &= self.numbers(fa, fb, ta, out);
        }
        if ta & OBJ != 0 {
            ok &= self.objects(fa, fb, out)?;
        }
        if ta & ARR != 0 {
            ok &= self.arrays(fa, fb, out)?;
        }
        for n in &fb.nots {
            let fnb = Flat::of(std::slice::from_ref(n))?;
            if let Some((nt, _)) = &fnb.types
                && nt & ta == 0
            {
                continue;
            }
            let mut implied = false;
            for na in &fa.nots {
                self.exact += 1;
                let held = self.silent_nodes(std::slice::from_ref(n), std::slice::from_ref(na));
                self.exact -= 1;
                if held? {
                    implied = true;
                    break;
                }
            }
            if !implied {
                let presence = if fa.nots.is_empty() {
                    Presence::OnlyB
                } else {
                    Presence::Both
                };
                Self::push(
                    out,
                    &n.site,
                    "not",
                    presence,
                    "the excluded set grew".into(),
                );
                ok = false;
            }
        }
        for c in &fb.conds {
            if fa.conds.iter().any(|ca| {
                ca.if_.v == c.if_.v
                    && ca.then.as_ref().map(|n| n.v) == c.then.as_ref().map(|n| n.v)
                    && ca.else_.as_ref().map(|n| n.v) == c.else_.as_ref().map(|n| n.v)
                    && !contains_ref(c.if_.v, 0)
            }) {
                continue;
            }
            let mut both = true;
            for branch in [&c.then, &c.else_].into_iter().flatten() {
                let mut scratch = Vec::new();
                // Warnings count here: a branch is only discharged when it is certainly implied.
                let fbr = Flat::of(std::slice::from_ref(branch))?;
                self.exact += 1;
                let held = self.subset_flat(fa, &fbr, &mut scratch);
                self.exact -= 1;
                if !held? || !scratch.is_empty() {
                    both = false;
                }
            }
            if !both {
                let presence = if fa.conds.is_empty() {
                    Presence::OnlyB
                } else {
                    Presence::Both
                };
                Self::push(
                    out,
                    &c.site,
                    "if-then-else",
                    presence,
                    "conditional constraint changed".into(),
                );
                ok = false;
            }
        }
        Ok(ok)
    }
}

fn presence_of(fa: &Flat<'_>, subject: &str) -> Presence {
    let has = match subject {
        "type" => fa.types.is_some(),
        "enum" | "const" => !fa.enums.is_empty(),
        "min-length" => fa.min_len.is_some(),
        "max-length" => fa.max_len.is_some(),
        "pattern" => !fa.patterns.is_empty(),
        "minimum" | "exclusive-minimum" => fa.lower.is_some(),
        "maximum" | "exclusive-maximum" => fa.upper.is_some(),
        "multiple-of" => !fa.multiple_of.is_empty(),
        "not" => !fa.nots.is_empty(),
        "one-of" | "any-of" => !fa.expanded.is_empty(),
        _ => true,
    };
    if has { Presence::Both } else { Presence::OnlyB }
}

fn is_multiple(x: f64, m: f64) -> bool {
    if m == 0.0 {
        return false;
    }
    let q = x / m;
    (q - q.round()).abs() < 1e-9
}

pub(crate) fn contains_ref(v: &Value, depth: usize) -> bool {
    if depth > 128 {
        return true;
    }
    match v {
        Value::Object(m) => m.iter().any(|(k, c)| {
            k == "$ref" || k == "$recursiveRef" || k == "$dynamicRef" || contains_ref(c, depth + 1)
        }),
        Value::Array(items) => items.iter().any(|c| contains_ref(c, depth + 1)),
        _ => false,
    }
}
