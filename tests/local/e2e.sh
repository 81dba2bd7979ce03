#!/usr/bin/env bash
# tests/local/e2e.sh: the end-to-end test of the image and the agent together, as a cloud would run them:
# user data → cloud-init → role file → agent → DNS → units, on a local cluster (demo/local-cluster.sh) of the demo
# layer (out/demo/layer.tar.gz; ./demo/build.sh makes it).
#
# Asserts, on every node: `k8s-agent status --json` reaches Ready; every node really joined (tests/local/join.sh:
# openssl, a real kubectl with every kubeconfig, PyJWT on cluster-info's signature); minions with a wrong token secret
# or a wrong CA pin are blocked in discovery with the reason and never start kubelet; no minion started kubelet
# before the master's API server was up and answering; every minion's weave.env has the same IPAM start-up and the right peers; master units
# never ran on minions and vice versa; a minion's agent SIGKILLed while it waits for the master is restarted by
# systemd and converges to the same result; a 3rd minion added later (DNS record first, then the node; not in
# weave-core) joins as a Weave observer peering with the core without changing the core's decision (the decision is
# kept and shown; the pod network is the bridge, CNI=bridge: pods run on every minion and reach each other, Services
# and NodePorts answer, tests/local/pods.sh); a real Prometheus scrapes every node's agent metrics through
# node_exporter and sees the blocked minions (tests/local/prometheus.sh); support bundles of a master and a minion
# hold none of their secrets by content (tests/local/bundle.sh); `down` leaves no netns, cgroup, mount, state or
# process.
# Status JSON and the lock are read by tests/support (k8s-test-json, the agent's own types; tests/local/lib.sh).
# Prints "N passed, M failed" and exits non-zero on any failure. Needs root.
set -euo pipefail
cd "$(dirname "$0")/../.."
LC=demo/local-cluster.sh
# shellcheck source=tests/local/lib.sh
. tests/local/lib.sh
prop() { inside "$1" systemctl show -P "$3" "$2"; }
unix_us() { date -d "$(inside "$1" systemctl show --timestamp=us+utc -P ActiveEnterTimestamp "$2")" +%s%6N; }

trap '$LC down >/dev/null 2>&1 || true' EXIT
# A command that stops the script (set -e) says where, with what the added minions printed.
: >/tmp/k8s-local-add.err
trap 'echo "e2e: stopped by a failing command at line $LINENO"; tail -n 20 /tmp/k8s-local-add.err' ERR
$LC down >/dev/null 2>&1 || true

# The minions boot with the master and wait for it: the real control plane takes a while to start, serve and sign
# cluster-info (the controller manager's bootstrapsigner).
t0=$(date +%s%3N)
$LC up 2 > /tmp/k8s-local-up.log 2>&1 &
up_pid=$!

# While the minions wait for the master (in discovery: no cluster-info yet): SIGKILL minion1's agent (systemd
# restarts it: Restart=on-failure).
killed=no
deadline=$(( $(date +%s) + 240 ))
while [ "$(date +%s)" -lt "$deadline" ] && kill -0 "$up_pid" 2>/dev/null; do
  if [ -s /run/k8s-local/minion1.leader ] && [ "$(json minion1 | field phase)" = discovery ]; then
    pid=$(prop minion1 k8s-agent.service MainPID)
    inside minion1 sh -c "kill -9 $pid" && killed=yes
    break
  fi
  sleep 0.05
done
check "minion1's agent was SIGKILLed while waiting for the master" [ "$killed" = yes ]
if wait "$up_pid"; then ok "local cluster up (1 master + 2 minions) in $(( $(date +%s%3N) - t0 )) ms"; else
  bad "local cluster up"; cat /tmp/k8s-local-up.log; exit 1; fi
tail -n +1 /tmp/k8s-local-up.log | grep -E 'all Ready|rootfs' || true

for n in master minion1 minion2; do
  s=$(json "$n")
  check "$n: status condition is ready" [ "$(field condition <<<"$s")" = ready ]
done
check "minion1's agent restarted and resumed" [ "$(json minion1 | field restarts)" -ge 1 ]
check "minion1's agent was restarted by systemd (NRestarts ≥ 1)" [ "$(prop minion1 k8s-agent.service NRestarts)" -ge 1 ]

api_up=$(unix_us master kube-apiserver.service)
for n in minion1 minion2; do
  kubelet_at=$(unix_us "$n" kubelet.service)
  check "$n: kubelet started ($kubelet_at) after the master's API server was ready ($api_up)" \
    [ "$kubelet_at" -gt "$api_up" ]
  for u in etcd kube-apiserver kube-controller-manager kube-scheduler; do
    check "$n: master unit $u never ran" [ "$(prop "$n" "$u.service" ActiveEnterTimestampMonotonic)" = 0 ]
  done
