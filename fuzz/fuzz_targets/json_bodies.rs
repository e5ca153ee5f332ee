#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| outgrow::fuzzing::json_bodies(data));
