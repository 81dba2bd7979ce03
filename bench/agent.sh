#!/usr/bin/env bash
# bench/agent.sh: the agent's reaction time and footprint, measured side by side with the seeds' shell loop.
#
#   sudo bench/agent.sh [TRIALS] [WAIT_SECONDS]        (defaults: 20 trials, 60 s footprint wait)
#
# Everything runs in a network namespace this script makes (k8sbench): dnsmasq answers minions.bench.k8s and,
# once a trial says so, masters.bench.k8s; `openssl s_server -WWW` plays a healthy API server on 10.78.0.1:6443
# (TLS, certificate for masters.bench.k8s from a throw-away CA; it serves /readyz and a kube-public/cluster-info
# signed for the bench's token with `openssl dgst -hmac`, so the agent's token discovery runs for real) and
# python3's http.server the seeds' plain http://masters...:8080. `ip netns exec` gives the namespace its own /etc/resolv.conf (/etc/netns/k8sbench/), so
# both the agent and the seeds' loop use the system resolver, as on a node.
#
# Reaction ("master healthy → StartUnit sent", through discovery, the /readyz probe and the Weave decision): per trial, a fresh agent (the release binary, `k8s-agent run`) waits
# on NXDOMAIN for a random 0.5–2.5 s, then the record appears (dnsmasq SIGHUP) with the server already answering:
# that instant is t0. t1 is the agent's "starting units" log line, written just before its first StartUnit call
# (the D-Bus call itself then fails: no systemd here, which does not matter for t1). The baseline is the seeds'
# `until curl -s http://masters.bench.k8s:8080; do sleep 5; done` measured the same way (t1 = the loop's exit).
# Footprint: the agent waits WAIT_SECONDS for a master that never comes; peak RSS (VmHWM), CPU seconds
# (utime+stime), threads, and DNS queries per minute (dnsmasq's query log) are read at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
TRIALS=${1:-20}
WAIT=${2:-60}
NS=k8sbench
AGENT=${AGENT:-target/release/k8s-agent}
[ "$(id -u)" = 0 ] || { echo "bench/agent.sh: run as root (network namespace, dnsmasq)" >&2; exit 2; }
for t in dnsmasq openssl curl python3 ip; do command -v "$t" >/dev/null || { echo "missing $t" >&2; exit 2; }; done
[ -x "$AGENT" ] || cargo build --release --locked -p k8s-agent

work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  ip netns del "$NS" 2>/dev/null || true
  rm -rf "/etc/netns/$NS" "$work"
}
trap cleanup EXIT
ip netns del "$NS" 2>/dev/null || true
ip netns add "$NS"
ip -n "$NS" link set lo up
ip -n "$NS" link add b0 type veth peer name b1
ip -n "$NS" addr add 10.78.0.2/24 dev b0
ip -n "$NS" addr add 10.78.0.1/24 dev b0
ip -n "$NS" link set b0 up
ip -n "$NS" link set b1 up
mkdir -p "/etc/netns/$NS"
echo "nameserver 127.0.0.53" > "/etc/netns/$NS/resolv.conf"

hosts=$work/hosts
echo "10.78.0.2 minions.bench.k8s" > "$hosts"
ip netns exec "$NS" dnsmasq --no-daemon --conf-file=/dev/null --no-resolv --no-hosts --addn-hosts="$hosts" \
  --listen-address=127.0.0.53 --bind-interfaces --user=root --local=/k8s/ --local-ttl=1 \
  --log-queries --log-facility="$work/dnsmasq.log" 2>/dev/null &
dnsmasq_pid=$!
pids+=("$dnsmasq_pid")

# A throw-away CA and a certificate for masters.bench.k8s.
openssl req -x509 -newkey rsa:2048 -nodes -keyout "$work/ca.key" -out "$work/ca.crt" -days 2 -subj /CN=bench-ca \
  2>/dev/null
openssl req -newkey rsa:2048 -nodes -keyout "$work/leaf.key" -out "$work/leaf.csr" -subj /CN=masters.bench.k8s \
  2>/dev/null
