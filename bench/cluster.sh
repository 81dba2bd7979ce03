#!/usr/bin/env bash
# bench/cluster.sh: local cluster bring-up (demo/local-cluster.sh up), measured from the nodes' own state.
#
#   bench/cluster.sh [--cold]      1, 3 and 6 nodes (1 master + N-1 minions), REPS runs each (default 3), median
#                                  --cold: also once for 3 nodes with empty caches (debootstrap, cloud-init + host
#                                  packages, layer), in a separate cache directory
#   bench/cluster.sh --fleet [N]   one boot of 1 master + N-1 minions (default N=50): time to all Ready, the DNS
#                                  queries dnsmasq answered (by name), the memory the cluster took (MemAvailable
#                                  before and after), and a check of every minion's Weave decision against the rule
#                                  (exit 1 if one disagrees or two core members saw different peers)
#
# Per run, from the `transitions` every agent records (`k8s-agent status --json`), relative to the master agent's
# start (its first transition): the master Ready (join objects made, etcd/apiserver/controller-manager/scheduler
# answering their health endpoints), and over all minions the latest
#   units started   containerd, weave and kubelet active,
#   cert issued     kubelet's TLS bootstrap done: a client certificate for system:node:<name> signed by the CA,
#   Ready           kube-proxy started, kubelet and kube-proxy answering /healthz, the Node Ready in the API;
# beside it, from the real API server: when `kubectl get nodes` (the image's kubectl, admin.conf, polled every
# 0.2 s on the master during `up`) first shows every minion Ready; and the wall time of `up` (rootfs cached) to
# every node Ready. Anchor: kind creates a 1 + 2 cluster from a cached node image in about a minute.
# After the table, the agents' footprint on a Ready 1 + 2 cluster: RSS, peak RSS and CPU time over 60 s of Ready
# (the agent rechecks the components' health every 30 s).
# Needs root, the demo layer (./demo/build.sh) and the packages demo/ensure-packages.sh installs. Prints a table.
set -euo pipefail
cd "$(dirname "$0")/.."
LC=demo/local-cluster.sh
[ "$(id -u)" = 0 ] || { echo "run as root" >&2; exit 2; }
[ -f out/demo/layer.tar.gz ] || ./demo/build.sh

# When `kubectl get nodes` on the master first shows N minions Ready (unix ms, in $2), polled until it does or the
# file $3 appears.
kubectl_watch() { # minions out stop
  local leader ready
  [ "$1" -gt 0 ] || { echo - >"$2"; return; }
  while [ ! -e "$3" ]; do
    leader=$(cat /run/k8s-test/master/leader 2>/dev/null || true)
    if [ -n "$leader" ]; then
      ready=$(nsenter -t "$leader" -a -- /usr/bin/kubectl --kubeconfig /etc/kubernetes/admin.conf --request-timeout=2s \
        get nodes -o jsonpath='{range .items[*]}{.status.conditions[?(@.type=="Ready")].status}{"\n"}{end}' 2>/dev/null |
        grep -c '^True$' || true)
      if [ "${ready:-0}" -ge "$1" ]; then date +%s%3N >"$2"; return; fi
    fi
    sleep 0.2
  done
  echo - >"$2"
}

# One run: "<up ms> <master ready> <units started> <cert issued> <minions ready> <kubectl all Ready>" (ms; '-' for
# no minions).
run() { # minions
  $LC down >/dev/null 2>&1 || true
  local t0 t1 node dir watcher
  dir=$(mktemp -d)
  t0=$(date +%s%3N)
  kubectl_watch "$1" "$dir/kubectl-ready" "$dir/stop" &
  watcher=$!
  $LC up "$1" >/dev/null 2>&1 || { echo "up $1 failed" >&2; : >"$dir/stop"; wait "$watcher"; $LC down >/dev/null 2>&1; return 1; }
  t1=$(date +%s%3N)
  for _ in $(seq 100); do [ -s "$dir/kubectl-ready" ] && break; sleep 0.1; done
  : >"$dir/stop"
  wait "$watcher"
  while read -r node _; do
    nsenter -t "$($LC leader "$node")" -a -- /usr/bin/k8s-agent status --json --no-units >"$dir/$node.json" || true
  done </run/k8s-local/nodes
  $LC down >/dev/null 2>&1
  python3 -c '
import json, sys
up, started, kubectl = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
nodes = [json.load(open(f)) for f in sys.argv[4:]]
def at(n, phase):
    return next((t["at"] for t in n["transitions"] if t["phase"] == phase), None)
master = next(n for n in nodes if n["role"] == "master")
t0 = master["transitions"][0]["at"]
minions = [n for n in nodes if n["role"] == "minion"]
def latest(phase):
    v = [at(n, phase) for n in minions]
    return "-" if not v else str(max(v) - t0)
print(up, at(master, "ready") - t0, latest("kubelet-bootstrap"), latest("start-kube-proxy"), latest("ready"),
      "-" if kubectl == "-" else int(kubectl) - t0)
' "$((t1 - t0))" "$t0" "$(cat "$dir/kubectl-ready")" "$dir"/*.json
  rm -rf "$dir"
}

