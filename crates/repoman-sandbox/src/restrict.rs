//! The restricted Incus project (issue 11, docs/security.md "The restricted Incus project"):
//! the `restricted.*` keys `repoman setup` gives repoman's Incus project, so that a bug in
//! repoman (or a hostile `.repoman.toml` that got past the trust and mount-source checks) cannot
//! make the server do what must never happen: a privileged or nested container, raw LXC config,
//! a disk from outside the estate, an id map of anything but the host user, or a host device.
//!
//! Verified on Incus 6.0.4: with these keys the server refuses a disk with source `/etc`,
//! `security.privileged=true`, `security.nesting=true` and `raw.idmap "both 0 0"`, and refuses to
//! start a sandbox whose disk under an allowed path still has `shift=true` (an old sandbox starts
//! again once `repoman update` migrated it).
//!
//! Pure: [`wanted`] computes the keys from the registry and the host user, [`deviations`]
//! compares them with a project's config (what `status` reports and `setup` re-tightens).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use repoman_core::identity::HostUser;
use repoman_core::registry::MountRoot;
use serde::Serialize;

/// Device types the restricted project blocks unless `[defaults] allow_devices` lists them (the
/// same the pre-start check guards).
pub const BLOCKABLE_DEVICES: &[&str] = crate::hardening::GUARDED_DEVICE_TYPES;

/// The key listing where disk devices may come from.
pub const DISK_PATHS: &str = "restricted.devices.disk.paths";

/// What the restrictions are computed from.
#[derive(Debug, Clone)]
pub struct Inputs<'a> {
    /// `local_repos` (every project's repo is under it).
    pub local_repos: Option<&'a Path>,
    /// The host registry's `[[mount_root]]`s.
    pub mount_roots: &'a [MountRoot],
    /// `[defaults] allow_devices`.
    pub allow_devices: &'a [String],
    /// The host user whose ids sandboxes map (root: no id may be mapped).
    pub user: &'a HostUser,
    /// The host user's home (for `~` in `[[mount_root]]`).
    pub user_home: Option<&'a Path>,
    /// repoman's runtime directory (the agents' endpoint directories live under `agents/`).
    pub runtime_dir: Option<&'a Path>,
}

/// The host directories disk devices may come from: `local_repos`, every `[[mount_root]]`,
/// and the agents' endpoint directories, each in its lexical and canonical form (Incus compares
/// the device's source as given, then opens it without following links out of the root).
pub fn disk_paths(i: &Inputs<'_>) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = Vec::new();
    let mut add = |p: &Path| {
        for f in crate::mount_policy::both_forms(p) {
            if !out.contains(&f) {
                out.push(f);
            }
        }
    };
    if let Some(l) = i.local_repos {
        add(l);
    }
    for r in i.mount_roots {
        if let Some(p) =
            crate::mount_policy::expand_home(&r.path, i.user_home).filter(|p| p.is_absolute())
        {
            add(&p);
        }
    }
    if let Some(run) = i.runtime_dir {
        add(&run.join("agents"));
    }
    out
}

/// The `restricted.*` keys repoman's Incus project should have.
pub fn wanted(i: &Inputs<'_>) -> BTreeMap<String, String> {
    let mut m = BTreeMap::new();
    let mut set = |k: &str, v: String| {
        m.insert(k.to_owned(), v);
    };
    set("restricted", "true".into());
    set("restricted.containers.privilege", "unprivileged".into());
    set("restricted.containers.nesting", "block".into());
    set("restricted.containers.lowlevel", "block".into());
    set("restricted.devices.disk", "allow".into());
    set(
        DISK_PATHS,
        disk_paths(i)
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(","),
    );
    // Root is never mapped into a sandbox: without an unprivileged host user no id is allowed
    // (an empty list allows none).
    let (uid, gid) = if i.user.uid == 0 || i.user.gid == 0 {
        (String::new(), String::new())
    } else {
        (i.user.uid.to_string(), i.user.gid.to_string())
    };
    set("restricted.idmap.uid", uid);
    set("restricted.idmap.gid", gid);
    let allow = i.allow_devices;
    for d in BLOCKABLE_DEVICES {
        let v = if allow.iter().any(|a| a == d) {
            "allow"
        } else {
            "block"
        };
        set(&format!("restricted.devices.{d}"), v.into());
    }
    m
}

/// How one key of the project differs from what repoman sets.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Deviation {
    pub key: String,
    /// The project's value (`None`: unset, which for most keys means "allow").
    pub have: Option<String>,
    pub want: String,
    /// `true` when the project allows more than repoman sets (loosened), `false` when it only
    /// differs in a way that can make sandboxes fail (e.g. a disk path missing).
    pub looser: bool,
}

impl Deviation {
    pub fn describe(&self) -> String {
        let have = self.have.as_deref().unwrap_or("(unset)");
        if self.looser {
            format!(
                "Incus project restriction `{}` is {have:?}, looser than repoman's {:?}",
                self.key, self.want
            )
        } else {
            format!(
                "Incus project restriction `{}` is {have:?}, repoman sets {:?}",
                self.key, self.want
            )
        }
    }
}

