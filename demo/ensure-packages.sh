#!/usr/bin/env bash
# demo/ensure-packages.sh [main|test|all]: install the Debian packages of demo/debian-packages.txt that are missing
# (tier `main`: what ./demo/up.sh needs; `test`: what the tests need on top; `all`: both; default main).
# Says what it installs. Without root it names the missing packages and stops (exit 1) before changing anything.
#   demo/ensure-packages.sh --list TIER    print the tier's packages, one a line (used by the fresh-machine check)
LIB_SCRIPT=ensure-packages
# shellcheck source=demo/lib.sh
. "$(dirname "$0")/lib.sh"
here=$(cd "$(dirname "$0")" && pwd)
LIST=${K8S_PACKAGE_LIST:-$here/debian-packages.txt}

list=0
if [ "${1:-}" = --list ]; then list=1; shift; fi
tier=${1:-main}
case $tier in main | test | all) ;; *) die "unknown tier '$tier'" "use main, test or all" ;; esac

step "reading $LIST"
tier_list=$(awk -v t="$tier" '
  /^[[:space:]]*(#|$)/ { next }
  NF < 2 || ($2 != "main" && $2 != "test") { printf "bad line %d: %s\n", NR, $0 > "/dev/stderr"; exit 3 }
  t == "all" || $2 == t { print $1 }' "$LIST")
mapfile -t packages <<<"$tier_list"
[ -n "$tier_list" ] || die "no packages of tier $tier in $LIST"
if [ "$list" = 1 ]; then printf '%s\n' "${packages[@]}"; exit 0; fi

installed() { dpkg-query -W -f='${Status}\n' "$1" 2>/dev/null | grep -q "install ok installed"; }
missing=()
for p in "${packages[@]}"; do installed "$p" || missing+=("$p"); done
[ "${#missing[@]}" -gt 0 ] || exit 0

if [ "$(id -u)" != 0 ]; then
  die "these Debian packages are missing: ${missing[*]}" \
    "run as root (sudo $0 $tier), or install them: apt-get install --no-install-recommends ${missing[*]}"
fi
log "installing ${#missing[@]} Debian package(s) ($tier): ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
step "apt-get update" "apt-get needs the Debian mirror configured in /etc/apt/sources.list*"
with_system_path apt-get update -qq
# Packages that ship a daemon (containerd, docker-registry) must not start it on this machine: the tests run their
# own instances on private sockets and free ports. policy-rc.d (Debian's policy layer) says no while we install.
if [ ! -e /usr/sbin/policy-rc.d ]; then
  printf '#!/bin/sh\n# written by %s while it installs packages: no daemon starts\nexit 101\n' "$0" >/usr/sbin/policy-rc.d
  chmod 0755 /usr/sbin/policy-rc.d
  on_exit "rm -f /usr/sbin/policy-rc.d"
fi
step "apt-get install ${missing[*]}" "see apt-get's message above; the package names come from $LIST"
with_system_path apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
for p in "${missing[@]}"; do installed "$p" || die "$p is still not installed after apt-get install"; done
log "installed: ${missing[*]}"
