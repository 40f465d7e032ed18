//! libFuzzer target: `plate_policy_fuzz::verdict` (its properties are documented there).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    plate_policy_fuzz::verdict(data);
});
