//! How the local Incus daemon runs, and how to restart it (after `/etc/subuid` or
//! `/etc/subgid` changed: incusd reads them only when it starts).
//!
//! Three cases: systemd units (`incus.service`, socket-activated by `incus.socket` on Debian
//! and Ubuntu), a hand-started `incusd` (the lab: `/usr/libexec/incus/incusd --group root` in
//! the background, DESIGN.md §7), or neither found. [`detect`] is pure over what was observed,
//! so the decision and the exact commands are tested without restarting anything; [`observe`]
//! gathers the facts and [`Manager::restart`] acts.
//!
//! Restarting incusd does not stop running containers (a plain SIGTERM or `systemctl restart`
//! leaves them running; only `incus admin shutdown` or SIGPWR stops them).

use std::path::Path;
use std::time::{Duration, Instant};

use repoman_core::process::Cmd;
use serde::Serialize;

/// How incusd is run on this host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "manager", rename_all = "snake_case")]
pub enum Manager {
    /// systemd units to restart, in order.
    Systemd { units: Vec<String> },
    /// A daemon started by hand: its pid and command line.
    HandStarted { pid: u32, argv: Vec<String> },
    /// No systemd unit is active and no incusd process was found.
    NotFound,
}

/// Decide from the facts: which of `incus.service`/`incus.socket` systemd reports active, and
/// the running processes as (pid, argv).
pub fn detect(active_units: &[&str], processes: &[(u32, Vec<String>)]) -> Manager {
    let units: Vec<String> = ["incus.socket", "incus.service"]
        .into_iter()
        .filter(|u| active_units.contains(u))
        .map(str::to_owned)
        .collect();
    if !units.is_empty() {
        // With socket activation the service is restarted after its socket, so no request
        // reaches a daemon that still has the old id maps.
        return Manager::Systemd { units };
    }
    let incusd = processes.iter().find(|(_, argv)| {
        argv.first()
            .and_then(|a| Path::new(a).file_name())
            .is_some_and(|n| n == "incusd")
            // `incusd forkexec ...` and friends are helpers, not the daemon.
            && argv.get(1).is_none_or(|a| a.starts_with('-'))
    });
    match incusd {
        Some((pid, argv)) => Manager::HandStarted {
            pid: *pid,
            argv: argv.clone(),
        },
        None => Manager::NotFound,
    }
}

impl Manager {
    /// The commands a human would run (shown by `--dry-run` and when repoman is not root).
    pub fn restart_commands(&self) -> Vec<String> {
        match self {
            Manager::Systemd { units } => {
                vec![format!("sudo systemctl restart {}", units.join(" "))]
            }
            Manager::HandStarted { pid, argv } => vec![
                format!("sudo kill -TERM {pid}"),
                format!(
                    "sudo setsid {} >/dev/null 2>&1 < /dev/null &",
                    argv.join(" ")
                ),
                "sudo incus admin waitready --timeout 60".to_owned(),
            ],
            Manager::NotFound => {
                vec!["restart the Incus daemon the way it was started (e.g. `sudo systemctl restart incus`)".to_owned()]
            }
        }
    }

    /// Restart the daemon (root only) and wait until it answers on `socket`.
    pub fn restart(&self, socket: &Path, wait: Duration) -> Result<(), String> {
        match self {
            Manager::Systemd { units } => {
                let out = Cmd::new("systemctl")
                    .arg("restart")
                    .args(units)
                    .timeout(wait)
                    .run()
                    .map_err(|e| e.to_string())?;
                if !out.status.success() {
                    return Err(format!(
                        "systemctl restart {} failed: {}",
                        units.join(" "),
                        String::from_utf8_lossy(&out.stderr).trim()
                    ));
                }
            }
            Manager::HandStarted { pid, argv } => {
                let p = rustix::process::Pid::from_raw(*pid as i32)
                    .ok_or_else(|| format!("bad pid {pid}"))?;
                rustix::process::kill_process(p, rustix::process::Signal::TERM)
                    .map_err(|e| format!("cannot stop incusd (pid {pid}): {e}"))?;
                let deadline = Instant::now() + wait;
                while Path::new(&format!("/proc/{pid}")).exists() {
                    if Instant::now() > deadline {
                        return Err(format!("incusd (pid {pid}) did not stop within {wait:?}"));
                    }
                    std::thread::sleep(Duration::from_millis(100));
                }
                let (program, args) = argv.split_first().ok_or("empty incusd command line")?;
                use std::os::unix::process::CommandExt;
                std::process::Command::new(program)
                    .args(args)
                    .stdin(std::process::Stdio::null())
                    .stdout(std::process::Stdio::null())
                    .stderr(std::process::Stdio::null())
                    .process_group(0)
                    .spawn()
                    .map_err(|e| format!("cannot start {program}: {e}"))?;
            }
            Manager::NotFound => {
                return Err(
                    "the Incus daemon was not found (no active systemd unit, no incusd process)"
                        .to_owned(),
                );
            }
        }
        wait_ready(socket, wait)
    }
}

