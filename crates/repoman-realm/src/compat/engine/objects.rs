//! Object keywords: properties, patterns, additional properties, required, dependencies.

use super::{Engine, Presence, Raw, RawClass};
use crate::compat::CompatError;
use crate::compat::Profile;
use crate::compat::flat::{Flat, Node, Site, join};
use std::collections::HashSet;
use std::rc::Rc;

impl Engine {
    pub(super) fn prop_conj<'a>(&mut self, f: &Flat<'a>, name: &str) -> Vec<Node<'a>> {
        let mut conj = Vec::new();
        for g in &f.objs {
            let mut matched = false;
            if let Some(n) = g.prop(name) {
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

    pub(super) fn objects<'a>(
        &mut self,
        fa: &Flat<'a>,
        fb: &Flat<'a>,
        out: &mut Vec<Raw>,
    ) -> Result<bool, CompatError> {
        let mut ok = true;
        let mut seen_required: HashSet<&str> = HashSet::new();
        let required_a: HashSet<&str> = fa.required.iter().map(|(q, _)| *q).collect();
        for (p, site) in &fb.required {
            if required_a.contains(p) || !seen_required.insert(p) {
                continue;
            }
            let declared = fb.objs.iter().any(|g| g.declares(p));
            let has_default = fb.objs.iter().any(|g| {
                g.props
                    .iter()
                    .filter(|(q, _)| q == p)
                    .any(|(_, n)| n.v.as_object().is_some_and(|m| m.contains_key("default")))
            });
            // Validation rejects documents without `p` either way; Confluent accepts these two.
            let why = if !declared {
                Some("it is not declared in `properties`")
            } else if has_default {
                Some("its `default` is an annotation")
            } else {
                None
            };
            let (class, detail) = match (why, self.profile) {
                (None, _) => (RawClass::Failure, format!("`{p}` became required")),
                (Some(why), Profile::Semantic) => (
                    RawClass::Failure,
                    format!("`{p}` became required ({why}); documents without it are rejected"),
                ),
                (Some(why), Profile::Confluent) => (
                    RawClass::Info,
                    format!(
                        "`{p}` became required ({why}); Confluent accepts it, though documents without it are rejected"
                    ),
                ),
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
        let mut named: HashSet<&'a str> = HashSet::new();
        for g in fa.objs.iter().chain(fb.objs.iter()) {
            for (p, _) in &g.props {
                if named.insert(p) {
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
}