median() {
  local values
  mapfile -t values < <(sort -n)
  [ "${#values[@]}" -gt 0 ] && echo "${values[$(((${#values[@]} - 1) / 2))]}"
}
col() { cut -d' ' -f"$1" <<<"$2" | grep -v '^-$' | median; }

# --fleet: one large boot, measured from the host and checked against the Weave rule.
fleet() { # nodes
  local nodes=$1 minions=$(($1 - 1)) dir t0 t1 before after
  $LC down >/dev/null 2>&1 || true
  $LC rootfs >/dev/null 2>&1
  dir=$(mktemp -d)
  before=$(awk '/^MemAvailable:/ {print $2}' /proc/meminfo)
  t0=$(date +%s%3N)
  $LC up "$minions" >"$dir/up.log" 2>&1 || { echo "up $minions failed:" >&2; tail -20 "$dir/up.log" >&2; $LC down >/dev/null 2>&1; exit 1; }
  t1=$(date +%s%3N)
  after=$(awk '/^MemAvailable:/ {print $2}' /proc/meminfo)
  cp /run/k8s-local/dnsmasq.log "$dir/dnsmasq.log"
  cp /run/k8s-local/nodes "$dir/nodes"
  while read -r node _; do
    nsenter -t "$($LC leader "$node")" -a -- /usr/bin/k8s-agent status --json --no-units >"$dir/$node.json" || true
  done </run/k8s-local/nodes
  $LC down >/dev/null 2>&1
  local rc=0
  python3 - "$nodes" "$((t1 - t0))" "$((before - after))" "$dir" <<'PY' || rc=$?
import json, re, sys
nodes, up_ms, mem_kib, d = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
ips = {}
for line in open(d + "/nodes"):
    name, role, ip = line.split()
    ips[name] = (role, ip)
states = {name: json.load(open(f"{d}/{name}.json")) for name in ips}
queries = {}
for line in open(d + "/dnsmasq.log", errors="replace"):
    m = re.search(r"query\[(\w+)\] (\S+) from", line)
    if m:
        queries[m.group(2)] = queries.get(m.group(2), 0) + 1
key = lambda a: tuple(map(int, a.split(".")))
ready = sum(1 for s in states.values() if s["condition"] == "ready")
problems, core_views, voters, minions = [], set(), 0, 0
for name, s in states.items():
    if ips[name][0] != "minion":
        continue
    minions += 1
    w, own = s.get("weave"), ips[name][1]
    answer = sorted(((s.get("minions") or {}).get("result") or {}).get("addrs", []), key=key)
    if not w:
        problems.append(f"{name}: no Weave decision")
        continue
    n, peers = w["consensus"], sorted(w["peers"], key=key)
    # The rule (core/src/weave.rs): exactly N addresses including its own -> core, consensus=N, peers = them;
    # otherwise observer, peers = every address listed.
    core = len(answer) == n and own in answer
    want = (f"consensus={n}" if core else "observer", answer, core)
    if (w["ipalloc_init"], peers, w["core_member"]) != want:
        problems.append(f"{name} ({own}): {w['ipalloc_init']} peers {peers}, the rule says {want} from {answer}")
    if w["core_member"]:
        voters += 1
        core_views.add(tuple(peers))
if len(core_views) > 1:
    problems.append(f"core members saw different peer sets: {sorted(core_views)}")
qs = ", ".join(f"{k.split('.')[0]} {v}" for k, v in sorted(queries.items()))
print("| nodes | up → all Ready (wall) | Ready | memory taken | DNS queries (dnsmasq) | Weave voters / observers | decisions agree with the rule |")
print("|---|---|---|---|---|---|---|")
print(f"| {nodes} (1 master + {minions} minions) | {up_ms / 1000:.1f} s | {ready}/{len(states)} | {mem_kib / 1048576:.2f} GiB "
      f"| {sum(queries.values())} ({qs}) | {voters} / {minions - voters} | {'yes' if not problems else 'NO'} |")
for p in problems:
    print(f"  disagrees: {p}", file=sys.stderr)
sys.exit(1 if problems or ready != len(states) else 0)
PY
  rm -rf "$dir"
  return "$rc"
}
if [ "${1:-}" = --fleet ]; then
  fleet "${2:-50}"
  exit $?
