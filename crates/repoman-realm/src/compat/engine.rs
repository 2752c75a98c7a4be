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

use super::CompatError;
use super::flat::{
    ALL, ARR, BOOL, CLASSES, Contains, FRAC, Flat, INT, NULL, NUMBER, Node, OBJ, STR, Site,
    is_true, join, json_eq, type_names, value_bits,
};
use regex::Regex;
use serde_json::Value;
use std::collections::HashMap;
use std::rc::Rc;

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
    regexes: HashMap<String, Option<Regex>>,
    steps: u64,
    budget: u64,
    stack: Vec<(Vec<usize>, Vec<usize>)>,
    pub record_annotations: bool,
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
    pub(crate) fn new(pass: Pass, budget: u64) -> Self {
        Engine {
            pass,
            regexes: HashMap::new(),
            steps: 0,
            budget,
            stack: Vec::new(),
            record_annotations: false,
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
        let mut ka = fa.ids.clone();
        ka.sort_unstable();
        let mut kb = fb.ids.clone();
        kb.sort_unstable();
        let key = (ka, kb);
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
                if covered && d.kw == "oneOf" && self.pass == Pass::OldInNew {
                    self.one_of_overlap(fa, d, out)?;
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

    /// `oneOf` rejects a value matching two alternatives. After a change, warn when the old values
    /// may match several alternatives of a new `oneOf` and at least one of those is new.
    fn one_of_overlap<'a>(
        &mut self,
        fa: &Flat<'a>,
        d: &super::flat::Disj<'a>,
        out: &mut Vec<Raw>,
    ) -> Result<(), CompatError> {
        let old: Vec<&Value> = fa
            .expanded_branches
            .iter()
            .filter(|(s, _)| *s == d.site)
            .flat_map(|(_, v)| v.iter().copied())
            .collect();
        // Alternatives some old value may satisfy, and whether each is new.
        let mut candidates: Vec<(Flat<'a>, String, bool)> = Vec::new();
        for br in &d.branches {
            let fb = Flat::of(std::slice::from_ref(br))?;
            if !self.disjoint(fa, &fb)? {
                let is_new = !old.contains(&br.v);
                candidates.push((fb, br.site.to_string(), is_new));
            }
        }
        // A value matches two alternatives only if those two overlap each other.
        let mut overlapping: Vec<String> = Vec::new();
        let mut new_ones = false;
        for i in 0..candidates.len() {
            for j in i + 1..candidates.len() {
                if !(candidates[i].2 || candidates[j].2) {
                    continue;
                }
                if !self.disjoint(&candidates[i].0, &candidates[j].0)? {
                    new_ones = true;
                    for k in [i, j] {
                        if !overlapping.contains(&candidates[k].1) {
                            overlapping.push(candidates[k].1.clone());
                        }
                    }
                }
            }
        }
        if new_ones {
            out.push(Raw {
                pointer: d.site.to_string(),
                subject: "one-of-overlap",
                presence: Presence::OnlyB,
                class: RawClass::Warning,
                detail: format!(
                    "values the old schema accepts may match several alternatives ({}); `oneOf` rejects a value that matches more than one",
                    overlapping.join(", ")
                ),
            });
        }
        Ok(())
    }

    /// Can no value satisfy both `fa` and `fb`? (Sound when it says yes; conservative otherwise.)
    fn disjoint<'a>(&mut self, fa: &Flat<'a>, fb: &Flat<'a>) -> Result<bool, CompatError> {
        // Integers are a subset of numbers in the bit model, so a plain intersection is right.
        let eff = |f: &Flat<'a>| {
            let t = f.types.as_ref().map_or(ALL, |t| t.0);
            match f.enum_values() {
                Some(vals) => t & vals.iter().fold(0, |acc, v| acc | value_bits(v)),
                None => t,
            }
        };
        let (ta, tb) = (eff(fa), eff(fb));
        if ta & tb == 0 {
            return Ok(true);
        }
        if let (Some(va), Some(vb)) = (fa.enum_values(), fb.enum_values())
            && !va.iter().any(|x| vb.iter().any(|y| json_eq(x, y)))
        {
            return Ok(true);
        }
        // Objects told apart by a discriminating property (`kind: {const: a}` vs `{const: b}`).
        if ta & tb & !OBJ == 0 {
            let names: Vec<&'a str> = fb
                .objs
                .iter()
                .flat_map(|g| g.props.iter().map(|(p, _)| *p))
                .collect();
            for p in names {
                let required = fb.required.iter().any(|(r, _)| *r == p)
                    || fa.required.iter().any(|(r, _)| *r == p);
                if !required {
                    continue;
                }
                let pa = Flat::of(&self.prop_conj(fa, p))?;
                let pb = Flat::of(&self.prop_conj(fb, p))?;
                if let (Some(va), Some(vb)) = (pa.enum_values(), pb.enum_values())
                    && !va.iter().any(|x| vb.iter().any(|y| json_eq(x, y)))
                {
                    return Ok(true);
                }
            }
        }
        Ok(false)
    }

    /// Is `fa` contained in the union of `branches`?
    fn covered<'a>(
        &mut self,
        fa: &Flat<'a>,
        branches: &[Node<'a>],
        _out: &mut Vec<Raw>,
    ) -> Result<bool, CompatError> {
        let flats = branches
            .iter()
            .map(|b| Flat::of(std::slice::from_ref(b)))
            .collect::<Result<Vec<_>, _>>()?;
        for fbj in &flats {
            let mut scratch = Vec::new();
            if self.subset_flat(fa, fbj, &mut scratch)? {
                return Ok(true);
            }
        }
        // Split `fa` into parts (its enum values, or its type classes) that may each fit a
        // different alternative: `{type: [string, number]}` ⊆ `oneOf: [{string}, {number}]`.
        let mut parts = Vec::new();
        if let Some(vals) = fa.enum_values() {
            if vals.len() > 1 {
                for v in vals {
                    let mut p = fa.clone();
                    let site = fa.enums[0].1.clone();
                    p.enums = vec![(vec![v], site)];
                    parts.push(p);
                }
            }
        } else {
            let types = fa.types.as_ref().map_or(ALL, |t| t.0);
            let classes: Vec<u8> = CLASSES
                .iter()
                .map(|c| c & types)
                .filter(|c| *c != 0)
                .collect();
            if classes.len() > 1 {
                let site: Site = fa
                    .types
                    .as_ref()
                    .map_or_else(|| Rc::from("#"), |t| t.1.clone());
                for c in classes {
                    let mut p = fa.clone();
                    p.types = Some((c, site.clone()));
                    parts.push(p);
                }
            }
        }
        if parts.is_empty() {
            return Ok(false);
        }
        for p in &parts {
            let mut found = false;
            for fbj in &flats {
                let mut scratch = Vec::new();
                if self.subset_flat(p, fbj, &mut scratch)? {
                    found = true;
                    break;
                }
            }
            if !found {
                return Ok(false);
            }
        }
        Ok(true)
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
        // The seed's rule: an optional property added *with a default* to an open model is
        // compatible for readers that apply defaults. Old documents could carry the name with
        // another value, so it is a warning (which `--strict` refuses), not silence.
        let defaulted = subject == "property"
            && presence == Presence::OnlyB
            && self.pass == Pass::OldInNew
            && a.is_empty()
            && b.iter()
                .any(|n| n.v.as_object().is_some_and(|m| m.contains_key("default")));
        if !ok && defaulted {
            out.push(Raw {
                pointer: pointer.to_string(),
                subject,
                presence,
                class: RawClass::Warning,
                detail: "optional property with a default added to an open model; old documents may carry it with other values".into(),
            });
            return Ok(true);
        }
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
                if self.silent_nodes(std::slice::from_ref(n), std::slice::from_ref(na))? {
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
                if !self.subset_flat(fa, &Flat::of(std::slice::from_ref(branch))?, &mut scratch)?
                    || !scratch.is_empty()
                {
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

    fn strings(&mut self, fa: &Flat<'_>, fb: &Flat<'_>, out: &mut Vec<Raw>) -> bool {
        let mut ok = true;
        ok &= self.raised_min(
            fa.min_len.as_ref(),
            fb.min_len.as_ref(),
            "min-length",
            "minLength",
            out,
        );
        ok &= self.lowered_max(
            fa.max_len.as_ref().map(|x| x.0),
            fa.max_len.is_some(),
            fb.max_len.as_ref(),
            "max-length",
            "maxLength",
            out,
        );
        for (p, site) in &fb.patterns {
            if !fa.patterns.iter().any(|(q, _)| q == p) {
                let presence = if fa.patterns.is_empty() {
                    Presence::OnlyB
                } else {
                    Presence::Both
                };
                let a = fa
                    .patterns
                    .first()
                    .map_or("none".into(), |x| format!("`{}`", x.0));
                Self::push(
                    out,
                    site,
                    "pattern",
                    presence,
                    format!("pattern {}", self.arrow(&a, &format!("`{p}`"))),
                );
                ok = false;
            }
        }
        for (f, site) in &fb.formats {
            if !fa.formats.iter().any(|(q, _)| q == f) {
                let presence = if fa.formats.is_empty() {
                    Presence::OnlyB
                } else {
                    Presence::Both
                };
                Self::push(
                    out,
                    site,
                    "format",
                    presence,
                    format!("format `{f}` now required"),
                );
                ok = false;
            }
        }
        ok
    }

    fn numbers(&mut self, fa: &Flat<'_>, fb: &Flat<'_>, ta: u8, out: &mut Vec<Raw>) -> bool {
        let mut ok = true;
        let desc = |b: &Option<super::flat::Bound>| {
            b.as_ref().map_or("none".to_string(), |b| {
                format!(
                    "{}{}",
                    fmt_num(b.value),
                    if b.exclusive { " (exclusive)" } else { "" }
                )
            })
        };
        if let Some(bl) = &fb.lower {
            let implied = fa.lower.as_ref().is_some_and(|al| {
                al.value > bl.value || (al.value == bl.value && (al.exclusive || !bl.exclusive))
            });
            if !implied {
                let presence = if fa.lower.is_some() {
                    Presence::Both
                } else {
                    Presence::OnlyB
                };
                let subject = if bl.exclusive {
                    "exclusive-minimum"
                } else {
                    "minimum"
                };
                Self::push(
                    out,
                    &bl.site,
                    subject,
                    presence,
                    format!(
                        "lower bound {}",
                        self.arrow(&desc(&fa.lower), &desc(&fb.lower))
                    ),
                );
                ok = false;
            }
        }
        if let Some(bu) = &fb.upper {
            let implied = fa.upper.as_ref().is_some_and(|au| {
                au.value < bu.value || (au.value == bu.value && (au.exclusive || !bu.exclusive))
            });
            if !implied {
                let presence = if fa.upper.is_some() {
                    Presence::Both
                } else {
                    Presence::OnlyB
                };
                let subject = if bu.exclusive {
                    "exclusive-maximum"
                } else {
                    "maximum"
                };
                Self::push(
                    out,
                    &bu.site,
                    subject,
                    presence,
                    format!(
                        "upper bound {}",
                        self.arrow(&desc(&fa.upper), &desc(&fb.upper))
                    ),
                );
                ok = false;
            }
        }
        for (m, site) in &fb.multiple_of {
            let implied = fa.multiple_of.iter().any(|(x, _)| is_multiple(*x, *m))
                || (ta & FRAC == 0 && is_multiple(1.0, *m));
            if !implied {
                let presence = if fa.multiple_of.is_empty() {
                    Presence::OnlyB
                } else {
                    Presence::Both
                };
                let a = fa
                    .multiple_of
                    .first()
                    .map_or("none".into(), |x| fmt_num(x.0));
                Self::push(
                    out,
                    site,
                    "multiple-of",
                    presence,
                    format!("multipleOf {}", self.arrow(&a, &fmt_num(*m))),
                );
                ok = false;
            }
        }
        ok
    }

    fn prop_conj<'a>(&mut self, f: &Flat<'a>, name: &str) -> Vec<Node<'a>> {
        let mut conj = Vec::new();
        for g in &f.objs {
            let mut matched = false;
            if let Some((_, n)) = g.props.iter().find(|(p, _)| *p == name) {
                conj.push(n.clone());
                matched = true;
            }
            for (pat, n) in &g.patterns {
                if self.regex(pat).is_some_and(|r| r.is_match(name)) {
                    conj.push(n.clone());
                    matched = true;
                }
            }
            if !matched && let Some(add) = &g.additional {
                conj.push(add.clone());
            }
        }
        conj
    }

    fn objects<'a>(
        &mut self,
        fa: &Flat<'a>,
        fb: &Flat<'a>,
        out: &mut Vec<Raw>,
    ) -> Result<bool, CompatError> {
        let mut ok = true;
        let mut seen_required: Vec<&str> = Vec::new();
        for (p, site) in &fb.required {
            if seen_required.contains(p) || fa.required.iter().any(|(q, _)| q == p) {
                continue;
            }
            seen_required.push(p);
            let declared = fb.objs.iter().any(|g| g.declares(p));
            let has_default = fb.objs.iter().any(|g| {
                g.props.iter().any(|(q, n)| {
                    q == p && n.v.as_object().is_some_and(|m| m.contains_key("default"))
                })
            });
            let (class, detail) = if !declared {
                (
                    RawClass::Warning,
                    format!(
                        "`{p}` is required but not declared in `properties`; documents without it are rejected"
                    ),
                )
            } else if has_default {
                (
                    RawClass::Warning,
                    format!(
                        "`{p}` became required; it has a default, so readers that apply defaults still accept documents without it"
                    ),
                )
            } else {
                (RawClass::Failure, format!("`{p}` became required"))
            };
            if class == RawClass::Failure {
                ok = false;
            }
            out.push(Raw {
                pointer: join(site, p).to_string(),
                subject: "required",
                presence: Presence::OnlyB,
                class,
                detail,
            });
        }
        ok &= self.raised_min(
            fa.min_props.as_ref(),
            fb.min_props.as_ref(),
            "min-properties",
            "minProperties",
            out,
        );
        ok &= self.lowered_max(
            fa.max_props.as_ref().map(|x| x.0),
            fa.max_props.is_some(),
            fb.max_props.as_ref(),
            "max-properties",
            "maxProperties",
            out,
        );
        // Explicitly named properties.
        let mut names: Vec<&'a str> = Vec::new();
        for g in fa.objs.iter().chain(fb.objs.iter()) {
            for (p, _) in &g.props {
                if !names.contains(p) {
                    names.push(p);
                }
            }
        }
        for p in names {
            let a = self.prop_conj(fa, p);
            let b = self.prop_conj(fb, p);
            if b.is_empty() {
                continue;
            }
            let decl_a = fa.objs.iter().find(|g| g.declares(p));
            let decl_b = fb.objs.iter().find(|g| g.declares(p));
            let presence = match (decl_a.is_some(), decl_b.is_some()) {
                (true, true) => Presence::Both,
                (true, false) => Presence::OnlyA,
                _ => Presence::OnlyB,
            };
            let base = decl_b
                .or(decl_a)
                .map_or_else(|| Rc::from("#"), |g| g.site.clone());
            let pointer = join(&join(&base, "properties"), p);
            ok &= self.slot(&a, &b, &pointer, "property", presence, out)?;
        }
        // Names matched by a pattern (and not named explicitly).
        let mut pats: Vec<&'a str> = Vec::new();
        for g in fa.objs.iter().chain(fb.objs.iter()) {
            for (p, _) in &g.patterns {
                if !pats.contains(p) {
                    pats.push(p);
                }
            }
        }
        for pat in pats {
            let class = |f: &Flat<'a>| -> (Vec<Node<'a>>, Option<Site>) {
                let mut conj = Vec::new();
                let mut site = None;
                for g in &f.objs {
                    if let Some((_, n)) = g.patterns.iter().find(|(q, _)| *q == pat) {
                        conj.push(n.clone());
                        site.get_or_insert_with(|| n.site.clone());
                    } else if let Some(add) = &g.additional {
                        conj.push(add.clone());
                    }
                }
                (conj, site)
            };
            let (a, sa) = class(fa);
            let (b, sb) = class(fb);
            if b.is_empty() {
                continue;
            }
            let presence = match (sa.is_some(), sb.is_some()) {
                (true, true) => Presence::Both,
                (true, false) => Presence::OnlyA,
                _ => Presence::OnlyB,
            };
            let pointer = sb.or(sa).map_or_else(String::new, |s| s.to_string());
            ok &= self.slot(&a, &b, &pointer, "pattern-property", presence, out)?;
        }
        // Every other name.
        let a_add: Vec<Node<'a>> = fa
            .objs
            .iter()
            .filter_map(|g| g.additional.clone())
            .collect();
        let b_add: Vec<Node<'a>> = fb
            .objs
            .iter()
            .filter_map(|g| g.additional.clone())
            .collect();
        if !b_add.is_empty() {
            let presence = if a_add.is_empty() {
                Presence::OnlyB
            } else {
                Presence::Both
            };
            let pointer = b_add[0].site.to_string();
            if presence == Presence::Both {
                ok &= self.subset_nodes(&a_add, &b_add, out)?;
            } else {
                ok &= self.slot(
                    &a_add,
                    &b_add,
                    &pointer,
                    "additional-properties",
                    presence,
                    out,
                )?;
            }
        }
        for (p, names, site) in &fb.dep_required {
            let a_deps: Vec<&str> = fa
                .dep_required
                .iter()
                .filter(|(q, _, _)| q == p)
                .flat_map(|(_, n, _)| n.iter().copied())
                .collect();
            for q in names {
                if !a_deps.contains(q) && !fa.required.iter().any(|(r, _)| r == q) {
                    let presence = if a_deps.is_empty() {
                        Presence::OnlyB
                    } else {
                        Presence::Both
                    };
                    Self::push(
                        out,
                        site,
                        "dependent-required",
                        presence,
                        format!("`{q}` is now required when `{p}` is present"),
                    );
                    ok = false;
                }
            }
        }
        for (p, node) in &fb.dep_schemas {
            let a_nodes: Vec<Node<'a>> = fa
                .dep_schemas
                .iter()
                .filter(|(q, _)| q == p)
                .map(|(_, n)| n.clone())
                .collect();
            let presence = if a_nodes.is_empty() {
                Presence::OnlyB
            } else {
                Presence::Both
            };
            ok &= self.slot(
                &a_nodes,
                std::slice::from_ref(node),
                &node.site,
                "dependent-schema",
                presence,
                out,
            )?;
        }
        if !fb.prop_names.is_empty() {
            let presence = if fa.prop_names.is_empty() {
                Presence::OnlyB
            } else {
                Presence::Both
            };
            let pointer = fb.prop_names[0].site.to_string();
            ok &= self.slot(
                &fa.prop_names.clone(),
                &fb.prop_names.clone(),
                &pointer,
                "property-names",
                presence,
                out,
            )?;
        }
        Ok(ok)
    }

    fn item_conj<'a>(f: &Flat<'a>, i: usize) -> Vec<Node<'a>> {
        f.arrs
            .iter()
            .filter_map(|g| {
                if i < g.prefix.len() {
                    Some(g.prefix[i].clone())
                } else {
                    g.rest.clone()
                }
            })
            .collect()
    }

    /// The most items an array valid under `f` can have.
    fn max_len(f: &Flat<'_>) -> Option<u64> {
        let closed = f
            .arrs
            .iter()
            .filter(|g| g.rest.as_ref().is_some_and(|n| n.v == &Value::Bool(false)))
            .map(|g| g.prefix.len() as u64)
            .min();
        match (closed, f.max_items.as_ref().map(|x| x.0)) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn arrays<'a>(
        &mut self,
        fa: &Flat<'a>,
        fb: &Flat<'a>,
        out: &mut Vec<Raw>,
    ) -> Result<bool, CompatError> {
        let mut ok = true;
        let a_max = Self::max_len(fa);
        let len = fa
            .arrs
            .iter()
            .chain(fb.arrs.iter())
            .map(|g| g.prefix.len())
            .max()
            .unwrap_or(0);
        for i in 0..len {
            if a_max.is_some_and(|m| i as u64 >= m) {
                break;
            }
            let a = Self::item_conj(fa, i);
            let b = Self::item_conj(fb, i);
            if b.is_empty() {
                continue;
            }
            let decl_a = fa.arrs.iter().find(|g| i < g.prefix.len());
            let decl_b = fb.arrs.iter().find(|g| i < g.prefix.len());
            let presence = match (decl_a.is_some(), decl_b.is_some()) {
                (true, true) => Presence::Both,
                (true, false) => Presence::OnlyA,
                _ => Presence::OnlyB,
            };
            let pointer = match decl_b.or(decl_a) {
                Some(g) => join(&join(&g.site, g.prefix_kw), &i.to_string()).to_string(),
                None => String::new(),
            };
            ok &= self.slot(&a, &b, &pointer, "item", presence, out)?;
        }
        if a_max.is_none_or(|m| m > len as u64) {
            let a_rest: Vec<Node<'a>> = fa.arrs.iter().filter_map(|g| g.rest.clone()).collect();
            let b_groups: Vec<_> = fb.arrs.iter().filter(|g| g.rest.is_some()).collect();
            let b_rest: Vec<Node<'a>> = b_groups.iter().filter_map(|g| g.rest.clone()).collect();
            if !b_rest.is_empty() {
                if a_rest.is_empty() {
                    let subject = match b_groups[0].rest_kw {
                        "additionalItems" => "additional-items",
                        "unevaluatedItems" => "unevaluated-items",
                        _ => "items",
                    };
                    let pointer = b_rest[0].site.to_string();
                    ok &= self.slot(&a_rest, &b_rest, &pointer, subject, Presence::OnlyB, out)?;
                } else {
                    ok &= self.subset_nodes(&a_rest, &b_rest, out)?;
                }
            }
        }
        ok &= self.raised_min(
            fa.min_items.as_ref(),
            fb.min_items.as_ref(),
            "min-items",
            "minItems",
            out,
        );
        ok &= self.lowered_max(
            a_max,
            fa.max_items.is_some(),
            fb.max_items.as_ref(),
            "max-items",
            "maxItems",
            out,
        );
        if let Some(site) = &fb.unique
            && fa.unique.is_none()
            && a_max.is_none_or(|m| m > 1)
        {
            Self::push(
                out,
                site,
                "unique-items",
                Presence::OnlyB,
                "items must now be unique".into(),
            );
            ok = false;
        }
        for c in &fb.contains {
            if c.min == 0 && c.max.is_none() {
                continue;
            }
            ok &= self.contains(fa, c, out)?;
        }
        Ok(ok)
    }

    fn contains<'a>(
        &mut self,
        fa: &Flat<'a>,
        c: &Contains<'a>,
        out: &mut Vec<Raw>,
    ) -> Result<bool, CompatError> {
        let mut best: Option<&'static str> = Some("contains");
        for ca in &fa.contains {
            if !self.silent_nodes(
                std::slice::from_ref(&ca.node),
                std::slice::from_ref(&c.node),
            )? {
                continue;
            }
            if ca.min < c.min {
                best = Some("min-contains");
                continue;
            }
            if let Some(mx) = c.max {
                // An upper bound needs the same counted schema on both sides.
                if ca.node.v != c.node.v || ca.max.is_none_or(|m| m > mx) {
                    best = Some("max-contains");
                    continue;
                }
            }
            return Ok(true);
        }
        let subject = best.unwrap_or("contains");
        let kw = match subject {
            "min-contains" => "minContains",
            "max-contains" => "maxContains",
            _ => "contains",
        };
        let presence = if fa.contains.is_empty() {
            Presence::OnlyB
        } else {
            Presence::Both
        };
        Self::push(
            out,
            &join(&c.site, kw),
            subject,
            presence,
            "array containment requirement tightened".into(),
        );
        Ok(false)
    }

    /// Validates one instance against a conjunction; `Some` names the first failing constraint.
    fn value_fails<'a>(
        &mut self,
        v: &Value,
        f: &Flat<'a>,
        depth: usize,
    ) -> Result<Option<Failure>, CompatError> {
        self.tick()?;
        if depth > 64 {
            return Err(CompatError::TooDeep {
                pointer: "#".into(),
            });
        }
        let fail = |site: &Site, subject: &'static str, detail: String| {
            Ok(Some(Failure {
                site: site.clone(),
                subject,
                detail,
            }))
        };
        if let Some(site) = &f.is_false {
            return fail(site, "schema", "the schema is `false`".into());
        }
        let bits = value_bits(v);
        if let Some((t, site)) = &f.types
            && t & bits == 0
        {
            return fail(site, "type", format!("type {}", type_names(bits)));
        }
        for (vals, site) in &f.enums {
            if !vals.iter().any(|x| json_eq(x, v)) {
                return fail(
                    site,
                    if site.ends_with("/const") {
                        "const"
                    } else {
                        "enum"
                    },
                    "not among the allowed values".into(),
                );
            }
        }
        match v {
            Value::String(s) => {
                let len = s.chars().count() as u64;
                if let Some((n, site)) = &f.min_len
                    && len < *n
                {
                    return fail(site, "min-length", format!("shorter than {n}"));
                }
                if let Some((n, site)) = &f.max_len
                    && len > *n
                {
                    return fail(site, "max-length", format!("longer than {n}"));
                }
                for (p, site) in &f.patterns {
                    let matched = self.regex(p).map(|r| r.is_match(s));
                    if matched != Some(true) {
                        return fail(site, "pattern", format!("does not match `{p}`"));
                    }
                }
            }
            Value::Number(n) => {
                let x = n.as_f64().unwrap_or(0.0);
                if let Some(b) = &f.lower
                    && (x < b.value || (b.exclusive && x == b.value))
                {
                    return fail(
                        &b.site,
                        if b.exclusive {
                            "exclusive-minimum"
                        } else {
                            "minimum"
                        },
                        "below the lower bound".into(),
                    );
                }
                if let Some(b) = &f.upper
                    && (x > b.value || (b.exclusive && x == b.value))
                {
                    return fail(
                        &b.site,
                        if b.exclusive {
                            "exclusive-maximum"
                        } else {
                            "maximum"
                        },
                        "above the upper bound".into(),
                    );
                }
                for (m, site) in &f.multiple_of {
                    if !is_multiple(x, *m) {
                        return fail(
                            site,
                            "multiple-of",
                            format!("not a multiple of {}", fmt_num(*m)),
                        );
                    }
                }
            }
            Value::Object(m) => {
                for (p, site) in &f.required {
                    if !m.contains_key(*p) {
                        return fail(&join(site, p), "required", format!("lacks `{p}`"));
                    }
                }
                for (k, val) in m {
                    let conj = self.prop_conj(f, k);
                    if conj.is_empty() {
                        continue;
                    }
                    let fc = Flat::of(&conj)?;
                    if let Some(inner) = self.value_fails(val, &fc, depth + 1)? {
                        return Ok(Some(inner));
                    }
                }
                let count = m.len() as u64;
                if f.min_props.as_ref().is_some_and(|(n, _)| count < *n)
                    || f.max_props.as_ref().is_some_and(|(n, _)| count > *n)
                {
                    let site = f
                        .min_props
                        .as_ref()
                        .or(f.max_props.as_ref())
                        .map(|x| x.1.clone())
                        .unwrap_or_else(|| Rc::from("#"));
                    return fail(
                        &site,
                        "max-properties",
                        "property count out of range".into(),
                    );
                }
                for (p, names, site) in &f.dep_required {
                    if m.contains_key(*p) && names.iter().any(|q| !m.contains_key(*q)) {
                        return fail(
                            site,
                            "dependent-required",
                            "missing a dependent property".into(),
                        );
                    }
                }
                for (p, node) in &f.dep_schemas {
                    if m.contains_key(*p) {
                        let fd = Flat::of(std::slice::from_ref(node))?;
                        if let Some(inner) = self.value_fails(v, &fd, depth + 1)? {
                            return Ok(Some(inner));
                        }
                    }
                }
            }
            Value::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    let conj = Self::item_conj(f, i);
                    if conj.is_empty() {
                        continue;
                    }
                    let fc = Flat::of(&conj)?;
                    if let Some(inner) = self.value_fails(item, &fc, depth + 1)? {
                        return Ok(Some(inner));
                    }
                }
                let count = items.len() as u64;
                if let Some((n, site)) = &f.min_items
                    && count < *n
                {
                    return fail(site, "min-items", "too few items".into());
                }
                if let Some((n, site)) = &f.max_items
                    && count > *n
                {
                    return fail(site, "max-items", "too many items".into());
                }
                if let Some(site) = &f.unique {
                    for (i, x) in items.iter().enumerate() {
                        if items[i + 1..].iter().any(|y| json_eq(x, y)) {
                            return fail(site, "unique-items", "items are not unique".into());
                        }
                    }
                }
                for c in &f.contains {
                    let fc = Flat::of(std::slice::from_ref(&c.node))?;
                    let mut hits = 0;
                    for item in items {
                        if self.value_fails(item, &fc, depth + 1)?.is_none() {
                            hits += 1;
                        }
                    }
                    if hits < c.min || c.max.is_some_and(|mx| hits > mx) {
                        return fail(
                            &join(&c.site, "contains"),
                            "contains",
                            "containment count out of range".into(),
                        );
                    }
                }
            }
            _ => {}
        }
        for d in &f.disj {
            let mut hits = 0;
            for br in &d.branches {
                let fbr = Flat::of(std::slice::from_ref(br))?;
                if self.value_fails(v, &fbr, depth + 1)?.is_none() {
                    hits += 1;
                }
            }
            let bad = if d.kw == "oneOf" {
                hits != 1
            } else {
                hits == 0
            };
            if bad {
                return fail(
                    &d.site,
                    if d.kw == "oneOf" { "one-of" } else { "any-of" },
                    format!("matches {hits} alternatives"),
                );
            }
        }
        for n in &f.nots {
            let fnn = Flat::of(std::slice::from_ref(n))?;
            if self.value_fails(v, &fnn, depth + 1)?.is_none() {
                return fail(&n.site, "not", "matches the excluded schema".into());
            }
        }
        for c in &f.conds {
            let fi = Flat::of(std::slice::from_ref(&c.if_))?;
            let branch = if self.value_fails(v, &fi, depth + 1)?.is_none() {
                &c.then
            } else {
                &c.else_
            };
            if let Some(b) = branch {
                let fbr = Flat::of(std::slice::from_ref(b))?;
                if let Some(inner) = self.value_fails(v, &fbr, depth + 1)? {
                    return Ok(Some(inner));
                }
            }
        }
        Ok(None)
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
