#!/usr/bin/env bash
# The README's main command: build the demo image layer (demo/build.sh) and boot a local cluster of it
# (1 master + 2 minions, demo/local-cluster.sh up), printing each node's `k8s-agent status`.
# Tear it down with: demo/local-cluster.sh down
set -euo pipefail
cd "$(dirname "$0")/.."
./demo/build.sh
demo/local-cluster.sh down >/dev/null 2>&1 || true
demo/local-cluster.sh up "${1:-2}"
