//! The client handle: connecting, the request/response plumbing, operations, server info and
//! projects. Per-project calls (profiles, images, instances, exec, files) live on
//! [`ProjectScope`], obtained with [`Incus::project`].
//!
//! Invariants:
//! - every request has a timeout ([`Timeouts::request`]);
//! - every call that creates a background operation waits for it with a deadline
//!   ([`Timeouts::operation`]) and reports a still-running operation as
//!   [`IncusError::OperationTimeout`], never as success;
//! - error envelopes become typed errors carrying the HTTP status and Incus' message.

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

use repoman_core::{Cancel, Env};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::ProjectScope;
use crate::access::Access;
use crate::api::{Envelope, Operation, Project, ServerInfo};
use crate::error::{IncusError, Result};
use crate::socket::{self, SocketPath};
use crate::spec::ProjectSpec;
use crate::transport::{
    HttpRequest, HttpResponse, Method, Transport, TransportError, UnixTransport,
};

/// API extensions every repoman call relies on; checked once at connect.
pub const REQUIRED_EXTENSIONS: &[(&str, &str)] = &[
    ("projects", "use Incus projects"),
    ("instances", "manage instances via /1.0/instances"),
];

/// How long to wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// One HTTP request (connect + answer).
    pub request: Duration,
    /// One background operation (create, start, stop, delete, exec, ...).
    pub operation: Duration,
}

/// The operation deadline for calls that may download or unpack an image (creating or rebuilding
/// an instance): a remote image can take minutes, a local one about a second.
pub const IMAGE_OPERATION_TIMEOUT: Duration = Duration::from_secs(600);

/// The longest wait for the first answer (`GET /1.0`) of a new connection. A healthy daemon
/// answers in milliseconds, a busy one in a few seconds.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            request: Duration::from_secs(30),
            operation: Duration::from_secs(120),
        }
    }
}

#[derive(Debug)]
struct Shared {
    transport: Box<dyn Transport>,
    socket: Option<SocketPath>,
    server: ServerInfo,
    access: Access,
}

/// A connection to one Incus daemon. Cheap to clone; clones share the connection pool.
#[derive(Debug, Clone)]
pub struct Incus {
    shared: Arc<Shared>,
    timeouts: Timeouts,
    cancel: Option<Cancel>,
    reporter: Option<Arc<dyn Reporter>>,
}

/// Receives progress of background operations while the client waits for them (the CLI shows it
/// with a spinner or progress bar; tests record it).
pub trait Reporter: Send + Sync + std::fmt::Debug {
    /// Called about once a second while an operation runs, with its latest state;
    /// [`Operation::progress`] extracts Incus' progress text (e.g. an image download).
    fn operation_running(&self, op: &Operation);

    /// Called once when the wait for `op` (as it was announced) ends, whatever the outcome, so a
    /// reporter can close what it opened for it.
    fn operation_finished(&self, op: &Operation) {
        let _ = op;
    }
}

impl Incus {
    /// Connect to the local daemon: resolve the socket from `env` (see [`crate::socket`]), fetch
    /// `GET /1.0`, check [`REQUIRED_EXTENSIONS`] and work out the [`Access`] level.
    pub fn connect(env: &Env) -> Result<Incus> {
        Self::connect_with(env, Timeouts::default())
    }

    /// [`Incus::connect`] with explicit timeouts.
    pub fn connect_with(env: &Env, timeouts: Timeouts) -> Result<Incus> {
        let socket = socket::resolve(env);
        let transport = UnixTransport::new(&socket.path).map_err(|e| IncusError::Unavailable {
            socket: socket.path.clone(),
            cause: e.to_string(),
        })?;
        Self::with_transport(Box::new(transport), Some(socket), timeouts)
    }

