#!/bin/bash
# vhost_vs_ovs.sh - fvs against OVS 3.1 with DPDK on two vhost-user ports, in one
# invocation, alternating run for run, in benches/vhost_bench.sh (the shared harness
# ../shared/bench/ovs_vhost_bench.sh plus wildcard rules and VXLAN topologies: dpdk-testpmd
# with two net_virtio_user ports on core 0 generating frames, the switch with one PMD on
# core 1), plus the null switch (a second testpmd forwarding between two net_vhost ports) as
# the harness's ceiling.  Run as root.
#
#   benches/vhost_vs_ovs.sh                      # scenario a, 3 rounds
#   SCENARIOS="a b c d e f g" ROUNDS=2 benches/vhost_vs_ovs.sh
#   CURVE=1 ROUNDS=1 benches/vhost_vs_ovs.sh     # Mpps against active flows -> CSV + SVG
#
# Scenarios (issue 7): a = two in_port rules, 1 flow; b = 2000 nw_dst rules, 1000 flows;
# c = 20k rules, 10k flows; d = 200k rules, 100k flows (30 s warm-up); e = 1M flows against
# 32 nw_dst/16 rules (megaflows stay wide, exact-match caches thrash; 10 s warm-up);
# f = VXLAN, f-encap (frames from vhu0 leave vhu1 encapsulated) and f-decap (VXLAN frames into
# vhu1 leave vhu0 decapsulated), one direction each, frames replayed from a pcap;
# g = as a, 1518-byte frames.  Per scenario it prints each run, then a summary line: Mpps of
# each switch (median of its runs), fvs/OVS, avg processing cycles per packet of each (the
# switches' own pmd-stats-show), the null-switch ceiling (Mpps, and its busy cycles per packet
# from testpmd's --record-core-cycles) and fvs/ceiling; d and e also give
# fvs's rate as a share of its 1-flow rate (scenario a, when it ran before them).  A window the harness flags
# as contaminated (other processes > 10% of a CPU, steal > 5%, or the host running this VM
# slow: benches/hostprobe.rs) is left out; a run with no
# clean window, or that failed, is run again (up to RETRIES times), then reported as such and not counted.  The summary also goes to
# $LOG/summary.csv; CURVE=1 writes $LOG/curve.csv and $LOG/curve.svg (benches/plot_curve.py).
#
# Environment: SCENARIOS ("a"), ROUNDS (3), WINDOWS (2), RETRIES (2), CEILING (1: measure the null
# switch once per topology and frame size; 0: skip), CURVE (0), CURVE_OF (prefix: 32 /16
# rules whatever the flow count; nwdst: two exact rules per flow), CURVE_FLOWS ("1 10 100
# 1000 10000 100000 1000000"), BENCH (the harness, benches/vhost_bench.sh), FVS_BIN (release binaries, built if missing), LOG,
# and any other knob of ovs_vhost_bench.sh (DURATION, EMC_PROB, ...), passed through.
# Needs: dpdk-dev (dpdk-testpmd), openvswitch-switch-dpdk.
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
BENCH=${BENCH:-$HERE/vhost_bench.sh}
ROUNDS=${ROUNDS:-3}
CEILING=${CEILING:-1}
SCENARIOS=${SCENARIOS:-a}
CURVE=${CURVE:-0}
CURVE_OF=${CURVE_OF:-prefix}
CURVE_FLOWS=${CURVE_FLOWS:-1 10 100 1000 10000 100000 1000000}
RETRIES=${RETRIES:-2}
export WINDOWS=${WINDOWS:-2}
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

median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{v[NR]=$1} END{if (NR == 0) print ""; else if (NR % 2) print v[(NR+1)/2]; else printf "%.2f\n", (v[NR/2] + v[NR/2+1]) / 2}'; }

