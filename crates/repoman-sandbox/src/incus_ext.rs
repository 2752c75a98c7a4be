//! The few Incus calls `repoman-incus` does not offer yet, made through its public transport.
//!
//! - whether a storage pool exists (`GET /1.0/storage-pools/{name}`);
//! - replacing an instance's profiles and managed config keys (`PUT /1.0/instances/{name}` with
//!   the `ETag` read just before, so a concurrent change fails instead of being overwritten).
//!
//! Each request carries a timeout and goes to the same socket as the client. When the client
//! grows these calls, this module goes away.

use std::collections::BTreeMap;
use std::time::Duration;

use repoman_incus::api::Envelope;
use repoman_incus::{
    HttpRequest, HttpResponse, Incus, IncusError, Method, Operation, Transport, UnixTransport,
};
use serde_json::Value;

use super::desired::is_managed_key;

const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

fn enc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn request(
    incus: &Incus,
    method: Method,
    path: &str,
    body: Option<&Value>,
    headers: Vec<(String, String)>,
) -> Result<(Envelope, HttpResponse), IncusError> {
    let socket = incus.endpoint();
    let label = format!("{method} {path}");
    let transport = UnixTransport::new(&socket).map_err(|e| IncusError::Unavailable {
        socket: socket.clone(),
        cause: e.to_string(),
    })?;
    let mut headers = headers;
    let body = match body {
        Some(b) => {
            headers.push(("Content-Type".to_owned(), "application/json".to_owned()));
            Some(serde_json::to_vec(b).map_err(|e| IncusError::Invalid(format!("{label}: {e}")))?)
        }
        None => None,
    };
    let response = transport
        .send(HttpRequest {
            method,
            path: path.to_owned(),
            headers,
            body,
            timeout: REQUEST_TIMEOUT,
        })
        .map_err(|e| match e {
            repoman_incus::TransportError::Unavailable(cause) => {
                IncusError::Unavailable { socket, cause }
            }
            repoman_incus::TransportError::Timeout => IncusError::RequestTimeout {
                request: label.clone(),
                timeout: REQUEST_TIMEOUT,
            },
            repoman_incus::TransportError::Other(cause) => IncusError::Transport {
                request: label.clone(),
                cause,
            },
        })?;
    let envelope: Envelope =
        serde_json::from_slice(&response.body).map_err(|e| IncusError::Protocol {
            request: label.clone(),
            message: format!("HTTP {}: not an Incus JSON answer: {e}", response.status),
        })?;
    if envelope.kind == "error" || response.status >= 400 {
        let status = match envelope.error_code {
            code @ 100..=599 => code as u16,
            _ => response.status,
        };
        let message = envelope.error.clone();
        return Err(match status {
            404 => IncusError::NotFound {
                request: label,
                message,
            },
            409 | 412 => IncusError::AlreadyExists {
                request: label,
                status,
                message,
            },
            403 => IncusError::Forbidden {
                request: label,
                message,
            },
            _ => IncusError::Api {
                request: label,
                status,
                message,
            },
        });
    }
    Ok((envelope, response))
}

