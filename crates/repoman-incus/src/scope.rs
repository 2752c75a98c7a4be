//! Calls inside one Incus project: profiles, image aliases, instances, devices, exec and files.
//!
//! A [`ProjectScope`] is a client handle plus a project name; every request it sends carries
//! `?project=<name>`. Device changes are read-modify-write with the instance's `ETag`
//! (`If-Match`), so a concurrent change by someone else fails with [`IncusError::Conflict`]
//! (HTTP 412) instead of being silently overwritten.

use std::time::Duration;

use serde_json::Value;

use crate::api::{
    Device, Devices, ImageAlias, Instance, InstanceEdit, InstanceExecPost, InstanceSource,
    InstanceState, InstanceStatePut, InstancesPost, Operation, Profile, ProfilePut,
};
use crate::client::{Incus, check_envelope, decode, enc, parse_envelope};
use crate::error::{IncusError, Result};
use crate::spec::{
    ExecOutput, ExecSpec, FileKind, FileMode, ImageSource, InstanceSpec, PulledFile, Terminal,
};
use crate::transport::Method;

/// How many instance states [`ProjectScope::instance_states`] fetches at once: a few requests in
/// flight hide the round trips; more would only queue on the server's CPU.
const STATE_PARALLELISM: usize = 4;

/// Calls scoped to one project. Cheap to clone.
#[derive(Debug, Clone)]
pub struct ProjectScope {
    incus: Incus,
    name: String,
}

impl ProjectScope {
    pub(crate) fn new(incus: Incus, name: String) -> Self {
        Self { incus, name }
    }

    /// The project name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The underlying client.
    pub fn client(&self) -> &Incus {
        &self.incus
    }

    /// The same scope watching a cancel token (see [`Incus::with_cancel`]).
    pub fn with_cancel(&self, cancel: &repoman_core::Cancel) -> ProjectScope {
        ProjectScope {
            incus: self.incus.with_cancel(cancel),
            name: self.name.clone(),
        }
    }

    /// The same scope reporting running operations (see [`Incus::with_reporter`]).
    pub fn with_reporter(&self, reporter: std::sync::Arc<dyn crate::Reporter>) -> ProjectScope {
        ProjectScope {
            incus: self.incus.with_reporter(reporter),
            name: self.name.clone(),
        }
    }

    /// The same scope with another operation deadline (e.g. a long image download).
    pub fn with_operation_timeout(&self, d: Duration) -> ProjectScope {
        ProjectScope {
            incus: self.incus.with_operation_timeout(d),
            name: self.name.clone(),
        }
    }

    /// `path` with this project appended to the query.
    fn url(&self, path: &str) -> String {
        let sep = if path.contains('?') { '&' } else { '?' };
        format!("{path}{sep}project={}", enc(&self.name))
    }

    pub(crate) fn instance_url(&self, name: &str, rest: &str) -> String {
        self.url(&format!("/1.0/instances/{}{rest}", enc(name)))
    }

    // --- profiles ---------------------------------------------------------------------------

    /// Create a profile.
    pub fn create_profile(&self, name: &str, profile: &ProfilePut) -> Result<()> {
        let body = serde_json::json!({
            "name": name,
            "description": profile.description,
            "config": profile.config,
            "devices": profile.devices,
        });
        self.incus
            .mutate(Method::Post, &self.url("/1.0/profiles"), Some(&body))?;
        Ok(())
    }

    /// One profile.
    pub fn get_profile(&self, name: &str) -> Result<Profile> {
        self.incus
            .get(&self.url(&format!("/1.0/profiles/{}", enc(name))))
    }

