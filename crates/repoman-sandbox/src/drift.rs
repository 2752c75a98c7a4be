//! Reconciliation: the registry (what should exist) against one Incus listing (what exists).
//!
//! Three kinds of drift (the seed's "drift handling"):
//! - **missing**: registered with a sandbox, but no instance of that name in repoman's Incus
//!   project;
//! - **orphan**: an instance in repoman's Incus project that no registered sandbox claims (also
//!   when the project is registered `--no-container`);
//! - **config**: the instance's own devices, profiles, image tag or managed config keys differ
//!   from the [`Desired`] state.
//!
//! Config drift that weakens the sandbox is **security drift** ([`Change::security`]): a disk
//! with `shift=true` (the mounts of older versions), a missing or different `raw.idmap`, a
//! missing or different resource limit, the guest API on, a guarded device (`gpu`, `unix-char`,
//! ...) added by hand. It is the same drift (re-applying fixes it) with a reason attached, so
//! `status` and `update` can say why it matters; `--json` carries `security` on the drift and
//! on each change.
//!
//! Everything here is pure: it takes values and returns values, so `list`, `status`, `update`
//! and the warning every command prints share one definition of drift.

use std::collections::{BTreeMap, BTreeSet};

use repoman_incus::Instance;
use serde::Serialize;

use super::desired::{Desired, RAW_IDMAP, TAG_IMAGE, is_managed_key};

/// One difference between the instance and its desired state, phrased as what re-applying would
/// do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Change {
    AddDevice {
        device: String,
        to: BTreeMap<String, String>,
    },
    RemoveDevice {
        device: String,
        from: BTreeMap<String, String>,
    },
    UpdateDevice {
        device: String,
        from: BTreeMap<String, String>,
        to: BTreeMap<String, String>,
    },
    SetProfiles {
        from: Vec<String>,
        to: Vec<String>,
    },
    SetConfig {
        key: String,
        from: Option<String>,
        to: Option<String>,
    },
    /// The image differs; only a rebuild changes it (the root filesystem is replaced).
    Image {
        from: Option<String>,
        to: String,
    },
}

impl Change {
    /// Whether re-applying can fix this without rebuilding the instance.
    pub fn reapplicable(&self) -> bool {
        !matches!(self, Change::Image { .. })
    }

    /// Why this change matters to the sandbox boundary, when it does (security drift).
    pub fn security(&self) -> Option<&'static str> {
        let shifted = |d: &BTreeMap<String, String>| d.get("shift").is_some_and(|v| is_true(v));
        let guarded = |d: &BTreeMap<String, String>| {
            d.get("type")
                .is_some_and(|t| crate::hardening::GUARDED_DEVICE_TYPES.contains(&t.as_str()))
        };
        match self {
            Change::UpdateDevice { from, to, .. } if shifted(from) && !shifted(to) => {
                Some("shift=true: container root owns the host's root-owned files on this mount")
            }
            Change::RemoveDevice { from, .. } if shifted(from) => {
                Some("shift=true: container root owns the host's root-owned files on this mount")
            }
            Change::RemoveDevice { from, .. } if guarded(from) => {
                Some("a host device handed to the container by hand")
            }
            Change::SetConfig {
                key, to: Some(_), ..
            } if key == RAW_IDMAP => {
                Some("without repoman's raw.idmap the host user's ids are not mapped as designed")
            }
            Change::SetConfig {
                key, to: Some(_), ..
            } if crate::desired::LIMIT_KEYS.contains(&key.as_str()) => Some(
                "a resource limit is missing or different: a fork bomb or memory hog inside reaches the host",
            ),
            Change::SetConfig {
                key, to: Some(v), ..
            } if key == crate::hardening::GUEST_API && !is_true(v) => {
                Some("the guest API (/dev/incus) is on")
            }
            _ => None,
        }
    }

    /// One human-readable line, `+`/`-`/`~` prefixed like a diff, with the reason when it is
    /// security drift.
    pub fn describe(&self) -> String {
        match self.security() {
            Some(why) => format!("{}  [security: {why}]", self.describe_change()),
            None => self.describe_change(),
        }
    }

    fn describe_change(&self) -> String {
        match self {
            Change::AddDevice { device, to } => format!("+ device {device}: {}", fmt_device(to)),
            Change::RemoveDevice { device, from } => {
                format!("- device {device}: {}", fmt_device(from))
            }
            Change::UpdateDevice { device, from, to } => {
                format!(
                    "~ device {device}: {} -> {}",
                    fmt_device(from),
                    fmt_device(to)
                )
            }
            Change::SetProfiles { from, to } => {
                format!("~ profiles: [{}] -> [{}]", from.join(", "), to.join(", "))
            }
            Change::SetConfig {
                key,
                from: None,
                to: Some(v),
            } => format!("+ config {key}={v}"),
            Change::SetConfig {
                key,
                from: Some(v),
                to: None,
            } => format!("- config {key}={v}"),
            Change::SetConfig { key, from, to } => format!(
                "~ config {key}: {} -> {}",
                from.as_deref().unwrap_or("(unset)"),
                to.as_deref().unwrap_or("(unset)")
            ),
            Change::Image { from, to } => format!(
                "~ image: {} -> {to} (only a rebuild of the container changes it; repoman leaves it)",
                from.as_deref().unwrap_or("(unknown)")
            ),
        }
    }
}