/// Replace a stopped instance's root filesystem with a fresh one from `source`
/// (`POST /1.0/instances/{name}/rebuild`); config and devices are kept.
pub fn rebuild(
    incus: &Incus,
    project: &str,
    instance: &str,
    source: &repoman_incus::ImageSource,
) -> Result<(), IncusError> {
    incus.require_extension(
        "instances_rebuild",
        "rebuild a container from another image",
    )?;
    let src = match source {
        // Unlike creation, rebuild does not fall back from an unknown alias to a fingerprint:
        // resolve the alias here (a local reference that is not an alias is a fingerprint).
        repoman_incus::ImageSource::Alias(a) => {
            let fingerprint = match incus.project(project).resolve_image_alias(a) {
                Ok(f) => f,
                Err(e) if e.is_not_found() => a.clone(),
                Err(e) => return Err(e),
            };
            serde_json::json!({"type": "image", "fingerprint": fingerprint})
        }
        repoman_incus::ImageSource::Fingerprint(f) => {
            serde_json::json!({"type": "image", "fingerprint": f})
        }
        repoman_incus::ImageSource::Remote {
            server,
            protocol,
            alias,
        } => serde_json::json!({
            "type": "image", "alias": alias, "server": server, "protocol": protocol
        }),
    };
    let path = format!(
        "/1.0/instances/{}/rebuild?project={}",
        enc(instance),
        enc(project)
    );
    let body = serde_json::json!({ "source": src });
    let (envelope, _) = request(incus, Method::Post, &path, Some(&body), Vec::new())?;
    if envelope.kind == "async" {
        let op: Operation =
            serde_json::from_value(envelope.metadata).map_err(|e| IncusError::Protocol {
                request: format!("POST {path}"),
                message: format!("cannot decode the operation: {e}"),
            })?;
        incus.wait_operation(&op, Duration::from_secs(600))?;
    }
    Ok(())
}

/// Whether the storage pool `name` exists.
pub fn pool_exists(incus: &Incus, name: &str) -> Result<bool, IncusError> {
    match request(
        incus,
        Method::Get,
        &format!("/1.0/storage-pools/{}", enc(name)),
        None,
        Vec::new(),
    ) {
        Ok(_) => Ok(true),
        Err(e) if e.is_not_found() => Ok(false),
        Err(e) => Err(e),
    }
}

/// Bring an instance to its desired profiles, own devices and managed config keys
/// (`user.repoman.*`, `environment.*`) in one `PUT`, keeping every other config key and field as
/// Incus stored it.
pub fn apply_desired(
    incus: &Incus,
    project: &str,
    instance: &str,
    profiles: &[String],
    devices: &BTreeMap<String, BTreeMap<String, String>>,
    config: &BTreeMap<String, String>,
    set_image_tag: bool,
) -> Result<(), IncusError> {
    let path = format!("/1.0/instances/{}?project={}", enc(instance), enc(project));
    let (envelope, response) = request(incus, Method::Get, &path, None, Vec::new())?;
    let etag = response.header("etag").unwrap_or_default().to_owned();
    let mut raw = envelope.metadata;
    let obj = raw.as_object_mut().ok_or_else(|| IncusError::Protocol {
        request: format!("GET {path}"),
        message: "the instance is not a JSON object".to_owned(),
    })?;
    let mut cfg: BTreeMap<String, String> = obj
        .get("config")
        .and_then(|c| serde_json::from_value(c.clone()).ok())
        .unwrap_or_default();
    // The image tag says what the root filesystem was built from: only a rebuild changes it.
    let image_key = format!("user.{}", super::desired::TAG_IMAGE);
    cfg.retain(|k, _| !is_managed_key(k) || (*k == image_key && !set_image_tag));
    cfg.extend(
        config
            .iter()
            .filter(|(k, _)| set_image_tag || **k != image_key)
            .map(|(k, v)| (k.clone(), v.clone())),
    );
    obj.insert(
        "config".to_owned(),
        serde_json::to_value(&cfg).unwrap_or(Value::Null),
    );
    obj.insert(
        "profiles".to_owned(),
        serde_json::to_value(profiles).unwrap_or(Value::Null),
    );
    obj.insert(
        "devices".to_owned(),
        serde_json::to_value(devices).unwrap_or(Value::Null),
    );
    let headers = if etag.is_empty() {
        Vec::new()
    } else {
        vec![("If-Match".to_owned(), etag)]
    };
    let (envelope, _) = request(incus, Method::Put, &path, Some(&raw), headers)?;
    if envelope.kind == "async" {
        let op: Operation =
            serde_json::from_value(envelope.metadata).map_err(|e| IncusError::Protocol {
                request: format!("PUT {path}"),
                message: format!("cannot decode the operation: {e}"),
            })?;
        incus.wait_operation(&op, incus.timeouts().operation)?;
    }
    Ok(())
}
