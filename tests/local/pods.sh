# shellcheck shell=bash
# tests/local/pods.sh: sourced by tests/local/e2e.sh while the local cluster (master + minion1..3) is up. A working
# cluster, with the real kubelet, containerd and runc and the bridge pod network (CNI=bridge; docs/agent.md
# "Pod network"):
#   - every minion's Node has a podCIDR, its CNI configuration is the bridge on that range, Weave's is not written
#     and weave.service never ran; status says the Weave decision is not applied;
#   - a pod of the workload image (busybox, baked) runs on every minion, with an address from its node's podCIDR;
#   - pods on different minions reach each other: ping and TCP (wget to a `nc -l` server);
#   - a ClusterIP Service answers from a pod on another node (kube-proxy, iptables mode), a NodePort answers from
#     the hub on every minion's address, the `kubernetes` Service answers from a pod;
#   - traffic leaving the pod network is masqueraded: a pod asks the hub's dnsmasq (which has no route to pods);
#   - the agents' routes: every node (the master too) has one route per other minion, protocol 107;
#   - cluster DNS: CoreDNS (the master's agent deploys it from the baked image) has 2 ready replicas behind kube-dns
#     at 10.96.0.10, and pods resolve kubernetes.default.svc.cluster.local, a Service by its short and full name,
#     and a name outside the cluster (forwarded to the node's resolver).
# Uses ok/bad/check/inside/json/field from e2e.sh and tests/local/lib.sh.

kc() { inside master /usr/bin/kubectl --kubeconfig /etc/kubernetes/admin.conf --request-timeout=20s "$@"; }
within() { # seconds command... → the command succeeds within that many seconds
  local deadline=$(( $(date +%s) + $1 ))
  shift
  while [ "$(date +%s)" -lt "$deadline" ]; do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 0.5
  done
  "$@"
}
pod_ip() { kc get pod "$1" -o jsonpath='{.status.podIP}'; }
in_pod() { local p=$1; shift; kc exec "$p" -- "$@"; }

echo "--- pods: the bridge pod network, pods on every minion, pod traffic across nodes, Services"
minions=(minion1 minion2 minion3)
for n in "${minions[@]}"; do
  cidr=$(kc get node "$n" -o jsonpath='{.spec.podCIDR}' 2>/dev/null || true)
  check "$n: the controller manager gave its Node a podCIDR in 10.32.0.0/12 ($cidr)" grep -Eq '^10\.(3[2-9]|4[0-7])\.[0-9]+\.0/24$' <<<"$cidr"
  conf=$(inside "$n" cat /etc/cni/net.d/10-bridge.conflist 2>/dev/null || true)
  check "$n: the agent wrote the bridge CNI configuration for $cidr" grep -qF "\"subnet\": \"$cidr\"" <<<"$conf"
  check "$n: no Weave CNI configuration (CNI=bridge)" bash -c "! nsenter -t $($LC leader "$n") -a -- test -e /etc/cni/net.d/10-weave.conflist"
  check "$n: weave.service never ran (CNI=bridge)" [ "$(prop "$n" weave.service ActiveEnterTimestampMonotonic)" = 0 ]
  check "$n: status says the pod network is the bridge on $cidr" bash -c "[ '$(json "$n" | field pod_cidr)' = '$cidr' ]"
  check "$n: status says the Weave decision is not applied" \
    bash -c "nsenter -t $($LC leader "$n") -a -- /usr/bin/k8s-agent status --no-units | grep -q '^weave .*NOT APPLIED'"
done

# A busybox pod on every minion: an HTTP answer ("hello from <pod>") on 8080 from busybox nc, for as long as it runs.
# shellcheck disable=SC2016 # expanded in the pod
serve='while true; do printf "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nhello from %s\n" "$(hostname)" | nc -l -p 8080; done'
t_pods=$(date +%s%3N)
for n in "${minions[@]}"; do
  kc run "w-$n" --image=localhost/k8s-image/busybox:1.37.0 --image-pull-policy=Never --labels="app=w,node=$n" \
    --overrides="{\"spec\":{\"nodeName\":\"$n\",\"terminationGracePeriodSeconds\":1}}" --command -- sh -c "$serve" >/dev/null
done
for n in "${minions[@]}"; do
  if within 90 bash -c "[ \"\$(nsenter -t $($LC leader master) -a -- /usr/bin/kubectl --kubeconfig /etc/kubernetes/admin.conf get pod w-$n -o jsonpath='{.status.phase}')\" = Running ]"; then
    ok "$n: a busybox pod is Running ($(( $(date +%s%3N) - t_pods )) ms after it was created)"
  else
    bad "$n: a busybox pod is Running"
    kc describe pod "w-$n" | tail -n 12 | sed 's/^/    /' || true
  fi
  cidr=$(kc get node "$n" -o jsonpath='{.spec.podCIDR}' 2>/dev/null || true)
  ip=$(pod_ip "w-$n" || true)
  check "$n: the pod's address $ip is in its node's podCIDR $cidr" bash -c "[ -n '$ip' ] && [ '${ip%.*}' = '${cidr%.*}' ]"
done

