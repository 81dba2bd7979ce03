#!/usr/bin/env bash
# bench/cluster.sh: local cluster bring-up, `demo/local-cluster.sh up` to every node Ready.
#
#   bench/cluster.sh [--cold]      warm: 1, 3 and 6 nodes (1 master + N-1 minions), REPS runs each (default 3),
#                                  median
#                                  --cold: also once for 3 nodes with empty caches (debootstrap, cloud-init + host
#                                  packages, layer), in a separate cache directory
#
# Needs root, the demo layer (./demo/build.sh) and the packages .ci/run installs. Prints a markdown table.
set -euo pipefail
cd "$(dirname "$0")/.."
LC=demo/local-cluster.sh
[ "$(id -u)" = 0 ] || { echo "run as root" >&2; exit 2; }
[ -f out/demo/layer.tar.gz ] || ./demo/build.sh

up_ms() { # minions → ms from `up` start to all Ready (rootfs already cached)
  $LC down >/dev/null 2>&1 || true
  local t0 t1
  t0=$(date +%s%3N)
  $LC up "$1" >/dev/null 2>&1 || { echo "up $1 failed" >&2; $LC down >/dev/null 2>&1; return 1; }
  t1=$(date +%s%3N)
  $LC down >/dev/null 2>&1
  echo $((t1 - t0))
}

$LC rootfs >/dev/null 2>&1   # warm the caches once
echo "| nodes (1 master + minions) | warm up → all Ready, median (ms) | runs (ms) |"
echo "|---|---|---|"
for nodes in 1 3 6; do
  runs=()
  for _ in $(seq "${REPS:-3}"); do runs+=("$(up_ms $((nodes - 1)))"); done
  median=$(printf '%s\n' "${runs[@]}" | sort -n | sed -n "$(( (${#runs[@]} + 1) / 2 ))p")
  echo "| $nodes | $median | ${runs[*]} |"
done

if [ "${1:-}" = --cold ]; then
  cold=$(mktemp -d /var/tmp/k8s-cold-XXXX)
  trap 'rm -rf "$cold"' EXIT
  t0=$(date +%s%3N)
  K8S_TEST_CACHE=$cold $LC rootfs >/dev/null 2>&1
  t1=$(date +%s%3N)
  K8S_TEST_CACHE=$cold $LC down >/dev/null 2>&1 || true
  K8S_TEST_CACHE=$cold $LC up 2 >/dev/null 2>&1
  t2=$(date +%s%3N)
  $LC down >/dev/null 2>&1
  echo
  echo "| cold, 3 nodes | ms |"
  echo "|---|---|"
  echo "| node rootfs from nothing (debootstrap + cloud-init + host packages + layer + check) | $((t1 - t0)) |"
  echo "| then up → all Ready | $((t2 - t1)) |"
fi
