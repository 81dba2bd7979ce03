#!/usr/bin/env bash
# tests/local/dns-update.sh: nodes that register themselves. A local cluster (demo/local-cluster.sh with
# K8S_LOCAL_DNS=bind) whose DNS is a real BIND 9 primary with an EMPTY zone and one TSIG key (tsig-keygen): every node
# gets DNS_UPDATE_* and the key through its user data and adds its own address over RFC 2136 (the core minions to
# minions. and weave-core., the master to masters. once nodes can join).
#
# Asserts: the cluster forms from the empty zone (every node Ready, the records are exactly the nodes' addresses, as
# dig sees them); the minions' Weave decision is the core's; a restarted agent takes its record out (ExecStop) and
# puts it back; a minion with a wrong secret is refused (BADSIG) and blocked with that reason, adds nothing and
# starts nothing; a minion whose user data has no key file sends no update at all (BIND's log) and says why; a
# powered-off minion's record is gone; the TSIG secret is in no journal, status or state file.
# Prints "N passed, M failed" and exits non-zero on any failure. Needs root, the demo layer and bind9 + bind9-utils.
# shellcheck disable=SC2016 # within() takes code to eval later: single quotes on purpose
set -euo pipefail
cd "$(dirname "$0")/../.."
export K8S_LOCAL_DNS=bind
# shellcheck source=tests/local/lib.sh
. tests/local/lib.sh
STATE=/run/k8s-local
HUB=k8s-local-hub
work=$(mktemp -d)
trap '$LC down >/dev/null 2>&1 || true; rm -rf "$work"' EXIT
$LC down >/dev/null 2>&1 || true

# The A records of NAME.local.k8s as BIND answers them (dig, in the hub namespace), sorted, space-separated.
records() { ip netns exec "$HUB" dig @10.79.0.1 +short +tries=2 +time=2 "$1.local.k8s" A | grep -v '^;' | sort | xargs; }
# Wait up to $2 s until `$1` succeeds.
within() {
  local deadline=$(($(date +%s) + $2))
  until eval "$1"; do
    [ "$(date +%s)" -lt "$deadline" ] || return 1
    sleep 0.5
  done
}

core_member() { grep -q '^IPALLOC_INIT=consensus=2' <<<"$1" && grep -q '^KUBE_PEERS="10.79.0.11 10.79.0.12"' <<<"$1"; }

t0=$(date +%s%3N)
if $LC up 2 >"$work/up.log" 2>&1; then ok "cluster up from an empty zone (1 master + 2 minions) in $(($(date +%s%3N) - t0)) ms"; else
  bad "cluster up from an empty zone"
  cat "$work/up.log"
  exit 1
fi
check "the zone started with no A record but the name server's" \
  [ "$(grep -c ' A ' "$STATE/bind/zone")" = 1 ]
check "masters.local.k8s is the master, added by itself" [ "$(records masters)" = "10.79.0.10" ]
check "minions.local.k8s is both minions, added by themselves" [ "$(records minions)" = "10.79.0.11 10.79.0.12" ]
check "weave-core.local.k8s is the core (both minions)" [ "$(records weave-core)" = "10.79.0.11 10.79.0.12" ]
for n in master minion1 minion2; do
  s=$(json "$n")
  check "$n: ready" [ "$(field condition <<<"$s")" = ready ]
  check "$n: status says what it registered" \
    [ -n "$(field dns_registration.registered_at <<<"$s")" ]
done
check "named applied updates signed by key k8s-agent" grep -q "k8s-agent: updating zone 'k8s/IN': adding an RR at 'minions.local.k8s' A" "$STATE/named.log"
check "master: status shows the registration" \
  bash -c "nsenter -t \$($LC leader master) -a -- /usr/bin/k8s-agent status --no-units | grep -q '^dns .*registered 10.79.0.10 in masters.local.k8s at 10.79.0.1:53 (TSIG k8s-agent)'"
for n in minion1 minion2; do
  env=$(inside "$n" cat /run/k8s-agent/weave.env 2>/dev/null || true)
  check "$n: Weave core member (consensus=2, peers from weave-core)" core_member "$env"
done

# A restart of the agent: ExecStop takes the record out, the restarted agent puts it back and stays Ready.
inside minion1 systemctl restart k8s-agent.service
check "minion1 after an agent restart: ready again" within '[ "$(json minion1 | field condition)" = ready ]' 30
check "minion1 after an agent restart: back in minions and weave-core" \
  within '[ "$(records minions)" = "10.79.0.11 10.79.0.12" ] && [ "$(records weave-core)" = "10.79.0.11 10.79.0.12" ]' 30
check "minion1's agent deleted its records on stop (named's log)" \
  grep -q "k8s-agent: updating zone 'k8s/IN': deleting an RR at minions.local.k8s A" "$STATE/named.log"

# A minion with the right key name and a wrong secret: refused, says so, adds nothing, starts nothing.
(umask 077 && tsig-keygen -a hmac-sha256 k8s-agent >"$work/wrong.key")
MINION_DNS_UPDATE_KEY_FILE=$work/wrong.key $LC add-minion --no-wait >"$work/add3.log" 2>&1
check "minion3 (wrong secret) is blocked with the server's reason" \
  within '[ "$(json minion3 | field phase)" = register-dns ] && json minion3 | field blocking | grep -q "BADSIG"' 120
echo "    minion3: $(json minion3 | field blocking)"
check "minion3 added nothing" [ "$(records minions)" = "10.79.0.11 10.79.0.12" ]
check "minion3 started nothing" [ -z "$(json minion3 | field units_started)" ]

# A minion whose user data writes no key: nothing is sent.
MINION_DNS_UPDATE_KEY_FILE=none $LC add-minion --no-wait >"$work/add4.log" 2>&1
check "minion4 (no key file) is blocked naming the missing file" \
  within 'json minion4 | field blocking | grep -q "dns-update.key (DNS_UPDATE_TSIG_FILE) does not exist"' 120
echo "    minion4: $(json minion4 | field blocking)"
check "minion4 sent no update (named's log has no request from 10.79.0.14)" \
  bash -c "! grep -q 'client @[^ ]* 10.79.0.14#[0-9]*.*update' '$STATE/named.log'"

# Secrets: the TSIG secret is in no journal, status or state file of the nodes that hold it.
secret=$(sed -n 's/^[[:space:]]*secret "\(.*\)";/\1/p' "$STATE/dns-update.key")
for n in master minion1; do
  check "$n: the TSIG secret is not in the journal, status or state" bash -c "
    ! { nsenter -t \$($LC leader $n) -a -- journalctl -b --no-pager -o cat;
        nsenter -t \$($LC leader $n) -a -- /usr/bin/k8s-agent status --json --no-units;
        nsenter -t \$($LC leader $n) -a -- cat /run/k8s-agent/state.json; } 2>/dev/null | grep -qF '$secret'"
done

# A clean shutdown of a minion takes its record out.
inside minion2 systemctl poweroff || true
check "minion2 powered off: its record is gone from minions and weave-core" \
  within '[ "$(records minions)" = "10.79.0.11" ] && [ "$(records weave-core)" = "10.79.0.11" ]' 60
check "masters.local.k8s is untouched" [ "$(records masters)" = "10.79.0.10" ]

$LC down >/dev/null 2>&1
check "down: named is gone" bash -c "! pgrep -x named >/dev/null"

echo "dns-update: $passed passed, $failed failed"
[ "$failed" = 0 ]
