#!/usr/bin/env bash
# Runs the whole fvs test suite on a fresh machine: installs what the tests
# need (Debian packages of the real peers, Rust components), then checks
# formatting and lints and runs every test. Exits non-zero on any failure.
set -euo pipefail
cd "$(dirname "$0")"

# Real peers and tools the tests use; installed, never vendored.
packages=()
# OVS itself: ovs-ofctl (flow syntax), ovsdb-server and ovs-vsctl (fvs-vsctl
# is compared with it). Its service is never started.
command -v ovs-ofctl >/dev/null 2>&1 || packages+=(openvswitch-common)
command -v ovs-vsctl >/dev/null 2>&1 || packages+=(openvswitch-switch)
command -v ping >/dev/null 2>&1 || packages+=(iputils-ping)
command -v ip >/dev/null 2>&1 || packages+=(iproute2)
command -v python3 >/dev/null 2>&1 || packages+=(python3)
if [ ${#packages[@]} -gt 0 ]; then
    if [ "$(id -u)" -ne 0 ]; then
        echo "run-tests: need root to install: ${packages[*]}" >&2
        exit 1
    fi
    apt-get update -qq
    # Keep package scripts from starting services (OVS's own daemons).
    policy=/usr/sbin/policy-rc.d
    had_policy=$([ -e $policy ] && echo yes || echo no)
    if [ "$had_policy" = no ]; then
        printf '#!/bin/sh\nexit 101\n' > $policy
        chmod +x $policy
    fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${packages[@]}"
    if [ "$had_policy" = no ]; then rm -f $policy; fi
fi

# 2 MB hugepages for the hugepage-backed packet pool tests; the original
# reservation is restored on exit.
want_pages=64
orig_pages=$(cat /proc/sys/vm/nr_hugepages 2>/dev/null || echo 0)
free_pages=$(awk '/^HugePages_Free:/ {print $2}' /proc/meminfo 2>/dev/null || echo 0)
if [ "${free_pages:-0}" -lt "$want_pages" ] && [ -w /proc/sys/vm/nr_hugepages ]; then
    echo $((orig_pages + want_pages - free_pages)) > /proc/sys/vm/nr_hugepages
    trap 'echo "$orig_pages" > /proc/sys/vm/nr_hugepages' EXIT
fi

cargo fmt --all -- --check
cargo clippy --workspace --all-targets --quiet -- -D warnings
# The end-to-end tests drive the real binaries: build them first.
cargo build --workspace --bins
cargo test --workspace
# The benchmark scenarios build and assert what they measure (a few rounds each).
cargo bench --workspace --no-run --quiet
for scenario in extract_tcp4 emc_hit megaflow1 megaflow4 megaflow16 upcall; do
    cargo bench --quiet --bench instructions -- "$scenario" 20 >/dev/null
done
