//! Text, JUnit and GitHub renderings of diff and check reports (shared by `diff`, `check` and
//! `admin contract bump`).

use repoman_realm::check::{self, CheckReport, Level};
use repoman_realm::compat::{DiffReport, Verdict};

/// Text lines for a diff report: a summary line, then one line per change.
pub(super) fn render_report(report: &DiffReport) -> Vec<String> {
    let count = |v: Verdict| report.changes.iter().filter(|c| c.verdict == v).count();
    let mut lines = vec![format!(
        "{} compatibility: {} ({} breaking, {} warning, {} compatible change{})",
        report.mode.as_str(),
        report.verdict.as_str().to_uppercase(),
        count(Verdict::Breaking),
        count(Verdict::Warning),
        count(Verdict::Compatible),
        if count(Verdict::Compatible) == 1 {
            ""
        } else {
            "s"
        },
    )];
    let width = report
        .changes
        .iter()
        .map(|c| c.pointer.len())
        .max()
        .unwrap_or(0);
    let kind_width = report
        .changes
        .iter()
        .map(|c| c.kind.len())
        .max()
        .unwrap_or(0);
    let mut sorted: Vec<_> = report.changes.iter().collect();
    sorted.sort_by_key(|c| std::cmp::Reverse(c.verdict));
    for c in sorted {
        lines.push(format!(
            "  {:<10} {:<width$}  {:<kind_width$}  {}",
            c.verdict.as_str(),
            c.pointer,
            c.kind,
            c.message,
            width = width,
            kind_width = kind_width
        ));
    }
    lines
}

fn level_str(l: Level) -> &'static str {
    match l {
        Level::Error => "error",
        Level::Warning => "warning",
        Level::Info => "info",
    }
}

pub(super) fn render_check_text(r: &CheckReport) -> Vec<String> {
    let mut lines = Vec::new();
    for d in &r.compatibility {
        // As in the design seed: one line per change, then the result and what the step allows.
        lines.push(format!(
            "checking {} {} → {} ({})",
            d.contract,
            d.from,
            d.to,
            d.mode.as_str()
        ));
        for ch in &d.changes {
            let mark = match ch.verdict {
                Verdict::Compatible => "✓",
                Verdict::Warning => "!",
                Verdict::Breaking => "✗",
            };
            lines.push(format!(
                "  {mark} {} {}: {} - {}",
                ch.pointer,
                ch.kind,
                ch.message,
                ch.verdict.as_str().to_uppercase()
            ));
        }
        let step = match (
            repoman_realm::version::parse_version(&d.from),
            repoman_realm::version::parse_version(&d.to),
        ) {
            (Ok(a), Ok(b)) => match repoman_realm::version::bump(&a, &b) {
                Some(repoman_realm::version::Bump::Major) => "major version step",
                Some(repoman_realm::version::Bump::Minor) => "minor version step",
                Some(repoman_realm::version::Bump::Patch) => "patch version step",
                None => "version did not increase",
            },
            _ => "unparsable versions",
        };
        let ok = d.verdict != Verdict::Breaking || step == "major version step";
        lines.push(format!(
            "  Result: {} ({step} {})",
            d.verdict.as_str().to_uppercase(),
            if ok { "OK" } else { "NOT OK" }
        ));
    }
    let mut sorted: Vec<_> = r.findings.iter().collect();
    sorted.sort_by_key(|f| std::cmp::Reverse(f.level));
    for f in sorted {
        let at = f
            .pointer
            .as_ref()
            .map(|p| format!(" at {p}"))
            .unwrap_or_default();
        lines.push(format!(
            "{:<7} [{}] {} {}: {}{at}",
            level_str(f.level),
            f.mode.as_str(),
            f.object,
            f.rule,
            f.message
        ));
    }
    for h in &r.hooks {
        let status = match h.status {
            check::HookStatus::Ran => {
                format!("exit {}", h.exit.map_or("none".into(), |c| c.to_string()))
            }
            check::HookStatus::Cached => format!(
                "exit {} (cached)",
                h.exit.map_or("none".into(), |c| c.to_string())
            ),
            check::HookStatus::SkippedUntrusted => "skipped: realm not trusted".into(),
            check::HookStatus::SkippedNotCi => "skipped: CI only".into(),
        };
        lines.push(format!(
            "hook    {} {} {}: {status}",
            h.contract, h.role, h.script
        ));
    }
    let modes: Vec<&str> = r.modes.iter().map(|m| m.as_str()).collect();
    lines.push(format!(
        "realm check ({}) {}: {} ({} error{}, {} warning{}{})",
        modes.join(", "),
        r.realm,
        if r.ok { "OK" } else { "FAILED" },
        r.errors,
        if r.errors == 1 { "" } else { "s" },
        r.warnings,
        if r.warnings == 1 { "" } else { "s" },
        if r.strict { ", strict" } else { "" }
    ));
    lines
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&apos;")
}