/// `type=disk source=/x path=/y shift=true` with keys in a stable order.
pub fn fmt_device(d: &BTreeMap<String, String>) -> String {
    let mut parts = Vec::new();
    for key in ["type", "source", "path"] {
        if let Some(v) = d.get(key) {
            parts.push(format!("{key}={v}"));
        }
    }
    for (k, v) in d {
        if !matches!(k.as_str(), "type" | "source" | "path") {
            parts.push(format!("{k}={v}"));
        }
    }
    parts.join(" ")
}

/// The changes that would bring `actual` to `desired` (empty: no config drift).
pub fn diff(desired: &Desired, actual: &Instance) -> Vec<Change> {
    let mut out = Vec::new();
    let names: BTreeSet<&String> = desired
        .devices
        .keys()
        .chain(actual.devices.keys())
        .collect();
    for name in names {
        match (actual.devices.get(name), desired.devices.get(name)) {
            (None, Some(to)) => out.push(Change::AddDevice {
                device: name.clone(),
                to: to.clone(),
            }),
            (Some(from), None) => out.push(Change::RemoveDevice {
                device: name.clone(),
                from: from.clone(),
            }),
            (Some(from), Some(to)) if !same_device(from, to) => out.push(Change::UpdateDevice {
                device: name.clone(),
                from: from.clone(),
                to: to.clone(),
            }),
            _ => {}
        }
    }
    if actual.profiles != desired.profiles {
        out.push(Change::SetProfiles {
            from: actual.profiles.clone(),
            to: desired.profiles.clone(),
        });
    }
    let image_key = format!("user.{TAG_IMAGE}");
    let keys: BTreeSet<&String> = desired
        .config
        .keys()
        .chain(actual.config.keys().filter(|k| is_managed_key(k)))
        .filter(|k| **k != image_key)
        .collect();
    for key in keys {
        let (from, to) = (actual.config.get(key), desired.config.get(key));
        if from != to {
            out.push(Change::SetConfig {
                key: key.clone(),
                from: from.cloned(),
                to: to.cloned(),
            });
        }
    }
    let current_image = actual.config.get(&image_key);
    if current_image != Some(&desired.image) {
        out.push(Change::Image {
            from: current_image.cloned(),
            to: desired.image.clone(),
        });
    }
    out
}

/// Devices are equal when their keys are; Incus spells booleans in several ways.
fn same_device(a: &BTreeMap<String, String>, b: &BTreeMap<String, String>) -> bool {
    let norm = |d: &BTreeMap<String, String>| -> BTreeMap<String, String> {
        d.iter()
            .filter(|(k, v)| !(matches!(k.as_str(), "readonly" | "shift") && is_false(v)))
            .map(|(k, v)| {
                (
                    k.clone(),
                    if is_true(v) {
                        "true".to_owned()
                    } else {
                        v.clone()
                    },
                )
            })
            .collect()
    };
    norm(a) == norm(b)
}

pub(crate) fn is_true(v: &str) -> bool {
    matches!(v, "true" | "1" | "yes" | "on")
}

fn is_false(v: &str) -> bool {
    matches!(v, "false" | "0" | "no" | "off" | "")
}

