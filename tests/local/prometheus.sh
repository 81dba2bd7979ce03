# shellcheck shell=bash
# tests/local/prometheus.sh: sourced by tests/local/e2e.sh while the local cluster is up, after the blocked minions
# were added. The agent's metrics through the real pieces an operator runs:
#   - every node's /var/lib/prometheus/node-exporter/k8s-agent.prom passes `promtool check metrics` (Prometheus's
#     own linter: names, units, _total counters, HELP/TYPE);
#   - Debian's prometheus-node-exporter on every node (baked by the image: a host package of the manifest) serves
#     the agent's series on :9100 through its textfile collector;
#   - a real Prometheus (Debian's) in the hub network namespace scrapes every node; its HTTP API shows every node's
#     phase as the node's own `status --json` says it, every Ready node's boot-to-Ready seconds (and none for the
#     others), and the minions with a wrong token or CA pin in phase discovery, condition blocked;
#   - docs/agent.md's PromQL "which nodes are not Ready and why" answers exactly the nodes that are not Ready (the
#     blocked minions, and images.sh's minions with a corrupt or swapped image archive, in import-images);
#   - a real browser (headless Chromium) screenshots Prometheus's graph page with that query (docs/img/, docs/agent.md).
# Uses ok/bad/check/inside/json/field from e2e.sh and bad_token/bad_pin (the blocked minions' names).

PROM_DIR=/run/k8s-local/prometheus
PROM_ADDR=10.79.0.1:9090
HUB_NS=k8s-local-hub
PNG_OUT=${K8S_PROMETHEUS_PNG:-docs/img/prometheus-not-ready.png}
# The query in docs/agent.md: the nodes that are not Ready, with the phase they are in and their condition (why).
NOT_READY_QUERY='(k8s_agent_phase == 1) * on(node) group_left(condition) (k8s_agent_condition{condition!="ready"} == 1)'

in_hub() { ip netns exec "$HUB_NS" "$@"; }
promql() { # query → the API's JSON result
  in_hub curl -sf --max-time 5 -G "http://$PROM_ADDR/api/v1/query" --data-urlencode "query=$1"
}
# "label1=value1,label2=value2 value" lines of an instant query, sorted.
promql_lines() {
  promql "$1" | python3 -c '
import json, sys
for r in json.load(sys.stdin)["data"]["result"]:
    m = r["metric"]
    labels = ",".join(f"{k}={m[k]}" for k in sys.argv[1:] if k in m)
    print(labels, r["value"][1])' "${@:2}" | sort
}

: "${bad_token:?e2e.sh sets it}" "${bad_pin:?e2e.sh sets it}"
indent() { while IFS= read -r l; do echo "    $l"; done; }
echo "--- metrics: node_exporter's textfile collector, a real Prometheus, the README's query"
mapfile -t prom_nodes < <(awk '{print $1 " " $3}' /run/k8s-local/nodes)

for entry in "${prom_nodes[@]}"; do
  n=${entry%% *}
  prom_file=$(inside "$n" cat /var/lib/prometheus/node-exporter/k8s-agent.prom 2>/dev/null || true)
  if lint=$(promtool check metrics <<<"$prom_file" 2>&1) && [ -n "$prom_file" ]; then
    ok "$n: k8s-agent.prom passes promtool check metrics ($(grep -c '^k8s_agent' <<<"$prom_file") samples)"
  else
    bad "$n: k8s-agent.prom fails promtool check metrics: ${lint:-empty file}"
  fi
done
minion1_ip=$(awk '$1 == "minion1" {print $3}' /run/k8s-local/nodes)
check "node_exporter on minion1 ($minion1_ip:9100) serves the agent's phase through its textfile collector" \
  bash -c "ip netns exec $HUB_NS curl -sf --max-time 5 http://$minion1_ip:9100/metrics | grep -q '^k8s_agent_phase{phase=\"ready\"} 1'"

# Prometheus: every node a file_sd target labelled with its name and role.
rm -rf "$PROM_DIR"
mkdir -p "$PROM_DIR/data"
python3 - "$PROM_DIR/targets.json" "${prom_nodes[@]}" <<'EOF'
import json, sys
out, entries = sys.argv[1], sys.argv[2:]
json.dump([{"targets": [f"{e.split()[1]}:9100"], "labels": {"node": e.split()[0]}} for e in entries],
          open(out, "w"))
EOF
cat >"$PROM_DIR/prometheus.yml" <<EOF
global:
  scrape_interval: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: node
    file_sd_configs:
      - files: ["$PROM_DIR/targets.json"]
        refresh_interval: 1s
EOF
check "promtool accepts the test's Prometheus configuration" promtool check config "$PROM_DIR/prometheus.yml"
# `ip netns exec` execs Prometheus itself, so $! is Prometheus's PID (not a subshell's) and the cleanup can stop it.
ip netns exec "$HUB_NS" prometheus --config.file="$PROM_DIR/prometheus.yml" --storage.tsdb.path="$PROM_DIR/data" \
  --web.listen-address="$PROM_ADDR" >"$PROM_DIR/prometheus.log" 2>&1 &
