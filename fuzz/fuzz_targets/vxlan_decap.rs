//! Fuzz target `vxlan_decap`: see ../checks/vxlan_decap.rs.
#![no_main]

include!("../checks/vxlan_decap.rs");

libfuzzer_sys::fuzz_target!(|data: &[u8]| check(data));
