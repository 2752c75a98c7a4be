//! Serde types mirroring Incus' `shared/api` for the fields repoman uses.
//!
//! Decoding is tolerant: unknown fields are ignored and missing ones take their default, so a newer
//! server with more fields (or an older one with fewer) still decodes. Config and device values are
//! `String`s on the wire in both directions: Incus rejects `"limits.cpu": 2` but accepts `"2"`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// `config` maps: every value is a string.
pub type Config = BTreeMap<String, String>;

/// One device: its keys (`type`, `source`, `path`, `shift`, ...), values as strings.
pub type Device = BTreeMap<String, String>;

/// The devices of an instance or profile, by device name.
pub type Devices = BTreeMap<String, Device>;

/// The envelope every answer comes in (`api.Response`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Envelope {
    #[serde(rename = "type")]
    pub kind: String,
    pub status: String,
    pub status_code: i64,
    pub operation: String,
    pub error_code: i64,
    pub error: String,
    pub metadata: serde_json::Value,
}

/// `GET /1.0` (`api.Server`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct ServerInfo {
    pub api_extensions: Vec<String>,
    pub api_status: String,
    pub api_version: String,
    /// `trusted` or `untrusted`.
    pub auth: String,
    pub auth_methods: Vec<String>,
    pub auth_user_name: String,
    pub auth_user_method: String,
    pub public: bool,
    pub config: BTreeMap<String, serde_json::Value>,
    pub environment: ServerEnvironment,
}

impl ServerInfo {
    /// Whether the server advertises this API extension.
    pub fn has_extension(&self, name: &str) -> bool {
        self.api_extensions.iter().any(|e| e == name)
    }
}

/// `api.ServerEnvironment` (only present when trusted).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct ServerEnvironment {
    pub architectures: Vec<String>,
    pub driver: String,
    pub driver_version: String,
    pub firewall: String,
    pub kernel: String,
    pub kernel_architecture: String,
    pub kernel_version: String,
    pub os_name: String,
    pub os_version: String,
    pub project: String,
    pub server: String,
    pub server_clustered: bool,
    pub server_name: String,
    pub server_pid: i64,
    pub server_version: String,
    pub storage: String,
    pub storage_version: String,
}

/// A project (`api.Project`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Project {
    pub name: String,
    pub description: String,
    pub config: Config,
    pub used_by: Vec<String>,
}

/// A profile (`api.Profile`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Profile {
    pub name: String,
    pub description: String,
    pub config: Config,
    pub devices: Devices,
    pub used_by: Vec<String>,
    pub project: String,
}

/// The writable part of a profile (`api.ProfilePut`), for `PUT /1.0/profiles/{name}`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct ProfilePut {
    pub description: String,
    pub config: Config,
    pub devices: Devices,
}

/// An image alias (`api.ImageAliasesEntry`): `target` is the image fingerprint.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct ImageAlias {
    pub name: String,
    pub description: String,
    pub target: String,
    #[serde(rename = "type")]
    pub kind: String,
}

/// An instance (`api.Instance`; with `recursion=2` also its `state`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Instance {
    pub name: String,
    pub description: String,
    /// `Running`, `Stopped`, `Frozen`, `Error`, ...
    pub status: String,
    pub status_code: i64,
    /// `container` or `virtual-machine`.
    #[serde(rename = "type")]
    pub kind: String,
    pub architecture: String,
    pub config: Config,
    pub devices: Devices,
    pub expanded_config: Config,
    pub expanded_devices: Devices,
    pub profiles: Vec<String>,
    pub ephemeral: bool,
    pub stateful: bool,
    pub project: String,
    pub location: String,
    pub created_at: String,
    pub last_used_at: String,
    /// Only filled by `recursion=2` listings.
    pub state: Option<InstanceState>,
}

impl Instance {
    /// Whether the instance is running.
    pub fn is_running(&self) -> bool {
        self.status == "Running"
    }

