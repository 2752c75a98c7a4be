//! `repoman.toml` (the registry): parsing never panics, whatever the bytes.
#![no_main]
use libfuzzer_sys::fuzz_target;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let path = Path::new("repoman.toml");
    let _ = repoman_core::registry::Registry::parse(path, text);
    let _ = repoman_core::registry::RegistryFile::from_text(path, text.to_owned());
});