printf 'subjectAltName=DNS:masters.bench.k8s\n' > "$work/san.ext"
openssl x509 -req -in "$work/leaf.csr" -CA "$work/ca.crt" -CAkey "$work/ca.key" -CAcreateserial -days 2 \
  -extfile "$work/san.ext" -out "$work/leaf.crt" 2>/dev/null
# The API server's answers: /readyz and cluster-info, its detached JWS made with openssl (HS256, key = token secret).
TOKEN=abcdef.0123456789abcdef
api=$work/api && mkdir -p "$api/api/v1/namespaces/kube-public/configmaps" && echo ok > "$api/readyz"
b64url() { base64 -w0 | tr '+/' '-_' | tr -d '='; }
kubeconfig=$(printf 'apiVersion: v1\nclusters:\n- cluster:\n    certificate-authority-data: %s\n    server: https://masters.bench.k8s:6443\n  name: ""\ncontexts: null\ncurrent-context: ""\nkind: Config\npreferences: {}\nusers: null\n' \
  "$(base64 -w0 "$work/ca.crt")")
header=$(printf '{"alg":"HS256","kid":"%s"}' "${TOKEN%%.*}" | b64url)
signature=$(printf '%s.%s' "$header" "$(printf '%s' "$kubeconfig" | b64url)" |
  openssl dgst -sha256 -binary -hmac "${TOKEN#*.}" | b64url)
python3 -c 'import json, sys; print(json.dumps({"apiVersion": "v1", "kind": "ConfigMap",
  "metadata": {"name": "cluster-info", "namespace": "kube-public"},
  "data": {"kubeconfig": sys.argv[1], "jws-kubeconfig-" + sys.argv[2]: sys.argv[3]}}))' \
  "$kubeconfig" "${TOKEN%%.*}" "$header..$signature" >"$api/api/v1/namespaces/kube-public/configmaps/cluster-info"
(cd "$api" && exec ip netns exec "$NS" openssl s_server -quiet -WWW -accept 10.78.0.1:6443 -cert "$work/leaf.crt" \
  -key "$work/leaf.key" </dev/null >/dev/null 2>&1) &
pids+=($!)
mkdir -p "$work/www" && echo ok > "$work/www/index.html"
ip netns exec "$NS" python3 -m http.server 8080 --bind 10.78.0.1 --directory "$work/www" >/dev/null 2>&1 &
pids+=($!)
sleep 0.5

set_masters() { # present|absent
  if [ "$1" = present ]; then
    printf '10.78.0.2 minions.bench.k8s\n10.78.0.1 masters.bench.k8s\n' > "$hosts"
  else
    echo "10.78.0.2 minions.bench.k8s" > "$hosts"
  fi
  kill -HUP "$dnsmasq_pid"
}

new_root() {
  local root=$work/root-$1
  mkdir -p "$root/etc/sysconfig"
  printf 'CLUSTER_NAME=bench\nCA_CERT_FILE=%s\nBOOTSTRAP_TOKEN=%s\nWEAVE_CONSENSUS=1\nHOST_CHECKS=warn\n' \
    "$work/ca.crt" "$TOKEN" > "$root/etc/sysconfig/kubernetes-minions"
  echo "$root"
}

now_ns() { date +%s%N; }
results=$work/results.csv
: > "$results"