    /// A `user.*` config value (the tags repoman puts on its instances), by key without `user.`.
    pub fn user_config(&self, key: &str) -> Option<&str> {
        self.config.get(&format!("user.{key}")).map(String::as_str)
    }
}

/// The writable parts of an instance that [`crate::ProjectScope::edit_instance`] hands to its
/// closure: the instance's own config and devices (not those expanded from profiles).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InstanceEdit {
    pub description: String,
    pub config: Config,
    pub devices: Devices,
    pub profiles: Vec<String>,
}

/// The runtime state of an instance (`api.InstanceState`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct InstanceState {
    pub status: String,
    pub status_code: i64,
    pub pid: i64,
    pub processes: i64,
    pub network: Option<BTreeMap<String, NetworkState>>,
    pub started_at: Option<String>,
}

impl InstanceState {
    /// The global IPv4 addresses of all interfaces except `lo`.
    pub fn ipv4(&self) -> Vec<String> {
        self.addresses("inet")
    }

    /// The global IPv6 addresses of all interfaces except `lo`.
    pub fn ipv6(&self) -> Vec<String> {
        self.addresses("inet6")
    }

    fn addresses(&self, family: &str) -> Vec<String> {
        let Some(network) = &self.network else {
            return Vec::new();
        };
        network
            .iter()
            .filter(|(name, _)| name.as_str() != "lo")
            .flat_map(|(_, n)| n.addresses.iter())
            .filter(|a| a.family == family && a.scope == "global")
            .map(|a| a.address.clone())
            .collect()
    }
}

/// One network interface in [`InstanceState`].
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct NetworkState {
    pub addresses: Vec<NetworkAddress>,
    pub host_name: String,
    pub hwaddr: String,
    pub mtu: i64,
    pub state: String,
    #[serde(rename = "type")]
    pub kind: String,
}

/// One address of an interface.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct NetworkAddress {
    pub family: String,
    pub address: String,
    pub netmask: String,
    pub scope: String,
}

/// A background operation (`api.Operation`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Operation {
    pub id: String,
    pub class: String,
    pub description: String,
    pub created_at: String,
    pub updated_at: String,
    pub status: String,
    /// 1xx while pending/running, 200 success, 400 failure, 401 cancelled.
    pub status_code: i64,
    pub resources: Option<BTreeMap<String, Vec<String>>>,
    pub metadata: Option<serde_json::Value>,
    pub may_cancel: bool,
    pub err: String,
    pub location: String,
}

impl Operation {
    /// Whether the operation reached a final state (success, failure or cancelled).
    pub fn is_final(&self) -> bool {
        self.status_code >= 200
    }

    /// Incus' progress text, if the operation reports one (keys ending in `_progress`, e.g.
    /// `download_progress: "rootfs: 45% (12.3MB/s)"`).
    pub fn progress(&self) -> Option<&str> {
        let map = self.metadata.as_ref()?.as_object()?;
        map.iter()
            .find(|(k, v)| k.ends_with("_progress") && v.is_string())
            .and_then(|(_, v)| v.as_str())
    }

    /// The structured progress Incus sends next to the text (`metadata.progress`: `stage`, and
    /// `percent`, `processed` bytes and `speed` in bytes/s when known; all strings on the wire).
    pub fn progress_data(&self) -> Option<OperationProgress> {
        let p = self.metadata.as_ref()?.get("progress")?.as_object()?;
        let num = |k: &str| {
            p.get(k).and_then(|v| {
                v.as_str()
                    .and_then(|s| s.parse().ok())
                    .or_else(|| v.as_u64())
            })
        };
        Some(OperationProgress {
            stage: p.get("stage")?.as_str()?.to_owned(),
            percent: num("percent"),
            processed: num("processed"),
            speed: num("speed"),
        })
    }
}

/// [`Operation::progress_data`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OperationProgress {
    /// What is being done, e.g. `download` or `create_instance_from_image_unpack`.
    pub stage: String,
    pub percent: Option<u64>,
    /// Bytes done so far.
    pub processed: Option<u64>,
    /// Bytes per second.
    pub speed: Option<u64>,
}

