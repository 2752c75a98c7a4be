//! The pre-start hardening check: what an instance's **expanded** configuration (its own keys
//! and devices merged with every profile's) may not contain when repoman starts it.
//!
//! repoman's own desired state never asks for any of these, but profiles can: a `[[profile]]` of
//! the registry, a profile made by hand with `incus profile edit`, or a key set on the instance
//! with `incus config set`. Whatever their origin, a sandbox carrying one would no longer be the
//! boundary DESIGN.md §5a describes, so every path that starts a container (create, start,
//! restart, the start before `exec`/`shell`, the repairs and a rebuild) goes through [`start`],
//! which reads the instance as Incus will start it and refuses ([`SandboxError::Hardening`],
//! exit 3) before anything runs in it. The restricted Incus project refuses some of these too;
//! this is the check repoman makes itself, whatever project it is given.
//!
//! Refused: `security.privileged`, `security.nesting`, any `raw.*` key except repoman's own
//! `raw.idmap` value (`raw.lxc`, `raw.apparmor`, `raw.seccomp`, ...), `linux.kernel_modules`,
//! `security.guestapi` on (or unset: Incus' default is on) unless `[defaults] guest_api = true`,
//! `security.syscalls.intercept.*` other than `sysinfo`, devices of type `unix-char`,
//! `unix-block`, `unix-hotplug`, `usb`, `pci` or `gpu` not listed in `[defaults]
//! allow_devices`, and any disk with `shift=true`.
//!
//! [`check`] is pure (maps in, findings out); [`attribute`] names the profile or the instance
//! each finding comes from, given their own (unexpanded) maps.

use repoman_core::registry::Defaults;
use repoman_incus::{Config, Devices, ProjectScope};
use serde::Serialize;

use crate::desired::{Desired, RAW_IDMAP};
use crate::error::SandboxError;

/// Device types a sandbox may only have when `[defaults] allow_devices` lists them: each one
/// hands the container a piece of host hardware or a host device node.
pub const GUARDED_DEVICE_TYPES: &[&str] = repoman_core::registry::ALLOWABLE_DEVICE_TYPES;

/// The guest API key (`/dev/incus` inside the container; `security.devlxd` in LXD).
pub const GUEST_API: &str = "security.guestapi";

/// What the registry allows one sandbox beyond the hardened baseline.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Allowed {
    /// `[defaults] guest_api = true`.
    pub guest_api: bool,
    /// `[defaults] allow_devices`.
    pub devices: Vec<String>,
    /// repoman's own `raw.idmap` value for this sandbox (the only one accepted).
    pub raw_idmap: Option<String>,
}

impl Allowed {
    /// The allowances of the sandbox `desired` under the registry's `[defaults]`.
    pub fn for_sandbox(defaults: &Defaults, desired: &Desired) -> Allowed {
        Allowed {
            guest_api: defaults.guest_api.unwrap_or(false),
            devices: defaults.allow_devices.clone(),
            raw_idmap: desired.config.get(RAW_IDMAP).cloned(),
        }
    }
}

/// Where a finding comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", content = "name", rename_all = "snake_case")]
pub enum Origin {
    /// The instance's own config or devices.
    Instance,
    /// A profile of the instance (the last one setting it, as Incus merges them).
    Profile(String),
    /// Not set anywhere: Incus' default applies.
    Default,
}

/// One thing that keeps a sandbox from starting.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// The config key, or `device NAME` for a device.
    pub key: String,
    /// The value (for a device: its keys, `type=gpu`, `shift=true`).
    pub value: String,
    /// What it would allow.
    pub why: String,
    /// Where it comes from, when known ([`attribute`]).
    pub origin: Option<Origin>,
    /// The device name, for a device finding.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub device: Option<String>,
    /// The config key or device key that is refused (`security.nesting`, `shift`, `type`).
    #[serde(skip)]
    field: String,
}

impl Finding {
    fn config(key: &str, value: &str, why: &str) -> Finding {
        Finding {
            key: key.to_owned(),
            value: value.to_owned(),
            why: why.to_owned(),
            origin: None,
            device: None,
            field: key.to_owned(),
        }
    }

