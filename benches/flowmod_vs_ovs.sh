#!/bin/bash
# flowmod_vs_ovs.sh - flow-mod speed, fvs against OVS 3.1 (userspace datapath), in one
# invocation: the time `fvs-ofctl add-flows` takes for N rules against `ovs-ofctl add-flows`,
# and the time from the start of the command until the datapath forwards by the LAST rule
# (a probe frame sent every millisecond from one port, matched only by that rule, seen on
# the other port).  Each switch gets private directories and a bridge with two veth ports
# into namespaces; rounds alternate which switch goes first.  Prints every round, the
# medians and the ratios OVS/fvs.  Run as root.
#
#   benches/flowmod_vs_ovs.sh                   # N=100000 rules, ROUNDS=3
#   N=20000 ROUNDS=1 benches/flowmod_vs_ovs.sh
#
# Environment: N, ROUNDS, FVS_BIN (release binaries, built if missing), LOG (/tmp/fvs-flowmod).
# Needs: openvswitch-switch (ovsdb-server, ovs-vswitchd, ovs-vsctl, ovs-ofctl), python3.
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
N=${N:-100000}
ROUNDS=${ROUNDS:-3}
FVS_BIN=${FVS_BIN:-$ROOT/target/release}
LOG=${LOG:-/tmp/fvs-flowmod}
TAG=fm$$
NSA=${TAG}a; NSB=${TAG}b; BR=${TAG}br
mkdir -p "$LOG"

die() { echo "flowmod_vs_ovs: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || die "must run as root (namespaces, raw sockets)"
for x in ovsdb-tool ovsdb-server ovs-vswitchd ovs-vsctl ovs-ofctl python3; do
    command -v $x >/dev/null || die "missing $x (apt-get install openvswitch-switch python3)"
done
if [ ! -x "$FVS_BIN/fvs-vswitchd" ]; then
    (cd "$ROOT" && cargo build --release -p fvs-cli) || die "cargo build --release -p fvs-cli failed"
fi

DIR=""; PIDS=()
stop_switch() {
    local p
    for p in "${PIDS[@]}"; do
        kill "$p" 2>/dev/null
        for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$p" 2>/dev/null
    done
    PIDS=()
    ip link del ${TAG}a0 2>/dev/null; ip link del ${TAG}b0 2>/dev/null; ip link del $BR 2>/dev/null
    ip netns del $NSA 2>/dev/null; ip netns del $NSB 2>/dev/null
    [ -n "$DIR" ] && rm -rf "$DIR"; DIR=""
}
trap stop_switch EXIT
trap 'exit 1' INT TERM

# The rules: N destinations 10.0.0.1 + i from port 1 to port 2; the last one is the probe's.
FLOWS=$LOG/flows.txt
python3 - "$N" > "$FLOWS" <<'EOF'
import sys
n = int(sys.argv[1])
out = []
for i in range(n):
    v = (10 << 24) + 1 + i
    out.append(f"priority=10,ip,in_port=1,nw_dst={v >> 24}.{(v >> 16) & 255}.{(v >> 8) & 255}.{v & 255},actions=output:2\n")
sys.stdout.write("".join(out))
EOF
LAST=$(tail -1 "$FLOWS" | sed 's/.*nw_dst=\([0-9.]*\),.*/\1/')

# Probe frames: sent every ms from $NSA, the first one seen in $NSB prints its arrival time.
PROBE=$LOG/probe.py
cat > "$PROBE" <<'EOF'
import socket, struct, sys, time
mode, dst = sys.argv[1], sys.argv[2]
ETH_P_ALL = 3
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
s.bind(("eth0", 0))
mark = b"fvs-flowmod-probe"
if mode == "send":
    d = socket.inet_aton(dst); src = socket.inet_aton("10.255.0.1")
    udp = struct.pack("!HHHH", 4000, 4001, 8 + len(mark), 0) + mark
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 0, 0, 64, 17, 0, src, d)
    c = sum(struct.unpack("!10H", ip)); c = (c & 0xffff) + (c >> 16); c = (c & 0xffff) + (c >> 16)
    ip = ip[:10] + struct.pack("!H", ~c & 0xffff) + ip[12:]
    frame = b"\x02\x00\x00\x00\x00\x02" + b"\x02\x00\x00\x00\x00\x01" + b"\x08\x00" + ip + udp
    while True:
        s.send(frame)
        time.sleep(0.001)
else:
    print("ready", flush=True)
    while True:
        b = s.recv(2048)
        if mark in b:
            print("%.6f" % time.time(), flush=True)
            break
EOF

setup_ports() {
    ip netns add $NSA && ip netns add $NSB || die "ip netns add"
    ip link add ${TAG}a0 type veth peer name eth0 netns $NSA || die "veth"
    ip link add ${TAG}b0 type veth peer name eth0 netns $NSB || die "veth"
    for ns in $NSA $NSB; do
        ip -n $ns link set eth0 up; ip -n $ns link set lo up
        ip netns exec $ns sysctl -qw net.ipv6.conf.all.disable_ipv6=1
    done
    ip link set ${TAG}a0 up; ip link set ${TAG}b0 up
}

