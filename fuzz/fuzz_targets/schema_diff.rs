//! JSON Schema compatibility (`realm diff`): any two JSON documents give a verdict or an error,
//! never a panic, within the step budget (bounded time).
#![no_main]
use libfuzzer_sys::fuzz_target;
use repoman_realm::compat::{self, Mode};
use serde_json::Value;

fuzz_target!(|data: &[u8]| {
    // Two documents separated by a NUL byte (or the same document twice).
    let (a, b) = match data.iter().position(|&c| c == 0) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, data),
    };
    let (Ok(old), Ok(new)) = (
        serde_json::from_slice::<Value>(a),
        serde_json::from_slice::<Value>(b),
    ) else {
        return;
    };
    if let Ok(analysis) = compat::analyze_with_budget(&old, &new, 200_000) {
        for mode in [Mode::Backward, Mode::Forward, Mode::Full] {
            let _ = analysis.report(mode);
        }
    }
});