/// Wait until `GET /1.0` answers on `socket`.
fn wait_ready(socket: &Path, wait: Duration) -> Result<(), String> {
    let deadline = Instant::now() + wait;
    let env = repoman_core::Env::from_pairs([("INCUS_SOCKET", socket)]);
    loop {
        if crate::Incus::connect(&env).is_ok() {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!(
                "Incus did not answer on {} within {wait:?}",
                socket.display()
            ));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Gather the facts for [`detect`]: `systemctl is-active` (when systemd runs) and `/proc`.
pub fn observe() -> Manager {
    let mut active = Vec::new();
    if Path::new("/run/systemd/system").is_dir() {
        for unit in ["incus.socket", "incus.service"] {
            let ok = Cmd::new("systemctl")
                .args(["is-active", "--quiet", unit])
                .timeout(Duration::from_secs(5))
                .run()
                .is_ok_and(|o| o.status.success());
            if ok {
                active.push(unit);
            }
        }
    }
    let mut procs = Vec::new();
    if let Ok(rd) = std::fs::read_dir("/proc") {
        for e in rd.flatten() {
            let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
                continue;
            };
            let Ok(raw) = std::fs::read(e.path().join("cmdline")) else {
                continue;
            };
            let argv: Vec<String> = raw
                .split(|b| *b == 0)
                .filter(|a| !a.is_empty())
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect();
            if argv.first().is_some_and(|a| a.ends_with("incusd")) {
                procs.push((pid, argv));
            }
        }
    }
    detect(&active, &procs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(s: &str) -> Vec<String> {
        s.split(' ').map(str::to_owned).collect()
    }

    #[test]
    fn systemd_units_win_socket_first() {
        let m = detect(
            &["incus.service", "incus.socket"],
            &[(7, argv("/usr/libexec/incus/incusd"))],
        );
        assert_eq!(
            m,
            Manager::Systemd {
                units: vec!["incus.socket".into(), "incus.service".into()]
            }
        );
        assert_eq!(
            m.restart_commands(),
            ["sudo systemctl restart incus.socket incus.service"]
        );
        let only_service = detect(&["incus.service"], &[]);
        assert_eq!(
            only_service.restart_commands(),
            ["sudo systemctl restart incus.service"]
        );
    }

    #[test]
    fn a_hand_started_daemon_is_found_and_its_helpers_are_not() {
        let procs = [
            (
                40,
                argv("/usr/libexec/incus/incusd forkexec c1 /var/lib/incus/containers"),
            ),
            (41, argv("/usr/bin/dnsmasq --keep-in-foreground")),
            (7097, argv("/usr/libexec/incus/incusd --group root")),
        ];
        let m = detect(&[], &procs);
        assert_eq!(
            m,
            Manager::HandStarted {
                pid: 7097,
                argv: argv("/usr/libexec/incus/incusd --group root")
            }
        );
        let cmds = m.restart_commands();
        assert_eq!(cmds[0], "sudo kill -TERM 7097");
        assert!(
            cmds[1].contains("/usr/libexec/incus/incusd --group root"),
            "{cmds:?}"
        );
        assert!(cmds[2].contains("waitready"));
        assert_eq!(detect(&[], &procs[..2]), Manager::NotFound);
    }

    #[test]
    fn observing_this_host_finds_the_running_daemon_when_there_is_one() {
        // Only reads /proc and asks systemd; restarts nothing.
        let m = observe();
        let daemon_runs = std::fs::read_dir("/proc")
            .unwrap()
            .flatten()
            .any(|e| std::fs::read(e.path().join("comm")).is_ok_and(|c| c.starts_with(b"incusd")));
        if daemon_runs {
            assert_ne!(m, Manager::NotFound);
        }
    }
}
