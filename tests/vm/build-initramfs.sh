#!/bin/sh
# Builds the guest's initramfs for the VFIO VM tests: busybox-static, the
# kernel modules prepare.sh kept, the given fvs binaries (stripped, with the
# shared libraries they load), tests/vm/guest.sh as the scenario and an
# /init that runs it and powers off.
#
# usage: tests/vm/build-initramfs.sh OUT.cpio.gz CACHE BINARY...
#        (env FVS_VM_GUEST: the scenario script, default tests/vm/guest.sh)
set -eu
OUT=$1 CACHE=$2
shift 2
HERE=$(cd "$(dirname "$0")" && pwd)
KVER=$(cat "$CACHE/kernel/version")
R=$(mktemp -d "${TMPDIR:-/tmp}/fvs-vm-root.XXXXXX")
trap 'rm -rf "$R"' EXIT

mkdir -p "$R/bin" "$R/proc" "$R/sys" "$R/dev" "$R/tmp" "$R/run" "$R/mnt/huge" "$R/lib" "$R/lib64"
cp /bin/busybox "$R/bin/busybox"
for a in $("$R/bin/busybox" --list); do
    [ "$a" = busybox ] || ln -sf busybox "$R/bin/$a"
done
ln -s bin "$R/sbin"
cp -a "$CACHE/kernel/lib/modules" "$R/lib/"
depmod -b "$R" "$KVER"

for b in "$@"; do
    strip -o "$R/bin/$(basename "$b")" "$b"
    # Shared libraries (glibc, libgcc_s) at the paths the binary asks for.
    ldd "$b" | awk '$3 ~ /^\// {print $3} $1 ~ /^\// {print $1}' | while read -r lib; do
        mkdir -p "$R$(dirname "$lib")"
        [ -e "$R$lib" ] || cp -L "$lib" "$R$lib"
    done
done
# The scenario: tests/vm/guest.sh (VFIO) unless FVS_VM_GUEST names another.
cp "${FVS_VM_GUEST:-$HERE/guest.sh}" "$R/bin/fvs-guest-test"
chmod +x "$R/bin/fvs-guest-test"

cat > "$R/init" <<'INIT'
#!/bin/sh
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
mount -t tmpfs run /run
/bin/fvs-guest-test
echo "@@ exit: $?"
poweroff -f
INIT
chmod +x "$R/init"
(cd "$R" && find . | cpio -o -H newc --quiet | gzip -1) > "$OUT"
