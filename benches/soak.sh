#!/usr/bin/env bash
# Soak (issue 9, item 3): traffic through vhost-user (dpdk-testpmd with
# virtio-user, io forwarding in a loop through the switch) and kernel ports
# (two namespaces pinging every 5 ms) while flows churn (add/del-flow in a
# loop), a tap port comes and goes and testpmd restarts (the vhost-user peer
# reconnects). RSS of fvs-vswitchd is sampled every 10 s into a CSV.
#
# At the end it checks: fvs-vswitchd alive; RSS after warm-up (first 60 s)
# stays within 5% of its value at warm-up; the datapath's counters balance:
#   packets received = packets sent to ports + counted drops
# where received and sent are the PMD threads' own counters (pmd-perf-show
# "Rx packets", "Tx packets") and the drops are the coverage counters
# datapath_drop_{upcall_error,upcall_limit,invalid_port,tunnel_push_error,
# tunnel_pop_error,recirc_error} and drop_action_of_pipeline. Traffic is
# stopped before the final reading, so nothing is in flight.
#
#   sudo DURATION=480 benches/soak.sh      (seconds, default 480; not in run-tests.sh)
# Needs root, iproute2, dpdk-testpmd (dpdk-dev); takes /tmp/fvs-e2e.lock.
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-480}
WARMUP=60
[ "$(id -u)" = 0 ] || { echo "soak.sh: run as root" >&2; exit 1; }
command -v dpdk-testpmd >/dev/null || { echo "soak.sh: needs dpdk-testpmd (apt-get install dpdk-dev)" >&2; exit 1; }
cargo build --workspace --bins >/dev/null 2>&1 || { echo "soak.sh: build failed" >&2; exit 1; }
BIN=$PWD/target/debug

exec 9>/tmp/fvs-e2e.lock
flock 9

TAG=soak$$
DIR=$(mktemp -d /tmp/fvs-soak.XXXXXX)
CSV=${CSV:-$PWD/target/soak-rss.csv}
export FVS_RUNDIR=$DIR/run FVS_DBDIR=$DIR/db FVS_LOGDIR=$DIR/log
mkdir -p "$FVS_RUNDIR" "$FVS_DBDIR" "$FVS_LOGDIR"
NSA=${TAG}a NSB=${TAG}b
VA=${TAG}va VB=${TAG}vb
BR=br$TAG
PIDS=()
TP_PID=

vsctl() { "$BIN/fvs-vsctl" --timeout=20 "$@"; }
ofctl() { "$BIN/fvs-ofctl" "$@"; }
appctl() { "$BIN/fvs-appctl" "$@"; }

cleanup() {
    set +e
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
    stop_testpmd
    [ -f "$FVS_RUNDIR/fvs-vswitchd.pid" ] && kill "$(cat "$FVS_RUNDIR/fvs-vswitchd.pid")" 2>/dev/null
    sleep 1
    ip netns del "$NSA" 2>/dev/null; ip netns del "$NSB" 2>/dev/null
    ip link del "$VA" 2>/dev/null; ip link del "$VB" 2>/dev/null
    [ -n "${KEEP:-}" ] || rm -rf "$DIR"
}
trap cleanup EXIT

start_testpmd() {
    rm -f "$DIR/tp.in"; mkfifo "$DIR/tp.in"
    # The fifo stays open for writing (fd 8) so testpmd keeps reading commands.
    stdbuf -oL dpdk-testpmd --no-huge -m 128 --no-pci --file-prefix="$TAG" --lcores=0@0,1@0 \
        --log-level='pmd.net.virtio.*:error' \
        --vdev="net_virtio_user0,path=$FVS_RUNDIR/vu0,queue_size=512" \
        --vdev="net_virtio_user1,path=$FVS_RUNDIR/vu1,queue_size=512" \
        -- -i --nb-cores=1 --rxq=1 --txq=1 --rxd=512 --txd=512 --burst=32 \
        --total-num-mbufs=8192 --forward-mode=io <"$DIR/tp.in" >>"$DIR/testpmd.log" 2>&1 &
    TP_PID=$!
    exec 8>"$DIR/tp.in"
    for _ in $(seq 100); do grep -q "testpmd> " "$DIR/testpmd.log" 2>/dev/null && break; sleep 0.1; done
    sleep 1
    # A few bursts circulate: testpmd forwards port 0 <-> 1, the switch vu0 <-> vu1.
    echo "start tx_first 4" >&8
}

