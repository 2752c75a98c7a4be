//! How bytes reach the Incus daemon.
//!
//! [`Transport`] is the seam between the typed client and the wire: the client builds an
//! [`HttpRequest`] (method, path with query, headers, body, timeout) and gets an [`HttpResponse`]
//! back. [`UnixTransport`] speaks HTTP/1.1 over the local unix socket with reqwest's blocking
//! client; an HTTPS transport for remote servers (TLS client certificate) implements the same trait
//! later, and no caller changes.
//!
//! Invariants: every request carries a timeout; a transport never interprets Incus' JSON, it only
//! classifies failures into "could not connect" ([`TransportError::Unavailable`]), "no answer in
//! time" ([`TransportError::Timeout`]) and anything else ([`TransportError::Other`]).

use std::fmt;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// HTTP methods the Incus API uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Get,
    Post,
    Put,
    Patch,
    Delete,
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Method::Get => "GET",
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Patch => "PATCH",
            Method::Delete => "DELETE",
        })
    }
}

/// One request, transport-independent. `path` starts with `/1.0` and includes the query string.
#[derive(Debug, Clone)]
pub struct HttpRequest {
    pub method: Method,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Option<Vec<u8>>,
    pub timeout: Duration,
}

/// One response: status, headers (names lower-cased) and the whole body.
#[derive(Debug, Clone)]
pub struct HttpResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl HttpResponse {
    /// The first header with this name (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Why a request got no HTTP answer.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    /// Could not connect: the daemon is not there (socket missing, refused, permission denied).
    #[error("{0}")]
    Unavailable(String),
    /// Connected, but no complete answer within the request's timeout.
    #[error("timed out")]
    Timeout,
    /// Anything else (connection reset mid-answer, malformed HTTP, ...).
    #[error("{0}")]
    Other(String),
}

/// A raw byte stream to the server, for websocket upgrades (exec with streamed output).
pub trait RawStream: Read + Write + Send + fmt::Debug {
    /// Bound blocking reads (readers poll a stop flag in between).
    fn set_read_timeout(&self, timeout: Option<Duration>) -> std::io::Result<()>;
}

impl RawStream for UnixStream {
    fn set_read_timeout(&self, timeout: Option<Duration>) -> std::io::Result<()> {
        UnixStream::set_read_timeout(self, timeout)
    }
}

/// Sends requests to one Incus endpoint. Implementations are cheap to share between threads.
pub trait Transport: Send + Sync + fmt::Debug {
    /// Send one request and read the whole answer.
    fn send(&self, request: HttpRequest) -> Result<HttpResponse, TransportError>;

    /// Where this transport goes, for messages (a socket path or a URL).
    fn endpoint(&self) -> PathBuf;

    /// Open a fresh connection for a websocket upgrade. Transports that cannot, say so.
    fn connect_raw(&self, timeout: Duration) -> Result<Box<dyn RawStream>, TransportError> {
        let _ = timeout;
        Err(TransportError::Other(
            "this transport cannot open websockets (streamed exec)".to_owned(),
        ))
    }
}

/// HTTP/1.1 over a local unix socket, via reqwest's blocking client (connections are pooled, so
/// after the first request a call costs one round trip on an open socket).
#[derive(Debug)]
pub struct UnixTransport {
    socket: PathBuf,
    client: reqwest::blocking::Client,
}

impl UnixTransport {
    /// A transport for the socket at `socket`. Nothing is connected until the first request.
    pub fn new(socket: impl Into<PathBuf>) -> Result<Self, TransportError> {
        let socket = socket.into();
        let client = reqwest::blocking::Client::builder()
            .unix_socket(socket.as_path())
            .http1_only()
            // The per-request timeout is always set explicitly; this bounds connect().
            .connect_timeout(Duration::from_secs(5))
            .pool_max_idle_per_host(16)
            .user_agent(concat!("repoman-incus/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| TransportError::Other(format!("building the HTTP client: {e}")))?;
        Ok(Self { socket, client })
    }

    /// The socket path.
    pub fn socket(&self) -> &Path {
        &self.socket
    }
}

impl Transport for UnixTransport {
    fn send(&self, request: HttpRequest) -> Result<HttpResponse, TransportError> {
        // The host part is ignored on a unix socket; Incus does not look at it.
        let url = format!("http://incus{}", request.path);
        let method = match request.method {
            Method::Get => reqwest::Method::GET,
            Method::Post => reqwest::Method::POST,
            Method::Put => reqwest::Method::PUT,
            Method::Patch => reqwest::Method::PATCH,
            Method::Delete => reqwest::Method::DELETE,
        };
        let mut builder = self.client.request(method, url).timeout(request.timeout);
        for (name, value) in &request.headers {
            builder = builder.header(name.as_str(), value.as_str());
        }
        if let Some(body) = request.body {
            builder = builder.body(body);
        }
        let response = builder.send().map_err(classify)?;
        let status = response.status().as_u16();
        let headers = response
            .headers()
            .iter()
            .filter_map(|(k, v)| {
                v.to_str()
                    .ok()
                    .map(|v| (k.as_str().to_owned(), v.to_owned()))
            })
            .collect();
        let body = response.bytes().map_err(classify)?.to_vec();
        Ok(HttpResponse {
            status,
            headers,
            body,
        })
    }

    fn endpoint(&self) -> PathBuf {
        self.socket.clone()
    }

    fn connect_raw(&self, timeout: Duration) -> Result<Box<dyn RawStream>, TransportError> {
        let stream = UnixStream::connect(&self.socket)
            .map_err(|e| TransportError::Unavailable(e.to_string()))?;
        // Bounded handshake; the caller shortens reads afterwards.
        stream
            .set_read_timeout(Some(timeout))
            .map_err(|e| TransportError::Other(e.to_string()))?;
        stream
            .set_write_timeout(Some(timeout))
            .map_err(|e| TransportError::Other(e.to_string()))?;
        Ok(Box::new(stream))
    }
}

fn classify(err: reqwest::Error) -> TransportError {
    if err.is_timeout() {
        return TransportError::Timeout;
    }
    if err.is_connect() {
        // The innermost cause is the useful one: "No such file or directory (os error 2)",
        // "Connection refused (os error 111)", "Permission denied (os error 13)".
        TransportError::Unavailable(root_cause(&err))
    } else {
        TransportError::Other(error_chain(&err))
    }
}

fn root_cause(err: &(dyn std::error::Error + 'static)) -> String {
    let mut current = err;
    while let Some(source) = current.source() {
        current = source;
    }
    current.to_string()
}

/// reqwest's top-level message ("error sending request") hides the useful part (ENOENT,
/// ECONNREFUSED); the source chain has it.
fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut out = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = cause.source();
    }
    out
}
