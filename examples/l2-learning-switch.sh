#!/usr/bin/env bash
# An L2 learning switch between three network namespaces: a new bridge
# holds `priority=0 actions=NORMAL` (OVS's standalone mode), learns where
# each MAC address is, and keeps VLANs apart. Run as root:
#
#     cargo build --release -p fvs-cli && examples/l2-learning-switch.sh
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-target/release}
export PATH="$PWD/$BIN:$PATH"
W=$(mktemp -d /tmp/fvs-l2.XXXXXX)
export FVS_RUNDIR=$W/run FVS_DBDIR=$W/db FVS_LOGDIR=$W/log

cleanup() {
    fvs-appctl exit --cleanup 2>/dev/null || true
    for i in 1 2 3; do ip netns del l2-ns$i 2>/dev/null || true; done
    rm -rf "$W"
}
trap cleanup EXIT

for i in 1 2 3; do
    ip netns add l2-ns$i
    ip link add l2-veth$i type veth peer name eth0 netns l2-ns$i
    ip link set l2-veth$i up
    ip -n l2-ns$i addr add 10.98.0.$i/24 dev eth0
    ip -n l2-ns$i link set eth0 up
done

fvs-vswitchd --pidfile --detach --log-file
fvs-vsctl --no-wait set Open_vSwitch . other_config:pmd-sleep-max=500
fvs-vsctl add-br br0 -- set bridge br0 datapath_type=netdev
for i in 1 2 3; do fvs-vsctl add-port br0 l2-veth$i; done
fvs-ofctl dump-flows br0

echo "--- all three hosts in VLAN 0"
ip netns exec l2-ns1 ping -c 2 -i 0.2 10.98.0.2
ip netns exec l2-ns1 ping -c 2 -i 0.2 10.98.0.3
fvs-appctl fdb/show br0

echo "--- host 3 moved to access VLAN 30: unreachable from hosts 1 and 2"
fvs-vsctl set Port l2-veth3 tag=30
if ip netns exec l2-ns1 ping -c 2 -i 0.2 -W 1 10.98.0.3; then
    echo "unexpected: VLAN 30 reachable from VLAN 0" >&2
    exit 1
fi
fvs-appctl fdb/show br0
fvs-appctl dpctl/dump-flows
