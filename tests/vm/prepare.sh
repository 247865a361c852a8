#!/bin/sh
# Prepares what the VM tests (tests/vfio_vm.rs, tests/vhost_vm.rs) need on the host:
# QEMU, busybox-static, cpio and kmod from Debian's packages, and a Debian
# 6.1 kernel (the package is downloaded and unpacked into a cache, never
# installed on the host). Idempotent; prints the cache directory.
#
# usage: tests/vm/prepare.sh      (env: FVS_VM_CACHE, default /var/cache/fvs-vm)
set -eu
CACHE=${FVS_VM_CACHE:-/var/cache/fvs-vm}
# What the guest loads: VFIO with the type1 IOMMU, the NICs' kernel drivers
# (the tests unbind them), TUN for the bridge's internal port.
MODULES="vfio vfio_iommu_type1 vfio-pci virtio_pci virtio_net e1000e tun"

need=""
command -v qemu-system-x86_64 >/dev/null 2>&1 || need="$need qemu-system-x86"
command -v cpio >/dev/null 2>&1 || need="$need cpio"
command -v depmod >/dev/null 2>&1 || need="$need kmod"
command -v strip >/dev/null 2>&1 || need="$need binutils"
# busybox-static replaces /bin/busybox with a binary that needs no libraries.
if ! [ -x /bin/busybox ] || ldd /bin/busybox >/dev/null 2>&1; then need="$need busybox-static"; fi
if [ -n "$need" ]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $need >/dev/null
fi

# The kernel: linux-image-amd64's dependency (linux-image-6.1.0-N-amd64).
if ! [ -f "$CACHE/kernel/ok" ]; then
    mkdir -p "$CACHE/deb"
    cd "$CACHE/deb"
    pkg=$(apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/ {print $2; exit}')
    if [ -z "$pkg" ]; then
        apt-get update -qq
        pkg=$(apt-cache depends linux-image-amd64 | awk '/Depends: linux-image-[0-9]/ {print $2; exit}')
    fi
    [ -n "$pkg" ] || { echo "prepare: cannot resolve linux-image-amd64" >&2; exit 1; }
    ls "$pkg"_*.deb >/dev/null 2>&1 || apt-get download "$pkg" 2>/dev/null
    deb=$(ls "$pkg"_*.deb | head -1)
    rm -rf "$CACHE/kernel" "$CACHE/x"
    dpkg-deb -x "$deb" "$CACHE/x"
    kver=$(ls "$CACHE/x/lib/modules" | head -1)
    depmod -b "$CACHE/x" "$kver"
    # Keep the kernel and the modules the guest loads (with their dependencies).
    m="$CACHE/kernel/lib/modules/$kver"
    mkdir -p "$m"
    cp "$CACHE/x/boot/vmlinuz-$kver" "$CACHE/kernel/vmlinuz"
    for mod in $MODULES; do
        modprobe -d "$CACHE/x" -S "$kver" --show-depends "$mod" | awk '$1 == "insmod" {print $2}'
    done | sort -u | while read -r f; do
        rel=${f#"$CACHE/x/lib/modules/$kver/"}
        mkdir -p "$m/$(dirname "$rel")"
        cp "$f" "$m/$rel"
    done
    cp "$CACHE/x/lib/modules/$kver"/modules.order "$CACHE/x/lib/modules/$kver"/modules.builtin* "$m/"
    echo "$kver" > "$CACHE/kernel/version"
    rm -rf "$CACHE/x" "$CACHE"/deb/*.deb
    touch "$CACHE/kernel/ok"
fi
echo "$CACHE"
