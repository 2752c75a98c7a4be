//! Validation of one concrete instance (an `enum`/`const` value) against a conjunction.

use super::{Engine, Failure, fmt_num, is_multiple};
use crate::compat::CompatError;
use crate::compat::flat::{Flat, Site, join, json_eq, type_names, value_bits};
use serde_json::Value;
use std::rc::Rc;

impl Engine {
    /// Validates one instance against a conjunction; `Some` names the first failing constraint.
    pub(super) fn value_fails<'a>(
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
