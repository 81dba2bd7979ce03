#!/usr/bin/env bash
# Boot a node image made by `packer build -only=qemu.node` under QEMU (TCG) with the example MINION user data
# (packer/user-data/minion.yaml, placeholders filled in) on a NoCloud seed disk, and check that the image's first
# boot works: cloud-init ran and wrote the role file, `k8s-agent status` answers (a minion with no masters waits:
# exit 3), ssh.service runs with freshly generated host keys, /etc/machine-id was regenerated, and no build
# credential is left (the build key is in no authorized_keys, root's password is locked).
#
# Usage: tests/packer/boot-test.sh IMAGE.qcow2 VMLINUZ INITRD
# Env:   BOOT_TIMEOUT (seconds, default 600), ACCEL (tcg|kvm, default tcg), KEEP=1 keeps the work directory.
# The image is booted with -snapshot (never modified). The VM's only network is QEMU user networking with
# restrict=on: DHCP works inside, nothing leaves the VM (the agent's DNS lookups of masters.<cluster>.k8s fail, so
# it waits). Needs qemu-system-x86_64, mkfs.vfat (dosfstools) and mcopy (mtools).
set -euo pipefail
cd "$(dirname "$0")/../.."

[ $# -eq 3 ] || {
  sed -n '7p' "$0" >&2
  exit 2
}
IMAGE=$1 KERNEL=$2 INITRD=$3
TIMEOUT=${BOOT_TIMEOUT:-600}
ACCEL=${ACCEL:-tcg}
log() { echo "boot-test.sh: $*" >&2; }
for tool in qemu-system-x86_64 mkfs.vfat mcopy; do
  command -v "$tool" >/dev/null || {
    log "$tool is missing (tests/packer/install-qemu.sh; apt-get install dosfstools mtools)"
    exit 2
  }
done

