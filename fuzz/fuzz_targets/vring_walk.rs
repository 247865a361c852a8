//! Fuzz target `vring_walk`: see ../checks/vring_walk.rs.
#![no_main]

include!("../checks/vring_walk.rs");

libfuzzer_sys::fuzz_target!(|data: &[u8]| check(data));