# One run of the harness with the scenario's knobs in the environment; sets MPPS and CPP
# (medians over its clean windows; empty when it failed or no window was clean).  The
# harness takes care of hugepages, processes and sockets, also when it fails.
run() {  # run SWITCH TAG: run_once, again (up to RETRIES times) while it failed or every window was contaminated
    local k
    run_once "$1" "$2"
    for ((k = 1; k <= RETRIES && (CONTAMINATED || FAILED); k++)); do run_once "$1" "$2-retry$k"; done
}
run_once() {  # run_once SWITCH TAG
    local out="$LOG/$2.log"
    flock /tmp/fvs-e2e.lock env SWITCH="$1" bash "$BENCH" > "$out" 2>&1
    MPPS=""; CPP=""; CONTAMINATED=0; FAILED=0
    if ! grep -q 'vhost-user [a-z0-9-]* [0-9]*B: [0-9.]* Mpps' "$out"; then
        # Shown, and run again: OVS with 200k rules has failed to bring its
        # vhost-user ports up, and passed the next time.
        FAILED=1
        echo "  $2: FAILED (see $out)" >&2
        tail -3 "$out" | sed 's/^/    /' >&2
        return
    fi
    local bad clean
    bad=$(sed -n 's/^WARNING: window \([0-9]*\):.*contaminated.*/\1/p' "$out" | tr '\n' ' ')
    clean=$(awk -v bad=" $bad" '
        /^window [0-9]+\/[0-9]+: [0-9.]+ Mpps aggregate/ { split($2, w, "/"); if (index(bad, " " w[1] " ") == 0) print $3 }' "$out" | tr '\n' ' ')
    if [ -z "${clean// }" ]; then
        echo "  $2: every window contaminated by other load, not counted (see $out)" >&2
        CONTAMINATED=1
        return
    fi
    [ -n "${bad// }" ] && echo "  $2: window(s) $bad contaminated, left out" >&2
    MPPS=$(echo $clean | median)
    CPP=$(awk -v bad=" $bad" '
        /^window [0-9]+\/[0-9]+: switch pmd/ { split($2, w, "/"); if (index(bad, " " w[1] " ") == 0) {
            for (i = 1; i <= NF; i++) if ($i == "cycles/pkt:") print $(i + 1) } }' "$out" | grep -v 'n/a' | median)
}

declare -A CEIL_OF CEIL_CPP_OF
ceiling() {  # ceiling TOPO PKT_LEN: sets CEIL and CEIL_CPP, the null switch's Mpps and busy cycles per packet there (measured once)
    local topo=$1 len=$2
    CEIL=""; CEIL_CPP=""
    [ "$CEILING" = 1 ] || return
    if [ -z "${CEIL_OF[$topo-$len]+x}" ]; then
        TOPO=$topo PKT_LEN=$len NFLOWS=1 OF_FLOWS=port run testpmd "ceiling-$topo-${len}B"
        CEIL_OF[$topo-$len]=$MPPS; CEIL_CPP_OF[$topo-$len]=$CPP
        echo "  null switch (testpmd io forwarding, $topo, ${len}B): ${MPPS:-n/a} Mpps, ${CPP:-n/a} cycles/pkt"
    fi
    CEIL=${CEIL_OF[$topo-$len]}; CEIL_CPP=${CEIL_CPP_OF[$topo-$len]}
}

SUMMARY=()
ONE_FLOW=""   # fvs's Mpps in scenario a, for d and e
echo "scenario,rules,flows,pkt_len,fvs_mpps,ovs_mpps,fvs_over_ovs,fvs_cycles_per_pkt,ovs_cycles_per_pkt,ceiling_mpps,fvs_over_ceiling,ceiling_cycles_per_pkt" > "$LOG/summary.csv"
# scenario NAME OF_FLOWS NFLOWS PKT_LEN WARMUP [TOPO]: alternating rounds, then its summary line.
scenario() {
    local name=$1 of=$2 n=$3 len=$4 warm=$5 topo=${6:-p2p}
    local rules=2
    [ "$of" = nwdst ] && rules=$((2 * n))
    [ "$of" = prefix ] && rules=$((2 * ((((253 << 16) + n - 1) >> 16) - 253 + 1)))   # /16 blocks of 10.253.0.0 + i
    [ "$topo" = p2p ] || rules=4
    echo "== scenario $name: $rules rules ($of), $n flow(s), ${len}B frames, ${warm}s warm-up, $topo"
    ceiling "$topo" "$len"; local ceil=$CEIL ceil_cpp=$CEIL_CPP
    local FV="" OV="" FC="" OC="" RR="" r s order rf ro
    for ((r = 1; r <= ROUNDS; r++)); do
        rf=""; ro=""
        # Alternate which switch goes first, so slow drifts of the host hit both alike.
        if [ $((r % 2)) = 1 ]; then order="fvs ovs"; else order="ovs fvs"; fi
        for s in $order; do
            TOPO=$topo OF_FLOWS=$of NFLOWS=$n PKT_LEN=$len WARMUP=$warm run $s "$name-$s-$r"
            printf '  round %d: %-3s %s Mpps, %s cycles/pkt\n' "$r" "$s" "${MPPS:-n/a}" "${CPP:-n/a}"
            [ -n "$MPPS" ] || continue
            if [ $s = fvs ]; then FV="$FV $MPPS"; FC="$FC $CPP"; rf=$MPPS; else OV="$OV $MPPS"; OC="$OC $CPP"; ro=$MPPS; fi
        done
        # The two runs of a round are minutes apart, the rounds further: the host's speed
        # drifts less within a round, so each round's own ratio is also kept.
        [ -n "$rf" ] && [ -n "$ro" ] && RR="$RR $(awk -v f=$rf -v o=$ro 'BEGIN { printf "%.2f", f / o }')"
    done
    local f o fc oc
    f=$(echo $FV | median); o=$(echo $OV | median); fc=$(echo $FC | median); oc=$(echo $OC | median)
    local line
    line=$(awk -v n="$name" -v f="$f" -v o="$o" -v fc="$fc" -v oc="$oc" -v c="$ceil" -v cc="$ceil_cpp" 'BEGIN {
        ratio = (f != "" && o != "") ? sprintf("%.2f", f / o) : "n/a";
        cr = (f != "" && c != "") ? sprintf("%.2f", f / c) : "n/a";
        printf "%s: fvs %s Mpps (%s cycles/pkt), OVS %s Mpps (%s cycles/pkt), fvs/OVS %s, ceiling %s Mpps (%s cycles/pkt), fvs/ceiling %s",
            n, f == "" ? "n/a" : f, fc == "" ? "n/a" : fc, o == "" ? "n/a" : o, oc == "" ? "n/a" : oc,
            ratio, c == "" ? "n/a" : c, cc == "" ? "n/a" : cc, cr }')
    [ -n "$RR" ] && line="$line, per round fvs/OVS:$RR (median $(echo $RR | median))"
    [ "$name" = a ] && ONE_FLOW=$f
    if { [ "$name" = d ] || [ "$name" = e ]; } && [ -n "$ONE_FLOW" ] && [ -n "$f" ]; then
        line="$line, $(awk -v f="$f" -v a="$ONE_FLOW" 'BEGIN { printf "fvs at %s flows keeps %.0f%% of its 1-flow rate (%s Mpps)", "'"$n"'", 100 * f / a, a }')"
    fi
    echo "$line"
    SUMMARY+=("$line")
    awk -v n="$name" -v r=$rules -v fl=$n -v l=$len -v f="$f" -v o="$o" -v fc="$fc" -v oc="$oc" -v c="$ceil" -v cc="$ceil_cpp" 'BEGIN {
        printf "%s,%d,%d,%d,%s,%s,%s,%s,%s,%s,%s,%s\n", n, r, fl, l, f, o,
            (f != "" && o != "") ? sprintf("%.3f", f / o) : "", fc, oc, c,
            (f != "" && c != "") ? sprintf("%.3f", f / c) : "", cc }' >> "$LOG/summary.csv"
}

if [ "$CURVE" = 1 ]; then
    for n in $CURVE_FLOWS; do
        warm=3; [ "$n" -ge 50000 ] && warm=10; [ "$n" -ge 50000 ] && [ "$CURVE_OF" = nwdst ] && warm=30
        scenario "flows-$n" "$CURVE_OF" "$n" 64 $warm
    done
    awk -F, 'NR > 1 { print $3 "," $5 "," $6 }' "$LOG/summary.csv" | sed '1i flows,fvs_mpps,ovs_mpps' > "$LOG/curve.csv"
    python3 "$HERE/plot_curve.py" "$LOG/curve.csv" "$LOG/curve.svg" \
        && echo "curve: $LOG/curve.csv, $LOG/curve.svg"
else
    for sc in $SCENARIOS; do
        case $sc in
            a) scenario a port 1 64 3 ;;
            b) scenario b nwdst 1000 64 3 ;;
            c) scenario c nwdst 10000 64 3 ;;
            d) scenario d nwdst 100000 64 30 ;;
            e) scenario e prefix 1000000 64 10 ;;
            f) scenario f-encap port 1 64 3 vxlan-encap
               scenario f-decap port 1 64 3 vxlan-decap ;;
            g) scenario g port 1 1518 3 ;;
            *) die "unknown scenario $sc (a b c d e f g)" ;;
        esac
    done
fi
echo "== summary (logs and summary.csv in $LOG)"
printf '%s\n' "${SUMMARY[@]}"
