//! libFuzzer target: `plate_policy_fuzz::image` (its properties are documented there).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    plate_policy_fuzz::image(data);
});
