//! JSON-RPC 2.0 framing: one JSON value per line, requests, notifications, batches, errors.
//!
//! Invariants:
//! - Parsing is strict: `"jsonrpc": "2.0"`, a string `method`, `params` absent or an object or
//!   array, `id` absent (a notification), a string, a number or null. Anything else is an
//!   *Invalid Request* (-32600); bytes that are not JSON are a *Parse error* (-32700) answered
//!   with `id: null`.
//! - A notification never gets a response, not even an error; a batch of notifications gets no
//!   line at all; an empty batch is one Invalid Request error.
//! - Errors raised by the domain carry the domain's [`ErrorKind`] in `data.kind` and its hint in
//!   `data.hint`, with one stable code per kind ([`code_for_kind`]).

use repoman_core::{DomainError, ErrorKind};
use serde::Serialize;
use serde_json::{Map, Value, json};

pub const PARSE_ERROR: i64 = -32700;
pub const INVALID_REQUEST: i64 = -32600;
pub const METHOD_NOT_FOUND: i64 = -32601;
pub const INVALID_PARAMS: i64 = -32602;
pub const INTERNAL_ERROR: i64 = -32603;
/// The operation was tried and failed (`ErrorKind::Failed`).
pub const FAILED: i64 = -32001;
/// Bad arguments or configuration (`ErrorKind::Usage`).
pub const USAGE: i64 = -32002;
/// Stopped by policy or a conflict (`ErrorKind::Blocked`), including the agent policy.
pub const BLOCKED: i64 = -32003;
/// Incus, the backup share or another part of the environment is unavailable.
pub const UNAVAILABLE: i64 = -32004;
/// Cancelled (the daemon is stopping).
pub const INTERRUPTED: i64 = -32005;
/// The request line is longer than the daemon accepts.
pub const TOO_LARGE: i64 = -32010;
/// The caller sends faster than its rate limit.
pub const RATE_LIMITED: i64 = -32029;

/// The JSON-RPC code for a domain error kind.
pub fn code_for_kind(kind: ErrorKind) -> i64 {
    match kind {
        ErrorKind::Failed => FAILED,
        ErrorKind::Usage => USAGE,
        ErrorKind::Blocked => BLOCKED,
        ErrorKind::Unavailable => UNAVAILABLE,
        ErrorKind::Interrupted => INTERRUPTED,
    }
}

/// The error object of a response.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RpcError {
    pub code: i64,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data: Option<Value>,
}

impl RpcError {
    pub fn new(code: i64, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            data: None,
        }
    }

    pub fn with_data(mut self, data: Value) -> Self {
        self.data = Some(data);
        self
    }

    pub fn invalid_request(why: impl Into<String>) -> Self {
        Self::new(INVALID_REQUEST, why)
    }

    pub fn invalid_params(why: impl Into<String>) -> Self {
        Self::new(INVALID_PARAMS, why).with_data(json!({"kind": "usage"}))
    }

    /// An error of the domain, with its kind and hint.
    pub fn domain(kind: ErrorKind, message: impl Into<String>, hint: Option<String>) -> Self {
        let mut data = Map::new();
        data.insert("kind".into(), json!(kind.as_str()));
        if let Some(h) = hint {
            data.insert("hint".into(), json!(h));
        }
        Self::new(code_for_kind(kind), message).with_data(Value::Object(data))
    }

    /// From any domain error (`kind()` and `hint()`).
    pub fn from_domain(e: &dyn DomainError) -> Self {
        Self::domain(e.kind(), e.to_string(), e.hint())
    }

    /// A refusal by the policy (the agent policy, or the gate).
    pub fn blocked(message: impl Into<String>, hint: Option<String>) -> Self {
        Self::domain(ErrorKind::Blocked, message, hint)
    }
}

impl std::fmt::Display for RpcError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.message, self.code)
    }
}

impl std::error::Error for RpcError {}

/// A state error as a protocol error (its kind and hint).
pub fn from_state(e: &repoman_state::StateError) -> RpcError {
    RpcError::from_domain(e)
}

/// A subprocess error as a protocol error (its kind and hint).
pub fn from_process(e: &repoman_core::process::ProcessError) -> RpcError {
    RpcError::from_domain(e)
}

/// One parsed request (or notification, when `id` is `None`).
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    /// `None` for a notification; `Some(Value::Null)` for an explicit `"id": null`.
    pub id: Option<Value>,
    pub method: String,
    /// `{}` when absent.
    pub params: Value,
}

impl Request {
    pub fn is_notification(&self) -> bool {
        self.id.is_none()
    }
}

/// What one line held.
#[derive(Debug)]
pub enum Incoming {
    Single(Result<Request, (Value, RpcError)>),
    /// Each element parsed on its own; an element's error carries the id it had (or null).
    Batch(Vec<Result<Request, (Value, RpcError)>>),
    /// Not JSON, or an empty batch: answered with one error, `id: null`.
    Invalid(RpcError),
}

/// Parse one line.
pub fn parse_line(line: &[u8]) -> Incoming {
    let v: Value = match serde_json::from_slice(line) {
        Ok(v) => v,
        Err(e) => {
            return Incoming::Invalid(RpcError::new(PARSE_ERROR, format!("parse error: {e}")));
        }
    };
    match v {
        Value::Array(items) if items.is_empty() => {
            Incoming::Invalid(RpcError::invalid_request("an empty batch"))
        }
        Value::Array(items) => Incoming::Batch(items.into_iter().map(parse_request).collect()),
        other => Incoming::Single(parse_request(other)),
    }
}

