//! Fuzz target `extract`: see ../checks/extract.rs.
#![no_main]

include!("../checks/extract.rs");

libfuzzer_sys::fuzz_target!(|data: &[u8]| check(data));
