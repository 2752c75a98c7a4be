//! One version probe: the tool's absolute path, a cleared environment, `/` as working directory,
//! stdin null and a timeout.

use std::ffi::OsString;
use std::path::PathBuf;

use repoman_core::process::{Cmd, ProcessError};

use crate::rules::Rule;

use super::{Candidate, Outcome, PROBE_PATH, ScanOptions};

/// Run one probe.
pub(super) fn probe(c: &Candidate, rule: &Rule, opts: &ScanOptions) -> (Option<String>, Outcome) {
    let mut argv: Vec<OsString> = Vec::new();
    let program: OsString = if c.via_runner {
        let java =
            repoman_core::process::resolve_program("java".as_ref(), Some(PROBE_PATH.as_ref()))
                .map(PathBuf::into_os_string)
                .map_err(|e| e.to_string());
        let mut it = rule.runner.iter().map(|a| {
            if a == "{path}" {
                Ok(c.path.clone().into_os_string())
            } else if a == "{java}" {
                java.clone()
            } else {
                Ok(OsString::from(a))
            }
        });
        let first = match it.next() {
            Some(Ok(p)) => p,
            Some(Err(e)) => return (None, Outcome::Error { message: e }),
            None => {
                return (
                    None,
                    Outcome::Error {
                        message: "empty runner".into(),
                    },
                );
            }
        };
        for a in it {
            match a {
                Ok(a) => argv.push(a),
                Err(e) => return (None, Outcome::Error { message: e }),
            }
        }
        first
    } else {
        argv.extend(rule.version_args.iter().map(OsString::from));
        c.path.clone().into_os_string()
    };
    let mut cmd = Cmd::new(&program)
        .args(&argv)
        .env_clear()
        .env("PATH", PROBE_PATH)
        .env("LC_ALL", "C")
        .current_dir("/")
        .search_path(PROBE_PATH)
        .timeout(opts.timeout);
    if let Some(h) = &opts.home {
        cmd = cmd.env("HOME", h);
    }
    match cmd.output() {
        Ok(out) => {
            let stdout = String::from_utf8_lossy(&out.stdout);
            let stderr = String::from_utf8_lossy(&out.stderr);
            let version = rule.extract_version(&stdout, &stderr);
            let excerpt = || {
                let s = format!("{}{}", stdout.trim(), stderr.trim());
                s.chars().take(200).collect::<String>()
            };
            match (version, out.status.success()) {
                (Some(v), _) => (Some(v), Outcome::Ok),
                (None, true) => (None, Outcome::NoVersion { output: excerpt() }),
                (None, false) => (
                    None,
                    Outcome::Failed {
                        code: out.status.code(),
                        output: excerpt(),
                    },
                ),
            }
        }
        Err(ProcessError::Timeout { after, .. }) => (
            None,
            Outcome::TimedOut {
                after_ms: after.as_millis() as u64,
            },
        ),
        Err(e) => (
            None,
            Outcome::Error {
                message: e.to_string(),
            },
        ),
    }
}