fi

$LC rootfs >/dev/null 2>&1   # warm the caches once
echo "| nodes | up → all Ready (wall) | master Ready (components healthy) | minions' units started | minions' kubelet certificates issued | minions Ready (agent) | kubectl get nodes: all minions Ready | runs |"
echo "|---|---|---|---|---|---|---|---|"
for nodes in ${NODES:-1 3 6}; do
  results=""
  for _ in $(seq "${REPS:-3}"); do results+="$(run $((nodes - 1)))"$'\n'; done
  results=${results%$'\n'}
  printf '| %s | %s ms | %s ms | %s | %s | %s | %s | %s |\n' "$nodes" "$(col 1 "$results")" "$(col 2 "$results")" \
    "$( [ "$nodes" = 1 ] && echo – || echo "$(col 3 "$results") ms")" \
    "$( [ "$nodes" = 1 ] && echo – || echo "$(col 4 "$results") ms")" \
    "$( [ "$nodes" = 1 ] && echo – || echo "$(col 5 "$results") ms")" \
    "$( [ "$nodes" = 1 ] && echo – || echo "$(col 6 "$results") ms")" \
    "$(tr '\n' ';' <<<"$results" | sed 's/;$//; s/;/; /g')"
done

# The agents' footprint on a Ready cluster: RSS now, peak RSS, CPU time over 60 s of Ready.
# shellcheck disable=SC2016 # awk programs, run inside the node
footprint() {
  $LC down >/dev/null 2>&1 || true
  $LC up 2 >/dev/null 2>&1 || { echo "up 2 failed" >&2; return 1; }
  local node pid ticks0=() ticks1 i=0 hz
  hz=$(getconf CLK_TCK)
  mapfile -t nodes < <(cut -d' ' -f1 /run/k8s-local/nodes)
  for node in "${nodes[@]}"; do
    pid=$(nsenter -t "$($LC leader "$node")" -a -- systemctl show -P MainPID k8s-agent.service)
    ticks0+=("$(nsenter -t "$($LC leader "$node")" -a -- awk '{ print $14 + $15 }' "/proc/$pid/stat")")
  done
  sleep 60
  echo
  echo "| agent on a Ready node | RSS | peak RSS (VmHWM) | CPU over 60 s of Ready |"
  echo "|---|---|---|---|"
  for node in "${nodes[@]}"; do
    pid=$(nsenter -t "$($LC leader "$node")" -a -- systemctl show -P MainPID k8s-agent.service)
    ticks1=$(nsenter -t "$($LC leader "$node")" -a -- awk '{ print $14 + $15 }' "/proc/$pid/stat")
    printf '| %s | %s | %s | %s ms |\n' "$node" \
      "$(nsenter -t "$($LC leader "$node")" -a -- awk '/^VmRSS/ { print $2 " KiB" }' "/proc/$pid/status")" \
      "$(nsenter -t "$($LC leader "$node")" -a -- awk '/^VmHWM/ { print $2 " KiB" }' "/proc/$pid/status")" \
      "$(((ticks1 - ticks0[i]) * 1000 / hz))"
    i=$((i + 1))
  done
  $LC down >/dev/null 2>&1
}
footprint

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
