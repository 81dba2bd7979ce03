#!/usr/bin/env bash
# Build (once) and cache the base disk image the Packer qemu build starts from: the nodes' Debian minbase rootfs
# (tests/nspawn/rootfs.sh; trixie unless K8S_TEST_SUITE names another suite) + a kernel and initramfs (for direct kernel boot), openssh-server, cloud-init
# (disabled for the build; provision.sh re-enables it), DHCP on eth0 (systemd-networkd) with the DNS servers DHCP gives
# through systemd-resolved (as Debian 13's cloud images: /etc/resolv.conf is resolved's stub), and a build-only SSH key for
# root. The disk is a partitionless ext4 file system (root=/dev/vda) converted to qcow2.
#
# Usage: tests/packer/base.sh      prints the cache directory on stdout (everything else goes to stderr); it holds
#   base.qcow2  base.qcow2.sha256  vmlinuz  initrd.img  build_key (0600, the build login's private key)  stamp
#
# Cache: ${K8S_TEST_CACHE:-/var/cache/k8s-image-test}/packer-base-$SUITE, rebuilt when the stamp differs. Built in a
# temporary directory next to it and renamed when complete; concurrent callers serialise on a lock file. The private
# key only opens the BUILD VM: provision.sh removes every authorized_keys before imaging.
LIB_SCRIPT=base.sh
# shellcheck source=demo/lib.sh
. "$(dirname "$0")/../../demo/lib.sh"
stdout_is_result

HERE=$(cd "$(dirname "$0")" && pwd)
CACHE=${K8S_TEST_CACHE:-/var/cache/k8s-image-test}
SUITE=${K8S_TEST_SUITE:-trixie}
BASE=$CACHE/packer-base-$SUITE
PACKAGES="linux-image-amd64 openssh-server cloud-init systemd-resolved"
DISK_SIZE=3G
FIXES=1
STAMP_WANT="suite=$SUITE packages=$PACKAGES disk=$DISK_SIZE fixes=$FIXES"

step "checking what building the base disk needs"
need_root
need_commands mkfs.ext4 qemu-img ssh-keygen chroot

mkdir -p "$CACHE"
exec 8>"$CACHE/.packer-base-$SUITE.lock"
flock 8

if [ -f "$BASE/stamp" ] && [ "$(head -n 1 "$BASE/stamp")" = "$STAMP_WANT" ]; then
  log "cached: $BASE"
  result "$BASE"
  exit 0
fi

ROOTFS=$(K8S_TEST_SUITE=$SUITE "$HERE/../nspawn/rootfs.sh")

step "building the base disk $BASE" "nothing was cached; the next run starts this step again"
for stale in "$CACHE/.packer-base-$SUITE.tmp."*; do remove_tree "$stale"; done
TMP=$(mktemp -d "$CACHE/.packer-base-$SUITE.tmp.XXXXXX")
root=$TMP/root
on_exit "remove_tree '$TMP'"

start=$(date +%s)
log "copying $ROOTFS"
cp -a "$ROOTFS" "$root"
rm -f "$root/.k8s-test-stamp"

for fs in proc sys dev dev/pts; do
  mkdir -p "$root/$fs"
  case $fs in
    proc) mount -t proc proc "$root/proc" ;;
    sys) mount -t sysfs sys "$root/sys" ;;
    dev) mount --bind /dev "$root/dev" ;;
    dev/pts) mount -t devpts devpts "$root/dev/pts" ;;
  esac
done
cp -L /etc/resolv.conf "$root/etc/resolv.conf"
# No service may start inside the chroot (openssh-server's postinst would start sshd on the host's port 22).
printf '#!/bin/sh\nexit 101\n' >"$root/usr/sbin/policy-rc.d"
chmod 0755 "$root/usr/sbin/policy-rc.d"

step "installing $PACKAGES into the base (apt-get in a chroot)" "it needs the Debian mirror; nothing was cached"
log "installing $PACKAGES (about 2 minutes)"
# shellcheck disable=SC2086 # one package a word
if ! with_system_path chroot "$root" env DEBIAN_FRONTEND=noninteractive sh -c \
  "apt-get update -qq && apt-get install -y -qq --no-install-recommends $PACKAGES" >"$TMP/apt.log" 2>&1; then
  tail -n 30 "$TMP/apt.log" >&2
  die "apt-get failed (its last lines are above)"
fi
rm -f "$root/usr/sbin/policy-rc.d"
with_system_path chroot "$root" apt-get clean
rm -rf "$root"/var/lib/apt/lists/*
for fs in dev/pts dev sys proc; do umount "$root/$fs"; done
step "making the base disk image"

# Boot and network: a partitionless disk, DHCP on eth0 (net.ifnames=0), the DNS servers DHCP names through
# systemd-resolved (the build VM gets QEMU user networking's; a booted node its network's). A fixed resolv.conf here
# would go into every image made from this base: nodes would ask the build network's DNS server.
printf '/dev/vda / ext4 rw,errors=remount-ro 0 1\n' >"$root/etc/fstab"
mkdir -p "$root/etc/systemd/network"
printf '[Match]\nName=eth0\n\n[Network]\nDHCP=ipv4\n' >"$root/etc/systemd/network/50-eth0.network"
with_system_path chroot "$root" systemctl enable systemd-networkd.service systemd-resolved.service >/dev/null 2>&1
ln -sfn ../run/systemd/resolve/stub-resolv.conf "$root/etc/resolv.conf"
echo k8s-node >"$root/etc/hostname"
# cloud-init: off for the build (no datasource there); NoCloud only, so a seed disk (cidata) is found at once.
touch "$root/etc/cloud/cloud-init.disabled"
printf 'datasource_list: [ NoCloud, None ]\n' >"$root/etc/cloud/cloud.cfg.d/90-k8s-image-test.cfg"
# The build login: root with a key made for this base (the public half is removed by provision.sh).
ssh-keygen -q -t ed25519 -N '' -C "k8s-image packer build" -f "$TMP/build_key"
install -d -m 0700 "$root/root/.ssh"
install -m 0600 "$TMP/build_key.pub" "$root/root/.ssh/authorized_keys"

kver=$(basename "$(find "$root/boot" -maxdepth 1 -name 'vmlinuz-*' | sort -V | tail -n 1)")
kver=${kver#vmlinuz-}
[ -n "$kver" ] || die "no kernel in $root/boot" "linux-image-amd64 did not install a kernel"
cp "$root/boot/vmlinuz-$kver" "$TMP/vmlinuz"
cp "$root/boot/initrd.img-$kver" "$TMP/initrd.img"

log "making the disk ($DISK_SIZE ext4 → qcow2)"
mkfs.ext4 -q -L k8s-root -d "$root" "$TMP/base.raw" "$DISK_SIZE"
qemu-img convert -O qcow2 "$TMP/base.raw" "$TMP/base.qcow2"
rm -f "$TMP/base.raw"
(cd "$TMP" && sha256sum base.qcow2 >base.qcow2.sha256)
{
  echo "$STAMP_WANT"
  echo "kernel=$kver"
  echo "built=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
} >"$TMP/stamp"
rm -rf --one-file-system "$root"

rm -rf "$BASE"
mkdir -p "$BASE"
mv "$TMP"/{base.qcow2,base.qcow2.sha256,vmlinuz,initrd.img,build_key,build_key.pub,stamp} "$BASE/"
log "built $BASE in $(($(date +%s) - start)) s ($(du -h "$BASE/base.qcow2" | cut -f1) qcow2, kernel $kver)"
result "$BASE"