start() {  # start fvs|ovs: the switch with $BR, ports 1 and 2, no rules
    DIR=$(mktemp -d /tmp/fvs-flowmod.XXXXXX)
    setup_ports
    if [ "$1" = fvs ]; then
        export FVS_RUNDIR=$DIR FVS_DBDIR=$DIR FVS_LOGDIR=$DIR
        "$FVS_BIN/fvs-vswitchd" --pidfile --detach --log-file 2>/dev/null || die "fvs-vswitchd"
        PIDS=($(cat $DIR/fvs-vswitchd.pid))
        VSCTL() { "$FVS_BIN/fvs-vsctl" --timeout=60 "$@"; }
        OFCTL() { "$FVS_BIN/fvs-ofctl" "$@"; }
        # The PMD backs off when idle, as OVS's non-PMD thread polls these ports.
        VSCTL set Open_vSwitch . other_config:pmd-sleep-max=500 || die "fvs-vsctl"
    else
        export OVS_RUNDIR=$DIR OVS_DBDIR=$DIR OVS_LOGDIR=$DIR OVS_SYSCONFDIR=$DIR
        ovsdb-tool create $DIR/conf.db /usr/share/openvswitch/vswitch.ovsschema || die "ovsdb-tool"
        ovsdb-server $DIR/conf.db --remote=punix:$DIR/db.sock --pidfile=$DIR/ovsdb-server.pid \
            --unixctl=$DIR/ovsdb-server.ctl --log-file=$DIR/ovsdb-server.log --detach 2>/dev/null || die "ovsdb-server"
        PIDS=($(cat $DIR/ovsdb-server.pid))
        VSCTL() { ovs-vsctl --db=unix:$DIR/db.sock --timeout=60 "$@"; }
        OFCTL() { ovs-ofctl "$@"; }
        VSCTL --no-wait init
        ovs-vswitchd unix:$DIR/db.sock --pidfile=$DIR/ovs-vswitchd.pid --unixctl=$DIR/ovs-vswitchd.ctl \
            --log-file=$DIR/ovs-vswitchd.log --detach 2>/dev/null || die "ovs-vswitchd"
        PIDS=($(cat $DIR/ovs-vswitchd.pid) "${PIDS[@]}")
    fi
    VSCTL add-br $BR -- set bridge $BR datapath_type=netdev \
        -- add-port $BR ${TAG}a0 -- set Interface ${TAG}a0 ofport_request=1 \
        -- add-port $BR ${TAG}b0 -- set Interface ${TAG}b0 ofport_request=2 || die "$1: add-br"
    OFCTL del-flows $BR || die "$1: del-flows"
}

now() { date +%s.%N; }
sub() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", a - b }'; }

one() {  # one fvs|ovs: sets ADD and FWD (seconds)
    local p=$1 out=$LOG/$1.probe
    start $p
    ip netns exec $NSB python3 "$PROBE" recv "$LAST" > "$out" 2>&1 &
    local rcv=$!
    for _ in $(seq 50); do grep -q ready "$out" && break; sleep 0.1; done
    ip netns exec $NSA python3 "$PROBE" send "$LAST" 2>/dev/null &
    local snd=$!
    sleep 1   # the probe is dropped (no rule) and the datapath has cached that
    if [ "$(sed -n 2p "$out")" != "" ]; then kill $snd $rcv; die "$p: forwarded before any rule"; fi
    local t0 t1
    t0=$(now)
    OFCTL add-flows $BR "$FLOWS" || { kill $snd $rcv; die "$p: add-flows failed"; }
    t1=$(now)
    for _ in $(seq 600); do [ -n "$(sed -n 2p "$out")" ] && break; sleep 0.1; done
    kill $snd 2>/dev/null; kill $rcv 2>/dev/null; wait $snd $rcv 2>/dev/null
    local tf; tf=$(sed -n 2p "$out")
    local count; count=$(OFCTL dump-aggregate $BR | grep -o 'flow_count=[0-9]*' | cut -d= -f2)
    stop_switch
    [ "$count" = "$N" ] || die "$p: $count rules installed, not $N"
    [ -n "$tf" ] || die "$p: the probe was never forwarded"
    ADD=$(sub $t1 $t0); FWD=$(sub $tf $t0)
}

median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{v[NR]=$1} END{if (NR % 2) print v[(NR+1)/2]; else printf "%.3f\n", (v[NR/2] + v[NR/2+1]) / 2}'; }

echo "flow-mod: $N rules (priority=10,ip,in_port=1,nw_dst=A,actions=output:2) by add-flows; probe to $LAST"
FA=""; FF=""; OA=""; OF=""
for ((r = 1; r <= ROUNDS; r++)); do
    if [ $((r % 2)) = 1 ]; then order="fvs ovs"; else order="ovs fvs"; fi
    for p in $order; do
        one $p; add=$ADD; fwd=$FWD
        printf "  round %d %-3s: add-flows %8.3f s, forwarding by the last rule after %8.3f s\n" $r $p $add $fwd
        if [ $p = fvs ]; then FA="$FA $add"; FF="$FF $fwd"; else OA="$OA $add"; OF="$OF $fwd"; fi
    done
done
fa=$(echo $FA | median); ff=$(echo $FF | median); oa=$(echo $OA | median); of=$(echo $OF | median)
echo "median: fvs add-flows $fa s, forwarding after $ff s; OVS add-flows $oa s, forwarding after $of s"
awk -v fa=$fa -v ff=$ff -v oa=$oa -v of=$of -v n=$N 'BEGIN {
    printf "OVS/fvs: add-flows %.2fx, until forwarding %.2fx (fvs %.0f rules/s, OVS %.0f rules/s)\n",
        oa / fa, of / ff, n / fa, n / oa }'
