//! Fuzz target `flow_syntax`: see ../checks/flow_syntax.rs.
#![no_main]

include!("../checks/flow_syntax.rs");

libfuzzer_sys::fuzz_target!(|data: &[u8]| check(data));
