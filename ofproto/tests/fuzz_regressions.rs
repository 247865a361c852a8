//! The fuzz targets' checks (`fuzz/checks/`) over their committed corpora
//! and crash reproducers (`fuzz/corpus/<target>/`, `fuzz/regressions/<target>/`),
//! so that `cargo test` replays them without nightly or cargo-fuzz.

mod ofp_decode {
    include!("../../fuzz/checks/ofp_decode.rs");
}
mod flow_syntax {
    include!("../../fuzz/checks/flow_syntax.rs");
}

// `replay(target, check)`: the check over every committed input.
include!("../../fuzz/checks/replay.rs");

#[test]
fn ofp_decode() {
    replay("ofp_decode", ofp_decode::check);
}

#[test]
fn flow_syntax() {
    replay("flow_syntax", flow_syntax::check);
}