    /// Connect over any [`Transport`] (an HTTPS remote, later). `socket` is the resolved local
    /// socket when there is one; it decides whether the per-user restrictions apply.
    pub fn with_transport(
        transport: Box<dyn Transport>,
        socket: Option<SocketPath>,
        timeouts: Timeouts,
    ) -> Result<Incus> {
        let mut incus = Incus {
            shared: Arc::new(Shared {
                transport,
                socket,
                server: ServerInfo::default(),
                access: Access::Untrusted,
            }),
            timeouts,
            cancel: None,
            reporter: None,
        };
        // The handshake is the cheapest request there is: a daemon that does not answer it
        // within HANDSHAKE_TIMEOUT is hung, and the caller learns so quickly (exit 4).
        let server: ServerInfo = incus
            .with_timeouts(Timeouts {
                request: timeouts.request.min(HANDSHAKE_TIMEOUT),
                ..timeouts
            })
            .get("/1.0")?;
        let access = Access::classify(incus.shared.socket.as_ref(), &server);
        if access != Access::Untrusted {
            for (ext, why) in REQUIRED_EXTENSIONS {
                check_extension(&server, ext, why)?;
            }
        }
        // On the per-user socket, read our project's restrictions to name what is allowed (best
        // effort: the explanation falls back to the general rule).
        let access = match access {
            Access::Restricted(r) => {
                match incus.get::<Project>(&format!("/1.0/projects/{}", enc(&r.project))) {
                    Ok(project) => Access::Restricted(r.with_project_config(&project)),
                    Err(_) => Access::Restricted(r),
                }
            }
            other => other,
        };
        let shared = Arc::get_mut(&mut incus.shared).ok_or_else(|| {
            IncusError::Invalid("connection shared before it was initialised".to_owned())
        })?;
        shared.server = server;
        shared.access = access;
        Ok(incus)
    }

    /// The same connection with other timeouts (e.g. a short deadline for one call).
    pub fn with_timeouts(&self, timeouts: Timeouts) -> Incus {
        Incus {
            shared: Arc::clone(&self.shared),
            timeouts,
            cancel: self.cancel.clone(),
            reporter: self.reporter.clone(),
        }
    }

    /// The same connection, reporting running operations to `reporter` about once a second.
    pub fn with_reporter(&self, reporter: Arc<dyn Reporter>) -> Incus {
        Incus {
            reporter: Some(reporter),
            ..self.clone()
        }
    }

    /// The same connection, watching `cancel`: operation waits check it at least once a second
    /// and, once it is set, cancel the operation on the server when it allows that and return
    /// [`IncusError::Cancelled`].
    pub fn with_cancel(&self, cancel: &Cancel) -> Incus {
        Incus {
            shared: Arc::clone(&self.shared),
            timeouts: self.timeouts,
            cancel: Some(cancel.clone()),
            reporter: self.reporter.clone(),
        }
    }

    /// The same connection with another operation deadline.
    pub fn with_operation_timeout(&self, d: Duration) -> Incus {
        self.with_timeouts(Timeouts {
            operation: d,
            ..self.timeouts
        })
    }

    /// The timeouts in force.
    pub fn timeouts(&self) -> Timeouts {
        self.timeouts
    }

    /// `GET /1.0` as fetched at connect.
    pub fn server(&self) -> &ServerInfo {
        &self.shared.server
    }

    /// Fetch `GET /1.0` again (e.g. to measure latency or see config changes).
    pub fn fetch_server(&self) -> Result<ServerInfo> {
        self.get("/1.0")
    }

    /// The socket we talk to, when local.
    pub fn socket(&self) -> Option<&SocketPath> {
        self.shared.socket.as_ref()
    }

    /// Where requests go (socket path or URL), for messages.
    pub fn endpoint(&self) -> std::path::PathBuf {
        self.shared.transport.endpoint()
    }

    /// What this connection may do.
    pub fn access(&self) -> &Access {
        &self.shared.access
    }

    /// Fail with [`IncusError::MissingExtension`] unless the server has `extension`.
    pub fn require_extension(&self, extension: &str, needed_for: &str) -> Result<()> {
        check_extension(&self.shared.server, extension, needed_for)
    }

    /// Calls scoped to one Incus project.
    pub fn project(&self, name: impl Into<String>) -> ProjectScope {
        ProjectScope::new(self.clone(), name.into())
    }

    /// The project callers should use when they have no other: `default`, or `user-<uid>` on the
    /// restricted per-user socket.
    pub fn default_project(&self) -> ProjectScope {
        let name = self
            .shared
            .access
            .forced_project()
            .unwrap_or("default")
            .to_owned();
        self.project(name)
    }

    // --- projects ---------------------------------------------------------------------------

    /// Create a project.
    pub fn create_project(&self, spec: &ProjectSpec) -> Result<()> {
        self.mutate(Method::Post, "/1.0/projects", Some(spec))?;
        Ok(())
    }

    /// One project.
    pub fn get_project(&self, name: &str) -> Result<Project> {
        self.get(&format!("/1.0/projects/{}", enc(name)))
    }

