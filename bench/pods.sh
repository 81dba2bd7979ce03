#!/usr/bin/env bash
# bench/pods.sh: a working cluster, timed — from `up` to a pod Running on every minion and to the first cross-node
# ping, and the pod start latency (create → Running) of 10 pods per minion beside its floor in the same run.
#
#   bench/pods.sh [REPS]     REPS cluster runs (default 3) of 1 master + 2 minions (the bridge pod network,
#                            CNI=bridge); prints one table
#
# Per run, from the start of `demo/local-cluster.sh up 2` (rootfs cached):
#   up          `up` returned: every node Ready (the agents' status; kubectl shows both minions Ready);
#   pods        a busybox pod created on each minion right then (nodeName pinned) shows Running in the API;
#   ping        a ping from the pod on minion1 to the pod on minion2 first answered (tried every 0.2 s).
# Then 20 pods at once (10 per minion, `kubectl apply` of one list), each timed from the apply to the first poll
# (every 0.2 s) that shows it Running: p50, p95 and max. The floor beside it: the same image run by containerd and
# runc on minion1 without kubelet (`ctr run --rm … /bin/true`, 10 in a row): what a pod's containers cost at least.
# Weave's ring formation is not measured: the image has no Weave Net (docs/agent.md "Pod network").
# Anchor: kind makes a 1 + 2 cluster with its default CNI (kindnet) from a cached node image in about a minute; it
# cannot run here (no registry), so it is not measured in the same run.
# Needs root, the demo layer (./demo/build.sh) and the packages demo/ensure-packages.sh installs.
set -euo pipefail
cd "$(dirname "$0")/.."
LC=demo/local-cluster.sh
REPS=${1:-3}
[ "$(id -u)" = 0 ] || { echo "run as root" >&2; exit 2; }
[ -f out/demo/layer.tar.gz ] || ./demo/build.sh
IMAGE=localhost/k8s-image/busybox:1.37.0

now() { date +%s%3N; }
kc() { nsenter -t "$($LC leader master)" -a -- /usr/bin/kubectl --kubeconfig /etc/kubernetes/admin.conf --request-timeout=10s "$@"; }
phase_of() { kc get pod "$1" -o jsonpath='{.status.phase}' 2>/dev/null || true; }
trap '$LC down >/dev/null 2>&1 || true' EXIT

pod_json() { # name node → a Pod that sleeps
  printf '{"apiVersion":"v1","kind":"Pod","metadata":{"name":"%s","labels":{"bench":"pods"}},"spec":{"nodeName":"%s","terminationGracePeriodSeconds":0,"containers":[{"name":"c","image":"%s","imagePullPolicy":"Never","command":["sleep","3600"]}]}}' "$1" "$2" "$IMAGE"
}

rows=()
latencies=()
floors=()
for _ in $(seq "$REPS"); do
  $LC down >/dev/null 2>&1 || true
  t0=$(now)
  $LC up 2 >/tmp/bench-pods-up.log 2>&1 || { tail -n 20 /tmp/bench-pods-up.log; exit 1; }
  t_up=$(now)
  for n in 1 2; do pod_json "p$n" "minion$n" | kc apply -f - >/dev/null; done
  while [ "$(phase_of p1)" != Running ] || [ "$(phase_of p2)" != Running ]; do
    [ $(( $(now) - t_up )) -lt 120000 ] || { echo "pods not Running in 120 s" >&2; exit 1; }
    sleep 0.2
  done
  t_pods=$(now)
  ip2=$(kc get pod p2 -o jsonpath='{.status.podIP}')
  until kc exec p1 -- ping -c 1 -W 1 "$ip2" >/dev/null 2>&1; do
    [ $(( $(now) - t_pods )) -lt 120000 ] || { echo "no cross-node ping in 120 s" >&2; exit 1; }
    sleep 0.2
  done
  t_ping=$(now)
  rows+=("$((t_up - t0)) $((t_pods - t0)) $((t_ping - t0))")

  # 20 pods at once, each timed from the apply to the poll that first shows it Running.
  {
    printf '{"apiVersion":"v1","kind":"List","items":['
    sep=
    for n in 1 2; do for i in $(seq 10); do printf '%s' "$sep"; pod_json "b$n-$i" "minion$n"; sep=,; done; done
    printf ']}'
  } >/tmp/bench-pods-list.json
  t_apply=$(now)
  kc apply -f - </tmp/bench-pods-list.json >/dev/null
  declare -A running=()
  while [ "${#running[@]}" -lt 20 ]; do
    [ $(( $(now) - t_apply )) -lt 180000 ] || { echo "20 pods not Running in 180 s" >&2; exit 1; }
    t_poll=$(now)
    while read -r name ph; do
      if [ "$ph" = Running ] && [ -z "${running[$name]:-}" ]; then running[$name]=$((t_poll - t_apply)); fi
    done < <(kc get pods -l bench=pods -o jsonpath='{range .items[*]}{.metadata.name} {.status.phase}{"\n"}{end}' | grep '^b')
    sleep 0.2
  done
  for name in "${!running[@]}"; do latencies+=("${running[$name]}"); done
  unset running

  # The floor: containerd + runc alone, the same image, on minion1.
  for i in $(seq 10); do
    s=$(now)
    nsenter -t "$($LC leader minion1)" -a -- ctr -n k8s.io run --rm "$IMAGE" "bench-floor-$i" /bin/true
    floors+=("$(( $(now) - s ))")
  done
done
$LC down >/dev/null 2>&1 || true
trap - EXIT

median() { sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }
pct() { sort -n | awk -v p="$1" '{ a[NR] = $1 } END { i = int(NR * p / 100 + 0.999); if (i < 1) i = 1; print a[i] }'; }
col() { printf '%s\n' "${rows[@]}" | awk -v c="$1" '{ print $c }'; }
echo "## bench/pods.sh — $(date -u +%Y-%m-%d), $(nproc) cores, $REPS runs of 1 master + 2 minions (CNI=bridge)"
echo
echo "| from the start of \`up 2\` | median | runs |"
echo "|---|---|---|"
echo "| every node Ready (\`up\` returned) | $(col 1 | median) ms | $(col 1 | tr '\n' ' ') |"
echo "| a pod Running on every minion | $(col 2 | median) ms | $(col 2 | tr '\n' ' ') |"
echo "| first cross-node ping (pod on minion1 → pod on minion2) | $(col 3 | median) ms | $(col 3 | tr '\n' ' ') |"
echo
echo "| pod start, create → Running (20 at once: 10 per minion; ${#latencies[@]} pods) | p50 | p95 | max |"
echo "|---|---|---|---|"
echo "| kubelet + containerd + runc, bridge CNI | $(printf '%s\n' "${latencies[@]}" | pct 50) ms | $(printf '%s\n' "${latencies[@]}" | pct 95) ms | $(printf '%s\n' "${latencies[@]}" | pct 100) ms |"
echo "| floor: \`ctr run --rm\` of the same image, one at a time (${#floors[@]} runs) | $(printf '%s\n' "${floors[@]}" | pct 50) ms | $(printf '%s\n' "${floors[@]}" | pct 95) ms | $(printf '%s\n' "${floors[@]}" | pct 100) ms |"
echo
echo "Anchor (not run here): kind, 1 + 2 nodes with kindnet from a cached node image, about 60 s to a usable cluster."
