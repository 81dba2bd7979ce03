#!/usr/bin/env bash
# bench/ha.sh: the highly available control plane, measured, each number beside its baseline from the same run.
#
#   bench/ha.sh [BOOTS]    BOOTS (default 10) boots of three masters at the same instant, one single-master boot as
#                          the baseline, then one run of tests/local/ha.sh (a master lost and replaced); one table
#
# Per boot of 3 masters (demo/local-cluster.sh up --masters 3 0: the three nodes start together, their records are in
# DNS from the start): which master bootstrapped etcd (exactly one, asserted), whether all three agree on one cluster
# ID with 3 voters and no agent blocked, and two times from the agents' own transitions (unix ms in each status):
#   third master boot → 3 voters   the last master's first phase (role) → the last master entering start-control-plane
#                                  (its member a voter in quorum);
#   boot → all masters Ready       the first master's first phase → the last master Ready.
# Baselines: the bootstrapping master of the same boot (its first phase → its own one-member etcd serving: what the
# joins add is the difference), and one master (up 0, CONTROL_PLANE_SIZE unset): its first phase → Ready.
# From tests/local/ha.sh: the API's unavailability seen by a client in a minion looping `kubectl get --raw /readyz`
# through masters.local.k8s (a new process each 0.2 s, 5 s timeout) when the etcd leader's master is powered off,
# beside the same client in the 10 s before; and the replacement's boot → 3 healthy voters.
# Needs root and the demo layer (./demo/build.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
LC=demo/local-cluster.sh
BOOTS=${1:-10}
[ "$(id -u)" = 0 ] || { echo "run as root" >&2; exit 2; }
[ -f "${LAYER:-out/demo/layer.tar.gz}" ] || ./demo/build.sh
# shellcheck source=tests/local/lib.sh
. tests/local/lib.sh
trap '$LC down >/dev/null 2>&1 || true' EXIT
$LC down >/dev/null 2>&1 || true
work=$(mktemp -d)

median() { sort -n | awk '{ a[NR] = $1 } END { if (NR) print a[int((NR + 1) / 2)]; else print "-" }'; }
maxof() { sort -n | tail -1; }

echo "--- baseline: one master"
$LC up 0 >"$work/up-single.log" 2>&1 || { tail -n 30 "$work/up-single.log"; exit 1; }
s=$(json master)
single_ready=$(( $(field transition_at.ready <<<"$s") - $(field transition_at.role <<<"$s") ))
echo "single master: boot → Ready ${single_ready} ms"
$LC down >/dev/null 2>&1

: >"$work/voters"
: >"$work/ready"
: >"$work/alone"
fails=0
for i in $(seq "$BOOTS"); do
  if ! $LC up --masters 3 0 >"$work/up-$i.log" 2>&1; then
    echo "boot $i: FAIL (up did not finish)"
    tail -n 20 "$work/up-$i.log"
    fails=$((fails + 1))
    $LC down >/dev/null 2>&1 || true
    continue
  fi
  roles=() cps=() readys=() ids=() bys=() blocked=0 alone=0
  for n in master master2 master3; do
    s=$(json "$n")
    roles+=("$(field transition_at.role <<<"$s")")
    cps+=("$(field transition_at.start-control-plane <<<"$s")")
    readys+=("$(field transition_at.ready <<<"$s")")
    ids+=("$(field etcd.cluster_id <<<"$s")")
    bys+=("$n=$(field etcd.started_by <<<"$s")")
    if [ "$(field etcd.started_by <<<"$s")" = bootstrap ]; then
      alone=$(( $(field transition_at.start-control-plane <<<"$s") - $(field transition_at.role <<<"$s") ))
    fi
    case $(field blocking <<<"$s") in *blocked*) blocked=$((blocked + 1)) ;; esac
  done
  last_boot=$(printf '%s\n' "${roles[@]}" | maxof)
  first_boot=$(printf '%s\n' "${roles[@]}" | sort -n | head -1)
  voters_at=$(printf '%s\n' "${cps[@]}" | maxof)
  ready_at=$(printf '%s\n' "${readys[@]}" | maxof)
  bootstrappers=$(printf '%s\n' "${bys[@]}" | grep -c '=bootstrap$' || true)
  clusters=$(printf '%s\n' "${ids[@]}" | sort -u | wc -l)
  voters=$(inside master /usr/bin/etcdctl --endpoints=https://127.0.0.1:2379 --cacert=/etc/kubernetes/pki/etcd/ca.crt \
    --cert=/etc/kubernetes/pki/etcd/healthcheck-client.crt --key=/etc/kubernetes/pki/etcd/healthcheck-client.key \
    member list 2>/dev/null | grep -c ', false$' || true)
  verdict=ok
  if [ "$bootstrappers" != 1 ] || [ "$clusters" != 1 ] || [ "$voters" != 3 ] || [ "$blocked" != 0 ]; then
    verdict=FAIL
    fails=$((fails + 1))
  fi
  echo "boot $i: $verdict — ${bys[*]}; cluster IDs ${clusters}; voters ${voters}; blocked ${blocked}; third boot → 3 voters $((voters_at - last_boot)) ms (the bootstrapper alone: $alone ms); boot → all Ready $((ready_at - first_boot)) ms"
  echo "$((voters_at - last_boot))" >>"$work/voters"
  echo "$((ready_at - first_boot))" >>"$work/ready"
  echo "$alone" >>"$work/alone"
  $LC down >/dev/null 2>&1
done

echo "--- a master lost and replaced (tests/local/ha.sh)"
ha_rc=0
tests/local/ha.sh >"$work/ha.log" 2>&1 || ha_rc=$?
grep -E '^(ok|FAIL|measure|    )|passed, ' "$work/ha.log" | grep -v '^measure' | tail -n 60
m() { awk -v k="$1" '$1 == "measure" && $2 == k { print $3 }' "$work/ha.log"; }

echo
echo "| measure | HA control plane (3 masters) | baseline, same run |"
echo "|---|---|---|"
echo "| boot at the same instant: exactly one bootstrap, one cluster, 3 voters, nothing blocked | $((BOOTS - fails)) of $BOOTS boots | – |"
echo "| third master's boot → 3 voting members (median / max of $BOOTS) | $(median <"$work/voters") / $(maxof <"$work/voters") ms | the bootstrapping master's boot → its one-member etcd serving: $(median <"$work/alone") / $(maxof <"$work/alone") ms |"
echo "| boot → every master Ready (median / max) | $(median <"$work/ready") / $(maxof <"$work/ready") ms | one master: $single_ready ms |"
echo "| API from a minion through masters.local.k8s, the etcd leader's master powered off: longest gap between successes | $(m api_longest_gap_ms_after_loss) ms | the 10 s before: $(m api_longest_gap_ms_before_loss) ms |"
echo "| … failed requests (5 s timeout) | $(m api_failed_requests_after_loss) | $(m api_failed_requests_before_loss) |"
echo "| replacement master's boot → 3 healthy voters (dead member removed) | $(m replacement_boot_to_3_healthy_voters_ms) ms | – |"
echo "| tests/local/ha.sh | $(grep -E 'passed, .* failed' "$work/ha.log" | tail -1) | – |"
rm -rf "$work"
[ "$fails" = 0 ] && [ "$ha_rc" = 0 ]
