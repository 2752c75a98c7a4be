//! Array keywords: items, prefix items, additional items, item counts, uniqueness, `contains`.

use super::{Engine, Presence, Raw};
use crate::compat::CompatError;
use crate::compat::flat::{Contains, Flat, Node, join};
use serde_json::Value;

impl Engine {
    pub(super) fn item_conj<'a>(f: &Flat<'a>, i: usize) -> Vec<Node<'a>> {
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
    pub(super) fn max_len(f: &Flat<'_>) -> Option<u64> {
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

    pub(super) fn arrays<'a>(
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

    pub(super) fn contains<'a>(
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
}