    /// Set some config keys of a project; the other keys keep their values. A read-modify-write
    /// with the project's `ETag` (`If-Match`), so a concurrent change fails with
    /// [`IncusError::Conflict`] instead of being overwritten. Not `PATCH`: Incus 6.0 replaces a
    /// project's whole config on `PATCH`, dropping `features.*`. The server refuses restrictions
    /// that existing instances or profiles already violate.
    pub fn patch_project_config(
        &self,
        name: &str,
        config: &std::collections::BTreeMap<String, String>,
    ) -> Result<()> {
        let path = format!("/1.0/projects/{}", enc(name));
        let (current, etag): (Project, String) = self.get_with_etag(&path)?;
        let mut merged = current.config;
        merged.extend(config.iter().map(|(k, v)| (k.clone(), v.clone())));
        let body = serde_json::json!({ "config": merged, "description": current.description });
        self.mutate_with(
            Method::Put,
            &path,
            Some(&body),
            crate::scope::if_match(&etag),
            self.timeouts.operation,
        )?;
        Ok(())
    }

    /// One project, or `None` when it does not exist.
    pub fn find_project(&self, name: &str) -> Result<Option<Project>> {
        match self.get_project(name) {
            Ok(p) => Ok(Some(p)),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// All projects we may see, with their config.
    pub fn list_projects(&self) -> Result<Vec<Project>> {
        self.get("/1.0/projects?recursion=1")
    }

    /// Delete an empty project (Incus refuses a project that still has instances, images,
    /// profiles other than `default`, or volumes).
    pub fn delete_project(&self, name: &str) -> Result<()> {
        self.mutate::<()>(
            Method::Delete,
            &format!("/1.0/projects/{}", enc(name)),
            None,
        )?;
        Ok(())
    }

    /// Delete a project and what is in it: force-stop and delete its instances, delete its
    /// profiles (emptying `default`), and its own images when it has `features.images=true` (with
    /// `false` the images belong to the default project and are left alone). Done client-side so
    /// each step has our deadline and works on servers without `projects_force_delete`.
    pub fn delete_project_force(&self, name: &str) -> Result<()> {
        let project = self.get_project(name)?;
        let scope = self.project(name);
        for inst in scope.list_instances()? {
            if inst.status != "Stopped" {
                match scope.stop(&inst.name, true) {
                    Ok(()) => {}
                    // It may have stopped (or been deleted, if ephemeral) meanwhile.
                    Err(e) if e.is_not_found() => continue,
                    Err(e) => {
                        if scope
                            .get_instance(&inst.name)
                            .map(|i| i.is_running())
                            .unwrap_or(false)
                        {
                            return Err(e);
                        }
                    }
                }
            }
            match scope.delete_instance(&inst.name) {
                Ok(()) => {}
                Err(e) if e.is_not_found() => {}
                Err(e) => return Err(e),
            }
        }
        if project.config.get("features.profiles").map(String::as_str) == Some("true") {
            // The other profiles first: a restricted project validates every profile on each
            // profile update, so one it forbids (say `security.privileged`) would block emptying
            // `default`.
            let mut profiles = scope.list_profiles()?;
            profiles.sort_by_key(|p| p.name == "default");
            for profile in profiles {
                if profile.name == "default" {
                    scope.update_profile("default", &crate::api::ProfilePut::default())?;
                } else {
                    scope.delete_profile(&profile.name)?;
                }
            }
        }
        if project.config.get("features.images").map(String::as_str) == Some("true") {
            for fingerprint in scope.list_image_fingerprints()? {
                scope.delete_image(&fingerprint)?;
            }
        }
        self.delete_project(name)
    }

    /// The instances of every project (`recursion=1`: no runtime state); each carries its
    /// `project`. For a list command that spans all sandboxes in one request.
    pub fn list_all_instances(&self) -> Result<Vec<crate::Instance>> {
        self.require_extension("instance_all_projects", "list instances of all projects")?;
        self.get("/1.0/instances?recursion=1&all-projects=true")
    }

    // --- storage pools ----------------------------------------------------------------------

    /// Whether the storage pool `name` exists (`GET /1.0/storage-pools/{name}`).
    pub fn storage_pool_exists(&self, name: &str) -> Result<bool> {
        match self.get::<serde_json::Value>(&format!("/1.0/storage-pools/{}", enc(name))) {
            Ok(_) => Ok(true),
            Err(e) if e.is_not_found() => Ok(false),
            Err(e) => Err(e),
        }
    }

    // --- operations -------------------------------------------------------------------------

    /// One operation's current state.
    pub fn get_operation(&self, id: &str) -> Result<Operation> {
        self.get(&format!("/1.0/operations/{}", enc(id)))
    }

    /// Cancel an operation (only those with `may_cancel`).
    pub fn cancel_operation(&self, id: &str) -> Result<()> {
        self.mutate::<()>(
            Method::Delete,
            &format!("/1.0/operations/{}", enc(id)),
            None,
        )?;
        Ok(())
    }

    /// Wait for an operation until `timeout` has passed. A final failure becomes
    /// [`IncusError::OperationFailed`]; still running at the deadline becomes
    /// [`IncusError::OperationTimeout`].
    pub fn wait_operation(&self, op: &Operation, timeout: Duration) -> Result<Operation> {
        let result = self.wait_operation_inner(op, timeout);
        if let Some(reporter) = &self.reporter {
            reporter.operation_finished(op);
        }
        result
    }

    fn wait_operation_inner(&self, op: &Operation, timeout: Duration) -> Result<Operation> {
        let started = Instant::now();
        let deadline = started + timeout;
        let mut current = op.clone();
        loop {
            if current.is_final() {
                return finished(current);
            }
            if let Some(cancel) = &self.cancel
                && cancel.is_cancelled()
            {
                return Err(self.cancel_for_caller(current));
            }
            let remaining = deadline.saturating_duration_since(Instant::now());
            // The server takes whole seconds; round up so a 1.5 s deadline is not cut to 1 s,
            // and check our own deadline after each answer. With a cancel token, wait in
            // one-second slices so Ctrl-C is noticed promptly; with a reporter, likewise so
            // progress is reported.
            let mut secs = remaining.as_secs() + u64::from(remaining.subsec_nanos() > 0);
            if self.cancel.is_some() || self.reporter.is_some() {
                secs = secs.min(1);
            }
            let path = format!("/1.0/operations/{}/wait?timeout={secs}", enc(&current.id));
            let request_timeout = Duration::from_secs(secs) + self.timeouts.request;
            let response = self.send(Method::Get, &path, Vec::new(), None, request_timeout)?;
            let label = format!("GET {path}");
            let envelope = parse_envelope(&label, &response)?;
            current = if response.status < 400 && envelope.kind != "error" {
                decode(&label, envelope.metadata)?
            } else if response.status == 404 {
                // Finished operations are forgotten after a few seconds: we cannot learn the
                // outcome any more. Say so rather than guess.
                return Err(IncusError::Protocol {
                    request: label,
                    message: format!(
                        "operation `{}` vanished before its result was read",
                        current.description
                    ),
                });
            } else {
                // Incus writes "200 OK" before waiting and then, when the wait's own deadline
                // passes, an error envelope ("context deadline exceeded") into the same body.
                // Ask for the state instead of trusting that message.
                self.get_operation(&current.id)?
            };
            if current.is_final() {
                return finished(current);
            }
            if let Some(reporter) = &self.reporter {
                reporter.operation_running(&current);
            }
            if Instant::now() >= deadline {
                return Err(IncusError::OperationTimeout {
                    id: current.id,
                    description: current.description,
                    waited: started.elapsed(),
                });
            }
        }
    }

    /// Whether the cancel token (if any) is set.
    pub(crate) fn cancel_requested(&self) -> bool {
        self.cancel.as_ref().is_some_and(Cancel::is_cancelled)
    }

    /// This handle without its cancel token (for cleanup that must finish).
    pub(crate) fn without_cancel(&self) -> Incus {
        Incus {
            cancel: None,
            ..self.clone()
        }
    }

    /// A fresh raw connection for a websocket, with the request timeout on the handshake.
    pub(crate) fn connect_raw(&self) -> Result<Box<dyn crate::transport::RawStream>> {
        self.shared
            .transport
            .connect_raw(self.timeouts.request)
            .map_err(|e| match e {
                TransportError::Unavailable(cause) => IncusError::Unavailable {
                    socket: self.shared.transport.endpoint(),
                    cause,
                },
                other => IncusError::Transport {
                    request: "websocket connection".to_owned(),
                    cause: other.to_string(),
                },
            })
    }

    /// The caller gave up: cancel the operation on the server if it allows that (best effort).
    fn cancel_for_caller(&self, op: Operation) -> IncusError {
        let cancelled_on_server = op.may_cancel && self.cancel_operation(&op.id).is_ok();
        IncusError::Cancelled {
            id: op.id,
            description: op.description,
            cancelled_on_server,
        }
    }

    // --- plumbing (crate-internal) ----------------------------------------------------------

    /// Send one request; transport failures become typed errors.
    pub(crate) fn send(
        &self,
        method: Method,
        path: &str,
        headers: Vec<(String, String)>,
        body: Option<Vec<u8>>,
        timeout: Duration,
    ) -> Result<HttpResponse> {
        let request = HttpRequest {
            method,
            path: path.to_owned(),
            headers,
            body,
            timeout,
        };
        tracing::trace!(%method, path, "incus request");
        self.shared.transport.send(request).map_err(|e| match e {
            TransportError::Unavailable(cause) => IncusError::Unavailable {
                socket: self.shared.transport.endpoint(),
                cause,
            },
            TransportError::Timeout => IncusError::RequestTimeout {
                request: format!("{method} {path}"),
                timeout,
            },
            TransportError::Other(cause) => IncusError::Transport {
                request: format!("{method} {path}"),
                cause,
            },
        })
    }

    /// A JSON request; returns the envelope and the response (for headers).
    pub(crate) fn json_request<B: Serialize + ?Sized>(
        &self,
        method: Method,
        path: &str,
        body: Option<&B>,
        extra_headers: Vec<(String, String)>,
    ) -> Result<(Envelope, HttpResponse)> {
        let label = format!("{method} {path}");
        let mut headers = extra_headers;
        let body = match body {
            Some(b) => {
                headers.push(("Content-Type".to_owned(), "application/json".to_owned()));
                Some(
                    serde_json::to_vec(b)
                        .map_err(|e| IncusError::Invalid(format!("{label}: {e}")))?,
                )
            }
            None => None,
        };
        let response = self.send(method, path, headers, body, self.timeouts.request)?;
        let envelope = parse_envelope(&label, &response)?;
        check_envelope(&label, &response, &envelope)?;
        Ok((envelope, response))
    }

    /// `GET` a sync answer and decode its metadata.
    pub(crate) fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T> {
        let (envelope, _) = self.json_request::<()>(Method::Get, path, None, Vec::new())?;
        decode(&format!("GET {path}"), envelope.metadata)
    }

    /// `GET` with the `ETag`, for read-modify-write with `If-Match`.
    pub(crate) fn get_with_etag<T: DeserializeOwned>(&self, path: &str) -> Result<(T, String)> {
        let (envelope, response) = self.json_request::<()>(Method::Get, path, None, Vec::new())?;
        let etag = response.header("etag").unwrap_or_default().to_owned();
        Ok((decode(&format!("GET {path}"), envelope.metadata)?, etag))
    }

    /// A mutation: send it, and when Incus answers with a background operation wait for it with
    /// the operation deadline. Returns the finished operation, if there was one.
    pub(crate) fn mutate<B: Serialize + ?Sized>(
        &self,
        method: Method,
        path: &str,
        body: Option<&B>,
    ) -> Result<Option<Operation>> {
        self.mutate_with(method, path, body, Vec::new(), self.timeouts.operation)
    }

    pub(crate) fn mutate_with<B: Serialize + ?Sized>(
        &self,
        method: Method,
        path: &str,
        body: Option<&B>,
        headers: Vec<(String, String)>,
        op_timeout: Duration,
    ) -> Result<Option<Operation>> {
        let (envelope, _) = self.json_request(method, path, body, headers)?;
        self.finish_envelope(&format!("{method} {path}"), envelope, op_timeout)
    }

    /// Wait for the operation an envelope announces (if it is async).
    pub(crate) fn finish_envelope(
        &self,
        label: &str,
        envelope: Envelope,
        op_timeout: Duration,
    ) -> Result<Option<Operation>> {
        if envelope.kind != "async" {
            return Ok(None);
        }
        let op: Operation = decode(label, envelope.metadata)?;
        self.wait_operation(&op, op_timeout).map(Some)
    }
}

fn finished(op: Operation) -> Result<Operation> {
    if op.status_code == 200 {
        Ok(op)
    } else {
        let message = if op.err.is_empty() {
            op.status.clone()
        } else {
            op.err.clone()
        };
        if crate::error::is_duplicate_message(&message) {
            return Err(IncusError::AlreadyExists {
                request: format!("operation `{}`", op.description),
                status: 409,
                message,
            });
        }
        Err(IncusError::OperationFailed {
            id: op.id,
            description: op.description,
            message,
        })
    }
}

fn check_extension(server: &ServerInfo, extension: &str, needed_for: &str) -> Result<()> {
    if server.has_extension(extension) {
        return Ok(());
    }
    let version = &server.environment.server_version;
    Err(IncusError::MissingExtension {
        extension: extension.to_owned(),
        needed_for: needed_for.to_owned(),
        server_version: if version.is_empty() {
            "(unknown version)".to_owned()
        } else {
            version.clone()
        },
    })
}

/// Parse the JSON envelope; a non-JSON error answer keeps its HTTP status and text.
pub(crate) fn parse_envelope(label: &str, response: &HttpResponse) -> Result<Envelope> {
    match serde_json::from_slice::<Envelope>(&response.body) {
        Ok(envelope) => Ok(envelope),
        Err(_) if response.status >= 400 => Err(IncusError::from_status(
            label.to_owned(),
            response.status,
            String::from_utf8_lossy(&response.body).trim().to_owned(),
        )),
        Err(e) => Err(IncusError::Protocol {
            request: label.to_owned(),
            message: format!("HTTP {}: not an Incus JSON answer: {e}", response.status),
        }),
    }
}

/// Turn an error envelope (or an error HTTP status) into a typed error.
pub(crate) fn check_envelope(
    label: &str,
    response: &HttpResponse,
    envelope: &Envelope,
) -> Result<()> {
    if envelope.kind == "error" || response.status >= 400 {
        let status = match envelope.error_code {
            code @ 100..=599 => code as u16,
            _ => response.status,
        };
        let message = if envelope.error.is_empty() {
            format!("HTTP {}", response.status)
        } else {
            envelope.error.clone()
        };
        return Err(IncusError::from_status(label.to_owned(), status, message));
    }
    Ok(())
}

pub(crate) fn decode<T: DeserializeOwned>(label: &str, value: serde_json::Value) -> Result<T> {
    serde_json::from_value(value).map_err(|e| IncusError::Protocol {
        request: label.to_owned(),
        message: format!("cannot decode the answer: {e}"),
    })
}

/// Percent-encode a path segment or query value (everything but RFC 3986 unreserved characters).
pub(crate) fn enc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handles_are_shareable_across_threads() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<Incus>();
        assert_send_sync::<crate::ProjectScope>();
        assert_send_sync::<IncusError>();
    }

