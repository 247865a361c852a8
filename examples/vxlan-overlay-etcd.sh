#!/usr/bin/env bash
# Three hosts that find each other by system-id through etcd. Each host is
# a network namespace running fvs-vswitchd with br-phy (its VTEP address on
# the internal port, uplink to a shared underlay bridge) and br-int (a
# container's veth). With external_ids system-id, fvs-encap-ip,
# fvs-encap-type=vxlan and fvs-remote=etcd:http://..., each daemon
# registers under a lease, watches the others and keeps one VXLAN port per
# remote host on br-int (vx-<system-id>). Then: every container pings the
# other two; a host dies and its tunnels go once its lease ends. Needs
# etcd (Debian etcd-server). Run as root:
#
#     cargo build --release -p fvs-cli && examples/vxlan-overlay-etcd.sh
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-target/release}
export PATH="$PWD/$BIN:$PATH"
W=$(mktemp -d /tmp/fvs-vx3.XXXXXX)
ETCD=http://172.31.0.254:23790

on() {
    local h=$1
    shift
    FVS_RUNDIR=$W/h$h/run FVS_DBDIR=$W/h$h/db FVS_LOGDIR=$W/h$h/log "$@"
}

etcd_pid=
cleanup() {
    for h in 1 2 3; do on $h fvs-appctl exit --cleanup 2>/dev/null || true; done
    if [ -n "$etcd_pid" ]; then
        kill "$etcd_pid" 2>/dev/null || true
        wait "$etcd_pid" 2>/dev/null || true
    fi
    for n in vx3-u vx3-h1 vx3-h2 vx3-h3 vx3-c1 vx3-c2 vx3-c3; do
        ip netns del $n 2>/dev/null || true
    done
    rm -rf "$W"
}
trap cleanup EXIT

# The underlay: a Linux bridge in a namespace of its own, with etcd on it.
ip netns add vx3-u
ip -n vx3-u link set lo up
ip -n vx3-u link add sw type bridge
ip -n vx3-u link set sw up
ip -n vx3-u addr add 172.31.0.254/24 dev sw
ip netns exec vx3-u etcd --name vx3 --data-dir "$W/etcd" \
    --listen-client-urls $ETCD --advertise-client-urls $ETCD \
    --listen-peer-urls http://127.0.0.1:23800 \
    --initial-advertise-peer-urls http://127.0.0.1:23800 \
    --initial-cluster vx3=http://127.0.0.1:23800 >"$W/etcd.log" 2>&1 &
etcd_pid=$!
until ip netns exec vx3-u etcdctl --endpoints $ETCD endpoint health >/dev/null 2>&1; do
    sleep 0.2
done

for h in 1 2 3; do
    ip netns add vx3-h$h
    ip netns add vx3-c$h
    ip -n vx3-h$h link add ul0 type veth peer name u$h netns vx3-u
    ip -n vx3-u link set u$h master sw up
    ip -n vx3-h$h link set ul0 up
    ip -n vx3-h$h link add c0 type veth peer name eth0 netns vx3-c$h
    ip -n vx3-h$h link set c0 up mtu 1450
    ip -n vx3-c$h addr add 10.9.0.$h/24 dev eth0
    ip -n vx3-c$h link set eth0 up mtu 1450

    ip netns exec vx3-h$h env FVS_RUNDIR=$W/h$h/run FVS_DBDIR=$W/h$h/db \
        FVS_LOGDIR=$W/h$h/log "$PWD/$BIN/fvs-vswitchd" --pidfile --detach --log-file
    on $h fvs-vsctl --no-wait set Open_vSwitch . other_config:pmd-sleep-max=500
    on $h fvs-vsctl add-br br-phy -- set bridge br-phy datapath_type=netdev
    on $h fvs-vsctl add-port br-phy ul0
    ip -n vx3-h$h addr add 172.31.0.$h/24 dev br-phy
    ip -n vx3-h$h link set br-phy up
    on $h fvs-vsctl add-br br-int -- set bridge br-int datapath_type=netdev
    on $h fvs-vsctl add-port br-int c0
    # The overlay: who this host is, where it is, and the registry.
    on $h fvs-vsctl set Open_vSwitch . external_ids:system-id=host-$h \
        external_ids:fvs-encap-ip=172.31.0.$h external_ids:fvs-encap-type=vxlan \
        external_ids:fvs-encap-key=5001 external_ids:fvs-lease-ttl=5 \
        external_ids:fvs-remote=etcd:$ETCD
done

echo "--- waiting for the full mesh"
for h in 1 2 3; do
    until [ "$(on $h fvs-vsctl list-ports br-int | grep -c '^vx-')" = 2 ]; do sleep 0.1; done
    echo "host-$h: $(on $h fvs-vsctl list-ports br-int | grep '^vx-' | tr '\n' ' ')"
done
ip netns exec vx3-u etcdctl --endpoints $ETCD get --prefix /fvs/hosts/

echo "--- every container pings the other two"
for a in 1 2 3; do
    for b in 1 2 3; do
        [ $a = $b ] || ip netns exec vx3-c$a ping -c 2 -i 0.2 -q 10.9.0.$b
    done
done
on 1 fvs-appctl overlay/status

echo "--- host 3 dies; its tunnels go when its lease (5 s) ends"
kill -9 "$(cat "$W/h3/run/fvs-vswitchd.pid")"
until ! on 1 fvs-vsctl list-ports br-int | grep -q vx-host-3; do sleep 0.2; done
on 1 fvs-vsctl list-ports br-int
ip netns exec vx3-c1 ping -c 2 -i 0.2 -q 10.9.0.2
