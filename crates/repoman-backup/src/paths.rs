//! Relative paths as raw bytes, and their text form in manifests, JSON and messages.
//!
//! A backed-up file name can be any byte string except `/` and NUL. Manifests and events are
//! JSON, so a name is written as text with `%` escaped as `%25` and every byte that is not part of
//! valid UTF-8 written as `%XX`. [`decode_path`] inverts [`encode_path`] exactly.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// Text form of a raw relative path (reversible).
pub fn encode_path(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            if c == '%' {
                out.push_str("%25");
            } else {
                out.push(c);
            }
        }
        for b in chunk.invalid() {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Inverse of [`encode_path`]. Malformed escapes are kept literally.
pub fn decode_path(text: &str) -> Vec<u8> {
    let b = text.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && i + 2 < b.len()
            && let Ok(v) =
                u8::from_str_radix(std::str::from_utf8(&b[i + 1..i + 3]).unwrap_or("zz"), 16)
        {
            out.push(v);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    out
}

/// Join a raw relative path onto a directory.
pub fn join(dir: &Path, rel: &[u8]) -> PathBuf {
    if rel.is_empty() {
        dir.to_path_buf()
    } else {
        dir.join(OsStr::from_bytes(rel))
    }
}

/// The raw bytes of a path.
pub fn bytes(p: &Path) -> &[u8] {
    p.as_os_str().as_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_any_bytes() {
        for case in [
            &b"plain/x.txt"[..],
            b"100%",
            b"bad\xff\xfe/ok",
            b"new\nline",
            b"%41",
            b"caf\xc3\xa9",
        ] {
            let enc = encode_path(case);
            assert_eq!(decode_path(&enc), case, "{enc}");
        }
        assert_eq!(encode_path(b"bad\xff"), "bad%FF");
        assert_eq!(encode_path("café".as_bytes()), "café");
    }
}
