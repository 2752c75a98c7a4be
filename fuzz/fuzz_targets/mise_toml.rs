//! mise `config.toml` / `.mise.toml`: parsing never panics, and pinning a tool the file does not
//! declare then unpinning it restores the file byte for byte (the write-back keeps the user's
//! formatting).
#![no_main]
use libfuzzer_sys::fuzz_target;
use repoman_tools::manifest::MiseFile;
use std::path::Path;

const TOOL: &str = "fuzztool";

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(mut file) = MiseFile::parse(Path::new(".mise.toml"), text) else {
        return;
    };
    assert_eq!(file.render(), text, "render of an unchanged file");
    if file.entries().iter().any(|e| e.tool == TOOL) {
        return;
    }
    if file.pin(TOOL, &["1.2.3".to_owned()]).is_err() {
        return;
    }
    let pinned = file.render();
    let reparsed = MiseFile::parse(Path::new(".mise.toml"), &pinned)
        .unwrap_or_else(|e| panic!("pinned file does not parse: {e}\n{pinned:?}"));
    assert!(
        reparsed.entries().iter().any(|e| e.tool == TOOL),
        "pinned tool missing: {pinned:?}"
    );
    assert_eq!(file.unpin(TOOL).ok(), Some(true), "{pinned:?}");
    assert_eq!(file.render(), text, "unpin(pin(x)) != x");
});
