//! Flattening: a list of schema nodes (a conjunction), with every `allOf` member and `$ref` target
//! inlined, becomes one [`Flat`] value: the keyword constraints the subset check reasons about.
//!
//! Invariants:
//! - a node's `site` is the JSON pointer of the *instance-facing* position in the schema walk, not
//!   the place a `$ref` points to: following a `$ref` keeps the site of the reference, so reported
//!   changes point where the reader looks (`#/items`, not `#/definitions/someRef`);
//! - following `$ref`/`allOf` never loops: a node already on the flattening stack is skipped (a
//!   conjunction containing itself adds nothing);
//! - disjunctions (`anyOf`/`oneOf`), `not` and `if`/`then`/`else` are kept as nodes, expanded lazily
//!   by the engine, so recursive schemas are only unfolded as far as a comparison needs.

use super::CompatError;
use serde_json::{Map, Value};
use std::rc::Rc;

/// A JSON pointer fragment (`#/properties/foo`), shared cheaply between nodes.
pub(crate) type Site = Rc<str>;

pub(crate) const NULL: u8 = 1;
pub(crate) const BOOL: u8 = 2;
pub(crate) const INT: u8 = 4;
/// Numbers that are not integers.
pub(crate) const FRAC: u8 = 8;
pub(crate) const STR: u8 = 16;
pub(crate) const ARR: u8 = 32;
pub(crate) const OBJ: u8 = 64;
pub(crate) const NUMBER: u8 = INT | FRAC;
pub(crate) const ALL: u8 = 127;

/// The type classes a value of some types may be split into (integer and number stay together).
pub(crate) const CLASSES: [u8; 6] = [NULL, BOOL, NUMBER, STR, ARR, OBJ];

pub(crate) fn type_bits(name: &str) -> u8 {
    match name {
        "null" => NULL,
        "boolean" => BOOL,
        "integer" => INT,
        "number" => NUMBER,
        "string" => STR,
        "array" => ARR,
        "object" => OBJ,
        _ => 0,
    }
}

pub(crate) fn type_names(bits: u8) -> String {
    let mut names = Vec::new();
    if bits & NULL != 0 {
        names.push("null");
    }
    if bits & BOOL != 0 {
        names.push("boolean");
    }
    if bits & NUMBER == NUMBER {
        names.push("number");
    } else if bits & INT != 0 {
        names.push("integer");
    } else if bits & FRAC != 0 {
        names.push("non-integer number");
    }
    if bits & STR != 0 {
        names.push("string");
    }
    if bits & ARR != 0 {
        names.push("array");
    }
    if bits & OBJ != 0 {
        names.push("object");
    }
    names.join(", ")
}

/// The type class of a JSON value (integral numbers such as `1.0` count as integers).
pub(crate) fn value_bits(v: &Value) -> u8 {
    match v {
        Value::Null => NULL,
        Value::Bool(_) => BOOL,
        Value::Number(n) => {
            if n.is_i64() || n.is_u64() || n.as_f64().is_some_and(|f| f.fract() == 0.0) {
                INT
            } else {
                FRAC
            }
        }
        Value::String(_) => STR,
        Value::Array(_) => ARR,
        Value::Object(_) => OBJ,
    }
}

/// RFC 6901 escaping of one pointer segment.
pub(crate) fn escape(seg: &str) -> String {
    seg.replace('~', "~0").replace('/', "~1")
}

pub(crate) fn join(site: &str, seg: &str) -> Site {
    Rc::from(format!("{site}/{}", escape(seg)))
}

/// One schema node of one document.
#[derive(Clone, Debug)]
pub(crate) struct Node<'a> {
    /// The document root, for resolving local `$ref`s.
    pub root: &'a Value,
    pub v: &'a Value,
    pub site: Site,
}

impl<'a> Node<'a> {
    pub(crate) fn root(root: &'a Value) -> Self {
        Node {
            root,
            v: root,
            site: Rc::from("#"),
        }
    }

