//! Test guests: WAT sources in tests/guests/, assembled here (no wasm toolchain needed).

#![allow(dead_code, clippy::unwrap_used)]

use std::path::Path;
use std::sync::Arc;

use repoman_snif::{Grants, Interface, Limits, Snif};

/// Assemble `tests/guests/<name>.wat`, with the shared prelude pasted in.
pub fn guest(name: &str) -> Vec<u8> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/guests");
    let prelude = std::fs::read_to_string(dir.join("prelude.wat")).unwrap();
    let src = std::fs::read_to_string(dir.join(format!("{name}.wat")))
        .unwrap()
        .replace(";;@prelude", &prelude);
    wat::parse_str(&src).unwrap_or_else(|e| panic!("{name}.wat: {e}"))
}

/// A SNIF value for direct host calls.
pub fn snif(name: &str, interface: Interface, wasm: Vec<u8>) -> Snif {
    Snif {
        name: name.to_owned(),
        interface,
        module_hash: blake3::hash(&wasm).to_hex().to_string(),
        wasm: Arc::from(wasm),
        grants: Grants::default(),
        limits: Limits::DEFAULT,
    }
}

/// Write `<dir>/<name>/snif.toml` (with `extra` appended) and the guest's module beside it.
pub fn write_snif(
    dir: &Path,
    name: &str,
    guest_name: &str,
    interface: &str,
    extra: &str,
) -> std::path::PathBuf {
    let d = dir.join(name);
    std::fs::create_dir_all(&d).unwrap();
    std::fs::write(d.join("module.wasm"), guest(guest_name)).unwrap();
    std::fs::write(
        d.join("snif.toml"),
        format!(
            "schema_version = 1\nname = \"{name}\"\nversion = \"1.0.0\"\ninterface = \"{interface}\"\n\
             interface_version = 1\nabi = 1\nmodule = \"module.wasm\"\n{extra}"
        ),
    )
    .unwrap();
    d
}
