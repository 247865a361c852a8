#!/usr/bin/env bash
# Runs the whole fvs test suite on a fresh machine: installs what the tests
# need (Debian packages of the real peers, Rust components), then checks
# formatting and lints and runs every test. Exits non-zero on any failure.
set -euo pipefail
cd "$(dirname "$0")"

# Real peers and tools the tests use; installed, never vendored.
packages=()
command -v ovs-ofctl >/dev/null 2>&1 || packages+=(openvswitch-common)
if [ ${#packages[@]} -gt 0 ]; then
    if [ "$(id -u)" -ne 0 ]; then
        echo "run-tests: need root to install: ${packages[*]}" >&2
        exit 1
    fi
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${packages[@]}"
fi

cargo fmt --all -- --check
cargo clippy --workspace --all-targets --quiet -- -D warnings
cargo test --workspace
cargo bench --workspace --no-run --quiet
