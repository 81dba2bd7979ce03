#!/usr/bin/env bash
# Bake the k8s-image layer into the machine Packer is building (every source runs this same script, as root).
#
# Steps, each fatal on failure (the image is never registered then):
#   1. verify   layer.tar.gz against its sha256sum sidecar, the digest the Packer host read from the sidecar, and the
#               optional pin K8S_LAYER_SHA256;
#   2. extract  the layer at / (existing directories keep their owner, mode and mtime; directory symlinks such as
#               merged-/usr's /lib are followed, never replaced);
#   3. install  the host packages the layer's lock lists (/usr/share/k8s-image/lock.json, "host_packages"), with
#               apt-get; the lock is read with sed, so the base image needs no jq or python;
#   4. enable   k8s-agent.service (the only enabled unit: the role units are started by the agent), and apply the
#               layer's modules-load.d and sysctl.d now, as the node does at boot;
#   5. gate     `k8s-agent check --root /`: exit 0 passes (warnings allowed, e.g. a demo layer's stand-ins), anything
#               else fails the build;
#   6. clean up for imaging: cloud-init clean (the next boot is a first boot that reads user data), /etc/machine-id
#               emptied, SSH host keys removed (cloud-init makes new ones at first boot), build credentials removed
#               (authorized_keys of root and of every /home user, root's password locked, K8S_BUILD_CLEANUP paths),
#               a build-time cloud-init.disabled marker removed, the upload directory, apt lists and logs removed.
#
# Environment (set by packer/node.pkr.hcl):
#   K8S_IMAGE_UPLOAD          directory holding layer.tar.gz and layer.tar.gz.sha256 (default /tmp/k8s-image)
#   K8S_LAYER_SIDECAR_SHA256  the sidecar's digest as the Packer host read it (optional)
#   K8S_LAYER_SHA256          the expected digest, pinned by the caller (optional)
#   K8S_BUILD_CLEANUP         space-separated absolute paths of build-only files to remove (optional)
#   K8S_BUILD_SOURCE          the Packer source (for the log only)
#   K8S_SKIP_CLEANUP=1        stop after the gate (debugging a build; never for an image you ship)
set -euo pipefail
shopt -s nullglob

UPLOAD=${K8S_IMAGE_UPLOAD:-/tmp/k8s-image}
LOCK=/usr/share/k8s-image/lock.json
export DEBIAN_FRONTEND=noninteractive

step() { echo "==> provision: $*"; }
die() {
  echo "provision: error: $*" >&2
  exit 1
}

# Every step needs root; the template runs this script through sudo when the login user is not root.
[ "$(id -u)" = 0 ] || die "must run as root (the template runs it with sudo -n for non-root logins)"

# The JSON string array "host_packages" of a lock file, one name a line. Tiny on purpose: the lock is written by
# imagebuilder (serde_json, pretty or compact), so the array holds plain strings; anything else is rejected below.
host_packages() {
  local lock=$1 array
  array=$(tr -d '\n\r' <"$lock" | sed -n 's/.*"host_packages"[[:space:]]*:[[:space:]]*\[\([^]]*\)\].*/\1/p')
  if [ -z "$array" ] && ! tr -d '\n\r' <"$lock" | grep -q '"host_packages"[[:space:]]*:[[:space:]]*\[[[:space:]]*\]'; then
    return 1
  fi
  printf '%s\n' "$array" | tr ',' '\n' | sed -e 's/^[[:space:]]*"//' -e 's/"[[:space:]]*$//' | sed '/^[[:space:]]*$/d'
}

# --------------------------------------------------------------------------------------------------------------
step "1/6 verify the layer (source ${K8S_BUILD_SOURCE:-unknown})"
[ -f "$UPLOAD/layer.tar.gz" ] || die "$UPLOAD/layer.tar.gz was not uploaded"
[ -f "$UPLOAD/layer.tar.gz.sha256" ] || die "$UPLOAD/layer.tar.gz.sha256 was not uploaded"
(cd "$UPLOAD" && sha256sum --check --strict layer.tar.gz.sha256) ||
  die "layer.tar.gz does not match its sidecar (corrupted upload?)"
actual=$(sha256sum "$UPLOAD/layer.tar.gz" | cut -d' ' -f1)
if [ -n "${K8S_LAYER_SIDECAR_SHA256:-}" ] && [ "$actual" != "$K8S_LAYER_SIDECAR_SHA256" ]; then
  die "uploaded layer has sha256 $actual, the Packer host's sidecar says $K8S_LAYER_SIDECAR_SHA256"
fi
if [ -n "${K8S_LAYER_SHA256:-}" ] && [ "$actual" != "$K8S_LAYER_SHA256" ]; then
  die "layer sha256 $actual is not the pinned layer_sha256 $K8S_LAYER_SHA256"
fi
echo "layer sha256 $actual"