    fn device(name: &str, field: &str, value: &str, why: String) -> Finding {
        Finding {
            key: format!("device {name}"),
            value: format!("{field}={value}"),
            why,
            origin: None,
            device: Some(name.to_owned()),
            field: field.to_owned(),
        }
    }

    /// One line: `security.nesting=true (from profile `nest`): why`.
    pub fn describe(&self) -> String {
        let origin = match &self.origin {
            Some(Origin::Instance) => " (set on the instance)".to_owned(),
            Some(Origin::Profile(p)) => format!(" (from profile `{p}`)"),
            Some(Origin::Default) => " (unset: Incus' default is on)".to_owned(),
            None => String::new(),
        };
        if self.device.is_some() {
            format!("{} {}{origin}: {}", self.key, self.value, self.why)
        } else {
            format!("{}={}{origin}: {}", self.key, self.value, self.why)
        }
    }

    /// What to do about it, for the sandbox `name` in the Incus project `project`.
    pub fn hint(&self, name: &str, project: &str) -> String {
        if self.device.is_some() && self.field == "type" {
            let ty = self.value.trim_start_matches("type=");
            let fix = format!(
                "add \"{ty}\" to `[defaults] allow_devices` in repoman.toml if the sandbox really needs it"
            );
            return match &self.origin {
                Some(Origin::Profile(p)) => {
                    format!("remove the device from profile `{p}`, or {fix}")
                }
                _ => format!("`repoman update {name}` removes devices added by hand, or {fix}"),
            };
        }
        if self.key == GUEST_API && !matches!(self.origin, Some(Origin::Profile(_))) {
            return format!(
                "`repoman update {name}` turns the guest API off, or set `[defaults] guest_api = true` in repoman.toml"
            );
        }
        match &self.origin {
            Some(Origin::Profile(p)) => format!(
                "remove `{}` from profile `{p}` (its [[profile]] in repoman.toml, or `incus profile edit {p} --project {project}`)",
                self.field
            ),
            _ if self.device.is_some() || self.key == RAW_IDMAP => format!(
                "`repoman update {name}` brings the sandbox back to repoman's configuration"
            ),
            _ => format!(
                "`incus config unset {name} {} --project {project}`, then start it again",
                self.key
            ),
        }
    }
}

fn truthy(v: &str) -> bool {
    matches!(
        v.trim().to_ascii_lowercase().as_str(),
        "true" | "1" | "yes" | "on"
    )
}

fn falsy_or_empty(v: &str) -> bool {
    matches!(
        v.trim().to_ascii_lowercase().as_str(),
        "" | "false" | "0" | "no" | "off"
    )
}

/// `raw.idmap` values compare line by line, ignoring blank lines and surrounding blanks.
fn same_idmap(a: &str, b: &str) -> bool {
    let norm = |s: &str| -> Vec<String> {
        s.lines()
            .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
            .filter(|l| !l.is_empty())
            .collect()
    };
    norm(a) == norm(b)
}

/// What in the expanded `config` and `devices` keeps the sandbox from starting (empty: start).
pub fn check(config: &Config, devices: &Devices, allowed: &Allowed) -> Vec<Finding> {
    let mut out = Vec::new();
    for (key, value) in config {
        let k = key.as_str();
        let why = match k {
            "security.privileged" if truthy(value) => "a privileged container's root is host root",
            "security.nesting" if truthy(value) => {
                "nesting gives the container the mounts and /proc access needed to run containers of its own, a wider attack surface on the host"
            }
            RAW_IDMAP
                if !value.trim().is_empty()
                    && !allowed
                        .raw_idmap
                        .as_deref()
                        .is_some_and(|own| same_idmap(own, value)) =>
            {
                "only repoman's own raw.idmap (the host user's uid and gid) may be mapped"
            }
            _ if k.starts_with("raw.") && k != RAW_IDMAP && !value.trim().is_empty() => {
                "raw low-level configuration bypasses Incus' own checks"
            }
            "linux.kernel_modules" if !value.trim().is_empty() => {
                "loads kernel modules on the host when the container starts"
            }
            GUEST_API if truthy(value) && !allowed.guest_api => {
                "the guest API (/dev/incus) is off unless `[defaults] guest_api = true`"
            }
            _ if k.starts_with("security.syscalls.intercept.")
                && k != "security.syscalls.intercept.sysinfo"
                && !falsy_or_empty(value) =>
            {
                "syscall interception makes the host do mounts, device nodes or other privileged work for the container"
            }
            _ => continue,
        };
        out.push(Finding::config(k, value, why));
    }
    if !allowed.guest_api && !config.contains_key(GUEST_API) {
        let mut f = Finding::config(
            GUEST_API,
            "true",
            "the guest API (/dev/incus) is off unless `[defaults] guest_api = true`",
        );
        f.origin = Some(Origin::Default);
        out.push(f);
    }
    for (name, dev) in devices {
        let ty = dev.get("type").map(String::as_str).unwrap_or_default();
        if GUARDED_DEVICE_TYPES.contains(&ty) && !allowed.devices.iter().any(|d| d == ty) {
            out.push(Finding::device(
                name,
                "type",
                ty,
                format!(
                    "a `{ty}` device hands host hardware or a host device node to the container; `[defaults] allow_devices` does not list it"
                ),
            ));
        }
        if ty == "disk" && dev.get("shift").is_some_and(|v| truthy(v)) {
            out.push(Finding::device(
                name,
                "shift",
                dev.get("shift").map(String::as_str).unwrap_or("true"),
                "an idmapped (shift=true) mount makes container root the owner of the host's root-owned files there".to_owned(),
            ));
        }
    }
    out
}

