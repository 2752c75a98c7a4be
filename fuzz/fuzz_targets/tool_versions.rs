//! `.tool-versions`: parsing never panics, rendering an unchanged file gives back its bytes, and
//! pinning a tool the file does not declare then unpinning it restores the file byte for byte.
#![no_main]
use libfuzzer_sys::fuzz_target;
use repoman_tools::manifest::ToolVersions;
use std::path::Path;

const TOOL: &str = "fuzztool";

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(mut tv) = ToolVersions::parse(Path::new(".tool-versions"), text) else {
        return;
    };
    assert_eq!(tv.render(), text, "render of an unchanged file");
    let _ = tv.entries();
    if tv.entries().iter().any(|e| e.tool == TOOL) {
        return;
    }
    if tv.pin(TOOL, &["1.2.3".to_owned()]).is_err() {
        return;
    }
    let pinned = tv.render();
    let reparsed = ToolVersions::parse(Path::new(".tool-versions"), &pinned)
        .unwrap_or_else(|e| panic!("pinned file does not parse: {e}\n{pinned:?}"));
    assert!(
        reparsed.entries().iter().any(|e| e.tool == TOOL),
        "pinned tool missing: {pinned:?}"
    );
    assert!(tv.unpin(TOOL));
    assert_eq!(tv.render(), text, "unpin(pin(x)) != x");
});