pub(super) fn render_junit(r: &CheckReport) -> String {
    let failing =
        |f: &check::Finding| f.level == Level::Error || (r.strict && f.level == Level::Warning);
    let relevant: Vec<_> = r
        .findings
        .iter()
        .filter(|f| f.level != Level::Info)
        .collect();
    let failures = relevant.iter().filter(|f| failing(f)).count();
    let tests = relevant.len() + r.compatibility.len() + 1;
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    out.push_str(&format!(
        "<testsuites name=\"repoman realm check\" tests=\"{tests}\" failures=\"{failures}\">\n"
    ));
    out.push_str(&format!(
        "  <testsuite name=\"realm {}\" tests=\"{tests}\" failures=\"{failures}\">\n",
        xml_escape(&r.realm)
    ));
    for d in &r.compatibility {
        out.push_str(&format!(
            "    <testcase classname=\"compatibility\" name=\"{} {} → {} ({})\"/>\n",
            xml_escape(&d.contract),
            xml_escape(&d.from),
            xml_escape(&d.to),
            d.mode.as_str()
        ));
    }
    for f in relevant {
        let name = xml_escape(&format!("{} {}", f.object, f.rule));
        if failing(f) {
            out.push_str(&format!(
                "    <testcase classname=\"{}\" name=\"{name}\">\n      <failure type=\"{}\" message=\"{}\">{}</failure>\n    </testcase>\n",
                f.mode.as_str(),
                level_str(f.level),
                xml_escape(&f.message),
                xml_escape(&format!("{}{}", f.message, f.pointer.as_ref().map(|p| format!(" at {p}")).unwrap_or_default()))
            ));
        } else {
            out.push_str(&format!("    <testcase classname=\"{}\" name=\"{name}\">\n      <system-out>{}</system-out>\n    </testcase>\n", f.mode.as_str(), xml_escape(&format!("warning: {}", f.message))));
        }
    }
    out.push_str(&format!(
        "    <testcase classname=\"summary\" name=\"realm check\"{}\n",
        if r.ok {
            "/>"
        } else {
            "><failure type=\"summary\" message=\"realm check failed\"/></testcase>"
        }
    ));
    out.push_str("  </testsuite>\n</testsuites>");
    out
}

fn gh_escape(s: &str) -> String {
    s.replace('%', "%25")
        .replace('\r', "%0D")
        .replace('\n', "%0A")
}

fn gh_prop(s: &str) -> String {
    gh_escape(s).replace(':', "%3A").replace(',', "%2C")
}

pub(super) fn render_github(r: &CheckReport) -> Vec<String> {
    let mut lines = Vec::new();
    for f in &r.findings {
        let cmd = match f.level {
            Level::Error => "error",
            Level::Warning if r.strict => "error",
            Level::Warning => "warning",
            Level::Info => "notice",
        };
        let mut props = vec![format!(
            "title={}",
            gh_prop(&format!("realm {} ({})", f.rule, f.mode.as_str()))
        )];
        if let Some(file) = &f.file {
            props.insert(0, format!("file={}", gh_prop(file)));
        }
        let at = f
            .pointer
            .as_ref()
            .map(|p| format!(" at {p}"))
            .unwrap_or_default();
        lines.push(format!(
            "::{cmd} {}::{}",
            props.join(","),
            gh_escape(&format!("{}: {}{at}", f.object, f.message))
        ));
    }
    lines.push(format!(
        "::notice title=realm check::{} {} ({} errors, {} warnings)",
        r.realm,
        if r.ok { "OK" } else { "FAILED" },
        r.errors,
        r.warnings
    ));
    lines
}
