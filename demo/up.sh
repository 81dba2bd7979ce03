#!/usr/bin/env bash
# The README's main command: set the machine up (the Debian packages of demo/debian-packages.txt, tier main, when
# missing), build the demo image layer (demo/build.sh) and boot a local cluster of it (1 master + 2 minions,
# demo/local-cluster.sh up), printing each node's `k8s-agent status`.
#   ./demo/up.sh [MINIONS]        as root; tear it down with: demo/local-cluster.sh down
# Every step stops at its first failure with one message naming the step and what to do.
LIB_SCRIPT=up
# shellcheck source=demo/lib.sh
. "$(dirname "$0")/lib.sh"
cd "$(dirname "$0")/.."
t0=$(ms_now)

step "installing the Debian packages the main command needs (demo/debian-packages.txt, tier main)"
./demo/ensure-packages.sh main
t_packages=$(ms_now)
log "packages: $(((t_packages - t0) / 1000)) s"
need_root
need_commands cargo

step "building the demo image layer (demo/build.sh)"
./demo/build.sh
t_build=$(ms_now)

step "booting the local cluster (demo/local-cluster.sh up)"
tolerate demo/local-cluster.sh down >/dev/null 2>&1
demo/local-cluster.sh up "${1:-2}"
log "done in $(( ($(ms_now) - t0) / 1000 )) s (build $(( (t_build - t0) / 1000 )) s, cluster $(( ($(ms_now) - t_build) / 1000 )) s); tear down with: demo/local-cluster.sh down"