/// Name where each finding comes from: the instance's own `config`/`devices` win over profiles,
/// and among `profiles` (in the instance's order) the last one setting the key wins, as Incus
/// merges them. A key set nowhere keeps its origin (`None`, or [`Origin::Default`]).
pub fn attribute(
    findings: &mut [Finding],
    own_config: &Config,
    own_devices: &Devices,
    profiles: &[(String, Config, Devices)],
) {
    for f in findings.iter_mut() {
        if f.origin == Some(Origin::Default) {
            continue;
        }
        let set_in = |config: &Config, devices: &Devices| match &f.device {
            Some(d) => devices.contains_key(d),
            None => config.contains_key(&f.key),
        };
        f.origin = if set_in(own_config, own_devices) {
            Some(Origin::Instance)
        } else {
            profiles
                .iter()
                .rev()
                .find(|(_, c, d)| set_in(c, d))
                .map(|(p, _, _)| Origin::Profile(p.clone()))
        };
    }
}

/// How [`start`] starts the instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartMode {
    Start,
    Restart { force: bool },
}

/// Read the instance `name` as Incus would start it (expanded config and devices), refuse when
/// [`check`] finds anything (naming the profile or the instance it comes from), else start (or
/// restart) it. Every start path of the crate goes through here.
pub fn start(
    scope: &ProjectScope,
    name: &str,
    allowed: &Allowed,
    mode: StartMode,
) -> Result<(), SandboxError> {
    let inst = checked(scope, name, allowed)?;
    // The agent door's endpoint directory, so `/repoman` is mounted from the first moment (the
    // device is `required=false`: without the directory the sandbox still starts, unmounted).
    if let Some(dev) = inst
        .expanded_devices
        .get(repoman_core::agent_door::AGENT_DEVICE)
        && let Err(e) = repoman_core::agent_door::ensure_device_dir(dev)
    {
        tracing::warn!(sandbox = name, error = %e, "cannot create the agent endpoint directory");
    }
    match mode {
        StartMode::Start => scope.start(name)?,
        StartMode::Restart { force } => scope.restart(name, force)?,
    }
    Ok(())
}

/// The check of [`start`]: read the instance once and check it; the instance, when nothing is
/// refused.
fn checked(
    scope: &ProjectScope,
    name: &str,
    allowed: &Allowed,
) -> Result<repoman_incus::Instance, SandboxError> {
    let inst = scope.get_instance(name)?;
    let mut findings = check(&inst.expanded_config, &inst.expanded_devices, allowed);
    if findings.is_empty() {
        return Ok(inst);
    }
    let mut profiles = Vec::new();
    for p in &inst.profiles {
        // Attribution is best effort: a profile that cannot be read leaves findings unnamed.
        if let Ok(prof) = scope.get_profile(p) {
            profiles.push((p.clone(), prof.config, prof.devices));
        }
    }
    attribute(&mut findings, &inst.config, &inst.devices, &profiles);
    Err(SandboxError::Hardening {
        name: name.to_owned(),
        project: scope.name().to_owned(),
        findings,
        note: None,
    })
}

