#!/bin/bash
# vhost_bench.sh - the project's copy of ../shared/bench/ovs_vhost_bench.sh (the harness the
# issue-7 figures of OVS come from), with three additions; with none (HOST_PROBE=0), it does
# exactly what the shared harness does.  Run as root; benches/vhost_vs_ovs.sh drives it.
#
#   OF_FLOWS=prefix  PREFIX_LEN=16   a few wildcard rules "ip,in_port=X,nw_dst=A.B.0.0/16", one
#                    per /PREFIX_LEN block the flowgen destinations fall in (10.253.0.0 + i):
#                    with NFLOWS=1000000 that is 16 blocks, so megaflows stay wide while the
#                    exact-match caches see a million flows (issue 7, scenario e).
#   TOPO=p2p         the shared harness's topology (default).
#   TOPO=vxlan-encap / vxlan-decap   (scenario f) the switch runs in network namespace $VX_NS:
#       br-int: vhu0 (ofport 1) <-> vx0 (type=vxlan remote_ip=172.31.0.2 key=$VNI, ofport 2)
#       br-phy: vhu1 (ofport 1) <-> LOCAL (br-phy, 172.31.0.1/24; the remote's MAC set with
#               tnl/arp/set), flows in_port=1,actions=LOCAL and in_port=LOCAL,actions=output:1
#     testpmd io-forwards frames replayed from a pcap (net_pcap, infinite_rx) into one
#     virtio-user port and counts what arrives on the other (drained into net_null):
#       encap: PKT_LEN-byte frames into vhu0 -> VXLAN frames (PKT_LEN + 50) out of vhu1
#       decap: VXLAN frames (PKT_LEN + 50, to br-phy's MAC) into vhu1 -> PKT_LEN-byte frames out of vhu0
#     NFLOWS inner destinations (10.253.0.0 + i), one frame each in the pcap
#     (benches/vxlan_frames.py).  The final line is the rate arriving at the far port.
#     With SWITCH=testpmd the null switch io-forwards the same frames between the two sockets.
#   SWITCH_CONFIG=""  more Open_vSwitch settings for fvs, e.g. "other_config:pmd-sleep-max=1".
#   SWITCH_CONFIG_CYCLE="A|B"  settings (fvs or OVS) applied in turn before each window (1: A, 2: B,
#                    3: A, ...), for comparing run-time settings in neighbouring windows of one
#                    run, where the host's state changes less than between runs.
#   GEN_CYCLES=1     the generator runs with --record-core-cycles and each window prints its
#                    own busy cycles per packet and the share of its sends refused by a full
#                    ring (the switch fell behind: the generator built those packets for nothing).
#   HOST_PROBE=1     (default) benches/hostprobe.rs on both CPUs: a window during which the host
#                    ran this VM slow (more than HOST_SLOW_MAX, 25%, of the samples) is flagged
#                    as contaminated, like one with other load or steal.
#
# --- the shared harness's own description follows ---
# ovs_vhost_bench.sh - OVS-DPDK vhost-user throughput benchmark without a NIC, end to end
# (setup -> measure -> teardown).  Debian 12: openvswitch-switch-dpdk 3.1 + dpdk/dpdk-dev 22.11.
#
#   testpmd (2x virtio-user, vhost-user SERVER)            OVS br0 (datapath_type=netdev)
#     port0 = net_virtio_user0 <--- vhu0.sock --->  vhu0 (dpdkvhostuserclient, ofport 1)
#     port1 = net_virtio_user1 <--- vhu1.sock --->  vhu1 (dpdkvhostuserclient, ofport 2)
#   flows: in_port=1,actions=output:2  and  in_port=2,actions=output:1
#
# Traffic is bidirectional: in flowgen mode testpmd generates on both ports and discards
# what it receives.  The final line is the AGGREGATE rate received back by testpmd
# (port0 RX + port1 RX, measured with testpmd's TSC-based Rx-pps over the window),
# i.e. the total packets/s the switch delivered.  Per-direction rates are printed too.
#
# Tunables (environment variables):
#   DURATION=10  WARMUP=3     measurement window / warm-up before the first window (s)
#   WINDOWS=1                 number of back-to-back windows; the final line is their median
#   PKT_LEN=64                frame size incl. 4B FCS (the mbuf carries PKT_LEN-4 bytes)
#   NFLOWS=1                  flowgen flows: dst IP 10.253.0.0 + i, i < NFLOWS (src/MACs fixed)
#   OF_FLOWS=port             port : in_port-only rules (OVS "simple match" fast path)
#                             nwdst: 2*NFLOWS rules "ip,in_port=X,nw_dst=10.253.a.b" (EMC/dpcls)
#   EMC_PROB=100  SMC=false   other_config:emc-insert-inv-prob (0 disables EMC) / smc-enable
#   MODE=flowgen              flowgen: open loop (default)
#                             io: closed loop, testpmd io-forwards, primed by "start tx_first $TXFIRST"
#   SWITCH=ovs                ovs, fvs (fvs-vswitchd driven with the same commands, s/ovs-/fvs-/;
#                             binaries from $FVS_BIN, default ./target/release), or testpmd: replace
#                             OVS by a 2nd testpmd (net_vhost, io fwd) on PMD_CPU = ceiling of this
#                             harness (cost of a "null" switch)
#   PMD_CPU=1 GEN_CPU=0 OVS_MAIN_CPU=0   CPU placement
#   OVS_MEM=512 TPMD_MEM=256  MB of hugepage memory for OVS (dpdk-socket-mem) / testpmd (-m)
#   VU_EXTRA=""               extra virtio-user devargs, e.g. ",mrg_rxbuf=0" or ",packed_vq=1"
#   GEN_ARGS=""               extra testpmd options for the generator, after the defaults (a later
#                             option wins), e.g. "--txd=256 --burst=64"
#   TPMD_EAL="--in-memory --single-file-segments --huge-dir=$B/hugepages -m 256"  testpmd memory EAL args
#   QUIET_WAIT=60             wait up to N s for the machine to be idle (<15% busy) first (0 = don't)
#   B=/tmp/ovsbench           work dir: etc/ run/ log/ hugepages/ + vhost sockets
set -u
B=${B:-/tmp/ovsbench}
DURATION=${DURATION:-10}; WARMUP=${WARMUP:-3}; PKT_LEN=${PKT_LEN:-64}
NFLOWS=${NFLOWS:-1}; OF_FLOWS=${OF_FLOWS:-port}; EMC_PROB=${EMC_PROB:-100}; SMC=${SMC:-false}
MODE=${MODE:-flowgen}; TXFIRST=${TXFIRST:-16}; SWITCH=${SWITCH:-ovs}; WINDOWS=${WINDOWS:-1}
PMD_CPU=${PMD_CPU:-1}; GEN_CPU=${GEN_CPU:-0}; OVS_MAIN_CPU=${OVS_MAIN_CPU:-0}
OVS_MEM=${OVS_MEM:-512}; TPMD_MEM=${TPMD_MEM:-256}; VU_EXTRA=${VU_EXTRA:-}; GEN_ARGS=${GEN_ARGS:-}; QUIET_WAIT=${QUIET_WAIT:-60}
OVS_VSWITCHD=${OVS_VSWITCHD:-/usr/lib/openvswitch-switch-dpdk/ovs-vswitchd-dpdk}
FVS_BIN=${FVS_BIN:-$PWD/target/release}
GEN_CYCLES=${GEN_CYCLES:-0}; SWITCH_CONFIG=${SWITCH_CONFIG:-}; SWITCH_CONFIG_CYCLE=${SWITCH_CONFIG_CYCLE:-}
PREFIX_LEN=${PREFIX_LEN:-16}; TOPO=${TOPO:-p2p}; VX_NS=${VX_NS:-vhbench}; VNI=${VNI:-100}
VX_PEER_MAC=02:00:00:00:00:02          # the remote VTEP 172.31.0.2 (nobody: frames go to testpmd)
is_vx() { [ "$TOPO" != p2p ]; }
NSX=(); is_vx && NSX=(ip netns exec "$VX_NS")   # the switch's network namespace (VXLAN topologies)
P=ovs; [ "$SWITCH" = fvs ] && P=fvs          # command prefix of the switch under test
vsctl() { if [ $P = fvs ]; then timeout 30 "$FVS_BIN/fvs-vsctl" "$@"; else timeout 30 ovs-vsctl "$@"; fi; }
ofctl() { if [ $P = fvs ]; then timeout 60 "$FVS_BIN/fvs-ofctl" "$@"; else timeout 60 ovs-ofctl "$@"; fi; }
is_switch() { [ "$SWITCH" = ovs ] || [ "$SWITCH" = fvs ]; }
OVS_PREFIX=ovsbench; TPMD_PREFIX=tpmdbench; SW_PREFIX=swbench   # distinct DPDK --file-prefix
HUGE=$B/hugepages; FIFO=$B/testpmd.fifo; SWFIFO=$B/testpmd-switch.fifo; TLOG=$B/log/testpmd.out; SWLOG=$B/log/testpmd-switch.out
export OVS_RUNDIR=$B/run OVS_DBDIR=$B/etc OVS_LOGDIR=$B/log
export FVS_RUNDIR=$B/run FVS_DBDIR=$B/etc FVS_LOGDIR=$B/log
# Explicit unixctl sockets: the DPDK binary's program name is "ovs-vswitchd-dpdk", so
# "ovs-appctl -t ovs-vswitchd" (pidfile -> ovs-vswitchd.<pid>.ctl) would not find it.
VSCTL_SOCK=$B/run/$P-vswitchd.ctl; DBCTL_SOCK=$B/run/ovsdb-server.ctl
appctl() { if [ $P = fvs ]; then timeout 20 "$FVS_BIN/fvs-appctl" -t $VSCTL_SOCK "$@"; else timeout 20 ovs-appctl -t $VSCTL_SOCK "$@"; fi; }
log() { echo "[$(date +%T)] $*" >&2; }
die() { log "FATAL: $*"; exit 1; }

