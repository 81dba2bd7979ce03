#!/usr/bin/env bash
# tests/local/ha.sh: the highly available control plane end to end. A local cluster with three masters
# (demo/local-cluster.sh up --masters 3 2: CONTROL_PLANE_SIZE=3, the shared keys in every master's user data, etcd
# across the masters over TLS) and two minions, then the etcd leader's master loses power.
#
# Asserts, with real etcd, kube-apiserver, kubelet and etcdctl/kubectl from the image:
#   - exactly one master bootstrapped etcd, the other two joined as learners and were promoted; one cluster ID,
#     3 voters, `etcdctl endpoint health` 3 of 3; every master's status shows its membership;
#   - the etcd leader's master powered off (the plug pulled, nothing stops cleanly): kubectl through
#     masters.local.k8s still works, every minion stays Ready, a new pod is scheduled and runs, etcdctl shows 2 of 3
#     healthy; the surviving leader's agent says when it will remove the dead member;
#   - a replacement (a new machine, the same user data; the dead address taken out of the record) joins as a learner,
#     is promoted, and the leader's agent removes the dead member: 3 voting members again, all healthy; the join
#     token's Secret, deleted before it came (rotated), is not published again by it (the cluster's record);
#   - the removed master powered on again with its old data: its agent moves the data aside and it joins again (4
#     voters); powered off again, the leader's agent removes it (3 voters);
#   - a master that reboots keeps its member ID and data;
#   - two of three masters off: the API is unavailable; one back: quorum, and an object written before reads back.
# Measures (printed as "measure NAME VALUE", collected by bench/ha.sh): the third master's boot → 3 voters, the API's
# unavailability seen by a client looping through the masters name while the leader's master is powered off, the
# replacement's boot → 3 healthy voters. `etcdctl member list` before, during and after is printed.
# Prints "N passed, M failed" and exits non-zero on any failure. Needs root and the demo layer (./demo/build.sh).
# shellcheck disable=SC2016 # within() takes code to eval later: single quotes on purpose
set -euo pipefail
cd "$(dirname "$0")/../.."
# shellcheck source=tests/local/lib.sh
. tests/local/lib.sh
STATE=/run/k8s-local
# The dead member is removed once the replacement is a voter (ETCD_REPLACED_MEMBER_AFTER, shortened to its minimum of
# 30 s here; the default is 60 s), long before ETCD_DEAD_MEMBER_AFTER (600 s, the default) would remove it alone.
export ETCD_DEAD_MEMBER_AFTER=${ETCD_DEAD_MEMBER_AFTER:-600} ETCD_REPLACED_MEMBER_AFTER=${ETCD_REPLACED_MEMBER_AFTER:-30}
work=$(mktemp -d)
loop_pid=""
cleanup() {
  if [ -n "$loop_pid" ]; then kill "$loop_pid" 2>/dev/null || true; fi
  [ -n "${KEEP_CLUSTER:-}" ] || $LC down >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
$LC down >/dev/null 2>&1 || true

within() {
  local deadline=$(($(date +%s) + $2))
  until eval "$1"; do
    [ "$(date +%s)" -lt "$deadline" ] || return 1
    sleep 0.5
  done
}
ms() { date +%s%3N; }
measure() { echo "measure $1 $2"; }
ETCD_TLS=(--cacert=/etc/kubernetes/pki/etcd/ca.crt --cert=/etc/kubernetes/pki/etcd/healthcheck-client.crt
  --key=/etc/kubernetes/pki/etcd/healthcheck-client.key --command-timeout=3s --dial-timeout=2s)
etcdctl_on() { # master args...
  local n=$1
  shift
  inside "$n" /usr/bin/etcdctl --endpoints=https://127.0.0.1:2379 "${ETCD_TLS[@]}" "$@"
}
# kubectl in a minion with the admin kubeconfig: its server is https://masters.local.k8s:6443, resolved by the
# minion (all masters), as any client outside the control plane.
kc() { inside minion1 /usr/bin/kubectl --kubeconfig /run/ha-admin.conf --request-timeout=10s "$@"; }
voters() { etcdctl_on "$1" member list -w json 2>/dev/null | python3 -c 'import json,sys
m=json.load(sys.stdin)["members"]; print(sum(1 for x in m if not x.get("isLearner")), sum(1 for x in m if x.get("isLearner")))' 2>/dev/null; }
addr_of() { awk -v n="$1" '$1 == n { print $3 }' "$STATE/nodes"; }
up_masters() { awk '$2 == "master" { print $1 }' "$STATE/nodes"; }
# Why a master is where it is, after a failed check: its status, its agent's and etcd's last lines.
# The gist (phase, etcd line, the agent's last lines) is printed again at the end, where a cut log still shows it.
explain() { # master
  inside "$1" /usr/bin/k8s-agent status --no-units 2>&1 | sed "s/^/    $1: /" | head -n 30 || true
  inside "$1" journalctl -u k8s-agent -n 15 --no-pager 2>&1 | cut -c1-300 | sed "s/^/    $1 agent: /" || true
  inside "$1" journalctl -u etcd -n 8 --no-pager 2>&1 | cut -c1-300 | sed "s/^/    $1 etcd: /" || true
  {
    echo "  $1 (leader $($LC leader "$1" 2>&1), $(date +%T)):"
    inside "$1" /usr/bin/k8s-agent status --no-units 2>&1 | grep -E '^(phase|etcd|error)' | cut -c1-240 | sed 's/^/    /' || true
    inside "$1" journalctl -u k8s-agent -n 3 --no-pager -o cat 2>&1 | cut -c1-240 | sed 's/^/    agent: /' || true
  } >>"$work/gist"
}
has_record() { kc -n kube-system get configmap "k8s-agent-published-$1" -o name >/dev/null; }

# --- 1. Three masters and two minions boot together ----------------------------------------------------------
t0=$(ms)
if $LC up --masters 3 2 >"$work/up.log" 2>&1; then ok "3 masters + 2 minions up and Ready in $(($(ms) - t0)) ms"; else
  bad "3 masters + 2 minions up"
  tail -n 40 "$work/up.log"
  for n in master master2 master3; do inside "$n" /usr/bin/k8s-agent status 2>/dev/null | sed "s/^/    $n: /" || true; done
  exit 1
fi
# When the last master's systemd started (its console's first line) → 3 voters (a poll of the member list every
# 0.2 s would race `up`, which already waited for Ready; the agents' own transitions say when each became a voter).
masters=(master master2 master3)
boots=()
for n in "${masters[@]}"; do boots+=("$(json "$n" | field transition_at.role)"); done
last_boot=$(printf '%s\n' "${boots[@]}" | sort -n | tail -1)
voter_at=0
for n in "${masters[@]}"; do
  t=$(json "$n" | field transition_at.start-control-plane)
  [ "$t" -gt "$voter_at" ] && voter_at=$t
done
measure third_master_boot_to_3_voters_ms $((voter_at - last_boot))
bootstrappers=0
for n in "${masters[@]}"; do
  s=$(json "$n")
  check "$n: ready, an etcd voter" [ "$(field condition <<<"$s")" = ready ] && [ "$(field etcd.role <<<"$s")" = voter ]
  by=$(field etcd.started_by <<<"$s")
  echo "    $n: etcd started by $by, member $(field etcd.member_id <<<"$s"), cluster $(field etcd.cluster_id <<<"$s")"
  [ "$by" != bootstrap ] || bootstrappers=$((bootstrappers + 1))
done
check "exactly one master bootstrapped etcd, the others joined" [ "$bootstrappers" = 1 ]
check "the three agents agree on one cluster ID" \
  [ "$(for n in "${masters[@]}"; do json "$n" | field etcd.cluster_id; done | sort -u | wc -l)" = 1 ]
check "etcd: 3 voters, 0 learners" [ "$(voters master)" = "3 0" ]
echo "--- etcdctl member list, before"
etcdctl_on master member list -w table | tee "$work/members-before.txt"
eps=$(for n in "${masters[@]}"; do printf 'https://%s:2379,' "$(addr_of "$n")"; done)
eps=${eps%,}
check "etcdctl endpoint health: 3 of 3 healthy" \
  [ "$(inside master /usr/bin/etcdctl --endpoints="$eps" "${ETCD_TLS[@]}" endpoint health 2>&1 | grep -c 'is healthy')" = 3 ]
check "kube-apiserver talks to its own member over TLS with its own client certificate" \
  inside master2 grep -q -- '--etcd-certfile=/etc/kubernetes/pki/apiserver-etcd-client.crt' /run/k8s-agent/apiserver-etcd.env
check "etcd refuses a client without a certificate" \
  bash -c "! nsenter -t $($LC leader master) -a -- /usr/bin/etcdctl --endpoints=https://127.0.0.1:2379 --cacert=/etc/kubernetes/pki/etcd/ca.crt --command-timeout=3s member list >/dev/null 2>&1"
inside master cat /etc/kubernetes/admin.conf | inside minion1 sh -c 'umask 077; cat >/run/ha-admin.conf'
check "kubectl through masters.local.k8s from a minion" kc get nodes
kc create configmap ha-canary --from-literal=written=before-the-loss >/dev/null
check "a ConfigMap written before any master is lost" kc get configmap ha-canary
check "status on a master shows its etcd membership" \
  bash -c "nsenter -t $($LC leader master) -a -- /usr/bin/k8s-agent status --no-units | grep -q '^etcd .*3 of 3 voters healthy'"
check "metrics carry the membership" \
  inside master grep -q '^k8s_agent_etcd_members{role="voter",state="healthy"} 3' /var/lib/prometheus/node-exporter/k8s-agent.prom

# --- 2. The etcd leader's master loses power -------------------------------------------------------------------
leader=""
for n in "${masters[@]}"; do [ "$(json "$n" | field etcd.leader)" = true ] && leader=$n; done
check "one master's status says its member leads ($leader)" [ -n "$leader" ]
[ -n "$leader" ] || exit 1
survivor=$(for n in "${masters[@]}"; do [ "$n" = "$leader" ] || echo "$n"; done | head -1)
dead_addr=$(addr_of "$leader")
# A client looping through the masters name: one kubectl a time (a new connection, a fresh lookup of all three
# addresses), 5 s request timeout, every 0.2 s; a line "ms ok|fail" each.
inside minion1 sh -c 'while :; do t=$(date +%s%3N); if /usr/bin/kubectl --kubeconfig /run/ha-admin.conf --request-timeout=5s get --raw /readyz >/dev/null 2>&1; then echo "$t ok"; else echo "$t fail"; fi; sleep 0.2; done' >"$work/loop.log" 2>/dev/null &
loop_pid=$!
sleep 10
t_kill=$(ms)
$LC poweroff "$leader" >/dev/null
echo "    powered off $leader ($dead_addr), the etcd leader's master"
check "kubectl through masters.local.k8s works with $leader off" within 'kc get nodes >/dev/null 2>&1' 60
# Watch the minions' Ready condition for 90 s: never anything but True (a sample the client could not take is
# counted apart), and afterwards neither condition changed since before the loss.
ready_cond='{range .items[*]}{.metadata.name}={.status.conditions[?(@.type=="Ready")].status}@{.status.conditions[?(@.type=="Ready")].lastTransitionTime} {end}'
not_ready=0
unsampled=0
for _ in $(seq 18); do
  if conds=$(kc get nodes minion1 minion2 -o jsonpath="$ready_cond" 2>/dev/null); then
    case $conds in minion1=True@*minion2=True@*) ;; *) not_ready=$((not_ready + 1)); echo "    minions not both Ready: $conds" ;; esac
  else
    unsampled=$((unsampled + 1))
  fi
  sleep 5
