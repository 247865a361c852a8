#!/usr/bin/env bash
# A VXLAN overlay between two hosts, each a network namespace running its
# own fvs-vswitchd: an underlay bridge br-phy whose internal port holds the
# host's address (the VTEP) with the uplink ul0, and an overlay bridge
# br-int with a container's veth and a VXLAN port to the other host.
# The containers (namespaces of their own) ping each other across the
# tunnel. Run as root:
#
#     cargo build --release -p fvs-cli && examples/vxlan-two-hosts.sh
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-target/release}
export PATH="$PWD/$BIN:$PATH"
W=$(mktemp -d /tmp/fvs-vx2.XXXXXX)

# Runs an fvs command against host $1's daemon.
on() {
    local h=$1
    shift
    FVS_RUNDIR=$W/h$h/run FVS_DBDIR=$W/h$h/db FVS_LOGDIR=$W/h$h/log "$@"
}

cleanup() {
    for h in 1 2; do on $h fvs-appctl exit --cleanup 2>/dev/null || true; done
    for n in vx2-h1 vx2-h2 vx2-c1 vx2-c2; do ip netns del $n 2>/dev/null || true; done
    rm -rf "$W"
}
trap cleanup EXIT

for h in 1 2; do ip netns add vx2-h$h; ip netns add vx2-c$h; done
# The underlay: one veth between the hosts.
ip -n vx2-h1 link add ul0 type veth peer name ul0 netns vx2-h2
for h in 1 2; do
    ip -n vx2-h$h link set ul0 up
    # The container: 10.9.0.$h behind the host's br-int, MTU leaving room
    # for the 50 bytes of VXLAN headers.
    ip -n vx2-h$h link add c0 type veth peer name eth0 netns vx2-c$h
    ip -n vx2-h$h link set c0 up mtu 1450
    ip -n vx2-c$h addr add 10.9.0.$h/24 dev eth0
    ip -n vx2-c$h link set eth0 up mtu 1450

    ip netns exec vx2-h$h env FVS_RUNDIR=$W/h$h/run FVS_DBDIR=$W/h$h/db \
        FVS_LOGDIR=$W/h$h/log "$PWD/$BIN/fvs-vswitchd" --pidfile --detach --log-file
    on $h fvs-vsctl --no-wait set Open_vSwitch . other_config:pmd-sleep-max=500 \
        external_ids:system-id=host-$h
    on $h fvs-vsctl add-br br-phy -- set bridge br-phy datapath_type=netdev
    on $h fvs-vsctl add-port br-phy ul0
    ip -n vx2-h$h addr add 172.31.0.$h/24 dev br-phy
    ip -n vx2-h$h link set br-phy up
    on $h fvs-vsctl add-br br-int -- set bridge br-int datapath_type=netdev
    on $h fvs-vsctl add-port br-int c0
    other=$((3 - h))
    on $h fvs-vsctl add-port br-int vxlan0 -- set Interface vxlan0 type=vxlan \
        options:remote_ip=172.31.0.$other options:key=5001
done

echo "--- container 1 -> container 2 over VXLAN (VNI 5001)"
ip netns exec vx2-c1 ping -c 3 -i 0.2 10.9.0.2
ip netns exec vx2-c2 ping -c 3 -i 0.2 10.9.0.1
on 1 fvs-vsctl show
on 1 fvs-appctl tnl/neigh/show
on 1 fvs-appctl tnl/ports/show
on 1 fvs-appctl ovs/route/lookup 172.31.0.2
on 1 fvs-appctl dpctl/dump-flows
on 1 fvs-appctl ofproto/trace br-int in_port=c0,icmp,nw_src=10.9.0.1,nw_dst=10.9.0.2,dl_dst=ff:ff:ff:ff:ff:ff
