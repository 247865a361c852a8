#!/bin/sh
# The VFIO scenario, run by the guest's /init (tests/vfio_vm.rs boots the
# guest). The host test reads the lines "@@ key: value"; everything else is
# for a human reading the console log.
#
# 1. hugepages exhausted, dpdk-init=true: every port fails with one line, fvs stays up;
# 2. dpdk-init=try (plain memory): the bridge's own port works, the NIC,
#    still on its kernel driver, fails with one line;
# 3. the NIC bound to vfio-pci, the pool still plain memory: one line;
# 4. fvs restarted with hugepages: the NIC comes up through VFIO, the guest
#    pings QEMU's user-mode network (10.0.2.2) through the bridge, counters
#    move, MTU requests are applied or refused;
# 5. the port removed and added again: the device is released and reopened.
say() { echo "@@ $*"; }
export FVS_RUNDIR=/run/fvs FVS_DBDIR=/run/fvs FVS_LOGDIR=/run/fvs
mkdir -p /run/fvs
for m in vfio-pci vfio_iommu_type1 e1000e virtio_pci virtio_net tun; do modprobe $m; done

BDF=""
for d in /sys/bus/pci/devices/*; do
    [ "$(cat "$d/class")" = 0x020000 ] && { BDF=${d##*/}; break; }
done
[ -n "$BDF" ] || { say "fail: no Ethernet device"; exit 1; }
D=/sys/bus/pci/devices/$BDF
# The kernel driver needs a moment to bind after modprobe.
i=0; while [ ! -e "$D/driver" ] && [ $i -lt 50 ]; do usleep 100000; i=$((i + 1)); done
say "nic: $BDF $(cat "$D/vendor"):$(cat "$D/device") driver=$(basename "$(readlink "$D/driver")")"

vsctl() { fvs-vsctl --timeout=30 "$@"; }
# wait_for SECS PATTERN CMD...: reruns CMD until its output matches PATTERN (grep -E).
wait_for() {
    t=$(($1 * 5)) pat=$2
    shift 2
    i=0
    while :; do
        out=$("$@" 2>&1)
        echo "$out" | grep -Eq "$pat" && break
        i=$((i + 1))
        [ $i -ge $t ] && break
        usleep 200000
    done
    echo "$out"
}
start_fvs() { fvs-vswitchd --pidfile --detach --log-file || say "fail: fvs-vswitchd did not start"; }
stop_fvs() {
    pid=$(cat /run/fvs/fvs-vswitchd.pid)
    fvs-appctl exit
    i=0; while [ -e "/proc/$pid" ] && [ $i -lt 100 ]; do usleep 100000; i=$((i + 1)); done
}
bind_vfio() {
    echo vfio-pci > "$D/driver_override"
    [ -e "$D/driver" ] && echo "$BDF" > "$D/driver/unbind"
    echo "$BDF" > /sys/bus/pci/drivers_probe
}
error_of() { vsctl get Interface "$1" error; }

# 1. Hugepages exhausted: 8 of the 32 a 64 MB pool needs.
echo 8 > /proc/sys/vm/nr_hugepages
start_fvs
vsctl --no-wait set Open_vSwitch . other_config:dpdk-init=true other_config:dpdk-socket-mem=64 other_config:pmd-sleep-max=500
vsctl add-br br0 -- set bridge br0 datapath_type=netdev
vsctl add-port br0 p0 -- set Interface p0 type=dpdk "options:dpdk-devargs=$BDF" ofport_request=1
say "hugepages-p0-error: $(error_of p0)"
say "hugepages-br0-error: $(error_of br0)"
say "hugepages-alive: $(fvs-appctl version | head -1)"

# 2. Plain memory: the bridge's port works; the NIC is on its kernel driver.
vsctl set Open_vSwitch . other_config:dpdk-init=try
say "kernel-driver-br0-error: $(wait_for 20 '^\[\]$' error_of br0)"
say "kernel-driver-br0-link: $(vsctl get Interface br0 link_state)"
say "kernel-driver-p0-error: $(wait_for 10 'bound to' error_of p0)"

# 3. Bound to vfio-pci, but the pool is not in hugepages.
bind_vfio
say "bound: driver=$(basename "$(readlink "$D/driver")")"
say "plain-pool-p0-error: $(wait_for 20 hugepages error_of p0)"
say "plain-pool-alive: $(fvs-appctl version | head -1)"

# 4. Restart with hugepages: the NIC through VFIO.
vsctl set Open_vSwitch . other_config:dpdk-init=true
stop_fvs
echo 64 > /proc/sys/vm/nr_hugepages
start_fvs
say "vfio-p0-error: $(wait_for 30 '^\[\]$' error_of p0)"
say "vfio-p0-ofport: $(vsctl get Interface p0 ofport)"
ip link set br0 up
ip addr add 10.0.2.15/24 dev br0
ping -c 3 -W 5 10.0.2.2 > /tmp/ping.txt 2>&1
sed 's/^/@@ ping: /' /tmp/ping.txt
say "neigh: $(ip neigh show 10.0.2.2)"
fvs-ofctl dump-ports br0 p0 | sed 's/^/@@ dump-ports: /'
say "p0-mac: $(vsctl get Interface p0 mac_in_use)"
say "p0-link: $(vsctl get Interface p0 link_state)"
say "p0-status: $(vsctl get Interface p0 status)"
fvs-appctl dpif-netdev/pmd-rxq-show | sed 's/^/@@ rxq: /'
vsctl set Interface p0 mtu_request=2000
say "mtu-2000: $(wait_for 5 '^2000$' vsctl get Interface p0 mtu)"
vsctl set Interface p0 mtu_request=9000
usleep 500000
say "mtu-9000: $(vsctl get Interface p0 mtu)"
say "mtu-9000-log: $(grep -c 'MTU 9000 is out of range' /run/fvs/fvs-vswitchd.log)"

# 5. Remove and re-add with two rx queues (as many as the device has):
#    the device is stopped, released, and opened again.
vsctl del-port br0 p0
vsctl add-port br0 p0 -- set Interface p0 type=dpdk "options:dpdk-devargs=$BDF" options:n_rxq=2 ofport_request=1
say "readd-p0-error: $(wait_for 10 '^\[\]$' error_of p0)"
ping -c 2 -W 5 10.0.2.2 > /tmp/ping2.txt 2>&1
sed 's/^/@@ ping-again: /' /tmp/ping2.txt
# Replies to four more source addresses: with two queues, RSS spreads them.
for a in 16 17 18 19; do
    ip addr add 10.0.2.$a/24 dev br0
    ping -c 1 -W 5 -I 10.0.2.$a 10.0.2.2 > /dev/null 2>&1 || say "ping-from-$a: lost"
done
# Interface:status is refreshed every 5 s.
usleep 5500000
say "readd-p0-status: $(vsctl get Interface p0 status)"
fvs-appctl dpif-netdev/pmd-rxq-show | sed 's/^/@@ readd-rxq: /'

fvs-appctl exit --cleanup
sed 's/^/@@ log: /' /run/fvs/fvs-vswitchd.log
say "done"
