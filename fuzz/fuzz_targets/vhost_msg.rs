//! Fuzz target `vhost_msg`: see ../checks/vhost_msg.rs.
#![no_main]

include!("../checks/vhost_msg.rs");

libfuzzer_sys::fuzz_target!(|data: &[u8]| check(data));