# --------------------------------------------------------------------------------------------------------------
step "2/6 extract the layer at /"
# The layer holds only regular files, directories and symlinks owned by 0:0 (imagebuilder's deterministic tar).
tar --extract --gzip --file "$UPLOAD/layer.tar.gz" --directory / \
  --no-overwrite-dir --keep-directory-symlink --numeric-owner --same-owner --same-permissions
[ -f "$LOCK" ] || die "the layer has no $LOCK"
[ -x /usr/bin/k8s-agent ] || die "the layer has no executable /usr/bin/k8s-agent"

# --------------------------------------------------------------------------------------------------------------
step "3/6 install the host packages the lock lists"
packages=$(host_packages "$LOCK") || die "$LOCK has no \"host_packages\" array"
mapfile -t pkgs <<<"$packages"
if [ "${#pkgs[@]}" -eq 1 ] && [ -z "${pkgs[0]}" ]; then pkgs=(); fi
for p in "${pkgs[@]}"; do
  # Debian package names: lower case letters, digits, + - . (at least two characters, starting alphanumeric).
  [[ "$p" =~ ^[a-z0-9][a-z0-9+.-]+$ ]] || die "$LOCK: host package '$p' is not a Debian package name"
done
if [ "${#pkgs[@]}" -gt 0 ]; then
  echo "host packages: ${pkgs[*]}"
  # On a cloud instance cloud-init may still be installing or updating packages: let it finish first.
  if command -v cloud-init >/dev/null; then timeout 600 cloud-init status --wait >/dev/null 2>&1 || true; fi
  apt_opts=(-o DPkg::Lock::Timeout=300 -o Acquire::Retries=3)
  apt-get "${apt_opts[@]}" update -qq
  apt-get "${apt_opts[@]}" install -y -qq --no-install-recommends "${pkgs[@]}"
  for p in "${pkgs[@]}"; do
    dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q "install ok installed" ||
      die "host package $p is not installed after apt-get install"
  done
else
  echo "host packages: none listed"
fi

# --------------------------------------------------------------------------------------------------------------
step "4/6 enable k8s-agent.service; load the modules and sysctls the layer sets"
systemctl daemon-reload 2>/dev/null || true # (no running systemd, e.g. a chroot: enable still works offline)
systemctl enable k8s-agent.service
[ "$(systemctl is-enabled k8s-agent.service)" = enabled ] || die "k8s-agent.service is not enabled"
# The layer's modules-load.d and sysctl.d files act at boot; apply them now too, so that the gate's live checks on /
# (modules loaded, sysctls in effect) see this machine as the node will boot — and fail if the base's kernel lacks a
# module.
if [ -d /run/systemd/system ]; then
  systemctl restart systemd-modules-load.service systemd-sysctl.service
else
  /usr/lib/systemd/systemd-modules-load
  /usr/lib/systemd/systemd-sysctl
fi

# --------------------------------------------------------------------------------------------------------------
step "5/6 gate: k8s-agent check --root /"
rc=0
/usr/bin/k8s-agent check --root / || rc=$?
case $rc in
  0) echo "k8s-agent check passed" ;;
  1) die "k8s-agent check failed: this machine must not become an image" ;;
  *) die "k8s-agent check could not run (exit $rc)" ;;
esac

if [ "${K8S_SKIP_CLEANUP:-}" = 1 ]; then
  step "6/6 clean-up SKIPPED (K8S_SKIP_CLEANUP=1): do not ship this image"
  exit 0
fi

# --------------------------------------------------------------------------------------------------------------
step "6/6 clean up for imaging"
command -v cloud-init >/dev/null ||
  die "cloud-init is not installed: the node's role file comes from user data, so the image needs it"
# A base that disabled cloud-init for the build (the qemu test base) must not ship it disabled.
rm -f /etc/cloud/cloud-init.disabled
cloud-init clean --logs

# A new machine-id at first boot (systemd fills an empty /etc/machine-id); D-Bus's copy follows it.
: >/etc/machine-id
if [ -f /var/lib/dbus/machine-id ] && [ ! -L /var/lib/dbus/machine-id ]; then
  ln -sf /etc/machine-id /var/lib/dbus/machine-id
fi

# SSH host keys: cloud-init's ssh module generates new ones at first boot.
rm -f /etc/ssh/ssh_host_*

# Build credentials: the keys Packer logged in with, root's password, whatever else the caller names.
rm -f /root/.ssh/authorized_keys /home/*/.ssh/authorized_keys
usermod --password '*' root
for path in ${K8S_BUILD_CLEANUP:-}; do
  case $path in
    /*) rm -rf -- "$path" ;;
    *) die "K8S_BUILD_CLEANUP: '$path' is not an absolute path" ;;
  esac
done

# Build leftovers.
rm -rf -- "$UPLOAD"
apt-get clean
rm -rf /var/lib/apt/lists/*
rm -f /root/.bash_history /home/*/.bash_history
rm -rf /var/log/journal/* /tmp/* /var/tmp/*
find /var/log -type f \( -name '*.gz' -o -name '*.[0-9]' \) -delete
find /var/log -type f -exec truncate -s 0 {} +
sync
echo "image ready: layer $actual"
