//! A small blocking client for the hard groove: what `repoman daemon status|stop`,
//! `repoman groove call` and the tests use. One JSON message per line; notifications that arrive
//! while waiting for a response are kept for [`Client::next_notification`].

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use serde_json::{Value, json};

use crate::rpc::RpcError;

/// A connection to a daemon socket.
#[derive(Debug)]
pub struct Client {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
    next_id: u64,
    notifications: VecDeque<Value>,
}

/// Why a call did not return a result.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot reach the daemon at {path}: {source}")]
    Connect {
        path: String,
        source: std::io::Error,
    },
    #[error("the connection to the daemon failed: {0}")]
    Io(#[from] std::io::Error),
    #[error("the daemon closed the connection")]
    Closed,
    #[error("the daemon sent something that is not JSON-RPC: {0}")]
    Protocol(String),
    #[error("{}", .0.message)]
    Rpc(RpcError),
}

impl ClientError {
    /// The domain kind named in an error response (`data.kind`).
    pub fn kind_name(&self) -> Option<&str> {
        match self {
            ClientError::Rpc(e) => e.data.as_ref().and_then(|d| d["kind"].as_str()),
            _ => None,
        }
    }

    /// The hint in an error response (`data.hint`).
    pub fn hint_text(&self) -> Option<&str> {
        match self {
            ClientError::Rpc(e) => e.data.as_ref().and_then(|d| d["hint"].as_str()),
            _ => None,
        }
    }
}

impl repoman_core::DomainError for ClientError {
    fn kind(&self) -> repoman_core::ErrorKind {
        use repoman_core::ErrorKind;
        match self {
            ClientError::Connect { .. } | ClientError::Io(_) | ClientError::Closed => {
                ErrorKind::Unavailable
            }
            ClientError::Protocol(_) => ErrorKind::Failed,
            ClientError::Rpc(_) => ErrorKind::ALL
                .into_iter()
                .find(|k| Some(k.as_str()) == self.kind_name())
                .unwrap_or(ErrorKind::Failed),
        }
    }

    fn hint(&self) -> Option<String> {
        match self {
            ClientError::Connect { .. } => {
                Some("start it with `repoman daemon run` (or `repoman daemon install`)".to_owned())
            }
            other => other.hint_text().map(str::to_owned),
        }
    }
}

impl Client {
    pub fn connect(path: &Path) -> Result<Self, ClientError> {
        let s = UnixStream::connect(path).map_err(|source| ClientError::Connect {
            path: path.display().to_string(),
            source,
        })?;
        Ok(Self {
            reader: BufReader::new(s.try_clone()?),
            writer: s,
            next_id: 1,
            notifications: VecDeque::new(),
        })
    }

    /// Give up reading after `d` (`None`: wait forever).
    pub fn set_read_timeout(&self, d: Option<Duration>) -> std::io::Result<()> {
        self.writer.set_read_timeout(d)
    }

    /// Send one raw line (anything: tests send broken JSON with it).
    pub fn send_line(&mut self, line: &str) -> Result<(), ClientError> {
        let mut buf = line.as_bytes().to_vec();
        buf.push(b'\n');
        self.writer.write_all(&buf)?;
        Ok(())
    }

    /// Read one line as JSON.
    pub fn read_value(&mut self) -> Result<Value, ClientError> {
        let mut line = String::new();
        if self.reader.read_line(&mut line)? == 0 {
            return Err(ClientError::Closed);
        }
        serde_json::from_str(&line).map_err(|e| ClientError::Protocol(format!("{e}: {line:?}")))
    }

    /// Call `method` and wait for its response.
    pub fn call(&mut self, method: &str, params: Value) -> Result<Value, ClientError> {
        let id = self.next_id;
        self.next_id += 1;
        self.send_line(
            &json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}).to_string(),
        )?;
        loop {
            let v = self.read_value()?;
            if v.get("method").is_some() && v.get("id").is_none() {
                self.notifications.push_back(v);
                continue;
            }
            if v["id"] != json!(id) {
                return Err(ClientError::Protocol(format!(
                    "response for another id: {v}"
                )));
            }
            if let Some(e) = v.get("error") {
                return Err(ClientError::Rpc(RpcError {
                    code: e["code"].as_i64().unwrap_or(0),
                    message: e["message"].as_str().unwrap_or_default().to_owned(),
                    data: e.get("data").cloned(),
                }));
            }
            return Ok(v.get("result").cloned().unwrap_or(Value::Null));
        }
    }

    /// Send a notification (no response comes back).
    pub fn notify(&mut self, method: &str, params: Value) -> Result<(), ClientError> {
        self.send_line(&json!({"jsonrpc": "2.0", "method": method, "params": params}).to_string())
    }

    /// The next notification from the server (queued or read).
    pub fn next_notification(&mut self) -> Result<Value, ClientError> {
        if let Some(n) = self.notifications.pop_front() {
            return Ok(n);
        }
        self.read_value()
    }
}
