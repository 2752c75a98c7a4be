//! The read side of `repoman snif`: `list`, `inspect` and `run` (a run changes nothing on the
//! host: the module sees only what its grants allow, read-only).

use repoman_snif::Host;
use repoman_snif::store::SnifStore;
use serde_json::json;

use super::RunArgs;
use crate::app::App;
use crate::error::{CliError, Exit};

pub(super) fn list(app: &App, store: &SnifStore) -> Result<Exit, CliError> {
    let all = store.list()?;
    if app.ui.json() {
        let rows: Vec<_> = all
            .iter()
            .map(|i| {
                json!({
                    "name": i.name,
                    "version": i.manifest.version,
                    "interface": i.manifest.interface,
                    "module": i.module,
                    "size": i.size,
                    "capabilities": i.manifest.capabilities,
                })
            })
            .collect();
        app.ui.print_json(&json!({"snifs": rows}))?;
        return Ok(Exit::Success);
    }
    if all.is_empty() {
        app.ui.info("no SNIFs installed");
        app.ui.hint("repoman snif install DIR");
        return Ok(Exit::Success);
    }
    for i in &all {
        app.ui.data(&format!(
            "{}\t{}\t{}\t{}",
            i.name,
            i.manifest.version,
            i.manifest.interface,
            &i.module[..16]
        ))?;
    }
    Ok(Exit::Success)
}

pub(super) fn inspect(app: &App, store: &SnifStore, name: &str) -> Result<Exit, CliError> {
    let host = Host::new()?;
    let insp = store.inspect(&host, name)?;
    if app.ui.json() {
        app.ui.print_json(&insp)?;
        return Ok(if insp.intact {
            Exit::Success
        } else {
            Exit::Failure
        });
    }
    let i = &insp.installed;
    let m = &i.manifest;
    let line = |s: String| app.ui.data(&s);
    line(format!("name:       {}", i.name))?;
    line(format!("version:    {}", m.version))?;
    line(format!(
        "interface:  {} v{}",
        m.interface, m.interface_version
    ))?;
    line(format!(
        "module:     {} ({} bytes, {})",
        i.module,
        i.size,
        if insp.intact {
            "intact"
        } else {
            "CHANGED ON DISK"
        }
    ))?;
    line(format!("engine:     {}", insp.engine))?;
    let claims: Vec<&str> = insp.claims.iter().map(|c| c.as_str()).collect();
    line(format!(
        "claims:     {}",
        if claims.is_empty() {
            "nothing".to_owned()
        } else {
            claims.join(", ")
        }
    ))?;
    let g = &insp.grants;
    let mut granted = Vec::new();
    if let Some(d) = &g.filesystem {
        granted.push(format!("filesystem {} (read-only)", d.display()));
    }
    if g.clock {
        granted.push("clock".to_owned());
    }
    if g.random {
        granted.push("random".to_owned());
    }
    for (k, _) in &g.env {
        granted.push(format!("env {k}"));
    }
    line(format!(
        "granted:    {}",
        if granted.is_empty() {
            "nothing".to_owned()
        } else {
            granted.join(", ")
        }
    ))?;
    let l = m.limits();
    line(format!(
        "limits:     fuel {}, memory {} MiB, output {} KiB, deadline {:?}",
        l.fuel,
        l.memory >> 20,
        l.output >> 10,
        l.deadline
    ))?;
    if insp.imports.is_empty() {
        line("imports:    none".to_owned())?;
    } else {
        line("imports:    (what the module declares / needs / manifest claims / granted)".into())?;
        for r in &insp.imports {
            let cap = r
                .import
                .capability
                .map(|c| c.as_str().to_owned())
                .unwrap_or_else(|| "UNSUPPORTED".to_owned());
            line(format!(
                "  {}\t{}\t{}\t{}",
                r.import.name,
                cap,
                if r.claimed { "claimed" } else { "NOT CLAIMED" },
                if r.granted { "granted" } else { "not granted" }
            ))?;
        }
    }
    Ok(if insp.intact {
        Exit::Success
    } else {
        Exit::Failure
    })
}

pub(super) fn run_snif(app: &App, store: &SnifStore, a: RunArgs) -> Result<Exit, CliError> {
    let text = if a.input.as_os_str() == "-" {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut s)?;
        s
    } else {
        std::fs::read_to_string(&a.input)
            .map_err(|e| CliError::usage(format!("cannot read {}: {e}", a.input.display())))?
    };
    let input: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| CliError::usage(format!("{} is not JSON: {e}", a.input.display())))?;
    let host = Host::new()?;
    let snif = store.load(&a.name)?;
    let (output, call) = host.call_json(&snif, &input)?;
    if !call.log.is_empty() {
        app.ui.info(&format!(
            "{} wrote: {}",
            a.name,
            String::from_utf8_lossy(&call.log).trim_end()
        ));
    }
    app.ui.print_json(&output)?;
    Ok(Exit::Success)
}
