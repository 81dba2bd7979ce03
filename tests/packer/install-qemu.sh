#!/usr/bin/env bash
# Install QEMU (qemu-system-x86) for the opt-in Packer qemu build and boot test.
#
# On Debian 12 the machine's qemu-utils may already come from bookworm-backports (10.x), which conflicts with
# bookworm's qemu-system-x86 7.2, so QEMU is taken from bookworm-backports: this adds a backports apt source with the
# same URI and Signed-By as the host's main bookworm source (deb822 or one-line format) when none is configured.
# Idempotent; needs root (or sudo).
set -euo pipefail

SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
log() { echo "install-qemu.sh: $*" >&2; }

if command -v qemu-system-x86_64 >/dev/null && command -v qemu-img >/dev/null; then
  log "already installed: $(qemu-system-x86_64 --version | head -n 1)"
  exit 0
fi

have_backports() {
  grep -rqsE '(^|[[:space:]])bookworm-backports([[:space:]]|$)' /etc/apt/sources.list /etc/apt/sources.list.d/
}

if ! have_backports; then
  uri="" signed=""
  if [ -r /etc/apt/sources.list.d/debian.sources ]; then
    # The deb822 paragraph whose Suites include bookworm: its URIs and Signed-By.
    read -r uri signed < <(awk '
      BEGIN { RS = ""; FS = "\n" }
      {
        u = ""; s = ""; su = ""
        for (i = 1; i <= NF; i++) {
          if ($i ~ /^URIs:/) { u = $i; sub(/^URIs:[ \t]*/, "", u); sub(/[ \t].*/, "", u) }
          if ($i ~ /^Signed-By:/) { s = $i; sub(/^Signed-By:[ \t]*/, "", s) }
          if ($i ~ /^Suites:/) { su = " " $i " " }
        }
        if (u != "" && su ~ / bookworm /) { print u, (s == "" ? "-" : s); exit }
      }' /etc/apt/sources.list.d/debian.sources) || true
  fi
  if [ -z "$uri" ] && [ -r /etc/apt/sources.list ]; then
    uri=$(awk '$1 == "deb" { i = 2; if ($i ~ /^\[/) { while ($i !~ /\]$/) i++; i++ }
                             if ($(i + 1) == "bookworm") { print $i; exit } }' /etc/apt/sources.list)
  fi
  uri=${uri:-http://deb.debian.org/debian}
  [ -n "$signed" ] && [ "$signed" != - ] || signed=/usr/share/keyrings/debian-archive-keyring.gpg
  log "adding bookworm-backports ($uri, Signed-By $signed)"
  printf 'Types: deb\nURIs: %s\nSuites: bookworm-backports\nComponents: main\nSigned-By: %s\n' "$uri" "$signed" |
    $SUDO tee /etc/apt/sources.list.d/bookworm-backports.sources >/dev/null
fi

$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends -t bookworm-backports qemu-system-x86 qemu-utils >/dev/null
log "installed: $(qemu-system-x86_64 --version | head -n 1)"
