//! The fuzz targets' checks (`fuzz/checks/`) over their committed corpora
//! and crash reproducers (`fuzz/corpus/<target>/`, `fuzz/regressions/<target>/`),
//! so that `cargo test` replays them without nightly or cargo-fuzz.

mod vhost_msg {
    include!("../../fuzz/checks/vhost_msg.rs");
}
mod vring_walk {
    include!("../../fuzz/checks/vring_walk.rs");
}

// `replay(target, check)`: the check over every committed input.
include!("../../fuzz/checks/replay.rs");

#[test]
fn vhost_msg() {
    replay("vhost_msg", vhost_msg::check);
}

#[test]
fn vring_walk() {
    replay("vring_walk", vring_walk::check);
}