stop_testpmd() {
    [ -n "$TP_PID" ] || return 0
    { echo stop; echo quit; } >&8 2>/dev/null || true
    exec 8>&- 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$TP_PID" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$TP_PID" 2>/dev/null || true
    wait "$TP_PID" 2>/dev/null || true
    TP_PID=
    : >"$DIR/testpmd.log"
}

"$BIN/fvs-vswitchd" --pidfile --detach --log-file
VSD=$(cat "$FVS_RUNDIR/fvs-vswitchd.pid")
vsctl --no-wait set Open_vSwitch . other_config:pmd-sleep-max=500
vsctl add-br "$BR" -- set bridge "$BR" datapath_type=netdev

ip netns add "$NSA"; ip netns add "$NSB"
ip link add "$VA" type veth peer name eth0 netns "$NSA"
ip link add "$VB" type veth peer name eth0 netns "$NSB"
for ns in "$NSA" "$NSB"; do
    ip -n "$ns" link set lo up; ip -n "$ns" link set eth0 up
    ip netns exec "$ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=1
done
ip -n "$NSA" addr add 10.79.0.1/24 dev eth0
ip -n "$NSB" addr add 10.79.0.2/24 dev eth0
ip link set "$VA" up; ip link set "$VB" up

vsctl add-port "$BR" vu0 -- set Interface vu0 type=dpdkvhostuser ofport_request=1
vsctl add-port "$BR" vu1 -- set Interface vu1 type=dpdkvhostuser ofport_request=2
vsctl add-port "$BR" "$VA" -- set Interface "$VA" ofport_request=3
vsctl add-port "$BR" "$VB" -- set Interface "$VB" ofport_request=4
ofctl del-flows "$BR"
ofctl add-flow "$BR" in_port=1,actions=output:2
ofctl add-flow "$BR" in_port=2,actions=output:1
ofctl add-flow "$BR" in_port=3,actions=output:4
ofctl add-flow "$BR" in_port=4,actions=output:3

start_testpmd
ip netns exec "$NSA" ping -q -i 0.005 10.79.0.2 >"$DIR/ping.log" 2>&1 &
PING_PID=$!
PIDS+=($PING_PID)

# Flow churn: rules that traffic consults (they widen megaflows and force
# revalidation) come and go.
( while :; do
    p=$((RANDOM % 1000 + 20000))
    ofctl add-flow "$BR" "priority=100,udp,tp_dst=$p,actions=drop" >/dev/null 2>&1
    ofctl add-flow "$BR" "priority=50,in_port=3,icmp,icmp_type=13,actions=drop" >/dev/null 2>&1
    sleep 0.2
    ofctl del-flows "$BR" "udp,tp_dst=$p" >/dev/null 2>&1
    ofctl --strict del-flows "$BR" "priority=50,in_port=3,icmp,icmp_type=13" >/dev/null 2>&1
  done ) &
PIDS+=($!)
# Port churn: a tap port comes and goes.
( while :; do
    vsctl add-port "$BR" "t$TAG" -- set Interface "t$TAG" type=tap >/dev/null 2>&1
    sleep 3
    vsctl del-port "$BR" "t$TAG" >/dev/null 2>&1
    sleep 2
  done ) &
PIDS+=($!)

echo "time_s,rss_kb" >"$CSV"
start=$(date +%s)
restarts=0
next_restart=$((start + 60))
while :; do
    now=$(date +%s)
    el=$((now - start))
    kill -0 "$VSD" 2>/dev/null || { echo "soak.sh: fvs-vswitchd died at ${el}s" >&2; tail -20 "$FVS_LOGDIR/fvs-vswitchd.log" >&2; exit 1; }
    rss=$(awk '/^VmRSS:/ {print $2}' "/proc/$VSD/status")
    echo "$el,$rss" >>"$CSV"
    [ "$el" -ge "$DURATION" ] && break
    if [ "$now" -ge "$next_restart" ]; then
        # The vhost-user peer goes away and comes back (reconnection).
        stop_testpmd
        start_testpmd
        restarts=$((restarts + 1))
        next_restart=$((next_restart + 60))
    fi
    sleep 10