done
[ "$unsampled" = 0 ] || echo "    $unsampled of 18 samples: the client got no answer in 10 s"
check "every minion stayed Ready for 90 s after the loss" [ "$not_ready" = 0 ]
since_loss_s=$((t_kill / 1000))
transitions=$(kc get nodes minion1 minion2 -o jsonpath="$ready_cond")
echo "    Ready conditions: $transitions"
check "no minion's Ready condition changed since before the loss" python3 -c '
import sys, datetime
for item in sys.argv[2].split():
    at = item.split("@")[1]
    t = datetime.datetime.strptime(at, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=datetime.timezone.utc).timestamp()
    if t >= int(sys.argv[1]): sys.exit(1)' "$since_loss_s" "$transitions"
kill "$loop_pid" 2>/dev/null || true
wait "$loop_pid" 2>/dev/null || true
loop_pid=""
# The window after the loss (from the last success before it), and beside it the 10 s before (the baseline: all
# three masters up, the same client).
window() { # from to
  awk -v a="$1" -v b="$2" '$1 >= a && $1 < b { n++; if ($2 == "ok") { if (last && $1 - last > g) g = $1 - last; last = $1 } else f++ } END { printf "%d %d %d\n", g, f, n }' "$work/loop.log"
}
read -r base_gap base_fail base_n < <(window $((t_kill - 10000)) "$t_kill")
# (the time as its text: mawk prints a number past 2^31 as 1.7965e+12, and its printf %d stops at 2^31 - 1)
last_ok=$(awk -v k="$t_kill" '$1 < k && $2 == "ok" { t = $1 } END { if (t == "") t = 0; print t }' "$work/loop.log")
read -r gap fail n < <(window "$last_ok" 99999999999999)
if [ "$n" = 0 ]; then
  # Not expected: keep the client's log for a look (the work directory goes with the test).
  cp "$work/loop.log" /tmp/k8s-ha-loop.log
  echo "    the client's log has no line from its last success before the loss on ($(wc -l <"$work/loop.log") lines, t_kill $t_kill, last_ok $last_ok; kept in /tmp/k8s-ha-loop.log)"