prom_pid=$!
cleanup_prometheus() { kill "$prom_pid" 2>/dev/null || true; wait "$prom_pid" 2>/dev/null || true; }
trap 'cleanup_prometheus; $LC down >/dev/null 2>&1 || true' EXIT

# Until every node was scraped (up == 1) and the blocked minions show their phase, at most 30 s.
want_up=${#prom_nodes[@]}
deadline=$(($(date +%s) + 30))
while [ "$(date +%s)" -lt "$deadline" ]; do
  got=$(promql 'count(up == 1) and count(k8s_agent_phase == 1) == count(up == 1)' 2>/dev/null |
    python3 -c 'import json,sys; r=json.load(sys.stdin)["data"]["result"]; print(r[0]["value"][1] if r else 0)' 2>/dev/null || echo 0)
  [ "$got" = "$want_up" ] && break
  sleep 0.5
done
check "Prometheus scrapes all $want_up nodes (up == 1) and sees each one's phase" [ "$got" = "$want_up" ]

# What each node says of itself (`status --json`) is what Prometheus must show.
declare -A own_phase=()
for entry in "${prom_nodes[@]}"; do
  n=${entry%% *}
  own_phase[$n]=$(json "$n" | field phase)
done
phases=$(promql_lines 'k8s_agent_phase == 1' node phase || true)
indent <<<"$phases"
for entry in "${prom_nodes[@]}"; do
  n=${entry%% *}
  check "Prometheus: $n is in phase ${own_phase[$n]} (as its status says)" grep -qx "node=$n,phase=${own_phase[$n]} 1" <<<"$phases"
done
check "the blocked minions are in discovery ($bad_token: ${own_phase[$bad_token]}, $bad_pin: ${own_phase[$bad_pin]})" \
  [ "${own_phase[$bad_token]}/${own_phase[$bad_pin]}" = discovery/discovery ]

boot_to_ready=$(promql_lines 'k8s_agent_boot_to_ready_seconds' node || true)
indent <<<"$boot_to_ready"
for entry in "${prom_nodes[@]}"; do
  n=${entry%% *}
  if [ "${own_phase[$n]}" = ready ]; then
    check "Prometheus: $n has a boot-to-Ready time (> 0 s)" \
      python3 -c 'import sys; n=sys.argv[1]
v=[float(l.split()[1]) for l in sys.stdin if l.split()[0]==f"node={n}"]
sys.exit(0 if v and v[0] > 0 else 1)' "$n" <<<"$boot_to_ready"
  else
    check "Prometheus: $n (not Ready: ${own_phase[$n]}) has no boot-to-Ready time" \
      bash -c "! grep -q '^node=$n ' <<<'$boot_to_ready'"
  fi
done

not_ready=$(promql_lines "$NOT_READY_QUERY" node phase condition || true)
echo "    not Ready and why: $(tr '\n' ';' <<<"$not_ready")"
want_not_ready=$(for entry in "${prom_nodes[@]}"; do
  n=${entry%% *}
  [ "${own_phase[$n]}" = ready ] || echo "node=$n,phase=${own_phase[$n]} 1"
done | sort)
check "the README's query names exactly the nodes that are not Ready, each in its phase" \
  [ "$(promql_lines "$NOT_READY_QUERY" node phase || true)" = "$want_not_ready" ]
check "... and the minions with a wrong token secret or CA pin as blocked" \
  bash -c "grep -qx 'node=$bad_token,phase=discovery,condition=blocked 1' <<<'$not_ready' &&
           grep -qx 'node=$bad_pin,phase=discovery,condition=blocked 1' <<<'$not_ready'"

# The picture: Prometheus's own graph page (table tab) with that query, in a real browser.
graph_url="http://$PROM_ADDR/graph?g0.expr=$(python3 -c 'import sys, urllib.parse; print(urllib.parse.quote(sys.argv[1]))' \
  "$NOT_READY_QUERY")&g0.tab=1&g0.range_input=5m"
mkdir -p "$(dirname "$PNG_OUT")"
shot=$PROM_DIR/graph.png
if in_hub chromium-headless-shell --no-sandbox --disable-gpu --hide-scrollbars --window-size=1280,520 \
  --virtual-time-budget=8000 --screenshot="$shot" "$graph_url" >"$PROM_DIR/chromium.log" 2>&1 &&
  [ "$(head -c 8 "$shot" | od -An -tx1 | tr -d ' \n')" = 89504e470d0a1a0a ]; then
  cp "$shot" "$PNG_OUT"
  ok "headless Chromium screenshotted Prometheus's graph page with the query: $PNG_OUT ($(stat -c %s "$shot") bytes)"
else
  bad "headless Chromium made no screenshot of $graph_url (see $PROM_DIR/chromium.log)"
fi
cleanup_prometheus
check "Prometheus stopped (no process left behind)" bash -c "! kill -0 $prom_pid 2>/dev/null"
trap '$LC down >/dev/null 2>&1 || true' EXIT