    fn child(&self, v: &'a Value, segs: &[&str]) -> Node<'a> {
        let mut site = self.site.to_string();
        for s in segs {
            site.push('/');
            site.push_str(&escape(s));
        }
        Node {
            root: self.root,
            v,
            site: Rc::from(site),
        }
    }

    pub(crate) fn addr(&self) -> usize {
        std::ptr::from_ref(self.v) as usize
    }
}

/// A numeric bound (`minimum`/`exclusiveMinimum` or the maximum side).
#[derive(Clone, Debug)]
pub(crate) struct Bound {
    pub value: f64,
    pub exclusive: bool,
    pub site: Site,
}

/// The object keywords of one schema object: `additionalProperties` only refers to the
/// `properties`/`patternProperties` of the same object, so they stay grouped.
#[derive(Clone, Debug)]
pub(crate) struct ObjGroup<'a> {
    pub site: Site,
    pub props: Vec<(&'a str, Node<'a>)>,
    pub patterns: Vec<(&'a str, Node<'a>)>,
    pub additional: Option<Node<'a>>,
    /// Where each name first appears in `props` (lookups by name stay O(1): schemas with tens of
    /// thousands of properties diffed name by name would otherwise be quadratic).
    pub index: std::collections::HashMap<&'a str, usize>,
}

impl<'a> ObjGroup<'a> {
    pub(crate) fn declares(&self, name: &str) -> bool {
        self.index.contains_key(name)
    }

    /// The schema of the property `name`, as first declared.
    pub(crate) fn prop(&self, name: &str) -> Option<&Node<'a>> {
        self.index.get(name).map(|&i| &self.props[i].1)
    }
}

/// The array keywords of one schema object: a prefix (`prefixItems`, or draft-07 `items: [..]`)
/// and the schema of every later item.
#[derive(Clone, Debug)]
pub(crate) struct ArrGroup<'a> {
    pub site: Site,
    pub prefix: Vec<Node<'a>>,
    pub prefix_kw: &'static str,
    pub rest: Option<Node<'a>>,
    pub rest_kw: &'static str,
}

#[derive(Clone, Debug)]
pub(crate) struct Disj<'a> {
    pub site: Site,
    pub kw: &'static str,
    pub branches: Vec<Node<'a>>,
}

#[derive(Clone, Debug)]
pub(crate) struct Contains<'a> {
    pub node: Node<'a>,
    pub min: u64,
    pub max: Option<u64>,
    pub site: Site,
}

#[derive(Clone, Debug)]
pub(crate) struct Cond<'a> {
    pub site: Site,
    pub if_: Node<'a>,
    pub then: Option<Node<'a>>,
    pub else_: Option<Node<'a>>,
}