fi
measure api_longest_gap_ms_before_loss "$base_gap"
measure api_failed_requests_before_loss "$base_fail/$base_n"
measure api_longest_gap_ms_after_loss "$gap"
measure api_failed_requests_after_loss "$fail/$n"
kc run ha-after-loss --image=localhost/k8s-image/busybox:1.37.0 --image-pull-policy=Never \
  --overrides='{"spec":{"terminationGracePeriodSeconds":1}}' --command -- sleep 3600 >/dev/null
check "a new pod is scheduled and Running with the leader's master off" \
  within '[ "$(kc get pod ha-after-loss -o jsonpath={.status.phase} 2>/dev/null)" = Running ]' 120
check "etcdctl endpoint health: 2 of 3 healthy" \
  [ "$(inside "$survivor" /usr/bin/etcdctl --endpoints="$eps" "${ETCD_TLS[@]}" endpoint health 2>&1 | grep -c 'is healthy')" = 2 ]
echo "--- etcdctl member list, during ($leader off)"
etcdctl_on "$survivor" member list -w table | tee "$work/members-during.txt"
new_leader=""
check "a new etcd leader among the survivors" \
  within 'for n in "${masters[@]}"; do [ "$n" != "$leader" ] && [ "$(json "$n" | field etcd.leader)" = true ] && new_leader=$n; done; [ -n "$new_leader" ]' 60
