#!/usr/bin/env bash
# Opt-in: a real `packer build -only=qemu.node` of packer/node.pkr.hcl under QEMU (TCG: no KVM needed), then boots
# the produced qcow2 (tests/packer/boot-test.sh) and checks that `k8s-agent status` answers on it, then boots it three
# times as a cluster — a master and two minions on cgroup v2 with the image's own configuration — and runs pods on it
# (tests/packer/cluster-test.sh).
#
# Usage: tests/packer/qemu-build.sh
# Env:   LAYER       the layer to bake (default out/demo/layer.tar.gz, made by ./demo/build.sh)
#        OUT         output directory (default out/packer): qemu/<image>.qcow2, serial logs, packer-manifest.json
#        ACCEL       tcg (default) or kvm
#        SKIP_BOOT=1 build only; SKIP_CLUSTER=1 build and boot test, no cluster
# Needs root: QEMU (tests/packer/install-qemu.sh installs it from bookworm-backports), packer, and the base disk
# (tests/packer/base.sh, cached). Network: the build VM reaches the Debian mirror through QEMU's user-mode network
# (apt-get install of the lock's host packages); the boot test has no network device at all.
LIB_SCRIPT=qemu-build.sh
# shellcheck source=demo/lib.sh
. "$(dirname "$0")/../../demo/lib.sh"
cd "$(dirname "$0")/../.."

LAYER=${LAYER:-out/demo/layer.tar.gz}
OUT=${OUT:-out/packer}
ACCEL=${ACCEL:-tcg}
need_root
if [ ! -f "$LAYER" ] || [ ! -f "$LAYER.sha256" ]; then
  die "no $LAYER (+ .sha256)" "run ./demo/build.sh first, or set LAYER"
fi
need_commands packer
command -v qemu-system-x86_64 >/dev/null || tests/packer/install-qemu.sh

# No call home to checkpoint.hashicorp.com; Packer's download cache inside OUT, not in the working directory.
export CHECKPOINT_DISABLE=1 PACKER_CACHE_DIR=$PWD/$OUT/packer_cache

start=$(date +%s)
step "the base disk (tests/packer/base.sh)"
base=$(tests/packer/base.sh)
[ -f "$base/base.qcow2" ] || die "tests/packer/base.sh printed '$base', which holds no base.qcow2"
t_base=$(($(date +%s) - start))

mkdir -p "$OUT"
rm -rf "$OUT/qemu"
: >"$OUT/build-serial.log"
step "packer build -only=qemu.node" "packer's output is above; the build VM's console is in $OUT/build-serial.log"
log "packer build -only=qemu.node (accelerator $ACCEL; the build VM's console: $OUT/build-serial.log)"
t0=$(date +%s)
packer build -color=false -only=qemu.node \
  -var "layer=$LAYER" \
  -var "qemu_base_image=$base/base.qcow2" \
  -var "qemu_base_checksum=sha256:$(cut -d' ' -f1 "$base/base.qcow2.sha256")" \
  -var "qemu_kernel=$base/vmlinuz" \
  -var "qemu_initrd=$base/initrd.img" \
  -var "qemu_ssh_private_key_file=$base/build_key" \
  -var "qemu_accelerator=$ACCEL" \
  -var "qemu_output_dir=$OUT/qemu" \
  -var "qemu_serial_log=$OUT/build-serial.log" \
  packer/node.pkr.hcl
t_build=$(($(date +%s) - t0))
image=$OUT/qemu/k8s-node.qcow2
[ -f "$image" ] || die "packer reported success but $image is missing"
log "built $image: $(du -h "$image" | cut -f1) on disk, virtual $(qemu-img info "$image" | sed -n 's/^virtual size: //p'); base ${t_base}s, packer build ${t_build}s"

if [ "${SKIP_BOOT:-}" = 1 ]; then exit 0; fi
t0=$(date +%s)
step "boot test of $image (tests/packer/boot-test.sh)"
tests/packer/boot-test.sh "$image" "$base/vmlinuz" "$base/initrd.img"
t_boot=$(($(date +%s) - t0))
t_cluster=skipped
if [ "${SKIP_CLUSTER:-}" != 1 ]; then
  t0=$(date +%s)
  step "a cluster of the image: master + 2 minions on cgroup v2 (tests/packer/cluster-test.sh)"
  ACCEL=$ACCEL tests/packer/cluster-test.sh "$image" "$base/vmlinuz" "$base/initrd.img"
  t_cluster=$(($(date +%s) - t0))s
fi
log "base ${t_base}s, packer build ${t_build}s, boot test ${t_boot}s, cluster test ${t_cluster}; total $(($(date +%s) - start))s"