done

# Stop all traffic, let the queues drain, then read the counters.
kill -INT "$PING_PID" 2>/dev/null || true   # ping prints its summary on SIGINT
sleep 0.5
for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
PIDS=()
stop_testpmd
sleep 3
kill -0 "$VSD" 2>/dev/null || { echo "soak.sh: fvs-vswitchd died at the end" >&2; exit 1; }

# The churned tap port may be left over: it would keep sending (IPv6
# chatter, dropped by the pipeline) while the counters are read.
vsctl --if-exists del-port "$BR" "t$TAG" >/dev/null 2>&1 || true
sleep 2
read_counters() {
    perf=$(appctl dpif-netdev/pmd-perf-show)
    rx=$(echo "$perf" | awk '/Rx packets:/ {s += $3} END {print s + 0}')
    tx=$(echo "$perf" | awk '/Tx packets:/ {s += $3} END {print s + 0}')
    drops=0
    detail=""
    for c in datapath_drop_upcall_error datapath_drop_upcall_limit datapath_drop_invalid_port \
             datapath_drop_tunnel_push_error datapath_drop_tunnel_pop_error datapath_drop_recirc_error \
             drop_action_of_pipeline; do
        v=$(appctl coverage/read-counter "$c")
        detail="$detail  $c: $v\n"
        drops=$((drops + v))
    done
}
# Read until two readings agree (a late ARP or RS would tear one).
read_counters
for _ in 1 2 3 4 5; do
    prev="$rx/$tx/$drops"
    sleep 1
    read_counters
    [ "$prev" = "$rx/$tx/$drops" ] && break
done
printf "%b" "$detail"
# The ports' view: what they received and sent, and what they could not send.
ifstats=$(vsctl --columns=name,statistics list Interface)
sum_stat() { echo "$ifstats" | grep -o "$1=[0-9]*" | awk -F= '{s += $2} END {print s + 0}'; }
if_rx=$(sum_stat rx_packets); if_tx=$(sum_stat tx_packets); if_txdrop=$(sum_stat tx_dropped)
ping_line=$(grep "packets transmitted" "$DIR/ping.log" || true)

warm=$(awk -F, -v w=$WARMUP 'NR > 1 && $1 >= w {print $2; exit}' "$CSV")
read -r rmin rmax rlast < <(awk -F, -v w=$WARMUP 'NR > 1 && $1 >= w {if (mn == "" || $2 < mn) mn = $2; if ($2 > mx) mx = $2; l = $2} END {print mn, mx, l}' "$CSV")
echo "soak: ${DURATION}s, testpmd restarts $restarts, samples $(($(wc -l <"$CSV") - 1)) in $CSV"
echo "RSS kB: at warm-up ($WARMUP s) $warm, after it min $rmin max $rmax last $rlast"
echo "PMD: received $rx = sent $tx + counted drops $drops  (difference $((rx - tx - drops)))"
echo "Interfaces (Interface:statistics, every 5 s): rx_packets $if_rx, tx_packets $if_tx, tx_dropped $if_txdrop"
echo "ping: $ping_line"
ok=1
awk -v w="$warm" -v a="$rmin" -v b="$rmax" 'BEGIN {exit !(a >= w * 0.95 && b <= w * 1.05)}' \
    || { echo "FAIL: RSS left 5% of its warm-up value $warm kB (min $rmin, max $rmax)"; ok=0; }
[ "$rx" -eq $((tx + drops)) ] || { echo "FAIL: counters do not balance"; ok=0; }
[ "$rx" -gt 1000000 ] || { echo "FAIL: hardly any traffic ($rx packets)"; ok=0; }
[ "$ok" = 1 ] && echo "soak: PASS" || { echo "soak: FAIL"; exit 1; }
