#!/bin/sh
# /init of the initramfs kernel_vm.sh builds: load the modules the cloud kernel has as
# modules (virtio PCI and block, overlay), mount the root image (/dev/vda, ext4, built in)
# and run /guest/test.sh there as PID 1. Any failure here powers the guest off after saying
# so on the console (DW-GUEST-END with a non-zero status), so the host never waits in vain.
/bin/busybox mount -t proc proc /proc
/bin/busybox mount -t sysfs sysfs /sys
/bin/busybox mount -t devtmpfs devtmpfs /dev
bb=/bin/busybox
giveup() {
    echo "DW-CHECK boot FAIL $*"
    echo "DW-GUEST-END rc=1"
    $bb poweroff -f
    $bb sleep 60
}
for m in $($bb cat /modules/order); do
    $bb insmod "/modules/$m.ko" || giveup "insmod $m"
done
i=0
while [ ! -b /dev/vda ] && [ $i -lt 200 ]; do $bb usleep 50000; i=$((i + 1)); done
[ -b /dev/vda ] || giveup "no /dev/vda"
$bb mount -t ext4 -o rw,noatime /dev/vda /newroot || giveup "mount /dev/vda"
$bb mount --move /dev /newroot/dev
$bb mount --move /proc /newroot/proc
$bb mount --move /sys /newroot/sys
exec $bb switch_root /newroot /bin/sh /guest/test.sh