work=$(mktemp -d /tmp/k8s-boot-test.XXXXXX)
qemu_pid=""
cleanup() {
  if [ -n "$qemu_pid" ] && kill -0 "$qemu_pid" 2>/dev/null; then
    kill -TERM "$qemu_pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$qemu_pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$qemu_pid" 2>/dev/null || true
  fi
  if [ "${KEEP:-}" = 1 ]; then log "kept $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT

# --- user data: the example minion file, rendered as a launcher renders it, plus a probe script part.
# (packer/render-user-data.sh fails naming any placeholder this test does not set.)
CLUSTER_NAME=boottest DNS_DOMAIN=k8s HOST_CHECKS=warn WEAVE_CONSENSUS=1 BOOTSTRAP_TOKEN=abcdef.0123456789abcdef \
  CA_CERT_HASH=sha256:$(printf 'k8s-image boot test: not a real CA' | sha256sum | cut -d' ' -f1) \
  packer/render-user-data.sh minion >"$work/minion.yaml"

# Runs in cloud-final (before k8s-agent.service, which is ordered after it): starts a transient unit that polls
# `k8s-agent status` until the agent is past its host checks (exit 5 = no state yet; exit 3 in host-check = not yet)
# and writes the answer to the serial console.
cat >"$work/probe.sh" <<'EOF'
#!/bin/sh
cat >/run/k8s-boot-probe.sh <<'PROBE'
#!/bin/sh
rc=5
for i in $(seq 1 300); do
  out=$(k8s-agent status 2>&1) && rc=0 || rc=$?
  # Past the host checks: a minion with no masters then waits in resolve-masters (or it failed).
  [ "$rc" -ne 5 ] && [ "$rc" -ne 3 ] && break
  [ "$rc" -eq 3 ] && echo "$out" | grep -q resolve-masters && break
  sleep 1
done
{
  echo "K8S-PROBE-BEGIN"
  echo "$out"
  echo "probe: agent=$(systemctl is-active k8s-agent.service) ssh=$(systemctl is-active ssh.service)"
  echo "probe: hostkeys=$(ls /etc/ssh/ssh_host_*_key 2>/dev/null | wc -l) machine-id=$(cat /etc/machine-id)"
  echo "probe: role-file=$(ls /etc/sysconfig/kubernetes-* 2>/dev/null | tr '\n' ' ')"
  echo "probe: build-key=$(cat /root/.ssh/authorized_keys /home/*/.ssh/authorized_keys 2>/dev/null | grep -c 'k8s-image packer build') root-password=$(getent shadow root | cut -d: -f2)"
  echo "probe: cloud-init=$(cloud-init status 2>/dev/null | tr '\n' ' ')"
  echo "K8S-PROBE-END status_rc=$rc"
} >/dev/ttyS0 2>&1
PROBE
systemd-run --no-block --unit=k8s-boot-probe /bin/sh /run/k8s-boot-probe.sh
EOF

boundary="k8s-image-boot-test-$$"
{
  printf 'Content-Type: multipart/mixed; boundary="%s"\nMIME-Version: 1.0\n\n' "$boundary"
  printf -- '--%s\nContent-Type: text/cloud-config; charset="us-ascii"\nContent-Disposition: attachment; filename="minion.yaml"\n\n' "$boundary"
  cat "$work/minion.yaml"
  printf -- '\n--%s\nContent-Type: text/x-shellscript; charset="us-ascii"\nContent-Disposition: attachment; filename="k8s-boot-probe.sh"\n\n' "$boundary"
  cat "$work/probe.sh"
  printf -- '\n--%s--\n' "$boundary"
} >"$work/user-data"
printf 'instance-id: k8s-boot-test-%s\nlocal-hostname: minion-1\n' "$$" >"$work/meta-data"

mkfs.vfat -n CIDATA -C "$work/seed.img" 2048 >/dev/null
mcopy -i "$work/seed.img" "$work/user-data" "$work/meta-data" ::

# --- boot
log "booting $IMAGE (accelerator $ACCEL, timeout ${TIMEOUT}s; console: $work/console.log)"
start=$(date +%s)
qemu-system-x86_64 -machine "accel=$ACCEL" -m 1024 -smp 2 -nodefaults -no-user-config -display none \
  -drive "file=$IMAGE,if=virtio,format=qcow2,snapshot=on" \
  -drive "file=$work/seed.img,if=virtio,format=raw,readonly=on" \
  -kernel "$KERNEL" -initrd "$INITRD" -append "root=/dev/vda rw console=ttyS0 net.ifnames=0" \
  -netdev user,id=n0,restrict=on -device virtio-net-pci,netdev=n0 \
  -serial "file:$work/console.log" &
qemu_pid=$!

found=0
while [ $(($(date +%s) - start)) -lt "$TIMEOUT" ]; do
  if grep -q 'K8S-PROBE-END' "$work/console.log" 2>/dev/null; then
    found=1
    break
  fi
  kill -0 "$qemu_pid" 2>/dev/null || break
  sleep 2
done
elapsed=$(($(date +%s) - start))
if [ "$found" != 1 ]; then
  log "no probe answer after ${elapsed}s; last console lines:"
  tr -d '\r' <"$work/console.log" | tail -n 40 >&2
  exit 1
fi
probe=$(tr -d '\r' <"$work/console.log" | sed -n '/K8S-PROBE-BEGIN/,/K8S-PROBE-END/p')
echo "$probe"

# What `k8s-agent status` printed: the lines between the begin marker and the probe's own lines.
status=$(echo "$probe" | sed -n '2,$p' | sed '/^probe: /,$d')
passed=0 failed=0
check() { # REGEX WHAT [TEXT]
  if printf '%s\n' "${3-$probe}" | grep -qE "$1"; then
    echo "ok: $2"
    passed=$((passed + 1))
  else
    echo "FAIL: $2 (expected /$1/)"
    failed=$((failed + 1))
  fi
}
check 'K8S-PROBE-END status_rc=3$' "k8s-agent status answers: exit 3 (waiting: a minion with no masters)"
check '[Mm]inion' "the status names the minion role" "$status"
check 'boottest' "the status names the cluster from the user data" "$status"
check 'role-file=/etc/sysconfig/kubernetes-minions $' "cloud-init wrote the role file from minion.yaml"
check 'resolve-masters|ResolveMasters' "the minion waits for its masters (none in this test)" "$status"
check 'build-key=0 root-password=\*$' "no build credential: the build key is in no authorized_keys, root's password is locked"
check 'agent=active' "k8s-agent.service runs (the image's only enabled unit)"
check 'ssh=active' "ssh.service runs with host keys made at first boot"
check 'hostkeys=[1-9]' "new SSH host keys exist"
check 'machine-id=[0-9a-f]{32}$' "a machine-id was generated at first boot"
log "probe answered after ${elapsed}s"
echo "boot: $passed passed, $failed failed"
[ "$failed" = 0 ]
