//! `oneOf`/`anyOf` overlap, disjointness and coverage of alternatives.

use super::{Engine, Presence, Raw, RawClass};
use crate::compat::CompatError;
use crate::compat::flat::{ALL, CLASSES, Flat, Node, OBJ, Site, json_eq, value_bits};
use serde_json::Value;
use std::rc::Rc;

impl Engine {
    /// `oneOf` rejects a value matching two alternatives. After a change, warn when the old values
    /// may match several alternatives of a new `oneOf` and at least one of those is new. Inside a
    /// proof that must be exact (`self.exact`: the implication between two `not`s or into an
    /// `if` branch), any possible overlap fails instead, whether new or not. Returns false then.
    pub(super) fn one_of_overlap<'a>(
        &mut self,
        fa: &Flat<'a>,
        d: &crate::compat::flat::Disj<'a>,
        out: &mut Vec<Raw>,
    ) -> Result<bool, CompatError> {
        let exact = self.exact > 0;
        let mut old: Vec<Option<&Value>> = fa
            .expanded_branches
            .iter()
            .filter(|(s, _)| *s == d.site)
            .flat_map(|(_, v)| v.iter().copied().map(Some))
            .collect();
        // An alternative is old when the old `oneOf` had an equal one, counted as a multiset: a
        // second copy of an old alternative is new (and overlaps the first everywhere).
        let is_old: Vec<bool> = d
            .branches
            .iter()
            .map(|br| match old.iter_mut().find(|o| *o == &Some(br.v)) {
                Some(slot) => {
                    *slot = None;
                    true
                }
                None => false,
            })
            .collect();
        // Alternatives some old value may satisfy, and whether each is new.
        let mut candidates: Vec<(Flat<'a>, String, bool)> = Vec::new();
        for (br, was_old) in d.branches.iter().zip(is_old) {
            let fb = Flat::of(std::slice::from_ref(br))?;
            if !self.disjoint(fa, &fb)? {
                let is_new = exact || !was_old;
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
                class: if exact {
                    RawClass::Failure
                } else {
                    RawClass::Warning
                },
                detail: format!(
                    "values the old schema accepts may match several alternatives ({}); `oneOf` rejects a value that matches more than one",
                    overlapping.join(", ")
                ),
            });
        }
        Ok(!(exact && new_ones))
    }

    /// Can no value satisfy both `fa` and `fb`? (Sound when it says yes; conservative otherwise.)
    pub(super) fn disjoint<'a>(
        &mut self,
        fa: &Flat<'a>,
        fb: &Flat<'a>,
    ) -> Result<bool, CompatError> {
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
            let required_names: std::collections::HashSet<&str> = fa
                .required
                .iter()
                .chain(fb.required.iter())
                .map(|(r, _)| *r)
                .collect();
            for p in names {
                let required = required_names.contains(p);
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
    pub(super) fn covered<'a>(
        &mut self,
        fa: &Flat<'a>,
        branches: &[Node<'a>],
        out: &mut Vec<Raw>,
    ) -> Result<bool, CompatError> {
        let flats = branches
            .iter()
            .map(|b| Flat::of(std::slice::from_ref(b)))
            .collect::<Result<Vec<_>, _>>()?;
        // The alternative that covers keeps its warnings (a nested `oneOf` that may now overlap).
        let keep_warnings = |out: &mut Vec<Raw>, scratch: Vec<Raw>| {
            out.extend(scratch.into_iter().filter(|r| r.class == RawClass::Warning));
        };
        for fbj in &flats {
            let mut scratch = Vec::new();
            if self.subset_flat(fa, fbj, &mut scratch)? {
                keep_warnings(out, scratch);
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
                    keep_warnings(out, scratch);
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
}