/// The drift of one registered project or one unclaimed instance.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Drift {
    Missing {
        name: String,
    },
    Orphan {
        name: String,
        /// The project tag on the instance, when it has one.
        tagged_project: Option<String>,
        /// Whether the instance carries this estate's id.
        this_estate: bool,
        /// The project is registered but `--no-container`.
        registered_without_container: bool,
    },
    Config {
        name: String,
        /// Each change with its `security` reason (null for ordinary drift).
        #[serde(serialize_with = "serialize_labeled")]
        changes: Vec<Change>,
        /// Some change is security drift ([`Change::security`]).
        security: bool,
    },
    /// The desired state could not be computed (e.g. a malformed `.repoman.toml`).
    Unknown {
        name: String,
        reason: String,
    },
}

impl Drift {
    pub fn name(&self) -> &str {
        match self {
            Drift::Missing { name }
            | Drift::Orphan { name, .. }
            | Drift::Config { name, .. }
            | Drift::Unknown { name, .. } => name,
        }
    }

    /// `missing`, `orphan`, `config` or `unknown`.
    pub fn kind(&self) -> &'static str {
        match self {
            Drift::Missing { .. } => "missing",
            Drift::Orphan { .. } => "orphan",
            Drift::Config { .. } => "config",
            Drift::Unknown { .. } => "unknown",
        }
    }

    /// What `list`'s DRIFT column shows: [`Drift::kind`], except `security` for config drift
    /// that weakens the sandbox.
    pub fn label(&self) -> &'static str {
        match self {
            Drift::Config { security: true, .. } => "security",
            other => other.kind(),
        }
    }

    /// One line for warnings.
    pub fn summary(&self) -> String {
        match self {
            Drift::Missing { name } => {
                format!("{name}: missing (registered, but no container in Incus)")
            }
            Drift::Orphan {
                name,
                registered_without_container: true,
                ..
            } => format!(
                "{name}: orphan (a container exists, but the project is registered without one)"
            ),
            Drift::Orphan { name, .. } => {
                format!("{name}: orphan (a container in repoman's Incus project, not registered)")
            }
            Drift::Config {
                name,
                changes,
                security: false,
            } => format!(
                "{name}: config drift ({} difference{})",
                changes.len(),
                if changes.len() == 1 { "" } else { "s" }
            ),
            Drift::Config { name, changes, .. } => {
                let n = changes.iter().filter(|c| c.security().is_some()).count();
                format!(
                    "{name}: SECURITY drift ({} difference{}, {n} weakening the sandbox; `repoman update {name}` fixes {})",
                    changes.len(),
                    if changes.len() == 1 { "" } else { "s" },
                    if n == 1 { "it" } else { "them" }
                )
            }
            Drift::Unknown { name, reason } => format!("{name}: cannot check drift: {reason}"),
        }
    }
}

/// A change as `--json` shows it: its own fields and `security` (the reason, or null).
#[derive(Debug, Serialize)]
pub struct Labeled<'a> {
    #[serde(flatten)]
    pub change: &'a Change,
    pub security: Option<&'static str>,
}

/// `changes` with their security labels, for JSON output.
pub fn labeled(changes: &[Change]) -> Vec<Labeled<'_>> {
    changes
        .iter()
        .map(|change| Labeled {
            change,
            security: change.security(),
        })
        .collect()
}

fn serialize_labeled<S: serde::Serializer>(
    changes: &[Change],
    serializer: S,
) -> Result<S::Ok, S::Error> {
    serializer.collect_seq(labeled(changes))
}

/// One registered project's desired state, or why it could not be computed.
#[derive(Debug)]
pub struct Expected {
    pub name: String,
    pub container: bool,
    pub desired: Result<Desired, String>,
}

/// Compare every registered project with the instances of one listing.
pub fn reconcile(
    expected: &[Expected],
    instances: &[Instance],
    estate: Option<&str>,
) -> Vec<Drift> {
    let by_name: BTreeMap<&str, &Instance> =
        instances.iter().map(|i| (i.name.as_str(), i)).collect();
    let mut out = Vec::new();
    for e in expected {
        match (e.container, by_name.get(e.name.as_str())) {
            (true, None) => out.push(Drift::Missing {
                name: e.name.clone(),
            }),
            (true, Some(inst)) => match &e.desired {
                Ok(d) => {
                    let changes = diff(d, inst);
                    if !changes.is_empty() {
                        out.push(Drift::Config {
                            name: e.name.clone(),
                            security: changes.iter().any(|c| c.security().is_some()),
                            changes,
                        });
                    }
                }
                Err(reason) => out.push(Drift::Unknown {
                    name: e.name.clone(),
                    reason: reason.clone(),
                }),
            },
            (false, Some(inst)) => out.push(orphan(inst, estate, true)),
            (false, None) => {}
        }
    }
    let registered: BTreeSet<&str> = expected.iter().map(|e| e.name.as_str()).collect();
    for inst in instances {
        if !registered.contains(inst.name.as_str()) {
            out.push(orphan(inst, estate, false));
        }
    }
    out
}