/// A conjunction of keyword constraints.
#[derive(Clone, Debug, Default)]
pub(crate) struct Flat<'a> {
    /// Addresses of the schema nodes this conjunction was built from (for recursion detection).
    pub ids: Vec<usize>,
    pub is_false: Option<Site>,
    pub types: Option<(u8, Site)>,
    pub enums: Vec<(Vec<&'a Value>, Site)>,
    pub min_len: Option<(u64, Site)>,
    pub max_len: Option<(u64, Site)>,
    pub patterns: Vec<(&'a str, Site)>,
    pub formats: Vec<(&'a str, Site)>,
    pub lower: Option<Bound>,
    pub upper: Option<Bound>,
    pub multiple_of: Vec<(f64, Site)>,
    pub objs: Vec<ObjGroup<'a>>,
    pub required: Vec<(&'a str, Site)>,
    pub min_props: Option<(u64, Site)>,
    pub max_props: Option<(u64, Site)>,
    pub dep_required: Vec<(&'a str, Vec<&'a str>, Site)>,
    pub dep_schemas: Vec<(&'a str, Node<'a>)>,
    pub prop_names: Vec<Node<'a>>,
    pub arrs: Vec<ArrGroup<'a>>,
    pub min_items: Option<(u64, Site)>,
    pub max_items: Option<(u64, Site)>,
    pub unique: Option<Site>,
    pub contains: Vec<Contains<'a>>,
    pub disj: Vec<Disj<'a>>,
    /// Sites of disjunctions already expanded into this conjunction (to tell "changed" from "added").
    pub expanded: Vec<Site>,
    /// The alternatives of those disjunctions (to tell a new `oneOf` alternative from an old one).
    pub expanded_branches: Vec<(Site, Vec<&'a Value>)>,
    pub nots: Vec<Node<'a>>,
    pub conds: Vec<Cond<'a>>,
    /// The annotations (title, description, ...) of the first schema object, with its site.
    pub annotations: Option<(Site, &'a Map<String, Value>)>,
}

fn as_u64(v: &Value) -> Option<u64> {
    v.as_u64().or_else(|| {
        v.as_f64()
            .filter(|f| *f >= 0.0 && f.fract() == 0.0)
            .map(|f| f as u64)
    })
}

impl<'a> Flat<'a> {
    /// Nothing constrains this conjunction: it accepts every instance.
    pub(crate) fn is_trivial(&self) -> bool {
        self.is_false.is_none()
            && self.types.is_none()
            && self.enums.is_empty()
            && self.min_len.is_none()
            && self.max_len.is_none()
            && self.patterns.is_empty()
            && self.formats.is_empty()
            && self.lower.is_none()
            && self.upper.is_none()
            && self.multiple_of.is_empty()
            && self.objs.iter().all(|g| {
                g.props.iter().all(|(_, n)| is_true(n.v))
                    && g.patterns.iter().all(|(_, n)| is_true(n.v))
                    && g.additional.as_ref().is_none_or(|n| is_true(n.v))
            })
            && self.required.is_empty()
            && self.min_props.is_none()
            && self.max_props.is_none()
            && self.dep_required.is_empty()
            && self.dep_schemas.iter().all(|(_, n)| is_true(n.v))
            && self.prop_names.iter().all(|n| is_true(n.v))
            && self.arrs.iter().all(|g| {
                g.prefix.iter().all(|n| is_true(n.v))
                    && g.rest.as_ref().is_none_or(|n| is_true(n.v))
            })
            && self.min_items.is_none()
            && self.max_items.is_none()
            && self.unique.is_none()
            && self.contains.iter().all(|c| c.min == 0 && c.max.is_none())
            && self.disj.is_empty()
            && self.nots.is_empty()
            && self.conds.is_empty()
    }

    fn set_types(&mut self, bits: u8, site: Site) {
        self.types = Some(match self.types.take() {
            Some((old, s)) => (old & bits, s),
            None => (bits, site),
        });
    }

    fn set_min(slot: &mut Option<(u64, Site)>, n: u64, site: Site) {
        if slot.as_ref().is_none_or(|(m, _)| n > *m) {
            *slot = Some((n, site));
        }
    }

    fn set_max(slot: &mut Option<(u64, Site)>, n: u64, site: Site) {
        if slot.as_ref().is_none_or(|(m, _)| n < *m) {
            *slot = Some((n, site));
        }
    }

    fn set_lower(&mut self, b: Bound) {
        let tighter = match &self.lower {
            None => true,
            Some(cur) => {
                b.value > cur.value || (b.value == cur.value && b.exclusive && !cur.exclusive)
            }
        };
        if tighter {
            self.lower = Some(b);
        }
    }

    fn set_upper(&mut self, b: Bound) {
        let tighter = match &self.upper {
            None => true,
            Some(cur) => {
                b.value < cur.value || (b.value == cur.value && b.exclusive && !cur.exclusive)
            }
        };
        if tighter {
            self.upper = Some(b);
        }
    }

    /// Conjoin `other` into `self`.
    pub(crate) fn merge(&mut self, other: Flat<'a>) {
        self.ids.extend(other.ids);
        if self.is_false.is_none() {
            self.is_false = other.is_false;
        }
        if let Some((bits, site)) = other.types {
            self.set_types(bits, site);
        }
        self.enums.extend(other.enums);
        if let Some((n, s)) = other.min_len {
            Self::set_min(&mut self.min_len, n, s);
        }
        if let Some((n, s)) = other.max_len {
            Self::set_max(&mut self.max_len, n, s);
        }
        self.patterns.extend(other.patterns);
        self.formats.extend(other.formats);
        if let Some(b) = other.lower {
            self.set_lower(b);
        }
        if let Some(b) = other.upper {
            self.set_upper(b);
        }
        self.multiple_of.extend(other.multiple_of);
        self.objs.extend(other.objs);
        self.required.extend(other.required);
        if let Some((n, s)) = other.min_props {
            Self::set_min(&mut self.min_props, n, s);
        }
        if let Some((n, s)) = other.max_props {
            Self::set_max(&mut self.max_props, n, s);
        }
        self.dep_required.extend(other.dep_required);
        self.dep_schemas.extend(other.dep_schemas);
        self.prop_names.extend(other.prop_names);
        self.arrs.extend(other.arrs);
        if let Some((n, s)) = other.min_items {
            Self::set_min(&mut self.min_items, n, s);
        }
        if let Some((n, s)) = other.max_items {
            Self::set_max(&mut self.max_items, n, s);
        }
        if self.unique.is_none() {
            self.unique = other.unique;
        }
        self.contains.extend(other.contains);
        self.disj.extend(other.disj);
        self.expanded.extend(other.expanded);
        self.expanded_branches.extend(other.expanded_branches);
        self.nots.extend(other.nots);
        self.conds.extend(other.conds);
        if self.annotations.is_none() {
            self.annotations = other.annotations;
        }
    }

    /// The values allowed by the `enum`/`const` keywords (their intersection), if any applies.
    pub(crate) fn enum_values(&self) -> Option<Vec<&'a Value>> {
        let (first, rest) = self.enums.split_first()?;
        let mut vals: Vec<&'a Value> = first.0.clone();
        for (other, _) in rest {
            vals.retain(|v| other.iter().any(|o| json_eq(v, o)));
        }
        Some(vals)
    }

    /// Builds the conjunction of `nodes`.
    pub(crate) fn of(nodes: &[Node<'a>]) -> Result<Flat<'a>, CompatError> {
        let mut flat = Flat::default();
        let mut stack = Vec::new();
        for n in nodes {
            flat.add(n.clone(), &mut stack)?;
        }
        Ok(flat)
    }

    fn add(&mut self, node: Node<'a>, stack: &mut Vec<usize>) -> Result<(), CompatError> {
        let addr = node.addr();
        if stack.contains(&addr) {
            return Ok(());
        }
        if stack.len() > 256 {
            return Err(CompatError::TooDeep {
                pointer: node.site.to_string(),
            });
        }
        stack.push(addr);
        self.ids.push(addr);
        let result = self.add_inner(&node, stack);
        stack.pop();
        result
    }

    fn add_inner(&mut self, node: &Node<'a>, stack: &mut Vec<usize>) -> Result<(), CompatError> {
        let m = match node.v {
            Value::Bool(false) => {
                self.is_false.get_or_insert_with(|| node.site.clone());
                return Ok(());
            }
            Value::Object(m) => m,
            _ => return Ok(()),
        };
        if self.annotations.is_none() {
            self.annotations = Some((node.site.clone(), m));
        }
        let site = &node.site;
        for key in ["$ref", "$recursiveRef", "$dynamicRef"] {
            if let Some(r) = m.get(key).and_then(Value::as_str) {
                let target = resolve(node.root, r).ok_or_else(|| CompatError::Ref {
                    pointer: site.to_string(),
                    reference: r.to_string(),
                })?;
                let t = Node {
                    root: node.root,
                    v: target,
                    site: site.clone(),
                };
                self.add(t, stack)?;
            }
        }
        if let Some(Value::Array(items)) = m.get("allOf") {
            for (i, item) in items.iter().enumerate() {
                self.add(node.child(item, &["allOf", &i.to_string()]), stack)?;
            }
        }
        for kw in ["anyOf", "oneOf"] {
            if let Some(Value::Array(items)) = m.get(kw) {
                let branches = items
                    .iter()
                    .enumerate()
                    .map(|(i, item)| node.child(item, &[kw, &i.to_string()]))
                    .collect();
                self.disj.push(Disj {
                    site: join(site, kw),
                    kw,
                    branches,
                });
            }
        }
        if let Some(n) = m.get("not") {
            self.nots.push(node.child(n, &["not"]));
        }
        if let Some(i) = m.get("if") {
            self.conds.push(Cond {
                site: join(site, "if"),
                if_: node.child(i, &["if"]),
                then: m.get("then").map(|t| node.child(t, &["then"])),
                else_: m.get("else").map(|e| node.child(e, &["else"])),
            });
        }
        match m.get("type") {
            Some(Value::String(t)) => self.set_types(type_bits(t), join(site, "type")),
            Some(Value::Array(ts)) => {
                let bits = ts
                    .iter()
                    .filter_map(Value::as_str)
                    .fold(0, |acc, t| acc | type_bits(t));
                self.set_types(bits, join(site, "type"));
            }
            _ => {}
        }
        if let Some(Value::Array(vals)) = m.get("enum") {
            self.enums.push((vals.iter().collect(), join(site, "enum")));
        }
        if let Some(v) = m.get("const") {
            self.enums.push((vec![v], join(site, "const")));
        }
        self.add_scalar_keywords(m, site);
        self.add_object_keywords(node, m);
        self.add_array_keywords(node, m);
        Ok(())
    }

    fn add_scalar_keywords(&mut self, m: &'a Map<String, Value>, site: &Site) {
        if let Some(n) = m.get("minLength").and_then(as_u64) {
            Self::set_min(&mut self.min_len, n, join(site, "minLength"));
        }
        if let Some(n) = m.get("maxLength").and_then(as_u64) {
            Self::set_max(&mut self.max_len, n, join(site, "maxLength"));
        }
        if let Some(p) = m.get("pattern").and_then(Value::as_str) {
            self.patterns.push((p, join(site, "pattern")));
        }
        if let Some(f) = m.get("format").and_then(Value::as_str) {
            self.formats.push((f, join(site, "format")));
        }
        // Draft-04 spells exclusive bounds as booleans next to minimum/maximum.
        let excl_min_flag = m
            .get("exclusiveMinimum")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        let excl_max_flag = m
            .get("exclusiveMaximum")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        if let Some(v) = m.get("minimum").and_then(Value::as_f64) {
            self.set_lower(Bound {
                value: v,
                exclusive: excl_min_flag,
                site: join(site, "minimum"),
            });
        }
        if let Some(v) = m.get("exclusiveMinimum").and_then(Value::as_f64) {
            self.set_lower(Bound {
                value: v,
                exclusive: true,
                site: join(site, "exclusiveMinimum"),
            });
        }
        if let Some(v) = m.get("maximum").and_then(Value::as_f64) {
            self.set_upper(Bound {
                value: v,
                exclusive: excl_max_flag,
                site: join(site, "maximum"),
            });
        }
        if let Some(v) = m.get("exclusiveMaximum").and_then(Value::as_f64) {
            self.set_upper(Bound {
                value: v,
                exclusive: true,
                site: join(site, "exclusiveMaximum"),
            });
        }
        if let Some(v) = m
            .get("multipleOf")
            .and_then(Value::as_f64)
            .filter(|v| *v > 0.0)
        {
            self.multiple_of.push((v, join(site, "multipleOf")));
        }
    }

    fn add_object_keywords(&mut self, node: &Node<'a>, m: &'a Map<String, Value>) {
        let site = &node.site;
        let has_group = [
            "properties",
            "patternProperties",
            "additionalProperties",
            "unevaluatedProperties",
        ]
        .iter()
        .any(|k| m.contains_key(*k));
        if has_group {
            let props = match m.get("properties") {
                Some(Value::Object(ps)) => ps
                    .iter()
                    .map(|(k, v)| (k.as_str(), node.child(v, &["properties", k])))
                    .collect(),
                _ => Vec::new(),
            };
            let patterns = match m.get("patternProperties") {
                Some(Value::Object(ps)) => ps
                    .iter()
                    .map(|(k, v)| (k.as_str(), node.child(v, &["patternProperties", k])))
                    .collect(),
                _ => Vec::new(),
            };
            // Without in-place applicators, unevaluatedProperties behaves like additionalProperties.
            let additional = m
                .get("additionalProperties")
                .map(|v| node.child(v, &["additionalProperties"]))
                .or_else(|| {
                    m.get("unevaluatedProperties")
                        .map(|v| node.child(v, &["unevaluatedProperties"]))
                });
            let mut index = std::collections::HashMap::with_capacity(props.len());
            for (i, (name, _)) in props.iter().enumerate() {
                index.entry(*name).or_insert(i);
            }
            self.objs.push(ObjGroup {
                site: site.clone(),
                props,
                patterns,
                additional,
                index,
            });
        }
        if let Some(Value::Array(req)) = m.get("required") {
            let rsite = join(site, "required");
            for r in req.iter().filter_map(Value::as_str) {
                self.required.push((r, rsite.clone()));
            }
        }
        if let Some(n) = m.get("minProperties").and_then(as_u64) {
            Self::set_min(&mut self.min_props, n, join(site, "minProperties"));
        }
        if let Some(n) = m.get("maxProperties").and_then(as_u64) {
            Self::set_max(&mut self.max_props, n, join(site, "maxProperties"));
        }
        for kw in ["dependencies", "dependentRequired", "dependentSchemas"] {
            if let Some(Value::Object(deps)) = m.get(kw) {
                for (p, d) in deps {
                    match d {
                        Value::Array(names) => self.dep_required.push((
                            p.as_str(),
                            names.iter().filter_map(Value::as_str).collect(),
                            join(&join(site, kw), p),
                        )),
                        _ => self.dep_schemas.push((p.as_str(), node.child(d, &[kw, p]))),
                    }
                }
            }
        }
        if let Some(pn) = m.get("propertyNames") {
            self.prop_names.push(node.child(pn, &["propertyNames"]));
        }
    }

    fn add_array_keywords(&mut self, node: &Node<'a>, m: &'a Map<String, Value>) {
        let site = &node.site;
        let child = |kw: &str| m.get(kw).map(|v| node.child(v, &[kw]));
        let list = |kw: &str| match m.get(kw) {
            Some(Value::Array(items)) => Some(
                items
                    .iter()
                    .enumerate()
                    .map(|(i, v)| node.child(v, &[kw, &i.to_string()]))
                    .collect::<Vec<_>>(),
            ),
            _ => None,
        };
        let group = if let Some(prefix) = list("items") {
            // Draft-07 tuple form.
            let (rest, rest_kw) = match child("additionalItems") {
                Some(n) => (Some(n), "additionalItems"),
                None => (child("unevaluatedItems"), "unevaluatedItems"),
            };
            Some(ArrGroup {
                site: site.clone(),
                prefix,
                prefix_kw: "items",
                rest,
                rest_kw,
            })
        } else if let Some(prefix) = list("prefixItems") {
            let (rest, rest_kw) = match child("items") {
                Some(n) => (Some(n), "items"),
                None => (child("unevaluatedItems"), "unevaluatedItems"),
            };
            Some(ArrGroup {
                site: site.clone(),
                prefix,
                prefix_kw: "prefixItems",
                rest,
                rest_kw,
            })
        } else if let Some(items) = child("items") {
            Some(ArrGroup {
                site: site.clone(),
                prefix: Vec::new(),
                prefix_kw: "items",
                rest: Some(items),
                rest_kw: "items",
            })
        } else if let Some(add) = child("additionalItems") {
            // `additionalItems` without a tuple is ignored by validators, but its author meant "every
            // item": treat it so, which keeps the check conservative.
            Some(ArrGroup {
                site: site.clone(),
                prefix: Vec::new(),
                prefix_kw: "items",
                rest: Some(add),
                rest_kw: "additionalItems",
            })
        } else {
            child("unevaluatedItems").map(|u| ArrGroup {
                site: site.clone(),
                prefix: Vec::new(),
                prefix_kw: "prefixItems",
                rest: Some(u),
                rest_kw: "unevaluatedItems",
            })
        };
        if let Some(g) = group {
            self.arrs.push(g);
        }
        if let Some(n) = m.get("minItems").and_then(as_u64) {
            Self::set_min(&mut self.min_items, n, join(site, "minItems"));
        }
        if let Some(n) = m.get("maxItems").and_then(as_u64) {
            Self::set_max(&mut self.max_items, n, join(site, "maxItems"));
        }
        if m.get("uniqueItems").and_then(Value::as_bool) == Some(true) && self.unique.is_none() {
            self.unique = Some(join(site, "uniqueItems"));
        }
        if let Some(c) = m.get("contains") {
            let min = m.get("minContains").and_then(as_u64).unwrap_or(1);
            let max = m.get("maxContains").and_then(as_u64);
            self.contains.push(Contains {
                node: node.child(c, &["contains"]),
                min,
                max,
                site: site.clone(),
            });
        }
    }
}

/// `true` and `{}` (or an object holding only annotations) accept everything.
pub(crate) fn is_true(v: &Value) -> bool {
    match v {
        Value::Bool(b) => *b,
        Value::Object(m) => m.keys().all(|k| {
            matches!(
                k.as_str(),
                "title"
                    | "description"
                    | "$comment"
                    | "default"
                    | "examples"
                    | "deprecated"
                    | "readOnly"
                    | "writeOnly"
                    | "$id"
                    | "$schema"
                    | "$anchor"
                    | "definitions"
                    | "$defs"
            )
        }),
        _ => false,
    }
}

/// JSON equality where `1` equals `1.0`.
pub(crate) fn json_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x == y || x.as_f64() == y.as_f64(),
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| json_eq(p, q))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| json_eq(v, w)))
        }
        _ => a == b,
    }
}

