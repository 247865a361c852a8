//! The fuzz targets' checks (`fuzz/checks/`) over their committed corpora
//! and crash reproducers (`fuzz/corpus/<target>/`, `fuzz/regressions/<target>/`),
//! so that `cargo test` replays them without nightly or cargo-fuzz.

mod extract {
    include!("../../fuzz/checks/extract.rs");
}
mod vxlan_decap {
    include!("../../fuzz/checks/vxlan_decap.rs");
}

// `replay(target, check)`: the check over every committed input.
include!("../../fuzz/checks/replay.rs");

#[test]
fn extract() {
    replay("extract", extract::check);
}

#[test]
fn vxlan_decap() {
    replay("vxlan_decap", vxlan_decap::check);
}