fn orphan(inst: &Instance, estate: Option<&str>, registered_without_container: bool) -> Drift {
    Drift::Orphan {
        name: inst.name.clone(),
        tagged_project: inst.user_config("repoman.project").map(str::to_owned),
        this_estate: estate.is_some() && inst.user_config("repoman.estate") == estate,
        registered_without_container,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::desired::ImageOrigin;
    use std::path::PathBuf;

    fn desired() -> Desired {
        let mut devices = BTreeMap::new();
        devices.insert(
            "repo".to_owned(),
            BTreeMap::from([
                ("type".to_owned(), "disk".to_owned()),
                ("source".to_owned(), "/r/a".to_owned()),
                ("path".to_owned(), "/home/dev/a".to_owned()),
            ]),
        );
        let config = BTreeMap::from([
            ("raw.idmap".to_owned(), "both 1000 1000".to_owned()),
            ("user.repoman.project".to_owned(), "a".to_owned()),
            ("user.repoman.image".to_owned(), "img".to_owned()),
            ("environment.X".to_owned(), "1".to_owned()),
        ]);
        Desired {
            name: "a".into(),
            incus_project: "p".into(),
            repo_dir: "a".into(),
            repo_path: PathBuf::from("/r/a"),
            mount_path: "/home/dev/a".into(),
            home: "/home/dev".into(),
            uid: 1000,
            gid: 1000,
            user: "dev".into(),
            image: "img".into(),
            image_origin: ImageOrigin::Defaults,
            profiles: vec!["default".into()],
            devices,
            config,
            mount_sources: vec![],
        }
    }

    fn instance_of(d: &Desired) -> Instance {
        let mut i = Instance {
            name: d.name.clone(),
            ..Default::default()
        };
        i.devices = d.devices.clone();
        i.profiles = d.profiles.clone();
        i.config = d.config.clone();
        i.config.insert("volatile.base_image".into(), "abc".into());
        i
    }

    #[test]
    fn identical_instance_has_no_drift_and_incus_keys_are_ignored() {
        let d = desired();
        let mut i = instance_of(&d);
        i.devices
            .get_mut("repo")
            .unwrap()
            .insert("readonly".into(), "false".into());
        assert!(diff(&d, &i).is_empty(), "{:?}", diff(&d, &i));
    }

    #[test]
    fn old_shift_mount_and_missing_idmap_are_drift() {
        let d = desired();
        let mut actual = instance_of(&d);
        actual
            .devices
            .get_mut("repo")
            .unwrap()
            .insert("shift".to_owned(), "true".to_owned());
        actual.config.remove("raw.idmap");
        let changes = diff(&d, &actual);
        assert_eq!(changes.len(), 2, "{changes:?}");
        let text: Vec<String> = changes.iter().map(Change::describe).collect();
        assert!(text.iter().any(|t| t.contains("shift")), "{text:?}");
        assert!(text.iter().any(|t| t.contains("raw.idmap")), "{text:?}");
        // Both are security drift, labelled in the text and in --json.
        assert!(changes.iter().all(|c| c.security().is_some()), "{text:?}");
        assert!(text.iter().all(|t| t.contains("[security: ")), "{text:?}");
        let drift = reconcile(
            &[Expected {
                name: "a".into(),
                container: true,
                desired: Ok(d.clone()),
            }],
            &[actual],
            None,
        );
        assert!(
            drift[0].summary().contains("SECURITY drift"),
            "{}",
            drift[0].summary()
        );
        let v = serde_json::to_value(&drift[0]).unwrap();
        assert_eq!(v["kind"], "config");
        assert_eq!(v["security"], true);
        assert!(v["changes"][0]["security"].is_string(), "{v}");
        assert!(v["changes"][0]["kind"].is_string(), "{v}");
    }

    #[test]
    fn missing_limits_and_guest_api_are_security_drift_other_drift_is_not() {
        let mut d = desired();
        d.config.insert("limits.processes".into(), "2000".into());
        d.config.insert("limits.memory".into(), "50%".into());
        d.config.insert("security.guestapi".into(), "false".into());
        let mut actual = instance_of(&d);
        actual.config.remove("limits.processes");
        actual.config.insert("limits.memory".into(), "90%".into());
        actual.config.remove("security.guestapi");
        actual.config.insert("environment.X".into(), "2".into());
        let changes = diff(&d, &actual);
        let sec: Vec<(&str, bool)> = changes
            .iter()
            .map(|c| match c {
                Change::SetConfig { key, .. } => (key.as_str(), c.security().is_some()),
                _ => ("?", false),
            })
            .collect();
        assert_eq!(
            sec,
            [
                ("environment.X", false),
                ("limits.memory", true),
                ("limits.processes", true),
                ("security.guestapi", true)
            ]
        );
        // Only ordinary drift: not security drift.
        let mut d2 = desired();
        d2.name = "b".into();
        let mut other = instance_of(&d2);
        other.config.insert("environment.X".into(), "2".into());
        let drift = reconcile(
            &[Expected {
                name: "b".into(),
                container: true,
                desired: Ok(d2),
            }],
            &[other],
            None,
        );
        assert!(matches!(
            drift[0],
            Drift::Config {
                security: false,
                ..
            }
        ));
        assert!(drift[0].summary().contains(": config drift"));
    }

    #[test]
    fn removed_device_changed_env_and_profiles_are_reported() {
        let d = desired();
        let mut i = instance_of(&d);
        i.devices.remove("repo");
        i.devices.insert(
            "gpu".into(),
            BTreeMap::from([("type".into(), "gpu".into())]),
        );
        i.config.insert("environment.X".into(), "2".into());
        i.config.insert("environment.Y".into(), "3".into());
        i.profiles.push("extra".into());
        i.config.insert("user.repoman.image".into(), "old".into());
        let changes = diff(&d, &i);
        let lines: Vec<String> = changes.iter().map(Change::describe).collect();
        assert_eq!(changes.len(), 6, "{lines:#?}");
        assert!(
            lines
                .iter()
                .any(|l| l.starts_with("+ device repo: type=disk source=/r/a"))
        );
        assert!(lines.iter().any(|l| l
            == "- device gpu: type=gpu  [security: a host device handed to the container by hand]"));
        assert!(lines.iter().any(|l| l == "~ config environment.X: 2 -> 1"));
        assert!(lines.iter().any(|l| l == "- config environment.Y=3"));
        assert!(
            lines
                .iter()
                .any(|l| l == "~ profiles: [default, extra] -> [default]")
        );
        assert!(changes.iter().any(|c| !c.reapplicable()));
    }

    #[test]
    fn reconcile_finds_missing_orphans_and_config() {
        let d = desired();
        let mut drifted = d.clone();
        drifted.name = "b".into();
        let mut inst_b = instance_of(&drifted);
        inst_b.profiles = vec![];
        let mut stray = Instance {
            name: "stray".into(),
            ..Default::default()
        };
        stray
            .config
            .insert("user.repoman.estate".into(), "e".into());
        let nocont = Instance {
            name: "nc".into(),
            ..Default::default()
        };
        let expected = vec![
            Expected {
                name: "a".into(),
                container: true,
                desired: Ok(d.clone()),
            },
            Expected {
                name: "b".into(),
                container: true,
                desired: Ok(drifted),
            },
            Expected {
                name: "nc".into(),
                container: false,
                desired: Err("n/a".into()),
            },
            Expected {
                name: "none".into(),
                container: false,
                desired: Err("n/a".into()),
            },
        ];
        let drift = reconcile(&expected, &[inst_b, stray, nocont], Some("e"));
        let kinds: Vec<(&str, &str)> = drift.iter().map(|d| (d.name(), d.kind())).collect();
        assert_eq!(
            kinds,
            [
                ("a", "missing"),
                ("b", "config"),
                ("nc", "orphan"),
                ("stray", "orphan")
            ]
        );
        assert!(matches!(
            &drift[3],
            Drift::Orphan {
                this_estate: true,
                ..
            }
        ));
        assert!(matches!(
            &drift[2],
            Drift::Orphan {
                registered_without_container: true,
                ..
            }
        ));
    }
}
