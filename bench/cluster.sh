#!/usr/bin/env bash
# bench/cluster.sh: local cluster bring-up (demo/local-cluster.sh up), measured from the nodes' own state.
#
#   bench/cluster.sh [--cold]      1, 3 and 6 nodes (1 master + N-1 minions), REPS runs each (default 3), median
#                                  --cold: also once for 3 nodes with empty caches (debootstrap, cloud-init + host
#                                  packages, layer), in a separate cache directory
#
# Per run, from the `transitions` every agent records (`k8s-agent status --json`), relative to the master agent's
# start (its first transition): the master Ready (its join objects made), and over all minions the latest
#   units started   containerd, weave and kubelet active (before the join work this was "Ready"),
#   cert issued     kubelet's TLS bootstrap done: a client certificate for system:node:<name> signed by the CA,
#   Ready           kube-proxy started too,
# and the wall time of `up` (rootfs cached) to every node Ready.
# Needs root, the demo layer (./demo/build.sh) and the packages demo/ensure-packages.sh installs. Prints a table.
set -euo pipefail
cd "$(dirname "$0")/.."
LC=demo/local-cluster.sh
[ "$(id -u)" = 0 ] || { echo "run as root" >&2; exit 2; }
[ -f out/demo/layer.tar.gz ] || ./demo/build.sh

# One run: "<up ms> <master ready> <units started> <cert issued> <minions ready>" (ms; '-' for no minions).
run() { # minions
  $LC down >/dev/null 2>&1 || true
  local t0 t1 node dir
  dir=$(mktemp -d)
  t0=$(date +%s%3N)
  $LC up "$1" >/dev/null 2>&1 || { echo "up $1 failed" >&2; $LC down >/dev/null 2>&1; return 1; }
  t1=$(date +%s%3N)
  while read -r node _; do
    nsenter -t "$($LC leader "$node")" -a -- /usr/bin/k8s-agent status --json --no-units >"$dir/$node.json" || true
  done </run/k8s-local/nodes
  $LC down >/dev/null 2>&1
  python3 -c '
import json, sys
up = int(sys.argv[1])
nodes = [json.load(open(f)) for f in sys.argv[2:]]
def at(n, phase):
    return next((t["at"] for t in n["transitions"] if t["phase"] == phase), None)
master = next(n for n in nodes if n["role"] == "master")
t0 = master["transitions"][0]["at"]
minions = [n for n in nodes if n["role"] == "minion"]
def latest(phase):
    v = [at(n, phase) for n in minions]
    return "-" if not v else str(max(v) - t0)
print(up, at(master, "ready") - t0, latest("kubelet-bootstrap"), latest("start-kube-proxy"), latest("ready"))
' "$((t1 - t0))" "$dir"/*.json
  rm -rf "$dir"
}

median() {
  local values
  mapfile -t values < <(sort -n)
  [ "${#values[@]}" -gt 0 ] && echo "${values[$(((${#values[@]} - 1) / 2))]}"
}
col() { cut -d' ' -f"$1" <<<"$2" | grep -v '^-$' | median; }

$LC rootfs >/dev/null 2>&1   # warm the caches once
echo "| nodes | up → all Ready (wall) | master Ready (join objects made) | minions' units started | minions' kubelet certificates issued | minions Ready (kube-proxy) | runs |"
echo "|---|---|---|---|---|---|---|"
for nodes in 1 3 6; do
  results=""
  for _ in $(seq "${REPS:-3}"); do results+="$(run $((nodes - 1)))"$'\n'; done
  results=${results%$'\n'}
  printf '| %s | %s ms | %s ms | %s | %s | %s | %s |\n' "$nodes" "$(col 1 "$results")" "$(col 2 "$results")" \
    "$( [ "$nodes" = 1 ] && echo – || echo "$(col 3 "$results") ms")" \
    "$( [ "$nodes" = 1 ] && echo – || echo "$(col 4 "$results") ms")" \
    "$( [ "$nodes" = 1 ] && echo – || echo "$(col 5 "$results") ms")" \
    "$(tr '\n' ';' <<<"$results" | sed 's/;$//; s/;/; /g')"
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
