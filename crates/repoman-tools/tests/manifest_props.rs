#![allow(clippy::unwrap_used)]
//! Property tests: parsing and rendering keep every byte, and pin-then-unpin of a new tool
//! returns the original bytes, for generated `.tool-versions` and mise files with arbitrary
//! spacing, tabs, comments, blank lines, CRLF and a missing final newline.

use std::path::Path;

use proptest::prelude::*;
use repoman_tools::manifest::{MiseFile, ToolVersions};

fn ws() -> impl Strategy<Value = String> {
    prop::collection::vec(prop_oneof![Just(' '), Just('\t')], 0..4)
        .prop_map(|v| v.into_iter().collect())
}

fn ws1() -> impl Strategy<Value = String> {
    prop::collection::vec(prop_oneof![Just(' '), Just('\t')], 1..6)
        .prop_map(|v| v.into_iter().collect())
}

fn version() -> impl Strategy<Value = String> {
    prop_oneof![
        "[0-9]{1,2}(\\.[0-9]{1,2}){0,2}",
        Just("system".to_owned()),
        Just("latest".to_owned()),
        "ref:[0-9a-f]{4,8}",
        "path:/opt/[a-z]{1,5}",
    ]
}

fn comment() -> impl Strategy<Value = String> {
    "#[ a-z0-9#=\\[\\]\"'-]{0,12}"
}

fn tv_line() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => (ws(), "[a-m][a-m0-9-]{0,6}", prop::collection::vec((ws1(), version()), 1..4), ws(), prop::option::of(comment()))
            .prop_map(|(i, t, vs, tw, c)| {
                let mut s = i + &t;
                for (sep, v) in vs {
                    s.push_str(&sep);
                    s.push_str(&v);
                }
                s.push_str(&tw);
                if let Some(c) = c {
                    s.push(' ');
                    s.push_str(&c);
                }
                s
            }),
        1 => (ws(), comment()).prop_map(|(w, c)| w + &c),
        1 => ws(),
    ]
}

fn file(line: impl Strategy<Value = String>) -> impl Strategy<Value = String> {
    (
        prop::collection::vec((line, prop_oneof![Just("\n"), Just("\r\n")]), 0..8),
        any::<bool>(),
    )
        .prop_map(|(lines, final_nl)| {
            let mut s = String::new();
            let n = lines.len();
            for (k, (l, eol)) in lines.into_iter().enumerate() {
                s.push_str(&l);
                if k + 1 < n || final_nl {
                    s.push_str(eol);
                }
            }
            s
        })
}

fn mise_entry() -> impl Strategy<Value = String> {
    (
        ws(),
        "[a-m][a-m0-9_-]{0,6}",
        " {0,3}",
        " {0,3}",
        prop::collection::vec(version(), 1..3),
        any::<bool>(),
        prop::option::of(comment()),
    )
        .prop_map(|(i, k, a, b, vs, literal, c)| {
            let q = |v: &String| {
                if literal {
                    format!("'{v}'")
                } else {
                    format!("\"{v}\"")
                }
            };
            let val = if vs.len() == 1 {
                q(&vs[0])
            } else {
                format!("[{}]", vs.iter().map(q).collect::<Vec<_>>().join(", "))
            };
            let mut s = format!("{i}{k}{a}={b}{val}");
            if let Some(c) = c {
                s.push_str("  ");
                s.push_str(&c);
            }
            s
        })
}

