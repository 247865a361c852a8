#!/usr/bin/env bash
# The seed walkthrough with fvs instead of OVS: a netdev bridge with two
# `type=dpdk` ports and a pair of flows that cross-connect them.
#
# The seed's NIC functions (0000:01:00.0/1, bound to vfio-pci) are replaced
# by veth pairs whose far ends sit in two network namespaces, attached with
# DPDK's af_packet devargs; on a machine with VFIO NICs, the devargs would
# be their PCI addresses instead. Run as root from the repository:
#
#     cargo build --release -p fvs-cli && examples/seed-walkthrough.sh
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-target/release}
export PATH="$PWD/$BIN:$PATH"
W=$(mktemp -d /tmp/fvs-seed.XXXXXX)
export FVS_RUNDIR=$W/run FVS_DBDIR=$W/db FVS_LOGDIR=$W/log

cleanup() {
    fvs-appctl exit --cleanup 2>/dev/null || true
    ip netns del seed-ns1 2>/dev/null || true
    ip netns del seed-ns2 2>/dev/null || true
    rm -rf "$W"
}
trap cleanup EXIT

# Two "hosts", each behind one end of a veth pair.
for i in 1 2; do
    ip netns add seed-ns$i
    ip link add seed-veth$i type veth peer name eth0 netns seed-ns$i
    ip link set seed-veth$i up
    ip -n seed-ns$i addr add 10.99.0.$i/24 dev eth0
    ip -n seed-ns$i link set eth0 up
done

fvs-vswitchd --pidfile --detach --log-file

# DPDK settings, as the seed sets them (pmd-sleep-max lets the PMD thread
# rest when idle on a small machine).
fvs-vsctl --no-wait set Open_vSwitch . other_config:dpdk-init=try
fvs-vsctl --no-wait set Open_vSwitch . other_config:dpdk-lcore-mask=0x1
fvs-vsctl --no-wait set Open_vSwitch . other_config:dpdk-socket-mem=64
fvs-vsctl --no-wait set Open_vSwitch . other_config:pmd-sleep-max=500
fvs-vsctl --no-wait set Open_vSwitch . external-ids:system-id="${HOSTNAME:-fvs}id"

fvs-vsctl add-br dpdk-br -- set bridge dpdk-br datapath_type=netdev
fvs-vsctl add-port dpdk-br p1 -- set Interface p1 type=dpdk \
    options:dpdk-devargs=net_af_packet0,iface=seed-veth1 ofport_request=1
fvs-vsctl add-port dpdk-br p2 -- set Interface p2 type=dpdk \
    options:dpdk-devargs=net_af_packet1,iface=seed-veth2 ofport_request=2
fvs-ofctl del-flows dpdk-br
fvs-ofctl add-flow dpdk-br in_port=2,action=output:1
fvs-ofctl add-flow dpdk-br in_port=1,action=output:2

fvs-vsctl show
ip netns exec seed-ns1 ping -c 3 -i 0.2 10.99.0.2
fvs-ofctl dump-flows dpdk-br
fvs-ofctl dump-ports dpdk-br
fvs-appctl dpif-netdev/pmd-stats-show
fvs-appctl dpctl/dump-flows