    /// One profile, or `None` when it does not exist.
    pub fn find_profile(&self, name: &str) -> Result<Option<Profile>> {
        match self.get_profile(name) {
            Ok(p) => Ok(Some(p)),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// All profiles of the project.
    pub fn list_profiles(&self) -> Result<Vec<Profile>> {
        self.incus.get(&self.url("/1.0/profiles?recursion=1"))
    }

    /// Replace a profile's description, config and devices.
    pub fn update_profile(&self, name: &str, profile: &ProfilePut) -> Result<()> {
        let path = self.url(&format!("/1.0/profiles/{}", enc(name)));
        self.incus.mutate(Method::Put, &path, Some(profile))?;
        Ok(())
    }

    /// Add or replace one device of a profile (read-modify-write under the profile's ETag).
    pub fn set_profile_device(&self, profile: &str, device: &str, value: Device) -> Result<()> {
        let path = self.url(&format!("/1.0/profiles/{}", enc(profile)));
        let (mut current, etag): (ProfilePut, String) = self.incus.get_with_etag(&path)?;
        current.devices.insert(device.to_owned(), value);
        self.incus.mutate_with(
            Method::Put,
            &path,
            Some(&current),
            if_match(&etag),
            self.incus.timeouts().operation,
        )?;
        Ok(())
    }

    /// Delete a profile (Incus refuses while instances use it).
    pub fn delete_profile(&self, name: &str) -> Result<()> {
        let path = self.url(&format!("/1.0/profiles/{}", enc(name)));
        self.incus.mutate::<()>(Method::Delete, &path, None)?;
        Ok(())
    }

    // --- images -----------------------------------------------------------------------------

    /// Look up an image alias (in this project, or the default project's store when the project
    /// has `features.images=false`).
    pub fn get_image_alias(&self, alias: &str) -> Result<ImageAlias> {
        self.incus
            .get(&self.url(&format!("/1.0/images/aliases/{}", enc(alias))))
    }

    /// The full fingerprint an alias points to.
    pub fn resolve_image_alias(&self, alias: &str) -> Result<String> {
        Ok(self.get_image_alias(alias)?.target)
    }

    /// Fingerprints of the images visible in the project.
    pub fn list_image_fingerprints(&self) -> Result<Vec<String>> {
        let urls: Vec<String> = self.incus.get(&self.url("/1.0/images"))?;
        Ok(urls.iter().filter_map(|u| last_segment(u)).collect())
    }

    /// Delete an image by fingerprint.
    pub fn delete_image(&self, fingerprint: &str) -> Result<()> {
        let path = self.url(&format!("/1.0/images/{}", enc(fingerprint)));
        self.incus.mutate::<()>(Method::Delete, &path, None)?;
        Ok(())
    }

    // --- instances --------------------------------------------------------------------------

    /// Create an instance (and start it when `spec.start`), waiting for the operation(s); returns
    /// the instance as Incus stored it.
    pub fn create_instance(&self, spec: &InstanceSpec) -> Result<Instance> {
        if spec
            .devices
            .values()
            .any(|d| d.get("shift").is_some_and(|v| v == "true"))
        {
            self.incus
                .require_extension("container_disk_shift", "use idmapped (shift) mounts")?;
        }
        let source = match &spec.source {
            ImageSource::Alias(alias) => InstanceSource {
                kind: "image".into(),
                alias: alias.clone(),
                ..Default::default()
            },
            ImageSource::Fingerprint(fp) => InstanceSource {
                kind: "image".into(),
                fingerprint: fp.clone(),
                ..Default::default()
            },
            ImageSource::Remote {
                server,
                protocol,
                alias,
            } => InstanceSource {
                kind: "image".into(),
                alias: alias.clone(),
                server: server.clone(),
                protocol: protocol.clone(),
                ..Default::default()
            },
        };
        // Older servers ignore `start`; then we start in a second operation.
        let start_in_create =
            spec.start && self.incus.server().has_extension("instance_create_start");
        let body = InstancesPost {
            name: spec.name.clone(),
            description: spec.description.clone(),
            kind: spec.kind.clone(),
            profiles: if spec.profiles.is_empty() {
                vec!["default".to_owned()]
            } else {
                spec.profiles.clone()
            },
            config: spec.config.clone(),
            devices: spec.devices.clone(),
            ephemeral: spec.ephemeral,
            source,
            start: start_in_create,
        };
        self.incus
            .mutate(Method::Post, &self.url("/1.0/instances"), Some(&body))?;
        if spec.start && !start_in_create {
            self.start(&spec.name)?;
        }
        self.get_instance(&spec.name)
    }

    /// Replace a stopped instance's root filesystem with a fresh one from `source`
    /// (`POST /1.0/instances/{name}/rebuild`); its config, devices and profiles are kept. Waits
    /// with [`crate::IMAGE_OPERATION_TIMEOUT`] unless the scope's operation deadline is longer.
    pub fn rebuild_instance(&self, name: &str, source: &ImageSource) -> Result<()> {
        self.incus.require_extension(
            "instances_rebuild",
            "rebuild a container from another image",
        )?;
        let source = match source {
            // Unlike creation, rebuild does not fall back from an unknown alias to a fingerprint:
            // resolve the alias here (a local reference that is not an alias is a fingerprint).
            ImageSource::Alias(alias) => InstanceSource {
                kind: "image".into(),
                fingerprint: match self.resolve_image_alias(alias) {
                    Ok(f) => f,
                    Err(e) if e.is_not_found() => alias.clone(),
                    Err(e) => return Err(e),
                },
                ..Default::default()
            },
            ImageSource::Fingerprint(fp) => InstanceSource {
                kind: "image".into(),
                fingerprint: fp.clone(),
                ..Default::default()
            },
            ImageSource::Remote {
                server,
                protocol,
                alias,
            } => InstanceSource {
                kind: "image".into(),
                alias: alias.clone(),
                server: server.clone(),
                protocol: protocol.clone(),
                ..Default::default()
            },
        };
        let timeout = self
            .incus
            .timeouts()
            .operation
            .max(crate::IMAGE_OPERATION_TIMEOUT);
        self.incus.mutate_with(
            Method::Post,
            &self.instance_url(name, "/rebuild"),
            Some(&serde_json::json!({ "source": source })),
            Vec::new(),
            timeout,
        )?;
        Ok(())
    }

    /// One instance (config, devices, status; no runtime state).
    pub fn get_instance(&self, name: &str) -> Result<Instance> {
        self.incus.get(&self.instance_url(name, ""))
    }

    /// One instance, or `None` when it does not exist.
    pub fn find_instance(&self, name: &str) -> Result<Option<Instance>> {
        match self.get_instance(name) {
            Ok(i) => Ok(Some(i)),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// All instances with config, devices and status (`recursion=1`: fast, no runtime state).
    pub fn list_instances(&self) -> Result<Vec<Instance>> {
        self.incus.get(&self.url("/1.0/instances?recursion=1"))
    }

    /// All instances with their runtime state (`recursion=2`, what `incus list` does). State is
    /// expensive: 25-45 ms of server CPU per running instance (the server already gathers 4 at a
    /// time). Prefer [`ProjectScope::list_instances`] and fetch state only for the instances that
    /// need it ([`ProjectScope::instance_states`]).
    pub fn list_instances_with_state(&self) -> Result<Vec<Instance>> {
        self.incus.get(&self.url("/1.0/instances?recursion=2"))
    }

    /// The runtime state of one instance.
    pub fn instance_state(&self, name: &str) -> Result<InstanceState> {
        self.incus.get(&self.instance_url(name, "/state"))
    }

    /// The states of several instances, fetched in parallel; results in the order of `names`.
    pub fn instance_states(&self, names: &[String]) -> Vec<(String, Result<InstanceState>)> {
        let mut results: Vec<Option<Result<InstanceState>>> = names.iter().map(|_| None).collect();
        let chunk = names.len().div_ceil(STATE_PARALLELISM).max(1);
        std::thread::scope(|s| {
            for (names, slots) in names.chunks(chunk).zip(results.chunks_mut(chunk)) {
                s.spawn(move || {
                    for (name, slot) in names.iter().zip(slots.iter_mut()) {
                        *slot = Some(self.instance_state(name));
                    }
                });
            }
        });
        names
            .iter()
            .cloned()
            .zip(results)
            .map(|(name, r)| {
                let r = r.unwrap_or_else(|| {
                    Err(IncusError::Invalid(format!(
                        "state of `{name}` was not fetched"
                    )))
                });
                (name, r)
            })
            .collect()
    }

    /// Start an instance.
    pub fn start(&self, name: &str) -> Result<()> {
        self.change_state(name, "start", false)
    }

    /// Stop an instance: `force` kills it at once; otherwise it is asked to shut down cleanly
    /// within the operation deadline.
    pub fn stop(&self, name: &str, force: bool) -> Result<()> {
        self.change_state(name, "stop", force)
    }

    /// Restart an instance (`force` as for [`ProjectScope::stop`]).
    pub fn restart(&self, name: &str, force: bool) -> Result<()> {
        self.change_state(name, "restart", force)
    }

    fn change_state(&self, name: &str, action: &'static str, force: bool) -> Result<()> {
        // Give a clean shutdown slightly less than our own deadline, so the server reports its
        // failure before we stop waiting.
        let op = self.incus.timeouts().operation;
        let timeout = if force {
            -1
        } else {
            op.as_secs().saturating_sub(1).max(1) as i64
        };
        let body = InstanceStatePut {
            action,
            timeout,
            force,
            stateful: false,
        };
        self.incus
            .mutate(Method::Put, &self.instance_url(name, "/state"), Some(&body))?;
        Ok(())
    }

    /// Delete a stopped instance (Incus refuses a running one with HTTP 400).
    pub fn delete_instance(&self, name: &str) -> Result<()> {
        self.incus
            .mutate::<()>(Method::Delete, &self.instance_url(name, ""), None)?;
        Ok(())
    }

    // --- devices ----------------------------------------------------------------------------

    /// Add a device; fails with [`IncusError::AlreadyExists`] if the instance already has a local
    /// device of that name.
    pub fn add_device(&self, instance: &str, device: &str, value: Device) -> Result<()> {
        self.edit_devices(instance, |devices| {
            if devices.contains_key(device) {
                return Err(IncusError::AlreadyExists {
                    request: format!("add device `{device}` to `{instance}`"),
                    status: 409,
                    message: format!("instance `{instance}` already has a device `{device}`"),
                });
            }
            devices.insert(device.to_owned(), value);
            Ok(())
        })
    }

    /// Replace a device's keys; fails with [`IncusError::NotFound`] if there is none.
    pub fn update_device(&self, instance: &str, device: &str, value: Device) -> Result<()> {
        self.edit_devices(instance, |devices| match devices.get_mut(device) {
            Some(slot) => {
                *slot = value;
                Ok(())
            }
            None => Err(missing_device(instance, device)),
        })
    }

    /// Remove a device; fails with [`IncusError::NotFound`] if there is none (devices inherited
    /// from a profile are not the instance's own and cannot be removed here).
    pub fn remove_device(&self, instance: &str, device: &str) -> Result<()> {
        self.edit_devices(instance, |devices| match devices.remove(device) {
            Some(_) => Ok(()),
            None => Err(missing_device(instance, device)),
        })
    }

    /// Edit the instance's own devices in one read-modify-write (see
    /// [`ProjectScope::edit_instance`]).
    pub fn edit_devices(
        &self,
        instance: &str,
        edit: impl FnOnce(&mut Devices) -> Result<()>,
    ) -> Result<()> {
        self.edit_instance(instance, |i| edit(&mut i.devices))
    }

    /// Edit an instance's description, config, devices and profiles in one read-modify-write:
    /// `edit` gets the current values and may change them; the result is written with `If-Match`,
    /// so if the instance changed in the meantime nothing is written and the call fails with
    /// [`IncusError::Conflict`]. If `edit` returns an error nothing is written either.
    pub fn edit_instance(
        &self,
        instance: &str,
        edit: impl FnOnce(&mut InstanceEdit) -> Result<()>,
    ) -> Result<()> {
        let path = self.instance_url(instance, "");
        let label = format!("GET {path}");
        // Keep the raw object: PUT sends back every field we read, including ones this crate
        // does not model, so nothing is lost.
        let (mut raw, etag): (Value, String) = self.incus.get_with_etag(&path)?;
        let field = |name: &str| raw.get(name).cloned().filter(|v| !v.is_null());
        let mut current = InstanceEdit {
            description: field("description")
                .map(|v| decode(&label, v))
                .transpose()?
                .unwrap_or_default(),
            config: field("config")
                .map(|v| decode(&label, v))
                .transpose()?
                .unwrap_or_default(),
            devices: field("devices")
                .map(|v| decode(&label, v))
                .transpose()?
                .unwrap_or_default(),
            profiles: field("profiles")
                .map(|v| decode(&label, v))
                .transpose()?
                .unwrap_or_default(),
        };
        edit(&mut current)?;
        if current
            .devices
            .values()
            .any(|d| d.get("shift").is_some_and(|v| v == "true"))
        {
            self.incus
                .require_extension("container_disk_shift", "use idmapped (shift) mounts")?;
        }
        let InstanceEdit {
            description,
            config,
            devices,
            profiles,
        } = current;
        if let Some(obj) = raw.as_object_mut() {
            obj.insert("description".to_owned(), Value::from(description));
            obj.insert("config".to_owned(), to_value(&label, &config)?);
            obj.insert("devices".to_owned(), to_value(&label, &devices)?);
            obj.insert("profiles".to_owned(), to_value(&label, &profiles)?);
        } else {
            return Err(IncusError::Protocol {
                request: label,
                message: "the instance is not a JSON object".to_owned(),
            });
        }
        self.incus.mutate_with(
            Method::Put,
            &path,
            Some(&raw),
            if_match(&etag),
            self.incus.timeouts().operation,
        )?;
        Ok(())
    }

    // --- exec -------------------------------------------------------------------------------

    /// Run a command without a terminal and return its exit code, stdout and stderr.
    ///
    /// Uses `record-output`: Incus writes both streams to files in the instance's log directory;
    /// we read and then delete them. stdin is `/dev/null`. If the command outlives the deadline
    /// the call fails with [`IncusError::OperationTimeout`] and the command keeps running; use
    /// [`ProjectScope::exec_streaming`] when output should stream or a deadline must kill.
    pub fn exec(&self, instance: &str, spec: &ExecSpec) -> Result<ExecOutput> {
        self.incus
            .require_extension("container_exec_recording", "capture exec output")?;
        if spec.uid != 0 || spec.gid != 0 || !spec.cwd.is_empty() {
            self.incus.require_extension(
                "container_exec_user_group_cwd",
                "exec as a user or in a directory",
            )?;
        }
        if spec.command.is_empty() {
            return Err(IncusError::Invalid("exec needs a command".to_owned()));
        }
        let body = InstanceExecPost {
            command: spec.command.clone(),
            environment: spec.env.clone(),
            wait_for_websocket: false,
            interactive: false,
            record_output: true,
            user: spec.uid,
            group: spec.gid,
            cwd: spec.cwd.clone(),
        };
        let timeout = spec.timeout.unwrap_or(self.incus.timeouts().operation);
        let path = self.instance_url(instance, "/exec");
        let op = self
            .incus
            .mutate_with(Method::Post, &path, Some(&body), Vec::new(), timeout)?
            .ok_or_else(|| IncusError::Protocol {
                request: format!("POST {path}"),
                message: "exec did not start a background operation".to_owned(),
            })?;
        self.exec_result(&path, &op)
    }

    fn exec_result(&self, label: &str, op: &Operation) -> Result<ExecOutput> {
        let metadata = op.metadata.clone().unwrap_or(Value::Null);
        let exit_code = metadata
            .get("return")
            .and_then(Value::as_i64)
            .and_then(|c| i32::try_from(c).ok())
            .ok_or_else(|| IncusError::Protocol {
                request: label.to_owned(),
                message: format!("exec operation has no exit code: {metadata}"),
            })?;
        let log = |fd: &str| -> Result<Vec<u8>> {
            let Some(log_path) = metadata
                .pointer(&format!("/output/{fd}"))
                .and_then(Value::as_str)
            else {
                return Ok(Vec::new());
            };
            let url = self.url(log_path);
            let response = self.incus.send(
                Method::Get,
                &url,
                Vec::new(),
                None,
                self.incus.timeouts().request,
            )?;
            if response.status >= 400 {
                let envelope = parse_envelope(&format!("GET {url}"), &response)?;
                check_envelope(&format!("GET {url}"), &response, &envelope)?;
            }
            // The recorded files live in the instance's log directory until deleted.
            if let Err(e) = self.incus.mutate::<()>(Method::Delete, &url, None) {
                tracing::debug!(error = %e, log = log_path, "could not delete exec output log");
            }
            Ok(response.body)
        };
        Ok(ExecOutput {
            exit_code,
            stdout: log("1")?,
            stderr: log("2")?,
        })
    }

    /// The arguments (after the program name `incus`) for the official CLI to run `spec` in
    /// `instance`: for an interactive terminal, or output streamed as it is produced, which
    /// [`ProjectScope::exec`] does not do. Run them with `repoman_core::process::Cmd` (argv only);
    /// `--force-local` makes the CLI use the local socket (it resolves `INCUS_SOCKET`/`INCUS_DIR`
    /// like this client), never a default remote from the user's CLI config.
    pub fn cli_exec_args(
        &self,
        instance: &str,
        spec: &ExecSpec,
        terminal: Terminal,
    ) -> Vec<String> {
        let mut args = vec![
            "exec".to_owned(),
            "--force-local".to_owned(),
            "--project".to_owned(),
            self.name.clone(),
            match terminal {
                Terminal::Interactive => "--force-interactive".to_owned(),
                Terminal::None => "--force-noninteractive".to_owned(),
            },
            "--user".to_owned(),
            spec.uid.to_string(),
            "--group".to_owned(),
            spec.gid.to_string(),
        ];
        if !spec.cwd.is_empty() {
            args.extend(["--cwd".to_owned(), spec.cwd.clone()]);
        }
        for (k, v) in &spec.env {
            args.extend(["--env".to_owned(), format!("{k}={v}")]);
        }
        args.push(instance.to_owned());
        args.push("--".to_owned());
        args.extend(spec.command.iter().cloned());
        args
    }

    // --- files ------------------------------------------------------------------------------

    /// Write `content` to `path` in the instance (created or overwritten). Owner and mode apply
    /// when the file is created; an existing file keeps its own (Incus' `file push` semantics).
    pub fn push_file(
        &self,
        instance: &str,
        path: &str,
        content: &[u8],
        mode: FileMode,
    ) -> Result<()> {
        self.file_post(instance, path, "file", Some(content.to_vec()), mode)
    }

    /// Create a directory `path` in the instance (its parent must exist).
    pub fn make_dir(&self, instance: &str, path: &str, mode: FileMode) -> Result<()> {
        self.file_post(instance, path, "directory", None, mode)
    }

    /// Read a file (or list a directory) in the instance.
    pub fn pull_file(&self, instance: &str, path: &str) -> Result<PulledFile> {
        let url = self.file_url(instance, path)?;
        let label = format!("GET {url}");
        let response = self.incus.send(
            Method::Get,
            &url,
            Vec::new(),
            None,
            self.incus.timeouts().request,
        )?;
        if response.status >= 400 {
            let envelope = parse_envelope(&label, &response)?;
            check_envelope(&label, &response, &envelope)?;
        }
        let number = |name: &str, radix: u32| {
            response
                .header(name)
                .and_then(|v| u32::from_str_radix(v.trim(), radix).ok())
                .unwrap_or(0)
        };
        let kind = match response.header("x-incus-type").unwrap_or("file") {
            "file" => FileKind::File,
            "directory" => FileKind::Directory,
            "symlink" => FileKind::Symlink,
            other => FileKind::Other(other.to_owned()),
        };
        let (content, entries) = if kind == FileKind::Directory {
            let envelope = parse_envelope(&label, &response)?;
            (
                Vec::new(),
                decode::<Vec<String>>(&label, envelope.metadata)?,
            )
        } else {
            (response.body.clone(), Vec::new())
        };
        Ok(PulledFile {
            kind,
            content,
            entries,
            uid: number("x-incus-uid", 10),
            gid: number("x-incus-gid", 10),
            mode: number("x-incus-mode", 8),
        })
    }

    /// Delete a file (or empty directory) in the instance.
    pub fn delete_file(&self, instance: &str, path: &str) -> Result<()> {
        self.incus
            .require_extension("file_delete", "delete files in instances")?;
        let url = self.file_url(instance, path)?;
        self.incus.mutate::<()>(Method::Delete, &url, None)?;
        Ok(())
    }

    fn file_post(
        &self,
        instance: &str,
        path: &str,
        kind: &str,
        body: Option<Vec<u8>>,
        mode: FileMode,
    ) -> Result<()> {
        let url = self.file_url(instance, path)?;
        let label = format!("POST {url}");
        let headers = vec![
            ("X-Incus-uid".to_owned(), mode.uid.to_string()),
            ("X-Incus-gid".to_owned(), mode.gid.to_string()),
            ("X-Incus-mode".to_owned(), format!("{:04o}", mode.mode)),
            ("X-Incus-type".to_owned(), kind.to_owned()),
            ("X-Incus-write".to_owned(), "overwrite".to_owned()),
            (
                "Content-Type".to_owned(),
                "application/octet-stream".to_owned(),
            ),
        ];
        let response = self.incus.send(
            Method::Post,
            &url,
            headers,
            Some(body.unwrap_or_default()),
            self.incus.timeouts().request,
        )?;
        let envelope = parse_envelope(&label, &response)?;
        check_envelope(&label, &response, &envelope)?;
        self.incus
            .finish_envelope(&label, envelope, self.incus.timeouts().operation)?;
        Ok(())
    }

    fn file_url(&self, instance: &str, path: &str) -> Result<String> {
        if !path.starts_with('/') {
            return Err(IncusError::Invalid(format!(
                "file path `{path}` in instance `{instance}` must be absolute"
            )));
        }
        Ok(self.instance_url(instance, &format!("/files?path={}", enc(path))))
    }
}

fn to_value<T: serde::Serialize>(label: &str, value: &T) -> Result<Value> {
    serde_json::to_value(value).map_err(|e| IncusError::Invalid(format!("{label}: {e}")))
}

pub(crate) fn if_match(etag: &str) -> Vec<(String, String)> {
    if etag.is_empty() {
        Vec::new()
    } else {
        vec![("If-Match".to_owned(), etag.to_owned())]
    }
}

fn missing_device(instance: &str, device: &str) -> IncusError {
    IncusError::NotFound {
        request: format!("device `{device}` of `{instance}`"),
        message: format!("instance `{instance}` has no device `{device}` of its own"),
    }
}

fn last_segment(url: &str) -> Option<String> {
    let path = url.split('?').next()?;
    path.rsplit('/')
        .next()
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}