    #[test]
    fn encoding_keeps_unreserved_and_escapes_the_rest() {
        assert_eq!(enc("repoman-test_1.x~"), "repoman-test_1.x~");
        assert_eq!(enc("/home/dev/a b&c"), "%2Fhome%2Fdev%2Fa%20b%26c");
    }

    #[test]
    fn error_envelopes_become_typed_errors() {
        let resp = |status: u16, body: &str| HttpResponse {
            status,
            headers: Vec::new(),
            body: body.as_bytes().to_vec(),
        };
        let r = resp(
            404,
            r#"{"type":"error","error":"Instance not found","error_code":404}"#,
        );
        let env = parse_envelope("GET /x", &r).unwrap();
        let err = check_envelope("GET /x", &r, &env).unwrap_err();
        assert!(err.is_not_found());
        assert_eq!(err.incus_message(), Some("Instance not found"));

        let r = resp(
            500,
            r#"{"type":"error","error":"A project named \"p\" already exists","error_code":500}"#,
        );
        let env = parse_envelope("POST /p", &r).unwrap();
        let err = check_envelope("POST /p", &r, &env).unwrap_err();
        assert!(
            matches!(err, IncusError::AlreadyExists { status: 500, .. }),
            "{err:?}"
        );

        // A non-JSON error body keeps its status.
        let r = resp(502, "bad gateway");
        let err = parse_envelope("GET /y", &r).unwrap_err();
        assert_eq!(err.status(), Some(502));
        // A non-JSON success body is a protocol error, not a silent success.
        let r = resp(200, "<html>");
        assert!(matches!(
            parse_envelope("GET /z", &r),
            Err(IncusError::Protocol { .. })
        ));
    }

    #[test]
    fn operation_outcomes() {
        let ok = Operation {
            status_code: 200,
            ..Default::default()
        };
        assert!(finished(ok).is_ok());
        let failed = Operation {
            status_code: 400,
            err: "boom".into(),
            description: "Creating instance".into(),
            ..Default::default()
        };
        let err = finished(failed).unwrap_err();
        assert_eq!(
            err.to_string(),
            "operation `Creating instance` failed: boom"
        );
    }
}