done
for u in containerd weave kubelet kube-proxy; do
  check "master: minion unit $u never ran" [ "$(prop master "$u.service" ActiveEnterTimestampMonotonic)" = 0 ]
done
for u in etcd kube-apiserver kube-controller-manager kube-scheduler; do
  check "master: $u is active" [ "$(prop master "$u.service" ActiveState)" = active ]
done

env1=$(inside minion1 cat /run/k8s-agent/weave.env)
env2=$(inside minion2 cat /run/k8s-agent/weave.env)
check "minion1 and minion2 have the same IPAM start-up (consensus=2)" \
  [ "$(grep '^IPALLOC_INIT=' <<<"$env1")" = "IPALLOC_INIT=consensus=2" ] \
  && [ "$(grep '^IPALLOC_INIT=' <<<"$env2")" = "IPALLOC_INIT=consensus=2" ]
check "minion1 and minion2 have the same peers (10.79.0.11 10.79.0.12)" \
  [ "$(grep '^KUBE_PEERS=' <<<"$env1")" = "$(grep '^KUBE_PEERS=' <<<"$env2")" ]
check "the peers are the two minions" grep -q '^KUBE_PEERS="10.79.0.11 10.79.0.12"' <<<"$env1"
for n in minion1 minion2; do
  for u in containerd kubelet kube-proxy; do
    check "$n: $u is active" [ "$(prop "$n" "$u.service" ActiveState)" = active ]
  done
done
mtime1=$(inside minion1 stat -c %Y.%N /run/k8s-agent/weave.env)

# The join, checked with openssl, a real kubectl and PyJWT (tests/local/join.sh).
# shellcheck source=tests/local/join.sh
. tests/local/join.sh

# A third minion joins later: its DNS record first (as the group's bookkeeping would), then the node.
t1=$(date +%s%3N)
if $LC add-minion > /tmp/k8s-local-add.log 2>&1; then ok "minion3 joined in $(( $(date +%s%3N) - t1 )) ms"; else
  bad "minion3 joined"; cat /tmp/k8s-local-add.log; fi
env3=$(inside minion3 cat /run/k8s-agent/weave.env 2>/dev/null || true)
check "minion3 is a Weave observer (no second consensus)" grep -q '^IPALLOC_INIT=observer' <<<"$env3"
check "minion3 peers with the Weave core (weave-core.local.k8s: minion1, minion2)" \
  grep -q '^KUBE_PEERS="10.79.0.11 10.79.0.12"' <<<"$env3"
check "minion1's weave.env is unchanged" [ "$(inside minion1 stat -c %Y.%N /run/k8s-agent/weave.env)" = "$mtime1" ]

# The baked container images: imported, pinned, run by containerd and runc (tests/local/images.sh).
# shellcheck source=tests/local/images.sh
. tests/local/images.sh

# A working cluster: pods on every minion, pod traffic across nodes, Services (tests/local/pods.sh).
# shellcheck source=tests/local/pods.sh
. tests/local/pods.sh