# The agents' routes (protocol 107): every node has one per other minion, the master too; the agent looks again every
# 5 s while a minion DNS lists has no route yet, so a new minion's pods are reachable within seconds of its podCIDR.
for n in master "${minions[@]}"; do
  want=3
  [ "$n" = master ] || want=2
  routes_ok() { [ "$(inside "$n" ip -4 route show proto 107 | grep -c ' via 10\.79\.0\.')" = "$want" ]; }
  check "$n: the agent routes the other minions' podCIDRs ($want routes, proto 107)" within 45 routes_ok
done
ip2=$(pod_ip w-minion2 || true)
ip3=$(pod_ip w-minion3 || true)
check "a pod on minion1 pings a pod on minion2 ($ip2)" in_pod w-minion1 ping -c 2 -W 3 "$ip2"
check "a pod on minion2 pings a pod on minion3 ($ip3)" in_pod w-minion2 ping -c 2 -W 3 "$ip3"
answer=$(in_pod w-minion1 wget -qO- -T 5 "http://$ip3:8080/" 2>&1 || true)
check "a pod on minion1 reaches a pod on minion3 over TCP (got: $answer)" grep -q 'hello from w-minion3' <<<"$answer"

# Services: ClusterIP to the pod on minion2, from the pod on minion3; a NodePort from the hub on every minion.
cat <<'YAML' | kc apply -f - >/dev/null
apiVersion: v1
kind: Service
metadata: {name: w2, namespace: default}
spec:
  selector: {app: w, node: minion2}
  ports: [{port: 80, targetPort: 8080}]
---
apiVersion: v1
kind: Service
metadata: {name: w2-nodeport, namespace: default}
spec:
  type: NodePort
  selector: {app: w, node: minion2}
  ports: [{port: 80, targetPort: 8080, nodePort: 30080}]
YAML
cip=$(kc get svc w2 -o jsonpath='{.spec.clusterIP}')
svc_answers() { in_pod w-minion3 wget -qO- -T 3 "http://$cip/" 2>/dev/null | grep -q 'hello from w-minion2'; }
check "the ClusterIP Service w2 ($cip) answers from a pod on minion3 with the pod on minion2" within 30 svc_answers
for a in 10.79.0.11 10.79.0.12 10.79.0.13; do
  np_answers() { ip netns exec k8s-local-hub curl -s -m 3 "http://$a:30080/" | grep -q 'hello from w-minion2'; }
  check "the NodePort 30080 answers from the hub at $a" within 30 np_answers
done
version=$(in_pod w-minion1 wget -qO- -T 5 --no-check-certificate https://10.96.0.1/version 2>&1 || true)
check "the kubernetes Service (10.96.0.1) answers from a pod: the API server's /version" grep -q '"gitVersion": "v1.37.2"' <<<"$version"
looked_up=$(in_pod w-minion1 nslookup masters.local.k8s 10.79.0.1 2>&1 || true)
check "a pod's traffic leaving the pod network is masqueraded: the hub's dnsmasq answers it" grep -q '10.79.0.10' <<<"$looked_up"

# Cluster DNS: CoreDNS, deployed by the master's agent as kubeadm's addon phase does, from the baked image.
coredns_ready() { [ "$(kc -n kube-system get deployment coredns -o jsonpath='{.status.readyReplicas}')" = 2 ]; }
if within 120 coredns_ready; then ok "CoreDNS (Deployment kube-system/coredns) has 2 ready replicas"; else
  bad "CoreDNS (Deployment kube-system/coredns) has 2 ready replicas"
  kc -n kube-system get pods -o wide 2>&1 | sed 's/^/    /' || true
  kc -n kube-system describe pods -l k8s-app=kube-dns 2>&1 | tail -n 15 | sed 's/^/    /' || true
fi
check "the kube-dns Service is at kubelet's clusterDNS address 10.96.0.10" \
  [ "$(kc -n kube-system get svc kube-dns -o jsonpath='{.spec.clusterIP}')" = 10.96.0.10 ]
check "CoreDNS runs the baked image" \
  grep -q 'localhost/k8s-image/coredns:' <<<"$(kc -n kube-system get deployment coredns -o jsonpath='{.spec.template.spec.containers[0].image}')"
resolves() { # pod name address → nslookup NAME in the pod (its resolv.conf: 10.96.0.10) gives ADDRESS
  # busybox's nslookup tries every search domain and exits 1 when any of them is NXDOMAIN: read what it found.
  local out
  out=$(in_pod "$1" nslookup "$2" 2>/dev/null || true)
  awk '/^Name:/ { found = 1 } found && /^Address/ { print $NF }' <<<"$out" | grep -qxF "$3"
}
check "a pod on minion3 resolves kubernetes.default.svc.cluster.local to 10.96.0.1" \
  within 30 resolves w-minion3 kubernetes.default.svc.cluster.local 10.96.0.1
check "a pod on minion1 resolves the Service name w2 (search path) to its ClusterIP $cip" within 30 resolves w-minion1 w2 "$cip"
check "a pod on minion2 resolves w2.default.svc.cluster.local to $cip" within 30 resolves w-minion2 w2.default.svc.cluster.local "$cip"
check "a pod resolves a name outside the cluster through CoreDNS (masters.local.k8s, forwarded to the node's resolver)" \
  within 30 resolves w-minion1 masters.local.k8s 10.79.0.10
kc delete svc w2 w2-nodeport --wait=false >/dev/null 2>&1 || true