TPMD_PID=""; SW_PID=""; PROBE_PIDS=""; ORIG_NR_HP=""; MOUNTED=0; FIFO_OPEN=0; SWFIFO_OPEN=0; NETNS_MADE=0
stop_pid() {  # stop_pid PID NAME : wait up to 5 s, then SIGTERM, then SIGKILL (only our own PIDs)
    local p=$1 i
    for i in $(seq 1 50); do kill -0 "$p" 2>/dev/null || return 0; sleep 0.1; done
    log "$2 ($p) still alive, SIGTERM"; kill "$p" 2>/dev/null; sleep 1
    kill -0 "$p" 2>/dev/null && { log "$2 ($p) SIGKILL"; kill -9 "$p"; }
}
cleanup() {
    set +e
    trap '' INT TERM   # a signal now must not cut the cleanup short (hugepages, mounts left)
    log "cleanup"
    for p in $PROBE_PIDS; do kill "$p" 2>/dev/null; done
    if [ -n "$TPMD_PID" ] && kill -0 "$TPMD_PID" 2>/dev/null; then
        [ $FIFO_OPEN = 1 ] && { echo "stop" >&3; echo "quit" >&3; } 2>/dev/null
        stop_pid "$TPMD_PID" testpmd
    fi
    [ $FIFO_OPEN = 1 ] && exec 3>&-
    if [ -n "$SW_PID" ] && kill -0 "$SW_PID" 2>/dev/null; then
        [ $SWFIFO_OPEN = 1 ] && { echo "stop" >&4; echo "quit" >&4; } 2>/dev/null
        stop_pid "$SW_PID" testpmd-switch
    fi
    [ $SWFIFO_OPEN = 1 ] && exec 4>&-
    for d in $P-vswitchd ovsdb-server; do
        pf=$B/run/$d.pid
        [ -f "$pf" ] || continue
        p=$(cat "$pf" 2>/dev/null)
        if [ -n "$p" ] && kill -0 "$p" 2>/dev/null; then
            if [ $d = $P-vswitchd ]; then appctl exit --cleanup >/dev/null 2>&1
            else timeout 5 ovs-appctl -t $DBCTL_SOCK exit >/dev/null 2>&1; fi
            stop_pid "$p" $d
        fi
        rm -f "$pf"
    done
    if [ $MOUNTED = 1 ]; then
        rm -f "$HUGE"/* 2>/dev/null
        umount "$HUGE" || log "WARN: umount $HUGE failed"
    fi
    [ -n "$ORIG_NR_HP" ] && echo "$ORIG_NR_HP" > /proc/sys/vm/nr_hugepages
    [ $NETNS_MADE = 1 ] && ip netns del "$VX_NS"
    rm -rf /var/run/dpdk/$OVS_PREFIX /var/run/dpdk/$TPMD_PREFIX /var/run/dpdk/$SW_PREFIX
    rmdir /var/run/dpdk 2>/dev/null   # only if empty
    rm -f "$FIFO" "$B"/vhu0.sock "$B"/vhu1.sock "$B"/etc/conf.db "$B"/etc/.conf.db.~lock~ "$B"/run/*.ctl "$B"/run/db.sock "$B"/frames.pcap
    log "cleanup done (nr_hugepages=$(cat /proc/sys/vm/nr_hugepages))"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
trap '' PIPE     # a dead testpmd must not kill us via SIGPIPE on the FIFO; cleanup still runs

# ------------------------------------------------------------------------------ preflight
[ "$(id -u)" = 0 ] || die "must run as root"
if [ "$SWITCH" = fvs ]; then
    for x in fvs-vswitchd fvs-vsctl fvs-ofctl fvs-appctl; do
        [ -x "$FVS_BIN/$x" ] || die "missing $FVS_BIN/$x (cargo build --release; or set FVS_BIN)"
    done
    command -v dpdk-testpmd >/dev/null || die "missing dpdk-testpmd (apt-get install dpdk-dev)"
else
for x in ovsdb-tool ovsdb-server ovs-vsctl ovs-ofctl ovs-appctl dpdk-testpmd stdbuf "$OVS_VSWITCHD"; do
    command -v "$x" >/dev/null || die "missing $x (apt-get install openvswitch-switch-dpdk dpdk-dev)"
done
fi
ls /usr/lib/x86_64-linux-gnu/dpdk/pmds-*/librte_net_virtio.so >/dev/null 2>&1 \
    || die "DPDK PMD plugins missing (apt-get install dpdk-dev librte-net-virtio23 librte-net-vhost23 librte-mempool-ring23)"
for p in $B/run/ovs-vswitchd.pid $B/run/fvs-vswitchd.pid $B/run/ovsdb-server.pid; do
    [ -f $p ] && kill -0 "$(cat $p)" 2>/dev/null && die "a previous instance is still running ($p)"
done
case $TOPO in p2p|vxlan-encap|vxlan-decap) ;; *) die "TOPO must be p2p, vxlan-encap or vxlan-decap" ;; esac
case $OF_FLOWS in port|nwdst|prefix) ;; *) die "OF_FLOWS must be port, nwdst or prefix" ;; esac
if is_vx; then
    ls /usr/lib/x86_64-linux-gnu/dpdk/pmds-*/librte_net_pcap.so /usr/lib/x86_64-linux-gnu/dpdk/pmds-*/librte_net_null.so \
        >/dev/null 2>&1 || die "DPDK pcap/null PMDs missing (apt-get install librte-net-pcap23 librte-net-null23)"
    ip netns list | grep -qw "$VX_NS" && die "network namespace $VX_NS exists (stale run?)"
    ip netns add "$VX_NS" || die "ip netns add $VX_NS"; NETNS_MADE=1