/// Resolves a local reference (`#`, `#/json/pointer`, or `#name` for `$anchor`/draft-07 `$id`).
pub(crate) fn resolve<'a>(root: &'a Value, r: &str) -> Option<&'a Value> {
    let frag = r.strip_prefix('#')?;
    if frag.is_empty() {
        return Some(root);
    }
    if frag.starts_with('/') {
        let decoded = percent_decode(frag);
        return root.pointer(&decoded);
    }
    find_anchor(root, frag, 0)
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let (Some(h), Some(l)) = (
                bytes.get(i + 1).and_then(|c| (*c as char).to_digit(16)),
                bytes.get(i + 2).and_then(|c| (*c as char).to_digit(16)),
            )
        {
            out.push((h * 16 + l) as u8);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn find_anchor<'a>(v: &'a Value, name: &str, depth: usize) -> Option<&'a Value> {
    if depth > 64 {
        return None;
    }
    match v {
        Value::Object(m) => {
            if m.get("$anchor").and_then(Value::as_str) == Some(name)
                || m.get("$id")
                    .and_then(Value::as_str)
                    .is_some_and(|id| id.strip_prefix('#') == Some(name))
            {
                return Some(v);
            }
            m.values().find_map(|c| find_anchor(c, name, depth + 1))
        }
        Value::Array(items) => items.iter().find_map(|c| find_anchor(c, name, depth + 1)),
        _ => None,
    }
}