echo "agent reaction: $TRIALS trials" >&2
for i in $(seq 1 "$TRIALS"); do
  set_masters absent
  root=$(new_root "$i")
  ip netns exec "$NS" env K8S_AGENT_LOG=info NOTIFY_SOCKET= "$AGENT" run --root "$root" \
    --bus unix:path=/nonexistent >"$work/agent-$i.log" 2>&1 &
  apid=$!
  until grep -q '"resolve-masters"' "$root/run/k8s-agent/state.json" 2>/dev/null; do sleep 0.05; done
  sleep "$(python3 -c 'import random; print(round(random.uniform(0.5, 2.5), 3))')"
  t0=$(now_ns)
  set_masters present
  until grep -q 'starting units' "$work/agent-$i.log"; do sleep 0.01; done
  kill "$apid"; wait "$apid" 2>/dev/null || true
  t1=$(python3 - "$work/agent-$i.log" <<'PY'
import sys, re, datetime
for line in open(sys.argv[1], errors="replace"):
    if "starting units" in line:
        m = re.search(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+)Z", line)
        ts = datetime.datetime.fromisoformat(m.group(1)[:26]).replace(tzinfo=datetime.timezone.utc)
        print(int(ts.timestamp() * 1e9)); break
PY
)
  echo "agent,$(( (t1 - t0) / 1000000 ))" >> "$results"
done

echo "seeds' loop: $TRIALS trials" >&2
for i in $(seq 1 "$TRIALS"); do
  set_masters absent
  ip netns exec "$NS" bash -c 'until curl -s http://masters.bench.k8s:8080 >/dev/null; do sleep 5; done; date +%s%N' \
    > "$work/seeds-$i.out" &
  lpid=$!
  sleep "$(python3 -c 'import random; print(round(random.uniform(0.5, 2.5), 3))')"
  t0=$(now_ns)
  set_masters present
  wait "$lpid"
  t1=$(cat "$work/seeds-$i.out")
  echo "seeds,$(( (t1 - t0) / 1000000 ))" >> "$results"
done

echo "footprint: the agent waits ${WAIT}s for a master that never comes" >&2
set_masters absent
root=$(new_root footprint)
queries_before=$(grep -c 'query\[A\] masters.bench.k8s' "$work/dnsmasq.log" || true)
ip netns exec "$NS" env K8S_AGENT_LOG=info NOTIFY_SOCKET= "$AGENT" run --root "$root" \
  --bus unix:path=/nonexistent >"$work/agent-footprint.log" 2>&1 &
apid=$!
sleep "$WAIT"
hwm=$(awk '/VmHWM/ {print $2}' "/proc/$apid/status")
threads=$(awk '/Threads/ {print $2}' "/proc/$apid/status")
ticks=$(awk '{print $14 + $15}' "/proc/$apid/stat")
kill "$apid"; wait "$apid" 2>/dev/null || true
queries_after=$(grep -c 'query\[A\] masters.bench.k8s' "$work/dnsmasq.log" || true)
hz=$(getconf CLK_TCK)

python3 - "$results" "$hwm" "$threads" "$ticks" "$hz" "$WAIT" "$((queries_after - queries_before))" \
  "$(stat -c %s "$AGENT")" <<'PY'
import sys, statistics
rows = [l.strip().split(",") for l in open(sys.argv[1]) if l.strip()]
hwm, threads, ticks, hz, wait, queries, size = (int(x) for x in sys.argv[2:9])
def pct(v, p):
    v = sorted(v); k = (len(v) - 1) * p / 100; f = int(k); c = min(f + 1, len(v) - 1)
    return v[f] + (v[c] - v[f]) * (k - f)
print("| master healthy → start (ms) | n | p50 | p95 | max |")
print("|---|---|---|---|---|")
for who, label in (("agent", "k8s-agent run (token discovery + HTTPS /readyz, CA verified)"), ("seeds", "seeds' `until curl …:8080; do sleep 5; done`")):
    v = [int(r[1]) for r in rows if r[0] == who]
    if v:
        print(f"| {label} | {len(v)} | {pct(v,50):.0f} | {pct(v,95):.0f} | {max(v)} |")
print()
print("| agent footprint while waiting | value |")
print("|---|---|")
print(f"| release binary size | {size/1048576:.2f} MiB |")
print(f"| peak RSS (VmHWM) | {hwm/1024:.2f} MiB |")
print(f"| CPU time over {wait} s of waiting | {ticks/hz:.2f} s |")
print(f"| threads | {threads} |")
print(f"| DNS queries for masters per minute | {queries*60/wait:.0f} |")
PY