/// Check one request object.
pub fn parse_request(v: Value) -> Result<Request, (Value, RpcError)> {
    let Value::Object(mut obj) = v else {
        return Err((
            Value::Null,
            RpcError::invalid_request("a request must be a JSON object"),
        ));
    };
    // The id is echoed on errors when it is valid; an invalid id is reported with null.
    let id = match obj.remove("id") {
        None => None,
        Some(v @ (Value::String(_) | Value::Number(_) | Value::Null)) => Some(v),
        Some(_) => {
            return Err((
                Value::Null,
                RpcError::invalid_request("`id` must be a string, a number or null"),
            ));
        }
    };
    let err_id = id.clone().unwrap_or(Value::Null);
    let bad = |why: &str| Err((err_id.clone(), RpcError::invalid_request(why)));
    match obj.remove("jsonrpc") {
        Some(Value::String(s)) if s == "2.0" => {}
        _ => return bad("`jsonrpc` must be \"2.0\""),
    }
    let method = match obj.remove("method") {
        Some(Value::String(m)) if !m.is_empty() => m,
        _ => return bad("`method` must be a non-empty string"),
    };
    let params = match obj.remove("params") {
        None => Value::Object(Map::new()),
        Some(p @ (Value::Object(_) | Value::Array(_))) => p,
        Some(_) => return bad("`params` must be an object or an array"),
    };
    if let Some(k) = obj.keys().next() {
        return bad(&format!("unknown member `{k}` in the request"));
    }
    Ok(Request { id, method, params })
}

/// A success response line (without the newline).
pub fn success(id: &Value, result: &Value) -> String {
    json!({"jsonrpc": "2.0", "id": id, "result": result}).to_string()
}

/// An error response line (without the newline).
pub fn failure(id: &Value, error: &RpcError) -> String {
    json!({"jsonrpc": "2.0", "id": id, "error": error}).to_string()
}

/// A notification line from the server (without the newline).
pub fn notification(method: &str, params: &Value) -> String {
    json!({"jsonrpc": "2.0", "method": method, "params": params}).to_string()
}

/// Named parameters: `params` must be an object (positional arrays are accepted only when empty).
pub fn named(params: &Value) -> Result<&Map<String, Value>, RpcError> {
    static EMPTY: std::sync::OnceLock<Map<String, Value>> = std::sync::OnceLock::new();
    match params {
        Value::Object(m) => Ok(m),
        Value::Array(a) if a.is_empty() => Ok(EMPTY.get_or_init(Map::new)),
        _ => Err(RpcError::invalid_params(
            "this method takes named parameters (a JSON object)",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn single(line: &str) -> Result<Request, (Value, RpcError)> {
        match parse_line(line.as_bytes()) {
            Incoming::Single(r) => r,
            other => panic!("not single: {other:?}"),
        }
    }

    #[test]
    fn requests_notifications_and_ids() {
        let r = single(r#"{"jsonrpc":"2.0","method":"whoami","id":7}"#).unwrap();
        assert_eq!((r.id, r.method.as_str()), (Some(json!(7)), "whoami"));
        let n = single(r#"{"jsonrpc":"2.0","method":"x"}"#).unwrap();
        assert!(n.is_notification());
        assert_eq!(n.params, json!({}));
        let r = single(r#"{"jsonrpc":"2.0","method":"x","id":null}"#).unwrap();
        assert_eq!(r.id, Some(Value::Null));
    }

    #[test]
    fn strictness() {
        for (line, id) in [
            (r#"{"jsonrpc":"1.0","method":"x","id":1}"#, json!(1)),
            (r#"{"method":"x","id":"a"}"#, json!("a")),
            (r#"{"jsonrpc":"2.0","method":3,"id":1}"#, json!(1)),
            (
                r#"{"jsonrpc":"2.0","method":"x","params":5,"id":1}"#,
                json!(1),
            ),
            (
                r#"{"jsonrpc":"2.0","method":"x","id":{"a":1}}"#,
                Value::Null,
            ),
            (
                r#"{"jsonrpc":"2.0","method":"x","id":1,"extra":1}"#,
                json!(1),
            ),
            ("5", Value::Null),
        ] {
            let (got_id, e) = single(line).unwrap_err();
            assert_eq!(e.code, INVALID_REQUEST, "{line}");
            assert_eq!(got_id, id, "{line}");
        }
        match parse_line(b"{not json") {
            Incoming::Invalid(e) => assert_eq!(e.code, PARSE_ERROR),
            other => panic!("{other:?}"),
        }
        match parse_line(b"[]") {
            Incoming::Invalid(e) => assert_eq!(e.code, INVALID_REQUEST),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn batches_parse_each_element() {
        match parse_line(
            br#"[{"jsonrpc":"2.0","method":"a","id":1}, 1, {"jsonrpc":"2.0","method":"b"}]"#,
        ) {
            Incoming::Batch(items) => {
                assert_eq!(items.len(), 3);
                assert!(items[0].is_ok());
                assert!(items[1].is_err());
                assert!(items[2].as_ref().unwrap().is_notification());
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn domain_errors_carry_kind_and_hint() {
        let e = RpcError::domain(
            ErrorKind::Unavailable,
            "incus is down",
            Some("start it".into()),
        );
        assert_eq!(e.code, UNAVAILABLE);
        assert_eq!(
            e.data,
            Some(json!({"kind": "unavailable", "hint": "start it"}))
        );
        let line = failure(&json!(3), &e);
        let v: Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["error"]["data"]["kind"], "unavailable");
        assert_eq!(v["id"], 3);
    }
}