fi
mkdir -p $B/etc $B/run $B/log $HUGE
mountpoint -q $HUGE && die "$HUGE already mounted (stale run?)"
rm -f $B/log/*.log $TLOG $SWLOG $B/run/*.ctl $B/etc/conf.db $B/vhu0.sock $B/vhu1.sock

if [ "$QUIET_WAIT" -gt 0 ]; then    # optional: wait for other load on the box to go away
    end=$((SECONDS + QUIET_WAIT))
    while :; do
        a=$(awk '/^cpu /{print $2+$3+$4+$7+$8}' /proc/stat); sleep 2
        b=$(awk '/^cpu /{print $2+$3+$4+$7+$8}' /proc/stat)
        busy=$(( (b - a) * 100 / $(getconf CLK_TCK) / 2 ))
        [ $busy -lt 15 ] && { log "machine quiet (${busy}% busy)"; break; }
        [ $SECONDS -ge $end ] && { log "machine still busy (${busy}%), starting anyway"; break; }
    done
fi

# ------------------------------------------------------------------------------ host probe
# The host changes under this VM for seconds at a time (a vCPU shares its core, or the two
# vCPUs land far apart and a cache line takes 6x longer between them), slowing switch and
# generator alike, unseen by steal time: benches/hostprobe.rs times a fixed piece of
# arithmetic on each CPU and cache-line round trips between them every 200 ms, from now on.
# A window in which more than HOST_SLOW_MAX% of the samples were slow (round trip >= 2x the
# fastest so far, or arithmetic >= 1.25x) is contaminated.
HOST_PROBE=${HOST_PROBE:-1}; HOST_SLOW_MAX=${HOST_SLOW_MAX:-25}
if [ "$HOST_PROBE" = 1 ]; then
    command -v rustc >/dev/null || die "rustc needed for the host probe (or HOST_PROBE=0)"
    rustc -O --edition 2021 -o $B/hostprobe "$(dirname "$0")/hostprobe.rs" || die "cannot build benches/hostprobe.rs"
    $B/hostprobe $GEN_CPU $PMD_CPU > $B/log/hostprobe.log 2>&1 &
    PROBE_PIDS=$!
    sleep 0.5
    kill -0 $PROBE_PIDS 2>/dev/null || die "hostprobe: $(cat $B/log/hostprobe.log)"
fi
host_slow() {  # host_slow T_START T_END: % of the probe's samples in the interval that were slow
    [ "$HOST_PROBE" = 1 ] || { echo 0; return; }
    awk -v ta=$1 -v tb=$2 '
        $2 != "-" && (!r || $2 < r) { r = $2 }
        !a || $3 < a { a = $3 }
        !b || $4 < b { b = $4 }
        { t[NR] = $1; rt[NR] = $2; ua[NR] = $3; ub[NR] = $4 }
        END { for (i = 1; i <= NR; i++) if (t[i] >= ta && t[i] <= tb) {
                  n++; if (rt[i] == "-" || rt[i] >= 2 * r || ua[i] >= 1.25 * a || ub[i] >= 1.25 * b) slow++ }
              printf "%.0f\n", n ? 100 * slow / n : 100 }' $B/log/hostprobe.log
}

# ------------------------------------------------------------------------------ hugepages
need=$(( (OVS_MEM + TPMD_MEM) / 2 + 64 ))          # 2 MB pages
ORIG_NR_HP=$(cat /proc/sys/vm/nr_hugepages)
free0=$(awk '/HugePages_Free/{print $2}' /proc/meminfo)
echo $(( ORIG_NR_HP + need )) > /proc/sys/vm/nr_hugepages
free1=$(awk '/HugePages_Free/{print $2}' /proc/meminfo)
[ $(( free1 - free0 )) -ge $need ] || die "could only get $((free1 - free0)) of $need 2MB hugepages"
mount -t hugetlbfs -o pagesize=2M none $HUGE || die "mount hugetlbfs"; MOUNTED=1

# ------------------------------------------------------------------------------ switch
start_ovs() {
    ovsdb-tool create $B/etc/conf.db /usr/share/openvswitch/vswitch.ovsschema || die "ovsdb-tool create"
    ovsdb-server $B/etc/conf.db --remote=punix:$B/run/db.sock --pidfile=$B/run/ovsdb-server.pid \
        --unixctl=$DBCTL_SOCK --log-file=$B/log/ovsdb-server.log --detach --no-chdir 2>/dev/null \
        || die "ovsdb-server"
    ovs-vsctl --no-wait init
    ovs-vsctl --no-wait set Open_vSwitch . \
        other_config:dpdk-init=true \
        other_config:dpdk-socket-mem=$OVS_MEM other_config:dpdk-socket-limit=$OVS_MEM \
        other_config:dpdk-lcore-mask=$(printf 0x%x $((1 << OVS_MAIN_CPU))) \
        other_config:pmd-cpu-mask=$(printf 0x%x $((1 << PMD_CPU))) \
        other_config:emc-insert-inv-prob=$EMC_PROB other_config:smc-enable=$SMC \
        "other_config:dpdk-extra=--file-prefix=$OVS_PREFIX --huge-dir=$HUGE --no-pci"
    "${NSX[@]}" "$OVS_VSWITCHD" unix:$B/run/db.sock --pidfile=$B/run/ovs-vswitchd.pid --unixctl=$VSCTL_SOCK \
        --log-file=$B/log/ovs-vswitchd.log --detach --no-chdir 2>/dev/null || die "ovs-vswitchd"
    for i in $(seq 1 100); do
        [ "$(ovs-vsctl get Open_vSwitch . dpdk_initialized 2>/dev/null)" = true ] && break; sleep 0.2
    done
    [ "$(ovs-vsctl get Open_vSwitch . dpdk_initialized)" = true ] || die "DPDK init failed, see $B/log/ovs-vswitchd.log"
    configure_bridge
}
configure_bridge() {
    if is_vx; then configure_vxlan; return; fi
    vsctl add-br br0 -- set bridge br0 datapath_type=netdev \
      -- add-port br0 vhu0 -- set Interface vhu0 type=dpdkvhostuserclient options:vhost-server-path=$B/vhu0.sock ofport_request=1 \
      -- add-port br0 vhu1 -- set Interface vhu1 type=dpdkvhostuserclient options:vhost-server-path=$B/vhu1.sock ofport_request=2 \
      || die "add-br/add-port"
    ofctl del-flows br0
    if [ "$OF_FLOWS" = nwdst ]; then
        ff=$B/run/flows.txt; : > $ff
        for ((i = 0; i < NFLOWS; i++)); do
            v=$(( (10 << 24) + (253 << 16) + i ))   # flowgen: destination 10.253.0.0 + i
            ip="$((v >> 24)).$(((v >> 16) & 255)).$(((v >> 8) & 255)).$((v & 255))"
            echo "priority=10,ip,in_port=1,nw_dst=$ip,actions=output:2" >> $ff
            echo "priority=10,ip,in_port=2,nw_dst=$ip,actions=output:1" >> $ff
        done
        ofctl add-flows br0 $ff || die "add-flows"
    elif [ "$OF_FLOWS" = prefix ]; then
        ff=$B/run/flows.txt; : > $ff
        local first=$(( (10 << 24) + (253 << 16) )) size=$(( 1 << (32 - PREFIX_LEN) )) v ip
        for ((v = first & ~(size - 1); v < first + NFLOWS; v += size)); do
            ip="$((v >> 24)).$(((v >> 16) & 255)).$(((v >> 8) & 255)).$((v & 255))/$PREFIX_LEN"
            echo "priority=10,ip,in_port=1,nw_dst=$ip,actions=output:2" >> $ff
            echo "priority=10,ip,in_port=2,nw_dst=$ip,actions=output:1" >> $ff
        done
        ofctl add-flows br0 $ff || die "add-flows"
    else
        ofctl add-flow br0 in_port=1,actions=output:2
        ofctl add-flow br0 in_port=2,actions=output:1
    fi
    log "$P up: $(ofctl dump-aggregate br0 | grep -o 'flow_count=[0-9]*'), PMD on CPU $PMD_CPU, main/handlers on CPU $OVS_MAIN_CPU"
}
configure_vxlan() {
    vsctl add-br br-int -- set bridge br-int datapath_type=netdev \
      -- add-port br-int vhu0 -- set Interface vhu0 type=dpdkvhostuserclient options:vhost-server-path=$B/vhu0.sock ofport_request=1 \
      -- add-port br-int vx0 -- set Interface vx0 type=vxlan options:remote_ip=172.31.0.2 options:key=$VNI ofport_request=2 \
      -- add-br br-phy -- set bridge br-phy datapath_type=netdev \
      -- add-port br-phy vhu1 -- set Interface vhu1 type=dpdkvhostuserclient options:vhost-server-path=$B/vhu1.sock ofport_request=1 \
      || die "add-br/add-port (vxlan)"
    local i
    for i in $(seq 1 50); do ip netns exec "$VX_NS" ip link show br-phy >/dev/null 2>&1 && break; sleep 0.2; done
    ip netns exec "$VX_NS" ip addr add 172.31.0.1/24 dev br-phy || die "no br-phy device in $VX_NS"
    ip netns exec "$VX_NS" ip link set br-phy up
    for i in $(seq 1 50); do appctl ovs/route/lookup 172.31.0.2 2>/dev/null | grep -q br-phy && break; sleep 0.2; done
    appctl ovs/route/lookup 172.31.0.2 | grep -q br-phy || die "no route to 172.31.0.2 through br-phy: $(appctl ovs/route/show)"
    appctl tnl/arp/set br-phy 172.31.0.2 $VX_PEER_MAC >/dev/null || die "tnl/arp/set"
    ofctl del-flows br-int; ofctl del-flows br-phy
    ofctl add-flow br-int in_port=1,actions=output:2; ofctl add-flow br-int in_port=2,actions=output:1
    ofctl add-flow br-phy in_port=1,actions=LOCAL; ofctl add-flow br-phy in_port=LOCAL,actions=output:1
    BRPHY_MAC=$(ip netns exec "$VX_NS" cat /sys/class/net/br-phy/address)
    log "$P up ($TOPO): br-int $(ofctl dump-aggregate br-int | grep -o 'flow_count=[0-9]*'), br-phy MAC $BRPHY_MAC, neighbour: $(appctl tnl/arp/show | grep 172.31.0.2)"
}
start_fvs() {
    "${NSX[@]}" "$FVS_BIN/fvs-vswitchd" --pidfile=$B/run/fvs-vswitchd.pid --unixctl=$VSCTL_SOCK \
        --log-file=$B/log/fvs-vswitchd.log --detach || die "fvs-vswitchd"
    vsctl --no-wait set Open_vSwitch . \
        other_config:dpdk-init=true other_config:dpdk-socket-mem=$OVS_MEM \
        other_config:dpdk-lcore-mask=$(printf 0x%x $((1 << OVS_MAIN_CPU))) \
        other_config:pmd-cpu-mask=$(printf 0x%x $((1 << PMD_CPU))) \
        other_config:emc-insert-inv-prob=$EMC_PROB other_config:smc-enable=$SMC $SWITCH_CONFIG || die "fvs-vsctl set"
    configure_bridge
}
start_testpmd_switch() {   # calibration: 2nd testpmd = vhost-user backend doing plain io forwarding
    # Interactive (commands through its own FIFO, fd 4) so that each window can read its busy
    # cycles per packet (--record-core-cycles counts only bursts that received something,
    # as the switches' "processing cycles" do).
    local c=(dpdk-testpmd --file-prefix=$SW_PREFIX --in-memory --huge-dir=$HUGE -m $OVS_MEM --no-pci
        --lcores=0@$PMD_CPU,1@$PMD_CPU
        --vdev=net_vhost0,iface=$B/vhu0.sock,client=1,queues=1
        --vdev=net_vhost1,iface=$B/vhu1.sock,client=1,queues=1
        -- -i --nb-cores=1 --forward-mode=io --rxd=1024 --txd=1024 --total-num-mbufs=16384
        --record-core-cycles)
    log "testpmd-switch: ${c[*]}"
    rm -f $SWFIFO; mkfifo $SWFIFO
    stdbuf -oL "${c[@]}" < $SWFIFO > $SWLOG 2>&1 &
    SW_PID=$!
    exec 4> $SWFIFO; SWFIFO_OPEN=1
    echo start >&4
    sleep 2; kill -0 $SW_PID 2>/dev/null || die "testpmd-switch died: $(tail -5 $SWLOG)"
}
swp() {  # swp CMD: send a command to the null switch, print the output it produced
    local off; off=$(stat -c %s $SWLOG); echo "$1" >&4; sleep 0.5; tail -c +$((off + 1)) $SWLOG
}
case $SWITCH in
    ovs) start_ovs ;;
    fvs) start_fvs ;;
    testpmd) start_testpmd_switch ;;
    *) die "SWITCH must be ovs, fvs or testpmd" ;;
esac

# ------------------------------------------------------------------------------ testpmd generator/sink
rm -f $FIFO; mkfifo $FIFO
VU="server=1,queue_size=1024$VU_EXTRA"
# flowgen subtracts the 4B FCS itself (mbuf = PKT_LEN-4 bytes); txonly (used by tx_first) does not
TXLEN=$PKT_LEN; [ "$MODE" = io ] && TXLEN=$((PKT_LEN - 4))
# vhost-user needs the generator's memory to be shareable by fd, with few fds (max 8 regions):
# --in-memory --single-file-segments = one memfd per memseg list, nothing left in hugetlbfs.
TPMD_EAL=${TPMD_EAL:-"--in-memory --single-file-segments --huge-dir=$HUGE -m $TPMD_MEM"}
RXP0=0; RXP1=1          # testpmd's two virtio-user ports (p2p: both directions)
if is_vx; then
    # Ports: 0 = pcap replay, 1 = virtio-user into the switch, 2 = virtio-user out of it,
    # 3 = null sink; testpmd's paired topology forwards 0 -> 1 and 2 -> 3.
    if [ "$TOPO" = vxlan-encap ]; then VX_IN=vhu0; VX_OUT=vhu1; else VX_IN=vhu1; VX_OUT=vhu0; fi
    RXP0=1; RXP1=2; MODE=io
    python3 "$(dirname "$0")/vxlan_frames.py" --mode "${TOPO#vxlan-}" --len $((PKT_LEN - 4)) --flows "$NFLOWS" \
        --vni "$VNI" --outer-dst-mac "${BRPHY_MAC:-02:00:00:00:00:01}" --outer-src-mac $VX_PEER_MAC \
        "$B/frames.pcap" || die "vxlan_frames.py"
    TPMD_CMD=(dpdk-testpmd --file-prefix=$TPMD_PREFIX $TPMD_EAL --no-pci --lcores=0@$GEN_CPU,1@$GEN_CPU
        --vdev=net_pcap0,rx_pcap=$B/frames.pcap,infinite_rx=1
        --vdev=net_virtio_user0,path=$B/$VX_IN.sock,$VU
        --vdev=net_virtio_user1,path=$B/$VX_OUT.sock,$VU
        --vdev=net_null0,no-rx=1
        -- -i --nb-cores=1 --rxq=1 --txq=1 --rxd=1024 --txd=1024 --burst=32
        --total-num-mbufs=16384 --forward-mode=io)
else
TPMD_CMD=(dpdk-testpmd --file-prefix=$TPMD_PREFIX $TPMD_EAL --no-pci --lcores=0@$GEN_CPU,1@$GEN_CPU
    --vdev=net_virtio_user0,path=$B/vhu0.sock,$VU
    --vdev=net_virtio_user1,path=$B/vhu1.sock,$VU
    -- -i --nb-cores=1 --rxq=1 --txq=1 --rxd=1024 --txd=1024 --burst=32
    --total-num-mbufs=16384 --forward-mode=$MODE --flowgen-flows=$NFLOWS --txpkts=$TXLEN)
fi
[ "$GEN_CYCLES" = 1 ] && TPMD_CMD+=(--record-core-cycles)
# shellcheck disable=SC2206  # GEN_ARGS is a list of options
TPMD_CMD+=($GEN_ARGS)
log "testpmd: ${TPMD_CMD[*]}"
# stdbuf: testpmd's printf() output to a file is block-buffered; line-buffer it so that each
# command's output is in the log right away.  Interactive mode is driven through a FIFO (fd 3).
stdbuf -oL "${TPMD_CMD[@]}" < $FIFO > $TLOG 2>&1 &
TPMD_PID=$!
exec 3> $FIFO; FIFO_OPEN=1
tp() {  # tp CMD [WAIT]: send a command to testpmd, print the output it produced
    local off; off=$(stat -c %s $TLOG); echo "$1" >&3; sleep "${2:-0.5}"; tail -c +$((off + 1)) $TLOG
}
for i in $(seq 1 100); do
    grep -q 'testpmd> ' $TLOG && break
    kill -0 $TPMD_PID 2>/dev/null || die "testpmd died: $(tail -5 $TLOG)"; sleep 0.2
done
link_ok() {
    if is_switch; then
        [ "$(vsctl get Interface vhu0 link_state)" = up ] && [ "$(vsctl get Interface vhu1 link_state)" = up ]
    else
        # The generator's two virtio-user ports (p2p: 0 and 1; VXLAN: 1 and 2).
        [ "$(tp "show port info $RXP0" 0.3 | grep -c 'Link status: up')" = 1 ] &&
            [ "$(tp "show port info $RXP1" 0.3 | grep -c 'Link status: up')" = 1 ]
    fi
}
# Up to 120 s: a big flow table delays it (OVS 3.1 with 200k rules once still had them
# down after 34 s, the next run up after 2).
for i in $(seq 1 600); do link_ok && break; sleep 0.2; done
if ! link_ok; then
    is_switch && log "$P-vswitchd's last vhost lines: $(grep -i vhost $B/log/$P-vswitchd.log 2>/dev/null | tail -5)"
    die "vhost-user ports not up: $(tail -5 $TLOG)"
fi
log "vhost-user ports up; forwarding ($MODE, $NFLOWS flow(s), ${PKT_LEN}B) through $SWITCH"

# ------------------------------------------------------------------------------ measure
parse() {  # "show port stats all" text -> "rx0 rx1 rxpps0 rxpps1" of ports RXP0 and RXP1
    awk -v a=$RXP0 -v b=$RXP1 '/NIC statistics for port/{p=$(NF-1)} /RX-packets:/{rx[p]=$2} /Rx-pps:/{rp[p]=$2}
         END{print rx[a]+0, rx[b]+0, rp[a]+0, rp[b]+0}'
}
cpu_busy() { awk '/^cpu /{print $2+$3+$4+$7+$8, $9}' /proc/stat; }   # busy, steal (ticks)
my_ticks() { local t=0 p; for p in $TPMD_PID $SW_PID $PROBE_PIDS $(is_switch && cat $B/run/$P-vswitchd.pid); do
    t=$((t + $(awk '{print $14+$15}' /proc/$p/stat 2>/dev/null || echo 0))); done; echo $t; }
if [ "$MODE" = io ] && ! is_vx; then tp "start tx_first $TXFIRST" 0.2 >/dev/null; else tp start 0.2 >/dev/null; fi
sleep $WARMUP
HZ=$(getconf CLK_TCK); AGGS=""; BAD=0
IFS='|' read -r -a CYCLE <<<"$SWITCH_CONFIG_CYCLE"
for ((w = 1; w <= WINDOWS; w++)); do
    if [ ${#CYCLE[@]} -gt 0 ] && is_switch; then
        CFG=${CYCLE[(w - 1) % ${#CYCLE[@]}]}
        # shellcheck disable=SC2086
        vsctl set Open_vSwitch . $CFG || die "$P-vsctl set $CFG"
        echo "window $w/$WINDOWS: switch settings: $CFG"; sleep 1
    fi
    if is_switch; then appctl dpif-netdev/pmd-stats-clear >/dev/null; else swp 'clear fwd stats all' >/dev/null; fi
    [ "$GEN_CYCLES" = 1 ] && tp 'clear fwd stats all' >/dev/null
    read -r RX0a RX1a _ <<<"$(tp 'show port stats all' | parse)"     # also resets testpmd's Rx-pps baseline
    read -r BUSYa STEALa <<<"$(cpu_busy)"; MYa=$(my_ticks); Ta=$(date +%s.%N)
    sleep $DURATION
    OUT=$(tp 'show port stats all')
    Tb=$(date +%s.%N); read -r BUSYb STEALb <<<"$(cpu_busy)"; MYb=$(my_ticks)
    read -r RX0b RX1b PPS0 PPS1 <<<"$(echo "$OUT" | parse)"
    kill -0 $TPMD_PID 2>/dev/null || die "testpmd died during the measurement: $(tail -3 $TLOG)"
    [ -n "$SW_PID" ] && { kill -0 $SW_PID 2>/dev/null || die "testpmd-switch died: $(tail -3 $SWLOG)"; }
    is_switch && { kill -0 "$(cat $B/run/$P-vswitchd.pid)" 2>/dev/null || die "$P-vswitchd died, see $B/log/$P-vswitchd.log"; }
    { [ "$PPS0" -gt 0 ] || is_vx; } && [ "$PPS1" -gt 0 ] || die "no traffic received (Rx-pps port0=$PPS0 port1=$PPS1), see $TLOG"
    if is_switch; then PMDSTATS=$(appctl dpif-netdev/pmd-stats-show); else PMDSTATS=$(swp 'show fwd stats all'); fi
    read -r AGG D01 D10 WALL FOREIGN STEAL <<<"$(awk -v a0=$RX0a -v a1=$RX1a -v b0=$RX0b -v b1=$RX1b \
        -v p0=$PPS0 -v p1=$PPS1 -v ta=$Ta -v tb=$Tb -v ba=$BUSYa -v bb=$BUSYb -v sa=$STEALa -v sb=$STEALb \
        -v ma=$MYa -v mb=$MYb -v hz=$HZ 'BEGIN{
        dt = tb - ta; wall = ((b0 - a0) + (b1 - a1)) / dt / 1e6;
        printf "%.2f %.3f %.3f %.3f %.1f %.1f\n", (p0 + p1) / 1e6, p1 / 1e6, p0 / 1e6, wall,
               100 * ((bb - ba) - (mb - ma)) / hz / dt, 100 * (sb - sa) / hz / dt }')"
    PMD_IDLE=$(echo "$PMDSTATS" | awk '/core_id/{c=1} c && /idle cycles/{gsub(/[()%]/,"",$4); print $4; exit}')
    if is_switch; then
        CPP=$(echo "$PMDSTATS" | awk '/core_id/{c=1} c && /avg processing cycles per packet/{print $6; exit}')
    else
        CPP=$(echo "$PMDSTATS" | sed -n 's/.*CPU cycles\/packet=\([0-9.]*\).*/\1/p' | head -n1)
    fi
    [ $w = $WINDOWS ] && is_switch && { echo "$PMDSTATS" | sed -n '/core_id/,/^main thread/p' | grep -v '^main thread'; }
    if is_vx; then
        echo "window $w/$WINDOWS: $AGG Mpps aggregate | $TOPO: $VX_IN->$VX_OUT $D01 Mpps (testpmd Rx-pps) | wall-clock cross-check: $WALL Mpps"
    else
    echo "window $w/$WINDOWS: $AGG Mpps aggregate | per-direction (testpmd Rx-pps): vhu0->vhu1 $D01, vhu1->vhu0 $D10 Mpps | wall-clock cross-check: $WALL Mpps"
    fi
    if [ "$GEN_CYCLES" = 1 ]; then
        GFWD=$(tp 'show fwd stats all')
        GCPP=$(echo "$GFWD" | sed -n 's/.*CPU cycles\/packet=\([0-9.]*\).*/\1/p' | head -n1)
        GDROP=$(echo "$GFWD" | awk '/TX-dropped:/{d=$4; t=$6} END{if (t > 0) printf "%.2f", 100 * d / t}')
        echo "window $w/$WINDOWS: generator (cpu $GEN_CPU) busy cycles/pkt: ${GCPP:-n/a}, sends refused by a full ring: ${GDROP:-n/a}%"
    fi
    SLOW=$(host_slow $Ta $Tb)
    echo "window $w/$WINDOWS: switch pmd (cpu $PMD_CPU) idle: ${PMD_IDLE:-n/a}% , avg processing cycles/pkt: ${CPP:-n/a} ; foreign CPU load: ${FOREIGN}% of one CPU, steal: ${STEAL}%, host slow: ${SLOW}% of probes"
    if awk -v f=$FOREIGN -v s=$STEAL -v h=$SLOW -v hm=$HOST_SLOW_MAX 'BEGIN{ exit !(f > 10 || s > 5 || h > hm) }'; then
        echo "WARNING: window $w: other processes (${FOREIGN}% of a CPU), hypervisor steal (${STEAL}%) or a slow host (${SLOW}% of probes) -> result contaminated"; BAD=1
    fi
    AGGS="$AGGS $AGG"