check "the new leader's agent says when it removes the dead member" \
  within '[ -n "$(json "$new_leader" | field etcd.note)" ]' 60
echo "    $new_leader: $(json "$new_leader" | field etcd.note)"

# --- 3. A replacement: a new machine, the same user data; the dead address out of the record --------------------
read -r -a keep < <(for n in "${masters[@]}"; do [ "$n" = "$leader" ] || addr_of "$n"; done | xargs)
# The join token is rotated first: the operator deletes its Secret. The replacement has the same user data (the same
# BOOTSTRAP_TOKEN) and none of the first masters' files; the cluster's own record keeps it from publishing it again.
token_secret=$(kc -n kube-system get secrets --field-selector type=bootstrap.kubernetes.io/token -o name | head -n 1)
check "the cluster records that the token Secret was published (${token_secret#secret/})" has_record "${token_secret#secret/}"
kc -n kube-system delete "$token_secret" >/dev/null
t_add=$(ms)
$LC dns set masters "${keep[@]}"
newm=$($LC add-master --no-wait | tail -1)
$LC dns set masters "${keep[@]}" "$(addr_of "$newm")"
check "the replacement $newm joined as a learner" within '[ "$(json "$newm" | field etcd.started_by)" = join ]' 240
check "the replacement is a voter and Ready" within '[ "$(json "$newm" | field condition)" = ready ] && [ "$(json "$newm" | field etcd.role)" = voter ]' 240
check "the leader's agent removed the dead member: 3 voters, 0 learners" within '[ "$(voters "$survivor")" = "3 0" ]' 240
measure replacement_boot_to_3_healthy_voters_ms $(($(ms) - t_add))
token_not_back() {
  local names
  names=$(kc -n kube-system get secrets -o name) || return 1
  ! grep -qx "$token_secret" <<<"$names" && json "$newm" | grep -q 'a master of this cluster published it before and it was deleted since'
}
check "the replacement did not publish the deleted token again (the cluster's record)" token_not_back
removed_by() { # the master whose status records the removal of the dead member
  local n
  for n in "${masters[@]}" "$newm"; do
    [ "$n" = "$leader" ] && continue
    if json "$n" | field etcd.removals | grep -q "$dead_addr"; then echo "$n"; return 0; fi
  done
  return 1
}
check "the removal is in the leader's status, with its reason" within 'removed_by >/dev/null' 60
for n in "${masters[@]}" "$newm"; do
  [ "$n" = "$leader" ] && continue
  r=$(json "$n" | field etcd.removals)
  [ -z "$r" ] || echo "    $n removed: $r"
