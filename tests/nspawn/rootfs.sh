#!/usr/bin/env bash
# Build (once) and cache a Debian minbase root filesystem that boots real systemd under systemd-nspawn: Debian 13
# (trixie, what the nodes run) unless K8S_TEST_SUITE names another suite.
#
# Usage: tests/nspawn/rootfs.sh            prints the rootfs directory on stdout (everything else goes to stderr)
#
# Cache: ${K8S_TEST_CACHE:-/var/cache/k8s-image-test}/rootfs-<suite>, with a stamp file `.k8s-test-stamp` holding
# the package list. The rootfs is built in a temporary directory next to it and renamed only when complete, so an
# interrupted run never leaves a half rootfs behind. A rootfs whose stamp does not match the package list below is
# rebuilt. Concurrent callers serialise on a lock file.
#
# Mirror: the host's configured Debian mirror for the suite (from /etc/apt/sources.list*), else deb.debian.org;
# override with K8S_TEST_MIRROR.
LIB_SCRIPT=rootfs.sh
# shellcheck source=demo/lib.sh
. "$(dirname "$0")/../../demo/lib.sh"
stdout_is_result

SUITE=${K8S_TEST_SUITE:-trixie}
PACKAGES=systemd,systemd-sysv,dbus,iproute2,ca-certificates
CACHE=${K8S_TEST_CACHE:-/var/cache/k8s-image-test}
ROOTFS=$CACHE/rootfs-$SUITE
STAMP_NAME=.k8s-test-stamp
# Bump FIXES when the post-debootstrap fixes below change: cached rootfs with another stamp are rebuilt.
FIXES=2
STAMP_WANT="suite=$SUITE variant=minbase include=$PACKAGES fixes=$FIXES"

# The first http(s) Debian mirror the host's apt configuration names for $SUITE (one-line and deb822 formats).
host_mirror() {
  local f
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
    [ -r "$f" ] || continue
    case "$f" in
      *.sources)
        # deb822: paragraphs with URIs: and Suites:; pick a paragraph whose Suites include $SUITE exactly.
        awk -v suite="$SUITE" '
          BEGIN { RS = ""; FS = "\n" }
          {
            uris = ""; suites = ""
            for (i = 1; i <= NF; i++) {
              if ($i ~ /^URIs:/) { uris = $i; sub(/^URIs:[ \t]*/, "", uris) }
              if ($i ~ /^Suites:/) { suites = $i; sub(/^Suites:/, "", suites); gsub(/[ \t]+/, " ", suites) }
            }
            if (uris != "" && (" " suites " ") ~ (" " suite " ")) { split(uris, u, /[ \t]+/); print u[1]; exit }
          }' "$f"
        ;;
      *)
        awk -v suite="$SUITE" '
          $1 == "deb" {
            i = 2; if ($i ~ /^\[/) { while ($i !~ /\]$/) i++; i++ }
            if ($(i + 1) == suite) { print $i; exit }
          }' "$f"
        ;;
    esac
  done | grep -E '^https?://' | grep -v -e security -e snapshot | head -n 1 || true
}

step "checking what building a rootfs needs"
need_root
need_commands debootstrap chroot flock awk

mkdir -p "$CACHE"
exec 9>"$CACHE/.rootfs-$SUITE.lock"
flock 9

if [ -f "$ROOTFS/$STAMP_NAME" ] && [ "$(head -n 1 "$ROOTFS/$STAMP_NAME")" = "$STAMP_WANT" ]; then
  log "cached: $ROOTFS"
  result "$ROOTFS"
  exit 0
fi

MIRROR=${K8S_TEST_MIRROR:-$(host_mirror)}
MIRROR=${MIRROR:-http://deb.debian.org/debian}

# Leftovers of an interrupted build (we hold the lock, so nobody else is building).
for stale in "$CACHE/.rootfs-$SUITE.tmp."*; do remove_tree "$stale"; done
TMP=$(mktemp -d "$CACHE/.rootfs-$SUITE.tmp.XXXXXX")
on_exit "remove_tree '$TMP'"

step "debootstrap $SUITE from $MIRROR" "the mirror must be reachable (set K8S_TEST_MIRROR to another one); nothing was cached, the next run starts again"
log "debootstrap $SUITE from $MIRROR into $TMP (about 1-2 minutes)"
start=$(date +%s)
if ! with_system_path debootstrap --variant=minbase --include="$PACKAGES" "$SUITE" "$TMP/root" "$MIRROR" \
  >"$TMP/debootstrap.log" 2>&1; then
  tail -n 30 "$TMP/debootstrap.log" >&2
  die "debootstrap failed (its last lines are above)"
fi
step "finishing the rootfs" "remove $CACHE/.rootfs-$SUITE.tmp.* and run again"

# Small fixes for a container rootfs: no getty on a read-only console; a machine-id systemd fills at boot; no
# /etc/hostname (debootstrap copies the host's), so each node keeps the hostname nspawn gives it (-M NAME); a minimal
# /etc/hosts.
ln -sf /dev/null "$TMP/root/etc/systemd/system/console-getty.service"
ln -sf /dev/null "$TMP/root/etc/systemd/system/getty@.service"
: >"$TMP/root/etc/machine-id"
rm -f "$TMP/root/etc/hostname"
printf '127.0.0.1\tlocalhost\n::1\t\tlocalhost ip6-localhost ip6-loopback\n' >"$TMP/root/etc/hosts"

{
  echo "$STAMP_WANT"
  echo "mirror=$MIRROR"
  echo "built=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
  # shellcheck disable=SC2016 # dpkg-query's format, not a shell expansion
  with_system_path chroot "$TMP/root" dpkg-query -W -f='${Package} ${Version}\n'
} >"$TMP/root/$STAMP_NAME"

remove_tree "$ROOTFS"
mv "$TMP/root" "$ROOTFS"
log "built $ROOTFS in $(($(date +%s) - start)) s"
result "$ROOTFS"