fn mise_file() -> impl Strategy<Value = String> {
    (
        prop::collection::vec(
            prop_oneof![3 => mise_entry(), 1 => comment(), 1 => Just(String::new())],
            0..6,
        ),
        prop::option::of(prop::collection::vec(
            prop_oneof![Just("A = \"1\"".to_owned()), comment()],
            0..3,
        )),
        prop_oneof![Just("\n"), Just("\r\n")],
        any::<bool>(),
    )
        .prop_map(|(tools, env, eol, final_nl)| {
            // Keys must be unique in TOML.
            let mut seen = std::collections::HashSet::new();
            let mut lines = vec!["[tools]".to_owned()];
            for l in tools {
                let key = l
                    .trim_start()
                    .split([' ', '='])
                    .next()
                    .unwrap_or("")
                    .to_owned();
                if l.contains('=') && !l.trim_start().starts_with('#') && !seen.insert(key) {
                    continue;
                }
                lines.push(l);
            }
            if let Some(env) = env {
                lines.push(String::new());
                lines.push("[env]".to_owned());
                for (k, l) in env.into_iter().enumerate() {
                    lines.push(l.replace("A =", &format!("A{k} =")));
                }
            }
            let mut s = lines.join(eol);
            if final_nl {
                s.push_str(eol);
            }
            s
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn tool_versions_round_trip_and_pin_unpin(text in file(tv_line()), two in any::<bool>()) {
        let path = Path::new(".tool-versions");
        let mut t = ToolVersions::parse(path, &text).unwrap();
        prop_assert_eq!(t.render(), text.clone());
        let versions: Vec<String> = if two { vec!["1.0".into(), "2.0".into()] } else { vec!["9.9.9".into()] };
        prop_assert!(t.pin("zz-new", &versions).unwrap());
        let pinned = t.render();
        // The new declaration reads back, and nothing else changed meaning.
        let again = ToolVersions::parse(path, &pinned).unwrap();
        let e = again.entries();
        prop_assert_eq!(&e.iter().find(|e| e.tool == "zz-new").unwrap().versions, &versions);
        prop_assert!(t.unpin("zz-new"));
        prop_assert_eq!(t.render(), text);
    }

    #[test]
    fn mise_pin_unpin_restores_bytes(text in mise_file(), two in any::<bool>()) {
        let path = Path::new("mise.toml");
        let mut f = MiseFile::parse(path, &text).unwrap();
        let versions: Vec<String> = if two { vec!["1.0".into(), "2.0".into()] } else { vec!["9.9.9".into()] };
        let before = f.entries();
        prop_assert!(f.pin("zz-new", &versions).unwrap());
        let after = f.entries();
        prop_assert_eq!(&after.iter().find(|e| e.tool == "zz-new").unwrap().versions, &versions);
        prop_assert_eq!(after.len(), before.len() + 1);
        prop_assert!(f.unpin("zz-new").unwrap());
        if before.is_empty() && (text.ends_with("[tools]\n") || text.ends_with("[tools]\r\n")) {
            // A file ending with an empty `[tools]` table reads like one `pin` added the table
            // to, so unpin takes the header away (see the mise module docs).
            prop_assert!(f.entries().is_empty());
        } else {
            prop_assert_eq!(f.render(), text);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Pinning a declared tool changes only its line; every other line keeps its bytes, and the
    /// file still parses with the new versions.
    #[test]
    fn tool_versions_pin_existing_touches_one_line(text in file(tv_line()), two in any::<bool>()) {
        let path = Path::new(".tool-versions");
        let mut t = ToolVersions::parse(path, &text).unwrap();
        let Some(first) = t.entries().into_iter().next() else { return Ok(()) };
        let versions: Vec<String> = if two { vec!["7.7".into(), "6.6".into()] } else { vec!["7.7.7".into()] };
        t.pin(&first.tool, &versions).unwrap();
        let out = t.render();
        let a: Vec<&str> = text.split('\n').collect();
        let b: Vec<&str> = out.split('\n').collect();
        prop_assert_eq!(a.len(), b.len());
        for (i, (x, y)) in a.iter().zip(&b).enumerate() {
            if i + 1 != first.line {
                prop_assert_eq!(x, y);
            } else {
                // Same indentation and tool name, same comment tail.
                let lead = |s: &str| s.split(&first.tool).next().unwrap_or("").to_owned();
                prop_assert_eq!(lead(x), lead(y));
                let tail = |s: &str| s.find('#').map(|i| s[i..].to_owned());
                prop_assert_eq!(tail(x), tail(y));
            }
        }
        let again = ToolVersions::parse(path, &out).unwrap();
        prop_assert_eq!(&again.entries().into_iter().next().unwrap().versions, &versions);
    }
}
