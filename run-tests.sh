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
# Python virtual environments for the OpenFlow controllers (below).
python3 -c 'import ensurepip' >/dev/null 2>&1 || packages+=(python3-venv)
# The VFIO tests' guests (tests/vfio_vm.rs): QEMU, a busybox-static initramfs.
command -v qemu-system-x86_64 >/dev/null 2>&1 || packages+=(qemu-system-x86)
{ [ -x /bin/busybox ] && ! ldd /bin/busybox >/dev/null 2>&1; } || packages+=(busybox-static)
command -v cpio >/dev/null 2>&1 || packages+=(cpio)
command -v depmod >/dev/null 2>&1 || packages+=(kmod)
# vhost-user peers: DPDK's testpmd with virtio-user (tests/vhost_testpmd.rs);
# the VM guests (tests/vhost_vm.rs) need only QEMU and the packages above.
command -v dpdk-testpmd >/dev/null 2>&1 || packages+=(dpdk-dev)
# VXLAN tests (tests/vxlan_e2e.rs): etcd as the registry of hosts, tshark
# to decode the underlay (its capture question answered beforehand).
command -v etcd >/dev/null 2>&1 || packages+=(etcd-server)
command -v etcdctl >/dev/null 2>&1 || packages+=(etcd-client)
command -v ethtool >/dev/null 2>&1 || packages+=(ethtool)
# Least privilege (tests/least_privilege.rs): a system user made for the test.
command -v useradd >/dev/null 2>&1 || packages+=(passwd)
# CNI plugin tests (tests/cni_e2e.rs): host-local IPAM, which fvs-cni delegates to.
[ -x /usr/lib/cni/host-local ] || packages+=(containernetworking-plugins)
if ! command -v tshark >/dev/null 2>&1; then
    packages+=(tshark)
    command -v debconf-set-selections >/dev/null 2>&1 &&
        echo "wireshark-common wireshark-common/install-setuid boolean false" | debconf-set-selections
fi
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

# The VFIO guests' kernel: Debian's package, unpacked into a cache.
sh tests/vm/prepare.sh >/dev/null

# OpenFlow controllers of tests/openflow_e2e.rs, each in a cached virtual
# environment (reruns skip this): os-ken and Faucet. os-ken 3.1 is the one
# Faucet uses (4.x has no osken-manager); its releases since 2.0 no longer
# ship the sample apps: simple_switch_13.py is taken from its 1.4.1 release
# (whose own dependencies no longer run on Python 3.11).
fvs_venv() {
    local dir=/var/cache/fvs-py/$1 exe=$2
    shift 2
    [ -x "$dir/bin/$exe" ] || { python3 -m venv "$dir" && "$dir/bin/pip" install -q "$@"; }
}
fvs_venv osken osken-manager os-ken==3.1.0
fvs_venv faucet faucet faucet
app=/var/cache/fvs-py/osken/simple_switch_13.py
if [ ! -s $app ]; then
    tmp=$(mktemp -d)
    /var/cache/fvs-py/osken/bin/pip download -q --no-deps -d "$tmp" os-ken==1.4.1
    python3 -c 'import sys, zipfile; sys.stdout.buffer.write(zipfile.ZipFile(sys.argv[1]).read("os_ken/app/simple_switch_13.py"))' \
        "$tmp"/os_ken-1.4.1-*.whl > $app.tmp && mv $app.tmp $app
    rm -rf "$tmp"
fi

cargo fmt --all -- --check
cargo clippy --workspace --all-targets --quiet -- -D warnings
# The end-to-end tests drive the real binaries: build them first.
cargo build --workspace --bins
cargo test --workspace
# The benchmark scenarios build and assert what they measure (a few rounds each).
cargo bench --workspace --no-run --quiet
for scenario in extract_tcp4 emc_hit megaflow1 megaflow4 megaflow16 megaflow10k upcall vhost_p2p vxlan_encap vxlan_decap; do
    cargo bench --quiet --bench instructions -- "$scenario" 20 >/dev/null
done
# Fuzz targets (fuzz/README.md): cargo-fuzz with nightly flags allowed by
# RUSTC_BOOTSTRAP. Each target replays its committed corpus, then runs on
# new inputs for a few seconds (new finds go to a scratch directory).
command -v cargo-fuzz >/dev/null 2>&1 || cargo install cargo-fuzz --locked
(
    cd fuzz
    export RUSTC_BOOTSTRAP=1
    cargo fuzz build
    scratch=$(mktemp -d)
    trap 'rm -rf "$scratch"' EXIT
    # db_load's scratch databases (one directory per fuzzer process), here
    # rather than in /dev/shm where another run's fuzzers may be at work.
    export FVS_FUZZ_DB_DIR=$scratch
    for t in $(cargo fuzz list); do
        mkdir -p "$scratch/$t"
        if ! cargo fuzz run "$t" "$scratch/$t" "corpus/$t" -- -max_total_time=15 \
            -print_final_stats=1 -artifact_prefix="$scratch/" >"$scratch/$t.log" 2>&1; then
            tail -n 40 "$scratch/$t.log" >&2
            echo "fuzz target $t failed" >&2
            exit 1
        fi
        echo "fuzz $t: $(grep -h '^stat::number_of_executed_units' "$scratch/$t.log")"
    done
)