fn paths_of(v: &str) -> Vec<&str> {
    v.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect()
}

/// Compare a project's config with [`wanted`]: every key that differs, marked looser or not.
pub fn deviations(
    have: &BTreeMap<String, String>,
    want: &BTreeMap<String, String>,
) -> Vec<Deviation> {
    let mut out = Vec::new();
    for (key, w) in want {
        let h = have.get(key);
        let differs = match key.as_str() {
            // Order does not matter for lists.
            DISK_PATHS | "restricted.idmap.uid" | "restricted.idmap.gid" => {
                let mut a = h.map(|v| paths_of(v)).unwrap_or_default();
                let mut b = paths_of(w);
                a.sort_unstable();
                b.sort_unstable();
                a.dedup();
                b.dedup();
                h.is_none() || a != b
            }
            _ => h != Some(w),
        };
        if !differs {
            continue;
        }
        let looser = match (key.as_str(), h) {
            (_, None) => true,
            (DISK_PATHS | "restricted.idmap.uid" | "restricted.idmap.gid", Some(h)) => {
                let wanted = paths_of(w);
                paths_of(h).iter().any(|p| !wanted.contains(p))
            }
            (_, Some(h)) => match w.as_str() {
                "true" => h != "true",
                "block" => h != "block",
                "unprivileged" => h != "unprivileged",
                // Repoman allows it; anything else is stricter.
                _ => false,
            },
        };
        out.push(Deviation {
            key: key.clone(),
            have: h.cloned(),
            want: w.clone(),
            looser,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(uid: u32) -> HostUser {
        HostUser {
            name: "dev".into(),
            uid,
            gid: uid,
        }
    }

    #[test]
    fn the_keys_cover_the_estate_and_only_the_host_user() {
        let roots = [MountRoot {
            path: "~/datasets".into(),
            writable: false,
        }];
        let u = user(1000);
        let i = Inputs {
            local_repos: Some(Path::new("/srv/repos")),
            mount_roots: &roots,
            allow_devices: &[],
            user: &u,
            user_home: Some(Path::new("/home/dev")),
            runtime_dir: Some(Path::new("/run/user/1000/repoman")),
        };
        let w = wanted(&i);
        assert_eq!(w["restricted"], "true");
        assert_eq!(w["restricted.containers.nesting"], "block");
        assert_eq!(w["restricted.containers.lowlevel"], "block");
        assert_eq!(w["restricted.containers.privilege"], "unprivileged");
        assert_eq!(
            w[DISK_PATHS],
            "/srv/repos,/home/dev/datasets,/run/user/1000/repoman/agents"
        );
        assert_eq!(w["restricted.idmap.uid"], "1000");
        for d in BLOCKABLE_DEVICES {
            assert_eq!(w[&format!("restricted.devices.{d}")], "block", "{d}");
        }
        let gpu = ["gpu".to_owned()];
        let i = Inputs {
            allow_devices: &gpu,
            ..i
        };
        assert_eq!(wanted(&i)["restricted.devices.gpu"], "allow");
        // Root maps nothing.
        let root = user(0);
        let i = Inputs { user: &root, ..i };
        assert_eq!(wanted(&i)["restricted.idmap.uid"], "");
    }

    #[test]
    fn loosened_and_outdated_keys_are_told_apart() {
        let want = BTreeMap::from([
            ("restricted".to_owned(), "true".to_owned()),
            (
                "restricted.containers.nesting".to_owned(),
                "block".to_owned(),
            ),
            (DISK_PATHS.to_owned(), "/srv/repos,/run/a".to_owned()),
            ("restricted.devices.gpu".to_owned(), "allow".to_owned()),
        ]);
        let same = BTreeMap::from([
            ("restricted".to_owned(), "true".to_owned()),
            (
                "restricted.containers.nesting".to_owned(),
                "block".to_owned(),
            ),
            (DISK_PATHS.to_owned(), "/run/a, /srv/repos".to_owned()),
            ("restricted.devices.gpu".to_owned(), "allow".to_owned()),
        ]);
        assert!(deviations(&same, &want).is_empty());

        let mut loose = same.clone();
        loose.insert("restricted.containers.nesting".into(), "allow".into());
        loose.insert(DISK_PATHS.into(), "/srv/repos,/run/a,/".into());
        loose.remove("restricted");
        let d = deviations(&loose, &want);
        assert_eq!(d.len(), 3, "{d:?}");
        assert!(d.iter().all(|d| d.looser), "{d:?}");

        let mut stricter = same;
        stricter.insert(DISK_PATHS.into(), "/srv/repos".into());
        stricter.insert("restricted.devices.gpu".into(), "block".into());
        let d = deviations(&stricter, &want);
        assert_eq!(d.len(), 2, "{d:?}");
        assert!(d.iter().all(|d| !d.looser), "{d:?}");
        assert!(
            d[0].describe().contains("repoman sets"),
            "{}",
            d[0].describe()
        );
    }
}
