//! Fuzz target `ofp_decode`: see ../checks/ofp_decode.rs.
#![no_main]

include!("../checks/ofp_decode.rs");

libfuzzer_sys::fuzz_target!(|data: &[u8]| check(data));
