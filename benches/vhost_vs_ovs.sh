#!/bin/bash
# vhost_vs_ovs.sh - fvs against OVS 3.1 with DPDK on two vhost-user ports, in one
# invocation, alternating run for run, in the harness of ../shared/bench/ovs_vhost_bench.sh
# (dpdk-testpmd with two net_virtio_user ports on core 0 generating 64-byte frames in both
# directions, the switch with one PMD on core 1, two in_port rules), plus the null switch
# (a second testpmd forwarding between two net_vhost ports) as the harness's ceiling.
# Prints the Mpps of each run, the medians and the ratio fvs/OVS.  Run as root.
#
#   benches/vhost_vs_ovs.sh                 # 3 rounds of fvs, OVS (and one ceiling run)
#   ROUNDS=5 DURATION=10 benches/vhost_vs_ovs.sh
#
# Environment: ROUNDS (3), CEILING (1: measure the null switch once; 0: skip),
# BENCH (path of ovs_vhost_bench.sh), FVS_BIN (release binaries, built if missing),
# and any knob of ovs_vhost_bench.sh (DURATION, WARMUP, PKT_LEN, OF_FLOWS, NFLOWS, ...),
# passed through unchanged.  Needs: dpdk-dev (dpdk-testpmd), openvswitch-switch-dpdk.
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
BENCH=${BENCH:-$ROOT/../shared/bench/ovs_vhost_bench.sh}
ROUNDS=${ROUNDS:-3}
CEILING=${CEILING:-1}
export FVS_BIN=${FVS_BIN:-$ROOT/target/release}
export QUIET_WAIT=${QUIET_WAIT:-20}
LOG=${LOG:-/tmp/fvs-vhost-vs-ovs}
mkdir -p "$LOG"

die() { echo "vhost_vs_ovs: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || die "must run as root (hugepages, DPDK, OVS)"
[ -f "$BENCH" ] || die "no benchmark harness at $BENCH (set BENCH=)"
command -v dpdk-testpmd >/dev/null || die "missing dpdk-testpmd (apt-get install dpdk-dev)"
[ -x /usr/lib/openvswitch-switch-dpdk/ovs-vswitchd-dpdk ] \
    || die "missing OVS with DPDK (apt-get install openvswitch-switch-dpdk)"
if [ ! -x "$FVS_BIN/fvs-vswitchd" ]; then
    (cd "$ROOT" && cargo build --release -p fvs-cli) || die "cargo build --release -p fvs-cli failed"
fi

# One run of the harness; prints its Mpps (empty on failure).  The harness
# takes care of hugepages, processes and sockets, also when it fails.
run() {  # run SWITCH TAG
    local out="$LOG/$2.log"
    flock /tmp/fvs-e2e.lock env SWITCH="$1" bash "$BENCH" > "$out" 2>&1
    local mpps
    mpps=$(sed -n 's/.*vhost-user p2p [0-9]*B: \([0-9.]*\) Mpps.*/\1/p' "$out" | tail -1)
    if [ -z "$mpps" ]; then
        echo "  $2: FAILED (see $out)" >&2
        tail -3 "$out" | sed 's/^/    /' >&2
    fi
    echo "$mpps"
}
median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{v[NR]=$1} END{if (NR == 0) print ""; else if (NR % 2) print v[(NR+1)/2]; else printf "%.2f\n", (v[NR/2] + v[NR/2+1]) / 2}'; }

FVS=""; OVS=""; CEIL=""
if [ "$CEILING" = 1 ]; then
    c=$(run testpmd ceiling)
    echo "null switch (testpmd io forwarding, the ceiling): ${c:-n/a} Mpps"
    CEIL=$c
fi
for ((r = 1; r <= ROUNDS; r++)); do
    # Alternate which switch goes first, so slow drifts of the host hit both alike.
    if [ $((r % 2)) = 1 ]; then order="fvs ovs"; else order="ovs fvs"; fi
    for s in $order; do
        m=$(run $s "$s-$r")
        printf 'round %d: %-3s %s Mpps\n' "$r" "$s" "${m:-FAILED}"
        [ -n "$m" ] || continue
        if [ $s = fvs ]; then FVS="$FVS $m"; else OVS="$OVS $m"; fi
    done
done
F=$(echo $FVS | median); O=$(echo $OVS | median)
echo "fvs runs (Mpps):${FVS:- none} -> median ${F:-n/a}"
echo "OVS runs (Mpps):${OVS:- none} -> median ${O:-n/a}"
[ -n "$CEIL" ] && echo "ceiling (null switch): $CEIL Mpps"
if [ -n "$F" ] && [ -n "$O" ]; then
    echo "fvs/OVS = $(awk -v f="$F" -v o="$O" 'BEGIN{printf "%.2f", f / o}')  (64-byte frames, both directions, one PMD core, two in_port rules; logs in $LOG)"
else
    die "no ratio: a switch failed every run (logs in $LOG)"
fi
