//! `.repoman.toml` (per-project overrides): parsing never panics.
#![no_main]
use libfuzzer_sys::fuzz_target;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = repoman_core::registry::ProjectOverrides::parse(Path::new(".repoman.toml"), text);
});