/// `POST /1.0/instances` body (`api.InstancesPost`).
#[derive(Debug, Clone, Default, Serialize)]
pub(crate) struct InstancesPost {
    pub name: String,
    pub description: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub profiles: Vec<String>,
    pub config: Config,
    pub devices: Devices,
    pub ephemeral: bool,
    pub source: InstanceSource,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub start: bool,
}

/// Where an instance's root filesystem comes from (`api.InstanceSource`).
#[derive(Debug, Clone, Default, Serialize)]
pub(crate) struct InstanceSource {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub alias: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub fingerprint: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub server: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub protocol: String,
}

/// `PUT /1.0/instances/{name}/state` body (`api.InstanceStatePut`).
#[derive(Debug, Clone, Serialize)]
pub(crate) struct InstanceStatePut {
    pub action: &'static str,
    pub timeout: i64,
    pub force: bool,
    pub stateful: bool,
}

/// `POST /1.0/instances/{name}/exec` body (`api.InstanceExecPost`).
#[derive(Debug, Clone, Serialize)]
pub(crate) struct InstanceExecPost {
    pub command: Vec<String>,
    pub environment: BTreeMap<String, String>,
    #[serde(rename = "wait-for-websocket")]
    pub wait_for_websocket: bool,
    pub interactive: bool,
    #[serde(rename = "record-output")]
    pub record_output: bool,
    pub user: u32,
    pub group: u32,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub cwd: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_and_missing_fields_are_tolerated() {
        let json = r#"{"name":"c1","status":"Running","brand_new_field":{"x":1},
                       "config":{"user.repoman.project":"p"}}"#;
        let inst: Instance = serde_json::from_str(json).unwrap();
        assert_eq!(inst.name, "c1");
        assert!(inst.is_running());
        assert_eq!(inst.user_config("repoman.project"), Some("p"));
        assert!(inst.devices.is_empty());
        assert!(inst.state.is_none());
    }

    #[test]
    fn ipv4_skips_loopback_and_link_local() {
        let json = r#"{"network":{
            "lo":{"addresses":[{"family":"inet","address":"127.0.0.1","scope":"local"}]},
            "eth0":{"addresses":[{"family":"inet","address":"10.1.2.3","scope":"global"},
                                 {"family":"inet6","address":"fe80::1","scope":"link"}]}}}"#;
        let state: InstanceState = serde_json::from_str(json).unwrap();
        assert_eq!(state.ipv4(), vec!["10.1.2.3".to_owned()]);
        assert!(state.ipv6().is_empty());
    }

    #[test]
    fn operation_progress_text() {
        let op: Operation = serde_json::from_str(
            r#"{"status_code":103,"metadata":{"download_progress":"rootfs: 45% (12.3MB/s)"}}"#,
        )
        .unwrap();
        assert_eq!(op.progress(), Some("rootfs: 45% (12.3MB/s)"));
        assert!(!op.is_final());
        assert_eq!(Operation::default().progress(), None);
        assert_eq!(op.progress_data(), None);
        let op: Operation = serde_json::from_str(
            r#"{"status_code":103,"metadata":{"download_progress":"rootfs: 2.00MB (1.00MB/s)","progress":{"stage":"download","processed":"2000000","speed":"1000000"}}}"#,
        )
        .unwrap();
        assert_eq!(
            op.progress_data(),
            Some(OperationProgress {
                stage: "download".into(),
                percent: None,
                processed: Some(2_000_000),
                speed: Some(1_000_000),
            })
        );
    }

    #[test]
    fn requests_send_config_values_as_strings() {
        let mut post = InstancesPost {
            name: "c".into(),
            ..Default::default()
        };
        post.config.insert("limits.cpu".into(), "2".into());
        let v = serde_json::to_value(&post).unwrap();
        assert_eq!(v["config"]["limits.cpu"], serde_json::json!("2"));
        assert!(
            v.get("start").is_none(),
            "start=false is omitted for older servers"
        );
    }
}