/// The findings as one sentence each, joined for an error message.
pub fn summarize(findings: &[Finding]) -> String {
    findings
        .iter()
        .map(Finding::describe)
        .collect::<Vec<_>>()
        .join("; ")
}

/// The distinct hints of `findings`; the keys to remove from one profile share one hint.
pub fn hints(findings: &[Finding], name: &str, project: &str) -> String {
    let mut seen: Vec<String> = Vec::new();
    let mut per_profile: Vec<(&str, Vec<&str>)> = Vec::new();
    for f in findings {
        let removable = !(f.device.is_some() && f.field == "type") && f.key != GUEST_API;
        if let (Some(Origin::Profile(p)), true) = (&f.origin, removable) {
            match per_profile.iter_mut().find(|(q, _)| q == p) {
                Some((_, keys)) => keys.push(&f.field),
                None => per_profile.push((p, vec![&f.field])),
            }
            continue;
        }
        let h = f.hint(name, project);
        if !seen.contains(&h) {
            seen.push(h);
        }
    }
    for (p, keys) in per_profile {
        let keys: Vec<String> = keys.iter().map(|k| format!("`{k}`")).collect();
        seen.push(format!(
            "remove {} from profile `{p}` (its [[profile]] in repoman.toml, or `incus profile edit {p} --project {project}`)",
            keys.join(", ")
        ));
    }
    seen.join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn allowed() -> Allowed {
        Allowed {
            guest_api: false,
            devices: vec![],
            raw_idmap: Some("both 1000 1000".into()),
        }
    }

    fn repoman_config() -> Config {
        map(&[
            ("raw.idmap", "both 1000 1000"),
            ("security.guestapi", "false"),
            ("limits.processes", "2000"),
            ("security.syscalls.intercept.sysinfo", "true"),
            ("user.repoman.project", "a"),
        ])
    }

    fn repo_disk() -> Devices {
        BTreeMap::from([
            (
                "repo".to_owned(),
                map(&[
                    ("type", "disk"),
                    ("source", "/r/a"),
                    ("path", "/home/dev/a"),
                ]),
            ),
            (
                "root".to_owned(),
                map(&[("type", "disk"), ("path", "/"), ("pool", "default")]),
            ),
            (
                "eth0".to_owned(),
                map(&[("type", "nic"), ("network", "br0")]),
            ),
        ])
    }

    #[test]
    fn repomans_own_configuration_passes() {
        assert_eq!(check(&repoman_config(), &repo_disk(), &allowed()), vec![]);
        // The idmap compares by its lines, not its spacing.
        let mut c = repoman_config();
        c.insert("raw.idmap".into(), "both  1000 1000\n".into());
        assert_eq!(check(&c, &repo_disk(), &allowed()), vec![]);
    }

    #[test]
    fn every_refused_key_is_found_and_named() {
        for (key, value) in [
            ("security.privileged", "true"),
            ("security.nesting", "1"),
            ("raw.lxc", "lxc.apparmor.profile=unconfined"),
            ("raw.apparmor", "mount,"),
            ("raw.seccomp", "2\ndenylist\n"),
            ("raw.idmap", "both 0 0"),
            ("security.guestapi", "true"),
            ("security.syscalls.intercept.mount", "true"),
            ("security.syscalls.intercept.mount.allowed", "ext4"),
            ("security.syscalls.intercept.mknod", "yes"),
            ("security.syscalls.intercept.bpf", "true"),
            ("linux.kernel_modules", "overlay"),
        ] {
            let mut c = repoman_config();
            c.insert(key.into(), value.into());
            let f = check(&c, &repo_disk(), &allowed());
            assert_eq!(f.len(), 1, "{key}: {f:?}");
            assert_eq!(f[0].key, key);
            assert!(
                f[0].describe().starts_with(&format!("{key}={value}")),
                "{}",
                f[0].describe()
            );
        }
        // Off or empty values are fine.
        let mut c = repoman_config();
        c.insert("security.nesting".into(), "false".into());
        c.insert("security.privileged".into(), "0".into());
        c.insert("raw.lxc".into(), "".into());
        c.insert("security.syscalls.intercept.mount".into(), "false".into());
        assert_eq!(check(&c, &repo_disk(), &allowed()), vec![]);
    }

    #[test]
    fn guest_api_unset_is_on_and_allowed_only_by_the_registry() {
        let mut c = repoman_config();
        c.remove("security.guestapi");
        let f = check(&c, &repo_disk(), &allowed());
        assert_eq!(f.len(), 1, "{f:?}");
        assert_eq!(f[0].origin, Some(Origin::Default));
        assert!(f[0].describe().contains("Incus' default is on"));
        assert!(f[0].hint("a", "p").contains("guest_api = true"));
        let on = Allowed {
            guest_api: true,
            ..allowed()
        };
        assert_eq!(check(&c, &repo_disk(), &on), vec![]);
        c.insert("security.guestapi".into(), "true".into());
        assert_eq!(check(&c, &repo_disk(), &on), vec![]);
    }

    #[test]
    fn guarded_devices_need_allow_devices_and_shift_is_refused() {
        let mut d = repo_disk();
        d.insert("gpu0".into(), map(&[("type", "gpu")]));
        d.insert(
            "kvm".into(),
            map(&[("type", "unix-char"), ("source", "/dev/kvm")]),
        );
        d.get_mut("repo")
            .unwrap()
            .insert("shift".into(), "true".into());
        let f = check(&repoman_config(), &d, &allowed());
        let keys: Vec<(&str, &str)> = f
            .iter()
            .map(|f| (f.key.as_str(), f.value.as_str()))
            .collect();
        assert_eq!(
            keys,
            [
                ("device gpu0", "type=gpu"),
                ("device kvm", "type=unix-char"),
                ("device repo", "shift=true")
            ]
        );
        assert!(f[0].hint("a", "p").contains("allow_devices"));
        let some = Allowed {
            devices: vec!["gpu".into(), "unix-char".into()],
            ..allowed()
        };
        let f = check(&repoman_config(), &d, &some);
        assert_eq!(f.len(), 1, "{f:?}");
        assert_eq!(f[0].device.as_deref(), Some("repo"));
        assert!(f[0].hint("a", "p").contains("repoman update a"));
    }

    #[test]
    fn findings_name_the_instance_or_the_last_profile_setting_them() {
        let mut expanded = repoman_config();
        expanded.insert("security.nesting".into(), "true".into());
        expanded.insert("raw.lxc".into(), "x".into());
        let mut devices = repo_disk();
        devices.insert("gpu0".into(), map(&[("type", "gpu")]));
        let mut f = check(&expanded, &devices, &allowed());
        assert_eq!(f.len(), 3);
        let own = map(&[("raw.lxc", "x")]);
        let profiles = vec![
            (
                "default".to_owned(),
                map(&[("security.nesting", "false")]),
                Devices::new(),
            ),
            (
                "nest".to_owned(),
                map(&[("security.nesting", "true")]),
                BTreeMap::from([("gpu0".to_owned(), map(&[("type", "gpu")]))]),
            ),
        ];
        attribute(&mut f, &own, &repo_disk(), &profiles);
        let by_key: BTreeMap<&str, &Finding> = f.iter().map(|f| (f.key.as_str(), f)).collect();
        assert_eq!(
            by_key["security.nesting"].origin,
            Some(Origin::Profile("nest".into()))
        );
        assert_eq!(by_key["raw.lxc"].origin, Some(Origin::Instance));
        assert_eq!(
            by_key["device gpu0"].origin,
            Some(Origin::Profile("nest".into()))
        );
        let n = by_key["security.nesting"];
        assert!(
            n.describe().contains("(from profile `nest`)"),
            "{}",
            n.describe()
        );
        assert!(
            n.hint("a", "p")
                .contains("incus profile edit nest --project p")
        );
        assert!(
            by_key["raw.lxc"]
                .hint("a", "p")
                .contains("incus config unset a raw.lxc --project p")
        );
        let mut two = f.clone();
        two.push(Finding {
            key: "security.privileged".into(),
            field: "security.privileged".into(),
            ..n.clone()
        });
        let h = hints(&two, "a", "p");
        assert!(
            h.contains("remove `security.nesting`, `security.privileged` from profile `nest`"),
            "{h}"
        );
    }
}
