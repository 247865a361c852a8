//! Fuzz target `cli_args`: see ../checks/cli_args.rs.
#![no_main]

include!("../checks/cli_args.rs");

libfuzzer_sys::fuzz_target!(|data: &[u8]| check(data));