done
eps_now=$(for n in "${masters[@]}" "$newm"; do [ "$n" = "$leader" ] || printf 'https://%s:2379,' "$(addr_of "$n")"; done)
check "etcdctl endpoint health: 3 of 3 healthy again" \
  [ "$(inside "$survivor" /usr/bin/etcdctl --endpoints="${eps_now%,}" "${ETCD_TLS[@]}" endpoint health 2>&1 | grep -c 'is healthy')" = 3 ]
echo "--- etcdctl member list, after the replacement"
etcdctl_on "$survivor" member list -w table | tee "$work/members-after.txt"
check "the object written before the loss reads back" [ "$(kc get configmap ha-canary -o jsonpath='{.data.written}')" = before-the-loss ]

# --- 3b. The removed master comes back with its old data: the cluster no longer lists it, so its agent moves the
# data aside (kept, renamed) and it joins again as a new member; powered off for good, it is removed again.
$LC start "$leader" --no-wait >/dev/null
what="the removed master $leader comes back: its data moved aside, joined again as a learner, a voter"
if within '[ "$(json "$leader" | field etcd.started_by)" = join ] && [ "$(json "$leader" | field etcd.role)" = voter ]' 240; then
  ok "$what"
else
  bad "$what"
  explain "$leader"
fi
check "its old data is kept under another name" bash -c "nsenter -t \$($LC leader $leader) -a -- sh -c 'ls -d /var/lib/etcd.removed-*' >/dev/null"
check "4 voters while it is back (more than CONTROL_PLANE_SIZE)" within '[ "$(voters "$survivor")" = "4 0" ]' 60
$LC poweroff "$leader" >/dev/null
$LC dns set masters "${keep[@]}" "$(addr_of "$newm")"
check "powered off again: removed again after ETCD_REPLACED_MEMBER_AFTER (3 voters)" within '[ "$(voters "$survivor")" = "3 0" ]' 150

# --- 4. A master that reboots keeps its member and its data --------------------------------------------------------
id_before=$(json "$survivor" | field etcd.member_id)
$LC reboot "$survivor" >/dev/null
check "$survivor rebooted: Ready, the same member ($id_before), started on its data" \
  within '[ "$(json "$survivor" | field condition)" = ready ] && [ "$(json "$survivor" | field etcd.member_id)" = "$id_before" ] && [ "$(json "$survivor" | field etcd.started_by)" = restart ]' 180
check "3 voters after the reboot" within '[ "$(voters "$newm")" = "3 0" ]' 60

# --- 5. Two of three off: no API; one back: quorum and the data -------------------------------------------------
alive=()
for n in "${masters[@]}" "$newm"; do [ "$n" = "$leader" ] || alive+=("$n"); done
$LC poweroff "${alive[0]}" >/dev/null
$LC poweroff "${alive[1]}" >/dev/null
check "with 2 of 3 masters off the API is unavailable (no etcd quorum)" \
  within '! inside "${alive[2]}" /usr/bin/kubectl --kubeconfig /etc/kubernetes/admin.conf --server https://127.0.0.1:6443 --tls-server-name masters.local.k8s --request-timeout=5s get configmap ha-canary >/dev/null 2>&1' 60
$LC start "${alive[0]}" --no-wait >/dev/null
# Read through the surviving master's own API server (loopback): the masters record still names a master that is
# off, and a client that dials it first spends its timeout there.
if within '[ "$(inside "${alive[2]}" /usr/bin/kubectl --kubeconfig /etc/kubernetes/admin.conf --server https://127.0.0.1:6443 --tls-server-name masters.local.k8s --request-timeout=5s get configmap ha-canary -o jsonpath={.data.written} 2>/dev/null)" = before-the-loss ]' 240; then
  ok "one master back: quorum, and the ConfigMap written before reads back"
else
  bad "one master back: quorum, and the ConfigMap written before reads back"
  explain "${alive[0]}"
  explain "${alive[2]}"
fi

if [ -s "$work/gist" ]; then
  echo "--- the masters that failed a check, again:"
  cat "$work/gist"
fi
echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