# Minions that must NOT join: the right token id with a wrong secret, and a wrong CA pin. Each stays in discovery,
# blocked with a reason that says what to fix, and never starts kubelet.
token=$(cat /run/k8s-local/pki/token)
secret=${token#*.}
blocked_with() { # node text → the node's status says it within 30 s
  local deadline=$(( $(date +%s) + 30 )) s
  while [ "$(date +%s)" -lt "$deadline" ]; do
    s=$(json "$1")
    if [ "$(field phase <<<"$s")" = discovery ] && grep -qF "$2" <<<"$(field blocking <<<"$s")"; then return 0; fi
    sleep 0.5
  done
  echo "    $1: $(field phase <<<"$s"): $(field blocking <<<"$s")"
  return 1
}
bad_token=$(MINION_BOOTSTRAP_TOKEN="${token%%.*}.ffffffffffffffff" $LC add-minion --no-wait 2>>/tmp/k8s-local-add.err | tail -n 1)
check "$bad_token (wrong token secret) is blocked: the signature does not verify with BOOTSTRAP_TOKEN's secret" \
  blocked_with "$bad_token" "does not verify with BOOTSTRAP_TOKEN's secret"
bad_pin=$(MINION_CA_CERT_HASH="sha256:$(printf '0%.0s' $(seq 64))" $LC add-minion --no-wait 2>>/tmp/k8s-local-add.err | tail -n 1)
check "$bad_pin (wrong CA pin) is blocked: the CA does not match CA_CERT_HASH" \
  blocked_with "$bad_pin" "does not match CA_CERT_HASH"
for n in "$bad_token" "$bad_pin"; do
  check "$n: kubelet never ran" [ "$(prop "$n" kubelet.service ActiveEnterTimestampMonotonic)" = 0 ]
  check "$n: no kubelet.conf, no bootstrap-kubelet.conf" \
    bash -c "! nsenter -t $($LC leader "$n") -a -- test -e /etc/kubernetes/kubelet.conf &&
             ! nsenter -t $($LC leader "$n") -a -- test -e /etc/kubernetes/bootstrap-kubelet.conf"
done

# The metrics: node_exporter on every node, a real Prometheus scraping them, the query in docs/agent.md and its picture.
# shellcheck source=tests/local/prometheus.sh
. tests/local/prometheus.sh

# Token rotation sticks: the operator deletes the token Secret; the master's agent, started afresh as after a reboot
# (its /run state gone), does not publish it again and says why.
deleted=$(inside master /usr/bin/kubectl --kubeconfig /etc/kubernetes/admin.conf --request-timeout=10s \
  -n kube-system delete secret "bootstrap-token-${token%%.*}" 2>&1 || true)
if grep -q 'deleted' <<<"$deleted"; then ok "master: kubectl deleted the token Secret"; else
  bad "master: kubectl deleted the token Secret ($deleted)"
  inside master journalctl -u kube-apiserver -n 8 -o short-monotonic --no-pager | sed 's/^/    /' || true
  inside master grep server: /etc/kubernetes/admin.conf | sed 's/^/    /' || true
  { time inside master getent ahosts masters.local.k8s; } 2>&1 | sed 's/^/    getent: /' || true
  tail -n 12 /run/k8s-local/dnsmasq.log | sed 's/^/    dnsmasq: /' || true
  inside master /usr/bin/kubectl --kubeconfig /etc/kubernetes/admin.conf --request-timeout=10s -v=6 \
    -n kube-system get secrets 2>&1 | tail -n 8 | sed 's/^/    again: /' || true
fi
inside master sh -c 'systemctl stop k8s-agent && rm -f /run/k8s-agent/state.json && systemctl start k8s-agent'
rotation_kept() {
  local deadline=$(( $(date +%s) + 30 )) s
  while [ "$(date +%s)" -lt "$deadline" ]; do
    s=$(json master)
    if [ "$(field condition <<<"$s")" = ready ] && grep -q 'published it before and it was deleted since' <<<"$s"; then
      return 0
    fi
    sleep 0.5
  done
  echo "    $s" | head -c 600
  return 1
}
check "master: a deleted token Secret is not published again after a fresh start (rotation sticks)" rotation_kept
check "master: the deleted token Secret stays deleted" \
  bash -c "! nsenter -t $($LC leader master) -a -- /usr/bin/kubectl --kubeconfig /etc/kubernetes/admin.conf \
    -n kube-system get secret bootstrap-token-${token%%.*} >/dev/null 2>&1"

check "master: no private key and not the token secret in its journal" \
  bash -c "! nsenter -t $($LC leader master) -a -- journalctl -o cat --no-pager | grep -qF -e 'PRIVATE KEY' -e '$secret'"
check "master: the token secret is not in status or state" \
  bash -c "! { nsenter -t $($LC leader master) -a -- /usr/bin/k8s-agent status --json --no-units; \
    nsenter -t $($LC leader master) -a -- cat /run/k8s-agent/state.json; } | grep -qF -e '$secret' -e 'PRIVATE KEY'"
for n in minion1 minion2; do
  check "$n: the bootstrap token's secret is not in the journal" \
    bash -c "! nsenter -t $($LC leader "$n") -a -- journalctl -o cat --no-pager | grep -qF '$secret'"
  check "$n: the bootstrap token's secret is not in status or state" \
    bash -c "! { nsenter -t $($LC leader "$n") -a -- /usr/bin/k8s-agent status --json --no-units; \
      nsenter -t $($LC leader "$n") -a -- cat /run/k8s-agent/state.json; } | grep -qF '$secret'"
done

# The support bundle: everything an operator needs, none of the node's secrets (tests/local/bundle.sh). After the
# journal checks above: it leaks secrets into the journals on purpose.
# shellcheck source=tests/local/bundle.sh
. tests/local/bundle.sh

echo "--- status of every node"
$LC status || true

$LC down
check "down removed every netns" bash -c "! ip netns list | grep -q 'k8s-'"
check "down removed the state" [ ! -e /run/k8s-local ]
check "down removed the node cgroups" bash -c "! ls -d /sys/fs/cgroup/*/k8s-test-* /sys/fs/cgroup/k8s-test-* 2>/dev/null | grep -q ."
check "down stopped every nspawn" bash -c "! pgrep -f '[s]ystemd-nspawn.*k8s-test' >/dev/null"
check "the test's Prometheus is not running any more" bash -c "! kill -0 ${prom_pid:-0} 2>/dev/null"
trap - EXIT
echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
