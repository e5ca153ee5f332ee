#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| outgrow::fuzzing::image_header(data));
