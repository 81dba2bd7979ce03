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
    # The rule (agent/src/pure/weave.rs): exactly N addresses including its own -> core, consensus=N, peers = them;
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
