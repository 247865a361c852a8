//! Fuzz target `db_load`: see ../checks/db_load.rs.
#![no_main]

include!("../checks/db_load.rs");

libfuzzer_sys::fuzz_target!(|data: &[u8]| check(data));
