#!/bin/sh
# The vhost-user scenario, run by the guest's /init (tests/vhost_vm.rs boots
# the guest with a virtio-net-pci device whose backend is an fvs
# vhost-user port). The host test reads the lines "@@ key: value" and
# answers on the console (the guest's stdin) where the scenario waits.
#
# 1. the kernel's virtio-net driver takes the device (features as negotiated);
# 2. pings to the host namespace across the fvs bridge, from each CPU (so
#    from each transmit queue when there are two), small and large frames;
# 3. a TCP stream to the host namespace;
# 4. "ready": the host pings the guest;
# 5. the host restarts fvs-vswitchd and says "restarted": pings resume.
#
# Kernel command line: fvs_ip=ADDR/LEN fvs_peer=ADDR.
say() { echo "@@ $*"; }
IP="" PEER=""
for a in $(cat /proc/cmdline); do
    case $a in
    fvs_ip=*) IP=${a#*=} ;;
    fvs_peer=*) PEER=${a#*=} ;;
    esac
done
for m in virtio_pci virtio_net; do modprobe $m; done
i=0; while [ ! -e /sys/class/net/eth0 ] && [ $i -lt 100 ]; do usleep 100000; i=$((i + 1)); done
[ -e /sys/class/net/eth0 ] || { say "fail: no eth0"; ls /sys/class/net; exit 1; }
DEV=/sys/class/net/eth0/device
say "nic: driver=$(basename "$(readlink $DEV/driver)") vendor=$(cat $DEV/vendor 2>/dev/null)"
# Feature bits as the driver accepted them, bit 0 first.
say "features: $(cat $DEV/features)"
say "queues: rx=$(ls -d /sys/class/net/eth0/queues/rx-* | wc -l) tx=$(ls -d /sys/class/net/eth0/queues/tx-* | wc -l)"
say "mac: $(cat /sys/class/net/eth0/address)"
ip link set lo up
ip link set eth0 up
ip addr add "$IP" dev eth0
# The carrier comes from the device's status (VIRTIO_NET_F_STATUS).
i=0; while [ "$(cat /sys/class/net/eth0/carrier 2>/dev/null)" != 1 ] && [ $i -lt 50 ]; do usleep 100000; i=$((i + 1)); done
say "carrier: $(cat /sys/class/net/eth0/carrier)"

# ping_from CPU KEY ARGS...: pings the peer from one CPU (virtio-net's
# transmit queue i is CPU i's) and reports ping's lines under KEY.
ping_from() {
    cpu=$1 key=$2
    shift 2
    taskset "$cpu" ping -c 5 -W 5 "$@" "$PEER" > /tmp/ping.txt 2>&1
    sed "s/^/@@ $key: /" /tmp/ping.txt
}
ping_from 1 ping-cpu0
ping_from 2 ping-cpu1
ping_from 1 ping-big -s 1472
say "neigh: $(ip neigh show "$PEER")"

# 1 MB over TCP to the host's sink (fvs_peer:5001), if the host runs one.
dd if=/dev/urandom of=/tmp/blob bs=1024 count=1024 2>/dev/null
say "tcp-md5: $(md5sum < /tmp/blob | cut -d' ' -f1)"
timeout 60 nc "$PEER" 5001 < /tmp/blob
say "tcp-rc: $?"

say "ready"
# The host pings us now, then restarts fvs and tells us.
read -t 240 cmd
say "host-said: $cmd"
n=0
while [ $n -lt 120 ]; do
    n=$((n + 1))
    ping -c 1 -W 1 "$PEER" > /dev/null 2>&1 && break
done
say "first-reply-after: $n tries"
taskset 1 ping -c 3 -W 5 "$PEER" > /tmp/ping.txt 2>&1
sed "s/^/@@ ping-after-restart: /" /tmp/ping.txt
say "stats: rx_packets=$(cat /sys/class/net/eth0/statistics/rx_packets) tx_packets=$(cat /sys/class/net/eth0/statistics/tx_packets)"
say "done"
