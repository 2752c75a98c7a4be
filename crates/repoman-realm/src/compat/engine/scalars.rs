//! String and number keywords: lengths, patterns, formats, bounds, `multipleOf`.

use super::{Engine, Presence, Raw, fmt_num, is_multiple};
use crate::compat::flat::{FRAC, Flat};

impl Engine {
    pub(super) fn strings(&mut self, fa: &Flat<'_>, fb: &Flat<'_>, out: &mut Vec<Raw>) -> bool {
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

    pub(super) fn numbers(
        &mut self,
        fa: &Flat<'_>,
        fb: &Flat<'_>,
        ta: u8,
        out: &mut Vec<Raw>,
    ) -> bool {
        let mut ok = true;
        let desc = |b: &Option<crate::compat::flat::Bound>| {
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
}
