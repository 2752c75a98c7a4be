//! One event-log line: parsing never panics; a parsed event re-serialises to a line that parses
//! back to the same event with the same hash.
#![no_main]
use libfuzzer_sys::fuzz_target;
use repoman_state::event::Event;

fuzz_target!(|data: &[u8]| {
    let Ok(event) = serde_json::from_slice::<Event>(data) else {
        return;
    };
    let _ = event.hash_is_valid();
    let _ = event.object_kind();
    let line = event.to_line();
    let again: Event = serde_json::from_str(line.trim_end())
        .unwrap_or_else(|e| panic!("to_line does not parse back: {e}\n{line:?}"));
    assert_eq!(again.compute_hash(), event.compute_hash(), "{line:?}");
    let _ = repoman_state::event::canonical_json(&event.data);
});