done
is_switch && RXQ=$(appctl dpif-netdev/pmd-rxq-show) || RXQ=""
FWD=$(tp stop 1)
if is_switch; then
    DPFLOWS=$(appctl dpctl/dump-flows 2>/dev/null | grep -c "actions:")
    IFSTATS=$(for i in vhu0 vhu1; do echo "$i status: $(vsctl get Interface $i status)"; echo "$i stats: $(vsctl get Interface $i statistics)"; done)
    appctl dpctl/dump-flows > $B/log/last_run_dpflows.txt 2>&1
else
    DPFLOWS=n/a; IFSTATS=""
fi
{
echo "===== $(date) SWITCH=$SWITCH TOPO=$TOPO MODE=$MODE OF_FLOWS=$OF_FLOWS NFLOWS=$NFLOWS EMC_PROB=$EMC_PROB SMC=$SMC PKT_LEN=$PKT_LEN VU_EXTRA=$VU_EXTRA GEN_ARGS=$GEN_ARGS windows(Mpps):$AGGS"
echo "testpmd: ${TPMD_CMD[*]}"
echo "===== testpmd forward stats (after stop) ====="; echo "$FWD" | grep -E 'Forward statistics|RX-packets|TX-packets'
echo "===== ovs-appctl dpif-netdev/pmd-stats-show (last window, ${DURATION}s) ====="; echo "$PMDSTATS"
echo "===== ovs-appctl dpif-netdev/pmd-rxq-show ====="; echo "$RXQ"
echo "===== datapath flows: $DPFLOWS ; OVS interface stats ====="; echo "$IFSTATS"
} > $B/log/last_run_details.txt
[ -n "$RXQ" ] && echo "$RXQ"
echo "config: switch=$SWITCH topo=$TOPO mode=$MODE of_flows=$OF_FLOWS nflows=$NFLOWS emc-insert-inv-prob=$EMC_PROB smc=$SMC pkt=${PKT_LEN}B vu_extra='$VU_EXTRA' gen_args='$GEN_ARGS' datapath_flows=$DPFLOWS windows=${WINDOWS}x${DURATION}s"
MED=$(echo $AGGS | tr ' ' '\n' | sort -g | awk '{v[NR]=$1} END{print (NR % 2) ? v[(NR+1)/2] : sprintf("%.2f", (v[NR/2] + v[NR/2+1]) / 2)}')
[ $WINDOWS -gt 1 ] && echo "windows (Mpps):$AGGS -> median $MED"
[ $BAD = 1 ] && echo "WARNING: at least one window was contaminated by other load; rerun on an idle machine"
if [ $SWITCH = ovs ]; then
    echo "ovs-dpdk vhost-user $TOPO ${PKT_LEN}B: $MED Mpps"
elif [ $SWITCH = fvs ]; then
    echo "fvs vhost-user $TOPO ${PKT_LEN}B: $MED Mpps"
else
    echo "testpmd-vhost (null switch, harness ceiling) vhost-user $TOPO ${PKT_LEN}B: $MED Mpps"
fi
