#!/usr/bin/env bash
# bench/kubelet-failover.sh: how long a minion's kubelet goes without renewing its node lease when the master it is
# connected to loses power, with the image's HTTP/2 health-check settings for kubelet beside client-go's defaults,
# in the same run.
#
#   bench/kubelet-failover.sh [N]    N (default 2) losses per minion; prints one table
#
# A local cluster of 3 masters + 2 minions (demo/local-cluster.sh up --masters 3 2). minion1's kubelet runs as the
# image has it (kubelet.service: HTTP2_READ_IDLE_TIMEOUT_SECONDS=10, HTTP2_PING_TIMEOUT_SECONDS=5); minion2's runs
# with client-go's defaults (30 s + 15 s), set back by a runtime drop-in (`UnsetEnvironment=`) in its /run. Each
# trial: the master that minion's kubelet holds its connection to (`ss` in the minion) is powered off
# (demo/local-cluster.sh poweroff: the plug pulled, no FIN, no RST), and the minion's Lease
# (kube-node-lease/<minion>, spec.renewTime) is read every second through another master. Measured: the longest gap
# between two renewals around the loss (normally 10 s: the kubelet renews every 10 s), and whether the Node's Ready
# condition changed (the node lifecycle controller marks a node NotReady after 50 s without a renewal). The master
# is started again and the cluster is whole before the next trial. Needs root and the demo layer (./demo/build.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
LC=demo/local-cluster.sh
STATE=/run/k8s-local
N=${1:-2}
[ "$(id -u)" = 0 ] || { echo "run as root" >&2; exit 2; }
[ -f "${LAYER:-out/demo/layer.tar.gz}" ] || ./demo/build.sh
# shellcheck source=tests/local/lib.sh
. tests/local/lib.sh
poll_pid=""
work=$(mktemp -d)
cleanup() {
  if [ -n "$poll_pid" ]; then kill "$poll_pid" 2>/dev/null || true; fi
  $LC down >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
$LC down >/dev/null 2>&1 || true
$LC up --masters 3 2 >"$work/up.log" 2>&1 || { tail -n 30 "$work/up.log"; exit 1; }

# minion2: client-go's defaults.
inside minion2 sh -c 'mkdir -p /run/systemd/system/kubelet.service.d &&
  printf "[Service]\nUnsetEnvironment=HTTP2_READ_IDLE_TIMEOUT_SECONDS HTTP2_PING_TIMEOUT_SECONDS\n" >/run/systemd/system/kubelet.service.d/bench.conf &&
  systemctl daemon-reload && systemctl restart kubelet'
# shellcheck disable=SC2016 # expanded in the minion's shell
settings() { inside "$1" sh -c 'tr "\0" "\n" </proc/$(systemctl show -P MainPID kubelet)/environ' | grep '^HTTP2_' | xargs || true; }

name_of() { awk -v a="$1" '$3 == a { print $1 }' "$STATE/nodes"; }
masters_up() { awk '$2 == "master" { print $1 }' "$STATE/nodes"; }
kubelet_master() { # minion: the address of the master its kubelet is connected to
  inside "$1" ss -Htnp state established '( dport = :6443 )' 2>/dev/null |
    awk '/"kubelet"/ && !found { split($4, a, ":"); print a[1]; found = 1 }' || true
}
whole() { # every master Ready and both minions Ready
  local n
  for n in $(masters_up) minion1 minion2; do [ "$(json "$n" | field condition)" = ready ] || return 1; done
}
wait_whole() {
  local deadline=$(($(date +%s) + 300))
  until whole; do
    [ "$(date +%s)" -lt "$deadline" ] || { echo "the cluster is not whole again after 300 s" >&2; exit 1; }
    sleep 1
  done
  sleep 15 # kubelets settle on their connections
}
# The lease's renewTime (RFC 3339, microseconds) as unix ms, and the Ready condition's lastTransitionTime, read through
# the API server of `via` over loopback.
poll() { # via minion log
  while :; do
    inside "$1" /usr/bin/kubectl --kubeconfig /etc/kubernetes/admin.conf --server https://127.0.0.1:6443 \
      --tls-server-name masters.local.k8s --request-timeout=2s \
      -n kube-node-lease get lease "$2" -o jsonpath='{.spec.renewTime}{"\n"}' 2>/dev/null >>"$3" || true
    sleep 1
  done
}
to_ms() { python3 -c 'import sys,datetime
for l in sys.stdin:
    l=l.strip()
    if l: print(int(datetime.datetime.fromisoformat(l.replace("Z","+00:00")).timestamp()*1000))'; }
ready_since() { # minion via: the Ready condition's lastTransitionTime
  inside "$2" /usr/bin/kubectl --kubeconfig /etc/kubernetes/admin.conf --server https://127.0.0.1:6443 \
    --tls-server-name masters.local.k8s --request-timeout=5s get node "$1" \
    -o jsonpath='{.status.conditions[?(@.type=="Ready")].lastTransitionTime}' || echo "(not read)"
}

echo "minion1 (the image): $(settings minion1 || true)"
echo "minion2 (client-go's defaults): $(settings minion2 || true)"
for _ in $(seq 1 "$N"); do
  for m in minion1 minion2; do
    wait_whole
    addr=$(kubelet_master "$m")
    [ -n "$addr" ] || { echo "$m: no kubelet connection to a master found" >&2; exit 1; }
    target=$(name_of "$addr")
    via=$(masters_up | grep -vx "$target" | head -n 1)
    before=$(ready_since "$m" "$via")
    : >"$work/renewals"
    poll "$via" "$m" "$work/renewals" &
    poll_pid=$!
    sleep 12
    t_off=$(date +%s%3N)
    $LC poweroff "$target" >/dev/null 2>&1
    # Until a renewal after the loss is seen, at most 120 s.
    deadline=$(($(date +%s) + 120))
    while :; do
      last=$(sort -u "$work/renewals" | to_ms | tail -n 1)
      if [ -n "$last" ] && [ "$last" -gt "$t_off" ] && [ "$(sort -u "$work/renewals" | to_ms | awk -v t="$t_off" '$1 > t' | wc -l)" -ge 2 ]; then break; fi
      [ "$(date +%s)" -lt "$deadline" ] || break
      sleep 1
    done
    kill "$poll_pid" 2>/dev/null || true
    wait "$poll_pid" 2>/dev/null || true
    poll_pid=""
    gap=$(sort -u "$work/renewals" | to_ms | awk -v t="$t_off" 'NR > 1 && $1 > t - 20000 { d = $1 - p; if (d > g) g = d } { p = $1 } END { print g + 0 }')
    after=$(ready_since "$m" "$via")
    changed=no
    [ "$before" = "$after" ] || changed="yes ($before → $after)"
    echo "$m: kubelet on $target ($addr), powered off; longest lease renewal gap ${gap} ms; Ready condition changed: $changed"
    echo "$gap" >>"$work/gap-$m"
    [ "$changed" = no ] || echo x >>"$work/flip-$m"
    $LC start "$target" >"$work/start.log" 2>&1 || { echo "starting $target again failed:" >&2; tail -n 20 "$work/start.log" >&2; exit 1; }
  done
done
list() { paste -sd/ "$work/$1"; }
flips() { if [ -f "$work/flip-$1" ]; then wc -l <"$work/flip-$1"; else echo 0; fi; }
echo
echo "| the master a kubelet is connected to loses power ($N times per minion) | the image: HTTP/2 read idle 10 s + ping 5 s (minion1) | client-go's defaults: 30 s + 15 s (minion2), same run |"
echo "|---|---|---|"
echo "| longest gap between two lease renewals (ms; normally 10 000) | $(list gap-minion1) | $(list gap-minion2) |"
echo "| Ready condition changed (NotReady) | $(flips minion1) of $N | $(flips minion2) of $N |"
